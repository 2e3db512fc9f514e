//! The reference reader of the record format that [`Batch`](super::Batch) writes and
//! `index.js` dispatches: `[kind, slot index, stamp, arg]`, then, for kinds with a payload,
//! `arg` bytes padded to whole words. The loop never reads its own records; the core's tests
//! and the fuzz targets (`fuzz/`) read batches back with this to check what was written.

use super::batch::{EventKind, WORDS_PER_EVENT};

/// One record as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub kind: u32,
    pub index: u32,
    pub stamp: u32,
    pub arg: u32,
    /// The payload's bytes (empty for kinds without one).
    pub payload: Vec<u8>,
}

/// The kinds whose records carry `arg` payload bytes.
pub const KINDS_WITH_PAYLOAD: [EventKind; 4] =
    [EventKind::Open, EventKind::Data, EventKind::ServerName, EventKind::Datagram];

/// Whether records of `kind` carry `arg` payload bytes.
pub fn has_payload(kind: u32) -> bool {
    KINDS_WITH_PAYLOAD.iter().any(|&with| with as u32 == kind)
}

/// Reads every record of `words`. Fails, saying where, on a record or payload that runs past
/// the end, or on padding that is not zero.
pub fn read_records(words: &[u32]) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < words.len() {
        let Some(&[kind, index, stamp, arg]) = words.get(at..at + WORDS_PER_EVENT) else {
            return Err(format!("a record header at word {at} runs past the end ({} words)", words.len()));
        };
        let length = if has_payload(kind) { arg as usize } else { 0 };
        let body_start = at + WORDS_PER_EVENT;
        let Some(body) = words.get(body_start..body_start + length.div_ceil(4)) else {
            return Err(format!("the {length}-byte payload at word {body_start} runs past the end"));
        };
        let mut payload: Vec<u8> = body.iter().flat_map(|word| word.to_le_bytes()).collect();
        if payload[length..].iter().any(|&byte| byte != 0) {
            return Err(format!("the padding of the payload at word {body_start} is not zero"));
        }
        payload.truncate(length);
        records.push(Record { kind, index, stamp, arg, payload });
        at = body_start + body.len();
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::Batch;

    #[test]
    fn reads_back_what_a_batch_wrote_and_refuses_truncations() {
        let mut batch = Batch::default();
        batch.push(EventKind::Timer, 3, 9, 1);
        batch.push_data(4, 1, b"hello");
        batch.push_data(4, 1, b", world");
        batch.push_with_payload(EventKind::ServerName, 5, 2, b"example.com");
        batch.push_datagram(6, 3, 5353, "::1", b"query");
        let records = read_records(batch.words()).unwrap();
        assert_eq!(records.len(), 4);
        assert_eq!((records[0].kind, records[0].index, records[0].arg), (EventKind::Timer as u32, 3, 1));
        assert_eq!(records[1].payload, b"hello, world", "consecutive data joined one record");
        assert_eq!(records[2].payload, b"example.com");
        // The sender's port, its address's length, the address, then the datagram.
        let mut datagram = 5353u32.to_le_bytes().to_vec();
        datagram.extend_from_slice(&3u32.to_le_bytes());
        datagram.extend_from_slice(b"::1query");
        assert_eq!(records[3].payload, datagram);
        let words = batch.words();
        assert!(read_records(&words[..words.len() - 1]).is_err());
        assert!(read_records(&words[..2]).is_err());
    }
}
