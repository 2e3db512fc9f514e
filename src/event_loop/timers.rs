//! The loop's timer queue: deadlines in a sorted set, so the next wait timeout is the first
//! entry and re-arming or disarming removes the old deadline at once (the queue never holds
//! more entries than there are armed timers).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

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
pub fn next_expiry(deadline: Instant, period: Duration, now: Instant) -> Instant {
    let late = now.saturating_duration_since(deadline).as_nanos();
    let periods = late / period.as_nanos().max(1) + 1;
    let offset = period.as_nanos().saturating_mul(periods);
    deadline + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
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
