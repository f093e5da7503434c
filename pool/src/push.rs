//! The producer's side: [`Pool::push`], from any context.
//!
//! # Ownership
//! A push owns a lane from its `swap(BUSY)` (`Lane::take`) until it stores a
//! page or null back (`Lane::release`), and with it the lane's open page;
//! a page it takes from the lane's cache is its own from that swap on; a
//! page that fills up is given to the consumer on the hand-off list. A lane
//! some other party owns is skipped, never waited for.
//!
//! ```text
//! for each lane, starting at ours (our CPU's lane at our rank):
//!     open = lane.open.swap(BUSY, Acquire)        // BUSY: owned by someone, try the next
//!     if open is null or full for this record: page = pop a cached page
//!         none: count a dry event (the lane's own counter: the refill grows
//!               its target); lane.open.store(open, Release); try the next lane
//!     write the record(s); hand the full page off
//!     lane.open.store(page, Release)
//! every lane BUSY or dry: return NoPage
//! ```
//! The loop is bounded by the lane count, nothing waits on anyone, and a
//! signal handler that interrupts a push finds our lane `BUSY` and uses
//! another: lock-free, reentrant, migration-safe. Allocation happens only on
//! the consumer's side ([`Pool::refill`]) and in [`Pool::push_with_new_page`]
//! (ordinary context, `push_new_page.rs`).

use crate::USABLE_RECORDS;
use crate::lane::{BUSY, Lane};
use crate::page::Page;
use crate::sync::Ordering::Relaxed;
use crate::{Kind, NoPage, Pool, Pushed, cpu};
use core::ptr::NonNull;

/// Records used in the open page when a push prefetches the lines of the
/// lane's next page switch (`Lane::prefetch_for_switch`): 16 records before
/// the end, about a microsecond of pushes ahead, long enough for the lines
/// to arrive and short enough that the consumer rarely writes them again
/// in between.
const SWITCH_SOON: usize = USABLE_RECORDS.saturating_sub(16);

impl Pool {
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
        // Relaxed: a hint (see `dry`); the lanes' own swaps order everything.
        let first = self.first_lane();
        if self.dry.load(Relaxed) {
            self.lanes[first].count_no_page();
            return Err(NoPage);
        }
        let lanes = self.lanes.len();
        let mut index = first;
        let mut all_dry = true;
        for step in 0..lanes {
            let lane = &self.lanes[index];
            // Our own lane is always tried. Another lane is tried only if
            // it has cached pages (a Relaxed peek, a hint): under a flood
            // that outruns the refiller, every push would otherwise swap
            // every lane's line in turn, and those swaps, bouncing between
            // CPUs, cost more than the fallback they try to avoid. Its open
            // page's last free records are given up; the hint may be stale
            // either way, which costs one swap or one fallback, never a
            // record.
            if step == 0 || lane.cached() > 0 {
                let open = lane.take();
                if open == BUSY {
                    all_dry = false;
                } else if let Some(pushed) = self.push_owned(lane, open, ptr, kind) {
                    return Ok(pushed);
                }
                // Otherwise this lane is dry (its page full, its cache
                // empty): another lane may still have room while the
                // refiller catches up.
            }
            index += 1;
            if index == lanes {
                index = 0;
            }
        }
        // Every lane is dry, or owned by someone else (or by the push we
        // interrupted).
        // Relaxed: a hint (see `dry`); nothing is published through it. The
        // load first: while it is set, pushes leave its line shared.
        if all_dry && !self.dry.load(Relaxed) {
            self.dry.store(true, Relaxed);
        }
        self.lanes[first].count_no_page();
        Err(NoPage)
    }

    /// The lane a push starts at: our CPU's lane at our rank (a CPU's lanes
    /// are `cpus` apart).
    #[inline(always)]
    pub(crate) fn first_lane(&self) -> usize {
        let index = cpu::current() + cpu::lane_rank() * self.cpus;
        if index >= self.lanes.len() {
            index % self.lanes.len()
        } else {
            index
        }
    }

    /// The rest of `push`, once we own `lane` and its open page `open`;
    /// `None` (lane released) when the lane is dry.
    #[inline]
    fn push_owned(
        &self,
        lane: &Lane,
        open: *mut Page,
        ptr: NonNull<()>,
        kind: Kind,
    ) -> Option<Pushed> {
        if let Some(page) = NonNull::new(open) {
            // SAFETY: our swap in `take` made us the owner of the open page.
            if unsafe { Page::try_push(page, ptr, kind) } {
                // SAFETY: we still own the page.
                let used = unsafe { Page::used(page) };
                // Once per page (a kind change may step over two records,
                // hence a window of three): the switch is a few pushes away.
                if (SWITCH_SOON..SWITCH_SOON + 3).contains(&used) {
                    lane.prefetch_for_switch();
                }
                lane.count_push();
                lane.release(open);
                return Some(Pushed {
                    refill_wanted: false,
                });
            }
        }
        // No open page, or it is full for this record: take a cached one.
        let Some((page, left)) = lane.pop_cached() else {
            // Dry: the refill this push's `NoPage` asks for grows the lane's
            // target (`watermark.rs`).
            lane.count_dry();
            lane.release(open);
            return None;
        };
        // SAFETY: `pop_cached` made us the owner of the empty page, and a
        // record always fits in an empty page.
        let stored = unsafe { Page::try_push(page, ptr, kind) };
        debug_assert!(stored);
        lane.count_push();
        if let Some(full) = NonNull::new(open) {
            // SAFETY: we own the full page and give it to the consumer.
            unsafe { lane.sealed.push(full) };
        }
        lane.release(page.as_ptr());
        let refill_wanted = left < lane.low_mark();
        if refill_wanted {
            lane.count_low();
        }
        Some(Pushed { refill_wanted })
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::test_support::{drain, kind, pool, record};
    use crate::{BusyLanes, CACHE_CAPACITY, PageList, USABLE_RECORDS};
    use core::ptr;

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
        // Below the low watermark, each lane is filled to the high one.
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
                    pool.seal_open(&mut pages, BusyLanes::Skip);
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
        pool.seal_open(&mut pages, BusyLanes::Skip);
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
    fn a_busy_lane_is_skipped_by_pushes_and_seal() {
        // Simulates a push interrupted by a signal handler (or a preempted
        // producer): lane 0 is owned by someone.
        let pool = pool(2, 1, 1);
        pool.refill().unwrap();
        let open = pool.lanes[0].take();
        assert!(open.is_null());
        let start = cpu::current() % 2;
        pool.push(record(1), kind(0)).unwrap(); // lands on lane 1 whatever our CPU
        if start == 0 {
            let mut pages = PageList::new();
            assert_eq!(pool.seal_open(&mut pages, BusyLanes::Skip), 1);
            assert_eq!(pages.records(), 1);
            pool.recycle(pages);
        }
        pool.lanes[0].release(open);
        drain(&pool);

        let single = self::pool(1, 1, 1);
        single.refill().unwrap();
        let open = single.lanes[0].take();
        assert_eq!(single.push(record(0), kind(0)), Err(NoPage));
        assert_eq!(single.stats().no_page, 1);
        single.lanes[0].release(open);
        assert!(single.push(record(0), kind(0)).is_ok());
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
            let mut collect = |pool: &Pool, busy: BusyLanes| {
                let mut pages = pool.take_sealed();
                pool.seal_open(&mut pages, busy);
                pages.for_each_record(|p, k| got.push((p.as_ptr().addr(), k)));
                pool.recycle(pages);
                pool.refill().unwrap();
            };
            while done.load(Relaxed) < THREADS {
                collect(&pool, BusyLanes::Skip);
                std::thread::yield_now();
            }
            collect(&pool, BusyLanes::Wait);
        });
        assert_eq!(got.len(), THREADS * per_thread);
        got.sort_by_key(|r| r.0);
        for (i, (addr, k)) in got.into_iter().enumerate() {
            assert_eq!((addr, k), (record(i).as_ptr().addr(), kind(i / per_thread)));
        }
    }
}
