//! The consumer taking pages out: the full pages on the hand-off list
//! ([`Pool::take_sealed`]) and the open pages of the lanes
//! ([`Pool::seal_open`]).
//!
//! # Ownership
//! `take_sealed` swaps each hand-off list out whole (each lane's, and the
//! pool's own), and owns every page on them from then on. `seal_open` owns
//! a lane exactly as a push does (from its `swap(BUSY)` until it stores
//! back), takes the open page if it has
//! records and leaves the lane without one; a lane a producer owns is
//! skipped or waited for, as the caller's [`BusyLanes`] says. A thread
//! lane's page is taken by the handshake in `thread_lane.rs`.

use crate::Pool;
use crate::lane::BUSY;
use crate::page::Page;
use crate::page_list::PageList;
use crate::sync::Ordering::{Acquire, Relaxed};
use crate::sync::Patience;
use crate::thread_lane::ThreadLane;
use core::ptr::{self, NonNull};

/// What [`Pool::seal_open`] does with a lane that a producer (or another
/// consumer) owns at that moment.
///
/// ```
/// use kvfree_rcu_pool::{BusyLanes, PageList, Pool};
/// let pool = Pool::default();
/// let mut pages = PageList::new();
/// assert_eq!(pool.seal_open(&mut pages, BusyLanes::Skip), 0); // nothing busy
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusyLanes {
    /// Leave it: its open page is sealed by a later call. Safe from any
    /// context that may call the consumer side.
    Skip,
    /// Wait (spin, yield, then sleep) until its owner gives it back. Never
    /// from a context that may have interrupted a push on this pool (a
    /// signal handler): it would wait for itself.
    Wait,
}

impl Pool {
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
        // The pool's own list (pages `push_with_new_page` handed off past
        // busy lanes), then each lane's.
        let hand_offs =
            core::iter::once(&*self.sealed).chain(self.lanes.iter().map(|l| &*l.sealed));
        let mut pages = PageList::new();
        for hand_off in hand_offs {
            let chain = hand_off.take_all();
            if !chain.is_null() {
                // SAFETY: the swap in `take_all` made us the owner of the
                // whole chain.
                pages.append(unsafe { PageList::from_chain(chain) });
            }
        }
        pages
    }

    /// Takes the open page of every lane that has records and appends it to
    /// `into` (consumer side, ordinary context), so no record stays stranded
    /// on an idle CPU. A lane owned by a producer at that moment is skipped
    /// or waited for, as `busy` says ([`BusyLanes`]): a push holds a lane for
    /// a bounded number of steps, but a preempted producer delays the wait.
    /// Never pass [`BusyLanes::Wait`] from a context that may have
    /// interrupted a push (a signal handler): it would wait on itself.
    ///
    /// Thread lanes (`thread_lane.rs`) are taken from too: with `Wait`
    /// every open page, with `Skip` the pages that were already open at
    /// the previous call (an idle thread's), each after one `membarrier()`
    /// for all of them, and a thread inside a push on a page taken is
    /// waited for in both modes (a few steps, longer while it is
    /// preempted).
    ///
    /// Returns the number of busy per-CPU lanes skipped (always 0 with
    /// `Wait`).
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{BusyLanes, Kind, PageList, Pool};
    /// let pool = Pool::default();
    /// pool.refill().unwrap();
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// pool.push(NonNull::<u64>::dangling().cast(), kind).unwrap();
    /// let mut list = PageList::new();
    /// assert_eq!(pool.seal_open(&mut list, BusyLanes::Wait), 0);
    /// let mut records = 0;
    /// list.for_each_record(|_ptr, k| {
    ///     assert_eq!(k, kind);
    ///     records += 1;
    /// });
    /// assert_eq!(records, 1);
    /// pool.recycle(list);
    /// ```
    pub fn seal_open(&self, into: &mut PageList, busy: BusyLanes) -> usize {
        let mut skipped = 0;
        for lane in self.lanes.iter() {
            let mut patience = Patience::new();
            let mut open = lane.take();
            while open == BUSY && busy == BusyLanes::Wait {
                patience.wait();
                open = lane.take();
            }
            if open == BUSY {
                skipped += 1;
                continue;
            }
            match NonNull::new(open) {
                // SAFETY: our swap in `take` made us the owner of the open page.
                Some(page) if unsafe { Page::used(page) } > 0 => {
                    // Leave the lane without an open page: its next push takes
                    // a cached one.
                    lane.release(ptr::null_mut());
                    // SAFETY: we own the page (taken above) and give it to `into`.
                    unsafe { into.push(page) };
                }
                _ => lane.release(open),
            }
        }
        self.seal_thread_lanes(into, busy);
        skipped
    }

    /// Takes the thread lanes' open pages into `into` (consumer side, from
    /// `seal_open`): every one with [`BusyLanes::Wait`], with
    /// [`BusyLanes::Skip`] those already open at the previous call
    /// (`thread_lane.rs`, "Which pages the consumer takes"). Waits for an
    /// owner inside a push on a page it took, whatever `busy` says.
    pub(crate) fn seal_thread_lanes(&self, into: &mut PageList, busy: BusyLanes) {
        let mut took_any = false;
        for lane in self.thread_lanes.iter() {
            // Relaxed: only a candidate; the swap below decides.
            let open = lane.owner.open.load(Relaxed);
            if open.is_null() {
                continue;
            }
            // Relaxed: `seen` is the consumer's own word.
            if busy == BusyLanes::Skip && lane.consumer.seen.swap(open, Relaxed) != open {
                continue;
            }
            // Acquire: pairs with the Release install in `switch_thread_page`
            // (the record written into a new page).
            let taken = lane.owner.open.swap(ptr::null_mut(), Acquire);
            lane.consumer.seen.store(ptr::null_mut(), Relaxed);
            if !taken.is_null() {
                lane.consumer.taken.store(taken, Relaxed);
                took_any = true;
            }
        }
        if !took_any {
            return;
        }
        // The consumer's half of the handshake (`thread_lane.rs`): after it,
        // an owner that loaded a page we took shows us an odd `section`.
        self.fence.heavy();
        for lane in self.thread_lanes.iter() {
            let Some(page) = NonNull::new(lane.consumer.taken.swap(ptr::null_mut(), Relaxed))
            else {
                continue;
            };
            wait_for_owner(lane);
            // SAFETY: taken by our swap, and the owner's last push into it
            // has ended (`thread_lane.rs`, "Why the consumer may use `p`"):
            // the page is ours.
            unsafe { into.push(page) };
        }
    }
}

/// Waits until the owner of `lane` is not inside the push that may have
/// loaded the page the consumer just took (`thread_lane.rs`).
///
/// It waits for an even value: only the end of a push is a `Release`
/// store, and reading it (`Acquire`) orders the writes of that push and of
/// every push before it before ours. An odd value is a `Relaxed` store
/// that orders nothing; one other than the first we read means the push we
/// waited for has ended and the next has begun, and we wait for that one
/// too (its page is not ours: the handshake made it load null or a page
/// installed after our swap).
fn wait_for_owner(lane: &ThreadLane) {
    let mut patience = Patience::new();
    // Acquire: pairs with the Release end store in `leave`.
    while lane.owner.section.load(Acquire) & 1 == 1 {
        patience.wait();
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::test_support::{addresses, drain, pool, push_local_range, sorted};

    #[test]
    fn skip_takes_a_page_only_once_it_has_stayed_open() {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let lane = pool.claim_thread_lane();
        push_local_range(&pool, lane, 0, 2);
        let mut pages = PageList::new();
        pool.seal_open(&mut pages, BusyLanes::Skip);
        assert_eq!(pages.records(), 0, "a page seen for the first time stays");
        pool.seal_open(&mut pages, BusyLanes::Skip);
        assert_eq!(pages.records(), 2, "still open at the second look: taken");
        pool.recycle(pages);
        // The next push opens a new page, which is new to the consumer.
        push_local_range(&pool, lane, 2, 3);
        let mut pages = PageList::new();
        pool.seal_open(&mut pages, BusyLanes::Skip);
        assert_eq!(pages.records(), 0);
        pool.recycle(pages);
        assert_eq!(sorted(drain(&pool)), addresses(2..3));
        // SAFETY: claimed above, released once, not used afterwards.
        unsafe { pool.release_thread_lane(lane) };
    }
}
