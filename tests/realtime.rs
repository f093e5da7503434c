//! Real-time retiring while the worker is stalled.
//!
//! Two threads (one under `SCHED_FIFO` when the process may use it, as in CI
//! running as root) retire preallocated headed and head-less objects at full
//! speed inside an `AtomicSection` while the worker is paused for at least a
//! second. The caches run dry, so the retire calls must take their
//! fallbacks (headed: the head lists; head-less: `Err` at once) instead of
//! waiting for the worker.
//!
//! Checked: zero allocations and zero checker reports on the retiring
//! threads (`CheckedAlloc` is the global allocator), the fallbacks were
//! used, nothing is lost once the worker resumes (drop counters after
//! `barrier()`), and the fast path works again after one worker round.
//! Call durations are measured and printed, never asserted: this is a noisy
//! shared 2-core machine; latency belongs in the benches.

mod common;

use common::*;
use kvfree_rcu::context::{self, AtomicSection, ReportMode};
use kvfree_rcu::{CheckedAlloc, KvfreeRcu, Rcu};
use std::ptr::NonNull;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CheckedAlloc = CheckedAlloc::system();

/// Tries to make the calling thread SCHED_FIFO; returns whether it worked.
fn try_sched_fifo() -> bool {
    // SAFETY: a zeroed sched_param is valid; we set its only field.
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = 10;
    // SAFETY: `pthread_self()` is the calling thread; `param` is a valid
    // pointer for the call.
    let rc = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
    rc == 0
}

struct RunReport {
    fifo: bool,
    calls: u64,
    returned: Vec<NonNull<Plain>>,
    allocations: u64,
    violations: u64,
    max_call: Duration,
    over_10us: u64,
    over_100us: u64,
}

// SAFETY: the returned pointers are owned boxes of a `Send` type.
unsafe impl Send for RunReport {}

/// Retires `headed` and `plain` alternately in an atomic section; Err'd
/// head-less objects go into spare capacity (no allocation).
fn retire_all(
    service: &KvfreeRcu,
    headed: Vec<NonNull<Headed>>,
    plain: Vec<NonNull<Plain>>,
    fifo: bool,
) -> RunReport {
    let mut returned = Vec::with_capacity(plain.len());
    let (mut max_call, mut over_10us, mut over_100us, mut calls) = (Duration::ZERO, 0, 0, 0);
    let allocations = context::thread_allocations();
    let violations = context::thread_violations();
    {
        let _rt = AtomicSection::enter();
        for (h, p) in headed.iter().zip(&plain) {
            let t0 = Instant::now();
            // SAFETY: from Box::leak, never published, retired once.
            unsafe { service.kvfree_rcu(*h) };
            // SAFETY: as above; Err hands the object back.
            let r = unsafe { service.try_kvfree_rcu(*p) };
            let took = t0.elapsed() / 2;
            if let Err(p) = r {
                returned.push(p); // within capacity: no allocation
            }
            calls += 2;
            max_call = max_call.max(took);
            over_10us += u64::from(took > Duration::from_micros(10));
            over_100us += u64::from(took > Duration::from_micros(100));
        }
    }
    RunReport {
        fifo,
        calls,
        returned,
        allocations: context::thread_allocations() - allocations,
        violations: context::thread_violations() - violations,
        max_call,
        over_10us,
        over_100us,
    }
}

#[test]
fn retiring_at_full_rate_while_the_worker_is_stalled_never_blocks_and_loses_nothing() {
    context::set_report_mode(ReportMode::Count);
    let counter = DropCounter::leak();
    let rcu = Arc::new(Rcu::new());
    let service = Arc::new(KvfreeRcu::new(rcu.clone()));
    let per_thread = scaled(60_000);
    let threads = 2;
    service.pause_worker();
    let stalled_at = Instant::now();
    let go = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (service, rcu, go) = (service.clone(), rcu.clone(), go.clone());
            std::thread::spawn(move || {
                rcu.register_current_thread().unwrap();
                let fifo = t == 0 && try_sched_fifo();
                let headed: Vec<_> = (0..per_thread)
                    .map(|i| Headed::boxed(i as u64, counter))
                    .collect();
                let plain: Vec<_> = (0..per_thread)
                    .map(|i| Plain::boxed(i as u64, counter))
                    .collect();
                go.wait();
                retire_all(&service, headed, plain, fifo)
            })
        })
        .collect();
    let reports: Vec<RunReport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    // Keep the worker stalled for at least a second in all.
    if let Some(rest) = Duration::from_secs(1).checked_sub(stalled_at.elapsed()) {
        std::thread::sleep(rest);
    }
    let stalled = service.stats();
    let stall = stalled_at.elapsed();

    for (t, r) in reports.iter().enumerate() {
        println!(
            "realtime: thread {t} ({}): {} calls while the worker was stalled; {} Err; max call {:?}, >10us: {}, >100us: {}",
            match (r.fifo, t) {
                (true, _) => "SCHED_FIFO",
                (false, 0) => "normal priority: SCHED_FIFO not permitted",
                (false, _) => "normal priority",
            },
            r.calls,
            r.returned.len(),
            r.max_call,
            r.over_10us,
            r.over_100us
        );
        assert_eq!(r.allocations, 0, "thread {t}: a retire call allocated");
        assert_eq!(r.violations, 0, "thread {t}: the checker fired");
        assert_eq!(r.calls, 2 * per_thread as u64);
    }
    println!("realtime: worker stalled {stall:?}; stats at the end of the stall: {stalled:?}");
    assert!(
        stalled.queued_heads > 0,
        "headed fallback used: {stalled:?}"
    );
    assert!(
        stalled.try_failed > 0,
        "head-less calls returned Err: {stalled:?}"
    );

    // Recovery: the worker runs again and frees everything.
    service.resume_worker();
    let mut retired = 2 * threads * per_thread;
    for r in reports {
        for p in r.returned {
            // SAFETY: handed back by Err; ordinary context; retired once.
            unsafe { service.kvfree_rcu_mightsleep(p) };
        }
    }
    service.barrier();
    assert_eq!(counter.dropped(), retired, "nothing lost across the stall");
    // The fast path works again after a round (the retire path asked for a refill).
    service.run_once();
    let p = Plain::boxed(0, counter);
    // SAFETY: from Box::leak, never published, retired once.
    unsafe { service.try_kvfree_rcu(p) }.expect("refilled: the page path works again");
    retired += 1;
    service.barrier();
    assert_eq!(counter.dropped(), retired);
    assert_eq!(service.stats().pending, 0);
}
