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
//! Lists are Treiber stacks, [`LISTS_PER_CPU`] per possible CPU (indexed by
//! the CPU the pusher runs on and a per-thread rank, a locality hint only):
//! producers push with a CAS loop (lock-free, reentrant: a signal handler's
//! push between our load and our CAS just makes our CAS fail and retry), and
//! the single consumer takes a whole list with one `swap(null)`, so there is
//! no ABA. Pushers never read another head.
//!
//! Several lists per CPU, and no walk when they are taken: a list can only
//! be walked from its top, one head after the other, so the lists are the
//! units that threads can free in parallel (`reclaim.rs`), and a walk at
//! collection would be a serial pass over every object (a cache miss each)
//! before the free's own. Threads sharing a CPU mostly push onto lists of
//! their own. Each list counts its pushes, so a batch knows about how many
//! heads it took without walking them (a push that straddles the take may be
//! counted with the next batch; the free counts exactly).

use crate::sync::{AtomicPtr, AtomicU64, Ordering};
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

/// Head lists per possible CPU: threads that share a CPU mostly push onto
/// lists of their own, and a flood from `T` threads leaves up to `T` lists
/// for reclaim threads to free in parallel.
pub(crate) const LISTS_PER_CPU: usize = if crate::sync::SMALL { 1 } else { 4 };

/// One Treiber stack of heads and its counts.
#[derive(Default)]
struct List {
    top: AtomicPtr<RcuHead>,
    /// Heads ever pushed onto the list: added to by the pushes (on the line
    /// they have just written `top` on), read by the worker's idle check
    /// ([`HeadLists::queued`]).
    pushed: AtomicU64,
    /// `pushed` as the last `take_all` read it; written only by the
    /// consumer (under the batch queue's lock).
    taken: AtomicU64,
}

/// Lock-free lists of heads, [`LISTS_PER_CPU`] per possible CPU.
pub(crate) struct HeadLists {
    lists: Box<[CachePadded<List>]>,
    cpus: usize,
}

impl HeadLists {
    /// [`LISTS_PER_CPU`] lists per possible CPU.
    pub(crate) fn per_cpu() -> HeadLists {
        HeadLists::new(crate::pool::possible_cpus())
    }

    fn new(cpus: usize) -> HeadLists {
        let cpus = cpus.max(1);
        HeadLists {
            lists: (0..cpus * LISTS_PER_CPU)
                .map(|_| CachePadded::new(List::default()))
                .collect(),
            cpus,
        }
    }

    /// The list of a thread of rank `rank` on CPU `cpu`: `cpu + r * cpus`
    /// with `r = rank % LISTS_PER_CPU` (as the pool picks lanes).
    fn index(&self, cpu: usize, rank: usize) -> usize {
        cpu % self.cpus + (rank % LISTS_PER_CPU) * self.cpus
    }

    /// Heads ever queued, over every list: the worker's idle check and
    /// `Stats::queued_heads`. Each push counts its head after its CAS and
    /// before it returns (so before the retire call's wake check, `wake.rs`).
    pub(crate) fn queued(&self) -> u64 {
        // Relaxed: counts; see `Shared::has_queued_records` for why a
        // recent value is enough.
        self.lists
            .iter()
            .map(|list| list.pushed.load(Ordering::Relaxed))
            .sum()
    }

    /// Queues `head` with its `free` function on a list of CPU `cpu`.
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
        let list = &self.lists[self.index(cpu, thread_rank())];
        // Relaxed: only the CAS's expected value; `push` never reads
        // through `top`, it only links to it.
        let mut top = list.top.load(Ordering::Relaxed);
        loop {
            h.next.store(top, Ordering::Relaxed);
            // Release: pairs with the consumer's Acquire swap in `take_all`,
            // publishing `next`, `free` and everything the caller did before
            // (its unlink) to the collector. This CAS, not the wake word,
            // is what orders a queued head before the worker's collect.
            match list.top.compare_exchange_weak(
                top,
                head.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now) => top = now,
            }
        }
        // Relaxed: a count, on a line this push has just written. It is what
        // the worker's idle check reads (`queued`), so it is added before the
        // push returns and the caller loads the wake word (`wake.rs`).
        list.pushed.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes every list, without walking them: each non-empty list becomes
    /// one part of the chain. The consumer only.
    pub(crate) fn take_all(&self) -> HeadChain {
        let mut chain = HeadChain::default();
        for list in self.lists.iter() {
            // Relaxed: a cheap look first (most lists are empty outside a
            // flood); the swap below is what takes the list.
            if list.top.load(Ordering::Relaxed).is_null() {
                continue;
            }
            // Acquire: pairs with the Release CAS in `push`.
            let Some(first) = NonNull::new(list.top.swap(ptr::null_mut(), Ordering::Acquire))
            else {
                continue;
            };
            // Relaxed: counts (see the module docs); `taken` has one writer,
            // us, and `pushed` only grows, so the difference is what was
            // pushed since the last take.
            let pushed = list.pushed.load(Ordering::Relaxed);
            let counted = pushed - list.taken.load(Ordering::Relaxed);
            list.taken.store(pushed, Ordering::Relaxed);
            chain.lists.push(first);
            chain.counted += counted;
        }
        chain
    }
}

/// A thread's rank among the threads that pushed heads, fixed at its first
/// push (round-robin): threads sharing a CPU spread over its lists. A
/// destructor-free `const` thread-local (never allocates; a signal handler
/// interrupting the first assignment at worst gives the thread another
/// rank, a locality hint). 0 under loom and Miri.
#[cfg(not(any(miri, kvfree_loom)))]
#[inline]
fn thread_rank() -> usize {
    use core::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT_RANK: AtomicUsize = AtomicUsize::new(0);
    crate::sync::thread_local! {
        static RANK: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    RANK.try_with(|rank| {
        let mut r = rank.get();
        if r == usize::MAX {
            // Relaxed: a locality hint; any value is correct.
            r = NEXT_RANK.fetch_add(1, Ordering::Relaxed) % LISTS_PER_CPU;
            rank.set(r);
        }
        r
    })
    .unwrap_or(0)
}

/// A thread's rank (always 0 under loom and Miri).
#[cfg(any(miri, kvfree_loom))]
#[inline]
fn thread_rank() -> usize {
    0
}

/// Queued heads owned by the consumer: the lists it took, each
/// null-terminated, to be freed by one thread each.
#[derive(Default)]
pub(crate) struct HeadChain {
    lists: Vec<NonNull<RcuHead>>,
    /// Heads counted by the pushes (see the module docs).
    counted: u64,
}

// SAFETY: a chain owns its heads exclusively (taken with a swap); the objects
// behind them are `Send` (every retire call requires `T: Send`).
unsafe impl Send for HeadChain {}

impl HeadChain {
    /// About how many heads the chain holds (the pushes' count: a push that
    /// straddled the take may be counted with the next chain).
    pub(crate) fn len(&self) -> u64 {
        self.counted
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Splits the chain into one chain per list taken (the units threads
    /// free in parallel).
    pub(crate) fn into_lists(self) -> impl Iterator<Item = HeadChain> {
        let per_list = self.counted / (self.lists.len().max(1) as u64);
        self.lists.into_iter().map(move |first| HeadChain {
            lists: vec![first],
            counted: per_list,
        })
    }

    /// Frees up to `max` objects of the chain, from the top of a list,
    /// and keeps the rest; returns how many it freed.
    ///
    /// # Safety
    /// A grace period has elapsed since the chain was taken.
    pub(crate) unsafe fn free_some(&mut self, max: u64) -> u64 {
        let mut freed = 0;
        while let Some(first) = self.lists.last_mut() {
            let mut cursor = Some(*first);
            while let Some(head) = cursor {
                if freed == max {
                    break;
                }
                // SAFETY: we own the live head; read both words before freeing.
                let h = unsafe { head.as_ref() };
                // Relaxed: the chain reached this thread through `take_all`'s
                // Acquire swap and then the batch queue's lock (and, on a
                // reclaim helper, the board's lock).
                cursor = NonNull::new(h.next.load(Ordering::Relaxed));
                // The next head's line (and the allocator's header beside
                // it) comes in while this object is freed: a list can only
                // be walked one head after the other, and each head is a
                // cache miss otherwise.
                if let Some(next) = cursor {
                    crate::pool::prefetch::write(next.as_ptr().cast_const().cast());
                }
                let free = h.free.load(Ordering::Relaxed);
                // SAFETY: `free` was stored by `push` from a `HeadFreeFn`.
                let free = unsafe { core::mem::transmute::<*mut (), HeadFreeFn>(free) };
                // SAFETY: `push`'s contract 2, and the caller's grace period.
                unsafe { free(head) };
                freed += 1;
            }
            match cursor {
                Some(rest) => {
                    *first = rest;
                    break;
                }
                None => {
                    self.lists.pop();
                }
            }
        }
        self.counted = self.counted.saturating_sub(freed);
        freed
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    unsafe fn never_called(_: NonNull<RcuHead>) {
        unreachable!("the test takes its heads back without freeing them");
    }

    /// Every list is reached by some CPU and rank: the lists used to be
    /// sized by the pool's slot count (two lanes per CPU) but indexed by
    /// CPU, so half of them never took a head.
    #[test]
    fn every_head_list_is_used_by_some_cpu_and_rank() {
        let lists = HeadLists::per_cpu();
        let cpus = crate::pool::possible_cpus();
        let mut used = vec![0; lists.lists.len()];
        for cpu in 0..cpus {
            for rank in 0..LISTS_PER_CPU {
                used[lists.index(cpu, rank)] += 1;
            }
        }
        assert!(used.iter().all(|&n| n == 1), "{used:?}");
    }

    /// Taking the lists gives one part per non-empty list, with every head
    /// once, and the pushes' count.
    #[test]
    fn taking_the_lists_keeps_each_list_whole() {
        let lists = HeadLists::new(2);
        let heads: Vec<RcuHead> = (0..11).map(|_| RcuHead::new()).collect();
        for (i, head) in heads.iter().enumerate() {
            // SAFETY: the heads are live for the whole test and written only
            // through the lists; `never_called` is never called.
            unsafe { lists.push(i % 2, NonNull::from(head), never_called) };
        }
        let chain = lists.take_all();
        assert_eq!(chain.len(), 11);
        let mut seen = Vec::new();
        let parts: Vec<HeadChain> = chain.into_lists().collect();
        assert_eq!(parts.len(), 2, "one part per CPU's list of this thread");
        for part in parts {
            for first in &part.lists {
                let mut cursor = Some(*first);
                while let Some(head) = cursor {
                    seen.push(head.as_ptr());
                    // SAFETY: the heads live in `heads`.
                    cursor = NonNull::new(unsafe { head.as_ref() }.next.load(Ordering::Relaxed));
                }
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 11, "every head once");
        assert!(lists.take_all().is_empty());
    }

    static FREED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    unsafe fn count_free(_: NonNull<RcuHead>) {
        FREED.fetch_add(1, Ordering::Relaxed);
    }

    /// Freeing a chain in bites frees each head once and keeps the rest.
    #[test]
    fn a_chain_is_freed_in_bites() {
        let lists = HeadLists::new(2);
        let heads: Vec<RcuHead> = (0..11).map(|_| RcuHead::new()).collect();
        for (i, head) in heads.iter().enumerate() {
            // SAFETY: the heads are live for the whole test and written only
            // through the lists; `count_free` only counts.
            unsafe { lists.push(i % 2, NonNull::from(head), count_free) };
        }
        let mut chain = lists.take_all();
        let mut bites = Vec::new();
        while !chain.is_empty() {
            // SAFETY: "freeing" only counts; nothing reads the heads.
            bites.push(unsafe { chain.free_some(4) });
        }
        // Two lists of 6 and 5 heads: 4 + 2 from one, 4 + 1 from the other.
        assert_eq!(bites.iter().sum::<u64>(), 11, "{bites:?}");
        assert!(bites.iter().all(|&b| (1..=4).contains(&b)), "{bites:?}");
        assert_eq!(FREED.load(Ordering::Relaxed), 11);
        assert_eq!(chain.len(), 0);
    }
}
