//! The system calls the loop makes itself, each behind a safe function. (Registration with the
//! poller goes through `event_loop::poller`.)

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

mod datagram;
pub use datagram::{
    bind_udp, connect_datagram, dropped_datagrams, interface_index, receive, send_datagram, send_datagrams,
    Datagram, DatagramBuffers, DATAGRAMS_PER_RECEIVE, DATAGRAMS_PER_SEND, MAX_DATAGRAM,
};

/// Fails with `EPERM` for descriptors that can never be polled (regular files and directories:
/// epoll refuses them) and with `EBADF` for descriptors that are not open.
pub fn check_pollable(fd: RawFd) -> io::Result<()> {
    // SAFETY: `stat` is plain old data, fully written by a successful fstat; zeroed is a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `stat`, which outlives the call; a bad fd yields EBADF.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    match stat.st_mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFDIR => Err(io::Error::from_raw_os_error(libc::EPERM)),
        _ => Ok(()),
    }
}

/// Asks the kernel, without blocking, which of `fds` are ready now (`revents` is filled in).
/// One syscall for any number of descriptors: the loop uses it to re-check edge-triggered polls
/// before it reports them, which makes delivery level-triggered as JavaScript sees it.
pub fn poll_now(fds: &mut [libc::pollfd]) -> io::Result<()> {
    if fds.is_empty() {
        return Ok(());
    }
    loop {
        // SAFETY: the pointer and length describe `fds`, a live, exclusively borrowed slice.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        if rc >= 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

// --- sockets ------------------------------------------------------------------------------------

use socket2::{Domain, Protocol, Type};
pub use socket2::{SockAddr, Socket};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// The accept queue's length unless a listener asks for another (uSockets' too).
pub const LISTEN_BACKLOG: i32 = 512;

fn stream_socket(domain: Domain) -> io::Result<Socket> {
    let protocol = if domain == Domain::UNIX { None } else { Some(Protocol::TCP) };
    Socket::new(domain, Type::STREAM.nonblocking().cloexec(), protocol)
}

/// A listening TCP socket. `exclusive` leaves SO_REUSEPORT off, so a taken port fails with
/// `EADDRINUSE` instead of being shared; an IPv6 wildcard address listens dual-stack unless
/// `ipv6_only`. `backlog`: the accept queue's length (default [`LISTEN_BACKLOG`]).
pub fn listen_tcp(
    addr: SocketAddr,
    exclusive: bool,
    ipv6_only: bool,
    backlog: Option<u32>,
) -> io::Result<Socket> {
    let socket = stream_socket(Domain::for_address(addr))?;
    socket.set_reuse_address(true)?;
    if !exclusive {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // A wildcard is dual-stack unless asked otherwise; a specific address is either way
        // of its own family.
        socket.set_only_v6(ipv6_only)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog_of(backlog))?;
    Ok(socket)
}

/// `listen(2)`'s backlog: the one asked for (the kernel caps it at somaxconn), or the default.
fn backlog_of(backlog: Option<u32>) -> i32 {
    backlog.map_or(LISTEN_BACKLOG, |n| i32::try_from(n).unwrap_or(i32::MAX))
}

/// A listening Unix socket. A socket file left at `path` by an earlier listener is removed
/// first (as uSockets does); any other kind of file makes it fail with `EADDRINUSE`.
pub fn listen_unix(path: &Path, backlog: Option<u32>) -> io::Result<Socket> {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket()) {
        std::fs::remove_file(path)?;
    }
    let socket = stream_socket(Domain::UNIX)?;
    socket.bind(&SockAddr::unix(path)?)?;
    socket.listen(backlog_of(backlog))?;
    Ok(socket)
}

/// How often a keep-alive probe repeats once the connection has been idle for its delay, and
/// how many go unanswered before the kernel gives up (the socket then fails with ETIMEDOUT):
/// a dead peer is noticed at most `delay + KEEPALIVE_INTERVAL * KEEPALIVE_PROBES` after the last
/// traffic (60 s + 30 s by default).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_PROBES: u32 = 3;

/// Turns TCP keep-alive on with probes after `delay` of idleness (TCP_KEEPIDLE, in whole
/// seconds), or off (`None`).
pub fn set_keepalive(socket: &Socket, delay: Option<Duration>) -> io::Result<()> {
    match delay {
        Some(delay) => {
            let params = socket2::TcpKeepalive::new()
                .with_time(delay)
                .with_interval(KEEPALIVE_INTERVAL)
                .with_retries(KEEPALIVE_PROBES);
            socket.set_tcp_keepalive(&params)
        }
        None => socket.set_keepalive(false),
    }
}

/// What the socket's keep-alive and Nagle options are, as the kernel reports them:
/// (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_NODELAY).
pub fn tcp_options(socket: &Socket) -> io::Result<(bool, Duration, Duration, u32, bool)> {
    Ok((
        socket.keepalive()?,
        socket.tcp_keepalive_time()?,
        socket.tcp_keepalive_interval()?,
        socket.tcp_keepalive_retries()?,
        socket.tcp_nodelay()?,
    ))
}

/// Makes the socket's close abortive: the peer gets a reset, unsent data is dropped.
pub fn set_abortive_close(socket: &Socket) -> io::Result<()> {
    socket.set_linger(Some(Duration::ZERO))
}

/// Accepts one pending connection: `None` when there is none (EAGAIN). Connection errors that
/// only concern the aborted peer (ECONNABORTED...) are skipped.
pub fn accept(listener: &Socket) -> io::Result<Option<(Socket, SockAddr)>> {
    loop {
        match listener.accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) {
            Ok((socket, peer)) => {
                // The peer's address tells the family without asking the socket (a syscall).
                if !peer.is_unix() {
                    socket.set_tcp_nodelay(true)?;
                }
                return Ok(Some((socket, peer)));
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(err)
                if matches!(err.raw_os_error(), Some(libc::ECONNABORTED | libc::EPROTO | libc::EINTR)) => {}
            Err(err) => return Err(err),
        }
    }
}

/// What an inherited descriptor must be: a listening socket, or a connected one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inherited {
    Listening,
    Connected,
}

/// Takes over an inherited stream socket (systemd's `LISTEN_FDS`, a parent process's), after
/// checking it is what `expected` says: `EBADF` if `fd` is not open, `ENOTSOCK` if it is not a
/// socket, `ESOCKTNOSUPPORT` if it is not a TCP or Unix stream socket, `EINVAL` if it is not
/// listening (or, for [`Inherited::Connected`], is), `ENOTCONN` if it is not connected. On
/// success the socket owns `fd` (closing it when dropped), is non-blocking and close-on-exec,
/// and a TCP one has TCP_NODELAY as every socket of the loop; on failure `fd` is untouched.
pub fn adopt_inherited(fd: RawFd, expected: Inherited) -> io::Result<Socket> {
    let fail = |errno| Err(io::Error::from_raw_os_error(errno));
    if fd < 0 {
        return fail(libc::EBADF);
    }
    // SAFETY: `stat` is plain old data, fully written by a successful fstat; zeroed is a valid value.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat only writes into `stat`, which outlives the call; a bad fd yields EBADF.
    if unsafe { libc::fstat(fd, &mut stat) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return fail(libc::ENOTSOCK);
    }
    // SAFETY: `fd` is an open descriptor (fstat succeeded); the borrow ends with this function
    // and nothing closes the descriptor meanwhile.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let socket = socket2::SockRef::from(&borrowed);
    let domain = socket.domain()?;
    if socket.r#type()? != Type::STREAM || ![Domain::IPV4, Domain::IPV6, Domain::UNIX].contains(&domain) {
        return fail(libc::ESOCKTNOSUPPORT);
    }
    // A stream socket of IPv4 or IPv6 may be SCTP or MPTCP: only TCP (and MPTCP, which is TCP
    // to its users) behaves as the loop expects.
    if domain != Domain::UNIX
        && !matches!(socket.protocol()?, Some(p) if p == Protocol::TCP || p == Protocol::MPTCP)
    {
        return fail(libc::ESOCKTNOSUPPORT);
    }
    let listening = socket.is_listener()?;
    match expected {
        Inherited::Listening if !listening => return fail(libc::EINVAL),
        Inherited::Connected if listening => return fail(libc::EINVAL),
        Inherited::Connected => {
            socket.peer_addr()?;
        }
        Inherited::Listening => {}
    }
    // Every change that can fail comes first, so that a failure leaves the descriptor as it was.
    if domain != Domain::UNIX && expected == Inherited::Connected {
        socket.set_tcp_nodelay(true)?;
    }
    socket.set_cloexec(true)?;
    socket.set_nonblocking(true)?;
    // SAFETY: `fd` is an open socket that the caller hands over (this function's contract): no
    // one else closes it from here on.
    Ok(unsafe { <Socket as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Starts a non-blocking connect; completion shows as writability (then [`take_error`]).
pub fn connect(addr: &SockAddr, source: Option<IpAddr>) -> io::Result<Socket> {
    let socket = stream_socket(addr.domain())?;
    if addr.domain() != Domain::UNIX {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(source) = source {
        socket.bind(&SocketAddr::new(source, 0).into())?;
    }
    match socket.connect(addr) {
        // A Unix connect completes at once or fails (EAGAIN: the listener's backlog is full).
        Ok(()) => Ok(socket),
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(err) => Err(err),
    }
}

/// The pending error of a socket (SO_ERROR), e.g. why a connect failed.
pub fn take_error(socket: &Socket) -> io::Result<()> {
    match socket.take_error()? {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// `recv`: `Ok(0)` is the peer's FIN; WouldBlock means nothing to read now.
pub fn recv(socket: &Socket, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match io::Read::read(&mut &*socket, buf) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Receives up to `max` bytes onto the end of `words`, as little-endian bytes with the last word
/// zero-padded, without zero-filling the room first (bulk data lands in the event batch with no
/// copy in between). Returns the byte count; `words` grows by the words that cover it.
pub fn recv_words(socket: &Socket, words: &mut Vec<u32>, max: usize) -> io::Result<usize> {
    let room_words = max.div_ceil(4);
    words.reserve(room_words);
    let spare = &mut words.spare_capacity_mut()[..room_words];
    // SAFETY: `MaybeUninit<u32>` is four `MaybeUninit<u8>` with no padding, so the spare words
    // are `room_words * 4` bytes of the same allocation, borrowed through `spare` meanwhile.
    let bytes: &mut [MaybeUninit<u8>] =
        unsafe { std::slice::from_raw_parts_mut(spare.as_mut_ptr().cast(), room_words * 4) };
    let received = loop {
        match socket.recv(&mut bytes[..max]) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            result => break result?,
        }
    };
    let covered = received.div_ceil(4);
    for byte in &mut bytes[received..covered * 4] {
        byte.write(0);
    }
    // SAFETY: recv initialized the first `received` bytes and the loop above the rest of the
    // last word, so the first `covered` spare words are initialized (and `covered <= room_words`,
    // which `reserve` made room for).
    unsafe { words.set_len(words.len() + covered) };
    Ok(received)
}

fn send_flags(more: bool) -> i32 {
    libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 }
}

/// Sends what the kernel takes now: the count, 0 when it takes nothing (EAGAIN).
pub fn send(socket: &Socket, data: &[u8], more: bool) -> io::Result<usize> {
    loop {
        match socket.send_with_flags(data, send_flags(more)) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            result => return result,
        }
    }
}

/// Like [`send`] for several buffers in one `sendmsg` (a writev).
pub fn send_vectored(socket: &Socket, bufs: &[io::IoSlice<'_>], more: bool) -> io::Result<usize> {
    loop {
        match socket.send_vectored_with_flags(bufs, send_flags(more)) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(0),
            result => return result,
        }
    }
}

/// Like [`send`] for two buffers in one `sendmsg` (a writev).
pub fn send2(socket: &Socket, first: &[u8], second: &[u8], more: bool) -> io::Result<usize> {
    send_vectored(socket, &[io::IoSlice::new(first), io::IoSlice::new(second)], more)
}

/// A socket as the `io::Write` that rustls writes its records into (all of them in one
/// writev): each write sends what the kernel takes now, `Ok(0)` when it takes nothing (not
/// the `io::Write` convention, so not for `write_all`: callers stop at 0 and wait for
/// writability).
pub struct SocketWriter<'a>(pub &'a Socket);

impl io::Write for SocketWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send(self.0, buf, false)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        send_vectored(self.0, bufs, false)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Pushes out data held back by MSG_MORE.
pub fn uncork(socket: &Socket) -> io::Result<()> {
    socket.set_tcp_cork(false)
}

/// How JavaScript shows an address: IPv4 peers of dual-stack sockets as `'127.0.0.1'`, IPv6
/// without brackets, Unix sockets as their path (`''` when unnamed). The port is -1 for Unix.
pub fn describe_address(addr: &SockAddr) -> (String, i32) {
    if let Some(inet) = addr.as_socket() {
        let ip = match inet.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        return (ip.to_string(), i32::from(inet.port()));
    }
    let path = addr.as_pathname().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    (path, -1)
}

/// Makes the calling thread a batch thread for the scheduler: it no longer preempts the thread
/// it woke. On a core shared with the JavaScript thread, the loop thread then lets JavaScript
/// finish dispatching instead of interrupting it for every arriving message, so the two take
/// turns once per batch. (On a core of its own nothing changes.) Best effort.
pub fn prefer_batches() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` during the call only; 0 is the calling thread.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn regular_files_are_not_pollable() {
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let err = check_pollable(file.as_raw_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn sockets_are_pollable_and_closed_fds_are_not() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        check_pollable(a.as_raw_fd()).unwrap();
        assert_eq!(check_pollable(-1).unwrap_err().raw_os_error(), Some(libc::EBADF));
    }

    #[test]
    fn poll_now_reports_readiness() {
        use std::io::Write;
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut fds = [libc::pollfd { fd: a.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        poll_now(&mut fds).unwrap();
        assert_eq!(fds[0].revents & libc::POLLIN, 0);
        b.write_all(b"x").unwrap();
        poll_now(&mut fds).unwrap();
        assert_ne!(fds[0].revents & libc::POLLIN, 0);
    }

    #[test]
    fn inherited_descriptors_are_checked_before_they_are_taken_over() {
        use std::os::fd::IntoRawFd;
        let errno = |result: io::Result<Socket>| result.unwrap_err().raw_os_error();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let (datagram, _peer) = std::os::unix::net::UnixDatagram::pair().unwrap();
        assert_eq!(errno(adopt_inherited(file.as_raw_fd(), Inherited::Listening)), Some(libc::ENOTSOCK));
        assert_eq!(
            errno(adopt_inherited(datagram.as_raw_fd(), Inherited::Connected)),
            Some(libc::ESOCKTNOSUPPORT)
        );
        assert_eq!(errno(adopt_inherited(client.as_raw_fd(), Inherited::Listening)), Some(libc::EINVAL));
        assert_eq!(errno(adopt_inherited(listener.as_raw_fd(), Inherited::Connected)), Some(libc::EINVAL));
        assert_eq!(errno(adopt_inherited(-1, Inherited::Listening)), Some(libc::EBADF));

        // Taken over: the socket owns the descriptor now (and is non-blocking).
        let adopted = adopt_inherited(listener.into_raw_fd(), Inherited::Listening).unwrap();
        assert!(adopted.nonblocking().unwrap());
        let connection = adopt_inherited(client.into_raw_fd(), Inherited::Connected).unwrap();
        assert!(connection.tcp_nodelay().unwrap());
    }
}
