//! TCP, Unix and TLS sockets on the loop thread: accept, connect (with name resolution off the
//! loop thread), read into event batches, drain send buffers, TLS sessions, shutdown and
//! timeouts.
//!
//! A socket's descriptor is shared: the loop thread reads from it and the JavaScript thread
//! writes to it directly (plain TCP writes need no thread hop). The descriptor lives in a
//! [`SocketIo`] behind an `Arc` held by both threads, so it is closed only when neither uses it:
//! a number is never used after the descriptor may have been closed.
//!
//! TLS sockets take writes into the same shared queue as `send`, as plaintext; the loop thread
//! encrypts and sends them, so no crypto runs on the JavaScript thread. JavaScript hears `Open`
//! only once the handshake completed; a server socket whose handshake fails is never shown to
//! it, and a client's ends in `ConnectError`.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::batch::{open_payload, EventKind};
use super::poller::Trigger;
use super::{lock, Command, Handle, LoopThread, SlotId, READABLE, WRITABLE};
use crate::sys::{self, SockAddr, Socket};
use crate::tls::{Progress, TlsContext, TlsFailure, TlsInfo, TlsSession};
use tokio_rustls::rustls::pki_types::ServerName;

/// libuv's code for a failed name lookup, which Node reports as `ENOTFOUND`.
const UV_ENOTFOUND: i32 = -3008;

/// Most bytes read from one socket per loop iteration, so one busy peer cannot starve the rest.
const READ_BUDGET_PER_SOCKET: usize = 1 << 20;
/// Reads are never smaller than this, even with little credit left, so progress stays cheap.
pub(super) const MIN_READ_BYTES: usize = 16 * 1024;
/// How long a listener that could not accept (out of fds) rests before it tries again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Most connections accepted from one listener per loop iteration.
const ACCEPTS_PER_ITERATION: usize = 128;
/// Name lookups (`getaddrinfo`, which blocks) run on threads of their own, at most this many
/// per loop; further connects wait for one to finish.
const MAX_CONCURRENT_LOOKUPS: usize = 8;
/// Socket timeouts are coarse: they fire on ticks of this period, never early.
const TIMEOUT_GRANULARITY: Duration = Duration::from_secs(4);
/// A TLS handshake must complete this soon (plus up to one tick) after the TCP connection
/// opened, unless JavaScript set a connect timeout of its own; a server drops the connection
/// silently, a client reports `ERR_TLS_HANDSHAKE_TIMEOUT`.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The stamp of a handshake timeout the loop armed itself (JavaScript's stamps are never 0).
const HANDSHAKE_TIMEOUT_STAMP: u32 = 0;
/// TLS: plaintext is encrypted only while less ciphertext than this waits for the kernel, so a
/// slow peer holds its queue as plaintext rather than doubling it.
const TLS_OUTPUT_WINDOW: usize = 256 * 1024;
/// TLS: plaintext encrypted per step (rustls cuts it into records of 16 KiB).
const TLS_ENCRYPT_CHUNK: usize = 64 * 1024;
/// How much more plaintext than ciphertext one TLS read can yield: the rest of a record whose
/// beginning an earlier read left with the session (records hold at most 16 KiB of plaintext),
/// and the header of its Data record.
const TLS_RECORD_MARGIN: usize = 16 * 1024 + 256;

// Bits of `SocketIo::flags`.
/// JavaScript asked for a FIN (sent once the send buffer is empty).
const SHUTDOWN_REQUESTED: u32 = 1;
/// `shutdown(SHUT_WR)` was made.
const FIN_SENT: u32 = 2;
/// Closed by either side: writes take nothing.
const DEAD: u32 = 4;

/// What the loop thread and the JavaScript thread share of one socket.
#[derive(Debug)]
pub struct SocketIo {
    socket: Socket,
    flags: AtomicU32,
    /// Bytes taken by `send` that the kernel has not taken yet, in order. TLS: all plaintext
    /// written, not yet encrypted.
    send_buffer: Mutex<VecDeque<u8>>,
    /// The length of `send_buffer`, readable without its lock.
    buffered: AtomicUsize,
    /// TLS: writes go through the loop thread (which encrypts them).
    tls: bool,
    /// TLS: ciphertext the kernel has not taken yet.
    tls_output: AtomicUsize,
    /// TLS: what the handshake settled, set when it completed.
    tls_info: OnceLock<TlsInfo>,
    /// The errno of a failed write from the JavaScript thread (0: none). A failed send consumes
    /// the socket's pending error, so the loop would otherwise take a reset for an orderly end.
    write_error: AtomicI32,
}

impl SocketIo {
    fn new(socket: Socket, tls: bool) -> SocketIo {
        SocketIo {
            socket,
            flags: AtomicU32::new(0),
            send_buffer: Mutex::default(),
            buffered: AtomicUsize::new(0),
            tls,
            tls_output: AtomicUsize::new(0),
            tls_info: OnceLock::new(),
            write_error: AtomicI32::new(0),
        }
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The settled TLS parameters (None before the handshake completed, or for plain sockets).
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls_info.get()
    }

    /// The outcome of a send from the JavaScript thread: the count, or 0 with the error kept.
    fn sent(&self, result: io::Result<usize>) -> usize {
        result.unwrap_or_else(|err| {
            self.write_error.store(errno_of(&err), Ordering::Release);
            0
        })
    }

    /// The error the connection failed with: pending on the socket, or met by a write.
    fn failure(&self) -> Option<i32> {
        match sys::take_error(&self.socket) {
            Err(err) => Some(errno_of(&err)),
            Ok(()) => Some(self.write_error.load(Ordering::Acquire)).filter(|&errno| errno != 0),
        }
    }

    fn has(&self, flag: u32) -> bool {
        self.flags.load(Ordering::Acquire) & flag != 0
    }

    fn set(&self, flag: u32) {
        self.flags.fetch_or(flag, Ordering::AcqRel);
    }

    pub fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    /// Bytes taken by `send` (TLS: by any write, plus their records) and not yet handed to the
    /// kernel.
    pub fn buffered_amount(&self) -> usize {
        self.buffered.load(Ordering::Acquire) + self.tls_output.load(Ordering::Acquire)
    }

    /// TLS writes: queues as much of `parts` as keeps the buffered amount within `limit`, for
    /// the loop to encrypt. Returns the bytes taken and whether the loop must start (the queue
    /// was empty).
    pub fn queue_plaintext(&self, parts: &[&[u8]], limit: usize) -> (usize, bool) {
        if self.has(DEAD | SHUTDOWN_REQUESTED) {
            return (0, false);
        }
        let mut queue = lock(&self.send_buffer);
        let was_empty = queue.is_empty();
        let mut room = limit.saturating_sub(queue.len() + self.tls_output.load(Ordering::Acquire));
        let mut taken = 0;
        for part in parts {
            let count = part.len().min(room);
            queue.extend(&part[..count]);
            room -= count;
            taken += count;
        }
        self.buffered.store(queue.len(), Ordering::Release);
        (taken, was_empty && !queue.is_empty())
    }

    fn writable_now(&self) -> bool {
        !self.has(DEAD | SHUTDOWN_REQUESTED) && self.buffered_amount() == 0
    }

    /// `write`: what the kernel takes now, 0 when closed, shut down, or while `send` data waits
    /// (so bytes never overtake each other). Errors also take nothing: the reader sees them.
    pub fn write(&self, data: &[u8], more: bool) -> usize {
        if !self.writable_now() {
            return 0;
        }
        self.sent(sys::send(&self.socket, data, more))
    }

    /// `write2`: both buffers in one `sendmsg`.
    pub fn write2(&self, header: &[u8], payload: &[u8]) -> usize {
        if !self.writable_now() {
            return 0;
        }
        self.sent(sys::send2(&self.socket, header, payload, false))
    }

    /// `send`: writes what the kernel takes and queues the rest. Returns the bytes now queued,
    /// and whether the loop must start draining (the queue was empty before).
    pub fn send(&self, data: &[u8]) -> (usize, bool) {
        if self.has(DEAD | SHUTDOWN_REQUESTED) {
            return (self.buffered_amount(), false);
        }
        let mut buffer = lock(&self.send_buffer);
        let was_empty = buffer.is_empty();
        let written = if was_empty { self.sent(sys::send(&self.socket, data, false)) } else { 0 };
        buffer.extend(&data[written..]);
        self.buffered.store(buffer.len(), Ordering::Release);
        (buffer.len(), was_empty && !buffer.is_empty())
    }

    /// Writes queued bytes until the kernel takes no more. Returns true once the queue is empty.
    fn drain(&self) -> io::Result<bool> {
        let mut buffer = lock(&self.send_buffer);
        while !buffer.is_empty() {
            let (first, second) = buffer.as_slices();
            let written = sys::send2(&self.socket, first, second, false)?;
            if written == 0 {
                break;
            }
            buffer.drain(..written);
        }
        self.buffered.store(buffer.len(), Ordering::Release);
        if buffer.is_empty() {
            self.finish_shutdown()?;
        }
        Ok(buffer.is_empty())
    }

    /// `shutdown`: FIN now if nothing is queued, else after the queue drains (the loop does it,
    /// and for TLS always: close_notify goes first).
    pub fn shutdown(&self) {
        self.set(SHUTDOWN_REQUESTED);
        let buffer = lock(&self.send_buffer);
        if buffer.is_empty() && !self.tls {
            // A reset connection cannot be shut down; the reader reports the reset.
            let _ = self.finish_shutdown();
        }
    }

    fn finish_shutdown(&self) -> io::Result<()> {
        if self.has(SHUTDOWN_REQUESTED) && !self.has(FIN_SENT) {
            self.set(FIN_SENT);
            self.socket.shutdown(std::net::Shutdown::Write)?;
        }
        Ok(())
    }

    /// `shutdownRead`: the loop then reads an end of stream and reports `End`.
    pub fn shutdown_read(&self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Read);
    }

    /// `flush`: pushes out data held back by MSG_MORE.
    pub fn flush(&self) {
        if !self.has(DEAD) && !self.tls {
            let _ = sys::uncork(&self.socket);
        }
    }

    /// Makes every later write take nothing (the socket is closed as far as users are concerned).
    pub fn kill(&self) {
        self.set(DEAD);
    }
}

/// A listening socket, shared so that JavaScript can close it synchronously (the port is free
/// when `close()` returns) while the loop thread accepts from it.
#[derive(Debug)]
pub struct ListenerIo {
    socket: Mutex<Option<Socket>>,
    /// TLS listeners: the configuration accepted connections handshake with.
    tls: Option<Arc<TlsContext>>,
    /// The local address of every accepted connection, when the listener's own tells it (an
    /// address that is not a wildcard, or a path), so accepting needs no `getsockname`.
    accepted_local: Option<(String, i32)>,
}

impl ListenerIo {
    pub fn new(socket: Socket, tls: Option<Arc<TlsContext>>) -> ListenerIo {
        let accepted_local = socket
            .local_addr()
            .ok()
            .filter(|addr| addr.as_socket().is_none_or(|ip| !ip.ip().is_unspecified()))
            .map(|addr| sys::describe_address(&addr));
        ListenerIo { socket: Mutex::new(Some(socket)), tls, accepted_local }
    }

    /// The listening fd, if still open.
    pub fn fd(&self) -> Option<RawFd> {
        lock(&self.socket).as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Takes the socket out (the caller deregisters and closes it); later calls find nothing.
    pub fn take(&self) -> Option<Socket> {
        lock(&self.socket).take()
    }

    /// Changes what the poller reports for the listener, if it is still open. The lock is held
    /// across the call, so the fd cannot be closed (and its number reused) meanwhile.
    fn rewatch(&self, poller: &super::poller::Poller, key: usize, interest: u32) {
        if let Some(socket) = lock(&self.socket).as_ref() {
            let _ = poller.rewatch(socket.as_raw_fd(), key, interest, Trigger::Level);
        }
    }

    pub fn local_address(&self) -> Option<(String, i32)> {
        let socket = lock(&self.socket);
        socket.as_ref()?.local_addr().ok().map(|addr| sys::describe_address(&addr))
    }
}

/// How to (re)arm a socket's timeout: see [`super::EventLoop::set_socket_timeout`].
#[derive(Clone, Copy, Debug)]
pub struct SocketTimeout {
    /// The long timeout (minutes) rather than the short one.
    pub long: bool,
    /// When it expires; `None` disarms.
    pub after: Option<Duration>,
    /// The caller saw the socket connecting: a connect timeout.
    pub connecting: bool,
    /// Carried by the expiry's record.
    pub stamp: u32,
}

/// A TLS connect: the context's configuration and the name to verify (and send as SNI).
#[derive(Debug)]
pub struct ClientTls {
    pub context: Arc<TlsContext>,
    pub name: ServerName<'static>,
}

/// Where a connect goes.
#[derive(Debug)]
pub enum ConnectTarget {
    /// Addresses to try in turn.
    Addresses(Vec<SocketAddr>),
    /// A host name, resolved off the loop thread.
    Host(String, u16),
    Unix(PathBuf),
}

/// Requests for sockets and listeners, applied by the loop thread in order.
#[derive(Debug)]
pub(super) enum SocketCommand {
    /// The listening fd was registered with the poller by the caller.
    WatchListener {
        id: SlotId,
        listener: Arc<ListenerIo>,
    },
    Connect {
        id: SlotId,
        target: ConnectTarget,
        source: Option<IpAddr>,
        tls: Option<ClientTls>,
    },
    /// A name lookup finished (sent by its lookup thread).
    Resolved {
        id: SlotId,
        result: io::Result<Vec<SocketAddr>>,
    },
    /// A `write` was partial: report writability.
    CheckWritable {
        id: SlotId,
    },
    /// `send` queued bytes: drain them.
    Drain {
        id: SlotId,
    },
    /// JavaScript shut the socket down (it closes if the peer has finished too).
    Shutdown {
        id: SlotId,
    },
    /// JavaScript closed the socket: forget it and free its slot.
    CloseSocket {
        id: SlotId,
    },
    /// Arm (`after: Some`) or disarm a socket's timeout or long timeout. `connecting`: JavaScript
    /// saw the socket connecting, so this is a connect timeout, moot if the connect completed.
    /// The expiry's record carries `stamp`, so JavaScript can drop one a later call replaced.
    SetTimeout {
        id: SlotId,
        long: bool,
        after: Option<Duration>,
        connecting: bool,
        stamp: u32,
    },
    Pause {
        id: SlotId,
        paused: bool,
    },
    /// JavaScript ran `onServerName` for the socket's handshake: go on.
    ServerNameChosen {
        id: SlotId,
    },
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a name lookup.
    Resolving,
    /// A connect is in flight on `io`; `remaining` are the addresses left to try after it.
    Connecting {
        remaining: VecDeque<SockAddr>,
    },
    Open,
}

#[derive(Debug)]
pub(super) struct SocketState {
    io: Option<Arc<SocketIo>>,
    phase: Phase,
    source: Option<IpAddr>,
    /// Opened by a connect (JavaScript knows it from the start), not accepted.
    client: bool,
    /// The listener that accepted it (its `Open` names it).
    listener: Option<SlotId>,
    /// A TLS connect's configuration, until the TCP connection opens.
    client_tls: Option<ClientTls>,
    tls: Option<Box<TlsSession>>,
    /// A TLS server waits for JavaScript's `onServerName`: input is not read meanwhile.
    choosing_name: bool,
    /// The interest registered with the poller (level-triggered), kept equal to
    /// [`SocketState::wanted_interest`] by `sync_interest`.
    interest: u32,
    /// Whether the fd is registered at all. A socket that hung up while it was not reading
    /// (paused, or out of credit) is taken off the poller, which reports hang-ups whatever the
    /// interest, until it reads again and finds the end of its data.
    registered: bool,
    /// Input is not watched until the loop has credit again.
    throttled: bool,
    paused: bool,
    /// The peer's FIN was read.
    peer_finished: bool,
    /// A `write` was partial: report the next writability.
    wants_writable: bool,
    /// Deadline and stamp of the armed timeout and long timeout.
    timeout: Option<(Instant, u32)>,
    long_timeout: Option<(Instant, u32)>,
}

impl SocketState {
    fn new(phase: Phase, io: Option<Arc<SocketIo>>, source: Option<IpAddr>, interest: u32) -> SocketState {
        SocketState {
            io,
            phase,
            source,
            client: true,
            listener: None,
            client_tls: None,
            tls: None,
            choosing_name: false,
            interest,
            registered: true,
            throttled: false,
            paused: false,
            peer_finished: false,
            wants_writable: false,
            timeout: None,
            long_timeout: None,
        }
    }

    /// What the poller must report: writability while connecting, or while there is something
    /// to write or report; input while the socket reads.
    fn wanted_interest(&self) -> u32 {
        let Some(io) = &self.io else { return 0 };
        match self.phase {
            Phase::Resolving => 0,
            Phase::Connecting { .. } => WRITABLE,
            Phase::Open => {
                let reads = !self.paused && !self.peer_finished && !self.throttled && !self.choosing_name;
                let writes = match &self.tls {
                    // Plaintext waits only while ciphertext does.
                    Some(session) => !session.pending_output().is_empty(),
                    None => self.wants_writable || io.buffered_amount() > 0,
                };
                (if reads { READABLE } else { 0 }) | if writes { WRITABLE } else { 0 }
            }
        }
    }

    /// Whether JavaScript has seen it open (TLS: the handshake completed).
    fn open_for_js(&self) -> bool {
        matches!(self.phase, Phase::Open) && self.tls.as_ref().is_none_or(|session| session.is_open())
    }
}

#[derive(Debug)]
pub(super) struct ListenerState {
    io: Arc<ListenerIo>,
    /// Connections are not accepted until the loop has credit again.
    throttled: bool,
}

impl LoopThread {
    pub(super) fn apply_socket_command(&mut self, command: SocketCommand) {
        match command {
            SocketCommand::WatchListener { id, listener } => {
                if lock(&self.shared.slots).is_current(id) {
                    self.handles
                        .insert(id, Handle::Listener(ListenerState { io: listener, throttled: false }));
                }
            }
            SocketCommand::Connect { id, target, source, tls } => {
                if !lock(&self.shared.slots).is_current(id) {
                    return;
                }
                let mut state = SocketState::new(Phase::Resolving, None, source, 0);
                state.client_tls = tls;
                self.handles.insert(id, Handle::Socket(state));
                match target {
                    ConnectTarget::Addresses(addresses) => {
                        self.connect_next(id, addresses.into_iter().map(SockAddr::from).collect(), None)
                    }
                    ConnectTarget::Unix(path) => match SockAddr::unix(&path) {
                        Ok(addr) => self.connect_next(id, VecDeque::from([addr]), None),
                        Err(err) => self.fail_connect(id, errno_of(&err)),
                    },
                    ConnectTarget::Host(host, port) => {
                        self.pending_lookups.push_back((id, host, port));
                        self.start_lookups();
                    }
                }
            }
            SocketCommand::Resolved { id, result } => {
                self.lookups_running -= 1;
                self.start_lookups();
                if !matches!(
                    self.handles.get(id),
                    Some(Handle::Socket(SocketState { phase: Phase::Resolving, .. }))
                ) {
                    return; // closed while resolving
                }
                match result {
                    Ok(addresses) if !addresses.is_empty() => {
                        self.connect_next(id, addresses.into_iter().map(SockAddr::from).collect(), None)
                    }
                    _ => self.fail_connect(id, UV_ENOTFOUND),
                }
            }
            SocketCommand::CheckWritable { id } => {
                // Watching for writability (level-triggered) reports it as soon as it holds,
                // also if it came back before this command arrived. TLS reports the drain of
                // its queue, which may have happened already.
                if let Some(Handle::Socket(state)) = self.handles.get_mut(id) {
                    state.wants_writable = true;
                    if state.tls.is_some() {
                        self.flush_tls(id);
                    } else {
                        self.sync_interest(id);
                    }
                }
            }
            SocketCommand::Drain { id } => self.socket_writable(id),
            SocketCommand::Shutdown { id } if self.is_tls(id) => self.flush_tls(id),
            SocketCommand::Shutdown { id } => {
                // Both directions finished: the FIN is out (not still waiting behind `send`
                // data, whose drain closes the socket instead) and the peer's FIN came.
                if let Some(Handle::Socket(SocketState { peer_finished: true, io: Some(io), .. })) =
                    self.handles.get(id)
                {
                    if io.has(FIN_SENT) {
                        self.close_from_loop(id, 0);
                    }
                }
            }
            SocketCommand::CloseSocket { id } => {
                self.forget_socket(id);
                lock(&self.shared.slots).release(id);
            }
            SocketCommand::SetTimeout { id, long, after, connecting, stamp } => {
                let open = matches!(self.handles.get(id), Some(Handle::Socket(state)) if state.open_for_js());
                if !(connecting && open) {
                    self.set_timeout(id, long, after, stamp);
                }
            }
            SocketCommand::Pause { id, paused } => {
                if let Some(Handle::Socket(state)) = self.handles.get_mut(id) {
                    state.paused = paused;
                    self.sync_interest(id);
                }
            }
            SocketCommand::ServerNameChosen { id } => self.server_name_chosen(id),
        }
    }

    fn is_tls(&self, id: SlotId) -> bool {
        matches!(self.handles.get(id), Some(Handle::Socket(SocketState { tls: Some(_), .. })))
    }

    fn open_io(&self, id: SlotId) -> Option<Arc<SocketIo>> {
        match self.handles.get(id) {
            Some(Handle::Socket(SocketState { io: Some(io), phase: Phase::Open, .. })) => {
                Some(Arc::clone(io))
            }
            _ => None,
        }
    }

    /// Starts name lookups while fewer than the maximum run.
    fn start_lookups(&mut self) {
        while self.lookups_running < MAX_CONCURRENT_LOOKUPS {
            let Some((id, host, port)) = self.pending_lookups.pop_front() else { return };
            let shared = Arc::clone(&self.shared);
            let lookup = move || {
                let result = (host.as_str(), port).to_socket_addrs().map(Iterator::collect);
                lock(&shared.commands).push(Command::Socket(SocketCommand::Resolved { id, result }));
                let _ = shared.poller.notify();
            };
            match std::thread::Builder::new().name("usockets-dns".into()).spawn(lookup) {
                Ok(_) => self.lookups_running += 1,
                Err(err) => self.fail_connect(id, errno_of(&err)),
            }
        }
    }

    /// Tries the next address of a connecting socket; reports the last error when none is left.
    fn connect_next(&mut self, id: SlotId, mut remaining: VecDeque<SockAddr>, last_error: Option<i32>) {
        let Some(Handle::Socket(state)) = self.handles.get(id) else { return };
        let source = state.source;
        let mut error = last_error.unwrap_or(libc::ECONNREFUSED);
        while let Some(addr) = remaining.pop_front() {
            let attempt = sys::connect(&addr, source).and_then(|socket| {
                // Completion (or failure) shows as writability.
                self.shared.poller.watch(socket.as_raw_fd(), id.index as usize, WRITABLE, Trigger::Level)?;
                Ok(socket)
            });
            match attempt {
                Ok(socket) => {
                    if let Some(Handle::Socket(state)) = self.handles.get_mut(id) {
                        let tls = state.client_tls.is_some();
                        state.io = Some(Arc::new(SocketIo::new(socket, tls)));
                        state.phase = Phase::Connecting { remaining };
                        state.interest = WRITABLE;
                    }
                    return;
                }
                Err(err) => error = errno_of(&err),
            }
        }
        self.fail_connect(id, error);
    }

    fn fail_connect(&mut self, id: SlotId, code: i32) {
        self.forget_socket(id);
        self.events.push(EventKind::ConnectError, id.index, id.generation, code as u32);
    }

    /// The fd of a connecting socket became writable (or failed): open it or try the next address.
    fn connect_progress(&mut self, id: SlotId) {
        let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return };
        let (Some(io), Phase::Connecting { remaining }) = (state.io.clone(), &mut state.phase) else {
            return;
        };
        if let Err(err) = sys::take_error(&io.socket) {
            let remaining = std::mem::take(remaining);
            state.io = None;
            let _ = self.shared.poller.unwatch(io.fd());
            self.connect_next(id, remaining, Some(errno_of(&err)));
            return;
        }
        let Ok(remote) = io.socket.peer_addr() else {
            return; // not connected yet (ENOTCONN): reported again when it is
        };
        state.phase = Phase::Open;
        if let Some(ClientTls { context, name }) = state.client_tls.take() {
            // JavaScript hears `Open` after the handshake; a connect timeout covers it too.
            match TlsSession::client(context, name) {
                Ok(session) => state.tls = Some(Box::new(session)),
                Err(failure) => return self.fail_connect(id, failure.code()),
            }
            if state.timeout.is_none() {
                self.set_timeout(id, false, Some(TLS_HANDSHAKE_TIMEOUT), HANDSHAKE_TIMEOUT_STAMP);
            }
            self.flush_tls(id);
            return;
        }
        self.announce_open(id, Some(remote), None);
    }

    /// JavaScript hears that the socket opened (TLS: its handshake completed), with its
    /// addresses (`remote` and `local` when known, else asked of the socket), and gets its
    /// share of the socket to write through.
    fn announce_open(&mut self, id: SlotId, remote: Option<SockAddr>, local: Option<(String, i32)>) {
        let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return };
        let Some(io) = state.io.clone() else { return };
        // A connect (or handshake) timeout does not carry over to the open socket.
        if let Some((deadline, _)) = state.timeout.take() {
            self.socket_timeouts.remove(deadline, id.index);
        }
        if let Some(session) = &state.tls {
            let _ = io.tls_info.set(session.info());
        }
        let describe =
            |addr: io::Result<SockAddr>| addr.map(|addr| sys::describe_address(&addr)).unwrap_or_default();
        let remote = describe(remote.map_or_else(|| io.socket.peer_addr(), Ok));
        let local = local.unwrap_or_else(|| describe(io.socket.local_addr()));
        let payload = open_payload(state.listener, &remote, &local);
        lock(&self.shared.opened).push((id, io, state.client));
        self.events.push_with_payload(EventKind::Open, id.index, id.generation, &payload);
        self.sync_interest(id);
    }

    /// Registers what the socket now wants reported (a syscall only when that changed).
    fn sync_interest(&mut self, id: SlotId) {
        let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return };
        let wanted = state.wanted_interest();
        let Some(io) = &state.io else { return };
        let (fd, key) = (io.fd(), id.index as usize);
        if !state.registered {
            // Off the poller after a hang-up: back on once it has something to do.
            if wanted != 0 && self.shared.poller.watch(fd, key, wanted, Trigger::Level).is_ok() {
                state.registered = true;
                state.interest = wanted;
            }
        } else if wanted != state.interest
            && self.shared.poller.rewatch(fd, key, wanted, Trigger::Level).is_ok()
        {
            state.interest = wanted;
        }
    }

    /// Stops watching a socket's or listener's input until the loop has credit again.
    fn throttle(&mut self, id: SlotId) {
        match self.handles.get_mut(id) {
            Some(Handle::Socket(state)) if !state.throttled => {
                state.throttled = true;
                self.sync_interest(id);
            }
            Some(Handle::Listener(state)) if !state.throttled => {
                state.throttled = true;
                state.io.rewatch(&self.shared.poller, id.index as usize, 0);
            }
            _ => return,
        }
        self.throttled.push(id);
    }

    fn rest_listener(&mut self, id: SlotId, listener: &ListenerIo) {
        listener.rewatch(&self.shared.poller, id.index as usize, 0);
        self.resting_listeners.push(id);
        self.listeners_rest_until.get_or_insert(Instant::now() + ACCEPT_RETRY_DELAY);
    }

    /// Watches resting listeners again once their rest is over.
    pub(super) fn wake_listeners(&mut self, now: Instant) {
        if self.listeners_rest_until.is_none_or(|until| until > now) {
            return;
        }
        self.listeners_rest_until = None;
        for id in std::mem::take(&mut self.resting_listeners) {
            if let Some(Handle::Listener(state)) = self.handles.get(id) {
                if !state.throttled {
                    state.io.rewatch(&self.shared.poller, id.index as usize, READABLE);
                }
            }
        }
    }

    /// Watches the input of throttled sockets and listeners again once there is credit.
    pub(super) fn unthrottle(&mut self) {
        if self.throttled.is_empty() || !self.has_credit() {
            return;
        }
        for id in std::mem::take(&mut self.throttled) {
            match self.handles.get_mut(id) {
                Some(Handle::Socket(state)) => {
                    state.throttled = false;
                    self.sync_interest(id);
                }
                Some(Handle::Listener(state)) => {
                    state.throttled = false;
                    state.io.rewatch(&self.shared.poller, id.index as usize, READABLE);
                }
                _ => {}
            }
        }
    }

    pub(super) fn socket_ready(&mut self, id: SlotId, readable: bool, writable: bool) {
        let connecting = matches!(
            self.handles.get(id),
            Some(Handle::Socket(SocketState { phase: Phase::Connecting { .. }, .. }))
        );
        if connecting {
            self.connect_progress(id);
            return;
        }
        if writable {
            self.socket_writable(id);
        }
        if readable {
            self.io_candidates.push(id);
        }
    }

    pub(super) fn listener_ready(&mut self, id: SlotId) {
        self.io_candidates.push(id);
    }

    /// Drains the send buffer; reports `Writable` when it empties (or after a partial `write`).
    fn socket_writable(&mut self, id: SlotId) {
        if self.is_tls(id) {
            self.flush_tls(id);
            return;
        }
        let Some(io) = self.open_io(id) else { return };
        let mut report = io.buffered_amount() > 0;
        if let Some(Handle::Socket(state)) = self.handles.get_mut(id) {
            report |= std::mem::take(&mut state.wants_writable);
        }
        match io.drain() {
            Ok(true) => {
                if report {
                    self.events.push(EventKind::Writable, id.index, id.generation, 0);
                }
                if io.has(FIN_SENT) {
                    if let Some(Handle::Socket(SocketState { peer_finished: true, .. })) =
                        self.handles.get(id)
                    {
                        self.close_from_loop(id, 0);
                        return;
                    }
                }
            }
            Ok(false) => {}
            Err(err) => {
                self.close_from_loop(id, errno_of(&err));
                return;
            }
        }
        // Stop watching writability once there is nothing left to write or report.
        self.sync_interest(id);
    }

    /// Reads from the readable sockets and accepts on the ready listeners. Without credit,
    /// their input is throttled instead, until JavaScript catches up.
    pub(super) fn process_io_candidates(&mut self) {
        let mut candidates = std::mem::take(&mut self.io_candidates);
        for &id in &candidates {
            match self.handles.get(id) {
                // Reported while its input is throttled: an error or hang-up (always reported).
                Some(Handle::Socket(SocketState { throttled: true, io: Some(io), .. })) => {
                    let io = Arc::clone(io);
                    self.hang_up(id, &io);
                }
                _ if !self.has_credit() => self.throttle(id),
                Some(Handle::Socket(_)) => self.read_socket(id),
                Some(Handle::Listener(_)) => self.accept_connections(id),
                _ => {}
            }
        }
        candidates.clear();
        self.io_candidates = candidates;
    }

    fn read_socket(&mut self, id: SlotId) {
        let Some(Handle::Socket(state)) = self.handles.get(id) else { return };
        let Some(io) = state.io.clone() else { return };
        if !matches!(state.phase, Phase::Open) {
            return;
        }
        if state.peer_finished || state.paused || state.choosing_name {
            // Not watching input, so this is an error or a hang-up, which epoll always reports.
            self.hang_up(id, &io);
            return;
        }
        let tls = state.tls.is_some();
        let mut read = 0;
        loop {
            let credit = self.credit();
            if credit == 0 {
                self.throttle(id);
                return;
            }
            if read > 0 && credit < MIN_READ_BYTES {
                // The first read of an iteration may exceed a little credit (progress stays
                // cheap); the ones that join it may not, so one onData never carries more than
                // maxPendingBytes. The rest waits for the next iteration.
                return;
            }
            // Reading no more than the credit left keeps undelivered bytes within the limit
            // (give or take one small read). Whole words, so that a full read leaves the
            // socket's Data record open for the next one to join.
            let mut room = credit.clamp(MIN_READ_BYTES, self.recv_buffer.len()) & !3;
            if self.events.is_bulk() {
                // No read that a bulk batch would have to grow for: growing copies all of it.
                // (A TLS read may complete a record held from the previous one, so its
                // plaintext can exceed its ciphertext by up to a record.) What stays in the
                // socket is read into the next iteration's batch: the poller reports the socket
                // again (level-triggered).
                let margin = if tls { TLS_RECORD_MARGIN } else { 0 };
                room = room.min(self.events.spare_payload_bytes().saturating_sub(margin) & !3);
                if room < MIN_READ_BYTES {
                    return;
                }
            }
            // Plain data is received straight into the event batch; TLS ciphertext goes through
            // the receive buffer to its session.
            let received = if tls {
                sys::recv(&io.socket, &mut self.recv_buffer[..room])
            } else {
                self.events.push_received(id.index, id.generation, room, |words| {
                    sys::recv_words(&io.socket, words, room)
                })
            };
            match received {
                Ok(0) => {
                    self.peer_finished(id, &io);
                    return;
                }
                Ok(n) => {
                    read += n;
                    if tls {
                        // The plaintext lands in the batch (see `TLS_RECORD_MARGIN`).
                        self.events.reserve_payload(n + TLS_RECORD_MARGIN);
                        let buffer = std::mem::take(&mut self.recv_buffer);
                        let still_reading = self.tls_receive(id, &buffer[..n]);
                        self.recv_buffer = buffer;
                        if !still_reading {
                            return;
                        }
                    }
                    // A short read emptied the socket (and if more just arrived, the
                    // level-triggered poller reports it again): no read that only says EAGAIN.
                    if n < room || read >= READ_BUDGET_PER_SOCKET {
                        return;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => {
                    self.close_from_loop(id, errno_of(&err));
                    return;
                }
            }
        }
    }

    /// An error or hang-up on a socket that does not watch its input. An error closes it. A
    /// hang-up after the peer's FIN was read (so nothing is left to read) closes it orderly if we
    /// sent ours, with ECONNRESET if we did not (the connection died under a write). A hang-up
    /// while not reading (paused or out of credit) may still have data behind it: the socket
    /// leaves the poller until it reads again, and finds the end there.
    fn hang_up(&mut self, id: SlotId, io: &SocketIo) {
        if let Some(errno) = io.failure() {
            self.close_from_loop(id, errno);
            return;
        }
        let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return };
        if state.peer_finished {
            let errno = if io.has(FIN_SENT) { 0 } else { libc::ECONNRESET };
            self.close_from_loop(id, errno);
        } else if state.registered && self.shared.poller.unwatch(io.fd()).is_ok() {
            state.registered = false;
        }
    }

    fn peer_finished(&mut self, id: SlotId, io: &SocketIo) {
        let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return };
        state.peer_finished = true;
        if !state.open_for_js() {
            // The connection ended in the middle of a TLS handshake.
            let errno = io.failure().unwrap_or(libc::ECONNRESET);
            self.close_from_loop(id, errno);
        } else if let Some(errno) = io.failure() {
            // The end of the stream was a reset that a write from JavaScript ran into first.
            self.close_from_loop(id, errno);
        } else if io.has(FIN_SENT) {
            // Both directions are finished: the socket closes by itself.
            self.close_from_loop(id, 0);
        } else {
            self.events.push(EventKind::End, id.index, id.generation, 0);
            self.sync_interest(id);
        }
    }

    /// Accepts up to [`ACCEPTS_PER_ITERATION`] connections; the level-triggered poller reports
    /// the listener again while more wait in the backlog.
    fn accept_connections(&mut self, listener_id: SlotId) {
        let Some(Handle::Listener(state)) = self.handles.get(listener_id) else { return };
        let listener = Arc::clone(&state.io);
        let guard = lock(&listener.socket);
        let Some(listening) = guard.as_ref() else { return };
        for _ in 0..ACCEPTS_PER_ITERATION {
            if !self.has_credit() {
                drop(guard);
                self.throttle(listener_id);
                return;
            }
            let (socket, remote) = match sys::accept(listening) {
                Ok(Some(connection)) => connection,
                Ok(None) => break,
                Err(_) => {
                    // Out of fds (EMFILE, ENFILE) or memory: the connection waits in the backlog.
                    // The listener stays readable, so it rests a while instead of spinning.
                    drop(guard);
                    self.rest_listener(listener_id, &listener);
                    return;
                }
            };
            let Some(id) = lock(&self.shared.slots).allocate() else { continue };
            let fd = socket.as_raw_fd();
            if self.shared.poller.watch(fd, id.index as usize, READABLE, Trigger::Level).is_err() {
                lock(&self.shared.slots).release(id);
                continue;
            }
            let io = Arc::new(SocketIo::new(socket, listener.tls.is_some()));
            let mut state = SocketState::new(Phase::Open, Some(io), None, READABLE);
            state.client = false;
            state.listener = Some(listener_id);
            state.tls =
                listener.tls.as_ref().map(|context| Box::new(TlsSession::server(Arc::clone(context))));
            let tls = state.tls.is_some();
            self.handles.insert(id, Handle::Socket(state));
            if tls {
                // JavaScript hears of it once the handshake completed.
                self.set_timeout(id, false, Some(TLS_HANDSHAKE_TIMEOUT), HANDSHAKE_TIMEOUT_STAMP);
            } else {
                self.announce_open(id, Some(remote), listener.accepted_local.clone());
            }
        }
    }

    /// The loop closes a socket (error, or both sides finished): JavaScript hears `Close` and
    /// frees the slot when it has dispatched it. A TLS socket that never opened is a failed
    /// connect for a client; a server's is dropped without JavaScript ever hearing of it.
    fn close_from_loop(&mut self, id: SlotId, errno: i32) {
        let Some(Handle::Socket(state)) = self.handles.get(id) else { return };
        let (open, client) = (state.open_for_js(), state.client);
        if !open && client {
            self.fail_connect(id, errno);
        } else if self.forget_socket(id) {
            if open {
                self.events.push(EventKind::Close, id.index, id.generation, errno as u32);
            } else {
                lock(&self.shared.slots).release(id);
            }
        }
    }

    /// Feeds ciphertext just read to the socket's TLS session: plaintext becomes `Data`, a
    /// completed handshake `Open`, the peer's close_notify `End`, a name no pattern knows a
    /// `ServerName` question. Returns whether the socket should go on reading.
    fn tls_receive(&mut self, id: SlotId, mut input: &[u8]) -> bool {
        loop {
            let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return false };
            let Some(session) = state.tls.as_mut() else { return false };
            let events = &mut self.events;
            let progress = session
                .receive(&mut input, &mut |plaintext| events.push_data(id.index, id.generation, plaintext));
            match progress {
                Ok(Progress::Opened) => self.announce_open(id, None, None),
                Ok(Progress::NeedsName(name)) => {
                    state.choosing_name = true;
                    let listener = state.listener.unwrap_or(id);
                    let mut payload = Vec::with_capacity(8 + name.len());
                    payload.extend_from_slice(&listener.index.to_le_bytes());
                    payload.extend_from_slice(&listener.generation.to_le_bytes());
                    payload.extend_from_slice(name.as_bytes());
                    self.events.push_with_payload(EventKind::ServerName, id.index, id.generation, &payload);
                    self.sync_interest(id);
                    return false;
                }
                Ok(Progress::Consumed { peer_closed }) => {
                    self.flush_tls(id);
                    if peer_closed {
                        if let Some(Handle::Socket(SocketState {
                            io: Some(io), peer_finished: false, ..
                        })) = self.handles.get(id)
                        {
                            let io = Arc::clone(io);
                            self.peer_finished(id, &io);
                        }
                        return false;
                    }
                    return true;
                }
                Err(failure) => {
                    // The alert goes out first, if the kernel takes it.
                    self.flush_tls(id);
                    self.close_from_loop(id, failure.code());
                    return false;
                }
            }
        }
    }

    /// JavaScript's `onServerName` ran: the handshake goes on with the names it has now.
    fn server_name_chosen(&mut self, id: SlotId) {
        let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return };
        let Some(session) = state.tls.as_mut().filter(|_| state.choosing_name) else { return };
        state.choosing_name = false;
        match session.name_chosen() {
            Ok(held_input) => {
                if self.tls_receive(id, &held_input) {
                    self.sync_interest(id);
                }
            }
            Err(failure) => {
                self.flush_tls(id);
                self.close_from_loop(id, failure.code());
            }
        }
    }

    /// Moves a TLS socket's output along: encrypts queued plaintext (while little ciphertext
    /// waits), queues close_notify once a shutdown's data is out, sends what the kernel takes,
    /// and so on until the kernel takes no more or all is out; then the FIN. Reports `Writable`
    /// when a partial write or full `send` has drained. Ciphertext left waiting is what makes
    /// the socket watch writability, so plaintext never waits without it.
    fn flush_tls(&mut self, id: SlotId) {
        let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return };
        let (Some(io), Some(session)) = (state.io.clone(), state.tls.as_mut()) else { return };
        let mut failure = None;
        loop {
            if session.is_open() {
                let mut queue = lock(&io.send_buffer);
                while !queue.is_empty() && session.pending_output().len() < TLS_OUTPUT_WINDOW {
                    let (front, _) = queue.as_slices();
                    let taken = session.encrypt(&front[..front.len().min(TLS_ENCRYPT_CHUNK)]);
                    if taken == 0 {
                        break;
                    }
                    queue.drain(..taken);
                }
                io.buffered.store(queue.len(), Ordering::Release);
                if queue.is_empty() && io.has(SHUTDOWN_REQUESTED) {
                    session.close_notify();
                }
            }
            if session.pending_output().is_empty() {
                break;
            }
            match sys::send(&io.socket, session.pending_output(), false) {
                Ok(sent) if sent > 0 => session.consume_output(sent),
                Ok(_) => break,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => {
                    failure = Some(errno_of(&err));
                    break;
                }
            }
        }
        let output_done = session.pending_output().is_empty();
        io.tls_output.store(session.pending_output().len(), Ordering::Release);
        let fin_due = output_done && session.close_notify_queued() && !io.has(FIN_SENT);
        if state.wants_writable && io.buffered_amount() == 0 && state.open_for_js() {
            state.wants_writable = false;
            self.events.push(EventKind::Writable, id.index, id.generation, 0);
        }
        let peer_finished = state.peer_finished;
        if let Some(errno) = failure {
            self.close_from_loop(id, errno);
            return;
        }
        if fin_due {
            io.set(FIN_SENT);
            if io.socket.shutdown(std::net::Shutdown::Write).is_err() || peer_finished {
                self.close_from_loop(id, 0);
                return;
            }
        }
        self.sync_interest(id);
    }

    /// Drops the loop's part of a socket (its fd closes once JavaScript lets go too). Returns
    /// whether there was one.
    pub(super) fn forget_socket(&mut self, id: SlotId) -> bool {
        let Some(Handle::Socket(state)) = self.handles.get(id) else { return false };
        if let Some((deadline, _)) = state.timeout {
            self.socket_timeouts.remove(deadline, id.index);
        }
        if let Some((deadline, _)) = state.long_timeout {
            self.long_timeouts.remove(deadline, id.index);
        }
        if let Some(Handle::Socket(state)) = self.handles.remove(id) {
            if let Some(io) = state.io {
                io.kill();
                let _ = self.shared.poller.unwatch(io.fd());
            }
        }
        true
    }

    /// Arms (or with `after: None`, disarms) a socket's timeout, rounded up to the next tick.
    fn set_timeout(&mut self, id: SlotId, long: bool, after: Option<Duration>, stamp: u32) {
        let deadline = after.map(|after| self.next_tick(Instant::now() + after));
        let Some(Handle::Socket(state)) = self.handles.get_mut(id) else { return };
        let (slot, queue) = if long {
            (&mut state.long_timeout, &mut self.long_timeouts)
        } else {
            (&mut state.timeout, &mut self.socket_timeouts)
        };
        if let Some((old, _)) = slot.take() {
            queue.remove(old, id.index);
        }
        if let Some(deadline) = deadline {
            *slot = Some((deadline, stamp));
            queue.insert(deadline, id.index);
        }
    }

    /// The first timeout tick at or after `at`. Ticks are [`TIMEOUT_GRANULARITY`] apart from the
    /// loop's start, so sockets share wake-ups.
    fn next_tick(&self, at: Instant) -> Instant {
        let since_start = at.saturating_duration_since(self.shared.started).as_nanos();
        let granularity = TIMEOUT_GRANULARITY.as_nanos();
        let ticks = since_start.div_ceil(granularity);
        self.shared.started + Duration::from_nanos((ticks * granularity) as u64)
    }

    pub(super) fn fire_socket_timeouts(&mut self, now: Instant) {
        while let Some((_, index)) = self.socket_timeouts.pop_due(now) {
            let Some((id, Handle::Socket(state))) = self.handles.get_by_index_mut(index as usize) else {
                continue;
            };
            let stamp = state.timeout.take().map_or(0, |(_, stamp)| stamp);
            if state.open_for_js() {
                self.events.push(EventKind::Timeout, id.index, id.generation, stamp);
            } else if stamp == HANDSHAKE_TIMEOUT_STAMP {
                self.close_from_loop(id, TlsFailure::HandshakeTimeout.code());
            } else {
                // A timeout on a connecting socket is a connect timeout.
                self.fail_connect(id, libc::ETIMEDOUT);
            }
        }
        while let Some((_, index)) = self.long_timeouts.pop_due(now) {
            let Some((id, Handle::Socket(state))) = self.handles.get_by_index_mut(index as usize) else {
                continue;
            };
            let stamp = state.long_timeout.take().map_or(0, |(_, stamp)| stamp);
            if state.open_for_js() {
                self.events.push(EventKind::LongTimeout, id.index, id.generation, stamp);
            }
        }
    }

    /// Deregisters everything the loop watches before its thread ends.
    pub(super) fn unwatch_socket(&self, handle: &Handle) {
        match handle {
            Handle::Socket(SocketState { io: Some(io), .. }) => {
                io.kill();
                let _ = self.shared.poller.unwatch(io.fd());
            }
            Handle::Listener(state) => {
                if let Some(fd) = state.io.fd() {
                    let _ = self.shared.poller.unwatch(fd);
                }
            }
            _ => {}
        }
    }
}

/// The errno of an I/O error (EIO when it carries none).
fn errno_of(err: &io::Error) -> i32 {
    err.raw_os_error().unwrap_or(libc::EIO)
}
