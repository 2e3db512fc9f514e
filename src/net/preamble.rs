//! The PROXY protocol stage of an accepted connection (a listener's `proxyProtocol`): before
//! TLS and before `Open`, the loop reads the header the load balancer sent ([`crate::proxy`]
//! parses it). The bytes read past its end are the connection's own: the first `Data` of a
//! plain socket, the first input of a TLS session. A connection whose first bytes cannot be a
//! header, or that ends before its header did, closes without JavaScript hearing of it
//! (counted as rejected); one whose header trickles in is bounded by the handshake timeout.

use std::io;

use super::io::{errno_of, SocketIo};
use super::stream::Stream;
use crate::event_loop::services::Services;
use crate::proxy::{self, Addresses, Expect, Header, Parsed};
use crate::sys::{self, SockAddr};

/// Largest read while the header is incomplete: a v2 header with its TLVs fits, and a peer
/// that sends the header and a burst of data at once costs one more read, not a larger buffer.
const PREAMBLE_READ_BYTES: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct Preamble {
    expect: Expect,
    /// Everything read so far (the header, then perhaps the connection's own first bytes).
    received: Vec<u8>,
    /// The connection's own addresses, which stand unless a header replaces them.
    remote: SockAddr,
    local: Option<(String, i32)>,
}

impl Preamble {
    pub(super) fn new(expect: Expect, remote: SockAddr, local: Option<(String, i32)>) -> Preamble {
        Preamble { expect, received: Vec::new(), remote, local }
    }
}

impl Stream {
    /// Reads what the socket has towards the header; ends the stage once it is known.
    pub(super) fn read_preamble(&mut self, services: &mut Services, io: &SocketIo, recv_buffer: &mut [u8]) {
        let room = recv_buffer.len().min(PREAMBLE_READ_BYTES);
        loop {
            let Some(preamble) = self.preamble.as_mut() else { return };
            let n = match sys::recv(&io.socket, &mut recv_buffer[..room]) {
                // The peer left before its header ended.
                Ok(0) => return self.close_from_loop(services, libc::ECONNRESET),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) => return self.close_from_loop(services, errno_of(&err)),
            };
            preamble.received.extend_from_slice(&recv_buffer[..n]);
            match proxy::parse(&preamble.received, preamble.expect) {
                Ok(Parsed::Incomplete) if n == room => continue,
                Ok(Parsed::Incomplete) => return,
                Ok(Parsed::Absent) => return self.end_preamble(services, io, None, 0),
                Ok(Parsed::Header { header, len }) => {
                    return self.end_preamble(services, io, Some(header), len)
                }
                Err(_) => return self.close_from_loop(services, libc::EPROTO),
            }
        }
    }

    /// The header (if any) took the first `len` bytes: the transport starts with the rest.
    fn end_preamble(&mut self, services: &mut Services, io: &SocketIo, header: Option<Header>, len: usize) {
        let Some(preamble) = self.preamble.take() else { return };
        if let Some(header) = header {
            self.proxied_addresses = announced_addresses(&header.addresses);
            let _ = io.proxy_header.set(header);
        }
        let rest = &preamble.received[len..];
        if self.is_tls() {
            if !rest.is_empty() {
                self.tls_receive(services, rest);
            }
        } else {
            self.announce_open(services, Some(preamble.remote), preamble.local);
            if !rest.is_empty() {
                services.events.push_data(self.id.index, self.id.generation, rest);
                services.note_read(rest.len());
            }
        }
    }
}

/// The (remote, local) addresses `Open` reports for a header's: the client's and the one it
/// connected to, or `None` where the connection's own stand (`UNKNOWN`, `LOCAL`, unspecified).
fn announced_addresses(addresses: &Addresses) -> Option<((String, i32), (String, i32))> {
    match addresses {
        Addresses::Unknown => None,
        Addresses::Ip { source, destination } => Some((
            sys::describe_address(&SockAddr::from(*source)),
            sys::describe_address(&SockAddr::from(*destination)),
        )),
        Addresses::Unix { source, destination } => {
            let path = |bytes: &[u8]| (String::from_utf8_lossy(bytes).into_owned(), -1);
            Some((path(source), path(destination)))
        }
    }
}
