//! Helpers for the unit tests of the pool's files (`push.rs`, `refill.rs`,
//! `pool.rs`): fake records and kinds, small pools, and a drain.

use crate::{BusyLanes, Config, Kind, Pool, ThreadLane};
use core::ptr::{self, NonNull};

/// A record that is never dereferenced: address `8 * (i + 1)`.
pub(crate) fn record(i: usize) -> NonNull<()> {
    NonNull::new(ptr::without_provenance_mut(8 * (i + 1))).unwrap()
}

pub(crate) fn kind(k: usize) -> Kind {
    Kind::new(NonNull::new(ptr::without_provenance_mut(16 * (k + 1))).unwrap())
}

/// A pool whose targets stay fixed at `high` (the tests written before the
/// targets adapted count pages exactly).
pub(crate) fn pool(lanes: usize, low: usize, high: usize) -> Pool {
    pool_growing(lanes, low, high, high)
}

/// A pool whose targets start at `high` and grow up to `max`, every page
/// of a refill allocated (alloc watermark at `max`: a lane that runs dry
/// goes straight to it), without a reserve (pages past the targets are
/// freed, so tests count them).
pub(crate) fn pool_growing(lanes: usize, low: usize, high: usize, max: usize) -> Pool {
    pool_growing_past(lanes, low, high, max, max)
}

/// Like [`pool_growing`] with an alloc watermark `alloc` below `max`: a
/// lane that runs dry grows straight to `max`; past its share of the
/// refill's budget (`lanes x alloc`, shared by the low lanes) a refill
/// puts only reserved pages (a reserve of up to `max`).
pub(crate) fn pool_growing_past(
    lanes: usize,
    low: usize,
    high: usize,
    alloc: usize,
    max: usize,
) -> Pool {
    Pool::new(Config {
        low_watermark: low,
        high_watermark: high,
        max_watermark: max,
        alloc_watermark: alloc,
        max_reserve: if alloc < max { max } else { 0 },
        slab_pages: 1,
        lanes: Some(lanes),
    })
    .unwrap()
}

/// A pool with fixed targets at `high` and a reserve of at most `reserve`
/// pages.
pub(crate) fn pool_with_reserve(lanes: usize, high: usize, reserve: usize) -> Pool {
    Pool::new(Config {
        low_watermark: 1,
        high_watermark: high,
        max_watermark: high,
        alloc_watermark: high,
        max_reserve: reserve,
        slab_pages: 1,
        lanes: Some(lanes),
    })
    .unwrap()
}

/// Seals everything and returns the records by address, with their kinds.
pub(crate) fn drain(pool: &Pool) -> Vec<(usize, Kind)> {
    let mut pages = pool.take_sealed();
    assert_eq!(pool.seal_open(&mut pages, BusyLanes::Wait), 0);
    let mut out = Vec::new();
    pages.for_each_record(|p, k| out.push((p.as_ptr().addr(), k)));
    assert_eq!(out.len(), pages.records());
    pool.recycle(pages);
    out
}

/// Pushes records `from..to` of kind 0 through the thread lane `lane`,
/// refilling whenever the pool asks.
pub(crate) fn push_local_range(pool: &Pool, lane: &ThreadLane, from: usize, to: usize) {
    for i in from..to {
        // SAFETY: the tests claim `lane` from `pool` and use it on one thread.
        unsafe { pool.push_local(lane, record(i), kind(0)) }.unwrap();
        if pool.needs_refill() {
            pool.refill().unwrap();
        }
    }
}

/// The addresses of records `range`, sorted.
pub(crate) fn addresses(range: core::ops::Range<usize>) -> Vec<usize> {
    range.map(|i| record(i).as_ptr().addr()).collect()
}

/// The addresses of `records`, sorted.
pub(crate) fn sorted(records: Vec<(usize, Kind)>) -> Vec<usize> {
    let mut out: Vec<usize> = records.into_iter().map(|(p, _)| p).collect();
    out.sort_unstable();
    out
}
