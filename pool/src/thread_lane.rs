//! Thread lanes: a push with no read-modify-write instruction, for a thread
//! that claimed a lane of its own ([`Pool::claim_thread_lane`]).
//!
//! A per-CPU lane (`lane.rs`) is shared by every thread of its CPU, so a
//! push takes it with a `swap`: on x86-64 a locked instruction, a full
//! barrier that waits for the producer's earlier stores (the object it has
//! just initialised, in memory another CPU freed last). Under a flood that
//! wait is most of what a push costs (docs/BENCHMARKS.md, "Where the
//! producer's time goes now"). A thread lane has one owner thread, so its
//! pushes need no mutual exclusion among producers; only the consumer may
//! take its open page away, and that is rare (an idle lane, or a barrier).
//! The owner and the consumer meet in a store-buffering handshake whose
//! cost the consumer pays: the owner's fence is
//! [`AsymmetricFence::light`] (a compiler fence where the platform has a
//! process-wide barrier), the consumer's [`AsymmetricFence::heavy`]
//! (`membarrier()` on Linux, `FlushProcessWriteBuffers()` on Windows).
//! Where no process-wide barrier exists both are `fence(SeqCst)`: correct,
//! and no faster than a per-CPU lane.
//!
//! # The protocol
//! A lane has an `open` word (null or the open page) and a `section` count,
//! written only by the owner: odd while the owner is inside a push.
//!
//! ```text
//! owner (push)                              consumer (steal)
//! s = section; if odd: reentered, use the   p = open.swap(null, Acquire)
//!     per-CPU lanes instead                 heavy()
//! section = s + 1            (Relaxed)      while section.load(Acquire) is odd: wait
//! light()                                   p is the consumer's
//! p = open.load(Relaxed)
//! write the record into p, or switch pages
//! section = s + 2            (Release)
//! ```
//!
//! **Why the consumer may use `p`.** The handshake's guarantee
//! (`AsymmetricFence`): a push whose `light` comes before the consumer's
//! `heavy` has its odd `section` store seen by the consumer's load; a push
//! whose `light` comes after loads the null the swap stored. So a push that
//! loaded `p` either shows the consumer an odd value, which the consumer
//! waits out, or has ended. The consumer stops at an even value: a
//! `Release` end store, that push's or a later one's, after it in program
//! order, which its `Acquire` load synchronises with. Either way
//! every write into `p` happens before the consumer reads it, and no push
//! starts writing into `p` afterwards: a later push loads null, or the page
//! the owner installs next. The wait is on the owner leaving one push (a
//! bounded number of steps, longer only while it is preempted); it is in
//! ordinary context, never on a push.
//!
//! **Page switches.** When the open page is full the owner takes an empty
//! page from its CPU's lane exactly as a per-CPU push does (`swap(BUSY)`,
//! once per page), writes the record into it, and installs it with a
//! `compare_exchange(full, new)` (`Release`, so the consumer's `Acquire`
//! swap that takes the new page sees the record in it). If the CAS fails
//! the consumer has taken the full page (`open` is null), and the owner
//! stores the new page instead; otherwise the full page is still the
//! owner's, and it hands it off on the CPU lane's list as any push does.
//! If the CPU lane is busy or dry the push stores the record through the
//! per-CPU lanes instead (`Pool::push`); after a busy lane the next push
//! tries again, after a dry one the 33rd (`DRY_SKIPS`).
//!
//! **Reentrancy.** A signal handler that interrupts its thread's push finds
//! `section` odd and pushes through the per-CPU lanes. One that interrupts
//! the owner between its load of `section` and its odd store runs a whole
//! push; the interrupted push then stores the same odd value again and
//! ends with the same even one. The consumer only waits for an even
//! value, and the interrupted push's odd store is followed by its `light`
//! and its load of `open`, so it is a new push for the handshake: nothing
//! depends on the count growing.
//!
//! **Which pages the consumer takes.** [`Pool::seal_open`] with
//! [`BusyLanes::Wait`] takes every thread lane's open page (a barrier), and
//! with [`BusyLanes::Skip`] only the pages that were already open at the
//! previous call, so an idle thread's records are collected within two
//! drain intervals while a busy thread, which fills a page in
//! microseconds, is never interrupted: a steady flood makes no
//! `membarrier()` at all. Each call makes one `heavy` for all the lanes it
//! takes from, and none when it takes nothing.
//!
//! # Claiming and releasing
//! Lanes live on a push-only list, freed with the pool. A claim takes a
//! released lane with a CAS on its `claimed` flag, or allocates a new one
//! (ordinary context); [`Pool::release_thread_lane`] hands the open page
//! off and clears the flag. A lane that is never released (its thread
//! exited without releasing, or a forked child's lanes of threads that did
//! not survive) costs its few hundred bytes: its open page is still taken
//! by the consumer, so no record is stranded.

use crate::page::Page;
use crate::sync::{
    AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{Acquire, Relaxed, Release},
};
use crate::{PageList, Pool};
use core::ptr::{self, NonNull};
use crossbeam_utils::CachePadded;

/// Which thread lane filled a page ([`ThreadLane::tag`],
/// [`PageList::split_by_thread_lane`]): the lane's address, so unique among
/// the pool's lanes (which live as long as the pool). A lane released and
/// claimed again by another thread keeps its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LaneTag(pub(crate) core::num::NonZeroUsize);

/// A lane owned by one thread at a time (see the module docs). Claimed with
/// [`Pool::claim_thread_lane`], used with [`Pool::push_local`], given back
/// with [`Pool::release_thread_lane`].
pub struct ThreadLane {
    /// The words the owner writes on every push.
    pub(crate) owner: CachePadded<OwnerWords>,
    /// The consumer's bookkeeping, on a line of its own.
    pub(crate) consumer: CachePadded<ConsumerWords>,
    /// Whether a claimer holds the lane.
    claimed: AtomicBool,
    /// The next lane on the pool's list; set before the lane is published,
    /// never changed afterwards.
    next: *const ThreadLane,
}

pub(crate) struct OwnerWords {
    /// Null or the open page. The owner installs pages (`Release`), the
    /// consumer swaps them out (`Acquire`).
    pub(crate) open: AtomicPtr<Page>,
    /// Odd while the owner is inside a push; written by the owner only.
    pub(crate) section: AtomicUsize,
    /// Records pushed through this lane; written by the owner only.
    pub(crate) pushed: AtomicU64,
    /// Pushes left that go straight to the per-CPU lanes after a page
    /// switch found no page (`DRY_SKIPS` in `push_local.rs`); written by
    /// the owner only.
    pub(crate) skips_left: AtomicU32,
}

pub(crate) struct ConsumerWords {
    /// The open page the consumer saw at its previous `seal_open` with
    /// `BusyLanes::Skip` (only compared, never dereferenced).
    pub(crate) seen: AtomicPtr<Page>,
    /// A page the consumer has swapped out and not yet waited for.
    pub(crate) taken: AtomicPtr<Page>,
}

// SAFETY: every shared field is an atomic; `next` is written before the lane
// is published (Release) and only read afterwards, and it points to a lane
// that lives as long as the pool.
unsafe impl Send for ThreadLane {}
// SAFETY: as for `Send`.
unsafe impl Sync for ThreadLane {}

impl ThreadLane {
    /// This lane's tag, which every page it fills carries
    /// ([`PageList::split_by_thread_lane`]).
    pub fn tag(&self) -> LaneTag {
        LaneTag(
            core::num::NonZeroUsize::new(ptr::from_ref(self).addr())
                .expect("a reference is never null"),
        )
    }

    fn new(next: *const ThreadLane) -> ThreadLane {
        ThreadLane {
            owner: CachePadded::new(OwnerWords {
                open: AtomicPtr::new(ptr::null_mut()),
                section: AtomicUsize::new(0),
                pushed: AtomicU64::new(0),
                skips_left: AtomicU32::new(0),
            }),
            consumer: CachePadded::new(ConsumerWords {
                seen: AtomicPtr::new(ptr::null_mut()),
                taken: AtomicPtr::new(ptr::null_mut()),
            }),
            claimed: AtomicBool::new(true),
            next,
        }
    }

    /// Records pushed through this lane.
    pub(crate) fn pushed(&self) -> u64 {
        // Relaxed: a count, as for the per-CPU lanes.
        self.owner.pushed.load(Relaxed)
    }

    /// Starts a push: `Some(s)` with `section` now `s + 1`, or `None` if
    /// this thread is already inside a push on the lane (reentered).
    #[inline(always)]
    pub(crate) fn enter(&self, pool: &Pool) -> Option<usize> {
        // Relaxed: only the owner thread writes `section`; we are it.
        let section = self.owner.section.load(Relaxed);
        if section & 1 == 1 {
            return None;
        }
        // Relaxed: the store half of the handshake; `light` below orders it
        // before our load of `open` (pairs with `heavy` in
        // `seal_thread_lanes`, `seal.rs`).
        self.owner.section.store(section + 1, Relaxed);
        pool.fence.light();
        Some(section)
    }

    /// Ends the push `enter` started.
    #[inline(always)]
    pub(crate) fn leave(&self, section: usize) {
        // Release: our writes into the open page (and a page we installed)
        // happen before the consumer's Acquire load in `wait_for_owner`.
        self.owner.section.store(section + 2, Release);
    }
}

/// The pool's list of thread lanes (push-only; freed with the pool).
pub(crate) struct ThreadLanes {
    head: AtomicPtr<ThreadLane>,
}

impl ThreadLanes {
    pub(crate) fn new() -> ThreadLanes {
        ThreadLanes {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Every lane ever added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &ThreadLane> {
        // Acquire: pairs with the Release CAS in `add`, so each lane's
        // fields (and `next`) are initialised before we read them.
        let mut at = self.head.load(Acquire).cast_const();
        core::iter::from_fn(move || {
            // SAFETY: lanes are published fully initialised and live until
            // the pool (which `&self` borrows) is dropped.
            let lane = unsafe { at.as_ref() }?;
            at = lane.next;
            Some(lane)
        })
    }

    /// Adds a new lane, claimed, and returns it.
    fn add(&self) -> &ThreadLane {
        let mut head = self.head.load(Relaxed);
        let lane = Box::into_raw(Box::new(ThreadLane::new(head)));
        loop {
            // Release: publishes the lane's fields; pairs with the Acquire
            // load in `iter`.
            match self
                .head
                .compare_exchange_weak(head, lane, Release, Relaxed)
            {
                // SAFETY: just published; it lives until the pool is dropped.
                Ok(_) => return unsafe { &*lane },
                Err(current) => {
                    head = current;
                    // SAFETY: not published yet: still only ours.
                    unsafe { (*lane).next = head };
                }
            }
        }
    }
}

impl Drop for ThreadLanes {
    /// Frees the lanes (the pool has taken their open pages already).
    fn drop(&mut self) {
        // Relaxed: `&mut self`, every lane was published before.
        let mut at = self.head.load(Relaxed);
        while !at.is_null() {
            // SAFETY: each lane came from `Box::into_raw` in `add` and is
            // freed once, here; `&mut self`: no one else holds it.
            let lane = unsafe { Box::from_raw(at) };
            at = lane.next.cast_mut();
        }
    }
}

impl Pool {
    /// Claims a thread lane: a released one, or a new one (ordinary context:
    /// it may allocate a few hundred bytes). Pushes through it
    /// ([`push_local`](Self::push_local)) use no read-modify-write
    /// instruction; give it back with
    /// [`release_thread_lane`](Self::release_thread_lane).
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{Kind, Pool};
    /// let pool = Pool::default();
    /// pool.refill().unwrap();
    /// let lane = pool.claim_thread_lane();
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// // SAFETY: claimed from this pool above; only this thread uses it.
    /// unsafe { pool.push_local(lane, NonNull::<u64>::dangling().cast(), kind) }.unwrap();
    /// assert_eq!(pool.records_pushed(), 1);
    /// // SAFETY: claimed above, released once, not used afterwards.
    /// unsafe { pool.release_thread_lane(lane) };
    /// ```
    pub fn claim_thread_lane(&self) -> &ThreadLane {
        for lane in self.thread_lanes.iter() {
            // Relaxed peek first, so claims do not write every lane's line.
            // Acquire CAS: pairs with the Release store in
            // `release_thread_lane`, so the previous claimer's pushes (and
            // its `section` count) happen before ours.
            if !lane.claimed.load(Relaxed)
                && lane
                    .claimed
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_ok()
            {
                return lane;
            }
        }
        self.thread_lanes.add()
    }

    /// Gives `lane` back: its open page is handed off to the consumer, and
    /// the next claim may take the lane (ordinary or atomic context;
    /// lock-free).
    ///
    /// # Safety
    /// 1. `lane` was claimed from this pool and not released since.
    /// 2. No other thread uses `lane` during the call, the calling thread is
    ///    not inside a push on it (a signal handler must not release the
    ///    lane it interrupted), and no one uses it afterwards until it is
    ///    claimed again.
    pub unsafe fn release_thread_lane(&self, lane: &ThreadLane) {
        let section = lane
            .enter(self)
            .expect("release_thread_lane: called inside a push on the same lane");
        let open = lane.owner.open.load(Relaxed);
        if let Some(page) = NonNull::new(open) {
            // Relaxed: the page was written by us; the consumer's swap is
            // the only other writer, and it stores null.
            let kept = lane
                .owner
                .open
                .compare_exchange(open, ptr::null_mut(), Relaxed, Relaxed)
                .is_ok();
            if kept {
                // SAFETY: the CAS took it back before the consumer could:
                // ours, and given to the consumer.
                unsafe { self.sealed.push(page) };
            }
        }
        lane.leave(section);
        // Release: pairs with the Acquire CAS in `claim_thread_lane`.
        lane.claimed.store(false, Release);
    }

    /// Repairs the thread lanes in a forked child (`reset_after_fork`): a
    /// lane whose owner was inside a push when the process forked is left
    /// without an open page (leaked, as a busy per-CPU lane's), and its
    /// count even. Returns the number of such lanes.
    pub(crate) fn reset_thread_lanes_after_fork(&self) -> usize {
        let mut taken_back = 0;
        for lane in self.thread_lanes.iter() {
            // Relaxed: the caller is the only thread (reset_after_fork's
            // contract 1).
            let section = lane.owner.section.load(Relaxed);
            if section & 1 == 1 {
                lane.owner.open.store(ptr::null_mut(), Relaxed);
                lane.owner.section.store(section + 1, Relaxed);
                taken_back += 1;
            }
            // A page a consumer thread of the parent had taken and not yet
            // waited for: leaked with it.
            lane.consumer.taken.store(ptr::null_mut(), Relaxed);
        }
        taken_back
    }

    /// Takes every thread lane's open page (from `Drop`: no one pushes).
    pub(crate) fn take_thread_pages(&mut self, into: &mut PageList) {
        for lane in self.thread_lanes.iter() {
            // Acquire: as in `seal_thread_lanes`.
            if let Some(page) = NonNull::new(lane.owner.open.swap(ptr::null_mut(), Acquire)) {
                // SAFETY: `&mut self`: no push is running, the page is ours.
                unsafe { into.push(page) };
            }
        }
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::test_support::{addresses, drain, pool, push_local_range, sorted};

    #[test]
    fn release_hands_the_page_off_and_a_claim_reuses_the_lane() {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let first = pool.claim_thread_lane();
        push_local_range(&pool, first, 0, 4);
        // SAFETY: claimed above, not used afterwards.
        unsafe { pool.release_thread_lane(first) };
        assert_eq!(pool.take_sealed().records(), 4, "the open page, handed off");
        let second = pool.claim_thread_lane();
        assert!(ptr::eq(first, second), "the released lane is reused");
        let third = pool.claim_thread_lane();
        assert!(!ptr::eq(second, third), "a claimed lane is not");
        push_local_range(&pool, second, 4, 5);
        push_local_range(&pool, third, 5, 6);
        assert_eq!(sorted(drain(&pool)), addresses(4..6));
        // SAFETY: claimed above, released once each.
        unsafe {
            pool.release_thread_lane(second);
            pool.release_thread_lane(third);
        }
    }

    #[test]
    fn a_fork_takes_back_a_lane_left_inside_a_push() {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let lane = pool.claim_thread_lane();
        push_local_range(&pool, lane, 0, 2);
        // The owner "vanished" inside a push: its page is leaked in the child.
        let open = lane.owner.open.load(Relaxed);
        let _section = lane.enter(&pool).unwrap();
        // SAFETY: single-threaded; the "owner" never comes back.
        assert_eq!(unsafe { pool.reset_after_fork() }, 1);
        assert!(drain(&pool).is_empty(), "the lost page is not collected");
        push_local_range(&pool, lane, 2, 3);
        assert_eq!(sorted(drain(&pool)), addresses(2..3));
        // The test owns the "lost" page: give it back so nothing leaks.
        let mut lost = PageList::new();
        // SAFETY: the reset left it to no one; the test takes it.
        unsafe { lost.push(NonNull::new(open).unwrap()) };
        pool.recycle(lost);
        // SAFETY: claimed above, released once, not used afterwards.
        unsafe { pool.release_thread_lane(lane) };
    }

    #[test]
    fn dropping_the_pool_frees_the_lanes_and_their_pages() {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let lane = pool.claim_thread_lane();
        push_local_range(&pool, lane, 0, 3);
        // Never released: the pool's drop takes the page (Miri reports a
        // leak otherwise).
        drop(pool);
    }
}
