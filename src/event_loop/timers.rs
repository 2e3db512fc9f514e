//! Timers: the loop's deadline queue ([`TimerQueue`], also under the coarse socket timeouts) and
//! the timer driver ([`Timers`]), which fires `us_timer`s into the batch.
//!
//! Deadlines live in a sorted set, so the next wait timeout is the first entry and re-arming or
//! disarming removes the old deadline at once (the queue never holds more entries than there are
//! armed timers).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::batch::{EventKind, TIMER_FINAL};
use super::services::Services;
use super::slots::{Slab, SlotId};

/// Armed deadlines keyed by `(deadline, slot index)`; a slot has at most one entry.
#[derive(Debug, Default)]
pub struct TimerQueue {
    deadlines: BTreeSet<(Instant, u32)>,
}

impl TimerQueue {
    pub fn insert(&mut self, deadline: Instant, index: u32) {
        self.deadlines.insert((deadline, index));
    }

    pub fn remove(&mut self, deadline: Instant, index: u32) {
        self.deadlines.remove(&(deadline, index));
    }

    /// The earliest deadline, which bounds how long the loop may sleep.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|&(deadline, _)| deadline)
    }

    /// Removes and returns the earliest entry if it is due at `now` (a deadline equal to `now`
    /// is due: timers never fire early, and never later than needed).
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, u32)> {
        let &(deadline, index) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        self.deadlines.pop_first();
        Some((deadline, index))
    }
}

/// The next expiry of a repeating timer that was due at `deadline` and is handled at `now`:
/// the first point of its schedule (`deadline + k * period`) after `now`. Expirations missed
/// while the loop was busy collapse into the one being handled, as with timerfd.
fn next_expiry(deadline: Instant, period: Duration, now: Instant) -> Instant {
    let late = now.saturating_duration_since(deadline).as_nanos();
    let periods = late / period.as_nanos().max(1) + 1;
    let offset = period.as_nanos().saturating_mul(periods);
    deadline + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[derive(Debug)]
struct TimerState {
    stamp: u32,
    deadline: Option<Instant>,
    period: Option<Duration>,
    /// The sequence number of the iteration that last reported it (0: none since armed).
    reported_in: u64,
}

/// The loop's timers (`us_timer`): armed, disarmed and fired on the loop thread.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    timers: Slab<TimerState>,
    queue: TimerQueue,
}

impl Timers {
    /// Arms the timer `id` (replacing its previous schedule): first at `deadline`, then every
    /// `period` if given. Its events carry `stamp`.
    pub fn arm(&mut self, id: SlotId, stamp: u32, deadline: Instant, period: Option<Duration>) {
        self.disarm(id);
        self.queue.insert(deadline, id.index);
        self.timers.insert(id, TimerState { stamp, deadline: Some(deadline), period, reported_in: 0 });
    }

    pub fn disarm(&mut self, id: SlotId) {
        if let Some(timer) = self.timers.get_mut(id) {
            if let Some(deadline) = timer.deadline.take() {
                self.queue.remove(deadline, id.index);
            }
        }
    }

    /// Forgets the timer (its slot is being freed).
    pub fn release(&mut self, id: SlotId) {
        self.disarm(id);
        self.timers.remove(id);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.next_deadline()
    }

    /// Reports the timers due at `now`, while there is credit.
    pub fn fire(&mut self, services: &mut Services, now: Instant) {
        let delivered = services.delivered_seq();
        let seq = services.current_seq();
        while services.has_credit() {
            let Some((deadline, index)) = self.queue.pop_due(now) else {
                break;
            };
            let Some((_, timer)) = self.timers.get_by_index_mut(index as usize) else {
                continue;
            };
            // A repeating timer whose previous expiry JavaScript has not dispatched yet skips
            // this one: expirations collapse instead of queueing up behind a busy thread.
            if timer.reported_in <= delivered {
                let arg = if timer.period.is_some() { 0 } else { TIMER_FINAL };
                services.events.push(EventKind::Timer, index, timer.stamp, arg);
                timer.reported_in = seq;
            }
            timer.deadline = timer.period.map(|period| next_expiry(deadline, period, now));
            if let Some(next) = timer.deadline {
                self.queue.insert(next, index);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let start = Instant::now();
        let mut queue = TimerQueue::default();
        queue.insert(start + Duration::from_millis(30), 3);
        queue.insert(start + Duration::from_millis(10), 1);
        queue.insert(start + Duration::from_millis(20), 2);
        assert_eq!(queue.next_deadline(), Some(start + Duration::from_millis(10)));
        assert_eq!(queue.pop_due(start), None, "nothing is due before its deadline");
        let later = start + Duration::from_millis(25);
        assert_eq!(queue.pop_due(later).map(|(_, i)| i), Some(1));
        assert_eq!(queue.pop_due(later).map(|(_, i)| i), Some(2));
        assert_eq!(queue.pop_due(later), None);
        assert_eq!(queue.next_deadline(), Some(start + Duration::from_millis(30)));
    }

    #[test]
    fn equal_deadlines_are_kept_apart_and_removal_is_exact() {
        let at = Instant::now();
        let mut queue = TimerQueue::default();
        queue.insert(at, 7);
        queue.insert(at, 8);
        queue.remove(at, 7);
        assert_eq!(queue.pop_due(at), Some((at, 8)));
        assert_eq!(queue.next_deadline(), None);
    }

    #[test]
    fn a_late_repeating_timer_skips_to_the_next_point_of_its_schedule() {
        let start = Instant::now();
        let period = Duration::from_millis(10);
        assert_eq!(next_expiry(start, period, start), start + period);
        assert_eq!(
            next_expiry(start, period, start + Duration::from_millis(35)),
            start + Duration::from_millis(40)
        );
        assert_eq!(
            next_expiry(start, period, start + Duration::from_millis(40)),
            start + Duration::from_millis(50)
        );
    }
}
