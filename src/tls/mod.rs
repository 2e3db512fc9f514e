//! TLS, all of it on the loop thread: configuration from the JavaScript options ([`TlsContext`],
//! built once per `SocketContext`) and the per-socket session ([`TlsSession`]), rustls 0.23
//! driven sans-IO by the loop (no tokio runtime).

mod config;
mod failure;
mod names;
pub mod replay;
mod session;
mod tickets;

pub use config::{ConfigError, TlsContext, TlsOptions, TlsVersion, DEFAULT_HANDSHAKE_TIMEOUT};
pub use failure::TlsFailure;
pub use session::{CipherInfo, Progress, TlsInfo, TlsSession};
pub use tickets::TICKET_KEYS_BYTES;

#[cfg(test)]
mod tests;
