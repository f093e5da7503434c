//! `Parking`: where an atomic-context caller puts a head-less pointer that
//! [`KvfreeRcu::try_kvfree_rcu`] handed back, without allocating, until
//! ordinary context flushes it into the service.
//!
//! # Design
//! A fixed array of slots, allocated once by [`Parking::with_capacity`] in
//! ordinary context. Each slot has a state word and two payload words (the
//! pointer and its [`FreeFn`]):
//!
//! `EMPTY --park: CAS--> FILLING --park: store--> FULL --flush: CAS--> TAKING --flush: store--> EMPTY`
//!
//! - `park` claims an `EMPTY` slot with a CAS, writes the payload, and
//!   publishes it with a Release store of `FULL`. It tries each slot at most
//!   once, starting at a rotating hint, so it is wait-free (bounded by the
//!   capacity), allocation-free and lock-free. A signal handler that
//!   interrupts a `park` between its CAS and its store sees that slot
//!   `FILLING` and takes another: reentrant.
//! - When every slot is taken, `park` returns the pointer (`Err`): it never
//!   allocates and never waits; the caller still owns the object.
//! - `flush` (ordinary context) claims `FULL` slots with an Acquire CAS,
//!   reads the payload, frees the slot with a Release store of `EMPTY`, and
//!   retires the pointer: through a page when one is available, otherwise by
//!   waiting for a grace period and freeing inline (as
//!   [`KvfreeRcu::kvfree_rcu_mightsleep`] does). Several flushers may run at
//!   once: each slot's CAS gives its payload to one of them.
//!
//! Parking only delays the retire: the object was unlinked before it was
//! parked, and its grace period starts at the flush, later than needed,
//! never earlier.

use crate::context::{self, might_sleep};
use crate::free_fn::{FreeFn, free_box};
use crate::gp::GracePeriod;
use crate::service::KvfreeRcu;
use crate::sync::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};
use core::fmt;
use core::ptr::{self, NonNull};

const EMPTY: u32 = 0;
const FILLING: u32 = 1;
const FULL: u32 = 2;
const TAKING: u32 = 3;

struct Slot {
    state: AtomicU32,
    ptr: AtomicPtr<()>,
    free: AtomicPtr<()>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            state: AtomicU32::new(EMPTY),
            ptr: AtomicPtr::new(ptr::null_mut()),
            free: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// A fixed number of slots for retires that found no page, filled from any
/// context without allocating and flushed into a [`KvfreeRcu`] from
/// ordinary context. Replaces the thread-local `Vec` every caller of
/// [`try_kvfree_rcu`](KvfreeRcu::try_kvfree_rcu) under a lock would write.
///
/// ```
/// use std::ptr::NonNull;
/// use kvfree_rcu::{KvfreeRcu, Parking, RawSpinLock, Rcu};
///
/// let service = KvfreeRcu::builder(Rcu::global()).manual().build();
/// let parking = Parking::with_capacity(64); // ordinary context: allocates
/// service.shrink(); // no page: the retire below is handed back
///
/// let lock = RawSpinLock::new(());
/// {
///     let _locked = lock.lock();
///     let p = NonNull::from(Box::leak(Box::new(42u64)));
///     // SAFETY: from Box::leak, unlinked, retired once.
///     let parked = unsafe { parking.try_kvfree_rcu_or_park(&service, p) };
///     assert!(parked.is_ok()); // parked, without allocating
/// }
///
/// // Later, in ordinary context:
/// assert_eq!(parking.flush(&service), 1);
/// service.barrier();
/// assert_eq!(parking.len(), 0);
/// ```
///
/// Dropping a `Parking` that still holds pointers leaks their objects (it
/// knows no service, and freeing them without a grace period would be
/// unsound) and says so on stderr: flush before dropping.
pub struct Parking {
    slots: Box<[Slot]>,
    /// Where the next `park` starts looking (a hint: any value is correct).
    next: AtomicUsize,
}

impl Parking {
    /// `capacity` slots, allocated now. Ordinary context.
    ///
    /// # Panics
    /// If `capacity` is 0.
    ///
    /// ```
    /// let parking = kvfree_rcu::Parking::with_capacity(8);
    /// assert_eq!(parking.capacity(), 8);
    /// ```
    pub fn with_capacity(capacity: usize) -> Parking {
        assert!(
            capacity > 0,
            "Parking::with_capacity(0): parking needs at least one slot"
        );
        Parking {
            slots: (0..capacity).map(|_| Slot::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// How many pointers are parked (a racy snapshot).
    pub fn len(&self) -> usize {
        self.slots
            .iter()
            // Relaxed: a statistic.
            .filter(|s| s.state.load(Ordering::Relaxed) != EMPTY)
            .count()
    }

    /// Whether no pointer is parked (a racy snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Parks a head-less `Box<T>` pointer until [`flush`](Self::flush).
    /// `Err(ptr)` when every slot is taken: nothing happened and the caller
    /// owns `ptr` again. Wait-free, allocation-free, lock-free, reentrant:
    /// any context.
    ///
    /// # Safety
    /// As [`KvfreeRcu::kvfree_rcu`] 1-3: `ptr` comes from
    /// `Box::<T>::into_raw` (or `Box::leak`), is unreachable for new readers,
    /// and is retired once.
    pub unsafe fn park<T: Send + 'static>(&self, ptr: NonNull<T>) -> Result<(), NonNull<T>> {
        // SAFETY: `free_box::<T>` frees a `Box<T>` once (contract 1); 2 and 3
        // are the caller's.
        unsafe { self.park_with(ptr.cast(), free_box::<T>) }.map_err(NonNull::cast)
    }

    /// Parks a pointer with its free function (as for
    /// [`KvfreeRcu::kvfree_rcu_with`]). `Err(ptr)` when every slot is taken.
    /// Any context.
    ///
    /// # Safety
    /// As [`KvfreeRcu::kvfree_rcu_with`] 1-2.
    pub unsafe fn park_with(&self, ptr: NonNull<()>, free: FreeFn) -> Result<(), NonNull<()>> {
        let n = self.slots.len();
        // Relaxed: a hint; the state CAS below decides.
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let slot = &self.slots[(start + i) % n];
            // Acquire on success: pairs with the Release store of EMPTY in
            // `take`, so the previous flusher's reads of the payload happen
            // before the writes below. (The payload is published by the
            // Release store of FULL.)
            if slot
                .state
                .compare_exchange(EMPTY, FILLING, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // Relaxed: published by the Release store below.
                slot.ptr.store(ptr.as_ptr(), Ordering::Relaxed);
                slot.free.store(free as *mut (), Ordering::Relaxed);
                // Release: pairs with the Acquire CAS in `take`, publishing
                // the payload and the caller's unlink to the flusher.
                slot.state.store(FULL, Ordering::Release);
                return Ok(());
            }
        }
        Err(ptr)
    }

    /// Retires `ptr` through `service` ([`KvfreeRcu::try_kvfree_rcu`]) and,
    /// when no page is available, parks it. `Err(ptr)` only when both are
    /// full: the caller owns `ptr` again. Any context.
    ///
    /// # Safety
    /// As [`KvfreeRcu::kvfree_rcu`] 1-3.
    pub unsafe fn try_kvfree_rcu_or_park<G: GracePeriod, T: Send + 'static>(
        &self,
        service: &KvfreeRcu<G>,
        ptr: NonNull<T>,
    ) -> Result<(), NonNull<T>> {
        // SAFETY: the caller's contract, forwarded; on Err nothing happened.
        let ptr = match unsafe { service.try_kvfree_rcu(ptr) } {
            Ok(()) => return Ok(()),
            Err(ptr) => ptr,
        };
        // SAFETY: as above: `ptr` is ours again, with the same contract.
        unsafe { self.park(ptr) }
    }

    /// Takes the payload of `slot` if it is full.
    fn take(&self, slot: &Slot) -> Option<(NonNull<()>, FreeFn)> {
        // Acquire: pairs with the Release store of FULL in `park_with`.
        slot.state
            .compare_exchange(FULL, TAKING, Ordering::Acquire, Ordering::Relaxed)
            .ok()?;
        // Relaxed: ordered by the Acquire CAS above.
        let ptr = slot.ptr.load(Ordering::Relaxed);
        let free = slot.free.load(Ordering::Relaxed);
        // Release: our reads of the payload happen before the next `park`
        // of this slot overwrites it (its CAS reads this store).
        slot.state.store(EMPTY, Ordering::Release);
        let ptr = NonNull::new(ptr).expect("a parked pointer is non-null");
        // SAFETY: `park_with` stored a `FreeFn` as a pointer.
        let free = unsafe { core::mem::transmute::<*mut (), FreeFn>(free) };
        Some((ptr, free))
    }

    /// Retires every parked pointer through `service`; returns how many.
    /// Ordinary context: when no page is available it waits for a grace
    /// period and frees inline (reported in atomic context in checked
    /// builds, as [`might_sleep`] does).
    pub fn flush<G: GracePeriod>(&self, service: &KvfreeRcu<G>) -> usize {
        might_sleep();
        let mut flushed = 0;
        for slot in self.slots.iter() {
            let Some((ptr, free)) = self.take(slot) else {
                continue;
            };
            // SAFETY: `park_with`'s contract: `free(ptr)` is sound once after
            // a grace period, `ptr` is unreachable and retired once (by this
            // flush, which took it from its slot).
            unsafe { service.kvfree_rcu_with_mightsleep(ptr, free) };
            flushed += 1;
        }
        flushed
    }
}

impl fmt::Debug for Parking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parking")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl Drop for Parking {
    fn drop(&mut self) {
        if !self.is_empty() {
            context::write_stderr(
                "kvfree-rcu: a Parking was dropped with pointers still parked; their objects are leaked (flush before dropping)",
            );
        }
    }
}
