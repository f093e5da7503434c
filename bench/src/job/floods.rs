//! The flood grid: every thread count times every scheme, each
//! configuration run `--runs` times, every run in a fresh child process
//! (`child.rs`, through `std::env::current_exe()`), the rounds interleaved
//! so a burst of noise on the machine spreads over configurations rather
//! than spoiling one. Then each configuration's runs are summarised into a
//! [`FloodRow`].

use super::args::Settings;
use super::child::ConfigRun;
use super::progress::Progress;
use kvfree_rcu_bench::flood::SyscallCounting;
use kvfree_rcu_bench::latency::Percentiles;
use kvfree_rcu_bench::report::FloodRow;
use kvfree_rcu_bench::schemes::SchemeKind;
use std::path::Path;
use std::process::{Command, Stdio};

/// Progress steps: one per child process.
pub(crate) fn steps(settings: &Settings) -> usize {
    settings.runs * settings.threads.len() * settings.schemes.len()
}

/// What the grid produced: rows in table order (thread counts outermost),
/// and the runs that failed (each already reported on stderr).
pub(crate) struct Grid {
    pub(crate) rows: Vec<FloodRow>,
    pub(crate) failed: usize,
}

/// Runs the grid; a child that fails is reported and left out.
pub(crate) fn run(settings: &Settings, progress: &Progress) -> Grid {
    let exe = std::env::current_exe().unwrap_or_else(|e| {
        eprintln!("cannot find this executable to run the floods in child processes: {e}");
        std::process::exit(1);
    });
    let configs: Vec<(usize, SchemeKind)> = settings
        .threads
        .iter()
        .flat_map(|&t| settings.schemes.iter().map(move |&k| (t, k)))
        .collect();
    let mut runs: Vec<Vec<ConfigRun>> = vec![Vec::new(); configs.len()];
    let mut failed = 0;
    for round in 1..=settings.runs {
        for (i, &(threads, kind)) in configs.iter().enumerate() {
            progress.step(format!(
                "flood run {round}/{}: {kind:?}, {threads} thread(s)",
                settings.runs
            ));
            match run_child(&exe, kind, threads, settings) {
                Ok(run) => runs[i].push(run),
                Err(e) => {
                    progress.println(format!("flood {kind:?}, {threads} thread(s) failed: {e}"));
                    failed += 1;
                }
            }
            progress.done_one();
        }
    }
    let rows = configs
        .iter()
        .zip(runs)
        .filter(|(_, runs)| !runs.is_empty())
        .map(|(&(threads, kind), runs)| summarise(kind, threads, runs))
        .collect();
    Grid { rows, failed }
}

/// Runs one configuration in a child process and reads its JSON line.
fn run_child(
    exe: &Path,
    kind: SchemeKind,
    threads: usize,
    settings: &Settings,
) -> Result<ConfigRun, String> {
    let syscalls = match settings.syscalls {
        SyscallCounting::Perf => "perf",
        SyscallCounting::Off => "off",
    };
    let output = Command::new(exe)
        .args(["--one", &kind.cli_name()])
        .args(["--threads", &threads.to_string()])
        .args(["--objects", &settings.objects.to_string()])
        .args(["--loops", &settings.loops.to_string()])
        .args(["--sample-every", &settings.sample_every.to_string()])
        .args(["--syscalls", syscalls])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    if !output.status.success() {
        return Err(format!("child exited with {}", output.status));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .ok_or("child printed no result")?;
    serde_json::from_str(line).map_err(|e| format!("cannot read the child's result: {e}"))
}

/// One row from a configuration's runs: the median run's e2e time and grace
/// periods, latency percentiles over every run's samples, syscalls,
/// fallbacks and allocations summed over the runs, the largest peak RSS.
fn summarise(kind: SchemeKind, threads: usize, runs: Vec<ConfigRun>) -> FloodRow {
    let ns_per_op = |r: &ConfigRun| r.run.elapsed.as_nanos() as f64 / r.run.retired.max(1) as f64;
    let e2e_runs: Vec<f64> = runs.iter().map(ns_per_op).collect();
    let mut by_e2e: Vec<&ConfigRun> = runs.iter().collect();
    by_e2e.sort_by(|a, b| ns_per_op(a).total_cmp(&ns_per_op(b)));
    let median = by_e2e[by_e2e.len() / 2];
    let retired: u64 = runs.iter().map(|r| r.run.retired).sum();
    let per_op = |n: u64| n as f64 / retired.max(1) as f64;
    let mut latencies: Vec<u64> = runs
        .iter()
        .flat_map(|r| r.run.latencies_ns.iter().copied())
        .collect();
    let syscalls: Option<u64> = runs.iter().map(|r| r.run.syscalls).sum();
    let memory_syscalls: Option<u64> = runs.iter().map(|r| r.run.memory_syscalls).sum();
    let fallbacks: Option<u64> = runs.iter().map(|r| r.run.fallbacks).sum();
    FloodRow {
        scheme: median.scheme.clone(),
        kind,
        reference: kind.is_reference(),
        threads,
        objects: median.run.retired,
        e2e_ns_per_op: ns_per_op(median),
        e2e_ns_per_op_runs: e2e_runs,
        retire_ns: Percentiles::of(&mut latencies),
        syscalls,
        syscalls_per_op: syscalls.map(per_op),
        memory_syscalls,
        memory_syscalls_per_op: memory_syscalls.map(per_op),
        fallback_share: fallbacks.map(per_op),
        allocs_per_retire: per_op(runs.iter().map(|r| r.run.allocs_in_retire).sum()),
        peak_rss_bytes: runs.iter().filter_map(|r| r.peak_rss_bytes).max(),
        grace_periods: median.run.grace_periods,
        peak_backlog: runs.iter().filter_map(|r| r.run.peak_backlog).max(),
    }
}
