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

pub(crate) struct Services {
    pub shared: Arc<Shared>,
    /// This iteration's events, published at its end.
    pub events: Batch,
    pub timeouts: Timeouts,
    /// Handles that stopped watching their input because the loop ran out of credit; the loop
    /// hands them back to their driver once there is credit again.
    pub throttled: Vec<SlotId>,
    /// The sequence number of the last published iteration.
    seq: u64,
}

impl Services {
    pub fn new(shared: Arc<Shared>) -> Services {
        let timeouts = Timeouts::new(shared.started);
        Services { shared, events: Batch::default(), timeouts, throttled: Vec::new(), seq: 0 }
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
