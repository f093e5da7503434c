//! Loom models of the service's retire -> seal -> stamp -> free sequence,
//! with every crate built on loom (`--cfg kvfree_loom`, see ci/20-loom.sh).
//!
//! Objects are freed with `kvfree_rcu_with` into a *poisoning* free function
//! that leaves the memory in place, so a reader that could still see a freed
//! object reads the poison (a loom atomic) instead of freed memory, and the
//! model fails.
#![cfg(kvfree_loom)]

use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
use loom::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use loom::thread;
use std::ptr::NonNull;
use std::sync::Arc;

const ALIVE: u64 = 1;
const POISON: u64 = 2;

struct Node {
    state: AtomicU64,
    head: RcuHead,
}
impl_rcu_headed!(Node, head);

fn node() -> *mut Node {
    Box::into_raw(Box::new(Node {
        state: AtomicU64::new(ALIVE),
        head: RcuHead::new(),
    }))
}

/// "Frees" a node by poisoning it; the model frees the memory at the end.
unsafe fn poison(p: NonNull<()>) {
    // SAFETY: the model retires live `Node`s only and keeps their memory.
    let n = unsafe { p.cast::<Node>().as_ref() };
    assert_eq!(
        n.state.swap(POISON, Ordering::Relaxed),
        ALIVE,
        "freed twice"
    );
}

fn service(rcu: Arc<Rcu>) -> KvfreeRcu {
    KvfreeRcu::builder(rcu)
        .manual()
        .lanes(1)
        .low_watermark(1)
        .high_watermark(1)
        .max_watermark(1)
        // Rounds must not depend on the wall clock, or the model is not
        // deterministic: with a short interval the build's first round
        // seals and relaxes the pool only when the build happened to take
        // longer than the interval (seen with the models run in parallel).
        .drain_interval(std::time::Duration::from_secs(10))
        .build()
}

/// A reader that found the old node before it was unlinked keeps it alive
/// across the retire, the worker's rounds and barrier.
#[test]
fn reader_keeps_retired_object_alive_until_its_section_ends() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(3));
        let svc = Arc::new(service(rcu.clone()));
        let first = node();
        let slot = Arc::new(AtomicPtr::new(first));

        let reader = {
            let (rcu, slot) = (rcu.clone(), slot.clone());
            thread::spawn(move || {
                let _g = rcu.read_lock();
                let p = slot.load(Ordering::Acquire);
                // SAFETY: published, and freed only after our section.
                let n = unsafe { &*p };
                assert_eq!(
                    n.state.load(Ordering::Relaxed),
                    ALIVE,
                    "reader saw a freed node"
                );
            })
        };

        let second = node();
        let old = slot.swap(second, Ordering::AcqRel);
        // SAFETY: unlinked above, retired once; `poison` leaves the memory.
        unsafe { svc.kvfree_rcu_with(NonNull::new(old).unwrap().cast(), poison) }
            .expect("a cached page");
        svc.run_once();
        svc.barrier();
        // SAFETY: the model owns both nodes.
        assert_eq!(
            unsafe { &*old }.state.load(Ordering::Relaxed),
            POISON,
            "barrier freed it"
        );
        reader.join().unwrap();
        // SAFETY: no reader remains; both nodes are ours.
        unsafe {
            drop(Box::from_raw(first));
            drop(Box::from_raw(second));
        }
    });
}

/// Headed retire racing the worker's collection: the object goes through a
/// page or the head list, and is freed exactly once, after the reader.
#[test]
fn headed_retire_races_collection() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(3));
        let svc = Arc::new(service(rcu.clone()));
        let retirer = {
            let svc = svc.clone();
            thread::spawn(move || {
                let n = node();
                // SAFETY: never published, retired once.
                unsafe { svc.kvfree_rcu(NonNull::new(n).unwrap()) };
            })
        };
        svc.run_once(); // collects whatever is queued so far, racing the retire
        retirer.join().unwrap();
        svc.barrier();
        assert_eq!(svc.stats().freed, 1);
    });
}

/// A retire through a `LocalRetirer` (the thread's own lane, no locked
/// instruction) racing a barrier, which takes thread lanes' pages with the
/// asymmetric-fence handshake: the object is freed exactly once, by that
/// barrier or by the next, and the handle's drop (its page handed off)
/// loses nothing either.
#[test]
fn local_retire_races_a_barrier() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(3));
        let svc = Arc::new(service(rcu.clone()));
        let retirer = {
            let svc = svc.clone();
            thread::spawn(move || {
                let local = svc.local_retirer();
                // SAFETY: never published, retired once.
                unsafe { local.kvfree_rcu(NonNull::new(node()).unwrap()) };
                drop(local);
            })
        };
        svc.barrier(); // takes the thread lane's page, racing the push
        retirer.join().unwrap();
        svc.barrier();
        assert_eq!(svc.stats().freed, 1);
    });
}

/// A thread freeing expired objects itself (`LocalRetirer::reclaim`, a
/// try-lock of the free lock) racing a round and a barrier that reap too:
/// each object is freed exactly once.
#[test]
fn local_reclaim_races_a_round() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(3));
        let svc = Arc::new(service(rcu.clone()));
        let first = node();
        // SAFETY: never published, retired once.
        unsafe { svc.kvfree_rcu(NonNull::new(first).unwrap()) };
        svc.run_once(); // collected, its grace period started
        let reclaimer = {
            let svc = svc.clone();
            thread::spawn(move || {
                let local = svc.local_retirer();
                local.reclaim()
            })
        };
        svc.run_once();
        let by_reclaim = reclaimer.join().unwrap();
        svc.barrier();
        assert!(by_reclaim <= 1);
        assert_eq!(svc.stats().freed, 1);
    });
}

/// Two threads park into a one-slot `Parking` while the main thread
/// flushes: each node is retired exactly once (by a flush, or by its
/// producer after a full parking handed it back), and the flusher reads the
/// payload the parker published.
#[test]
fn parking_races_flush() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(4));
        let svc = Arc::new(service(rcu));
        let parking = Arc::new(kvfree_rcu::Parking::with_capacity(1));
        let nodes: Vec<*mut Node> = (0..2).map(|_| node()).collect();
        let producers: Vec<_> = nodes
            .iter()
            .map(|&n| {
                let (svc, parking) = (svc.clone(), parking.clone());
                let n = n as usize;
                thread::spawn(move || {
                    let p = NonNull::new(n as *mut Node).unwrap().cast::<()>();
                    // SAFETY: `poison` keeps the memory; never published,
                    // retired once (parked, or retired below on Err).
                    if let Err(p) = unsafe { parking.park_with(p, poison) } {
                        // SAFETY: handed back: ours, retired once.
                        if let Err(p) = unsafe { svc.kvfree_rcu_with(p, poison) } {
                            // SAFETY: no reader ever saw it.
                            unsafe { poison(p) };
                        }
                    }
                })
            })
            .collect();
        parking.flush(&svc);
        for p in producers {
            p.join().unwrap();
        }
        parking.flush(&svc);
        svc.barrier();
        for n in nodes {
            // SAFETY: every node was poisoned exactly once (`poison` asserts
            // it); the model owns the memory.
            let n = unsafe { Box::from_raw(n) };
            assert_eq!(n.state.load(Ordering::Relaxed), POISON, "not freed");
        }
    });
}
