//! Events travel from the loop thread to JavaScript in batches of fixed-size records, through a
//! doorbell: the loop queues each iteration's events (small ones joined onto the batch before)
//! and rings (one threadsafe-function call) only when no delivery is pending; JavaScript takes
//! the pending batches one by one until none is left, dispatches each, and acknowledges it by
//! taking the next. The acknowledgement returns the credit that
//! bounds how much undelivered data the loop may hold (`maxPendingBytes`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{lock, SlotId};

/// What an event record reports. The numbers are part of the contract with `index.js`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A timer expired. `arg` is [`TIMER_FINAL`] for the last expiry of a one-shot timer.
    Timer = 1,
    /// A poll's fd is ready. `arg` is the ready subset of its mask.
    Poll = 2,
    /// `wakeup()` was called since the previous wakeup event.
    Wakeup = 3,
    /// A socket opened (accepted, or a connect completed). Payload: see [`open_payload`].
    Open = 4,
    /// Bytes arrived; the payload is the bytes.
    Data = 5,
    /// The socket can take more after a partial write, or its send buffer drained.
    Writable = 6,
    /// The peer finished sending (FIN).
    End = 7,
    /// The socket's `timeout` expired; `arg` is the stamp it was armed with.
    Timeout = 8,
    /// The socket's `longTimeout` expired; `arg` is the stamp it was armed with.
    LongTimeout = 9,
    /// The loop closed the socket: `arg` is 0 for an orderly close, else the errno.
    Close = 10,
    /// A connect failed: `arg` is the errno, or a negative libuv code (ENOTFOUND), as an i32.
    ConnectError = 11,
    /// A TLS client asked for a server name that no pattern of its context matches, and the
    /// context has an `onServerName` handler. The socket's handshake waits until JavaScript
    /// answers. Payload: the listener's slot index and generation, then the name as UTF-8.
    ServerName = 12,
    /// A UDP socket received a datagram. Payload: see [`Batch::push_datagram`].
    Datagram = 13,
    /// A UDP socket's receive failed (an ICMP error about its connected peer): `arg` is the
    /// errno. The socket stays open.
    DatagramError = 14,
    /// STARTTLS: the loop made the socket a TLS one (`upgrade`) and reads nothing until
    /// JavaScript hands back the bytes of its `Data` records after the upgrade call that it did
    /// not deliver (they belong to the TLS session).
    Upgraded = 15,
}

/// `arg` of a timer event whose timer does not repeat: it is disarmed once this is delivered.
pub const TIMER_FINAL: u32 = 1;

/// Every record starts `[kind, slot index, stamp, arg]`. The stamp is the one JavaScript gave when
/// it armed or started the handle (for sockets: the slot's generation); JavaScript drops records
/// whose stamp is no longer current, which is how a `stop()`, `close()` or re-`set()` discards
/// events already queued. Records of kind `Open`, `Data` and `ServerName` are followed by `arg`
/// payload bytes, padded to whole words.
pub const WORDS_PER_EVENT: usize = 4;

/// `listener` word of an `Open` payload for a socket that connected rather than was accepted.
pub const OPENED_BY_CONNECT: u32 = u32::MAX;
/// `listener` word of an `Open` payload for a socket JavaScript handed over (`adoptFd`).
pub const OPENED_BY_ADOPTION: u32 = u32::MAX - 1;

/// Where an open socket came from, as its `Open` payload says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opener {
    Listener(SlotId),
    Connect,
    Adoption,
}

/// The payload of an `Open` record: the accepting listener's slot index and generation (or
/// [`OPENED_BY_CONNECT`] / [`OPENED_BY_ADOPTION`] and 0), the remote and local ports (-1 for Unix sockets),
/// the byte length of the remote address, then the remote and the local address as UTF-8.
pub fn open_payload(opener: Opener, remote: &(String, i32), local: &(String, i32)) -> Vec<u8> {
    let (index, generation) = match opener {
        Opener::Listener(id) => (id.index, id.generation),
        Opener::Connect => (OPENED_BY_CONNECT, 0),
        Opener::Adoption => (OPENED_BY_ADOPTION, 0),
    };
    let mut payload = Vec::with_capacity(20 + remote.0.len() + local.0.len());
    payload.extend_from_slice(&index.to_le_bytes());
    payload.extend_from_slice(&generation.to_le_bytes());
    payload.extend_from_slice(&remote.1.to_le_bytes());
    payload.extend_from_slice(&local.1.to_le_bytes());
    payload.extend_from_slice(&(remote.0.len() as u32).to_le_bytes());
    payload.extend_from_slice(remote.0.as_bytes());
    payload.extend_from_slice(local.0.as_bytes());
    payload
}

/// The allocation an emptied batch keeps (1 MiB): room for the largest read (512 KiB, received
/// straight into the batch) with its neighbours, so a loop iteration does not shrink the batch
/// only for the next read to grow it again (each a `mremap`).
const RETAINED_BATCH_WORDS: usize = 256 * 1024;

/// Bytes one record takes, counted against `maxPendingBytes`.
pub const EVENT_BYTES: usize = WORDS_PER_EVENT * 4;

/// A run of event records, and the sequence number of the last loop iteration that added to it.
#[derive(Debug, Default)]
pub struct Batch {
    words: Vec<u32>,
    last_seq: u64,
    /// Where the record pushed last starts (checked before use: other appends move the end).
    last_record: usize,
}

impl Batch {
    pub fn push(&mut self, kind: EventKind, index: u32, stamp: u32, arg: u32) {
        self.last_record = self.words.len();
        self.words.extend_from_slice(&[kind as u32, index, stamp, arg]);
    }

    /// A record followed by `payload` (its length is the record's `arg`).
    pub fn push_with_payload(&mut self, kind: EventKind, index: u32, stamp: u32, payload: &[u8]) {
        self.push(kind, index, stamp, payload.len() as u32);
        self.extend_padded(payload);
    }

    /// A `Datagram` record: the sender's port and address (as text) before the datagram's bytes.
    /// The payload is `[port, address length]` as words, then the address and the data
    /// back to back, zero-padded to a word.
    pub fn push_datagram(&mut self, index: u32, stamp: u32, port: u16, address: &str, data: &[u8]) {
        let length = 8 + address.len() + data.len();
        self.push(EventKind::Datagram, index, stamp, length as u32);
        self.words.extend_from_slice(&[u32::from(port), address.len() as u32]);
        let start = self.words.len();
        self.words.resize(start + (address.len() + data.len()).div_ceil(4), 0);
        let bytes = bytemuck::cast_slice_mut::<u32, u8>(&mut self.words[start..]);
        bytes[..address.len()].copy_from_slice(address.as_bytes());
        bytes[address.len()..address.len() + data.len()].copy_from_slice(data);
    }

    /// Appends `bytes` as whole words straight from the bytes (no zero-filling first), then the
    /// zero-padded tail.
    fn extend_padded(&mut self, bytes: &[u8]) {
        let (words, tail) = bytes.as_chunks::<4>();
        self.words.extend(words.iter().map(|word| u32::from_le_bytes(*word)));
        if !tail.is_empty() {
            let mut last = [0; 4];
            last[..tail.len()].copy_from_slice(tail);
            self.words.push(u32::from_le_bytes(last));
        }
    }

    /// Where the batch's last record starts, if it is a `Data` record of this socket that can
    /// take `more` bytes: a socket's consecutive chunks then reach JavaScript as one `onData`.
    fn open_data(&self, index: u32, stamp: u32, more: usize) -> Option<usize> {
        let start = self.last_record;
        let record = self.words.get(start..start + WORDS_PER_EVENT)?;
        let length = record[3] as usize;
        let is_last = start + WORDS_PER_EVENT + length.div_ceil(4) == self.words.len();
        // index.js pads a length to words as `(length + 3) >>> 2`, in 32 bits.
        let fits = length + more <= u32::MAX as usize - 3;
        (record[..3] == [EventKind::Data as u32, index, stamp] && is_last && fits).then_some(start)
    }

    /// Appends `payload` to the socket's `Data` record if the batch ends with one, else as a
    /// new `Data` record.
    pub fn push_data(&mut self, index: u32, stamp: u32, mut payload: &[u8]) {
        let Some(start) = self.open_data(index, stamp, payload.len()) else {
            return self.push_with_payload(EventKind::Data, index, stamp, payload);
        };
        let length = self.words[start + 3] as usize;
        self.words[start + 3] = (length + payload.len()) as u32;
        let used = length % 4;
        if used != 0 {
            // The record's last word is padded: its free bytes come first.
            let last = self.words.last_mut().expect("a record with a payload has a last word");
            let mut bytes = last.to_le_bytes();
            let taken = payload.len().min(4 - used);
            bytes[used..used + taken].copy_from_slice(&payload[..taken]);
            *last = u32::from_le_bytes(bytes);
            payload = &payload[taken..];
        }
        self.extend_padded(payload);
    }

    /// Appends the bytes `receive` appends to the words itself (returning their count, at most
    /// `max_bytes`) as the socket's data, so received bytes land here without a copy: onto the
    /// socket's `Data` record if the batch ends with one whose length is whole words, else as a
    /// new record. Nothing is appended when it fails or receives nothing.
    pub fn push_received(
        &mut self,
        index: u32,
        stamp: u32,
        max_bytes: usize,
        receive: impl FnOnce(&mut Vec<u32>) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        // Room for the record and the largest payload at once: a read that filled its room
        // exactly would otherwise make the next record's header grow the batch, copying it all.
        self.reserve_payload(max_bytes);
        let end = self.words.len();
        let record = match self.open_data(index, stamp, max_bytes) {
            Some(start) if self.words[start + 3].is_multiple_of(4) => start,
            _ => {
                self.push(EventKind::Data, index, stamp, 0);
                end
            }
        };
        let result = receive(&mut self.words);
        match result {
            Ok(received) if received > 0 => self.words[record + 3] += received as u32,
            _ => self.words.truncate(end),
        }
        result
    }

    /// The records, as `index.js` reads them.
    pub fn words(&self) -> &[u32] {
        &self.words
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether the batch is large enough to be queued for JavaScript on its own (and so costly
    /// to grow: a grow copies it all).
    pub fn is_bulk(&self) -> bool {
        self.bytes() >= SEPARATE_BATCH_BYTES
    }

    /// Payload bytes a `push_received` can take without growing the batch (a grow copies it).
    pub fn spare_payload_bytes(&self) -> usize {
        (self.words.capacity() - self.words.len()).saturating_sub(WORDS_PER_EVENT) * 4
    }

    /// Makes room for a record with up to `max_bytes` of payload. An empty batch too small for
    /// it gets a new allocation: growing it would copy its whole old allocation for nothing.
    pub fn reserve_payload(&mut self, max_bytes: usize) {
        let words = WORDS_PER_EVENT + max_bytes.div_ceil(4);
        if self.words.is_empty() && self.words.capacity() < words {
            self.words = Vec::with_capacity(words.max(RETAINED_BATCH_WORDS));
        } else {
            self.words.reserve(words);
        }
    }

    /// What the batch counts against the loop's undelivered-bytes budget.
    pub fn bytes(&self) -> usize {
        self.words.len() * 4
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Empties the batch. It keeps an allocation of up to [`RETAINED_BATCH_WORDS`] for the next
    /// one: enough for small batches to never allocate, while the few-megabyte batches of a bulk
    /// transfer give their memory back instead of being held three times over (the loop's
    /// current batch, the pending one and JavaScript's).
    pub fn clear(&mut self) {
        self.words.clear();
        self.words.shrink_to(RETAINED_BATCH_WORDS);
        self.last_seq = 0;
        self.last_record = 0;
    }

    /// Empties the batch, returning its records with the room it kept for more: they may live
    /// as long as JavaScript keeps a view of them, and then go back to the [`BatchPool`] whole.
    pub fn take_words(&mut self) -> Vec<u32> {
        self.last_seq = 0;
        self.last_record = 0;
        std::mem::take(&mut self.words)
    }

    /// Copies the records of `other` to the end of this batch.
    fn extend_from(&mut self, other: &Batch) {
        self.words.extend_from_slice(&other.words);
        self.last_seq = self.last_seq.max(other.last_seq);
    }

    /// Moves the records out into a batch of their own, leaving room for the largest read and
    /// more: a recycled allocation from `pool` if it has one, else room for as many records
    /// and the largest read besides (bulk data comes in batches of similar size, which then
    /// fill without growing: a grow copies the whole batch; a full bulk batch is published
    /// rather than grown).
    fn split_off(&mut self, pool: &BatchPool) -> Batch {
        let room = pool.take().unwrap_or_else(|| Vec::with_capacity(self.words.len() + RETAINED_BATCH_WORDS));
        let words = std::mem::replace(&mut self.words, room);
        let last_record = std::mem::take(&mut self.last_record);
        Batch { words, last_seq: std::mem::take(&mut self.last_seq), last_record }
    }
}

/// The allocations of bulk batches JavaScript is done with, for the loop to fill again. A fresh
/// allocation of a few megabytes is fresh pages: the kernel faults in and zeroes each one as
/// the loop receives into it, and unmaps it when it is freed. For a bulk stream that measured
/// as much CPU as the copies of the bytes themselves, so batches are recycled instead.
#[derive(Debug, Default)]
pub struct BatchPool {
    /// Each empty, with its capacity; their capacities sum to at most `RECYCLED_BATCH_BYTES`.
    allocations: Mutex<Vec<Vec<u32>>>,
    /// The loop stopped: nothing will be filled again, so what comes back is freed.
    closed: AtomicBool,
}

/// What the pool keeps at most: about what the loop fills between two of V8's collections of
/// dead batches (V8 collects once 64 MiB of external memory accumulated, 32 MiB of batches
/// while JavaScript is behind, when the binding counts each twice), so that a steady bulk
/// stream allocates nothing; beyond it, batches are freed. This memory was
/// resident before it came back (dead batches wait for the collector), so recycling it does
/// not raise the peak; a loop that has gone quiet keeps up to this much for its next burst.
const RECYCLED_BATCH_BYTES: usize = 32 << 20;

impl BatchPool {
    /// The loop stopped: frees what the pool holds and whatever comes back later.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        lock(&self.allocations).clear();
    }

    /// The allocation recycled last (its pages are the likeliest to be cached), if any.
    fn take(&self) -> Option<Vec<u32>> {
        lock(&self.allocations).pop()
    }

    /// Takes back the records of a batch JavaScript no longer references. Only allocations
    /// with room for the largest read are kept, so that every one kept is used again (one that
    /// waited for a batch small enough for it would be memory nobody counts).
    pub fn recycle(&self, mut words: Vec<u32>) {
        if words.capacity() < RETAINED_BATCH_WORDS || self.closed.load(Ordering::Relaxed) {
            return;
        }
        words.clear();
        let mut allocations = lock(&self.allocations);
        let held: usize = allocations.iter().map(Vec::capacity).sum();
        if (held + words.capacity()) * 4 <= RECYCLED_BATCH_BYTES {
            allocations.push(words);
        }
    }
}

/// Batches at least this large are queued for JavaScript as they are; smaller ones are copied
/// onto the batch before them, so many small iterations still reach JavaScript in one take.
const SEPARATE_BATCH_BYTES: usize = 64 * 1024;

/// A batch JavaScript has taken and not yet acknowledged: what its acknowledgement returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    seq: u64,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Pending {
    /// Published and not yet taken, oldest first; their sum is bounded by the loop's credit.
    batches: std::collections::VecDeque<Batch>,
    /// A delivery was requested and JavaScript has not yet found the batch empty.
    doorbell_rung: bool,
}

/// The channel between one loop thread and its JavaScript thread.
#[derive(Debug, Default)]
pub struct Delivery {
    pending: Mutex<Pending>,
    /// Bytes published by the loop and not yet acknowledged by JavaScript.
    undelivered_bytes: AtomicUsize,
    /// The sequence number of the newest iteration whose events JavaScript has dispatched.
    delivered_seq: AtomicU64,
    /// The loop sleeps until a delivery is acknowledged (it has polls to re-check, or no credit).
    loop_awaits_delivery: AtomicBool,
    /// Shared with the binding, which recycles bulk batches when V8 collects them (possibly
    /// after the loop is gone).
    pool: Arc<BatchPool>,
}

impl Delivery {
    /// Loop thread: appends the iteration's events, stamped with `seq`. Returns true when the
    /// caller must ring the doorbell (no delivery was pending).
    pub fn publish(&self, events: &mut Batch, seq: u64) -> bool {
        events.last_seq = seq;
        self.undelivered_bytes.fetch_add(events.bytes(), Ordering::SeqCst);
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if events.is_bulk() {
            let batch = events.split_off(&self.pool);
            pending.batches.push_back(batch);
        } else {
            match pending.batches.back_mut() {
                // Not onto a large batch, which may be full: growing it would copy it all.
                Some(last) if !last.is_bulk() => last.extend_from(events),
                _ => {
                    let mut batch = Batch::default();
                    batch.extend_from(events);
                    pending.batches.push_back(batch);
                }
            }
            events.clear();
        }
        !std::mem::replace(&mut pending.doorbell_rung, true)
    }

    /// JavaScript thread: acknowledges `batch` (its events have all been dispatched), then
    /// replaces it with the oldest pending batch. Returns false, and clears the doorbell, when
    /// nothing is pending. Returns true when the loop asked to hear about the acknowledgement, so the
    /// caller must wake it.
    ///
    /// `taken` records what the acknowledgement of the new batch will return, so the caller may
    /// empty `batch` as soon as it has copied the records out.
    pub fn take(&self, batch: &mut Batch, taken: &mut Taken) -> (bool, bool) {
        let wake_loop = self.acknowledge(std::mem::take(taken));
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(next) = pending.batches.pop_front() else {
            pending.doorbell_rung = false;
            batch.clear();
            return (false, wake_loop);
        };
        *batch = next;
        *taken = Taken { seq: batch.last_seq, bytes: batch.bytes() };
        (true, wake_loop)
    }

    fn acknowledge(&self, taken: Taken) -> bool {
        if taken.seq == 0 {
            return false;
        }
        self.delivered_seq.store(taken.seq, Ordering::SeqCst);
        self.undelivered_bytes.fetch_sub(taken.bytes, Ordering::SeqCst);
        self.loop_awaits_delivery.swap(false, Ordering::SeqCst)
    }

    /// Where batches handed to JavaScript as they are (`JsSide::take_records`) go back.
    pub fn pool(&self) -> &Arc<BatchPool> {
        &self.pool
    }

    pub fn delivered_seq(&self) -> u64 {
        self.delivered_seq.load(Ordering::SeqCst)
    }

    pub fn undelivered_bytes(&self) -> usize {
        self.undelivered_bytes.load(Ordering::SeqCst)
    }

    /// Loop thread, before it sleeps: asks to be woken by the next acknowledgement. The caller
    /// re-reads `delivered_seq` / `undelivered_bytes` afterwards, so an acknowledgement that
    /// raced with this call is never missed (both sides use sequentially consistent atomics).
    pub fn await_delivery(&self) {
        self.loop_awaits_delivery.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_follow_their_record_padded_to_words() {
        let mut batch = Batch::default();
        batch.push_with_payload(EventKind::Data, 3, 9, b"hello");
        batch.push(EventKind::End, 3, 9, 0);
        let words = batch.words();
        assert_eq!(words[..4], [EventKind::Data as u32, 3, 9, 5]);
        assert_eq!(&bytemuck::cast_slice::<u32, u8>(&words[4..6])[..5], b"hello");
        assert_eq!(words[6..], [EventKind::End as u32, 3, 9, 0]);
        assert_eq!(batch.bytes(), 10 * 4);
    }

    #[test]
    fn a_sockets_consecutive_chunks_join_into_one_data_record() {
        let mut batch = Batch::default();
        batch.push_data(3, 9, b"hello");
        batch.push_data(3, 9, b", ");
        batch.push_data(3, 9, b"world!");
        // Another socket's chunk, then the first socket's again: no joining across records.
        batch.push_data(4, 1, b"abc");
        batch.push_data(3, 9, b"xy");
        let words = batch.words();
        assert_eq!(words[..4], [EventKind::Data as u32, 3, 9, 13]);
        assert_eq!(&bytemuck::cast_slice::<u32, u8>(&words[4..8])[..13], b"hello, world!");
        assert_eq!(bytemuck::cast_slice::<u32, u8>(&words[4..8])[13..], [0, 0, 0], "padding stays zero");
        assert_eq!(words[8..12], [EventKind::Data as u32, 4, 1, 3]);
        assert_eq!(words[13..17], [EventKind::Data as u32, 3, 9, 2]);
        assert_eq!(words.len(), 18);
        // A stale stamp (the slot was reused) starts a record of its own.
        batch.push_data(3, 10, b"z");
        assert_eq!(batch.words()[18..22], [EventKind::Data as u32, 3, 10, 1]);
        // Records appended from another batch end it now: nothing joins across them.
        let mut other = Batch::default();
        other.push(EventKind::End, 4, 1, 0);
        batch.extend_from(&other);
        batch.push_data(3, 10, b"w");
        assert_eq!(batch.words()[23..27], [EventKind::End as u32, 4, 1, 0]);
        assert_eq!(batch.words()[27..31], [EventKind::Data as u32, 3, 10, 1]);
    }

    #[test]
    fn a_read_of_the_spare_room_does_not_grow_the_batch() {
        let mut batch = Batch::default();
        batch.reserve_payload(10);
        assert!(batch.words.capacity() >= RETAINED_BATCH_WORDS, "an empty batch gets a full allocation");
        batch.push(EventKind::Writable, 1, 1, 0);
        let (capacity, spare) = (batch.words.capacity(), batch.spare_payload_bytes());
        let received = batch
            .push_received(2, 1, spare, |words| {
                words.resize(words.len() + spare / 4, 7);
                Ok(spare)
            })
            .unwrap();
        assert_eq!(received, spare);
        assert_eq!(batch.words.capacity(), capacity, "the batch grew");
        assert_eq!(batch.spare_payload_bytes(), 0);
    }

    #[test]
    fn received_bytes_join_a_data_record_of_whole_words() {
        let receive = |bytes: &'static [u8]| {
            move |words: &mut Vec<u32>| {
                words.extend(bytes.chunks(4).map(|chunk| {
                    let mut word = [0; 4];
                    word[..chunk.len()].copy_from_slice(chunk);
                    u32::from_le_bytes(word)
                }));
                Ok(bytes.len())
            }
        };
        let mut batch = Batch::default();
        batch.push_received(5, 2, 64, receive(b"abcd")).unwrap();
        // A failed read that would have joined leaves the record as it was.
        let before = batch.words().to_vec();
        batch.push_received(5, 2, 64, |_| Err(std::io::ErrorKind::ConnectionReset.into())).unwrap_err();
        assert_eq!(batch.words(), before);
        batch.push_received(5, 2, 64, receive(b"efg")).unwrap();
        // Not whole words any more: the next read gets a record of its own.
        batch.push_received(5, 2, 64, receive(b"hi")).unwrap();
        // Nothing received (or an error) leaves the batch as it was.
        batch.push_received(5, 2, 64, |_| Ok(0)).unwrap();
        batch.push_received(5, 2, 64, |_| Err(std::io::ErrorKind::WouldBlock.into())).unwrap_err();
        let words = batch.words();
        assert_eq!(words[..4], [EventKind::Data as u32, 5, 2, 7]);
        assert_eq!(&bytemuck::cast_slice::<u32, u8>(&words[4..6])[..7], b"abcdefg");
        assert_eq!(words[6..10], [EventKind::Data as u32, 5, 2, 2]);
        assert_eq!(words.len(), 11);
    }

    #[test]
    fn the_doorbell_rings_once_until_javascript_finds_the_batch_empty() {
        let delivery = Delivery::default();
        let mut events = Batch::default();
        events.push(EventKind::Timer, 1, 10, 0);
        assert!(delivery.publish(&mut events, 1), "the first batch rings");
        events.push(EventKind::Timer, 2, 11, 0);
        assert!(!delivery.publish(&mut events, 2), "a delivery is already pending");
        assert!(events.is_empty());

        let mut taken = Batch::default();
        let mut held = Taken::default();
        assert_eq!(delivery.take(&mut taken, &mut held), (true, false));
        assert_eq!(taken.words().len(), 2 * WORDS_PER_EVENT, "one take gets everything pending");
        assert_eq!(taken.words()[..4], [EventKind::Timer as u32, 1, 10, 0]);
        assert_eq!(delivery.undelivered_bytes(), 2 * EVENT_BYTES);

        events.push(EventKind::Wakeup, 0, 0, 0);
        assert!(!delivery.publish(&mut events, 3), "still ringing: JavaScript has not found it empty");
        assert_eq!(delivery.take(&mut taken, &mut held), (true, false));
        assert_eq!(delivery.delivered_seq(), 2, "taking again acknowledges the previous batch");
        assert_eq!(delivery.take(&mut taken, &mut held), (false, false));
        assert_eq!(delivery.delivered_seq(), 3);
        assert_eq!(delivery.undelivered_bytes(), 0, "all credit is back");

        events.push(EventKind::Wakeup, 0, 0, 0);
        assert!(delivery.publish(&mut events, 4), "an empty take re-arms the doorbell");
    }

    /// Publishes a bulk batch of `bytes` payload bytes, takes it as JavaScript does and returns
    /// its records moved out (as the binding hands them to V8).
    fn publish_and_take_bulk(delivery: &Delivery, events: &mut Batch, bytes: usize) -> Vec<u32> {
        events.reserve_payload(bytes); // as every read does
        events.push_data(1, 1, &vec![7; bytes]);
        delivery.publish(events, 1);
        let mut taken = Batch::default();
        assert!(delivery.take(&mut taken, &mut Taken::default()).0);
        taken.take_words()
    }

    #[test]
    fn bulk_batches_javascript_is_done_with_are_filled_again() {
        let delivery = Delivery::default();
        let mut events = Batch::default();
        let first = publish_and_take_bulk(&delivery, &mut events, SEPARATE_BATCH_BYTES);
        let (address, capacity) = (first.as_ptr(), first.capacity());
        assert!(capacity >= RETAINED_BATCH_WORDS, "handed out whole, with its room");
        delivery.pool().recycle(first);

        // The batch after the next bulk one is published fills the recycled allocation.
        let _second = publish_and_take_bulk(&delivery, &mut events, SEPARATE_BATCH_BYTES);
        let third = publish_and_take_bulk(&delivery, &mut events, SEPARATE_BATCH_BYTES);
        assert_eq!((third.as_ptr(), third.capacity()), (address, capacity), "the allocation was reused");
        assert_eq!(third.len(), WORDS_PER_EVENT + SEPARATE_BATCH_BYTES / 4, "with only the new records");
    }

    #[test]
    fn the_pool_keeps_a_bounded_amount_of_allocations_large_enough_to_use() {
        let pool = BatchPool::default();
        pool.recycle(Vec::with_capacity(RETAINED_BATCH_WORDS - 1));
        assert!(pool.take().is_none(), "too small for the largest read: freed");
        let kept = RECYCLED_BATCH_BYTES / 4 / RETAINED_BATCH_WORDS;
        for _ in 0..kept + 3 {
            pool.recycle(Vec::with_capacity(RETAINED_BATCH_WORDS));
        }
        let held: usize = lock(&pool.allocations).iter().map(Vec::capacity).sum();
        assert!(held * 4 <= RECYCLED_BATCH_BYTES, "{held} words held");
        assert_eq!(std::iter::from_fn(|| pool.take()).count(), kept);

        pool.recycle(Vec::with_capacity(RETAINED_BATCH_WORDS));
        pool.close();
        assert!(pool.take().is_none(), "a stopped loop's pool is emptied");
        pool.recycle(Vec::with_capacity(RETAINED_BATCH_WORDS));
        assert!(pool.take().is_none(), "and frees what comes back after");
    }

    #[test]
    fn an_acknowledgement_wakes_a_loop_that_awaits_it_once() {
        let delivery = Delivery::default();
        let mut events = Batch::default();
        events.push(EventKind::Poll, 5, 1, 1);
        delivery.publish(&mut events, 1);
        let mut taken = Batch::default();
        let mut held = Taken::default();
        delivery.take(&mut taken, &mut held);
        taken.clear(); // the records may be dropped before the acknowledgement
        delivery.await_delivery();
        assert_eq!(delivery.take(&mut taken, &mut held), (false, true));
        assert_eq!(delivery.undelivered_bytes(), 0, "the credit comes back all the same");
        assert_eq!(delivery.take(&mut taken, &mut held), (false, false));
    }

    #[test]
    fn small_iterations_join_into_one_batch_and_bulk_ones_stay_alone() {
        let delivery = Delivery::default();
        let mut events = Batch::default();
        events.push(EventKind::Timer, 1, 1, 0);
        delivery.publish(&mut events, 1);
        events.push(EventKind::Timer, 2, 1, 0);
        delivery.publish(&mut events, 2);
        let bulk = vec![9u8; SEPARATE_BATCH_BYTES];
        events.push_with_payload(EventKind::Data, 3, 1, &bulk);
        delivery.publish(&mut events, 3);
        assert!(events.words.capacity() * 4 >= SEPARATE_BATCH_BYTES, "room kept for the next bulk batch");
        events.push(EventKind::End, 3, 1, 0);
        delivery.publish(&mut events, 4);

        let (mut taken, mut held) = (Batch::default(), Taken::default());
        assert_eq!(delivery.take(&mut taken, &mut held), (true, false));
        assert_eq!(taken.words().len(), 2 * WORDS_PER_EVENT, "the two small iterations, joined");
        assert_eq!(held.seq, 2);
        assert_eq!(delivery.take(&mut taken, &mut held), (true, false));
        assert_eq!(taken.words()[..4], [EventKind::Data as u32, 3, 1, SEPARATE_BATCH_BYTES as u32]);
        assert_eq!(taken.words().len(), WORDS_PER_EVENT + SEPARATE_BATCH_BYTES / 4, "the bulk batch alone");
        assert_eq!(held.seq, 3);
        assert_eq!(delivery.take(&mut taken, &mut held), (true, false));
        assert_eq!(taken.words(), [EventKind::End as u32, 3, 1, 0], "not copied onto the bulk batch");
        assert_eq!(held.seq, 4);
        assert_eq!(delivery.take(&mut taken, &mut held), (false, false));
        assert_eq!(delivery.undelivered_bytes(), 0);
    }
}
