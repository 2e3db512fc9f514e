//! TLS, all of it on the loop thread: configuration from the JavaScript options ([`TlsContext`],
//! built once per `SocketContext`) and the per-socket session ([`TlsSession`]), rustls 0.23
//! driven sans-IO by the loop (no tokio runtime).

mod config;
mod failure;
mod names;
pub mod replay;
mod session;

pub use config::{ConfigError, MinVersion, TlsContext, TlsOptions};
pub use failure::TlsFailure;
pub use session::{Progress, TlsInfo, TlsSession};

#[cfg(test)]
mod tests;
