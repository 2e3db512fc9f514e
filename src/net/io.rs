//! What the loop thread and the JavaScript thread share of one socket ([`SocketIo`]): the
//! descriptor, the send queue and a few state bits. The JavaScript thread writes through it
//! directly (plain TCP writes need no thread hop); the loop thread reads, drains and closes.
//!
//! The descriptor lives behind an `Arc` held by both threads, so it is closed only when neither
//! uses it: a number is never used after the descriptor may have been closed.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::event_loop::lock;
use crate::proxy::Header;
use crate::sys::{self, Socket};
use crate::tls::TlsInfo;

// Bits of `SocketIo::flags`.
/// JavaScript asked for a FIN (sent once the send buffer is empty).
pub(super) const SHUTDOWN_REQUESTED: u32 = 1;
/// `shutdown(SHUT_WR)` was made.
pub(super) const FIN_SENT: u32 = 2;
/// Closed by either side: writes take nothing.
const DEAD: u32 = 4;

/// What the loop thread and the JavaScript thread share of one socket.
#[derive(Debug)]
pub struct SocketIo {
    pub(super) socket: Socket,
    flags: AtomicU32,
    /// Bytes taken by `send` that the kernel has not taken yet, in order. TLS: all plaintext
    /// written, not yet encrypted.
    pub(super) send_buffer: Mutex<VecDeque<u8>>,
    /// The length of `send_buffer`, readable without its lock.
    pub(super) buffered: AtomicUsize,
    /// Writes go through the loop thread (which encrypts them) rather than to the kernel: set
    /// for a TLS socket, and read on every write, so a transport swap (STARTTLS) is one store.
    writes_via_loop: AtomicBool,
    /// TLS: ciphertext the kernel has not taken yet.
    pub(super) tls_output: AtomicUsize,
    /// TLS: what the handshake settled, set when it completed.
    pub(super) tls_info: OnceLock<TlsInfo>,
    /// The PROXY protocol header the connection began with, set before `Open`.
    pub(super) proxy_header: OnceLock<Header>,
    /// The errno of a failed write from the JavaScript thread (0: none). A failed send consumes
    /// the socket's pending error, so the loop would otherwise take a reset for an orderly end.
    write_error: AtomicI32,
}

impl SocketIo {
    pub(super) fn new(socket: Socket, writes_via_loop: bool) -> SocketIo {
        SocketIo {
            socket,
            flags: AtomicU32::new(0),
            send_buffer: Mutex::default(),
            buffered: AtomicUsize::new(0),
            writes_via_loop: AtomicBool::new(writes_via_loop),
            tls_output: AtomicUsize::new(0),
            tls_info: OnceLock::new(),
            proxy_header: OnceLock::new(),
            write_error: AtomicI32::new(0),
        }
    }

    /// Whether writes queue plaintext for the loop thread (TLS) rather than go to the kernel.
    pub fn writes_via_loop(&self) -> bool {
        self.writes_via_loop.load(Ordering::Acquire)
    }

    /// The settled TLS parameters (None before the handshake completed, or for plain sockets).
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls_info.get()
    }

    /// A Unix socket (TCP options mean nothing there). Asks the kernel: only option setters
    /// need it.
    pub fn is_unix(&self) -> bool {
        self.socket.domain().is_ok_and(|domain| domain == socket2::Domain::UNIX)
    }

    /// The PROXY header the connection began with (None without one, or before `Open`).
    pub fn proxy_header(&self) -> Option<&Header> {
        self.proxy_header.get()
    }

    /// The outcome of a send from the JavaScript thread: the count, or 0 with the error kept.
    fn sent(&self, result: io::Result<usize>) -> usize {
        result.unwrap_or_else(|err| {
            self.write_error.store(errno_of(&err), Ordering::Release);
            0
        })
    }

    /// The error the connection failed with: pending on the socket, or met by a write.
    pub(super) fn failure(&self) -> Option<i32> {
        match sys::take_error(&self.socket) {
            Err(err) => Some(errno_of(&err)),
            Ok(()) => Some(self.write_error.load(Ordering::Acquire)).filter(|&errno| errno != 0),
        }
    }

    pub(super) fn has(&self, flag: u32) -> bool {
        self.flags.load(Ordering::Acquire) & flag != 0
    }

    pub(super) fn set(&self, flag: u32) {
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

    /// STARTTLS: from now on writes queue plaintext for the loop's TLS session. Returns the clear
    /// bytes still queued, which the loop sends before the first TLS record (they stay counted
    /// in the buffered amount until then).
    pub fn begin_tls(&self) -> Vec<u8> {
        let mut queue = lock(&self.send_buffer);
        self.writes_via_loop.store(true, Ordering::Release);
        let clear: Vec<u8> = queue.drain(..).collect();
        self.tls_output.store(clear.len(), Ordering::Release);
        self.buffered.store(0, Ordering::Release);
        clear
    }

    /// Writes queued bytes until the kernel takes no more. Returns true once the queue is empty.
    /// Once the socket writes through its TLS session (STARTTLS, before the loop has applied
    /// it), the queue holds plaintext for the session: nothing of it goes out in clear.
    pub(super) fn drain(&self) -> io::Result<bool> {
        let mut buffer = lock(&self.send_buffer);
        if self.writes_via_loop() {
            return Ok(false);
        }
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
        if buffer.is_empty() && !self.writes_via_loop() {
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
        if !self.has(DEAD) && !self.writes_via_loop() {
            let _ = sys::uncork(&self.socket);
        }
    }

    /// Makes every later write take nothing (the socket is closed as far as users are concerned).
    pub fn kill(&self) {
        self.set(DEAD);
    }
}

impl AsFd for SocketIo {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// The errno of an I/O error (EIO when it carries none).
pub(crate) fn errno_of(err: &io::Error) -> i32 {
    err.raw_os_error().unwrap_or(libc::EIO)
}
