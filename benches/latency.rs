//! `latency`: per-call retire latency percentiles (p50, p99, p99.99, max)
//! for every scheme, with its worker running and stalled. Percentiles are
//! not criterion's business, so this bench has its own `main`: it prints a
//! table. `--test` (what `cargo bench -- --test` passes) runs a short
//! version; other arguments are ignored.

use kvfree_rcu_bench::alloc_count::CountingAlloc;
use kvfree_rcu_bench::latency::measure_latency;
use kvfree_rcu_bench::report::{LatencyRow, latency_table};
use kvfree_rcu_bench::schemes::{Scheme, SchemeVisitor, visit_all};
use kvfree_rcu_bench::timer::Timer;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

struct Latency {
    calls: usize,
    stalled: bool,
    rows: Vec<LatencyRow>,
}

impl SchemeVisitor for Latency {
    fn visit<S: Scheme>(&mut self, scheme: &S) {
        if let Some(run) = measure_latency(scheme, self.calls, self.stalled) {
            self.rows.push(LatencyRow {
                scheme: scheme.name().to_owned(),
                worker: if self.stalled { "stalled" } else { "running" },
                latency: run.latency,
                allocs_per_retire: run.allocs_in_retire as f64 / self.calls as f64,
                fallback_share: run.fallbacks.map(|f| f as f64 / self.calls as f64),
            });
        }
    }
}

fn main() {
    let test_mode = std::env::args().any(|a| a == "--test");
    let calls = if test_mode { 2_000 } else { 1_000_000 };
    let mut rows = Vec::new();
    for stalled in [false, true] {
        let mut v = Latency {
            calls,
            stalled,
            rows: Vec::new(),
        };
        visit_all(&mut v);
        rows.append(&mut v.rows);
    }
    let timer = Timer::get();
    println!(
        "retire latency, one thread, {calls} calls back to back, each timed with {}, its cost included:",
        timer.describe()
    );
    print!("{}", latency_table(&rows, &timer.overhead(calls)));
}
