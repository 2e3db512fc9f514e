//! Load generator for the echo benchmarks (bench/tcp.js, bench/tls.js): drives many
//! connections, plain or TLS, from one thread with non-blocking sockets, checks every echoed
//! byte, and prints one JSON report. Run `loadgen --help` for the modes and options.

mod connection;
mod histogram;
mod net;
mod options;
mod pattern;
mod run;
mod tls;

use std::process::ExitCode;

use options::ParseError;

fn main() -> ExitCode {
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
