//! The pool: per-CPU slots, the hand-off list, and the consumer's operations.
//!
//! Producers call [`Pool::push`] from any context. Everything else (taking,
//! sealing, refilling, recycling, shrinking) is the consumer's, in ordinary
//! context. Several consumers at once are safe too (each operation moves
//! pages with a swap or a CAS), but the service runs one.
//!
//! # Push
//! ```text
//! for each slot, starting at ours (our CPU's slot in our lane):
//!     open = slot.open.swap(BUSY, Acquire)        // BUSY: owned by someone, try the next
//!     if open is null or full for this record: page = pop a cached page
//!         none: slot.open.store(open, Release); try the next slot (this one is dry)
//!     write the record(s); hand the full page off
//!     slot.open.store(page, Release)
//! every slot BUSY or dry: return NoPage
//! ```
//! The loop is bounded by the slot count, nothing waits on anyone, and a
//! signal handler that interrupts a push finds our slot `BUSY` and uses
//! another: lock-free, reentrant, migration-safe. Allocation happens only in
//! [`Pool::refill`].

use crate::config::{Config, ConfigError};
use crate::hand_off::HandOff;
use crate::page::Page;
use crate::page_list::PageList;
use crate::slot::{BUSY, Slot};
use crate::stats::{Counters, PoolStats, bump};
use crate::sync::{AtomicBool, AtomicUsize, Backoff, Ordering::Relaxed, snooze};
use crate::{AllocError, Kind, NoPage, Pushed, cpu};
use core::fmt;
use core::ptr::{self, NonNull};
use crossbeam_utils::CachePadded;

/// Clears the `dry` hint when dropped: after the pages are in place, so a
/// push that sees it clear finds them.
struct ClearDry<'a>(&'a AtomicBool);

impl Drop for ClearDry<'_> {
    fn drop(&mut self) {
        // Relaxed: a hint; the cache entries' Release CAS publishes the pages.
        self.0.store(false, Relaxed);
    }
}

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
    pub(crate) slots: Box<[CachePadded<Slot>]>,
    sealed: CachePadded<HandOff>,
    counters: CachePadded<Counters>,
    /// Page allocations still to fail (fault injection).
    failures_to_inject: AtomicUsize,
    config: Config,
    /// Possible CPUs: the distance between a CPU's lanes.
    cpus: usize,
    /// Set by a push that found every slot dry, cleared when the consumer
    /// puts pages back (`refill`, `recycle`): while set, pushes fail at once
    /// instead of scanning every slot, which keeps the fallback path short
    /// while the refiller is stalled. Only a hint: a stale `true` costs one
    /// fallback until the next refill (every `NoPage` asks for one), and a
    /// stale `false` costs one scan.
    dry: CachePadded<AtomicBool>,
}

impl Pool {
    /// Creates a pool with empty caches (call [`Pool::refill`] before the
    /// first push). Fails, naming the field and its range, unless
    /// `1 <= low_watermark <= high_watermark <= CACHE_CAPACITY` and `slots`
    /// is `None` or in `1..=MAX_SLOTS` (see [`Config`]).
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let pool = Pool::new(Config { low_watermark: 1, high_watermark: 2, slots: Some(2) }).unwrap();
    /// assert_eq!(pool.slots(), 2);
    /// ```
    pub fn new(config: Config) -> Result<Pool, ConfigError> {
        let config = config.validate()?;
        let slots = config.slots.unwrap_or(1);
        Ok(Pool {
            slots: (0..slots).map(|_| CachePadded::new(Slot::new())).collect(),
            sealed: CachePadded::new(HandOff::new()),
            counters: CachePadded::new(Counters::new()),
            failures_to_inject: AtomicUsize::new(0),
            config,
            cpus: cpu::possible_cpus(),
            dry: CachePadded::new(AtomicBool::new(false)),
        })
    }

    /// Number of per-CPU slots.
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let pool = Pool::new(Config { slots: Some(3), ..Config::default() }).unwrap();
    /// assert_eq!(pool.slots(), 3);
    /// ```
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// The configuration, with `slots` resolved to the actual slot count.
    ///
    /// ```
    /// use kvfree_rcu_pool::Pool;
    /// let pool = Pool::default();
    /// assert_eq!(pool.config().slots, Some(pool.slots())); // resolved
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Stores `ptr` with its `kind` (atomic context).
    ///
    /// Never allocates, locks, blocks or waits, and makes no syscall but
    /// `getcpu`; lock-free; reentrant (a signal handler may push while this
    /// thread is inside `push`); migration-safe. Fails at once with
    /// [`NoPage`] when no page is available: the record was not stored.
    /// `Pushed::refill_wanted` asks the caller to wake the refiller.
    ///
    /// Any non-null `ptr` is stored as given, `usize::MAX` included (a
    /// dangling pointer to a zero-sized value may have any non-zero
    /// address): the page format reserves only null, which `NonNull` rules
    /// out. The pool never dereferences `ptr` or `kind`.
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{Kind, Pool};
    /// let pool = Pool::default();
    /// pool.refill().unwrap();
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// match pool.push(NonNull::<u64>::dangling().cast(), kind) {
    ///     Ok(pushed) => assert!(!pushed.refill_wanted || pool.needs_refill()),
    ///     Err(_) => unreachable!("the pool was just refilled"),
    /// }
    /// ```
    #[inline]
    pub fn push(&self, ptr: NonNull<()>, kind: Kind) -> Result<Pushed, NoPage> {
        // Relaxed: a hint (see `dry`); the slots' own swaps order everything.
        if self.dry.load(Relaxed) {
            self.no_page();
            return Err(NoPage);
        }
        let slots = self.slots.len();
        // Our CPU's slot in our lane: lanes are `cpus` slots apart.
        let mut index = cpu::current() + cpu::lane() * self.cpus;
        if index >= slots {
            index %= slots;
        }
        let mut all_dry = true;
        for _ in 0..slots {
            let slot = &self.slots[index];
            let open = slot.take();
            if open == BUSY {
                all_dry = false;
            } else {
                if let Some(pushed) = self.push_owned(slot, open, ptr, kind) {
                    return Ok(pushed);
                }
                // This slot is dry (its page full, its cache empty): another
                // slot may still have room while the refiller catches up.
            }
            index += 1;
            if index == slots {
                index = 0;
            }
        }
        // Every slot is dry, or owned by someone else (or by the push we
        // interrupted).
        if all_dry {
            // Relaxed: a hint (see `dry`); nothing is published through it.
            self.dry.store(true, Relaxed);
        }
        self.no_page();
        Err(NoPage)
    }

    /// The rest of `push`, once we own `slot` and its open page `open`;
    /// `None` (slot released) when the slot is dry.
    #[inline]
    fn push_owned(
        &self,
        slot: &Slot,
        open: *mut Page,
        ptr: NonNull<()>,
        kind: Kind,
    ) -> Option<Pushed> {
        if let Some(page) = NonNull::new(open) {
            // SAFETY: our swap in `take` made us the owner of the open page.
            if unsafe { Page::try_push(page, ptr, kind) } {
                slot.count_push();
                slot.release(open);
                return Some(Pushed {
                    refill_wanted: false,
                });
            }
        }
        // No open page, or it is full for this record: take a cached one.
        let Some((page, left)) = slot.pop_cached() else {
            slot.release(open);
            return None;
        };
        // SAFETY: `pop_cached` made us the owner of the empty page, and a
        // record always fits in an empty page.
        let stored = unsafe { Page::try_push(page, ptr, kind) };
        debug_assert!(stored);
        slot.count_push();
        if let Some(full) = NonNull::new(open) {
            // SAFETY: we own the full page and give it to the consumer.
            unsafe { self.sealed.push(full) };
        }
        slot.release(page.as_ptr());
        let refill_wanted = left < self.config.low_watermark;
        if refill_wanted {
            bump(&self.counters.refill_requests);
        }
        Some(Pushed { refill_wanted })
    }

    fn no_page(&self) {
        bump(&self.counters.no_page);
        bump(&self.counters.refill_requests);
    }

    /// Takes every full page handed off so far (consumer side).
    ///
    /// ```
    /// use kvfree_rcu_pool::Pool;
    /// let pool = Pool::default();
    /// let full = pool.take_sealed();
    /// full.for_each_record(|_ptr, _kind| { /* free it after a grace period */ });
    /// assert!(full.is_empty()); // no page filled up yet
    /// pool.recycle(full);
    /// ```
    pub fn take_sealed(&self) -> PageList {
        let chain = self.sealed.take_all();
        // SAFETY: the swap in `take_all` made us the owner of the whole chain.
        unsafe { PageList::from_chain(chain) }
    }

    /// Takes the open page of every slot that has records and appends it to
    /// `into` (consumer side, ordinary context), so no record stays stranded
    /// on an idle CPU. A slot owned by a producer at that moment is skipped,
    /// or, with `wait`, waited for (spin, then yield) until its owner lets it
    /// go: a push holds a slot for a bounded number of steps, but a preempted
    /// producer delays the wait. Never call with `wait` from a context that
    /// may have interrupted a push (a signal handler): it would wait on itself.
    ///
    /// Returns the number of busy slots skipped (always 0 when `wait`).
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{Kind, PageList, Pool};
    /// let pool = Pool::default();
    /// pool.refill().unwrap();
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// pool.push(NonNull::<u64>::dangling().cast(), kind).unwrap();
    /// let mut list = PageList::new();
    /// assert_eq!(pool.seal_open(&mut list, true), 0);
    /// let mut records = 0;
    /// list.for_each_record(|_ptr, k| {
    ///     assert_eq!(k, kind);
    ///     records += 1;
    /// });
    /// assert_eq!(records, 1);
    /// pool.recycle(list);
    /// ```
    pub fn seal_open(&self, into: &mut PageList, wait: bool) -> usize {
        let mut skipped = 0;
        for slot in self.slots.iter() {
            let backoff = Backoff::new();
            let mut open = slot.take();
            while open == BUSY && wait {
                snooze(&backoff);
                open = slot.take();
            }
            if open == BUSY {
                skipped += 1;
                continue;
            }
            match NonNull::new(open) {
                // SAFETY: our swap in `take` made us the owner of the open page.
                Some(page) if unsafe { Page::used(page) } > 0 => {
                    // Leave the slot without an open page: its next push takes
                    // a cached one.
                    slot.release(ptr::null_mut());
                    // SAFETY: we own the page (taken above) and give it to `into`.
                    unsafe { into.push(page) };
                }
                _ => slot.release(open),
            }
        }
        skipped
    }

    /// True if some slot's cache is below the low watermark.
    ///
    /// ```
    /// use kvfree_rcu_pool::Pool;
    /// let pool = Pool::default();
    /// assert!(pool.needs_refill()); // a new pool has empty caches
    /// pool.refill().unwrap();
    /// assert!(!pool.needs_refill());
    /// ```
    pub fn needs_refill(&self) -> bool {
        self.slots
            .iter()
            .any(|slot| slot.cached() < self.config.low_watermark)
    }

    /// Fills each slot whose cache is below the low watermark up to the high
    /// watermark with newly allocated pages (consumer side, ordinary context:
    /// this allocates). Filling to the high mark leaves room for a flood
    /// between two refills; the low mark is when to ask. Returns the
    /// number of pages allocated, or [`AllocError`] at the first allocation
    /// failure (pages allocated before it are kept); never panics.
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let pool = Pool::new(Config { low_watermark: 1, high_watermark: 2, slots: Some(2) }).unwrap();
    /// assert_eq!(pool.refill(), Ok(4)); // 2 slots, filled to the high watermark
    /// assert_eq!(pool.refill(), Ok(0)); // nothing under the low watermark
    /// ```
    pub fn refill(&self) -> Result<usize, AllocError> {
        // Cleared on every call, even one with nothing to allocate, so a
        // stale hint lives at most until the refill its `NoPage` asked for.
        let _clear_dry = ClearDry(&self.dry);
        let mut allocated = 0;
        for slot in self.slots.iter() {
            let mut cached = slot.cached();
            if cached >= self.config.low_watermark {
                continue;
            }
            while cached < self.config.high_watermark {
                let page = self.alloc_page()?;
                allocated += 1;
                if let Err(page) = slot.put_cached(page) {
                    // Another consumer filled the cache meanwhile.
                    self.free_page(page);
                    break;
                }
                cached += 1;
            }
        }
        Ok(allocated)
    }

    /// Takes drained pages back: resets each, caches them up to the high
    /// watermark per slot, frees the rest. Records still in the pages are
    /// forgotten (leaked); drain first.
    ///
    /// ```
    /// use kvfree_rcu_pool::{PageList, Pool};
    /// let pool = Pool::default();
    /// let mut drained = PageList::new();
    /// pool.seal_open(&mut drained, true);
    /// // ... free every record of `drained` after a grace period, then:
    /// pool.recycle(drained);
    /// ```
    pub fn recycle(&self, pages: PageList) {
        let _clear_dry = ClearDry(&self.dry);
        let mut pages = pages;
        for slot in self.slots.iter() {
            let room = self.config.high_watermark.saturating_sub(slot.cached());
            for _ in 0..room {
                let Some(page) = pages.pop() else { return };
                // SAFETY: `pop` made us the owner of the page.
                unsafe { Page::reset(page) };
                if let Err(page) = slot.put_cached(page) {
                    self.free_page(page);
                    break;
                }
            }
        }
        while let Some(page) = pages.pop() {
            self.free_page(page);
        }
    }

    /// Frees every cached page; returns how many. Pushes then fail with
    /// [`NoPage`] once their open page is full, until the next refill.
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let pool = Pool::new(Config { low_watermark: 1, high_watermark: 2, slots: Some(2) }).unwrap();
    /// pool.refill().unwrap();
    /// assert_eq!(pool.shrink(), 4);
    /// assert_eq!(pool.stats().pages_cached, 0);
    /// ```
    pub fn shrink(&self) -> usize {
        let mut freed = 0;
        for slot in self.slots.iter() {
            while let Some(page) = slot.take_cached() {
                self.free_page(page);
                freed += 1;
            }
        }
        freed
    }

    /// Makes the next `n` page allocations fail (fault injection for tests).
    ///
    /// ```
    /// use kvfree_rcu_pool::{AllocError, Pool};
    /// let pool = Pool::default();
    /// pool.inject_alloc_failures(1);
    /// assert_eq!(pool.refill(), Err(AllocError));
    /// assert_eq!(pool.stats().alloc_failures, 1);
    /// assert!(pool.refill().is_ok()); // only the next one failed
    /// ```
    pub fn inject_alloc_failures(&self, n: usize) {
        // Relaxed: a test knob, ordered with nothing.
        self.failures_to_inject.store(n, Relaxed);
    }

    /// A snapshot of the counters (approximate while the pool is in use).
    ///
    /// ```
    /// use kvfree_rcu_pool::{Config, Pool};
    /// let pool = Pool::new(Config { low_watermark: 1, high_watermark: 2, slots: Some(2) }).unwrap();
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
        let pages_cached = self.slots.iter().map(|s| s.cached() as u64).sum();
        PoolStats {
            pages_allocated,
            pages_freed,
            pages_live,
            pages_cached,
            pages_in_flight: pages_live.saturating_sub(pages_cached),
            records_pushed: self.slots.iter().map(|s| s.pushed()).sum(),
            refill_requests: c.refill_requests.load(Relaxed),
            no_page: c.no_page.load(Relaxed),
            alloc_failures: c.alloc_failures.load(Relaxed),
        }
    }

    /// Allocates an empty page, unless a failure is injected.
    fn alloc_page(&self) -> Result<NonNull<Page>, AllocError> {
        // Relaxed: a test knob; the CAS only keeps the count exact.
        let injected = self
            .failures_to_inject
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        match if injected { None } else { Page::alloc() } {
            Some(page) => {
                bump(&self.counters.pages_allocated);
                Ok(page)
            }
            None => {
                bump(&self.counters.alloc_failures);
                Err(AllocError)
            }
        }
    }

    /// Frees a page we own, counting it.
    fn free_page(&self, page: NonNull<Page>) {
        // SAFETY: every caller owns the page (it came from `alloc_page`, a
        // cache swap, or a list we own) and drops it after this call.
        unsafe { Page::free(page) };
        bump(&self.counters.pages_freed);
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
        for slot in self.slots.iter() {
            let open = slot.take();
            // `&mut self`: no push can be running, so no slot is BUSY.
            debug_assert_ne!(open, BUSY);
            if let Some(page) = NonNull::new(open).filter(|_| open != BUSY) {
                // SAFETY: our swap made us the owner of the open page.
                unsafe { pages.push(page) };
            }
            slot.release(ptr::null_mut());
            while let Some(page) = slot.take_cached() {
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
    use crate::{CACHE_CAPACITY, USABLE_RECORDS};
    use std::collections::HashMap;

    /// A record that is never dereferenced: address `8 * (i + 1)`.
    fn record(i: usize) -> NonNull<()> {
        NonNull::new(ptr::without_provenance_mut(8 * (i + 1))).unwrap()
    }

    fn kind(k: usize) -> Kind {
        Kind::new(NonNull::new(ptr::without_provenance_mut(16 * (k + 1))).unwrap())
    }

    fn pool(slots: usize, low: usize, high: usize) -> Pool {
        Pool::new(Config {
            low_watermark: low,
            high_watermark: high,
            slots: Some(slots),
        })
        .unwrap()
    }

    /// Seals everything and returns the records by address, with their kinds.
    fn drain(pool: &Pool) -> Vec<(usize, Kind)> {
        let mut pages = pool.take_sealed();
        assert_eq!(pool.seal_open(&mut pages, true), 0);
        let mut out = Vec::new();
        pages.for_each_record(|p, k| out.push((p.as_ptr().addr(), k)));
        assert_eq!(out.len(), pages.records());
        pool.recycle(pages);
        out
    }

    #[test]
    fn config_is_validated() {
        use crate::MAX_SLOTS;
        let config = |low, high, slots| Config {
            low_watermark: low,
            high_watermark: high,
            slots,
        };
        let cap = CACHE_CAPACITY;
        let cases = [
            // Issue 10 item 3: a low watermark of 0 never asks for a page.
            (
                config(0, 1, None),
                ConfigError::LowWatermark {
                    value: 0,
                    min: 1,
                    max: cap,
                },
                format!("pool low_watermark must be in 1..={cap}, got 0"),
            ),
            (
                config(cap + 1, cap + 1, None),
                ConfigError::LowWatermark {
                    value: cap + 1,
                    min: 1,
                    max: cap,
                },
                format!("pool low_watermark must be in 1..={cap}, got {}", cap + 1),
            ),
            (
                config(2, 1, None),
                ConfigError::HighWatermark {
                    value: 1,
                    min: 2,
                    max: cap,
                },
                format!("pool high_watermark must be in 2..={cap}, got 1"),
            ),
            (
                config(1, cap + 1, None),
                ConfigError::HighWatermark {
                    value: cap + 1,
                    min: 1,
                    max: cap,
                },
                format!("pool high_watermark must be in 1..={cap}, got {}", cap + 1),
            ),
            (
                config(1, 1, Some(0)),
                ConfigError::Slots {
                    value: 0,
                    min: 1,
                    max: MAX_SLOTS,
                },
                format!("pool slots must be in 1..={MAX_SLOTS}, got 0"),
            ),
            (
                config(1, 1, Some(MAX_SLOTS + 1)),
                ConfigError::Slots {
                    value: MAX_SLOTS + 1,
                    min: 1,
                    max: MAX_SLOTS,
                },
                format!(
                    "pool slots must be in 1..={MAX_SLOTS}, got {}",
                    MAX_SLOTS + 1
                ),
            ),
        ];
        for (config, error, message) in cases {
            let err = Pool::new(config.clone()).unwrap_err();
            assert_eq!(err, error, "{config:?}");
            // The message names the field and its range (plus maybe a why).
            assert!(err.to_string().starts_with(&message), "{err}");
            assert!(err.to_string().contains(err.field()), "{err}");
        }
        // The edges of every range are accepted.
        for config in [
            config(1, 1, Some(1)),
            config(cap, cap, Some(MAX_SLOTS)),
            config(1, cap, None),
        ] {
            // Checked without building: MAX_SLOTS slots take megabytes.
            config
                .clone()
                .validate()
                .unwrap_or_else(|e| panic!("{config:?}: {e}"));
        }
        let pool = Pool::default();
        assert!((1..=MAX_SLOTS).contains(&pool.slots()));
        assert_eq!(pool.config().slots, Some(pool.slots()));
    }

    #[test]
    fn push_without_pages_fails_and_asks_for_refill() {
        let pool = pool(2, 1, 2);
        assert!(pool.needs_refill());
        assert_eq!(pool.push(record(0), kind(0)), Err(NoPage));
        let stats = pool.stats();
        assert_eq!(
            (stats.no_page, stats.refill_requests, stats.records_pushed),
            (1, 1, 0)
        );
        // Below the low watermark, each slot is filled to the high one.
        assert_eq!(pool.refill(), Ok(4));
        assert!(!pool.needs_refill());
        assert_eq!(pool.refill(), Ok(0));
        assert!(pool.push(record(0), kind(0)).is_ok());
        assert_eq!(drain(&pool), [(8, kind(0))]);
    }

    #[test]
    fn records_come_back_once_in_order_with_their_kinds() {
        let pool = pool(1, 2, 2);
        pool.refill().unwrap();
        let n = 3 * USABLE_RECORDS;
        let mut pushed = Vec::new();
        for i in 0..n {
            let k = kind(i / 3 % 2); // runs of three records of alternating kinds
            match pool.push(record(i), k) {
                Ok(_) => pushed.push((record(i).as_ptr().addr(), k)),
                Err(NoPage) => {
                    let mut pages = pool.take_sealed();
                    pool.seal_open(&mut pages, false);
                    let mut got = Vec::new();
                    pages.for_each_record(|p, k| got.push((p.as_ptr().addr(), k)));
                    pool.recycle(pages);
                    pool.refill().unwrap();
                    // Sealed pages come newest first; sort both sides.
                    got.sort_by_key(|r| r.0);
                    assert_eq!(got, pushed);
                    pushed.clear();
                    pool.push(record(i), k).unwrap();
                    pushed.push((record(i).as_ptr().addr(), k));
                }
            }
        }
        let mut got = drain(&pool);
        got.sort_by_key(|r| r.0);
        assert_eq!(got, pushed);
        assert_eq!(pool.stats().records_pushed, n as u64);
    }

    #[test]
    fn a_kind_change_costs_two_records() {
        let pool = pool(1, 1, 1);
        pool.refill().unwrap();
        // An empty page takes MARKER, kind, ptr; then one record per pointer.
        for i in 0..USABLE_RECORDS - 2 {
            pool.push(record(i), kind(0)).unwrap();
        }
        let mut pages = PageList::new();
        pool.seal_open(&mut pages, false);
        assert_eq!((pages.pages(), pages.records()), (1, USABLE_RECORDS - 2));
        pool.recycle(pages);
        // Alternating kinds: three records each.
        for i in 0..USABLE_RECORDS / 3 {
            pool.push(record(i), kind(i % 2)).unwrap();
        }
        // Every record fitted in the one page: nothing was handed off.
        assert_eq!(pool.take_sealed().pages(), 0);
        let got = drain(&pool);
        let expected: Vec<_> = (0..USABLE_RECORDS / 3)
            .map(|i| (record(i).as_ptr().addr(), kind(i % 2)))
            .collect();
        assert_eq!(got, expected);
    }

    /// Issue 10 item 8: every non-null address is a record, `usize::MAX`
    /// included (it used to be decoded as the stream's kind marker), at the
    /// start of a page, inside a run and after a kind change; and a kind may
    /// have that address too.
    #[test]
    fn the_address_usize_max_is_a_record_like_any_other() {
        let pool = pool(1, CACHE_CAPACITY, CACHE_CAPACITY);
        pool.refill().unwrap();
        let max = NonNull::new(ptr::without_provenance_mut(usize::MAX)).unwrap();
        let max_kind = Kind::new(max);
        let pushes = [
            (max, kind(0)),
            (record(1), kind(0)),
            (max, kind(0)),
            (max, max_kind),
            (record(2), max_kind),
            (max, kind(1)),
        ];
        for (p, k) in pushes {
            // Under loom and Miri pages are small and caches hold two.
            if pool.push(p, k).is_err() {
                pool.refill().unwrap();
                pool.push(p, k).unwrap();
            }
        }
        // Pages may come back in any order: compare sorted by (address, kind).
        let key = |&(addr, k): &(usize, Kind)| (addr, k.as_ptr().as_ptr().addr());
        let mut got = drain(&pool);
        got.sort_by_key(key);
        let mut expected: Vec<_> = pushes
            .iter()
            .map(|&(p, k)| (p.as_ptr().addr(), k))
            .collect();
        expected.sort_by_key(key);
        assert_eq!(got, expected);
    }

    #[test]
    fn full_pages_are_handed_off_and_refill_is_hinted() {
        let pool = pool(1, 2, 2);
        pool.refill().unwrap();
        let per_page = USABLE_RECORDS - 2;
        // The first push takes a cached page, leaving 1 < 2: hint.
        assert_eq!(
            pool.push(record(0), kind(0)),
            Ok(Pushed {
                refill_wanted: true
            })
        );
        for i in 1..per_page {
            assert_eq!(
                pool.push(record(i), kind(0)),
                Ok(Pushed {
                    refill_wanted: false
                })
            );
        }
        assert_eq!(
            pool.push(record(per_page), kind(0)),
            Ok(Pushed {
                refill_wanted: true
            })
        );
        let sealed = pool.take_sealed();
        assert_eq!((sealed.pages(), sealed.records()), (1, per_page));
        let stats = pool.stats();
        assert_eq!(
            (stats.pages_live, stats.pages_cached, stats.pages_in_flight),
            (2, 0, 2)
        );
        assert_eq!(stats.refill_requests, 2);
        pool.recycle(sealed);
        assert_eq!(drain(&pool).len(), 1);
    }

    #[test]
    fn a_busy_slot_is_skipped_by_pushes_and_seal() {
        // Simulates a push interrupted by a signal handler (or a preempted
        // producer): slot 0 is owned by someone.
        let pool = pool(2, 1, 1);
        pool.refill().unwrap();
        let open = pool.slots[0].take();
        assert!(open.is_null());
        let start = cpu::current() % 2;
        pool.push(record(1), kind(0)).unwrap(); // lands on slot 1 whatever our CPU
        if start == 0 {
            let mut pages = PageList::new();
            assert_eq!(pool.seal_open(&mut pages, false), 1);
            assert_eq!(pages.records(), 1);
            pool.recycle(pages);
        }
        pool.slots[0].release(open);
        drain(&pool);

        let single = self::pool(1, 1, 1);
        single.refill().unwrap();
        let open = single.slots[0].take();
        assert_eq!(single.push(record(0), kind(0)), Err(NoPage));
        assert_eq!(single.stats().no_page, 1);
        single.slots[0].release(open);
        assert!(single.push(record(0), kind(0)).is_ok());
    }

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
        pool.seal_open(&mut b, true);
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
        let pool = pool(2, 2, 2);
        pool.refill().unwrap();
        // Alternating kinds: three record slots per pointer, two pages.
        for i in 0..USABLE_RECORDS / 2 {
            pool.push(record(i), kind(i % 3)).unwrap();
        }
        let stats = pool.stats();
        assert!(stats.pages_in_flight >= 2, "{stats:?}");
        assert!(format!("{pool:?}").contains("Pool"));
        drop(pool); // Miri reports a leak or a double free
    }

    #[test]
    fn concurrent_producers_and_consumer_deliver_every_record_once() {
        const THREADS: usize = 2;
        let per_thread = if crate::sync::SMALL { 40 } else { 20_000 };
        let pool = pool(2, 2, 2);
        pool.refill().unwrap();
        let done = crate::sync::AtomicUsize::new(0);
        let mut got: Vec<(usize, Kind)> = Vec::new();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (pool, done) = (&pool, &done);
                s.spawn(move || {
                    #[cfg(miri)]
                    crate::set_simulated_cpu(t);
                    for i in 0..per_thread {
                        let r = record(t * per_thread + i);
                        while pool.push(r, kind(t)).is_err() {
                            std::thread::yield_now();
                        }
                    }
                    done.fetch_add(1, Relaxed);
                });
            }
            let mut collect = |pool: &Pool, wait: bool| {
                let mut pages = pool.take_sealed();
                pool.seal_open(&mut pages, wait);
                pages.for_each_record(|p, k| got.push((p.as_ptr().addr(), k)));
                pool.recycle(pages);
                pool.refill().unwrap();
            };
            while done.load(Relaxed) < THREADS {
                collect(&pool, false);
                std::thread::yield_now();
            }
            collect(&pool, true);
        });
        assert_eq!(got.len(), THREADS * per_thread);
        got.sort_by_key(|r| r.0);
        for (i, (addr, k)) in got.into_iter().enumerate() {
            assert_eq!((addr, k), (record(i).as_ptr().addr(), kind(i / per_thread)));
        }
    }
}
