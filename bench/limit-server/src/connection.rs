//! One echo connection: every byte read is written back (with TLS: decrypted, then encrypted
//! again). While the socket does not take all of an echo, the connection reads nothing more,
//! so it never holds more than one read's worth.

use std::io::{self, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use polling::{Event, PollMode, Poller};
use rustls::{ServerConfig, ServerConnection};

/// The most one socket read takes.
const READ_SIZE: usize = 64 * 1024;

/// Buffers every connection uses in turn: one thread serves them all, and none keeps data in
/// them from one event to the next.
pub struct Buffers {
    read: Box<[u8]>,
    /// TLS plaintext on its way from rustls's reader to its writer.
    plaintext: Box<[u8]>,
}

impl Buffers {
    pub fn new() -> Buffers {
        Buffers {
            read: vec![0; READ_SIZE].into_boxed_slice(),
            plaintext: vec![0; READ_SIZE].into_boxed_slice(),
        }
    }
}

pub struct Connection {
    socket: TcpStream,
    tls: Option<ServerConnection>,
    /// Plain echo bytes the socket did not take yet: `pending[written..]`. Cleared, not
    /// freed, once written, so a connection allocates it once. (With TLS, rustls holds the
    /// records it has not written.)
    pending: Vec<u8>,
    written: usize,
    /// Whether the poller watches for writable instead of readable, because an echo waits.
    blocked: bool,
}

impl Connection {
    pub fn new(socket: TcpStream, tls: Option<&Arc<ServerConfig>>) -> io::Result<Connection> {
        socket.set_nonblocking(true)?;
        // Echoes go out at once, as usockets-rs and the node servers (noDelay) send them.
        socket.set_nodelay(true)?;
        let tls = match tls {
            None => None,
            Some(config) => {
                let mut tls = ServerConnection::new(config.clone()).map_err(io::Error::other)?;
                // The connection bounds what it holds itself (it stops reading while an echo
                // waits), so a write is taken whole and nothing needs to be held back here.
                tls.set_buffer_limit(None);
                Some(tls)
            }
        };
        Ok(Connection { socket, tls, pending: Vec::new(), written: 0, blocked: false })
    }

    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Handles a readiness event of poller key `event.key`; returns false once the connection
    /// is over (the peer closed it, or it failed) and should be dropped. Errors are the
    /// poller's.
    pub fn on_ready(&mut self, event: Event, poller: &Poller, buffers: &mut Buffers) -> io::Result<bool> {
        let step = match (&mut self.tls, self.blocked) {
            (None, false) => echo_plain(&mut self.socket, &mut self.pending, buffers),
            (None, true) => self.write_pending(),
            (Some(tls), false) => echo_tls(tls, &mut self.socket, buffers),
            (Some(tls), true) => write_tls(tls, &mut self.socket),
        };
        // Any error of a connection (a reset, EOF, a TLS alert) ends just that connection.
        if step.is_err() {
            return Ok(false);
        }
        let blocked = match &self.tls {
            None => !self.pending.is_empty(),
            Some(tls) => tls.wants_write(),
        };
        if blocked != self.blocked {
            let interest = Event::new(event.key, !blocked, blocked);
            poller.modify_with_mode(&self.socket, interest, PollMode::Level)?;
            self.blocked = blocked;
        }
        Ok(true)
    }

    fn write_pending(&mut self) -> io::Result<()> {
        self.written += write_socket(&mut self.socket, &self.pending[self.written..])?;
        if self.written == self.pending.len() {
            self.pending.clear();
            self.written = 0;
        }
        Ok(())
    }
}

/// Echoes what the socket holds; what the socket does not take goes to `pending`, which is
/// empty when this is called.
fn echo_plain(socket: &mut TcpStream, pending: &mut Vec<u8>, buffers: &mut Buffers) -> io::Result<()> {
    let buf = &mut buffers.read;
    loop {
        let Some(len) = read_socket(socket, buf)? else { return Ok(()) };
        let written = write_socket(socket, &buf[..len])?;
        if written < len {
            pending.extend_from_slice(&buf[written..len]);
            return Ok(());
        }
        // Level-triggered polling reports the socket again if data is left, so a short read
        // saves the read that would only say "would block".
        if len < buf.len() {
            return Ok(());
        }
    }
}

/// Reads what the socket holds and hands it to rustls, echoing the plaintext as it is
/// decrypted. The socket is read in one large read rather than through `read_tls` (which reads
/// at most 4 KiB at a time), and all of it is given to rustls before the next read, so nothing
/// stays in the shared buffer.
fn echo_tls(tls: &mut ServerConnection, socket: &mut TcpStream, buffers: &mut Buffers) -> io::Result<()> {
    loop {
        let Some(len) = read_socket(socket, &mut buffers.read)? else { return Ok(()) };
        let mut ciphertext = &buffers.read[..len];
        while !ciphertext.is_empty() {
            tls.read_tls(&mut ciphertext)?;
            if let Err(err) = tls.process_new_packets() {
                // Sends the alert rustls queued to tell the client why; the connection ends
                // either way, so whether it gets out does not matter.
                let _ = tls.write_tls(socket);
                return Err(io::Error::new(ErrorKind::InvalidData, err));
            }
            // Drained after every record or few, so rustls's plaintext buffer (16 KiB) never
            // fills and refuses the next `read_tls`.
            loop {
                match tls.reader().read(&mut buffers.plaintext) {
                    // The client sent close_notify: answer it, and the connection is over.
                    Ok(0) => {
                        tls.send_close_notify();
                        let _ = tls.write_tls(socket);
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                    Ok(len) => tls.writer().write_all(&buffers.plaintext[..len])?,
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) => return Err(err),
                }
            }
        }
        // Handshake messages and echoes alike.
        write_tls(tls, socket)?;
        if tls.wants_write() || len < buffers.read.len() {
            return Ok(());
        }
    }
}

/// Writes what rustls holds, as much as the socket takes.
fn write_tls(tls: &mut ServerConnection, socket: &mut TcpStream) -> io::Result<()> {
    // rustls offers everything it holds in one writev (up to 64 records, more than one read's
    // echo), so anything left means the socket is full, which a second call would only confirm.
    while tls.wants_write() {
        match tls.write_tls(socket) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// One read: `None` if the socket has nothing now. The peer's EOF is an error here: an echo
/// server has nothing left to do once its client stops sending.
fn read_socket(socket: &mut TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match socket.read(buf) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(len) => return Ok(Some(len)),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}

/// One write: how much the socket took (0 if it is full).
fn write_socket(socket: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    loop {
        match socket.write(bytes) {
            Ok(written) => return Ok(written),
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(0),
            Err(err) if err.kind() == ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
}
