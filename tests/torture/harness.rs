//! The torture harness shared by `tests/torture.rs` (short, bounded by
//! iteration counts, run by CI) and `examples/torture.rs` (a soak bounded by
//! wall-clock time).
//!
//! In the style of the kernel's rcutorture: an RCU-protected table holds
//! objects of four types and sizes; readers traverse it inside read-side
//! critical sections with random delays (spins, `yield_now`, nested
//! sections); updaters replace elements and retire the old ones through
//! every retire call of the service (headed `kvfree_rcu`, `try_kvfree_rcu`
//! falling back to `kvfree_rcu_mightsleep`, `kvfree_rcu_with` with a custom
//! free function, some of them under a `RawSpinLock`); a maintenance thread
//! calls `barrier()`, `shrink()` and `run_once()`, injects page-allocation
//! failures and spawns short-lived threads that retire and exit. There are
//! more threads than cores.
//!
//! The checks, and where they live:
//! - freed exactly once: an object's `Drop` poisons its `magic` word and a
//!   second drop fails the run (`objects.rs`);
//! - never freed under a reader: readers check every object they reach for
//!   poison, a torn payload, and a *pipeline age* of 2 or more epoch steps
//!   since its unlink (`readers.rs`; the updaters stamp the age's origin,
//!   `updaters.rs`);
//! - nothing lost: after the final `barrier()`, per type, dropped = retired
//!   and created = retired + the table's elements, and the service has
//!   nothing pending; after the table is freed and the service dropped,
//!   dropped = created ([`run`], below).
//!
//! The other files: `config.rs` (what to run), `shared.rs` (the state the
//! threads share), `table.rs`, `threads.rs` (start and shutdown),
//! `maintenance.rs`, `report.rs` (progress line and summary), `rng.rs`,
//! `failure.rs`.
#![allow(dead_code, unreachable_pub, missing_docs)]

mod config;
mod failure;
mod maintenance;
mod objects;
mod readers;
mod report;
mod rng;
mod shared;
mod table;
mod threads;
mod updaters;

pub use config::Config;
#[allow(unused_imports)] // used by the test, not by the example (timed, not scaled)
pub use config::stress_scale;
pub use report::Summary;

use objects::TypeCounts;
use shared::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use threads::Threads;

/// Runs one torture session; panics on any failure, returns the summary.
pub fn run(config: &Config) -> Summary {
    let shared = Shared::new(config);
    let threads = Threads::spawn(&shared, config);
    let started = threads.start();
    if let Some(duration) = config.duration {
        run_until(&shared, &threads, config, started, started + duration);
        shared.stop_updaters.store(true, Ordering::Relaxed);
    }
    threads.join(&shared);
    finish(shared, config, started)
}

/// The soak: waits for the deadline, the first failure, or an updater that
/// stopped early, printing a progress line every `config.progress`.
fn run_until(
    shared: &Shared,
    threads: &Threads,
    config: &Config,
    started: Instant,
    deadline: Instant,
) {
    let mut next_report = config.progress.map(|p| started + p);
    while Instant::now() < deadline && !failure::has_failed() && !threads.any_updater_finished() {
        std::thread::sleep(Duration::from_millis(50));
        if let (Some(at), Some(p)) = (next_report, config.progress) {
            if Instant::now() >= at {
                report::print_progress(shared, started);
                next_report = Some(at + p);
            }
        }
    }
}

/// After every thread joined: the final checks, then frees what is left.
fn finish(shared: Arc<Shared>, config: &Config, started: Instant) -> Summary {
    // Everything retired must be freed by one barrier; then nothing is pending.
    shared.service.barrier();
    let stats = shared.service.stats();
    let shared = Arc::into_inner(shared).expect("every thread joined");
    let per_type = check_counts_after_barrier(&shared.counts, config.slots);
    assert_eq!(stats.pending, 0, "{stats:?}");
    let summary = Summary::collect(&shared, config, started, stats, per_type);
    assert_eq!(
        summary.ages[2], 0,
        "no reader saw an object older than one epoch step"
    );
    free_everything(shared);
    summary
}

/// Per type: every retired object freed exactly once, the table holds the
/// rest. Returns (type, created, retired, dropped) per type.
fn check_counts_after_barrier(
    counts: &TypeCounts,
    slots: usize,
) -> Vec<(&'static str, u64, u64, u64)> {
    let mut per_type = Vec::new();
    for (name, c) in counts.all() {
        let (created, retired, dropped) = (
            c.created.load(Ordering::SeqCst),
            c.retired.load(Ordering::SeqCst),
            c.dropped.load(Ordering::SeqCst),
        );
        assert_eq!(
            dropped, retired,
            "{name}: every retired object freed exactly once after barrier()"
        );
        assert_eq!(
            created,
            retired + slots as u64,
            "{name}: the table holds the rest"
        );
        per_type.push((name, created, retired, dropped));
    }
    per_type
}

/// Frees the table's last elements (no reader remains) and drops the
/// service; then every object ever created has been dropped.
fn free_everything(shared: Shared) {
    let Shared {
        table,
        service,
        counts,
        ..
    } = shared;
    table.free_linked();
    drop(service);
    for (name, c) in counts.all() {
        assert_eq!(
            c.dropped.load(Ordering::SeqCst),
            c.created.load(Ordering::SeqCst),
            "{name}: all objects freed"
        );
    }
}
