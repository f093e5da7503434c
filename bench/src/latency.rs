//! Per-call retire latency: one thread retires `calls` preallocated objects
//! back to back and times each call with the calibrated [`Timer`] (its own
//! cost, [`Timer::overhead`], is in every sample), with the scheme's worker
//! running or stalled. Reports p50, p99, p99.99 and max, and the allocations the
//! calls made.

use crate::alloc_count::thread_allocations;
use crate::object::FloodObj;
use crate::schemes::Scheme;
use crate::timer::Timer;

/// Percentiles of a set of samples, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.99th percentile.
    pub p9999: u64,
    /// Largest sample.
    pub max: u64,
}

impl Percentiles {
    /// Sorts `samples` and reads the percentiles (nearest rank).
    pub fn of(samples: &mut [u64]) -> Percentiles {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Percentiles {
            count: samples.len() as u64,
            p50: at(0.50),
            p99: at(0.99),
            p9999: at(0.9999),
            max: samples[samples.len() - 1],
        }
    }
}

/// What one latency run measured.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LatencyRun {
    /// Retire-call latencies.
    pub latency: Percentiles,
    /// Allocations made inside the timed calls.
    pub allocs_in_retire: u64,
    /// Timed calls that missed the scheme's fast path, if it has one.
    pub fallbacks: Option<u64>,
}

/// Times `calls` retires on the current thread; `stalled` stalls the
/// scheme's worker for the duration. `None` when `stalled` is asked of a
/// scheme without a worker.
pub fn measure_latency<S: Scheme + ?Sized>(
    scheme: &S,
    calls: usize,
    stalled: bool,
) -> Option<LatencyRun> {
    let objects: Vec<_> = (0..calls).map(|i| FloodObj::alloc(i as u64)).collect();
    let mut samples = Vec::with_capacity(calls);
    scheme.register_thread();
    if stalled && !scheme.stall_worker() {
        scheme.unregister_thread();
        for obj in objects {
            // SAFETY: fresh FloodObj::alloc objects, never retired.
            unsafe { FloodObj::free(obj) };
        }
        return None;
    }
    let mut allocs = 0;
    let timer = Timer::get();
    let fallbacks_before = scheme.fallbacks();
    for obj in objects {
        let before = thread_allocations();
        let t0 = timer.ticks();
        // SAFETY: a fresh FloodObj::alloc object, never shared, retired once.
        unsafe { scheme.retire(obj) };
        let t1 = timer.ticks();
        samples.push(timer.ns_between(t0, t1));
        allocs += thread_allocations() - before;
    }
    let fallbacks = scheme
        .fallbacks()
        .zip(fallbacks_before)
        .map(|(after, before)| after - before);
    if stalled {
        scheme.resume_worker();
    }
    scheme.flush_thread();
    scheme.unregister_thread();
    scheme.barrier();
    Some(LatencyRun {
        latency: Percentiles::of(&mut samples),
        allocs_in_retire: allocs,
        fallbacks,
    })
}
