//! `RcuHead`, the two words a headed object embeds, and the per-CPU lists of
//! heads that take objects when the page pool has no page (the kernel's
//! "channel 3").
//!
//! A head is `{ next, free }`: `next` links it into a list, `free` is the
//! monomorphised function that turns the head back into its object and drops
//! it. The object is found from the head with `RcuHeaded::RCU_HEAD_OFFSET`
//! (a `byte_sub` from a pointer derived from the *whole object*, so the
//! pointer keeps the object's provenance; a pointer derived from
//! `&RcuHead` would only cover the head). Two words cannot hold a link, a
//! function *and* an offset, so the offset is a compile-time constant of the
//! type rather than something each head stores, as the kernel's
//! `kvfree_rcu()` stores it in `rcu_head.func`.
//!
//! Lists are Treiber stacks, one per possible CPU (indexed by the CPU the
//! pusher runs on, a locality hint only): producers push with a CAS loop
//! (lock-free, reentrant: a signal handler's push between our load and our
//! CAS just makes our CAS fail and retry), and the single consumer takes a
//! whole list with one `swap(null)`, so there is no ABA. Pushers never read
//! another head.

use crate::sync::{AtomicPtr, Ordering};
use core::fmt;
use core::ptr::{self, NonNull};
use crossbeam_utils::CachePadded;

/// What `free` holds for a headed object retired through a page (checked
/// builds only): non-null, never called.
const RETIRED_MARK: *mut () = ptr::without_provenance_mut(1);

/// A function that frees the object an [`RcuHead`] is embedded in, given
/// the head: the free function of [`KvfreeRcu::call_rcu`](crate::KvfreeRcu::call_rcu).
///
/// ```
/// use std::ptr::NonNull;
/// use kvfree_rcu::{HeadFreeFn, RcuHead};
/// unsafe fn free_head_box(head: NonNull<RcuHead>) {
///     // SAFETY: only ever given heads from `Box::<RcuHead>::into_raw`.
///     drop(unsafe { Box::from_raw(head.as_ptr()) });
/// }
/// let free: HeadFreeFn = free_head_box;
/// # let _ = free;
/// ```
pub type HeadFreeFn = unsafe fn(NonNull<RcuHead>);

/// Two words embedded in an object so that it can always be retired, even
/// when no page is available. Initialise with `RcuHead::default()` (or
/// [`RcuHead::new`]); after the object is retired the service owns the head:
/// readers must not touch it.
///
/// ```
/// use kvfree_rcu::RcuHead;
/// assert_eq!(core::mem::size_of::<RcuHead>(), 2 * core::mem::size_of::<usize>());
/// ```
#[repr(C)]
pub struct RcuHead {
    next: AtomicPtr<RcuHead>,
    /// Null until queued: the `HeadFreeFn` as a pointer. A non-null value at
    /// retire time means the object is already queued (a double retire).
    free: AtomicPtr<()>,
}

impl RcuHead {
    /// An unqueued head.
    ///
    /// ```
    /// use kvfree_rcu::{RcuHead, impl_rcu_headed};
    /// struct Node { value: u64, head: RcuHead }
    /// impl_rcu_headed!(Node, head);
    /// let node = Node { value: 1, head: RcuHead::new() };
    /// assert!(!node.head.is_queued());
    /// # let _ = node.value;
    /// ```
    #[cfg(not(kvfree_loom))]
    pub const fn new() -> RcuHead {
        RcuHead {
            next: AtomicPtr::new(ptr::null_mut()),
            free: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// An unqueued head.
    #[cfg(kvfree_loom)]
    pub fn new() -> RcuHead {
        RcuHead {
            next: AtomicPtr::new(ptr::null_mut()),
            free: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Marks the head retired (checked builds call this on every headed
    /// retire); true when it already was: a double retire.
    pub(crate) fn mark_retired(&self) -> bool {
        // A CAS, not a swap: a second retire must not overwrite the free
        // function of a head the first retire queued. Relaxed: a debugging
        // aid only; the retire's own publication orders what matters.
        self.free
            .compare_exchange(
                ptr::null_mut(),
                RETIRED_MARK,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
    }

    /// Whether the head is queued for freeing (a racy snapshot, for debugging).
    ///
    /// ```
    /// use kvfree_rcu::RcuHead;
    /// let head = RcuHead::new();
    /// assert!(!head.is_queued()); // not retired
    /// ```
    pub fn is_queued(&self) -> bool {
        !self.free.load(Ordering::Relaxed).is_null()
    }
}

impl Default for RcuHead {
    fn default() -> Self {
        RcuHead::new()
    }
}

impl fmt::Debug for RcuHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcuHead")
            .field("queued", &self.is_queued())
            .finish()
    }
}

/// An object that embeds an [`RcuHead`], so that retiring it never fails.
///
/// Implement it with [`impl_rcu_headed!`](crate::impl_rcu_headed), which
/// computes the offset with `core::mem::offset_of!`:
///
/// ```
/// use kvfree_rcu::{RcuHead, impl_rcu_headed};
/// struct Node { key: u64, head: RcuHead }
/// impl_rcu_headed!(Node, head);
/// ```
///
/// # Safety
/// 1. `RCU_HEAD_OFFSET` is the byte offset of a field of type [`RcuHead`]
///    inside `Self` (so `offset + size_of::<RcuHead>() <= size_of::<Self>()`
///    and the offset is a multiple of `align_of::<RcuHead>()`; both are also
///    checked at compile time).
/// 2. Nothing but the service writes that field while the object is retired,
///    and `rcu_head`, if overridden, returns that same field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no embedded `RcuHead` that the service knows of",
    label = "`kvfree_rcu` needs a headed object",
    note = "embed an `RcuHead` field and implement the trait with `impl_rcu_headed!({Self}, field)` (generic types: `impl_rcu_headed!(Node<K, V>, field)`)",
    note = "or retire a head-less `Box` with `try_kvfree_rcu`, which returns `Err` when no page is available"
)]
pub unsafe trait RcuHeaded: Sized {
    /// Byte offset of the embedded [`RcuHead`] within `Self`.
    const RCU_HEAD_OFFSET: usize;

    /// The embedded head.
    fn rcu_head(&self) -> &RcuHead {
        // SAFETY: contract 1 of the trait: an `RcuHead` field lives at this
        // offset inside `*self`, which is borrowed for the returned lifetime.
        unsafe {
            &*ptr::from_ref(self)
                .byte_add(Self::RCU_HEAD_OFFSET)
                .cast::<RcuHead>()
        }
    }
}

/// Implements [`RcuHeaded`] for a type whose field `$field` is an
/// [`RcuHead`]. Three forms:
///
/// - `impl_rcu_headed!(Type, field)` for a type without generic parameters
///   (or with only lifetimes given: `Counted<'static>`);
/// - `impl_rcu_headed!(Node<K, V>, field)` for every `Node<K, V>`: the
///   names in angle brackets are always taken as type parameters (so
///   `Node<u64>` too implements it for every `Node<T>`); bounds the struct needs
///   go in a trailing `where` clause:
///   `impl_rcu_headed!(Node<K, V>, field where K: Ord)`;
/// - `impl_rcu_headed!(impl[<generics>] Type<..>, field)` for anything else
///   (lifetimes, const parameters, inline bounds), with the generics as
///   they would appear after `impl`, in square brackets:
///   `impl_rcu_headed!(impl[K: Ord, const N: usize] Tower<K, N>, head)`.
///
/// The macro checks at compile time that the field's type is `RcuHead`.
///
/// ```
/// use kvfree_rcu::{RcuHead, RcuHeaded, impl_rcu_headed};
/// #[derive(Default)]
/// struct Entry { value: String, rcu: RcuHead }
/// impl_rcu_headed!(Entry, rcu);
/// let e = Entry::default();
/// assert!(!e.rcu_head().is_queued());
///
/// struct Node<K, V> { key: K, value: V, head: RcuHead }
/// impl_rcu_headed!(Node<K, V>, head);
/// let n = Node { key: 1u32, value: "one", head: RcuHead::new() };
/// assert!(!n.rcu_head().is_queued());
/// # let _ = (n.key, n.value);
///
/// struct Sorted<K: Ord> { key: K, head: RcuHead }
/// impl_rcu_headed!(Sorted<K>, head where K: Ord);
///
/// struct Tower<K, const N: usize> { keys: [K; N], head: RcuHead }
/// impl_rcu_headed!(impl[K: Copy, const N: usize] Tower<K, N>, head);
/// ```
///
/// A field of another type does not compile:
///
/// ```compile_fail
/// use kvfree_rcu::impl_rcu_headed;
/// struct Node<T> { value: T, head: u64 }
/// impl_rcu_headed!(Node<T>, head);
/// ```
#[macro_export]
macro_rules! impl_rcu_headed {
    (impl [$($generics:tt)*] $ty:ty, $field:ident $(where $($bounds:tt)+)?) => {
        // SAFETY: `offset_of!` names a field of `$ty`, and the closure below
        // only compiles if that field is an `RcuHead`.
        unsafe impl<$($generics)*> $crate::RcuHeaded for $ty $(where $($bounds)+)? {
            const RCU_HEAD_OFFSET: usize = {
                // A closure, not a nested fn: it may name the impl's generic
                // parameters (a nested fn cannot).
                let _field_is_an_rcu_head: for<'object> fn(&'object $ty) -> &'object $crate::RcuHead =
                    |v| &v.$field;
                ::core::mem::offset_of!($ty, $field)
            };
        }
    };
    ($name:ident < $($param:ident),+ $(,)? >, $field:ident $(where $($bounds:tt)+)?) => {
        $crate::impl_rcu_headed!(
            impl [$($param),+] $name<$($param),+>, $field $(where $($bounds)+)?
        );
    };
    ($ty:ty, $field:ident) => {
        $crate::impl_rcu_headed!(impl [] $ty, $field);
    };
}

/// Compile-time check of contract 1's arithmetic.
pub(crate) const fn assert_head_fits<T: RcuHeaded>() {
    assert!(
        T::RCU_HEAD_OFFSET + size_of::<RcuHead>() <= size_of::<T>(),
        "RcuHeaded::RCU_HEAD_OFFSET points outside the object"
    );
    assert!(
        T::RCU_HEAD_OFFSET % align_of::<RcuHead>() == 0,
        "RcuHeaded::RCU_HEAD_OFFSET is misaligned for an RcuHead"
    );
}

/// Drops the `Box<T>` whose head is `head`.
///
/// # Safety
/// 1. `head` was derived (with the object's provenance) from a pointer
///    returned by `Box::<T>::into_raw`, at `T::RCU_HEAD_OFFSET`.
/// 2. The object is not used afterwards, by anyone.
pub(crate) unsafe fn free_headed<T: RcuHeaded>(head: NonNull<RcuHead>) {
    // SAFETY: by contract 1 the object starts RCU_HEAD_OFFSET bytes before
    // the head, within the same allocation.
    let object = unsafe { head.byte_sub(T::RCU_HEAD_OFFSET) }.cast::<T>();
    // SAFETY: contract 1 (a `Box<T>` pointer) and 2 (no further use).
    drop(unsafe { Box::from_raw(object.as_ptr()) });
}

/// One lock-free list of heads per possible CPU.
pub(crate) struct HeadLists {
    lists: Box<[CachePadded<AtomicPtr<RcuHead>>]>,
}

impl HeadLists {
    /// One list per possible CPU. (Not per pool lane: the pool has two
    /// lanes per CPU, and lists indexed by CPU would leave half unused.)
    pub(crate) fn per_cpu() -> HeadLists {
        HeadLists::new(crate::pool::possible_cpus())
    }

    fn new(lists: usize) -> HeadLists {
        HeadLists {
            lists: (0..lists)
                .map(|_| CachePadded::new(AtomicPtr::new(ptr::null_mut())))
                .collect(),
        }
    }

    /// Queues `head` with its `free` function on list `cpu % lists`.
    /// Lock-free, allocation-free, reentrant.
    ///
    /// # Safety
    /// 1. `head` points to a live `RcuHead` that no one else writes until the
    ///    list is taken and the head freed (the object is retired once).
    /// 2. `free(head)` is sound to call once, after a grace period.
    pub(crate) unsafe fn push(&self, cpu: usize, head: NonNull<RcuHead>, free: HeadFreeFn) {
        // SAFETY: contract 1: the head is live and ours to write.
        let h = unsafe { head.as_ref() };
        h.free.store(free as *mut (), Ordering::Relaxed);
        let list = &self.lists[cpu % self.lists.len()];
        // Relaxed: only the CAS's expected value; `push` never reads
        // through `top`, it only links to it.
        let mut top = list.load(Ordering::Relaxed);
        loop {
            h.next.store(top, Ordering::Relaxed);
            // Release: pairs with the consumer's Acquire swap in `take_all`,
            // publishing `next`, `free` and everything the caller did before
            // (its unlink) to the collector. This CAS, not the wake word,
            // is what orders a queued head before the worker's collect.
            match list.compare_exchange_weak(
                top,
                head.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => top = now,
            }
        }
    }

    /// Takes every list; returns the heads as one chain (null-terminated).
    pub(crate) fn take_all(&self) -> HeadChain {
        let mut chain = HeadChain::default();
        for list in self.lists.iter() {
            // Acquire: pairs with the Release CAS in `push`.
            let first = list.swap(ptr::null_mut(), Ordering::Acquire);
            chain.prepend(first);
        }
        chain
    }
}

/// A chain of queued heads owned by the consumer.
#[derive(Default)]
pub(crate) struct HeadChain {
    first: Option<NonNull<RcuHead>>,
    len: u64,
}

// SAFETY: a chain owns its heads exclusively (taken with a swap); the objects
// behind them are `Send` (every retire call requires `T: Send`).
unsafe impl Send for HeadChain {}

impl HeadChain {
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Adds the list starting at `first` (may be null) in front of this chain.
    fn prepend(&mut self, first: *mut RcuHead) {
        let Some(first) = NonNull::new(first) else {
            return;
        };
        let mut last = first;
        let mut n = 1;
        loop {
            // Relaxed: the Acquire swap in `take_all` already made every
            // pusher's `next` and `free` visible; only this thread touches
            // the chain now.
            // SAFETY: the chain's heads are owned by us (taken by swap) and live.
            let next = unsafe { last.as_ref() }.next.load(Ordering::Relaxed);
            match NonNull::new(next) {
                Some(next) => {
                    last = next;
                    n += 1;
                }
                None => break,
            }
        }
        let rest = self.first.map_or(ptr::null_mut(), NonNull::as_ptr);
        // SAFETY: `last` is a live head we own.
        unsafe { last.as_ref() }.next.store(rest, Ordering::Relaxed);
        self.first = Some(first);
        self.len += n;
    }

    /// Frees every object in the chain; returns how many.
    ///
    /// # Safety
    /// A grace period has elapsed since the chain was taken.
    pub(crate) unsafe fn free_all(self) -> u64 {
        let mut cursor = self.first;
        let mut freed = 0;
        while let Some(head) = cursor {
            // SAFETY: we own the live head; read both words before freeing.
            let h = unsafe { head.as_ref() };
            // Relaxed: the chain reached this thread through `take_all`'s
            // Acquire swap and then the batch queue's lock.
            cursor = NonNull::new(h.next.load(Ordering::Relaxed));
            let free = h.free.load(Ordering::Relaxed);
            // SAFETY: `free` was stored by `push` from a `HeadFreeFn`.
            let free = unsafe { core::mem::transmute::<*mut (), HeadFreeFn>(free) };
            // SAFETY: `push`'s contract 2, and the caller's grace period.
            unsafe { free(head) };
            freed += 1;
        }
        freed
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    unsafe fn never_called(_: NonNull<RcuHead>) {
        unreachable!("the test takes its heads back without freeing them");
    }

    /// Every list is reached by some CPU: the lists used to be sized by the
    /// pool's slot count (two lanes per CPU) but indexed by CPU, so half of
    /// them never took a head.
    #[test]
    fn every_head_list_is_used_by_some_cpu() {
        let lists = HeadLists::per_cpu();
        let heads: Vec<RcuHead> = (0..crate::pool::possible_cpus())
            .map(|_| RcuHead::new())
            .collect();
        for (cpu, head) in heads.iter().enumerate() {
            // SAFETY: the heads are live for the whole test and written only
            // through the lists; `never_called` is never called.
            unsafe { lists.push(cpu, NonNull::from(head), never_called) };
        }
        for (i, list) in lists.lists.iter().enumerate() {
            assert!(!list.load(Ordering::Relaxed).is_null(), "list {i} unused");
        }
        assert_eq!(lists.take_all().len(), heads.len() as u64);
    }
}
