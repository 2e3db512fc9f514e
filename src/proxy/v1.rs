//! PROXY v1: one text line, `PROXY TCP4|TCP6 <source> <destination> <source port>
//! <destination port>\r\n` or `PROXY UNKNOWN[ anything]\r\n`, at most 107 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{Addresses, Command, Header, Parsed, ProxyError, V1_MAX_LEN, V1_PREFIX};

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &bytes[..bytes.len().min(V1_MAX_LEN)];
    let Some(cr) = window.iter().position(|&b| b == b'\r') else {
        return if window.len() == V1_MAX_LEN { Err(ProxyError::V1TooLong) } else { Ok(Parsed::Incomplete) };
    };
    match window.get(cr + 1) {
        None if cr + 1 == V1_MAX_LEN => return Err(ProxyError::V1TooLong),
        None => return Ok(Parsed::Incomplete),
        Some(b'\n') => {}
        Some(_) => return Err(ProxyError::V1Malformed),
    }
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..cr]).map_err(|_| ProxyError::V1Malformed)?;
    let addresses = addresses(line).ok_or(ProxyError::V1Malformed)?;
    let header = Header { version: 1, command: Command::Proxy, addresses, tlvs: Vec::new() };
    Ok(Parsed::Header { header, len: cr + 2 })
}

/// The line after `PROXY `, without its CRLF.
fn addresses(line: &str) -> Option<Addresses> {
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Some(Addresses::Unknown);
    }
    let mut fields = line.split(' ');
    let family = fields.next()?;
    let (source, destination) = (fields.next()?, fields.next()?);
    let (source_port, destination_port) = (port(fields.next()?)?, port(fields.next()?)?);
    if fields.next().is_some() {
        return None;
    }
    let (source, destination): (IpAddr, IpAddr) = match family {
        "TCP4" => (source.parse::<Ipv4Addr>().ok()?.into(), destination.parse::<Ipv4Addr>().ok()?.into()),
        "TCP6" => (source.parse::<Ipv6Addr>().ok()?.into(), destination.parse::<Ipv6Addr>().ok()?.into()),
        _ => return None,
    };
    Some(Addresses::Ip {
        source: SocketAddr::new(source, source_port),
        destination: SocketAddr::new(destination, destination_port),
    })
}

/// A port as the specification writes it: decimal digits, no sign, no leading zero.
fn port(text: &str) -> Option<u16> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = text.len() > 1 && text.starts_with('0');
    if !digits_only || leading_zero {
        return None;
    }
    text.parse().ok()
}
