//! lockdep for RCU: a call that waits for a grace period (`barrier`,
//! `kvfree_rcu_mightsleep`, dropping the service) made inside a read-side
//! critical section of the service's own grace-period source would wait for
//! itself forever. Checked builds report it
//! ([`Violation::WaitForGpInReadSection`]), for every backend: an `Rcu`
//! domain (a live `read_lock()` guard of that domain on this thread) and
//! crossbeam-epoch (this thread pinned). Nothing is reported outside a
//! section, or inside a section of another domain.
//!
//! The report fires before any waiting. `barrier` and drop would then wait
//! forever (in every report mode, as in release builds), so those are tested
//! in Panic mode under `catch_unwind`; `_mightsleep` with a page available
//! does not wait, so it is tested in Count mode (the intermittent deadlock:
//! it only hangs once the pool is dry). Every test runs under a watchdog
//! that aborts the process after 60 s, so a missing report fails the test
//! instead of hanging CI. The report mode is process-wide: the tests of this
//! binary take turns ([`serial`]).

mod common;

use common::*;
use kvfree_rcu::context::{self, CHECKS, ReportMode};
use kvfree_rcu::{GracePeriod, KvfreeRcu, Rcu};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

/// One test at a time: each sets the process-wide report mode it needs.
fn serial(mode: ReportMode) -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    context::set_report_mode(mode);
    turn
}

/// How a test enters a read-side critical section of a backend: runs `body`
/// inside one.
type Inside<'a> = &'a dyn Fn(&mut dyn FnMut());

fn panic_message(err: &(dyn std::any::Any + Send)) -> String {
    err.downcast_ref::<&str>()
        .map(|m| m.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

const ILLEGAL: &str = "Illegal wait for a grace period";

/// Outside any section: `_mightsleep`, `barrier` and drop report nothing.
fn nothing_outside<G: GracePeriod>(gp: Arc<G>) {
    let _turn = serial(ReportMode::Panic);
    let counter = DropCounter::leak();
    let before = context::thread_violations();
    let service = KvfreeRcu::builder_with(gp).build();
    // SAFETY: from Box::leak, never published, retired once.
    unsafe { service.kvfree_rcu_mightsleep(Plain::boxed(1, counter)) };
    service.barrier();
    drop(service);
    assert_eq!(counter.dropped(), 1);
    assert_eq!(context::thread_violations(), before);
}

/// `_mightsleep` inside a section is reported even though a page is
/// available and it does not wait.
fn mightsleep_inside_is_reported<G: GracePeriod>(gp: Arc<G>, inside: Inside<'_>) {
    let _turn = serial(ReportMode::Count);
    let counter = DropCounter::leak();
    let service = KvfreeRcu::builder_with(gp).build();
    let before = context::thread_violations();
    inside(&mut || {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu_mightsleep(Plain::boxed(2, counter)) };
    });
    assert_eq!(context::thread_violations(), before + u64::from(CHECKS));
    service.barrier();
    assert_eq!(counter.dropped(), 1);
    assert_eq!(context::thread_violations(), before + u64::from(CHECKS));
}

/// Retires one object (outside any section), so that a barrier or drop
/// that follows has a grace period to wait for.
fn retire_one<G: GracePeriod>(service: &KvfreeRcu<G>) {
    // SAFETY: from Box::leak, never published, retired once.
    unsafe { service.kvfree_rcu_mightsleep(Plain::boxed(3, DropCounter::leak())) };
}

/// `barrier` inside a section is reported before it waits (here: a panic).
fn barrier_inside_is_reported<G: GracePeriod>(gp: Arc<G>, inside: Inside<'_>) {
    let _turn = serial(ReportMode::Panic);
    let service = KvfreeRcu::builder_with(gp).build();
    retire_one(&service);
    let before = context::thread_violations();
    let mut outcome = Ok(());
    inside(&mut || outcome = catch_unwind(AssertUnwindSafe(|| service.barrier())));
    let err = outcome.expect_err("barrier inside a read section must be reported");
    assert!(
        panic_message(&*err).contains(ILLEGAL),
        "{:?}",
        panic_message(&*err)
    );
    assert_eq!(context::thread_violations(), before + 1);
    service.barrier(); // outside: fine
}

/// Dropping the service inside a section is reported before it waits.
fn drop_inside_is_reported<G: GracePeriod>(gp: Arc<G>, inside: Inside<'_>) {
    let _turn = serial(ReportMode::Panic);
    let before = context::thread_violations();
    let mut service = Some(KvfreeRcu::builder_with(gp).build());
    retire_one(service.as_ref().unwrap());
    let mut outcome = Ok(());
    inside(&mut || outcome = catch_unwind(AssertUnwindSafe(|| drop(service.take()))));
    let err = outcome.expect_err("dropping the service inside a read section must be reported");
    assert!(
        panic_message(&*err).contains(ILLEGAL),
        "{:?}",
        panic_message(&*err)
    );
    assert_eq!(context::thread_violations(), before + 1);
}

fn rcu_inside(rcu: &Rcu) -> impl Fn(&mut dyn FnMut()) + '_ {
    move |body: &mut dyn FnMut()| {
        let _section = rcu.read_lock();
        body();
    }
}

#[test]
fn rcu_nothing_is_reported_outside_a_section() {
    let _watchdog = common::Watchdog::arm("rcu_nothing_is_reported_outside_a_section");
    nothing_outside(Arc::new(Rcu::new()));
}

#[test]
fn rcu_nothing_is_reported_inside_a_section_of_another_domain() {
    let _watchdog =
        common::Watchdog::arm("rcu_nothing_is_reported_inside_a_section_of_another_domain");
    let other = Rcu::new();
    let _section = other.read_lock();
    nothing_outside(Arc::new(Rcu::new()));
}

#[test]
fn rcu_mightsleep_inside_a_section_is_reported() {
    let _watchdog = common::Watchdog::arm("rcu_mightsleep_inside_a_section_is_reported");
    let rcu = Arc::new(Rcu::new());
    mightsleep_inside_is_reported(rcu.clone(), &rcu_inside(&rcu));
}

#[test]
fn rcu_barrier_inside_a_section_is_reported() {
    if !CHECKS {
        return; // nothing reports it: it would wait forever
    }
    let _watchdog = common::Watchdog::arm("rcu_barrier_inside_a_section_is_reported");
    let rcu = Arc::new(Rcu::new());
    barrier_inside_is_reported(rcu.clone(), &rcu_inside(&rcu));
}

#[test]
fn rcu_drop_inside_a_section_is_reported() {
    if !CHECKS {
        return; // nothing reports it: it would wait forever
    }
    let _watchdog = common::Watchdog::arm("rcu_drop_inside_a_section_is_reported");
    let rcu = Arc::new(Rcu::new());
    drop_inside_is_reported(rcu.clone(), &rcu_inside(&rcu));
}

#[cfg(feature = "crossbeam-epoch")]
mod crossbeam_epoch_backend {
    use super::*;
    use kvfree_rcu::gp::EpochGracePeriod;

    fn pinned(body: &mut dyn FnMut()) {
        let _pinned = crossbeam_epoch::pin();
        body();
    }

    #[test]
    fn epoch_nothing_is_reported_outside_a_section() {
        let _watchdog = common::Watchdog::arm("epoch_nothing_is_reported_outside_a_section");
        nothing_outside(Arc::new(EpochGracePeriod::new()));
    }

    #[test]
    fn epoch_mightsleep_while_pinned_is_reported() {
        let _watchdog = common::Watchdog::arm("epoch_mightsleep_while_pinned_is_reported");
        mightsleep_inside_is_reported(Arc::new(EpochGracePeriod::new()), &pinned);
    }

    #[test]
    fn epoch_barrier_while_pinned_is_reported() {
        if !CHECKS {
            return; // nothing reports it: it would wait forever
        }
        let _watchdog = common::Watchdog::arm("epoch_barrier_while_pinned_is_reported");
        barrier_inside_is_reported(Arc::new(EpochGracePeriod::new()), &pinned);
    }

    #[test]
    fn epoch_drop_while_pinned_is_reported() {
        if !CHECKS {
            return; // nothing reports it: it would wait forever
        }
        let _watchdog = common::Watchdog::arm("epoch_drop_while_pinned_is_reported");
        drop_inside_is_reported(Arc::new(EpochGracePeriod::new()), &pinned);
    }
}
