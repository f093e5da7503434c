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
//! skipped or waited for, as the caller's [`BusyLanes`] says.

use crate::Pool;
use crate::lane::BUSY;
use crate::page::Page;
use crate::page_list::PageList;
use crate::sync::Patience;
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
    /// Returns the number of busy lanes skipped (always 0 with `Wait`).
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
        skipped
    }
}
