//! An RCU-protected concurrent hash map: lock-free readers, writers that
//! unlink nodes under a `RawSpinLock` and retire them with `kvfree_rcu`
//! *while still holding the lock*.
//!
//! A raw-API example (`AtomicPtr` links, headed `Box` nodes, `kvfree_rcu`)
//! on the process-wide service: `kvfree_rcu::init_global()` at start-up
//! creates it (allocating, in ordinary context), so that
//! `kvfree_rcu::global()` under the spinlock is one atomic load; readers use
//! `Rcu::global()`, the service's domain. (`safe_map` is the same kind of map
//! on the safe layer, with no `unsafe`.)
//!
//! Run: `cargo run --release --example hashmap [ops_per_thread]`
//!
//! # The pattern
//! - A fixed array of buckets, each an `AtomicPtr<Node>` singly linked list,
//!   and one `RawSpinLock` per bucket that serialises that bucket's writers.
//! - Readers enter `Rcu::global().read_lock()` and walk a bucket with `Acquire` loads.
//!   They take no lock and write nothing shared: wait-free per node.
//! - Writers allocate a new node *before* taking the lock (allocation is not
//!   allowed in atomic context), then under the lock publish it with a
//!   `Release` store, or unlink a node by storing its successor into its
//!   predecessor's link, and retire the unlinked node with
//!   `KvfreeRcu::kvfree_rcu` on `kvfree_rcu::global()`. That call neither
//!   allocates nor sleeps, so it is legal under the raw spinlock: this is
//!   what the library is for. (With a classic `call_rcu`/`synchronize` the
//!   writer would have to drop the lock first, or keep a side list.)
//!
//! # Why it is correct
//! - A reader can only reach a node through links it loaded inside its read
//!   section. A removed node is unlinked *before* it is retired, and the
//!   service frees it only after a grace period that starts after the retire,
//!   so every reader that might still hold it has left its section.
//! - A removed node's own `next` is never changed, so a reader standing on it
//!   still reaches the rest of the list (or a node that is itself retired and
//!   kept alive by the same argument).
//! - `Release` on every link store pairs with the readers' `Acquire` loads:
//!   a reader that sees a new node sees its fields initialised.
//! - Each node is retired once: only the writer holding the bucket lock can
//!   unlink it, and after unlinking nobody else can find it to unlink it again.
//!
//! The example checks itself: every node ever allocated is dropped exactly
//! once (a drop counter, and a poison word readers check), and with the
//! context checker on (debug builds, or the `context-check` feature) the
//! locked sections made no allocation and no sleeping call (`CheckedAlloc` is
//! the global allocator).

use kvfree_rcu::context::{self, CHECKS};
use kvfree_rcu::{CheckedAlloc, RawSpinLock, Rcu, RcuHead, impl_rcu_headed};
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Instant;

#[global_allocator]
static ALLOC: CheckedAlloc = CheckedAlloc::system();

/// Nodes allocated and dropped, to prove each node is freed exactly once.
static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

const BUCKETS: usize = 256;
const KEYS: u64 = 4096;
/// Written over `key` when a node is dropped: a reader that sees it read freed memory.
const POISON: u64 = u64::MAX;

struct Node {
    key: AtomicU64,
    value: u64,
    next: AtomicPtr<Node>,
    head: RcuHead,
}
impl_rcu_headed!(Node, head);

impl Node {
    fn boxed(key: u64, value: u64) -> NonNull<Node> {
        ALLOCATED.fetch_add(1, Ordering::Relaxed);
        let node = Box::new(Node {
            key: AtomicU64::new(key),
            value,
            next: AtomicPtr::new(ptr::null_mut()),
            head: RcuHead::new(),
        });
        NonNull::from(Box::leak(node))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        assert_ne!(
            self.key.swap(POISON, Ordering::Relaxed),
            POISON,
            "node dropped twice"
        );
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The value a key maps to in this workload: readers check it.
fn value_of(key: u64, version: u64) -> u64 {
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (version << 48)
}

struct Map {
    buckets: Box<[AtomicPtr<Node>]>,
    locks: Box<[RawSpinLock<()>]>,
}

impl Map {
    fn new() -> Map {
        Map {
            buckets: (0..BUCKETS)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            locks: (0..BUCKETS).map(|_| RawSpinLock::new(())).collect(),
        }
    }

    fn bucket(key: u64) -> usize {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % BUCKETS
    }

    /// Lock-free lookup: the value (as the reader saw it) or `None`.
    fn get(&self, key: u64) -> Option<u64> {
        let _guard = Rcu::global().read_lock();
        // Acquire: pairs with the Release stores that published each node.
        let mut cur = self.buckets[Self::bucket(key)].load(Ordering::Acquire);
        while let Some(node) = NonNull::new(cur) {
            // SAFETY: `node` was reached through links loaded inside this read
            // section; nodes are freed only a grace period after they are
            // unlinked, and this section holds that grace period open.
            let node = unsafe { node.as_ref() };
            let k = node.key.load(Ordering::Relaxed);
            assert_ne!(k, POISON, "reader saw a freed node");
            if k == key {
                return Some(node.value);
            }
            // Acquire: as above.
            cur = node.next.load(Ordering::Acquire);
        }
        None
    }

    /// Inserts or replaces `key`; the replaced node is retired under the lock.
    fn insert(&self, key: u64, value: u64) {
        let new = Node::boxed(key, value); // allocate before entering atomic context
        let b = Self::bucket(key);
        let _locked = self.locks[b].lock();
        // Relaxed loads of links: only writers change them, and we hold the
        // bucket's lock (whose Acquire ordered the previous writer's stores).
        let mut link = &self.buckets[b];
        loop {
            let cur = link.load(Ordering::Relaxed);
            let Some(cur) = NonNull::new(cur) else {
                // Not found: push at the front of the bucket.
                // SAFETY: `new` is ours and not yet published.
                unsafe { new.as_ref() }
                    .next
                    .store(self.buckets[b].load(Ordering::Relaxed), Ordering::Relaxed);
                // Release: publishes the node's fields to readers' Acquire loads.
                self.buckets[b].store(new.as_ptr(), Ordering::Release);
                return;
            };
            // SAFETY: we hold the bucket lock, so `cur` is linked and cannot
            // be unlinked (or freed) by anyone else meanwhile.
            let cur_ref = unsafe { cur.as_ref() };
            if cur_ref.key.load(Ordering::Relaxed) == key {
                // SAFETY: `new` is ours and not yet published.
                unsafe { new.as_ref() }
                    .next
                    .store(cur_ref.next.load(Ordering::Relaxed), Ordering::Relaxed);
                // Release: readers that load `new` see its fields and `next`.
                link.store(new.as_ptr(), Ordering::Release);
                // SAFETY: (1) `cur` came from Box::leak in `Node::boxed`;
                // (2) it is unlinked: the store above replaced the only link
                // to it, and readers use `Rcu::global()`, the global
                // service's domain; (3) it is retired once: only the holder of this lock
                // could find it in the list, and it no longer is.
                unsafe { kvfree_rcu::global().kvfree_rcu(cur) };
                return;
            }
            link = &cur_ref.next;
        }
    }

    /// Removes `key`; the node is retired under the lock. True if it was there.
    fn remove(&self, key: u64) -> bool {
        let b = Self::bucket(key);
        let _locked = self.locks[b].lock();
        let mut link = &self.buckets[b];
        loop {
            let Some(cur) = NonNull::new(link.load(Ordering::Relaxed)) else {
                return false;
            };
            // SAFETY: as in `insert`: linked, and we hold the bucket lock.
            let cur_ref = unsafe { cur.as_ref() };
            if cur_ref.key.load(Ordering::Relaxed) == key {
                // Release: a reader that loads the successor through this link
                // sees it initialised (it already was published; this keeps
                // the chain of Release stores unbroken).
                link.store(cur_ref.next.load(Ordering::Relaxed), Ordering::Release);
                // SAFETY: (1) from Box::leak; (2) unlinked by the store above;
                // (3) retired once, as in `insert`. Readers standing on it
                // still follow its unchanged `next`.
                unsafe { kvfree_rcu::global().kvfree_rcu(cur) };
                return true;
            }
            link = &cur_ref.next;
        }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // No reader or writer is left (we have `&mut self`): free the
        // remaining nodes directly (the retired ones are the service's).
        for bucket in self.buckets.iter() {
            let mut cur = bucket.swap(ptr::null_mut(), Ordering::Relaxed);
            while !cur.is_null() {
                // SAFETY: every linked node came from Box::leak and is
                // reachable from exactly one link; nobody else can reach it now.
                let node = unsafe { Box::from_raw(cur) };
                cur = node.next.load(Ordering::Relaxed);
            }
        }
    }
}

/// xorshift: a tiny deterministic per-thread key stream.
fn next_key(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % KEYS
}

fn main() {
    let ops: u64 = std::env::args()
        .nth(1)
        .map_or(2_000_000, |s| s.parse().expect("ops_per_thread: a number"));
    let (readers, writers) = (2u64, 2u64);
    kvfree_rcu::init_global(); // ordinary context, at start-up
    let map = Arc::new(Map::new());
    for key in 0..KEYS / 2 {
        map.insert(key * 2, value_of(key * 2, 0));
    }

    let start = Instant::now();
    let reads_hit = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for r in 0..readers {
        let (map, reads_hit) = (map.clone(), reads_hit.clone());
        threads.push(std::thread::spawn(move || {
            let mut seed = 0x1234_5678 + r;
            let mut hits = 0;
            for _ in 0..ops {
                let key = next_key(&mut seed);
                if let Some(v) = map.get(key) {
                    assert_eq!(
                        v & ((1 << 48) - 1),
                        value_of(key, 0) & ((1 << 48) - 1),
                        "torn value"
                    );
                    hits += 1;
                }
            }
            reads_hit.fetch_add(hits, Ordering::Relaxed);
        }));
    }
    for w in 0..writers {
        let map = map.clone();
        threads.push(std::thread::spawn(move || {
            let mut seed = 0xDEAD_BEEF + w;
            for i in 0..ops {
                let key = next_key(&mut seed);
                if i % 2 == 0 {
                    map.insert(key, value_of(key, i & 0xFFFF));
                } else {
                    map.remove(key);
                }
            }
        }));
    }
    for t in threads {
        t.join().expect("a worker thread panicked");
    }
    let elapsed = start.elapsed();

    let map = Arc::into_inner(map).expect("every thread has exited");
    drop(map); // frees the live nodes
    kvfree_rcu::barrier(); // frees the retired ones
    let stats = kvfree_rcu::global().stats();
    let (allocated, dropped) = (
        ALLOCATED.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    );

    let total = (readers + writers) * ops;
    println!(
        "hashmap: {readers} readers + {writers} writers x {ops} ops in {:.3} s: {:.2} Mops/s ({} read hits)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64() / 1e6,
        reads_hit.load(Ordering::Relaxed),
    );
    println!(
        "  retired {} (pages: {}, head lists: {}), grace periods {}, batches {}; nodes allocated {allocated}, dropped {dropped}",
        stats.queued_pages + stats.queued_heads,
        stats.queued_pages,
        stats.queued_heads,
        stats.grace_periods,
        stats.batches,
    );
    assert_eq!(allocated, dropped, "every node is freed exactly once");
    if CHECKS {
        assert_eq!(
            context::violations(),
            0,
            "the context checker reported a violation"
        );
        println!("  context checker: no allocation and no sleeping call under the raw spinlocks");
    }
}
