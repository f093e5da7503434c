//! The `retire` bench's loop: `threads` threads start together at a
//! barrier, and each retires `iters` objects in chunks of [`CHUNK`]. Only the
//! retire calls are timed: the objects of a chunk are allocated before the
//! chunk's clock starts, and the scheme's per-thread flush (the floor's batch
//! free) runs after it stops. The result is the slowest thread's total, so
//! `iters / result` is the per-thread retire rate while all threads retire at
//! once (criterion's `iter_custom` divides by `iters`).

use crate::object::FloodObj;
use crate::schemes::Scheme;
use arrayvec::ArrayVec;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Objects allocated (untimed) before each timed burst of retires.
pub const CHUNK: usize = 256;

fn one_thread<S: Scheme + ?Sized>(scheme: &S, iters: u64, start: &Barrier) -> Duration {
    scheme.register_thread();
    let mut chunk = ArrayVec::<_, CHUNK>::new();
    let mut left = iters;
    let mut timed = Duration::ZERO;
    start.wait();
    while left > 0 {
        let n = left.min(CHUNK as u64);
        chunk.extend((0..n).map(FloodObj::alloc));
        let t = Instant::now();
        for obj in chunk.drain(..) {
            // SAFETY: a fresh FloodObj::alloc object, never shared, retired once.
            unsafe { scheme.retire(obj) };
        }
        timed += t.elapsed();
        scheme.flush_thread();
        left -= n;
    }
    scheme.unregister_thread();
    timed
}

/// Runs the loop on `threads` threads; returns the slowest thread's timed
/// total. The scheme's barrier runs afterwards, untimed.
pub fn timed_parallel_retire<S: Scheme + ?Sized>(
    scheme: &S,
    threads: usize,
    iters: u64,
) -> Duration {
    let start = Barrier::new(threads);
    let slowest = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| one_thread(scheme, iters, &start)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("retire thread panicked"))
            .max()
            .unwrap_or_default()
    });
    scheme.barrier();
    slowest
}
