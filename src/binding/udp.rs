//! The UDP part of `LoopCore`: what `lib/udp.js` builds `UdpSocket` on.

use std::net::SocketAddr;

use napi::bindgen_prelude::Uint32Array;
use napi_derive::napi;

use super::{address_literal, invalid_argument, js_error, listen_address, slot, LoopCore, Result};

/// A bound UDP socket: its id, and the address and port it is bound to.
#[napi(object)]
pub struct UdpBound {
    pub id: f64,
    pub address: String,
    pub port: u32,
}

/// Words per datagram in `udpSendPacked`'s `meta`: end of its bytes, port, address index.
const PACKED_META_WORDS: usize = 3;

/// A datagram peer: an IP address (never a name) and a port.
fn peer_address(address: &str, port: u32) -> Result<SocketAddr> {
    let ip = address_literal(address)
        .ok_or_else(|| invalid_argument(format!("address must be an IP address, got '{address}'")))?;
    Ok(SocketAddr::new(ip, port as u16))
}

fn parse_ipv4(text: &str) -> std::io::Result<std::net::Ipv4Addr> {
    text.parse().map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

impl LoopCore {
    fn udp_configure<T: Default>(
        &self,
        id: f64,
        configure: impl FnOnce(&socket2::Socket, bool) -> std::io::Result<T>,
    ) -> Result<T> {
        let Some(event_loop) = self.event_loop.as_ref() else { return Ok(T::default()) };
        event_loop.udp_configure(&self.js.borrow(), slot(id), configure).map_err(js_error)
    }

    /// Sets an option that IPv4 and IPv6 sockets spell differently.
    fn udp_configure_by_family(
        &self,
        id: f64,
        v6: impl FnOnce(&socket2::Socket) -> std::io::Result<()>,
        v4: impl FnOnce(&socket2::Socket) -> std::io::Result<()>,
    ) -> Result<()> {
        self.udp_configure(id, |socket, ipv6| if ipv6 { v6(socket) } else { v4(socket) })
    }
}

#[napi]
impl LoopCore {
    /// Binds a UDP socket (`host` null or `''`: every interface, dual-stack). Errors carry the
    /// errno code (`EADDRINUSE`, `EACCES`, `EADDRNOTAVAIL`).
    #[napi]
    pub fn udp_bind(
        &self,
        host: Option<String>,
        port: u32,
        exclusive: bool,
        ipv6_only: bool,
    ) -> Result<UdpBound> {
        let addr = listen_address(host, port as u16)?;
        let (id, local) = self
            .running()?
            .udp_bind(&mut self.js.borrow_mut(), addr, exclusive, ipv6_only)
            .map_err(js_error)?;
        Ok(UdpBound { id: id.pack() as f64, address: local.ip().to_string(), port: u32::from(local.port()) })
    }

    /// Sends one datagram to `address` (an IP address: `lib/udp.js` refuses names) and `port`,
    /// or with no address to the connected peer: whether the kernel took it. A closed socket or
    /// loop sends nothing.
    #[napi]
    pub fn udp_send(&self, id: f64, data: &[u8], port: u32, address: Option<String>) -> Result<bool> {
        let to = address.map(|address| peer_address(&address, port)).transpose()?;
        let Some(event_loop) = self.event_loop.as_ref() else { return Ok(false) };
        event_loop.udp_send(&self.js.borrow(), slot(id), data, to).map_err(js_error)
    }

    /// Sends many datagrams in one `sendmmsg`: `data[i]` to `addresses[i]` and `ports[i]` (no
    /// addresses: to the connected peer). Returns how many the kernel took, in order.
    #[napi]
    pub fn udp_send_many(
        &self,
        id: f64,
        data: Vec<napi::bindgen_prelude::Buffer>,
        ports: Vec<u32>,
        addresses: Option<Vec<String>>,
    ) -> Result<u32> {
        let peers = match &addresses {
            Some(addresses) => addresses
                .iter()
                .zip(&ports)
                .map(|(address, &port)| peer_address(address, port).map(Some))
                .collect::<Result<Vec<_>>>()?,
            None => vec![None; data.len()],
        };
        let datagrams: Vec<(&[u8], Option<SocketAddr>)> =
            data.iter().map(|buffer| buffer.as_ref()).zip(peers).collect();
        let Some(event_loop) = self.event_loop.as_ref() else { return Ok(0) };
        event_loop
            .udp_send_many(&self.js.borrow(), slot(id), &datagrams)
            .map(|sent| sent as u32)
            .map_err(js_error)
    }

    /// Sends coalesced datagrams (lib/udp.js) in one `sendmmsg`, from the `first`: datagram `i`
    /// is described by `meta[3i..3i + 3]`, the end of its bytes in `packed` (they start where
    /// the one before ends), its port, and the index of its address in `addresses` (no
    /// addresses: to the connected peer). One buffer and one typed array cross into native code
    /// instead of an object per datagram, and each distinct address is parsed once. Returns how
    /// many the kernel took from `first` on (at most 1,024).
    #[napi]
    pub fn udp_send_packed(
        &self,
        id: f64,
        packed: &[u8],
        meta: Uint32Array,
        addresses: Vec<String>,
        first: u32,
    ) -> Result<u32> {
        let ips = addresses
            .iter()
            .map(|address| peer_address(address, 0).map(|peer| peer.ip()))
            .collect::<Result<Vec<_>>>()?;
        let records: Vec<&[u32]> = meta.chunks_exact(PACKED_META_WORDS).collect();
        let malformed =
            || invalid_argument("udpSendPacked: a datagram outside its buffer or address table".to_owned());
        let first = first as usize;
        let mut datagrams = Vec::with_capacity(records.len().saturating_sub(first));
        // Each datagram starts where the one before it ends.
        let mut start =
            if first == 0 { 0 } else { records.get(first - 1).map_or(0, |record| record[0] as usize) };
        for record in records.iter().skip(first) {
            let (end, port, address) = (record[0] as usize, record[1] as u16, record[2] as usize);
            let data = packed.get(start..end).ok_or_else(malformed)?;
            // No addresses: a connected socket's datagrams, to its peer.
            let peer = if ips.is_empty() {
                None
            } else {
                Some(SocketAddr::new(*ips.get(address).ok_or_else(malformed)?, port))
            };
            datagrams.push((data, peer));
            start = end;
        }
        let Some(event_loop) = self.event_loop.as_ref() else { return Ok(0) };
        event_loop
            .udp_send_many(&self.js.borrow(), slot(id), &datagrams)
            .map(|sent| sent as u32)
            .map_err(js_error)
    }

    /// Sets the socket's default peer (`address` an IP address), or with none dissolves it.
    #[napi]
    pub fn udp_connect(&self, id: f64, port: u32, address: Option<String>) -> Result<()> {
        let peer = address.map(|address| peer_address(&address, port)).transpose()?;
        let Some(event_loop) = self.event_loop.as_ref() else { return Ok(()) };
        event_loop.udp_connect(&self.js.borrow(), slot(id), peer).map_err(js_error)
    }

    /// SO_BROADCAST: whether datagrams may go to broadcast addresses.
    #[napi]
    pub fn udp_set_broadcast(&self, id: f64, on: bool) -> Result<()> {
        self.udp_configure(id, |socket, _| socket.set_broadcast(on))
    }

    /// The unicast TTL (IPv6: hop limit), 1 to 255.
    #[napi]
    pub fn udp_set_ttl(&self, id: f64, ttl: u32) -> Result<()> {
        self.udp_configure_by_family(
            id,
            |socket| socket.set_unicast_hops_v6(ttl),
            |socket| socket.set_ttl_v4(ttl),
        )
    }

    /// The multicast TTL (IPv6: hop limit), 0 to 255.
    #[napi]
    pub fn udp_set_multicast_ttl(&self, id: f64, ttl: u32) -> Result<()> {
        self.udp_configure_by_family(
            id,
            |socket| socket.set_multicast_hops_v6(ttl),
            |socket| socket.set_multicast_ttl_v4(ttl),
        )
    }

    /// Whether this host's own multicast datagrams come back to it.
    #[napi]
    pub fn udp_set_multicast_loopback(&self, id: f64, on: bool) -> Result<()> {
        self.udp_configure_by_family(
            id,
            |socket| socket.set_multicast_loop_v6(on),
            |socket| socket.set_multicast_loop_v4(on),
        )
    }

    /// The interface multicast datagrams leave by: an IPv4 address, or for IPv6 an interface
    /// name or index (`lib/udp.js` takes it from `'::%name'`).
    #[napi]
    pub fn udp_set_multicast_interface(&self, id: f64, interface: String) -> Result<()> {
        self.udp_configure_by_family(
            id,
            |socket| socket.set_multicast_if_v6(crate::sys::interface_index(&interface)?),
            |socket| socket.set_multicast_if_v4(&parse_ipv4(&interface)?),
        )
    }

    /// Joins (or leaves) the multicast `group` on `interface` (IPv4: an address, IPv6: a name
    /// or index; none: the kernel's choice).
    #[napi]
    pub fn udp_membership(
        &self,
        id: f64,
        join: bool,
        group: String,
        interface: Option<String>,
    ) -> Result<()> {
        let group = address_literal(&group)
            .filter(|group| group.is_multicast())
            .ok_or_else(|| invalid_argument(format!("group must be a multicast address, got '{group}'")))?;
        self.udp_configure(id, |socket, _| match group {
            std::net::IpAddr::V4(group) => {
                let interface =
                    interface.as_deref().map_or(Ok(std::net::Ipv4Addr::UNSPECIFIED), parse_ipv4)?;
                if join {
                    socket.join_multicast_v4(&group, &interface)
                } else {
                    socket.leave_multicast_v4(&group, &interface)
                }
            }
            std::net::IpAddr::V6(group) => {
                let interface = interface.as_deref().map_or(Ok(0), crate::sys::interface_index)?;
                if join {
                    socket.join_multicast_v6(&group, interface)
                } else {
                    socket.leave_multicast_v6(&group, interface)
                }
            }
        })
    }

    /// Sets SO_RCVBUF (`receive`) or SO_SNDBUF to `bytes` (the kernel doubles it for its
    /// bookkeeping and caps it at net.core.rmem_max / wmem_max); returns what it now is.
    #[napi]
    pub fn udp_set_buffer_size(&self, id: f64, receive: bool, bytes: u32) -> Result<f64> {
        self.udp_configure(id, |socket, _| {
            if receive {
                socket.set_recv_buffer_size(bytes as usize)?;
                socket.recv_buffer_size().map(|size| size as f64)
            } else {
                socket.set_send_buffer_size(bytes as usize)?;
                socket.send_buffer_size().map(|size| size as f64)
            }
        })
    }

    /// SO_RCVBUF (`receive`) or SO_SNDBUF as the kernel reports it.
    #[napi]
    pub fn udp_buffer_size(&self, id: f64, receive: bool) -> Result<f64> {
        self.udp_configure(id, |socket, _| {
            let size = if receive { socket.recv_buffer_size() } else { socket.send_buffer_size() }?;
            Ok(size as f64)
        })
    }

    /// Datagrams the kernel dropped for the socket's full receive buffer.
    #[napi]
    pub fn udp_received_dropped(&self, id: f64) -> f64 {
        self.if_running(|event_loop| event_loop.udp_dropped(&self.js.borrow(), slot(id)) as f64)
    }

    /// Closes the socket; its port is free when this returns.
    #[napi]
    pub fn udp_close(&self, id: f64) {
        if let Some(event_loop) = &self.event_loop {
            event_loop.udp_close(&mut self.js.borrow_mut(), slot(id));
        }
    }
}
