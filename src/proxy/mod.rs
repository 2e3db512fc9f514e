//! The PROXY protocol (HAProxy's `doc/proxy-protocol.txt`, versions 1 and 2), sans-IO: a load
//! balancer in front of a listener sends one header before the connection's own bytes, carrying
//! the client's addresses (and, in v2, TLVs such as ALPN, the authority, a unique id and the
//! balancer's TLS details).
//!
//! [`parse`] looks at the bytes read so far and says whether they hold a whole header (and how
//! many bytes it took: everything after belongs to the application or the TLS session), need
//! more, or cannot be a header. It never looks past a header's end, so no application byte is
//! ever taken for part of it.

mod crc32c;
#[cfg(test)]
mod tests;
mod v1;
mod v2;

use std::net::SocketAddr;

/// The v2 signature: no v1 header, TLS record or HTTP request begins like this.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Every v1 header begins with this.
pub const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included (the specification's bound).
pub const V1_MAX_LEN: usize = 107;
/// The longest v2 header: the 16 fixed bytes and a 16-bit length.
pub const V2_MAX_LEN: usize = 16 + u16::MAX as usize;

/// Whether a listener expects a header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Every connection must begin with a header.
    Required,
    /// A header is honoured when the connection begins with one; otherwise the connection's
    /// bytes are its own (health checks that bypass the balancer).
    Optional,
}

/// What `parse` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes so far are a beginning of a header: read more.
    Incomplete,
    /// A whole header, `len` bytes long.
    Header { header: Header, len: usize },
    /// `Expect::Optional` only: the connection does not begin with a header.
    Absent,
}

/// A header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub command: Command,
    /// The addresses the balancer reports. [`Addresses::Unknown`] (v1 `UNKNOWN`, v2 `LOCAL` or
    /// an unspecified family): the connection's own addresses stand.
    pub addresses: Addresses,
    /// v2 TLVs in the order received, `(type, value)`; the sub-TLVs of an SSL TLV (0x20)
    /// follow it as TLVs of their own types (0x21-0x25). NOOP TLVs are left out, as is the
    /// CRC32C TLV once it checked out.
    pub tlvs: Vec<(u8, Vec<u8>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// The balancer relays a client: the addresses are the client's (v1 headers are all this).
    Proxy,
    /// The balancer's own connection (a health check): the addresses do not apply (v2 only).
    Local,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addresses {
    Unknown,
    Ip {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 `AF_UNIX`: the two paths, up to their first NUL.
    Unix {
        source: Vec<u8>,
        destination: Vec<u8>,
    },
}

/// Why bytes are not a header. Each closes the connection at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither signature (`Expect::Required`).
    NoHeader,
    /// v1: no CRLF within 107 bytes.
    V1TooLong,
    /// v1: not `PROXY TCP4|TCP6|UNKNOWN ...` with addresses of its family and decimal ports.
    V1Malformed,
    /// v2: a version other than 2, a command other than LOCAL / PROXY, or an unknown family
    /// or transport.
    V2Unsupported,
    /// v2: the declared length is shorter than the addresses of its family need.
    V2TooShort,
    /// v2: a TLV runs past the header, or an SSL TLV's sub-TLVs past it.
    V2BadTlv,
    /// v2: the CRC32C TLV does not match the header.
    V2BadChecksum,
}

impl ProxyError {
    pub fn message(self) -> &'static str {
        match self {
            ProxyError::NoHeader => "the connection did not begin with a PROXY protocol header",
            ProxyError::V1TooLong => "a PROXY v1 header without CRLF in its first 107 bytes",
            ProxyError::V1Malformed => "a malformed PROXY v1 header",
            ProxyError::V2Unsupported => "a PROXY v2 header of an unknown version, command or family",
            ProxyError::V2TooShort => "a PROXY v2 header shorter than its addresses",
            ProxyError::V2BadTlv => "a PROXY v2 TLV that runs past the header",
            ProxyError::V2BadChecksum => "a PROXY v2 header whose CRC32C does not match",
        }
    }
}

/// Looks at the first bytes of a connection (all of them read so far).
pub fn parse(bytes: &[u8], expect: Expect) -> Result<Parsed, ProxyError> {
    if begins_with(bytes, &V2_SIGNATURE) {
        v2::parse(bytes)
    } else if begins_with(bytes, V1_PREFIX) {
        v1::parse(bytes)
    } else if expect == Expect::Optional {
        Ok(Parsed::Absent)
    } else {
        Err(ProxyError::NoHeader)
    }
}

/// Whether `bytes` could still become `prefix`, or already begin with it.
fn begins_with(bytes: &[u8], prefix: &[u8]) -> bool {
    let common = bytes.len().min(prefix.len());
    bytes[..common] == prefix[..common]
}

/// Panics unless what must hold for any input holds: a header never extends past its input or
/// the bounds, stands on its own (the bytes after it do not change it), and `Absent` comes only
/// when a header is optional. The fuzz target (`fuzz/`) and the seeded corpus test call it.
pub fn assert_invariants(bytes: &[u8]) {
    for expect in [Expect::Required, Expect::Optional] {
        match parse(bytes, expect) {
            Ok(Parsed::Header { header, len }) => {
                assert!(len <= bytes.len() && len <= V2_MAX_LEN, "a header longer than its input");
                assert!(header.version != 1 || len <= V1_MAX_LEN);
                // A header stands on its own: the bytes after it cannot change it.
                let again = parse(&bytes[..len], expect);
                assert_eq!(again, Ok(Parsed::Header { header, len }));
            }
            Ok(Parsed::Absent) => assert_eq!(expect, Expect::Optional),
            Ok(Parsed::Incomplete) => assert!(bytes.len() < V2_MAX_LEN),
            Err(err) => assert!(!err.message().is_empty()),
        }
    }
}
