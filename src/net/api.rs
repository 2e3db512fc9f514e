//! The JavaScript-thread side of sockets: listening, connecting, and the direct write path.
//! These methods of [`EventLoop`] run on the thread that owns the loop's [`JsSide`]; they queue
//! commands for the loop thread, or act on the socket's shared [`SocketIo`](super::SocketIo) themselves (a plain
//! write is a `send(2)` on the caller's thread, with no thread hop).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use super::{
    ClientTls, ConnectTarget, KeyingMaterialRequest, ListenOptions, ListenerIo, SocketCommand, SocketTimeout,
};
use crate::error::{Error, Result};
use crate::event_loop::{Command, EventLoop, JsSide, SlotId};
use crate::proxy::Header;
use crate::sys;
use crate::tls::{TlsContext, TlsInfo};
use tokio_rustls::rustls::pki_types::ServerName;

/// The longest `exportKeyingMaterial` waits for the loop thread.
const KEYING_MATERIAL_WAIT: Duration = Duration::from_secs(5);

impl EventLoop {
    /// Listens on `addr` as `options` say (see [`crate::sys::listen_tcp`]). With `tls`, accepted
    /// connections handshake with it before JavaScript hears of them.
    pub fn listen(
        &self,
        js: &mut JsSide,
        addr: SocketAddr,
        options: ListenOptions,
        tls: Option<Arc<TlsContext>>,
    ) -> Result<SlotId> {
        self.check_open()?;
        let socket = sys::listen_tcp(addr, options.exclusive, options.ipv6_only, options.backlog)?;
        self.watch_listener(js, socket, tls, options)
    }

    /// Listens on a Unix socket path; of `options`, the backlog, the connection limit and the
    /// PROXY protocol apply.
    pub fn listen_unix(
        &self,
        js: &mut JsSide,
        path: &std::path::Path,
        tls: Option<Arc<TlsContext>>,
        options: ListenOptions,
    ) -> Result<SlotId> {
        self.check_open()?;
        self.watch_listener(js, sys::listen_unix(path, options.backlog)?, tls, options)
    }

    /// Listens on an inherited listening socket (see [`sys::adopt_inherited`]), which is then
    /// the listener's and closes with it; of `options`, the connection limit and the PROXY
    /// protocol apply, and a backlog is set anew if given.
    pub fn listen_fd(
        &self,
        js: &mut JsSide,
        fd: RawFd,
        options: ListenOptions,
        tls: Option<Arc<TlsContext>>,
    ) -> Result<SlotId> {
        self.check_open()?;
        let socket = sys::adopt_inherited(fd, sys::Inherited::Listening)?;
        if let Some(backlog) = options.backlog {
            if let Err(err) = socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX)) {
                // Handed back unclosed: on failure the descriptor stays the caller's.
                let _ = std::os::fd::IntoRawFd::into_raw_fd(socket);
                return Err(err.into());
            }
        }
        self.watch_listener(js, socket, tls, options)
    }

    /// Takes over an inherited connected socket (see [`sys::adopt_inherited`]) as if accepted
    /// by a listener of the context (a TLS server with `tls`): it opens (for TLS, once the
    /// handshake completed) with an `Open` record, or fails with a `ConnectError` one.
    pub fn adopt_fd(
        &self,
        js: &mut JsSide,
        id: SlotId,
        fd: RawFd,
        tls: Option<Arc<TlsContext>>,
    ) -> Result<()> {
        self.check_current(id)?;
        let socket = sys::adopt_inherited(fd, sys::Inherited::Connected)?;
        js.connecting.insert(id);
        self.submit(Command::Socket(SocketCommand::Adopt { id, socket, tls }));
        Ok(())
    }

    fn watch_listener(
        &self,
        js: &mut JsSide,
        socket: sys::Socket,
        tls: Option<Arc<TlsContext>>,
        options: ListenOptions,
    ) -> Result<SlotId> {
        let id = self.create_handle()?;
        let listener = Arc::new(ListenerIo::new(socket, tls, options));
        self.submit(Command::Socket(SocketCommand::WatchListener { id, listener: Arc::clone(&listener) }));
        if let Err(err) = listener.watch(&self.shared.poller, id.index as usize) {
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

    /// How many connections the listener accepted and closed before `Open` (rejected), and
    /// how many it closed at once for its connection limit (dropped), while it is open.
    pub fn listener_counts(&self, js: &JsSide, id: SlotId) -> Option<(u64, u64)> {
        js.listeners.get(id).map(|listener| (listener.rejected_connections(), listener.dropped_connections()))
    }

    /// Stops accepting and closes the listening fd before returning, so the port is free.
    pub fn close_listener(&self, js: &mut JsSide, id: SlotId) {
        if let Some(listener) = js.listeners.remove(id) {
            if let Some(socket) = listener.take() {
                let _ = self.shared.poller.unwatch(socket.as_fd());
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
        let written = if io.writes_via_loop() {
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
        if !io.writes_via_loop() {
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

    /// STARTTLS: the open plain socket `id` becomes a TLS socket of `context`, a client of
    /// `name` or (`None`) a server. Writes queue for its session from now on; what was queued in
    /// clear goes out first. Its `Upgraded` record asks for [`EventLoop::upgrade_input`], its
    /// `Open` says the handshake completed. Fails with [`Error::StaleHandle`] for a socket that
    /// is closed (or not open yet); `Ok(false)` for one that is TLS already.
    pub fn upgrade(
        &self,
        js: &JsSide,
        id: SlotId,
        context: Arc<TlsContext>,
        name: Option<ServerName<'static>>,
    ) -> Result<bool> {
        self.check_current(id)?;
        let io = js.sockets.get(id).ok_or(Error::StaleHandle)?;
        if io.writes_via_loop() {
            return Ok(false);
        }
        let clear = io.begin_tls();
        self.submit(Command::Socket(SocketCommand::Upgrade { id, context, name, clear }));
        Ok(true)
    }

    /// STARTTLS: the bytes JavaScript held back since `upgrade`, for the TLS session.
    pub fn upgrade_input(&self, id: SlotId, read_ahead: Vec<u8>) {
        if self.check_current(id).is_ok() {
            self.submit(Command::Socket(SocketCommand::UpgradeInput { id, read_ahead }));
        }
    }

    /// `exportKeyingMaterial`: asks the loop thread, which holds the session, and waits for the
    /// answer (one wake-up of the loop). `None` when the socket has no open TLS session.
    pub fn export_keying_material(
        &self,
        id: SlotId,
        request: KeyingMaterialRequest,
    ) -> Result<Option<Vec<u8>>> {
        self.check_current(id)?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.submit(Command::Socket(SocketCommand::ExportKeyingMaterial { id, request, reply }));
        // The loop answers every command as it applies it, within one iteration; only a loop
        // thread that died (a panic) never does, so the wait is bounded.
        answer.recv_timeout(KEYING_MATERIAL_WAIT).map_err(|_| Error::LoopClosed)
    }

    /// TCP keep-alive after `delay` of idleness, or off; a no-op for Unix sockets and closed ones.
    pub fn set_keepalive(&self, js: &JsSide, id: SlotId, delay: Option<Duration>) -> Result<()> {
        match js.sockets.get(id).filter(|io| !io.is_unix()) {
            Some(io) => Ok(sys::set_keepalive(&io.socket, delay)?),
            None => Ok(()),
        }
    }

    /// TCP_NODELAY on or off; a no-op for Unix sockets and closed ones.
    pub fn set_nodelay(&self, js: &JsSide, id: SlotId, on: bool) -> Result<()> {
        match js.sockets.get(id).filter(|io| !io.is_unix()) {
            Some(io) => Ok(io.socket.set_tcp_nodelay(on)?),
            None => Ok(()),
        }
    }

    /// The keep-alive and Nagle options of a TCP socket (see [`sys::tcp_options`]).
    pub fn tcp_options(&self, js: &JsSide, id: SlotId) -> Option<(bool, Duration, Duration, u32, bool)> {
        js.sockets.get(id).filter(|io| !io.is_unix()).and_then(|io| sys::tcp_options(&io.socket).ok())
    }

    /// Closes the socket abortively: the peer sees a reset once the descriptor closes.
    pub fn terminate_socket(&self, js: &mut JsSide, id: SlotId) {
        if let Some(io) = js.sockets.get(id) {
            let _ = sys::set_abortive_close(&io.socket);
        }
        self.close_socket(js, id);
    }

    /// The PROXY protocol header an accepted socket began with (None without one).
    pub fn proxy_header(&self, js: &JsSide, id: SlotId) -> Option<Header> {
        js.sockets.get(id)?.proxy_header().cloned()
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
}
