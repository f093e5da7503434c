//! A push that brings its own page: [`Pool::push_with_new_page`], for a
//! caller in ordinary context whose push found no page. The service's
//! `kvfree_rcu_mightsleep` uses it, as the kernel's `kvfree_rcu` allocates a
//! page on its `can_alloc` path, so that a dry pool costs one page
//! allocation instead of a wait for a grace period.
//!
//! # Ownership
//! The new page is the caller's from its allocation. The push then takes a
//! lane exactly as [`Pool::push`] does (`swap(BUSY)`), starting at this
//! CPU's lane, and while it owns the lane:
//! - if the open page has room for the record (a refill, or another
//!   producer's push, got there first), the record goes there, and after
//!   the lane is given back the new page goes into the lane's cache (the
//!   consumer's CAS from null, `Release`), or is freed if the cache is full;
//! - otherwise the record goes into the new page, which becomes the lane's
//!   open page (the `Release` store that gives the lane back), and the full
//!   open page, if any, is handed off, as a push does with a cached page.
//!
//! If every lane is owned by someone this instant (as many preempted
//! producers as lanes), the record goes into the new page and the page is
//! handed off as a sealed page of one record. So once the page is allocated
//! the push cannot fail, and it never waits for anyone: bounded by the lane
//! count, lock-free. Afterwards it clears the pool's `dry` hint: a lane has
//! a page again.

use crate::lane::{BUSY, Lane};
use crate::page::Page;
use crate::stats::bump;
use crate::sync::Ordering::Relaxed;
use crate::{AllocError, Kind, Pool, Pushed};
use core::ptr::NonNull;

impl Pool {
    /// Allocates a page and stores `ptr` with its `kind` (**ordinary
    /// context**: it allocates). For a caller whose [`Pool::push`] returned
    /// [`NoPage`](crate::NoPage) and who may allocate: the record goes into
    /// this CPU's lane, in the new page if the lane's open page is full (the
    /// page then stays open for the next pushes), or in the open page if it
    /// has room (the new page is then cached for the next page switch). Fails
    /// only if the page allocation fails (real or injected), storing nothing.
    /// Counted in [`PoolStats::inline_pages`](crate::PoolStats::inline_pages).
    /// Lock-free, and never waits for a producer (see the module doc).
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{AllocError, Config, Kind, NoPage, Pool};
    /// let mut config = Config::default();
    /// config.slab_pages = 1; // each page its own allocation: none left in the reserve
    /// let pool = Pool::new(config).unwrap(); // not refilled: no page
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// let ptr = NonNull::<u64>::dangling().cast();
    /// assert_eq!(pool.push(ptr, kind), Err(NoPage));
    /// pool.push_with_new_page(ptr, kind).unwrap(); // ordinary context: allocates
    /// assert!(pool.push(ptr, kind).is_ok()); // the new page is the lane's open page
    /// pool.inject_alloc_failures(1);
    /// assert_eq!(pool.push_with_new_page(ptr, kind), Err(AllocError));
    /// assert_eq!(pool.stats().inline_pages, 1);
    /// # let mut pages = pool.take_sealed();
    /// # pool.seal_open(&mut pages, kvfree_rcu_pool::BusyLanes::Wait);
    /// # pool.recycle(pages);
    /// ```
    pub fn push_with_new_page(&self, ptr: NonNull<()>, kind: Kind) -> Result<Pushed, AllocError> {
        let page = self.new_page()?;
        bump(&self.counters.inline_pages);
        let lanes = self.lanes.len();
        let mut index = self.first_lane();
        for _ in 0..lanes {
            let lane = &self.lanes[index];
            let open = lane.take();
            if open != BUSY {
                let pushed = self.push_owned_with(lane, open, ptr, kind, page);
                // Relaxed: a hint (see `Pool::dry`); the lane's own Release
                // store or CAS publishes the page.
                self.dry.store(false, Relaxed);
                return Ok(pushed);
            }
            index += 1;
            if index == lanes {
                index = 0;
            }
        }
        // Every lane is owned by someone: hand the record off in its own page.
        // SAFETY: we own the fresh page, and a record always fits in an
        // empty page.
        let stored = unsafe { Page::try_push(page, ptr, kind) };
        debug_assert!(stored);
        bump(&self.counters.pushed_past_lanes);
        // SAFETY: we own the page and give it to the consumer.
        unsafe { self.sealed.push(page) };
        Ok(Pushed {
            refill_wanted: true,
        })
    }

    /// The rest of `push_with_new_page`, once we own `lane` and its open
    /// page `open`, with our new page `spare`.
    fn push_owned_with(
        &self,
        lane: &Lane,
        open: *mut Page,
        ptr: NonNull<()>,
        kind: Kind,
        spare: NonNull<Page>,
    ) -> Pushed {
        if let Some(page) = NonNull::new(open) {
            // SAFETY: our swap in `take` made us the owner of the open page.
            if unsafe { Page::try_push(page, ptr, kind) } {
                lane.count_push();
                lane.release(open);
                // The new page is still ours: cache it for the next switch.
                if let Err(spare) = lane.put_cached(spare, 0) {
                    self.spare_page(spare);
                }
                return Pushed {
                    refill_wanted: lane.is_low(),
                };
            }
        }
        // SAFETY: we own the new page, and a record always fits in an empty
        // page.
        let stored = unsafe { Page::try_push(spare, ptr, kind) };
        debug_assert!(stored);
        lane.count_push();
        if let Some(full) = NonNull::new(open) {
            // SAFETY: we own the full page and give it to the consumer.
            unsafe { lane.sealed.push(full) };
        }
        lane.release(spare.as_ptr());
        Pushed {
            refill_wanted: lane.is_low(),
        }
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use crate::test_support::{drain, kind, pool, record};
    use crate::{AllocError, NoPage, Pushed, USABLE_RECORDS};

    #[test]
    fn a_new_page_becomes_the_open_page_of_a_dry_lane() {
        let pool = pool(1, 1, 1);
        assert_eq!(pool.push(record(0), kind(0)), Err(NoPage));
        assert_eq!(
            pool.push_with_new_page(record(0), kind(0)),
            Ok(Pushed {
                refill_wanted: true
            })
        );
        // The dry hint is cleared: the next pushes fill the new page.
        for i in 1..USABLE_RECORDS - 2 {
            pool.push(record(i), kind(0)).unwrap();
        }
        assert_eq!(pool.push(record(0), kind(0)), Err(NoPage));
        // The full open page is handed off when a new page replaces it.
        pool.push_with_new_page(record(USABLE_RECORDS), kind(0))
            .unwrap();
        assert_eq!(pool.take_sealed().records(), USABLE_RECORDS - 2);
        let stats = pool.stats();
        assert_eq!(
            (
                stats.inline_pages,
                stats.pages_allocated,
                stats.records_pushed
            ),
            (2, 2, USABLE_RECORDS as u64 - 1)
        );
        assert_eq!(drain(&pool).len(), 1);
    }

    #[test]
    fn with_room_in_the_open_page_the_new_page_is_cached() {
        let pool = pool(1, 1, 1);
        pool.refill().unwrap();
        pool.push(record(0), kind(0)).unwrap(); // takes the cached page
        assert_eq!(pool.stats().pages_cached, 0);
        pool.push_with_new_page(record(1), kind(0)).unwrap();
        let stats = pool.stats();
        assert_eq!((stats.pages_cached, stats.records_pushed), (1, 2));
        assert_eq!(drain(&pool).len(), 2);
    }

    #[test]
    fn an_allocation_failure_stores_nothing() {
        let pool = pool(1, 1, 1);
        pool.inject_alloc_failures(1);
        assert_eq!(pool.push_with_new_page(record(0), kind(0)), Err(AllocError));
        let stats = pool.stats();
        assert_eq!(
            (
                stats.inline_pages,
                stats.records_pushed,
                stats.alloc_failures
            ),
            (0, 0, 1)
        );
        assert!(drain(&pool).is_empty());
    }

    #[test]
    fn with_every_lane_busy_the_record_is_handed_off_in_its_own_page() {
        let pool = pool(2, 1, 1);
        let owned: Vec<_> = pool.lanes.iter().map(|lane| lane.take()).collect();
        pool.push_with_new_page(record(7), kind(1)).unwrap();
        for (lane, open) in pool.lanes.iter().zip(owned) {
            lane.release(open);
        }
        let sealed = pool.take_sealed();
        assert_eq!((sealed.pages(), sealed.records()), (1, 1));
        let mut got = Vec::new();
        sealed.for_each_record(|p, k| got.push((p, k)));
        assert_eq!(got, [(record(7), kind(1))]);
        pool.recycle(sealed);
        assert_eq!(pool.stats().records_pushed, 1);
    }
}
