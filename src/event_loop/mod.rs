//! The event loop core: one native thread per loop, owning a poller (`polling` + epoll), the handle
//! table, the timer queue and the batch of events bound for JavaScript.
//!
//! Other threads (the JavaScript thread) talk to it through an [`EventLoop`]: they queue
//! commands and `notify()` the poller; they never touch the handle table. Two things happen on
//! the calling thread because their errors must be reported synchronously: slot allocation and
//! poll registration (epoll allows registering while another thread waits).

mod batch;
mod poller;
mod slots;
mod sockets;
mod timers;

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use batch::{Batch, EventKind, EVENT_BYTES, OPENED_BY_CONNECT, TIMER_FINAL, WORDS_PER_EVENT};
pub use slots::SlotId;
pub use sockets::{ClientTls, ConnectTarget, SocketTimeout};

use crate::error::{Error, Result};
use crate::sys;
use crate::tls::{TlsContext, TlsInfo};
use batch::{Delivery, Taken};
use poller::{Poller, Trigger};
use slots::{Slab, SlotAllocator};
use sockets::{ListenerIo, ListenerState, SocketCommand, SocketIo, SocketState};
use timers::TimerQueue;

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
}

impl Default for LoopConfig {
    fn default() -> Self {
        LoopConfig { max_pending_bytes: 8 << 20, spin: Duration::ZERO }
    }
}

/// Rings the JavaScript thread; called on the loop thread when events became pending while no
/// delivery was pending.
pub type Doorbell = Box<dyn FnMut() + Send>;

/// Requests from other threads, applied by the loop thread in the order they were queued.
#[derive(Debug)]
enum Command {
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
    /// Socket and listener commands (see `sockets.rs`).
    Socket(SocketCommand),
}

#[derive(Debug)]
struct Shared {
    poller: Poller,
    commands: Mutex<Vec<Command>>,
    slots: Mutex<SlotAllocator>,
    delivery: Delivery,
    wakeup_requested: AtomicBool,
    stopping: AtomicBool,
    iteration: AtomicU64,
    config: LoopConfig,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Sockets the loop opened, with the part JavaScript writes through; handed over with the
    /// next batch (before JavaScript can see their `Open` record).
    /// `true` marks sockets opened by a connect (JavaScript may have closed them meanwhile).
    opened: Mutex<Vec<(SlotId, Arc<SocketIo>, bool)>>,
    /// The origin of socket timeout ticks.
    started: Instant,
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical section
/// here is a push, a swap or a counter update).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A handle to a running loop thread. Cloning it is cheap; [`EventLoop::stop`] stops the thread
/// for every clone.
#[derive(Clone, Debug)]
pub struct EventLoop {
    shared: Arc<Shared>,
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
            iteration: AtomicU64::new(0),
            config,
            thread: Mutex::new(None),
            opened: Mutex::default(),
            started: Instant::now(),
        });
        let loop_thread = LoopThread::new(Arc::clone(&shared), doorbell);
        let thread =
            std::thread::Builder::new().name("usockets-loop".into()).spawn(move || loop_thread.run())?;
        *lock(&shared.thread) = Some(thread);
        Ok(EventLoop { shared })
    }

    fn check_open(&self) -> Result<()> {
        if self.shared.stopping.load(Ordering::SeqCst) {
            return Err(Error::LoopClosed);
        }
        Ok(())
    }

    fn check_current(&self, id: SlotId) -> Result<()> {
        self.check_open()?;
        if lock(&self.shared.slots).is_current(id) {
            Ok(())
        } else {
            Err(Error::StaleHandle)
        }
    }

    fn submit(&self, command: Command) {
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
        if let Err(err) = self.shared.poller.watch(fd, id.index as usize, interest, Trigger::Edge) {
            self.submit(Command::UnwatchPoll { id });
            return Err(err.into());
        }
        Ok(())
    }

    pub fn change_poll(&self, id: SlotId, fd: RawFd, interest: u32) -> Result<()> {
        self.check_current(id)?;
        self.shared.poller.rewatch(fd, id.index as usize, interest, Trigger::Edge)?;
        self.submit(Command::ChangePoll { id, interest });
        Ok(())
    }

    pub fn stop_poll(&self, id: SlotId, fd: RawFd) -> Result<()> {
        self.check_current(id)?;
        // The fd may already be closed by its owner, which removed it from epoll by itself.
        let _ = self.shared.poller.unwatch(fd);
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

    /// Listens on `addr`; `exclusive` refuses to share the port (see [`crate::sys::listen_tcp`]).
    /// With `tls`, accepted connections handshake with it before JavaScript hears of them.
    pub fn listen(
        &self,
        js: &mut JsSide,
        addr: SocketAddr,
        exclusive: bool,
        tls: Option<Arc<TlsContext>>,
    ) -> Result<SlotId> {
        self.check_open()?;
        self.watch_listener(js, sys::listen_tcp(addr, exclusive)?, tls)
    }

    pub fn listen_unix(
        &self,
        js: &mut JsSide,
        path: &std::path::Path,
        tls: Option<Arc<TlsContext>>,
    ) -> Result<SlotId> {
        self.check_open()?;
        self.watch_listener(js, sys::listen_unix(path)?, tls)
    }

    fn watch_listener(
        &self,
        js: &mut JsSide,
        socket: sys::Socket,
        tls: Option<Arc<TlsContext>>,
    ) -> Result<SlotId> {
        let id = self.create_handle()?;
        let fd = socket.as_raw_fd();
        let listener = Arc::new(ListenerIo::new(socket, tls));
        self.submit(Command::Socket(SocketCommand::WatchListener { id, listener: Arc::clone(&listener) }));
        if let Err(err) = self.shared.poller.watch(fd, id.index as usize, READABLE, Trigger::Level) {
            self.release(id);
            return Err(err.into());
        }
        js.listeners.insert(id, listener);
        Ok(id)
    }

    /// The bound address of a listener (port -1 for Unix sockets), while it is open.
    pub fn listener_address(&self, js: &JsSide, id: SlotId) -> Option<(String, i32)> {
        js.listeners.get(id)?.local_address()
    }

    /// Stops accepting and closes the listening fd before returning, so the port is free.
    pub fn close_listener(&self, js: &mut JsSide, id: SlotId) {
        if let Some(listener) = js.listeners.remove(id) {
            if let Some(socket) = listener.take() {
                let _ = self.shared.poller.unwatch(socket.as_raw_fd());
            }
            self.release(id);
        }
    }

    /// Starts connecting a socket whose id the caller created; the outcome is an `Open` (for
    /// TLS, once the handshake completed) or a `ConnectError` record.
    pub fn connect(
        &self,
        js: &mut JsSide,
        id: SlotId,
        target: ConnectTarget,
        source: Option<IpAddr>,
        tls: Option<ClientTls>,
    ) -> Result<()> {
        self.check_current(id)?;
        js.connecting.insert(id);
        self.submit(Command::Socket(SocketCommand::Connect { id, target, source, tls }));
        Ok(())
    }

    /// `socket.write`: the bytes the kernel took now. TLS: the bytes queued for the loop to
    /// encrypt, as many as keep `bufferedAmount` within `high_water_mark`.
    pub fn write(&self, js: &JsSide, id: SlotId, data: &[u8], more: bool, high_water_mark: usize) -> usize {
        self.write_parts(js, id, &[data], more, high_water_mark)
    }

    /// `socket.write2`: both buffers in one writev (TLS: in the same records); the bytes taken.
    pub fn write2(
        &self,
        js: &JsSide,
        id: SlotId,
        header: &[u8],
        payload: &[u8],
        high_water_mark: usize,
    ) -> usize {
        self.write_parts(js, id, &[header, payload], false, high_water_mark)
    }

    fn write_parts(
        &self,
        js: &JsSide,
        id: SlotId,
        parts: &[&[u8]],
        more: bool,
        high_water_mark: usize,
    ) -> usize {
        let Some(io) = js.sockets.get(id) else { return 0 };
        let written = if io.is_tls() {
            let (taken, start) = io.queue_plaintext(parts, high_water_mark);
            if start {
                self.submit(Command::Socket(SocketCommand::Drain { id }));
            }
            taken
        } else if let [header, payload] = parts {
            io.write2(header, payload)
        } else {
            io.write(parts[0], more)
        };
        if written < parts.iter().map(|part| part.len()).sum() {
            self.submit(Command::Socket(SocketCommand::CheckWritable { id }));
        }
        written
    }

    /// `socket.send`: takes all of `data`, queueing what the kernel does not take now (TLS:
    /// queueing all of it for the loop to encrypt). Returns the bytes buffered afterwards; at
    /// `high_water_mark` or more, `Writable` reports the drain.
    pub fn send(&self, js: &JsSide, id: SlotId, data: &[u8], high_water_mark: usize) -> usize {
        let Some(io) = js.sockets.get(id) else { return 0 };
        if !io.is_tls() {
            let (buffered, start_draining) = io.send(data);
            if start_draining {
                self.submit(Command::Socket(SocketCommand::Drain { id }));
            }
            return buffered;
        }
        let (_, start_draining) = io.queue_plaintext(&[data], usize::MAX);
        if start_draining {
            self.submit(Command::Socket(SocketCommand::Drain { id }));
        }
        // Read once: the amount that makes JavaScript's `send` return false must be the one
        // that asks for the drain report (the loop thread changes it meanwhile).
        let buffered = io.buffered_amount();
        if buffered >= high_water_mark {
            self.submit(Command::Socket(SocketCommand::CheckWritable { id }));
        }
        buffered
    }

    /// What the TLS handshake of an open socket settled (None for plain sockets).
    pub fn tls_info(&self, js: &JsSide, id: SlotId) -> Option<TlsInfo> {
        js.sockets.get(id)?.tls_info().cloned()
    }

    /// JavaScript ran `onServerName` for the socket's handshake, which goes on.
    pub fn server_name_chosen(&self, id: SlotId) {
        if self.check_current(id).is_ok() {
            self.submit(Command::Socket(SocketCommand::ServerNameChosen { id }));
        }
    }

    pub fn buffered_amount(&self, js: &JsSide, id: SlotId) -> usize {
        js.sockets.get(id).map_or(0, |io| io.buffered_amount())
    }

    pub fn shutdown(&self, js: &JsSide, id: SlotId) {
        if let Some(io) = js.sockets.get(id) {
            io.shutdown();
            self.submit(Command::Socket(SocketCommand::Shutdown { id }));
        }
    }

    pub fn shutdown_read(&self, js: &JsSide, id: SlotId) {
        if let Some(io) = js.sockets.get(id) {
            io.shutdown_read();
        }
    }

    pub fn flush(&self, js: &JsSide, id: SlotId) {
        if let Some(io) = js.sockets.get(id) {
            io.flush();
        }
    }

    /// The socket's fd, or -1 once closed (or while connecting).
    pub fn socket_fd(&self, js: &JsSide, id: SlotId) -> RawFd {
        js.sockets.get(id).map_or(-1, |io| io.fd())
    }

    /// JavaScript closed the socket (or cancelled its connect): writes take nothing from now on,
    /// and the loop forgets it and frees the slot.
    pub fn close_socket(&self, js: &mut JsSide, id: SlotId) {
        js.connecting.remove(&id);
        if let Some(io) = js.sockets.remove(id) {
            io.kill();
        }
        if self.check_current(id).is_ok() {
            self.submit(Command::Socket(SocketCommand::CloseSocket { id }));
        }
    }

    /// JavaScript dispatched the loop's `Close` or `ConnectError` for the socket: free the slot.
    pub fn release_socket(&self, js: &mut JsSide, id: SlotId) {
        js.connecting.remove(&id);
        js.sockets.remove(id);
        self.release(id);
    }

    /// Arms (`Some`) or disarms a socket's timeout (`long`: its long timeout).
    /// `connecting` says the caller saw the socket still connecting: a connect timeout, ignored
    /// if the connect has completed by the time the loop applies it. The expiry's record carries
    /// `stamp`.
    pub fn set_socket_timeout(&self, id: SlotId, timeout: SocketTimeout) {
        let SocketTimeout { long, after, connecting, stamp } = timeout;
        if self.check_current(id).is_ok() {
            self.submit(Command::Socket(SocketCommand::SetTimeout { id, long, after, connecting, stamp }));
        }
    }

    pub fn pause(&self, id: SlotId, paused: bool) {
        if self.check_current(id).is_ok() {
            self.submit(Command::Socket(SocketCommand::Pause { id, paused }));
        }
    }

    /// Stops the loop thread and waits for it. Idempotent; afterwards every method fails with
    /// [`Error::LoopClosed`] or does nothing.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = self.shared.poller.notify();
        let thread = lock(&self.shared.thread).take();
        if let Some(thread) = thread {
            // A panic on the loop thread has already been reported by the panic hook; the
            // handle is closed either way.
            let _ = thread.join();
        }
    }

    /// Whether both handles refer to the same loop.
    pub fn is_same_loop(&self, other: &EventLoop) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct TimerState {
    stamp: u32,
    deadline: Option<Instant>,
    period: Option<Duration>,
    /// The sequence number of the iteration that last reported it (0: none since armed).
    reported_in: u64,
}

#[derive(Debug)]
struct PollState {
    stamp: u32,
    fd: RawFd,
    interest: u32,
    watching: bool,
    /// Reported and not yet acknowledged: not re-checked or reported again until then.
    awaiting_ack: bool,
    /// Queued for a readiness re-check.
    candidate: bool,
}

#[derive(Debug)]
enum Handle {
    Timer(TimerState),
    Poll(PollState),
    Socket(SocketState),
    Listener(ListenerState),
}

/// What a loop keeps on the JavaScript thread: the batch being dispatched, and the sockets
/// JavaScript writes to directly.
#[derive(Debug, Default)]
pub struct JsSide {
    batch: Batch,
    /// What acknowledging the batch taken last returns.
    taken: Taken,
    sockets: Slab<Arc<SocketIo>>,
    listeners: Slab<Arc<ListenerIo>>,
    /// Connects JavaScript started and has not seen open, failed or closed.
    connecting: HashSet<SlotId>,
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

    /// Moves the records out (to hand them to JavaScript without a copy). Its acknowledgement
    /// is unaffected.
    pub fn take_records(&mut self) -> Vec<u32> {
        self.batch.take_words()
    }
}

/// Everything only the loop thread touches.
struct LoopThread {
    shared: Arc<Shared>,
    doorbell: Doorbell,
    handles: Slab<Handle>,
    timers: TimerQueue,
    poller_events: poller::Events,
    /// What the poller reported this iteration, as (key, readable, writable): a copy, so the
    /// handlers may borrow the loop mutably (reused, never reallocated per iteration).
    ready: Vec<(usize, bool, bool)>,
    /// This iteration's events, published at its end.
    events: Batch,
    /// The sequence number of the last published iteration.
    seq: u64,
    /// Reported polls in report order, with the iteration that reported them.
    /// Reported polls in report order: id, the iteration that reported them, their stamp then.
    reported_polls: VecDeque<(SlotId, u64, u32)>,
    /// Polls whose readiness must be re-checked before they can be reported.
    poll_candidates: Vec<SlotId>,
    pollfds: Vec<libc::pollfd>,
    commands: Vec<Command>,
    /// Sockets the poller reported readable this iteration, and listeners with connections.
    io_candidates: Vec<SlotId>,
    /// Sockets and listeners that stopped watching for input because the loop ran out of credit.
    throttled: Vec<SlotId>,
    /// Listeners resting after accept failed for lack of fds, until `listeners_rest_until`.
    resting_listeners: Vec<SlotId>,
    listeners_rest_until: Option<Instant>,
    /// One receive buffer for all sockets: data is copied from it into the batch.
    recv_buffer: Vec<u8>,
    socket_timeouts: TimerQueue,
    long_timeouts: TimerQueue,
    pending_lookups: VecDeque<(SlotId, String, u16)>,
    lookups_running: usize,
}

/// Size of the loop's receive buffer (as uSockets: one large read per readable socket).
const RECV_BUFFER_BYTES: usize = 512 * 1024;

impl LoopThread {
    fn new(shared: Arc<Shared>, doorbell: Doorbell) -> LoopThread {
        LoopThread {
            shared,
            doorbell,
            handles: Slab::default(),
            timers: TimerQueue::default(),
            poller_events: poller::Events::new(),
            ready: Vec::new(),
            events: Batch::default(),
            seq: 0,
            reported_polls: VecDeque::new(),
            poll_candidates: Vec::new(),
            pollfds: Vec::new(),
            commands: Vec::new(),
            io_candidates: Vec::new(),
            throttled: Vec::new(),
            resting_listeners: Vec::new(),
            listeners_rest_until: None,
            recv_buffer: vec![0; RECV_BUFFER_BYTES],
            socket_timeouts: TimerQueue::default(),
            long_timeouts: TimerQueue::default(),
            pending_lookups: VecDeque::new(),
            lookups_running: 0,
        }
    }

    fn run(mut self) {
        sys::prefer_batches();
        let spin = self.shared.config.spin;
        let mut spin_until = None;
        while !self.shared.stopping.load(Ordering::SeqCst) {
            let mut timeout = self.prepare_wait();
            if spin_until.is_some_and(|until| Instant::now() < until) {
                // Let the JavaScript thread run if it shares the core, then look again.
                std::thread::yield_now();
                timeout = Some(Duration::ZERO);
            }
            if self.shared.poller.wait(&mut self.poller_events, timeout).is_err() {
                // Only a broken epoll fd fails here (EINTR is an empty iteration); back off
                // instead of spinning, and keep serving commands and timers.
                std::thread::sleep(Duration::from_millis(1));
            }
            self.shared.iteration.fetch_add(1, Ordering::Relaxed);
            self.apply_commands();
            self.collect_ready();
            self.collect_acknowledged_polls();
            self.report_polls();
            self.unthrottle();
            self.wake_listeners(Instant::now());
            self.process_io_candidates();
            self.fire_timers();
            if self.shared.wakeup_requested.swap(false, Ordering::SeqCst) {
                self.events.push(EventKind::Wakeup, 0, 0, 0);
            }
            if self.publish() && !spin.is_zero() {
                spin_until = Some(Instant::now() + spin);
            }
        }
        self.unwatch_all();
    }

    /// The iteration events are stamped with when published.
    fn current_seq(&self) -> u64 {
        self.seq + 1
    }

    /// Bytes of events the loop may still produce before JavaScript acknowledges some.
    fn credit(&self) -> usize {
        let held = self.shared.delivery.undelivered_bytes() + self.events.bytes();
        self.shared.config.max_pending_bytes.saturating_sub(held)
    }

    fn has_credit(&self) -> bool {
        self.credit() > 0
    }

    /// How long the next wait may sleep. When progress depends on JavaScript acknowledging a
    /// delivery (polls to re-check, or no credit left), the loop asks to be woken for it.
    fn prepare_wait(&mut self) -> Option<Duration> {
        let has_credit = self.has_credit();
        let needs_ack = !self.reported_polls.is_empty() || !has_credit;
        if needs_ack {
            self.shared.delivery.await_delivery();
            let delivered = self.shared.delivery.delivered_seq();
            let acked_poll = self.reported_polls.front().is_some_and(|&(_, seq, _)| seq <= delivered);
            if acked_poll || (!has_credit && self.has_credit()) {
                return Some(Duration::ZERO);
            }
        }
        if !has_credit {
            // Timers cannot fire without credit; the acknowledgement wakes the loop.
            return None;
        }
        if !self.poll_candidates.is_empty() || !self.throttled.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            self.timers.next_deadline(),
            self.socket_timeouts.next_deadline(),
            self.long_timeouts.next_deadline(),
            self.listeners_rest_until,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    fn apply_commands(&mut self) {
        std::mem::swap(&mut *lock(&self.shared.commands), &mut self.commands);
        let mut commands = std::mem::take(&mut self.commands);
        for command in commands.drain(..) {
            self.apply(command);
        }
        self.commands = commands;
    }

    fn apply(&mut self, command: Command) {
        match command {
            Command::ArmTimer { id, stamp, deadline, period } => {
                if !lock(&self.shared.slots).is_current(id) {
                    return;
                }
                self.disarm(id);
                self.timers.insert(deadline, id.index);
                let timer = TimerState { stamp, deadline: Some(deadline), period, reported_in: 0 };
                self.handles.insert(id, Handle::Timer(timer));
            }
            Command::DisarmTimer { id } => self.disarm(id),
            Command::WatchPoll { id, stamp, fd, interest } => {
                if !lock(&self.shared.slots).is_current(id) {
                    return;
                }
                let poll =
                    PollState { stamp, fd, interest, watching: true, awaiting_ack: false, candidate: false };
                self.handles.insert(id, Handle::Poll(poll));
            }
            Command::ChangePoll { id, interest } => {
                if let Some(Handle::Poll(poll)) = self.handles.get_mut(id) {
                    poll.interest = interest;
                    if poll.watching && !poll.awaiting_ack && !poll.candidate {
                        poll.candidate = true;
                        self.poll_candidates.push(id);
                    }
                }
            }
            Command::UnwatchPoll { id } => {
                if let Some(Handle::Poll(poll)) = self.handles.get_mut(id) {
                    poll.watching = false;
                    poll.awaiting_ack = false;
                }
            }
            Command::Release { id } => {
                self.disarm(id);
                self.forget_socket(id);
                if let Some(handle) = self.handles.remove(id) {
                    self.unwatch(&handle);
                }
                lock(&self.shared.slots).release(id);
            }
            Command::Socket(command) => self.apply_socket_command(command),
        }
    }

    fn disarm(&mut self, id: SlotId) {
        if let Some(Handle::Timer(timer)) = self.handles.get_mut(id) {
            if let Some(deadline) = timer.deadline.take() {
                self.timers.remove(deadline, id.index);
            }
        }
    }

    /// Hands what the poller reported to its handle: polls are queued for a re-check unless
    /// reported and unacknowledged; sockets and listeners are queued for reading / accepting.
    fn collect_ready(&mut self) {
        self.ready.clear();
        self.ready.extend(self.poller_events.iter().map(|event| (event.key, event.readable, event.writable)));
        for index in 0..self.ready.len() {
            let (key, readable, writable) = self.ready[index];
            match self.handles.get_by_index_mut(key) {
                Some((id, Handle::Poll(poll))) if poll.watching && !poll.awaiting_ack && !poll.candidate => {
                    poll.candidate = true;
                    self.poll_candidates.push(id);
                }
                Some((id, Handle::Socket(_))) => self.socket_ready(id, readable, writable),
                Some((id, Handle::Listener(_))) => self.listener_ready(id),
                _ => {}
            }
        }
    }

    /// Polls whose report JavaScript has dispatched: re-checked now, reported again if still ready.
    fn collect_acknowledged_polls(&mut self) {
        let delivered = self.shared.delivery.delivered_seq();
        while let Some(&(id, seq, stamp)) = self.reported_polls.front() {
            if seq > delivered {
                break;
            }
            self.reported_polls.pop_front();
            let Some(Handle::Poll(poll)) = self.handles.get_mut(id) else { continue };
            // A poll stopped and started again since this report awaits its new one instead.
            if poll.stamp != stamp {
                continue;
            }
            if poll.awaiting_ack && poll.watching && !poll.candidate {
                poll.candidate = true;
                self.poll_candidates.push(id);
            }
            poll.awaiting_ack = false;
        }
    }

    /// Re-checks the candidates' readiness in one `poll(2)` and reports the ready ones. Edge
    /// notifications can be stale (the fd was drained while its callback ran); the re-check
    /// makes every report true at the time it is made.
    fn report_polls(&mut self) {
        if self.poll_candidates.is_empty() || !self.has_credit() {
            return;
        }
        let mut candidates = std::mem::take(&mut self.poll_candidates);
        candidates
            .retain(|&id| matches!(self.handles.get(id), Some(Handle::Poll(p)) if p.watching && p.candidate));
        self.pollfds.clear();
        for &id in &candidates {
            if let Some(Handle::Poll(poll)) = self.handles.get(id) {
                let mut events = 0;
                if poll.interest & READABLE != 0 {
                    events |= libc::POLLIN;
                }
                if poll.interest & WRITABLE != 0 {
                    events |= libc::POLLOUT;
                }
                self.pollfds.push(libc::pollfd { fd: poll.fd, events, revents: 0 });
            }
        }
        if sys::poll_now(&mut self.pollfds).is_err() {
            // Cannot happen with a valid array; retry on the next iteration rather than lose them.
            self.poll_candidates = candidates;
            return;
        }
        let seq = self.current_seq();
        for (i, &id) in candidates.iter().enumerate() {
            let revents = self.pollfds[i].revents;
            let has_credit = self.has_credit();
            let Some(Handle::Poll(poll)) = self.handles.get_mut(id) else {
                continue;
            };
            let mut ready = 0;
            if revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                // Errors and hang-ups are reported as whatever the poll waits for, as in uSockets:
                // the callback's next read or write sees the error.
                ready = poll.interest;
            }
            if revents & libc::POLLIN != 0 {
                ready |= READABLE;
            }
            if revents & libc::POLLOUT != 0 {
                ready |= WRITABLE;
            }
            ready &= poll.interest;
            if ready == 0 {
                // Not ready after all: the next edge brings it back.
                poll.candidate = false;
            } else if has_credit {
                poll.candidate = false;
                poll.awaiting_ack = true;
                self.events.push(EventKind::Poll, id.index, poll.stamp, ready);
                self.reported_polls.push_back((id, seq, poll.stamp));
            } else {
                // Out of credit: keep it for when JavaScript catches up.
                self.poll_candidates.push(id);
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        self.fire_socket_timeouts(now);
        let delivered = self.shared.delivery.delivered_seq();
        let seq = self.current_seq();
        while self.has_credit() {
            let Some((deadline, index)) = self.timers.pop_due(now) else {
                break;
            };
            let Some((_, Handle::Timer(timer))) = self.handles.get_by_index_mut(index as usize) else {
                continue;
            };
            // A repeating timer whose previous expiry JavaScript has not dispatched yet skips
            // this one: expirations collapse instead of queueing up behind a busy thread.
            if timer.reported_in <= delivered {
                let arg = if timer.period.is_some() { 0 } else { TIMER_FINAL };
                self.events.push(EventKind::Timer, index, timer.stamp, arg);
                timer.reported_in = seq;
            }
            timer.deadline = timer.period.map(|period| timers::next_expiry(deadline, period, now));
            if let Some(next) = timer.deadline {
                self.timers.insert(next, index);
            }
        }
    }

    /// Hands the iteration's events over; returns whether there were any.
    fn publish(&mut self) -> bool {
        if self.events.is_empty() {
            return false;
        }
        self.seq += 1;
        if self.shared.delivery.publish(&mut self.events, self.seq) {
            (self.doorbell)();
        }
        true
    }

    /// Leaves no fd registered once the loop is gone (sockets' fds close with their last owner).
    fn unwatch_all(&mut self) {
        let handles: Vec<Handle> = self.handles.drain().collect();
        for handle in &handles {
            self.unwatch(handle);
        }
    }

    fn unwatch(&self, handle: &Handle) {
        match handle {
            Handle::Poll(poll) if poll.watching => {
                let _ = self.shared.poller.unwatch(poll.fd);
            }
            other => self.unwatch_socket(other),
        }
    }
}

#[cfg(test)]
mod tests;
