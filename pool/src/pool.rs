//! The pool itself: its lanes, the consumer's per-lane targets, the
//! hand-off list of full pages, the counters, and the `dry` hint;
//! construction, and `Drop`, which frees every page once.
//!
//! Producers call [`Pool::push`] (`push.rs`) from any context. Everything
//! else is the consumer's, in ordinary context: taking full and open pages
//! (`seal.rs`), the supply of empty pages (`refill.rs`: refill, recycle,
//! shrink) and the adaptive targets (`watermark.rs`: relax). A caller in
//! ordinary context may also push through a page it allocates itself
//! (`push_new_page.rs`). Several consumers at once are safe too (each operation moves
//! pages with a swap or a CAS), but the service runs one.
//!
//! # Ownership
//! Every page has exactly one owner (crate docs): a lane's open word or cache
//! entry, the hand-off list, a `PageList`, or the party that took it from
//! one of those with a swap or a CAS. The pool struct owns nothing directly;
//! its `Drop` takes every page out of those places (it has `&mut self`, so
//! no push can own a lane then) and frees each once.

use crate::config::{Config, ConfigError};
use crate::cpu;
use crate::hand_off::HandOff;
use crate::lane::{BUSY, Lane};
use crate::reserve::Reserve;
use crate::stats::Counters;
use crate::sync::{AtomicBool, AtomicUsize};
use crate::thread_lane::ThreadLanes;
use crate::watermark::LaneTarget;
use core::fmt;
use core::ptr::{self, NonNull};
use crossbeam_utils::CachePadded;
use kvfree_rcu_gp::AsymmetricFence;

/// A lock-free per-CPU pool of pages of retired pointers (see the crate doc).
///
/// # Example
/// ```
/// use core::ptr::NonNull;
/// use kvfree_rcu_pool::{Kind, Pool};
///
/// let pool = Pool::default();
/// let kind = Kind::new(NonNull::<u8>::dangling().cast());
/// // No page yet: the push fails at once and asks for a refill.
/// assert!(pool.push(NonNull::<u64>::dangling().cast(), kind).is_err());
/// assert!(pool.needs_refill());
/// pool.refill().unwrap();
/// assert!(pool.push(NonNull::<u64>::dangling().cast(), kind).is_ok());
/// ```
pub struct Pool {
    pub(crate) lanes: Box<[CachePadded<Lane>]>,
    /// The consumer's state for each lane, by the same index (its own
    /// allocation: producers never touch it).
    pub(crate) targets: Box<[LaneTarget]>,
    /// Full pages handed off past the lanes (`push_with_new_page` when every
    /// lane was busy); each lane has its own list for its pushes.
    pub(crate) sealed: CachePadded<HandOff>,
    pub(crate) counters: CachePadded<Counters>,
    /// Page allocations still to fail (fault injection).
    pub(crate) failures_to_inject: AtomicUsize,
    pub(crate) config: Config,
    /// Possible CPUs: the distance between a CPU's lanes.
    pub(crate) cpus: usize,
    /// Set by a push that found every lane dry, cleared when the consumer
    /// puts pages back (`refill`, `recycle`): while set, pushes fail at once
    /// instead of scanning every lane, which keeps the fallback path short
    /// while the refiller is stalled. Only a hint: a stale `true` costs one
    /// fallback until the next refill (every `NoPage` asks for one), and a
    /// stale `false` costs one scan.
    pub(crate) dry: CachePadded<AtomicBool>,
    /// Empty pages kept past the lanes' caches for the next refill or
    /// inline push (`reserve.rs`).
    pub(crate) reserve: CachePadded<Reserve>,
    /// Lanes claimed by threads (`thread_lane.rs`).
    pub(crate) thread_lanes: ThreadLanes,
    /// The thread lanes' handshake: `light` in their pushes, `heavy` when
    /// the consumer takes their pages.
    pub(crate) fence: AsymmetricFence,
}

impl Pool {
    /// Creates a pool with empty caches (call [`Pool::refill`] before the
    /// first push). Ordinary context: the process's first pool (or RCU
    /// domain) may register for `membarrier()` (`AsymmetricFence::new`). Fails, naming the field and its range, unless
    /// every value is in its range (see [`Config`]): `1 <= low_watermark <=
    /// high_watermark <= max_watermark <= CACHE_CAPACITY`, `alloc_watermark`
    /// in `1..=CACHE_CAPACITY`, `max_reserve` in `0..=MAX_RESERVE`,
    /// `slab_pages` in `1..=MAX_SLAB_PAGES`, and `lanes` `None` or in
    /// `1..=MAX_LANES`.
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let mut config = Config::default();
    /// (config.low_watermark, config.high_watermark, config.lanes) = (1, 2, Some(2));
    /// let pool = Pool::new(config).unwrap();
    /// assert_eq!(pool.lanes(), 2);
    /// ```
    pub fn new(config: Config) -> Result<Pool, ConfigError> {
        let config = config.validate()?;
        let lanes = config.lanes.unwrap_or(1);
        Ok(Pool {
            lanes: (0..lanes)
                .map(|_| CachePadded::new(Lane::new(config.low_watermark)))
                .collect(),
            targets: (0..lanes)
                .map(|_| LaneTarget::new(config.high_watermark))
                .collect(),
            sealed: CachePadded::new(HandOff::new()),
            counters: CachePadded::new(Counters::new()),
            failures_to_inject: AtomicUsize::new(0),
            config,
            cpus: cpu::possible_cpus(),
            dry: CachePadded::new(AtomicBool::new(false)),
            reserve: CachePadded::new(Reserve::new()),
            thread_lanes: ThreadLanes::new(),
            fence: AsymmetricFence::new(),
        })
    }

    /// Number of per-CPU lanes.
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let mut config = Config::default();
    /// config.lanes = Some(3);
    /// let pool = Pool::new(config).unwrap();
    /// assert_eq!(pool.lanes(), 3);
    /// ```
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// The configuration, with `lanes` resolved to the actual lane count.
    ///
    /// ```
    /// use kvfree_rcu_pool::Pool;
    /// let pool = Pool::default();
    /// assert_eq!(pool.config().lanes, Some(pool.lanes())); // resolved
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }
}

impl Default for Pool {
    /// `Pool::new(Config::default())`.
    fn default() -> Self {
        Pool::new(Config::default()).expect("the default configuration is valid")
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Drop for Pool {
    /// Frees every page: open, cached and sealed, each once. Records still in
    /// open or sealed pages are leaked (the pool never frees objects): the
    /// service drains the pool (`barrier`) before dropping it.
    fn drop(&mut self) {
        let mut pages = self.take_sealed();
        self.take_thread_pages(&mut pages);
        for lane in self.lanes.iter() {
            let open = lane.take();
            // `&mut self`: no push can be running, so no lane is BUSY.
            debug_assert_ne!(open, BUSY);
            if let Some(page) = NonNull::new(open).filter(|_| open != BUSY) {
                // SAFETY: our swap made us the owner of the open page.
                unsafe { pages.push(page) };
            }
            lane.release(ptr::null_mut());
            while let Some(page) = lane.take_cached() {
                // SAFETY: the swap in `take_cached` made us the owner.
                unsafe { pages.push(page) };
            }
        }
        // The list frees its pages as it drops (the Acquire swaps above
        // ordered every producer's writes before).
        drop(pages);
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::test_support::{kind, pool, record};
    use crate::{BusyLanes, PageList, USABLE_RECORDS};
    use std::collections::HashMap;

    #[test]
    fn page_lists_append_and_free() {
        let pool = pool(1, 1, 1);
        pool.refill().unwrap();
        for i in 0..2 * (USABLE_RECORDS - 2) + 1 {
            pool.push(record(i), kind(0)).unwrap();
            if pool.needs_refill() {
                pool.refill().unwrap();
            }
        }
        let mut a = pool.take_sealed();
        let mut b = PageList::new();
        pool.seal_open(&mut b, BusyLanes::Wait);
        let (pages, records) = (a.pages() + b.pages(), a.records() + b.records());
        a.append(b);
        assert_eq!((a.pages(), a.records()), (pages, records));
        assert_eq!(records, 2 * (USABLE_RECORDS - 2) + 1);
        let mut seen = HashMap::new();
        a.for_each_record(|p, _| *seen.entry(p.as_ptr().addr()).or_insert(0) += 1);
        assert_eq!(seen.len(), records);
        drop(a); // frees the pages, leaking the (fake) records
    }

    #[test]
    fn drop_frees_open_cached_and_sealed_pages() {
        let pool: Pool = pool(2, 2, 2);
        pool.refill().unwrap();
        // Alternating kinds: three record lanes per pointer, two pages.
        for i in 0..USABLE_RECORDS / 2 {
            pool.push(record(i), kind(i % 3)).unwrap();
        }
        let stats = pool.stats();
        assert!(stats.pages_in_flight >= 2, "{stats:?}");
        assert!(format!("{pool:?}").contains("Pool"));
        drop(pool); // Miri reports a leak or a double free
    }
}
