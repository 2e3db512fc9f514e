//! usockets-rs: the uSockets networking model for Node.js.
//!
//! The crate has two halves. [`event_loop`] is plain Rust: a loop thread per `Loop` with a
//! `polling::Poller`, generation-checked handle slots, timers, polls, and the batched event
//! channel to the JavaScript thread. It never names a Node-API type, so `cargo test
//! --no-default-features` tests it without Node. `binding` (behind the default `napi` feature)
//! is the thin Node-API layer: argument conversion, the threadsafe function that rings the
//! JavaScript thread, and the environment cleanup hook that stops loop threads.
// `unsafe` lives in three modules only, `sys` (syscalls), the loop's poller and the binding's
// `sys` (an external ArrayBuffer), each block with a `// SAFETY:` comment; the compiler
// refuses it anywhere else.
#![deny(unsafe_code, unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod error;
pub mod event_loop;
pub mod net;
pub mod proxy;
#[allow(unsafe_code)]
pub mod sys;
#[cfg(test)]
mod testing;
pub mod tls;
pub mod udp;

#[cfg(feature = "napi")]
mod binding;
// The wire contract's checks against the core run without Node too (`binding::wire` otherwise).
#[cfg(all(test, not(feature = "napi")))]
#[path = "binding/wire.rs"]
mod wire;
