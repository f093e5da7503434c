//! A per-CPU lane: the open page, a cache of empty pages, the lane owner's
//! counters, and the low mark that tells a push when to ask for pages.
//!
//! `open` holds null (no open page), the open page, or [`BUSY`]. Whoever swaps
//! `BUSY` in owns the lane (its open page, its `pushed`, `dry` and `low`
//! counters and its `next_pop` hint) until it stores a page or null back
//! (`no_page` is the one counter anyone adds to); producers
//! and the consumer take a lane the same way, and a party that finds `BUSY`
//! goes elsewhere instead of waiting. The swap is `Acquire` and the store
//! back `Release`, so each owner sees all the writes the previous owner made
//! to the page, the counters and the hint.
//!
//! The cache is an array of words, each null or an empty page, plus a count.
//! The owner of the lane takes a page with `swap(null)` (`Acquire`); the
//! consumer puts one with `compare_exchange(null, page)` (`Release`), and
//! `relax`, `shrink` and `Drop` take them with `swap(null)` too, without
//! owning the lane. Each swap and CAS moves a page between exactly two
//! parties, so a cached page always has one owner. Cache entries are
//! independent of `open`, so the consumer can refill a lane whose owner is
//! preempted mid-push.
//!
//! # The count
//! `count` is a hint, never an owner of anything: the consumer adds one
//! *before* its CAS puts a page (and takes it back if no entry was free),
//! and whoever swaps a page out subtracts one *after* its swap. The CAS is
//! `Release` and the swap that reads it `Acquire`, so each page's increment
//! happens before its decrement, and by write-write coherence it comes
//! first in the count's modification order: the count never wraps below
//! zero, and it is exact when no put or take is in progress (in between it
//! may count a page being put or taken). It makes the two questions the push path
//! asks O(1): "is the cache empty?" (one load) and "how many are left?"
//! (the value the decrement returns), instead of a scan of the whole array
//! (`CACHE_CAPACITY` entries, up to 32 cache lines). A stale read costs a
//! hint (one `NoPage`, or one refill request too many or too few), never a
//! page.
//!
//! # Layout
//! The words a push writes on every call (`open`, `pushed`) and on every
//! page switch (`next_pop`) sit in the first cache line, with the words it
//! writes or reads rarely (`dry`, `low_mark`, `low`, `no_page`); the cache,
//! which the consumer writes on every refill, starts on a line of its own,
//! so a refill does not take the hot line away from the producer; the
//! lane's hand-off list of full pages has a line of its own too.

use crate::CACHE_CAPACITY;
use crate::hand_off::HandOff;
use crate::page::Page;
use crate::sync::{
    AtomicPtr, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use core::ptr::{self, NonNull};
use crossbeam_utils::CachePadded;

/// The `open` value meaning "owned by someone right now". Pages are
/// 4096-aligned, so address 1 is never a page.
pub(crate) const BUSY: *mut Page = ptr::without_provenance_mut(1);

/// One per-CPU lane (see the module doc).
#[repr(C)]
pub(crate) struct Lane {
    open: AtomicPtr<Page>,
    /// Records pushed through this lane; written only by the lane's owner.
    pushed: AtomicU64,
    /// Where the owner's next look for a cached page starts (the entry after
    /// the one it took last); written only by the lane's owner. A hint: the
    /// consumer fills the lowest free entries, so the pages usually follow.
    next_pop: AtomicUsize,
    /// Pushes that found this lane dry (no room in the open page and no
    /// cached page); written only by the lane's owner, read by the consumer
    /// to grow the lane's target (`watermark.rs`).
    dry: AtomicU64,
    /// A push that leaves fewer cached pages than this asks for a refill.
    /// Written by the consumer when the lane's target changes
    /// (`watermark.rs`), read by the lane's owner on a page switch.
    low_mark: AtomicUsize,
    /// Pushes through this lane that left its cache below `low_mark` (and
    /// so asked for a refill); written only by the lane's owner.
    low: AtomicU64,
    /// Pushes that started at this lane and stored nothing (`NoPage`).
    /// Such a push owns no lane, so it counts with a read-modify-write; the
    /// line is its own CPU's first lane, which it has just swapped, so the
    /// count does not bounce between CPUs (a pool-wide counter did, on
    /// every fallback, for 50 to 150 ns a call under a flood).
    no_page: AtomicU64,
    cache: CachePadded<Cache>,
    /// Full pages this lane's pushes handed off, for the consumer
    /// (`hand_off.rs`). Per lane, on a line of its own: written by this
    /// lane's owner once per page switch and by the consumer's take once per
    /// collection. A pool-wide list was a line that every producer's page
    /// switch took from the others (a miss of 100 to 200 ns on a VM, in
    /// the calls at the p99.99).
    pub(crate) sealed: CachePadded<HandOff>,
}

/// The cache of empty pages (see "The count" in the module doc).
struct Cache {
    /// The pages in `entries`, counting those being put or taken; exact
    /// when no put or take is in progress.
    count: AtomicUsize,
    entries: [AtomicPtr<Page>; CACHE_CAPACITY],
}

impl Lane {
    /// An empty lane that asks for pages below `low_mark` cached.
    pub(crate) fn new(low_mark: usize) -> Lane {
        Lane {
            open: AtomicPtr::new(ptr::null_mut()),
            pushed: AtomicU64::new(0),
            next_pop: AtomicUsize::new(0),
            dry: AtomicU64::new(0),
            low_mark: AtomicUsize::new(low_mark),
            low: AtomicU64::new(0),
            no_page: AtomicU64::new(0),
            cache: CachePadded::new(Cache {
                count: AtomicUsize::new(0),
                entries: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            }),
            sealed: CachePadded::new(HandOff::new()),
        }
    }

    /// Tries to own the lane: returns the open page (or null) now owned by
    /// the caller, or `BUSY` if someone else owns the lane.
    #[inline(always)]
    pub(crate) fn take(&self) -> *mut Page {
        // Acquire: pairs with the Release store in `release`, so the previous
        // owner's writes to the page, the counters and the hint happen
        // before ours.
        self.open.swap(BUSY, Acquire)
    }

    /// Gives the lane up, leaving `open` (a page, or null) as its open page.
    /// The caller must own the lane (a `take` that did not return `BUSY`).
    #[inline(always)]
    pub(crate) fn release(&self, open: *mut Page) {
        debug_assert_ne!(open, BUSY);
        // Release: publishes our writes to the page, the counters and the
        // hint; pairs with the Acquire swap in `take`.
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
        add_one_as_owner(&self.pushed);
    }

    /// Records pushed through this lane.
    pub(crate) fn pushed(&self) -> u64 {
        // Relaxed: a statistic, and the consumer's idle test: "did the
        // count move since I last looked" needs some recent value only.
        self.pushed.load(Relaxed)
    }

    /// Counts a push that found this lane dry. The caller must own the lane
    /// (the only writer, as in `count_push`).
    #[inline]
    pub(crate) fn count_dry(&self) {
        add_one_as_owner(&self.dry);
    }

    /// Pushes that found this lane dry so far.
    pub(crate) fn dry_events(&self) -> u64 {
        // Relaxed: a hint for the watermark policy; a stale value delays a
        // growth by one refill.
        self.dry.load(Relaxed)
    }

    /// Counts a push that left the cache below the low mark. The caller must
    /// own the lane (the only writer, as in `count_push`).
    #[inline]
    pub(crate) fn count_low(&self) {
        add_one_as_owner(&self.low);
    }

    /// Pushes through this lane that asked for a refill (`count_low`).
    pub(crate) fn low_events(&self) -> u64 {
        // Relaxed: a statistic.
        self.low.load(Relaxed)
    }

    /// Counts a push that started at this lane and stored nothing. Any
    /// thread, no ownership needed.
    #[inline]
    pub(crate) fn count_no_page(&self) {
        // Relaxed: a statistic, ordered with nothing.
        self.no_page.fetch_add(1, Relaxed);
    }

    /// Pushes that started at this lane and stored nothing.
    pub(crate) fn no_page_events(&self) -> u64 {
        // Relaxed: a statistic.
        self.no_page.load(Relaxed)
    }

    /// The lane's low mark: a push that leaves fewer cached pages asks for a
    /// refill.
    #[inline]
    pub(crate) fn low_mark(&self) -> usize {
        // Relaxed: a hint written by the consumer; the old value for a
        // while costs a refill request too early or too late.
        self.low_mark.load(Relaxed)
    }

    /// Sets the low mark (consumer side, when the lane's target changes).
    pub(crate) fn set_low_mark(&self, low_mark: usize) {
        // Relaxed: as in `low_mark`. Only stored when it changes, so the
        // producer's line is not taken away on every refill.
        if self.low_mark.load(Relaxed) != low_mark {
            self.low_mark.store(low_mark, Relaxed);
        }
    }

    /// Takes an empty page from the cache, owned by the caller from now on,
    /// and counts the pages left (a hint: the consumer may be adding some).
    /// Used by the lane's owner on the push path: one load when the cache is
    /// empty; otherwise loads from where the last one was found (usually
    /// one), one swap and one decrement. No loop that could spin: at most
    /// one pass over the entries.
    #[inline]
    pub(crate) fn pop_cached(&self) -> Option<(NonNull<Page>, usize)> {
        // Relaxed: a hint (module doc, "The count"): 0 means no page, unless
        // one is being put right now, which costs this push a `NoPage`.
        if self.cache.count.load(Relaxed) == 0 {
            return None;
        }
        // Relaxed: our own hint (the owner is its only writer, ordered for
        // the next owner by take/release).
        let start = self.next_pop.load(Relaxed);
        let mut index = if start < CACHE_CAPACITY { start } else { 0 };
        for _ in 0..CACHE_CAPACITY {
            let entry = &self.cache.entries[index];
            index += 1;
            if index == CACHE_CAPACITY {
                index = 0;
            }
            // Relaxed: only a hint to skip empty entries without a
            // read-modify-write; the swap below decides.
            if entry.load(Relaxed).is_null() {
                continue;
            }
            // Acquire: pairs with the Release CAS in `put_cached`, so the
            // consumer's initialisation of the page (and its increment of
            // the count) happens before our writes (and our decrement).
            if let Some(page) = NonNull::new(entry.swap(ptr::null_mut(), Acquire)) {
                // Relaxed: our own hint, as above.
                self.next_pop.store(index, Relaxed);
                self.prefetch_next_page(index);
                let before = self.count_out();
                return Some((page, before - 1));
            }
        }
        None
    }

    /// Prefetches, to be written, the header of the page in cache entry
    /// `index` (below `CACHE_CAPACITY`: the pop's wrapped index), the one
    /// the next page switch takes first: a page switch is
    /// hundreds of pushes apart, so by then the line is in this core's
    /// cache instead of the consumer's, which reset the page. A hint: the
    /// entry is read (`Relaxed`, usually the line the pop just swapped),
    /// the page is not.
    #[inline]
    fn prefetch_next_page(&self, index: usize) {
        #[cfg(not(kvfree_loom))]
        {
            // Relaxed: only an address to prefetch; the next pop's swap is
            // what takes the page.
            let next = self.cache.entries[index].load(Relaxed);
            if !next.is_null() {
                crate::prefetch::write(next.cast_const().cast());
            }
        }
        #[cfg(kvfree_loom)]
        let _ = index;
    }

    /// Prefetches, to be written, the lines the lane's next page switch
    /// writes that the consumer writes too: the cache's count and the entry
    /// the next pop looks at first (a refill or recycle wrote them), and
    /// the hand-off list (the consumer's take swapped it). The owner calls
    /// it a few records before its open page is full. Hints only: nothing
    /// is read or written. The caller must own the lane (it reads the
    /// owner's `next_pop`).
    #[inline]
    pub(crate) fn prefetch_for_switch(&self) {
        // Relaxed: our own hint (the owner is its only writer).
        let next = self.next_pop.load(Relaxed);
        let index = if next < CACHE_CAPACITY { next } else { 0 };
        crate::prefetch::write(ptr::from_ref(&self.cache.count).cast());
        crate::prefetch::write(ptr::from_ref(&self.cache.entries[index]).cast());
        crate::prefetch::write(ptr::from_ref(&*self.sealed).cast());
    }

    /// Subtracts one page from the count after a swap took it; returns the
    /// count before.
    fn count_out(&self) -> usize {
        // Relaxed: a hint; the count never goes below zero because the
        // page's increment happens before this (module doc, "The count").
        let before = self.cache.count.fetch_sub(1, Relaxed);
        // Checked in the loom models too (built without debug assertions).
        #[cfg(kvfree_loom)]
        assert!(before > 0, "cache count below zero");
        debug_assert!(before > 0, "cache count below zero");
        before
    }

    /// Puts an empty page, owned by the caller, into a free cache entry at or
    /// after index `from`. Returns the index after the entry used (where the
    /// caller's next put may start: the consumer fills lanes in order), or
    /// the page back if every entry from `from` on is taken.
    pub(crate) fn put_cached(
        &self,
        page: NonNull<Page>,
        from: usize,
    ) -> Result<usize, NonNull<Page>> {
        // Relaxed: counted before the CAS publishes the page, so the count
        // never falls below the pages cached (module doc, "The count").
        self.cache.count.fetch_add(1, Relaxed);
        for (index, entry) in self.cache.entries.iter().enumerate().skip(from) {
            // Relaxed: a hint to skip taken entries without a CAS.
            if !entry.load(Relaxed).is_null() {
                continue;
            }
            // Release: publishes the page's initialisation or reset (and the
            // increment above) to whoever takes it: the Acquire swap in
            // `pop_cached` (a producer) or in `take_cached` (`relax`,
            // `shrink` or `Drop`, which free it).
            if entry
                .compare_exchange(ptr::null_mut(), page.as_ptr(), Release, Relaxed)
                .is_ok()
            {
                return Ok(index + 1);
            }
        }
        // Relaxed: our own increment above, taken back.
        self.cache.count.fetch_sub(1, Relaxed);
        Err(page)
    }

    /// Takes one cached page, if any, without owning the lane (`relax`,
    /// `shrink`, `Drop`).
    pub(crate) fn take_cached(&self) -> Option<NonNull<Page>> {
        let page = self.cache.entries.iter().find_map(|entry| {
            // Relaxed: a hint, as in `pop_cached`.
            if entry.load(Relaxed).is_null() {
                return None;
            }
            // Acquire: pairs with the Release CAS in `put_cached`.
            NonNull::new(entry.swap(ptr::null_mut(), Acquire))
        })?;
        self.count_out();
        Some(page)
    }

    /// Pages in the cache, counting those being put or taken: exact when no
    /// put or take is in progress (module doc, "The count").
    pub(crate) fn cached(&self) -> usize {
        // Relaxed: a count; no page is accessed through it.
        self.cache.count.load(Relaxed)
    }

    /// True if the cache holds fewer pages than the low mark: the lane
    /// wants a refill (a hint, like both of its loads).
    pub(crate) fn is_low(&self) -> bool {
        self.cached() < self.low_mark()
    }
}

/// Adds one to a counter of the lane's owner, its only writer: a plain load
/// and store, no read-modify-write. Relaxed: the next owner sees it through
/// take/release (`Acquire`/`Release` on `open`; for a thread lane, its
/// claim and release), and readers (`stats`, the watermark policy) only
/// need some recent value.
#[inline(always)]
pub(crate) fn add_one_as_owner(counter: &AtomicU64) {
    counter.store(counter.load(Relaxed) + 1, Relaxed);
}
