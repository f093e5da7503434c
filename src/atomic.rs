//! Typed RCU pointers for linked structures: [`Atomic<T>`] (a link),
//! [`Shared<'g, T>`] (a loaded pointer, valid while a guard lives) and
//! [`Unlinked<T>`] (a node taken out of a link, to retire in one call), over
//! [`Owned<T>`] nodes. Modelled on crossbeam-epoch's `Atomic`/`Owned`/
//! `Shared<'g>`, with the guard an [`RcuReadGuard`].
//!
//! What is safe and what is not, and why:
//! - Loading is safe: [`Atomic::load`] ties the result to the guard's
//!   borrow, and nodes are freed only through [`Unlinked::retire`] (or
//!   `Owned` values that were never published).
//! - Publishing is safe: an `Owned` node moves into the link.
//! - Retiring stays `unsafe`: the type system sees one link, not the others
//!   a structure may hold to the same node (a list's predecessor and a
//!   cursor, a skip list's tower), nor which domain the structure's readers
//!   take their guards in. [`RcuCell`](crate::RcuCell) is the form where
//!   both are known (one link, the cell's own service), and its retire is
//!   safe.
//! - An `Atomic` does not own what it points to (a node's `next` link must
//!   not free the successor): dropping one frees nothing; a structure frees
//!   its nodes in its own `Drop`, by retiring them.
//!
//! Orderings: loads are Acquire and every store, swap and successful CAS has
//! a Release half; each Acquire pairs with the Release that published the
//! node it reads, so the node's initialisation is visible.

use crate::gp::RcuReadGuard;
use crate::local::LocalRetirer;
use crate::node::{Node, Owned};
use crate::service::KvfreeRcu;
use crate::sync::{AtomicPtr, Ordering};
use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

/// An RCU-protected link to an [`Owned<T>`] node, or null.
///
/// ```
/// use kvfree_rcu::{Atomic, Owned, Rcu};
/// struct Entry { key: u32, next: Atomic<Entry> }
///
/// let head: Atomic<Entry> = Atomic::null();
/// head.publish(Owned::new(Entry { key: 1, next: Atomic::null() }));
/// let guard = Rcu::global().read_lock();
/// assert_eq!(head.load(&guard).as_ref().map(|e| e.key), Some(1));
/// # drop(guard);
/// # let old = head.swap(None).unwrap();
/// # // SAFETY: the only link, readers use the global domain.
/// # unsafe { old.retire(kvfree_rcu::global()) };
/// ```
pub struct Atomic<T> {
    ptr: AtomicPtr<Node<T>>,
    _links: PhantomData<Owned<T>>,
}

// SAFETY: an `Atomic` hands out `&T` to any thread (so `T: Sync`) and moves
// nodes between threads through publication and retirement (so `T: Send`).
unsafe impl<T: Send + Sync> Send for Atomic<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send + Sync> Sync for Atomic<T> {}

impl<T: Send + Sync + 'static> Atomic<T> {
    /// A null link (usable in a `static`).
    ///
    /// ```
    /// use kvfree_rcu::Atomic;
    /// static HEAD: Atomic<u64> = Atomic::null();
    /// # let _ = &HEAD;
    /// ```
    pub const fn null() -> Atomic<T> {
        Atomic {
            ptr: AtomicPtr::new(ptr::null_mut()),
            _links: PhantomData,
        }
    }

    /// A link to a new node holding `value`. Allocates: ordinary context.
    pub fn new(value: T) -> Atomic<T> {
        let link = Atomic::null();
        link.publish(Owned::new(value));
        link
    }

    /// The node the link points to, valid while `guard` lives. Wait-free.
    /// The guard must be of the domain the structure retires through (the
    /// contract of [`Unlinked::retire`]).
    #[inline]
    pub fn load<'g>(&self, _guard: &'g RcuReadGuard<'_>) -> Shared<'g, T> {
        // Acquire: pairs with the Release that published the node.
        Shared::from_raw(self.ptr.load(Ordering::Acquire))
    }

    /// Points the link at `node`, dropping nothing: whatever it pointed to
    /// is still linked from elsewhere, or leaks (use [`swap`](Self::swap)
    /// to take it out). Never allocates: any context.
    pub fn publish(&self, node: Owned<T>) {
        // Release: publishes the node's initialisation (pairs with `load`).
        self.ptr.store(node.into_raw().as_ptr(), Ordering::Release);
    }

    /// Points the link at a node loaded elsewhere (for example a new node's
    /// `next` at the current first node, before the new node is published).
    pub fn store(&self, node: Shared<'_, T>) {
        // Release: as in `publish`.
        self.ptr.store(node.ptr, Ordering::Release);
    }

    /// Points the link at `new` (or null), returning what it pointed to as
    /// a token to retire. Never allocates: any context.
    pub fn swap(&self, new: Option<Owned<T>>) -> Option<Unlinked<T>> {
        let new = new.map_or(ptr::null_mut(), |n| n.into_raw().as_ptr());
        // AcqRel: Release publishes `new`; Acquire orders the retire of the
        // old node after its publication.
        Unlinked::from_raw(self.ptr.swap(new, Ordering::AcqRel))
    }

    /// Inserts: points the link at `new` if it still points at `current`.
    /// On success returns `new` as loaded under `guard`; on failure gives
    /// back what the link points to now and `new`. Never allocates.
    pub fn compare_exchange_owned<'g>(
        &self,
        current: Shared<'g, T>,
        new: Owned<T>,
        _guard: &'g RcuReadGuard<'_>,
    ) -> Result<Shared<'g, T>, (Shared<'g, T>, Owned<T>)> {
        let new = new.into_raw();
        // AcqRel/Acquire: Release publishes `new`; Acquire (both outcomes)
        // pairs with the publication of the node now in the link.
        match self.ptr.compare_exchange(
            current.ptr,
            new.as_ptr(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(Shared::from_raw(new.as_ptr())),
            Err(actual) => {
                // SAFETY: (1) from `into_raw` above; (2) never published.
                Err((Shared::from_raw(actual), unsafe { Owned::from_raw(new) }))
            }
        }
    }

    /// Unlinks: points the link at `new` (a node loaded elsewhere, or null)
    /// if it still points at `current`, returning `current` as a token to
    /// retire (none if it was null); on failure, what the link points to
    /// now. Never allocates.
    pub fn compare_exchange<'g>(
        &self,
        current: Shared<'g, T>,
        new: Shared<'g, T>,
        _guard: &'g RcuReadGuard<'_>,
    ) -> Result<Option<Unlinked<T>>, Shared<'g, T>> {
        // AcqRel/Acquire: as in `compare_exchange_owned`.
        match self
            .ptr
            .compare_exchange(current.ptr, new.ptr, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(old) => Ok(Unlinked::from_raw(old)),
            Err(actual) => Err(Shared::from_raw(actual)),
        }
    }
}

impl<T> fmt::Debug for Atomic<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Atomic")
            .field(&self.ptr.load(Ordering::Relaxed))
            .finish()
    }
}

/// A node (or null) loaded from an [`Atomic`], valid while the guard it was
/// loaded under lives (`'g`). It cannot outlive the guard:
///
/// ```compile_fail,E0597
/// use kvfree_rcu::{Atomic, Rcu};
/// let link = Atomic::new(1u32);
/// let value = {
///     let guard = Rcu::global().read_lock();
///     link.load(&guard).as_ref()
/// }; // error: `guard` does not live long enough
/// # let _ = value;
/// ```
pub struct Shared<'g, T> {
    ptr: *mut Node<T>,
    _guard: PhantomData<&'g T>,
}

impl<T> Clone for Shared<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<'_, T> {}

impl<'g, T> Shared<'g, T> {
    /// The null pointer.
    pub fn null() -> Shared<'g, T> {
        Shared::from_raw(ptr::null_mut())
    }

    fn from_raw(ptr: *mut Node<T>) -> Shared<'g, T> {
        Shared {
            ptr,
            _guard: PhantomData,
        }
    }

    /// Whether this is null.
    pub fn is_null(&self) -> bool {
        self.ptr.is_null()
    }

    /// The value, for as long as the guard lives; `None` for null.
    pub fn as_ref(&self) -> Option<&'g T> {
        // Nodes are freed only after they are unlinked, retired
        // (`Unlinked::retire`, whose contract 2 puts readers' guards in the
        // retiring service's domain) and a grace period has passed.
        // SAFETY: a non-null `Shared` was loaded from an `Atomic` under a
        // guard borrowed for `'g`, so that grace period cannot end first.
        NonNull::new(self.ptr).map(|node| unsafe { node.as_ref() }.value())
    }

    /// Whether both point to the same node.
    pub fn ptr_eq(&self, other: Shared<'_, T>) -> bool {
        ptr::eq(self.ptr, other.ptr)
    }
}

impl<T> fmt::Debug for Shared<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Shared").field(&self.ptr).finish()
    }
}

/// A node taken out of a link by [`Atomic::swap`] or
/// [`Atomic::compare_exchange`]: retire it with [`retire`](Self::retire).
/// Dropping the token leaks the node (a reader may still use it).
#[must_use = "an unlinked node leaks unless it is retired"]
pub struct Unlinked<T> {
    node: NonNull<Node<T>>,
}

// SAFETY: the token only carries the node to its retire.
unsafe impl<T: Send> Send for Unlinked<T> {}

impl<T: Send + Sync + 'static> Unlinked<T> {
    fn from_raw(ptr: *mut Node<T>) -> Option<Unlinked<T>> {
        NonNull::new(ptr).map(|node| Unlinked { node })
    }

    /// Retires the node: its value is dropped after a grace period of
    /// `service`'s domain. Never fails, allocates, locks or blocks: any
    /// context.
    ///
    /// # Safety
    /// 1. No other link that new readers can follow points to the node (the
    ///    structure holds no second link to it, or has cleared it).
    /// 2. Every reader that may reach the node does so under guards of
    ///    `service.grace_period()`'s domain.
    /// 3. The node is retired once: no other `Unlinked` for it is retired
    ///    (a node linked twice can be unlinked twice).
    pub unsafe fn retire(self, service: &KvfreeRcu) {
        // kvfree_rcu's contracts: (1) the node comes from `Owned::into_raw`
        // (a `Box`); (2) our contracts 1 and 2: unreachable for new readers,
        // whose guards are in the domain the service waits for;
        // SAFETY: (1) and (2) above, and (3) our contract 3: retired once.
        unsafe { service.kvfree_rcu(self.node) }
    }

    /// [`retire`](Self::retire) through a thread's own lane into
    /// `local.service()` (no locked instruction: [`LocalRetirer`]). Never
    /// fails, allocates, locks or blocks: any context.
    ///
    /// # Safety
    /// As [`retire`](Self::retire), with `local.service()` as the service.
    pub unsafe fn retire_local(self, local: &LocalRetirer<'_>) {
        // SAFETY: as in `retire`: the node is an `Owned` box, unreachable
        // for new readers of the service's domain (contracts 1 and 2), and
        // retired once (contract 3).
        unsafe { local.kvfree_rcu(self.node) }
    }
}

impl<T> fmt::Debug for Unlinked<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Unlinked").field(&self.node).finish()
    }
}
