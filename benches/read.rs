//! `read`: the read side and the polled grace-period calls of the `Rcu`
//! domain.
//!
//! - group `read`: `Rcu::read_lock()` and dropping the guard, against
//!   `crossbeam_epoch::pin()` and dropping its guard, outermost and nested;
//! - group `polled`: `get_state`, `start_poll`, `poll_state` and `advance`,
//!   the calls atomic-context callers use instead of `synchronize()`.
//!
//! Prints whether the domain's readers use membarrier (a compiler fence on
//! the read side) or the fallback (a full fence): the read numbers differ.

use criterion::{Criterion, criterion_group, criterion_main};
use kvfree_rcu::Rcu;
use std::hint::black_box;

fn read(c: &mut Criterion) {
    let rcu = Rcu::new();
    rcu.register_current_thread().expect("a free reader slot");
    let mut group = c.benchmark_group("read");
    group.bench_function("kvfree-rcu read_lock", |b| {
        b.iter(|| drop(black_box(rcu.read_lock())))
    });
    group.bench_function("crossbeam-epoch pin", |b| {
        b.iter(|| drop(black_box(crossbeam_epoch::pin())))
    });
    {
        let _outer = rcu.read_lock();
        group.bench_function("kvfree-rcu read_lock nested", |b| {
            b.iter(|| drop(black_box(rcu.read_lock())))
        });
    }
    {
        let _outer = crossbeam_epoch::pin();
        group.bench_function("crossbeam-epoch pin nested", |b| {
            b.iter(|| drop(black_box(crossbeam_epoch::pin())))
        });
    }
    group.finish();
    println!("read: uses_membarrier: {}", rcu.uses_membarrier());
}

fn polled(c: &mut Criterion) {
    let rcu = Rcu::new();
    rcu.register_current_thread().expect("a free reader slot");
    let state = rcu.get_state();
    let mut group = c.benchmark_group("polled");
    group.bench_function("get_state", |b| b.iter(|| black_box(rcu.get_state())));
    group.bench_function("start_poll", |b| b.iter(|| black_box(rcu.start_poll())));
    group.bench_function("poll_state", |b| {
        b.iter(|| black_box(rcu.poll_state(black_box(state))))
    });
    group.bench_function("advance", |b| b.iter(|| black_box(rcu.advance())));
    group.finish();
}

criterion_group!(benches, read, polled);
criterion_main!(benches);
