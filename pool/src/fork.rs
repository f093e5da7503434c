//! fork() safety: a forked child takes back the lanes that threads which
//! did not survive the fork left `BUSY`.
//!
//! A producer owns a lane from its `swap(BUSY)` until it stores a page back.
//! If `fork()` happens in between, on another thread, the child inherits the
//! lane `BUSY` with no thread left to release it: pushes skip it (harmless),
//! but [`Pool::seal_open`] with [`BusyLanes::Wait`](crate::BusyLanes::Wait) waits on it forever, so the service's
//! `barrier()` and drop hang. [`Pool::reset_after_fork`] is the repair: in
//! the child, where only the forking thread exists, every `BUSY` lane is
//! owned by a thread that is gone, so the caller takes it over and leaves it
//! without an open page.
//!
//! The page that thread was filling (and an empty page it had just taken
//! from the cache) cannot be trusted: the record being written may be half
//! written. So it is leaked, in the child only: never freed, so never freed
//! early nor twice, and the records it holds (pushed before the fork, by
//! threads of the parent) are never freed in the child. The parent's copy of
//! the pool is untouched. The same holds for a page a consumer thread of the
//! parent owned at that instant (one being sealed, recycled or drained).
//!
//! A thread lane (`thread_lane.rs`) whose owner was inside a push at the
//! fork (its count odd) is repaired the same way: left without an open
//! page (leaked in the child) and its count made even, so the consumer
//! does not wait on it. Its claim stays: the owner's handle is gone with
//! its thread, and the lane is never reused in the child.
//!
//! The pool does not register fork handlers itself: its owner (the
//! kvfree-rcu service) calls this from its own child handler, and a program
//! that uses a pool directly does the same.

use crate::Pool;
use crate::lane::BUSY;
use core::ptr;

impl Pool {
    /// Repairs the pool in a forked child: takes back every lane that a
    /// thread which did not survive the fork left owned (`BUSY`) in the
    /// middle of a push or a consumer call, leaving it without an open page.
    /// The page that thread held is leaked, with its records (see the
    /// module docs). Returns the number of lanes taken back.
    ///
    /// Call it from a `pthread_atfork` child handler, or in the child before
    /// it uses the pool. Allocation-free, lock-free.
    ///
    /// # Safety
    /// 1. No other thread uses the pool during the call, and every thread
    ///    that owned a lane when the process forked is gone: the caller is
    ///    the only thread of a forked child.
    /// 2. The calling thread is not itself inside a call on this pool (a
    ///    signal handler that interrupted a push must not call this).
    ///
    /// ```
    /// use kvfree_rcu_pool::Pool;
    /// let pool = Pool::default();
    /// // SAFETY: a single-threaded test with no push in progress behaves as a
    /// // forked child: no other thread uses the pool, and we are in no call.
    /// assert_eq!(unsafe { pool.reset_after_fork() }, 0); // no lane was BUSY
    /// ```
    pub unsafe fn reset_after_fork(&self) -> usize {
        let mut taken_back = 0;
        for lane in self.lanes.iter() {
            let open = lane.take();
            if open == BUSY {
                // By contract 1 its owner is gone, and by contract 2 it is
                // not us: the lane is ours now. Its open page is leaked.
                lane.release(ptr::null_mut());
                taken_back += 1;
            } else {
                lane.release(open);
            }
        }
        taken_back + self.reset_thread_lanes_after_fork()
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use crate::{BusyLanes, Config, Kind, PageList, Pool};
    use core::ptr::NonNull;

    /// The state a child inherits: a thread that is gone owns a lane (and
    /// its open page, with records) in the middle of a push.
    #[test]
    fn a_lane_left_busy_is_taken_back_and_its_page_leaked() {
        let pool = Pool::new(Config {
            lanes: Some(2),
            ..Config::default()
        })
        .unwrap();
        pool.refill().unwrap();
        let kind = Kind::new(NonNull::<u8>::dangling().cast());
        pool.push(NonNull::<u64>::dangling().cast(), kind).unwrap();
        let mut vanished = None;
        for lane in pool.lanes.iter() {
            let open = lane.take();
            if open.is_null() || vanished.is_some() {
                lane.release(open);
            } else {
                vanished = Some(open);
            }
        }
        let vanished = vanished.expect("the push left an open page");
        // That lane is BUSY now, as if its owner vanished at a fork.

        // SAFETY: single-threaded here; the "owner" above never comes back.
        assert_eq!(unsafe { pool.reset_after_fork() }, 1);

        // Sealing with `BusyLanes::Wait` would wait forever on the BUSY lane; now it
        // returns, and the vanished owner's page is not in the list.
        let mut list = PageList::new();
        assert_eq!(pool.seal_open(&mut list, BusyLanes::Wait), 0);
        assert_eq!(list.records(), 0, "the lost page is leaked, not collected");
        pool.recycle(list);
        // Pushes use the lane again.
        for _ in 0..4 {
            pool.push(NonNull::<u64>::dangling().cast(), kind).unwrap();
        }
        // The test owns the "lost" page: give it back so the test leaks nothing.
        let page = NonNull::new(vanished).unwrap();
        let mut lost = PageList::new();
        // SAFETY: `take` above made this test the page's owner.
        unsafe { lost.push(page) };
        pool.recycle(lost);
    }
}
