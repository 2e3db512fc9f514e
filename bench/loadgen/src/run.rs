//! The event loop: opens the connections, lets them run through the warm-up and the measured
//! window, and sums up what they did.

use std::io;
use std::time::{Duration, Instant};

use polling::Events;

use crate::connection::{Connection, Plan, Shared, Stats, Status};
use crate::options::{Mode, Options};

/// The fields are dropped in order, so the poller goes before the connections: a socket still
/// registered when the run ends is never closed while the poller can report on it.
struct Driver {
    shared: Shared,
    connections: Vec<Connection>,
}

pub struct Report<'a> {
    options: &'a Options,
    /// Length of the measured window.
    measured: Duration,
    pub stats: Stats,
}

/// Runs the load described by `options`. Writes `measure-start` and `measure-end` lines to
/// stderr as the measured window opens and closes, so that a caller can sample the server
/// over exactly that window.
pub fn run(options: &Options) -> io::Result<Report<'_>> {
    let plan = Plan {
        message_size: options.message_size,
        window: options.pipeline,
        messages_per_connection: (options.mode == Mode::Connect).then_some(1),
    };
    let mut driver = Driver {
        connections: (0..options.connections).map(|key| Connection::new(key, &plan)).collect(),
        shared: Shared::new(plan, options.tls.clone())?,
    };
    let warmup_end = Instant::now() + options.warmup;
    for connection in &mut driver.connections {
        connection.open(&options.endpoint, &mut driver.shared)?;
    }
    let mut events = Events::new();
    // (start, end) once the measured window has opened.
    let mut window: Option<(Instant, Instant)> = None;
    let measured = loop {
        let now = Instant::now();
        let deadline = match window {
            Some((start, end)) if now >= end => break now - start,
            Some((_, end)) => end,
            None if now >= warmup_end => {
                driver.shared.stats.start_window();
                eprintln!("measure-start");
                let end = now + options.duration;
                window = Some((now, end));
                end
            }
            None => warmup_end,
        };
        events.clear();
        driver.shared.poller.wait_deadline(&mut events, deadline)?;
        for event in events.iter() {
            let connection = &mut driver.connections[event.key];
            if connection.on_ready(event, &mut driver.shared)? == Status::Finished {
                connection.open(&options.endpoint, &mut driver.shared)?;
            }
        }
    };
    eprintln!("measure-end");
    Ok(Report { options, measured, stats: driver.shared.stats })
}

impl Report<'_> {
    /// One JSON object; times in microseconds, rates per second of the measured window.
    pub fn to_json(&self) -> String {
        let options = self.options;
        let stats = &self.stats;
        let seconds = self.measured.as_secs_f64();
        let per_second = |count: u64| {
            if seconds > 0.0 {
                count as f64 / seconds
            } else {
                0.0
            }
        };
        let micros = |nanos: u64| nanos as f64 / 1e3;
        let params = format!(
            concat!(
                r#"{{"endpoint":{},"connections":{},"size":{},"pipeline":{},"warmupSeconds":{},"#,
                r#""durationSeconds":{},"tls":{}}}"#,
            ),
            json_string(&options.endpoint.to_string()),
            options.connections,
            options.message_size,
            options.pipeline.map_or("null".to_string(), |window| window.to_string()),
            options.warmup.as_secs_f64(),
            options.duration.as_secs_f64(),
            options.tls.is_some(),
        );
        // What the first completed TLS handshake agreed on, so runs against different servers
        // can be checked to have used the same protocol and cipher.
        let negotiated = stats.negotiated.map_or("null".to_string(), |negotiated| negotiated.to_json());
        format!(
            concat!(
                r#"{{"mode":"{}","params":{},"seconds":{:.3},"ops":{},"opsPerSec":{:.1},"#,
                r#""bytesPerSec":{:.0},"p50Us":{:.1},"p99Us":{:.1},"maxUs":{:.1},"errors":{},"#,
                r#""connectErrors":{},"resets":{},"mismatches":{},"tls":{},"handshakes":{},"#,
                r#""resumedHandshakes":{}}}"#,
            ),
            options.mode.name(),
            params,
            seconds,
            stats.messages,
            per_second(stats.messages),
            per_second(stats.bytes),
            micros(stats.latency_ns.quantile(0.50)),
            micros(stats.latency_ns.quantile(0.99)),
            micros(stats.latency_ns.max()),
            stats.connect_errors + stats.resets + stats.mismatches,
            stats.connect_errors,
            stats.resets,
            stats.mismatches,
            negotiated,
            stats.handshakes,
            stats.resumed_handshakes,
        )
    }
}

fn json_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c < ' ' => quoted.push_str(&format!("\\u{:04x}", c as u32)),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}
