//! `Owned<T>`: a value in a heap node with an embedded [`RcuHead`], the unit
//! the safe layer ([`RcuCell`](crate::RcuCell), [`Atomic`](crate::Atomic))
//! publishes and retires.
//!
//! Design: the user's `T` needs no head of its own; the node adds one, so
//! every retire of a node is the headed [`KvfreeRcu::kvfree_rcu`] call,
//! which never fails and never allocates. Building an `Owned` allocates (in
//! the caller's context, so build it in ordinary context); publishing one
//! and retiring the node it replaces do not, so an `Owned` built ahead of
//! time can be published under a raw spinlock.
//!
//! [`KvfreeRcu::kvfree_rcu`]: crate::KvfreeRcu::kvfree_rcu

use crate::head::{RcuHead, RcuHeaded};
use core::fmt;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

/// The heap node: the value and the head the service links when it has no
/// page.
pub(crate) struct Node<T> {
    value: T,
    head: RcuHead,
}

// SAFETY: (1) `offset_of!` names the `head` field, an `RcuHead`; (2) only the
// service writes it once the node is retired: the safe layer never touches
// a node's head, and `Node` is private to the crate.
unsafe impl<T> RcuHeaded for Node<T> {
    const RCU_HEAD_OFFSET: usize = core::mem::offset_of!(Node<T>, head);
}

impl<T> Node<T> {
    /// The value.
    pub(crate) fn value(&self) -> &T {
        &self.value
    }
}

/// A value in its own heap node, not yet published: the safe layer's unit
/// of publication and retirement (it carries the [`RcuHead`] that makes the
/// retire infallible). [`Owned::new`] allocates: build it in ordinary
/// context, then publish it anywhere, for example with
/// [`RcuCell::replace_with`](crate::RcuCell::replace_with) under a
/// [`RawSpinLock`](crate::RawSpinLock).
///
/// ```
/// use kvfree_rcu::Owned;
/// let mut node = Owned::new(vec![1, 2]);
/// node.push(3); // not published yet: plain mutable access
/// assert_eq!(Owned::into_inner(node), [1, 2, 3]);
/// ```
pub struct Owned<T> {
    node: Box<Node<T>>,
}

impl<T> Owned<T> {
    /// `value` in a new node. Allocates: ordinary context.
    pub fn new(value: T) -> Owned<T> {
        Owned {
            node: Box::new(Node {
                value,
                head: RcuHead::new(),
            }),
        }
    }

    /// The value, out of its node (which is freed).
    pub fn into_inner(this: Owned<T>) -> T {
        this.node.value
    }

    /// Gives up the node, for publication: the pointer comes from
    /// `Box::into_raw`.
    pub(crate) fn into_raw(self) -> NonNull<Node<T>> {
        NonNull::from(Box::leak(self.node))
    }

    /// Takes back a node that [`into_raw`](Self::into_raw) gave up.
    ///
    /// # Safety
    /// 1. `ptr` comes from [`Owned::into_raw`].
    /// 2. Nobody else uses the node any more (it was never published, or it
    ///    is unlinked and a grace period has elapsed).
    pub(crate) unsafe fn from_raw(ptr: NonNull<Node<T>>) -> Owned<T> {
        Owned {
            // SAFETY: (1) a pointer from Box::leak; (2) we are its only user.
            node: unsafe { Box::from_raw(ptr.as_ptr()) },
        }
    }
}

impl<T> Deref for Owned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.node.value
    }
}

impl<T> DerefMut for Owned<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.node.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Owned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Owned").field(&self.node.value).finish()
    }
}
