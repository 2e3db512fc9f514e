//! One client connection of the echo protocol: it writes its stream of pattern bytes as
//! messages, keeps at most a window of them unechoed (or as many as TCP lets it), checks
//! every echoed byte and times every message from send to complete echo.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, ErrorKind};
use std::os::fd::AsFd;
use std::time::Instant;

use polling::{Event, PollMode, Poller};

use crate::histogram::Histogram;
use crate::net::{Endpoint, Transport};
use crate::pattern::{Pattern, MAX_SPAN};
use crate::tls::{Negotiated, TlsClient};

/// What every connection sends.
pub struct Plan {
    pub message_size: u64,
    /// Messages a connection may have sent whose echo has not fully arrived yet; `None`: as
    /// many as TCP's flow control lets it write.
    pub window: Option<u64>,
    /// Set in connect mode: a connection closes after this many messages, and its first
    /// message is timed from the connect call, so its latency covers connect and echo.
    pub messages_per_connection: Option<u64>,
}

impl Plan {
    fn bytes_per_connection(&self) -> Option<u64> {
        self.messages_per_connection.map(|messages| messages * self.message_size)
    }
}

/// Echo progress within the measured window, and errors over the whole run (an error during
/// warm-up is still an error).
pub struct Stats {
    /// Messages whose echo arrived in full.
    pub messages: u64,
    /// Echoed bytes received.
    pub bytes: u64,
    pub latency_ns: Histogram,
    pub connect_errors: u64,
    /// Connections reset or closed by the server, or that failed to write or read.
    pub resets: u64,
    /// Connections that got back bytes other than those they sent.
    pub mismatches: u64,
    /// What the first TLS handshake to complete agreed on.
    pub negotiated: Option<Negotiated>,
    /// TLS connections that finished (connect mode), and how many of them resumed a session.
    pub handshakes: u64,
    pub resumed_handshakes: u64,
}

impl Stats {
    /// Forgets what the warm-up did, keeping its errors.
    pub fn start_window(&mut self) {
        self.messages = 0;
        self.bytes = 0;
        self.latency_ns.clear();
        self.handshakes = 0;
        self.resumed_handshakes = 0;
    }

    fn count(&mut self, failure: Failure) {
        // The counts say how many failed; the first failure's error says why (a certificate
        // the CA did not sign, a refused connection...), once, so a run cannot flood stderr.
        if self.connect_errors + self.resets + self.mismatches == 0 {
            eprintln!("loadgen: first failed connection: {failure}");
        }
        match failure {
            Failure::Connect(_) => self.connect_errors += 1,
            Failure::Reset(_) => self.resets += 1,
            Failure::Mismatch => self.mismatches += 1,
        }
    }
}

/// What all connections use; one thread drives them all, so they share one read buffer.
pub struct Shared {
    pub poller: Poller,
    pub plan: Plan,
    pub stats: Stats,
    /// Set if the connections use TLS.
    tls: Option<TlsClient>,
    pattern: Pattern,
    read_buffer: Box<[u8]>,
    /// Room for TLS ciphertext on its way from the socket to rustls (empty without TLS).
    tls_inbox: Box<[u8]>,
    connections_opened: u64,
}

impl Shared {
    pub fn new(plan: Plan, tls: Option<TlsClient>) -> io::Result<Shared> {
        let tls_inbox_len = if tls.is_some() { MAX_SPAN } else { 0 };
        Ok(Shared {
            poller: Poller::new()?,
            plan,
            stats: Stats {
                messages: 0,
                bytes: 0,
                latency_ns: Histogram::new(),
                connect_errors: 0,
                resets: 0,
                mismatches: 0,
                negotiated: None,
                handshakes: 0,
                resumed_handshakes: 0,
            },
            tls,
            pattern: Pattern::new(),
            read_buffer: vec![0; MAX_SPAN].into_boxed_slice(),
            tls_inbox: vec![0; tls_inbox_len].into_boxed_slice(),
            connections_opened: 0,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Open,
    /// Sent and got back all its messages (connect mode), and closed.
    Finished,
    /// Closed after an error, which `Stats` counted.
    Failed,
}

/// Why a connection ended early.
enum Failure {
    /// The connect or the TLS handshake failed.
    Connect(io::Error),
    Reset(io::Error),
    Mismatch,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(err) => write!(f, "connect failed: {err}"),
            Failure::Reset(err) => write!(f, "reset or closed: {err}"),
            Failure::Mismatch => write!(f, "the echo differed from what was sent"),
        }
    }
}

/// What an event led to, short of failing.
enum Step {
    Open { more_to_send: bool },
    Finished,
}

/// Which readiness the poller watches for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Interest {
    /// Writable: the connect completed (or failed).
    Connect,
    Read,
    /// Readable, and writable because the last write did not take everything.
    ReadWrite,
}

/// A connection slot: connect mode opens a new socket in it after each one finishes, and
/// reuses its buffers.
pub struct Connection {
    /// The poller key of this slot.
    key: usize,
    transport: Option<Transport>,
    interest: Interest,
    progress: Progress,
}

impl Connection {
    pub fn new(key: usize, plan: &Plan) -> Connection {
        Connection {
            key,
            transport: None,
            interest: Interest::Connect,
            progress: Progress {
                origin: 0,
                sent: 0,
                received: 0,
                stamped: 0,
                sent_at: VecDeque::with_capacity(plan.window.unwrap_or(64) as usize),
            },
        }
    }

    /// Starts connecting. A connect that fails at once is counted and leaves the slot closed.
    pub fn open(&mut self, endpoint: &Endpoint, shared: &mut Shared) -> io::Result<()> {
        let connect_started = Instant::now();
        let transport = match Transport::connect(endpoint, shared.tls.as_ref()) {
            Ok(transport) => transport,
            Err(err) => {
                shared.stats.count(Failure::Connect(err));
                return Ok(());
            }
        };
        let interest = Event::writable(self.key);
        // SAFETY: a socket leaves the poller before it is closed (`close`), or, if it is still
        // open when the run ends, after the poller itself is gone (see `run::Driver`).
        unsafe { shared.poller.add_with_mode(&transport.as_fd(), interest, PollMode::Level)? };
        self.transport = Some(transport);
        self.interest = Interest::Connect;
        self.progress.restart(Pattern::origin(shared.connections_opened));
        shared.connections_opened += 1;
        if shared.plan.messages_per_connection.is_some() {
            self.progress.sent_at.push_back(connect_started);
            self.progress.stamped = 1;
        }
        Ok(())
    }

    /// Handles one readiness event for this slot. A connection that fails is counted and
    /// closed, and stays closed; one that finished is closed for the caller to reopen.
    pub fn on_ready(&mut self, event: Event, shared: &mut Shared) -> io::Result<Status> {
        match self.step(event, shared) {
            Ok(Step::Open { more_to_send }) => {
                let transport = self.transport.as_ref().expect("step keeps it open");
                let wanted = if more_to_send { Interest::ReadWrite } else { Interest::Read };
                if wanted != self.interest {
                    let event = Event::new(self.key, true, more_to_send);
                    shared.poller.modify_with_mode(transport, event, PollMode::Level)?;
                    self.interest = wanted;
                }
                if shared.stats.negotiated.is_none() {
                    shared.stats.negotiated = transport.negotiated();
                }
                Ok(Status::Open)
            }
            Ok(Step::Finished) => {
                let transport = self.transport.as_mut().expect("step keeps it open");
                if shared.tls.is_some() {
                    shared.stats.handshakes += 1;
                    shared.stats.resumed_handshakes += u64::from(transport.resumed());
                }
                transport.close_notify();
                self.close(&shared.poller)?;
                Ok(Status::Finished)
            }
            Err(failure) => {
                let handshaking = self.transport.as_ref().is_some_and(Transport::is_handshaking);
                shared.stats.count(match failure {
                    // A TLS connection is not established before its handshake completes.
                    Failure::Reset(err) if handshaking => Failure::Connect(err),
                    failure => failure,
                });
                self.close(&shared.poller)?;
                Ok(Status::Failed)
            }
        }
    }

    fn step(&mut self, event: Event, shared: &mut Shared) -> Result<Step, Failure> {
        let Some(transport) = self.transport.as_mut() else {
            // Only a closed slot has no socket, and the poller no longer watches it.
            unreachable!("event for closed connection slot {}", self.key);
        };
        if self.interest == Interest::Connect {
            match transport.take_error() {
                Ok(None) => {}
                Ok(Some(err)) | Err(err) => return Err(Failure::Connect(err)),
            }
        } else if event.readable && self.progress.receive(transport, shared)? {
            return Ok(Step::Finished);
        }
        let more_to_send = self.progress.send(transport, shared)?;
        Ok(Step::Open { more_to_send })
    }

    fn close(&mut self, poller: &Poller) -> io::Result<()> {
        if let Some(transport) = self.transport.take() {
            poller.delete(&transport)?;
        }
        Ok(())
    }
}

/// How far a connection's byte stream has got, and when its unechoed messages were sent.
struct Progress {
    /// Where this connection's stream starts in the pattern.
    origin: u64,
    /// Bytes written.
    sent: u64,
    /// Echoed bytes read and checked.
    received: u64,
    /// Messages whose send time is recorded in `sent_at`.
    stamped: u64,
    /// When each message stamped but not yet fully echoed was sent, oldest first.
    sent_at: VecDeque<Instant>,
}

impl Progress {
    fn restart(&mut self, origin: u64) {
        self.origin = origin;
        self.sent = 0;
        self.received = 0;
        self.stamped = 0;
        self.sent_at.clear();
    }

    /// Reads and checks what the server echoed; returns whether the connection has got back
    /// everything it will ever send (connect mode).
    fn receive(&mut self, transport: &mut Transport, shared: &mut Shared) -> Result<bool, Failure> {
        let Shared { plan, stats, pattern, read_buffer, tls_inbox, .. } = shared;
        loop {
            let len = match transport.read(read_buffer, tls_inbox) {
                // The server closed before echoing everything.
                Ok(0) => return Err(Failure::Reset(ErrorKind::UnexpectedEof.into())),
                Ok(len) => len,
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                Err(err) => return Err(Failure::Reset(err)),
            };
            let echoed = &read_buffer[..len];
            let unechoed = self.sent - self.received;
            if len as u64 > unechoed || echoed != pattern.slice(self.origin, self.received, len) {
                return Err(Failure::Mismatch);
            }
            let complete_before = self.received / plan.message_size;
            self.received += len as u64;
            stats.bytes += len as u64;
            let complete = self.received / plan.message_size;
            if complete > complete_before {
                let now = Instant::now();
                for _ in complete_before..complete {
                    let sent_at =
                        self.sent_at.pop_front().expect("a message is stamped when its first byte is sent");
                    let latency = now.duration_since(sent_at).as_nanos();
                    stats.latency_ns.record(latency.try_into().unwrap_or(u64::MAX));
                }
                stats.messages += complete - complete_before;
            }
            if Some(self.received) == plan.bytes_per_connection() {
                return Ok(true);
            }
            // Level-triggered polling reports the socket again if data is left, so a short
            // read saves the read that would only say "would block".
            if len < read_buffer.len() {
                return Ok(false);
            }
        }
    }

    /// Writes whatever the window allows; returns whether some of it (or, with TLS, of the
    /// records it was encrypted into) is still unwritten.
    fn send(&mut self, transport: &mut Transport, shared: &Shared) -> Result<bool, Failure> {
        let plan = &shared.plan;
        let window_end = plan
            .window
            .map_or(u64::MAX, |window| (self.received / plan.message_size + window) * plan.message_size);
        let limit = plan.bytes_per_connection().map_or(window_end, |total| total.min(window_end));
        while self.sent < limit {
            let len = (limit - self.sent).min(MAX_SPAN as u64) as usize;
            match transport.write(shared.pattern.slice(self.origin, self.sent, len)) {
                // A stream socket that takes nothing from a non-empty write is closed.
                Ok(0) => return Err(Failure::Reset(ErrorKind::WriteZero.into())),
                Ok(written) => {
                    self.sent += written as u64;
                    self.stamp_sent_messages(plan);
                    // The send buffer is full: wait to hear it has room rather than try again.
                    if written < len {
                        return Ok(true);
                    }
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(err) => return Err(Failure::Reset(err)),
            }
        }
        // TLS: the records of what was just written, or of the handshake, may still wait.
        match transport.flush() {
            Ok(()) => Ok(false),
            Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(true),
            Err(err) => Err(Failure::Reset(err)),
        }
    }

    /// Records the send time of each message whose first byte has now been written.
    fn stamp_sent_messages(&mut self, plan: &Plan) {
        if self.stamped * plan.message_size >= self.sent {
            return;
        }
        let now = Instant::now();
        while self.stamped * plan.message_size < self.sent {
            self.sent_at.push_back(now);
            self.stamped += 1;
        }
    }
}
