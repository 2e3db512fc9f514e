//! `loadgen udp`: datagram echo. Every flow is a UDP socket connected to the server that keeps
//! a window of datagrams in flight; each datagram carries its flow's sequence number and a
//! pattern derived from it, so every echoed byte is checked. A datagram whose echo has not come
//! back within `LOSS_TIMEOUT`, or that is overtaken by a later one's echo, counts as lost
//! (loopback does not reorder), and its slot in the window is freed: losses are reported, not
//! hidden, and never stall a flow.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use polling::{Event, Events, PollMode, Poller};

use crate::histogram::Histogram;

pub const USAGE: &str = "\
usage: loadgen udp --port N [--host H] [--flows F] [--size S] [--pipeline P]
                   [--warmup SECS] [--duration SECS]

  every flow (a UDP socket of its own) keeps P datagrams of S bytes (at least 8) in flight
  (defaults: 16 flows, 64 bytes, 1 in flight); a datagram not echoed within 200 ms, or
  overtaken by a later one's echo, counts as lost.";

const LOSS_TIMEOUT: Duration = Duration::from_millis(200);

pub struct Options {
    server: SocketAddr,
    flows: usize,
    size: usize,
    window: usize,
    warmup: Duration,
    duration: Duration,
}

pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut host, mut port) = ("127.0.0.1".to_string(), None);
    let (mut flows, mut size, mut window) = (16, 64, 1);
    let (mut warmup, mut duration) = (Duration::from_secs(1), Duration::from_secs(3));
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number =
            |value: &str| value.parse::<f64>().map_err(|_| format!("{flag} {value:?} is not a number"));
        match flag.as_str() {
            "--host" => host = value,
            "--port" => port = Some(number(&value)? as u16),
            "--flows" => flows = number(&value)? as usize,
            "--size" => size = number(&value)? as usize,
            "--pipeline" => window = number(&value)? as usize,
            "--warmup" => warmup = Duration::from_secs_f64(number(&value)?),
            "--duration" => duration = Duration::from_secs_f64(number(&value)?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    let port = port.ok_or("--port is required")?;
    if !(8..=65_507).contains(&size) || flows == 0 || window == 0 {
        return Err("--size must be 8 to 65507, --flows and --pipeline at least 1".into());
    }
    let server = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve {host}: {err}"))?
        .next()
        .ok_or_else(|| format!("{host} has no address"))?;
    Ok(Options { server, flows, size, window, warmup, duration })
}

struct Flow {
    socket: UdpSocket,
    next_seq: u64,
    /// Sent and not yet echoed or lost, oldest first: (sequence number, when sent).
    in_flight: VecDeque<(u64, Instant)>,
}

struct Stats {
    echoed: u64,
    bytes: u64,
    lost: u64,
    mismatches: u64,
    latency_ns: Histogram,
}

impl Stats {
    fn new() -> Stats {
        Stats { echoed: 0, bytes: 0, lost: 0, mismatches: 0, latency_ns: Histogram::new() }
    }
}

/// The byte at `offset` of datagram `seq` (after its 8-byte sequence number).
fn pattern(seq: u64, offset: usize) -> u8 {
    (seq as usize).wrapping_mul(31).wrapping_add(offset) as u8
}

fn fill(buffer: &mut [u8], seq: u64) {
    buffer[..8].copy_from_slice(&seq.to_le_bytes());
    for (offset, byte) in buffer[8..].iter_mut().enumerate() {
        *byte = pattern(seq, offset);
    }
}

impl Flow {
    fn send(&mut self, options: &Options, buffer: &mut [u8]) -> io::Result<()> {
        while self.in_flight.len() < options.window {
            fill(&mut buffer[..options.size], self.next_seq);
            match self.socket.send(&buffer[..options.size]) {
                Ok(_) => {}
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
                // An ICMP error from an earlier datagram (the server is not there yet or any
                // more): that datagram is lost; go on.
                Err(err) if err.kind() == ErrorKind::ConnectionRefused => {}
                Err(err) => return Err(err),
            }
            self.in_flight.push_back((self.next_seq, Instant::now()));
            self.next_seq += 1;
        }
        Ok(())
    }

    fn receive(&mut self, options: &Options, buffer: &mut [u8], stats: &mut Stats) -> io::Result<()> {
        loop {
            let len = match self.socket.recv(buffer) {
                Ok(len) => len,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == ErrorKind::ConnectionRefused => continue,
                Err(err) => return Err(err),
            };
            let datagram = &buffer[..len];
            let seq = u64::from_le_bytes(datagram[..8.min(len)].try_into().unwrap_or([0xff; 8]));
            let intact =
                len == options.size && datagram[8..].iter().enumerate().all(|(i, &b)| b == pattern(seq, i));
            if !intact {
                stats.mismatches += 1;
                continue;
            }
            // Older ones still in flight were overtaken: lost (loopback keeps order).
            while let Some(&(oldest, sent_at)) = self.in_flight.front() {
                if oldest > seq {
                    break;
                }
                self.in_flight.pop_front();
                if oldest < seq {
                    stats.lost += 1;
                    continue;
                }
                stats.echoed += 1;
                stats.bytes += len as u64;
                stats.latency_ns.record(sent_at.elapsed().as_nanos().try_into().unwrap_or(u64::MAX));
            }
        }
    }

    fn expire(&mut self, now: Instant, stats: &mut Stats) {
        while self.in_flight.front().is_some_and(|&(_, sent_at)| now - sent_at > LOSS_TIMEOUT) {
            self.in_flight.pop_front();
            stats.lost += 1;
        }
    }
}

/// Runs the load; prints `measure-start` / `measure-end` on stderr as the window opens and
/// closes, and returns the JSON report.
pub fn run(options: &Options) -> io::Result<String> {
    let poller = Poller::new()?;
    let local: SocketAddr = if options.server.is_ipv6() { "[::1]:0" } else { "127.0.0.1:0" }.parse().unwrap();
    let mut flows = Vec::with_capacity(options.flows);
    for key in 0..options.flows {
        let socket = UdpSocket::bind(local)?;
        socket.connect(options.server)?;
        socket.set_nonblocking(true)?;
        // SAFETY: the sockets live in `flows`, which outlives the poller's use of them: it is
        // dropped (closing them) only after the loop below, and the poller first.
        unsafe { poller.add_with_mode(&socket, Event::readable(key), PollMode::Level)? };
        flows.push(Flow { socket, next_seq: 0, in_flight: VecDeque::new() });
    }
    let mut buffer = vec![0u8; 65_536];
    let mut stats = Stats::new();
    let mut events = Events::new();
    let warmup_end = Instant::now() + options.warmup;
    let mut window: Option<(Instant, Instant)> = None;
    for flow in &mut flows {
        flow.send(options, &mut buffer)?;
    }
    let measured = loop {
        let now = Instant::now();
        match window {
            Some((start, end)) if now >= end => break now - start,
            None if now >= warmup_end => {
                stats = Stats::new();
                eprintln!("measure-start");
                window = Some((now, now + options.duration));
            }
            _ => {}
        }
        events.clear();
        poller.wait(&mut events, Some(Duration::from_millis(20)))?;
        for event in events.iter() {
            let flow = &mut flows[event.key];
            flow.receive(options, &mut buffer, &mut stats)?;
            flow.send(options, &mut buffer)?;
        }
        let now = Instant::now();
        for flow in &mut flows {
            flow.expire(now, &mut stats);
            flow.send(options, &mut buffer)?;
        }
    };
    eprintln!("measure-end");
    drop(poller);
    let seconds = measured.as_secs_f64();
    let offered = stats.echoed + stats.lost;
    Ok(format!(
        concat!(
            r#"{{"mode":"udp","params":{{"server":"{}","flows":{},"size":{},"pipeline":{}}},"#,
            r#""seconds":{:.3},"ops":{},"opsPerSec":{:.1},"bytesPerSec":{:.0},"p50Us":{:.1},"p99Us":{:.1},"#,
            r#""lost":{},"lossPct":{:.3},"errors":{},"mismatches":{},"tls":null}}"#,
        ),
        options.server,
        options.flows,
        options.size,
        options.window,
        seconds,
        stats.echoed,
        stats.echoed as f64 / seconds,
        stats.bytes as f64 / seconds,
        stats.latency_ns.quantile(0.50) as f64 / 1e3,
        stats.latency_ns.quantile(0.99) as f64 / 1e3,
        stats.lost,
        if offered > 0 { 100.0 * stats.lost as f64 / offered as f64 } else { 0.0 },
        stats.mismatches,
        stats.mismatches,
    ))
}
