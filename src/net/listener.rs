//! Listening sockets: the part JavaScript closes synchronously ([`ListenerIo`]), how listening
//! is configured ([`ListenOptions`]), and accepting on the loop thread, which hands each new
//! connection to its pre-open stage ([`Stream::begin_accepted`]).

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::io::SocketIo;
use super::stream::Stream;
use super::Net;
use crate::event_loop::poller::{Poller, Trigger};
use crate::event_loop::services::Services;
use crate::event_loop::{lock, SlotId, READABLE};
use crate::proxy::Expect;
use crate::sys::{self, Socket};
use crate::tls::TlsContext;

/// How long a listener that could not accept (out of fds) rests before it tries again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Most connections accepted from one listener per loop iteration.
const ACCEPTS_PER_ITERATION: usize = 128;

/// How a listener binds, and what it does with the connections it accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListenOptions {
    /// Refuse to share the port (no SO_REUSEPORT), as `LISTEN_EXCLUSIVE_PORT`.
    pub exclusive: bool,
    /// An IPv6 wildcard takes IPv6 connections only (IPV6_V6ONLY), not IPv4 ones as well.
    pub ipv6_only: bool,
    /// The accept queue's length (`listen(2)`, capped by the kernel's somaxconn); `None`:
    /// [`crate::sys::LISTEN_BACKLOG`].
    pub backlog: Option<u32>,
    /// Connections open at once, at most: one more is accepted and closed at once (counted in
    /// `dropped`). `None`: no limit.
    pub max_connections: Option<usize>,
    /// Accepted connections begin with a PROXY protocol header (see `crate::proxy`).
    pub proxy: Option<Expect>,
}

/// What a listener counts, shared with the streams it accepted (each counts itself).
#[derive(Debug, Default)]
pub(super) struct ListenerCounts {
    /// Accepted and closed before JavaScript heard of them: garbage or a failed TLS handshake,
    /// a bad PROXY header, a handshake timeout, a peer that left during the handshake.
    pub(super) rejected: AtomicU64,
    /// Closed at once because `max_connections` were open.
    pub(super) dropped: AtomicU64,
    /// Accepted and not yet closed.
    pub(super) open: AtomicUsize,
}

/// A listening socket, shared so that JavaScript can close it synchronously (the port is free
/// when `close()` returns) while the loop thread accepts from it.
#[derive(Debug)]
pub struct ListenerIo {
    socket: Mutex<Option<Socket>>,
    /// TLS listeners: the configuration accepted connections handshake with.
    pub(super) tls: Option<Arc<TlsContext>>,
    /// The local address of every accepted connection, when the listener's own tells it (an
    /// address that is not a wildcard, or a path), so accepting needs no `getsockname`.
    accepted_local: Option<(String, i32)>,
    pub(super) options: ListenOptions,
    pub(super) counts: Arc<ListenerCounts>,
}

impl ListenerIo {
    pub fn new(socket: Socket, tls: Option<Arc<TlsContext>>, options: ListenOptions) -> ListenerIo {
        let accepted_local = socket
            .local_addr()
            .ok()
            .filter(|addr| addr.as_socket().is_none_or(|ip| !ip.ip().is_unspecified()))
            .map(|addr| sys::describe_address(&addr));
        ListenerIo { socket: Mutex::new(Some(socket)), tls, accepted_local, options, counts: Arc::default() }
    }

    /// Registers the listener for connections under `key`.
    pub(super) fn watch(&self, poller: &Poller, key: usize) -> std::io::Result<()> {
        match lock(&self.socket).as_ref() {
            Some(socket) => poller.watch(socket.as_fd(), key, READABLE, Trigger::Level),
            None => Ok(()),
        }
    }

    /// Deregisters the listener, if it is still open.
    pub(super) fn unwatch(&self, poller: &Poller) {
        if let Some(socket) = lock(&self.socket).as_ref() {
            let _ = poller.unwatch(socket.as_fd());
        }
    }

    /// Takes the socket out (the caller deregisters and closes it); later calls find nothing.
    pub fn take(&self) -> Option<Socket> {
        lock(&self.socket).take()
    }

    /// Changes what the poller reports for the listener, if it is still open. The lock is held
    /// across the call, so the fd cannot be closed (and its number reused) meanwhile.
    pub(super) fn rewatch(&self, poller: &Poller, key: usize, interest: u32) {
        if let Some(socket) = lock(&self.socket).as_ref() {
            let _ = poller.rewatch(socket.as_fd(), key, interest, Trigger::Level);
        }
    }

    pub fn rejected_connections(&self) -> u64 {
        self.counts.rejected.load(Ordering::Relaxed)
    }

    pub fn dropped_connections(&self) -> u64 {
        self.counts.dropped.load(Ordering::Relaxed)
    }

    pub fn local_address(&self) -> Option<(String, i32)> {
        let socket = lock(&self.socket);
        socket.as_ref()?.local_addr().ok().map(|addr| sys::describe_address(&addr))
    }
}

/// A listener on the loop thread.
#[derive(Debug)]
pub(crate) struct Listener {
    pub(super) io: Arc<ListenerIo>,
    /// Connections are not accepted until the loop has credit again.
    pub(super) throttled: bool,
}

impl Net {
    /// Accepts up to [`ACCEPTS_PER_ITERATION`] connections; the level-triggered poller reports
    /// the listener again while more wait in the backlog.
    pub(super) fn accept_connections(&mut self, services: &mut Services, listener_id: SlotId) {
        let Some(listener) = self.listeners.get(listener_id) else { return };
        let listener = Arc::clone(&listener.io);
        let guard = lock(&listener.socket);
        let Some(listening) = guard.as_ref() else { return };
        for _ in 0..ACCEPTS_PER_ITERATION {
            if !services.has_credit() {
                drop(guard);
                self.throttle_listener(services, listener_id);
                return;
            }
            let (socket, remote) = match sys::accept(listening) {
                Ok(Some(connection)) => connection,
                Ok(None) => break,
                Err(_) => {
                    // Out of fds (EMFILE, ENFILE) or memory: the connection waits in the backlog.
                    // The listener stays readable, so it rests a while instead of spinning.
                    drop(guard);
                    self.rest_listener(services, listener_id, &listener);
                    return;
                }
            };
            if listener
                .options
                .max_connections
                .is_some_and(|max| listener.counts.open.load(Ordering::Relaxed) >= max)
            {
                // Closed as it is dropped: the peer sees the connection end at once.
                listener.counts.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let Some(id) = services.slots().allocate() else { continue };
            if services.poller().watch(socket.as_fd(), id.index as usize, READABLE, Trigger::Level).is_err() {
                services.slots().release(id);
                continue;
            }
            let io = Arc::new(SocketIo::new(socket, listener.tls.is_some()));
            let mut stream = Stream::accepted(id, io, listener_id, &listener);
            stream.begin_accepted(services, remote, listener.accepted_local.clone(), listener.options.proxy);
            self.streams.insert(id, stream);
        }
    }

    /// Stops accepting until the loop has credit again.
    pub(super) fn throttle_listener(&mut self, services: &mut Services, id: SlotId) {
        if let Some(listener) = self.listeners.get_mut(id).filter(|listener| !listener.throttled) {
            listener.throttled = true;
            listener.io.rewatch(services.poller(), id.index as usize, 0);
            services.throttled.push(id);
        }
    }

    fn rest_listener(&mut self, services: &Services, id: SlotId, listener: &ListenerIo) {
        listener.rewatch(services.poller(), id.index as usize, 0);
        self.resting_listeners.push(id);
        self.listeners_rest_until.get_or_insert(Instant::now() + ACCEPT_RETRY_DELAY);
    }

    /// Watches resting listeners again once their rest is over.
    pub(crate) fn wake_listeners(&mut self, services: &Services, now: Instant) {
        if self.listeners_rest_until.is_none_or(|until| until > now) {
            return;
        }
        self.listeners_rest_until = None;
        for id in std::mem::take(&mut self.resting_listeners) {
            if let Some(listener) = self.listeners.get(id).filter(|listener| !listener.throttled) {
                listener.io.rewatch(services.poller(), id.index as usize, READABLE);
            }
        }
    }
}
