//! The worker thread: the loop that sleeps on the wake word and runs the
//! service's rounds ([`Shared::round`], in `shared.rs`).
//!
//! The thread sleeps on the wake word between rounds: `poll_interval` while
//! batches wait, `drain_interval` otherwise. With `Builder::manual()` there
//! is no thread and the owner calls `KvfreeRcu::run_once`.
//!
//! A worker must not die unnoticed. A round cannot panic on its own, but the
//! grace-period source is user code (see `shared.rs`). So the worker runs
//! each round under `catch_unwind`: a panicking round is counted
//! (`Stats::worker_panics`), the first one is reported on stderr with
//! `write(2)`, and the worker goes on with its next round.

use crate::gp::GracePeriod;
use crate::shared::{Shared, Trigger};
use crate::sync::Ordering;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

/// Spawns the worker thread, named `name`, over `shared`.
pub(crate) fn spawn<G: GracePeriod>(
    shared: Arc<Shared<G>>,
    name: String,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name)
        .spawn(move || run(shared))
}

/// The worker thread's body.
fn run<G: GracePeriod>(shared: Arc<Shared<G>>) {
    loop {
        // Relaxed `paused`: a test switch with no data behind it. Acquire
        // `stop`: as below.
        if shared.paused.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Acquire) {
            // Leave the wake word rung while paused: producers then see it
            // set and make no futex syscall per fallback.
            std::thread::sleep(shared.timing.poll_interval.max(Duration::from_micros(100)));
            continue;
        }
        let timeout = if shared.has_pending_batches() {
            shared.timing.poll_interval
        } else {
            shared.timing.drain_interval
        };
        let woken = shared.wake.wait(timeout);
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
        let trigger = if woken {
            shared.worker_wakeups.fetch_add(1, Ordering::Relaxed);
            Trigger::Rung
        } else {
            Trigger::Timer
        };
        round_catching_panics(&shared, trigger);
    }
}

/// A round on the worker thread: a panic is caught, counted and (the first
/// time) reported, and the worker goes on (see the module docs).
fn round_catching_panics<G: GracePeriod>(shared: &Shared<G>, trigger: Trigger) {
    if catch_unwind(AssertUnwindSafe(|| shared.round(trigger))).is_err() {
        let before = shared.worker_panics.fetch_add(1, Ordering::Relaxed);
        if before == 0 {
            crate::context::write_stderr(
                "kvfree-rcu: a worker round panicked; the worker goes on (counted in Stats::worker_panics)",
            );
        }
    }
}
