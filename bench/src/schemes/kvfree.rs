//! kvfree-rcu itself, in its two forms: headed objects (`kvfree_rcu`, never
//! fails) and head-less ones (`try_kvfree_rcu`, which returns `Err` when no
//! page is available; ordinary-context callers then use
//! `kvfree_rcu_mightsleep`, which allocates a page inline, and waits a grace
//! period and frees inline only if that allocation fails).
//! Each instance owns its own `Rcu` domain and service with default settings.
//! With `KVFREE_BENCH_STATS` set in the environment, each prints its
//! service's `Stats` on stderr after its flood's barrier (a diagnostic:
//! grace periods, fallbacks, dry lanes, helpers).

use super::Scheme;
use crate::object::FloodObj;
use crossbeam_utils::CachePadded;
use kvfree_rcu::{
    BuildError, KvfreeRcu, LocalRetirer, Rcu, ReclaimAffinity, ReclaimPriority, Stats,
};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// `KvfreeRcu::kvfree_rcu` on headed objects.
#[derive(Debug)]
pub struct KvfreeHeaded {
    service: KvfreeRcu,
    name: &'static str,
}

/// `LocalRetirer::kvfree_rcu` on headed objects: each flood thread
/// retires through a handle of its own (`KvfreeRcu::local_retirer`), kept
/// in a thread-local as a program using the global service would keep it.
/// So that the handle can borrow the service for `'static`, the service is
/// leaked (the main job runs each configuration in a process of its own).
///
/// With [`LocalFreeing::ThisThread`] each thread also calls
/// `LocalRetirer::reclaim` every [`RECLAIM_EVERY`] retires, inside the
/// timed call that reaches the count, as crossbeam-epoch's `pin` collects
/// inside its calls: the objects whose grace period has ended are then
/// freed on the thread that allocated them.
#[derive(Debug)]
pub struct KvfreeLocal {
    service: &'static KvfreeRcu,
    freeing: LocalFreeing,
}

/// Who frees what a [`KvfreeLocal`] flood retires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalFreeing {
    /// The service's worker (and its helpers), as for every other call.
    Worker,
    /// Each retiring thread, through `LocalRetirer::reclaim`.
    ThisThread,
}

/// Retires between two `reclaim` calls with [`LocalFreeing::ThisThread`]:
/// about half a page.
pub const RECLAIM_EVERY: u32 = 256;

/// One flood thread's handle and its retires since its last `reclaim`.
struct LocalState {
    /// The address of the service the handle retires into.
    service: usize,
    handle: LocalRetirer<'static>,
    since_reclaim: std::cell::Cell<u32>,
}

thread_local! {
    /// This thread's handle, between `register_thread` and
    /// `unregister_thread`.
    static LOCAL: RefCell<Option<LocalState>> = const { RefCell::new(None) };
}

/// `KvfreeRcu::try_kvfree_rcu` on head-less objects.
#[derive(Debug)]
pub struct KvfreeHeadless {
    service: KvfreeRcu,
    /// Calls whose `try_kvfree_rcu` returned `Err` (touched only then).
    fallbacks: CachePadded<AtomicU64>,
}

impl KvfreeHeaded {
    /// A fresh domain and service (default settings, worker running).
    pub fn new() -> KvfreeHeaded {
        KvfreeHeaded {
            service: KvfreeRcu::new(Arc::new(Rcu::new())),
            name: "kvfree-rcu headed",
        }
    }

    /// The same, with the worker and helpers freeing each page on the CPU
    /// that filled it (`ReclaimAffinity::FillingCpu`).
    pub fn filling_cpu() -> KvfreeHeaded {
        KvfreeHeaded::reclaiming(ReclaimAffinity::FillingCpu, ReclaimPriority::Inherited)
            .expect("the inherited priority is never refused")
    }

    /// The same, with the worker and helpers at nice -5
    /// (`ReclaimPriority::Nice`) and placed by `affinity`, or why the
    /// system refuses the nice value (lowering one needs `CAP_SYS_NICE`;
    /// Linux only).
    pub fn try_reclaim_nice(affinity: ReclaimAffinity) -> Result<KvfreeHeaded, BuildError> {
        KvfreeHeaded::reclaiming(affinity, ReclaimPriority::Nice(RECLAIM_NICE))
    }

    /// [`try_reclaim_nice`](Self::try_reclaim_nice).
    ///
    /// # Panics
    /// With the `BuildError`'s message where the system refuses the nice
    /// value: the main job leaves the scheme out there
    /// ([`SchemeKind::unavailable`](super::SchemeKind::unavailable)).
    pub fn reclaim_nice(affinity: ReclaimAffinity) -> KvfreeHeaded {
        KvfreeHeaded::try_reclaim_nice(affinity).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A service whose reclaim threads have this placement and priority,
    /// named after them.
    fn reclaiming(
        affinity: ReclaimAffinity,
        priority: ReclaimPriority,
    ) -> Result<KvfreeHeaded, BuildError> {
        let name = match (affinity, priority) {
            (ReclaimAffinity::FillingCpu, ReclaimPriority::Inherited) => "kvfree-rcu affine",
            (ReclaimAffinity::FillingCpu, _) => "kvfree-rcu affine nice -5",
            (_, ReclaimPriority::Inherited) => "kvfree-rcu headed",
            _ => "kvfree-rcu nice -5",
        };
        Ok(KvfreeHeaded {
            service: KvfreeRcu::builder(Arc::new(Rcu::new()))
                .reclaim_affinity(affinity)
                .reclaim_priority(priority)
                .try_build()?,
            name,
        })
    }

    /// The service's counters.
    pub fn stats(&self) -> Stats {
        self.service.stats()
    }
}

/// The reclaim threads' nice value in the `kvfree-rcu nice -5` and
/// `kvfree-rcu affine nice -5` schemes: about three times a nice-0
/// producer's scheduler weight.
pub(super) const RECLAIM_NICE: i8 = -5;

impl Default for KvfreeHeaded {
    fn default() -> Self {
        KvfreeHeaded::new()
    }
}

impl KvfreeHeadless {
    /// A fresh domain and service (default settings, worker running).
    pub fn new() -> KvfreeHeadless {
        KvfreeHeadless {
            service: KvfreeRcu::new(Arc::new(Rcu::new())),
            fallbacks: CachePadded::new(AtomicU64::new(0)),
        }
    }

    /// The service's counters.
    pub fn stats(&self) -> Stats {
        self.service.stats()
    }
}

impl Default for KvfreeHeadless {
    fn default() -> Self {
        KvfreeHeadless::new()
    }
}

impl Scheme for KvfreeHeaded {
    fn name(&self) -> &'static str {
        self.name
    }

    #[inline]
    unsafe fn retire(&self, obj: NonNull<FloodObj>) {
        // SAFETY: the trait's contract: a Box<FloodObj> (FloodObj::alloc),
        // unreachable, retired once, unused afterwards.
        unsafe { self.service.kvfree_rcu(obj) }
    }

    fn barrier(&self) {
        self.service.barrier();
        print_stats_if_asked(&self.service);
    }

    fn grace_periods(&self) -> Option<u64> {
        Some(self.service.grace_period().grace_periods())
    }

    fn peak_backlog(&self) -> Option<u64> {
        Some(self.service.stats().peak_pending)
    }

    fn fallbacks(&self) -> Option<u64> {
        Some(self.service.stats().queued_heads)
    }

    fn stall_worker(&self) -> bool {
        self.service.pause_worker();
        true
    }

    fn resume_worker(&self) {
        self.service.resume_worker();
    }
}

impl KvfreeLocal {
    /// A fresh domain and service (default settings, worker running),
    /// leaked (see the type's docs).
    pub fn new(freeing: LocalFreeing) -> KvfreeLocal {
        KvfreeLocal {
            service: Box::leak(Box::new(KvfreeRcu::new(Arc::new(Rcu::new())))),
            freeing,
        }
    }

    /// The service's counters.
    pub fn stats(&self) -> Stats {
        self.service.stats()
    }

    fn id(&self) -> usize {
        std::ptr::from_ref(self.service).addr()
    }
}

impl Default for KvfreeLocal {
    fn default() -> Self {
        KvfreeLocal::new(LocalFreeing::Worker)
    }
}

impl Scheme for KvfreeLocal {
    fn name(&self) -> &'static str {
        match self.freeing {
            LocalFreeing::Worker => "kvfree-rcu local",
            LocalFreeing::ThisThread => "kvfree-rcu local reclaim",
        }
    }

    fn register_thread(&self) {
        let state = LocalState {
            service: self.id(),
            handle: self.service.local_retirer(),
            since_reclaim: std::cell::Cell::new(0),
        };
        LOCAL.with_borrow_mut(|local| *local = Some(state));
    }

    fn unregister_thread(&self) {
        // Dropping the handle hands its open page to the worker.
        LOCAL.with_borrow_mut(|local| *local = None);
    }

    #[inline]
    unsafe fn retire(&self, obj: NonNull<FloodObj>) {
        LOCAL.with_borrow(|local| match local {
            Some(state) if state.service == self.id() => {
                // SAFETY: the trait's contract: a Box<FloodObj>
                // (FloodObj::alloc), unreachable, retired once, unused
                // afterwards.
                unsafe { state.handle.kvfree_rcu(obj) };
                if self.freeing == LocalFreeing::ThisThread {
                    let n = state.since_reclaim.get() + 1;
                    if n == RECLAIM_EVERY {
                        // The flood threads are ordinary context.
                        state.handle.reclaim();
                        state.since_reclaim.set(0);
                    } else {
                        state.since_reclaim.set(n);
                    }
                }
            }
            // A thread that did not register: the service's own call.
            // SAFETY: as above.
            _ => unsafe { self.service.kvfree_rcu(obj) },
        })
    }

    fn barrier(&self) {
        self.service.barrier();
        print_stats_if_asked(self.service);
    }

    fn grace_periods(&self) -> Option<u64> {
        Some(self.service.grace_period().grace_periods())
    }

    fn peak_backlog(&self) -> Option<u64> {
        Some(self.service.stats().peak_pending)
    }

    fn fallbacks(&self) -> Option<u64> {
        Some(self.service.stats().queued_heads)
    }

    fn stall_worker(&self) -> bool {
        self.service.pause_worker();
        true
    }

    fn resume_worker(&self) {
        self.service.resume_worker();
    }
}

impl Scheme for KvfreeHeadless {
    fn name(&self) -> &'static str {
        "kvfree-rcu head-less"
    }

    #[inline]
    unsafe fn retire(&self, obj: NonNull<FloodObj>) {
        // SAFETY: the trait's contract: a Box<FloodObj>, unreachable,
        // retired once; on Err nothing happened and we own it again.
        if let Err(obj) = unsafe { self.service.try_kvfree_rcu(obj) } {
            // Relaxed: a statistic.
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            // SAFETY: as above; the bench threads are ordinary context.
            unsafe { self.service.kvfree_rcu_mightsleep(obj) }
        }
    }

    fn barrier(&self) {
        self.service.barrier();
        print_stats_if_asked(&self.service);
    }

    fn grace_periods(&self) -> Option<u64> {
        Some(self.service.grace_period().grace_periods())
    }

    fn peak_backlog(&self) -> Option<u64> {
        Some(self.service.stats().peak_pending)
    }

    fn fallbacks(&self) -> Option<u64> {
        // Relaxed: a statistic.
        Some(self.fallbacks.load(Ordering::Relaxed))
    }

    fn stall_worker(&self) -> bool {
        self.service.pause_worker();
        true
    }

    fn resume_worker(&self) {
        self.service.resume_worker();
    }
}

/// Prints `service`'s counters on stderr when `KVFREE_BENCH_STATS` is set
/// (see the module docs).
fn print_stats_if_asked(service: &KvfreeRcu) {
    if std::env::var_os("KVFREE_BENCH_STATS").is_some() {
        eprintln!("{:#?}", service.stats());
    }
}
