//! The kind of a record: an opaque, pointer-sized tag stored next to it.
//!
//! The service (the `kvfree-rcu` crate) stores the address of the function
//! that frees the record: its generic free function for a `Box<T>`, or a
//! caller's free function. The pool never calls or dereferences it; it only
//! compares kinds (by address) to write the run-length stream, and hands them
//! back to the consumer. A `Kind` keeps the pointer's provenance, so a
//! function pointer survives the round trip under Miri's strict provenance.

use core::ptr::NonNull;

/// Opaque, pointer-sized record kind (the service stores a function pointer).
///
/// # Example
/// ```
/// use core::ptr::NonNull;
/// use kvfree_rcu_pool::Kind;
///
/// fn free(_: NonNull<()>) {}
/// let f: fn(NonNull<()>) = free;
/// let kind = Kind::new(NonNull::new(f as *mut ()).unwrap());
/// assert_eq!(kind.as_ptr().as_ptr(), f as *mut ());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind(NonNull<()>);

// SAFETY: a Kind is an opaque address; the pool never dereferences or calls
// it, so sharing or sending it between threads cannot cause a data race.
unsafe impl Send for Kind {}
// SAFETY: as above: `&Kind` only gives out a copy of the address.
unsafe impl Sync for Kind {}

impl Kind {
    /// Wraps a pointer (typically a function pointer cast to `*mut ()`).
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::Kind;
    /// fn free(_: NonNull<()>) {}
    /// let kind = Kind::new(NonNull::new(free as fn(NonNull<()>) as *mut ()).unwrap());
    /// # let _ = kind;
    /// ```
    pub const fn new(ptr: NonNull<()>) -> Kind {
        Kind(ptr)
    }

    /// The pointer given to [`Kind::new`], provenance included.
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::Kind;
    /// let tag = NonNull::<u64>::dangling().cast::<()>();
    /// assert_eq!(Kind::new(tag).as_ptr(), tag);
    /// ```
    pub const fn as_ptr(self) -> NonNull<()> {
        self.0
    }
}
