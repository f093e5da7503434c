//! Parallel reclaim (issue 11, target 6): when a backlog builds, the worker
//! starts helper threads that free large batches with whoever reaps them.
//! - every object is freed exactly once in a multi-producer flood with
//!   helpers running (headed and head-less objects; the objects poison
//!   themselves, so a second drop fails);
//! - a destructor running on a helper that calls back into its own service
//!   (`barrier`, `shrink`, `run_once`) returns at once instead of
//!   deadlocking, and one that drops the last handle of the service frees
//!   everything;
//! - dropping a service whose helpers are freeing loses nothing;
//! - a destructor that panics on a helper aborts the process, as on the
//!   worker (in a child process: this test binary again);
//! - a backlog past the dealing threshold is freed once, by the helpers it
//!   is dealt to, and by a worker with no helper alone;
//! - `max_reclaim_helpers` out of range is an error naming the setting;
//! - `reclaim_slice` outside 100 µs ..= 100 ms is an error naming the setting;
//! - `reclaim_priority`: a nice value outside -20..=19 is an error naming
//!   the setting; on Linux the worker and its helpers take the nice value
//!   asked for, and one the OS refuses (a lower value without
//!   `CAP_SYS_NICE`) is `BuildError::Priority`, with no worker left
//!   running; elsewhere `Nice` is `BuildError::Priority` (`Unsupported`).
//!
//! Helpers are started the way the worker starts them: a large ready batch
//! (the worker paused while objects pile up, then resumed). No test depends
//! on timing: loops that wait for an event run under a watchdog.

mod common;

use common::*;
use kvfree_rcu::context::{self, CHECKS, ReportMode};
use kvfree_rcu::{BuildError, KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Objects retired while the worker is paused: one batch above the worker's
/// backlog threshold (64 Ki objects), so that reaping it starts a helper.
const BACKLOG: u64 = 100_000;

/// Objects past the backlog from which the worker deals its ready batches
/// to its helpers (512 Ki, `DEAL_BACKLOG` in `src/shared.rs`).
const PAST_DEALING: u64 = 640 * 1024;

fn service_with_helpers(name: &str, helpers: usize) -> KvfreeRcu {
    KvfreeRcu::builder(Arc::new(Rcu::new()))
        .thread_name(name)
        .max_reclaim_helpers(helpers)
        .build()
}

/// Whether this thread is one of the reclaim helpers of the service whose
/// worker is named `name` (helpers are named `{name}-h1`, `{name}-h2`, ...).
fn on_helper_of(name: &str) -> bool {
    std::thread::current().name().is_some_and(|n| {
        n.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with("-h"))
    })
}

/// Retires a backlog of `objects` objects while the worker is paused, then
/// resumes it and waits, with no barrier, until the worker's rounds (and
/// its helpers) have freed all of them.
fn pile_up_and_wait(service: &KvfreeRcu, objects: u64, counter: &'static DropCounter) {
    service.pause_worker();
    for i in 0..objects {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    service.resume_worker();
    while service.stats().pending > 0 {
        std::thread::yield_now();
    }
}

/// Makes the worker start helpers until `helpers` run: each time, a paused
/// worker lets a backlog pile up, and reaping it starts one more.
fn grow_helpers(service: &KvfreeRcu, helpers: u64, counter: &'static DropCounter) {
    while service.stats().reclaim_helpers < helpers {
        // The worker collects the pile in one batch, frees it after its
        // grace period, then starts a helper.
        pile_up_and_wait(service, BACKLOG, counter);
        let before = service.stats().reclaim_helpers;
        // One more round after the reap: wait until it has run (the round
        // that reaped the pile starts the helper right after it).
        let batches = service.stats().batches;
        // SAFETY: as above.
        unsafe { service.kvfree_rcu(Headed::boxed(0, counter)) };
        while service.stats().batches == batches && service.stats().reclaim_helpers == before {
            std::thread::yield_now();
        }
    }
    service.barrier();
}

#[test]
fn every_object_is_freed_once_in_a_flood_with_helpers() {
    let watchdog = Watchdog::arm("flood with helpers");
    let counter = DropCounter::leak();
    let service = service_with_helpers("flood", 3);
    grow_helpers(&service, 2, counter);
    let grown = counter.dropped();
    let producers = 4;
    let per_producer = scaled(50_000) as u64;
    let before = service.stats();
    // Rounds until the helpers took part in a free (a fork-join may finish
    // before a woken helper runs): each round is a flood from several
    // threads, then a barrier.
    let mut rounds = 0;
    loop {
        rounds += 1;
        std::thread::scope(|s| {
            for t in 0..producers {
                let service = &service;
                s.spawn(move || {
                    for i in 0..per_producer {
                        if i % 2 == 0 {
                            // SAFETY: from Box::leak, never published, retired once.
                            unsafe {
                                service.kvfree_rcu(Headed::boxed(t * per_producer + i, counter))
                            };
                        } else {
                            let plain = Plain::boxed(i, counter);
                            // SAFETY: as above; on `Err` the object is ours again.
                            if let Err(plain) = unsafe { service.try_kvfree_rcu(plain) } {
                                // SAFETY: as above; ordinary context.
                                unsafe { service.kvfree_rcu_mightsleep(plain) };
                            }
                        }
                    }
                });
            }
        });
        service.barrier();
        let expected = grown + rounds * (producers * per_producer) as usize;
        assert_eq!(counter.dropped(), expected, "each object freed once");
        if service.stats().freed_by_helpers > before.freed_by_helpers {
            break;
        }
    }
    let stats = service.stats();
    assert_eq!(stats.pending, 0, "{stats:?}");
    assert!(stats.reclaim_helpers >= 2, "{stats:?}");
    drop(service);
    drop(watchdog);
}

/// What destructors that ran on a helper saw (statics: a leak would trip
/// LeakSanitizer).
static ON_HELPER: AtomicUsize = AtomicUsize::new(0);
static REENTRY_REPORTS: AtomicU64 = AtomicU64::new(0);
static REENTRY_FREED: AtomicU64 = AtomicU64::new(0);

/// Calls back into the service that frees it when its destructor runs on
/// one of that service's helpers.
struct CallsBackOnHelper {
    head: RcuHead,
    service: Arc<KvfreeRcu>,
}
impl_rcu_headed!(CallsBackOnHelper, head);

impl Drop for CallsBackOnHelper {
    fn drop(&mut self) {
        if !on_helper_of("reentry") {
            return;
        }
        let before = context::thread_violations();
        // Each would wait for the free running on this thread: each returns
        // at once instead.
        self.service.barrier();
        self.service.shrink();
        let report = self.service.run_once();
        REENTRY_FREED.fetch_add(report.freed, Ordering::SeqCst);
        REENTRY_REPORTS.fetch_add(context::thread_violations() - before, Ordering::SeqCst);
        ON_HELPER.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_destructor_on_a_helper_can_call_back_into_its_own_service() {
    let watchdog = Watchdog::arm("re-entry from a helper");
    // Count, not Panic: the report is expected, and must not unwind out of
    // a destructor (which would abort).
    context::set_report_mode(ReportMode::Count);
    let counter = DropCounter::leak();
    let service = Arc::new(service_with_helpers("reentry", 2));
    grow_helpers(&service, 2, counter);
    let mut retired = 0;
    while ON_HELPER.load(Ordering::SeqCst) == 0 {
        // A batch large enough to be shared with the helpers, freed by
        // this thread's barrier (or the worker).
        service.pause_worker();
        for _ in 0..BACKLOG {
            let x = NonNull::from(Box::leak(Box::new(CallsBackOnHelper {
                head: RcuHead::new(),
                service: service.clone(),
            })));
            // SAFETY: from Box::leak, never published, retired once.
            unsafe { service.kvfree_rcu(x) };
            retired += 1;
        }
        service.resume_worker();
        service.barrier();
    }
    assert_eq!(service.stats().pending, 0);
    let calls = ON_HELPER.load(Ordering::SeqCst) as u64;
    assert_eq!(
        REENTRY_FREED.load(Ordering::SeqCst),
        0,
        "run_once did no round"
    );
    assert_eq!(
        REENTRY_REPORTS.load(Ordering::SeqCst),
        3 * calls * u64::from(CHECKS),
        "each re-entry reported in checked builds"
    );
    assert!(retired > 0);
    let service = Arc::into_inner(service).expect("every object freed: the last handle");
    drop(service);
    drop(watchdog);
}

/// Owns the last handle of the service that frees it, and drops it.
struct OwnsItsService {
    head: RcuHead,
    service: Mutex<Option<KvfreeRcu>>,
    ran_on_helper: &'static AtomicBool,
    ran: &'static AtomicBool,
}
impl_rcu_headed!(OwnsItsService, head);

impl Drop for OwnsItsService {
    fn drop(&mut self) {
        self.ran_on_helper
            .store(on_helper_of("owned"), Ordering::SeqCst);
        drop(self.service.lock().unwrap().take());
        self.ran.store(true, Ordering::SeqCst);
    }
}

#[test]
fn dropping_a_service_while_its_helpers_free_loses_nothing() {
    let watchdog = Watchdog::arm("drop with helpers");
    let counter = DropCounter::leak();
    // An ordinary drop: the worker's exit barrier and drop's own free
    // everything, the helpers are stopped and joined.
    let service = service_with_helpers("dropped", 2);
    grow_helpers(&service, 2, counter);
    let grown = counter.dropped();
    service.pause_worker();
    for i in 0..BACKLOG {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    service.resume_worker();
    drop(service);
    assert_eq!(counter.dropped(), grown + BACKLOG as usize, "nothing lost");
    drop(watchdog);
}

#[test]
fn a_service_dropped_by_a_destructor_on_its_helper_frees_everything() {
    let watchdog = Watchdog::arm("drop from a helper");
    context::set_report_mode(ReportMode::Count);
    static RAN_ON_HELPER: AtomicBool = AtomicBool::new(false);
    // Services until the owner's destructor ran on a helper (it may run on
    // the worker instead: both must free everything).
    loop {
        static RAN: AtomicBool = AtomicBool::new(false);
        RAN.store(false, Ordering::SeqCst);
        let counter = DropCounter::leak();
        let service = service_with_helpers("owned", 2);
        grow_helpers(&service, 2, counter);
        let grown = counter.dropped();
        service.pause_worker();
        let half = BACKLOG / 2;
        for i in 0..half {
            // SAFETY: from Box::leak, never published, retired once.
            unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
        }
        let owner = NonNull::from(Box::leak(Box::new(OwnsItsService {
            head: RcuHead::new(),
            service: Mutex::new(Some(service)),
            ran_on_helper: &RAN_ON_HELPER,
            ran: &RAN,
        })));
        // SAFETY: the owner is unpublished and retired once, through the
        // service it owns; this thread holds the owner's lock until its last
        // call through it returned (the destructor takes the lock), and
        // never touches the owner afterwards. The other objects: from
        // Box::leak, never published, retired once.
        unsafe {
            let guard = owner.as_ref().service.lock().unwrap();
            let service = guard.as_ref().unwrap();
            service.kvfree_rcu(owner);
            for i in half..BACKLOG {
                service.kvfree_rcu(Headed::boxed(i, counter));
            }
            service.resume_worker();
            drop(guard);
        }
        // The service is gone once the owner has run and the detached
        // worker has freed the rest.
        while !(RAN.load(Ordering::SeqCst) && counter.dropped() == grown + BACKLOG as usize) {
            std::thread::yield_now();
        }
        if RAN_ON_HELPER.load(Ordering::SeqCst) {
            break;
        }
    }
    drop(watchdog);
}

#[test]
fn max_reclaim_helpers_out_of_range_names_the_setting() {
    let err = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .max_reclaim_helpers(65)
        .try_build()
        .expect_err("above the maximum");
    let BuildError::Setting(setting) = &err else {
        panic!("{err}")
    };
    assert_eq!(setting.setting(), "max_reclaim_helpers");
    let msg = err.to_string();
    assert!(
        msg.contains("max_reclaim_helpers") && msg.contains("0..=64"),
        "{msg}"
    );
    // The limits are allowed; 0 means the worker frees alone.
    for helpers in [0, 64] {
        let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
            .max_reclaim_helpers(helpers)
            .build();
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(0, DropCounter::leak())) };
        service.barrier();
        assert_eq!(service.stats().reclaim_helpers, 0, "no backlog, no helper");
    }
}

#[test]
fn a_worker_that_may_not_start_helpers_frees_alone() {
    let watchdog = Watchdog::arm("no helpers");
    let counter = DropCounter::leak();
    let service = service_with_helpers("alone", 0);
    // A backlog that would start a helper, then one past the dealing
    // threshold: with no helper the worker does not deal (nobody would
    // free the dealt batches but its few bites a round), it frees alone.
    pile_up_and_wait(&service, BACKLOG, counter);
    pile_up_and_wait(&service, PAST_DEALING, counter);
    let stats = service.stats();
    assert_eq!((stats.reclaim_helpers, stats.freed_by_helpers), (0, 0));
    assert_eq!(counter.dropped(), (BACKLOG + PAST_DEALING) as usize);
    drop(watchdog);
}

/// A worker behind by more than `PAST_DEALING` objects with a helper running
/// deals the ready batches to it and frees only a few bites a round itself
/// (`Reaper::Dealer`); the helper frees the rest, each object once, and
/// nothing waits for a barrier.
#[test]
fn a_backlog_dealt_to_the_helpers_is_freed_once() {
    let watchdog = Watchdog::arm("dealt backlog");
    let counter = DropCounter::leak();
    let service = service_with_helpers("dealt", 1);
    grow_helpers(&service, 1, counter);
    let before = (counter.dropped(), service.stats());
    pile_up_and_wait(&service, PAST_DEALING, counter);
    let stats = service.stats();
    assert_eq!(counter.dropped() - before.0, PAST_DEALING as usize);
    assert_eq!(stats.freed - before.1.freed, PAST_DEALING, "{stats:?}");
    assert!(
        stats.freed_by_helpers > before.1.freed_by_helpers,
        "the helper freed nothing: {stats:?}"
    );
    drop(watchdog);
}

/// Panics in its destructor when that runs on a helper of the service whose
/// worker is named "panics".
#[cfg(unix)]
struct PanicsOnHelper {
    head: RcuHead,
}
#[cfg(unix)]
impl_rcu_headed!(PanicsOnHelper, head);

#[cfg(unix)]
impl Drop for PanicsOnHelper {
    fn drop(&mut self) {
        if on_helper_of("panics") {
            panic!("a destructor run by a reclaim helper panics");
        }
    }
}

#[cfg(unix)]
const CHILD: &str = "KVFREE_RECLAIM_TEST_CHILD";

#[cfg(unix)]
#[test]
fn a_destructor_that_panics_on_a_helper_aborts_the_process() {
    if std::env::var_os(CHILD).is_some() {
        // The child: batches shared with the helpers until a destructor
        // runs (and panics) on one; that must abort the process. The
        // watchdog turns a hang (a helper that died, its chunk never given
        // back) into an abort with another message.
        let _watchdog = Watchdog::arm("panicking destructor on a helper");
        std::panic::set_hook(Box::new(|_| {}));
        let service = service_with_helpers("panics", 2);
        grow_helpers(&service, 2, DropCounter::leak());
        loop {
            service.pause_worker();
            for _ in 0..BACKLOG {
                let x = NonNull::from(Box::leak(Box::new(PanicsOnHelper {
                    head: RcuHead::new(),
                })));
                // SAFETY: from Box::leak, never published, retired once.
                unsafe { service.kvfree_rcu(x) };
            }
            service.resume_worker();
            service.barrier();
        }
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "a_destructor_that_panics_on_a_helper_aborts_the_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the test binary again");
    let stderr = String::from_utf8_lossy(&out.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{:?}\n{stderr}",
        out.status
    );
    assert!(
        stderr.contains("a destructor panicked while the service freed"),
        "{stderr}"
    );
}

/// The `BuildError::Setting` that `builder.try_build()` returns, and the
/// error's message.
fn setting_error(builder: kvfree_rcu::Builder<Rcu>) -> (kvfree_rcu::SettingError, String) {
    let err = builder.try_build().unwrap_err();
    let BuildError::Setting(setting) = &err else {
        panic!("{err}")
    };
    (setting.clone(), err.to_string())
}

/// A requested reclaim slice outside the kernel's bounds is an error
/// naming the setting; the bounds and `SchedulerDefault` build.
#[test]
fn reclaim_slice_out_of_range_names_the_setting() {
    use kvfree_rcu::ReclaimSlice;
    use std::time::Duration;
    for slice in [Duration::from_micros(99), Duration::from_millis(101)] {
        let (setting, msg) = setting_error(
            KvfreeRcu::builder(Arc::new(Rcu::new())).reclaim_slice(ReclaimSlice::Requested(slice)),
        );
        assert_eq!(setting.setting(), "reclaim_slice");
        assert!(msg.contains("100µs..=100ms"), "{msg}");
    }
    for slice in [
        ReclaimSlice::Requested(Duration::from_micros(100)),
        ReclaimSlice::Requested(Duration::from_millis(100)),
        ReclaimSlice::SchedulerDefault,
    ] {
        let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
            .reclaim_slice(slice)
            .try_build()
            .expect("a slice within bounds builds");
        service.barrier();
    }
}

/// A nice value outside the kernel's range is an error naming the setting.
#[test]
fn reclaim_priority_out_of_range_names_the_setting() {
    use kvfree_rcu::ReclaimPriority;
    for nice in [-21, 20] {
        let (setting, msg) = setting_error(
            KvfreeRcu::builder(Arc::new(Rcu::new())).reclaim_priority(ReclaimPriority::Nice(nice)),
        );
        assert_eq!(setting.setting(), "reclaim_priority");
        assert!(msg.contains("-20..=19"), "{msg}");
    }
}

/// The worker takes the nice value as it starts, and the helpers it starts
/// take it too; everything retired is freed.
#[cfg(target_os = "linux")]
#[test]
fn the_worker_and_its_helpers_take_the_nice_value() {
    use kvfree_rcu::ReclaimPriority;
    let _watchdog = Watchdog::arm("the_worker_and_its_helpers_take_the_nice_value");
    // Higher than ours: needs no privilege.
    let nice = (own_nice() + 2).min(19);
    let name = "kvprio-take";
    let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .thread_name(name)
        .max_reclaim_helpers(1)
        .reclaim_priority(ReclaimPriority::Nice(i8::try_from(nice).unwrap()))
        .build();
    let counter = DropCounter::leak();
    grow_helpers(&service, 1, counter);
    // The helper counts as started before its thread runs: wait until it
    // has freed something, so it has set its name and its nice value (a
    // thread's name is its creator's until it sets its own).
    while service.stats().freed_by_helpers == 0 {
        pile_up_and_wait(&service, BACKLOG, counter);
    }
    let threads = nice_of_threads(name);
    assert_eq!(
        threads,
        [(name.to_owned(), nice), (format!("{name}-h1"), nice)],
        "the worker and its helper at nice {nice}"
    );
    let retired = counter.dropped();
    drop(service);
    assert_eq!(counter.dropped(), retired);
    assert!(retired as u64 >= BACKLOG);
}

/// Drops `CAP_SYS_NICE` from the calling thread's effective capabilities
/// (capabilities are per thread on Linux; threads it spawns inherit the
/// result). A thread without the capability is unchanged.
#[cfg(target_os = "linux")]
fn drop_own_cap_sys_nice() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_SYS_NICE: u32 = 23;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget(2) with version 3 writes two `Data` (the size of
    // `data`) for pid 0, the calling thread.
    let got = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    assert_eq!(got, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_SYS_NICE);
    // SAFETY: capset(2) with version 3 reads two `Data` for pid 0, the
    // calling thread; dropping an effective capability is always allowed.
    let set = unsafe { libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) };
    assert_eq!(set, 0, "capset: {}", std::io::Error::last_os_error());
}

/// A nice value the OS refuses is `BuildError::Priority`, named in the
/// message with its cause, and no worker is left running.
#[cfg(target_os = "linux")]
#[test]
fn a_refused_priority_is_an_error_and_no_worker_runs() {
    use kvfree_rcu::ReclaimPriority;
    let name = "kvprio-refused";
    std::thread::spawn(move || {
        drop_own_cap_sys_nice();
        let lower = own_nice() - 1;
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit` into `limit`.
        let got = unsafe { libc::getrlimit(libc::RLIMIT_NICE, &raw mut limit) };
        assert_eq!(got, 0, "getrlimit: {}", std::io::Error::last_os_error());
        // RLIMIT_NICE allows nice values down to 20 - its value.
        let allowed_down_to = 20 - i64::try_from(limit.rlim_cur).unwrap_or(i64::MAX).min(40);
        if lower < -20 || i64::from(lower) >= allowed_down_to {
            eprintln!("skipped: this process may take nice {lower} without CAP_SYS_NICE");
            return;
        }
        let requested = ReclaimPriority::Nice(i8::try_from(lower).unwrap());
        let err = KvfreeRcu::builder(Arc::new(Rcu::new()))
            .thread_name(name)
            .reclaim_priority(requested)
            .try_build()
            .expect_err("a lower nice value without CAP_SYS_NICE");
        let BuildError::Priority {
            requested: what,
            error,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(*what, requested);
        assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("CAP_SYS_NICE") && msg.contains("Nice("),
            "{msg}"
        );
        // The refused worker was joined before `try_build` returned, but
        // the kernel may list an exited thread in /proc a moment longer
        // (pthread_join returns once its tid is cleared, early in its
        // exit): a thread left running would stay there for good.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !nice_of_threads(name).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(nice_of_threads(name), [], "the refused worker still runs");
        // A manual service has no worker: the setting has no effect.
        let manual = KvfreeRcu::builder(Arc::new(Rcu::new()))
            .manual()
            .reclaim_priority(requested)
            .try_build()
            .expect("no worker, nothing to refuse");
        manual.barrier();
    })
    .join()
    .unwrap();
}

/// Elsewhere a nice value is the whole process's: `Nice` is refused.
#[cfg(not(target_os = "linux"))]
#[test]
fn nice_is_refused_outside_linux() {
    use kvfree_rcu::ReclaimPriority;
    let err = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .reclaim_priority(ReclaimPriority::Nice(0))
        .try_build()
        .unwrap_err();
    let BuildError::Priority { error, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(error.kind(), std::io::ErrorKind::Unsupported, "{err}");
}
