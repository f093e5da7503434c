//! The flood grid: every thread count times every scheme, each cell run
//! repeatedly for at least `--seconds` (at least once, at most
//! `--max-runs`), reported as its median run; then each row's throughput
//! against the naive call_rcu's at the same thread count.

use super::args::Args;
use super::progress::Progress;
use kvfree_rcu_bench::flood::{FloodConfig, FloodRun, run_flood};
use kvfree_rcu_bench::latency::Percentiles;
use kvfree_rcu_bench::report::FloodRow;
use kvfree_rcu_bench::schemes::SchemeKind;
use std::time::{Duration, Instant};

/// Progress steps: one per cell.
pub(crate) fn steps(args: &Args, schemes: &[SchemeKind]) -> usize {
    schemes.len() * args.threads.len()
}

/// One row per (thread count, scheme), thread counts outermost.
pub(crate) fn run(args: &Args, schemes: &[SchemeKind], progress: &Progress) -> Vec<FloodRow> {
    let mut flood = Vec::new();
    for &threads in &args.threads {
        let cfg = FloodConfig {
            threads,
            objects: args.objects,
            loops: args.loops,
            sample_every: args.sample_every,
        };
        for &kind in schemes {
            progress.step(format!("flood: {kind:?}, {threads} thread(s)"));
            flood.push(cell(kind, &cfg, args));
            progress.done_one();
        }
    }
    set_vs_call_rcu(&mut flood);
    flood
}

/// One cell: repeated runs, summarised.
fn cell(kind: SchemeKind, cfg: &FloodConfig, args: &Args) -> FloodRow {
    let scheme = kind.build();
    let budget = Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut runs: Vec<FloodRun> = Vec::new();
    while runs.is_empty() || (started.elapsed() < budget && runs.len() < args.max_runs.max(1)) {
        runs.push(run_flood(&*scheme, cfg));
    }
    summarise(scheme.name(), cfg.threads, runs)
}

/// The median run's time and throughput; latency percentiles, allocations
/// and fallbacks over all runs; the largest peak.
fn summarise(scheme: &str, threads: usize, mut runs: Vec<FloodRun>) -> FloodRow {
    let mut latencies: Vec<u64> = runs
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.latencies_ns))
        .collect();
    let allocs: u64 = runs.iter().map(|r| r.allocs_in_retire).sum();
    let retired: u64 = runs.iter().map(|r| r.retired).sum();
    let fallbacks: Option<u64> = runs.iter().map(|r| r.fallbacks).sum();
    let peak = runs.iter().map(|r| r.peak_bytes).max().unwrap_or(0);
    runs.sort_by_key(|r| r.elapsed);
    let median = &runs[runs.len() / 2];
    FloodRow {
        scheme: scheme.to_owned(),
        threads,
        runs: runs.len(),
        median_ms: median.elapsed.as_secs_f64() * 1e3,
        mobj_per_sec: median.retired as f64 / median.elapsed.as_secs_f64() / 1e6,
        vs_call_rcu: None,
        retire_ns: Percentiles::of(&mut latencies),
        allocs_per_retire: allocs as f64 / retired.max(1) as f64,
        peak_deferred_bytes: peak,
        grace_periods: median.grace_periods,
        fallback_share: fallbacks.map(|f| f as f64 / retired.max(1) as f64),
    }
}

/// Each row's throughput over the naive call_rcu's at its thread count
/// (none if call_rcu did not run).
fn set_vs_call_rcu(flood: &mut [FloodRow]) {
    let call_rcu_name = SchemeKind::CallRcu.build().name();
    for i in 0..flood.len() {
        let base = flood
            .iter()
            .find(|r| r.scheme == call_rcu_name && r.threads == flood[i].threads);
        flood[i].vs_call_rcu = base.map(|b| flood[i].mobj_per_sec / b.mobj_per_sec);
    }
}
