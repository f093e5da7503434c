//! An RCU domain: the global epoch, the reader slots, advancing, and the
//! blocking and polled grace-period calls.
//!
//! # Protocol (docs/DESIGN.md section 1)
//!
//! `epoch` only ever moves from `E` to `E + 1`, by a CAS in [`Rcu::advance`]
//! whose caller first ran the heavy barrier and then saw no reader slot
//! announcing an epoch other than `E` with a nesting above zero. Readers
//! announce `epoch << 16 | 1` in their own slot on entry (then the light
//! barrier) and drop the nesting on exit (Release).
//!
//! A state is `epoch + 2`, read after a `SeqCst` fence ([`Rcu::get_state`]).
//! Why `+ 2`: a reader that could still hold an object unlinked before
//! `get_state()` read `E` must have loaded the pointer before the unlink was
//! visible, so its announcement precedes our fence, and the epoch it
//! announced is at most `E`. The epoch reaches `E + 2` only through a CAS
//! from `E + 1`, whose advancer ran its heavy barrier after our fence (its
//! load of `E + 1` reads a CAS that came after our read of `E`), so its scan
//! sees that reader's announcement, with an epoch `!= E + 1`, and fails. So
//! the epoch cannot pass `E + 1` while such a reader is inside.
//!
//! With the membarrier flavour the reader has no fence between its epoch load
//! and its pointer loads, so the epoch load is `Acquire` (free on x86, `ldar`
//! on Arm): without it a weakly ordered CPU could load the pointer early and
//! the epoch late, announcing `E + 1` while holding the old object.
//!
//! Any number of threads may advance at once: each CAS moves the epoch only
//! from the value its own scan validated. A preempted reader only makes
//! `advance()` return false until it leaves.

use crate::fork;
use crate::guard::{RcuReadGuard, SlotOwner};
use crate::membarrier::Flavour;
use crate::reader_slot::{ReaderSlot, ReaderSlotTable, epoch_of, nesting, truncate_epoch};
use crate::registry::{self, Registration};
use crate::sync::{Arc, AtomicU64, Ordering, SMALL, fence};
use crate::{CapacityError, DomainId, GpState};
use core::fmt;
use crossbeam_utils::CachePadded;

/// Reader slots of a domain made by [`Rcu::new`].
///
/// ```
/// use kvfree_rcu_gp::{DEFAULT_CAPACITY, Rcu};
/// assert_eq!(Rcu::new().capacity(), DEFAULT_CAPACITY);
/// ```
pub const DEFAULT_CAPACITY: usize = if SMALL { 8 } else { 1024 };

/// The shared state of a domain; [`Rcu`] is an `Arc` of it, and every thread
/// registered in the domain holds another.
pub(crate) struct Domain {
    epoch: CachePadded<AtomicU64>,
    requested: CachePadded<AtomicU64>,
    flavour: Flavour,
    reader_slots: ReaderSlotTable,
}

impl Domain {
    pub(crate) fn reader_slots(&self) -> &ReaderSlotTable {
        &self.reader_slots
    }
}

/// An RCU domain: read-side guards, and blocking and polled grace periods.
///
/// Readers call [`read_lock`](Rcu::read_lock), which is wait-free once the
/// thread is registered (no allocation, lock or syscall). Updaters unlink an
/// object, then either [`synchronize`](Rcu::synchronize) (blocking) or take
/// a [`get_state`](Rcu::get_state) and free the object once
/// [`poll_state`](Rcu::poll_state) accepts it, with someone calling
/// [`advance`](Rcu::advance) meanwhile.
///
/// Cloning is cheap and yields a handle to the same domain.
///
/// ```
/// use kvfree_rcu_gp::Rcu;
/// use std::sync::atomic::{AtomicPtr, Ordering};
///
/// let rcu = Rcu::new();
/// let shared = AtomicPtr::new(Box::into_raw(Box::new(1u32)));
/// {
///     let _guard = rcu.read_lock();
///     // SAFETY: the object is only freed after a grace period.
///     assert_eq!(unsafe { *shared.load(Ordering::Acquire) }, 1);
/// }
/// let old = shared.swap(Box::into_raw(Box::new(2)), Ordering::AcqRel);
/// rcu.synchronize();
/// // SAFETY: unlinked, and every reader that could see it has finished.
/// drop(unsafe { Box::from_raw(old) });
/// # drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
/// ```
#[derive(Clone)]
pub struct Rcu {
    domain: Arc<Domain>,
}

impl Rcu {
    /// A domain with [`DEFAULT_CAPACITY`] reader slots (1024; 8 under Miri
    /// and loom). Ordinary context: allocates the slot table, and on the
    /// process's first domain decides the barrier flavour (two syscalls).
    ///
    /// ```
    /// assert_eq!(kvfree_rcu_gp::Rcu::new().capacity(), kvfree_rcu_gp::DEFAULT_CAPACITY);
    /// ```
    pub fn new() -> Rcu {
        Rcu::with_capacity(DEFAULT_CAPACITY)
    }

    /// A domain with room for `max_threads` concurrently registered threads.
    ///
    /// # Panics
    /// If `max_threads` is 0.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::with_capacity(4);
    /// assert_eq!(rcu.capacity(), 4);
    /// ```
    pub fn with_capacity(max_threads: usize) -> Rcu {
        assert!(
            max_threads > 0,
            "Rcu::with_capacity(0): a domain needs at least one reader slot"
        );
        let domain = Arc::new(Domain {
            epoch: CachePadded::new(AtomicU64::new(0)),
            requested: CachePadded::new(AtomicU64::new(0)),
            flavour: Flavour::get(),
            reader_slots: ReaderSlotTable::new(max_threads),
        });
        // A forked child frees the slots of the threads it lost (fork.rs).
        fork::track(&domain);
        Rcu { domain }
    }

    /// The process-wide default domain, created on first use.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::global();
    /// assert!(std::ptr::eq(rcu, kvfree_rcu_gp::Rcu::global()));
    /// drop(rcu.read_lock());
    /// ```
    pub fn global() -> &'static Rcu {
        // Written twice because a domain made of loom atomics must not
        // outlive one model execution: loom's `lazy_static` is reset per
        // execution, a std `OnceLock` would not be.
        #[cfg(not(kvfree_loom))]
        {
            static GLOBAL: std::sync::OnceLock<Rcu> = std::sync::OnceLock::new();
            GLOBAL.get_or_init(Rcu::new)
        }
        #[cfg(kvfree_loom)]
        {
            loom::lazy_static! {
                static ref GLOBAL: Rcu = Rcu::new();
            }
            &GLOBAL
        }
    }

    /// The identity of this domain, shared by its clones: compare it with
    /// [`RcuReadGuard::domain_id`] to check that a guard protects objects
    /// retired through this domain. Unique among live domains (it is the
    /// address of the shared state, which lives as long as any handle or
    /// guard of the domain does).
    ///
    /// ```
    /// use kvfree_rcu_gp::Rcu;
    /// let rcu = Rcu::new();
    /// assert_eq!(rcu.domain_id(), rcu.clone().domain_id());
    /// assert_ne!(rcu.domain_id(), Rcu::new().domain_id());
    /// ```
    #[inline(always)]
    pub fn domain_id(&self) -> DomainId {
        DomainId(core::ptr::from_ref::<Domain>(&self.domain).addr())
    }

    /// The number of reader slots.
    ///
    /// ```
    /// use kvfree_rcu_gp::Rcu;
    /// assert_eq!(Rcu::with_capacity(4).capacity(), 4);
    /// ```
    pub fn capacity(&self) -> usize {
        self.domain.reader_slots.capacity()
    }

    /// Claim this thread's reader slot now, from ordinary context, so that
    /// later `read_lock()` calls (on a real-time thread, in a signal handler)
    /// never allocate. Idempotent.
    ///
    /// A thread can hold registrations in up to 8 domains; past that this
    /// returns `Ok` and the thread reads through ephemeral slots, which are
    /// allocation-free too but can hit the capacity limit per guard.
    ///
    /// The slot is released when the thread exits, by its thread-local
    /// destructors: `JoinHandle::join` waits for that, but the end of a
    /// `std::thread::scope` may not.
    ///
    /// # Errors
    /// [`CapacityError`] if every slot of the domain is owned by a live
    /// thread.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::with_capacity(1);
    /// rcu.register_current_thread().unwrap();
    /// rcu.register_current_thread().unwrap(); // idempotent
    /// let err = std::thread::scope(|s| s.spawn(|| rcu.register_current_thread()).join().unwrap());
    /// assert_eq!(err.unwrap_err().capacity, 1);
    /// ```
    pub fn register_current_thread(&self) -> Result<(), CapacityError> {
        registry::reader_slot_of(&self.domain).map(|_| ())
    }

    /// True if the current thread holds a slot in this domain.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// assert!(!rcu.is_current_thread_registered());
    /// rcu.register_current_thread().unwrap();
    /// assert!(rcu.is_current_thread_registered());
    /// ```
    pub fn is_current_thread_registered(&self) -> bool {
        registry::is_registered(&self.domain)
    }

    /// Enter a read-side critical section, until the guard drops. Nestable.
    ///
    /// Wait-free once the thread is registered: no allocation, lock or
    /// syscall (a thread's first call registers it; see
    /// [`register_current_thread`](Rcu::register_current_thread)).
    ///
    /// # Panics
    /// If the thread is not registered and every slot is owned; the message
    /// names the capacity and points to [`Rcu::with_capacity`].
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// let outer = rcu.read_lock();
    /// let inner = rcu.read_lock();
    /// let state = rcu.get_state();
    /// drop(inner);
    /// rcu.advance();
    /// assert!(!rcu.advance()); // `outer` is still inside
    /// assert!(!rcu.poll_state(state));
    /// drop(outer);
    /// rcu.synchronize();
    /// assert!(rcu.poll_state(state));
    /// ```
    #[inline]
    pub fn read_lock(&self) -> RcuReadGuard<'_> {
        let (slot, owner) = match registry::cached_slot(&self.domain) {
            Some(slot) => (slot, SlotOwner::Thread),
            None => self.reader_slot_slow(),
        };
        if slot.enter(&self.domain.epoch) {
            self.domain.flavour.light();
        }
        RcuReadGuard::new(slot, owner, self.domain_id())
    }

    /// `read_lock`'s slot when it is not the thread's last one: the table
    /// lookup (registering on first use), or an ephemeral slot.
    #[cold]
    fn reader_slot_slow(&self) -> (&ReaderSlot, SlotOwner) {
        let (index, owner) = match registry::reader_slot_of(&self.domain) {
            Ok(Registration::Owned(index)) => (index, SlotOwner::Thread),
            Ok(Registration::Unavailable) => {
                match registry::claim_ephemeral(&self.domain.reader_slots) {
                    Ok(index) => (index, SlotOwner::Guard),
                    Err(e) => capacity_panic(e),
                }
            }
            Err(e) => capacity_panic(e),
        };
        (self.domain.reader_slots.get(index), owner)
    }

    /// The state a caller must wait for after unlinking an object: once
    /// [`poll_state`](Rcu::poll_state) accepts it, every critical section
    /// running now has ended. Any context: a fence and a load.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// let s = rcu.get_state();
    /// assert!(!rcu.poll_state(s));
    /// assert!(rcu.advance() && rcu.advance());
    /// assert!(rcu.poll_state(s));
    /// ```
    #[inline]
    pub fn get_state(&self) -> GpState {
        // SeqCst: orders the caller's unlink before the epoch load; pairs
        // with the readers' light barrier / the advancers' heavy barrier.
        fence(Ordering::SeqCst);
        // Acquire: pairs with the AcqRel CAS in `advance`.
        GpState(self.domain.epoch.load(Ordering::Acquire) + 2)
    }

    /// Like [`get_state`](Rcu::get_state), and records that a grace period
    /// is wanted (see [`has_pending_requests`](Rcu::has_pending_requests)).
    /// Any context: lock-free, no allocation, no syscall.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// let s = rcu.start_poll();
    /// assert!(rcu.has_pending_requests());
    /// rcu.synchronize();
    /// assert!(rcu.poll_state(s) && !rcu.has_pending_requests());
    /// ```
    #[inline]
    pub fn start_poll(&self) -> GpState {
        let state = self.get_state();
        // Relaxed: the request is a hint for whoever drives `advance()`.
        if self.domain.requested.load(Ordering::Relaxed) < state.0 {
            self.domain.requested.fetch_max(state.0, Ordering::Relaxed);
        }
        state
    }

    /// True if a [`start_poll`](Rcu::start_poll) state has not expired yet.
    ///
    /// ```
    /// assert!(!kvfree_rcu_gp::Rcu::new().has_pending_requests());
    /// ```
    pub fn has_pending_requests(&self) -> bool {
        // Relaxed: a hint.
        self.domain.requested.load(Ordering::Relaxed) > self.domain.epoch.load(Ordering::Relaxed)
    }

    /// True once the grace period named by `state` has elapsed. Any context:
    /// one load.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// let s = rcu.get_state();
    /// rcu.synchronize();
    /// assert!(rcu.poll_state(s));
    /// ```
    #[inline]
    pub fn poll_state(&self, state: GpState) -> bool {
        // Acquire: pairs with the AcqRel CAS in `advance`, whose scan saw
        // every old reader's Release exit; the caller's free happens after.
        self.domain.epoch.load(Ordering::Acquire) >= state.0
    }

    /// One attempt to move the epoch forward by one; true if this call moved
    /// it. Never blocks: a reader still in a critical section that began
    /// before the current epoch makes it return false. Any number of threads
    /// may call it at once. Ordinary context (it may call `membarrier()`).
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// let guard = rcu.read_lock();
    /// assert!(rcu.advance()); // the reader announced the current epoch
    /// assert!(!rcu.advance()); // now it is a reader from before
    /// drop(guard);
    /// assert!(rcu.advance());
    /// assert_eq!(rcu.epoch(), 2);
    /// ```
    pub fn advance(&self) -> bool {
        let domain = &*self.domain;
        // Acquire: pairs with the AcqRel CAS of the previous advance.
        let current = domain.epoch.load(Ordering::Acquire);
        domain.flavour.heavy();
        let announced = truncate_epoch(current);
        for slot in domain.reader_slots.in_use() {
            let state = slot.state();
            if nesting(state) != 0 && epoch_of(state) != announced {
                return false;
            }
        }
        // AcqRel: Release publishes the scan's result to `poll_state`'s
        // Acquire; Acquire orders us after the previous CAS. Failure means
        // another advancer moved the epoch from `current` already.
        domain
            .epoch
            .compare_exchange(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Block until a full grace period has elapsed: every critical section
    /// running when it was called has ended. Ordinary context only (between
    /// failed advances it spins, yields, then sleeps up to 1 ms at a time).
    /// Must not be called inside a critical section of the same domain (it would never return).
    ///
    /// # Panics
    /// In checked builds (debug assertions, or feature `context-check`),
    /// when called inside a read-side critical section of this domain on
    /// the calling thread ([`current_thread_in_read_section`](Rcu::current_thread_in_read_section)),
    /// with "Illegal synchronize() in RCU read-side critical section of the
    /// same domain: it would wait for itself forever". Release builds
    /// without the feature hang there instead, as the kernel would.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// rcu.synchronize();
    /// assert!(rcu.grace_periods() >= 1);
    /// ```
    pub fn synchronize(&self) {
        crate::grace_period::synchronize_by_polling(self);
    }

    /// True if the calling thread is inside a read-side critical section of
    /// this domain (a live guard from [`read_lock`](Rcu::read_lock) on this
    /// thread). Looks the thread's slot up without registering it or
    /// allocating; a section read through an ephemeral slot (see
    /// [`RcuReadGuard::is_ephemeral`]) is not seen. For checks and reports
    /// (a grace-period wait from inside a section never returns): never
    /// branch behaviour on it.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// assert!(!rcu.current_thread_in_read_section());
    /// let guard = rcu.read_lock();
    /// assert!(rcu.current_thread_in_read_section());
    /// assert!(!kvfree_rcu_gp::Rcu::new().current_thread_in_read_section());
    /// drop(guard);
    /// assert!(!rcu.current_thread_in_read_section());
    /// ```
    pub fn current_thread_in_read_section(&self) -> bool {
        registry::in_read_section(&self.domain)
    }

    /// Grace periods completed so far in this domain, in the unit of
    /// [`GracePeriod::grace_periods`](crate::GracePeriod::grace_periods):
    /// `epoch() / 2`, since a grace period takes two epochs (see
    /// [`get_state`](Rcu::get_state)). A statistic.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// assert_eq!(rcu.grace_periods(), 0);
    /// rcu.advance();
    /// assert_eq!(rcu.grace_periods(), 0); // one epoch: half a grace period
    /// rcu.advance();
    /// assert_eq!(rcu.grace_periods(), 1);
    /// ```
    pub fn grace_periods(&self) -> u64 {
        self.epoch() / 2
    }

    /// The domain's epoch: the number of successful [`advance`](Rcu::advance)
    /// calls so far (two per grace period). A statistic.
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// assert!(rcu.advance() && rcu.advance());
    /// assert_eq!((rcu.epoch(), rcu.grace_periods()), (2, 1));
    /// ```
    pub fn epoch(&self) -> u64 {
        // Relaxed: a statistic; no memory is accessed through it.
        self.domain.epoch.load(Ordering::Relaxed)
    }

    /// True if readers use a compiler fence and advancers a process-wide
    /// barrier (`membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` on Linux,
    /// `FlushProcessWriteBuffers()` on Windows); false if both use
    /// `fence(SeqCst)` (other platforms, old kernels, Miri, loom,
    /// `--cfg kvfree_tsan`, `--cfg kvfree_portable`).
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// if cfg!(miri) { assert!(!rcu.uses_membarrier()); }
    /// ```
    pub fn uses_membarrier(&self) -> bool {
        self.domain.flavour == Flavour::Asymmetric
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn capacity_panic(e: CapacityError) -> ! {
    panic!("Rcu::read_lock: {e}")
}

/// A new `Arc` holding a clone of the handle (one reference-count
/// increment and one small allocation; ordinary context), so that APIs taking
/// `impl Into<Arc<Rcu>>` accept the global domain as it is:
/// `KvfreeRcu::new(Rcu::global())`. The clone is the same domain: guards,
/// states and grace periods of either handle are those of the other.
///
/// ```
/// use std::sync::Arc;
/// use kvfree_rcu_gp::Rcu;
/// let rcu: Arc<Rcu> = Rcu::global().into();
/// let state = rcu.get_state();
/// Rcu::global().synchronize(); // the same domain
/// assert!(rcu.poll_state(state));
/// ```
impl From<&Rcu> for std::sync::Arc<Rcu> {
    fn from(rcu: &Rcu) -> std::sync::Arc<Rcu> {
        std::sync::Arc::new(rcu.clone())
    }
}

impl Default for Rcu {
    fn default() -> Self {
        Rcu::new()
    }
}

impl fmt::Debug for Rcu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rcu")
            .field("capacity", &self.capacity())
            .field("epoch", &self.epoch())
            .field("grace_periods", &self.grace_periods())
            .field("uses_membarrier", &self.uses_membarrier())
            .finish()
    }
}
