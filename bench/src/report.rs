//! Results as text tables and JSON (the chart is [`crate::chart`]).
//!
//! One [`FloodRow`] per (scheme, thread count), summarising that
//! configuration's runs (each in a fresh process): the median run's
//! end-to-end nanoseconds per object, the sampled retire-call percentiles
//! over all runs' samples, the retiring threads' syscalls per million
//! retires, the fast-path miss share, allocations per retire and the
//! largest peak RSS. The latency rows hold the per-call percentiles with
//! the worker running and stalled.

use crate::latency::Percentiles;
use crate::schemes::SchemeKind;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// One configuration of the flood table.
#[derive(Clone, Debug, Serialize)]
pub struct FloodRow {
    /// Scheme name.
    pub scheme: String,
    /// Which scheme.
    pub kind: SchemeKind,
    /// Whether the scheme is a reference (never waits for readers).
    pub reference: bool,
    /// Retiring threads.
    pub threads: usize,
    /// Objects retired per run, all threads.
    pub objects: u64,
    /// End-to-end nanoseconds per object of each run, in run order.
    pub e2e_ns_per_op_runs: Vec<f64>,
    /// The median of `e2e_ns_per_op_runs`: time from the start to the last
    /// free over objects retired.
    pub e2e_ns_per_op: f64,
    /// Sampled retire-call latency over all runs, nanoseconds (timer cost included).
    pub retire_ns: Percentiles,
    /// Syscalls of the retiring threads over all runs, if counted in every run.
    pub syscalls: Option<u64>,
    /// `syscalls` per retire call.
    pub syscalls_per_op: Option<f64>,
    /// Memory-management syscalls (the allocator's) among `syscalls`, over all runs.
    pub memory_syscalls: Option<u64>,
    /// `memory_syscalls` per retire call.
    pub memory_syscalls_per_op: Option<f64>,
    /// Share of retire calls (all runs) that missed the fast path, if the scheme has one.
    pub fallback_share: Option<f64>,
    /// Allocations made inside retire calls, per call (all runs).
    pub allocs_per_retire: f64,
    /// Largest peak RSS (VmHWM) of the runs' processes, bytes, if known.
    pub peak_rss_bytes: Option<u64>,
    /// Grace periods (epochs) used by the median run, if the scheme counts them.
    pub grace_periods: Option<u64>,
    /// Largest backlog (objects retired and not yet freed) of the runs, if
    /// the scheme keeps such a mark: under a flood the memory follows it.
    pub peak_backlog: Option<u64>,
}

/// One latency measurement.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyRow {
    /// Scheme name.
    pub scheme: String,
    /// "running" or "stalled".
    pub worker: &'static str,
    /// Per-call latency, nanoseconds (timer cost included).
    pub latency: Percentiles,
    /// Allocations inside the timed calls, per call.
    pub allocs_per_retire: f64,
    /// Share of the timed calls that missed the fast path, if the scheme has one.
    pub fallback_share: Option<f64>,
}

/// The timer that timed the sampled calls, and its own cost.
#[derive(Clone, Debug, Serialize)]
pub struct TimerReport {
    /// `"rdtsc (N GHz)"` or `"Instant"`.
    pub kind: String,
    /// Cost of the two timer reads around each timed call, nanoseconds.
    pub overhead_ns: Percentiles,
    /// The smallest step the clock takes, nanoseconds.
    pub resolution_ns: f64,
}

/// Everything one run of the main job measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// Online CPUs.
    pub cpus: usize,
    /// The command line.
    pub command: String,
    /// Objects per thread per loop.
    pub objects: usize,
    /// Loops per thread.
    pub loops: usize,
    /// Runs (fresh processes) per configuration.
    pub runs: usize,
    /// About one retire call in this many was timed.
    pub sample_every: usize,
    /// The allocator under the counting one: "system" or "mimalloc".
    pub allocator: &'static str,
    /// Whether the counting allocator was installed (allocation columns are meaningful).
    pub counting_allocator: bool,
    /// How syscalls were counted, or why they were not.
    pub syscall_counter: String,
    /// The timer and its cost.
    pub timer: TimerReport,
    /// The flood table.
    pub flood: Vec<FloodRow>,
    /// The latency table.
    pub latency: Vec<LatencyRow>,
    /// Wall time of the whole job, seconds.
    pub wall_seconds: f64,
}

fn percent(share: Option<f64>) -> String {
    share.map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn or_na<T>(value: Option<T>, show: impl FnOnce(T) -> String) -> String {
    value.map_or("n/a".into(), show)
}

/// The width of a table's scheme column: `least`, or the longest name.
fn scheme_width<'a>(least: usize, names: impl Iterator<Item = &'a str>) -> usize {
    names.map(|n| n.chars().count()).fold(least, usize::max)
}

/// The flood table, as aligned text.
pub fn flood_table(rows: &[FloodRow]) -> String {
    let w = scheme_width(21, rows.iter().map(|r| r.scheme.as_str()));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w$} {:>3} {:>9} {:>5} {:>6} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "scheme",
        "thr",
        "e2e ns/op",
        "p50",
        "p99",
        "p99.99",
        "max",
        "sysc/1M",
        "mm/1M",
        "fallback",
        "alloc/op",
        "RSS MiB"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<w$} {:>3} {:>9.1} {:>5} {:>6} {:>7} {:>8} {:>9} {:>8} {:>8} {:>8.3} {:>7}",
            r.scheme,
            r.threads,
            r.e2e_ns_per_op,
            r.retire_ns.p50,
            r.retire_ns.p99,
            r.retire_ns.p9999,
            r.retire_ns.max,
            or_na(r.syscalls_per_op, |s| format!("{:.1}", s * 1e6)),
            or_na(r.memory_syscalls_per_op, |s| format!("{:.1}", s * 1e6)),
            r.fallback_share
                .map_or("-".into(), |s| format!("{:.1}%", s * 100.0)),
            r.allocs_per_retire,
            or_na(r.peak_rss_bytes, |b| format!("{:.0}", mib(b))),
        );
    }
    out
}

/// The latency table, as aligned text.
pub fn latency_table(rows: &[LatencyRow], timer: &Percentiles) -> String {
    let w = scheme_width(22, rows.iter().map(|r| r.scheme.as_str()));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<w$} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>8} {:>9}",
        "scheme",
        "worker",
        "calls",
        "p50 ns",
        "p99 ns",
        "p99.99 ns",
        "max ns",
        "alloc/op",
        "fallback"
    );
    let mut line =
        |name: &str, worker: &str, p: &Percentiles, allocs: f64, fallback: Option<f64>| {
            let _ = writeln!(
                out,
                "{:<w$} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>8.3} {:>9}",
                name,
                worker,
                p.count,
                p.p50,
                p.p99,
                p.p9999,
                p.max,
                allocs,
                percent(fallback)
            );
        };
    line("(timer alone)", "-", timer, 0.0, None);
    for r in rows {
        line(
            &r.scheme,
            r.worker,
            &r.latency,
            r.allocs_per_retire,
            r.fallback_share,
        );
    }
    out
}

/// Writes `results` as pretty JSON.
pub fn write_json(path: &Path, results: &Results) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(results).map_err(std::io::Error::other)?;
    std::fs::write(path, json + "\n")
}
