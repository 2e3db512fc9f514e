//! The event loop core: one native thread per loop (`thread.rs`), which owns the poller, the
//! drivers of each handle kind (timers, polls, and the sockets of [`crate::net`]) and the batch
//! of events bound for JavaScript.
//!
//! Other threads (the JavaScript thread) talk to it through an [`EventLoop`]: they queue
//! commands and `notify()` the poller; they never touch the drivers' state. Two things happen on
//! the calling thread because their errors must be reported synchronously: slot allocation and
//! poll registration (epoll allows registering while another thread waits).
//!
//! Layers, each using only those before it: `slots`, `batch`, `poller`, `timers` (the queue),
//! `timeouts` and `services` (what the loop lends a driver); the drivers (`timers`, `polls`,
//! `crate::net`); `thread` (routing), which nothing else imports.

pub(crate) mod batch;
mod handover;
#[allow(unsafe_code)]
pub(crate) mod poller;
mod polls;
pub mod records;
pub(crate) mod services;
pub(crate) mod slots;
mod thread;
pub(crate) mod timeouts;
mod timers;

use std::collections::HashSet;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use batch::{
    Batch, BatchPool, EventKind, EVENT_BYTES, OPENED_BY_ADOPTION, OPENED_BY_CONNECT, TIMER_FINAL,
    WORDS_PER_EVENT,
};
pub use slots::SlotId;
pub use timeouts::TIMEOUT_GRANULARITY;

use crate::error::{Error, Result};
use crate::net::{ListenerIo, SocketCommand, SocketIo};
use crate::sys;
use batch::{Delivery, Taken};
pub use handover::Drive;
use handover::Driver;
use poller::{Poller, Trigger};
use slots::{Slab, SlotAllocator};
use thread::LoopThread;

/// Poll interest and readiness bits, as in the JavaScript API.
pub const READABLE: u32 = 1;
pub const WRITABLE: u32 = 2;

/// Tunables of one loop.
#[derive(Clone, Debug)]
pub struct LoopConfig {
    /// The most bytes of events the loop holds undelivered before it stops producing more.
    pub max_pending_bytes: usize,
    /// After handing events to JavaScript, the loop polls without sleeping (yielding its core
    /// between polls) for this long, so the reply to what it delivered is picked up without a
    /// wake-up. Zero: it sleeps at once.
    pub spin: Duration,
    /// While the loop is light and uses no TLS, the loop thread may hand the driving to the
    /// JavaScript thread (see `handover.rs`), which must then call [`EventLoop::drive`] when
    /// [`EventLoop::poller_fd`] is readable. Not with a spin: see [`LoopConfig::lets_javascript_drive`].
    pub javascript_may_drive: bool,
}

impl LoopConfig {
    /// Whether the loop thread may ever offer the driving: a spinning loop keeps it (its spin
    /// is what it is for).
    pub fn lets_javascript_drive(&self) -> bool {
        self.javascript_may_drive && self.spin.is_zero()
    }
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig { max_pending_bytes: 8 << 20, spin: Duration::ZERO, javascript_may_drive: false }
    }
}

/// Rings the JavaScript thread; called on the loop thread when events became pending while no
/// delivery was pending.
pub type Doorbell = Box<dyn FnMut() + Send>;

/// Requests from other threads, applied by the loop thread in the order they were queued.
#[derive(Debug)]
pub(crate) enum Command {
    ArmTimer {
        id: SlotId,
        stamp: u32,
        deadline: Instant,
        period: Option<Duration>,
    },
    DisarmTimer {
        id: SlotId,
    },
    /// The fd was registered with the poller (by the caller, so errors are synchronous).
    WatchPoll {
        id: SlotId,
        stamp: u32,
        fd: RawFd,
        interest: u32,
    },
    ChangePoll {
        id: SlotId,
        interest: u32,
    },
    /// The fd was deregistered by the caller.
    UnwatchPoll {
        id: SlotId,
    },
    /// Forget the handle and free its slot.
    Release {
        id: SlotId,
    },
    /// Socket and listener commands (see [`crate::net`]).
    Socket(SocketCommand),
    /// UDP socket commands (see [`crate::udp`]).
    Udp(crate::udp::UdpCommand),
}

/// What the loop thread and the threads that talk to it share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub poller: Poller,
    pub commands: Mutex<Vec<Command>>,
    pub slots: Mutex<SlotAllocator>,
    pub delivery: Delivery,
    wakeup_requested: AtomicBool,
    stopping: AtomicBool,
    /// Set once a TLS listener, socket or upgrade was asked of the loop: from then on only the
    /// loop thread drives it, so that no TLS work runs on the JavaScript thread.
    uses_tls: AtomicBool,
    iteration: AtomicU64,
    pub config: LoopConfig,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Sockets the loop opened, with the part JavaScript writes through; handed over with the
    /// next batch (before JavaScript can see their `Open` record).
    /// `true` marks sockets opened by a connect (JavaScript may have closed them meanwhile).
    pub opened: Mutex<Vec<(SlotId, Arc<SocketIo>, bool)>>,
    /// The origin of socket timeout ticks.
    pub started: Instant,
}

impl Shared {
    fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    fn uses_tls(&self) -> bool {
        self.uses_tls.load(Ordering::SeqCst)
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical section
/// here is a push, a swap or a counter update).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A handle to a running loop thread. Cloning it is cheap; [`EventLoop::stop`] stops the thread
/// for every clone.
#[derive(Clone, Debug)]
pub struct EventLoop {
    pub(crate) shared: Arc<Shared>,
    driver: Arc<Driver>,
}

impl EventLoop {
    /// Starts a loop thread. `doorbell` is called on it whenever events are waiting for
    /// [`EventLoop::take_batch`].
    pub fn start(config: LoopConfig, doorbell: Doorbell) -> Result<EventLoop> {
        let shared = Arc::new(Shared {
            poller: Poller::new()?,
            commands: Mutex::default(),
            slots: Mutex::default(),
            delivery: Delivery::default(),
            wakeup_requested: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            uses_tls: AtomicBool::new(false),
            iteration: AtomicU64::new(0),
            config,
            thread: Mutex::new(None),
            opened: Mutex::default(),
            started: Instant::now(),
        });
        let driver = Arc::new(Driver::new(LoopThread::new(Arc::clone(&shared), doorbell)));
        let (thread_driver, thread_shared) = (Arc::clone(&driver), Arc::clone(&shared));
        let thread = std::thread::Builder::new()
            .name("usockets-loop".into())
            .spawn(move || thread::run(&thread_driver, &thread_shared))?;
        *lock(&shared.thread) = Some(thread);
        Ok(EventLoop { shared, driver })
    }

    /// The poller's descriptor: readable while the loop has something to do (see
    /// [`LoopConfig::javascript_may_drive`]).
    pub fn poller_fd(&self) -> RawFd {
        self.shared.poller.as_raw_fd()
    }

    /// JavaScript thread, having found nothing more to take: takes the driving if the loop
    /// thread offered it. From then on the caller runs [`EventLoop::drive`] whenever
    /// [`EventLoop::poller_fd`] is readable or the wake-up it returned is due.
    pub fn take_drive(&self) -> bool {
        self.driver.take()
    }

    /// JavaScript thread: runs one iteration of the loop if it drives it (see [`Drive`]).
    pub fn drive(&self) -> Drive {
        self.driver.drive(&self.shared)
    }

    /// JavaScript thread: gives the driving back to the loop thread (it cannot watch the
    /// poller after all).
    pub fn hand_back_drive(&self) {
        self.driver.hand_back();
    }

    /// Notes that TLS is about to be used on this loop: the loop thread drives it from now on.
    fn use_tls(&self) {
        if !self.shared.uses_tls.swap(true, Ordering::SeqCst) && !self.driver.thread_drives() {
            self.driver.hand_back();
        }
    }

    pub(crate) fn check_open(&self) -> Result<()> {
        if self.shared.is_stopping() {
            return Err(Error::LoopClosed);
        }
        Ok(())
    }

    pub(crate) fn check_current(&self, id: SlotId) -> Result<()> {
        self.check_open()?;
        if lock(&self.shared.slots).is_current(id) {
            Ok(())
        } else {
            Err(Error::StaleHandle)
        }
    }

    pub(crate) fn submit(&self, command: Command) {
        if matches!(&command, Command::Socket(socket) if socket.brings_tls()) {
            self.use_tls();
        }
        lock(&self.shared.commands).push(command);
        // A failed notify means the poller is gone with the loop; nothing is left to wake.
        let _ = self.shared.poller.notify();
    }

    /// A new handle id (for a timer or a poll) of this loop.
    pub fn create_handle(&self) -> Result<SlotId> {
        self.check_open()?;
        lock(&self.shared.slots).allocate().ok_or(Error::TooManyHandles)
    }

    /// Arms a timer: it first expires `delay` from now, then every `period` if given. Re-arming
    /// replaces the previous schedule. Events carry `stamp`.
    pub fn arm_timer(&self, id: SlotId, stamp: u32, delay: Duration, period: Option<Duration>) -> Result<()> {
        self.check_current(id)?;
        let deadline = Instant::now() + delay;
        self.submit(Command::ArmTimer { id, stamp, deadline, period });
        Ok(())
    }

    pub fn disarm_timer(&self, id: SlotId) -> Result<()> {
        self.check_current(id)?;
        self.submit(Command::DisarmTimer { id });
        Ok(())
    }

    /// Starts watching `fd` for `interest` (READABLE | WRITABLE). Events carry `stamp`.
    /// Fails with the OS error (`EPERM` for regular files, `EEXIST` when another poll of this
    /// loop watches the same fd, `EBADF`...).
    pub fn start_poll(&self, id: SlotId, stamp: u32, fd: RawFd, interest: u32) -> Result<()> {
        self.check_current(id)?;
        sys::check_pollable(fd)?;
        // Queue the command before registering, so the loop knows the poll before any of its
        // edge-triggered events can be seen (an edge dropped for an unknown slot would be lost).
        self.submit(Command::WatchPoll { id, stamp, fd, interest });
        // Edge-triggered: the loop never re-registers a poll after reporting it; it re-checks
        // readiness itself (`sys::poll_now`) before every report.
        if let Err(err) = self.shared.poller.watch_user_fd(fd, id.index as usize, interest, Trigger::Edge) {
            self.submit(Command::UnwatchPoll { id });
            return Err(err.into());
        }
        Ok(())
    }

    pub fn change_poll(&self, id: SlotId, fd: RawFd, interest: u32) -> Result<()> {
        self.check_current(id)?;
        self.shared.poller.rewatch_user_fd(fd, id.index as usize, interest, Trigger::Edge)?;
        self.submit(Command::ChangePoll { id, interest });
        Ok(())
    }

    pub fn stop_poll(&self, id: SlotId, fd: RawFd) -> Result<()> {
        self.check_current(id)?;
        // The fd may already be closed by its owner, which removed it from epoll by itself.
        let _ = self.shared.poller.unwatch_user_fd(fd);
        self.submit(Command::UnwatchPoll { id });
        Ok(())
    }

    /// Frees a handle; its events stop and its slot is reused later. A stale id does nothing.
    pub fn release(&self, id: SlotId) {
        if self.check_current(id).is_ok() {
            self.submit(Command::Release { id });
        }
    }

    /// Makes the loop emit one wakeup event soon. Many calls before it does coalesce into one.
    pub fn wakeup(&self) -> Result<()> {
        self.check_open()?;
        if !self.shared.wakeup_requested.swap(true, Ordering::SeqCst) {
            let _ = self.shared.poller.notify();
        }
        Ok(())
    }

    /// How many times the loop thread has woken up so far.
    pub fn iteration_number(&self) -> u64 {
        self.shared.iteration.load(Ordering::Relaxed)
    }

    /// Takes everything pending into `js.batch`, acknowledging what it held before (the caller
    /// has dispatched it), and adopts the sockets opened meanwhile into `js`. Returns false, with
    /// the batch empty, when nothing is pending; the doorbell rings again for the next event.
    pub fn take_batch(&self, js: &mut JsSide) -> bool {
        let (taken, wake_loop) = self.shared.delivery.take(&mut js.batch, &mut js.taken);
        if wake_loop {
            let _ = self.shared.poller.notify();
        }
        for (id, io, by_connect) in lock(&self.shared.opened).drain(..) {
            // A connect JavaScript cancelled before it saw it open: the loop drops its share
            // when it applies the close, and with this one dropped too, the fd closes.
            if !by_connect || js.connecting.remove(&id) {
                js.sockets.insert(id, io);
            }
        }
        taken
    }

    /// Whether JavaScript is behind: at least half of the loop's credit (`maxPendingBytes`) is
    /// held by batches it has not dispatched yet, counting the one it took last.
    pub fn javascript_is_behind(&self) -> bool {
        self.shared.delivery.undelivered_bytes() * 2 >= self.shared.config.max_pending_bytes
    }

    /// Stops the loop thread and waits for it. Idempotent; afterwards every method fails with
    /// [`Error::LoopClosed`] or does nothing.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.shared.poller.notify();
        self.driver.wake_parked();
        let thread = lock(&self.shared.thread).take();
        if let Some(thread) = thread {
            // A panic on the loop thread has already been reported by the panic hook; the
            // handle is closed either way.
            let _ = thread.join();
        }
        self.shared.delivery.pool().close();
    }

    /// Where the batches [`JsSide::take_records`] hands out go back once JavaScript is done.
    pub fn batch_pool(&self) -> Arc<BatchPool> {
        Arc::clone(self.shared.delivery.pool())
    }

    /// Whether both handles refer to the same loop.
    pub fn is_same_loop(&self, other: &EventLoop) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.is_stopping()
    }
}

#[derive(Debug, Default)]
pub struct JsSide {
    batch: Batch,
    /// What acknowledging the batch taken last returns.
    taken: Taken,
    pub(crate) sockets: Slab<Arc<SocketIo>>,
    pub(crate) listeners: Slab<Arc<ListenerIo>>,
    pub(crate) udp: Slab<Arc<crate::udp::UdpIo>>,
    /// Connects JavaScript started and has not seen open, failed or closed.
    pub(crate) connecting: HashSet<SlotId>,
}

impl JsSide {
    /// The records of the batch taken last (until [`JsSide::release_records`]).
    pub fn records(&self) -> &[u32] {
        self.batch.words()
    }

    /// Drops the records once they are copied to JavaScript, so a large batch is not held twice
    /// while JavaScript dispatches it. Its acknowledgement is unaffected.
    pub fn release_records(&mut self) {
        self.batch.clear();
    }

    /// Moves the records out (to hand them to JavaScript without a copy); give them to
    /// [`BatchPool::recycle`] once JavaScript no longer references them. Its acknowledgement
    /// is unaffected.
    pub fn take_records(&mut self) -> Vec<u32> {
        self.batch.take_words()
    }
}

#[cfg(test)]
mod tests;
