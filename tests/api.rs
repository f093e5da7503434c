//! Public-API tests of the service small enough for Miri (`ci/30-miri.sh`
//! runs this file): they exercise every unsafe path of this crate (records
//! of several kinds through pages, heads through the fallback list, inline
//! frees, batch frees, drop) with a few objects each. The other files of
//! `tests/` do the same at scale.
#![cfg(not(kvfree_loom))]

use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead, RcuHeaded, impl_rcu_headed};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counted<'a> {
    drops: &'a AtomicUsize,
    head: RcuHead,
    _payload: [u64; 2],
}
impl_rcu_headed!(Counted<'static>, head);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

fn counted(drops: &'static AtomicUsize) -> NonNull<Counted<'static>> {
    NonNull::from(Box::leak(Box::new(Counted {
        drops,
        head: RcuHead::new(),
        _payload: [7; 2],
    })))
}

fn manual() -> KvfreeRcu {
    KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build()
}

#[test]
fn headed_headless_and_inline_frees_each_drop_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let s = manual();
    let n = if cfg!(miri) { 12 } else { 2_000 };
    for i in 0..n {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe {
            s.kvfree_rcu(counted(&DROPS));
            if let Err(p) = s.try_kvfree_rcu(counted(&DROPS)) {
                s.kvfree_rcu_mightsleep(p);
            }
            s.kvfree_rcu_mightsleep(NonNull::from(Box::leak(Box::new(i))));
        }
    }
    s.barrier();
    assert_eq!(DROPS.load(Ordering::Relaxed), 2 * n);
    assert_eq!(s.stats().pending, 0);
}

#[test]
fn head_list_fallback_frees_through_the_embedded_head() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let s = manual();
    s.shrink(); // no cached page and no open page: every retire falls back
    let n = 5;
    for _ in 0..n {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { s.kvfree_rcu(counted(&DROPS)) };
    }
    assert_eq!(s.stats().queued_heads, n as u64);
    let p = counted(&DROPS);
    // SAFETY: as above; Err hands it back.
    let p = unsafe { s.try_kvfree_rcu(p) }.expect_err("no page");
    // No page, and the page the sleeping variant would allocate fails too:
    // it waits for a grace period and frees inline.
    s.inject_alloc_failures(1);
    // SAFETY: ours again.
    unsafe { s.kvfree_rcu_mightsleep(p) };
    assert_eq!(s.stats().freed_inline, 1);
    // Only the `try_` call's Err counts as a failed try, not the sleeping
    // variant's fallback.
    assert_eq!(s.stats().try_failed, 1);
    s.barrier();
    assert_eq!(DROPS.load(Ordering::Relaxed), n + 1);
}

#[test]
fn dropping_the_service_frees_what_is_queued() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    {
        let s = manual();
        for _ in 0..4 {
            // SAFETY: from Box::leak, never published, retired once.
            unsafe { s.kvfree_rcu(counted(&DROPS)) };
        }
        s.shrink();
        // SAFETY: as above (goes through the head list now).
        unsafe { s.kvfree_rcu(counted(&DROPS)) };
    }
    assert_eq!(DROPS.load(Ordering::Relaxed), 5);
}

#[test]
fn worker_thread_frees_without_barrier() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let s = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .drain_interval(std::time::Duration::from_micros(200))
        .build();
    for _ in 0..3 {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { s.kvfree_rcu(counted(&DROPS)) };
    }
    let mut spins = 0;
    while DROPS.load(Ordering::Relaxed) < 3 {
        std::thread::sleep(std::time::Duration::from_millis(1));
        spins += 1;
        assert!(spins < 60_000, "the worker never freed");
    }
    drop(s);
    assert_eq!(DROPS.load(Ordering::Relaxed), 3);
}

#[test]
fn zero_sized_and_over_aligned_types() {
    #[repr(align(64))]
    struct Wide(#[allow(dead_code)] u8);
    let s = manual();
    for _ in 0..3 {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe {
            let _ = s
                .try_kvfree_rcu(NonNull::from(Box::leak(Box::new(()))))
                .map_err(|p| s.kvfree_rcu_mightsleep(p));
            let _ = s
                .try_kvfree_rcu(NonNull::from(Box::leak(Box::new(Wide(1)))))
                .map_err(|p| s.kvfree_rcu_mightsleep(p));
        }
    }
    s.barrier();
}

#[test]
fn head_offset_and_accessor_agree() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let p = counted(&DROPS);
    // SAFETY: live, ours.
    let obj = unsafe { p.as_ref() };
    let head_addr = std::ptr::from_ref(obj.rcu_head()).addr();
    assert_eq!(
        head_addr - p.as_ptr().addr(),
        <Counted<'static> as RcuHeaded>::RCU_HEAD_OFFSET
    );
    // SAFETY: from Box::leak, never retired.
    drop(unsafe { Box::from_raw(p.as_ptr()) });
}

/// `impl_rcu_headed!` on generic types (it failed with E0425 when the
/// field check was a nested fn, which cannot name the impl's parameters).
#[test]
fn generic_headed_types_retire_through_head_and_page() {
    use std::fmt::Debug;
    struct Node<K, V> {
        key: K,
        value: V,
        drops: &'static AtomicUsize,
        head: RcuHead,
    }
    impl_rcu_headed!(Node<K, V>, head where K: Debug);
    impl<K, V> Drop for Node<K, V> {
        fn drop(&mut self) {
            self.drops.fetch_add(1, Ordering::Relaxed);
        }
    }
    struct Tower<const N: usize> {
        next: [usize; N],
        head: RcuHead,
    }
    impl_rcu_headed!(impl[const N: usize] Tower<N>, head);

    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let s = manual();
    let node = |key: u32| {
        NonNull::from(Box::leak(Box::new(Node {
            key,
            value: String::from("v"),
            drops: &DROPS,
            head: RcuHead::new(),
        })))
    };
    let first = node(1);
    // SAFETY: live, from Box::leak.
    let (key, value) = unsafe { (first.as_ref().key, first.as_ref().value.clone()) };
    assert_eq!((key, value.as_str()), (1, "v"));
    // SAFETY: from Box::leak, never published, retired once each.
    unsafe { s.kvfree_rcu(first) };
    s.shrink(); // no page: the next retire takes the head list
    // SAFETY: as above.
    unsafe { s.kvfree_rcu(node(2)) };
    let tower = NonNull::from(Box::leak(Box::new(Tower::<3> {
        next: [0; 3],
        head: RcuHead::new(),
    })));
    // SAFETY: live, from Box::leak.
    assert_eq!(unsafe { tower.as_ref() }.next.len(), 3);
    // SAFETY: from Box::leak, never published, retired once.
    unsafe { s.kvfree_rcu(tower) };
    s.barrier();
    assert_eq!(DROPS.load(Ordering::Relaxed), 2);
    assert_eq!(s.stats().pending, 0);
}

/// `KvfreeRcu::new` and `builder` take the global domain as it is.
#[test]
fn services_over_the_global_domain_by_reference() {
    let service = KvfreeRcu::new(Rcu::global());
    let manual = KvfreeRcu::builder(Rcu::global()).manual().build();
    let state = service.grace_period().get_state();
    manual.grace_period().synchronize(); // the same domain
    assert!(service.grace_period().poll_state(state));
    let p = NonNull::from(Box::leak(Box::new(5u64)));
    // SAFETY: from Box::leak, never published, retired once.
    unsafe { manual.kvfree_rcu_mightsleep(p) };
    manual.barrier();
    assert_eq!(manual.stats().pending, 0);
}

/// `call_rcu`: a variable-size object (a node with a tower of `height`
/// links, one `Layout`-based allocation) retired through its head with the
/// caller's free function, through a page and through the head list; each
/// is freed exactly once.
#[test]
fn call_rcu_frees_variable_size_objects_exactly_once() {
    use std::alloc::{Layout, alloc, dealloc};
    use std::collections::HashSet;
    use std::mem::offset_of;
    use std::sync::Mutex;

    #[repr(C)]
    struct Node {
        id: usize,
        height: usize,
        head: RcuHead,
    }
    fn layout(height: usize) -> Layout {
        let tower = Layout::array::<usize>(height).unwrap();
        Layout::new::<Node>()
            .extend(tower)
            .unwrap()
            .0
            .pad_to_align()
    }
    static FREED: Mutex<Option<HashSet<usize>>> = Mutex::new(None);
    /// # Safety
    /// `head` is the head of a live `Node` allocated with `layout(height)`.
    unsafe fn free_node(head: NonNull<RcuHead>) {
        // SAFETY: the head lives at this offset inside its node, and was
        // derived from the node's pointer.
        let node = unsafe { head.byte_sub(offset_of!(Node, head)) }.cast::<Node>();
        // SAFETY: live until the dealloc below.
        let (id, height) = unsafe { (node.as_ref().id, node.as_ref().height) };
        let first = FREED
            .lock()
            .unwrap()
            .get_or_insert_with(HashSet::new)
            .insert(id);
        assert!(first, "node {id} freed twice");
        // SAFETY: allocated with this layout, freed once.
        unsafe { dealloc(node.as_ptr().cast(), layout(height)) };
    }
    fn node(id: usize) -> NonNull<RcuHead> {
        let height = 1 + id % 5;
        // SAFETY: the layout is not zero-sized.
        let p = NonNull::new(unsafe { alloc(layout(height)) })
            .expect("allocation")
            .cast::<Node>();
        // SAFETY: fresh, large enough and aligned for a Node and its tower.
        unsafe {
            p.write(Node {
                id,
                height,
                head: RcuHead::new(),
            });
            let tower = p.add(1).cast::<usize>();
            for level in 0..height {
                tower.add(level).write(level);
            }
            NonNull::new_unchecked(&raw mut (*p.as_ptr()).head)
        }
    }

    let s = manual();
    let n = if cfg!(miri) { 6 } else { 1_000 };
    for id in 0..n {
        // SAFETY: a fresh head of a node allocated with its layout;
        // `free_node` frees it once; never published, retired once.
        unsafe { s.call_rcu(node(id), free_node) };
    }
    s.shrink(); // no page: the rest goes through the head list
    for id in n..2 * n {
        // SAFETY: as above.
        unsafe { s.call_rcu(node(id), free_node) };
    }
    assert_eq!(s.stats().queued_heads, n as u64);
    s.barrier();
    let freed = FREED.lock().unwrap().take().unwrap_or_default();
    assert_eq!(freed.len(), 2 * n);
    assert_eq!(s.stats().pending, 0);
}
