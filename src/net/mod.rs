//! TCP, Unix and TLS sockets: the socket driver of the loop thread ([`Net`]) and the
//! JavaScript-thread side of sockets (`api.rs`, methods of [`EventLoop`]).
//!
//! One file per concern: `io` (what both threads share of a socket, the direct write path),
//! `stream` (a connected socket: read, drain, end, close), `tls` (the TLS transport of a
//! stream), `connect` (name lookups, address fallback), `listener` (listening, accepting, the
//! pre-open stage of accepted sockets), `preamble` (reading their PROXY protocol header),
//! `upgrade` (STARTTLS: a plain stream becomes a TLS one). The loop thread routes poller
//! reports, commands and timeouts of socket handles here; this module reaches the loop only
//! through [`Services`].
//!
//! A stream never removes itself from the table: a step that finishes it marks it, and
//! [`Net::step`] drops it afterwards.

mod api;
mod connect;
mod io;
mod listener;
mod preamble;
mod stream;
mod tls;
mod upgrade;

use std::collections::VecDeque;
use std::io as std_io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_rustls::rustls::pki_types::ServerName;

pub use connect::UV_ENOTFOUND;
pub(crate) use io::{errno_of, SocketIo};
pub use listener::ListenOptions;
pub(crate) use listener::ListenerIo;
#[cfg(test)]
pub(crate) use stream::MIN_READ_BYTES;

use crate::event_loop::poller::Poller;
use crate::event_loop::services::Services;
use crate::event_loop::slots::Slab;
use crate::event_loop::timeouts::TimeoutKind;
use crate::event_loop::SlotId;
use crate::sys::SockAddr;
use crate::tls::TlsContext;
use listener::Listener;
use stream::Stream;

/// Size of the loop's receive buffer for TLS ciphertext (as uSockets: one large read per
/// readable socket). Plain data is read straight into the event batch.
const RECV_BUFFER_BYTES: usize = 512 * 1024;

/// How to (re)arm a socket's timeout: see [`EventLoop::set_socket_timeout`](crate::event_loop::EventLoop::set_socket_timeout).
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
pub(crate) enum SocketCommand {
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
    /// `adoptFd`: an inherited connected socket, opened as if accepted.
    Adopt {
        id: SlotId,
        socket: crate::sys::Socket,
        tls: Option<Arc<TlsContext>>,
    },
    /// A name lookup finished (sent by its lookup thread).
    Resolved {
        id: SlotId,
        result: std_io::Result<Vec<SocketAddr>>,
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
    /// STARTTLS: the socket becomes a TLS client of `name` (or a server, with `None`); `clear`
    /// is what it had queued in clear, sent first.
    Upgrade {
        id: SlotId,
        context: Arc<TlsContext>,
        name: Option<ServerName<'static>>,
        clear: Vec<u8>,
    },
    /// STARTTLS: the bytes JavaScript held back for the TLS session (see `upgrade.rs`).
    UpgradeInput {
        id: SlotId,
        read_ahead: Vec<u8>,
    },
    /// `exportKeyingMaterial`: answered on `reply` (None when the socket has no open session).
    ExportKeyingMaterial {
        id: SlotId,
        request: KeyingMaterialRequest,
        reply: std::sync::mpsc::SyncSender<Option<Vec<u8>>>,
    },
}

impl SocketCommand {
    /// Whether applying it starts TLS work on the loop, which from then on keeps its thread
    /// (`event_loop/handover.rs`).
    pub(crate) fn brings_tls(&self) -> bool {
        match self {
            SocketCommand::WatchListener { listener, .. } => listener.tls.is_some(),
            SocketCommand::Connect { tls, .. } => tls.is_some(),
            SocketCommand::Adopt { tls, .. } => tls.is_some(),
            SocketCommand::Upgrade { .. } => true,
            SocketCommand::Resolved { .. }
            | SocketCommand::CheckWritable { .. }
            | SocketCommand::Drain { .. }
            | SocketCommand::Shutdown { .. }
            | SocketCommand::CloseSocket { .. }
            | SocketCommand::SetTimeout { .. }
            | SocketCommand::Pause { .. }
            | SocketCommand::ServerNameChosen { .. }
            | SocketCommand::UpgradeInput { .. }
            | SocketCommand::ExportKeyingMaterial { .. } => false,
        }
    }
}

/// What `exportKeyingMaterial` asks for.
#[derive(Debug)]
pub struct KeyingMaterialRequest {
    pub length: usize,
    pub label: Vec<u8>,
    pub context: Option<Vec<u8>>,
}

/// The socket driver: every stream and listener of one loop, on the loop thread.
#[derive(Debug)]
pub(crate) struct Net {
    streams: Slab<Stream>,
    listeners: Slab<Listener>,
    /// Sockets the poller reported readable this iteration, and listeners with connections:
    /// read and accepted after every report of the iteration was handled.
    candidates: Vec<SlotId>,
    /// Listeners resting after accept failed for lack of fds, until `listeners_rest_until`.
    resting_listeners: Vec<SlotId>,
    listeners_rest_until: Option<Instant>,
    /// One receive buffer for the TLS ciphertext of all sockets.
    recv_buffer: Vec<u8>,
    lookups: connect::Lookups,
}

impl Default for Net {
    fn default() -> Self {
        Net {
            streams: Slab::default(),
            listeners: Slab::default(),
            candidates: Vec::new(),
            resting_listeners: Vec::new(),
            listeners_rest_until: None,
            recv_buffer: vec![0; RECV_BUFFER_BYTES],
            lookups: connect::Lookups::default(),
        }
    }
}

impl Net {
    /// Runs `step` on the stream `id` (if it is there), then drops the stream if the step
    /// finished it.
    fn step(&mut self, id: SlotId, step: impl FnOnce(&mut Stream)) {
        step_stream(&mut self.streams, id, step);
    }

    /// The next time the driver needs the loop awake for (a resting listener's retry).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.listeners_rest_until
    }

    pub fn apply(&mut self, services: &mut Services, command: SocketCommand) {
        match command {
            SocketCommand::WatchListener { id, listener } => {
                if services.slots().is_current(id) {
                    self.listeners.insert(id, Listener { io: listener, throttled: false });
                }
            }
            SocketCommand::Connect { id, target, source, tls } => {
                if !services.slots().is_current(id) {
                    return;
                }
                let mut stream = Stream::connecting(id, source, tls);
                let host = match target {
                    ConnectTarget::Addresses(addresses) => {
                        let addresses = addresses.into_iter().map(SockAddr::from).collect();
                        stream.connect_next(services, addresses, None);
                        None
                    }
                    ConnectTarget::Unix(path) => {
                        match SockAddr::unix(&path) {
                            Ok(addr) => stream.connect_next(services, VecDeque::from([addr]), None),
                            Err(err) => stream.fail_connect(services, errno_of(&err)),
                        }
                        None
                    }
                    ConnectTarget::Host(host, port) => Some((host, port)),
                };
                if !stream.is_finished() {
                    self.streams.insert(id, stream);
                }
                if let Some((host, port)) = host {
                    self.look_up(services, id, host, port);
                }
            }
            SocketCommand::Adopt { id, socket, tls } => {
                // A socket JavaScript closed before this ran is closed as it is dropped.
                if services.slots().is_current(id) {
                    let stream = Stream::adopt(services, id, socket, tls);
                    self.streams.insert(id, stream);
                }
            }
            SocketCommand::Resolved { id, result } => self.resolved(services, id, result),
            SocketCommand::CheckWritable { id } => self.step(id, |stream| stream.check_writable(services)),
            SocketCommand::Drain { id } => self.step(id, |stream| stream.writable(services)),
            SocketCommand::Shutdown { id } => self.step(id, |stream| stream.shutdown_requested(services)),
            SocketCommand::CloseSocket { id } => {
                self.step(id, |stream| stream.forget(services));
                services.slots().release(id);
            }
            SocketCommand::SetTimeout { id, long, after, connecting, stamp } => {
                let kind = if long { TimeoutKind::Long } else { TimeoutKind::Short };
                self.step(id, |stream| stream.timeout_requested(services, kind, after, connecting, stamp));
            }
            SocketCommand::Pause { id, paused } => self.step(id, |stream| stream.pause(services, paused)),
            SocketCommand::ServerNameChosen { id } => {
                self.step(id, |stream| stream.server_name_chosen(services))
            }
            SocketCommand::Upgrade { id, context, name, clear } => {
                self.step(id, |stream| stream.upgrade(services, context, name, clear))
            }
            SocketCommand::UpgradeInput { id, read_ahead } => {
                self.step(id, |stream| stream.upgrade_input(services, &read_ahead))
            }
            SocketCommand::ExportKeyingMaterial { id, request, reply } => {
                let material =
                    self.streams.get(id).and_then(|stream| stream.export_keying_material(&request));
                // JavaScript waits for the answer; a dropped receiver has given up.
                let _ = reply.send(material);
            }
        }
    }

    /// The poller reported the slot `index`; returns whether it is one of the driver's.
    pub fn ready(&mut self, services: &mut Services, index: usize, readable: bool, writable: bool) -> bool {
        if let Some((id, stream)) = self.streams.get_by_index_mut(index) {
            let reads = stream.ready(services, readable, writable);
            if stream.is_finished() {
                self.streams.remove(id);
            } else if reads {
                self.candidates.push(id);
            }
            return true;
        }
        if let Some((id, _)) = self.listeners.get_by_index_mut(index) {
            self.candidates.push(id);
            return true;
        }
        false
    }

    /// Reads from the readable sockets and accepts on the ready listeners. Without credit,
    /// their input is throttled instead, until JavaScript catches up.
    pub fn process_candidates(&mut self, services: &mut Services) {
        let mut candidates = std::mem::take(&mut self.candidates);
        for &id in &candidates {
            if self.listeners.get(id).is_some() {
                if services.has_credit() {
                    self.accept_connections(services, id);
                } else {
                    self.throttle_listener(services, id);
                }
                continue;
            }
            let recv_buffer = &mut self.recv_buffer;
            step_stream(&mut self.streams, id, |stream| match stream.io.clone() {
                // Reported while its input is throttled: an error or hang-up (always reported).
                Some(io) if stream.throttled => stream.hang_up(services, &io),
                _ if !services.has_credit() => stream.throttle(services),
                _ => stream.read(services, recv_buffer),
            });
        }
        candidates.clear();
        self.candidates = candidates;
    }

    /// Watches the input of a throttled socket or listener again (the loop has credit).
    pub fn unthrottle(&mut self, services: &mut Services, id: SlotId) {
        if let Some(stream) = self.streams.get_mut(id) {
            stream.unthrottle(services);
        } else if let Some(listener) = self.listeners.get_mut(id) {
            listener.throttled = false;
            listener.io.rewatch(services.poller(), id.index as usize, crate::event_loop::READABLE);
        }
    }

    /// Reports the socket timeouts due at `now`.
    pub fn fire_timeouts(&mut self, services: &mut Services, now: Instant) {
        while let Some((index, kind)) = services.timeouts.pop_due(now) {
            let Some((id, _)) = self.streams.get_by_index_mut(index as usize) else { continue };
            self.step(id, |stream| stream.timeout_expired(services, kind));
        }
    }

    /// Forgets a socket or listener whose slot is being freed.
    pub fn release(&mut self, services: &mut Services, id: SlotId) {
        self.step(id, |stream| stream.forget(services));
        if let Some(listener) = self.listeners.remove(id) {
            listener.io.unwatch(services.poller());
        }
    }

    /// Deregisters everything before the loop thread ends (the fds close with their last owner).
    pub fn unwatch_all(&mut self, poller: &Poller) {
        for stream in self.streams.drain() {
            stream.unwatch(poller);
        }
        for listener in self.listeners.drain() {
            listener.io.unwatch(poller);
        }
    }
}

/// [`Net::step`] on the table alone, for steps that borrow other parts of the driver.
fn step_stream(streams: &mut Slab<Stream>, id: SlotId, step: impl FnOnce(&mut Stream)) {
    if let Some(stream) = streams.get_mut(id) {
        step(stream);
        if stream.is_finished() {
            streams.remove(id);
        }
    }
}
