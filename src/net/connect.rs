//! Connecting: name lookups off the loop thread (`getaddrinfo` blocks), then each resolved
//! address in turn until one connects, then the socket's transport starts (a TLS client sends
//! its ClientHello; a plain socket opens at once).

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::sync::Arc;

use super::io::{errno_of, SocketIo};
use super::stream::{Phase, Stream, Transport, HANDSHAKE_TIMEOUT_STAMP};
use super::{ClientTls, Net, SocketCommand};
use crate::event_loop::poller::Trigger;
use crate::event_loop::services::Services;
use crate::event_loop::timeouts::TimeoutKind;
use crate::event_loop::{lock, Command, SlotId, WRITABLE};
use crate::sys::{self, SockAddr};
use crate::tls::TlsSession;

/// libuv's code for a failed name lookup, which Node reports as `ENOTFOUND`.
pub const UV_ENOTFOUND: i32 = -3008;
/// Name lookups run on threads of their own, at most this many per loop; further connects wait
/// for one to finish.
const MAX_CONCURRENT_LOOKUPS: usize = 8;

/// The name lookups of one loop: waiting, and how many threads are resolving.
#[derive(Debug, Default)]
pub(super) struct Lookups {
    pending: VecDeque<(SlotId, String, u16)>,
    running: usize,
}

impl Net {
    /// Resolves `host` (off the loop thread) for the connecting socket `id`.
    pub(super) fn look_up(&mut self, services: &mut Services, id: SlotId, host: String, port: u16) {
        self.lookups.pending.push_back((id, host, port));
        self.start_lookups(services);
    }

    /// A lookup thread finished: the socket, unless closed meanwhile, connects to the result.
    pub(super) fn resolved(
        &mut self,
        services: &mut Services,
        id: SlotId,
        result: io::Result<Vec<SocketAddr>>,
    ) {
        self.lookups.running -= 1;
        self.start_lookups(services);
        self.step(id, |stream| {
            if !matches!(stream.phase, Phase::Resolving) {
                return;
            }
            match result {
                Ok(addresses) if !addresses.is_empty() => {
                    stream.connect_next(services, addresses.into_iter().map(SockAddr::from).collect(), None)
                }
                _ => stream.fail_connect(services, UV_ENOTFOUND),
            }
        });
    }

    /// Starts name lookups while fewer than the maximum run.
    fn start_lookups(&mut self, services: &mut Services) {
        while self.lookups.running < MAX_CONCURRENT_LOOKUPS {
            let Some((id, host, port)) = self.lookups.pending.pop_front() else { return };
            let shared = Arc::clone(&services.shared);
            let lookup = move || {
                let result = (host.as_str(), port).to_socket_addrs().map(Iterator::collect);
                lock(&shared.commands).push(Command::Socket(SocketCommand::Resolved { id, result }));
                let _ = shared.poller.notify();
            };
            match std::thread::Builder::new().name("usockets-dns".into()).spawn(lookup) {
                Ok(_) => self.lookups.running += 1,
                Err(err) => self.step(id, |stream| stream.fail_connect(services, errno_of(&err))),
            }
        }
    }
}

impl Stream {
    /// Tries the next address; reports the last error when none is left.
    pub(super) fn connect_next(
        &mut self,
        services: &mut Services,
        mut remaining: VecDeque<SockAddr>,
        last_error: Option<i32>,
    ) {
        let mut error = last_error.unwrap_or(libc::ECONNREFUSED);
        while let Some(addr) = remaining.pop_front() {
            let attempt = sys::connect(&addr, self.source).and_then(|socket| {
                // Completion (or failure) shows as writability.
                let key = self.id.index as usize;
                services.poller().watch(socket.as_fd(), key, WRITABLE, Trigger::Level)?;
                Ok(socket)
            });
            match attempt {
                Ok(socket) => {
                    let writes_via_loop = self.client_tls.is_some();
                    self.io = Some(Arc::new(SocketIo::new(socket, writes_via_loop)));
                    self.phase = Phase::Connecting { remaining };
                    self.interest = WRITABLE;
                    return;
                }
                Err(err) => error = errno_of(&err),
            }
        }
        self.fail_connect(services, error);
    }

    /// The fd of a connecting socket became writable (or failed): open it or try the next address.
    pub(super) fn connect_progress(&mut self, services: &mut Services) {
        let (Some(io), Phase::Connecting { remaining }) = (self.io.clone(), &mut self.phase) else {
            return;
        };
        if let Err(err) = sys::take_error(&io.socket) {
            let remaining = std::mem::take(remaining);
            self.io = None;
            let _ = services.poller().unwatch(io.as_fd());
            self.connect_next(services, remaining, Some(errno_of(&err)));
            return;
        }
        let Ok(remote) = io.socket.peer_addr() else {
            return; // not connected yet (ENOTCONN): reported again when it is
        };
        self.phase = Phase::Open;
        if let Some(ClientTls { context, name }) = self.client_tls.take() {
            // JavaScript hears `Open` after the handshake; a connect timeout covers it too.
            match TlsSession::client(context, name) {
                Ok(session) => self.transport = Transport::Tls(Box::new(session)),
                Err(failure) => return self.fail_connect(services, failure.code()),
            }
            if !self.timeouts.is_armed(TimeoutKind::Short) {
                let timeout = Some(self.handshake_timeout());
                self.set_timeout(services, TimeoutKind::Short, timeout, HANDSHAKE_TIMEOUT_STAMP);
            }
            self.flush_tls(services);
            return;
        }
        self.announce_open(services, Some(remote), None);
    }
}
