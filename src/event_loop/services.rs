//! What the loop thread lends its drivers (timers, polls, `net`) on every call: the batch of
//! events being filled, the poller, the slot allocator, the credit that bounds undelivered bytes,
//! the coarse timeout queue and the handles waiting for credit. Drivers use these and never the
//! loop thread itself, so a driver's own state and the loop's services borrow apart.

use std::sync::{Arc, MutexGuard};

use super::batch::Batch;
use super::poller::Poller;
use super::slots::{SlotAllocator, SlotId};
use super::timeouts::Timeouts;
use super::{lock, Shared};

/// An iteration in which one socket read this many bytes moved bulk data (a stream, an
/// upload), which makes it heavy: the loop thread's work (`handover.rs`). Request-sized
/// messages stay below it.
pub const BULK_READ_BYTES: usize = 32 * 1024;

pub(crate) struct Services {
    pub shared: Arc<Shared>,
    /// This iteration's events, published at its end.
    pub events: Batch,
    pub timeouts: Timeouts,
    /// Handles that stopped watching their input because the loop ran out of credit; the loop
    /// hands them back to their driver once there is credit again.
    pub throttled: Vec<SlotId>,
    /// A handle read [`BULK_READ_BYTES`] or more in this iteration.
    read_bulk: bool,
    /// The sequence number of the last published iteration.
    seq: u64,
}

impl Services {
    pub fn new(shared: Arc<Shared>) -> Services {
        let timeouts = Timeouts::new(shared.started);
        Services {
            shared,
            events: Batch::default(),
            timeouts,
            throttled: Vec::new(),
            read_bulk: false,
            seq: 0,
        }
    }

    pub fn poller(&self) -> &Poller {
        &self.shared.poller
    }

    pub fn slots(&self) -> MutexGuard<'_, SlotAllocator> {
        lock(&self.shared.slots)
    }

    /// How many times the loop has woken up (counted before each iteration's work).
    pub fn iteration(&self) -> u64 {
        self.shared.iteration.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The iteration events are stamped with when published.
    pub fn current_seq(&self) -> u64 {
        self.seq + 1
    }

    /// The last iteration whose events JavaScript has dispatched.
    pub fn delivered_seq(&self) -> u64 {
        self.shared.delivery.delivered_seq()
    }

    /// Bytes of events the loop may still produce before JavaScript acknowledges some.
    pub fn credit(&self) -> usize {
        let held = self.shared.delivery.undelivered_bytes() + self.events.bytes();
        self.shared.config.max_pending_bytes.saturating_sub(held)
    }

    /// A driver has read `total` bytes from one handle in this iteration so far (the running
    /// total of that handle's reads, not one read's).
    pub fn note_read(&mut self, total: usize) {
        self.read_bulk |= total >= BULK_READ_BYTES;
    }

    /// Whether a handle read bulk data since the last call (the loop asks once per iteration).
    pub fn take_read_bulk(&mut self) -> bool {
        std::mem::take(&mut self.read_bulk)
    }

    pub fn has_credit(&self) -> bool {
        self.credit() > 0
    }

    /// Hands the iteration's events over, ringing `doorbell` if no delivery was pending;
    /// returns whether there were any.
    pub fn publish(&mut self, doorbell: &mut dyn FnMut()) -> bool {
        if self.events.is_empty() {
            return false;
        }
        self.seq += 1;
        if self.shared.delivery.publish(&mut self.events, self.seq) {
            doorbell();
        }
        true
    }
}
