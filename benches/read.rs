//! `read`: the read side: `Rcu::read_lock()` and dropping the guard, against
//! `crossbeam_epoch::pin()` and dropping its guard, outermost and nested.

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
}

criterion_group!(benches, read);
criterion_main!(benches);
