//! PROXY v2: the 12-byte signature, a version/command byte, a family/transport byte, a 16-bit
//! length, then that many bytes: the addresses of the family, then TLVs (type, 16-bit length,
//! value) to the end.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{crc32c, Addresses, Command, Header, Parsed, ProxyError};

const FIXED_LEN: usize = 16;
const UNIX_PATH_LEN: usize = 108;

pub const TLV_CRC32C: u8 = 0x03;
pub const TLV_NOOP: u8 = 0x04;
pub const TLV_SSL: u8 = 0x20;
/// An SSL TLV's value begins with a client flags byte and a 32-bit verify result.
const SSL_FIXED_LEN: usize = 5;

pub(super) fn parse(bytes: &[u8]) -> Result<Parsed, ProxyError> {
    if bytes.len() < FIXED_LEN {
        return Ok(Parsed::Incomplete);
    }
    let len = FIXED_LEN + u16::from_be_bytes([bytes[14], bytes[15]]) as usize;
    let (version, command) = (bytes[12] >> 4, bytes[12] & 0x0f);
    let (family, transport) = (bytes[13] >> 4, bytes[13] & 0x0f);
    let command = match (version, command) {
        (2, 0) => Command::Local,
        (2, 1) => Command::Proxy,
        _ => return Err(ProxyError::V2Unsupported),
    };
    if family > 3 || transport > 2 {
        return Err(ProxyError::V2Unsupported);
    }
    if bytes.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let header = &bytes[..len];
    let body = &header[FIXED_LEN..];
    let (addresses, address_len) = addresses(family, body)?;
    let tlvs = tlvs(header, &body[address_len..])?;
    // A LOCAL connection is the balancer's own: whatever addresses it names do not apply.
    let addresses = if command == Command::Local { Addresses::Unknown } else { addresses };
    Ok(Parsed::Header { header: Header { version: 2, command, addresses, tlvs }, len })
}

/// The addresses of `family` at the start of `body`, and how many bytes they took.
fn addresses(family: u8, body: &[u8]) -> Result<(Addresses, usize), ProxyError> {
    let needed = match family {
        1 => 12,
        2 => 36,
        3 => 2 * UNIX_PATH_LEN,
        _ => return Ok((Addresses::Unknown, 0)),
    };
    let b = body.get(..needed).ok_or(ProxyError::V2TooShort)?;
    let port = |at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let addresses = match family {
        1 => {
            let ip = |at: usize| Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3]);
            Addresses::Ip {
                source: SocketAddr::new(ip(0).into(), port(8)),
                destination: SocketAddr::new(ip(4).into(), port(10)),
            }
        }
        2 => {
            let ip = |at: usize| Ipv6Addr::from(<[u8; 16]>::try_from(&b[at..at + 16]).expect("16 bytes"));
            Addresses::Ip {
                source: SocketAddr::new(ip(0).into(), port(32)),
                destination: SocketAddr::new(ip(16).into(), port(34)),
            }
        }
        _ => {
            let path = |at: usize| {
                let field = &b[at..at + UNIX_PATH_LEN];
                field[..field.iter().position(|&c| c == 0).unwrap_or(UNIX_PATH_LEN)].to_vec()
            };
            Addresses::Unix { source: path(0), destination: path(UNIX_PATH_LEN) }
        }
    };
    Ok((addresses, needed))
}

/// The TLVs in `bytes` (the rest of `header`), with an SSL TLV's sub-TLVs after it; checks
/// the CRC32C TLV against the whole header.
fn tlvs(header: &[u8], bytes: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, ProxyError> {
    let mut found = Vec::new();
    for (kind, value, at) in split_tlvs(bytes)? {
        match kind {
            TLV_NOOP => {}
            TLV_CRC32C => {
                let expected: [u8; 4] = value.try_into().map_err(|_| ProxyError::V2BadTlv)?;
                // The checksum covers the whole header with its own value zeroed.
                let value_at = header.len() - bytes.len() + at;
                let sum = crc32c::checksum_with_hole(header, value_at..value_at + 4);
                if sum != u32::from_be_bytes(expected) {
                    return Err(ProxyError::V2BadChecksum);
                }
            }
            TLV_SSL => {
                let sub = value.get(SSL_FIXED_LEN..).ok_or(ProxyError::V2BadTlv)?;
                let subs = split_tlvs(sub)?;
                found.push((kind, value.to_vec()));
                found.extend(subs.into_iter().map(|(kind, value, _)| (kind, value.to_vec())));
            }
            _ => found.push((kind, value.to_vec())),
        }
    }
    Ok(found)
}

/// A TLV's type, its value, and where the value begins in the bytes it was split from.
type Tlv<'a> = (u8, &'a [u8], usize);

/// The TLVs of `bytes`, which they must fill exactly.
fn split_tlvs(mut bytes: &[u8]) -> Result<Vec<Tlv<'_>>, ProxyError> {
    let mut tlvs = Vec::new();
    let mut offset = 0;
    while !bytes.is_empty() {
        let [kind, high, low, rest @ ..] = bytes else { return Err(ProxyError::V2BadTlv) };
        let len = u16::from_be_bytes([*high, *low]) as usize;
        let value = rest.get(..len).ok_or(ProxyError::V2BadTlv)?;
        tlvs.push((*kind, value, offset + 3));
        bytes = &rest[len..];
        offset += 3 + len;
    }
    Ok(tlvs)
}
