//! The loop's poller: `polling::Poller` registers descriptors (modes, keys, the epoll instance),
//! and the loop waits on that epoll instance itself. Registration and waiting are the places
//! where raw descriptors meet the poller, so their `unsafe` lives here.
//!
//! Why not `polling::Poller::wait`: on Linux every call arms its timerfd (`timerfd_settime` and
//! an `epoll_ctl`), then drains and re-arms its oneshot notifier (a `read` and an `epoll_ctl`),
//! whether or not a timeout or a notification was involved: four syscalls on top of the
//! `epoll_wait`, paid once per loop iteration, which at one message per iteration (a single
//! busy connection) were more than the `recv` and the doorbell of the message itself. This wait
//! is one `epoll_pwait2` (Linux 5.11+: a nanosecond timeout, so timers fire on time; older
//! kernels, or sandboxes that refuse it, get `epoll_wait` and whole milliseconds rounded up),
//! and the loop's wake-up is an eventfd of ours, registered level-triggered, read only when it
//! was rung.
//!
//! Descriptors: the loop's own (sockets, listeners) are passed borrowed, so they are open for the
//! call. A poll's descriptor is a number its user owns; the `*_user_fd` methods take it raw, and
//! [`borrow_user_fd`] states once what that rests on.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use polling::{Event, PollMode};
use rustix::event::{eventfd, EventfdFlags};

use super::{READABLE, WRITABLE};

/// How readiness is reported for a registered fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Once per change to ready: the loop re-checks polls itself before reporting them.
    Edge,
    /// Whenever ready: sockets, which read once per report and stop watching what they cannot
    /// handle (paused, out of credit, finished).
    Level,
}

impl Trigger {
    fn mode(self) -> PollMode {
        match self {
            Trigger::Edge => PollMode::Edge,
            Trigger::Level => PollMode::Level,
        }
    }
}

/// The key of the loop's own wake-up eventfd. polling reserves `usize::MAX` for its notifier;
/// handle keys are slab indices, far below either.
const WAKE_KEY: usize = usize::MAX - 1;

/// Readiness reported for one registered descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub key: usize,
    pub readable: bool,
    pub writable: bool,
}

/// What one `wait` reported: room for this many descriptors per call, like polling's `Events`.
pub struct Events {
    /// As the kernel wrote them, the wake-up eventfd's included (`iter` leaves it out).
    list: Vec<libc::epoll_event>,
}

const EVENTS_PER_WAIT: usize = 1024;

impl Events {
    pub fn new() -> Events {
        Events { list: Vec::with_capacity(EVENTS_PER_WAIT) }
    }

    pub fn iter(&self) -> impl Iterator<Item = Readiness> + '_ {
        // Errors and hang-ups count as both, as polling reports them: whatever the descriptor
        // waits for finds out what happened by trying.
        const READ_FLAGS: u32 =
            (libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        const WRITE_FLAGS: u32 = (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) as u32;
        self.list.iter().filter(|event| event.u64 != WAKE_KEY as u64).map(|event| {
            let flags = event.events;
            Readiness {
                key: event.u64 as usize,
                readable: flags & READ_FLAGS != 0,
                writable: flags & WRITE_FLAGS != 0,
            }
        })
    }
}

#[derive(Debug)]
pub struct Poller {
    registry: polling::Poller,
    /// An eventfd, readable from the first `notify` until the loop's next `wait` drains it.
    wake: OwnedFd,
    /// Set by the first `notify` since the last drain: later ones need not write again.
    rung: AtomicBool,
    /// Set once `epoll_pwait2` failed with ENOSYS or EPERM: waits use `epoll_wait` from then on.
    millisecond_waits: AtomicBool,
}

fn interest_event(key: usize, interest: u32) -> Event {
    Event::new(key, interest & READABLE != 0, interest & WRITABLE != 0)
}

/// Runs `register` with a poll's descriptor, which belongs to the poll's user.
///
/// # Safety
/// `fd` must be open during the call. The `Poll` contract (index.d.ts, as with `us_poll`) is
/// that its user stops the poll before closing the descriptor. A user who closes it first has
/// made the kernel drop the registration already (epoll forgets a closed descriptor), so the
/// call fails with EBADF or ENOENT, unless the number was reused meanwhile: then it registers
/// or deregisters whatever now has that number, which is the documented hazard of polls and
/// never touches memory. The borrow ends with the call.
unsafe fn borrow_user_fd<T>(fd: RawFd, register: impl FnOnce(BorrowedFd<'_>) -> T) -> T {
    // SAFETY: forwarded to the caller; the borrow does not outlive `register`.
    register(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The kernel's `struct __kernel_timespec`, which `epoll_pwait2` takes: 64-bit fields on every
/// architecture (glibc's `timespec` is 32-bit on some).
#[repr(C)]
struct KernelTimespec {
    seconds: i64,
    nanoseconds: i64,
}

fn millisecond_timeout(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        // Rounded up: a wait that ended before its deadline would only go round again.
        Some(timeout) => timeout.as_nanos().div_ceil(1_000_000).min(libc::c_int::MAX as u128) as libc::c_int,
    }
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        let registry = polling::Poller::new()?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        // SAFETY: `wake` is owned by the poller and outlives its registration: the epoll
        // instance (in `registry`) is dropped first, as fields drop in declaration order.
        unsafe { registry.add_with_mode(&wake, Event::readable(WAKE_KEY), PollMode::Level)? };
        Ok(Poller { registry, wake, rung: AtomicBool::new(false), millisecond_waits: AtomicBool::new(false) })
    }

    /// Registers `fd` under `key`. Errors and hang-ups are reported whatever the interest.
    pub fn watch(&self, fd: BorrowedFd<'_>, key: usize, interest: u32, trigger: Trigger) -> io::Result<()> {
        // SAFETY: polling asks that a source be deleted before it is closed, for the sake of
        // backends where a registration could outlive its source. The backend here is epoll,
        // which drops a file from its interest list by itself once the file's last descriptor
        // is closed; until then (a duplicate held elsewhere) the worst is a spurious readiness
        // report, which every handler tolerates (its read finds nothing). The loop's own
        // sockets and listeners are deregistered before their last owner closes them anyway.
        unsafe { self.registry.add_with_mode(fd.as_raw_fd(), interest_event(key, interest), trigger.mode()) }
    }

    /// Changes the interest of a watched descriptor.
    pub fn rewatch(&self, fd: BorrowedFd<'_>, key: usize, interest: u32, trigger: Trigger) -> io::Result<()> {
        self.registry.modify_with_mode(fd, interest_event(key, interest), trigger.mode())
    }

    pub fn unwatch(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.registry.delete(fd)
    }

    /// [`Poller::watch`] for a poll's descriptor (see [`borrow_user_fd`]).
    pub fn watch_user_fd(&self, fd: RawFd, key: usize, interest: u32, trigger: Trigger) -> io::Result<()> {
        // SAFETY: the poll's descriptor, under the contract stated at `borrow_user_fd`.
        unsafe { borrow_user_fd(fd, |fd| self.watch(fd, key, interest, trigger)) }
    }

    pub fn rewatch_user_fd(&self, fd: RawFd, key: usize, interest: u32, trigger: Trigger) -> io::Result<()> {
        // SAFETY: as in `watch_user_fd`.
        unsafe { borrow_user_fd(fd, |fd| self.rewatch(fd, key, interest, trigger)) }
    }

    pub fn unwatch_user_fd(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: as in `watch_user_fd`.
        unsafe { borrow_user_fd(fd, |fd| self.unwatch(fd)) }
    }

    /// The epoll descriptor: readable while a registered descriptor is ready or `notify` rang.
    pub fn as_raw_fd(&self) -> RawFd {
        self.registry.as_raw_fd()
    }

    /// Waits until a registered descriptor is ready, `notify` is called, or `timeout` passes,
    /// and replaces `events` with what was ready. Only the loop thread waits.
    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.list.clear();
        let count = match self.epoll_wait(&mut events.list, timeout) {
            Ok(count) => count,
            // A signal cut the wait short: an empty iteration, as if the timeout had passed.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(err) => return Err(err),
        };
        // SAFETY: the kernel initialized the first `count` entries (count <= capacity).
        unsafe { events.list.set_len(count) };
        if events.list.iter().any(|event| event.u64 == WAKE_KEY as u64) {
            self.drain_wake();
        }
        Ok(())
    }

    /// Waits into the spare room of `list` (empty); returns how many entries the kernel wrote.
    fn epoll_wait(&self, list: &mut Vec<libc::epoll_event>, timeout: Option<Duration>) -> io::Result<usize> {
        let (epoll, room, capacity) =
            (self.registry.as_raw_fd(), list.as_mut_ptr(), list.capacity() as libc::c_int);
        if !self.millisecond_waits.load(Ordering::Relaxed) {
            let timespec = timeout.map(|timeout| KernelTimespec {
                seconds: timeout.as_secs().min(i64::MAX as u64) as i64,
                nanoseconds: i64::from(timeout.subsec_nanos()),
            });
            let timespec_ptr =
                timespec.as_ref().map_or(std::ptr::null(), |timespec| timespec as *const KernelTimespec);
            // SAFETY: the kernel writes at most `capacity` entries to `room`, the spare capacity
            // of `list`, and only reads `timespec` (alive until the call returns, or null for no
            // timeout); no signal mask is passed. The raw syscall needs no glibc 2.35.
            let count = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    epoll,
                    room,
                    capacity,
                    timespec_ptr,
                    std::ptr::null::<libc::sigset_t>(),
                    0,
                )
            };
            if count >= 0 {
                return Ok(count as usize);
            }
            let err = io::Error::last_os_error();
            if !matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
                return Err(err);
            }
            self.millisecond_waits.store(true, Ordering::Relaxed);
        }
        // SAFETY: as above, with the timeout passed by value.
        let count = unsafe { libc::epoll_wait(epoll, room, capacity, millisecond_timeout(timeout)) };
        if count < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(count as usize)
        }
    }

    /// Empties the wake-up eventfd, then lets the next `notify` ring it again. In this order, a
    /// `notify` racing with the drain either rings again or finds `rung` still set, and then its
    /// caller's command (queued before it notified) is seen by the iteration about to run.
    /// Returns how many times it was written to (0 if it already was empty).
    fn drain_wake(&self) -> u64 {
        let mut counter = [0u8; 8];
        // EAGAIN (already drained) is harmless and leaves the counter 0.
        let _ = rustix::io::read(&self.wake, &mut counter);
        self.rung.store(false, Ordering::SeqCst);
        u64::from_ne_bytes(counter)
    }

    /// Wakes a `wait` in progress, or makes the next one return at once. Coalesced: only the
    /// first call between two waits writes to the eventfd.
    pub fn notify(&self) -> io::Result<()> {
        if self.rung.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        if let Err(errno) = rustix::io::write(&self.wake, &1u64.to_ne_bytes()) {
            self.rung.store(false, Ordering::SeqCst);
            return Err(errno.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(millisecond_timeout(None), -1);
        assert_eq!(millisecond_timeout(Some(Duration::ZERO)), 0);
        assert_eq!(millisecond_timeout(Some(Duration::from_nanos(1))), 1);
        assert_eq!(millisecond_timeout(Some(Duration::from_micros(1500))), 2);
        assert_eq!(millisecond_timeout(Some(Duration::from_millis(7))), 7);
        assert_eq!(millisecond_timeout(Some(Duration::from_secs(u64::MAX))), libc::c_int::MAX);
    }

    #[test]
    fn notify_wakes_a_sleeping_wait_once_and_is_not_reported_as_readiness() {
        let poller = Arc::new(Poller::new().unwrap());
        let mut events = Events::new();
        let waker = {
            let poller = Arc::clone(&poller);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                // Coalesced: the second call finds the first one's ring still pending.
                poller.notify().unwrap();
                poller.notify().unwrap();
            })
        };
        let started = Instant::now();
        poller.wait(&mut events, Some(Duration::from_secs(10))).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "notify did not end the wait");
        assert_eq!(events.iter().count(), 0);
        waker.join().unwrap();
        // Two notifies between waits write once.
        poller.notify().unwrap();
        poller.notify().unwrap();
        assert_eq!(poller.drain_wake(), 1, "the second notify wrote again");
        // Drained: the next wait sleeps its timeout out, and a later notify rings again.
        let started = Instant::now();
        poller.wait(&mut events, Some(Duration::from_millis(20))).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
        poller.notify().unwrap();
        let started = Instant::now();
        poller.wait(&mut events, Some(Duration::from_secs(10))).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "a notify after a drain was lost");
    }

    #[test]
    fn readiness_carries_the_key_and_direction() {
        readiness_is_reported(Poller::new().unwrap());
    }

    #[test]
    fn the_millisecond_fallback_waits_and_reports_alike() {
        let poller = Poller::new().unwrap();
        poller.millisecond_waits.store(true, Ordering::Relaxed);
        let mut events = Events::new();
        let started = Instant::now();
        poller.wait(&mut events, Some(Duration::from_micros(2500))).unwrap();
        assert!(started.elapsed() >= Duration::from_micros(2500), "woke before its timeout");
        readiness_is_reported(poller);
    }

    fn readiness_is_reported(poller: Poller) {
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        poller.watch(ours.as_fd(), 7, READABLE, Trigger::Level).unwrap();
        let mut events = Events::new();
        poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events.iter().count(), 0);
        theirs.write_all(b"x").unwrap();
        poller.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(
            events.iter().collect::<Vec<_>>(),
            [Readiness { key: 7, readable: true, writable: false }]
        );
        poller.rewatch(ours.as_fd(), 7, READABLE | WRITABLE, Trigger::Level).unwrap();
        poller.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(events.iter().collect::<Vec<_>>(), [Readiness { key: 7, readable: true, writable: true }]);
        poller.unwatch(ours.as_fd()).unwrap();
        poller.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events.iter().count(), 0);
    }
}
