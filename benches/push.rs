//! `Pool::push` against the physical floor: pushing the same two words into a
//! thread-local `ArrayVec` of a page's capacity. Single thread; the pool is
//! kept supplied outside the timed region (seal, recycle, refill between
//! chunks), so the numbers are the steady-state fast path, including the
//! occasional page switch and hand-off.
//!
//! Run: `cargo bench -p kvfree-rcu-bench --bench push`

use arrayvec::ArrayVec;
use core::ptr::{self, NonNull};
use criterion::{Criterion, criterion_group, criterion_main};
use kvfree_rcu_pool::{BusyLanes, Config, Kind, Pool, RECORDS_PER_PAGE};
use std::cell::RefCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Pushes per timed chunk: fits in the caches (16 pages of ~500 records).
const CHUNK: u64 = 4_000;

thread_local! {
    static FLOOR: RefCell<ArrayVec<(NonNull<()>, Kind), RECORDS_PER_PAGE>> = RefCell::new(ArrayVec::new());
}

fn bench_push(c: &mut Criterion) {
    let kind = Kind::new(NonNull::new(ptr::without_provenance_mut(4096)).unwrap());
    let record = NonNull::new(ptr::without_provenance_mut(64)).unwrap();
    let mut group = c.benchmark_group("push");

    let mut config = Config::default();
    (config.low_watermark, config.high_watermark) = (16, 16);
    let pool = Pool::new(config).unwrap();
    pool.refill().unwrap();
    group.bench_function("pool", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let start = Instant::now();
                for _ in 0..n {
                    let _ = black_box(pool.push(black_box(record), black_box(kind)));
                }
                elapsed += start.elapsed();
                left -= n;
                let mut pages = pool.take_sealed();
                pool.seal_open(&mut pages, BusyLanes::Wait);
                pool.recycle(pages);
                pool.refill().unwrap();
            }
            elapsed
        })
    });

    group.bench_function("thread_local_arrayvec", |b| {
        b.iter(|| {
            FLOOR.with(|floor| {
                let mut floor = floor.borrow_mut();
                if floor.is_full() {
                    floor.clear();
                }
                floor.push((black_box(record), black_box(kind)));
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench_push);
criterion_main!(benches);
