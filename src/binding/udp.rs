//! The UDP part of `LoopCore`: what `lib/udp.js` builds `UdpSocket` on.

use napi_derive::napi;

use super::{address_literal, invalid_argument, js_error, listen_address, slot, LoopCore, Result};

/// A bound UDP socket: its id, and the address and port it is bound to.
#[napi(object)]
pub struct UdpBound {
    pub id: f64,
    pub address: String,
    pub port: u32,
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

    /// Sends one datagram to `address` (an IP address: `lib/udp.js` refuses names) and `port`:
    /// whether the kernel took it. A closed socket or loop sends nothing.
    #[napi]
    pub fn udp_send(&self, id: f64, data: &[u8], port: u32, address: String) -> Result<bool> {
        let ip = address_literal(&address)
            .ok_or_else(|| invalid_argument(format!("address must be an IP address, got '{address}'")))?;
        let Some(event_loop) = self.event_loop.as_ref() else { return Ok(false) };
        event_loop
            .udp_send(&self.js.borrow(), slot(id), data, std::net::SocketAddr::new(ip, port as u16))
            .map_err(js_error)
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
