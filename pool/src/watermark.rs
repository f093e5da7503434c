//! Adaptive per-lane watermarks: how many empty pages a lane's cache is
//! filled to (its *target*) and below how many cached pages a push asks for
//! more (its *low mark*).
//!
//! # Why adaptive
//! Between two refills a lane can store at most its target's worth of
//! records. At the base target (8 pages, about 4 000 records) a producer
//! pushing 20 M records/s empties its lane in 200 µs, less than one round of
//! a busy worker, and every push after that takes its fallback; at 8
//! threads on 2 CPUs that was 97% of them. A large fixed cache fixes the
//! flood but costs its memory on every lane, busy or not (the kernel keeps a
//! fixed 5 pages per CPU and falls back more). So each lane starts at the
//! base, [`Config::high_watermark`](crate::Config::high_watermark), and
//! follows its own traffic:
//!
//! - **Grow when it ran dry.** A push that finds its lane's open page full
//!   and no cached page counts a *dry* event on the lane (`Lane::count_dry`,
//!   a counter only the lane's owner writes) and asks for a refill. The
//!   refill sees that the counter moved since its last look and grows the
//!   lane's target before topping the lane up ([`grown`]): straight to
//!   [`Config::max_watermark`](crate::Config::max_watermark) (at most
//!   [`CACHE_CAPACITY`](crate::CACHE_CAPACITY)). Straight there because a
//!   lane that ran dry right after a fill is under a flood, and every
//!   step on the way was a window of fallbacks: growing one dry event at a
//!   time (doubling, then straight to the alloc watermark and doubling past
//!   it) left a single producer's lane at 64 pages, two milliseconds of
//!   its traffic, while the worker's rounds came two to five milliseconds
//!   apart (docs/BENCHMARKS.md, "Straight to the alloc watermark" and
//!   "The low lanes share the allocation budget"). A grown target costs
//!   memory only while reclaim keeps up (the pages it brings back fill the
//!   lane, up to 1 MiB while the lane is in use); what a flood that
//!   outruns reclaim allocates is set by the budget below. Only a lane that had
//!   been filled to its target (or to its share of the budget, below) is
//!   *armed* to grow: a new lane, or one that `shrink` emptied, ran dry
//!   because nobody had given it pages yet, not because its target is too
//!   small. Growing disarms the lane until it is filled again, so any
//!   number of dry pushes between two fills grows it once.
//! - **Allocate a lane's share of the budget.** One refill allocates at
//!   most `lanes x alloc_watermark` pages
//!   ([`Config::alloc_watermark`](crate::Config::alloc_watermark), default
//!   64 per lane), shared equally by the lanes below their low marks when
//!   it starts, and never less than the alloc watermark each
//!   ([`alloc_cap`]); past its share, up to its target, a lane gets only
//!   pages from the reserve (`reserve.rs`), which reclaim brought back.
//!   So a lone producer's lane may allocate up to its target (256 pages,
//!   1 MiB) where eight busy lanes get 64 each, as when the cap was per
//!   lane: the budget goes where the traffic is, and an 8-thread flood on
//!   2 CPUs, where every lane is low and every page waits in the backlog,
//!   allocates about what it did (per-lane caps of 256, and of 512 in an
//!   earlier session, cost that flood twice the peak RSS:
//!   docs/BENCHMARKS.md). The reserve has pages only while reclaim keeps
//!   up with the producers, so it is the "keeping up" signal past the
//!   share: a 2-thread flood whose worker loses its CPU for a scheduler
//!   tick or two grows its lanes to 256 pages and stops falling back. A
//!   lane filled to its share is armed, so it can grow into the reserve.
//! - **Shrink back after idle.** [`Pool::relax`], called by the consumer
//!   now and then (the service's worker at most once per 100 ms, when its
//!   round seals the idle open pages), halves the target, not below the
//!   base, of every lane that stored no record since the previous call, and
//!   frees the cached pages above the new target. An idle lane is back at
//!   the base after log2(max / base) calls (5 with the defaults, about half
//!   a second in the service); a lane in use keeps the target its traffic
//!   needs, however long the flood lasts. Not sooner: under
//!   oversubscription all of a lane's threads can be off their CPU for
//!   several milliseconds in the middle of a flood.
//! - **The low mark follows the target**: `low_watermark + (target -
//!   high_watermark) / 2` ([`low_mark`]). At the base it is the configured
//!   low watermark; each page the target grows by raises it by half a page,
//!   so a grown lane asks sooner (more headroom for the worker to answer)
//!   and still refills in batches of at least `high - low` pages.
//!
//! # Memory
//! Only lanes that ran dry grow, and only while they are in use. A lane at
//! the default cap caches 256 pages (1 MiB, about 128 000 records), where
//! the base caches 8 (32 KiB); one refill allocates at most 64 pages per
//! lane of the pool (2 MiB for the 8 lanes of 2 CPUs), however the
//! budget is shared. The first dry event takes a lane to 256 pages at
//! once, so a lane that runs dry only now and then may hold that much
//! while it stays in use; an idle one is back at the base after at most
//! five `relax` calls. The pages in flight (open, sealed, waiting for
//! their grace period) are bounded by the traffic and the worker's speed,
//! not by the watermarks.
//!
//! # Concurrency
//! The state here belongs to the consumer: a refill, `recycle`, `relax` or
//! `shrink` reads and writes it; producers only read the low mark and write
//! their lane's dry counter. Everything is `Relaxed`: a watermark is a hint,
//! and pages still move only by the lanes' swaps and CASes (`lane.rs`), so
//! no state here can make a page owned twice or lost. The service runs one
//! consumer at a time; several at once may race on a lane's state, which
//! costs at most a growth or relax step done twice or not at all.

use crate::Pool;
use crate::config::Config;
use crate::lane::Lane;
use crate::sync::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};

/// The consumer's state for one lane (see the module doc).
pub(crate) struct LaneTarget {
    /// Pages the consumer fills the lane's cache up to.
    target: AtomicUsize,
    /// The lane's dry counter at the consumer's last look.
    dry_seen: AtomicU64,
    /// The lane's push counter at the last `relax`.
    pushed_seen: AtomicU64,
    /// Whether the lane was filled to its target since it last grew or was
    /// emptied: only then does running dry mean the target is too small.
    armed: AtomicBool,
}

impl LaneTarget {
    /// A lane's state at the base target, not armed (its cache is empty).
    pub(crate) fn new(base: usize) -> LaneTarget {
        LaneTarget {
            target: AtomicUsize::new(base),
            dry_seen: AtomicU64::new(0),
            pushed_seen: AtomicU64::new(0),
            armed: AtomicBool::new(false),
        }
    }

    /// The lane's current target.
    pub(crate) fn target(&self) -> usize {
        // Relaxed: consumer state, a hint (module doc, "Concurrency").
        self.target.load(Relaxed)
    }
}

/// The target after the lane ran dry: the max watermark, whatever it was
/// (a lane's target never exceeds it).
pub(crate) fn grown(target: usize, max: usize) -> usize {
    target.max(max)
}

/// How many of a lane's cached pages one refill may allocate when
/// `low_lanes` of the pool's `lanes` are below their low marks: the
/// refill's budget, `lanes x alloc_watermark`, shared equally by the low
/// lanes, and never less than `alloc_watermark` (module doc, "Allocate a
/// lane's share of the budget").
pub(crate) fn alloc_cap(alloc_watermark: usize, lanes: usize, low_lanes: usize) -> usize {
    let budget = lanes.saturating_mul(alloc_watermark);
    (budget / low_lanes.max(1)).max(alloc_watermark)
}

/// The target after an idle interval: halved, at least `base`.
pub(crate) fn relaxed(target: usize, base: usize) -> usize {
    (target / 2).max(base)
}

/// The low mark for `target`: the configured low watermark at the base
/// target, plus half of what the target grew by. Always in
/// `low_watermark..=target` for a target of at least the base (`Config`
/// guarantees `low_watermark <= high_watermark`).
pub(crate) fn low_mark(config: &Config, target: usize) -> usize {
    config.low_watermark + target.saturating_sub(config.high_watermark) / 2
}

impl Pool {
    /// Sets a lane's target and the low mark that goes with it.
    fn set_target(&self, lane: &Lane, state: &LaneTarget, target: usize) {
        // Relaxed: consumer state (module doc, "Concurrency").
        state.target.store(target, Relaxed);
        lane.set_low_mark(low_mark(&self.config, target));
    }

    /// The refill's look at a lane: grows its target if it ran dry since
    /// the last look and was armed; returns the target to fill up to.
    pub(crate) fn adapt(&self, lane: &Lane, state: &LaneTarget) -> usize {
        let target = state.target();
        let dry = lane.dry_events();
        // Relaxed: consumer state (module doc, "Concurrency").
        if state.dry_seen.swap(dry, Relaxed) == dry || !state.armed.swap(false, Relaxed) {
            return target;
        }
        let grown = grown(target, self.config.max_watermark);
        if grown != target {
            self.set_target(lane, state, grown);
        }
        grown
    }

    /// Notes that a lane's cache reached its target: running dry from now
    /// on grows it.
    pub(crate) fn arm(state: &LaneTarget) {
        // Relaxed: consumer state (module doc, "Concurrency").
        if !state.armed.load(Relaxed) {
            state.armed.store(true, Relaxed);
        }
    }

    /// Puts every lane back at the base target and disarms it (`shrink`:
    /// the caches are being emptied on purpose).
    pub(crate) fn reset_targets(&self) {
        for (lane, state) in self.lanes.iter().zip(self.targets.iter()) {
            // Relaxed: consumer state (module doc, "Concurrency").
            state.armed.store(false, Relaxed);
            state.dry_seen.store(lane.dry_events(), Relaxed);
            self.set_target(lane, state, self.config.high_watermark);
        }
    }

    /// Shrinks the lanes that stored no record since the previous call
    /// toward the base target (one halving step each) and frees their
    /// cached pages above the new target; returns the pages freed. Consumer
    /// side, ordinary context (it frees). Call it periodically: the service
    /// calls it once per drain interval, so an idle lane is back at the base
    /// in a few intervals (see the module doc).
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{BusyLanes, Config, Kind, PageList, Pool, USABLE_RECORDS};
    /// let mut config = Config::default();
    /// (config.low_watermark, config.high_watermark, config.lanes) = (1, 1, Some(1));
    /// let pool = Pool::new(config).unwrap();
    /// pool.refill().unwrap();
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// // Fill the open page and the one cached page: the lane runs dry.
    /// for _ in 0..2 * (USABLE_RECORDS - 2) + 1 {
    ///     if pool.push(NonNull::<u64>::dangling().cast(), kind).is_err() {
    ///         pool.refill().unwrap(); // it ran dry after a fill: grows
    ///     }
    /// }
    /// assert!(pool.stats().cache_target > 1);
    /// let mut pages = pool.take_sealed();
    /// pool.seal_open(&mut pages, BusyLanes::Wait);
    /// pool.recycle(pages); // (after a grace period and the frees)
    /// pool.relax(); // the lane was in use since the last call: kept
    /// while pool.stats().cache_target > 1 {
    ///     pool.relax(); // idle now: halved each call, down to the base
    /// }
    /// assert!(pool.stats().pages_cached <= 1);
    /// ```
    pub fn relax(&self) -> usize {
        let base = self.config.high_watermark;
        let mut freed = 0;
        for (lane, state) in self.lanes.iter().zip(self.targets.iter()) {
            let pushed = lane.pushed();
            // Relaxed: consumer state (module doc, "Concurrency").
            if state.pushed_seen.swap(pushed, Relaxed) != pushed {
                continue; // in use since the last call
            }
            let target = state.target();
            let relaxed = relaxed(target, base);
            if relaxed != target {
                self.set_target(lane, state, relaxed);
            }
            while lane.cached() > relaxed {
                let Some(page) = lane.take_cached() else {
                    break;
                };
                self.free_page(page);
                freed += 1;
            }
        }
        freed + self.free_pages(self.reserve.halve_if_unused())
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::test_support::{kind, pool_growing, pool_growing_past, record};
    use crate::{BusyLanes, CACHE_CAPACITY, USABLE_RECORDS};

    #[test]
    fn the_policy_grows_to_the_max_shares_the_budget_and_scales_the_low_mark() {
        // Straight to the max.
        assert_eq!(grown(16, 256), 256);
        assert_eq!(grown(128, 256), 256);
        assert_eq!(grown(256, 256), 256);
        assert_eq!(grown(usize::MAX, usize::MAX), usize::MAX);
        // The refill's budget, lanes x alloc watermark, shared by the low
        // lanes, at least the alloc watermark each.
        assert_eq!(alloc_cap(64, 8, 8), 64);
        assert_eq!(alloc_cap(64, 8, 2), 256);
        assert_eq!(alloc_cap(64, 8, 1), 512);
        assert_eq!(alloc_cap(64, 8, 0), 512);
        assert_eq!(alloc_cap(64, 8, 3), 170);
        assert_eq!(alloc_cap(64, 1, 1), 64);
        assert_eq!(alloc_cap(usize::MAX, 2, 1), usize::MAX);
        assert_eq!(relaxed(128, 16), 64);
        assert_eq!(relaxed(20, 16), 16);
        assert_eq!(relaxed(16, 16), 16);
        let config = Config {
            low_watermark: 5,
            high_watermark: 16,
            max_watermark: 128,
            alloc_watermark: 128,
            max_reserve: 0,
            slab_pages: 1,
            lanes: Some(1),
        };
        assert_eq!(low_mark(&config, 16), 5);
        assert_eq!(low_mark(&config, 32), 13);
        assert_eq!(low_mark(&config, 128), 61);
        // Always within low..=target.
        for target in 16..=128 {
            let low = low_mark(&config, target);
            assert!((5..=target).contains(&low), "{target}: {low}");
        }
    }

    /// Pushes into lane 0 of `pool` until a push finds it dry (the open page
    /// and every cached page used); returns the records stored.
    fn run_dry(pool: &Pool, first: usize) -> usize {
        let mut i = first;
        while pool.push(record(i), kind(0)).is_ok() {
            i += 1;
        }
        i - first
    }

    /// Seals and recycles everything (as if the records were freed).
    fn give_back(pool: &Pool) {
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Wait);
        pool.recycle(pages);
    }

    #[test]
    fn a_lane_that_runs_dry_after_a_fill_grows_to_the_max_once() {
        if CACHE_CAPACITY < 8 {
            return; // Miri: the cache holds 2 pages
        }
        // One lane: base 2, alloc watermark 4 (the whole budget), max 8.
        let pool = pool_growing_past(1, 1, 2, 4, 8);
        let target = |pool: &Pool| pool.targets[0].target();
        // A new lane runs dry before any fill: no growth.
        assert!(pool.push(record(0), kind(0)).is_err());
        assert_eq!(pool.refill(), Ok(2));
        assert_eq!(target(&pool), 2);
        // Filled to 2, then dry: the next refill grows it straight to the
        // max, allocates up to the alloc watermark (the only lane's share
        // of the budget) and, the reserve being empty, stops there (armed).
        let stored = run_dry(&pool, 0);
        assert_eq!(stored, 2 * (USABLE_RECORDS - 2));
        assert_eq!(pool.refill(), Ok(4));
        assert_eq!(target(&pool), 8);
        assert_eq!(pool.lanes[0].low_mark(), 4); // 1 + (8 - 2) / 2
        // Dry twice before the next refill: at the max already, no growth;
        // the refill allocates its 4 again.
        run_dry(&pool, 0);
        assert!(pool.push(record(0), kind(0)).is_err());
        assert_eq!(pool.refill(), Ok(4));
        assert_eq!(target(&pool), 8);
        // Pages back from reclaim fill the lane to its target; the rest
        // wait in the reserve.
        give_back(&pool);
        let stats = pool.stats();
        assert_eq!((stats.pages_cached, stats.pages_reserved), (8, 2));
        // Dry again: the refill takes the two reserved pages first, then
        // allocates up to the alloc watermark, and with the reserve empty
        // stops there.
        run_dry(&pool, 0);
        assert_eq!(pool.refill(), Ok(4));
        assert_eq!(pool.stats().reserve_reuses, 2);
        assert_eq!(target(&pool), 8);
        assert_eq!(pool.stats().cache_target, 8);
        // A refill that finds no dry event leaves the target alone.
        assert_eq!(pool.refill(), Ok(0));
        assert_eq!(target(&pool), 8);
        give_back(&pool);
    }

    #[test]
    fn the_low_lanes_share_the_refills_allocation_budget() {
        if CACHE_CAPACITY < 8 {
            return;
        }
        // Two lanes: base 2, alloc watermark 4 (a budget of 8 per refill),
        // max 8. Both filled to the base: armed.
        let pool = pool_growing_past(2, 1, 2, 4, 8);
        assert_eq!(pool.refill(), Ok(4));
        // Empties lane `i`'s cache and counts a dry event on it, as a push
        // that found it dry would.
        let run_dry_lane = |i: usize| {
            while let Some(page) = pool.lanes[i].take_cached() {
                pool.free_page(page);
            }
            pool.lanes[i].count_dry();
        };
        // Lane 0 alone runs dry: grown to 8, and as the only low lane it
        // may allocate the whole budget, up to its target.
        run_dry_lane(0);
        assert_eq!(pool.refill(), Ok(8));
        assert_eq!((pool.lanes[0].cached(), pool.lanes[1].cached()), (8, 2));
        assert_eq!(pool.targets[0].target(), 8);
        // Both dry: each low lane gets half of the budget, the alloc
        // watermark, and (the reserve being empty) no more.
        run_dry_lane(0);
        run_dry_lane(1);
        assert_eq!(pool.refill(), Ok(8));
        assert_eq!((pool.lanes[0].cached(), pool.lanes[1].cached()), (4, 4));
        assert_eq!(pool.targets[1].target(), 8);
        give_back(&pool);
    }

    #[test]
    fn relax_halves_idle_lanes_down_to_the_base_and_frees_their_extra_pages() {
        if CACHE_CAPACITY < 8 {
            return;
        }
        let pool = pool_growing(1, 1, 2, 8);
        pool.refill().unwrap();
        for _ in 0..2 {
            run_dry(&pool, 0);
            pool.refill().unwrap();
        }
        assert_eq!(pool.targets[0].target(), 8);
        give_back(&pool); // recycles into the cache, up to the target
        assert_eq!(pool.stats().pages_cached, 8);
        // The lane stored records since the last relax (none so far): kept.
        assert_eq!(pool.relax(), 0);
        assert_eq!(pool.targets[0].target(), 8);
        // Idle since: halved, the pages above the new target freed.
        assert_eq!(pool.relax(), 4);
        assert_eq!(pool.targets[0].target(), 4);
        assert_eq!(pool.lanes[0].low_mark(), 2);
        // Used in between: kept.
        pool.push(record(0), kind(0)).unwrap();
        assert_eq!(pool.relax(), 0);
        assert_eq!(pool.targets[0].target(), 4);
        // Idle: down to the base, and no further.
        assert_eq!(pool.relax(), 1); // 3 cached (one became the open page) -> 2
        assert_eq!(pool.targets[0].target(), 2);
        assert_eq!(pool.relax(), 0);
        assert_eq!(pool.targets[0].target(), 2);
        assert_eq!(pool.lanes[0].low_mark(), 1);
        let stats = pool.stats();
        assert_eq!((stats.cache_target, stats.pages_cached), (2, 2));
        give_back(&pool);
    }

    #[test]
    fn shrink_resets_targets_and_a_lane_it_emptied_does_not_grow() {
        if CACHE_CAPACITY < 8 {
            return;
        }
        let pool = pool_growing(1, 1, 2, 8);
        pool.refill().unwrap();
        run_dry(&pool, 0);
        pool.refill().unwrap();
        assert_eq!(pool.targets[0].target(), 8);
        give_back(&pool);
        assert!(pool.shrink() > 0);
        assert_eq!(pool.targets[0].target(), 2);
        // Dry because shrink emptied the cache: the refill does not grow it.
        run_dry(&pool, 0);
        assert_eq!(pool.refill(), Ok(2));
        assert_eq!(pool.targets[0].target(), 2);
        give_back(&pool);
    }

    #[test]
    fn recycle_fills_a_grown_lane_to_its_target_and_frees_the_rest() {
        if CACHE_CAPACITY < 8 {
            return;
        }
        let pool = pool_growing(1, 1, 2, 4);
        pool.refill().unwrap();
        run_dry(&pool, 0);
        pool.refill().unwrap(); // target 4, 4 cached
        // Three of them become open pages, in turn.
        for i in 0..3 * (USABLE_RECORDS - 2) {
            pool.push(record(i), kind(0)).unwrap();
        }
        assert_eq!(pool.stats().pages_cached, 1);
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Wait);
        for _ in 0..6 {
            // SAFETY: a fresh page is ours.
            unsafe { pages.push(pool.alloc_page().unwrap()) };
        }
        pool.recycle(pages);
        let after = pool.stats();
        assert_eq!(after.pages_cached, 4, "{after:?}");
        assert_eq!(after.pages_live, 4, "the rest were freed: {after:?}");
        assert_eq!(after.pages_in_flight, 0);
    }
}
