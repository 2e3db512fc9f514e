//! Feeding a TLS session bytes nobody vouches for, the way the loop thread does: in chunks of
//! any size, following every `Opened` and `NeedsName` as the loop would, and checking what
//! must hold whatever the input. The fuzz targets (`fuzz/`) and the seeded corpus test of
//! `tests.rs` both drive sessions through this, so they check the same things.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::ServerName;

use super::{Progress, TlsContext, TlsFailure, TlsSession};

/// How one replay ended.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub opened: bool,
    pub asked_name: bool,
    pub peer_closed: bool,
    pub plaintext_bytes: usize,
    pub failure: Option<TlsFailure>,
}

/// A small deterministic generator for chunk sizes (xorshift), so a replay is repeatable.
struct Chunks(u32);

impl Chunks {
    fn next_size(&mut self, left: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        // Mostly small chunks (a header split anywhere), sometimes all that is left.
        let size = if self.0.is_multiple_of(4) { left } else { 1 + (self.0 as usize >> 8) % 64 };
        size.min(left)
    }
}

/// Feeds `input` to a server session of `context` in chunks chosen by `seed`.
pub fn replay_as_server(context: &Arc<TlsContext>, input: &[u8], seed: u32) -> Outcome {
    replay(TlsSession::server(Arc::clone(context)), input, seed)
}

/// Feeds `input`, as if the server had sent it, to a client session connecting to `name`.
pub fn replay_as_client(
    context: &Arc<TlsContext>,
    name: ServerName<'static>,
    input: &[u8],
    seed: u32,
) -> Outcome {
    match TlsSession::client(Arc::clone(context), name) {
        Ok(session) => replay(session, input, seed),
        Err(failure) => Outcome { failure: Some(failure), ..Outcome::default() },
    }
}

/// Feeds `input` to `session` (new, or one that is part way through a connection) in chunks
/// chosen by `seed`.
pub fn replay(mut session: TlsSession, input: &[u8], seed: u32) -> Outcome {
    let mut outcome = Outcome::default();
    let mut chunks = Chunks(seed | 1);
    let mut rest = input;
    while !rest.is_empty() && outcome.failure.is_none() {
        let (chunk, after) = rest.split_at(chunks.next_size(rest.len()));
        rest = after;
        feed(&mut session, chunk, &mut outcome);
        // The kernel takes everything; an open session also has something to say.
        assert!(session.send_ciphertext(&mut std::io::sink()).expect("the sink takes everything"));
        if outcome.opened && outcome.failure.is_none() {
            let taken = session.encrypt(b"reply");
            assert!(taken <= 5);
        }
    }
    if outcome.failure.is_none() {
        session.close_notify();
        assert!(session.close_notify_queued() || !outcome.opened, "an open session queues close_notify");
    } else {
        assert_eq!(session.encrypt(b"after"), 0, "a failed session encrypts nothing");
    }
    if let Some(failure) = outcome.failure {
        assert!(failure.code() < 0, "failure codes are negative: {failure:?}");
        assert!(TlsFailure::from_code(failure.code()) == Some(failure), "codes map back: {failure:?}");
    }
    outcome
}

/// One chunk, as the loop thread's `tls_receive` handles it.
fn feed(session: &mut TlsSession, mut chunk: &[u8], outcome: &mut Outcome) {
    loop {
        let opened_before = session.is_open();
        let mut plaintext = 0;
        let progress = session.receive(&mut chunk, &mut |bytes| {
            assert!(!bytes.is_empty(), "no empty plaintext chunks");
            plaintext += bytes.len();
        });
        assert!(plaintext == 0 || opened_before, "plaintext only after the handshake");
        outcome.plaintext_bytes += plaintext;
        match progress {
            Ok(Progress::Opened) => {
                assert!(session.is_open() && !opened_before);
                outcome.opened = true;
            }
            Ok(Progress::NeedsName(_)) => {
                outcome.asked_name = true;
                assert!(session.is_choosing_name());
                // JavaScript answers (adding nothing): the handshake goes on with the default.
                assert!(chunk.is_empty(), "the rest of the input is held while the name is chosen");
                match session.name_chosen() {
                    Ok(held) => return feed(session, &held, outcome),
                    Err(failure) => {
                        outcome.failure = Some(failure);
                        return;
                    }
                }
            }
            Ok(Progress::Consumed { peer_closed }) => {
                assert!(chunk.is_empty(), "Consumed means all input was used");
                outcome.peer_closed |= peer_closed;
                return;
            }
            Err(failure) => {
                outcome.failure = Some(failure);
                return;
            }
        }
    }
}
