//! Counters of the pool and the snapshot [`Pool::stats`](crate::Pool::stats)
//! returns.
//!
//! The per-push counters (`pushed`, and `dry` for pushes that found the lane
//! dry) live in each lane and are written only by the lane's owner (see
//! `lane.rs`); the targets are the consumer's (`watermark.rs`). The counters here are bumped off the fast
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
/// assert_eq!(stats.pages_live, stats.pages_cached + stats.pages_reserved + stats.pages_in_flight);
/// assert_eq!(stats.records_pushed, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Pages allocated since the pool was created, a slab at a time
    /// ([`Config::slab_pages`](crate::Config::slab_pages)).
    pub pages_allocated: u64,
    /// Pages freed by the pool (by `recycle` above a lane's target, by
    /// `relax` and `shrink`, by `refill` losing a race). Pages freed by dropping a
    /// [`PageList`](crate::PageList) are not counted (it has no pool).
    pub pages_freed: u64,
    /// `pages_allocated - pages_freed`.
    pub pages_live: u64,
    /// Empty pages sitting in the lanes' caches.
    pub pages_cached: u64,
    /// Empty pages kept in the reserve, past the lanes' caches, for the
    /// next refill or inline push (at most
    /// [`Config::max_reserve`](crate::Config::max_reserve), plus the rest of
    /// the slab allocated last: `slab.rs`).
    pub pages_reserved: u64,
    /// Pages a refill or an inline push took from the reserve instead of
    /// allocating (the other pages of a new slab among them).
    pub reserve_reuses: u64,
    /// Live pages neither cached nor reserved: open pages, sealed pages,
    /// and pages the consumer holds.
    pub pages_in_flight: u64,
    /// Records stored by successful pushes.
    pub records_pushed: u64,
    /// Pushes that asked for a refill (`refill_wanted` or `NoPage`).
    pub refill_requests: u64,
    /// Pushes that returned `NoPage`.
    pub no_page: u64,
    /// Page allocations that failed (real or injected), in `refill` or
    /// `push_with_new_page`.
    pub alloc_failures: u64,
    /// Pages [`Pool::push_with_new_page`](crate::Pool::push_with_new_page)
    /// brought: taken from the reserve (also counted in `reserve_reuses`)
    /// or allocated (also counted in `pages_allocated`).
    pub inline_pages: u64,
    /// Pushes that found a lane dry: no room in its open page and no cached
    /// page (each grows that lane's target at the next refill, at most once
    /// per fill: `watermark.rs`).
    pub dry_pushes: u64,
    /// The sum of the lanes' targets: the empty pages the caches hold when
    /// full. The base is `lanes * high_watermark`; it grows while lanes run
    /// dry and shrinks back with [`Pool::relax`](crate::Pool::relax).
    pub cache_target: u64,
}

/// The pool-wide counters, none of them written on the push path (the
/// push's counters are in the lanes: `pushed`, `dry`, `low`, `no_page`).
#[derive(Debug)]
pub(crate) struct Counters {
    pub(crate) pages_allocated: AtomicU64,
    pub(crate) pages_freed: AtomicU64,
    pub(crate) alloc_failures: AtomicU64,
    pub(crate) inline_pages: AtomicU64,
    pub(crate) reserve_reuses: AtomicU64,
    /// Records `push_with_new_page` handed off in a page of their own because
    /// every lane was busy (no lane counted them).
    pub(crate) pushed_past_lanes: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Counters {
        Counters {
            pages_allocated: AtomicU64::new(0),
            pages_freed: AtomicU64::new(0),
            alloc_failures: AtomicU64::new(0),
            inline_pages: AtomicU64::new(0),
            reserve_reuses: AtomicU64::new(0),
            pushed_past_lanes: AtomicU64::new(0),
        }
    }
}

/// Adds one. `Relaxed`: a statistic, ordered with nothing.
#[inline]
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl crate::Pool {
    /// A snapshot of the counters (approximate while the pool is in use).
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let mut config = Config::default();
    /// (config.low_watermark, config.high_watermark, config.lanes) = (1, 2, Some(2));
    /// config.slab_pages = 4; // the 4 pages the caches take, in one allocation
    /// let pool = Pool::new(config).unwrap();
    /// pool.refill().unwrap();
    /// let stats = pool.stats();
    /// assert_eq!((stats.pages_allocated, stats.pages_cached), (4, 4));
    /// ```
    pub fn stats(&self) -> PoolStats {
        let c = &self.counters;
        // Relaxed everywhere: statistics.
        let pages_allocated = c.pages_allocated.load(Relaxed);
        let pages_freed = c.pages_freed.load(Relaxed);
        let pages_live = pages_allocated.saturating_sub(pages_freed);
        let pages_cached = self.lanes.iter().map(|s| s.cached() as u64).sum();
        let pages_reserved = self.reserve.pages() as u64;
        let no_page = self.lanes.iter().map(|s| s.no_page_events()).sum();
        PoolStats {
            pages_allocated,
            pages_freed,
            pages_live,
            pages_cached,
            pages_reserved,
            reserve_reuses: c.reserve_reuses.load(Relaxed),
            pages_in_flight: pages_live.saturating_sub(pages_cached + pages_reserved),
            records_pushed: self.records_pushed(),
            refill_requests: no_page + self.lanes.iter().map(|s| s.low_events()).sum::<u64>(),
            no_page,
            alloc_failures: c.alloc_failures.load(Relaxed),
            inline_pages: c.inline_pages.load(Relaxed),
            dry_pushes: self.lanes.iter().map(|s| s.dry_events()).sum(),
            cache_target: self.targets.iter().map(|t| t.target() as u64).sum(),
        }
    }

    /// Records pushed so far: [`PoolStats::records_pushed`] without the
    /// rest of the snapshot (one load per lane, and one more). Each count is
    /// written inside the push that stores the record, before the push
    /// returns.
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{Kind, Pool};
    /// let pool = Pool::default();
    /// pool.refill().unwrap();
    /// pool.push(NonNull::<u64>::dangling().cast(), Kind::new(NonNull::<u8>::dangling().cast())).unwrap();
    /// assert_eq!(pool.records_pushed(), 1);
    /// ```
    pub fn records_pushed(&self) -> u64 {
        // Relaxed: a count (see the doc comment).
        self.lanes.iter().map(|s| s.pushed()).sum::<u64>()
            + self.thread_lanes.iter().map(|l| l.pushed()).sum::<u64>()
            + self.counters.pushed_past_lanes.load(Relaxed)
    }
}
