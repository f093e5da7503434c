//! The worker thread: polls while traffic flows, sleeps when there is none.
//!
//! While records are queued, batches wait for their grace period or a
//! refill is due ([`Shared::has_work`]), the worker runs a polling round
//! ([`Shared::round`], in `shared.rs`) every `poll_interval`: it collects
//! full pages and heads, refills the caches, advances the grace period (at
//! most once per `advance_interval`: each advance is a process-wide
//! barrier, `shared.rs`) and frees what is ready, and retire calls make no
//! syscall at all (the wake word stays `AWAKE`, see `wake.rs`). After a
//! drain interval with nothing to do it goes idle: it marks the word
//! `IDLE`, checks once more, and sleeps until the first retire call wakes
//! it, or [`IDLE_TIMEOUT`] passes.
//! An idle worker therefore costs one wake-up a second (a futex wait that
//! times out, a check of a few counters: a few microseconds of CPU).
//! With `Builder::manual()` there is no thread and the owner calls
//! `KvfreeRcu::run_once`. (After a round that panicked, records it had
//! taken may be leaked: they then count as queued forever, and the worker
//! polls instead of going idle; nothing is freed early or twice.)
//!
//! When a round's reap found a large ready batch (freeing fell behind), the
//! worker starts one more reclaim helper, up to `max_reclaim_helpers`; the
//! helpers free large batches' pages with whoever reaps them, and the
//! worker stops and joins them when it exits (`reclaim.rs`).
//!
//! The worker first takes its reclaim settings (the nice value, the time
//! slice, its affinity role). A nice value the OS refuses is reported to
//! `try_build`, which waits for the report only when one was asked for,
//! and the worker exits without a round (`priority.rs`).
//!
//! A worker must not die unnoticed. A round cannot panic on its own, but the
//! grace-period source is user code (see `shared.rs`). So the worker runs
//! each round under `catch_unwind`: a panicking round is counted
//! (`Stats::worker_panics`), the first one is reported on stderr with
//! `write(2)`, and the worker goes on with its next round.

use crate::gp::GracePeriod;
use crate::priority::ReclaimPriority;
use crate::reclaim::{self, Crew};
use crate::shared::{Shared, Trigger};
use crate::sync::Ordering;
use crate::wake::{IDLE_TIMEOUT, IdleEnd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the worker did not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// The thread could not be spawned.
    Spawn(std::io::Error),
    /// The OS refused the reclaim priority (`priority.rs`); the thread has
    /// exited without a round.
    Priority(std::io::Error),
}

/// Spawns the worker thread, named `name`, over `shared`; it starts up to
/// `reclaim.max_helpers` reclaim helpers when a backlog builds. With a
/// priority other than `Inherited`, returns only once the worker has taken
/// it (or exited because the OS refused it), so that the caller can report
/// a refusal instead of running at a priority nobody asked for.
pub(crate) fn spawn<G: GracePeriod>(
    shared: Arc<Shared<G>>,
    name: String,
    reclaim: reclaim::Settings,
) -> Result<std::thread::JoinHandle<()>, StartError> {
    // Capacity 1: the worker's one report never waits for the reader.
    let (report, started) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let applied = reclaim.become_reclaim_thread();
            let refused = applied.is_err();
            // The builder may have given up waiting (it never does): the
            // report is then nobody's.
            let _ = report.send(applied);
            if !refused {
                run(shared, name, reclaim);
            }
        })
        .map_err(StartError::Spawn)?;
    if reclaim.priority == ReclaimPriority::Inherited {
        // Nothing can be refused: no need to wait for the thread to run.
        return Ok(handle);
    }
    match started.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(refused)) => {
            // The thread exits without a round; joining it is quick.
            let _ = handle.join();
            Err(StartError::Priority(refused))
        }
        // The thread ended without a report: it panicked before its first
        // round (setting its priority does not panic), and `join` says why.
        Err(_) => match handle.join() {
            Ok(()) => unreachable!("the worker reports before it can return"),
            Err(panic) => std::panic::resume_unwind(panic),
        },
    }
}

/// The worker thread's body, once it has taken its reclaim settings.
fn run<G: GracePeriod>(shared: Arc<Shared<G>>, name: String, reclaim: reclaim::Settings) {
    // Declared first, dropped last: stops and joins the helpers once the
    // exit barrier below has run, or if the worker unwinds.
    let mut crew = Crew::new(shared.clone(), name, reclaim);
    // When the worker last had something to do.
    let mut last_busy = Instant::now();
    loop {
        // Acquire: pairs with the Release store of `stop` in
        // `KvfreeRcu::drop`, so what the dropping thread did before (its
        // last retires) happens before this exit barrier.
        if shared.stop.load(Ordering::Acquire) {
            // Free everything still queued before leaving: after a normal
            // drop this is quick (drop's own barrier finds nothing), after a
            // detached drop it is the only barrier there is.
            shared.barrier();
            return;
        }
        // Relaxed `paused`: a test switch with no data behind it. The word
        // stays AWAKE while paused: retire calls make no syscall.
        if shared.paused.load(Ordering::Relaxed) {
            shared
                .wake
                .nap(shared.timing.poll_interval.max(Duration::from_micros(100)));
            continue;
        }
        round_catching_panics(&shared, Trigger::Poll);
        crew.grow_if_backlogged();
        let now = Instant::now();
        if shared.has_work() {
            last_busy = now;
        } else if now.duration_since(last_busy) >= shared.timing.drain_interval {
            match shared
                .wake
                .sleep_while_idle(|| shared.has_work(), IDLE_TIMEOUT)
            {
                // Poll again for at least a drain interval.
                IdleEnd::Woken | IdleEnd::FoundWork => last_busy = Instant::now(),
                // One round (the safety net), then idle again if it finds
                // nothing: `last_busy` stays old.
                IdleEnd::TimedOut => {}
            }
            continue;
        }
        shared.wake.nap(shared.timing.poll_interval);
    }
}

/// A round on the worker thread: a panic is caught, counted and (the first
/// time) reported, and the worker goes on (see the module docs).
fn round_catching_panics<G: GracePeriod>(shared: &Shared<G>, trigger: Trigger) {
    if catch_unwind(AssertUnwindSafe(|| shared.round(trigger))).is_err() {
        shared.count_round_panic();
    }
}
