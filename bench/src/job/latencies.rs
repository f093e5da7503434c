//! The latency runs: `--latency-calls` back-to-back retire calls on one
//! thread per scheme, with the worker running and then stalled (schemes
//! without a worker to stall report only the first).

use super::args::Args;
use super::progress::Progress;
use kvfree_rcu_bench::latency::measure_latency;
use kvfree_rcu_bench::report::LatencyRow;
use kvfree_rcu_bench::schemes::SchemeKind;

/// The two worker states measured, as the table names them.
const WORKER_STATES: [(bool, &str); 2] = [(false, "running"), (true, "stalled")];

/// Progress steps: two per scheme, none with `--latency-calls 0`.
pub(crate) fn steps(args: &Args, schemes: &[SchemeKind]) -> usize {
    if args.latency_calls > 0 {
        schemes.len() * WORKER_STATES.len()
    } else {
        0
    }
}

/// One row per (scheme, worker state) measured; empty with `--latency-calls 0`.
pub(crate) fn run(args: &Args, schemes: &[SchemeKind], progress: &Progress) -> Vec<LatencyRow> {
    let mut latency = Vec::new();
    if args.latency_calls == 0 {
        return latency;
    }
    let calls = args.latency_calls;
    for &kind in schemes {
        for (stalled, worker) in WORKER_STATES {
            progress.step(format!("latency: {kind:?}, worker {worker}"));
            let scheme = kind.build();
            if let Some(run) = measure_latency(&*scheme, calls, stalled) {
                latency.push(LatencyRow {
                    scheme: scheme.name().to_owned(),
                    worker,
                    latency: run.latency,
                    allocs_per_retire: run.allocs_in_retire as f64 / calls as f64,
                    fallback_share: run.fallbacks.map(|f| f as f64 / calls as f64),
                });
            }
            progress.done_one();
        }
    }
    latency
}
