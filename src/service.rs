//! `KvfreeRcu`: the retire calls users make, and the service's lifetime.
//!
//! Every retire call first tries the page pool (one `swap` and one `store` on
//! this CPU's lane, plus the record write; through a
//! [`LocalRetirer`](crate::LocalRetirer), plain stores into the thread's own
//! lane). When the pool has no page the
//! call's *name* says what happens, never a guess about the context:
//! - [`KvfreeRcu::kvfree_rcu`] (headed objects) links the object's embedded
//!   [`RcuHead`] onto this CPU's head list: it never fails, in any context;
//! - [`KvfreeRcu::try_kvfree_rcu`] and [`KvfreeRcu::kvfree_rcu_with`] return
//!   `Err(ptr)` at once: the caller keeps the object and decides;
//! - [`KvfreeRcu::kvfree_rcu_mightsleep`] allocates a page on the spot (the
//!   kernel's `can_alloc` path) and, only if that fails, waits for a grace
//!   period and frees inline: ordinary context only, checked by
//!   `might_sleep()`.
//!
//! Every retire call then reads the worker's wake word, and only the first
//! one after the worker went idle makes a syscall, to wake it (`wake.rs`);
//! while traffic flows the worker polls. A push that leaves a cache under
//! its low watermark, and every fallback, set the refill flag. See
//! `docs/DESIGN.md` for the protocols and `docs/CONTEXTS.md` for which call is
//! allowed where.
//!
//! This file keeps the handle, the retire calls' unsafe contracts and
//! `Drop`; the shared state and every step the service takes on it (push,
//! round, barrier, shrink, stats) live in `shared.rs`, the worker thread's
//! loop in `worker.rs`.
//!
//! Why this file is longer than 600 lines: about 420 of its lines are the
//! public API's documentation (each call's numbered `# Safety` contract, its
//! context, and a runnable example); the code is under 270 lines, and
//! splitting one `impl` block across files would separate a call from the
//! contract its neighbours cite.

use crate::builder::{BuildError, Builder, WorkerMode};
use crate::context::{self, Sleepable, Violation, might_sleep};
use crate::fork::{self, WorkerHandle};
use crate::free_fn::{FreeFn, free_box};
use crate::gp::{GracePeriod, Rcu};
use crate::head::{self, HeadFreeFn, RcuHead, RcuHeaded};
use crate::pool::Pool;
use crate::shared::{RoundReport, Shared, Trigger, Via};
use crate::stats::Stats;
use crate::sync::Ordering;
use crate::worker;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

/// The deferred-free service: retires objects from any context and frees
/// each after an RCU grace period of its domain `G` (by default [`Rcu`]).
///
/// ```
/// use std::{ptr::NonNull, sync::Arc};
/// use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
///
/// struct Node { value: u64, head: RcuHead }
/// impl_rcu_headed!(Node, head);
///
/// let rcu = Arc::new(Rcu::new());
/// let service = KvfreeRcu::new(rcu.clone());
/// let node = NonNull::from(Box::leak(Box::new(Node { value: 7, head: RcuHead::new() })));
/// // ... unlink `node` from the structure readers traverse, then:
/// // SAFETY: from Box::leak, unreachable for new readers, retired once.
/// unsafe { service.kvfree_rcu(node) };
/// service.barrier(); // freed by now
/// assert_eq!(service.stats().freed, 1);
/// ```
pub struct KvfreeRcu<G: GracePeriod = Rcu> {
    shared: Arc<Shared<G>>,
    worker: Option<WorkerHandle>,
}

impl KvfreeRcu<Rcu> {
    /// A service over `rcu` with default settings and a worker thread.
    /// `rcu` is an `Arc<Rcu>`, an `Rcu`, or a `&Rcu` such as
    /// [`Rcu::global()`] (the handle is cloned: the same domain).
    ///
    /// ```
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Rcu::global());
    /// assert_eq!(service.stats().pending, 0);
    /// ```
    ///
    /// # Panics
    /// If the worker thread cannot be spawned (see [`Builder::try_build`]).
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// assert_eq!(service.stats().pending, 0);
    /// ```
    pub fn new(rcu: impl Into<Arc<Rcu>>) -> KvfreeRcu<Rcu> {
        Builder::new(rcu.into()).build()
    }

    /// A [`Builder`] over `rcu` (an `Arc<Rcu>`, an `Rcu` or a `&Rcu`, as in
    /// [`new`](Self::new)).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
    /// # drop(service);
    /// ```
    pub fn builder(rcu: impl Into<Arc<Rcu>>) -> Builder<Rcu> {
        Builder::new(rcu.into())
    }
}

impl<G: GracePeriod> KvfreeRcu<G> {
    /// A [`Builder`] over any grace-period source (for example the
    /// crossbeam-epoch adapter).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// // Any `GracePeriod` works; with the `crossbeam-epoch` feature, pass an
    /// // `Arc<kvfree_rcu::gp::EpochGracePeriod>` instead.
    /// let service: KvfreeRcu<Rcu> = KvfreeRcu::builder_with(Arc::new(Rcu::new())).build();
    /// # drop(service);
    /// ```
    pub fn builder_with(gp: Arc<G>) -> Builder<G> {
        Builder::new(gp)
    }

    pub(crate) fn from_builder(b: Builder<G>) -> Result<Self, BuildError> {
        b.validate()?;
        let pool = Pool::new(b.pool).map_err(BuildError::Pool)?;
        let shared = Shared::start(b.gp, pool, b.timing);
        // A forked child repairs the service (fork.rs).
        fork::track(&shared);
        let worker = match b.worker {
            WorkerMode::Thread => {
                let handle = worker::spawn(shared.clone(), b.thread_name, b.reclaim).map_err(
                    |e| match e {
                        worker::StartError::Spawn(e) => BuildError::Spawn(e),
                        worker::StartError::Priority(error) => BuildError::Priority {
                            requested: b.reclaim.priority,
                            error,
                        },
                    },
                )?;
                Some(WorkerHandle::new(handle))
            }
            WorkerMode::Manual => None,
        };
        Ok(KvfreeRcu { shared, worker })
    }

    /// The shared state (for `LocalRetirer`, `local.rs`, and the global
    /// service's worker respawn in a forked child, `global.rs`).
    pub(crate) fn shared(&self) -> &Arc<Shared<G>> {
        &self.shared
    }

    /// The grace-period source.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let rcu = Arc::new(Rcu::new());
    /// let service = KvfreeRcu::new(rcu.clone());
    /// assert!(Arc::ptr_eq(service.grace_period(), &rcu));
    /// service.grace_period().synchronize();
    /// ```
    pub fn grace_period(&self) -> &Arc<G> {
        &self.shared.gp
    }

    /// Retires a headed object: it is dropped as a `Box<T>` after a grace
    /// period. Never fails, never allocates, never locks, never blocks: any
    /// context (raw spinlock held, signal handler, RT thread).
    ///
    /// # Safety
    /// 1. `ptr` comes from `Box::<T>::into_raw` or `Box::leak`.
    /// 2. It is unreachable for new readers (unlinked before this call).
    /// 3. It is retired once, and not used by the caller afterwards (readers
    ///    that found it before it was unlinked may keep reading it until their
    ///    read-side critical sections end).
    ///
    /// A second retire of the same object is reported in checked builds
    /// ([`Violation::DoubleRetire`]) and ignored.
    ///
    /// # Example
    /// ```
    /// use std::{ptr::NonNull, sync::Arc};
    /// use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
    ///
    /// struct Entry { key: u32, head: RcuHead }
    /// impl_rcu_headed!(Entry, head);
    ///
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let entry = NonNull::from(Box::leak(Box::new(Entry { key: 1, head: RcuHead::new() })));
    /// // SAFETY: from Box::leak, never published, retired once.
    /// unsafe { service.kvfree_rcu(entry) };
    /// service.barrier();
    /// assert_eq!(service.stats().pending, 0);
    /// ```
    #[inline]
    pub unsafe fn kvfree_rcu<T: RcuHeaded + Send + 'static>(&self, ptr: NonNull<T>) {
        // SAFETY: contracts 1-3 forwarded; `Via::CpuLanes` adds none.
        unsafe { self.kvfree_rcu_via(Via::CpuLanes, ptr) }
    }

    /// [`kvfree_rcu`](Self::kvfree_rcu) through the lanes `via` names.
    ///
    /// # Safety
    /// 1-3. As [`kvfree_rcu`](Self::kvfree_rcu).
    /// 4. As [`Shared::push_record_via`].
    #[inline]
    pub(crate) unsafe fn kvfree_rcu_via<T: RcuHeaded + Send + 'static>(
        &self,
        via: Via<'_>,
        ptr: NonNull<T>,
    ) {
        const { head::assert_head_fits::<T>() };
        // SAFETY: RcuHeaded contract 1 (checked above): the head is a field of
        // the object, so the offset stays inside its allocation; deriving from
        // `ptr` keeps the whole object's provenance.
        let head = unsafe { ptr.byte_add(T::RCU_HEAD_OFFSET) }.cast::<RcuHead>();
        // The check catches callers that break contract 3 (a second retire),
        // but only while the first retire is still pending (the object still
        // live); once that free has run, the read is a use-after-free no
        // check here can prevent.
        // SAFETY: reading the head needs a live object: contract 1 gives a
        // live `Box<T>`, and contract 3 (retired once) means no free has run.
        if context::CHECKS && unsafe { head.as_ref() }.mark_retired() {
            context::report(Violation::DoubleRetire);
            return;
        }
        // SAFETY: contract 4.
        if unsafe { self.shared.push_record_via(via, ptr.cast(), free_box::<T>) }.is_err() {
            // (1) the head is live and, by contract 3 and RcuHeaded contract
            // 2, only the service writes it from now on; (2) `free_headed`
            // drops the `Box<T>` the head lives in (contract 1), once.
            // SAFETY: (1) and (2) above; freed after the batch's grace period.
            unsafe { self.shared.queue_head(head, head::free_headed::<T>) };
        }
    }

    /// Retires an object through its embedded [`RcuHead`] with a free
    /// function of the caller's (the kernel's `call_rcu`): for memory that
    /// is not a `Box<T>` of a [`RcuHeaded`] type (slab or arena slots,
    /// variable-size objects such as a skip-list node with its tower).
    /// After a grace period the worker (or a reclaim helper) calls
    /// `free(head)` on its own thread;
    /// `free` finds its object from the head (for example with
    /// `head.byte_sub(offset_of!(Node, head))`) and releases it. Never
    /// fails, never allocates, never locks, never blocks: any context. The
    /// page path records `(head, free)` when a page is available; otherwise
    /// the head is linked onto this CPU's head list, as
    /// [`kvfree_rcu`](Self::kvfree_rcu) does.
    ///
    /// ```
    /// use std::alloc::{Layout, alloc, dealloc};
    /// use std::mem::offset_of;
    /// use std::ptr::NonNull;
    /// use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead};
    ///
    /// /// A node followed by `height` tower links, in one allocation.
    /// #[repr(C)]
    /// struct Node { height: usize, head: RcuHead }
    /// fn layout(height: usize) -> Layout {
    ///     let tower = Layout::array::<usize>(height).unwrap();
    ///     Layout::new::<Node>().extend(tower).unwrap().0.pad_to_align()
    /// }
    /// /// # Safety
    /// /// `head` is the head of a `Node` allocated with `layout(height)`.
    /// unsafe fn free_node(head: NonNull<RcuHead>) {
    ///     // SAFETY: the head lives at this offset inside its node.
    ///     let node = unsafe { head.byte_sub(offset_of!(Node, head)) }.cast::<Node>();
    ///     // SAFETY: the node is live until the dealloc below.
    ///     let height = unsafe { node.as_ref() }.height;
    ///     // SAFETY: allocated with this layout, freed once.
    ///     unsafe { dealloc(node.as_ptr().cast(), layout(height)) };
    /// }
    ///
    /// let service = KvfreeRcu::new(Rcu::global());
    /// // SAFETY: the layout is not zero-sized.
    /// let node = NonNull::new(unsafe { alloc(layout(3)) }).unwrap().cast::<Node>();
    /// // SAFETY: freshly allocated, large enough and aligned for a Node.
    /// unsafe { node.write(Node { height: 3, head: RcuHead::new() }) };
    /// // ... publish, later unlink the node, then:
    /// // SAFETY: (1) the head is live and fresh, (2) `free_node` frees this
    /// // node once, (3) unlinked and retired once.
    /// unsafe {
    ///     let head = NonNull::from(&(*node.as_ptr()).head);
    ///     service.call_rcu(head, free_node);
    /// }
    /// service.barrier();
    /// ```
    ///
    /// # Safety
    /// 1. `head` points to a live [`RcuHead`] in its unqueued state (made by
    ///    [`RcuHead::new`], and written again with `RcuHead::new()` when a
    ///    slab slot is reused), derived with the provenance `free` needs to
    ///    reach its object; it stays valid until `free(head)` runs, and
    ///    nothing but the service writes it until then.
    /// 2. Calling `free(head)` once, from any thread, after a grace period, is
    ///    sound, and releases what it retires (the object is `Send`).
    /// 3. The object is unreachable for new readers, retired once, and not
    ///    used by the caller afterwards.
    ///
    /// A second retire of the same head is reported in checked builds
    /// ([`Violation::DoubleRetire`]) and ignored.
    #[inline]
    pub unsafe fn call_rcu(&self, head: NonNull<RcuHead>, free: HeadFreeFn) {
        // SAFETY: contracts 1-3 forwarded; `Via::CpuLanes` adds none.
        unsafe { self.call_rcu_via(Via::CpuLanes, head, free) }
    }

    /// [`call_rcu`](Self::call_rcu) through the lanes `via` names.
    ///
    /// # Safety
    /// 1-3. As [`call_rcu`](Self::call_rcu).
    /// 4. As [`Shared::push_record_via`].
    #[inline]
    pub(crate) unsafe fn call_rcu_via(
        &self,
        via: Via<'_>,
        head: NonNull<RcuHead>,
        free: HeadFreeFn,
    ) {
        // SAFETY: contract 1: the head is live. (A second retire is caught
        // only while the first is pending, as in `kvfree_rcu`.)
        if context::CHECKS && unsafe { head.as_ref() }.mark_retired() {
            context::report(Violation::DoubleRetire);
            return;
        }
        // The page path stores `free` as a record kind, a `FreeFn`: the two
        // function types differ only in the pointee of their `NonNull`
        // argument, and `NonNull<T>` and `NonNull<U>` (sized `T`, `U`) are
        // ABI-compatible, so calling `free` through a `FreeFn` with
        // `head.cast()` is calling it with `head` (std's "ABI compatibility"
        // rules for function pointers).
        // SAFETY: same size, and ABI-compatible as argued above.
        let record_free = unsafe { core::mem::transmute::<HeadFreeFn, FreeFn>(free) };
        // SAFETY: contract 4.
        if unsafe { self.shared.push_record_via(via, head.cast(), record_free) }.is_err() {
            // SAFETY: contract 1 (a live head only the service writes) and 2
            // (`free(head)` is sound once, after the batch's grace period).
            unsafe { self.shared.queue_head(head, free) };
        }
    }

    /// Retires a head-less object: dropped as a `Box<T>` after a grace
    /// period, or `Err(ptr)` at once when no page is available (the caller
    /// still owns it). Never allocates, locks or blocks: any context.
    ///
    /// ```
    /// # use std::{ptr::NonNull, sync::Arc};
    /// # use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let p = NonNull::from(Box::leak(Box::new([0u8; 24])));
    /// // SAFETY: from Box::leak, never published, retired once.
    /// if let Err(p) = unsafe { service.try_kvfree_rcu(p) } {
    ///     // No page right now: keep it, retry later, or (ordinary context)
    ///     // SAFETY: Err handed it back; use kvfree_rcu_mightsleep.
    ///     unsafe { service.kvfree_rcu_mightsleep(p) };
    /// }
    /// ```
    ///
    /// Under a lock, park an `Err` pointer in a [`Parking`](crate::Parking)
    /// (no allocation) and flush it later from ordinary context.
    ///
    /// Unsized objects (`Box<[T]>`, `Box<dyn Trait>`) are refused (`T:
    /// Sized`): a page record has room for a thin pointer only. Box the box
    /// (`Box<Box<[T]>>`), or keep the length in a header next to an
    /// [`RcuHead`] and use [`call_rcu`](Self::call_rcu) (docs/DESIGN.md,
    /// "Retire paths").
    ///
    /// # Safety
    /// As [`kvfree_rcu`](Self::kvfree_rcu) 1-3; on `Err` nothing happened and
    /// the caller owns `ptr` again.
    #[inline]
    pub unsafe fn try_kvfree_rcu<T: Send + 'static>(
        &self,
        ptr: NonNull<T>,
    ) -> Result<(), NonNull<T>> {
        // SAFETY: `Via::CpuLanes` has no contract.
        unsafe {
            self.shared
                .try_push(Via::CpuLanes, ptr.cast(), free_box::<T>)
        }
        .map_err(NonNull::cast)
    }

    /// Retires memory that is not a `Box` (a slab or arena slot): after a
    /// grace period the worker (or a reclaim helper) calls `free(ptr)`, on
    /// its own thread. `Err(ptr)` at once when no page is available. Any
    /// context.
    ///
    /// ```
    /// # use std::{ptr::NonNull, sync::Arc};
    /// # use kvfree_rcu::{KvfreeRcu, Rcu};
    /// unsafe fn free_u64(p: NonNull<()>) {
    ///     // SAFETY: the caller retired a Box<u64>.
    ///     drop(unsafe { Box::from_raw(p.cast::<u64>().as_ptr()) });
    /// }
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let p = NonNull::from(Box::leak(Box::new(5u64))).cast::<()>();
    /// // SAFETY: `free_u64` frees exactly this kind of allocation, once.
    /// unsafe { service.kvfree_rcu_with(p, free_u64) }.expect("a page was available");
    /// ```
    ///
    /// # Safety
    /// 1. Calling `free(ptr)` once, from any thread, after a grace period, is
    ///    sound, and frees what `ptr` points to.
    /// 2. `ptr` is unreachable for new readers and retired once.
    #[inline]
    pub unsafe fn kvfree_rcu_with(
        &self,
        ptr: NonNull<()>,
        free: FreeFn,
    ) -> Result<(), NonNull<()>> {
        // SAFETY: `Via::CpuLanes` has no contract.
        unsafe { self.shared.try_push(Via::CpuLanes, ptr, free) }
    }

    /// Retires a head-less object from **ordinary context**: when no page is
    /// available it allocates one for this CPU's lane and records the object
    /// there (the next retires on this CPU use the same page; counted in
    /// [`Stats::inline_page_allocs`]), and only if that allocation fails does
    /// it wait for a grace period and drop the object inline (counted in
    /// [`Stats::freed_inline`]). Reports [`Violation::SleepInAtomic`] in checked builds when called in
    /// atomic context (it always checks, even when a page is available, as
    /// the kernel's `might_sleep()` does), and
    /// [`Violation::WaitForGpInReadSection`] when called inside a read-side
    /// critical section of the service's grace-period source (always too).
    ///
    /// # Safety
    /// As [`kvfree_rcu`](Self::kvfree_rcu) 1-3.
    ///
    /// # Example
    /// ```
    /// use std::{ptr::NonNull, sync::Arc};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let p = NonNull::from(Box::leak(Box::new(String::from("old"))));
    /// // SAFETY: from Box::leak, never published, retired once; ordinary context.
    /// unsafe { service.kvfree_rcu_mightsleep(p) };
    /// service.barrier();
    /// let stats = service.stats();
    /// assert_eq!(stats.freed + stats.freed_inline, 1);
    /// assert_eq!(stats.freed_inline, 0); // a page was there, or was allocated
    /// ```
    pub unsafe fn kvfree_rcu_mightsleep<T: Send + 'static>(&self, ptr: NonNull<T>) {
        // SAFETY: contract 1 makes `free_box::<T>` the right free function;
        // 2 and 3 are forwarded.
        unsafe { self.kvfree_rcu_with_mightsleep(ptr.cast(), free_box::<T>) }
    }

    /// [`kvfree_rcu_mightsleep`](Self::kvfree_rcu_mightsleep) for a pointer
    /// with its free function (what [`Parking::flush`](crate::Parking::flush)
    /// retires). Ordinary context.
    ///
    /// # Safety
    /// As [`kvfree_rcu_with`](Self::kvfree_rcu_with) 1-2.
    pub(crate) unsafe fn kvfree_rcu_with_mightsleep(&self, ptr: NonNull<()>, free: FreeFn) {
        might_sleep();
        context::might_wait_for_grace_period(&*self.shared.gp);
        if self.shared.push_record(ptr, free).is_err() {
            self.shared.request_refill();
            // Ordinary context (the caller's contract, as the kernel's
            // `can_alloc`): a page allocation beats a grace-period wait.
            if self.shared.push_with_new_page(ptr, free).is_ok() {
                return;
            }
            self.shared.gp.synchronize();
            // SAFETY: contract 1 (`free(ptr)` is sound once after a grace
            // period), 2 (unreachable, retired once), and a full grace
            // period has just elapsed.
            unsafe { free(ptr) };
            self.shared.count_inline_free();
        }
    }

    /// [`kvfree_rcu_mightsleep`](Self::kvfree_rcu_mightsleep) for callers
    /// that carry a [`Sleepable`] token: the compiler rejects the call while a
    /// [`RawSpinLock::lock_with_token`](crate::RawSpinLock::lock_with_token) guard borrows it.
    ///
    /// # Safety
    /// As [`kvfree_rcu`](Self::kvfree_rcu) 1-3.
    ///
    /// # Example
    /// ```
    /// use std::{ptr::NonNull, sync::Arc};
    /// use kvfree_rcu::{KvfreeRcu, Rcu, context::Sleepable};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let ctx = Sleepable::new();
    /// let p = NonNull::from(Box::leak(Box::new(7u64)));
    /// // SAFETY: from Box::leak, never published, retired once.
    /// unsafe { service.kvfree_rcu_mightsleep_with_token(&ctx, p) };
    /// ```
    pub unsafe fn kvfree_rcu_mightsleep_with_token<T: Send + 'static>(
        &self,
        _ctx: &Sleepable,
        ptr: NonNull<T>,
    ) {
        // SAFETY: forwarded contract.
        unsafe { self.kvfree_rcu_mightsleep(ptr) }
    }

    /// [`barrier`](Self::barrier) for callers that carry a [`Sleepable`] token.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu, context::Sleepable};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let ctx = Sleepable::new();
    /// service.barrier_with_token(&ctx);
    /// ```
    pub fn barrier_with_token(&self, _ctx: &Sleepable) {
        self.barrier();
    }

    /// Returns once every object retired before the call has been freed.
    /// Ordinary context: it waits for grace periods, so never inside a
    /// read-side critical section of the service's grace-period source
    /// (reported as [`Violation::WaitForGpInReadSection`] in checked builds;
    /// it would never return).
    ///
    /// ```
    /// use std::{ptr::NonNull, sync::Arc};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let p = NonNull::from(Box::leak(Box::new([1u32; 4])));
    /// // SAFETY: from Box::leak, never published, retired once.
    /// unsafe { service.kvfree_rcu_mightsleep(p) };
    /// service.barrier(); // the array has been freed
    /// assert_eq!(service.stats().pending, 0);
    /// ```
    ///
    /// From a destructor this same service is running, it returns at once
    /// without waiting (it would wait for itself; reported as
    /// [`Violation::WaitInsideFree`] in checked builds). From a destructor
    /// another service runs, it works normally.
    pub fn barrier(&self) {
        might_sleep();
        context::might_wait_for_grace_period(&*self.shared.gp);
        if self.shared.reentered_from_own_free() {
            return;
        }
        self.shared.barrier();
    }

    /// For memory pressure: collects and frees what it can now, then frees
    /// every cached empty page; returns the pages freed. The retire path uses
    /// its fallbacks until the worker refills on demand. Ordinary context.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
    /// let freed = service.shrink(); // on memory pressure
    /// assert!(freed > 0); // the pages cached at build time
    /// assert_eq!(service.stats().pages_cached, 0);
    /// ```
    ///
    /// From a destructor this same service is running, it returns 0 at once
    /// (as [`barrier`](Self::barrier) does).
    pub fn shrink(&self) -> usize {
        might_sleep();
        if self.shared.reentered_from_own_free() {
            return 0;
        }
        self.shared.shrink()
    }

    /// Runs one round of the worker's duty on the calling thread (refill,
    /// collect, advance, free): for services built with
    /// [`Builder::manual`], and harmless alongside a worker. Ordinary context.
    ///
    /// ```
    /// use std::{ptr::NonNull, sync::Arc};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
    /// let p = NonNull::from(Box::leak(Box::new(5u64)));
    /// // SAFETY: from Box::leak, never published, retired once.
    /// unsafe { service.kvfree_rcu_mightsleep(p) };
    /// // No worker thread: drive the service by hand.
    /// for _ in 0..1_000 {
    ///     if service.stats().pending == 0 {
    ///         break;
    ///     }
    ///     service.run_once();
    /// }
    /// assert_eq!(service.stats().pending, 0);
    /// ```
    ///
    /// From a destructor this same service is running, it returns an empty
    /// report at once (as [`barrier`](Self::barrier) does): the round would
    /// take the lock the running free holds. If the round panics (a
    /// panicking [`GracePeriod`]), the panic reaches the caller.
    pub fn run_once(&self) -> RoundReport {
        might_sleep();
        if self.shared.reentered_from_own_free() {
            return RoundReport::default();
        }
        self.shared.round(Trigger::Forced)
    }

    /// Test hook (hidden: see "Test hooks" in the crate docs). Stops the
    /// worker from doing rounds until [`resume_worker`](Self::resume_worker)
    /// (to test stalls: the retire path keeps working on its caches and
    /// fallbacks). `barrier`, `shrink` and `run_once` still work.
    ///
    /// ```
    /// use std::{ptr::NonNull, sync::Arc};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// service.pause_worker();
    /// let p = NonNull::from(Box::leak(Box::new(1u8)));
    /// // SAFETY: from Box::leak, never published, retired once.
    /// unsafe { service.kvfree_rcu_mightsleep(p) }; // still works
    /// service.barrier(); // runs on this thread
    /// service.resume_worker();
    /// ```
    #[doc(hidden)]
    pub fn pause_worker(&self) {
        // Relaxed: a test switch with no data behind it; the worker reads
        // it before each round.
        self.shared.paused.store(true, Ordering::Relaxed);
    }

    /// Test hook (hidden). Lets a paused worker run again.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// service.pause_worker();
    /// service.resume_worker();
    /// ```
    #[doc(hidden)]
    pub fn resume_worker(&self) {
        // Relaxed: as in `pause_worker`.
        self.shared.paused.store(false, Ordering::Relaxed);
        self.shared.wake.kick();
    }

    /// Test hook (hidden). Makes the next `n` page allocations of the
    /// refill path fail (fault injection for tests).
    ///
    /// ```
    /// use std::{ptr::NonNull, sync::Arc};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
    /// service.shrink(); // no cached page left: the next retire finds none
    /// service.inject_alloc_failures(1);
    /// let p = NonNull::from(Box::leak(Box::new(1u32)));
    /// // SAFETY: from Box::leak, never published, retired once.
    /// let p = unsafe { service.try_kvfree_rcu(p) }.unwrap_err(); // asks for a refill
    /// assert!(service.run_once().refill_failed); // the injected failure
    /// assert!(service.stats().alloc_failures >= 1);
    /// // SAFETY: `Err` handed `p` back: it is ours again, and was never shared.
    /// drop(unsafe { Box::from_raw(p.as_ptr()) });
    /// ```
    #[doc(hidden)]
    pub fn inject_alloc_failures(&self, n: usize) {
        self.shared.pool.inject_alloc_failures(n);
    }

    /// Test hook (hidden): makes the next `n` rounds (the worker's, `run_once`'s)
    /// panic at their start, to test the worker's panic policy.
    #[doc(hidden)]
    pub fn inject_round_panics(&self, n: u64) {
        self.shared.inject_round_panics(n);
    }

    /// A snapshot of the counters.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// let stats = service.stats();
    /// assert_eq!((stats.freed, stats.pending), (0, 0));
    /// assert!(stats.pages_cached > 0); // filled at build time
    /// ```
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

impl<G: GracePeriod> fmt::Debug for KvfreeRcu<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvfreeRcu")
            .field("stats", &self.stats())
            .field("worker", &self.worker.is_some())
            .finish()
    }
}

impl<G: GracePeriod> Drop for KvfreeRcu<G> {
    /// Stops the worker, waits for a grace period and frees every object
    /// still queued; the pool then frees its pages. Inside a read-side
    /// critical section of the grace-period source that wait never ends:
    /// reported as [`Violation::WaitForGpInReadSection`] in checked builds.
    ///
    /// Dropping the service from inside a destructor that the service itself
    /// is running (an object owning the last handle) cannot wait there (the
    /// free loop further up this thread's stack holds the lock the drain
    /// needs), so the drain is handed to a thread that is not inside the
    /// free: the worker, detached, frees what remains on its way out (its
    /// final barrier, once the running free returns). A manual service has
    /// no worker, so a short-lived thread does that final barrier (if it
    /// cannot be spawned, what remains is leaked, with a line on stderr).
    /// Nothing deadlocks and nothing is lost; checked builds report the
    /// nesting ([`Violation::WaitInsideFree`]). Dropping a service from a
    /// destructor another service runs is an ordinary drop.
    fn drop(&mut self) {
        let nested = self.shared.reentered_from_own_free();
        if let Some(worker) = self.worker.take() {
            // Release: pairs with the worker's Acquire load of `stop` after
            // its wait, so this thread's last retires happen before the
            // worker's exit barrier.
            self.shared.stop.store(true, Ordering::Release);
            self.shared.wake.kick();
            if nested {
                return; // detached: see above
            }
            // Reported after the stop: if the report panics, the detached
            // worker still runs its exit barrier once this section ends.
            context::might_wait_for_grace_period(&*self.shared.gp);
            // A round's panic is caught in the worker, so an error here means
            // its exit barrier panicked (a panicking `GracePeriod`); the
            // barrier below drains on this thread instead (and panics here
            // if the source panics again).
            let _ = worker.join();
        } else if nested {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("kvfree-rcu-drop".to_owned())
                .spawn(move || shared.barrier());
            if spawned.is_err() {
                context::write_stderr(
                    "kvfree-rcu: a manual service dropped from its own destructor could not spawn a thread to free what remains; it is leaked",
                );
                core::mem::forget(self.shared.clone());
            }
            return;
        } else {
            context::might_wait_for_grace_period(&*self.shared.gp);
        }
        self.shared.barrier();
    }
}
