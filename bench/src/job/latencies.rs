//! The latency runs: `--latency-calls` back-to-back retire calls on one
//! thread per scheme, with the worker running and then stalled (schemes
//! without a worker to stall report only the first). They run in the
//! parent process after the flood grid (whose runs were all in child
//! processes), each scheme a fresh instance.

use super::args::Settings;
use super::progress::Progress;
use kvfree_rcu_bench::latency::measure_latency;
use kvfree_rcu_bench::report::LatencyRow;
use kvfree_rcu_bench::schemes::{Scheme, SchemeVisitor};

/// The two worker states measured, as the table names them.
const WORKER_STATES: [(bool, &str); 2] = [(false, "running"), (true, "stalled")];

/// Progress steps: two per scheme, none with `--latency-calls 0`.
pub(crate) fn steps(settings: &Settings) -> usize {
    if settings.latency_calls > 0 {
        settings.schemes.len() * WORKER_STATES.len()
    } else {
        0
    }
}

struct OneLatency {
    calls: usize,
    stalled: bool,
    worker: &'static str,
    row: Option<LatencyRow>,
}

impl SchemeVisitor for OneLatency {
    fn visit<S: Scheme>(&mut self, scheme: &S) {
        self.row = measure_latency(scheme, self.calls, self.stalled).map(|run| LatencyRow {
            scheme: scheme.name().to_owned(),
            worker: self.worker,
            latency: run.latency,
            allocs_per_retire: run.allocs_in_retire as f64 / self.calls as f64,
            fallback_share: run.fallbacks.map(|f| f as f64 / self.calls as f64),
        });
    }
}

/// One row per (scheme, worker state) measured; empty with `--latency-calls 0`.
pub(crate) fn run(settings: &Settings, progress: &Progress) -> Vec<LatencyRow> {
    let mut latency = Vec::new();
    if settings.latency_calls == 0 {
        return latency;
    }
    for &kind in &settings.schemes {
        for (stalled, worker) in WORKER_STATES {
            progress.step(format!("latency: {kind:?}, worker {worker}"));
            let mut one = OneLatency {
                calls: settings.latency_calls,
                stalled,
                worker,
                row: None,
            };
            kind.visit(&mut one);
            latency.extend(one.row);
            progress.done_one();
        }
    }
    latency
}
