//! `limit-server --udp`: what one core echoes over UDP with nothing in between. One blocking
//! socket: `recvmmsg` takes up to a batch of datagrams (waiting for the first only), and one
//! `sendmmsg` sends each back to its sender.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// Datagrams per `recvmmsg` / `sendmmsg`.
const BATCH: usize = 64;
const MAX_DATAGRAM: usize = 65_536;

pub fn serve(port: u16) -> io::Result<()> {
    let socket = UdpSocket::bind(("127.0.0.1", port))?;
    println!("{{\"port\": {}}}", socket.local_addr()?.port());
    let fd = socket.as_raw_fd();
    let mut data = vec![0u8; BATCH * MAX_DATAGRAM];
    // SAFETY: plain C structs for which all zeros is a valid value.
    let mut names: Vec<libc::sockaddr_storage> = vec![unsafe { zeroed() }; BATCH];
    loop {
        // SAFETY: as above.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { zeroed() };
        for (i, slot) in data.chunks_exact_mut(MAX_DATAGRAM).enumerate() {
            iovecs[i] = libc::iovec { iov_base: slot.as_mut_ptr().cast(), iov_len: MAX_DATAGRAM };
            headers[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            headers[i].msg_hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            headers[i].msg_hdr.msg_iov = &mut iovecs[i];
            headers[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the headers point at `data`, `names` and `iovecs`, alive and unmoved for the call.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            let err = io::Error::last_os_error();
            // An ICMP error about a flow that went away, or a signal: serve on.
            if matches!(err.kind(), io::ErrorKind::Interrupted | io::ErrorKind::ConnectionRefused) {
                continue;
            }
            return Err(err);
        }
        // The same headers send each datagram back: its length is what was received, its
        // destination the sender the kernel wrote into msg_name.
        for (header, iovec) in headers.iter_mut().zip(iovecs.iter_mut()).take(received as usize) {
            iovec.iov_len = header.msg_len as usize;
        }
        // SAFETY: as for recvmmsg; sendmmsg only reads through the headers.
        let _ = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), received as libc::c_uint, 0) };
    }
}
