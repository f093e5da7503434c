//! Record kinds: how the worker frees what a page record points to.
//!
//! A kind is the free function for one record type: `free_box::<T>` for a
//! retired `Box<T>`, or the caller's function for memory that is not a `Box`.
//! The pool stores it as an opaque pointer-sized [`Kind`] and writes it only
//! when it differs from the previous record's, so a page of one type costs one
//! extra record pair; freeing walks a contiguous array and calls each record's
//! function, never chasing pointers through the freed objects.

use crate::pool::Kind;
use core::ptr::NonNull;

/// A function that frees one retired object.
///
/// ```
/// use std::ptr::NonNull;
/// use kvfree_rcu::FreeFn;
/// unsafe fn free_u32(p: NonNull<()>) {
///     // SAFETY: only ever given pointers from `Box::<u32>::into_raw`.
///     drop(unsafe { Box::from_raw(p.cast::<u32>().as_ptr()) });
/// }
/// let free: FreeFn = free_u32;
/// let p = NonNull::from(Box::leak(Box::new(9u32))).cast::<()>();
/// // SAFETY: `p` is a `Box<u32>`, freed once.
/// unsafe { free(p) };
/// ```
pub type FreeFn = unsafe fn(NonNull<()>);

/// Drops a `Box<T>` from its raw pointer.
///
/// # Safety
/// 1. `ptr` came from `Box::<T>::into_raw` (or `Box::leak`).
/// 2. It is freed once, and not used afterwards.
pub(crate) unsafe fn free_box<T>(ptr: NonNull<()>) {
    // SAFETY: contracts 1 and 2.
    drop(unsafe { Box::from_raw(ptr.cast::<T>().as_ptr()) });
}

/// The pool kind for a free function.
#[inline]
pub(crate) fn kind_of(free: FreeFn) -> Kind {
    // A function pointer is never null; `as *mut ()` keeps its provenance.
    Kind::new(NonNull::new(free as *mut ()).expect("function pointers are non-null"))
}

/// The free function behind a kind made by [`kind_of`].
///
/// # Safety
/// `kind` was made by [`kind_of`].
#[inline]
pub(crate) unsafe fn free_fn_of(kind: Kind) -> FreeFn {
    // SAFETY: the caller guarantees the pointer is a `FreeFn` cast by `kind_of`.
    unsafe { core::mem::transmute::<*mut (), FreeFn>(kind.as_ptr().as_ptr()) }
}
