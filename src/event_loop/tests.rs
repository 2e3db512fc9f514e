//! The loop core driven without Node: the doorbell is a channel, and the test plays JavaScript
//! by taking batches (which acknowledges the previous one).

use super::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{channel, Receiver};

type Record = [u32; 4];

struct Harness {
    event_loop: EventLoop,
    rings: Receiver<()>,
    js: JsSide,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(LoopConfig::default())
    }

    fn with_config(config: LoopConfig) -> Harness {
        let (ring, rings) = channel();
        let event_loop = EventLoop::start(config, Box::new(move || ring.send(()).unwrap())).unwrap();
        Harness { event_loop, rings, js: JsSide::default() }
    }

    /// Waits for the doorbell, then takes every pending batch, the way `index.js` does.
    fn deliver(&mut self, within: Duration) -> Vec<Record> {
        let mut records = Vec::new();
        if self.rings.recv_timeout(within).is_err() {
            return records;
        }
        while self.event_loop.take_batch(&mut self.js) {
            records.extend(self.js.records().chunks(WORDS_PER_EVENT).map(|r| [r[0], r[1], r[2], r[3]]));
        }
        records
    }

    /// Takes one batch without acknowledging it (its callbacks are "still running").
    fn take_one(&mut self, within: Duration) -> Vec<Record> {
        self.rings.recv_timeout(within).expect("no delivery");
        assert!(self.event_loop.take_batch(&mut self.js));
        self.js.records().chunks(WORDS_PER_EVENT).map(|r| [r[0], r[1], r[2], r[3]]).collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.event_loop.stop();
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_timer_fires_once_and_never_early() {
    let mut h = Harness::new();
    let id = h.event_loop.create_handle().unwrap();
    let armed_at = Instant::now();
    h.event_loop.arm_timer(id, 7, Duration::from_millis(30), None).unwrap();
    let records = h.deliver(SECOND);
    assert!(armed_at.elapsed() >= Duration::from_millis(30), "fired early: {:?}", armed_at.elapsed());
    assert_eq!(records, vec![[EventKind::Timer as u32, id.index, 7, TIMER_FINAL]]);
    assert!(h.deliver(Duration::from_millis(60)).is_empty(), "a one-shot timer fires once");
}

#[test]
fn timers_fire_in_deadline_order() {
    let mut h = Harness::new();
    let mut fired = Vec::new();
    for (stamp, ms) in [(30, 60), (10, 20), (20, 40)] {
        let id = h.event_loop.create_handle().unwrap();
        h.event_loop.arm_timer(id, stamp, Duration::from_millis(ms), None).unwrap();
    }
    while fired.len() < 3 {
        let records = h.deliver(SECOND);
        assert!(!records.is_empty(), "timers missing after {fired:?}");
        fired.extend(records.iter().map(|r| r[2]));
    }
    assert_eq!(fired, vec![10, 20, 30]);
}

#[test]
fn a_repeating_timer_repeats_until_disarmed() {
    let mut h = Harness::new();
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.arm_timer(id, 1, Duration::from_millis(5), Some(Duration::from_millis(5))).unwrap();
    let mut count = 0;
    while count < 3 {
        for record in h.deliver(SECOND) {
            assert_eq!(record, [EventKind::Timer as u32, id.index, 1, 0], "a repeating expiry is not final");
            count += 1;
        }
    }
    h.event_loop.disarm_timer(id).unwrap();
    // An expiry published before the disarm was applied may still arrive; nothing after it.
    h.deliver(Duration::from_millis(20));
    assert!(h.deliver(Duration::from_millis(50)).is_empty());
}

#[test]
fn re_arming_replaces_the_schedule() {
    let mut h = Harness::new();
    let id = h.event_loop.create_handle().unwrap();
    let armed_at = Instant::now();
    h.event_loop.arm_timer(id, 1, Duration::from_millis(20), None).unwrap();
    h.event_loop.arm_timer(id, 2, Duration::from_millis(60), None).unwrap();
    let records = h.deliver(SECOND);
    assert!(armed_at.elapsed() >= Duration::from_millis(60));
    assert_eq!(records, vec![[EventKind::Timer as u32, id.index, 2, TIMER_FINAL]]);
}

#[test]
fn a_stale_id_is_a_no_op() {
    let mut h = Harness::new();
    let old = h.event_loop.create_handle().unwrap();
    h.event_loop.arm_timer(old, 1, Duration::from_millis(40), None).unwrap();
    h.event_loop.release(old);
    // The release is applied by the loop thread; wait until the slot is handed out again.
    let new = loop {
        let candidate = h.event_loop.create_handle().unwrap();
        if candidate.index == old.index {
            break candidate;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_ne!(new.generation, old.generation);
    assert!(matches!(h.event_loop.arm_timer(old, 3, Duration::ZERO, None), Err(Error::StaleHandle)));
    assert!(matches!(h.event_loop.disarm_timer(old), Err(Error::StaleHandle)));
    h.event_loop.release(old);
    h.event_loop.arm_timer(new, 2, Duration::from_millis(1), None).unwrap();
    assert_eq!(h.deliver(SECOND), vec![[EventKind::Timer as u32, new.index, 2, TIMER_FINAL]]);
    assert!(h.deliver(Duration::from_millis(80)).is_empty(), "the released timer must not fire");
}

#[test]
fn polls_are_level_triggered_and_never_reported_while_pending() {
    let mut h = Harness::new();
    let (watched, mut peer) = UnixStream::pair().unwrap();
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.start_poll(id, 5, watched.as_raw_fd(), READABLE).unwrap();
    assert!(h.deliver(Duration::from_millis(50)).is_empty(), "nothing to read yet");

    peer.write_all(b"ab").unwrap();
    let first = h.take_one(SECOND);
    assert_eq!(first, vec![[EventKind::Poll as u32, id.index, 5, READABLE]]);
    // The "callback" has not finished: more data must not produce a second report.
    peer.write_all(b"cd").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(!h.event_loop.take_batch(&mut h.js), "reported again while its callback was pending");

    // Acknowledged and still readable: reported again.
    assert_eq!(h.take_one(SECOND), vec![[EventKind::Poll as u32, id.index, 5, READABLE]]);
    let mut buf = [0; 16];
    assert_eq!((&watched).read(&mut buf).unwrap(), 4);
    // Drained before the acknowledgement: not reported again.
    assert!(!h.event_loop.take_batch(&mut h.js));
    assert!(h.deliver(Duration::from_millis(80)).is_empty());

    h.event_loop.stop_poll(id, watched.as_raw_fd()).unwrap();
    peer.write_all(b"e").unwrap();
    assert!(h.deliver(Duration::from_millis(80)).is_empty(), "a stopped poll is silent");
}

#[test]
fn poll_interest_can_change() {
    let mut h = Harness::new();
    let (watched, _peer) = UnixStream::pair().unwrap();
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.start_poll(id, 1, watched.as_raw_fd(), READABLE).unwrap();
    assert!(h.deliver(Duration::from_millis(50)).is_empty());
    h.event_loop.change_poll(id, watched.as_raw_fd(), READABLE | WRITABLE).unwrap();
    assert_eq!(h.deliver(SECOND), vec![[EventKind::Poll as u32, id.index, 1, WRITABLE]]);
}

#[test]
fn unpollable_fds_are_refused_synchronously() {
    let h = Harness::new();
    let file = std::fs::File::open("Cargo.toml").unwrap();
    let id = h.event_loop.create_handle().unwrap();
    let err = h.event_loop.start_poll(id, 1, file.as_raw_fd(), READABLE).unwrap_err();
    assert_eq!(err.code(), "EPERM");
    let (a, _b) = UnixStream::pair().unwrap();
    h.event_loop.start_poll(id, 1, a.as_raw_fd(), READABLE).unwrap();
    let other = h.event_loop.create_handle().unwrap();
    let err = h.event_loop.start_poll(other, 1, a.as_raw_fd(), READABLE).unwrap_err();
    assert_eq!(err.code(), "EEXIST", "one fd, one poll");
}

#[test]
fn wakeups_coalesce() {
    let mut h = Harness::new();
    for _ in 0..100 {
        h.event_loop.wakeup().unwrap();
    }
    let mut wakeups = 0;
    loop {
        let records = h.deliver(Duration::from_millis(50));
        if records.is_empty() {
            break;
        }
        assert!(records.iter().all(|r| r[0] == EventKind::Wakeup as u32));
        wakeups += records.len();
    }
    assert!((1..100).contains(&wakeups), "{wakeups} wakeups");
}

#[test]
fn undelivered_events_stay_within_the_byte_budget() {
    let mut h = Harness::with_config(LoopConfig { max_pending_bytes: 4 * EVENT_BYTES });
    let count = 50;
    for stamp in 0..count {
        let id = h.event_loop.create_handle().unwrap();
        h.event_loop.arm_timer(id, stamp, Duration::ZERO, None).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut stamps = Vec::new();
    while stamps.len() < count as usize {
        let records = h.take_one(SECOND);
        assert!(records.len() <= 4, "{} events held undelivered", records.len());
        stamps.extend(records.iter().map(|r| r[2]));
        std::thread::sleep(Duration::from_millis(5));
        // Acknowledge (an empty take) so the loop gets its credit back and rings again.
        while h.event_loop.take_batch(&mut h.js) {
            stamps.extend(h.js.records().chunks(WORDS_PER_EVENT).map(|r| r[2]));
        }
    }
    stamps.sort_unstable();
    assert_eq!(stamps, (0..count).collect::<Vec<_>>(), "every timer fired exactly once");
}

#[test]
fn a_stopped_loop_refuses_new_work() {
    let h = Harness::new();
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.stop();
    h.event_loop.stop();
    assert!(h.event_loop.is_stopped());
    assert!(matches!(h.event_loop.create_handle(), Err(Error::LoopClosed)));
    assert!(matches!(h.event_loop.arm_timer(id, 1, Duration::ZERO, None), Err(Error::LoopClosed)));
    assert!(matches!(h.event_loop.wakeup(), Err(Error::LoopClosed)));
    h.event_loop.release(id);
}
