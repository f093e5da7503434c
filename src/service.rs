//! `KvfreeRcu`: the retire calls users make, and the service's lifetime.
//!
//! Every retire call first tries the page pool (one `swap` and one `store` on
//! this CPU's slot, plus the record write). When the pool has no page the
//! call's *name* says what happens, never a guess about the context:
//! - [`KvfreeRcu::kvfree_rcu`] (headed objects) links the object's embedded
//!   [`RcuHead`] onto this CPU's head list: it never fails, in any context;
//! - [`KvfreeRcu::try_kvfree_rcu`] and [`KvfreeRcu::kvfree_rcu_with`] return
//!   `Err(ptr)` at once: the caller keeps the object and decides;
//! - [`KvfreeRcu::kvfree_rcu_mightsleep`] waits for a grace period and frees
//!   inline: ordinary context only, checked by `might_sleep()`.
//!
//! Every fallback, and every push that leaves a cache under its low
//! watermark, rings the worker's wake word (allocation-free, lock-free). See
//! `docs/DESIGN.md` for the protocols and `docs/CONTEXTS.md` for which call is
//! allowed where.

use crate::builder::{BuildError, Builder};
use crate::context::{self, Sleepable, Violation, might_sleep};
use crate::drain::{Drain, OpenPages};
use crate::fork::{self, WorkerHandle};
use crate::gp::{GracePeriod, Rcu};
use crate::head::{self, HeadLists, RcuHead, RcuHeaded};
use crate::kind::{FreeFn, free_box, kind_of};
use crate::pool::{self, Pool};
use crate::stats::Stats;
use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering, Patience};
use crate::wake::WakeWord;
use crate::worker::{self, RoundReport, WorkerState};
use crossbeam_utils::CachePadded;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

/// Timing configuration the worker reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ServiceConfig {
    pub(crate) drain_interval: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) max_refill_backoff: Duration,
}

/// State shared by the service handle and its worker thread.
pub(crate) struct Shared<G: GracePeriod> {
    pub(crate) gp: Arc<G>,
    pub(crate) pool: Pool,
    pub(crate) heads: HeadLists,
    pub(crate) wake: WakeWord,
    pub(crate) refill_requested: CachePadded<AtomicBool>,
    pub(crate) stop: AtomicBool,
    pub(crate) paused: AtomicBool,
    pub(crate) config: ServiceConfig,
    pub(crate) drain: Drain<G::State>,
    pub(crate) worker_state: Mutex<WorkerState>,
    pub(crate) worker_wakeups: AtomicU64,
    /// Worker rounds that panicked (caught; the worker goes on).
    pub(crate) worker_panics: AtomicU64,
    /// Test hook: the next this many rounds panic at their start.
    pub(crate) injected_round_panics: AtomicU64,
    /// Fallback-path counters (cold: only touched when the pool had no page).
    queued_heads: CachePadded<AtomicU64>,
    try_failed: CachePadded<AtomicU64>,
    freed_inline: CachePadded<AtomicU64>,
}

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
    pub fn new(rcu: Arc<Rcu>) -> KvfreeRcu<Rcu> {
        Builder::new(rcu).build()
    }

    /// A [`Builder`] over `rcu`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
    /// # drop(service);
    /// ```
    pub fn builder(rcu: Arc<Rcu>) -> Builder<Rcu> {
        Builder::new(rcu)
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
        let slots = pool.lanes();
        let shared = Arc::new(Shared {
            gp: b.gp,
            pool,
            heads: HeadLists::new(slots),
            wake: WakeWord::default(),
            refill_requested: CachePadded::new(AtomicBool::new(false)),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            config: ServiceConfig {
                drain_interval: b.drain_interval,
                poll_interval: b.poll_interval,
                max_refill_backoff: b.max_refill_backoff,
            },
            drain: Drain::new(),
            worker_state: Mutex::new(WorkerState::new()),
            worker_wakeups: AtomicU64::new(0),
            worker_panics: AtomicU64::new(0),
            injected_round_panics: AtomicU64::new(0),
            queued_heads: CachePadded::new(AtomicU64::new(0)),
            try_failed: CachePadded::new(AtomicU64::new(0)),
            freed_inline: CachePadded::new(AtomicU64::new(0)),
        });
        // Fill the caches before the first retire, so a fresh service does
        // not start in its fallbacks.
        shared.round(false, false);
        // A forked child repairs the service (fork.rs).
        fork::track(&shared);
        let worker = if b.spawn_worker {
            let s = shared.clone();
            let handle = std::thread::Builder::new()
                .name(b.thread_name)
                .spawn(move || worker::run(s))
                .map_err(BuildError::Spawn)?;
            Some(WorkerHandle::new(handle))
        } else {
            None
        };
        Ok(KvfreeRcu { shared, worker })
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
        const { head::assert_head_fits::<T>() };
        // SAFETY: RcuHeaded contract 1 (checked above): the head is a field of
        // the object, so the offset stays inside its allocation; deriving from
        // `ptr` keeps the whole object's provenance.
        let head = unsafe { ptr.byte_add(T::RCU_HEAD_OFFSET) }.cast::<RcuHead>();
        // SAFETY: the object is live (contract 1 and 3: not yet freed).
        if context::CHECKS && unsafe { head.as_ref() }.mark_retired() {
            context::report(Violation::DoubleRetire);
            return;
        }
        if self.shared.push_record(ptr.cast(), free_box::<T>).is_err() {
            // (1) the head is live and, by contract 3 and RcuHeaded contract
            // 2, only the service writes it from now on; (2) `free_headed`
            // drops the `Box<T>` the head lives in (contract 1), once.
            // SAFETY: (1) and (2) above; freed after the batch's grace period.
            unsafe {
                let cpu = crate::pool::current_cpu();
                self.shared.heads.push(cpu, head, head::free_headed::<T>);
            }
            self.shared.queued_heads.fetch_add(1, Ordering::Relaxed);
            self.shared.request_refill();
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
    /// # Safety
    /// As [`kvfree_rcu`](Self::kvfree_rcu) 1-3; on `Err` nothing happened and
    /// the caller owns `ptr` again.
    #[inline]
    pub unsafe fn try_kvfree_rcu<T: Send + 'static>(
        &self,
        ptr: NonNull<T>,
    ) -> Result<(), NonNull<T>> {
        self.shared
            .try_push(ptr.cast(), free_box::<T>)
            .map_err(NonNull::cast)
    }

    /// Retires memory that is not a `Box` (a slab or arena slot): after a
    /// grace period the worker calls `free(ptr)`, on its own thread. `Err(ptr)`
    /// at once when no page is available. Any context.
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
        self.shared.try_push(ptr, free)
    }

    /// Retires a head-less object from **ordinary context**: when no page is
    /// available it waits for a grace period and drops the object inline.
    /// Reports [`Violation::SleepInAtomic`] in checked builds when called in
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
    /// ```
    pub unsafe fn kvfree_rcu_mightsleep<T: Send + 'static>(&self, ptr: NonNull<T>) {
        might_sleep();
        context::might_wait_for_grace_period(&*self.shared.gp);
        if self.shared.push_record(ptr.cast(), free_box::<T>).is_err() {
            self.shared.request_refill();
            self.shared.gp.synchronize();
            // SAFETY: contract 1 (a Box<T>), 2 and 3 (unreachable, retired
            // once), and a full grace period has just elapsed.
            unsafe { free_box::<T>(ptr.cast()) };
            self.shared.freed_inline.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// [`kvfree_rcu_mightsleep`](Self::kvfree_rcu_mightsleep) for callers
    /// that carry a [`Sleepable`] token: the compiler rejects the call while a
    /// [`RawSpinLock::lock_in`](crate::RawSpinLock::lock_in) guard borrows it.
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
    /// unsafe { service.kvfree_rcu_mightsleep_in(&ctx, p) };
    /// ```
    pub unsafe fn kvfree_rcu_mightsleep_in<T: Send + 'static>(
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
    /// service.barrier_in(&ctx);
    /// ```
    pub fn barrier_in(&self, _ctx: &Sleepable) {
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
        let s = &self.shared;
        s.drain
            .collect(&*s.gp, &s.pool, &s.heads, OpenPages::TakeIdle);
        s.gp.advance();
        s.drain.reap(&*s.gp, &s.pool);
        s.pool.shrink()
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
        self.shared.round(true, true)
    }

    /// Stops the worker from doing rounds until [`resume_worker`](Self::resume_worker)
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
    pub fn pause_worker(&self) {
        self.shared.paused.store(true, Ordering::Relaxed);
    }

    /// Lets a paused worker run again.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    /// service.pause_worker();
    /// service.resume_worker();
    /// ```
    pub fn resume_worker(&self) {
        self.shared.paused.store(false, Ordering::Relaxed);
        self.shared.wake.notify();
    }

    /// Makes the next `n` page allocations of the refill path fail (fault
    /// injection for tests).
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
    pub fn inject_alloc_failures(&self, n: usize) {
        self.shared.pool.inject_alloc_failures(n);
    }

    /// Test hook: makes the next `n` rounds (the worker's, `run_once`'s)
    /// panic at their start, to test the worker's panic policy.
    #[doc(hidden)]
    pub fn inject_round_panics(&self, n: u64) {
        self.shared
            .injected_round_panics
            .store(n, Ordering::Relaxed);
        self.shared.wake.notify();
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
        let s = &self.shared;
        let p = s.pool.stats();
        let queued_heads = s.queued_heads.load(Ordering::Relaxed);
        let freed = s.drain.freed.load(Ordering::Relaxed);
        Stats {
            queued_pages: p.records_pushed,
            queued_heads,
            freed,
            pending: (p.records_pushed + queued_heads).saturating_sub(freed),
            freed_inline: s.freed_inline.load(Ordering::Relaxed),
            try_failed: s.try_failed.load(Ordering::Relaxed),
            pages_allocated: p.pages_allocated,
            pages_live: p.pages_live,
            pages_cached: p.pages_cached,
            refill_requests: p.refill_requests,
            alloc_failures: p.alloc_failures,
            grace_periods: s.gp.grace_periods(),
            batches: s.drain.batches.load(Ordering::Relaxed),
            worker_wakeups: s.worker_wakeups.load(Ordering::Relaxed),
            worker_panics: s.worker_panics.load(Ordering::Relaxed),
        }
    }
}

impl<G: GracePeriod> Shared<G> {
    /// The fast path of every retire call: records `ptr` in a page, and
    /// asks for a refill when the push left a cache low. On `NoPage` the
    /// caller runs its own fallback, then asks for the refill itself (after
    /// queueing, so a worker woken by the request finds what was queued).
    #[inline]
    fn push_record(&self, ptr: NonNull<()>, free: FreeFn) -> Result<(), pool::NoPage> {
        let pushed = self.pool.push(ptr, kind_of(free))?;
        if pushed.refill_wanted {
            self.request_refill();
        }
        Ok(())
    }

    /// The head-less calls that hand the object back on `NoPage`.
    #[inline]
    fn try_push(&self, ptr: NonNull<()>, free: FreeFn) -> Result<(), NonNull<()>> {
        self.push_record(ptr, free).map_err(|pool::NoPage| {
            self.try_failed.fetch_add(1, Ordering::Relaxed);
            self.request_refill();
            ptr
        })
    }

    /// Asks the worker to refill: any context.
    #[inline]
    pub(crate) fn request_refill(&self) {
        // Relaxed: the wake word's Release/Acquire orders it for the worker.
        if !self.refill_requested.load(Ordering::Relaxed) {
            self.refill_requested.store(true, Ordering::Relaxed);
        }
        self.wake.notify();
    }

    /// Whether this thread is running a destructor for this service (its
    /// free loop is further up the stack), where waiting for the service's
    /// frees would wait for itself. Always checked: it protects against a
    /// self-deadlock; the checker only reports it.
    pub(crate) fn reentered_from_own_free(&self) -> bool {
        let reentered = self.drain.is_freeing_on_this_thread();
        if reentered && context::CHECKS {
            context::report(Violation::WaitInsideFree);
        }
        reentered
    }

    /// `barrier()` without the context checks (also used by `drop` and the
    /// worker's exit).
    pub(crate) fn barrier(&self) {
        self.drain
            .collect(&*self.gp, &self.pool, &self.heads, OpenPages::TakeAll);
        let target = self.drain.newest_seq();
        let mut patience = Patience::default();
        loop {
            self.drain.reap(&*self.gp, &self.pool);
            if self.drain.completed(target) {
                return;
            }
            if !self.gp.advance() {
                patience.wait();
            }
        }
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
            // Release: pairs with the worker's Acquire load after its wait.
            self.shared.stop.store(true, Ordering::Release);
            self.shared.wake.notify_always();
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
