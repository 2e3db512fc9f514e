//! Where to connect and the byte stream a connection runs over: a socket, plain or with TLS.
//!
//! std has no non-blocking connect, and one blocking connect would stall every other
//! connection of this single-threaded generator, so sockets are created and connected
//! here with libc, then handed to std's stream types.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::mem;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use crate::tls::{Negotiated, TlsClient, TlsSession};

pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "{addr}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A stream socket, connected or still connecting.
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    /// Starts connecting; the socket is usable once it reports writable and `take_error` finds
    /// no error.
    fn connect(endpoint: &Endpoint) -> io::Result<Socket> {
        match endpoint {
            Endpoint::Tcp(SocketAddr::V4(addr)) => {
                // SAFETY: all-zero is a valid sockaddr_in (plain integers); it also clears sin_zero.
                let mut raw: libc::sockaddr_in = unsafe { mem::zeroed() };
                raw.sin_family = libc::AF_INET as libc::sa_family_t;
                raw.sin_port = addr.port().to_be();
                raw.sin_addr.s_addr = u32::from_ne_bytes(addr.ip().octets());
                Socket::tcp(connect_nonblocking(libc::AF_INET, &raw)?)
            }
            Endpoint::Tcp(SocketAddr::V6(addr)) => {
                // SAFETY: all-zero is a valid sockaddr_in6 (plain integers).
                let mut raw: libc::sockaddr_in6 = unsafe { mem::zeroed() };
                raw.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                raw.sin6_port = addr.port().to_be();
                raw.sin6_flowinfo = addr.flowinfo();
                raw.sin6_addr.s6_addr = addr.ip().octets();
                raw.sin6_scope_id = addr.scope_id();
                Socket::tcp(connect_nonblocking(libc::AF_INET6, &raw)?)
            }
            Endpoint::Unix(path) => {
                // SAFETY: all-zero is a valid sockaddr_un, and its path is then NUL-terminated.
                let mut raw: libc::sockaddr_un = unsafe { mem::zeroed() };
                raw.sun_family = libc::AF_UNIX as libc::sa_family_t;
                let bytes = path.as_os_str().as_bytes();
                // The last byte of sun_path must stay 0.
                if bytes.len() >= raw.sun_path.len() || bytes.contains(&0) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "Unix socket path too long or contains NUL",
                    ));
                }
                for (dst, &src) in raw.sun_path.iter_mut().zip(bytes) {
                    *dst = src as libc::c_char;
                }
                let fd = connect_nonblocking(libc::AF_UNIX, &raw)?;
                Ok(Socket::Unix(UnixStream::from(fd)))
            }
        }
    }

    fn tcp(fd: OwnedFd) -> io::Result<Socket> {
        let stream = TcpStream::from(fd);
        // Small pipelined messages must not wait for the previous ones to be acknowledged.
        stream.set_nodelay(true)?;
        Ok(Socket::Tcp(stream))
    }

    /// The pending socket error (SO_ERROR): how a non-blocking connect reports failure.
    fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Socket::Tcp(stream) => stream.take_error(),
            Socket::Unix(stream) => stream.take_error(),
        }
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.read(buf),
            Socket::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.write(buf),
            Socket::Unix(stream) => stream.write(buf),
        }
    }

    // rustls writes its queued records with one writev.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Socket::Tcp(stream) => stream.write_vectored(bufs),
            Socket::Unix(stream) => stream.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(stream) => stream.as_fd(),
            Socket::Unix(stream) => stream.as_fd(),
        }
    }
}

/// A client connection's byte stream: the socket, and over it a TLS session if the run uses
/// TLS. Either way its reads and writes move the plaintext of the echo protocol.
pub struct Transport {
    socket: Socket,
    tls: Option<TlsSession>,
}

impl Transport {
    /// Starts connecting, and with `tls`, a TLS session whose handshake starts once the socket
    /// is connected (with the first `write` or `flush`).
    pub fn connect(endpoint: &Endpoint, tls: Option<&TlsClient>) -> io::Result<Transport> {
        let tls = tls.map(TlsClient::session).transpose()?;
        Ok(Transport { socket: Socket::connect(endpoint)?, tls })
    }

    /// The pending socket error (SO_ERROR): how a non-blocking connect reports failure.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.socket.take_error()
    }

    /// Reads what the server sent into `buf`, decrypted if TLS; `inbox` is room for TLS
    /// ciphertext (see `TlsSession::read`). A read shorter than `buf` leaves nothing behind
    /// in the transport, so, sockets being polled level-triggered, the poller reports any
    /// more there is.
    pub fn read(&mut self, buf: &mut [u8], inbox: &mut [u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.socket.read(buf),
            Some(tls) => tls.read(&mut self.socket, buf, inbox),
        }
    }

    /// Writes plaintext. TLS takes all of `buf` or nothing (`WouldBlock` while earlier
    /// records still wait for the socket).
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.tls {
            None => self.socket.write(buf),
            Some(tls) => tls.write(&mut self.socket, buf),
        }
    }

    /// Pushes out TLS records that wait for the socket, if any: `WouldBlock` while some
    /// still do. A plain socket holds nothing back.
    pub fn flush(&mut self) -> io::Result<()> {
        match &mut self.tls {
            None => Ok(()),
            Some(tls) => tls.flush(&mut self.socket),
        }
    }

    /// Whether a TLS handshake is still under way: a failure now is a failed connect.
    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(TlsSession::is_handshaking)
    }

    /// Ends a TLS session the way a well-behaved client does before it closes the socket.
    pub fn close_notify(&mut self) {
        if let Some(tls) = &mut self.tls {
            tls.close_notify(&mut self.socket);
        }
    }

    /// Whether a completed TLS handshake resumed a session.
    pub fn resumed(&self) -> bool {
        self.tls.as_ref().is_some_and(TlsSession::resumed)
    }

    /// What the TLS handshake agreed on, once it is complete.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.tls.as_ref().and_then(TlsSession::negotiated)
    }
}

impl AsFd for Transport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// A non-blocking stream socket of `domain`, connected or still connecting to `addr` (a
/// `sockaddr_*` of that domain).
fn connect_nonblocking<A>(domain: libc::c_int, addr: &A) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket() takes no pointers.
    let raw_fd = unsafe { libc::socket(domain, flags, 0) };
    if raw_fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket() just returned this descriptor, so nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw_fd) };
    let len = mem::size_of::<A>() as libc::socklen_t;
    // SAFETY: `addr` is a live sockaddr of `len` bytes, only read during the call.
    let status = unsafe { libc::connect(fd.as_raw_fd(), (addr as *const A).cast(), len) };
    if status < 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(err);
        }
    }
    Ok(fd)
}
