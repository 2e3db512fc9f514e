//! A connected socket on the loop thread ([`Stream`]): its phase (resolving, connecting, open),
//! its transport (plain, or a TLS session: see `tls.rs`), reading into the event batch, draining
//! the send queue, the end of the stream and closing.
//!
//! A stream never removes itself: when the loop is done with it, it is marked finished and the
//! driver (`Net`) drops it after the step that finished it.

use std::collections::VecDeque;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::io::{errno_of, SocketIo, FIN_SENT};
use super::listener::{ListenerCounts, ListenerIo};
use super::preamble::Preamble;
use super::ClientTls;
use crate::event_loop::batch::{open_payload, EventKind, Opener};
use crate::event_loop::poller::{Poller, Trigger};
use crate::event_loop::services::Services;
use crate::event_loop::timeouts::{ArmedTimeouts, TimeoutKind};
use crate::event_loop::{lock, SlotId, READABLE, WRITABLE};
use crate::proxy::Expect;
use crate::sys::{self, SockAddr};
use crate::tls::{TlsContext, TlsFailure, TlsSession, DEFAULT_HANDSHAKE_TIMEOUT};

/// Most bytes read from one socket per loop iteration, so one busy peer cannot starve the rest.
const READ_BUDGET_PER_SOCKET: usize = 1 << 20;
/// Reads are never smaller than this, even with little credit left, so progress stays cheap.
pub(crate) const MIN_READ_BYTES: usize = 16 * 1024;
/// A PROXY protocol header must be read this soon (plus up to one tick) after accept; with TLS,
/// the header and the handshake together take at most the context's `handshakeTimeout`
/// (`Stream::handshake_timeout`). A TLS handshake must complete within it after the TCP
/// connection opened, unless JavaScript set a connect timeout of its own; a server drops the
/// connection silently, a client reports `ERR_TLS_HANDSHAKE_TIMEOUT`.
const PREAMBLE_TIMEOUT: Duration = DEFAULT_HANDSHAKE_TIMEOUT;
/// The stamp of a handshake timeout the loop armed itself (JavaScript's stamps are never 0).
pub(super) const HANDSHAKE_TIMEOUT_STAMP: u32 = 0;
/// How much more plaintext than ciphertext one TLS read can yield: the rest of a record whose
/// beginning an earlier read left with the session (records hold at most 16 KiB of plaintext),
/// and the header of its Data record.
pub(super) const TLS_RECORD_MARGIN: usize = 16 * 1024 + 256;

#[derive(Debug)]
pub(super) enum Phase {
    /// Waiting for a name lookup.
    Resolving,
    /// A connect is in flight on `io`; `remaining` are the addresses left to try after it.
    Connecting {
        remaining: VecDeque<SockAddr>,
    },
    Open,
}

/// What the bytes on the descriptor are: the application's, or a TLS session's records.
#[derive(Debug)]
pub(super) enum Transport {
    Plain,
    Tls(Box<TlsSession>),
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(super) id: SlotId,
    /// `None` while resolving, between connect attempts, and once finished.
    pub(super) io: Option<Arc<SocketIo>>,
    pub(super) phase: Phase,
    pub(super) source: Option<IpAddr>,
    /// Opened by a connect (JavaScript knows it from the start), not accepted.
    pub(super) client: bool,
    /// Handed over by JavaScript (`adoptFd`): a server socket JavaScript knows from the start.
    adopted: bool,
    /// The listener that accepted it (its `Open` names it).
    pub(super) listener: Option<SlotId>,
    /// What that listener counts (open connections, the ones closed before `Open`).
    counts: Option<Arc<ListenerCounts>>,
    /// An accepted connection's PROXY protocol header, until it has been read.
    pub(super) preamble: Option<Box<Preamble>>,
    /// The addresses a PROXY header reported (remote, local), for `Open` to announce.
    pub(super) proxied_addresses: Option<((String, i32), (String, i32))>,
    /// A TLS connect's configuration, until the TCP connection opens.
    pub(super) client_tls: Option<ClientTls>,
    pub(super) transport: Transport,
    /// JavaScript has heard `Open` (TLS: once the handshake completed).
    pub(super) announced: bool,
    /// The interest registered with the poller (level-triggered), kept equal to
    /// [`Stream::wanted_interest`] by `sync_interest`.
    pub(super) interest: u32,
    /// Whether the fd is registered at all. A socket that hung up while it was not reading
    /// (paused, or out of credit) is taken off the poller, which reports hang-ups whatever the
    /// interest, until it reads again and finds the end of its data.
    registered: bool,
    /// The loop iteration in which the socket stopped watching its input: a readable report of
    /// that iteration comes from its wait, from before the change, so it is not a hang-up.
    input_stopped_in: u64,
    /// Input is not watched until the loop has credit again.
    pub(super) throttled: bool,
    pub(super) paused: bool,
    /// The peer's FIN was read.
    pub(super) peer_finished: bool,
    /// STARTTLS (`upgrade.rs`): the socket became a TLS one, and waits for the bytes it had read
    /// in clear that JavaScript did not see; nothing is read until they are back.
    pub(super) awaiting_read_ahead: bool,
    /// STARTTLS: the handshake of an upgraded socket is under way (JavaScript knows the socket,
    /// but hears `Open` again when it completes).
    pub(super) upgrading: bool,
    /// A `write` was partial: report the next writability.
    pub(super) wants_writable: bool,
    pub(super) timeouts: ArmedTimeouts,
    /// The loop is done with it: the driver drops it after the current step.
    finished: bool,
}

impl Stream {
    fn new(id: SlotId, phase: Phase, io: Option<Arc<SocketIo>>, interest: u32) -> Stream {
        Stream {
            id,
            io,
            phase,
            source: None,
            client: true,
            adopted: false,
            listener: None,
            counts: None,
            preamble: None,
            proxied_addresses: None,
            client_tls: None,
            transport: Transport::Plain,
            announced: false,
            interest,
            registered: true,
            input_stopped_in: u64::MAX,
            throttled: false,
            paused: false,
            peer_finished: false,
            awaiting_read_ahead: false,
            upgrading: false,
            wants_writable: false,
            timeouts: ArmedTimeouts::default(),
            finished: false,
        }
    }

    /// A socket JavaScript asked to connect; it resolves its target first.
    pub(super) fn connecting(id: SlotId, source: Option<IpAddr>, client_tls: Option<ClientTls>) -> Stream {
        let mut stream = Stream::new(id, Phase::Resolving, None, 0);
        stream.source = source;
        stream.client_tls = client_tls;
        stream
    }

    /// A connection the listener `listener_id` accepted (registered for input); a TLS server
    /// if the listener is a TLS one.
    pub(super) fn accepted(
        id: SlotId,
        io: Arc<SocketIo>,
        listener_id: SlotId,
        listener: &ListenerIo,
    ) -> Stream {
        let mut stream = Stream::server(id, io, listener.tls.clone());
        stream.listener = Some(listener_id);
        listener.counts.open.fetch_add(1, Ordering::Relaxed);
        stream.counts = Some(Arc::clone(&listener.counts));
        stream
    }

    /// The server side of a connection (accepted or adopted), a TLS server with `tls`.
    fn server(id: SlotId, io: Arc<SocketIo>, tls: Option<Arc<TlsContext>>) -> Stream {
        let mut stream = Stream::new(id, Phase::Open, Some(io), READABLE);
        stream.client = false;
        if let Some(context) = tls {
            stream.transport = Transport::Tls(Box::new(TlsSession::server(context)));
        }
        stream
    }

    /// An inherited connected socket (`adoptFd`), opened as an accepted one is (a TLS server
    /// handshakes first) but known to JavaScript from the start: a failure before `Open` is
    /// reported as a `ConnectError`.
    pub(super) fn adopt(
        services: &mut Services,
        id: SlotId,
        socket: sys::Socket,
        tls: Option<Arc<TlsContext>>,
    ) -> Stream {
        let checked = socket.peer_addr().and_then(|remote| {
            services.poller().watch(socket.as_fd(), id.index as usize, READABLE, Trigger::Level)?;
            Ok(remote)
        });
        let io = Arc::new(SocketIo::new(socket, tls.is_some()));
        let mut stream = Stream::server(id, io, tls);
        stream.adopted = true;
        match checked {
            Ok(remote) => stream.begin_accepted(services, remote, None, None),
            Err(err) => stream.fail_connect(services, errno_of(&err)),
        }
        stream
    }

    /// The pre-open stage of an accepted connection: everything between accept and `Open`.
    /// With `proxy`, the PROXY header comes first (`preamble.rs`); then a TLS server handshakes
    /// (JavaScript hears of it once that completed); a plain socket opens at once. The
    /// handshake timeout bounds the header and the handshake together.
    pub(super) fn begin_accepted(
        &mut self,
        services: &mut Services,
        remote: SockAddr,
        local: Option<(String, i32)>,
        proxy: Option<Expect>,
    ) {
        if proxy.is_some() || self.is_tls() {
            let timeout = Some(self.handshake_timeout());
            self.set_timeout(services, TimeoutKind::Short, timeout, HANDSHAKE_TIMEOUT_STAMP);
        }
        match proxy {
            Some(expect) => self.preamble = Some(Box::new(Preamble::new(expect, remote, local))),
            None if !self.is_tls() => self.announce_open(services, Some(remote), local),
            None => {}
        }
    }

    /// Whether JavaScript made the socket (a connect, an adoption) rather than hears of it
    /// first in its `Open` (an accepted one).
    fn known_to_javascript(&self) -> bool {
        self.client || self.adopted
    }

    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    pub(super) fn is_tls(&self) -> bool {
        matches!(self.transport, Transport::Tls(_))
    }

    /// How long the stage before `Open` may take: a TLS context's handshake timeout, else the
    /// PROXY header's.
    pub(super) fn handshake_timeout(&self) -> Duration {
        match &self.transport {
            Transport::Tls(session) => session.handshake_timeout(),
            Transport::Plain => PREAMBLE_TIMEOUT,
        }
    }

    /// Whether the socket reads its input now.
    fn reads_input(&self) -> bool {
        !self.paused
            && !self.peer_finished
            && !self.throttled
            && !self.choosing_name()
            && !self.awaiting_read_ahead
    }

    /// A TLS server waiting for JavaScript's `onServerName`: its input is not read meanwhile.
    fn choosing_name(&self) -> bool {
        matches!(&self.transport, Transport::Tls(session) if session.is_choosing_name())
    }

    /// What the poller must report: writability while connecting, or while there is something
    /// to write or report; input while the socket reads.
    fn wanted_interest(&self) -> u32 {
        let Some(io) = &self.io else { return 0 };
        match self.phase {
            Phase::Resolving => 0,
            Phase::Connecting { .. } => WRITABLE,
            Phase::Open => {
                let reads = self.reads_input();
                let writes = match &self.transport {
                    // Plaintext waits only while ciphertext does.
                    Transport::Tls(session) => !session.pending_output().is_empty(),
                    Transport::Plain => self.wants_writable || io.buffered_amount() > 0,
                };
                (if reads { READABLE } else { 0 }) | if writes { WRITABLE } else { 0 }
            }
        }
    }

    /// Registers what the socket now wants reported (a syscall only when that changed).
    pub(super) fn sync_interest(&mut self, services: &Services) {
        let wanted = self.wanted_interest();
        if self.interest & READABLE != 0 && wanted & READABLE == 0 {
            self.input_stopped_in = services.iteration();
        }
        let Some(io) = &self.io else { return };
        let (fd, key) = (io.as_fd(), self.id.index as usize);
        let poller = services.poller();
        if !self.registered {
            // Off the poller after a hang-up: back on once it has something to do.
            if wanted != 0 && poller.watch(fd, key, wanted, Trigger::Level).is_ok() {
                self.registered = true;
                self.interest = wanted;
            }
        } else if wanted != self.interest && poller.rewatch(fd, key, wanted, Trigger::Level).is_ok() {
            self.interest = wanted;
        }
    }

    /// The poller reported the socket. Returns whether it should read (in the iteration's read
    /// pass, after every handle's writability was handled).
    pub(super) fn ready(&mut self, services: &mut Services, readable: bool, writable: bool) -> bool {
        if matches!(self.phase, Phase::Connecting { .. }) {
            self.connect_progress(services);
            return false;
        }
        if writable {
            self.writable(services);
        }
        readable
    }

    /// Stops watching input until the loop has credit again.
    pub(super) fn throttle(&mut self, services: &mut Services) {
        if !self.throttled {
            self.throttled = true;
            self.sync_interest(services);
            services.throttled.push(self.id);
        }
    }

    pub(super) fn unthrottle(&mut self, services: &Services) {
        self.throttled = false;
        self.sync_interest(services);
    }

    pub(super) fn pause(&mut self, services: &Services, paused: bool) {
        self.paused = paused;
        self.sync_interest(services);
    }

    /// A `write` was partial: report writability. Watching for it (level-triggered) reports it as
    /// soon as it holds, also if it came back before this command arrived. TLS reports the drain
    /// of its queue, which may have happened already.
    pub(super) fn check_writable(&mut self, services: &mut Services) {
        self.wants_writable = true;
        if self.is_tls() {
            self.flush_tls(services);
        } else {
            self.sync_interest(services);
        }
    }

    /// JavaScript shut the socket down: TLS sends close_notify (then the FIN); a plain socket
    /// whose FIN is out (not still waiting behind `send` data, whose drain closes the socket
    /// instead) closes if the peer's FIN came too.
    pub(super) fn shutdown_requested(&mut self, services: &mut Services) {
        if self.is_tls() {
            self.flush_tls(services);
        } else if self.peer_finished && self.io.as_ref().is_some_and(|io| io.has(FIN_SENT)) {
            self.close_from_loop(services, 0);
        }
    }

    /// Drains the send buffer; reports `Writable` when it empties (or after a partial `write`).
    pub(super) fn writable(&mut self, services: &mut Services) {
        if self.is_tls() {
            self.flush_tls(services);
            return;
        }
        let Some(io) = self.io.clone().filter(|_| matches!(self.phase, Phase::Open)) else { return };
        // Both: a pending partial-write report is consumed by this drain either way.
        let report = (io.buffered_amount() > 0) | std::mem::take(&mut self.wants_writable);
        match io.drain() {
            Ok(true) => {
                if report {
                    services.events.push(EventKind::Writable, self.id.index, self.id.generation, 0);
                }
                if io.has(FIN_SENT) && self.peer_finished {
                    self.close_from_loop(services, 0);
                    return;
                }
            }
            Ok(false) => {}
            Err(err) => {
                self.close_from_loop(services, errno_of(&err));
                return;
            }
        }
        // Stop watching writability once there is nothing left to write or report.
        self.sync_interest(services);
    }

    /// Reads what the socket has, within the loop's credit and the per-socket budget. Plain
    /// data is received straight into the event batch; TLS ciphertext goes through
    /// `recv_buffer` to its session.
    pub(super) fn read(&mut self, services: &mut Services, recv_buffer: &mut [u8]) {
        let Some(io) = self.io.clone() else { return };
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        if self.preamble.is_some() {
            self.read_preamble(services, &io, recv_buffer);
            return;
        }
        if !self.reads_input() {
            // Not watching input, so this is an error or a hang-up, which epoll always reports.
            self.hang_up(services, &io);
            return;
        }
        let tls = self.is_tls();
        let id = self.id;
        let mut read = 0;
        loop {
            let credit = services.credit();
            if credit == 0 {
                self.throttle(services);
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
            let mut room = credit.clamp(MIN_READ_BYTES, recv_buffer.len()) & !3;
            if services.events.is_bulk() {
                // No read that a bulk batch would have to grow for: growing copies all of it.
                // (A TLS read may complete a record held from the previous one, so its
                // plaintext can exceed its ciphertext by up to a record.) What stays in the
                // socket is read into the next iteration's batch: the poller reports the socket
                // again (level-triggered).
                let margin = if tls { TLS_RECORD_MARGIN } else { 0 };
                room = room.min(services.events.spare_payload_bytes().saturating_sub(margin) & !3);
                if room < MIN_READ_BYTES {
                    return;
                }
            }
            let received = if tls {
                sys::recv(&io.socket, &mut recv_buffer[..room])
            } else {
                services.events.push_received(id.index, id.generation, room, |words| {
                    sys::recv_words(&io.socket, words, room)
                })
            };
            match received {
                Ok(0) => {
                    self.peer_finished(services, &io);
                    return;
                }
                Ok(n) => {
                    read += n;
                    services.note_read(read);
                    if tls {
                        // The plaintext lands in the batch (see `TLS_RECORD_MARGIN`).
                        services.events.reserve_payload(n + TLS_RECORD_MARGIN);
                        if !self.tls_receive(services, &recv_buffer[..n]) {
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
                    self.close_from_loop(services, errno_of(&err));
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
    pub(super) fn hang_up(&mut self, services: &mut Services, io: &SocketIo) {
        if self.input_stopped_in == services.iteration() {
            // The report came from this iteration's wait, from before the socket stopped
            // watching its input (a pause or an upgrade applied after it): it was readable then,
            // which says nothing of a hang-up. A real one is reported again by the next wait.
            return;
        }
        if let Some(errno) = io.failure() {
            self.close_from_loop(services, errno);
        } else if self.peer_finished {
            let errno = if io.has(FIN_SENT) { 0 } else { libc::ECONNRESET };
            self.close_from_loop(services, errno);
        } else if self.registered && services.poller().unwatch(io.as_fd()).is_ok() {
            self.registered = false;
        }
    }

    pub(super) fn peer_finished(&mut self, services: &mut Services, io: &SocketIo) {
        self.peer_finished = true;
        if !self.announced || self.upgrading {
            // The connection ended in the middle of a TLS handshake.
            let errno = io.failure().unwrap_or(libc::ECONNRESET);
            self.close_from_loop(services, errno);
        } else if let Some(errno) = io.failure() {
            // The end of the stream was a reset that a write from JavaScript ran into first.
            self.close_from_loop(services, errno);
        } else if io.has(FIN_SENT) {
            // Both directions are finished: the socket closes by itself.
            self.close_from_loop(services, 0);
        } else {
            services.events.push(EventKind::End, self.id.index, self.id.generation, 0);
            self.sync_interest(services);
        }
    }

    /// JavaScript hears that the socket opened (TLS: its handshake completed), with its
    /// addresses (`remote` and `local` when known, else asked of the socket), and gets its
    /// share of the socket to write through.
    pub(super) fn announce_open(
        &mut self,
        services: &mut Services,
        remote: Option<SockAddr>,
        local: Option<(String, i32)>,
    ) {
        let Some(io) = self.io.clone() else { return };
        // The handshake of a socket JavaScript already had open (STARTTLS) completed.
        let upgraded = std::mem::take(&mut self.upgrading);
        // A connect (or handshake) timeout does not carry over to the open socket.
        services.timeouts.set(&mut self.timeouts, self.id.index, TimeoutKind::Short, None, 0);
        if let Transport::Tls(session) = &self.transport {
            let _ = io.tls_info.set(session.info());
        }
        let describe =
            |addr: io::Result<SockAddr>| addr.map(|addr| sys::describe_address(&addr)).unwrap_or_default();
        let (remote, local) = match self.proxied_addresses.take() {
            Some(addresses) => addresses,
            None => (
                describe(remote.map_or_else(|| io.socket.peer_addr(), Ok)),
                local.unwrap_or_else(|| describe(io.socket.local_addr())),
            ),
        };
        // An upgraded socket's `Open` names no listener: JavaScript has its handle.
        let opener = match self.listener {
            Some(listener) if !upgraded => Opener::Listener(listener),
            _ if self.client => Opener::Connect,
            _ => Opener::Adoption,
        };
        let payload = open_payload(opener, &remote, &local);
        if !upgraded {
            lock(&services.shared.opened).push((self.id, io, self.known_to_javascript()));
        }
        self.announced = true;
        services.events.push_with_payload(EventKind::Open, self.id.index, self.id.generation, &payload);
        self.sync_interest(services);
    }

    /// Arms (or with `after: None`, disarms) one of the socket's timeouts.
    pub(super) fn set_timeout(
        &mut self,
        services: &mut Services,
        kind: TimeoutKind,
        after: Option<Duration>,
        stamp: u32,
    ) {
        services.timeouts.set(&mut self.timeouts, self.id.index, kind, after, stamp);
    }

    /// JavaScript's `timeout` / `longTimeout`. `connecting`: JavaScript saw the socket
    /// connecting, so this is a connect timeout, moot if the connect has completed meanwhile.
    pub(super) fn timeout_requested(
        &mut self,
        services: &mut Services,
        kind: TimeoutKind,
        after: Option<Duration>,
        connecting: bool,
        stamp: u32,
    ) {
        if !(connecting && self.announced) {
            self.set_timeout(services, kind, after, stamp);
        }
    }

    /// One of the socket's timeouts expired. Before `Open`, a short one is the loop's
    /// handshake bound or JavaScript's connect timeout.
    pub(super) fn timeout_expired(&mut self, services: &mut Services, kind: TimeoutKind) {
        let stamp = self.timeouts.fired(kind);
        let (id, announced) = (self.id, self.announced);
        match kind {
            TimeoutKind::Short if stamp == HANDSHAKE_TIMEOUT_STAMP && (self.upgrading || !announced) => {
                self.close_from_loop(services, TlsFailure::HandshakeTimeout.code())
            }
            TimeoutKind::Short if announced => {
                services.events.push(EventKind::Timeout, id.index, id.generation, stamp)
            }
            // A timeout on a connecting socket is a connect timeout.
            TimeoutKind::Short => self.fail_connect(services, libc::ETIMEDOUT),
            TimeoutKind::Long if announced => {
                services.events.push(EventKind::LongTimeout, id.index, id.generation, stamp)
            }
            TimeoutKind::Long => {}
        }
    }

    /// The loop closes the socket (error, or both sides finished): JavaScript hears `Close` and
    /// frees the slot when it has dispatched it. A socket that never opened is a failed connect
    /// for a client; a server's is dropped without JavaScript ever hearing of it.
    pub(super) fn close_from_loop(&mut self, services: &mut Services, errno: i32) {
        if self.finished {
            return;
        }
        if !self.announced && self.known_to_javascript() {
            self.fail_connect(services, errno);
            return;
        }
        if let Some(counts) = self.counts.as_ref().filter(|_| !self.announced) {
            counts.rejected.fetch_add(1, Ordering::Relaxed);
        }
        self.forget(services);
        if self.announced {
            services.events.push(EventKind::Close, self.id.index, self.id.generation, errno as u32);
        } else {
            services.slots().release(self.id);
        }
    }

    pub(super) fn fail_connect(&mut self, services: &mut Services, code: i32) {
        self.forget(services);
        services.events.push(EventKind::ConnectError, self.id.index, self.id.generation, code as u32);
    }

    /// Drops the loop's part of the socket (its fd closes once JavaScript lets go too) and
    /// marks it finished.
    pub(super) fn forget(&mut self, services: &mut Services) {
        if let Some(counts) = self.counts.take() {
            counts.open.fetch_sub(1, Ordering::Relaxed);
        }
        services.timeouts.clear(&mut self.timeouts, self.id.index);
        if let Some(io) = self.io.take() {
            io.kill();
            let _ = services.poller().unwatch(io.as_fd());
        }
        self.finished = true;
    }

    /// Deregisters the socket before the loop thread ends.
    pub(super) fn unwatch(&self, poller: &Poller) {
        if let Some(io) = &self.io {
            io.kill();
            let _ = poller.unwatch(io.as_fd());
        }
    }
}
