//! fork() safety for the service: quiesce before the fork, resume in the
//! parent, repair in the child (as liburcu does with `pthread_atfork`).
//!
//! After `fork()` the child has one thread, the one that called `fork()`.
//! Without these handlers a child that uses a service inherited from the
//! parent hangs or worse:
//! - a lock the worker (or another thread) held at that instant (the batch
//!   queue, the free lock, the rounds' state) stays locked forever;
//! - a pool lane that another thread owned mid-push stays `BUSY`, so sealing
//!   (`barrier`, drop) spins;
//! - there is no worker, and `Drop` would join a thread that does not exist;
//! - there are no reclaim helpers, though the batch queue counts them.
//!
//! The RCU domains repair their reader slots in their own handlers
//! (`kvfree_rcu_gp`'s `fork.rs`).
//!
//! **Prepare** (parent, forking thread): for every live service, take its
//! round-state, free, queue and reclaim-board locks. Each is tried without
//! waiting; if one is held, everything taken so far is released and the
//! whole attempt starts again after a yield, so no lock order is needed and a worker
//! waiting for one of these locks (or running destructors under the free
//! lock) finishes first. While they are held no batch is being collected or
//! freed and no refill runs: nothing of the service's own is half done at
//! the fork. The list of services stays locked too, so no creation is half
//! done. **Parent**: release everything. **Child**: for each service take
//! back the pool lanes other threads left `BUSY` (their pages are leaked in
//! the child, see `Pool::reset_after_fork`), forget the parent's reclaim
//! helpers (`reclaim.rs`), then release the locks, and step the fork
//! generation.
//!
//! **The worker in the child.** There is none: a service keeps working as
//! if built with `Builder::manual()`: retire calls queue as usual, and
//! `barrier`, `run_once`, `shrink` and drop drive the rounds on the caller's
//! thread. A worker handle records the fork generation it was spawned in
//! ([`WorkerHandle`]); in a later generation `join` forgets the handle
//! instead of joining a thread that does not exist, and drop's own barrier
//! frees what remains. The handlers allocate nothing in the child (they free
//! the boxes prepare allocated).
//!
//! **Not supported**: `fork()` from a signal handler that interrupted the
//! library, or from a destructor the service runs (the forking thread holds
//! a free lock then: the handlers see that and skip the quiescing, so the
//! parent does not deadlock, but the child's services are not repaired).

use crate::sync::global::AtomicU64;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

/// Forks this process has gone through (stepped in each child): a worker
/// spawned in an older generation does not exist here.
static GENERATION: AtomicU64 = AtomicU64::new(0);

pub(crate) fn generation() -> u64 {
    // Relaxed: only the child's own handler writes it, on this same thread,
    // before `fork()` returns.
    GENERATION.load(Ordering::Relaxed)
}

/// The worker thread's handle and the fork generation it was spawned in.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    handle: JoinHandle<()>,
    generation: u64,
}

impl WorkerHandle {
    pub(crate) fn new(handle: JoinHandle<()>) -> WorkerHandle {
        WorkerHandle {
            handle,
            generation: generation(),
        }
    }

    /// Waits for the worker to exit; in a forked child, where the worker
    /// does not exist, forgets the handle (joining or detaching a thread of
    /// the parent is undefined) and returns at once.
    pub(crate) fn join(self) -> std::thread::Result<()> {
        if self.generation == generation() {
            self.handle.join()
        } else {
            std::mem::forget(self.handle);
            Ok(())
        }
    }
}

#[cfg(all(unix, not(kvfree_loom), not(miri)))]
pub(crate) use handlers::{track, try_lock};

/// Nothing to track where there is no fork (or under loom and Miri).
#[cfg(not(all(unix, not(kvfree_loom), not(miri))))]
pub(crate) fn track<G: crate::gp::GracePeriod>(_shared: &std::sync::Arc<crate::shared::Shared<G>>) {
}

#[cfg(all(unix, not(kvfree_loom), not(miri)))]
mod handlers {
    use super::GENERATION;
    use crate::batch_queue::BatchQueueLocks;
    use crate::gp::GracePeriod;
    use crate::shared::{RoundState, Shared};
    use crate::sync::{Mutex, MutexGuard};
    use core::cell::UnsafeCell;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Once, TryLockError, Weak};

    /// `Mutex::try_lock`, ignoring poison (see `sync::lock`).
    pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
        match m.try_lock() {
            Ok(guard) => Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// A service, seen by the handlers without its type parameter.
    trait Quiesce: Send + Sync {
        /// Takes every lock of the service, or none (`None`) if one is held.
        fn try_quiesce(self: Arc<Self>) -> Option<Box<dyn Quiesced>>;
    }

    /// A service whose locks the forking thread holds; dropping it releases
    /// them (the parent handler).
    trait Quiesced {
        /// In the child: repair the service, then release its locks.
        fn repair_in_child(self: Box<Self>);
    }

    /// The locks of one service and the reference that keeps them alive.
    struct QuiescedService<G: GracePeriod> {
        // Declared before `shared`, so dropped (unlocked) before it.
        batches: BatchQueueLocks<'static, G::State>,
        round_state: MutexGuard<'static, RoundState>,
        shared: Arc<Shared<G>>,
    }

    impl<G: GracePeriod> Quiesce for Shared<G> {
        fn try_quiesce(self: Arc<Self>) -> Option<Box<dyn Quiesced>> {
            let round_state = try_lock(&self.round_state)?;
            let batches = self.batches.try_lock_all()?;
            // Fields drop in declaration order, guards first, and
            // `repair_in_child` drops them before it forgets the `Arc`.
            // SAFETY: the guards borrow from `*self`, which the `Arc` moved
            // into the same struct keeps alive (and in place) until then.
            let (batches, round_state) = unsafe {
                (
                    core::mem::transmute::<
                        BatchQueueLocks<'_, G::State>,
                        BatchQueueLocks<'static, G::State>,
                    >(batches),
                    core::mem::transmute::<
                        MutexGuard<'_, RoundState>,
                        MutexGuard<'static, RoundState>,
                    >(round_state),
                )
            };
            Some(Box::new(QuiescedService {
                batches,
                round_state,
                shared: self,
            }))
        }
    }

    impl<G: GracePeriod> Quiesced for QuiescedService<G> {
        fn repair_in_child(self: Box<Self>) {
            let QuiescedService {
                mut batches,
                round_state,
                shared,
            } = *self;
            // Fork from a signal handler or from a destructor the service
            // runs is not supported (the latter is skipped by `prepare`).
            // SAFETY: (1) we are the only thread of a forked child: every
            // thread that owned a lane at the fork is gone; (2) the forking
            // thread is inside `fork()`, not inside a pool call.
            unsafe { shared.pool.reset_after_fork() };
            // The parent's reclaim helpers do not exist here either.
            batches.forget_helpers();
            drop(batches);
            drop(round_state);
            // Never the last reference (the handle or worker that the upgrade
            // found holds another), but the child handler must not risk
            // dropping a service: forget it.
            core::mem::forget(shared);
        }
    }

    /// The live services, and the locks prepare took, behind a lock the
    /// prepare handler holds across the fork (a `std` mutex guard cannot be
    /// kept from one handler to the next).
    struct ServiceList {
        locked: AtomicBool,
        lists: UnsafeCell<Lists>,
    }

    struct Lists {
        services: Vec<Weak<dyn Quiesce>>,
        held: Vec<Box<dyn Quiesced>>,
    }

    // SAFETY: `lists` is only touched by the holder of `locked`.
    unsafe impl Sync for ServiceList {}

    static SERVICES: ServiceList = ServiceList {
        locked: AtomicBool::new(false),
        lists: UnsafeCell::new(Lists {
            services: Vec::new(),
            held: Vec::new(),
        }),
    };

    impl ServiceList {
        /// Ordinary context: spins, then yields, until the lock is ours.
        fn lock(&self) {
            // Acquire: pairs with the Release in `unlock`.
            while self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                std::thread::yield_now();
            }
        }

        /// The holder only.
        fn unlock(&self) {
            // Release: pairs with the Acquire in `lock`.
            self.locked.store(false, Ordering::Release);
        }

        /// The lists. The caller holds the lock, and keeps the reference no
        /// longer than it does.
        #[allow(clippy::mut_from_ref)]
        fn lists(&self) -> &mut Lists {
            // SAFETY: the caller holds the lock, so no other reference exists.
            unsafe { &mut *self.lists.get() }
        }
    }

    /// Adds a new service to the list the handlers walk, registering the
    /// handlers with the first service. Ordinary context.
    pub(crate) fn track<G: GracePeriod>(shared: &Arc<Shared<G>>) {
        static REGISTER: Once = Once::new();
        REGISTER.call_once(|| {
            // SAFETY: the three handlers are `extern "C" fn()` that stay
            // valid for the life of the process.
            let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
            assert_eq!(
                rc, 0,
                "kvfree-rcu: pthread_atfork failed (out of memory): fork() would not be safe"
            );
        });
        let weak: Weak<dyn Quiesce> = Arc::downgrade(shared) as Weak<dyn Quiesce>;
        SERVICES.lock();
        let lists = SERVICES.lists();
        lists.services.retain(|w| w.strong_count() > 0);
        lists.services.push(weak);
        SERVICES.unlock();
    }

    /// Before the fork, on the forking thread: hold every service's locks.
    extern "C" fn prepare() {
        loop {
            SERVICES.lock();
            if crate::freeing::is_freeing() {
                // The forking thread holds a free lock (a destructor run by
                // a service forks): waiting for it would deadlock. The
                // child's services are not repaired (see the module docs).
                return;
            }
            let lists = SERVICES.lists();
            let mut complete = true;
            for weak in &lists.services {
                let Some(service) = weak.upgrade() else {
                    continue;
                };
                match service.try_quiesce() {
                    Some(held) => lists.held.push(held),
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                return;
            }
            // A lock is busy: let its holder finish, then start again.
            lists.held.clear();
            SERVICES.unlock();
            std::thread::yield_now();
        }
    }

    /// After the fork, in the parent: release everything.
    extern "C" fn parent() {
        SERVICES.lists().held.clear();
        SERVICES.unlock();
    }

    /// After the fork, in the child (one thread): repair each service, then
    /// release its locks.
    extern "C" fn child() {
        // Relaxed: this thread is the only one, and reads it later itself.
        GENERATION.fetch_add(1, Ordering::Relaxed);
        for held in SERVICES.lists().held.drain(..) {
            held.repair_in_child();
        }
        SERVICES.unlock();
    }
}
