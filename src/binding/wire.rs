//! The wire contract with JavaScript: the event record format that `lib/dispatch.js` decodes and
//! the numbers it shares with the core, exported (as `binding.js` / `binding.d.ts` constants) so
//! that JavaScript reads them from here rather than writing them again. Each value is taken from
//! the constant or enum that the core writes records with. The few the core writes as literals
//! are written here once: the slot-index range and the Open payload layout are checked against
//! the core by the tests below, which `cargo test --no-default-features` runs (`lib.rs` builds
//! this file without the binding for them); the ServerName payload (written in `net/tls.rs`) by
//! the JavaScript specs of `onServerName`.
// Only the exports read most of these, and test builds (napi-rs registers nothing in them) and
// builds without the binding have none.
#![cfg_attr(any(test, not(feature = "napi")), allow(dead_code))]

#[cfg(feature = "napi")]
use napi_derive::napi;

use crate::event_loop::{self, EventKind};

// --- records: `[kind, slot index, stamp, arg]`, then `arg` payload bytes for Open, Data and
// ServerName, padded to whole words ---

/// Words in a record header.
#[cfg_attr(feature = "napi", napi)]
pub const WORDS_PER_EVENT: u32 = event_loop::WORDS_PER_EVENT as u32;

/// A timer expired (`EventKind` in `src/event_loop/batch.rs` documents each kind).
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_TIMER: u32 = EventKind::Timer as u32;
/// A poll's fd is ready: `arg` is the ready subset of its mask.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_POLL: u32 = EventKind::Poll as u32;
/// `wakeup()` was called.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_WAKEUP: u32 = EventKind::Wakeup as u32;
/// A socket opened (accepted or connected); the payload says by whom and its addresses.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_OPEN: u32 = EventKind::Open as u32;
/// Bytes arrived: the payload.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_DATA: u32 = EventKind::Data as u32;
/// A socket can take more, or its send buffer drained.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_WRITABLE: u32 = EventKind::Writable as u32;
/// The peer finished sending (FIN).
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_END: u32 = EventKind::End as u32;
/// A socket's timeout expired: `arg` is the stamp it was armed with.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_TIMEOUT: u32 = EventKind::Timeout as u32;
/// A socket's long timeout expired: `arg` is the stamp it was armed with.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_LONG_TIMEOUT: u32 = EventKind::LongTimeout as u32;
/// The loop closed a socket: `arg` is 0 (orderly) or the errno.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_CLOSE: u32 = EventKind::Close as u32;
/// A connect failed: `arg` is the errno, or a negative libuv or TLS code, as an i32.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_CONNECT_ERROR: u32 = EventKind::ConnectError as u32;
/// A TLS client asked for a name that no pattern matches; its handshake waits for JavaScript.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_SERVER_NAME: u32 = EventKind::ServerName as u32;
/// A UDP datagram arrived.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_DATAGRAM: u32 = EventKind::Datagram as u32;
/// A UDP socket's receive failed: `arg` is the errno.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_DATAGRAM_ERROR: u32 = EventKind::DatagramError as u32;

/// STARTTLS: the loop upgraded the socket and waits for its undelivered bytes.
#[cfg_attr(feature = "napi", napi)]
pub const EVENT_UPGRADED: u32 = EventKind::Upgraded as u32;

/// Bit `kind` is set for the kinds whose records carry `arg` payload bytes (padded to words):
/// the dispatcher skips a record as `WORDS_PER_EVENT + ((arg + 3) >>> 2)` words for those.
#[cfg_attr(feature = "napi", napi)]
pub const KINDS_WITH_PAYLOAD: u32 = {
    let kinds = event_loop::records::KINDS_WITH_PAYLOAD;
    let mut mask = 0;
    let mut i = 0;
    while i < kinds.len() {
        mask |= 1 << kinds[i] as u32;
        i += 1;
    }
    mask
};

/// Every kind has its constant: a kind added to `EventKind` fails to build here until it has one.
const _: fn(EventKind) -> u32 = |kind| match kind {
    EventKind::Timer => EVENT_TIMER,
    EventKind::Poll => EVENT_POLL,
    EventKind::Wakeup => EVENT_WAKEUP,
    EventKind::Open => EVENT_OPEN,
    EventKind::Data => EVENT_DATA,
    EventKind::Writable => EVENT_WRITABLE,
    EventKind::End => EVENT_END,
    EventKind::Timeout => EVENT_TIMEOUT,
    EventKind::LongTimeout => EVENT_LONG_TIMEOUT,
    EventKind::Close => EVENT_CLOSE,
    EventKind::ConnectError => EVENT_CONNECT_ERROR,
    EventKind::ServerName => EVENT_SERVER_NAME,
    EventKind::Datagram => EVENT_DATAGRAM,
    EventKind::DatagramError => EVENT_DATAGRAM_ERROR,
    EventKind::Upgraded => EVENT_UPGRADED,
};

/// The length of `TlsOptions.ticketKeys` (checked in JavaScript, where the message names it).
#[cfg_attr(feature = "napi", napi)]
pub const TICKET_KEYS_BYTES: u32 = crate::tls::TICKET_KEYS_BYTES as u32;

/// `arg` bit of a timer record: the timer's last expiry (it does not repeat).
#[cfg_attr(feature = "napi", napi)]
pub const TIMER_FINAL: u32 = event_loop::TIMER_FINAL;

/// The listener word of an Open payload of a socket that connected rather than was accepted.
#[cfg_attr(feature = "napi", napi)]
pub const OPENED_BY_CONNECT: u32 = event_loop::OPENED_BY_CONNECT;
/// The listener word of an Open payload of a socket JavaScript handed over (`adoptFd`).
#[cfg_attr(feature = "napi", napi)]
pub const OPENED_BY_ADOPTION: u32 = event_loop::OPENED_BY_ADOPTION;

// Payload words, counted from the payload's start (the word after the header).

/// Open and ServerName: the listening socket's slot index ([`OPENED_BY_CONNECT`] for a connect).
#[cfg_attr(feature = "napi", napi)]
pub const PAYLOAD_LISTENER_INDEX: u32 = 0;
/// Open and ServerName: the listening socket's generation.
#[cfg_attr(feature = "napi", napi)]
pub const PAYLOAD_LISTENER_GENERATION: u32 = 1;
/// Open: the remote port (as i32: -1 for Unix sockets).
#[cfg_attr(feature = "napi", napi)]
pub const OPEN_REMOTE_PORT: u32 = 2;
/// Open: the local port (as i32: -1 for Unix sockets).
#[cfg_attr(feature = "napi", napi)]
pub const OPEN_LOCAL_PORT: u32 = 3;
/// Open: the byte length of the remote address.
#[cfg_attr(feature = "napi", napi)]
pub const OPEN_REMOTE_LENGTH: u32 = 4;
/// Open: where the remote address, then the local address, begin (UTF-8, to the payload's end).
#[cfg_attr(feature = "napi", napi)]
pub const OPEN_ADDRESSES: u32 = 5;
/// Datagram: the sender's port.
#[cfg_attr(feature = "napi", napi)]
pub const DATAGRAM_PORT: u32 = 0;
/// Datagram: the byte length of the sender's address.
#[cfg_attr(feature = "napi", napi)]
pub const DATAGRAM_ADDRESS_LENGTH: u32 = 1;
/// Datagram: where the sender's address (text), then the datagram's bytes, begin.
#[cfg_attr(feature = "napi", napi)]
pub const DATAGRAM_ADDRESS: u32 = 2;
/// ServerName: where the name the client asked for begins (to the payload's end).
#[cfg_attr(feature = "napi", napi)]
pub const SERVER_NAME_TEXT: u32 = 2;

// --- ids and values records carry ---

/// Handle ids pack a slot index below this under its generation (`src/event_loop/slots.rs`):
/// `id = generation * SLOT_INDEX_RANGE + index`. A record's slot index and stamp (for sockets:
/// the generation) make the id again.
#[cfg_attr(feature = "napi", napi)]
pub const SLOT_INDEX_RANGE: u32 = 1 << 26;

/// Socket timeouts fire on ticks this many seconds apart.
#[cfg_attr(feature = "napi", napi)]
pub const TIMEOUT_GRANULARITY: u32 = event_loop::TIMEOUT_GRANULARITY.as_secs() as u32;

/// Poll interest and readiness bit: readable.
#[cfg_attr(feature = "napi", napi)]
pub const READABLE: u32 = event_loop::READABLE;
/// Poll interest and readiness bit: writable.
#[cfg_attr(feature = "napi", napi)]
pub const WRITABLE: u32 = event_loop::WRITABLE;

/// The negative libuv code of a ConnectError record whose name lookup failed (ENOTFOUND).
#[cfg_attr(feature = "napi", napi)]
pub const UV_ENOTFOUND: i32 = crate::net::UV_ENOTFOUND;

/// The errno of a Close record after a failed write (JavaScript names its syscall `write`).
#[cfg_attr(feature = "napi", napi)]
pub const ERRNO_EPIPE: i32 = libc::EPIPE;

/// The errno of a connect that closing its context or loop cancelled.
#[cfg_attr(feature = "napi", napi)]
pub const ERRNO_ECANCELED: i32 = libc::ECANCELED;

// The core packs ids with a shift by the index's bits.
const _: () = assert!(SLOT_INDEX_RANGE.is_power_of_two());

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::batch::{open_payload, Opener};
    use crate::event_loop::SlotId;

    fn word(payload: &[u8], at: u32) -> u32 {
        let at = at as usize * 4;
        u32::from_le_bytes(payload[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn the_slot_index_range_is_the_one_ids_pack_with() {
        let id = SlotId { index: 5, generation: 3 };
        assert_eq!(id.pack(), 3 * u64::from(SLOT_INDEX_RANGE) + 5);
        assert_eq!(SlotId::unpack(u64::from(SLOT_INDEX_RANGE)), SlotId { index: 0, generation: 1 });
        let last = SlotId { index: SLOT_INDEX_RANGE - 1, generation: 0 };
        assert_eq!(SlotId::unpack(last.pack()), last);
    }

    #[test]
    fn open_payload_offsets_are_where_the_core_writes() {
        let listener = SlotId { index: 7, generation: 9 };
        let remote = ("192.0.2.1".to_owned(), 443);
        let local = ("/tmp/sock".to_owned(), -1);
        let payload = open_payload(Opener::Listener(listener), &remote, &local);
        assert_eq!(word(&payload, PAYLOAD_LISTENER_INDEX), 7);
        assert_eq!(word(&payload, PAYLOAD_LISTENER_GENERATION), 9);
        assert_eq!(word(&payload, OPEN_REMOTE_PORT) as i32, 443);
        assert_eq!(word(&payload, OPEN_LOCAL_PORT) as i32, -1);
        assert_eq!(word(&payload, OPEN_REMOTE_LENGTH), 9);
        assert_eq!(&payload[OPEN_ADDRESSES as usize * 4..], b"192.0.2.1/tmp/sock");
        let connected = open_payload(Opener::Connect, &remote, &local);
        assert_eq!(word(&connected, PAYLOAD_LISTENER_INDEX), OPENED_BY_CONNECT);
        let adopted = open_payload(Opener::Adoption, &remote, &local);
        assert_eq!(word(&adopted, PAYLOAD_LISTENER_INDEX), OPENED_BY_ADOPTION);
    }
}
