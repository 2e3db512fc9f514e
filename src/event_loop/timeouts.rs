//! Coarse per-handle timeouts: a socket's `timeout` and `longTimeout`, and the bound on a TLS
//! handshake. Both kinds share one queue, and every deadline is rounded up to a tick of
//! [`TIMEOUT_GRANULARITY`] counted from the loop's start, so that thousands of sockets share a
//! few wake-ups (as uSockets' sweep does) and a timeout never fires early.

use std::time::{Duration, Instant};

use super::timers::TimerQueue;

/// Socket timeouts fire on ticks of this period, never early.
pub const TIMEOUT_GRANULARITY: Duration = Duration::from_secs(4);

/// Which of a handle's two timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutKind {
    /// Seconds: `socket.timeout(s)`, a connect's timeout, a handshake's bound.
    Short = 0,
    /// Minutes: `socket.longTimeout(m)`.
    Long = 1,
}

/// A handle's armed timeouts: the deadline and the stamp its expiry carries, per kind.
#[derive(Debug, Default)]
pub struct ArmedTimeouts([Option<(Instant, u32)>; 2]);

impl ArmedTimeouts {
    pub fn is_armed(&self, kind: TimeoutKind) -> bool {
        self.0[kind as usize].is_some()
    }

    /// Marks the timeout of `kind` as fired; returns its stamp.
    pub fn fired(&mut self, kind: TimeoutKind) -> u32 {
        self.0[kind as usize].take().map_or(0, |(_, stamp)| stamp)
    }
}

/// The queue of every handle's timeouts.
#[derive(Debug)]
pub struct Timeouts {
    /// Keyed by the slot index and the kind (see [`queue_key`]).
    queue: TimerQueue,
    started: Instant,
}

/// Slot indices stay below 2^26, so the kind fits in the key's lowest bit.
fn queue_key(index: u32, kind: TimeoutKind) -> u32 {
    index << 1 | kind as u32
}

impl Timeouts {
    pub fn new(started: Instant) -> Timeouts {
        Timeouts { queue: TimerQueue::default(), started }
    }

    /// Arms (`after: Some`) or disarms the handle's timeout of `kind`; arming replaces the
    /// previous deadline. The expiry carries `stamp`.
    pub fn set(
        &mut self,
        armed: &mut ArmedTimeouts,
        index: u32,
        kind: TimeoutKind,
        after: Option<Duration>,
        stamp: u32,
    ) {
        let deadline = after.map(|after| self.next_tick(Instant::now() + after));
        let slot = &mut armed.0[kind as usize];
        if let Some((old, _)) = slot.take() {
            self.queue.remove(old, queue_key(index, kind));
        }
        if let Some(deadline) = deadline {
            *slot = Some((deadline, stamp));
            self.queue.insert(deadline, queue_key(index, kind));
        }
    }

    /// Disarms both of the handle's timeouts.
    pub fn clear(&mut self, armed: &mut ArmedTimeouts, index: u32) {
        for kind in [TimeoutKind::Short, TimeoutKind::Long] {
            self.set(armed, index, kind, None, 0);
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.next_deadline()
    }

    /// The slot index and kind of a timeout due at `now`, removed from the queue; the handle
    /// takes its stamp with [`ArmedTimeouts::fired`].
    pub fn pop_due(&mut self, now: Instant) -> Option<(u32, TimeoutKind)> {
        let (_, key) = self.queue.pop_due(now)?;
        let kind = if key & 1 == 0 { TimeoutKind::Short } else { TimeoutKind::Long };
        Some((key >> 1, kind))
    }

    /// The first tick at or after `at`.
    fn next_tick(&self, at: Instant) -> Instant {
        let since_start = at.saturating_duration_since(self.started).as_nanos();
        let granularity = TIMEOUT_GRANULARITY.as_nanos();
        let ticks = since_start.div_ceil(granularity);
        self.started + Duration::from_nanos((ticks * granularity) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_a_tick_and_both_kinds_of_one_handle_coexist() {
        let started = Instant::now();
        let mut timeouts = Timeouts::new(started);
        let mut armed = ArmedTimeouts::default();
        timeouts.set(&mut armed, 5, TimeoutKind::Short, Some(Duration::from_millis(1)), 7);
        timeouts.set(&mut armed, 5, TimeoutKind::Long, Some(Duration::from_millis(1)), 9);
        let tick = started + TIMEOUT_GRANULARITY;
        assert_eq!(timeouts.next_deadline(), Some(tick), "rounded up to the first tick");
        assert_eq!(timeouts.pop_due(tick - Duration::from_millis(1)), None, "never early");
        let mut fired = vec![timeouts.pop_due(tick).unwrap(), timeouts.pop_due(tick).unwrap()];
        fired.sort_by_key(|&(_, kind)| kind as u32);
        assert_eq!(fired, vec![(5, TimeoutKind::Short), (5, TimeoutKind::Long)]);
        assert_eq!((armed.fired(TimeoutKind::Short), armed.fired(TimeoutKind::Long)), (7, 9));
        assert!(!armed.is_armed(TimeoutKind::Short));
    }

    #[test]
    fn re_arming_replaces_and_clearing_disarms_both() {
        let started = Instant::now();
        let mut timeouts = Timeouts::new(started);
        let mut armed = ArmedTimeouts::default();
        timeouts.set(&mut armed, 3, TimeoutKind::Short, Some(Duration::from_secs(1)), 1);
        timeouts.set(&mut armed, 3, TimeoutKind::Short, Some(Duration::from_secs(9)), 2);
        assert_eq!(timeouts.next_deadline(), Some(started + 3 * TIMEOUT_GRANULARITY));
        timeouts.set(&mut armed, 3, TimeoutKind::Long, Some(Duration::from_secs(1)), 3);
        timeouts.clear(&mut armed, 3);
        assert_eq!(timeouts.next_deadline(), None);
        assert!(!armed.is_armed(TimeoutKind::Short) && !armed.is_armed(TimeoutKind::Long));
    }
}
