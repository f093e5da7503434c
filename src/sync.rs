//! The one place this crate gets its synchronisation primitives from.
//!
//! Under `--cfg kvfree_loom` every atomic, fence, `Arc`, `UnsafeCell` and
//! thread-local comes from [loom] so that the models in `tests/loom_*.rs`
//! explore every interleaving; otherwise they are the `std` ones. No other
//! module may name `std::sync::atomic`, `core::cell::UnsafeCell` or
//! `thread_local!` directly.
//!
//! Sizes that loom and Miri would otherwise spend minutes on are shrunk here
//! too ([`SMALL`]).

#![allow(unused_imports, dead_code, unreachable_pub)]

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
    pub(crate) fn into_inner(self) -> T {
        self.0.into_inner()
    }
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(kvfree_loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(not(kvfree_loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks a shim mutex, ignoring poisoning: the data behind the service's
/// mutexes stays consistent across a panic (every panic inside the service
/// aborts the process, see `free.rs`), so poison carries no information.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    #[cfg(kvfree_loom)]
    return m.lock().unwrap();
    #[cfg(not(kvfree_loom))]
    return m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
}

/// Process-wide statics (report mode, violation counters) that sit outside
/// every modelled protocol: loom atomics cannot live in a `static`, so these
/// are always `std`'s.
pub(crate) mod global {
    pub(crate) use std::sync::atomic::{AtomicU8, AtomicU64};
}

/// Waiting politely in ordinary context: spin a little, then yield, then
/// sleep 50 µs at a time. Under loom every step is a loom yield, so models
/// that wait terminate.
#[derive(Debug, Default)]
pub(crate) struct Patience {
    step: u32,
}

impl Patience {
    pub(crate) fn wait(&mut self) {
        self.step = self.step.saturating_add(1);
        #[cfg(kvfree_loom)]
        loom::thread::yield_now();
        #[cfg(not(kvfree_loom))]
        match self.step {
            0..=6 => (0..1u32 << self.step).for_each(|_| spin_loop()),
            7..=16 => std::thread::yield_now(),
            _ => std::thread::sleep(std::time::Duration::from_micros(50)),
        }
    }
}
