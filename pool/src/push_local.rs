//! A thread lane's push: [`Pool::push_local`], from any context, with no
//! read-modify-write instruction except at a page switch. The protocol, and
//! why the consumer may take the page a push is writing, are in
//! `thread_lane.rs`.

use crate::lane::BUSY;
use crate::lane::add_one_as_owner;
use crate::page::Page;
use crate::sync::Ordering::{Relaxed, Release};
use crate::thread_lane::ThreadLane;
use crate::{Kind, NoPage, Pool, Pushed};
use core::ptr::NonNull;

/// Pushes that skip the page switch after one found no page: each such
/// attempt takes the CPU lane and then the per-CPU push takes it again, so
/// while the pool is dry (a flood outrunning reclaim) an attempt on every
/// push cost two more locked instructions per fallback. One attempt in 33
/// pushes finds the pages again soon after a refill.
const DRY_SKIPS: u32 = 32;

impl Pool {
    /// Stores `ptr` with its `kind` through `lane` (atomic context), with no
    /// read-modify-write instruction except once per page. As
    /// [`push`](Self::push) in every other respect: never allocates, locks,
    /// blocks or waits; lock-free; reentrant (a signal handler that
    /// interrupts a push on the same lane pushes through the per-CPU
    /// lanes); `Err(NoPage)` when no page is available.
    ///
    /// # Safety
    /// 1. `lane` was claimed from this pool and not released.
    /// 2. No other thread pushes through `lane` or releases it during the
    ///    call (a signal handler on the calling thread may).
    #[inline]
    pub unsafe fn push_local(
        &self,
        lane: &ThreadLane,
        ptr: NonNull<()>,
        kind: Kind,
    ) -> Result<Pushed, NoPage> {
        let Some(section) = lane.enter(self) else {
            return self.push(ptr, kind);
        };
        // Relaxed: only the owner (us, contracts 1 and 2) stores pages here;
        // the consumer only swaps null in (module docs, "Why the consumer
        // may use `p`").
        let open = lane.owner.open.load(Relaxed);
        let pushed = match NonNull::new(open) {
            // SAFETY: the page is ours until the consumer has waited for
            // this push to end (module docs).
            Some(page) if unsafe { Page::try_push(page, ptr, kind) } => {
                add_one_as_owner(&lane.owner.pushed);
                Some(Pushed {
                    refill_wanted: false,
                })
            }
            _ => self.switch_thread_page(lane, open, ptr, kind),
        };
        lane.leave(section);
        match pushed {
            Some(pushed) => Ok(pushed),
            // The CPU lane was busy or dry: the per-CPU path stores it, or
            // counts the `NoPage`.
            None => self.push(ptr, kind),
        }
    }

    /// The rest of `push_local` when `open` is null or full: a new page from
    /// our CPU's lane, with the record in it, installed in `lane`. `None`
    /// (nothing stored) if that lane is busy or dry.
    #[inline(never)]
    fn switch_thread_page(
        &self,
        lane: &ThreadLane,
        open: *mut Page,
        ptr: NonNull<()>,
        kind: Kind,
    ) -> Option<Pushed> {
        // Relaxed (both): the owner's own counter.
        let skips_left = lane.owner.skips_left.load(Relaxed);
        if skips_left > 0 {
            lane.owner.skips_left.store(skips_left - 1, Relaxed);
            return None;
        }
        // Relaxed: a hint (see `dry`): the per-CPU path counts the NoPage.
        if self.dry.load(Relaxed) {
            lane.owner.skips_left.store(DRY_SKIPS, Relaxed);
            return None;
        }
        let cpu_lane = &self.lanes[self.first_lane()];
        let cpu_open = cpu_lane.take();
        if cpu_open == BUSY {
            return None;
        }
        let Some((page, left)) = cpu_lane.pop_cached() else {
            // The per-CPU push that follows counts the dry event.
            cpu_lane.release(cpu_open);
            lane.owner.skips_left.store(DRY_SKIPS, Relaxed);
            return None;
        };
        let refill_wanted = left < cpu_lane.low_mark();
        if refill_wanted {
            cpu_lane.count_low();
        }
        cpu_lane.release(cpu_open);
        // SAFETY: `pop_cached` made us the owner of the empty page.
        unsafe { Page::set_thread_lane(page, lane.tag()) };
        // SAFETY: as above, and a record always fits in an empty page.
        let stored = unsafe { Page::try_push(page, ptr, kind) };
        debug_assert!(stored);
        add_one_as_owner(&lane.owner.pushed);
        let full = NonNull::new(open);
        // Release (both): the record we wrote into `page` happens before the
        // consumer's Acquire swap that takes it.
        let kept_full = full.is_some()
            && lane
                .owner
                .open
                .compare_exchange(open, page.as_ptr(), Release, Relaxed)
                .is_ok();
        if !kept_full {
            // No open page, or the consumer took the full one (`open` is
            // null now, and only we store pages).
            lane.owner.open.store(page.as_ptr(), Release);
        }
        if let (true, Some(full)) = (kept_full, full) {
            // SAFETY: our CAS replaced it, so the consumer did not take it:
            // it is ours, and we give it to the consumer.
            unsafe { cpu_lane.sealed.push(full) };
        }
        Some(Pushed { refill_wanted })
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::sync::AtomicBool;
    use crate::sync::Ordering::Acquire;
    use crate::test_support::{addresses, drain, kind, pool, push_local_range, record, sorted};
    use crate::{BusyLanes, PageList, USABLE_RECORDS};

    /// Every page a thread lane fills carries its tag; a page filled
    /// through the per-CPU lanes carries none, even one a thread lane
    /// filled before it was recycled.
    #[test]
    fn a_thread_lanes_pages_carry_its_tag_until_recycled() {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let lane = pool.claim_thread_lane();
        push_local_range(&pool, lane, 0, USABLE_RECORDS + 1);
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Wait);
        let groups = pages.split_by_thread_lane();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].0, Some(lane.tag()));
        assert_eq!(groups[0].1.pages(), 2);
        for (_, pages) in groups {
            pool.recycle(pages);
        }
        // SAFETY: claimed above, released once, not used afterwards.
        unsafe { pool.release_thread_lane(lane) };
        for i in 0..USABLE_RECORDS + 1 {
            pool.push(record(i), kind(0)).unwrap();
        }
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Wait);
        let groups = pages.split_by_thread_lane();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].0, None, "the tag went with the recycle");
        for (_, pages) in groups {
            pool.recycle(pages);
        }
    }

    #[test]
    fn pushes_go_into_the_lanes_page_and_switch_pages() {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let lane = pool.claim_thread_lane();
        let n = 2 * (USABLE_RECORDS - 2) + 3;
        push_local_range(&pool, lane, 0, n);
        assert_eq!(pool.records_pushed(), n as u64);
        // Two full pages were handed off; the open one is the lane's.
        assert_eq!(pool.take_sealed().records(), 2 * (USABLE_RECORDS - 2));
        // (`take_sealed` dropped its list: the test's records are fake.)
        let mut open = PageList::new();
        pool.seal_open(&mut open, BusyLanes::Wait);
        assert_eq!(open.pages(), 1);
        assert_eq!(open.records(), 3);
        pool.recycle(open);
        // SAFETY: claimed above, released once, not used afterwards.
        unsafe { pool.release_thread_lane(lane) };
    }

    #[test]
    fn every_record_comes_out_once() {
        let pool = pool(2, 1, 2);
        pool.refill().unwrap();
        let lane = pool.claim_thread_lane();
        let n = 3 * USABLE_RECORDS;
        push_local_range(&pool, lane, 0, n);
        assert_eq!(sorted(drain(&pool)), addresses(0..n));
        // SAFETY: claimed above, released once, not used afterwards.
        unsafe { pool.release_thread_lane(lane) };
    }

    #[test]
    fn a_reentered_push_uses_the_per_cpu_lanes() {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let lane = pool.claim_thread_lane();
        push_local_range(&pool, lane, 0, 1);
        // As if a signal handler interrupted a push on this lane.
        let section = lane.enter(&pool).unwrap();
        push_local_range(&pool, lane, 1, 2);
        assert_eq!(pool.lanes[0].pushed(), 1, "the handler's record");
        lane.leave(section);
        assert_eq!(lane.pushed(), 1);
        assert_eq!(sorted(drain(&pool)), addresses(0..2));
        // SAFETY: claimed above, released once, not used afterwards.
        unsafe { pool.release_thread_lane(lane) };
    }

    #[test]
    fn without_pages_a_push_fails_and_asks_for_a_refill() {
        let pool = pool(1, 1, 2);
        let lane = pool.claim_thread_lane();
        // SAFETY: claimed above from this pool, used by this thread only.
        let pushed = unsafe { pool.push_local(lane, record(0), kind(0)) };
        assert_eq!(pushed, Err(NoPage));
        assert!(pool.needs_refill());
        assert_eq!(pool.stats().no_page, 1);
        // SAFETY: claimed above, released once, not used afterwards.
        unsafe { pool.release_thread_lane(lane) };
    }

    /// An owner flooding while the consumer seals in both modes: every
    /// record comes out exactly once.
    #[test]
    fn a_consumer_racing_the_owner_loses_nothing() {
        let n = if cfg!(miri) { 60 } else { 200_000 };
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let stop = AtomicBool::new(false);
        let mut collected = Vec::new();
        std::thread::scope(|s| {
            s.spawn(|| {
                let lane = pool.claim_thread_lane();
                for i in 0..n {
                    // SAFETY: claimed by this thread, used only here.
                    while unsafe { pool.push_local(lane, record(i), kind(i / 7 % 2)) }.is_err() {
                        std::thread::yield_now();
                    }
                }
                // SAFETY: claimed above, released once.
                unsafe { pool.release_thread_lane(lane) };
                stop.store(true, Release);
            });
            let mut round = 0u64;
            while !stop.load(Acquire) {
                let mut pages = pool.take_sealed();
                let busy = if round % 3 == 0 {
                    BusyLanes::Wait
                } else {
                    BusyLanes::Skip
                };
                pool.seal_open(&mut pages, busy);
                pages.for_each_record(|p, k| collected.push((p.as_ptr().addr(), k)));
                pool.recycle(pages);
                if pool.needs_refill() {
                    pool.refill().unwrap();
                }
                round += 1;
            }
        });
        collected.extend(drain(&pool));
        assert_eq!(sorted(collected), addresses(0..n));
    }
}
