//! The syscalls of UDP sockets: binding, receiving many datagrams per call (`recvmmsg`), sending,
//! and the kernel's count of datagrams it dropped for a full receive buffer.

use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use socket2::{Domain, Protocol, Socket, Type};

/// The largest datagram UDP carries over IPv6 (65,535 minus its 8-byte header); over IPv4 the
/// limit is 65,507, which `send` leaves to the kernel (`EMSGSIZE`).
pub const MAX_DATAGRAM: usize = 65_527;
/// Datagrams one `recvmmsg` takes at most.
pub const DATAGRAMS_PER_RECEIVE: usize = 16;

/// A bound, non-blocking UDP socket. `exclusive` leaves SO_REUSEPORT off; an IPv6 wildcard is
/// dual-stack unless `ipv6_only`.
pub fn bind_udp(addr: SocketAddr, exclusive: bool, ipv6_only: bool) -> io::Result<Socket> {
    let socket =
        Socket::new(Domain::for_address(addr), Type::DGRAM.nonblocking().cloexec(), Some(Protocol::UDP))?;
    if !exclusive {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(ipv6_only)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Room for one `recvmmsg` of [`DATAGRAMS_PER_RECEIVE`] datagrams of up to [`MAX_DATAGRAM`]
/// bytes each, with their senders' addresses (1 MiB: the loop makes one, when its first UDP
/// socket reads).
pub struct DatagramBuffers {
    data: Vec<u8>,
    names: Vec<libc::sockaddr_storage>,
    /// What the last receive took, per datagram: (length, address length, flags).
    received: Vec<(usize, libc::socklen_t, libc::c_int)>,
}

/// One datagram [`receive`] took.
pub struct Datagram<'a> {
    pub data: &'a [u8],
    /// The sender (`None` for an address family UDP does not use).
    pub from: Option<SocketAddr>,
    /// The kernel cut it to fit (not expected: the room is the largest datagram).
    pub truncated: bool,
}

impl Default for DatagramBuffers {
    fn default() -> Self {
        DatagramBuffers {
            data: vec![0; DATAGRAMS_PER_RECEIVE * MAX_DATAGRAM],
            // SAFETY: sockaddr_storage is a plain C struct for which all zeros is a valid value.
            names: vec![unsafe { zeroed() }; DATAGRAMS_PER_RECEIVE],
            received: Vec::with_capacity(DATAGRAMS_PER_RECEIVE),
        }
    }
}

impl DatagramBuffers {
    /// The datagrams the last [`receive`] took.
    pub fn datagrams(&self) -> impl Iterator<Item = Datagram<'_>> {
        self.received.iter().enumerate().map(move |(i, &(len, name_len, flags))| Datagram {
            data: &self.data[i * MAX_DATAGRAM..i * MAX_DATAGRAM + len],
            from: socket_addr(&self.names[i], name_len),
            truncated: flags & libc::MSG_TRUNC != 0,
        })
    }
}

/// Receives up to `max` datagrams (at most [`DATAGRAMS_PER_RECEIVE`]) in one `recvmmsg`;
/// returns how many (0: none waiting). Read them with [`DatagramBuffers::datagrams`].
pub fn receive(socket: &Socket, buffers: &mut DatagramBuffers, max: usize) -> io::Result<usize> {
    let count = max.clamp(1, DATAGRAMS_PER_RECEIVE);
    buffers.received.clear();
    // SAFETY: iovec and mmsghdr are plain C structs for which all zeros is a valid value (null
    // pointers, zero lengths). They point into `buffers` only for this call, so they are made
    // here rather than kept (raw pointers would make the buffers unsendable to the loop thread).
    let mut iovecs: [libc::iovec; DATAGRAMS_PER_RECEIVE] = unsafe { zeroed() };
    // SAFETY: as above.
    let mut headers: [libc::mmsghdr; DATAGRAMS_PER_RECEIVE] = unsafe { zeroed() };
    let DatagramBuffers { data, names, .. } = buffers;
    for (i, slot) in data.chunks_exact_mut(MAX_DATAGRAM).take(count).enumerate() {
        iovecs[i] = libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
        let header = &mut headers[i].msg_hdr;
        header.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
        header.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        header.msg_iov = &mut iovecs[i];
        header.msg_iovlen = 1;
    }
    let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
    let received = count_or_would_block(|| {
        // SAFETY: the first `count` headers point at buffers of `buffers` (data slots of
        // MAX_DATAGRAM bytes, name storage of the size given) and at `iovecs`, all of which
        // stay borrowed and unmoved for the call; the kernel writes only within them.
        unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        }
    })?;
    buffers.received.extend(
        headers[..received]
            .iter()
            .map(|header| (header.msg_len as usize, header.msg_hdr.msg_namelen, header.msg_hdr.msg_flags)),
    );
    Ok(received)
}

/// The count a `recvmmsg` / `sendmmsg` returned, retried on EINTR; 0 for EAGAIN.
fn count_or_would_block(mut call: impl FnMut() -> libc::c_int) -> io::Result<usize> {
    loop {
        if let Ok(count) = usize::try_from(call()) {
            return Ok(count);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// The address a `recvmmsg` wrote (IPv4-mapped IPv6 addresses of a dual-stack socket as IPv4).
fn socket_addr(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, which fits in it.
            let sin = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: the family says the storage holds a sockaddr_in6, which fits in it.
            let sin6 = unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            let port = u16::from_be(sin6.sin6_port);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, port)),
                None => SocketAddr::V6(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)),
            })
        }
        _ => None,
    }
}

/// The index of the network interface `name` (`"lo"`, `"eth0"`), or of a numeric index as is.
pub fn interface_index(name: &str) -> io::Result<u32> {
    if let Ok(index) = name.parse() {
        return Ok(index);
    }
    let name = std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::ENODEV))?;
    // SAFETY: `name` is a NUL-terminated string alive for the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// Datagrams one `sendmmsg` takes at most (the kernel's UIO_MAXIOV).
pub const DATAGRAMS_PER_SEND: usize = 1024;

/// Sends `datagrams` (each to its address, or to the connected peer for `None`) in one
/// `sendmmsg` (of at most [`DATAGRAMS_PER_SEND`]): how many the kernel took, in order (0 when
/// its buffer is full). A failure of the first datagram is an error; one of a later datagram
/// ends the call early and comes again with the next send.
pub fn send_datagrams(socket: &Socket, datagrams: &[(&[u8], Option<SocketAddr>)]) -> io::Result<usize> {
    let datagrams = &datagrams[..datagrams.len().min(DATAGRAMS_PER_SEND)];
    if datagrams.is_empty() {
        return Ok(0);
    }
    let addresses: Vec<Option<socket2::SockAddr>> =
        datagrams.iter().map(|(_, to)| to.map(Into::into)).collect();
    let mut iovecs: Vec<libc::iovec> = datagrams
        .iter()
        .map(|(data, _)| libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .zip(&addresses)
        .map(|(iovec, to)| {
            // SAFETY: mmsghdr is a plain C struct for which all zeros is a valid value.
            let mut header: libc::mmsghdr = unsafe { zeroed() };
            if let Some(to) = to {
                header.msg_hdr.msg_name = to.as_ptr().cast_mut().cast();
                header.msg_hdr.msg_namelen = to.len();
            }
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            header
        })
        .collect();
    let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
    count_or_would_block(|| {
        // SAFETY: every header points at its datagram's bytes (read only: sendmmsg does not
        // write through msg_iov), its iovec and its address, all alive and unmoved for the call.
        unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), headers.len() as libc::c_uint, libc::MSG_NOSIGNAL) }
    })
}

/// Sets the socket's default peer (`Some`: it then takes datagrams from that peer only, and
/// ICMP errors about it fail the next receive or send), or dissolves it (`None`). Linux
/// forgets an ephemeral port (one bound as port 0) when a datagram socket disconnects, so the
/// socket is bound again to `bound`, the address and port it was bound to (its port stays what
/// JavaScript was told; a wildcard stays a wildcard).
pub fn connect_datagram(socket: &Socket, peer: Option<SocketAddr>, bound: SocketAddr) -> io::Result<()> {
    match peer {
        Some(addr) => socket.connect(&addr.into()),
        None => {
            // SAFETY: sockaddr is a plain C struct; all zeros with AF_UNSPEC is the documented
            // way to dissolve a datagram socket's association (connect(2)).
            let mut unspec: libc::sockaddr = unsafe { zeroed() };
            unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
            let fd = std::os::fd::AsRawFd::as_raw_fd(socket);
            // SAFETY: `unspec` is live for the call and its size is given.
            let rc = unsafe { libc::connect(fd, &unspec, size_of::<libc::sockaddr>() as libc::socklen_t) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            if socket.local_addr()?.as_socket().is_some_and(|now| now.port() == 0) {
                socket.bind(&bound.into())?;
            }
            Ok(())
        }
    }
}

/// Datagrams the kernel dropped for this socket since it was made, most for a full receive
/// buffer (its `sk_drops`, read with SO_MEMINFO: exact at the moment of the call, where
/// SO_RXQ_OVFL would only tag the datagrams that arrive after a drop).
pub fn dropped_datagrams(socket: &Socket) -> io::Result<u32> {
    let mut info = [0u32; libc::SK_MEMINFO_DROPS as usize + 1];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: `info` and `len` are live for the call; the kernel writes at most `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(socket),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[libc::SK_MEMINFO_DROPS as usize])
}

/// Sends one datagram to `to` (`None`: the connected peer): whether the kernel took it (false:
/// its send buffer is full, EAGAIN). Other failures (EMSGSIZE, ECONNREFUSED from an earlier
/// ICMP error, ...) are errors.
pub fn send_datagram(socket: &Socket, data: &[u8], to: Option<SocketAddr>) -> io::Result<bool> {
    loop {
        let result = match to {
            Some(addr) => socket.send_to_with_flags(data, &addr.into(), libc::MSG_NOSIGNAL),
            None => socket.send_with_flags(data, libc::MSG_NOSIGNAL),
        };
        match result {
            Ok(_) => return Ok(true),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datagrams_arrive_many_per_receive_with_their_sender() {
        let server = bind_udp("127.0.0.1:0".parse().unwrap(), true, false).unwrap();
        let to = server.local_addr().unwrap().as_socket().unwrap();
        let client = bind_udp("127.0.0.1:0".parse().unwrap(), true, false).unwrap();
        let from = client.local_addr().unwrap().as_socket().unwrap();
        for size in [0, 1, 1200, MAX_DATAGRAM - 20] {
            assert!(send_datagram(&client, &vec![size as u8; size], Some(to)).unwrap());
        }
        let mut buffers = DatagramBuffers::default();
        assert_eq!(receive(&server, &mut buffers, DATAGRAMS_PER_RECEIVE).unwrap(), 4);
        let sizes: Vec<usize> = buffers.datagrams().map(|datagram| datagram.data.len()).collect();
        assert_eq!(sizes, [0, 1, 1200, MAX_DATAGRAM - 20]);
        assert!(buffers.datagrams().all(|datagram| datagram.from == Some(from) && !datagram.truncated));
        assert_eq!(dropped_datagrams(&server).unwrap(), 0);
        assert_eq!(receive(&server, &mut buffers, DATAGRAMS_PER_RECEIVE).unwrap(), 0);
    }

    #[test]
    fn a_full_receive_buffer_shows_in_the_drop_count() {
        let server = bind_udp("127.0.0.1:0".parse().unwrap(), true, false).unwrap();
        server.set_recv_buffer_size(4096).unwrap();
        let to = server.local_addr().unwrap().as_socket().unwrap();
        let client = bind_udp("127.0.0.1:0".parse().unwrap(), true, false).unwrap();
        for _ in 0..200 {
            let _ = send_datagram(&client, &[7; 1000], Some(to));
        }
        let mut buffers = DatagramBuffers::default();
        let received = receive(&server, &mut buffers, DATAGRAMS_PER_RECEIVE).unwrap();
        let dropped = dropped_datagrams(&server).unwrap();
        assert!(received > 0 && dropped > 100, "{received} received, {dropped} dropped");
    }

    #[test]
    fn a_disconnected_socket_keeps_its_ephemeral_port_and_wildcard() {
        let wildcard: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let socket = bind_udp(wildcard, true, false).unwrap();
        let port = socket.local_addr().unwrap().as_socket().unwrap().port();
        let bound = SocketAddr::new(wildcard.ip(), port);
        connect_datagram(&socket, Some("127.0.0.1:9".parse().unwrap()), bound).unwrap();
        connect_datagram(&socket, None, bound).unwrap();
        assert_eq!(socket.local_addr().unwrap().as_socket(), Some(bound));
    }

    #[test]
    fn many_datagrams_leave_in_one_send_in_order() {
        let server = bind_udp("127.0.0.1:0".parse().unwrap(), true, false).unwrap();
        let to = server.local_addr().unwrap().as_socket();
        let client = bind_udp("127.0.0.1:0".parse().unwrap(), true, false).unwrap();
        let payloads: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; usize::from(i) * 100]).collect();
        let datagrams: Vec<(&[u8], Option<SocketAddr>)> =
            payloads.iter().map(|data| (data.as_slice(), to)).collect();
        assert_eq!(send_datagrams(&client, &datagrams).unwrap(), 10);
        let mut buffers = DatagramBuffers::default();
        assert_eq!(receive(&server, &mut buffers, DATAGRAMS_PER_RECEIVE).unwrap(), 10);
        assert!(buffers.datagrams().zip(&payloads).all(|(datagram, sent)| datagram.data == sent.as_slice()));
    }
}
