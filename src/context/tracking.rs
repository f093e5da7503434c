//! Per-thread context tracking: the counters a thread keeps of the raw
//! spinlocks and spinning locks it holds, the atomic sections it is in, the
//! allocations it made and the violations reported on it.
//!
//! The counters live in a thread-local that has no destructor (so touching
//! it never allocates, not even from inside the allocator) and is reached
//! with `try_with` (a thread tearing down its other thread-locals may still
//! call in). The lock, section and allocation counters compile to nothing
//! without [`CHECKS`](super::CHECKS); the violation count works in every
//! build, since [`report`](super::report) can be called directly.

use super::CHECKS;
use super::reporting::{Violation, report};
use crate::sync::thread_local;
use core::cell::Cell;

/// Which kernel lock a held spinning lock stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockClass {
    /// `raw_spinlock_t` ([`RawSpinLock`](crate::RawSpinLock)): never sleeps,
    /// even under PREEMPT_RT; no sleeping lock may be taken inside it.
    Raw,
    /// `spinlock_t` without `rt` ([`SpinLock`](crate::SpinLock)): spins, so
    /// its holder is in atomic context, but another `spinlock_t` may nest
    /// inside it (under PREEMPT_RT both would sleep).
    #[cfg_attr(feature = "rt", allow(dead_code))]
    Spin,
}

struct ThreadContext {
    raw_locks: Cell<u32>,
    /// Spinning `SpinLock`s held (without `rt`).
    spin_locks: Cell<u32>,
    atomic_sections: Cell<u32>,
    allocations: Cell<u64>,
    violations: Cell<u64>,
}

impl ThreadContext {
    /// Holding a raw spinlock or inside an `AtomicSection`.
    fn is_atomic(&self) -> bool {
        self.raw_locks.get() + self.spin_locks.get() + self.atomic_sections.get() > 0
    }

    const fn new() -> ThreadContext {
        ThreadContext {
            raw_locks: Cell::new(0),
            spin_locks: Cell::new(0),
            atomic_sections: Cell::new(0),
            allocations: Cell::new(0),
            violations: Cell::new(0),
        }
    }
}

impl ThreadContext {
    fn held(&self, class: LockClass) -> &Cell<u32> {
        match class {
            LockClass::Raw => &self.raw_locks,
            LockClass::Spin => &self.spin_locks,
        }
    }
}

// `const` initialisation: no lazy-init state, no destructor, so touching it
// never allocates (it runs inside the global allocator). Loom's macro has no
// `const` form.
#[cfg(not(kvfree_loom))]
thread_local! {
    static CONTEXT: ThreadContext = const { ThreadContext::new() };
}
#[cfg(kvfree_loom)]
thread_local! {
    static CONTEXT: ThreadContext = ThreadContext::new();
}

#[inline]
fn with<R>(f: impl FnOnce(&ThreadContext) -> R) -> Option<R> {
    // `try_with`: the thread-local has no destructor, but a thread in the
    // middle of tearing down its other thread-locals may still call in.
    CONTEXT.try_with(f).ok()
}

/// Counts a reported violation on this thread (for [`thread_violations`]).
pub(crate) fn count_violation() {
    with(|c| c.violations.set(c.violations.get() + 1));
}

/// Enters an atomic section on this thread ([`AtomicSection`](super::AtomicSection)).
#[inline]
pub(crate) fn atomic_section_entered() {
    if CHECKS {
        with(|c| c.atomic_sections.set(c.atomic_sections.get() + 1));
    }
}

/// Leaves an atomic section on this thread.
#[inline]
pub(crate) fn atomic_section_left() {
    if CHECKS {
        with(|c| {
            c.atomic_sections
                .set(c.atomic_sections.get().saturating_sub(1))
        });
    }
}

/// Violations reported on this thread so far (useful in tests, which run in
/// parallel threads of one process).
///
/// ```
/// use kvfree_rcu::context;
/// let before = context::thread_violations();
/// context::might_sleep(); // ordinary context: no violation
/// assert_eq!(context::thread_violations(), before);
/// ```
pub fn thread_violations() -> u64 {
    with(|c| c.violations.get()).unwrap_or(0)
}

/// Allocations this thread made through [`CheckedAlloc`](crate::CheckedAlloc)
/// (always 0 when it is not the global allocator, or without [`CHECKS`]).
///
/// ```
/// use kvfree_rcu::context;
/// // Counts only when `CheckedAlloc` is the `#[global_allocator]`.
/// let before = context::thread_allocations();
/// let v = vec![1u8; 16];
/// assert!(context::thread_allocations() >= before);
/// # drop(v);
/// ```
pub fn thread_allocations() -> u64 {
    with(|c| c.allocations.get()).unwrap_or(0)
}

/// True while this thread holds a raw spinlock or is inside an
/// [`AtomicSection`](super::AtomicSection). Always false without [`CHECKS`]. For assertions and
/// reports only: never branch behaviour on it.
///
/// ```
/// use kvfree_rcu::{RawSpinLock, context};
/// let lock = RawSpinLock::new(());
/// assert!(!context::in_atomic());
/// let guard = lock.lock();
/// assert_eq!(context::in_atomic(), context::CHECKS);
/// drop(guard);
/// assert!(!context::in_atomic());
/// ```
#[inline]
pub fn in_atomic() -> bool {
    CHECKS && with(ThreadContext::is_atomic).unwrap_or(false)
}

/// Number of raw spinlocks ([`RawSpinLock`](crate::RawSpinLock)) this
/// thread holds (0 without [`CHECKS`]); a spinning
/// [`SpinLock`](crate::SpinLock) is not one.
///
/// ```
/// use kvfree_rcu::{RawSpinLock, context};
/// let lock = RawSpinLock::new(());
/// let guard = lock.lock();
/// assert_eq!(context::raw_locks_held(), u32::from(context::CHECKS));
/// drop(guard);
/// assert_eq!(context::raw_locks_held(), 0);
/// ```
pub fn raw_locks_held() -> u32 {
    if CHECKS {
        with(|c| c.raw_locks.get()).unwrap_or(0)
    } else {
        0
    }
}

#[inline]
pub(crate) fn lock_acquired(class: LockClass) {
    if CHECKS {
        with(|c| c.held(class).set(c.held(class).get() + 1));
    }
}

#[inline]
pub(crate) fn lock_released(class: LockClass) {
    if CHECKS {
        with(|c| c.held(class).set(c.held(class).get().saturating_sub(1)));
    }
}

/// Counts an allocation and reports it when in atomic context. Called by
/// `CheckedAlloc` from inside the global allocator: touches only the
/// destructor-free thread-local.
#[inline]
pub(crate) fn note_allocation() {
    if CHECKS {
        let atomic = with(|c| {
            c.allocations.set(c.allocations.get() + 1);
            c.is_atomic()
        });
        if atomic == Some(true) {
            report(Violation::AllocInAtomic);
        }
    }
}
