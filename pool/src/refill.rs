//! The supply of empty pages, consumer side: [`Pool::refill`] allocates pages
//! into the lanes' caches, up to each lane's target (growing the targets of
//! lanes that ran dry, `watermark.rs`), [`Pool::recycle`] puts drained pages
//! back up to the targets (or frees them), [`Pool::shrink`] frees the cached
//! ones; plus the page allocator they share, with its fault injection.
//!
//! # Ownership
//! A page this file allocates, or takes from a `PageList` it was given, is
//! the caller's until a CAS from null puts it into a cache entry
//! (`Lane::put_cached`, Release), after which the producer that swaps it out
//! owns it; `shrink` takes cached pages back with the same swap a producer
//! uses (`Lane::take_cached`). A page that finds no free entry is freed by
//! its owner. Nothing here touches a lane's open page, so no lane is ever
//! owned (`BUSY`) by the consumer here.

use crate::page::Page;
use crate::page_list::PageList;
use crate::slab;
use crate::stats::bump;
use crate::sync::{AtomicBool, Ordering::Relaxed};
use crate::watermark::alloc_cap;
use crate::{AllocError, Pool};
use core::ptr::NonNull;

/// Clears the `dry` hint when dropped: on every way out of a refill, even
/// one that put nothing, so a stale hint lives at most until the refill its
/// `NoPage` asked for.
struct ClearDry<'a>(&'a AtomicBool);

impl Drop for ClearDry<'_> {
    fn drop(&mut self) {
        clear_dry(self.0);
    }
}

/// Clears the `dry` hint, once a page is in place, so a push that sees it
/// clear finds one. As soon as the first page is in, not at the end of the
/// refill: a refill of hundreds of pages by a worker that shares its CPU
/// with the producers takes milliseconds, and every push in between failed
/// at the hint while pages sat in the caches (docs/BENCHMARKS.md, "The dry
/// hint cleared at the first page").
fn clear_dry(dry: &AtomicBool) {
    // Relaxed: a hint; the cache entries' Release CAS publishes the pages.
    // The load first: every push reads this line, and pages come back
    // thousands of times a second, so an unconditional store took the line
    // from every producer each time.
    if dry.load(Relaxed) {
        dry.store(false, Relaxed);
    }
}

impl Pool {
    /// True if some lane's cache is below its low mark (the low watermark,
    /// raised with the lane's target: `watermark.rs`).
    ///
    /// ```
    /// use kvfree_rcu_pool::Pool;
    /// let pool = Pool::default();
    /// assert!(pool.needs_refill()); // a new pool has empty caches
    /// pool.refill().unwrap();
    /// assert!(!pool.needs_refill());
    /// ```
    pub fn needs_refill(&self) -> bool {
        self.lanes.iter().any(|lane| lane.is_low())
    }

    /// Fills each lane whose cache is below its low mark up to its target
    /// with newly allocated pages (consumer side, ordinary context: this
    /// allocates). First, a lane that ran dry since the last refill, after
    /// being filled, has its target grown to
    /// [`Config::max_watermark`](crate::Config::max_watermark) (see
    /// `watermark.rs`). Filling to the target leaves room for a flood
    /// between two refills; the low mark is when to ask. Pages come from
    /// the reserve first (`reserve.rs`), then the allocator, which fills a
    /// lane only up to its share of the refill's allocation budget
    /// (`lanes x alloc_watermark`, shared by the lanes below their low
    /// marks, at least the alloc watermark each: `watermark.rs`); past it a
    /// lane gets reserved pages only. Returns the
    /// number of pages put into the caches, or [`AllocError`] at the first
    /// allocation failure (pages put before it are kept); never panics.
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let mut config = Config::default();
    /// (config.low_watermark, config.high_watermark, config.lanes) = (1, 2, Some(2));
    /// let pool = Pool::new(config).unwrap();
    /// assert_eq!(pool.refill(), Ok(4)); // 2 lanes, filled to their target (the high watermark)
    /// assert_eq!(pool.refill(), Ok(0)); // nothing under its low mark
    /// ```
    pub fn refill(&self) -> Result<usize, AllocError> {
        // Cleared on every call, even one with nothing to allocate, so a
        // stale hint lives at most until the refill its `NoPage` asked for.
        let _clear_dry = ClearDry(&self.dry);
        let low_lanes = self.lanes.iter().filter(|lane| lane.is_low()).count();
        let alloc_cap = alloc_cap(self.config.alloc_watermark, self.lanes.len(), low_lanes);
        self.fill_lanes(alloc_cap, |cached| {
            if cached < alloc_cap {
                self.new_page().map(Some)
            } else {
                // Past the lane's share of the budget: reserved pages only.
                Ok(self.take_reserved())
            }
        })
    }

    /// [`refill`](Self::refill) from the reserve only: tops up the lanes
    /// below their low marks with reserved pages, and never allocates
    /// (ordinary context: the reserve is try-locked). For a consumer busy
    /// with something else, between two steps of it: the service's reaping
    /// threads call it between the bites of a long batch, when the lanes
    /// ran dry while the reserve held pages (docs/BENCHMARKS.md, "Topping
    /// up from the reserve while reaping"). Returns the pages put.
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let mut config = Config::default();
    /// (config.low_watermark, config.high_watermark, config.lanes) = (1, 2, Some(1));
    /// let pool = Pool::new(config).unwrap();
    /// assert_eq!(pool.refill_from_reserve(), 0); // an empty reserve: nothing, no allocation
    /// assert_eq!(pool.stats().pages_allocated, 0);
    /// ```
    pub fn refill_from_reserve(&self) -> usize {
        let reserved = |_cached| Ok::<_, core::convert::Infallible>(self.take_reserved());
        match self.fill_lanes(self.config.alloc_watermark, reserved) {
            Ok(put) => put,
            Err(never) => match never {},
        }
    }

    /// Fills each lane below its low mark up to its target (growing the
    /// targets of lanes that ran dry) with pages from `next_page`, which is
    /// given the lane's cached count and may have none for it (`Ok(None)`:
    /// on to the next lane); stops at its first error. A lane filled to its
    /// target, or to `armed_at`, is armed to grow. Returns the pages put.
    fn fill_lanes<E>(
        &self,
        armed_at: usize,
        mut next_page: impl FnMut(usize) -> Result<Option<NonNull<Page>>, E>,
    ) -> Result<usize, E> {
        let mut put = 0;
        for (lane, state) in self.lanes.iter().zip(self.targets.iter()) {
            let target = self.adapt(lane, state);
            let mut cached = lane.cached();
            if cached >= lane.low_mark() {
                continue;
            }
            let mut from = 0;
            while cached < target {
                let Some(page) = next_page(cached)? else {
                    break;
                };
                match lane.put_cached(page, from) {
                    Ok(next) => {
                        from = next;
                        clear_dry(&self.dry);
                    }
                    Err(page) => {
                        // Another consumer filled the cache meanwhile: it
                        // counts as filled.
                        self.spare_page(page);
                        cached = target;
                        break;
                    }
                }
                put += 1;
                cached += 1;
            }
            if cached >= target.min(armed_at) {
                Pool::arm(state);
            }
        }
        Ok(put)
    }

    /// Takes drained pages back: resets each, caches them up to each lane's
    /// target, neediest lane first, frees the rest. Records still in the
    /// pages are forgotten (leaked); drain first.
    ///
    /// Neediest first, a page at a time: under a flood pages come back a
    /// few at a time (a chunk as soon as its records are freed), and a
    /// recycle that filled the lanes in index order gave every page to the
    /// first lane while the others stayed dry, and their producers fell
    /// back (or swapped the full lane's line, owned by another CPU).
    ///
    /// ```
    /// use kvfree_rcu_pool::{BusyLanes, PageList, Pool};
    /// let pool = Pool::default();
    /// let mut drained = PageList::new();
    /// pool.seal_open(&mut drained, BusyLanes::Wait);
    /// // ... free every record of `drained` after a grace period, then:
    /// pool.recycle(drained);
    /// ```
    pub fn recycle(&self, pages: PageList) {
        let mut pages = pages;
        while !pages.is_empty() {
            let Some((index, missing)) = self.neediest_lane() else {
                break;
            };
            let Some(page) = pages.pop() else { break };
            // SAFETY: `pop` made us the owner of the page.
            unsafe { Page::reset(page) };
            let lane = &self.lanes[index];
            match lane.put_cached(page, 0) {
                Ok(_) => {
                    if missing == 1 {
                        // Filled to its target: a dry event from now on
                        // grows it (`watermark.rs`).
                        Pool::arm(&self.targets[index]);
                    }
                }
                // Full after all (another consumer filled it meanwhile):
                // the next look sees its count.
                Err(page) => self.spare_page(page),
            }
        }
        clear_dry(&self.dry);
        // Past every lane's target: into the reserve while it has room
        // (`reserve.rs`), freed past that.
        let mut spare = PageList::new();
        while let Some(page) = pages.pop() {
            // SAFETY: `pop` made us the owner of the page; the list takes it.
            unsafe {
                Page::reset(page);
                spare.push(page);
            }
        }
        self.reserve.keep(&mut spare, self.config.max_reserve);
        self.free_pages(spare);
    }

    /// The lane whose cache lacks the most pages to its target, and how
    /// many; `None` when every cache is at its target. One load per lane
    /// (counts are hints, see `lane.rs`).
    fn neediest_lane(&self) -> Option<(usize, usize)> {
        let mut neediest = None;
        let mut most = 0;
        for (index, (lane, state)) in self.lanes.iter().zip(self.targets.iter()).enumerate() {
            let missing = state.target().saturating_sub(lane.cached());
            if missing > most {
                most = missing;
                neediest = Some((index, missing));
            }
        }
        neediest
    }

    /// Frees every cached page and puts every lane's target back at the
    /// base (memory pressure); returns how many pages it freed. Pushes then
    /// fail with [`NoPage`](crate::NoPage) once their open page is full,
    /// until the next refill; running dry this way does not grow a target.
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let mut config = Config::default();
    /// (config.low_watermark, config.high_watermark, config.lanes) = (1, 2, Some(2));
    /// config.slab_pages = 4; // the 4 pages the caches take, in one allocation
    /// let pool = Pool::new(config).unwrap();
    /// pool.refill().unwrap();
    /// assert_eq!(pool.shrink(), 4);
    /// assert_eq!(pool.stats().pages_cached, 0);
    /// ```
    pub fn shrink(&self) -> usize {
        self.reset_targets();
        let mut freed = 0;
        for lane in self.lanes.iter() {
            while let Some(page) = lane.take_cached() {
                self.free_page(page);
                freed += 1;
            }
        }
        freed + self.free_pages(self.reserve.take_all())
    }

    /// Test hook (hidden, outside the API's stability promise: crate docs):
    /// makes the next `n` page allocations fail (fault injection for tests).
    ///
    /// ```
    /// use kvfree_rcu_pool::{AllocError, Pool};
    /// let pool = Pool::default();
    /// pool.inject_alloc_failures(1);
    /// assert_eq!(pool.refill(), Err(AllocError));
    /// assert_eq!(pool.stats().alloc_failures, 1);
    /// assert!(pool.refill().is_ok()); // only the next one failed
    /// ```
    #[doc(hidden)]
    pub fn inject_alloc_failures(&self, n: usize) {
        // Relaxed: a test knob, ordered with nothing.
        self.failures_to_inject.store(n, Relaxed);
    }

    /// Allocates an empty page, unless a failure is injected: a new slab
    /// of [`Config::slab_pages`](crate::Config::slab_pages) (`slab.rs`),
    /// all of whose pages count as allocated. The caller gets one; the
    /// rest go into the reserve, past its bound if need be, for the next
    /// pages a refill or an inline push needs (freed at once only if the
    /// reserve is busy this instant: they are released, and the slab goes
    /// with its last page). If the slab cannot be allocated, a slab of one
    /// page is tried before the failure is reported.
    pub(crate) fn alloc_page(&self) -> Result<NonNull<Page>, AllocError> {
        // Relaxed: a test knob; the CAS only keeps the count exact.
        let injected = self
            .failures_to_inject
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        let slab_pages = self.config.slab_pages;
        let slab = if injected {
            None
        } else {
            slab::alloc(slab_pages).or_else(|| if slab_pages > 1 { slab::alloc(1) } else { None })
        };
        let Some(mut pages) = slab else {
            bump(&self.counters.alloc_failures);
            return Err(AllocError);
        };
        // Relaxed: a statistic.
        self.counters
            .pages_allocated
            .fetch_add(pages.pages() as u64, Relaxed);
        let page = pages.pop().expect("a slab holds at least one page");
        self.reserve.keep(&mut pages, usize::MAX);
        self.free_pages(pages);
        Ok(page)
    }

    /// An empty page for a cache or an inline push: from the reserve if it
    /// has one (`reserve.rs`), else newly allocated.
    pub(crate) fn new_page(&self) -> Result<NonNull<Page>, AllocError> {
        match self.take_reserved() {
            Some(page) => Ok(page),
            None => self.alloc_page(),
        }
    }

    /// A page from the reserve, counted, if it has one and is not busy.
    fn take_reserved(&self) -> Option<NonNull<Page>> {
        let page = self.reserve.take()?;
        bump(&self.counters.reserve_reuses);
        Some(page)
    }

    /// An empty page we own and have no use for: kept in the reserve if it
    /// has room, else freed.
    pub(crate) fn spare_page(&self, page: NonNull<Page>) {
        let mut spare = PageList::new();
        // SAFETY: we own the page; the list takes it.
        unsafe { spare.push(page) };
        self.reserve.keep(&mut spare, self.config.max_reserve);
        self.free_pages(spare);
    }

    /// Frees every page of a list, counting them; returns how many.
    pub(crate) fn free_pages(&self, mut pages: PageList) -> usize {
        let mut freed = 0;
        while let Some(page) = pages.pop() {
            self.free_page(page);
            freed += 1;
        }
        freed
    }

    /// Frees a page we own, counting it.
    pub(crate) fn free_page(&self, page: NonNull<Page>) {
        // SAFETY: every caller owns the page (it came from `alloc_page`, a
        // cache swap, or a list we own) and drops it after this call.
        unsafe { Page::free(page) };
        bump(&self.counters.pages_freed);
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::test_support::pool;

    #[test]
    fn refill_reports_allocation_failure() {
        let pool = pool(2, 2, 2);
        pool.inject_alloc_failures(1);
        assert_eq!(pool.refill(), Err(AllocError));
        assert_eq!(pool.stats().alloc_failures, 1);
        assert!(pool.needs_refill());
        // A refill stops at its first failure: each call consumes one.
        pool.inject_alloc_failures(2);
        assert_eq!(pool.refill(), Err(AllocError));
        assert_eq!(pool.refill(), Err(AllocError));
        assert_eq!(pool.refill(), Ok(4));
        assert!(!pool.needs_refill());
        let stats = pool.stats();
        assert_eq!(
            (
                stats.pages_allocated,
                stats.pages_cached,
                stats.alloc_failures
            ),
            (4, 4, 3)
        );
    }

    /// Pages coming back a few at a time go to the lane that lacks the
    /// most, not all to the first lane (which left the others dry).
    #[test]
    fn recycle_serves_the_neediest_lane_first() {
        let pool = pool(2, 1, 2);
        let mut pages = PageList::new();
        for _ in 0..2 {
            // SAFETY: a new page, owned by the list from now on.
            unsafe { pages.push(pool.alloc_page().unwrap()) };
        }
        pool.recycle(pages);
        // One each, not two in lane 0.
        assert_eq!((pool.lanes[0].cached(), pool.lanes[1].cached()), (1, 1));
        let mut more = PageList::new();
        for _ in 0..3 {
            // SAFETY: as above.
            unsafe { more.push(pool.alloc_page().unwrap()) };
        }
        pool.recycle(more);
        // Both at their target of 2; the third page was freed.
        assert_eq!((pool.lanes[0].cached(), pool.lanes[1].cached()), (2, 2));
        let stats = pool.stats();
        assert_eq!((stats.pages_allocated, stats.pages_freed), (5, 1));
    }

    #[test]
    fn a_slabs_other_pages_wait_in_the_reserve_past_its_bound() {
        let pool = Pool::new(crate::Config {
            max_reserve: 1,
            slab_pages: 4,
            ..crate::test_support::pool(1, 1, 1).config().clone()
        })
        .unwrap();
        let first = pool.alloc_page().unwrap();
        let stats = pool.stats();
        // One allocation: four pages, three of them reserved though the
        // reserve's bound is one.
        assert_eq!((stats.pages_allocated, stats.pages_reserved), (4, 3));
        // The next pages come from the reserve, with no allocation.
        pool.inject_alloc_failures(1);
        let mut rest = PageList::new();
        for _ in 0..3 {
            // SAFETY: a page taken from the reserve is ours; the list takes it.
            unsafe { rest.push(pool.new_page().unwrap()) };
        }
        assert_eq!(pool.stats().pages_allocated, 4);
        assert_eq!(pool.new_page(), Err(AllocError));
        // Recycled past the lanes' targets and the reserve's bound, the
        // pages are freed one by one; the slab goes with the last (Miri:
        // no leak, no use after free).
        // SAFETY: the first page is ours; the list takes it.
        unsafe { rest.push(first) };
        pool.recycle(rest);
        assert_eq!(pool.shrink(), 2);
        assert_eq!(pool.stats().pages_live, 0);
    }

    #[test]
    fn recycle_keeps_up_to_high_and_shrink_frees_all() {
        let pool = pool(2, 1, 1);
        let mut pages = PageList::new();
        for _ in 0..3 {
            // SAFETY: a fresh page is ours.
            unsafe { pages.push(pool.alloc_page().unwrap()) };
        }
        pool.recycle(pages);
        let stats = pool.stats();
        assert_eq!(
            (stats.pages_cached, stats.pages_freed, stats.pages_live),
            (2, 1, 2)
        );
        assert_eq!(pool.shrink(), 2);
        assert_eq!(pool.stats().pages_live, 0);
    }
}
