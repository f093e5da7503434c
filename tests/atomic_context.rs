//! The reason this project exists: retiring under a held `RawSpinLock` (and
//! in a declared atomic section) makes zero allocations and keeps the
//! checker silent, while `_mightsleep` under the lock is reported.
//!
//! `CheckedAlloc` is this binary's global allocator, so every allocation of
//! the test thread is counted.

mod common;

use common::*;
use kvfree_rcu::context::{self, CHECKS, ReportMode};
use kvfree_rcu::{AtomicSection, CheckedAlloc, KvfreeRcu, RawSpinLock, Rcu};
use std::ptr::NonNull;
use std::sync::Arc;

#[global_allocator]
static ALLOC: CheckedAlloc = CheckedAlloc::system();

fn setup() {
    // Count instead of panicking: a report inside `RawSpinLock` must not
    // unwind through the lock in these tests. Every test here sets the same mode.
    context::set_report_mode(ReportMode::Count);
}

#[test]
fn retire_under_raw_spinlock_makes_zero_allocations() {
    setup();
    // Without CHECKS (release tests) the counters stay 0 and prove nothing;
    // the README's test command runs the debug profile, where they count.
    let counter = DropCounter::leak();
    let rcu = Arc::new(Rcu::new());
    rcu.register_current_thread().unwrap();
    let service = KvfreeRcu::new(rcu.clone());
    let lock = RawSpinLock::new(());
    let rounds = 200;
    let per_round = 200; // fewer than a CPU's cached pages can take
    let mut retired = 0;
    for r in 0..rounds {
        // Objects are allocated outside the lock, as a data structure would.
        let headed: Vec<_> = (0..per_round).map(|i| Headed::boxed(i, counter)).collect();
        let plain: Vec<_> = (0..per_round).map(|i| Plain::boxed(i, counter)).collect();
        let mut returned: Vec<NonNull<Plain>> = Vec::with_capacity(per_round as usize);
        let allocs_before = context::thread_allocations();
        let violations_before = context::thread_violations();
        {
            let _locked = lock.lock();
            for p in &headed {
                // SAFETY: from Box::leak, unpublished, retired once.
                unsafe { service.kvfree_rcu(*p) };
            }
            for p in &plain {
                // SAFETY: as above; Err hands it back (pushed into spare capacity: no allocation).
                if let Err(p) = unsafe { service.try_kvfree_rcu(*p) } {
                    returned.push(p);
                }
            }
            let _ = rcu.read_lock();
            let s = rcu.start_poll();
            let _ = rcu.poll_state(s);
        }
        assert_eq!(
            context::thread_allocations() - allocs_before,
            0,
            "round {r}: allocation under a raw spinlock"
        );
        assert_eq!(
            context::thread_violations() - violations_before,
            0,
            "round {r}: checker fired"
        );
        retired += 2 * per_round as usize - returned.len();
        for p in returned {
            // SAFETY: ownership came back with Err; ordinary context now.
            unsafe { service.kvfree_rcu_mightsleep(p) };
            retired += 1;
        }
        if r % 20 == 0 {
            service.barrier();
        }
    }
    service.barrier();
    assert_eq!(counter.dropped(), retired);
}

#[test]
fn retire_in_an_atomic_section_makes_zero_allocations() {
    setup();
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let objs: Vec<_> = (0..100).map(|i| Headed::boxed(i, counter)).collect();
    let before = context::thread_allocations();
    {
        let _atomic = AtomicSection::enter(); // what a signal handler or RT loop declares
        for p in &objs {
            // SAFETY: from Box::leak, unpublished, retired once.
            unsafe { service.kvfree_rcu(*p) };
        }
    }
    assert_eq!(context::thread_allocations() - before, 0);
    service.barrier();
    assert_eq!(counter.dropped(), 100);
}

#[test]
fn mightsleep_under_raw_spinlock_is_reported() {
    setup();
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let lock = RawSpinLock::new(());
    let p = Plain::boxed(1, counter);
    let before = context::thread_violations();
    {
        let _locked = lock.lock();
        // A bug the checker exists to catch: this call may sleep.
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu_mightsleep(p) };
    }
    assert_eq!(
        context::thread_violations() - before,
        u64::from(CHECKS),
        "might_sleep() fired under the lock"
    );
    service.barrier();
    assert_eq!(
        counter.dropped(),
        1,
        "reporting changed no behaviour: the object was still retired"
    );
}

#[test]
fn barrier_and_allocation_under_raw_spinlock_are_reported() {
    setup();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let lock = RawSpinLock::new(());
    let before = context::thread_violations();
    {
        let _locked = lock.lock();
        // Allocation in atomic context: reported by CheckedAlloc.
        let v: Vec<u64> = Vec::with_capacity(16);
        drop(v);
    }
    assert_eq!(context::thread_violations() - before, u64::from(CHECKS));
    {
        let _locked = lock.lock();
        let _s = service.stats(); // reading stats is fine anywhere
    }
    assert_eq!(context::thread_violations() - before, u64::from(CHECKS));
    let _ = &service;
}

#[test]
fn double_retire_of_a_headed_object_is_reported_and_ignored() {
    setup();
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let p = Headed::boxed(9, counter);
    let before = context::thread_violations();
    // SAFETY: from Box::leak, unpublished. The second call breaks contract 3
    // on purpose; checked builds detect it before anything is queued.
    unsafe {
        service.kvfree_rcu(p);
        if CHECKS {
            service.kvfree_rcu(p);
        }
    }
    assert_eq!(context::thread_violations() - before, u64::from(CHECKS));
    service.barrier();
    assert_eq!(counter.dropped(), 1, "freed once, not twice");
}

/// A retire that finds no page parks its pointer under a raw spinlock with
/// zero allocations; when the parking is full too the pointer comes back,
/// still without allocating; the flush (ordinary context) frees them all.
#[test]
fn parking_under_raw_spinlock_makes_zero_allocations() {
    setup();
    let counter = DropCounter::leak();
    let service = KvfreeRcu::builder(Rcu::global()).manual().build();
    let parking = kvfree_rcu::Parking::with_capacity(8);
    service.shrink(); // no page: every try_ is handed back
    let plain: Vec<_> = (0..10).map(|i| Plain::boxed(i, counter)).collect();
    let mut returned: Vec<NonNull<Plain>> = Vec::with_capacity(plain.len());
    let lock = RawSpinLock::new(());
    let allocs_before = context::thread_allocations();
    let violations_before = context::thread_violations();
    {
        let _locked = lock.lock();
        for p in &plain {
            // SAFETY: from Box::leak, unpublished, retired once; Err hands it
            // back (pushed into spare capacity: no allocation).
            if let Err(p) = unsafe { parking.try_kvfree_rcu_or_park(&service, *p) } {
                returned.push(p);
            }
        }
    }
    assert_eq!(context::thread_allocations() - allocs_before, 0);
    assert_eq!(context::thread_violations() - violations_before, 0);
    assert_eq!(parking.len(), 8);
    assert_eq!(returned.len(), 2, "a full parking hands the pointer back");
    assert_eq!(parking.flush(&service), 8);
    for p in returned {
        // SAFETY: handed back by Err: ours, unpublished, retired once.
        unsafe { service.kvfree_rcu_mightsleep(p) };
    }
    service.barrier();
    assert_eq!(counter.dropped(), 10);
    assert!(parking.is_empty());
}
