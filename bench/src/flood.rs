//! The flood: the kernel's rcuscale `kfree_rcu` test. Each of `threads`
//! threads allocates and retires `objects` 24-byte objects per loop, for
//! `loops` loops, as fast as it can; then the main thread waits for the last
//! free. Reported: total time from the start to the last free, retire-call
//! latency (one call in `sample_every` is timed), allocations made inside
//! retire calls (every call is counted), peak live heap above the starting
//! point (every scheme's deferred objects plus its bookkeeping), and grace
//! periods used.

use crate::alloc_count::{PeakSampler, thread_allocations};
use crate::object::{FloodObj, freed_objects};
use crate::schemes::Scheme;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The flood's parameters.
#[derive(Clone, Copy, Debug)]
pub struct FloodConfig {
    /// Retiring threads.
    pub threads: usize,
    /// Objects each thread allocates and retires per loop (rcuscale's `kfree_alloc_num`).
    pub objects: usize,
    /// Loops per thread (rcuscale's `kfree_loops`).
    pub loops: usize,
    /// Time one retire call in this many (0: none).
    pub sample_every: usize,
}

impl FloodConfig {
    /// Objects retired in one run.
    pub fn total(&self) -> u64 {
        (self.threads * self.objects * self.loops) as u64
    }
}

/// What one flood run measured.
#[derive(Clone, Debug, Default)]
pub struct FloodRun {
    /// From the start signal to the last free.
    pub elapsed: Duration,
    /// Objects retired.
    pub retired: u64,
    /// Allocations made inside retire calls, all threads.
    pub allocs_in_retire: u64,
    /// Peak live heap bytes above the run's starting point.
    pub peak_bytes: u64,
    /// Grace periods (epochs) the scheme's domain completed during the run.
    pub grace_periods: Option<u64>,
    /// Retire calls that missed the scheme's fast path, if it has one.
    pub fallbacks: Option<u64>,
    /// Sampled retire-call latencies, nanoseconds (timer overhead included).
    pub latencies_ns: Vec<u64>,
}

/// One thread's share of the flood; returns its sampled latencies and the
/// allocations its retire calls made.
fn retire_thread<S: Scheme + ?Sized>(
    scheme: &S,
    cfg: &FloodConfig,
    start: &Barrier,
) -> (Vec<u64>, u64) {
    scheme.register_thread();
    let per_thread = cfg.objects * cfg.loops;
    let mut latencies = Vec::with_capacity(
        per_thread
            .checked_div(cfg.sample_every)
            .map_or(0, |n| n + 1),
    );
    let mut allocs = 0;
    start.wait();
    let mut n = 0usize;
    for _ in 0..cfg.loops {
        for i in 0..cfg.objects {
            let obj = FloodObj::alloc(i as u64);
            let before = thread_allocations();
            if cfg.sample_every != 0 && n % cfg.sample_every == 0 {
                let t = Instant::now();
                // SAFETY: a fresh FloodObj::alloc object, never shared, retired once.
                unsafe { scheme.retire(obj) };
                latencies.push(t.elapsed().as_nanos() as u64);
            } else {
                // SAFETY: as above.
                unsafe { scheme.retire(obj) };
            }
            allocs += thread_allocations() - before;
            n += 1;
        }
    }
    scheme.flush_thread();
    scheme.unregister_thread();
    (latencies, allocs)
}

/// Runs one flood and waits for the last free.
pub fn run_flood<S: Scheme + ?Sized>(scheme: &S, cfg: &FloodConfig) -> FloodRun {
    let target = freed_objects() + cfg.total();
    let gp_before = scheme.grace_periods();
    let fallbacks_before = scheme.fallbacks();
    let sampler = PeakSampler::start(Duration::from_micros(250));
    let start = Barrier::new(cfg.threads + 1);
    let (elapsed, results) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|_| s.spawn(|| retire_thread(scheme, cfg, &start)))
            .collect();
        start.wait();
        let t0 = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().expect("flood thread panicked"))
            .collect();
        scheme.barrier();
        while freed_objects() < target {
            std::thread::yield_now();
            scheme.barrier();
        }
        (t0.elapsed(), results)
    });
    let peak_bytes = sampler.finish();
    let mut run = FloodRun {
        elapsed,
        retired: cfg.total(),
        peak_bytes,
        grace_periods: scheme
            .grace_periods()
            .zip(gp_before)
            .map(|(after, before)| after - before),
        fallbacks: scheme
            .fallbacks()
            .zip(fallbacks_before)
            .map(|(after, before)| after - before),
        ..FloodRun::default()
    };
    for (latencies, allocs) in results {
        run.latencies_ns.extend(latencies);
        run.allocs_in_retire += allocs;
    }
    run
}
