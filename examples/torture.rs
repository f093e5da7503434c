//! The torture soak: the same harness as `tests/torture.rs`, bounded by
//! wall-clock time instead of iterations.
//!
//! ```text
//! cargo run --release --example torture -- --seconds 600 --threads 8
//! ```
//!
//! `--threads N` is the number of reader and updater threads (a third of
//! them, at least one, update); a maintenance thread and the service's worker
//! come on top. Prints a progress line every 10 s and a summary; exits with
//! status 1 (a panic) on any failure.

#[path = "../tests/torture/harness.rs"]
mod harness;

use std::time::Duration;

fn usage() -> ! {
    eprintln!("usage: torture [--seconds N] [--threads N]");
    std::process::exit(2);
}

fn main() {
    let mut seconds = 10.0f64;
    let mut threads = 8usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--seconds" => seconds = value.parse().unwrap_or_else(|_| usage()),
            "--threads" => threads = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let threads = threads.max(2);
    let updaters = (threads / 3).max(1);
    let config = harness::Config {
        readers: threads - updaters,
        updaters,
        duration: Some(Duration::from_secs_f64(seconds)),
        progress: Some(Duration::from_secs(10)),
        ..harness::Config::default()
    };
    let summary = harness::run(&config);
    println!("{summary}");
    println!("torture: PASS");
}
