//! The "limit" of bench/tcp.js and bench/tls.js: an echo server with as little as possible
//! between the socket and the crypto. One thread, one level-triggered poller, one read buffer
//! shared by every connection, no framework: what one core can echo, plain or over TLS, is the
//! reference the other servers are measured against.
//!
//! Usage: `limit-server [--tls --cert PEM --key PEM | --udp] [port]` (0 or none: an ephemeral
//! port; `--udp`: a UDP echo, see `udp.rs`).
//! Listens on 127.0.0.1 and prints `{"port": N}` as its first stdout line, like the servers in
//! bench/servers/. Runs until killed.

mod connection;
mod udp;

use std::io::{self, ErrorKind};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use polling::{Event, Events, PollMode, Poller};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

use connection::{Buffers, Connection};

const USAGE: &str = "usage: limit-server [--tls --cert PEM --key PEM | --udp] [port]";

/// The poller key of the listening socket; connection `i` of the slab has key `i + 1`.
const LISTENER_KEY: usize = 0;

struct Options {
    port: u16,
    tls: Option<Arc<ServerConfig>>,
    udp: bool,
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("limit-server: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let served = if options.udp { udp::serve(options.port) } else { serve(&options) };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("limit-server: {err}");
            ExitCode::FAILURE
        }
    }
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut port = 0;
    let mut tls = false;
    let mut cert = None;
    let mut key = None;
    let mut udp = false;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--tls" => tls = true,
            "--udp" => udp = true,
            "--cert" => cert = Some(PathBuf::from(value()?)),
            "--key" => key = Some(PathBuf::from(value()?)),
            _ => port = arg.parse().map_err(|_| format!("{arg:?} is not a port number"))?,
        }
    }
    let tls = match (tls, cert, key) {
        (true, Some(cert), Some(key)) => Some(server_config(&cert, &key)?),
        (true, _, _) => return Err("--tls needs --cert and --key".to_string()),
        (false, None, None) => None,
        (false, _, _) => return Err("--cert and --key only apply with --tls".to_string()),
    };
    if udp && tls.is_some() {
        return Err("--udp and --tls do not go together".to_string());
    }
    Ok(Options { port, tls, udp })
}

/// rustls's defaults (TLS 1.2 and 1.3; two TLS 1.3 session tickets per connection, as
/// OpenSSL and so node:tls send), with the certificate chain and key from PEM files, and
/// stateless tickets (rustls' rotating ticketer) as usockets-rs and node:tls issue them.
fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|err| format!("cannot read certificates from {}: {err}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|err| format!("cannot read a private key from {}: {err}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| err.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|err| format!("unusable certificate or key: {err}"))?;
    config.ticketer = ring::Ticketer::new().map_err(|err| err.to_string())?;
    Ok(Arc::new(config))
}

fn serve(options: &Options) -> io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", options.port))?;
    listener.set_nonblocking(true)?;
    // Slots of open connections (a closed one's slot is reused), and the buffers they share.
    let mut connections: Vec<Option<Connection>> = Vec::new();
    let mut free_slots: Vec<usize> = Vec::new();
    let mut buffers = Buffers::new();
    // Declared after the sockets, so dropped before them: no socket is closed while polled.
    let poller = Poller::new()?;
    // SAFETY: the listener outlives the poller (see above).
    unsafe { poller.add_with_mode(&listener, Event::readable(LISTENER_KEY), PollMode::Level)? };
    println!("{{\"port\": {}}}", listener.local_addr()?.port());
    let mut events = Events::new();
    loop {
        events.clear();
        poller.wait(&mut events, None)?;
        for event in events.iter() {
            if event.key == LISTENER_KEY {
                accept_all(&listener, &poller, options, &mut connections, &mut free_slots)?;
                continue;
            }
            let slot = event.key - 1;
            let connection = connections[slot].as_mut().expect("only open connections are polled");
            if !connection.on_ready(event, &poller, &mut buffers)? {
                let connection = connections[slot].take().expect("checked above");
                poller.delete(connection.socket())?;
                free_slots.push(slot);
            }
        }
    }
}

/// Accepts every connection waiting; level-triggered polling would report the rest anyway,
/// but one event per connection would cost a poller round trip each.
fn accept_all(
    listener: &TcpListener,
    poller: &Poller,
    options: &Options,
    connections: &mut Vec<Option<Connection>>,
    free_slots: &mut Vec<usize>,
) -> io::Result<()> {
    loop {
        let socket = match listener.accept() {
            Ok((socket, _)) => socket,
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
            // A connection reset before it was accepted is the client's business. Any other
            // failure (out of file descriptors...) ends the server: a reference that quietly
            // turns clients away would make a wrong measurement.
            Err(err)
                if err.kind() == ErrorKind::Interrupted || err.kind() == ErrorKind::ConnectionAborted =>
            {
                continue
            }
            Err(err) => return Err(err),
        };
        let connection = Connection::new(socket, options.tls.as_ref())?;
        let slot = free_slots.pop().unwrap_or_else(|| {
            connections.push(None);
            connections.len() - 1
        });
        // SAFETY: a connection's socket leaves the poller before the connection is dropped
        // (`serve`), and the poller is dropped before the connections still open.
        unsafe { poller.add_with_mode(connection.socket(), Event::readable(slot + 1), PollMode::Level)? };
        connections[slot] = Some(connection);
    }
}
