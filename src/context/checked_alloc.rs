//! `CheckedAlloc`: a global-allocator wrapper that reports allocations made
//! in atomic context and counts every allocation per thread.
//!
//! Install it in a test binary (or a debug build of an application) to prove
//! that a path allocates nothing:
//!
//! ```
//! use kvfree_rcu::CheckedAlloc;
//! #[global_allocator]
//! static ALLOC: CheckedAlloc = CheckedAlloc::system();
//! # fn main() {
//! let before = kvfree_rcu::context::thread_allocations();
//! let v: Vec<u8> = Vec::with_capacity(8);
//! assert_eq!(kvfree_rcu::context::thread_allocations() - before,
//!            u64::from(kvfree_rcu::context::CHECKS));
//! # drop(v);
//! # }
//! ```
//!
//! The wrapper touches only a destructor-free thread-local (no allocation, no
//! lock), and never panics: an allocation in atomic context is reported as a
//! warning (or counted, see [`ReportMode`](crate::context::ReportMode)),
//! since unwinding out of an allocator would itself allocate.

use crate::context;
use std::alloc::{GlobalAlloc, Layout, System};

/// A [`GlobalAlloc`] that forwards to `A` and reports allocations made in
/// atomic context (in checked builds).
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout};
/// use kvfree_rcu::CheckedAlloc;
/// // Usually installed with `#[global_allocator] static A: CheckedAlloc = CheckedAlloc::system();`
/// let alloc = CheckedAlloc::system();
/// let layout = Layout::new::<u64>();
/// // SAFETY: the layout has a non-zero size.
/// let p = unsafe { alloc.alloc(layout) };
/// assert!(!p.is_null());
/// // SAFETY: `p` was allocated just above by `alloc` with `layout`.
/// unsafe { alloc.dealloc(p, layout) };
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct CheckedAlloc<A = System> {
    inner: A,
}

impl CheckedAlloc<System> {
    /// Wraps the system allocator.
    ///
    /// ```
    /// use kvfree_rcu::CheckedAlloc;
    /// static ALLOC: CheckedAlloc = CheckedAlloc::system();
    /// # let _ = &ALLOC;
    /// ```
    pub const fn system() -> Self {
        CheckedAlloc { inner: System }
    }
}

impl<A> CheckedAlloc<A> {
    /// Wraps `inner`.
    ///
    /// ```
    /// use std::alloc::System;
    /// use kvfree_rcu::CheckedAlloc;
    /// static ALLOC: CheckedAlloc<System> = CheckedAlloc::new(System);
    /// # let _ = &ALLOC;
    /// ```
    pub const fn new(inner: A) -> Self {
        CheckedAlloc { inner }
    }
}

// SAFETY: every method forwards to `A` with the caller's arguments unchanged,
// so `A`'s implementation of the GlobalAlloc contract is ours; the checker
// call before it neither allocates nor unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for CheckedAlloc<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        context::note_allocation();
        // SAFETY: forwarded contract (the caller's `layout` has non-zero size).
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        context::note_allocation();
        // SAFETY: forwarded contract.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        context::note_allocation();
        // SAFETY: forwarded contract (`ptr` came from this allocator with `layout`).
        unsafe { self.inner.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract (`ptr` came from this allocator with `layout`).
        unsafe { self.inner.dealloc(ptr, layout) }
    }
}
