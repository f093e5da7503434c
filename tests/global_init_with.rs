//! `init_global_with`: the process-wide service created with settings of
//! the caller's own.
//! - settings that cannot build (out of range, `manual`) are
//!   `GlobalInitError::Build` and create nothing, so a later call can still
//!   configure the service;
//! - valid settings create it: `global()` is that service, its worker runs
//!   with them (Linux: the nice value asked for, read back from
//!   `/proc/self/task/*/stat`), and it frees what is retired through the
//!   free functions;
//! - once it exists, a second call is `GlobalInitError::AlreadyCreated`;
//! - a forked child that calls `init_global()` gets a worker with the same
//!   settings (Linux: the same nice value).
//!
//! Its own test binary, one test: the global service is the process's, and
//! the order of the steps is the point.

mod common;

use kvfree_rcu::{BuildError, GlobalInitError, ReclaimPriority};
use std::ptr::NonNull;
use std::time::Duration;

/// The nice values of this process's threads named `name` (Linux shows
/// the first 15 bytes of a name).
#[cfg(target_os = "linux")]
fn nice_of_threads_named(name: &str) -> Vec<i32> {
    let shown = &name[..name.len().min(15)];
    common::nice_of_threads(shown)
        .into_iter()
        .filter(|(comm, _)| comm == shown)
        .map(|(_, nice)| nice)
        .collect()
}

/// Retires `n` values through the free functions and waits for the worker
/// to free them (no `barrier`: only the worker frees here).
fn retire_and_wait_for_the_worker(n: u64) {
    let service = kvfree_rcu::global();
    let before = service.stats().freed;
    for i in 0..n {
        let p = NonNull::from(Box::leak(Box::new(i)));
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { kvfree_rcu::kvfree_rcu_mightsleep(p) };
    }
    while service.stats().freed < before + n {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn the_process_wide_service_takes_the_callers_settings() {
    let _watchdog = common::Watchdog::arm("the_process_wide_service_takes_the_callers_settings");

    // Settings that cannot build create nothing.
    let err = kvfree_rcu::init_global_with(|b| b.reclaim_priority(ReclaimPriority::Nice(20)))
        .unwrap_err();
    let GlobalInitError::Build(BuildError::Setting(setting)) = &err else {
        panic!("{err}")
    };
    assert_eq!(setting.setting(), "reclaim_priority");
    let err = kvfree_rcu::init_global_with(|b| b.manual()).unwrap_err();
    let GlobalInitError::Build(BuildError::Setting(setting)) = &err else {
        panic!("{err}")
    };
    assert_eq!(setting.setting(), "manual");
    assert!(err.to_string().contains("worker"), "{err}");

    // Valid settings create it. A higher nice value needs no privilege;
    // where nice values are not per thread it is refused, and the defaults
    // are tested instead.
    let nice = (common::own_nice() + 2).min(19);
    let name = "kvglobal-nice";
    let created = kvfree_rcu::init_global_with(|b| {
        b.thread_name(name)
            .max_reclaim_helpers(1)
            .reclaim_priority(ReclaimPriority::Nice(i8::try_from(nice).unwrap()))
    });
    let service = match created {
        Ok(service) => service,
        Err(GlobalInitError::Build(BuildError::Priority { error, .. }))
            if error.kind() == std::io::ErrorKind::Unsupported && !cfg!(target_os = "linux") =>
        {
            kvfree_rcu::init_global_with(|b| b.thread_name(name)).expect("the defaults build")
        }
        Err(e) => panic!("{e}"),
    };
    assert!(std::ptr::eq(service, kvfree_rcu::global()));
    #[cfg(target_os = "linux")]
    assert_eq!(
        nice_of_threads_named(name),
        [nice],
        "the worker's nice value"
    );
    retire_and_wait_for_the_worker(100);

    // Once it exists its settings stay.
    let again = kvfree_rcu::init_global_with(|b| b.max_reclaim_helpers(0));
    assert!(
        matches!(again, Err(GlobalInitError::AlreadyCreated)),
        "{again:?}"
    );
    assert!(again.unwrap_err().to_string().contains("already exists"),);
    assert!(std::ptr::eq(kvfree_rcu::init_global(), service));

    // A forked child's worker has the same settings.
    #[cfg(target_os = "linux")]
    {
        let status = common::fork_and_wait("the forked child's global worker", || {
            assert_eq!(
                nice_of_threads_named(name),
                [],
                "the parent's worker is not here"
            );
            kvfree_rcu::init_global(); // after fork(), as at start-up
            assert_eq!(nice_of_threads_named(name), [nice], "the child's worker");
            retire_and_wait_for_the_worker(100);
        });
        assert_eq!(status, 0, "the child failed (wait status {status})");
    }
}
