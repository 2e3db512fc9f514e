//! The TLS session logic over in-memory pairs (no sockets): handshakes, data both ways,
//! verification failures, SNI, close_notify, corrupted and truncated records; and the
//! configuration checks, with the fixtures of `test/fixtures/tls/`.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_rustls::rustls::pki_types::ServerName;

use super::*;
use crate::testing::{self, Rng};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test/fixtures/tls").join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap()
}

fn server_options(cert: &str, key: &str) -> TlsOptions {
    TlsOptions { cert: Some(fixture(cert)), key: Some(fixture(key)), ..TlsOptions::default() }
}

fn client_options() -> TlsOptions {
    TlsOptions { ca: Some(fixture("ca.pem")), ..TlsOptions::default() }
}

fn context(options: &TlsOptions) -> Arc<TlsContext> {
    Arc::new(TlsContext::new(options).unwrap())
}

fn name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_owned()).unwrap()
}

/// One side of an in-memory connection: what it received as plaintext, and how it ended.
struct Side {
    session: TlsSession,
    plaintext: Vec<u8>,
    opened: bool,
    peer_closed: bool,
    asked_name: Option<String>,
    failure: Option<TlsFailure>,
}

impl Side {
    fn new(session: TlsSession) -> Side {
        Side {
            session,
            plaintext: Vec::new(),
            opened: false,
            peer_closed: false,
            asked_name: None,
            failure: None,
        }
    }

    /// Feeds `input` in full, following every `Opened` with the rest of the input.
    fn feed(&mut self, mut input: &[u8]) {
        while self.failure.is_none() {
            let plaintext = &mut self.plaintext;
            match self.session.receive(&mut input, &mut |chunk| {
                assert!(!chunk.is_empty());
                plaintext.extend_from_slice(chunk)
            }) {
                Ok(Progress::Opened) => self.opened = true,
                Ok(Progress::NeedsName(name)) => {
                    self.asked_name = Some(name);
                    return;
                }
                Ok(Progress::Consumed { peer_closed }) => {
                    self.peer_closed |= peer_closed;
                    return;
                }
                Err(failure) => self.failure = Some(failure),
            }
        }
    }

    /// What the session sends, into a kernel that takes everything.
    fn take_output(&mut self) -> Vec<u8> {
        let mut output = Vec::new();
        assert!(self.session.send_ciphertext(&mut output).expect("a Vec takes everything"));
        output
    }
}

/// Moves bytes both ways until neither side has anything to send.
fn pump(client: &mut Side, server: &mut Side) {
    for _ in 0..20 {
        let to_server = client.take_output();
        if !to_server.is_empty() {
            server.feed(&to_server);
        }
        let to_client = server.take_output();
        if !to_client.is_empty() {
            client.feed(&to_client);
        }
        if to_server.is_empty() && to_client.is_empty() {
            return;
        }
    }
    panic!("the sessions never went quiet");
}

fn pair(server: &TlsOptions, client: &TlsOptions, host: &str) -> (Side, Side) {
    let client = Side::new(TlsSession::client(context(client), name(host)).unwrap());
    let server = Side::new(TlsSession::server(context(server)));
    (client, server)
}

fn handshake(server: &TlsOptions, client: &TlsOptions, host: &str) -> (Side, Side) {
    let (mut client, mut server) = pair(server, client, host);
    pump(&mut client, &mut server);
    (client, server)
}

#[test]
fn handshake_then_data_both_ways_with_alpn_and_sni() {
    let alpn = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let server_options =
        TlsOptions { alpn_protocols: alpn.clone(), ..server_options("server.pem", "server.key") };
    let client_options = TlsOptions { alpn_protocols: vec![b"http/1.1".to_vec()], ..client_options() };
    let (mut client, mut server) = handshake(&server_options, &client_options, "localhost");
    assert!(client.opened && server.opened, "client {:?} server {:?}", client.failure, server.failure);
    assert!(client.session.is_open() && server.session.is_open());

    assert_eq!(client.session.encrypt(b"hello "), 6);
    assert_eq!(client.session.encrypt(b"server"), 6);
    let big = vec![7u8; 100_000];
    let mut taken = 0;
    while taken < big.len() {
        taken += server.session.encrypt(&big[taken..]);
        pump(&mut client, &mut server);
    }
    pump(&mut client, &mut server);
    assert_eq!(server.plaintext, b"hello server");
    assert_eq!(client.plaintext, big);

    let server_info = server.session.info();
    assert_eq!(server_info.alpn_protocol.as_deref(), Some("http/1.1"));
    assert_eq!(server_info.server_name.as_deref(), Some("localhost"));
    assert_eq!(server_info.peer_certificate, None, "no client certificate was asked for");
    let client_info = client.session.info();
    assert_eq!(client_info.alpn_protocol.as_deref(), Some("http/1.1"));
    let presented = client_info.peer_certificate.expect("the server's certificate");
    assert!(presented.len() > 100 && presented[0] == 0x30, "DER starts with a SEQUENCE");
}

#[test]
fn nothing_is_encrypted_before_the_handshake_completes() {
    let (mut client, _server) =
        pair(&server_options("server.pem", "server.key"), &client_options(), "localhost");
    assert!(!client.take_output().is_empty(), "the ClientHello is ready at once");
    assert_eq!(client.session.encrypt(b"early"), 0);
}

#[test]
fn an_ip_address_is_verified_against_the_certificate_ip_entries() {
    let (client, server) =
        handshake(&server_options("server.pem", "server.key"), &client_options(), "127.0.0.1");
    assert!(client.opened && server.opened);
    assert_eq!(server.session.info().server_name, None, "no SNI for an IP address");
}

#[test]
fn verification_failures_name_their_reason_and_alert_the_server() {
    let cases = [
        ("self-signed.pem", "self-signed.key", "localhost", TlsFailure::UnknownIssuer),
        ("server.pem", "server.key", "wrong.test", TlsFailure::NameMismatch),
        ("expired.pem", "expired.key", "localhost", TlsFailure::Expired),
    ];
    for (cert, key, host, expected) in cases {
        let (client, server) = handshake(&server_options(cert, key), &client_options(), host);
        assert_eq!(client.failure, Some(expected), "{cert} at {host}");
        assert!(!client.opened);
        assert!(server.failure.is_some(), "the server hears the alert ({cert})");
        assert!(!server.opened);
    }
}

#[test]
fn reject_unauthorized_false_accepts_any_certificate() {
    let client_options = TlsOptions { reject_unauthorized: false, ..TlsOptions::default() };
    let (client, server) =
        handshake(&server_options("self-signed.pem", "self-signed.key"), &client_options, "x.test");
    assert!(client.opened && server.opened);
}

#[test]
fn the_bundled_roots_do_not_trust_the_test_ca() {
    let (client, _) =
        handshake(&server_options("server.pem", "server.key"), &TlsOptions::default(), "localhost");
    assert_eq!(client.failure, Some(TlsFailure::UnknownIssuer));
}

#[test]
fn a_server_with_ca_requires_and_verifies_client_certificates() {
    let server =
        TlsOptions { ca: Some(fixture("client-ca.pem")), ..server_options("server.pem", "server.key") };
    let with_cert = TlsOptions { ..client_options_with("client.pem", "client.key") };
    let (client, server_side) = handshake(&server, &with_cert, "localhost");
    assert!(client.opened && server_side.opened, "{:?} {:?}", client.failure, server_side.failure);
    assert!(server_side.session.info().peer_certificate.is_some());

    let (_, server_side) = handshake(&server, &client_options(), "localhost");
    assert_eq!(server_side.failure, Some(TlsFailure::CertificateRequired));

    let untrusted = client_options_with("client-untrusted.pem", "client-untrusted.key");
    let (_, server_side) = handshake(&server, &untrusted, "localhost");
    assert_eq!(server_side.failure, Some(TlsFailure::UnknownIssuer));

    let asks = TlsOptions { request_cert: true, ..server };
    let (client, server_side) = handshake(&asks, &client_options(), "localhost");
    assert!(client.opened && server_side.opened, "requestCert asks without requiring");
}

fn client_options_with(cert: &str, key: &str) -> TlsOptions {
    TlsOptions { cert: Some(fixture(cert)), key: Some(fixture(key)), ..client_options() }
}

#[test]
fn sni_picks_the_configuration_of_the_name_and_asks_for_unknown_ones() {
    let server_context = context(&server_options("server.pem", "server.key"));
    server_context.add_server_name("*.example.com", &server_options("wildcard.pem", "wildcard.key")).unwrap();
    assert_eq!(server_context.find_server_name("www.example.com").as_deref(), Some("*.example.com"));

    let connect = |host: &str| {
        let client = Side::new(TlsSession::client(context(&client_options()), name(host)).unwrap());
        (client, Side::new(TlsSession::server(Arc::clone(&server_context))))
    };
    let (mut client, mut server) = connect("www.example.com");
    pump(&mut client, &mut server);
    assert!(client.opened, "the wildcard certificate verifies: {:?}", client.failure);

    // Unknown names go to JavaScript once it listens; it may add one, then the handshake goes on.
    server_context.set_asks_for_names(true);
    let (mut client, mut server) = connect("other.test");
    pump(&mut client, &mut server);
    assert_eq!(server.asked_name.as_deref(), Some("other.test"));
    assert!(!client.opened);
    server_context.add_server_name("other.test", &server_options("other.pem", "other.key")).unwrap();
    let held = server.session.name_chosen().unwrap();
    server.feed(&held);
    pump(&mut client, &mut server);
    assert!(client.opened && server.opened, "{:?}", client.failure);

    // Without a match after asking, the default certificate answers (and fails verification).
    let (mut client, mut server) = connect("unknown.test");
    pump(&mut client, &mut server);
    assert_eq!(server.asked_name.as_deref(), Some("unknown.test"));
    let held = server.session.name_chosen().unwrap();
    server.feed(&held);
    pump(&mut client, &mut server);
    assert_eq!(client.failure, Some(TlsFailure::NameMismatch));
}

#[test]
fn close_notify_reaches_the_peer() {
    let (mut client, mut server) =
        handshake(&server_options("server.pem", "server.key"), &client_options(), "localhost");
    client.session.encrypt(b"last words");
    client.session.close_notify();
    assert!(client.session.close_notify_queued());
    assert_eq!(client.session.encrypt(b"too late"), 0);
    pump(&mut client, &mut server);
    assert_eq!(server.plaintext, b"last words");
    assert!(server.peer_closed);
}

#[test]
fn truncated_records_wait_for_the_rest() {
    let (mut client, mut server) =
        handshake(&server_options("server.pem", "server.key"), &client_options(), "localhost");
    client.session.encrypt(b"split across reads");
    let record = client.take_output();
    for byte in &record[..record.len() - 1] {
        server.feed(std::slice::from_ref(byte));
    }
    assert!(server.plaintext.is_empty() && server.failure.is_none());
    server.feed(&record[record.len() - 1..]);
    assert_eq!(server.plaintext, b"split across reads");
}

#[test]
fn a_corrupted_record_fails_with_an_alert() {
    let (mut client, mut server) =
        handshake(&server_options("server.pem", "server.key"), &client_options(), "localhost");
    client.session.encrypt(b"tampered");
    let mut record = client.take_output();
    let last = record.len() - 1;
    record[last] ^= 0x55;
    server.feed(&record);
    assert_eq!(server.failure, Some(TlsFailure::Decrypt));
    assert!(server.plaintext.is_empty());
    // TLS 1.3 encrypts the alert, so it travels as an application-data record (23).
    let alert = server.take_output();
    assert_eq!(alert.first(), Some(&23), "an alert record goes to the peer");
    client.feed(&alert);
    assert_eq!(client.failure, Some(TlsFailure::AlertBadRecordMac));
}

#[test]
fn garbage_instead_of_a_client_hello_fails_the_server_session() {
    let mut server = Side::new(TlsSession::server(context(&server_options("server.pem", "server.key"))));
    server.feed(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    assert_eq!(server.failure, Some(TlsFailure::Protocol));
    assert!(!server.session.pending_output().is_empty(), "an alert is sent");
}

/// (Refusing a TLS 1.2-only peer is tested against `openssl s_client -tls1_2`.)
#[test]
fn min_version_tls13_meets_peers_with_the_default() {
    let server = TlsOptions { min_version: TlsVersion::Tls13, ..server_options("server.pem", "server.key") };
    // The default speaks both versions, so it meets a TLS 1.3-only server...
    let (client, _) = handshake(&server, &client_options(), "localhost");
    assert!(client.opened);
    // ...and a TLS 1.3-only client against the default server too.
    let client13 = TlsOptions { min_version: TlsVersion::Tls13, ..client_options() };
    let (client, _) = handshake(&server_options("server.pem", "server.key"), &client13, "localhost");
    assert!(client.opened);
}

#[test]
fn configuration_errors_say_what_is_wrong() {
    let error = |options: TlsOptions| TlsContext::new(&options).unwrap_err();
    let server = server_options("server.pem", "server.key");

    let err = error(TlsOptions { key: Some(fixture("other.key")), ..server.clone() });
    assert_eq!(err.code, "ERR_TLS_KEY_MISMATCH", "{err}");
    let err = error(TlsOptions { cert: Some(fixture("bad.pem")), ..server.clone() });
    assert_eq!(err.code, "ERR_TLS_INVALID_CERT", "{err}");
    let err = error(TlsOptions { cert: Some(b"not pem".to_vec()), ..server.clone() });
    assert_eq!(err.code, "ERR_TLS_INVALID_CERT", "{err}");
    let err = error(TlsOptions { key: Some(fixture("server.pem")), ..server.clone() });
    assert_eq!(err.code, "ERR_TLS_INVALID_KEY", "{err}");
    let err = error(TlsOptions { key: None, ..server.clone() });
    assert_eq!(err.code, "ERR_TLS_NO_KEY", "{err}");

    let encrypted = TlsOptions { key: Some(fixture("server.enc.key")), ..server.clone() };
    assert_eq!(error(encrypted.clone()).code, "ERR_TLS_PASSPHRASE_REQUIRED");
    let wrong = TlsOptions { passphrase: Some("wrong".into()), ..encrypted.clone() };
    assert_eq!(error(wrong).code, "ERR_TLS_BAD_PASSPHRASE");
    let right = TlsOptions { passphrase: Some("usockets-test".into()), ..encrypted };
    assert!(TlsContext::new(&right).unwrap().can_serve());

    let err =
        error(TlsOptions { key_file_name: Some(fixture_path("missing.key")), key: None, ..server.clone() });
    assert_eq!(err.code, "ENOENT", "{err}");
    assert!(err.message.contains("keyFileName"), "{err}");
    let err = error(TlsOptions { key_file_name: Some(fixture_path("server.key")), ..server.clone() });
    assert_eq!(err.code, "ERR_INVALID_ARG_VALUE", "{err}");
    let err = error(TlsOptions { ca: Some(fixture("bad.pem")), ..TlsOptions::default() });
    assert_eq!(err.code, "ERR_TLS_INVALID_CA", "{err}");

    let from_files = TlsOptions {
        key_file_name: Some(fixture_path("server-chain.key")),
        cert_file_name: Some(fixture_path("server-chain.pem")),
        ..TlsOptions::default()
    };
    assert!(TlsContext::new(&from_files).unwrap().can_serve());
    assert!(!TlsContext::new(&client_options()).unwrap().can_serve());
}

#[test]
fn a_chain_verifies_through_its_intermediate() {
    let (client, server) =
        handshake(&server_options("server-chain.pem", "server-chain.key"), &client_options(), "localhost");
    assert!(client.opened && server.opened, "{:?}", client.failure);
    let (client, _) =
        handshake(&server_options("server-rsa.pem", "server-rsa.key"), &client_options(), "localhost");
    assert!(client.opened, "RSA keys work too: {:?}", client.failure);
}

// --- hostile input, replayed through the session as the loop feeds it (see replay.rs) ---------

/// One mutation of `input` (see [`testing::mutate`]), with its length fields.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    testing::mutate(rng, input, &[3..5, 6..9], 0x16)
}

fn server_context() -> Arc<TlsContext> {
    context(&server_options("server.pem", "server.key"))
}

#[test]
fn every_kind_of_garbage_fails_a_server_session_at_once() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let too_long = vec![0x16, 3, 1, 0xff, 0xff];
    let kinds: [(&str, Vec<u8>); 6] = [
        ("random bytes", rng.bytes(4096)),
        ("zeros", vec![0; 4096]),
        ("plain text", b"hello, this is not TLS\n".to_vec()),
        ("an HTTP request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()),
        ("a record of another content type", vec![0x17, 3, 3, 0, 5, 1, 2, 3, 4, 5]),
        ("a header announcing a record past the maximum", too_long),
    ];
    for (what, bytes) in kinds {
        for seed in 1..8 {
            let outcome = replay::replay_as_server(&server_context(), &bytes, seed);
            assert!(outcome.failure.is_some(), "{what} (chunking {seed}) did not fail: {outcome:?}");
            assert!(!outcome.opened && outcome.plaintext_bytes == 0, "{what}");
        }
    }
}

#[test]
fn a_seeded_corpus_of_mutated_client_hellos_never_opens_or_panics() {
    let mut client = Side::new(TlsSession::client(context(&client_options()), name("localhost")).unwrap());
    let hello = client.take_output();
    assert_eq!(hello[0], 0x16, "a handshake record");
    let server = server_context();
    server.set_asks_for_names(true);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let (mut failed, mut waiting) = (0, 0);
    for _ in 0..3000 {
        let input = mutate(&mut rng, &hello);
        let outcome = replay::replay_as_server(&server, &input, rng.next() as u32);
        assert!(
            !outcome.opened && outcome.plaintext_bytes == 0,
            "a lone ClientHello cannot open: {outcome:?}"
        );
        if outcome.failure.is_some() {
            failed += 1;
        } else {
            waiting += 1;
        }
    }
    // Both ends of the corpus are exercised: mutations that break the hello, and ones (such as
    // truncations) that only leave the server waiting for more.
    assert!(failed > 1000 && waiting > 100, "{failed} failed, {waiting} waiting");
}

#[test]
fn a_seeded_corpus_of_mutated_records_after_the_handshake_never_panics_or_leaks_forgeries() {
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    for round in 0..200 {
        let (mut client, server) =
            handshake(&server_options("server.pem", "server.key"), &client_options(), "localhost");
        let length = 1 + rng.below(3000);
        let plaintext = rng.bytes(length);
        assert_eq!(client.session.encrypt(&plaintext), plaintext.len());
        let records = client.take_output();
        let forged = mutate(&mut rng, &records);
        let outcome = replay::replay(server.session, &forged, round);
        // What is delivered is never more than was sent, and a change that breaks a record
        // fails the session (AEAD) rather than delivering altered bytes.
        assert!(outcome.plaintext_bytes <= plaintext.len() + 64, "{outcome:?}");
        if forged.len() >= records.len() && forged[..records.len()] != records[..] {
            assert!(
                outcome.failure.is_some() || outcome.plaintext_bytes < plaintext.len(),
                "a changed record was accepted whole (round {round}): {outcome:?}"
            );
        }
    }
}

#[test]
fn a_seeded_corpus_of_mutated_server_flights_never_opens_a_client_or_panics() {
    let (mut client, mut server) =
        pair(&server_options("server.pem", "server.key"), &client_options(), "localhost");
    server.feed(&client.take_output());
    let flight = server.take_output();
    assert!(!flight.is_empty());
    let client_context = context(&client_options());
    let mut rng = Rng(0x1405_7b7e_f767_814f);
    for _ in 0..1000 {
        let input = mutate(&mut rng, &flight);
        // A new client has another key share, so even an intact flight cannot complete it.
        let outcome = replay::replay_as_client(&client_context, name("localhost"), &input, rng.next() as u32);
        assert!(!outcome.opened, "{outcome:?}");
    }
}

mod operations;
