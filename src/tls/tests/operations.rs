//! STARTTLS, resumption, option replacement (`setTls`) and introspection, over in-memory pairs.

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;

use super::*;

fn first_certificate(name: &str) -> Vec<u8> {
    CertificateDer::pem_slice_iter(&fixture(name)).next().unwrap().unwrap().to_vec()
}

fn with_ticket_keys(options: TlsOptions, fill: u8) -> TlsOptions {
    TlsOptions { ticket_keys: Some(vec![fill; TICKET_KEYS_BYTES]), ..options }
}

/// A full handshake between two sessions of the given contexts; both must open.
fn connect(client: &Arc<TlsContext>, server: &Arc<TlsContext>) -> (Side, Side) {
    let mut client = Side::new(TlsSession::client(Arc::clone(client), name("localhost")).unwrap());
    let mut server = Side::new(TlsSession::server(Arc::clone(server)));
    pump(&mut client, &mut server);
    assert!(client.opened && server.opened, "client {:?} / server {:?}", client.failure, server.failure);
    (client, server)
}

fn resumed(client: &Arc<TlsContext>, server: &Arc<TlsContext>) -> bool {
    let (client, server) = connect(client, server);
    let (client_reused, server_reused) =
        (client.session.info().session_reused, server.session.info().session_reused);
    assert_eq!(client_reused, server_reused, "both ends agree whether the session resumed");
    client_reused
}

#[test]
fn upgrade_sends_the_clear_bytes_first_and_reads_a_client_hello_that_came_in_pieces() {
    // The client side of STARTTLS: what was queued in clear leaves before the ClientHello.
    let mut client = Side::new(TlsSession::client(context(&client_options()), name("localhost")).unwrap());
    client.session.send_first(b"STARTTLS\r\n".to_vec());
    let output = client.take_output();
    assert!(output.starts_with(b"STARTTLS\r\n"));
    let hello = &output[b"STARTTLS\r\n".len()..];
    assert_eq!(hello[0], 0x16, "a handshake record follows the clear bytes");
    // The server side: the ClientHello arrives as `head` (the tail of the command's chunk),
    // then as read-ahead (bytes JavaScript did not see), then from the socket.
    let mut server = Side::new(TlsSession::server(context(&server_options("server.pem", "server.key"))));
    server.session.send_first(b"220 Go ahead\r\n".to_vec());
    assert_eq!(
        server.take_output(),
        b"220 Go ahead\r\n",
        "a server sends nothing of TLS before the ClientHello"
    );
    let (head, rest) = hello.split_at(7);
    let (read_ahead, from_socket) = rest.split_at(rest.len() / 2);
    for piece in [head, read_ahead, from_socket] {
        server.feed(piece);
    }
    pump(&mut client, &mut server);
    assert!(client.opened && server.opened, "client {:?} / server {:?}", client.failure, server.failure);
    assert_eq!(server.session.encrypt(b"over tls"), 8);
    pump(&mut client, &mut server);
    assert_eq!(client.plaintext, b"over tls");
}

#[test]
fn a_client_context_resumes_with_the_server_that_issued_its_ticket_or_one_sharing_its_keys() {
    let client = context(&client_options());
    let issuer = context(&with_ticket_keys(server_options("server.pem", "server.key"), 1));
    let sharing = context(&with_ticket_keys(server_options("server.pem", "server.key"), 1));
    let foreign = context(&with_ticket_keys(server_options("server.pem", "server.key"), 2));
    assert!(!resumed(&client, &issuer), "the first handshake is a full one");
    assert!(resumed(&client, &issuer));
    assert!(resumed(&client, &sharing), "the same ticketKeys open each other's tickets");
    assert!(!resumed(&client, &foreign), "other keys: a full handshake, not a failure");

    // Without ticketKeys, each server context has a key of its own.
    let own = context(&server_options("server.pem", "server.key"));
    let other_own = context(&server_options("server.pem", "server.key"));
    let fresh_client = context(&client_options());
    assert!(!resumed(&fresh_client, &own));
    assert!(resumed(&fresh_client, &own));
    let newcomer = context(&client_options());
    assert!(!resumed(&newcomer, &other_own));
    assert!(!resumed(&context(&client_options()), &own), "a new client context has no session to offer");
}

#[test]
fn tls12_resumes_too() {
    let server =
        context(&TlsOptions { max_version: TlsVersion::Tls12, ..server_options("server.pem", "server.key") });
    let client = context(&client_options());
    assert!(!resumed(&client, &server));
    let (client_side, server_side) = connect(&client, &server);
    assert!(client_side.session.info().session_reused);
    assert_eq!(server_side.session.info().version, Some("TLSv1.2"));
}

#[test]
fn rotated_ticket_keys_still_open_the_tickets_of_the_previous_keys() {
    let client = context(&client_options());
    let server = context(&with_ticket_keys(server_options("server.pem", "server.key"), 1));
    assert!(!resumed(&client, &server));
    server.set_options(&with_ticket_keys(server_options("server.pem", "server.key"), 3)).unwrap();
    assert!(resumed(&client, &server), "a ticket sealed under the previous key");
    // Tickets issued now are sealed under the new key: a server that has only the old one
    // cannot open them.
    let (_, _) = connect(&client, &server);
    let old_keys_only = context(&with_ticket_keys(server_options("server.pem", "server.key"), 1));
    let client_of_new = context(&client_options());
    assert!(!resumed(&client_of_new, &server));
    assert!(!resumed(&client_of_new, &old_keys_only));
    let bad = with_ticket_keys(server_options("server.pem", "server.key"), 0);
    let short = TlsOptions { ticket_keys: Some(vec![0; 47]), ..bad };
    assert_eq!(server.set_options(&short).unwrap_err().code, "ERR_INVALID_ARG_VALUE");
    assert_eq!(TlsContext::new(&short).unwrap_err().code, "ERR_INVALID_ARG_VALUE");
}

#[test]
fn set_options_while_a_handshake_is_in_flight() {
    let server = context(&server_options("server.pem", "server.key"));
    let client = context(&client_options());
    // A handshake whose ClientHello the server has read chose its configuration: it finishes
    // with the old certificate although the options are replaced before it completes.
    let mut in_flight = Side::new(TlsSession::client(Arc::clone(&client), name("localhost")).unwrap());
    let mut server_side = Side::new(TlsSession::server(Arc::clone(&server)));
    let hello = in_flight.take_output();
    server_side.feed(&hello);
    // One that has not sent its ClientHello yet gets the new one.
    let fresh_client = context(&client_options());
    let mut waiting = Side::new(TlsSession::client(Arc::clone(&fresh_client), name("localhost")).unwrap());
    let mut waiting_server = Side::new(TlsSession::server(Arc::clone(&server)));

    server.set_options(&server_options("server-rsa.pem", "server-rsa.key")).unwrap();
    pump(&mut in_flight, &mut server_side);
    pump(&mut waiting, &mut waiting_server);
    assert!(in_flight.opened && waiting.opened);
    assert_eq!(in_flight.session.info().peer_certificate, Some(first_certificate("server.pem")));
    assert_eq!(waiting.session.info().peer_certificate, Some(first_certificate("server-rsa.pem")));

    // Bad options change nothing.
    let mismatched = server_options("server.pem", "other.key");
    assert_eq!(server.set_options(&mismatched).unwrap_err().code, "ERR_TLS_KEY_MISMATCH");
    let (after, _) = connect(&context(&client_options()), &server);
    assert_eq!(after.session.info().peer_certificate, Some(first_certificate("server-rsa.pem")));
    // A serving context cannot lose its certificate.
    assert_eq!(server.set_options(&client_options()).unwrap_err().code, "ERR_TLS_NO_CERTIFICATE");
    // The handshake timeout is the options' too.
    let patient = TlsOptions {
        handshake_timeout: std::time::Duration::from_secs(3),
        ..server_options("server.pem", "server.key")
    };
    server.set_options(&patient).unwrap();
    assert_eq!(server.handshake_timeout(), std::time::Duration::from_secs(3));
}

#[test]
fn exporter_version_and_cipher_agree_on_both_ends() {
    let server = context(&server_options("server.pem", "server.key"));
    let client = context(&client_options());
    let unopened = TlsSession::server(Arc::clone(&server));
    assert_eq!(unopened.export_keying_material(32, b"EXPORTER-test", None), None);
    let (client_side, server_side) = connect(&client, &server);
    let exported = client_side.session.export_keying_material(32, b"EXPORTER-test", Some(b"context"));
    assert_eq!(exported.as_ref().map(Vec::len), Some(32));
    assert_eq!(exported, server_side.session.export_keying_material(32, b"EXPORTER-test", Some(b"context")));
    assert_ne!(exported, server_side.session.export_keying_material(32, b"EXPORTER-other", Some(b"context")));
    let info = server_side.session.info();
    assert_eq!(info.version, Some("TLSv1.3"));
    let cipher = info.cipher.expect("a cipher");
    assert_eq!(cipher.version, "TLSv1.3");
    assert!(cipher.name.starts_with("TLS_"), "{cipher:?}");
    assert_eq!(client_side.session.info().cipher, Some(cipher));
}

#[test]
fn max_version_tls12_negotiates_tls12_with_openssl_names() {
    let server =
        context(&TlsOptions { max_version: TlsVersion::Tls12, ..server_options("server.pem", "server.key") });
    let (client_side, _) = connect(&context(&client_options()), &server);
    let info = client_side.session.info();
    assert_eq!(info.version, Some("TLSv1.2"));
    let cipher = info.cipher.expect("a cipher");
    assert_eq!(cipher.version, "TLSv1.2");
    assert!(cipher.name.starts_with("ECDHE-ECDSA-"), "{cipher:?}");
    assert!(cipher.standard_name.starts_with("TLS_ECDHE_ECDSA_WITH_"), "{cipher:?}");
    let conflict =
        TlsOptions { min_version: TlsVersion::Tls13, max_version: TlsVersion::Tls12, ..client_options() };
    assert_eq!(TlsContext::new(&conflict).unwrap_err().code, "ERR_TLS_PROTOCOL_VERSION_CONFLICT");
}
