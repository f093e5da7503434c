//! The per-thread table mapping a domain to this thread's reader slot in it.
//!
//! `read_lock()` must find the thread's reader slot without allocating, locking or
//! making a syscall, so each thread has a fixed table of [`MAX_DOMAINS`]
//! entries, `(domain, slot index)`, in a thread-local. An entry holds a
//! strong reference to its domain (an `Arc` turned into a raw pointer), so a
//! domain outlives every thread registered in it, and a domain's address is
//! never reused while an entry names it.
//!
//! The table is only touched by its thread, but a signal handler on that
//! thread may interrupt a registration and read or register itself. Entries
//! are therefore atomics, and an entry is filled in two steps: claim it by
//! CAS from null to [`RESERVED`] (a marker that matches no domain), write the
//! slot index, then publish the domain pointer (Release). A handler that
//! interrupts the middle of this does not see the half-written entry and
//! registers on its own; the worst case is a second, idle slot for the same
//! domain, released at thread exit like the first.
//!
//! At thread exit the table's destructor releases every slot and drops the
//! domain references. A slot whose nesting is not zero at that point (a
//! guard kept alive past this destructor, e.g. inside another thread-local)
//! is deliberately leaked rather than released, so no other thread can take
//! it over while that guard still relies on it.
//!
//! Cost of a thread's first use: the thread-local is initialised lazily and
//! registers its destructor; Rust's std keeps thread-local destructors in a
//! per-thread list, which allocates once per thread (and glibc's
//! `__cxa_thread_atexit_impl` may allocate once too). Everything after that is
//! allocation-free. Threads that must never allocate (real-time threads,
//! threads whose signal handlers read) call `Rcu::register_current_thread()`
//! first, from ordinary context.

use crate::CapacityError;
use crate::domain::Domain;
use crate::reader_slot::{ReaderSlot, ReaderSlotTable};
use crate::sync::{Arc, AtomicPtr, AtomicUsize, Ordering, SMALL, thread_local};
use core::cell::Cell;
use core::ptr;

/// Domains a thread can be registered in at once (8; 2 under Miri and
/// loom). A thread reading more domains than this gets an ephemeral slot per
/// guard instead (still allocation-free; see
/// [`RcuReadGuard::is_ephemeral`](crate::RcuReadGuard::is_ephemeral)).
///
/// ```
/// assert!(kvfree_rcu_gp::MAX_DOMAINS >= 2);
/// ```
pub const MAX_DOMAINS: usize = if SMALL { 2 } else { 8 };

/// Address of this static marks an entry being filled in. It is not a
/// `Domain`, so it never compares equal to a real domain pointer.
static RESERVED_MARK: u8 = 0;

fn reserved() -> *mut Domain {
    ptr::addr_of!(RESERVED_MARK).cast_mut().cast::<Domain>()
}

/// One registration: `(domain, reader slot index)`. `domain` is null (free), [`reserved()`] (being
/// filled in) or a pointer from `Arc::into_raw`.
struct Entry {
    domain: AtomicPtr<Domain>,
    reader_slot: AtomicUsize,
}

/// A thread's table of registrations.
struct Registry {
    entries: [Entry; MAX_DOMAINS],
}

thread_local! {
    static REGISTRY: Registry = Registry::new();
}

// Set once this thread has initialised `REGISTRY` (by registering), so that
// `in_read_section` can look entries up without initialising it, which
// would register a thread-local destructor (an allocation). `const`, no
// destructor: touching it never allocates. Loom's macro has no `const` form.
#[cfg(not(kvfree_loom))]
thread_local! {
    static REGISTRY_IN_USE: Cell<bool> = const { Cell::new(false) };
}
#[cfg(kvfree_loom)]
thread_local! {
    static REGISTRY_IN_USE: Cell<bool> = Cell::new(false);
}

// The slot of the domain this thread last read through its registration:
// `read_lock`'s fast path (`cached_slot`), one thread-local word and a range
// check instead of the table lookup. Set only to a slot the thread owns
// through a live entry, which holds a strong reference to the slot's
// domain, so while the word names a slot that slot's table is allocated and
// no other domain's table can share its addresses; cleared before the
// entries are dropped at thread exit. One word, so a signal handler reads
// the old or the new slot, each owned by this thread. `const`, no
// destructor: readable even while other thread-locals are being destroyed.
#[cfg(not(kvfree_loom))]
thread_local! {
    static LAST_SLOT: Cell<*const ReaderSlot> = const { Cell::new(ptr::null()) };
}
#[cfg(kvfree_loom)]
thread_local! {
    static LAST_SLOT: Cell<*const ReaderSlot> = Cell::new(ptr::null());
}

/// Where the current thread reads a domain from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registration {
    /// The thread owns the reader slot at this index until it exits.
    Owned(usize),
    /// The thread's table is full, or its thread-locals are already being
    /// destroyed: the caller claims an ephemeral slot per guard.
    Unavailable,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            entries: core::array::from_fn(|_| Entry {
                domain: AtomicPtr::new(ptr::null_mut()),
                reader_slot: AtomicUsize::new(0),
            }),
        }
    }

    #[inline(always)]
    fn lookup(&self, domain: *mut Domain) -> Option<usize> {
        for entry in &self.entries {
            // Acquire: pairs with the Release that published the entry (our
            // own thread, possibly the code a signal handler interrupted).
            if entry.domain.load(Ordering::Acquire) == domain {
                // Relaxed: written before the Release publication above.
                return Some(entry.reader_slot.load(Ordering::Relaxed));
            }
        }
        None
    }

    fn register(&self, domain: &Arc<Domain>) -> Result<Registration, CapacityError> {
        let key = Arc::as_ptr(domain).cast_mut();
        // Only `in_read_section` reads it; on this thread's slow path only,
        // so `read_lock`'s lookup pays nothing for it.
        let _ = REGISTRY_IN_USE.try_with(|in_use| in_use.set(true));
        for entry in &self.entries {
            // Relaxed: a thread-local word; only this thread (or a handler
            // interrupting it) touches it.
            if entry
                .domain
                .compare_exchange(
                    ptr::null_mut(),
                    reserved(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue;
            }
            let Some(index) = domain.reader_slots().claim() else {
                // Relaxed: undo our reservation; nothing was published.
                entry.domain.store(ptr::null_mut(), Ordering::Relaxed);
                return Err(CapacityError {
                    capacity: domain.reader_slots().capacity(),
                });
            };
            // Relaxed: published by the Release store below.
            entry.reader_slot.store(index, Ordering::Relaxed);
            let strong = Arc::into_raw(Arc::clone(domain)).cast_mut();
            debug_assert_eq!(strong, key);
            // Release: pairs with the Acquire in `lookup`.
            entry.domain.store(strong, Ordering::Release);
            return Ok(Registration::Owned(index));
        }
        Ok(Registration::Unavailable)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Before any entry lets its domain go (see `LAST_SLOT`).
        let _ = LAST_SLOT.try_with(|last| last.set(ptr::null()));
        for entry in &self.entries {
            // Acquire: pairs with the Release publication in `register`, so
            // the `reader_slot` written before it is the one we read below
            // (the same thread wrote both: this only pins the order).
            let raw = entry.domain.swap(ptr::null_mut(), Ordering::Acquire);
            if raw.is_null() || raw == reserved() {
                continue;
            }
            // Every pointer other than null and `reserved()` stored in
            // `domain` came from `Arc::into_raw` in `register`.
            // SAFETY: as above, and the swap above took it out of the table,
            // so this is the only `from_raw` for that strong count.
            let domain = unsafe { Arc::from_raw(raw.cast_const()) };
            // Relaxed: written before the publication the swap above read.
            let slot = domain
                .reader_slots()
                .get(entry.reader_slot.load(Ordering::Relaxed));
            if !slot.is_reading() {
                slot.release();
            }
            drop(domain);
        }
    }
}

/// The current thread's slot in `domain`, registering it on first use.
///
/// Lock-free and allocation-free except for a thread's very first call,
/// which initialises the thread-local (see the module docs).
#[inline]
pub(crate) fn reader_slot_of(domain: &Arc<Domain>) -> Result<Registration, CapacityError> {
    let key = Arc::as_ptr(domain).cast_mut();
    REGISTRY
        .try_with(|registry| {
            let registration = match registry.lookup(key) {
                Some(index) => Registration::Owned(index),
                None => registry.register(domain)?,
            };
            if let Registration::Owned(index) = registration {
                let slot: *const ReaderSlot = domain.reader_slots().get(index);
                // Inside `try_with`: the registry, and so the entry, is live.
                let _ = LAST_SLOT.try_with(|last| last.set(slot));
            }
            Ok(registration)
        })
        .unwrap_or(Ok(Registration::Unavailable))
}

/// The current thread's slot in `domain` if it is the one it last read
/// (`read_lock`'s fast path; `None`: use [`reader_slot_of`]). Wait-free: a
/// thread-local load and a range check, no lookup.
#[inline(always)]
pub(crate) fn cached_slot(domain: &Domain) -> Option<&ReaderSlot> {
    let last = LAST_SLOT.try_with(Cell::get).unwrap_or(ptr::null());
    domain.reader_slots().find(last)
}

/// True if the current thread holds a registered slot in `domain` (no
/// registration side effect).
pub(crate) fn is_registered(domain: &Arc<Domain>) -> bool {
    let key = Arc::as_ptr(domain).cast_mut();
    REGISTRY
        .try_with(|registry| registry.lookup(key).is_some())
        .unwrap_or(false)
}

/// True if the current thread is inside a critical section of `domain`
/// through its registered slot. No registration, allocation or lock: a
/// thread that never registered anywhere is not even looked up. Sections
/// read through an ephemeral slot are not seen (a thread registered in more
/// than [`MAX_DOMAINS`] domains, or tearing down its thread-locals). For the
/// context checker only.
pub(crate) fn in_read_section(domain: &Arc<Domain>) -> bool {
    if !REGISTRY_IN_USE.try_with(Cell::get).unwrap_or(false) {
        return false;
    }
    let key = Arc::as_ptr(domain).cast_mut();
    REGISTRY
        .try_with(|registry| registry.lookup(key))
        .ok()
        .flatten()
        .is_some_and(|index| domain.reader_slots().get(index).is_reading())
}

/// Claim a slot of `domain` for one guard's lifetime. Lock-free.
pub(crate) fn claim_ephemeral(slots: &ReaderSlotTable) -> Result<usize, CapacityError> {
    slots.claim().ok_or(CapacityError {
        capacity: slots.capacity(),
    })
}
