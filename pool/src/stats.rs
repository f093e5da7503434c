//! Counters of the pool and the snapshot [`Pool::stats`](crate::Pool::stats)
//! returns.
//!
//! The per-push counter (`pushed`) lives in each slot and is written only by
//! the slot's owner (see `slot.rs`). The counters here are bumped off the fast
//! path: page allocation and freeing (consumer side) and the rare events of a
//! push (asking for a refill, finding no page), with a `Relaxed` `fetch_add`
//! that is lock-free and reentrant. Page counts in the snapshot are derived,
//! so a snapshot taken while producers and the consumer run is approximate.

use crate::sync::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a pool's counters.
///
/// ```
/// use kvfree_rcu_pool::{Pool, PoolStats};
/// let pool = Pool::default();
/// pool.refill().unwrap();
/// let stats: PoolStats = pool.stats();
/// assert_eq!(stats.pages_live, stats.pages_cached + stats.pages_in_flight);
/// assert_eq!(stats.records_pushed, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Pages allocated since the pool was created.
    pub pages_allocated: u64,
    /// Pages freed by the pool (by `recycle` above the high watermark, by
    /// `shrink`, by `refill` losing a race). Pages freed by dropping a
    /// [`PageList`](crate::PageList) are not counted (it has no pool).
    pub pages_freed: u64,
    /// `pages_allocated - pages_freed`.
    pub pages_live: u64,
    /// Empty pages sitting in the slots' caches.
    pub pages_cached: u64,
    /// Live pages not in a cache: open pages, sealed pages, and pages the
    /// consumer holds.
    pub pages_in_flight: u64,
    /// Records stored by successful pushes.
    pub records_pushed: u64,
    /// Pushes that asked for a refill (`refill_wanted` or `NoPage`).
    pub refill_requests: u64,
    /// Pushes that returned `NoPage`.
    pub no_page: u64,
    /// Page allocations that failed in `refill` (real or injected).
    pub alloc_failures: u64,
}

/// The pool-wide counters (the per-slot `pushed` counters are in the slots).
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) pages_allocated: AtomicU64,
    pub(crate) pages_freed: AtomicU64,
    pub(crate) refill_requests: AtomicU64,
    pub(crate) no_page: AtomicU64,
    pub(crate) alloc_failures: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            pages_allocated: AtomicU64::new(0),
            pages_freed: AtomicU64::new(0),
            refill_requests: AtomicU64::new(0),
            no_page: AtomicU64::new(0),
            alloc_failures: AtomicU64::new(0),
        }
    }
}

/// Adds one. `Relaxed`: a statistic, ordered with nothing.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}
