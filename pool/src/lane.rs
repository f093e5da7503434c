//! A per-CPU lane: the open page, a cache of empty pages, a push counter.
//!
//! `open` holds null (no open page), the open page, or [`BUSY`]. Whoever swaps
//! `BUSY` in owns the lane (its open page and its `pushed` counter) until it
//! stores a page or null back; producers and the consumer take a lane the same
//! way, and a party that finds `BUSY` goes elsewhere instead of waiting. The
//! swap is `Acquire` and the store back `Release`, so each owner sees all the
//! writes the previous owner made to the page and the counter.
//!
//! The cache is an array of words, each null or an empty page. The owner of
//! the lane takes a page with `swap(null)` (`Acquire`); the consumer puts one
//! with `compare_exchange(null, page)` (`Release`) and `shrink` takes them
//! with `swap(null)` too, without owning the lane. Each swap and CAS moves a
//! page between exactly two parties, so a cached page always has one owner.
//! Cache entries are independent of `open`, so the consumer can refill a lane
//! whose owner is preempted mid-push.

use crate::CACHE_CAPACITY;
use crate::page::Page;
use crate::sync::{
    AtomicPtr, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use core::ptr::{self, NonNull};

/// The `open` value meaning "owned by someone right now". Pages are
/// 4096-aligned, so address 1 is never a page.
pub(crate) const BUSY: *mut Page = ptr::without_provenance_mut(1);

/// One per-CPU lane (see the module doc).
pub(crate) struct Lane {
    open: AtomicPtr<Page>,
    /// Records pushed through this lane; written only by the lane's owner.
    pushed: AtomicU64,
    cache: [AtomicPtr<Page>; CACHE_CAPACITY],
}

impl Lane {
    pub(crate) fn new() -> Lane {
        Lane {
            open: AtomicPtr::new(ptr::null_mut()),
            pushed: AtomicU64::new(0),
            cache: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }

    /// Tries to own the lane: returns the open page (or null) now owned by
    /// the caller, or `BUSY` if someone else owns the lane.
    #[inline(always)]
    pub(crate) fn take(&self) -> *mut Page {
        // Acquire: pairs with the Release store in `release`, so the previous
        // owner's writes to the page and the counter happen before ours.
        self.open.swap(BUSY, Acquire)
    }

    /// Gives the lane up, leaving `open` (a page, or null) as its open page.
    /// The caller must own the lane (a `take` that did not return `BUSY`).
    #[inline(always)]
    pub(crate) fn release(&self, open: *mut Page) {
        debug_assert_ne!(open, BUSY);
        // Release: publishes our writes to the page and the counter; pairs
        // with the Acquire swap in `take`.
        //
        // Natively a plain store suffices: while we own the lane every other
        // access to `open` is a swap writing BUSY over BUSY, and an RMW reads
        // the value just before it in modification order, so those swaps form
        // an unbroken chain after our `take` and our store (sequenced after
        // the `take`) lands after all of them: the next swap reads our value.
        // Loom orders stores by vector clocks and would let a later swap read
        // a BUSY written "concurrently" with our store (a behaviour C++
        // forbids), so under loom the store is a swap, which loom orders.
        #[cfg(not(kvfree_loom))]
        self.open.store(open, Release);
        #[cfg(kvfree_loom)]
        {
            let previous = self.open.swap(open, Release);
            assert_eq!(previous, BUSY, "released a lane we did not own");
        }
    }

    /// Counts one pushed record. The caller must own the lane: it is the only
    /// writer, so a plain load and store suffice (no read-modify-write).
    #[inline(always)]
    pub(crate) fn count_push(&self) {
        // Relaxed: ordered for the next owner by take/release; `stats` only
        // needs some recent value.
        let pushed = self.pushed.load(Relaxed);
        self.pushed.store(pushed + 1, Relaxed);
    }

    /// Records pushed through this lane.
    pub(crate) fn pushed(&self) -> u64 {
        // Relaxed: a statistic for `stats`, ordered with nothing.
        self.pushed.load(Relaxed)
    }

    /// Takes an empty page from the cache, owned by the caller from now on,
    /// and counts the pages left (a hint: the consumer may be adding some).
    /// Used by the lane's owner on the push path: loads, one swap, no loop
    /// that could spin.
    #[inline]
    pub(crate) fn pop_cached(&self) -> Option<(NonNull<Page>, usize)> {
        let mut entries = self.cache.iter();
        let page = loop {
            let entry = entries.next()?;
            // Relaxed: only a hint to skip empty entries without a
            // read-modify-write; the swap below decides.
            if entry.load(Relaxed).is_null() {
                continue;
            }
            // Acquire: pairs with the Release CAS in `put_cached`, so the
            // consumer's initialisation of the page happens before our writes.
            if let Some(page) = NonNull::new(entry.swap(ptr::null_mut(), Acquire)) {
                break page;
            }
        };
        // Relaxed: a count for the refill hint only.
        let left = entries.filter(|e| !e.load(Relaxed).is_null()).count();
        Some((page, left))
    }

    /// Puts an empty page, owned by the caller, into a free cache entry.
    /// Returns the page back if every entry is taken.
    pub(crate) fn put_cached(&self, page: NonNull<Page>) -> Result<(), NonNull<Page>> {
        for entry in &self.cache {
            // Release: publishes the page's initialisation or reset to
            // whoever takes it: the Acquire swap in `pop_cached` (a producer)
            // or in `take_cached` (`shrink` or `Drop`, which free it).
            if entry
                .compare_exchange(ptr::null_mut(), page.as_ptr(), Release, Relaxed)
                .is_ok()
            {
                return Ok(());
            }
        }
        Err(page)
    }

    /// Takes one cached page, if any, without owning the lane (`shrink`,
    /// `Drop`).
    pub(crate) fn take_cached(&self) -> Option<NonNull<Page>> {
        self.cache.iter().find_map(|entry| {
            // Relaxed: a hint, as in `pop_cached`.
            if entry.load(Relaxed).is_null() {
                return None;
            }
            // Acquire: pairs with the Release CAS in `put_cached`.
            NonNull::new(entry.swap(ptr::null_mut(), Acquire))
        })
    }

    /// Pages in the cache (a snapshot).
    pub(crate) fn cached(&self) -> usize {
        // Relaxed: a count; no page is accessed through these loads.
        self.cache
            .iter()
            .filter(|e| !e.load(Relaxed).is_null())
            .count()
    }
}
