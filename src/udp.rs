//! UDP sockets: the part JavaScript sends through and closes synchronously ([`UdpIo`]), the
//! loop thread's driver that receives datagrams in batches of `recvmmsg` straight into event
//! records ([`Udp`]), and the JavaScript-thread calls of [`EventLoop`].
//!
//! A datagram is sent from the JavaScript thread itself (a `sendto`, no thread hop), as a TCP
//! `write` is; one the kernel cannot take now is not sent (`send` returns false) and the loop
//! reports when the socket can take more. Receiving stops while the loop has no credit: the
//! kernel then drops what does not fit its receive buffer, and counts it.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::event_loop::poller::Trigger;
use crate::event_loop::services::Services;
use crate::event_loop::slots::Slab;
use crate::event_loop::{lock, Command, EventKind, EventLoop, JsSide, SlotId, READABLE, WRITABLE};
use crate::sys::{self, Socket};

/// `recvmmsg` calls per socket per loop iteration at most, so one busy socket does not starve
/// the others (the level-triggered poller reports it again).
const RECEIVES_PER_ITERATION: usize = 4;
/// A Datagram record's bytes beyond the datagram: its header, port, address length and the
/// longest address text (an IPv6 address with a scope).
const DATAGRAM_RECORD_BYTES: usize = 16 + 8 + 64;

/// What JavaScript and the loop thread share of one UDP socket.
#[derive(Debug)]
pub struct UdpIo {
    /// `None` once closed: JavaScript's `close()` closes the descriptor before it returns.
    socket: Mutex<Option<Socket>>,
    /// The address and port it was bound to (a wildcard stays one, the chosen port is kept).
    bound: SocketAddr,
}

/// Requests for UDP sockets, applied by the loop thread in order.
#[derive(Debug)]
pub(crate) enum UdpCommand {
    /// The socket was registered with the poller by the caller.
    Watch { id: SlotId, io: Arc<UdpIo> },
    /// A send found the kernel's buffer full: report when it can take more.
    CheckWritable { id: SlotId },
}

#[derive(Debug)]
struct Entry {
    io: Arc<UdpIo>,
    /// Not watching input until the loop has credit again.
    throttled: bool,
    /// Report the next writability (a send was refused).
    wants_writable: bool,
    /// Registered with the poller (not while throttled).
    registered: bool,
}

impl Entry {
    /// Makes the poller report what the socket waits for. A throttled socket leaves the poller
    /// until `unthrottle`: epoll reports errors whatever the interest, and an ICMP error while
    /// there is no credit would otherwise wake the loop on every wait.
    fn rewatch(&mut self, services: &Services, index: u32) {
        let guard = lock(&self.io.socket);
        let Some(socket) = guard.as_ref() else { return };
        let poller = services.poller();
        let interest = READABLE | if self.wants_writable { WRITABLE } else { 0 };
        let _ = match (self.throttled, self.registered) {
            (true, true) => poller.unwatch(socket.as_fd()),
            (true, false) => Ok(()),
            (false, true) => poller.rewatch(socket.as_fd(), index as usize, interest, Trigger::Level),
            (false, false) => poller.watch(socket.as_fd(), index as usize, interest, Trigger::Level),
        };
        self.registered = !self.throttled;
    }
}

/// The loop thread's UDP driver.
#[derive(Default)]
pub(crate) struct Udp {
    sockets: Slab<Entry>,
    /// Made when the first datagram is to be read (1 MiB).
    buffers: Option<Box<sys::DatagramBuffers>>,
    /// The last sender's address and its text, so that a run of datagrams from one sender
    /// formats it once, and formatting allocates nothing.
    sender: (Option<IpAddr>, String),
}

impl Udp {
    pub fn apply(&mut self, services: &mut Services, command: UdpCommand) {
        match command {
            UdpCommand::Watch { id, io } => {
                if services.slots().is_current(id) {
                    self.sockets
                        .insert(id, Entry { io, throttled: false, wants_writable: false, registered: true });
                }
            }
            UdpCommand::CheckWritable { id } => {
                if let Some(entry) = self.sockets.get_mut(id).filter(|entry| !entry.wants_writable) {
                    entry.wants_writable = true;
                    entry.rewatch(services, id.index);
                }
            }
        }
    }

    /// The poller reported the slot `index`; returns whether it is one of the driver's.
    pub fn ready(&mut self, services: &mut Services, index: usize, readable: bool, writable: bool) -> bool {
        let Some((id, entry)) = self.sockets.get_by_index_mut(index) else { return false };
        if writable && entry.wants_writable {
            entry.wants_writable = false;
            entry.rewatch(services, id.index);
            services.events.push(EventKind::Writable, id.index, id.generation, 0);
        }
        if readable && !entry.throttled {
            let buffers = self.buffers.get_or_insert_with(Box::default);
            receive(services, id, entry, buffers, &mut self.sender);
        }
        true
    }

    /// Watches a throttled socket's input again (the loop has credit).
    pub fn unthrottle(&mut self, services: &mut Services, id: SlotId) {
        if let Some(entry) = self.sockets.get_mut(id).filter(|entry| entry.throttled) {
            entry.throttled = false;
            entry.rewatch(services, id.index);
        }
    }

    /// The handle `id` was released (JavaScript closed the socket, which unwatched it).
    pub fn release(&mut self, id: SlotId) {
        self.sockets.remove(id);
    }
}

/// Reads what the socket has, within the loop's credit, into `Datagram` records.
fn receive(
    services: &mut Services,
    id: SlotId,
    entry: &mut Entry,
    buffers: &mut sys::DatagramBuffers,
    sender: &mut (Option<IpAddr>, String),
) {
    let mut read = 0;
    for _ in 0..RECEIVES_PER_ITERATION {
        if !services.has_credit() {
            entry.throttled = true;
            entry.rewatch(services, id.index);
            services.throttled.push(id);
            return;
        }
        let guard = lock(&entry.io.socket);
        let Some(socket) = guard.as_ref() else { return };
        // No more datagrams than the credit has room for, were each the largest: one receive
        // never takes the loop far past `maxPendingBytes` (at least one always fits).
        let room = services.credit() / (sys::MAX_DATAGRAM + DATAGRAM_RECORD_BYTES);
        let wanted = room.clamp(1, sys::DATAGRAMS_PER_RECEIVE);
        let received = match sys::receive(socket, buffers, wanted) {
            Ok(received) => received,
            // An ICMP error about the connected peer (ECONNREFUSED: nobody listens there): it
            // is reported once and the socket reads on.
            Err(err) => {
                let errno = err.raw_os_error().unwrap_or(libc::EIO);
                services.events.push(EventKind::DatagramError, id.index, id.generation, errno as u32);
                return;
            }
        };
        drop(guard);
        for datagram in buffers.datagrams() {
            let Some(from) = datagram.from else { continue };
            if sender.0 != Some(from.ip()) {
                sender.1.clear();
                let _ = write!(sender.1, "{}", from.ip());
                sender.0 = Some(from.ip());
            }
            services.events.push_datagram(id.index, id.generation, from.port(), &sender.1, datagram.data);
            read += datagram.data.len();
        }
        services.note_read(read);
        if received < wanted {
            return;
        }
    }
}

impl EventLoop {
    /// Binds a UDP socket (see [`sys::bind_udp`]); returns its id and the address and port it
    /// is bound to.
    pub fn udp_bind(
        &self,
        js: &mut JsSide,
        addr: SocketAddr,
        exclusive: bool,
        ipv6_only: bool,
    ) -> Result<(SlotId, SocketAddr)> {
        self.check_open()?;
        let socket = sys::bind_udp(addr, exclusive, ipv6_only)?;
        let local = socket.local_addr()?.as_socket().unwrap_or(addr);
        let id = self.create_handle()?;
        if let Err(err) =
            self.shared.poller.watch(socket.as_fd(), id.index as usize, READABLE, Trigger::Level)
        {
            self.release(id);
            return Err(err.into());
        }
        let io = Arc::new(UdpIo {
            socket: Mutex::new(Some(socket)),
            bound: SocketAddr::new(addr.ip(), local.port()),
        });
        self.submit(Command::Udp(UdpCommand::Watch { id, io: Arc::clone(&io) }));
        js.udp.insert(id, io);
        Ok((id, local))
    }

    /// Sets or dissolves the socket's default peer (see [`sys::connect_datagram`]).
    pub fn udp_connect(&self, js: &JsSide, id: SlotId, peer: Option<SocketAddr>) -> Result<()> {
        let Some(io) = js.udp.get(id) else { return Ok(()) };
        match lock(&io.socket).as_ref() {
            Some(socket) => Ok(sys::connect_datagram(socket, peer, io.bound)?),
            None => Ok(()),
        }
    }

    /// Sends one datagram from this thread to `to` (`None`: the connected peer): whether the
    /// kernel took it. A refusal (its buffer is full) asks the loop to report when it can take
    /// more. A closed socket sends nothing.
    pub fn udp_send(&self, js: &JsSide, id: SlotId, data: &[u8], to: Option<SocketAddr>) -> Result<bool> {
        let Some(io) = js.udp.get(id) else { return Ok(false) };
        let guard = lock(&io.socket);
        let Some(socket) = guard.as_ref() else { return Ok(false) };
        let sent = sys::send_datagram(socket, data, to)?;
        if !sent {
            self.submit(Command::Udp(UdpCommand::CheckWritable { id }));
        }
        Ok(sent)
    }

    /// Sends `datagrams` in one `sendmmsg` from this thread: how many the kernel took, in
    /// order. Fewer than all (its buffer filled) asks the loop to report when it can take more.
    pub fn udp_send_many(
        &self,
        js: &JsSide,
        id: SlotId,
        datagrams: &[(&[u8], Option<SocketAddr>)],
    ) -> Result<usize> {
        let Some(io) = js.udp.get(id) else { return Ok(0) };
        let guard = lock(&io.socket);
        let Some(socket) = guard.as_ref() else { return Ok(0) };
        let sent = sys::send_datagrams(socket, datagrams)?;
        if sent < datagrams.len().min(sys::DATAGRAMS_PER_SEND) {
            self.submit(Command::Udp(UdpCommand::CheckWritable { id }));
        }
        Ok(sent)
    }

    /// Runs `configure` on the open socket (with whether it is an IPv6 one); a closed socket is
    /// left alone.
    pub fn udp_configure<T: Default>(
        &self,
        js: &JsSide,
        id: SlotId,
        configure: impl FnOnce(&Socket, bool) -> std::io::Result<T>,
    ) -> Result<T> {
        let Some(io) = js.udp.get(id) else { return Ok(T::default()) };
        match lock(&io.socket).as_ref() {
            Some(socket) => Ok(configure(socket, io.bound.is_ipv6())?),
            None => Ok(T::default()),
        }
    }

    /// Datagrams the kernel dropped for the socket's full receive buffer (0 once closed).
    pub fn udp_dropped(&self, js: &JsSide, id: SlotId) -> u64 {
        let Some(io) = js.udp.get(id) else { return 0 };
        lock(&io.socket).as_ref().and_then(|socket| sys::dropped_datagrams(socket).ok()).map_or(0, u64::from)
    }

    /// Closes the socket before returning (its port is free); idempotent.
    pub fn udp_close(&self, js: &mut JsSide, id: SlotId) {
        if let Some(io) = js.udp.remove(id) {
            if let Some(socket) = lock(&io.socket).take() {
                let _ = self.shared.poller.unwatch(socket.as_fd());
            }
            self.release(id);
        }
    }
}
