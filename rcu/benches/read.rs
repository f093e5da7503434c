//! Read-side and polled-API costs: `read_lock` + drop against
//! `crossbeam_epoch::pin()` + drop, and `get_state`, `poll_state`, `advance`.

use criterion::{Criterion, criterion_group, criterion_main};
use kvfree_rcu_gp::Rcu;
use std::hint::black_box;

fn read_side(c: &mut Criterion) {
    let rcu = Rcu::new();
    rcu.register_current_thread().unwrap();
    let mut group = c.benchmark_group("read_side");
    group.bench_function("rcu_read_lock_drop", |b| {
        b.iter(|| drop(black_box(rcu.read_lock())))
    });
    group.bench_function("rcu_nested_read_lock_drop", |b| {
        let _outer = rcu.read_lock();
        b.iter(|| drop(black_box(rcu.read_lock())))
    });
    group.bench_function("crossbeam_epoch_pin_drop", |b| {
        b.iter(|| drop(black_box(crossbeam_epoch::pin())))
    });
    group.finish();
    println!("uses_membarrier: {}", rcu.uses_membarrier());
}

fn polled(c: &mut Criterion) {
    let rcu = Rcu::new();
    rcu.register_current_thread().unwrap();
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

criterion_group!(benches, read_side, polled);
criterion_main!(benches);
