//! [`LocalRetirer`]: a thread's own lane into a service, for retire calls
//! with no locked instruction.
//!
//! The service's retire calls share per-CPU lanes, so each takes its lane
//! with a `swap`: a locked instruction on x86-64, which waits for the
//! caller's earlier stores (the object it has just initialised). Under a
//! flood that wait is the largest cost the call adds (docs/BENCHMARKS.md).
//! A `LocalRetirer` claims a lane for its thread instead
//! (`kvfree_rcu_pool::ThreadLane`): its calls write the record with plain
//! stores and a compiler fence, and the worker takes an idle lane's page
//! with `membarrier()` on its side (the pool's `thread_lane.rs` has the
//! protocol and its argument).
//!
//! A thread in ordinary context may also free what has expired on its own
//! CPU with [`LocalRetirer::reclaim`], a bounded bite ([`RECLAIM_BITE`])
//! per call, which the worker then leaves to it (`Shared::reaper_due`): a
//! 1-thread flood that calls it every 256 retires ran faster than
//! crossbeam-epoch's, by 31% on glibc and 14% on mimalloc
//! (docs/BENCHMARKS.md, "Freeing on the retiring thread"). While the
//! service is behind, the call frees a bite of the reclaim board's chunks
//! instead, alongside the helpers, while the worker deals the ready
//! batches out and keeps grace periods advancing.
//!
//! The handle borrows its service, so it cannot outlive it, and it is
//! `Send` but not `Sync`: one thread uses it at a time, which is the lane's
//! contract. A signal handler that reaches the handle (through a
//! thread-local) while its thread is inside a call on it is served by the
//! per-CPU lanes: reentrant, as every retire call is. Dropping the handle
//! hands its open page to the worker and frees the lane for the next
//! claim.

use crate::context::might_sleep;
use crate::free_fn::{FreeFn, free_box};
use crate::gp::{GracePeriod, Rcu};
use crate::head::{HeadFreeFn, RcuHead, RcuHeaded};
use crate::pool::ThreadLane;
use crate::service::KvfreeRcu;
use crate::shared::Via;
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

/// The most objects one [`LocalRetirer::reclaim`] call frees: two pages of
/// records (502 each) or 1 024 objects of the head lists. A call that frees
/// this many takes about as long as that many `free`s (tens of
/// microseconds).
pub const RECLAIM_BITE: u64 = 1024;

/// A thread's own retire path into a [`KvfreeRcu`] service: the same calls
/// as the service's atomic-context ones, in any context, with no locked
/// (read-modify-write) instruction except once per page of about 500
/// records. Made by [`KvfreeRcu::local_retirer`] in ordinary context; keep
/// one per thread that retires often (a worker thread of a data structure,
/// a flood), for instance in a thread-local for the global service.
///
/// ```
/// use std::{ptr::NonNull, sync::Arc};
/// use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
///
/// struct Node { key: u64, head: RcuHead }
/// impl_rcu_headed!(Node, head);
///
/// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         let local = service.local_retirer(); // ordinary context
///         for key in 0..1000 {
///             let node = NonNull::from(Box::leak(Box::new(Node { key, head: RcuHead::new() })));
///             // SAFETY: from Box::leak, never published, retired once.
///             unsafe { local.kvfree_rcu(node) };
///         }
///     }); // the handle's drop hands its open page to the worker
/// });
/// service.barrier();
/// assert_eq!(service.stats().freed, 1000);
/// ```
///
/// The handle cannot be shared between threads (it is not `Sync`):
///
/// ```compile_fail
/// use std::sync::Arc;
/// use kvfree_rcu::{KvfreeRcu, Rcu};
/// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
/// let local = service.local_retirer();
/// std::thread::scope(|s| {
///     s.spawn(|| drop(&local));
/// });
/// ```
pub struct LocalRetirer<'s, G: GracePeriod = Rcu> {
    service: &'s KvfreeRcu<G>,
    lane: &'s ThreadLane,
    /// Not `Sync`: one thread at a time pushes through the lane.
    _one_thread: PhantomData<Cell<()>>,
}

impl<G: GracePeriod> KvfreeRcu<G> {
    /// A [`LocalRetirer`] for the calling thread. Ordinary context: the
    /// first claim of a lane allocates a few hundred bytes, which a later
    /// handle reuses once this one is dropped.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let local = service.local_retirer();
    /// let p = std::ptr::NonNull::from(Box::leak(Box::new(7u64)));
    /// // SAFETY: from Box::leak, never published, retired once.
    /// unsafe { local.try_kvfree_rcu(p) }.expect("a page was available");
    /// drop(local);
    /// service.barrier();
    /// ```
    pub fn local_retirer(&self) -> LocalRetirer<'_, G> {
        LocalRetirer {
            service: self,
            lane: self.shared().pool.claim_thread_lane(),
            _one_thread: PhantomData,
        }
    }
}

impl<'s, G: GracePeriod> LocalRetirer<'s, G> {
    /// The service this handle retires into.
    pub fn service(&self) -> &'s KvfreeRcu<G> {
        self.service
    }

    /// This handle's lanes, for the service's calls. The lane's contract
    /// (claimed from this service's pool, not released, one thread at a
    /// time) holds for as long as the handle lives: claimed in
    /// `local_retirer`, released only in `Drop`, and the handle is not
    /// `Sync`.
    fn via(&self) -> Via<'s> {
        Via::ThreadLane(self.lane)
    }

    /// [`KvfreeRcu::kvfree_rcu`] through this thread's lane: never fails,
    /// never allocates, locks or blocks; any context.
    ///
    /// # Safety
    /// As [`KvfreeRcu::kvfree_rcu`] 1-3.
    #[inline]
    pub unsafe fn kvfree_rcu<T: RcuHeaded + Send + 'static>(&self, ptr: NonNull<T>) {
        // SAFETY: 1-3 forwarded; 4 holds for this handle's lane (`via`).
        unsafe { self.service.kvfree_rcu_via(self.via(), ptr) }
    }

    /// [`KvfreeRcu::call_rcu`] through this thread's lane: never fails,
    /// never allocates, locks or blocks; any context.
    ///
    /// # Safety
    /// As [`KvfreeRcu::call_rcu`] 1-3.
    #[inline]
    pub unsafe fn call_rcu(&self, head: NonNull<RcuHead>, free: HeadFreeFn) {
        // SAFETY: 1-3 forwarded; 4 holds for this handle's lane (`via`).
        unsafe { self.service.call_rcu_via(self.via(), head, free) }
    }

    /// [`KvfreeRcu::try_kvfree_rcu`] through this thread's lane: `Err(ptr)`
    /// at once when no page is available; any context.
    ///
    /// # Safety
    /// As [`KvfreeRcu::try_kvfree_rcu`].
    #[inline]
    pub unsafe fn try_kvfree_rcu<T: Send + 'static>(
        &self,
        ptr: NonNull<T>,
    ) -> Result<(), NonNull<T>> {
        // SAFETY: the retire contract is the caller's (forwarded to the
        // worker's free); the lane's holds for this handle (`via`).
        unsafe {
            self.service
                .shared()
                .try_push(self.via(), ptr.cast(), free_box::<T>)
        }
        .map_err(NonNull::cast)
    }

    /// [`KvfreeRcu::kvfree_rcu_with`] through this thread's lane; any
    /// context.
    ///
    /// # Safety
    /// As [`KvfreeRcu::kvfree_rcu_with`].
    #[inline]
    pub unsafe fn kvfree_rcu_with(
        &self,
        ptr: NonNull<()>,
        free: FreeFn,
    ) -> Result<(), NonNull<()>> {
        // SAFETY: as in `try_kvfree_rcu`.
        unsafe { self.service.shared().try_push(self.via(), ptr, free) }
    }
}

impl<G: GracePeriod> LocalRetirer<'_, G> {
    /// Frees, on this thread, one bite of the objects retired to the
    /// service (through any handle or call) whose grace period has ended:
    /// at most [`RECLAIM_BITE`] (1 024), oldest first; returns how many. **Ordinary context**: it runs their
    /// destructors and gives their memory back to the allocator here (the
    /// checker reports a call in atomic context, as `might_sleep()` does).
    /// It never waits for a lock to find work: while another thread frees
    /// for the service, or the worker is collecting, it returns 0 at once.
    /// While the service is behind (hundreds of thousands of objects
    /// waiting), or batches are being freed on the reclaim board, it lends
    /// the worker and its helpers a hand instead: it frees a bite of the
    /// board's chunks, first posting the oldest batch whose grace period
    /// has ended there if none is queued. It does not wait for the
    /// board's lock to give a lent chunk back either: if another thread
    /// holds it, the chunk is left for that thread to take back, and an
    /// idle worker is woken to take it (one wake, as a retire call makes
    /// after an idle period; never during a flood, where the worker polls).
    /// (Its unlock still wakes a thread that waits for the lock, now and
    /// then: a futex syscall, about 0.1 per million retires in an 8-thread
    /// flood on 2 CPUs.) A destructor that panics aborts the process, as on
    /// the worker.
    ///
    /// Call it every few hundred retires (every 256 keeps up with the
    /// thread's own flood with room to spare) from a thread that floods
    /// the service: the objects it
    /// allocated are then freed on its own CPU, into its own allocator
    /// caches, as crossbeam-epoch frees inside `pin`, and under
    /// oversubscription the flood paces itself by freeing. While such calls
    /// come, the worker leaves freeing to them, and takes over one drain
    /// interval after they stop; once they fall behind, it deals the ready
    /// batches out to them (and to its helpers) and frees only a few bites
    /// a round itself, so that grace periods, still the worker's to
    /// advance, keep coming. A call that frees takes as long
    /// as its `free`s (tens of microseconds for a full bite), and one that
    /// posts a batch also reads each of its pages' headers once, to split
    /// them by thread lane (about 0.4 µs a page from cold caches; an
    /// 8-thread flood's batches hold tens of pages), so a real-time thread
    /// retires without calling it.
    ///
    /// ```
    /// use std::{ptr::NonNull, sync::Arc};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let local = service.local_retirer();
    /// for i in 0..10_000u64 {
    ///     let p = NonNull::from(Box::leak(Box::new(i)));
    ///     // SAFETY: from Box::leak, never published, retired once.
    ///     if let Err(p) = unsafe { local.try_kvfree_rcu(p) } {
    ///         // SAFETY: handed back; ordinary context.
    ///         unsafe { service.kvfree_rcu_mightsleep(p) };
    ///     }
    ///     if i % 256 == 255 {
    ///         local.reclaim(); // ordinary context: frees here what has expired
    ///     }
    /// }
    /// drop(local);
    /// service.barrier();
    /// ```
    pub fn reclaim(&self) -> u64 {
        might_sleep();
        self.service.shared().reap_here(self.lane.tag())
    }
}

impl<G: GracePeriod> Drop for LocalRetirer<'_, G> {
    /// Hands the lane's open page to the worker and frees the lane.
    fn drop(&mut self) {
        // The handle is not `Sync`, and a drop cannot run inside one of its
        // own calls: no call on it is running on any thread now.
        // SAFETY: (1) claimed in `local_retirer`, released only here; (2)
        // as just said, and the handle is not used afterwards.
        unsafe { self.service.shared().pool.release_thread_lane(self.lane) };
        // The page is on the pool's hand-off list: let an idle worker know.
        self.service.shared().wake.wake_if_idle();
    }
}

impl<G: GracePeriod> fmt::Debug for LocalRetirer<'_, G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalRetirer").finish_non_exhaustive()
    }
}
