//! The loop core driven without Node: the doorbell is a channel, and the test plays JavaScript
//! by taking batches (which acknowledges the previous one).

use super::*;
use crate::net::{ClientTls, ConnectTarget, ListenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{channel, Receiver};

type Record = [u32; 4];

/// A record with its payload (for `Open` and `Data`).
#[derive(Debug)]
struct Event {
    kind: u32,
    id: SlotId,
    arg: u32,
    payload: Vec<u8>,
}

fn parse(words: &[u32]) -> Vec<Event> {
    let records = records::read_records(words).unwrap();
    let event = |record: records::Record| Event {
        kind: record.kind,
        id: SlotId { index: record.index, generation: record.stamp },
        arg: record.arg,
        payload: record.payload,
    };
    records.into_iter().map(event).collect()
}

struct Harness {
    event_loop: EventLoop,
    rings: Receiver<()>,
    js: JsSide,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(LoopConfig::default())
    }

    fn with_config(config: LoopConfig) -> Harness {
        let (ring, rings) = channel();
        let event_loop = EventLoop::start(config, Box::new(move || ring.send(()).unwrap())).unwrap();
        Harness { event_loop, rings, js: JsSide::default() }
    }

    /// Waits for the doorbell, then takes every pending batch, the way `index.js` does.
    fn deliver(&mut self, within: Duration) -> Vec<Record> {
        let mut records = Vec::new();
        if self.rings.recv_timeout(within).is_err() {
            return records;
        }
        while self.event_loop.take_batch(&mut self.js) {
            records.extend(self.js.records().chunks(WORDS_PER_EVENT).map(|r| [r[0], r[1], r[2], r[3]]));
        }
        records
    }

    /// Like `deliver`, for batches that may carry payloads.
    fn events(&mut self, within: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        if self.rings.recv_timeout(within).is_err() {
            return events;
        }
        while self.event_loop.take_batch(&mut self.js) {
            events.extend(parse(self.js.records()));
        }
        events
    }

    /// Waits until an event of `kind` arrives; returns it and everything before it.
    fn until(&mut self, kind: EventKind) -> Vec<Event> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            seen.extend(self.events(Duration::from_millis(100)));
            if seen.iter().any(|e| e.kind == kind as u32) {
                return seen;
            }
        }
        panic!("no {kind:?} event; saw {seen:?}");
    }

    /// Takes one batch without acknowledging it (its callbacks are "still running").
    fn take_one(&mut self, within: Duration) -> Vec<Record> {
        self.rings.recv_timeout(within).expect("no delivery");
        assert!(self.event_loop.take_batch(&mut self.js));
        self.js.records().chunks(WORDS_PER_EVENT).map(|r| [r[0], r[1], r[2], r[3]]).collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.event_loop.stop();
    }
}

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn a_timer_fires_once_and_never_early() {
    let mut h = Harness::new();
    let id = h.event_loop.create_handle().unwrap();
    let armed_at = Instant::now();
    h.event_loop.arm_timer(id, 7, Duration::from_millis(30), None).unwrap();
    let records = h.deliver(SECOND);
    assert!(armed_at.elapsed() >= Duration::from_millis(30), "fired early: {:?}", armed_at.elapsed());
    assert_eq!(records, vec![[EventKind::Timer as u32, id.index, 7, TIMER_FINAL]]);
    assert!(h.deliver(Duration::from_millis(60)).is_empty(), "a one-shot timer fires once");
}

#[test]
fn timers_fire_in_deadline_order() {
    let mut h = Harness::new();
    let mut fired = Vec::new();
    for (stamp, ms) in [(30, 60), (10, 20), (20, 40)] {
        let id = h.event_loop.create_handle().unwrap();
        h.event_loop.arm_timer(id, stamp, Duration::from_millis(ms), None).unwrap();
    }
    while fired.len() < 3 {
        let records = h.deliver(SECOND);
        assert!(!records.is_empty(), "timers missing after {fired:?}");
        fired.extend(records.iter().map(|r| r[2]));
    }
    assert_eq!(fired, vec![10, 20, 30]);
}

#[test]
fn a_repeating_timer_repeats_until_disarmed() {
    let mut h = Harness::new();
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.arm_timer(id, 1, Duration::from_millis(5), Some(Duration::from_millis(5))).unwrap();
    let mut count = 0;
    while count < 3 {
        for record in h.deliver(SECOND) {
            assert_eq!(record, [EventKind::Timer as u32, id.index, 1, 0], "a repeating expiry is not final");
            count += 1;
        }
    }
    h.event_loop.disarm_timer(id).unwrap();
    // An expiry published before the disarm was applied may still arrive; nothing after it.
    h.deliver(Duration::from_millis(20));
    assert!(h.deliver(Duration::from_millis(50)).is_empty());
}

#[test]
fn re_arming_replaces_the_schedule() {
    let mut h = Harness::new();
    let id = h.event_loop.create_handle().unwrap();
    let armed_at = Instant::now();
    h.event_loop.arm_timer(id, 1, Duration::from_millis(20), None).unwrap();
    h.event_loop.arm_timer(id, 2, Duration::from_millis(60), None).unwrap();
    let records = h.deliver(SECOND);
    assert!(armed_at.elapsed() >= Duration::from_millis(60));
    assert_eq!(records, vec![[EventKind::Timer as u32, id.index, 2, TIMER_FINAL]]);
}

#[test]
fn a_stale_id_is_a_no_op() {
    let mut h = Harness::new();
    let old = h.event_loop.create_handle().unwrap();
    h.event_loop.arm_timer(old, 1, Duration::from_millis(40), None).unwrap();
    h.event_loop.release(old);
    // The release is applied by the loop thread; wait until the slot is handed out again.
    let new = loop {
        let candidate = h.event_loop.create_handle().unwrap();
        if candidate.index == old.index {
            break candidate;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_ne!(new.generation, old.generation);
    assert!(matches!(h.event_loop.arm_timer(old, 3, Duration::ZERO, None), Err(Error::StaleHandle)));
    assert!(matches!(h.event_loop.disarm_timer(old), Err(Error::StaleHandle)));
    h.event_loop.release(old);
    h.event_loop.arm_timer(new, 2, Duration::from_millis(1), None).unwrap();
    assert_eq!(h.deliver(SECOND), vec![[EventKind::Timer as u32, new.index, 2, TIMER_FINAL]]);
    assert!(h.deliver(Duration::from_millis(80)).is_empty(), "the released timer must not fire");
}

#[test]
fn polls_are_level_triggered_and_never_reported_while_pending() {
    let mut h = Harness::new();
    let (watched, mut peer) = UnixStream::pair().unwrap();
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.start_poll(id, 5, watched.as_raw_fd(), READABLE).unwrap();
    assert!(h.deliver(Duration::from_millis(50)).is_empty(), "nothing to read yet");

    peer.write_all(b"ab").unwrap();
    let first = h.take_one(SECOND);
    assert_eq!(first, vec![[EventKind::Poll as u32, id.index, 5, READABLE]]);
    // The "callback" has not finished: more data must not produce a second report.
    peer.write_all(b"cd").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(!h.event_loop.take_batch(&mut h.js), "reported again while its callback was pending");

    // Acknowledged and still readable: reported again.
    assert_eq!(h.take_one(SECOND), vec![[EventKind::Poll as u32, id.index, 5, READABLE]]);
    let mut buf = [0; 16];
    assert_eq!((&watched).read(&mut buf).unwrap(), 4);
    // Drained before the acknowledgement: not reported again.
    assert!(!h.event_loop.take_batch(&mut h.js));
    assert!(h.deliver(Duration::from_millis(80)).is_empty());

    h.event_loop.stop_poll(id, watched.as_raw_fd()).unwrap();
    peer.write_all(b"e").unwrap();
    assert!(h.deliver(Duration::from_millis(80)).is_empty(), "a stopped poll is silent");
}

#[test]
fn poll_interest_can_change() {
    let mut h = Harness::new();
    let (watched, _peer) = UnixStream::pair().unwrap();
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.start_poll(id, 1, watched.as_raw_fd(), READABLE).unwrap();
    assert!(h.deliver(Duration::from_millis(50)).is_empty());
    h.event_loop.change_poll(id, watched.as_raw_fd(), READABLE | WRITABLE).unwrap();
    assert_eq!(h.deliver(SECOND), vec![[EventKind::Poll as u32, id.index, 1, WRITABLE]]);
}

#[test]
fn unpollable_fds_are_refused_synchronously() {
    let h = Harness::new();
    let file = std::fs::File::open("Cargo.toml").unwrap();
    let id = h.event_loop.create_handle().unwrap();
    let err = h.event_loop.start_poll(id, 1, file.as_raw_fd(), READABLE).unwrap_err();
    assert_eq!(err.code(), "EPERM");
    let (a, _b) = UnixStream::pair().unwrap();
    h.event_loop.start_poll(id, 1, a.as_raw_fd(), READABLE).unwrap();
    let other = h.event_loop.create_handle().unwrap();
    let err = h.event_loop.start_poll(other, 1, a.as_raw_fd(), READABLE).unwrap_err();
    assert_eq!(err.code(), "EEXIST", "one fd, one poll");
}

#[test]
fn wakeups_coalesce() {
    let mut h = Harness::new();
    for _ in 0..100 {
        h.event_loop.wakeup().unwrap();
    }
    let mut wakeups = 0;
    loop {
        let records = h.deliver(Duration::from_millis(50));
        if records.is_empty() {
            break;
        }
        assert!(records.iter().all(|r| r[0] == EventKind::Wakeup as u32));
        wakeups += records.len();
    }
    assert!((1..100).contains(&wakeups), "{wakeups} wakeups");
}

#[test]
fn undelivered_events_stay_within_the_byte_budget() {
    let mut h =
        Harness::with_config(LoopConfig { max_pending_bytes: 4 * EVENT_BYTES, ..LoopConfig::default() });
    let count = 50;
    for stamp in 0..count {
        let id = h.event_loop.create_handle().unwrap();
        h.event_loop.arm_timer(id, stamp, Duration::ZERO, None).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    let mut stamps = Vec::new();
    while stamps.len() < count as usize {
        let records = h.take_one(SECOND);
        assert!(records.len() <= 4, "{} events held undelivered", records.len());
        stamps.extend(records.iter().map(|r| r[2]));
        std::thread::sleep(Duration::from_millis(5));
        // Acknowledge (an empty take) so the loop gets its credit back and rings again.
        while h.event_loop.take_batch(&mut h.js) {
            stamps.extend(h.js.records().chunks(WORDS_PER_EVENT).map(|r| r[2]));
        }
    }
    stamps.sort_unstable();
    assert_eq!(stamps, (0..count).collect::<Vec<_>>(), "every timer fired exactly once");
}

#[test]
fn a_stopped_loop_refuses_new_work() {
    let h = Harness::new();
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.stop();
    h.event_loop.stop();
    assert!(h.event_loop.is_stopped());
    assert!(matches!(h.event_loop.create_handle(), Err(Error::LoopClosed)));
    assert!(matches!(h.event_loop.arm_timer(id, 1, Duration::ZERO, None), Err(Error::LoopClosed)));
    assert!(matches!(h.event_loop.wakeup(), Err(Error::LoopClosed)));
    h.event_loop.release(id);
}

#[test]
fn after_a_delivery_the_loop_spins_only_when_configured() {
    for (spin, spins) in [(Duration::ZERO, false), (Duration::from_millis(50), true)] {
        let mut h = Harness::with_config(LoopConfig { spin, ..LoopConfig::default() });
        let id = h.event_loop.create_handle().unwrap();
        h.event_loop.arm_timer(id, 1, Duration::ZERO, None).unwrap();
        assert_eq!(h.deliver(SECOND).len(), 1);
        let before = h.event_loop.iteration_number();
        std::thread::sleep(Duration::from_millis(10));
        let iterations = h.event_loop.iteration_number() - before;
        assert_eq!(iterations > 100, spins, "{iterations} iterations in 10 ms with a spin of {spin:?}");
    }
}

// --- sockets ------------------------------------------------------------------------------------

use std::net::{SocketAddr, TcpListener, TcpStream};

fn listen_on_loopback(h: &mut Harness) -> (SlotId, SocketAddr) {
    let (listener, port) = listen_with(h, ListenOptions::default());
    (listener, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A plain listener on 127.0.0.1 with `options`, and its port.
fn listen_with(h: &mut Harness, options: ListenOptions) -> (SlotId, u16) {
    let listener = h.event_loop.listen(&mut h.js, "127.0.0.1:0".parse().unwrap(), options, None).unwrap();
    let port = h.event_loop.listener_address(&h.js, listener).unwrap().1 as u16;
    (listener, port)
}

#[test]
fn accepted_sockets_report_open_and_data_and_write_from_the_caller_thread() {
    let mut h = Harness::new();
    let (listener, addr) = listen_on_loopback(&mut h);
    let mut client = TcpStream::connect(addr).unwrap();
    let open = h.until(EventKind::Open).pop().unwrap();
    assert_eq!(open.payload[..4], listener.index.to_le_bytes(), "the Open record names its listener");
    assert_eq!(open.payload[4..8], listener.generation.to_le_bytes(), "with its generation");
    assert!(String::from_utf8_lossy(&open.payload).contains("127.0.0.1"));

    client.write_all(b"hello").unwrap();
    let data: Vec<u8> = h
        .until(EventKind::Data)
        .into_iter()
        .filter(|e| e.kind == EventKind::Data as u32)
        .flat_map(|e| e.payload)
        .collect();
    assert_eq!(data, b"hello");

    assert_eq!(h.event_loop.write(&h.js, open.id, b"world", false, 1 << 16), 5);
    let mut reply = [0; 5];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"world");

    drop(client);
    let end = h.until(EventKind::End).pop().unwrap();
    assert_eq!(end.id, open.id);
    h.event_loop.close_socket(&mut h.js, open.id);
    assert_eq!(
        h.event_loop.write(&h.js, open.id, b"late", false, 1 << 16),
        0,
        "a closed socket takes nothing"
    );
}

#[test]
fn connects_open_or_fail_with_the_errno() {
    let mut h = Harness::new();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let id = h.event_loop.create_handle().unwrap();
    let target = ConnectTarget::Addresses(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    h.event_loop.connect(&mut h.js, id, target, None, None).unwrap();
    let open = h.until(EventKind::Open).pop().unwrap();
    assert_eq!(open.id, id);
    assert_eq!(open.payload[..4], OPENED_BY_CONNECT.to_le_bytes());

    drop(server);
    let refused = h.event_loop.create_handle().unwrap();
    let target = ConnectTarget::Addresses(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    h.event_loop.connect(&mut h.js, refused, target, None, None).unwrap();
    let failure = h.until(EventKind::ConnectError).pop().unwrap();
    assert_eq!((failure.id, failure.arg as i32), (refused, libc::ECONNREFUSED));
}

#[test]
fn every_resolved_address_is_tried_in_turn() {
    let mut h = Harness::new();
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    // A closed port first: refused, then the listening one.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let id = h.event_loop.create_handle().unwrap();
    let target = ConnectTarget::Addresses(vec![closed, SocketAddr::from(([127, 0, 0, 1], port))]);
    h.event_loop.connect(&mut h.js, id, target, None, None).unwrap();
    let events = h.until(EventKind::Open);
    assert!(events.iter().all(|e| e.kind != EventKind::ConnectError as u32));
}

#[test]
fn send_queues_what_the_kernel_does_not_take_and_reports_the_drain() {
    let mut h = Harness::new();
    let (_, addr) = listen_on_loopback(&mut h);
    let mut client = TcpStream::connect(addr).unwrap();
    let open = h.until(EventKind::Open).pop().unwrap();
    let payload: Vec<u8> = (0..8 << 20).map(|i: u32| (i * 31 + 7) as u8).collect();
    let buffered = h.event_loop.send(&h.js, open.id, &payload, 1 << 16);
    assert!(buffered > 0, "8 MiB do not fit in the kernel's buffers at once");
    assert_eq!(h.event_loop.write(&h.js, open.id, b"x", false, 1 << 16), 0, "write never overtakes send");
    let reader = std::thread::spawn(move || {
        let mut received = vec![0; 8 << 20];
        client.read_exact(&mut received).unwrap();
        received
    });
    h.until(EventKind::Writable);
    assert_eq!(h.event_loop.buffered_amount(&h.js, open.id), 0);
    assert!(reader.join().unwrap() == payload, "every byte, in order");
}

#[test]
fn reading_stops_while_javascript_holds_the_credit() {
    let max_pending_bytes = 256 * 1024;
    let mut h = Harness::with_config(LoopConfig { max_pending_bytes, ..LoopConfig::default() });
    let (_, addr) = listen_on_loopback(&mut h);
    let mut client = TcpStream::connect(addr).unwrap();
    h.until(EventKind::Open);
    let total = 16 << 20;
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 64 * 1024];
        for _ in 0..total / chunk.len() {
            client.write_all(&chunk).unwrap();
        }
        client
    });
    let mut received = 0;
    while received < total {
        // Take a batch and hold it (its callbacks are "running"): the loop may only read up to
        // its credit meanwhile.
        h.rings.recv_timeout(SECOND).expect("no delivery");
        while h.event_loop.take_batch(&mut h.js) {
            let held = parse(h.js.records());
            received += held
                .iter()
                .filter(|e| e.kind == EventKind::Data as u32)
                .map(|e| e.payload.len())
                .sum::<usize>();
            std::thread::sleep(Duration::from_millis(2));
            let undelivered = h.event_loop.shared.delivery.undelivered_bytes();
            assert!(
                // The loop may overshoot by its smallest read and the header of the record it
                // opened (seen once: 16,396 bytes over).
                undelivered <= max_pending_bytes + crate::net::MIN_READ_BYTES + EVENT_BYTES,
                "{undelivered} bytes undelivered with a limit of {max_pending_bytes}"
            );
        }
    }
    assert_eq!(received, total);
    drop(writer.join().unwrap());
}

// --- TLS sockets ----------------------------------------------------------------------------------

use crate::tls::{TlsContext, TlsOptions};
use tokio_rustls::rustls::pki_types::ServerName;

fn tls_fixture(name: &str) -> Vec<u8> {
    std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test/fixtures/tls").join(name))
        .unwrap()
}

/// A TLS listener on 127.0.0.1 with the fixtures' server certificate, and its port.
fn tls_listener(h: &mut Harness) -> (SlotId, u16) {
    let server = TlsOptions {
        key: Some(tls_fixture("server.key")),
        cert: Some(tls_fixture("server.pem")),
        ..TlsOptions::default()
    };
    let server = Arc::new(TlsContext::new(&server).unwrap());
    let listener = h
        .event_loop
        .listen(&mut h.js, "127.0.0.1:0".parse().unwrap(), ListenOptions::default(), Some(server))
        .unwrap();
    let port = h.event_loop.listener_address(&h.js, listener).unwrap().1 as u16;
    (listener, port)
}

/// A TLS listener and a TLS client of it on the same loop, both open. Returns the listener's
/// address too, and the ids of the server's and the client's socket.
fn tls_pair(h: &mut Harness) -> (SlotId, SlotId) {
    let (_, port) = tls_listener(h);
    let client = TlsOptions { ca: Some(tls_fixture("ca.pem")), ..TlsOptions::default() };
    let client = ClientTls {
        context: Arc::new(TlsContext::new(&client).unwrap()),
        name: ServerName::try_from("localhost").unwrap(),
    };
    let id = h.event_loop.create_handle().unwrap();
    let target = ConnectTarget::Addresses(vec![SocketAddr::from(([127, 0, 0, 1], port))]);
    h.event_loop.connect(&mut h.js, id, target, None, Some(client)).unwrap();
    let mut opened = Vec::new();
    let deadline = Instant::now() + 5 * SECOND;
    while opened.len() < 2 && Instant::now() < deadline {
        let events = h.events(Duration::from_millis(100));
        assert!(events.iter().all(|e| e.kind != EventKind::ConnectError as u32), "{events:?}");
        opened.extend(events.into_iter().filter(|e| e.kind == EventKind::Open as u32).map(|e| e.id));
    }
    let server_side = opened.iter().copied().find(|&open| open != id).expect("the server side opened");
    assert!(opened.contains(&id), "the client side opened");
    (server_side, id)
}

/// Collects `Data` of `id` until `total` bytes came, noting whether `writable_of` got `Writable`
/// (and waiting for that too, when there is one to wait for).
fn receive_tls(h: &mut Harness, id: SlotId, total: usize, writable_of: Option<SlotId>) -> (Vec<u8>, bool) {
    let mut received = Vec::new();
    let mut writable = false;
    let deadline = Instant::now() + 10 * SECOND;
    while (received.len() < total || (writable_of.is_some() && !writable)) && Instant::now() < deadline {
        for event in h.events(Duration::from_millis(100)) {
            if event.kind == EventKind::Data as u32 && event.id == id {
                received.extend_from_slice(&event.payload);
            }
            writable |= event.kind == EventKind::Writable as u32 && Some(event.id) == writable_of;
        }
    }
    (received, writable)
}

#[test]
fn tls_send_delivers_megabytes_one_way_and_reports_the_drain() {
    let mut h = Harness::new();
    let (server, client) = tls_pair(&mut h);
    // More than the encryption window, to a peer that never writes back.
    let payload: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 7 + i / 4096) as u8).collect();
    let high_water_mark = 1 << 16;
    let buffered = h.event_loop.send(&h.js, client, &payload, high_water_mark);
    // What is still buffered when `send` returns depends on how far the loop thread got
    // meanwhile (on a loaded machine it can have sent almost everything): send takes it all,
    // which the intact delivery below proves, and a drain is owed only if what it returned
    // was past the high-water mark (JavaScript's `send` returned false).
    assert!(buffered <= payload.len(), "{buffered} bytes buffered");
    let drain_owed = buffered >= high_water_mark;
    let (received, writable) = receive_tls(&mut h, server, payload.len(), drain_owed.then_some(client));
    assert_eq!(received.len(), payload.len());
    assert!(received == payload, "every byte, in order");
    assert!(writable || !drain_owed, "the drain owed for {buffered} buffered bytes is reported");
    assert_eq!(h.event_loop.buffered_amount(&h.js, client), 0);
}

#[test]
fn a_partial_tls_write_reports_writable_once_drained() {
    let mut h = Harness::new();
    let (server, client) = tls_pair(&mut h);
    // Let the session tickets the server sends after the handshake arrive first: reading them
    // must not be what reports the drain.
    h.events(Duration::from_millis(200));
    let taken = h.event_loop.write(&h.js, client, &[5; 4096], false, 1024);
    assert_eq!(taken, 1024, "TLS writes take up to the high-water mark");
    let (received, writable) = receive_tls(&mut h, server, 1024, Some(client));
    assert_eq!(received, vec![5; 1024]);
    assert!(writable);
    h.event_loop.shutdown(&h.js, client);
    let end = h.until(EventKind::End);
    assert!(
        end.iter().any(|e| e.kind == EventKind::End as u32 && e.id == server),
        "close_notify ends the peer"
    );
}

#[test]
fn garbage_on_a_tls_listener_closes_at_once_unannounced_and_is_counted() {
    let mut h = Harness::new();
    let (listener, port) = tls_listener(&mut h);
    assert_eq!(h.event_loop.listener_counts(&h.js, listener), Some((0, 0)));
    for garbage in [&b"GET / HTTP/1.1\r\n\r\n"[..], &[0; 64], &[0x16, 3, 1, 0xff, 0xff]] {
        let mut peer = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        peer.set_read_timeout(Some(2 * SECOND)).unwrap();
        peer.write_all(garbage).unwrap();
        let started = Instant::now();
        let mut answer = Vec::new();
        // The handshake timeout is 10 s: an end well within 2 s is the quick close.
        peer.read_to_end(&mut answer).expect("the server ended the connection within 2 s");
        assert!(started.elapsed() < 2 * SECOND);
        assert!(answer.is_empty() || answer[0] == 0x15, "at most an alert: {answer:?}");
    }
    let events = h.events(Duration::from_millis(100));
    assert!(
        events.iter().all(|e| e.kind != EventKind::Open as u32),
        "garbage is never announced: {events:?}"
    );
    assert_eq!(h.event_loop.listener_counts(&h.js, listener), Some((3, 0)));
}

// --- listen options: the PROXY protocol stage and the connection limit -------------------------

/// The `Open` of the next accepted socket with its remote and local addresses, and the data
/// that reached JavaScript by the time `want` bytes of it came (or 2 s passed).
fn open_and_data(h: &mut Harness, want: usize) -> (Event, String, Vec<u8>) {
    let mut open = None;
    let mut data = Vec::new();
    let deadline = Instant::now() + 2 * SECOND;
    while (open.is_none() || data.len() < want) && Instant::now() < deadline {
        for event in h.events(Duration::from_millis(50)) {
            if event.kind == EventKind::Open as u32 {
                open = Some(event);
            } else if event.kind == EventKind::Data as u32 {
                data.extend(event.payload);
            }
        }
    }
    let open = open.expect("a socket opened");
    let addresses = String::from_utf8_lossy(&open.payload[20..]).into_owned();
    (open, addresses, data)
}

#[test]
fn a_proxy_header_gives_the_clients_addresses_and_the_bytes_after_it_are_the_first_data() {
    let mut h = Harness::new();
    let options = ListenOptions { proxy: Some(crate::proxy::Expect::Required), ..ListenOptions::default() };
    let (listener, port) = listen_with(&mut h, options);
    let mut peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // Header and data in one write: the loop must not take the data for part of the header.
    peer.write_all(b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\nGET / HTTP/1.1\r\n\r\n").unwrap();
    let (open, addresses, data) = open_and_data(&mut h, 18);
    assert_eq!(open.payload[8..12], 40000i32.to_le_bytes(), "the client's port");
    assert_eq!(open.payload[12..16], 443i32.to_le_bytes(), "the port it connected to");
    assert_eq!(addresses, "203.0.113.7198.51.100.1");
    assert_eq!(data, b"GET / HTTP/1.1\r\n\r\n");
    let header = h.event_loop.proxy_header(&h.js, open.id).expect("the header is kept for JavaScript");
    assert_eq!(header.version, 1);

    // A header that trickles in, byte by byte, is read as it comes.
    let mut peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for byte in b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n" {
        peer.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let (_, addresses, data) = open_and_data(&mut h, 0);
    assert_eq!(addresses, "2001:db8::12001:db8::2");
    assert!(data.is_empty());

    // Garbage instead of a header: closed at once, never announced, counted.
    let mut garbage = TcpStream::connect(("127.0.0.1", port)).unwrap();
    garbage.set_read_timeout(Some(2 * SECOND)).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    garbage.read_to_end(&mut rest).expect("closed within 2 s (the handshake timeout is 10 s)");
    let events = h.events(Duration::from_millis(100));
    assert!(events.iter().all(|e| e.kind != EventKind::Open as u32), "{events:?}");
    assert_eq!(h.event_loop.listener_counts(&h.js, listener), Some((1, 0)));
    drop(peer);
}

#[test]
fn an_optional_proxy_header_may_be_absent() {
    let mut h = Harness::new();
    let options = ListenOptions { proxy: Some(crate::proxy::Expect::Optional), ..ListenOptions::default() };
    let (_, port) = listen_with(&mut h, options);
    let mut peer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    peer.write_all(b"plain bytes").unwrap();
    let (open, addresses, data) = open_and_data(&mut h, 11);
    assert_eq!(data, b"plain bytes", "every byte is the connection's own");
    assert!(addresses.starts_with("127.0.0.1"));
    assert!(h.event_loop.proxy_header(&h.js, open.id).is_none());
}

#[test]
fn past_max_connections_a_connection_is_closed_at_once_and_counted() {
    let mut h = Harness::new();
    let (listener, port) =
        listen_with(&mut h, ListenOptions { max_connections: Some(1), ..ListenOptions::default() });
    let first = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (open, _, _) = open_and_data(&mut h, 0);
    let mut second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    second.set_read_timeout(Some(2 * SECOND)).unwrap();
    let mut rest = Vec::new();
    second.read_to_end(&mut rest).expect("the second connection was closed at once");
    assert_eq!(h.event_loop.listener_counts(&h.js, listener), Some((0, 1)));
    // Once the first closes, there is room again.
    drop(first);
    h.until(EventKind::End);
    h.event_loop.close_socket(&mut h.js, open.id);
    h.events(Duration::from_millis(50));
    let _third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    open_and_data(&mut h, 0);
    assert_eq!(h.event_loop.listener_counts(&h.js, listener), Some((0, 1)));
}

// --- who drives (handover.rs) -------------------------------------------------------------------

fn javascript_may_drive() -> Harness {
    Harness::with_config(LoopConfig { javascript_may_drive: true, ..LoopConfig::default() })
}

/// Plays JavaScript until it holds the driving: delivers what comes (short timers make the
/// loop thread iterate, lightly) and, each time nothing is left to take, accepts an offer.
fn take_the_driving(h: &mut Harness) {
    let id = h.event_loop.create_handle().unwrap();
    let deadline = Instant::now() + 5 * SECOND;
    while Instant::now() < deadline {
        h.event_loop.arm_timer(id, 1, Duration::from_millis(1), None).unwrap();
        h.deliver(Duration::from_millis(50));
        if h.event_loop.take_drive() {
            while h.rings.try_recv().is_ok() {}
            return;
        }
    }
    panic!("the loop thread never offered the driving");
}

/// Runs iterations on this thread, as libuv's watch does, until `done` says so; returns the
/// events of every iteration and the last `Drive`.
fn drive_until(h: &mut Harness, mut done: impl FnMut(&Drive, &[Event]) -> bool) -> (Vec<Event>, Drive) {
    let mut events = Vec::new();
    let deadline = Instant::now() + 5 * SECOND;
    while Instant::now() < deadline {
        let drive = h.event_loop.drive();
        if matches!(drive, Drive::Driving { published: true, .. } | Drive::HandedBack { published: true }) {
            while h.event_loop.take_batch(&mut h.js) {
                events.extend(parse(h.js.records()));
            }
        }
        if done(&drive, &events) {
            return (events, drive);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("driving never got there; saw {events:?}");
}

#[test]
fn a_light_loop_is_handed_to_javascript_which_then_runs_its_iterations_alone() {
    let mut h = javascript_may_drive();
    take_the_driving(&mut h);
    let id = h.event_loop.create_handle().unwrap();
    h.event_loop.arm_timer(id, 9, Duration::from_millis(20), None).unwrap();
    std::thread::sleep(Duration::from_millis(60));
    assert!(h.rings.try_recv().is_err(), "the loop thread rang while JavaScript drives");
    assert!(!h.event_loop.take_batch(&mut h.js), "the loop thread fired the timer while JavaScript drives");
    // The first iteration applies the arming; the timer was due long ago.
    let (events, drive) = drive_until(&mut h, |_, events| !events.is_empty());
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].kind, events[0].id.index), (EventKind::Timer as u32, id.index));
    assert!(matches!(drive, Drive::Driving { published: true, .. }), "{drive:?}");
    // Idle now: nothing due, so libuv need not call back until the poller is readable.
    assert_eq!(h.event_loop.drive(), Drive::Driving { published: false, wake_after: None });
    assert!(h.rings.try_recv().is_err(), "the doorbell rang while JavaScript drives");
}

#[test]
fn a_bulk_iteration_hands_the_driving_back_to_the_loop_thread() {
    let mut h = javascript_may_drive();
    let (_, addr) = listen_on_loopback(&mut h);
    take_the_driving(&mut h);
    let mut client = TcpStream::connect(addr).unwrap();
    drive_until(&mut h, |_, events| events.iter().any(|e| e.kind == EventKind::Open as u32));
    let total = 4 << 20;
    let writer = std::thread::spawn(move || {
        client.write_all(&vec![3u8; total]).unwrap();
        client
    });
    let (events, _) = drive_until(&mut h, |drive, _| matches!(drive, Drive::HandedBack { .. }));
    let mut received: usize =
        events.iter().filter(|e| e.kind == EventKind::Data as u32).map(|e| e.payload.len()).sum();
    assert_eq!(h.event_loop.drive(), Drive::NotDriving, "handed back");
    // The rest comes from the loop thread, rung as ever.
    while received < total {
        let events = h.events(SECOND);
        assert!(!events.is_empty(), "the loop thread did not take over; {received} of {total} bytes came");
        received += events
            .iter()
            .filter(|e| e.kind == EventKind::Data as u32)
            .map(|e| e.payload.len())
            .sum::<usize>();
    }
    assert_eq!(received, total);
    drop(writer.join().unwrap());
}

#[test]
fn many_sockets_small_messages_stay_with_javascript_however_large_the_iteration() {
    let mut h = javascript_may_drive();
    let (_, addr) = listen_on_loopback(&mut h);
    take_the_driving(&mut h);
    let mut clients: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let opens = |events: &[Event]| events.iter().filter(|e| e.kind == EventKind::Open as u32).count();
    drive_until(&mut h, |_, events| opens(events) == clients.len());
    for client in &mut clients {
        client.write_all(&[5u8; 1024]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(50));
    // One iteration reads them all: 100 KiB of events (more than a bulk read), none of it bulk.
    let drive = h.event_loop.drive();
    assert!(matches!(drive, Drive::Driving { published: true, .. }), "{drive:?}");
    let mut events = Vec::new();
    while h.event_loop.take_batch(&mut h.js) {
        events.extend(parse(h.js.records()));
    }
    let received: usize =
        events.iter().filter(|e| e.kind == EventKind::Data as u32).map(|e| e.payload.len()).sum();
    assert_eq!(received, 100 * 1024);
    assert!(matches!(h.event_loop.drive(), Drive::Driving { .. }), "JavaScript still drives");
}

/// Connects a client while JavaScript drives, writes `bytes` at once, and returns the `Drive`
/// of the iteration that read them.
fn drive_after_one_write(h: &mut Harness, bytes: usize) -> Drive {
    let (_, addr) = listen_on_loopback(h);
    take_the_driving(h);
    let mut client = TcpStream::connect(addr).unwrap();
    drive_until(h, |_, events| events.iter().any(|e| e.kind == EventKind::Open as u32));
    client.write_all(&vec![9u8; bytes]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let (events, drive) = drive_until(h, |_, events| !events.is_empty());
    let received: usize = events.iter().map(|e| e.payload.len()).sum();
    assert_eq!(received, bytes, "one iteration read it all");
    drive
}

#[test]
fn one_socket_reading_a_bulk_read_hands_the_driving_back_and_a_smaller_read_does_not() {
    let mut h = javascript_may_drive();
    let drive = drive_after_one_write(&mut h, 16 * 1024);
    assert!(matches!(drive, Drive::Driving { published: true, .. }), "{drive:?}");
    let mut h = javascript_may_drive();
    let drive = drive_after_one_write(&mut h, 48 * 1024);
    assert_eq!(drive, Drive::HandedBack { published: true });
}

#[test]
fn after_bulk_the_loop_thread_keeps_the_driving_for_a_while() {
    let mut h = javascript_may_drive();
    assert_eq!(drive_after_one_write(&mut h, 48 * 1024), Drive::HandedBack { published: true });
    // Light iterations on the loop thread (1 ms timers): no offer within the hold.
    let id = h.event_loop.create_handle().unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(50) {
        h.event_loop.arm_timer(id, 1, Duration::from_millis(1), None).unwrap();
        h.deliver(SECOND);
        assert!(!h.event_loop.take_drive(), "offered {:?} after bulk", started.elapsed());
    }
    // When the hold ends, the thread offers the driving by itself: the loop is idle now, and
    // JavaScript is rung to take it.
    while h.rings.try_recv().is_ok() {}
    h.rings.recv_timeout(SECOND).expect("no offer after the hold");
    assert!(!h.event_loop.take_batch(&mut h.js), "nothing to deliver: the ring was the offer");
    assert!(h.event_loop.take_drive(), "the offer is there to take");
}

#[test]
fn tls_use_hands_the_driving_back_for_good() {
    let mut h = javascript_may_drive();
    take_the_driving(&mut h);
    tls_listener(&mut h);
    assert_eq!(h.event_loop.drive(), Drive::NotDriving, "TLS work may not run on the JavaScript thread");
    // The loop thread serves the loop again, and never offers it while TLS is in use.
    let id = h.event_loop.create_handle().unwrap();
    for _ in 0..5 {
        h.event_loop.arm_timer(id, 1, Duration::from_millis(1), None).unwrap();
        assert_eq!(h.deliver(SECOND).len(), 1, "the loop thread fires timers again");
        assert!(!h.event_loop.take_drive(), "offered the driving of a loop that uses TLS");
    }
}

#[test]
fn stopping_a_loop_javascript_drives_ends_its_parked_thread() {
    let mut h = javascript_may_drive();
    take_the_driving(&mut h);
    let started = Instant::now();
    h.event_loop.stop();
    assert!(started.elapsed() < SECOND, "stop took {:?}", started.elapsed());
    assert_eq!(h.event_loop.drive(), Drive::NotDriving);
}
