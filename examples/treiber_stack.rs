//! A lock-free Treiber stack on the typed RCU pointers (`Atomic<T>`,
//! `Owned<T>`, `Unlinked<T>`) and the process-wide service
//! (`kvfree_rcu::global()`, readers in `Rcu::global()`'s domain).
//!
//! Run: `cargo run --release --example treiber_stack [ops_per_thread]`
//!
//! # The pattern
//! - `push`: build an `Owned` node (allocates: before the read section),
//!   then inside `Rcu::global().read_lock()` point its `next` at the current
//!   top and CAS it in with `compare_exchange_owned` (on failure the node
//!   comes back, still ours, and we retry).
//! - `pop`: inside a read section, load `top`, read its `next`, and CAS `top`
//!   from the node to `next` with `compare_exchange`. The winner gets the
//!   node's `Unlinked` token, copies the value out and retires the node with
//!   `Unlinked::retire(kvfree_rcu::global())`, because losers may still be
//!   reading its `next`.
//! - The one `unsafe` left is that retire: the type system sees the `top`
//!   link, not the popped nodes' `next` links that still point into the
//!   stack, nor which domain the readers use. Its SAFETY comment discharges
//!   the contract point by point.
//!
//! The raw version of this example retired *head-less* nodes with
//! `try_kvfree_rcu` and handled its `Err` (keep the node, retry, fall back
//! to `kvfree_rcu_mightsleep`). On the typed layer that is moot: an `Owned`
//! node carries its `RcuHead`, so `Unlinked::retire` never fails, allocates,
//! locks or blocks, and there is no `Err` to handle. (Head-less retires
//! through `try_kvfree_rcu` remain in the raw API, shown in the
//! `signal_handler` example.)
//!
//! # Why it is correct
//! - **Use after free**: `Atomic::load` ties a node to the read guard's
//!   borrow; a node is retired only after a CAS unlinked it, and freed only
//!   a grace period later, so every popper that loaded it still sees it.
//! - **ABA**: the CAS compares addresses. For it to succeed wrongly, the node
//!   we loaded would have to be popped, freed, and its address reused by a
//!   new push, all while we are in our read section. It cannot be freed until
//!   we leave, so its address cannot be reused: RCU makes the Treiber stack
//!   ABA-free without tags or hazard pointers. (`push` holds its guard
//!   across its CAS loop for the same reason.)
//! - `next` is written only while the node is still `Owned` (unpublished),
//!   before the Release CAS that publishes it; `Atomic::load` is Acquire.
//!
//! The example checks itself: every pushed value is popped exactly once, the
//! stack ends empty, and after `kvfree_rcu::barrier()` every node allocated
//! has been dropped exactly once.

use kvfree_rcu::{Atomic, Owned, Rcu};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

struct Node {
    value: u64,
    next: Atomic<Node>,
}

impl Drop for Node {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// The stack: `top` is the newest node, or null.
struct Stack {
    top: Atomic<Node>,
}

impl Stack {
    fn new() -> Stack {
        Stack {
            top: Atomic::null(),
        }
    }

    /// Ordinary context (allocates the node).
    fn push(&self, value: u64) {
        ALLOCATED.fetch_add(1, Ordering::Relaxed);
        let mut node = Owned::new(Node {
            value,
            next: Atomic::null(),
        });
        let guard = Rcu::global().read_lock();
        let mut top = self.top.load(&guard);
        loop {
            // The node is still ours (unpublished): a plain link update.
            node.next.store(top);
            match self.top.compare_exchange_owned(top, node, &guard) {
                Ok(_) => return,
                Err((now, ours)) => (top, node) = (now, ours),
            }
        }
    }

    /// Never allocates, locks or blocks.
    fn pop(&self) -> Option<u64> {
        let guard = Rcu::global().read_lock();
        let mut top = self.top.load(&guard);
        loop {
            let node = top.as_ref()?;
            let next = node.next.load(&guard);
            match self.top.compare_exchange(top, next, &guard) {
                Ok(unlinked) => {
                    let value = node.value;
                    let unlinked = unlinked.expect("`top` was not null");
                    // SAFETY: `Unlinked::retire`'s
                    // (1) our CAS moved `top` past the node; the only other
                    //     link to it is the `next` of a node popped before
                    //     it, itself unreachable for new readers;
                    // (2) every reader (push and pop) loads under
                    //     `Rcu::global()` guards, the domain of
                    //     `kvfree_rcu::global().grace_period()`;
                    // (3) only the one winning CAS gets the token for a node
                    //     (a node is pushed once, never relinked).
                    unsafe { unlinked.retire(kvfree_rcu::global()) };
                    return Some(value);
                }
                Err(now) => top = now,
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

/// `threads` threads each push and pop `ops` times; returns popped values' sum.
fn run(stack: &Stack, threads: u64, ops: u64) -> u64 {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut sum = 0;
                    for i in 0..ops {
                        stack.push(t * ops + i);
                        if i % 4 != 3 {
                            sum += stack.pop().unwrap_or(0);
                        }
                    }
                    // Leave the stack as we found it (every thread pops what
                    // it pushed, in count).
                    for _ in 0..ops / 4 {
                        sum += stack.pop().expect("the stack holds at least our pushes");
                    }
                    sum
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a thread panicked"))
            .sum()
    })
}

fn main() {
    let ops: u64 = std::env::args()
        .nth(1)
        .map_or(1_000_000, |s| s.parse().expect("ops_per_thread: a number"));
    let ops = (ops - ops % 4).max(4);
    let threads = 2;
    kvfree_rcu::init_global(); // ordinary context, at start-up
    let stack = Stack::new();

    let start = Instant::now();
    let sum = run(&stack, threads, ops);
    let elapsed = start.elapsed();
    assert_eq!(
        sum,
        (0..threads * ops).sum::<u64>(),
        "every pushed value popped exactly once"
    );
    println!(
        "treiber_stack: {threads} threads x {ops} push+pop in {:.3} s: {:.2} Mops/s",
        elapsed.as_secs_f64(),
        (2 * threads * ops) as f64 / elapsed.as_secs_f64() / 1e6,
    );
    {
        let guard = Rcu::global().read_lock();
        assert!(stack.top.load(&guard).is_null(), "the stack is empty");
    }
    drop(stack);

    kvfree_rcu::barrier();
    let (allocated, dropped) = (
        ALLOCATED.load(Ordering::Relaxed),
        DROPPED.load(Ordering::Relaxed),
    );
    println!(
        "  nodes allocated {allocated}, dropped {dropped}; {} grace periods",
        kvfree_rcu::global().stats().grace_periods
    );
    assert_eq!(allocated, dropped, "every node is freed exactly once");
}
