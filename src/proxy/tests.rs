//! The PROXY parser against headers built here by the specification (and HAProxy's examples),
//! every way to cut them short, and hostile variants; plus a seeded corpus of mutated headers.

use std::net::SocketAddr;

use super::crc32c::checksum_with_hole;
use super::*;
use crate::testing::{self, Rng};

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

fn header_of(bytes: &[u8], expect: Expect) -> (Header, usize) {
    match parse(bytes, expect) {
        Ok(Parsed::Header { header, len }) => (header, len),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(bytes)),
    }
}

/// Every proper prefix of a header is `Incomplete` (it trickled in), in both modes.
fn assert_prefixes_incomplete(header: &[u8]) {
    for cut in 0..header.len() {
        for expect in [Expect::Required, Expect::Optional] {
            assert_eq!(
                parse(&header[..cut], expect),
                Ok(Parsed::Incomplete),
                "{cut} of {} bytes",
                header.len()
            );
        }
    }
}

/// A v2 header: command (0 LOCAL, 1 PROXY), family/transport byte, addresses, TLVs.
fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[(u8, &[u8])]) -> Vec<u8> {
    let mut body = addresses.to_vec();
    for (kind, value) in tlvs {
        body.push(*kind);
        body.extend((value.len() as u16).to_be_bytes());
        body.extend(*value);
    }
    let mut header = V2_SIGNATURE.to_vec();
    header.extend([0x20 | command, family]);
    header.extend((body.len() as u16).to_be_bytes());
    header.extend(body);
    header
}

/// `header` with a CRC32C TLV appended and filled in.
fn with_crc(mut header: Vec<u8>) -> Vec<u8> {
    header.extend([TLV_CRC32C_TYPE, 0, 4, 0, 0, 0, 0]);
    let len = (header.len() - 16) as u16;
    header[14..16].copy_from_slice(&len.to_be_bytes());
    let at = header.len() - 4;
    let sum = checksum_with_hole(&header, at..at + 4);
    header[at..].copy_from_slice(&sum.to_be_bytes());
    header
}

const TLV_CRC32C_TYPE: u8 = 0x03;
const IPV4_ADDRESSES: [u8; 12] = [192, 168, 0, 1, 10, 0, 0, 2, 0xdd, 0xd5, 0x01, 0xbb]; // :56789 -> :443

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(checksum_with_hole(b"123456789", 0..0), 0xe306_9283);
    assert_eq!(checksum_with_hole(b"12x456789", 2..3), checksum_with_hole(b"12\x00456789", 0..0));
}

#[test]
fn v1_tcp4_tcp6_and_unknown() {
    let line = b"PROXY TCP4 192.168.0.1 10.0.0.2 56789 443\r\n";
    let (header, len) = header_of(line, Expect::Required);
    assert_eq!(len, line.len());
    assert_eq!(header.version, 1);
    assert_eq!(header.command, Command::Proxy);
    assert_eq!(
        header.addresses,
        Addresses::Ip { source: addr("192.168.0.1:56789"), destination: addr("10.0.0.2:443") }
    );
    assert!(header.tlvs.is_empty());
    assert_prefixes_incomplete(line);

    let line = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
    let (header, _) = header_of(line, Expect::Optional);
    assert_eq!(
        header.addresses,
        Addresses::Ip { source: addr("[2001:db8::1]:65535"), destination: addr("[::1]:0") }
    );

    for line in [&b"PROXY UNKNOWN\r\n"[..], b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n"]
    {
        let (header, len) = header_of(line, Expect::Required);
        assert_eq!((header.addresses, len), (Addresses::Unknown, line.len()));
    }
}

#[test]
fn v1_the_longest_line_is_107_bytes() {
    let worst = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(worst.len(), V1_MAX_LEN);
    assert_eq!(header_of(worst, Expect::Required).1, V1_MAX_LEN);
    let mut longer = worst[..V1_MAX_LEN - 2].to_vec();
    longer.extend(b"5\r\n");
    assert_eq!(parse(&longer, Expect::Required), Err(ProxyError::V1TooLong));
    // No CR at all: refused once 107 bytes came, not waited for.
    let endless = [b"PROXY ".to_vec(), vec![b'x'; 200]].concat();
    assert_eq!(parse(&endless[..V1_MAX_LEN - 1], Expect::Required), Ok(Parsed::Incomplete));
    assert_eq!(parse(&endless[..V1_MAX_LEN], Expect::Required), Err(ProxyError::V1TooLong));
}

#[test]
fn v1_malformed_lines_are_refused() {
    for line in [
        &b"PROXY TCP4 192.168.0.1 10.0.0.2 56789 443\rX"[..], // CR without LF
        b"PROXY TCP4 192.168.0.1 10.0.0.2 56789 443\n",       // LF alone: no CR within 107 bytes...
        b"PROXY TCP5 192.168.0.1 10.0.0.2 56789 443\r\n",
        b"PROXY TCP4 ::1 10.0.0.2 56789 443\r\n",
        b"PROXY TCP6 192.168.0.1 ::1 56789 443\r\n",
        b"PROXY TCP4 192.168.0.1 10.0.0.2 65536 443\r\n",
        b"PROXY TCP4 192.168.0.1 10.0.0.2 056789 443\r\n",
        b"PROXY TCP4 192.168.0.1 10.0.0.2 +5678 443\r\n",
        b"PROXY TCP4 192.168.0.1 10.0.0.2 56789\r\n",
        b"PROXY TCP4 192.168.0.1 10.0.0.2 56789 443 7\r\n",
        b"PROXY TCP4  192.168.0.1 10.0.0.2 56789 443\r\n",
        b"PROXY TCP4 192.168.0.1 10.0.0.2 56789 443 \r\n",
        b"PROXY \xff\xfe 1 2 3 4\r\n",
        b"PROXY \r\n",
    ] {
        let outcome = parse(line, Expect::Required);
        if line.ends_with(b"443\n") {
            // A bare LF is not a line end: the header is incomplete until 107 bytes came.
            assert_eq!(outcome, Ok(Parsed::Incomplete));
        } else {
            assert_eq!(outcome, Err(ProxyError::V1Malformed), "{:?}", String::from_utf8_lossy(line));
        }
    }
}

#[test]
fn application_bytes_after_a_header_are_never_part_of_it() {
    let header = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    for after in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0x16, 3, 1, 0, 200],
        b"\r\n",
        b"PROXY TCP4 9.9.9.9 9.9.9.9 9 9\r\n",
    ] {
        let bytes = [&header[..], after].concat();
        assert_eq!(header_of(&bytes, Expect::Required).1, header.len());
    }
    let header = v2(1, 0x11, &IPV4_ADDRESSES, &[(0x05, b"id")]);
    let bytes = [&header[..], &[0x16, 3, 1, 0, 200, 1]].concat();
    let (parsed, len) = header_of(&bytes, Expect::Required);
    assert_eq!(len, header.len());
    assert_eq!(parsed.tlvs, vec![(0x05, b"id".to_vec())], "the TLVs end where the declared length does");
}

#[test]
fn v2_ipv4_ipv6_unix_and_unspec() {
    let header = v2(1, 0x11, &IPV4_ADDRESSES, &[]);
    let (parsed, len) = header_of(&header, Expect::Required);
    assert_eq!(len, 28);
    assert_eq!((parsed.version, parsed.command), (2, Command::Proxy));
    assert_eq!(
        parsed.addresses,
        Addresses::Ip { source: addr("192.168.0.1:56789"), destination: addr("10.0.0.2:443") }
    );
    assert_prefixes_incomplete(&header);

    let mut ipv6 = Vec::new();
    ipv6.extend("2001:db8::7".parse::<std::net::Ipv6Addr>().unwrap().octets());
    ipv6.extend(std::net::Ipv6Addr::LOCALHOST.octets());
    ipv6.extend([0x30, 0x39, 0x00, 0x50]);
    let (parsed, _) = header_of(&v2(1, 0x21, &ipv6, &[]), Expect::Required);
    assert_eq!(
        parsed.addresses,
        Addresses::Ip { source: addr("[2001:db8::7]:12345"), destination: addr("[::1]:80") }
    );

    let mut unix = vec![0u8; 216];
    unix[..9].copy_from_slice(b"/run/a.sk");
    unix[108..116].copy_from_slice(b"/run/b.s");
    let (parsed, _) = header_of(&v2(1, 0x31, &unix, &[]), Expect::Required);
    assert_eq!(
        parsed.addresses,
        Addresses::Unix { source: b"/run/a.sk".to_vec(), destination: b"/run/b.s".to_vec() }
    );

    let (parsed, len) = header_of(&v2(1, 0x00, &[], &[]), Expect::Required);
    assert_eq!((parsed.addresses, len), (Addresses::Unknown, 16));
}

#[test]
fn v2_local_keeps_the_connections_own_addresses() {
    let (parsed, _) = header_of(&v2(0, 0x11, &IPV4_ADDRESSES, &[]), Expect::Required);
    assert_eq!((parsed.command, parsed.addresses), (Command::Local, Addresses::Unknown));
    let (parsed, len) = header_of(&v2(0, 0x00, &[], &[]), Expect::Required);
    assert_eq!((parsed.command, len), (Command::Local, 16));
}

#[test]
fn v2_tlvs_in_order_with_ssl_sub_tlvs_and_no_noops() {
    let mut ssl = vec![0x07, 0, 0, 0, 0]; // client flags, verify = 0 (verified)
    ssl.extend([0x21, 0, 7]);
    ssl.extend(b"TLSv1.3");
    ssl.extend([0x22, 0, 6]);
    ssl.extend(b"client");
    let header = v2(
        1,
        0x11,
        &IPV4_ADDRESSES,
        &[
            (0x01, b"h2"),
            (0x04, b"\0\0\0"),
            (0x02, b"example.com"),
            (0x20, &ssl),
            (0x30, b"blue"),
            (0xe0, b"custom"),
        ],
    );
    let (parsed, _) = header_of(&header, Expect::Required);
    let expected: Vec<(u8, Vec<u8>)> = vec![
        (0x01, b"h2".to_vec()),
        (0x02, b"example.com".to_vec()),
        (0x20, ssl.clone()),
        (0x21, b"TLSv1.3".to_vec()),
        (0x22, b"client".to_vec()),
        (0x30, b"blue".to_vec()),
        (0xe0, b"custom".to_vec()),
    ];
    assert_eq!(parsed.tlvs, expected);
}

#[test]
fn v2_crc32c_is_checked_when_present() {
    let header = with_crc(v2(1, 0x11, &IPV4_ADDRESSES, &[(0x05, b"unique")]));
    let (parsed, _) = header_of(&header, Expect::Required);
    assert_eq!(parsed.tlvs, vec![(0x05, b"unique".to_vec())], "a CRC that checked out is not a TLV to show");
    for at in [0, 13, 17, 30, header.len() - 1] {
        let mut corrupted = header.clone();
        corrupted[at] ^= 0x40;
        let outcome = parse(&corrupted, Expect::Required);
        assert!(outcome.is_err(), "a flipped bit at {at} went unnoticed: {outcome:?}");
    }
    let mut wrong_sum = header.clone();
    let last = wrong_sum.len() - 1;
    wrong_sum[last] ^= 1;
    assert_eq!(parse(&wrong_sum, Expect::Required), Err(ProxyError::V2BadChecksum));
    let short_crc = v2(1, 0x11, &IPV4_ADDRESSES, &[(0x03, b"abc")]);
    assert_eq!(parse(&short_crc, Expect::Required), Err(ProxyError::V2BadTlv));
}

#[test]
fn v2_hostile_headers_are_refused() {
    let good = v2(1, 0x11, &IPV4_ADDRESSES, &[]);
    let with = |at: usize, value: u8| {
        let mut bytes = good.clone();
        bytes[at] = value;
        bytes
    };
    assert_eq!(
        parse(&with(12, 0x11), Expect::Required),
        Err(ProxyError::V2Unsupported),
        "version 1 in v2 form"
    );
    assert_eq!(parse(&with(12, 0x22), Expect::Required), Err(ProxyError::V2Unsupported), "command 2");
    assert_eq!(parse(&with(13, 0x41), Expect::Required), Err(ProxyError::V2Unsupported), "family 4");
    assert_eq!(parse(&with(13, 0x13), Expect::Required), Err(ProxyError::V2Unsupported), "transport 3");
    // Declared shorter than its family's addresses.
    assert_eq!(parse(&v2(1, 0x21, &IPV4_ADDRESSES, &[]), Expect::Required), Err(ProxyError::V2TooShort));
    // A TLV running past the declared end, and a TLV header cut in two.
    let mut past = good.clone();
    past.extend([0x05, 0, 9, 1, 2]);
    past[15] += 5;
    assert_eq!(parse(&past, Expect::Required), Err(ProxyError::V2BadTlv));
    let mut cut = good.clone();
    cut.extend([0x05, 0]);
    cut[15] += 2;
    assert_eq!(parse(&cut, Expect::Required), Err(ProxyError::V2BadTlv));
    // An SSL TLV too short for its fixed part, or with a sub-TLV past its end.
    assert_eq!(
        parse(&v2(1, 0x11, &IPV4_ADDRESSES, &[(0x20, &[1, 0, 0])]), Expect::Required),
        Err(ProxyError::V2BadTlv)
    );
    let ssl = [1, 0, 0, 0, 0, 0x21, 0, 9, b'x'];
    assert_eq!(
        parse(&v2(1, 0x11, &IPV4_ADDRESSES, &[(0x20, &ssl)]), Expect::Required),
        Err(ProxyError::V2BadTlv)
    );
    // A length past what arrived is waited for (the handshake timeout bounds it).
    let mut announced = good.clone();
    announced[14] = 0xff;
    assert_eq!(parse(&announced, Expect::Required), Ok(Parsed::Incomplete));
}

#[test]
fn without_a_signature_required_refuses_and_optional_serves_as_is() {
    let client_hello = [0x16, 3, 1, 0, 200, 1, 0, 0, 196];
    for bytes in
        [&b"GET / HTTP/1.1\r\n"[..], &client_hello, b"\0\0\0\0", b"PROXZ", b"\r\n\r\n\0\r\nQUIX\n...."]
    {
        assert_eq!(parse(bytes, Expect::Required), Err(ProxyError::NoHeader), "{bytes:?}");
        assert_eq!(parse(bytes, Expect::Optional), Ok(Parsed::Absent), "{bytes:?}");
    }
    // Until the bytes diverge from both signatures, either could still come.
    for bytes in [&b""[..], b"P", b"PROXY", b"\r\n", b"\r\n\r\n\0\r\nQUI"] {
        assert_eq!(parse(bytes, Expect::Optional), Ok(Parsed::Incomplete), "{bytes:?}");
    }
}

/// One mutation of `input` (see [`testing::mutate`]), with its length fields.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    // The v2 header keeps its one length at bytes 14..16.
    testing::mutate(rng, input, std::slice::from_ref(&(14..16)), b'P')
}

#[test]
fn a_seeded_corpus_of_mutated_headers_never_panics_or_reads_past_a_header() {
    let mut ssl = vec![0x07, 0, 0, 0, 0, 0x21, 0, 7];
    ssl.extend(b"TLSv1.3");
    let seeds = [
        b"PROXY TCP4 192.168.0.1 10.0.0.2 56789 443\r\nGET /".to_vec(),
        b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2(1, 0x11, &IPV4_ADDRESSES, &[(0x01, b"h2"), (0x20, &ssl)]),
        with_crc(v2(1, 0x11, &IPV4_ADDRESSES, &[(0x02, b"example.com")])),
        v2(0, 0x00, &[], &[]),
        v2(1, 0x31, &[0; 216], &[(0x05, b"id")]),
    ];
    let mut rng = Rng(0x5eed_0f92);
    let mut headers = 0;
    for seed in &seeds {
        assert_invariants(seed);
        for _ in 0..2000 {
            let input = mutate(&mut rng, seed);
            assert_invariants(&input);
            headers += matches!(parse(&input, Expect::Required), Ok(Parsed::Header { .. })) as usize;
        }
    }
    assert!(headers > 100, "the mutations should keep some headers valid: {headers}");
}
