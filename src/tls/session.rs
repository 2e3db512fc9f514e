//! One TLS connection, sans-IO: ciphertext in, plaintext and handshake progress out; plaintext
//! in, ciphertext to send out. The loop thread does the socket I/O around it, so handshakes and
//! record crypto never run on the JavaScript thread, and this file is tested without sockets.

use std::io::{self, BufRead, Write};
use std::mem;
use std::sync::Arc;

use std::time::Duration;

use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::server::{Accepted, Acceptor};
use tokio_rustls::rustls::{self, CipherSuite, Connection, HandshakeKind, ProtocolVersion, ServerConfig};

use super::config::{NameChoice, TlsContext};
use super::TlsFailure;

/// What a [`TlsSession::receive`] call ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// The handshake completed. Input may be left: call `receive` again with the rest (the
    /// session is now open, so what follows is application data).
    Opened,
    /// A server learned the name the client asked for and no configured name matches:
    /// JavaScript is asked (`onServerName`); then [`TlsSession::name_chosen`] goes on.
    NeedsName(String),
    /// All input was consumed. `peer_closed`: the peer's close_notify has arrived.
    Consumed { peer_closed: bool },
}

enum State {
    /// A server waiting for the ClientHello, which names the configuration to use (SNI).
    Accepting(Box<Acceptor>),
    /// A server waiting for JavaScript to add a name (`onServerName`).
    ChoosingName(Box<Accepted>),
    Established(Box<Connection>),
    Failed,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Accepting(_) => "Accepting",
            State::ChoosingName(_) => "ChoosingName",
            State::Established(_) => "Established",
            State::Failed => "Failed",
        })
    }
}

/// Records rustls holds for the kernel at most (its buffer limit): `encrypt` takes plaintext
/// while fewer wait, so a slow peer's queue stays plaintext rather than doubling, and one
/// writev sends up to this much.
pub const CIPHERTEXT_WINDOW: usize = 256 * 1024;

impl State {
    fn established(mut connection: Connection) -> State {
        connection.set_buffer_limit(Some(CIPHERTEXT_WINDOW));
        State::Established(Box::new(connection))
    }
}

/// The TLS state of one socket.
#[derive(Debug)]
pub struct TlsSession {
    context: Arc<TlsContext>,
    state: State,
    /// Ciphertext for the peer; `output[sent..]` is not yet taken by the kernel.
    output: Vec<u8>,
    sent: usize,
    /// Ciphertext received while JavaScript chooses the server name.
    held_input: Vec<u8>,
    opened: bool,
    peer_closed: bool,
    close_notify_queued: bool,
    /// The name the client asked for (server side) or sent (client side).
    server_name: Option<String>,
}

/// What JavaScript can learn about an open TLS socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInfo {
    pub alpn_protocol: Option<String>,
    pub server_name: Option<String>,
    /// The DER certificate the peer presented (the first of its chain).
    pub peer_certificate: Option<Vec<u8>>,
    /// `'TLSv1.3'` or `'TLSv1.2'`.
    pub version: Option<&'static str>,
    pub cipher: Option<CipherInfo>,
    /// The handshake resumed an earlier session (ticket or session id).
    pub session_reused: bool,
}

/// The negotiated cipher suite as `node:tls`'s `getCipher()` names it: OpenSSL's name, the
/// IANA name, and the oldest protocol version the suite works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CipherInfo {
    pub name: &'static str,
    pub standard_name: &'static str,
    pub version: &'static str,
}

impl TlsSession {
    /// A server session: it reads the ClientHello before choosing a configuration.
    pub fn server(context: Arc<TlsContext>) -> TlsSession {
        TlsSession::new(context, State::Accepting(Box::default()), None)
    }

    /// A client session connecting to `name`; its ClientHello is ready to send at once.
    pub fn client(context: Arc<TlsContext>, name: ServerName<'static>) -> Result<TlsSession, TlsFailure> {
        let connection = context.client_connection(name.clone())?;
        let server_name = match name {
            ServerName::DnsName(name) => Some(name.as_ref().to_owned()),
            _ => None,
        };
        let mut session = TlsSession::new(context, State::established(connection.into()), server_name);
        session.collect_output();
        Ok(session)
    }

    fn new(context: Arc<TlsContext>, state: State, server_name: Option<String>) -> TlsSession {
        TlsSession {
            context,
            state,
            output: Vec::new(),
            sent: 0,
            held_input: Vec::new(),
            opened: false,
            peer_closed: false,
            close_notify_queued: false,
            server_name,
        }
    }

    /// Bytes to send before the first TLS record: what a socket that is upgraded (STARTTLS)
    /// had queued in clear.
    pub fn send_first(&mut self, clear: Vec<u8>) {
        if clear.is_empty() {
            return;
        }
        let mut output = clear;
        output.extend_from_slice(self.pending_output());
        self.output = output;
        self.sent = 0;
    }

    /// How long the handshake may take (the context's `handshakeTimeout`).
    pub fn handshake_timeout(&self) -> Duration {
        self.context.handshake_timeout()
    }

    /// Whether the handshake has completed.
    pub fn is_open(&self) -> bool {
        self.opened
    }

    /// A server waiting for JavaScript to choose the configuration of the name the client asked
    /// for ([`Progress::NeedsName`], until [`TlsSession::name_chosen`]).
    pub fn is_choosing_name(&self) -> bool {
        matches!(self.state, State::ChoosingName(_))
    }

    /// Feeds ciphertext from the peer; plaintext goes to `plaintext` (never empty chunks), in
    /// order. `input` is advanced past what was consumed. A failure leaves the alert for the
    /// peer in the output; the session is then dead.
    pub fn receive(
        &mut self,
        input: &mut &[u8],
        plaintext: &mut dyn FnMut(&[u8]),
    ) -> Result<Progress, TlsFailure> {
        loop {
            match &mut self.state {
                State::Accepting(acceptor) => {
                    if input.is_empty() {
                        return Ok(Progress::Consumed { peer_closed: false });
                    }
                    if acceptor.read_tls(input).is_err() {
                        return Err(self.fail(TlsFailure::Protocol));
                    }
                    match acceptor.accept() {
                        Ok(None) => {}
                        Ok(Some(accepted)) => {
                            let name = accepted.client_hello().server_name().map(str::to_owned);
                            self.server_name = name.clone();
                            match (self.context.choose(name.as_deref(), true), name) {
                                (Some(NameChoice::Use(config)), _) => self.establish(accepted, config)?,
                                (Some(NameChoice::Ask), Some(name)) => {
                                    self.state = State::ChoosingName(Box::new(accepted));
                                    self.held_input = mem::take(input).to_vec();
                                    return Ok(Progress::NeedsName(name));
                                }
                                // A context without a certificate does not listen.
                                _ => return Err(self.fail(TlsFailure::Internal)),
                            }
                        }
                        Err((err, mut alert)) => {
                            let _ = alert.write_all(&mut self.output);
                            return Err(self.fail(TlsFailure::from(&err)));
                        }
                    }
                }
                State::ChoosingName(_) => {
                    self.held_input.extend_from_slice(mem::take(input));
                    return Ok(Progress::Consumed { peer_closed: false });
                }
                State::Established(connection) => {
                    let result =
                        Self::process(connection, &mut self.opened, &mut self.peer_closed, input, plaintext);
                    self.collect_output();
                    return result.map_err(|err| self.fail(TlsFailure::from(&err)));
                }
                State::Failed => return Err(TlsFailure::Internal),
            }
        }
    }

    /// Reads records until the input is used up or the handshake completes.
    fn process(
        connection: &mut Connection,
        opened: &mut bool,
        peer_closed: &mut bool,
        input: &mut &[u8],
        plaintext: &mut dyn FnMut(&[u8]),
    ) -> Result<Progress, rustls::Error> {
        loop {
            if *opened {
                let mut reader = connection.reader();
                while let Ok(chunk) = reader.fill_buf() {
                    if chunk.is_empty() {
                        break;
                    }
                    let length = chunk.len();
                    plaintext(chunk);
                    reader.consume(length);
                }
            } else if !connection.is_handshaking() {
                *opened = true;
                return Ok(Progress::Opened);
            }
            if input.is_empty() {
                return Ok(Progress::Consumed { peer_closed: *peer_closed });
            }
            // Fails only when rustls' input buffer is full, which draining the plaintext
            // after every read prevents; a peer that still manages it is misbehaving.
            connection.read_tls(input).map_err(|_| rustls::Error::PeerSentOversizedRecord)?;
            *peer_closed |= connection.process_new_packets()?.peer_has_closed();
        }
    }

    fn establish(&mut self, accepted: Accepted, config: Arc<ServerConfig>) -> Result<(), TlsFailure> {
        match accepted.into_connection(config) {
            Ok(connection) => {
                self.state = State::established(connection.into());
                Ok(())
            }
            Err((err, mut alert)) => {
                let _ = alert.write_all(&mut self.output);
                Err(self.fail(TlsFailure::from(&err)))
            }
        }
    }

    /// JavaScript's `onServerName` has run: continues the handshake with what now matches (or
    /// the default). Returns the ciphertext that arrived meanwhile, for `receive`.
    pub fn name_chosen(&mut self) -> Result<Vec<u8>, TlsFailure> {
        let State::ChoosingName(accepted) = mem::replace(&mut self.state, State::Failed) else {
            return Err(TlsFailure::Internal);
        };
        match self.context.choose(self.server_name.as_deref(), false) {
            Some(NameChoice::Use(config)) => self.establish(*accepted, config)?,
            _ => return Err(self.fail(TlsFailure::Internal)),
        }
        self.collect_output();
        Ok(mem::take(&mut self.held_input))
    }

    /// Encrypts as much of `plaintext` as the session takes now: while less than
    /// [`CIPHERTEXT_WINDOW`] of its records wait (rustls' buffer limit); returns the bytes
    /// taken. The records wait in rustls for [`TlsSession::send_ciphertext`]. Nothing is taken
    /// before the handshake completes.
    pub fn encrypt(&mut self, plaintext: &[u8]) -> usize {
        let State::Established(connection) = &mut self.state else { return 0 };
        if !self.opened || self.close_notify_queued {
            return 0;
        }
        connection.writer().write(plaintext).unwrap_or(0)
    }

    /// Sends ciphertext into `socket` until it takes no more (a write of 0): first what waits
    /// in the output, then the records rustls holds, straight from its buffers in one writev
    /// (copying a bulk stream's records into the output first cost a copy of every byte). What
    /// the socket does not take waits in the output ([`TlsSession::pending_output`]). Returns
    /// whether everything is out.
    pub fn send_ciphertext(&mut self, socket: &mut dyn io::Write) -> io::Result<bool> {
        while !self.pending_output().is_empty() {
            let sent = socket.write(self.pending_output())?;
            if sent == 0 {
                return Ok(false);
            }
            self.consume_output(sent);
        }
        if let State::Established(connection) = &mut self.state {
            while connection.wants_write() {
                if connection.write_tls(socket)? == 0 {
                    break;
                }
            }
        }
        self.collect_output();
        Ok(self.pending_output().is_empty())
    }

    /// Queues close_notify: the peer learns no more data comes (the TLS half of a shutdown).
    pub fn close_notify(&mut self) {
        if let State::Established(connection) = &mut self.state {
            if !self.close_notify_queued {
                self.close_notify_queued = true;
                connection.send_close_notify();
                self.collect_output();
            }
        }
    }

    pub fn close_notify_queued(&self) -> bool {
        self.close_notify_queued
    }

    /// Ciphertext waiting for the kernel.
    pub fn pending_output(&self) -> &[u8] {
        &self.output[self.sent..]
    }

    /// The kernel took `count` bytes of [`TlsSession::pending_output`].
    fn consume_output(&mut self, count: usize) {
        self.sent += count;
        if self.sent >= self.output.len() {
            self.output.clear();
            self.sent = 0;
        }
    }

    pub fn info(&self) -> TlsInfo {
        let State::Established(connection) = &self.state else { return TlsInfo::default() };
        TlsInfo {
            alpn_protocol: connection.alpn_protocol().map(|p| String::from_utf8_lossy(p).into_owned()),
            server_name: self.server_name.clone(),
            peer_certificate: connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| c.to_vec()),
            version: connection.protocol_version().and_then(version_name),
            cipher: connection.negotiated_cipher_suite().and_then(|suite| cipher_info(suite.suite())),
            session_reused: connection.handshake_kind() == Some(HandshakeKind::Resumed),
        }
    }

    /// The RFC 5705 / RFC 8446 §7.5 exporter: `length` bytes of keying material for `label`
    /// and `context`, equal on both ends. `None` before the handshake completed.
    pub fn export_keying_material(
        &self,
        length: usize,
        label: &[u8],
        context: Option<&[u8]>,
    ) -> Option<Vec<u8>> {
        let State::Established(connection) = &self.state else { return None };
        if !self.opened || length == 0 {
            return None;
        }
        connection.export_keying_material(vec![0; length], label, context).ok()
    }

    /// Moves what rustls has to send into `output`.
    fn collect_output(&mut self) {
        if let State::Established(connection) = &mut self.state {
            while connection.wants_write() {
                // Writing into a Vec cannot fail.
                if connection.write_tls(&mut self.output).is_err() {
                    break;
                }
            }
        }
    }

    /// Marks the session dead (any alert already queued stays in the output).
    fn fail(&mut self, failure: TlsFailure) -> TlsFailure {
        self.collect_output();
        self.state = State::Failed;
        failure
    }
}

fn version_name(version: ProtocolVersion) -> Option<&'static str> {
    match version {
        ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => None,
    }
}

/// The names of the suites rustls' ring provider offers.
fn cipher_info(suite: CipherSuite) -> Option<CipherInfo> {
    let (name, standard_name, version) = match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => {
            ("TLS_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256", "TLSv1.3")
        }
        CipherSuite::TLS13_AES_256_GCM_SHA384 => {
            ("TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384", "TLSv1.3")
        }
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => {
            ("TLS_CHACHA20_POLY1305_SHA256", "TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3")
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => {
            ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLSv1.2")
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => {
            ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLSv1.2")
        }
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLSv1.2")
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => {
            ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLSv1.2")
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => {
            ("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLSv1.2")
        }
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            ("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLSv1.2")
        }
        _ => return None,
    };
    Some(CipherInfo { name, standard_name, version })
}
