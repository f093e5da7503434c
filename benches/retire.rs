//! `retire`: the retire call alone, ns per call per thread, at 1, 2, 4 and 8
//! threads (8 oversubscribes a 2-core machine). Objects are allocated
//! outside the timed region and only the parallel part is timed (a start
//! barrier, `iter_custom`, the slowest thread's total); see
//! `kvfree_rcu_bench::parallel`. After the group, allocations per retire
//! call are counted for each scheme and printed.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kvfree_rcu_bench::alloc_count::{ALLOCATOR, CountingAlloc};
use kvfree_rcu_bench::latency::measure_latency;
use kvfree_rcu_bench::parallel::timed_parallel_retire;
use kvfree_rcu_bench::schemes::{Scheme, SchemeVisitor, visit_all};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const THREADS: [usize; 4] = [1, 2, 4, 8];

struct RetireBench<'a> {
    c: &'a mut Criterion,
}

impl SchemeVisitor for RetireBench<'_> {
    fn visit<S: Scheme>(&mut self, scheme: &S) {
        let mut group = self.c.benchmark_group("retire");
        for threads in THREADS {
            group.bench_with_input(
                BenchmarkId::new(scheme.name(), threads),
                &threads,
                |b, &threads| b.iter_custom(|iters| timed_parallel_retire(scheme, threads, iters)),
            );
        }
        group.finish();
    }
}

struct AllocationCount;

impl SchemeVisitor for AllocationCount {
    fn visit<S: Scheme>(&mut self, scheme: &S) {
        const CALLS: usize = 10_000;
        if let Some(run) = measure_latency(scheme, CALLS, false) {
            println!(
                "allocations per retire call ({ALLOCATOR} allocator), {:<22} {:.4} ({} in {CALLS} calls)",
                scheme.name(),
                run.allocs_in_retire as f64 / CALLS as f64,
                run.allocs_in_retire
            );
        }
    }
}

fn retire(c: &mut Criterion) {
    visit_all(&mut RetireBench { c });
    visit_all(&mut AllocationCount);
}

criterion_group!(benches, retire);
criterion_main!(benches);
