//! Where to connect and the byte stream a connection runs over.
//!
//! std has no non-blocking connect, and one blocking connect would stall every other
//! connection of this single-threaded generator, so sockets are created and connected
//! here with libc, then handed to std's stream types.

use std::fmt;
use std::io::{self, Read, Write};
use std::mem;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

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

/// A client connection's byte stream. A TLS mode would add a variant holding a rustls
/// `ClientConnection` beside its `TcpStream`, whose `read`/`write` move plaintext and whose
/// handshake keeps the connection in its connecting state a little longer.
pub enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Transport {
    /// Starts connecting; the connection is usable once the socket reports writable and
    /// `take_error` finds no error.
    pub fn connect(endpoint: &Endpoint) -> io::Result<Transport> {
        match endpoint {
            Endpoint::Tcp(SocketAddr::V4(addr)) => {
                // SAFETY: all-zero is a valid sockaddr_in (plain integers); it also clears sin_zero.
                let mut raw: libc::sockaddr_in = unsafe { mem::zeroed() };
                raw.sin_family = libc::AF_INET as libc::sa_family_t;
                raw.sin_port = addr.port().to_be();
                raw.sin_addr.s_addr = u32::from_ne_bytes(addr.ip().octets());
                Transport::tcp(connect_nonblocking(libc::AF_INET, &raw)?)
            }
            Endpoint::Tcp(SocketAddr::V6(addr)) => {
                // SAFETY: all-zero is a valid sockaddr_in6 (plain integers).
                let mut raw: libc::sockaddr_in6 = unsafe { mem::zeroed() };
                raw.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                raw.sin6_port = addr.port().to_be();
                raw.sin6_flowinfo = addr.flowinfo();
                raw.sin6_addr.s6_addr = addr.ip().octets();
                raw.sin6_scope_id = addr.scope_id();
                Transport::tcp(connect_nonblocking(libc::AF_INET6, &raw)?)
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
                Ok(Transport::Unix(UnixStream::from(fd)))
            }
        }
    }

    fn tcp(fd: OwnedFd) -> io::Result<Transport> {
        let stream = TcpStream::from(fd);
        // Small pipelined messages must not wait for the previous ones to be acknowledged.
        stream.set_nodelay(true)?;
        Ok(Transport::Tcp(stream))
    }

    /// The pending socket error (SO_ERROR): how a non-blocking connect reports failure.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Transport::Tcp(stream) => stream.take_error(),
            Transport::Unix(stream) => stream.take_error(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(stream) => stream.read(buf),
            Transport::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(stream) => stream.write(buf),
            Transport::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsFd for Transport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Transport::Tcp(stream) => stream.as_fd(),
            Transport::Unix(stream) => stream.as_fd(),
        }
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
