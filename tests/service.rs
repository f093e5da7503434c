//! The service end to end: every fallback forced, recovery, drop counters
//! across `barrier()` and service drop, several types through one service.

mod common;

use common::*;
use kvfree_rcu::{KvfreeRcu, Rcu};
use std::ptr::NonNull;
use std::sync::Arc;

fn manual_service() -> KvfreeRcu {
    KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build()
}

/// Retires head-less objects until the pool runs dry; returns how many went in.
fn exhaust(service: &KvfreeRcu, counter: &'static DropCounter) -> usize {
    let mut n = 0;
    loop {
        let p = Plain::boxed(n as u64, counter);
        // SAFETY: from Box::leak, never published, retired once (or returned).
        match unsafe { service.try_kvfree_rcu(p) } {
            Ok(()) => n += 1,
            Err(p) => {
                // SAFETY: Err hands ownership back; free it ourselves.
                drop(unsafe { Box::from_raw(p.as_ptr()) });
                return n;
            }
        }
        assert!(n < 1_000_000, "the pool never ran dry");
    }
}

#[test]
fn headed_and_headless_objects_are_freed_exactly_once_by_barrier() {
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let n = scaled(5_000);
    for i in 0..n {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
        // SAFETY: as above; Err returns ownership, then the sleeping variant retires it.
        if let Err(p) = unsafe { service.try_kvfree_rcu(Plain::boxed(i as u64, counter)) } {
            // SAFETY: Err handed it back; retired once.
            unsafe { service.kvfree_rcu_mightsleep(p) };
        }
        // SAFETY: as above.
        unsafe { service.kvfree_rcu_mightsleep(NonNull::from(Box::leak(Box::new(Zst)))) };
    }
    service.barrier();
    assert_eq!(counter.dropped(), 2 * n);
    let s = service.stats();
    assert_eq!(s.pending, 0, "{s:?}");
    assert_eq!(s.freed + s.freed_inline, 3 * n as u64, "{s:?}");
}

#[test]
fn dropping_the_service_frees_everything_outstanding() {
    let counter = DropCounter::leak();
    let n = scaled(3_000);
    {
        let service = KvfreeRcu::new(Arc::new(Rcu::new()));
        for i in 0..n {
            // SAFETY: from Box::leak, unpublished, retired once.
            unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
        }
        // No barrier: drop must wait for the grace period and free them all.
    }
    assert_eq!(counter.dropped(), n);
}

#[test]
fn pages_exhausted_use_every_fallback_then_recover_after_refill() {
    let counter = DropCounter::leak();
    let service = manual_service();
    service.shrink();
    let went_in = exhaust(&service, counter);
    // Pages are gone: the headed call links the head instead, and never fails.
    let before = service.stats();
    for i in 0..100 {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    let after = service.stats();
    assert_eq!(after.queued_heads - before.queued_heads, 100, "{after:?}");
    // Head-less: Err at once, the object handed back.
    let p = Plain::boxed(1, counter);
    // SAFETY: as above.
    let back = unsafe { service.try_kvfree_rcu(p) }.expect_err("no page, so Err");
    assert_eq!(back, p);
    // The sleeping variant allocates a page on the spot (issue 11 item 4;
    // the grace-period wait when that fails: tests/page_supply.rs).
    let before = service.stats();
    // SAFETY: `back` is ours again (Err), retired once.
    unsafe { service.kvfree_rcu_mightsleep(back) };
    let after = service.stats();
    assert_eq!(after.freed_inline, before.freed_inline, "{after:?}");
    assert_eq!(after.inline_page_allocs, before.inline_page_allocs + 1);
    assert!(service.stats().refill_requests > 0);
    // Recovery: the worker's round refills on demand, and the fast path works again.
    let report = service.run_once();
    assert!(report.pages_refilled > 0, "{report:?}");
    let p = Plain::boxed(2, counter);
    // SAFETY: as above.
    unsafe { service.try_kvfree_rcu(p) }.expect("refilled, so a page is available");
    service.barrier();
    assert_eq!(
        counter.dropped(),
        went_in + 100 + 1 + 1 + 1,
        "every object freed exactly once"
    );
}

#[test]
fn injected_allocation_failures_back_off_and_lose_nothing() {
    let counter = DropCounter::leak();
    let service = manual_service();
    service.shrink();
    service.inject_alloc_failures(3);
    let n = exhaust(&service, counter);
    let r = service.run_once();
    assert!(r.refill_failed, "{r:?}");
    // While backing off, headed retires keep working through their heads.
    for i in 0..10 {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    assert_eq!(service.stats().queued_heads, 10);
    // Recovery once the backoff passes and allocation succeeds again (the
    // remaining injected failures are used up by the retries first).
    let mut refilled = 0;
    for _ in 0..1_000 {
        refilled += service.run_once().pages_refilled;
        if refilled > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(refilled > 0, "refill recovered after the injected failures");
    assert!(service.stats().alloc_failures >= 3, "{:?}", service.stats());
    let p = Plain::boxed(3, counter);
    // SAFETY: as above.
    unsafe { service.try_kvfree_rcu(p) }.expect("pages again after recovery");
    service.barrier();
    assert_eq!(
        counter.dropped(),
        n + 1 + 10 + 1,
        "exhaust freed the one handed back"
    );
}

#[test]
fn many_types_through_one_service_each_dropped_with_its_own_drop() {
    let a = DropCounter::leak();
    let b = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let strings = scaled(2_000);
    for i in 0..strings {
        // Alternate types so the pages' run-length kinds change on every record.
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe {
            service.kvfree_rcu(Headed::boxed(i as u64, a));
            if let Err(p) = service.try_kvfree_rcu(Plain::boxed(i as u64, b)) {
                service.kvfree_rcu_mightsleep(p);
            }
            let s = NonNull::from(Box::leak(Box::new(format!("string {i}"))));
            if let Err(s) = service.try_kvfree_rcu(s) {
                service.kvfree_rcu_mightsleep(s);
            }
            let v = NonNull::from(Box::leak(Box::new(vec![i as u8; i % 64])));
            if let Err(v) = service.try_kvfree_rcu(v) {
                service.kvfree_rcu_mightsleep(v);
            }
        }
    }
    service.barrier();
    assert_eq!(a.dropped(), strings);
    assert_eq!(b.dropped(), strings);
}

#[test]
fn low_level_variant_calls_the_given_free_function() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static FREED: AtomicUsize = AtomicUsize::new(0);
    unsafe fn free_slot(p: NonNull<()>) {
        // SAFETY: the test retires Box<u32>s only.
        drop(unsafe { Box::from_raw(p.cast::<u32>().as_ptr()) });
        FREED.fetch_add(1, Ordering::SeqCst);
    }
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let mut queued = 0;
    for i in 0..100u32 {
        let p = NonNull::from(Box::leak(Box::new(i))).cast::<()>();
        // SAFETY: `free_slot` frees a Box<u32>, once.
        match unsafe { service.kvfree_rcu_with(p, free_slot) } {
            Ok(()) => queued += 1,
            // SAFETY: Err returns ownership.
            Err(p) => unsafe { free_slot(p) },
        }
    }
    service.barrier();
    assert_eq!(FREED.load(Ordering::SeqCst), 100);
    assert!(queued > 0);
}

/// Issue 10 item 8: `usize::MAX` is a valid address (a dangling pointer to a
/// zero-sized value with alignment 1), so it must come back to its free
/// function like any other; it used to be read as the page's kind marker.
#[test]
fn a_pointer_at_address_usize_max_is_freed_once_like_any_other() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static FREED: AtomicUsize = AtomicUsize::new(0);
    static WRONG_ADDRESS: AtomicUsize = AtomicUsize::new(0);
    unsafe fn free_zst(p: NonNull<()>) {
        // A zero-sized value: nothing to free, only count the call.
        if p.as_ptr().addr() != usize::MAX {
            WRONG_ADDRESS.fetch_add(1, Ordering::SeqCst);
        }
        FREED.fetch_add(1, Ordering::SeqCst);
    }
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let max = NonNull::new(std::ptr::without_provenance_mut::<()>(usize::MAX)).unwrap();
    // SAFETY: `free_zst` frees nothing (a dangling ZST pointer), once is fine.
    let queued = unsafe { service.kvfree_rcu_with(max, free_zst) };
    assert!(queued.is_ok(), "a fresh service has pages");
    service.barrier();
    assert_eq!(FREED.load(Ordering::SeqCst), 1);
    assert_eq!(WRONG_ADDRESS.load(Ordering::SeqCst), 0);
    drop(service);
    assert_eq!(FREED.load(Ordering::SeqCst), 1);
}

/// Issue 10 item 3 (pool half): every pool value is checked, and the error
/// reads as a sentence naming the field and its range, with the pool's error
/// as its source.
#[test]
fn an_invalid_pool_value_is_an_error_naming_the_field_and_its_range() {
    use kvfree_rcu::BuildError;
    use kvfree_rcu::{
        CACHE_CAPACITY, MAX_LANES, MAX_RESERVE, MAX_SLAB_PAGES, PoolConfigError as ConfigError,
    };
    use std::error::Error;
    let cap = CACHE_CAPACITY;
    let builder = || KvfreeRcu::builder(Arc::new(Rcu::new()));
    let cases = [
        (
            builder().low_watermark(0),
            "low_watermark",
            format!("1..={cap}, got 0"),
        ),
        (
            builder().low_watermark(cap + 1).high_watermark(cap + 1),
            "low_watermark",
            format!("1..={cap}, got {}", cap + 1),
        ),
        (
            builder().low_watermark(3).high_watermark(2),
            "high_watermark",
            format!("3..={cap}, got 2"),
        ),
        (
            builder().low_watermark(1).high_watermark(cap + 1),
            "high_watermark",
            format!("1..={cap}, got {}", cap + 1),
        ),
        (
            builder().high_watermark(8).max_watermark(7),
            "max_watermark",
            format!("8..={cap}, got 7"),
        ),
        (
            builder().high_watermark(16).max_watermark(cap + 1),
            "max_watermark",
            format!("16..={cap}, got {}", cap + 1),
        ),
        (
            builder().alloc_watermark(0),
            "alloc_watermark",
            format!("1..={cap}, got 0"),
        ),
        (
            builder().max_reserve(MAX_RESERVE + 1),
            "max_reserve",
            format!("0..={MAX_RESERVE}, got {}", MAX_RESERVE + 1),
        ),
        (
            builder().slab_pages(0),
            "slab_pages",
            format!("1..={MAX_SLAB_PAGES}, got 0"),
        ),
        (
            builder().slab_pages(MAX_SLAB_PAGES + 1),
            "slab_pages",
            format!("1..={MAX_SLAB_PAGES}, got {}", MAX_SLAB_PAGES + 1),
        ),
        (
            builder().lanes(0),
            "lanes",
            format!("1..={MAX_LANES}, got 0"),
        ),
        (
            builder().lanes(MAX_LANES + 1),
            "lanes",
            format!("1..={MAX_LANES}, got {}", MAX_LANES + 1),
        ),
    ];
    for (builder, field, range) in cases {
        let err = builder.try_build().expect_err(field);
        let msg = err.to_string();
        assert!(msg.contains("invalid pool configuration"), "{msg}");
        assert!(
            msg.contains(&format!("{field} must be in {range}")),
            "{msg}"
        );
        assert!(!msg.contains('{'), "Display, not Debug: {msg}");
        let source = err.source().expect("the pool error is the source");
        let pool_err = source
            .downcast_ref::<ConfigError>()
            .expect("the source is the pool's ConfigError");
        assert_eq!(pool_err.field(), field);
        assert!(matches!(err, BuildError::Pool(_)));
    }
}

#[test]
fn paused_worker_then_resume_frees_everything() {
    let counter = DropCounter::leak();
    let service = Arc::new(KvfreeRcu::new(Arc::new(Rcu::new())));
    service.pause_worker();
    let n = scaled(20_000);
    for i in 0..n {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
    }
    let s = service.stats();
    assert_eq!(s.queued_pages + s.queued_heads, n as u64, "{s:?}");
    service.resume_worker();
    service.barrier();
    assert_eq!(counter.dropped(), n);
}

#[test]
fn threads_that_exit_right_after_retiring_strand_nothing() {
    let counter = DropCounter::leak();
    let service = Arc::new(KvfreeRcu::new(Arc::new(Rcu::new())));
    let threads = 16;
    let per = scaled(200);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let service = service.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    // SAFETY: from Box::leak, unpublished, retired once.
                    unsafe { service.kvfree_rcu(Headed::boxed((t * per + i) as u64, counter)) };
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    // The worker seals idle CPUs' open pages on its own; wait without barrier.
    for _ in 0..10_000 {
        if counter.dropped() == threads * per {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(
        counter.dropped(),
        threads * per,
        "the worker drained every CPU's pages"
    );
}

#[test]
fn stats_count_batches_grace_periods_and_wakeups() {
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    for i in 0..scaled(3_000) {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
    }
    service.barrier();
    let s = service.stats();
    assert!(s.batches >= 1, "{s:?}");
    assert!(s.grace_periods >= 1, "{s:?}"); // the last batch waited one
    assert!(s.pages_allocated >= 1, "{s:?}");
    assert_eq!(s.pending, 0);
}

#[test]
fn peak_pending_keeps_the_largest_backlog_a_pass_found() {
    let counter = DropCounter::leak();
    // Manual: no worker round runs between the calls below, so the only
    // passes are the build's and the barriers'.
    let service = manual_service();
    assert_eq!(service.stats().peak_pending, 0, "nothing retired yet");
    let retire = |n: usize| {
        for i in 0..n {
            // SAFETY: from Box::leak, unpublished, retired once.
            unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
        }
    };
    let big = scaled(3_000);
    retire(big);
    assert_eq!(service.stats().peak_pending, 0, "no pass has run since");
    service.barrier();
    let s = service.stats();
    assert_eq!((s.pending, s.peak_pending), (0, big as u64), "{s:?}");
    // A smaller backlog later leaves the mark where it was.
    retire(big / 3);
    service.barrier();
    let s = service.stats();
    assert_eq!((s.pending, s.peak_pending), (0, big as u64), "{s:?}");
    assert_eq!(counter.dropped(), big + big / 3);
}

#[test]
fn invalid_configuration_is_a_clear_error() {
    let err = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .low_watermark(10)
        .high_watermark(2)
        .try_build();
    let msg = err.expect_err("low above high").to_string();
    assert!(msg.contains("invalid pool configuration"), "{msg}");
}

#[test]
fn out_of_range_service_settings_are_clear_errors() {
    use kvfree_rcu::BuildError;
    use std::time::Duration;
    let rcu = Arc::new(Rcu::new());
    let cases: [(&str, kvfree_rcu::Builder<Rcu>); 9] = [
        (
            "drain_interval",
            KvfreeRcu::builder(rcu.clone()).drain_interval(Duration::ZERO),
        ),
        (
            "drain_interval",
            KvfreeRcu::builder(rcu.clone()).drain_interval(Duration::MAX),
        ),
        (
            "poll_interval",
            KvfreeRcu::builder(rcu.clone()).poll_interval(Duration::ZERO),
        ),
        (
            "poll_interval",
            KvfreeRcu::builder(rcu.clone()).poll_interval(Duration::from_secs(2)),
        ),
        (
            "advance_interval",
            KvfreeRcu::builder(rcu.clone()).advance_interval(Duration::from_millis(1001)),
        ),
        (
            "max_refill_backoff",
            KvfreeRcu::builder(rcu.clone()).max_refill_backoff(Duration::ZERO),
        ),
        (
            "max_refill_backoff",
            KvfreeRcu::builder(rcu.clone()).max_refill_backoff(Duration::from_micros(999)),
        ),
        (
            "max_refill_backoff",
            KvfreeRcu::builder(rcu.clone()).max_refill_backoff(Duration::MAX),
        ),
        (
            "thread_name",
            KvfreeRcu::builder(rcu.clone()).thread_name("a\0b"),
        ),
    ];
    for (field, builder) in cases {
        let err = builder.try_build().expect_err(field);
        let BuildError::Setting(setting) = &err else {
            panic!("{field}: {err}")
        };
        assert_eq!(setting.setting(), field);
        let msg = err.to_string();
        assert!(msg.contains(field) && msg.contains("allowed"), "{msg}");
    }
    // The limits themselves are accepted.
    let service = KvfreeRcu::builder(rcu.clone())
        .manual()
        .drain_interval(Duration::from_micros(100))
        .poll_interval(Duration::from_micros(10))
        .advance_interval(Duration::ZERO)
        .max_refill_backoff(Duration::from_millis(1))
        .try_build()
        .expect("the limits are allowed");
    drop(service);
    let service = KvfreeRcu::builder(rcu.clone())
        .manual()
        .advance_interval(Duration::from_secs(1))
        .try_build()
        .expect("the limits are allowed");
    drop(service);
}

#[test]
fn the_smallest_refill_backoff_survives_allocation_failures() {
    // `max_refill_backoff` at its 1 ms minimum: the backoff after a failed
    // refill is computed without panicking (below 1 ms `clamp` used to
    // panic and kill the worker; such values are now rejected by the builder).
    let counter = DropCounter::leak();
    let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .manual()
        .max_refill_backoff(std::time::Duration::from_millis(1))
        .build();
    service.shrink();
    service.inject_alloc_failures(2);
    let n = exhaust(&service, counter);
    assert!(service.run_once().refill_failed);
    service.barrier();
    assert_eq!(counter.dropped(), n + 1);
}

#[test]
fn dropping_the_service_from_its_own_destructor_is_reported_and_frees_everything() {
    use kvfree_rcu::context::{self, CHECKS, ReportMode};
    use std::sync::Mutex;
    /// Owns the last handle to the service that frees it.
    struct Owner {
        service: Mutex<Option<KvfreeRcu>>,
        counter: &'static DropCounter,
    }
    impl Drop for Owner {
        fn drop(&mut self) {
            let before = context::thread_violations();
            context::set_report_mode(ReportMode::Count);
            drop(self.service.lock().unwrap().take());
            assert_eq!(context::thread_violations() - before, u64::from(CHECKS));
            self.counter
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let counter = DropCounter::leak();
    let owner_counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    for i in 0..100 {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    let owner = Box::new(Owner {
        service: Mutex::new(None),
        counter: owner_counter,
    });
    let raw = NonNull::from(Box::leak(owner));
    // SAFETY: the owner is ours; the service is moved into it, then the owner
    // is retired through that very service.
    unsafe {
        *raw.as_ref().service.lock().unwrap() = Some(service);
        let guard = raw.as_ref().service.lock().unwrap();
        let svc = guard.as_ref().unwrap();
        if let Err(p) = svc.try_kvfree_rcu(raw) {
            drop(guard);
            drop(Box::from_raw(p.as_ptr()));
        }
    }
    // The worker frees the owner, whose drop drops the service (detaching
    // the worker), which then frees the 100 others on its way out.
    for _ in 0..20_000 {
        if owner_counter.dropped() == 1 && counter.dropped() == 100 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(owner_counter.dropped(), 1);
    assert_eq!(counter.dropped(), 100);
}

/// Issue 11: an idle worker is woken by the first retire call after it went
/// idle (one OS wake, counted in `worker_wakeups`), and frees the object.
/// While the worker polls, retire calls make no wake at all; that is the
/// unit tests' and the main job's to show (`wake.rs`, `bench/syscalls.sh`).
#[test]
fn the_first_retire_after_idle_wakes_the_worker() {
    let _watchdog = Watchdog::arm("the_first_retire_after_idle_wakes_the_worker");
    let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .drain_interval(std::time::Duration::from_micros(100))
        .build();
    let counter = DropCounter::leak();
    // The worker goes idle a drain interval after its last work; on a busy
    // machine it may not have yet, so try again until a retire woke it.
    for round in 1..1000 {
        std::thread::sleep(std::time::Duration::from_millis(10));
        // SAFETY: fresh from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(round as u64, counter)) };
        // Freed by the worker on its own: no barrier, no run_once.
        while counter.dropped() < round {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        if service.stats().worker_wakeups >= 1 {
            return;
        }
    }
    panic!("no retire call ever found the worker idle");
}

/// Issue 11, reclaim with CPU affinity: only the service's own threads move
/// to the CPU that filled a page. A `barrier()` caller frees on its own
/// thread and keeps the affinity the application gave it.
#[cfg(target_os = "linux")]
#[test]
fn a_barrier_caller_keeps_its_cpu_affinity() {
    fn mask() -> Vec<u8> {
        // SAFETY: all zeroes is the empty set; pid 0 is this thread and the
        // size is the set's.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            assert_eq!(
                libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set),
                0
            );
            std::slice::from_raw_parts((&raw const set).cast::<u8>(), std::mem::size_of_val(&set))
                .to_vec()
        }
    }
    let before = mask();
    let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .manual()
        .reclaim_affinity(kvfree_rcu::ReclaimAffinity::FillingCpu)
        .build();
    let counter = DropCounter::leak();
    for i in 0..scaled(5_000) {
        // SAFETY: fresh from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
    }
    service.barrier();
    assert_eq!(counter.dropped(), scaled(5_000));
    assert_eq!(mask(), before, "barrier() moved its caller");
}

/// Both reclaim affinities free every object once, with the worker and its
/// helpers (a multi-thread flood).
#[test]
fn every_reclaim_affinity_frees_everything_once() {
    for affinity in [
        kvfree_rcu::ReclaimAffinity::FillingCpu,
        kvfree_rcu::ReclaimAffinity::Anywhere,
    ] {
        let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
            .reclaim_affinity(affinity)
            .build();
        let counter = DropCounter::leak();
        let per_thread = scaled(50_000);
        std::thread::scope(|s| {
            for t in 0..4 {
                let service = &service;
                s.spawn(move || {
                    for i in 0..per_thread {
                        let value = (t * per_thread + i) as u64;
                        // SAFETY: fresh from Box::leak, never published,
                        // retired once.
                        unsafe { service.kvfree_rcu(Headed::boxed(value, counter)) };
                    }
                });
            }
        });
        service.barrier();
        assert_eq!(counter.dropped(), 4 * per_thread, "{affinity:?}");
    }
}
