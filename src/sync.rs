//! The one place this crate gets its synchronisation primitives from.
//!
//! Under `--cfg kvfree_loom` every atomic, fence, `Arc`, `UnsafeCell` and
//! thread-local comes from [loom] so that the models in `tests/loom.rs`
//! explore every interleaving; otherwise they are the `std` ones. No other
//! module may name `std::sync::atomic`, `core::cell::UnsafeCell` or
//! `thread_local!` directly. Waiting politely goes through [`Patience`], the
//! crate's one waiting policy.
//!
//! Sizes that loom and Miri would otherwise spend minutes on are shrunk here
//! too ([`SMALL`]).
//!
//! The first part of this file is shared byte for byte with the other two
//! crates' shims (between the marker comments; `ci/10-lint.sh` fails when
//! they differ): the crates are independent, so each carries its own copy.

#![allow(unused_imports, dead_code, unreachable_pub)]

// --- common shim: keep identical in the three crates (ci/10-lint.sh checks) ---
// src/sync.rs, gp/src/sync.rs and pool/src/sync.rs share this block byte for
// byte; what only one crate needs goes after the end marker.

#[cfg(kvfree_loom)]
pub(crate) use loom::{
    hint::spin_loop,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence},
    thread::yield_now,
    thread_local,
};

#[cfg(not(kvfree_loom))]
pub(crate) use std::{
    hint::spin_loop,
    sync::Arc,
    sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence},
    thread::yield_now,
    thread_local,
};

/// A compiler-only barrier. Loom has none, and models the membarrier-free
/// fallback (a real fence) instead, so under loom this is a full fence.
#[inline(always)]
pub(crate) fn compiler_fence(order: Ordering) {
    #[cfg(kvfree_loom)]
    fence(order);
    #[cfg(not(kvfree_loom))]
    std::sync::atomic::compiler_fence(order);
}

/// True under loom or Miri: tables, loops and capacities shrink so that
/// models and interpreted tests finish in seconds.
pub(crate) const SMALL: bool = cfg!(any(miri, kvfree_loom));

/// `UnsafeCell` with loom's closure API, so code is written once.
#[cfg(kvfree_loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `UnsafeCell` with loom's closure API, so code is written once.
#[cfg(not(kvfree_loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(kvfree_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

/// The crate's one policy for waiting politely, in ordinary context, for
/// another party to make progress (a producer to give a lane back, a reader
/// to leave its section, a grace period to end): the spin-then-yield steps
/// of [`crossbeam_utils::Backoff::snooze`], then sleeps of 10 us doubling up
/// to 1 ms. Never use it where the party waited for may be the caller itself
/// (a signal handler that interrupted it).
///
/// Under loom every step is a loom yield instead, so that the model
/// scheduler runs the party we wait for rather than exploring a spin, and
/// models that wait terminate.
#[derive(Debug, Default)]
pub(crate) struct Patience {
    backoff: crossbeam_utils::Backoff,
    sleeps: u32,
}

impl Patience {
    /// A fresh wait: its first steps spin.
    pub(crate) fn new() -> Patience {
        Patience::default()
    }

    /// One step of the wait; call it each time the awaited condition is
    /// still false.
    pub(crate) fn wait(&mut self) {
        #[cfg(kvfree_loom)]
        loom::thread::yield_now();
        #[cfg(not(kvfree_loom))]
        if !self.backoff.is_completed() {
            self.backoff.snooze();
        } else {
            let micros = (10u64 << self.sleeps.min(7)).min(1_000);
            std::thread::sleep(std::time::Duration::from_micros(micros));
            self.sleeps = self.sleeps.saturating_add(1);
        }
    }
}
// --- end common shim ---

#[cfg(kvfree_loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(kvfree_loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

/// Locks a shim mutex, ignoring poisoning: the data behind the service's
/// mutexes stays consistent across a panic (every panic inside the service
/// aborts the process, see the free loop), so poison carries no information.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(kvfree_loom)]
    return m.lock().unwrap();
    #[cfg(not(kvfree_loom))]
    return m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
}

/// Tries to lock a shim mutex: `None` at once if another thread holds it;
/// poisoning ignored (as [`lock`]).
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Some(guard),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    }
}

/// Waits on a shim condition variable, ignoring poisoning (as [`lock`]).
pub(crate) fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    #[cfg(kvfree_loom)]
    return cv.wait(guard).unwrap();
    #[cfg(not(kvfree_loom))]
    return cv
        .wait(guard)
        .unwrap_or_else(std::sync::PoisonError::into_inner);
}

/// Process-wide statics (report mode, violation counters) that sit outside
/// every modelled protocol: loom atomics cannot live in a `static`, so these
/// are always `std`'s.
pub(crate) mod global {
    pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64};
}
