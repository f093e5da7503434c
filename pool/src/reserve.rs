//! The reserve: empty pages kept past the lanes' caches, for the next page
//! a refill or an inline push would otherwise allocate.
//!
//! # Why
//! Under a flood, pages come back in bursts: a reaped batch returns
//! thousands of pages at once ([`Pool::recycle`]), the lanes' caches take
//! their targets' worth, and the rest used to be freed, while the same
//! flood allocated pages again moments later (the worker's refills,
//! `push_with_new_page` on every `kvfree_rcu_mightsleep` that found its
//! lane dry). In the head-less 8-thread flood three pages in four were
//! fresh allocations: 24 000 of the 31 000 the flood filled, each a
//! 4096-aligned chunk the producers' glibc arenas grew and trimmed for
//! (tens of thousands of `mprotect`/`madvise` calls, a third of the flood's
//! system time, and hundreds of MiB of fragmented heap). Kept here instead,
//! the same pages go round again (docs/BENCHMARKS.md, "A reserve of empty
//! pages").
//!
//! # Bound
//! At most [`Config::max_reserve`](crate::Config::max_reserve) pages; past
//! that, `recycle` frees as before. The one exception is the rest of a
//! slab just allocated (`slab.rs`): a page allocated brings the other
//! [`Config::slab_pages`](crate::Config::slab_pages) - 1 pages of its
//! slab here whatever the count, since freeing them at once would keep
//! the slab allocated for one page. The reserve holds only pages the pool's
//! traffic just had in flight, so it never raises the peak page memory a
//! flood reaches, only how long it is held: [`Pool::relax`] (at most once
//! per 100 ms in the service) halves the reserve when no page was
//! taken from it since the previous call, so an idle pool is back to none
//! after log2(max) idle intervals, and [`Pool::shrink`] and `Drop` free it
//! at once.
//!
//! # Concurrency
//! Only ordinary-context code touches the reserve (refill, recycle, relax,
//! shrink, and `push_with_new_page`, whose caller may allocate); never a
//! push. Its pages sit in a [`PageList`] behind a mutex that is only ever
//! *try*-locked: whoever finds it held allocates (or frees) as it did
//! before the reserve existed, so nobody waits for anybody, and
//! `push_with_new_page` stays non-blocking. Each page is in the list or
//! owned by exactly one caller, moved under the lock. The count and the
//! taken flag beside it are `Relaxed` hints for statistics and `relax`.
//!
//! A `fork()` while another thread holds the lock (for the few
//! instructions of a list operation) leaves it held in the child, where
//! that thread does not exist: the child's try-locks fail, it allocates
//! and frees as if it had no reserve, and the reserved pages are leaked in
//! the child only, never freed twice.

use crate::page::Page;
use crate::page_list::PageList;
use crate::sync::{AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering::Relaxed, TryLockError};
use core::ptr::NonNull;

/// Empty pages kept for reuse (see the module doc).
pub(crate) struct Reserve {
    pages: Mutex<PageList>,
    /// Pages in the list: a hint (statistics, and `keep`'s quick check).
    count: AtomicUsize,
    /// A page was taken since the last `halve_if_unused`.
    taken: AtomicBool,
}

impl Reserve {
    pub(crate) fn new() -> Reserve {
        Reserve {
            pages: Mutex::new(PageList::new()),
            count: AtomicUsize::new(0),
            taken: AtomicBool::new(false),
        }
    }

    /// The list, or `None` at once if someone holds it. A poisoned lock is
    /// taken anyway: no code panics while holding it, and a list is valid
    /// between any two of its operations.
    fn try_lock(&self) -> Option<MutexGuard<'_, PageList>> {
        match self.pages.try_lock() {
            Ok(pages) => Some(pages),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// Takes one empty page, or `None` if the reserve is empty or busy.
    pub(crate) fn take(&self) -> Option<NonNull<Page>> {
        // Relaxed: a hint; the list under the lock decides.
        if self.count.load(Relaxed) == 0 {
            return None;
        }
        let mut pages = self.try_lock()?;
        let page = pages.pop()?;
        // Relaxed: hints (module doc, "Concurrency").
        self.count.store(pages.pages(), Relaxed);
        drop(pages);
        if !self.taken.load(Relaxed) {
            self.taken.store(true, Relaxed);
        }
        Some(page)
    }

    /// Moves pages from the front of `spare` (empty pages, already reset,
    /// each owned by the list) into the reserve while it has fewer than
    /// `max`; what does not fit stays in `spare`. Does nothing if the
    /// reserve is busy.
    pub(crate) fn keep(&self, spare: &mut PageList, max: usize) {
        // Relaxed: a hint; the list under the lock decides.
        if spare.is_empty() || self.count.load(Relaxed) >= max {
            return;
        }
        let Some(mut pages) = self.try_lock() else {
            return;
        };
        let room = max.saturating_sub(pages.pages());
        pages.append(spare.split_front(room));
        // Relaxed: a hint (module doc, "Concurrency").
        self.count.store(pages.pages(), Relaxed);
    }

    /// `relax`'s step: if no page was taken since the last call, takes half
    /// of the reserve (rounded up) for the caller to free. Nothing if the
    /// reserve is busy (the next call looks again).
    pub(crate) fn halve_if_unused(&self) -> PageList {
        // Relaxed: a hint (module doc, "Concurrency").
        if self.taken.swap(false, Relaxed) || self.count.load(Relaxed) == 0 {
            return PageList::new();
        }
        let Some(mut pages) = self.try_lock() else {
            return PageList::new();
        };
        let half = pages.pages().div_ceil(2);
        let unused = pages.split_front(half);
        // Relaxed: a hint (module doc, "Concurrency").
        self.count.store(pages.pages(), Relaxed);
        unused
    }

    /// Takes every page, for the caller to free (`shrink`); nothing if the
    /// reserve is busy this instant.
    pub(crate) fn take_all(&self) -> PageList {
        let Some(mut pages) = self.try_lock() else {
            return PageList::new();
        };
        // Relaxed: a hint (module doc, "Concurrency").
        self.count.store(0, Relaxed);
        core::mem::take(&mut *pages)
    }

    /// Pages in the reserve (a hint).
    pub(crate) fn pages(&self) -> usize {
        // Relaxed: a statistic.
        self.count.load(Relaxed)
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        // The list frees its pages as it drops.
        drop(self.take_all());
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use crate::PageList;
    use crate::test_support::{kind, pool_with_reserve, record};

    /// `n` empty pages, as drained pages come back to `recycle`.
    fn empty_pages(pool: &crate::Pool, n: usize) -> PageList {
        let mut pages = PageList::new();
        for _ in 0..n {
            // SAFETY: a fresh page, owned by the list.
            unsafe { pages.push(pool.alloc_page().unwrap()) };
        }
        pages
    }

    #[test]
    fn recycle_keeps_pages_past_the_targets_up_to_the_cap() {
        let pool = pool_with_reserve(2, 2, 3);
        pool.recycle(empty_pages(&pool, 9)); // 4 cached, 3 kept, 2 freed
        let stats = pool.stats();
        assert_eq!(
            (stats.pages_cached, stats.pages_reserved, stats.pages_freed),
            (4, 3, 2)
        );
        assert_eq!(
            stats.pages_live,
            stats.pages_cached + stats.pages_reserved + stats.pages_in_flight
        );
    }

    #[test]
    fn refills_and_inline_pushes_take_reserved_pages_before_allocating() {
        let pool = pool_with_reserve(1, 2, 8);
        pool.recycle(empty_pages(&pool, 5)); // 2 cached, 3 kept
        assert_eq!(pool.stats().pages_allocated, 5);
        // An inline push takes one even when allocations would fail.
        pool.inject_alloc_failures(1);
        pool.push_with_new_page(record(0), kind(0)).unwrap();
        pool.inject_alloc_failures(0);
        // Empty the cache, then refill: both pages come from the reserve.
        while pool.lanes[0]
            .take_cached()
            .map(|p| pool.free_page(p))
            .is_some()
        {}
        assert_eq!(pool.refill(), Ok(2));
        let stats = pool.stats();
        assert_eq!(
            (
                stats.pages_allocated,
                stats.reserve_reuses,
                stats.pages_reserved,
                stats.alloc_failures
            ),
            (5, 3, 0, 0)
        );
        crate::test_support::drain(&pool);
    }

    #[test]
    fn relax_halves_an_unused_reserve_and_shrink_frees_it() {
        let pool = pool_with_reserve(1, 1, 8);
        pool.recycle(empty_pages(&pool, 9)); // 1 cached, 8 kept
        assert_eq!(pool.stats().pages_reserved, 8);
        // A page taken since the last look: kept whole.
        let page = pool.new_page().unwrap();
        pool.spare_page(page);
        pool.relax();
        assert_eq!(pool.stats().pages_reserved, 8);
        // Unused: halved each call.
        pool.relax();
        assert_eq!(pool.stats().pages_reserved, 4);
        pool.relax();
        assert_eq!(pool.stats().pages_reserved, 2);
        assert_eq!(pool.shrink(), 1 + 2);
        let stats = pool.stats();
        assert_eq!((stats.pages_reserved, stats.pages_live), (0, 0));
    }

    #[test]
    fn a_busy_reserve_is_passed_by() {
        let pool = pool_with_reserve(1, 1, 8);
        pool.recycle(empty_pages(&pool, 3)); // 1 cached, 2 kept
        let held = pool.reserve.pages.lock().unwrap();
        // Nobody waits: the page is allocated, and a spare one freed.
        let page = pool.new_page().unwrap();
        assert_eq!(pool.stats().pages_allocated, 4);
        pool.spare_page(page);
        assert_eq!(pool.stats().pages_freed, 1);
        assert!(pool.relax() == 0 && pool.shrink() == 1);
        drop(held);
        assert_eq!(pool.shrink(), 2);
    }

    #[test]
    fn past_the_alloc_watermark_a_refill_puts_only_reserved_pages() {
        // Sized from CACHE_CAPACITY (2 under Miri and loom): a target of
        // `high` pages, allocations only up to half of it.
        let high = crate::CACHE_CAPACITY.min(4);
        let alloc = high / 2;
        let pool = crate::Pool::new(crate::Config {
            low_watermark: 1,
            high_watermark: high,
            max_watermark: high,
            alloc_watermark: alloc,
            max_reserve: 8,
            slab_pages: 1,
            lanes: Some(1),
        })
        .unwrap();
        let (high_pages, alloc_pages) = (high as u64, alloc as u64);
        // Allocates up to the alloc watermark; the reserve is empty.
        assert_eq!(pool.refill(), Ok(alloc));
        // Drained pages fill the lane to its target, the rest is reserved.
        pool.recycle(empty_pages(&pool, high - alloc + 1));
        let stats = pool.stats();
        assert_eq!((stats.pages_cached, stats.pages_reserved), (high_pages, 1));
        // Empty the cache: the refill takes the reserved page, allocates
        // more up to the alloc watermark, and stops there, below the
        // target: past the watermark only reserved pages go in.
        while let Some(page) = pool.lanes[0].take_cached() {
            pool.free_page(page);
        }
        assert_eq!(pool.refill(), Ok(alloc));
        let allocated = alloc_pages + (high_pages - alloc_pages + 1) + (alloc_pages - 1);
        let stats = pool.stats();
        assert_eq!(
            (
                stats.pages_cached,
                stats.pages_reserved,
                stats.pages_allocated,
                stats.reserve_reuses
            ),
            (alloc_pages, 0, allocated, 1)
        );
        // A page back in the reserve goes in past the watermark.
        pool.spare_page(pool.alloc_page().unwrap());
        assert_eq!(pool.refill_from_reserve(), 0); // not below the low mark
        while let Some(page) = pool.lanes[0].take_cached() {
            pool.free_page(page);
        }
        for _ in 1..high {
            pool.spare_page(pool.alloc_page().unwrap());
        }
        // Past the watermark, to the target.
        assert_eq!(pool.refill_from_reserve(), high);
        let stats = pool.stats();
        assert_eq!(
            (
                stats.pages_cached,
                stats.pages_reserved,
                stats.pages_allocated
            ),
            (high_pages, 0, allocated + high_pages)
        );
        crate::test_support::drain(&pool);
    }
}
