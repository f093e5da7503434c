//! `flood`: the kernel's rcuscale `kfree_rcu` test, smaller than the main
//! job's default: each thread allocates and retires `OBJECTS` 24-byte
//! objects per loop for `LOOPS` loops; one criterion iteration is one whole
//! flood, timed from the start signal to the last free. After each scheme's
//! group, one more flood prints grace periods used and peak deferred memory
//! (criterion has no column for them).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kvfree_rcu_bench::alloc_count::CountingAlloc;
use kvfree_rcu_bench::flood::{FloodConfig, HeapPeak, run_flood};
use kvfree_rcu_bench::schemes::{Scheme, SchemeVisitor, visit_all};
use std::time::Duration;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const OBJECTS: usize = 2000;
const LOOPS: usize = 5;
const THREADS: [usize; 3] = [1, 2, 4];

struct FloodBench<'a> {
    c: &'a mut Criterion,
}

impl SchemeVisitor for FloodBench<'_> {
    fn visit<S: Scheme>(&mut self, scheme: &S) {
        let mut group = self.c.benchmark_group("flood");
        group.sample_size(10);
        for threads in THREADS {
            let cfg = FloodConfig::plain(threads, OBJECTS, LOOPS);
            group.throughput(Throughput::Elements(cfg.total()));
            group.bench_with_input(BenchmarkId::new(scheme.name(), threads), &cfg, |b, cfg| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| run_flood(scheme, cfg).elapsed)
                        .sum::<Duration>()
                })
            });
            let run = run_flood(
                scheme,
                &FloodConfig {
                    heap_peak: HeapPeak::Sampled,
                    ..cfg
                },
            );
            println!(
                "flood {:<22} threads {threads}: grace periods {}, peak deferred {:.2} MiB, allocations per retire {:.3}",
                scheme.name(),
                run.grace_periods.map_or("-".into(), |g| g.to_string()),
                run.peak_heap_bytes.unwrap_or(0) as f64 / (1024.0 * 1024.0),
                run.allocs_in_retire as f64 / run.retired as f64,
            );
        }
        group.finish();
    }
}

fn flood(c: &mut Criterion) {
    visit_all(&mut FloodBench { c });
}

criterion_group!(benches, flood);
criterion_main!(benches);
