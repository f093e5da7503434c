//! The read-side guard: a critical section that lasts until it is dropped.
//!
//! A guard borrows its domain (so the slot it points into stays allocated)
//! and is `!Send`: it stands for "this thread's slot has nesting > 0", which
//! means nothing on another thread. Dropping it is one load and one Release
//! store to the thread's own slot word, plus, for an ephemeral slot (a thread
//! registered in more domains than its table holds, or one whose
//! thread-locals are being destroyed), giving that slot back.

use crate::DomainId;
use crate::reader_slot::ReaderSlot;
use core::fmt;
use core::marker::PhantomData;

/// Who releases the reader slot a guard runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotOwner {
    /// The thread's registration: released at thread exit, not by the guard.
    Thread,
    /// The guard itself (an ephemeral slot): released when the guard drops.
    Guard,
}

/// A read-side critical section of an [`Rcu`](crate::Rcu) domain, from
/// [`Rcu::read_lock`](crate::Rcu::read_lock) until drop.
///
/// While a guard lives, no grace period that starts after the guard was
/// taken can complete, so objects the thread reached through RCU-protected
/// pointers stay valid. Guards nest, and are `!Send`:
///
/// ```compile_fail
/// let rcu = kvfree_rcu_gp::Rcu::new();
/// let guard = rcu.read_lock();
/// std::thread::scope(|s| { s.spawn(move || drop(guard)); });
/// ```
#[must_use = "the critical section ends when the guard is dropped"]
pub struct RcuReadGuard<'a> {
    slot: &'a ReaderSlot,
    owner: SlotOwner,
    domain: DomainId,
    _not_send: PhantomData<*const ()>,
}

impl<'a> RcuReadGuard<'a> {
    /// Wrap a slot the caller has just entered; `owner` says whether the
    /// guard releases it when it drops.
    #[inline(always)]
    pub(crate) fn new(
        slot: &'a ReaderSlot,
        owner: SlotOwner,
        domain: DomainId,
    ) -> RcuReadGuard<'a> {
        RcuReadGuard {
            slot,
            owner,
            domain,
            _not_send: PhantomData,
        }
    }

    /// True if this guard holds an ephemeral slot (the thread was not, and
    /// could not be, registered in the domain).
    ///
    /// ```
    /// let rcu = kvfree_rcu_gp::Rcu::new();
    /// assert!(!rcu.read_lock().is_ephemeral());
    /// ```
    pub fn is_ephemeral(&self) -> bool {
        self.owner == SlotOwner::Guard
    }

    /// The identity of the domain this critical section is in: equal to
    /// [`Rcu::domain_id`](crate::Rcu::domain_id) of that domain (and of its
    /// clones), different from every other live domain's. One word, so a
    /// safe layer can refuse a guard of the wrong domain with one compare.
    ///
    /// ```
    /// let (a, b) = (kvfree_rcu_gp::Rcu::new(), kvfree_rcu_gp::Rcu::new());
    /// let guard = a.read_lock();
    /// assert_eq!(guard.domain_id(), a.clone().domain_id());
    /// assert_ne!(guard.domain_id(), b.domain_id());
    /// ```
    #[inline(always)]
    pub fn domain_id(&self) -> DomainId {
        self.domain
    }
}

impl Drop for RcuReadGuard<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.slot.exit();
        if self.owner == SlotOwner::Guard {
            self.slot.release();
        }
    }
}

impl fmt::Debug for RcuReadGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcuReadGuard")
            .field("ephemeral", &self.is_ephemeral())
            .finish_non_exhaustive()
    }
}
