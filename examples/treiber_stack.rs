//! A lock-free Treiber stack whose pops retire nodes *head-less* with
//! `try_kvfree_rcu`, and handle its `Err` properly.
//!
//! Run: `cargo run --release --example treiber_stack [ops_per_thread]`
//!
//! # The pattern
//! - `push`: allocate a node, then CAS it onto `top` (`Release`).
//! - `pop`: inside `rcu.read_lock()`, load `top` (`Acquire`), read its `next`,
//!   CAS `top` from the node to `next`. The winner owns the node's *value*;
//!   the node's memory is retired with [`KvfreeRcu::try_kvfree_rcu`], because
//!   losers may still be reading its `next`.
//! - Nodes carry no `RcuHead` (8 bytes of payload, 8 of link: a head would
//!   grow them by half), so retiring can fail when the pool has no page. On
//!   `Err(node)` the caller still owns the node: we keep it on a per-thread
//!   *deferred* list and retry it at the next pop; when the list grows past a
//!   bound and we are in ordinary context, we use `kvfree_rcu_mightsleep`,
//!   which waits a grace period if it must. Never drop the node directly:
//!   other poppers may still be reading it.
//!
//! # Why it is correct
//! - **Use after free**: a popper reads `(*top).next` inside its read
//!   section; the node is retired only after a CAS unlinked it, and freed
//!   only a grace period later, so it is still allocated.
//! - **ABA**: the CAS compares addresses. For it to succeed wrongly, the node
//!   we loaded would have to be popped, freed, and its address reused by a new
//!   push, all while we are in our read section. It cannot be freed until we
//!   leave, so its address cannot be reused: RCU makes the Treiber stack
//!   ABA-free without tags or hazard pointers.
//! - `next` is a plain field: written before the `Release` CAS that publishes
//!   the node, never written again, read after an `Acquire` load.
//!
//! The second phase pauses the service's worker and frees its cached pages
//! (`pause_worker` + `shrink`) so that `try_kvfree_rcu` really fails, and
//! checks that every node is still freed exactly once.

use kvfree_rcu::{KvfreeRcu, Rcu};
use std::cell::RefCell;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Instant;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// `try_kvfree_rcu` calls that returned `Err` (then retried or freed with
/// `kvfree_rcu_mightsleep`).
static DEFERRED: AtomicU64 = AtomicU64::new(0);

/// Deferred nodes a thread keeps before it falls back to `kvfree_rcu_mightsleep`.
const MAX_DEFERRED: usize = 64;

struct Node {
    value: u64,
    next: *mut Node,
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The stack: `top` is the newest node, or null.
struct Stack {
    top: AtomicPtr<Node>,
}

// SAFETY: a node is only read through a read section and owned by one popper
// at a time; the raw `next` pointer makes the auto trait conservative.
unsafe impl Send for Node {}

thread_local! {
    /// Nodes whose retire failed (no page): still ours, to retry.
    static DEFERRED_NODES: RefCell<Vec<NonNull<Node>>> = const { RefCell::new(Vec::new()) };
}

impl Stack {
    fn new() -> Stack {
        Stack {
            top: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn push(&self, value: u64) {
        ALLOCATED.fetch_add(1, Ordering::Relaxed);
        let node = Box::into_raw(Box::new(Node {
            value,
            next: ptr::null_mut(),
        }));
        let mut top = self.top.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours until the CAS publishes it.
            unsafe { (*node).next = top };
            // Release: publishes `value` and `next` to poppers' Acquire loads.
            match self
                .top
                .compare_exchange_weak(top, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => top = now,
            }
        }
    }

    fn pop(&self, rcu: &Rcu, service: &KvfreeRcu) -> Option<u64> {
        let popped = {
            let _guard = rcu.read_lock();
            // Acquire: pairs with the Release CAS in `push` (and in `pop`).
            let mut top = self.top.load(Ordering::Acquire);
            loop {
                let node = NonNull::new(top)?;
                // SAFETY: loaded inside this read section; a node is freed only
                // a grace period after it was unlinked (see the module doc).
                let next = unsafe { node.as_ref() }.next;
                // Acquire on success and failure: the next node we read must be
                // initialised. Release on success: keeps the chain for others.
                match self
                    .top
                    .compare_exchange_weak(top, next, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => break node,
                    Err(now) => top = now,
                }
            }
        };
        // SAFETY: our CAS unlinked the node, so its value is ours to take; the
        // node stays allocated (we have not retired it yet).
        let value = unsafe { popped.as_ref() }.value;
        retire(service, popped);
        Some(value)
    }
}

/// Retires `node`, and any earlier deferred nodes; handles `Err`.
/// Ordinary context (it may fall back to `kvfree_rcu_mightsleep`).
fn retire(service: &KvfreeRcu, node: NonNull<Node>) {
    DEFERRED_NODES.with_borrow_mut(|deferred| {
        // Retry what failed before, oldest first; stop at the first failure.
        while let Some(&old) = deferred.first() {
            // SAFETY: (1) from Box::into_raw; (2) unlinked by our CAS in `pop`;
            // (3) retired once: on Err we got it back and kept it here.
            match unsafe { service.try_kvfree_rcu(old) } {
                Ok(()) => {
                    deferred.remove(0);
                }
                Err(_) => break,
            }
        }
        // SAFETY: as above, for the node just popped.
        if let Err(node) = unsafe { service.try_kvfree_rcu(node) } {
            DEFERRED.fetch_add(1, Ordering::Relaxed);
            deferred.push(node);
        }
        if deferred.len() > MAX_DEFERRED {
            // Ordinary context: we may wait for a grace period.
            for node in deferred.drain(..) {
                // SAFETY: as above; each deferred node is retired exactly once.
                unsafe { service.kvfree_rcu_mightsleep(node) };
            }
        }
    });
}

/// Before a thread exits: retire what it still defers (ordinary context).
fn flush_deferred(service: &KvfreeRcu) {
    DEFERRED_NODES.with_borrow_mut(|deferred| {
        for node in deferred.drain(..) {
            // SAFETY: as in `retire`.
            unsafe { service.kvfree_rcu_mightsleep(node) };
        }
    });
}

/// `threads` threads each push and pop `ops` times; returns popped values' sum.
fn run_phase(
    stack: &Arc<Stack>,
    rcu: &Arc<Rcu>,
    service: &Arc<KvfreeRcu>,
    threads: u64,
    ops: u64,
) -> u64 {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (stack, rcu, service) = (stack.clone(), rcu.clone(), service.clone());
            std::thread::spawn(move || {
                let mut sum = 0;
                for i in 0..ops {
                    stack.push(t * ops + i);
                    if i % 4 != 3 {
                        sum += stack.pop(&rcu, &service).unwrap_or(0);
                    }
                }
                // Leave the stack as we found it (every thread pops what it pushed, in count).
                for _ in 0..ops / 4 {
                    sum += stack
                        .pop(&rcu, &service)
                        .expect("the stack holds at least our pushes");
                }
                flush_deferred(&service);
                sum
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("a thread panicked"))
        .sum()
}

fn main() {
    let ops: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("ops_per_thread: a number"));
    let ops = (ops - ops % 4).max(4);
    let threads = 2;
    let rcu = Arc::new(Rcu::new());
    // Two lanes, whatever the machine: phase 2 then needs few retires to run
    // the open pages dry.
    let service = Arc::new(KvfreeRcu::builder(rcu.clone()).lanes(2).build());
    let stack = Arc::new(Stack::new());
    let expected_sum = |threads: u64, ops: u64| (0..threads * ops).sum::<u64>();

    // Phase 1: normal operation.
    let start = Instant::now();
    let sum = run_phase(&stack, &rcu, &service, threads, ops);
    let elapsed = start.elapsed();
    assert_eq!(
        sum,
        expected_sum(threads, ops),
        "every pushed value popped exactly once"
    );
    let failed_1 = DEFERRED.load(Ordering::Relaxed);
    println!(
        "treiber_stack: {threads} threads x {ops} push+pop in {:.3} s: {:.2} Mops/s; try_kvfree_rcu Err {failed_1} times",
        elapsed.as_secs_f64(),
        (2 * threads * ops) as f64 / elapsed.as_secs_f64() / 1e6,
    );

    // Phase 2: a stalled worker and no cached pages, so retires fail.
    service.pause_worker();
    let freed_pages = service.shrink();
    let ops2 = ops.min(20_000);
    let sum = run_phase(&stack, &rcu, &service, threads, ops2);
    service.resume_worker();
    assert_eq!(sum, expected_sum(threads, ops2));
    let failed_2 = DEFERRED.load(Ordering::Relaxed) - failed_1;
    let stats = service.stats();
    println!(
        "  under pressure ({freed_pages} cached pages freed, worker paused): {} pops, try_kvfree_rcu Err {failed_2} times, {} freed inline by kvfree_rcu_mightsleep",
        threads * ops2,
        stats.freed_inline,
    );
    assert!(
        failed_2 > 0,
        "with the worker paused and the caches empty, some retire must fail"
    );

    service.barrier();
    drop(service);
    let (allocated, dropped) = (
        ALLOCATED.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    );
    println!("  nodes allocated {allocated}, dropped {dropped}");
    assert!(
        stack.top.load(Ordering::Relaxed).is_null(),
        "the stack is empty"
    );
    assert_eq!(allocated, dropped, "every node is freed exactly once");
}
