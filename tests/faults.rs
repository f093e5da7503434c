//! Faults beyond `tests/service.rs`: threads that panic right after
//! retiring (or inside a read-side section), page-allocation failures
//! injected while many threads retire, recovery afterwards, reader slots
//! recycled by exiting threads, and misuse reported in checked builds.

mod common;

use common::*;
use kvfree_rcu::context::{self, CHECKS, ReportMode};
use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};

/// Waits (bounded: ~10 s) until `counter` reaches `n` without calling
/// `barrier()`: the worker alone must get there.
fn wait_for_worker(counter: &DropCounter, n: usize) {
    for _ in 0..10_000 {
        if counter.dropped() == n {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(
        counter.dropped(),
        n,
        "the worker freed everything on its own"
    );
}

#[test]
fn threads_that_panic_right_after_retiring_strand_nothing() {
    let counter = DropCounter::leak();
    let rcu = Arc::new(Rcu::new());
    let service = Arc::new(KvfreeRcu::new(rcu.clone()));
    let threads = 8;
    let per = scaled(500);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (service, rcu) = (service.clone(), rcu.clone());
            std::thread::spawn(move || {
                for i in 0..per {
                    // SAFETY: from Box::leak, never published, retired once.
                    unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
                    let p = Plain::boxed(i as u64, counter);
                    // SAFETY: as above; Err returns ownership.
                    if let Err(p) = unsafe { service.try_kvfree_rcu(p) } {
                        // SAFETY: Err handed ownership back; ordinary context; retired once.
                        unsafe { service.kvfree_rcu_mightsleep(p) };
                    }
                }
                // Half of them die inside a read-side critical section: the
                // guard is dropped by the unwind, so grace periods go on.
                let _guard = (t % 2 == 0).then(|| rcu.read_lock());
                panic!("thread {t} panics right after retiring (expected)");
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().is_err(), "each thread panicked");
    }
    wait_for_worker(counter, threads * per * 2);
    service.barrier();
    assert_eq!(service.stats().pending, 0);
}

#[test]
fn allocation_failures_injected_while_many_threads_retire_lose_nothing_then_recover() {
    let counter = DropCounter::leak();
    let service = Arc::new(
        KvfreeRcu::builder(Arc::new(Rcu::new()))
            .low_watermark(2)
            .high_watermark(4)
            .max_watermark(4)
            .max_refill_backoff(std::time::Duration::from_millis(4))
            .build(),
    );
    service.shrink(); // start with empty caches: refills are needed at once
    service.inject_alloc_failures(40);
    let threads = 4;
    let per = scaled(20_000);
    let go = Arc::new(Barrier::new(threads));
    let inline = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (service, go, inline) = (service.clone(), go.clone(), inline.clone());
            std::thread::spawn(move || {
                go.wait();
                for i in 0..per {
                    // SAFETY: from Box::leak, never published, retired once.
                    unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
                    let p = Plain::boxed(i as u64, counter);
                    // SAFETY: as above; Err returns ownership.
                    if let Err(p) = unsafe { service.try_kvfree_rcu(p) } {
                        // SAFETY: Err handed ownership back; ordinary context; retired once.
                        unsafe { service.kvfree_rcu_mightsleep(p) };
                        inline.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    service.barrier();
    let s = service.stats();
    println!(
        "faults: {s:?}, {} head-less objects retired by the sleeping fallback",
        inline.load(Ordering::Relaxed)
    );
    assert_eq!(counter.dropped(), 2 * threads * per, "nothing lost");
    assert!(s.alloc_failures > 0, "injected failures were hit: {s:?}");
    assert!(
        s.queued_heads > 0 || s.try_failed > 0,
        "fallbacks used: {s:?}"
    );
    // Recovery: once the injected failures are used up, refills succeed and
    // the page path works again.
    let mut recovered = false;
    for _ in 0..2_000 {
        service.run_once();
        let p = Plain::boxed(0, counter);
        // SAFETY: as above.
        match unsafe { service.try_kvfree_rcu(p) } {
            Ok(()) => {
                recovered = true;
                break;
            }
            // SAFETY: Err returned ownership; never published.
            Err(p) => drop(unsafe { Box::from_raw(p.as_ptr()) }),
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(recovered, "the page path recovered: {:?}", service.stats());
    service.barrier();
    assert_eq!(service.stats().pending, 0);
}

#[test]
fn exiting_threads_release_their_reader_slots() {
    // A domain with room for 4 threads; 64 threads come and go.
    let rcu = Arc::new(Rcu::with_capacity(4));
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(rcu.clone());
    for i in 0..64 {
        let rcu = rcu.clone();
        std::thread::spawn(move || {
            rcu.register_current_thread()
                .expect("a slot was released by an exited thread");
            let _g = rcu.read_lock();
        })
        .join()
        .unwrap();
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    service.barrier();
    assert_eq!(counter.dropped(), 64);
}

#[test]
fn double_retire_on_the_head_fallback_is_reported_and_ignored() {
    context::set_report_mode(ReportMode::Count);
    let counter = DropCounter::leak();
    let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
    service.shrink();
    // Exhaust the pages so the first retire takes the head fallback.
    let mut queued = 0;
    loop {
        let p = Plain::boxed(0, counter);
        // SAFETY: from Box::leak, never published, retired once (or returned).
        match unsafe { service.try_kvfree_rcu(p) } {
            Ok(()) => queued += 1,
            Err(p) => {
                // SAFETY: Err returned ownership.
                drop(unsafe { Box::from_raw(p.as_ptr()) });
                queued += 1;
                break;
            }
        }
    }
    let p = Headed::boxed(1, counter);
    let before = context::thread_violations();
    let heads_before = service.stats().queued_heads;
    // SAFETY: the second call breaks contract 3 on purpose; checked builds
    // detect it before anything is queued.
    unsafe {
        service.kvfree_rcu(p);
        if CHECKS {
            service.kvfree_rcu(p);
        }
    }
    assert_eq!(
        service.stats().queued_heads - heads_before,
        1,
        "queued once"
    );
    assert_eq!(context::thread_violations() - before, u64::from(CHECKS));
    service.barrier();
    assert_eq!(counter.dropped(), queued + 1, "freed once");
}

/// An object whose destructor (run by the service) calls `barrier()`: a
/// deadlock in the making, reported instead.
struct WaitsInDrop {
    head: RcuHead,
}
impl_rcu_headed!(WaitsInDrop, head);
static SERVICE: OnceLock<KvfreeRcu> = OnceLock::new();
static REPORTED_IN_DROP: AtomicU64 = AtomicU64::new(0);
impl Drop for WaitsInDrop {
    fn drop(&mut self) {
        let before = context::thread_violations();
        SERVICE.get().unwrap().barrier();
        REPORTED_IN_DROP.store(context::thread_violations() - before + 1, Ordering::SeqCst);
    }
}

#[test]
fn barrier_from_a_destructor_the_service_runs_is_reported_not_deadlocked() {
    context::set_report_mode(ReportMode::Count);
    let service = SERVICE.get_or_init(|| KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build());
    let p = NonNull::from(Box::leak(Box::new(WaitsInDrop {
        head: RcuHead::new(),
    })));
    // SAFETY: from Box::leak, never published, retired once.
    unsafe { service.kvfree_rcu(p) };
    service.barrier(); // runs the destructor on this thread
    // 1 + reports: the checker reports the misuse in checked builds; the
    // call returns at once in every build.
    assert_eq!(
        REPORTED_IN_DROP.load(Ordering::SeqCst),
        1 + u64::from(CHECKS),
        "WaitInsideFree reported"
    );
}

#[test]
fn a_panicking_worker_round_is_counted_and_the_worker_goes_on() {
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    service.inject_round_panics(2);
    // The worker meets the injected panics on its next rounds (the hook
    // wakes it), catches each, counts it and goes on.
    for _ in 0..60_000 {
        if service.stats().worker_panics == 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(service.stats().worker_panics, 2, "{:?}", service.stats());
    // The worker is alive: it frees on its own, without a barrier.
    let n = 100;
    for i in 0..n {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    for _ in 0..60_000 {
        if counter.dropped() == n as usize {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(counter.dropped(), n as usize, "the worker freed them");
    service.barrier();
}

#[test]
fn barrier_does_not_depend_on_the_worker() {
    // Every worker round panics; barrier() still frees on the caller's thread.
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    service.inject_round_panics(u64::MAX);
    let n = 100;
    for i in 0..n {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    service.barrier();
    assert_eq!(counter.dropped(), n as usize);
    // A manual round meets the injected panic on the caller's thread.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| service.run_once()));
    assert!(r.is_err(), "run_once panics on the caller, not silently");
    service.inject_round_panics(0);
}
