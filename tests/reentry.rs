//! Calls into a service from a destructor a service runs: re-entry is
//! tracked per service, in every build (the checker only reports it).
//! - A destructor run by service A may use another service B normally
//!   (`barrier` waits, a drop drains) and nothing is reported.
//! - A destructor run by service A that calls A's own `barrier`, `shrink` or
//!   `run_once` gets an immediate return (reported in checked builds), not a
//!   self-deadlock.
//!
//! Every test runs under a watchdog: a self-deadlock aborts the process
//! after 60 s instead of hanging CI.

mod common;

use common::*;
use kvfree_rcu::context::{self, CHECKS, ReportMode};
use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn manual_service() -> KvfreeRcu {
    KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build()
}

/// What a destructor saw, read by the test after the destructor ran (in
/// statics: a leak would trip LeakSanitizer).
struct Seen {
    ran: AtomicBool,
    reports: AtomicU64,
    other_freed: AtomicUsize,
}

impl Seen {
    const fn new() -> Seen {
        Seen {
            ran: AtomicBool::new(false),
            reports: AtomicU64::new(0),
            other_freed: AtomicUsize::new(0),
        }
    }
}

/// Freed by service A; uses service B in its destructor.
struct UsesOtherService {
    head: RcuHead,
    other: Mutex<Option<KvfreeRcu>>,
    other_counter: &'static DropCounter,
    drop_other: bool,
    seen: &'static Seen,
}
impl_rcu_headed!(UsesOtherService, head);

impl Drop for UsesOtherService {
    fn drop(&mut self) {
        let before = context::thread_violations();
        let other = self.other.lock().unwrap().take().unwrap();
        if self.drop_other {
            drop(other); // an ordinary drop: waits and frees B's objects
        } else {
            other.barrier(); // an ordinary barrier: waits for B's objects
            self.seen
                .other_freed
                .store(self.other_counter.dropped(), Ordering::SeqCst);
            drop(other);
        }
        if self.drop_other {
            self.seen
                .other_freed
                .store(self.other_counter.dropped(), Ordering::SeqCst);
        }
        self.seen
            .reports
            .store(context::thread_violations() - before, Ordering::SeqCst);
        self.seen.ran.store(true, Ordering::SeqCst);
    }
}

fn another_service_from_a_destructor(drop_other: bool, b_has_worker: bool, seen: &'static Seen) {
    let watchdog = common::Watchdog::arm("another_service_from_a_destructor");
    // Count, not Panic: a wrong report must fail the assertions below, not
    // abort the process from inside a destructor.
    context::set_report_mode(ReportMode::Count);
    let counter = DropCounter::leak();
    let a = manual_service();
    let b = if b_has_worker {
        KvfreeRcu::new(Arc::new(Rcu::new()))
    } else {
        manual_service()
    };
    let n = 200;
    for i in 0..n {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { b.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    let x = NonNull::from(Box::leak(Box::new(UsesOtherService {
        head: RcuHead::new(),
        other: Mutex::new(Some(b)),
        other_counter: counter,
        drop_other,
        seen,
    })));
    // SAFETY: from Box::leak, unpublished, retired once.
    unsafe { a.kvfree_rcu(x) };
    a.barrier(); // runs x's destructor on this thread, inside A's free
    assert!(seen.ran.load(Ordering::SeqCst), "A freed x");
    assert_eq!(
        seen.other_freed.load(Ordering::SeqCst),
        n as usize,
        "B's barrier/drop inside A's free waited for B's objects"
    );
    assert_eq!(seen.reports.load(Ordering::SeqCst), 0, "nothing reported");
    drop(watchdog);
}

#[test]
fn barrier_of_another_service_from_a_destructor_waits_normally() {
    static SEEN: [Seen; 2] = [Seen::new(), Seen::new()];
    another_service_from_a_destructor(false, false, &SEEN[0]);
    another_service_from_a_destructor(false, true, &SEEN[1]);
}

#[test]
fn dropping_another_service_from_a_destructor_drains_it_normally() {
    static SEEN: [Seen; 2] = [Seen::new(), Seen::new()];
    another_service_from_a_destructor(true, false, &SEEN[0]);
    another_service_from_a_destructor(true, true, &SEEN[1]);
}

/// Freed by a service; calls back into that same service.
struct UsesOwnService {
    head: RcuHead,
    service: Arc<KvfreeRcu>,
    seen: &'static Seen,
}
impl_rcu_headed!(UsesOwnService, head);

impl Drop for UsesOwnService {
    fn drop(&mut self) {
        let before = context::thread_violations();
        self.service.barrier();
        self.service.shrink();
        let report = self.service.run_once();
        assert_eq!(report.freed, 0, "an empty report: the round did not run");
        self.seen
            .reports
            .store(context::thread_violations() - before, Ordering::SeqCst);
        self.seen.ran.store(true, Ordering::SeqCst);
    }
}

#[test]
fn barrier_shrink_and_run_once_from_their_own_services_destructor_return_at_once() {
    let watchdog = common::Watchdog::arm("own service re-entry");
    context::set_report_mode(ReportMode::Count);
    let counter = DropCounter::leak();
    let service = Arc::new(manual_service());
    static SEEN: [Seen; 3] = [Seen::new(), Seen::new(), Seen::new()];
    for (driver, seen) in SEEN.iter().enumerate() {
        let x = NonNull::from(Box::leak(Box::new(UsesOwnService {
            head: RcuHead::new(),
            service: service.clone(),
            seen,
        })));
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(x) };
        for i in 0..10 {
            // SAFETY: as above.
            unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
        }
        // Each of the service's own calls that free runs the destructor.
        match driver {
            0 => service.barrier(),
            1 => {
                while !seen.ran.load(Ordering::SeqCst) {
                    service.run_once();
                    std::thread::yield_now();
                }
            }
            _ => {
                while !seen.ran.load(Ordering::SeqCst) {
                    service.shrink();
                    std::thread::yield_now();
                }
            }
        }
        assert!(seen.ran.load(Ordering::SeqCst));
        assert_eq!(
            seen.reports.load(Ordering::SeqCst),
            3 * u64::from(CHECKS),
            "each re-entry reported in checked builds (driver {driver})"
        );
    }
    service.barrier();
    assert_eq!(counter.dropped(), 30, "nothing lost");
    drop(watchdog);
}

/// A service with a worker dropped from a destructor that same service runs
/// (on its worker): the worker is detached and frees the rest on its way
/// out; nothing deadlocks, nothing is lost.
struct OwnsItsService {
    head: RcuHead,
    service: Mutex<Option<KvfreeRcu>>,
    seen: &'static Seen,
}
impl_rcu_headed!(OwnsItsService, head);

impl Drop for OwnsItsService {
    fn drop(&mut self) {
        let before = context::thread_violations();
        drop(self.service.lock().unwrap().take());
        self.seen
            .reports
            .store(context::thread_violations() - before, Ordering::SeqCst);
        self.seen.ran.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_service_dropped_from_its_own_destructor_frees_everything() {
    let watchdog = common::Watchdog::arm("own service drop");
    context::set_report_mode(ReportMode::Count);
    static SEEN: Seen = Seen::new();
    let seen = &SEEN;
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let n = 300;
    for i in 0..n {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    let owner = NonNull::from(Box::leak(Box::new(OwnsItsService {
        head: RcuHead::new(),
        service: Mutex::new(Some(service)),
        seen,
    })));
    // SAFETY: the owner is unpublished and retired once, through the service
    // it owns; this thread holds the owner's lock until the call returned
    // (its destructor takes the lock), and never touches it afterwards.
    unsafe {
        let guard = owner.as_ref().service.lock().unwrap();
        guard.as_ref().unwrap().kvfree_rcu(owner);
        drop(guard);
    }
    while !(seen.ran.load(Ordering::SeqCst) && counter.dropped() == n as usize) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(seen.reports.load(Ordering::SeqCst), u64::from(CHECKS));
    drop(watchdog);
}
