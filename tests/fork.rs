//! fork() safety (issue 10 item 7): a child forked while other threads of
//! the parent sit in a read-side critical section, retire in a loop, and run
//! the service's worker, can use the library: retire (headed and head-less),
//! `barrier`, `Rcu::synchronize` on the domain the parent's reader sits in
//! and on the global domain, drop the service, and exit 0. Every other fork
//! is made inside a read section of the forking thread, which the child
//! keeps and then leaves.
//!
//! Without the fork handlers the child hangs: the parent reader's slot stays
//! nested forever (so `synchronize` never returns), a pool slot left `BUSY`
//! by the retiring thread makes `barrier` spin, a lock the worker held at the
//! fork is never released, and `Drop` joins a worker that does not exist.
//!
//! The parent waits for each child with a watchdog (poll `waitpid(WNOHANG)`
//! for up to 60 s, then kill it and fail), so a hang fails the test instead
//! of hanging CI. The test forks several times to meet the racy states (a
//! push in flight, a lock held by the worker) as well as the certain ones.
//!
//! Its own test binary: forking a process whose other tests run threads
//! would put those tests' threads' state in the child too.
#![cfg(unix)]

mod common;

use common::{DropCounter, Headed, Plain};
use kvfree_rcu::{KvfreeRcu, Rcu};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// Forks per test run (scaled by `KVFREE_STRESS_SCALE`, at least 2): each
/// meets the parent's threads at a different point.
fn forks() -> usize {
    let scale = std::env::var("KVFREE_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    ((20.0 * scale) as usize).max(2)
}

/// What the child does; returns normally on success (any panic fails it).
fn child_work(service: KvfreeRcu, rcu: &Rcu, counter: &'static DropCounter) {
    for i in 0..2_000 {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
        let plain = Plain::boxed(i, counter);
        // SAFETY: as above; on `Err` the object is ours again.
        if let Err(plain) = unsafe { service.try_kvfree_rcu(plain) } {
            // SAFETY: as above; ordinary context.
            unsafe { service.kvfree_rcu_mightsleep(plain) };
        }
    }
    service.barrier();
    assert_eq!(service.stats().pending, 0, "barrier left objects queued");
    // The domain a parent thread was reading when the child was forked.
    rcu.synchronize();
    Rcu::global().synchronize();
    // SAFETY: as above.
    unsafe { service.kvfree_rcu(Headed::boxed(0, counter)) };
    drop(service);
    assert_eq!(
        counter.dropped(),
        4_001,
        "every object retired in the child is freed"
    );
}

#[test]
fn a_child_forked_mid_use_retires_waits_and_drops() {
    let rcu = Arc::new(Rcu::new());
    let service = Arc::new(
        KvfreeRcu::builder(rcu.clone())
            .drain_interval(Duration::from_micros(200))
            .poll_interval(Duration::from_micros(100))
            .build(),
    );
    let parent_counter = DropCounter::leak();
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(Barrier::new(3));

    // A reader that sits in a read-side critical section of `rcu` and of the
    // global domain whenever `hold` is set (each fork), and says so in
    // `inside`. Between forks it leaves, so the parent's grace periods end.
    let hold = Arc::new(AtomicBool::new(false));
    let inside = Arc::new(AtomicBool::new(false));
    let reader = {
        let (rcu, stop, ready) = (rcu.clone(), stop.clone(), ready.clone());
        let (hold, inside) = (hold.clone(), inside.clone());
        std::thread::spawn(move || {
            ready.wait();
            while !stop.load(Ordering::Relaxed) {
                if !hold.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                    continue;
                }
                let guard = rcu.read_lock();
                let global = Rcu::global().read_lock();
                inside.store(true, Ordering::SeqCst);
                while hold.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop((global, guard));
                inside.store(false, Ordering::SeqCst);
            }
        })
    };
    // A thread that retires in a loop, so forks land mid-push.
    let retirer = {
        let (service, stop, ready) = (service.clone(), stop.clone(), ready.clone());
        std::thread::spawn(move || {
            ready.wait();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if service.stats().pending > 50_000 {
                    // Bounded memory while the reader holds grace periods up.
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                // SAFETY: from Box::leak, never published, retired once.
                unsafe { service.kvfree_rcu(Headed::boxed(i, parent_counter)) };
                let plain = Plain::boxed(i, parent_counter);
                // SAFETY: as above; on `Err` the object is ours again.
                if let Err(plain) = unsafe { service.try_kvfree_rcu(plain) } {
                    // SAFETY: from Box::leak, never shared.
                    drop(unsafe { Box::from_raw(plain.as_ptr()) });
                }
                i += 1;
            }
        })
    };
    ready.wait();

    for round in 0..forks() {
        // Built in the parent, with its worker; used and dropped in the child.
        let mut child_service = Some(KvfreeRcu::new(rcu.clone()));
        hold.store(true, Ordering::SeqCst);
        while !inside.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        // Every other fork happens inside a read section of the forking
        // thread itself: the child keeps that section (and its slot), and
        // leaves it before it waits for grace periods.
        let own_section = (round % 2 == 0).then(|| rcu.read_lock());
        let status = common::fork_and_wait("the forked child hung", || {
            drop(own_section);
            let counter = DropCounter::leak();
            child_work(child_service.take().unwrap(), &rcu, counter);
            // The parent's service, shared with the parent's threads (gone
            // here): it works in the child too.
            // SAFETY: from Box::leak, never published, retired once.
            unsafe { service.kvfree_rcu(Headed::boxed(0, counter)) };
            service.barrier();
            assert_eq!(counter.dropped(), 4_002);
        });
        hold.store(false, Ordering::SeqCst);
        while inside.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "fork {round}: the child failed (wait status {status:#x})"
        );
        // The parent's copy, untouched by the child, still works and drops
        // (joining the worker it spawned).
        drop(child_service);
    }

    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    retirer.join().unwrap();
    service.barrier();
    rcu.synchronize();
    Rcu::global().synchronize();
    let service = Arc::into_inner(service).expect("the last handle");
    drop(service);
}
