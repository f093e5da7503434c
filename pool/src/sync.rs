//! The one place this crate gets its synchronisation primitives from.
//!
//! Under `--cfg kvfree_loom` every atomic, fence, `Arc`, `UnsafeCell` and
//! thread-local comes from [loom] so that the models in `tests/loom.rs`
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

/// `Cell` for thread-local state (the simulated CPU number); re-exported here so
/// that every interior-mutability type this crate uses is named in this file.
pub(crate) use core::cell::Cell;

/// Spin-then-yield backoff (crossbeam-utils), for the consumer's waits.
pub(crate) use crossbeam_utils::Backoff;

/// One step of a wait on another party: spin, then yield, as
/// [`Backoff::snooze`] does. Under loom every step is a loom yield, so that
/// the model scheduler runs the party we wait for instead of exploring a spin.
#[inline]
pub(crate) fn snooze(backoff: &Backoff) {
    #[cfg(kvfree_loom)]
    {
        let _ = backoff;
        yield_now();
    }
    #[cfg(not(kvfree_loom))]
    backoff.snooze();
}

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
}
