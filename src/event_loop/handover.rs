//! Who runs the loop's iterations: its own thread, or the JavaScript thread.
//!
//! On one core, every delivery the loop thread makes is a hand-over: the loop thread wakes for
//! the socket, rings the JavaScript thread and sleeps again, which then wakes, dispatches and
//! sleeps: two wake-ups per event where `node:net` has one (measured: a quarter of a small
//! round trip's CPU, see the README's "Who runs the loop"). So while the loop is light (no
//! iteration moved bulk data lately) and no TLS is in use, the loop thread offers to hand the
//! driving over; the JavaScript thread takes it once it has dispatched what is pending, and
//! from then on runs each iteration itself when libuv sees the loop's epoll descriptor ready
//! (or its next deadline pass), dispatching its events at once: one wake-up per event, as
//! `node:net`. The first heavy iteration (bulk data), or any use of TLS, gives the driving
//! back to the loop thread, so bulk reads and all TLS work stay off the JavaScript thread.
//! Heavy means bulk, not busy: many sockets' small messages (a pipelined request stream over
//! a hundred connections moves ~100 KiB per iteration) stay with JavaScript, as with
//! `node:net`; a socket that had a bulk read's worth waiting, or an iteration too large to
//! dispatch in one go, is the loop thread's.
//!
//! The state the iterations touch ([`LoopThread`]) sits behind one mutex: the loop thread holds
//! it while it drives (also while it waits on the poller: nobody else needs it then) and
//! releases it only while parked; the JavaScript thread holds it for one iteration at a time.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::thread::LoopThread;
use super::{lock, Shared};

/// Iterations that publish this many bytes of events are the loop thread's work, however
/// small their messages.
pub(super) const HEAVY_ITERATION_BYTES: usize = 1024 * 1024;
/// Consecutive light iterations after which the loop thread offers the driving.
const LIGHT_ITERATIONS_BEFORE_OFFER: u32 = 2;
/// How long after its last heavy iteration a loop stays with its thread: a stream's pauses
/// between bulk reads are far shorter, so the driving does not move back and forth within
/// one (each move costs both threads a wake-up: a windowed 64 KiB stream that moved in its
/// pauses ran 15.0 k chunks/s against 25.6 k with the thread only, in one pair of runs). A
/// loop that goes idle within the hold wakes its thread when the hold ends, which offers the
/// driving then, so the next event already finds JavaScript driving.
const QUIET_AFTER_BULK: Duration = Duration::from_millis(100);

const THREAD_DRIVES: u8 = 0;
/// The loop thread has offered the driving and parks; the next empty take accepts.
const OFFERED: u8 = 1;
const JAVASCRIPT_DRIVES: u8 = 2;

pub(super) struct Driver {
    /// `None` once the loop thread has finished (dropping it closes every fd of the loop).
    pub(super) state: Mutex<Option<LoopThread>>,
    mode: AtomicU8,
    /// The loop thread parks on it while it does not drive.
    resume: Condvar,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Driver").field("mode", &self.mode).finish_non_exhaustive()
    }
}

/// What the loop thread does instead of, or on top of, sleeping ([`Driver::before_sleep`]).
pub(super) enum BeforeSleep {
    /// It offered the driving: ring the doorbell and park.
    Offered,
    /// Sleep, at most this long: the hold after bulk ends then.
    Hold(Duration),
    /// Sleep as the loop's timers say.
    Sleep,
}

/// What one iteration the JavaScript thread ran did.
#[derive(Debug, PartialEq, Eq)]
pub enum Drive {
    /// The loop thread drives (or the loop stopped): nothing ran; stop watching for it.
    NotDriving,
    /// An iteration ran and the JavaScript thread keeps driving: run the next one when the
    /// poller's descriptor is readable or after `wake_after` (never, if `None`).
    Driving { published: bool, wake_after: Option<Duration> },
    /// An iteration may have run (`published` says whether it left events), and the loop thread
    /// drives from now on.
    HandedBack { published: bool },
}

impl Driver {
    pub(super) fn new(state: LoopThread) -> Driver {
        Driver { state: Mutex::new(Some(state)), mode: AtomicU8::new(THREAD_DRIVES), resume: Condvar::new() }
    }

    /// Loop thread: while it may not drive, waits (with the state unlocked) until it may or
    /// the loop stops.
    pub(super) fn park<'a>(
        &self,
        shared: &Shared,
        state: MutexGuard<'a, Option<LoopThread>>,
    ) -> MutexGuard<'a, Option<LoopThread>> {
        self.resume
            .wait_while(state, |_| self.mode.load(Ordering::SeqCst) != THREAD_DRIVES && !shared.is_stopping())
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(super) fn thread_drives(&self) -> bool {
        self.mode.load(Ordering::SeqCst) == THREAD_DRIVES
    }

    /// Loop thread, about to sleep on the poller after `light_iterations` light ones, the last
    /// heavy one (or the last hand-back) at `last_bulk`: offers the driving if the loop is
    /// light enough (the caller rings the doorbell, so that JavaScript comes to take it, and
    /// parks), or says how long the hold after bulk still lasts (the caller wakes when it
    /// ends, to offer then rather than at the next event).
    pub(super) fn before_sleep(
        &self,
        shared: &Shared,
        light_iterations: u32,
        last_bulk: Option<Instant>,
    ) -> BeforeSleep {
        if !javascript_may_drive(shared) {
            return BeforeSleep::Sleep;
        }
        let light_needed = match last_bulk {
            None => LIGHT_ITERATIONS_BEFORE_OFFER,
            Some(at) => match QUIET_AFTER_BULK.checked_sub(at.elapsed()) {
                Some(left) => return BeforeSleep::Hold(left),
                // After a hold, one light iteration past it is enough: the hold showed the
                // loop light.
                None => 1,
            },
        };
        let offered = light_iterations >= light_needed
            && self.mode.compare_exchange(THREAD_DRIVES, OFFERED, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        if offered {
            BeforeSleep::Offered
        } else {
            BeforeSleep::Sleep
        }
    }

    /// JavaScript thread, having dispatched everything pending: takes an offered driving.
    pub(super) fn take(&self) -> bool {
        self.mode.compare_exchange(OFFERED, JAVASCRIPT_DRIVES, Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }

    /// Gives the driving back to the loop thread (whoever drove or was offered it).
    pub(super) fn hand_back(&self) {
        // Under the state's lock, so a loop thread about to park sees the change or is woken.
        let state = lock(&self.state);
        self.mode.store(THREAD_DRIVES, Ordering::SeqCst);
        drop(state);
        self.resume.notify_all();
    }

    /// Wakes a parked loop thread so it sees the loop stopping.
    pub(super) fn wake_parked(&self) {
        drop(lock(&self.state));
        self.resume.notify_all();
    }

    /// JavaScript thread: runs one iteration if it drives, without waiting on the poller.
    pub(super) fn drive(&self, shared: &Shared) -> Drive {
        if self.mode.load(Ordering::SeqCst) != JAVASCRIPT_DRIVES || shared.is_stopping() {
            return Drive::NotDriving;
        }
        if !javascript_may_drive(shared) {
            // TLS came into use while the driving was being offered (`use_tls` hands back
            // what JavaScript already drives): none of its work may run here, not even this
            // iteration's.
            self.hand_back();
            return Drive::HandedBack { published: false };
        }
        let mut state = lock(&self.state);
        let Some(loop_state) = state.as_mut() else { return Drive::NotDriving };
        let iterated = loop_state.iterate(Some(Duration::ZERO), false);
        if iterated.heavy {
            drop(state);
            self.hand_back();
            return Drive::HandedBack { published: iterated.published };
        }
        let wake_after = loop_state.prepare_wait();
        Drive::Driving { published: iterated.published, wake_after }
    }
}

/// Whether the JavaScript thread may run iterations of this loop at all.
fn javascript_may_drive(shared: &Shared) -> bool {
    shared.config.lets_javascript_drive() && !shared.uses_tls()
}
