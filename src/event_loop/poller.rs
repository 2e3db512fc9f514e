//! The loop's `polling::Poller`, narrowed to what the loop needs. Registration is the one place
//! where raw descriptors meet the poller, so the `unsafe` of that API lives here.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use polling::{Event, Events, PollMode};

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

#[derive(Debug)]
pub struct Poller {
    inner: polling::Poller,
}

fn interest_event(key: usize, interest: u32) -> Event {
    Event::new(key, interest & READABLE != 0, interest & WRITABLE != 0)
}

/// Borrows a descriptor that the caller vouches is open.
///
/// # Safety
/// `fd` must stay open while the returned value is used (for the duration of one epoll_ctl).
unsafe fn borrow_open_fd(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: forwarded to the caller.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        Ok(Poller { inner: polling::Poller::new()? })
    }

    /// Registers `fd` under `key`. Errors and hang-ups are reported whatever the interest.
    pub fn watch(&self, fd: RawFd, key: usize, interest: u32, trigger: Trigger) -> io::Result<()> {
        // SAFETY: polling requires the source to be deleted before it is closed. Polls watch
        // descriptors their user owns, and the Poll contract (index.d.ts) is to stop() before
        // closing the fd. A user who closes it first only makes the kernel drop the
        // registration on its own; a later `unwatch` then fails harmlessly.
        unsafe { self.inner.add_with_mode(fd, interest_event(key, interest), trigger.mode()) }
    }

    /// Changes the interest of a watched descriptor.
    pub fn rewatch(&self, fd: RawFd, key: usize, interest: u32, trigger: Trigger) -> io::Result<()> {
        // SAFETY: see `unwatch`: the fd is open while registered, or the caller's documented hazard.
        let fd = unsafe { borrow_open_fd(fd) };
        self.inner.modify_with_mode(fd, interest_event(key, interest), trigger.mode())
    }

    pub fn unwatch(&self, fd: RawFd) -> io::Result<()> {
        // SAFETY: `fd` was registered by us. Sockets and listeners stay open while registered:
        // their owners close them only after this call (under a lock where both threads may
        // close). A poll's fd belongs to its user, who must stop the poll before closing it
        // (index.d.ts); one who does not made the kernel drop the registration already, so this
        // fails with EBADF or ENOENT, unless the number was reused meanwhile: the documented
        // hazard of polls, as with us_poll.
        let fd = unsafe { borrow_open_fd(fd) };
        self.inner.delete(fd)
    }

    pub fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<usize> {
        self.inner.wait(events, timeout)
    }

    /// Wakes a `wait` in progress, or makes the next one return at once. Coalesced.
    pub fn notify(&self) -> io::Result<()> {
        self.inner.notify()
    }
}
