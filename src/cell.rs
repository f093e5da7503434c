//! `RcuCell<T>`: one RCU-protected value, read wait-free under a guard and
//! replaced from any context, with no `unsafe` for the user (like
//! `ArcSwap`, but readers pay no reference count).
//!
//! Design and argument:
//! - The value lives in an [`Owned`] node with an embedded head; the cell
//!   holds the only link to its current node (an `AtomicPtr`, never null).
//!   Nodes are published with a Release swap/CAS and loaded with Acquire:
//!   the pairing makes a node's initialisation visible to readers.
//! - A replaced node is unlinked by the swap (each node is swapped out by
//!   exactly one call, so it is retired once) and retired with the headed
//!   [`KvfreeRcu::kvfree_rcu`]: never fails, never allocates. It is freed
//!   after a grace period of the service's domain, which every reader that
//!   could have loaded it is inside: [`RcuCell::read`] checks that the
//!   guard belongs to that domain (one compare of [`DomainId`]s, cached in
//!   the cell) and panics otherwise, so a reference handed out for `'g`
//!   stays valid for `'g`.
//! - The reference `read` returns is tied to the guard, not to the cell:
//!   dropping the cell therefore *retires* its value rather than freeing it
//!   in place, and the cell offers no `get_mut`/`into_inner`.

use crate::global;
use crate::gp::{DomainId, RcuReadGuard};
use crate::node::{Node, Owned};
use crate::service::KvfreeRcu;
use crate::sync::{AtomicPtr, Ordering};
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::Arc;

/// The service a cell retires through.
enum ServiceRef {
    Static(&'static KvfreeRcu),
    Shared(Arc<KvfreeRcu>),
}

impl ServiceRef {
    fn get(&self) -> &KvfreeRcu {
        match self {
            ServiceRef::Static(s) => s,
            ServiceRef::Shared(s) => s,
        }
    }
}

/// One RCU-protected value of type `T`.
///
/// ```
/// use kvfree_rcu::{RcuCell, Rcu};
/// let config = RcuCell::new(String::from("v1")); // on kvfree_rcu::global()
/// {
///     let guard = Rcu::global().read_lock();
///     let v: &str = config.read(&guard);
///     config.replace(String::from("v2")); // `v` stays valid under `guard`
///     assert_eq!(v, "v1");
/// }
/// assert_eq!(config.with(|v| v.clone()), "v2");
/// ```
pub struct RcuCell<T: Send + Sync + 'static> {
    current: AtomicPtr<Node<T>>,
    service: ServiceRef,
    /// The service's domain, cached so that `read` checks a guard with one
    /// compare.
    domain: DomainId,
    _owns: PhantomData<Owned<T>>,
}

impl<T: Send + Sync + 'static> RcuCell<T> {
    /// A cell holding `value`, retiring through the process-wide
    /// [`global`](crate::global()) service: read it under
    /// [`Rcu::global`](crate::Rcu::global)`().read_lock()`. Allocates:
    /// ordinary context (and creates the global service on first use).
    pub fn new(value: T) -> RcuCell<T> {
        RcuCell::with_service(global::global_from_ordinary_context(), value)
    }

    /// A cell retiring through `service`: read it under guards of
    /// `service.grace_period()`. Allocates: ordinary context.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu, RcuCell};
    /// static SERVICE: std::sync::OnceLock<KvfreeRcu> = std::sync::OnceLock::new();
    /// let service = SERVICE.get_or_init(|| KvfreeRcu::new(Arc::new(Rcu::new())));
    /// let cell = RcuCell::with_service(service, 1u32);
    /// let guard = service.grace_period().read_lock();
    /// assert_eq!(*cell.read(&guard), 1);
    /// ```
    pub fn with_service(service: &'static KvfreeRcu, value: T) -> RcuCell<T> {
        RcuCell::build(ServiceRef::Static(service), Owned::new(value))
    }

    /// A cell retiring through a service it shares ownership of (the
    /// service lives until its last cell is dropped). Allocates: ordinary
    /// context.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu, RcuCell};
    /// let service = Arc::new(KvfreeRcu::new(Arc::new(Rcu::new())));
    /// let cell = RcuCell::with_shared_service(service.clone(), 1u32);
    /// cell.replace(2);
    /// assert_eq!(cell.with(|v| *v), 2);
    /// ```
    pub fn with_shared_service(service: Arc<KvfreeRcu>, value: T) -> RcuCell<T> {
        RcuCell::build(ServiceRef::Shared(service), Owned::new(value))
    }

    fn build(service: ServiceRef, node: Owned<T>) -> RcuCell<T> {
        let domain = service.get().grace_period().domain_id();
        RcuCell {
            current: AtomicPtr::new(node.into_raw().as_ptr()),
            service,
            domain,
            _owns: PhantomData,
        }
    }

    /// The service the cell retires through (its
    /// [`grace_period`](KvfreeRcu::grace_period) is the domain to read in).
    pub fn service(&self) -> &KvfreeRcu {
        self.service.get()
    }

    /// The current value, valid while `guard` lives. Wait-free: one compare,
    /// one load. Any context. The reference cannot outlive the guard:
    ///
    /// ```compile_fail,E0597
    /// use kvfree_rcu::{RcuCell, Rcu};
    /// let cell = RcuCell::new(1u32);
    /// let value = {
    ///     let guard = Rcu::global().read_lock();
    ///     cell.read(&guard)
    /// }; // error: `guard` does not live long enough
    /// # let _ = value;
    /// ```
    ///
    /// # Panics
    /// If `guard` belongs to another RCU domain than the cell's service
    /// (values retired through the service would not wait for it).
    ///
    /// ```should_panic
    /// use kvfree_rcu::{RcuCell, Rcu};
    /// let cell = RcuCell::new(1u8); // global domain
    /// let other = Rcu::new();
    /// let guard = other.read_lock();
    /// cell.read(&guard); // panics: wrong domain
    /// ```
    #[inline]
    #[track_caller]
    pub fn read<'g>(&self, guard: &'g RcuReadGuard<'_>) -> &'g T {
        if guard.domain_id() != self.domain {
            wrong_domain();
        }
        // Acquire: pairs with the Release half of the swap or CAS that
        // published the node (or with the cell's construction, which
        // happened-before any `&self`), so its value is initialised.
        let node = self.current.load(Ordering::Acquire);
        // A node is freed only after it is unlinked and retired through
        // `self.service`, after a grace period of `self.domain`; `guard`
        // (checked above to be in that domain) was taken before this load.
        // SAFETY: the node is non-null (the cell always holds one), was
        // linked when loaded, and its grace period cannot end before `'g`.
        unsafe { (*node).value() }
    }

    /// Runs `f` on the current value under a guard of the cell's domain
    /// taken for the call. Any context where the thread can take a guard
    /// (see [`Rcu::read_lock`](crate::Rcu::read_lock)).
    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let guard = self.service().grace_period().read_lock();
        f(self.read(&guard))
    }

    /// Publishes `value` and retires the old value (dropped after a grace
    /// period). Allocates the new node in the caller's context: ordinary
    /// context. In atomic context use [`replace_with`](Self::replace_with).
    pub fn replace(&self, value: T) {
        self.replace_with(Owned::new(value));
    }

    /// Publishes a node built earlier and retires the old value. Never
    /// allocates, locks or blocks: any context (under a raw spinlock, in a
    /// signal handler).
    ///
    /// ```
    /// use kvfree_rcu::{Owned, RawSpinLock, RcuCell};
    /// let cell = RcuCell::new(0u64);
    /// let lock = RawSpinLock::new(());
    /// let next = Owned::new(1u64); // ordinary context: allocates
    /// {
    ///     let _held = lock.lock();
    ///     cell.replace_with(next); // atomic context: no allocation
    /// }
    /// assert_eq!(cell.with(|v| *v), 1);
    /// ```
    pub fn replace_with(&self, node: Owned<T>) {
        // AcqRel: the Release half publishes the new node (pairs with the
        // Acquire load in `read`); the Acquire half orders this thread's
        // retire after the old node's publication.
        let old = self
            .current
            .swap(node.into_raw().as_ptr(), Ordering::AcqRel);
        self.retire(old);
    }

    /// Replaces the value with `f(current)`, retrying when another update
    /// raced (so `f` may run more than once), like `ArcSwap::rcu`.
    /// Allocates: ordinary context.
    ///
    /// ```
    /// use kvfree_rcu::RcuCell;
    /// let list = RcuCell::new(vec![1]);
    /// list.update(|v| { let mut v = v.clone(); v.push(2); v });
    /// assert_eq!(list.with(|v| v.clone()), [1, 2]);
    /// ```
    pub fn update(&self, mut f: impl FnMut(&T) -> T) {
        // Held to the end: it keeps `current` alive (and un-reused).
        let _guard = self.service().grace_period().read_lock();
        let mut current = self.current.load(Ordering::Acquire);
        loop {
            // SAFETY: as in `read`: non-null, loaded under `guard`, a guard
            // of the cell's domain (the service's own) held until the end.
            let new = Owned::new(f(unsafe { (*current).value() })).into_raw();
            // AcqRel on success: as in `replace_with`. Acquire on failure:
            // pairs with the publication of the node we retry on. No ABA:
            // `current` cannot be freed and reused while `guard` lives.
            match self.current.compare_exchange(
                current,
                new.as_ptr(),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(old) => {
                    self.retire(old);
                    return;
                }
                Err(actual) => {
                    // SAFETY: (1) from `into_raw` just above; (2) the CAS
                    // failed, so it was never published.
                    drop(unsafe { Owned::from_raw(new) });
                    current = actual;
                }
            }
        }
    }

    /// Retires a node this cell has just unlinked.
    fn retire(&self, old: *mut Node<T>) {
        let old = NonNull::new(old).expect("an RcuCell always holds a node");
        // (1) every node the cell links comes from `Owned::into_raw` (a
        // `Box`); (2) the swap/CAS that returned it unlinked it, and the cell
        // held its only link (`Owned` never exposes its pointer);
        // SAFETY: (1), (2): new readers cannot reach it; (3) a swap or
        // successful CAS returns each node to one caller: retired once.
        unsafe { self.service().kvfree_rcu(old) };
    }
}

impl<T: Send + Sync + 'static> Drop for RcuCell<T> {
    fn drop(&mut self) {
        // Retired, not freed: readers may still hold `&'g T` from `read`.
        let last = *self.current.get_mut();
        self.retire(last);
    }
}

impl<T: Send + Sync + fmt::Debug + 'static> fmt::Debug for RcuCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with(|v| f.debug_tuple("RcuCell").field(v).finish())
    }
}

/// `read`'s refusal, out of line.
#[cold]
#[inline(never)]
#[track_caller]
fn wrong_domain() -> ! {
    panic!(
        "RcuCell::read: the guard belongs to a different RCU domain than the cell's \
         service, so it would not keep the value alive; take the guard with \
         cell.service().grace_period().read_lock() (Rcu::global().read_lock() for a \
         cell on kvfree_rcu::global())"
    )
}
