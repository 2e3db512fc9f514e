//! TLS configuration from the JavaScript options: keys and certificates as PEM content or file
//! names, encrypted PKCS#8 keys, trust roots, client certificates, ALPN, versions, and the SNI
//! table of a server. Every check happens here, when a context is created or its options are
//! replaced (`setTls`), so a bad option throws with a message that names it and nothing
//! half-configured is used.
//!
//! What outlives a replacement of the options is the context's own: its session caches and
//! ticket keys (so sessions resume across a certificate rotation), its server names and the key
//! log.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, WebPkiServerVerifier,
};
use tokio_rustls::rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime,
};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::{ServerSessionMemoryCache, StoresServerSessions, WebPkiClientVerifier};
use tokio_rustls::rustls::sign::{CertifiedKey, SingleCertAndKey};
use tokio_rustls::rustls::{
    self, ClientConfig, ClientConnection, DigitallySignedStruct, DistinguishedName, InconsistentKeys, KeyLog,
    KeyLogFile, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion,
};

use super::names::ServerNames;
use super::tickets::Tickets;
use super::TlsFailure;
use crate::error::errno_name;

/// A TLS protocol version a context accepts (its `minVersion` .. `maxVersion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// How long a handshake may take unless the options say otherwise (`handshakeTimeout`).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Servers a client context remembers sessions for (rustls keeps a few tickets per server).
const CLIENT_SESSION_CACHE_SERVERS: usize = 256;
/// Sessions a server context remembers for clients resuming by session id (TLS 1.2 without
/// tickets); tickets need no server memory.
const SERVER_SESSION_CACHE_SESSIONS: usize = 4096;

/// The `tls` options of a context (`TlsOptions` in index.d.ts), already type-checked by `index.js`.
#[derive(Clone, Debug)]
pub struct TlsOptions {
    pub key: Option<Vec<u8>>,
    pub cert: Option<Vec<u8>>,
    pub key_file_name: Option<PathBuf>,
    pub cert_file_name: Option<PathBuf>,
    pub passphrase: Option<String>,
    pub ca: Option<Vec<u8>>,
    pub ca_file_name: Option<PathBuf>,
    pub reject_unauthorized: bool,
    pub request_cert: bool,
    pub servername: Option<String>,
    pub alpn_protocols: Vec<Vec<u8>>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    pub handshake_timeout: Duration,
    /// `ticketKeys`: the key of the session tickets this server issues, shared with other
    /// contexts or processes (see `tickets.rs`); `None`: a random, rotating key of its own.
    pub ticket_keys: Option<Vec<u8>>,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            key: None,
            cert: None,
            key_file_name: None,
            cert_file_name: None,
            passphrase: None,
            ca: None,
            ca_file_name: None,
            reject_unauthorized: true,
            request_cert: false,
            servername: None,
            alpn_protocols: Vec::new(),
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            ticket_keys: None,
        }
    }
}

/// Why options were refused: the `code` and message of the error JavaScript throws.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub code: &'static str,
    pub message: String,
}

impl ConfigError {
    fn new(code: &'static str, message: String) -> ConfigError {
        ConfigError { code, message }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The configuration of one TLS `SocketContext` (shared with its children): how it serves,
/// how it connects, and its server names.
#[derive(Debug)]
pub struct TlsContext {
    /// What the options configure; replaced as a whole by [`TlsContext::set_options`], so a
    /// handshake sees the old configuration or the new one, never a mix.
    current: RwLock<Arc<Configured>>,
    provider: Arc<CryptoProvider>,
    /// Session memory and tickets, kept across option replacements.
    resumption: SessionMemory,
    names: RwLock<ServerNames<Arc<ServerConfig>>>,
    /// JavaScript has an `onServerName` handler: names no pattern matches are asked about.
    asks_for_names: AtomicBool,
}

/// What one set of options configures.
#[derive(Debug)]
struct Configured {
    /// `None` without a key and certificate: such a context can only connect.
    server: Option<Arc<ServerConfig>>,
    client: Arc<ClientConfig>,
    servername: Option<String>,
    /// What `addServerName` entries share with the context: everything but the key material
    /// (options, the roots they name).
    inherited: TlsOptions,
    roots: Option<Arc<RootCertStore>>,
    handshake_timeout: Duration,
}

/// What every configuration of a context shares: the sessions it can resume, the tickets it
/// issues and decrypts, and the key log (`SSLKEYLOGFILE`).
#[derive(Debug)]
struct SessionMemory {
    client_sessions: Arc<dyn ClientSessionStore>,
    server_sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<Tickets>,
    key_log: Option<Arc<dyn KeyLog>>,
}

/// Which configuration serves a client that asked for a name.
#[derive(Debug)]
pub enum NameChoice {
    Use(Arc<ServerConfig>),
    /// Ask JavaScript (`onServerName`), then choose again.
    Ask,
}

impl TlsContext {
    pub fn new(options: &TlsOptions) -> Result<TlsContext, ConfigError> {
        let provider = Arc::new(ring::default_provider());
        let resumption = SessionMemory {
            client_sessions: Arc::new(ClientSessionMemoryCache::new(CLIENT_SESSION_CACHE_SERVERS)),
            server_sessions: ServerSessionMemoryCache::new(SERVER_SESSION_CACHE_SESSIONS),
            tickets: Arc::new(Tickets::new(options.ticket_keys.as_deref())?),
            // As Node and curl do: session secrets go to the file the environment names, if any.
            key_log: std::env::var_os("SSLKEYLOGFILE")
                .map(|_| Arc::new(KeyLogFile::new()) as Arc<dyn KeyLog>),
        };
        let current = Configured::new(options, &provider, &resumption)?;
        Ok(TlsContext {
            current: RwLock::new(Arc::new(current)),
            provider,
            resumption,
            names: RwLock::default(),
            asks_for_names: AtomicBool::new(false),
        })
    }

    fn current(&self) -> Arc<Configured> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// `setTls`: handshakes that start from now on use `options`; open sockets keep what they
    /// negotiated, server names keep their entries. A context that serves must go on serving
    /// (the options need a key and certificate). Invalid options change nothing.
    pub fn set_options(&self, options: &TlsOptions) -> Result<(), ConfigError> {
        let replacement = Configured::new(options, &self.provider, &self.resumption)?;
        if self.can_serve() && replacement.server.is_none() {
            return Err(ConfigError::new(
                "ERR_TLS_NO_CERTIFICATE",
                "setTls: this context serves, so the options need a key and a certificate".to_owned(),
            ));
        }
        // Checked before anything changes: a bad key leaves the old configuration whole.
        let keys = options.ticket_keys.as_deref().map(Tickets::parse_key).transpose()?;
        if let Some(key) = keys {
            self.resumption.tickets.rotate(key);
        }
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(replacement);
        Ok(())
    }

    /// How long a handshake of this context may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.current().handshake_timeout
    }

    /// Whether the context has a certificate to serve with (it may listen).
    pub fn can_serve(&self) -> bool {
        self.current().server.is_some()
    }

    /// Serves clients asking for names matching `pattern` with the key and certificate of
    /// `options`; its other options default to the context's. Replaces an entry of the same
    /// pattern.
    pub fn add_server_name(&self, pattern: &str, options: &TlsOptions) -> Result<(), ConfigError> {
        let current = self.current();
        let merged = TlsOptions {
            key: options.key.clone(),
            cert: options.cert.clone(),
            key_file_name: options.key_file_name.clone(),
            cert_file_name: options.cert_file_name.clone(),
            passphrase: options.passphrase.clone(),
            ..current.inherited.clone()
        };
        let Some(certified) = certified_key(&merged, &self.provider)? else {
            return Err(ConfigError::new(
                "ERR_TLS_NO_CERTIFICATE",
                format!("addServerName('{pattern}'): the options need a key and a certificate"),
            ));
        };
        let config =
            server_config(&merged, certified, current.roots.clone(), &self.provider, &self.resumption)?;
        self.names.write().unwrap_or_else(PoisonError::into_inner).insert(pattern, config);
        Ok(())
    }

    pub fn remove_server_name(&self, pattern: &str) -> bool {
        self.names.write().unwrap_or_else(PoisonError::into_inner).remove(pattern)
    }

    /// The pattern that serves `name` (a pattern finds itself), if any.
    pub fn find_server_name(&self, name: &str) -> Option<String> {
        let names = self.names.read().unwrap_or_else(PoisonError::into_inner);
        names.find(name).map(|(pattern, _)| pattern.to_owned())
    }

    pub fn set_asks_for_names(&self, asks: bool) {
        self.asks_for_names.store(asks, Ordering::Release);
    }

    /// The configuration for a client asking for `name`: a matching server name, else (if
    /// `may_ask` and JavaScript listens for unknown names) [`NameChoice::Ask`], else the default.
    pub fn choose(&self, name: Option<&str>, may_ask: bool) -> Option<NameChoice> {
        if let Some(name) = name {
            let names = self.names.read().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, config)) = names.find(name) {
                return Some(NameChoice::Use(Arc::clone(config)));
            }
            if may_ask && self.asks_for_names.load(Ordering::Acquire) {
                return Some(NameChoice::Ask);
            }
        }
        self.current().server.clone().map(NameChoice::Use)
    }

    /// The name a client connecting to `host` sends (SNI) and verifies the certificate against:
    /// the `servername` option, else `host`. An IP address is verified against the
    /// certificate's IP entries, and rustls sends no SNI for it.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, ConfigError> {
        let current = self.current();
        let name = current.servername.as_deref().unwrap_or(host);
        let literal = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
        ServerName::try_from(literal.to_owned()).map_err(|_| {
            ConfigError::new(
                "ERR_INVALID_ARG_VALUE",
                format!("'{name}' is neither a DNS name nor an IP address (set tls.servername)"),
            )
        })
    }

    pub(super) fn client_connection(
        &self,
        name: ServerName<'static>,
    ) -> Result<ClientConnection, TlsFailure> {
        ClientConnection::new(Arc::clone(&self.current().client), name).map_err(|err| TlsFailure::from(&err))
    }
}

impl Configured {
    fn new(
        options: &TlsOptions,
        provider: &Arc<CryptoProvider>,
        resumption: &SessionMemory,
    ) -> Result<Configured, ConfigError> {
        versions(options.min_version, options.max_version)?;
        let certified = certified_key(options, provider)?;
        let roots = trust_roots(options)?;
        let server = match &certified {
            Some(certified) => {
                Some(server_config(options, Arc::clone(certified), roots.clone(), provider, resumption)?)
            }
            None => None,
        };
        let client = client_config(options, certified, roots.clone(), provider, resumption)?;
        let inherited = TlsOptions {
            key: None,
            cert: None,
            key_file_name: None,
            cert_file_name: None,
            passphrase: None,
            ..options.clone()
        };
        Ok(Configured {
            server,
            client,
            servername: options.servername.clone(),
            inherited,
            roots,
            handshake_timeout: options.handshake_timeout,
        })
    }
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
static TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];

fn versions(
    min_version: TlsVersion,
    max_version: TlsVersion,
) -> Result<&'static [&'static SupportedProtocolVersion], ConfigError> {
    match (min_version, max_version) {
        (TlsVersion::Tls12, TlsVersion::Tls13) => Ok(rustls::ALL_VERSIONS),
        (TlsVersion::Tls13, TlsVersion::Tls13) => Ok(TLS13_ONLY),
        (TlsVersion::Tls12, TlsVersion::Tls12) => Ok(TLS12_ONLY),
        (TlsVersion::Tls13, TlsVersion::Tls12) => Err(ConfigError::new(
            "ERR_TLS_PROTOCOL_VERSION_CONFLICT",
            "tls.minVersion 'TLSv1.3' is above tls.maxVersion 'TLSv1.2'".to_owned(),
        )),
    }
}

/// PEM from `content` or read from `file`; `None` when neither is given.
fn pem_input(
    content: &Option<Vec<u8>>,
    file: &Option<PathBuf>,
    name: &str,
    file_name: &str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    match (content, file) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            "ERR_INVALID_ARG_VALUE",
            format!("tls.{name} and tls.{file_name} are both set; give one"),
        )),
        (Some(content), None) => Ok(Some(content.clone())),
        (None, Some(path)) => read_file(path, file_name).map(Some),
        (None, None) => Ok(None),
    }
}

fn read_file(path: &Path, option: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|err| {
        let code = err.raw_os_error().map_or("EIO", errno_name);
        ConfigError::new(code, format!("tls.{option}: cannot read '{}': {err}", path.display()))
    })
}

fn parse_certificates(pem: &[u8], option: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certificates = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|err| {
        ConfigError::new("ERR_TLS_INVALID_CERT", format!("tls.{option} is not valid PEM: {err}"))
    })?;
    if certificates.is_empty() {
        return Err(ConfigError::new(
            "ERR_TLS_INVALID_CERT",
            format!("tls.{option} holds no certificate (no BEGIN CERTIFICATE block)"),
        ));
    }
    Ok(certificates)
}

const ENCRYPTED_KEY_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_KEY_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The private key in `pem`, decrypted with `passphrase` if it is an encrypted PKCS#8 key.
fn parse_private_key(
    pem: &[u8],
    passphrase: Option<&str>,
    option: &str,
) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let text = String::from_utf8_lossy(pem);
    if let Some(start) = text.find(ENCRYPTED_KEY_BEGIN) {
        let end = text[start..].find(ENCRYPTED_KEY_END).map(|end| start + end + ENCRYPTED_KEY_END.len());
        let block = &text[start..end.unwrap_or(text.len())];
        return decrypt_private_key(block, passphrase, option);
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|err| {
        let reason = match err {
            pem::Error::NoItemsFound => "holds no private key (no BEGIN PRIVATE KEY block)".to_owned(),
            err => format!("is not valid PEM ({err}); encrypted keys must be PKCS#8"),
        };
        ConfigError::new("ERR_TLS_INVALID_KEY", format!("tls.{option} {reason}"))
    })
}

fn decrypt_private_key(
    block: &str,
    passphrase: Option<&str>,
    option: &str,
) -> Result<PrivateKeyDer<'static>, ConfigError> {
    let invalid = |detail: String| {
        ConfigError::new(
            "ERR_TLS_INVALID_KEY",
            format!("tls.{option} is not a valid encrypted key: {detail}"),
        )
    };
    let Some(passphrase) = passphrase else {
        return Err(ConfigError::new(
            "ERR_TLS_PASSPHRASE_REQUIRED",
            format!("tls.{option} is encrypted: tls.passphrase is required"),
        ));
    };
    let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes()).map_err(|err| invalid(err.to_string()))?;
    let encrypted =
        pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice()).map_err(|err| invalid(err.to_string()))?;
    let decrypted = encrypted.decrypt(passphrase).map_err(|_| {
        ConfigError::new(
            "ERR_TLS_BAD_PASSPHRASE",
            format!("tls.passphrase does not decrypt tls.{option} (wrong passphrase?)"),
        )
    })?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(decrypted.as_bytes().to_vec())))
}

/// The key and certificate chain of the options, checked to belong together.
fn certified_key(
    options: &TlsOptions,
    provider: &CryptoProvider,
) -> Result<Option<Arc<CertifiedKey>>, ConfigError> {
    let key_option = if options.key.is_some() { "key" } else { "keyFileName" };
    let cert_option = if options.cert.is_some() { "cert" } else { "certFileName" };
    let key = pem_input(&options.key, &options.key_file_name, "key", "keyFileName")?;
    let cert = pem_input(&options.cert, &options.cert_file_name, "cert", "certFileName")?;
    let (key, cert) = match (key, cert) {
        (None, None) => return Ok(None),
        (Some(key), Some(cert)) => (key, cert),
        (Some(_), None) => {
            return Err(ConfigError::new(
                "ERR_TLS_NO_CERTIFICATE",
                "tls.key is set without tls.cert (or certFileName)".to_owned(),
            ))
        }
        (None, Some(_)) => {
            return Err(ConfigError::new(
                "ERR_TLS_NO_KEY",
                "tls.cert is set without tls.key (or keyFileName)".to_owned(),
            ))
        }
    };
    let chain = parse_certificates(&cert, cert_option)?;
    let key = parse_private_key(&key, options.passphrase.as_deref(), key_option)?;
    let signing_key = provider.key_provider.load_private_key(key).map_err(|err| {
        ConfigError::new(
            "ERR_TLS_INVALID_KEY",
            format!("tls.{key_option} is not a usable private key: {err}"),
        )
    })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
            Ok(Some(Arc::new(certified)))
        }
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => Err(ConfigError::new(
            "ERR_TLS_KEY_MISMATCH",
            format!("tls.{key_option} does not match the certificate in tls.{cert_option}"),
        )),
        Err(err) => Err(ConfigError::new(
            "ERR_TLS_INVALID_CERT",
            format!("tls.{cert_option}: the certificate cannot be used ({err})"),
        )),
    }
}

/// The roots of `ca` / `caFileName`, if given.
fn trust_roots(options: &TlsOptions) -> Result<Option<Arc<RootCertStore>>, ConfigError> {
    let Some(pem) = pem_input(&options.ca, &options.ca_file_name, "ca", "caFileName")? else {
        return Ok(None);
    };
    let option = if options.ca.is_some() { "ca" } else { "caFileName" };
    let certificates = parse_certificates(&pem, option)
        .map_err(|err| ConfigError::new("ERR_TLS_INVALID_CA", err.message))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(ConfigError::new(
            "ERR_TLS_INVALID_CA",
            format!("tls.{option} holds no usable CA certificate"),
        ));
    }
    Ok(Some(Arc::new(roots)))
}

fn server_config(
    options: &TlsOptions,
    certified: Arc<CertifiedKey>,
    roots: Option<Arc<RootCertStore>>,
    provider: &Arc<CryptoProvider>,
    resumption: &SessionMemory,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let verifier = client_verifier(options, roots, provider)?;
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(versions(options.min_version, options.max_version)?)
        .map_err(internal)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols = options.alpn_protocols.clone();
    config.session_storage = Arc::clone(&resumption.server_sessions);
    config.ticketer = Arc::clone(&resumption.tickets) as _;
    if let Some(key_log) = &resumption.key_log {
        config.key_log = Arc::clone(key_log);
    }
    Ok(Arc::new(config))
}

/// Client certificates: with `ca`, required and verified (`requestCert`: verified if sent);
/// with `rejectUnauthorized: false` or `requestCert` alone, asked for and accepted as sent.
fn client_verifier(
    options: &TlsOptions,
    roots: Option<Arc<RootCertStore>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, ConfigError> {
    match roots {
        Some(roots) if options.reject_unauthorized => {
            let builder = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(provider));
            let builder = if options.request_cert { builder.allow_unauthenticated() } else { builder };
            builder.build().map_err(|err| ConfigError::new("ERR_TLS_INVALID_CA", format!("tls.ca: {err}")))
        }
        Some(_) => Ok(Arc::new(AcceptAnyCertificate { provider: Arc::clone(provider) })),
        None if options.request_cert => Ok(Arc::new(AcceptAnyCertificate { provider: Arc::clone(provider) })),
        None => Ok(WebPkiClientVerifier::no_client_auth()),
    }
}

fn client_config(
    options: &TlsOptions,
    certified: Option<Arc<CertifiedKey>>,
    roots: Option<Arc<RootCertStore>>,
    provider: &Arc<CryptoProvider>,
    resumption: &SessionMemory,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let builder = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(versions(options.min_version, options.max_version)?)
        .map_err(internal)?;
    let builder = if options.reject_unauthorized {
        let roots = roots
            .unwrap_or_else(|| Arc::new(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }));
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(provider))
            .build()
            .map_err(|err| ConfigError::new("ERR_TLS_INVALID_CA", format!("tls.ca: {err}")))?;
        builder.with_webpki_verifier(verifier)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
            provider: Arc::clone(provider),
        }))
    };
    let mut config = match certified {
        Some(certified) => builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = options.alpn_protocols.clone();
    config.resumption = Resumption::store(Arc::clone(&resumption.client_sessions));
    if let Some(key_log) = &resumption.key_log {
        config.key_log = Arc::clone(key_log);
    }
    Ok(Arc::new(config))
}

fn internal(err: rustls::Error) -> ConfigError {
    ConfigError::new("ERR_TLS_INTERNAL", err.to_string())
}

/// `rejectUnauthorized: false` (and client certificates asked for without roots): any
/// certificate is taken, but the handshake signatures are still checked, so the peer must hold
/// the key of the certificate it sent.
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

/// The handshake-signature checks of both verifier traits: the provider's algorithms.
macro_rules! check_handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.provider.signature_verification_algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    check_handshake_signatures!();
}

impl ClientCertVerifier for AcceptAnyCertificate {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    check_handshake_signatures!();
}
