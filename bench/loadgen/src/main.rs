//! Load generator for the echo benchmarks (bench/tcp.js, bench/tls.js, bench/udp.js): drives
//! many connections, plain or TLS, or UDP flows, from one thread with non-blocking sockets,
//! checks every echoed byte, and prints one JSON report. Run `loadgen --help` (or
//! `loadgen udp --help`) for the modes and options.

mod connection;
mod histogram;
mod net;
mod options;
mod pattern;
mod run;
mod tls;
mod udp;

use std::process::ExitCode;

use options::ParseError;

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("udp") {
        return udp_main();
    }
    let options = match options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(ParseError::Help) => {
            println!("{}", options::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(ParseError::Invalid(message)) => {
            eprintln!("loadgen: {message}\n\n{}", options::USAGE);
            return ExitCode::from(2);
        }
    };
    match run::run(&options) {
        Ok(report) => {
            println!("{}", report.to_json());
            if report.stats.mismatches > 0 {
                eprintln!(
                    "loadgen: {} connection(s) got back bytes they did not send",
                    report.stats.mismatches
                );
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}

fn udp_main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(2).collect();
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{}", udp::USAGE);
        return ExitCode::SUCCESS;
    }
    let options = match udp::parse(args.into_iter()) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("loadgen udp: {message}\n\n{}", udp::USAGE);
            return ExitCode::from(2);
        }
    };
    match udp::run(&options) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("loadgen udp: {err}");
            ExitCode::FAILURE
        }
    }
}
