//! Proof that `Pool::push` (and a thread lane's `push_local`) never
//! allocates: a counting global allocator counts every allocation made on
//! the pushing thread while it pushes. After a
//! warm-up refill, millions of pushes, with the consumer (same thread, outside
//! the counted region) sealing, recycling and refilling between rounds, make
//! zero allocations.

use core::ptr::{self, NonNull};
use kvfree_rcu_pool::{BusyLanes, Config, Kind, Pool};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts, per thread, allocations made while the thread's `COUNTING` flag
/// is set (per thread, so tests running in parallel do not disturb it).
struct CountingAlloc;

thread_local! {
    // `const`: no lazy initialisation and no destructor, so using them from
    // inside the allocator never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` with the caller's arguments, so
// `System`'s guarantees hold; the counting has no effect on memory.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract of `GlobalAlloc::alloc`.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded contract of `GlobalAlloc::alloc_zeroed`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded contract of `GlobalAlloc::realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract of `GlobalAlloc::dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Runs `f` with this thread's allocations counted; returns how many.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn the_counter_counts() {
    assert_eq!(
        allocations_in(|| drop(std::hint::black_box(Box::new(1u64)))),
        1
    );
}

/// Pushes 400 rounds of 5 000 records through `push` with this thread's
/// allocations counted (the consumer seals, recycles and refills between
/// rounds, uncounted), and checks that none allocated and every record
/// found a page.
fn pushes_never_allocate(pool: &Pool, what: &str, mut push: impl FnMut(NonNull<()>, Kind) -> bool) {
    const ROUNDS: usize = 400;
    const PER_ROUND: usize = 5_000;
    pool.refill().unwrap();
    let kinds: Vec<Kind> = (1..=3)
        .map(|k| Kind::new(NonNull::new(ptr::without_provenance_mut(4096 * k)).unwrap()))
        .collect();
    let mut failed = 0u64;
    let mut pushed = 0u64;
    for round in 0..ROUNDS {
        let allocations = allocations_in(|| {
            for i in 0..PER_ROUND {
                let ptr =
                    NonNull::new(ptr::without_provenance_mut(8 * (round * PER_ROUND + i + 1)))
                        .unwrap();
                if push(ptr, kinds[i / 100 % kinds.len()]) {
                    pushed += 1;
                } else {
                    failed += 1;
                }
            }
        });
        assert_eq!(allocations, 0, "{what} allocated in round {round}");
        // The consumer, outside the counted region.
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Wait);
        let mut records = 0;
        pages.for_each_record(|_, _| records += 1);
        assert_eq!(records, pages.records());
        pool.recycle(pages);
        pool.refill().unwrap();
    }
    assert_eq!(failed, 0, "every {what} found a page");
    assert_eq!(pushed, (ROUNDS * PER_ROUND) as u64);
    assert_eq!(pool.stats().records_pushed, pushed);
}

/// A pool with fixed caches of 16 pages per lane.
fn pool() -> Pool {
    let mut config = Config::default();
    (config.low_watermark, config.high_watermark) = (16, 16);
    Pool::new(config).unwrap()
}

#[test]
fn push_never_allocates() {
    let pool = pool();
    pushes_never_allocate(&pool, "push", |ptr, kind| pool.push(ptr, kind).is_ok());
}

/// The same for a thread lane's push (`Pool::push_local`), page switches
/// included; the claim (which may allocate) is outside the counted region.
#[test]
fn push_local_never_allocates() {
    let pool = pool();
    let lane = pool.claim_thread_lane();
    pushes_never_allocate(&pool, "push_local", |ptr, kind| {
        // SAFETY: claimed above from this pool, used by this thread only.
        unsafe { pool.push_local(lane, ptr, kind) }.is_ok()
    });
    // SAFETY: claimed above, released once, not used afterwards.
    unsafe { pool.release_thread_lane(lane) };
}
