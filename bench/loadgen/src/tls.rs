//! TLS: a rustls client session per connection, driven sans-IO over the connection's own
//! non-blocking socket, so that the one thread keeps driving every connection from its poller.

use std::fmt;
use std::io::{self, ErrorKind, Read, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, DigitallySignedStruct, NamedGroup, ProtocolVersion,
    RootCertStore, SignatureScheme,
};

use crate::net::Socket;

/// The most plaintext one TLS record carries (RFC 8446 section 5.1, RFC 5246 section 6.2.1).
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// Servers whose sessions a resuming run keeps (rustls keeps a few tickets each).
const SESSION_CACHE: usize = 64;

/// What every TLS connection of a run is made from.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// A client that trusts the CA certificates in the PEM file `ca` and nothing else, and
    /// checks that the server's certificate is for `server_name`; with `resume`, connections
    /// resume the sessions earlier ones were given.
    pub fn new(ca: &Path, server_name: &str, resume: bool) -> Result<TlsClient, String> {
        let unreadable =
            |err: &dyn fmt::Display| format!("cannot read CA certificates from {}: {err}", ca.display());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|err| unreadable(&err))? {
            roots.add(cert.map_err(|err| unreadable(&err))?).map_err(|err| unreadable(&err))?;
        }
        if roots.is_empty() {
            return Err(unreadable(&"no certificate in the file"));
        }
        // ring, as the addon uses, so both ends of a usockets-rs run use the same crypto code.
        let provider = Arc::new(ring::default_provider());
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|err| err.to_string())?;
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|err| err.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainCheckedOnce {
                webpki,
                verified: OnceLock::new(),
            }))
            .with_no_client_auth();
        // Without `resume`, every connection makes a full handshake, as a new client does:
        // resuming would make connect mode measure a cheaper handshake, and only against
        // servers that issue tickets. With it, rustls keeps the tickets (TLS 1.3: each is used
        // once, and every connection is given new ones) of the server in memory.
        config.resumption =
            if resume { Resumption::in_memory_sessions(SESSION_CACHE) } else { Resumption::disabled() };
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|_| format!("--servername {server_name:?} is neither a DNS name nor an IP address"))?;
        Ok(TlsClient { config: Arc::new(config), server_name })
    }

    pub fn session(&self) -> io::Result<TlsSession> {
        let mut conn =
            ClientConnection::new(self.config.clone(), self.server_name.clone()).map_err(io::Error::other)?;
        // The generator's window already bounds what a connection has written and not seen
        // echoed. Without rustls's own limit, a write is taken whole even while the handshake
        // holds plaintext back, so a connection never waits for writability it does not need.
        conn.set_buffer_limit(None);
        Ok(TlsSession { conn })
    }
}

/// Checks the server's certificate chain once per run, then takes the same certificate as
/// checked. Every connection of a run gets the same certificate, and checking its chain (an
/// ECDSA verification or more) would be about a fifth of the generator's CPU time per
/// connection in connect mode, where the generator, not the server, can then be the limit. The
/// handshake signature, which proves the server holds the certificate's key, is still checked
/// on every connection, as is any other certificate.
#[derive(Debug)]
struct ChainCheckedOnce {
    webpki: Arc<WebPkiServerVerifier>,
    /// The end-entity certificate (DER) whose chain checked out; the server name is the run's.
    verified: OnceLock<Vec<u8>>,
}

impl ServerCertVerifier for ChainCheckedOnce {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.verified.get().is_some_and(|verified| verified[..] == end_entity[..]) {
            return Ok(ServerCertVerified::assertion());
        }
        let verified =
            self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        // Only the first certificate is remembered: a server that changed its certificate
        // mid-run would have every connection checked in full, which is still correct.
        let _ = self.verified.set(end_entity.to_vec());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// What a TLS handshake agreed on.
#[derive(Clone, Copy)]
pub struct Negotiated {
    version: ProtocolVersion,
    cipher_suite: CipherSuite,
    key_exchange: Option<NamedGroup>,
}

impl Negotiated {
    /// A JSON object, e.g. `{"version":"TLSv1_3","cipherSuite":"TLS13_AES_256_GCM_SHA384",
    /// "keyExchange":"X25519"}` (rustls's names, which hold no characters JSON would escape).
    pub fn to_json(self) -> String {
        let key_exchange = self.key_exchange.map_or("null".to_string(), |group| format!("\"{group:?}\""));
        format!(
            r#"{{"version":"{:?}","cipherSuite":"{:?}","keyExchange":{}}}"#,
            self.version, self.cipher_suite, key_exchange
        )
    }
}

/// One connection's TLS session over its socket.
pub struct TlsSession {
    conn: ClientConnection,
}

impl TlsSession {
    /// Reads plaintext into `buf`, which must be longer than one record's plaintext (16 KiB).
    ///
    /// rustls's `read_tls` reads the socket at most 4 KiB at a time; this reads it into
    /// `inbox`, as much as fits, and hands that to rustls piece by piece, saving most of the
    /// read calls of a bulk transfer. `inbox` is shared by every connection, so a read must not
    /// leave ciphertext behind in it: it reads no more than `buf` can take the plaintext of,
    /// counting a record rustls may hold partly read. A read shorter than `buf` therefore
    /// leaves no plaintext in rustls either, only what the socket still holds.
    pub fn read(&mut self, socket: &mut Socket, buf: &mut [u8], inbox: &mut [u8]) -> io::Result<usize> {
        debug_assert!(buf.len() > MAX_RECORD_PLAINTEXT);
        let mut filled = 0;
        // inbox[taken..read]: ciphertext read from the socket that rustls has not taken yet.
        let (mut taken, mut read) = (0, 0);
        // Whether the last socket read found it empty, or at its end.
        let mut drained = false;
        loop {
            match self.conn.reader().read(&mut buf[filled..]) {
                // 0 for a non-empty buffer: the server sent close_notify. What came before it
                // is reported first; the next read then returns 0.
                Ok(0) => return Ok(filled),
                Ok(len) => {
                    filled += len;
                    if filled == buf.len() {
                        debug_assert!(taken == read, "plaintext outgrew the room it was read for");
                        return Ok(filled);
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                // The error comes again on the next read, after the plaintext before it.
                Err(_) if filled > 0 => return Ok(filled),
                Err(err) => return Err(err),
            }
            if taken < read {
                let mut pending = &inbox[taken..read];
                self.conn.read_tls(&mut pending)?;
                taken = read - pending.len();
                self.process_new_packets(socket)?;
                continue;
            }
            let room = buf.len() - filled;
            if drained || room <= MAX_RECORD_PLAINTEXT {
                // Short with room left: whatever else the server sent is still in the socket.
                return if filled > 0 { Ok(filled) } else { Err(ErrorKind::WouldBlock.into()) };
            }
            let wanted = (room - MAX_RECORD_PLAINTEXT).min(inbox.len());
            let len = match socket.read(&mut inbox[..wanted]) {
                Ok(len) => len,
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == ErrorKind::WouldBlock && filled > 0 => return Ok(filled),
                Err(err) => return Err(err),
            };
            // Level-triggered polling reports the socket again if data is left, so a short read
            // saves the read that would only say "would block".
            drained = len < wanted;
            if len == 0 {
                // Tells rustls the socket is at its end: the reader then reports an orderly
                // close (after close_notify) or an unexpected EOF.
                self.conn.read_tls(&mut io::empty())?;
            }
            (taken, read) = (0, len);
        }
    }

    fn process_new_packets(&mut self, socket: &mut Socket) -> io::Result<()> {
        if let Err(err) = self.conn.process_new_packets() {
            // Sends the alert rustls queued to tell the server why. The connection fails
            // either way, so whether the alert gets out does not matter.
            let _ = self.conn.write_tls(socket);
            return Err(io::Error::new(ErrorKind::InvalidData, err));
        }
        Ok(())
    }

    /// Encrypts all of `buf` (or holds it until the handshake is complete), unless records
    /// written before still wait for the socket: then `WouldBlock`, and nothing is taken.
    pub fn write(&mut self, socket: &mut Socket, buf: &[u8]) -> io::Result<usize> {
        self.flush(socket)?;
        // Until the handshake completes rustls buffers plaintext without sending any, so a
        // writer with no window of its own would buffer without end.
        if self.conn.is_handshaking() {
            return Err(ErrorKind::WouldBlock.into());
        }
        let len = self.conn.writer().write(buf)?;
        // What the socket does not take now goes out with the next write or flush.
        match self.flush(socket) {
            Err(err) if err.kind() != ErrorKind::WouldBlock => Err(err),
            _ => Ok(len),
        }
    }

    /// Writes the records rustls holds (handshake messages, alerts, encrypted data):
    /// `WouldBlock` if the socket did not take them all.
    pub fn flush(&mut self, socket: &mut Socket) -> io::Result<()> {
        if !self.conn.wants_write() {
            return Ok(());
        }
        if self.conn.write_tls(socket)? == 0 {
            return Err(ErrorKind::WriteZero.into());
        }
        // rustls offers everything it holds in one writev (up to 64 records, more than one
        // write ever adds), so anything left means the socket is full, which a second call
        // would only confirm.
        if self.conn.wants_write() {
            return Err(ErrorKind::WouldBlock.into());
        }
        Ok(())
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    pub fn close_notify(&mut self, socket: &mut Socket) {
        self.conn.send_close_notify();
        // The socket is closed right after, so an alert that does not fit now is dropped,
        // as it would be by any client that closes.
        let _ = self.conn.write_tls(socket);
    }

    /// Whether the completed handshake resumed a session.
    pub fn resumed(&self) -> bool {
        self.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    pub fn negotiated(&self) -> Option<Negotiated> {
        if self.conn.is_handshaking() {
            return None;
        }
        Some(Negotiated {
            version: self.conn.protocol_version()?,
            cipher_suite: self.conn.negotiated_cipher_suite()?.suite(),
            key_exchange: self.conn.negotiated_key_exchange_group().map(|group| group.name()),
        })
    }
}
