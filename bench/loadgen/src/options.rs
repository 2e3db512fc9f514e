//! The command line: `loadgen <pingpong|stream|connect> [--flag value]...`.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use crate::net::Endpoint;
use crate::tls::TlsClient;

pub const USAGE: &str = "\
usage: loadgen <mode> (--port N [--host H] | --unix PATH) [options]

modes:
  pingpong  every connection keeps --pipeline messages of --size bytes in flight
  stream    every connection writes --size byte chunks, at most --pipeline of them unechoed
            (--pipeline unbounded: as many as TCP's flow control lets it write; it reads the
            echo back concurrently but never waits for it)
  connect   every connection slot loops: connect (and with --tls, a full handshake, or with
            --resume a resumed one), send one --size byte message, read the echo, close

options:
  --host H          server address or name (default 127.0.0.1)
  --port N          server TCP port
  --unix PATH       server Unix socket path, instead of --host/--port
  --connections C   concurrent connections (default 1)
  --size S          bytes per message or chunk (default 64; stream: 65536)
  --pipeline P      messages in flight per connection (default 1; stream: 16; not for connect),
                    or unbounded
  --warmup SECS     seconds before measuring starts (default 1)
  --duration SECS   seconds measured (default 3)
  --tls             speak TLS (1.2 or 1.3, no session resumption) over each connection
  --resume          with --tls: resume sessions (tickets or session ids) the server issued to
                    earlier connections of the run, as a returning client does; the output
                    counts the handshakes that resumed
  --ca PEM          with --tls: trust the CA certificates in this file, and no others
  --servername N    with --tls: the name the server's certificate must be for, sent as SNI
                    (default localhost)

Prints one JSON object on stdout at the end, and the lines measure-start and measure-end on
stderr when the measured window opens and closes. Exits with 1 if any echoed byte differed
from what was sent, 2 on a usage error.";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    PingPong,
    Stream,
    Connect,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::PingPong => "pingpong",
            Mode::Stream => "stream",
            Mode::Connect => "connect",
        }
    }
}

pub struct Options {
    pub mode: Mode,
    pub endpoint: Endpoint,
    pub connections: usize,
    pub message_size: u64,
    /// Messages (pingpong) or chunks (stream) each connection may have sent but not yet seen
    /// echoed; 1 in connect mode; `None`: no limit but TCP's.
    pub pipeline: Option<u64>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Set with --tls.
    pub tls: Option<TlsClient>,
}

/// What `parse` found instead of options to run with.
pub enum ParseError {
    Help,
    Invalid(String),
}

impl From<String> for ParseError {
    fn from(message: String) -> Self {
        ParseError::Invalid(message)
    }
}

impl From<&str> for ParseError {
    fn from(message: &str) -> Self {
        ParseError::Invalid(message.to_string())
    }
}

pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, ParseError> {
    let mode = match args.next().as_deref() {
        Some("pingpong") => Mode::PingPong,
        Some("stream") => Mode::Stream,
        Some("connect") => Mode::Connect,
        Some("-h" | "--help") => return Err(ParseError::Help),
        Some(other) => return Err(format!("unknown mode {other:?}").into()),
        None => return Err("no mode given".into()),
    };
    let mut host = "127.0.0.1".to_string();
    let mut port = None;
    let mut unix = None;
    let mut connections = 1;
    let mut message_size = if mode == Mode::Stream { 64 * 1024 } else { 64 };
    let mut pipeline = None;
    let mut warmup = Duration::from_secs(1);
    let mut duration = Duration::from_secs(3);
    let mut tls = false;
    let mut resume = false;
    let mut ca = None;
    let mut server_name = "localhost".to_string();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "-h" | "--help" => return Err(ParseError::Help),
            "--tls" => {
                tls = true;
                continue;
            }
            "--resume" => {
                resume = true;
                continue;
            }
            _ => {}
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--host" => host = value,
            "--port" => port = Some(number::<u16>(&flag, &value)?),
            "--unix" => unix = Some(PathBuf::from(value)),
            "--connections" => connections = positive(&flag, &value)?,
            "--size" => message_size = positive(&flag, &value)?,
            "--pipeline" if value == "unbounded" => pipeline = Some(None),
            "--pipeline" => pipeline = Some(Some(positive(&flag, &value)?)),
            "--warmup" => warmup = seconds(&flag, &value)?,
            "--duration" => duration = seconds(&flag, &value)?,
            "--ca" => ca = Some(PathBuf::from(value)),
            "--servername" => server_name = value,
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    let endpoint = match (unix, port) {
        (Some(path), None) => Endpoint::Unix(path),
        (None, Some(port)) => Endpoint::Tcp(
            (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|err| format!("cannot resolve {host}: {err}"))?
                .next()
                .ok_or_else(|| format!("{host} has no address"))?,
        ),
        (Some(_), Some(_)) => return Err("give --unix or --port, not both".into()),
        (None, None) => return Err("--port or --unix is required".into()),
    };
    let pipeline = match (mode, pipeline) {
        (Mode::Connect, Some(_)) => return Err("--pipeline does not apply to connect mode".into()),
        (Mode::Stream, None) => Some(16),
        (_, pipeline) => pipeline.unwrap_or(Some(1)),
    };
    if resume && !tls {
        return Err("--resume only applies with --tls".into());
    }
    let tls = match (tls, ca) {
        (true, Some(ca)) => Some(TlsClient::new(&ca, &server_name, resume)?),
        (true, None) => return Err("--tls needs --ca: the generator checks the server's certificate".into()),
        (false, Some(_)) => return Err("--ca only applies with --tls".into()),
        (false, None) => None,
    };
    Ok(Options {
        mode,
        endpoint,
        connections: usize::try_from(connections).map_err(|_| "--connections is too large")?,
        message_size,
        pipeline,
        warmup,
        duration,
        tls,
    })
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("{flag} {value:?} is not a valid number"))
}

fn positive(flag: &str, value: &str) -> Result<u64, String> {
    match number(flag, value)? {
        0 => Err(format!("{flag} must be at least 1")),
        n => Ok(n),
    }
}

fn seconds(flag: &str, value: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(number(flag, value)?)
        .map_err(|_| format!("{flag} {value:?} is not a duration in seconds"))
}
