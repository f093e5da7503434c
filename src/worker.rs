//! The worker: the ordinary-context half of the service.
//!
//! One round ([`Shared::round`]) does, in order:
//! 1. refill the page caches, if the retire path asked (or at start-up),
//!    backing off exponentially (1 ms doubling to `max_refill_backoff`) after
//!    an allocation failure, so memory pressure slows refills instead of
//!    failing anything: the retire path has its fallbacks;
//! 2. collect a batch: full pages and heads when the retire path rang (a
//!    flood, or a fallback), and the open pages too when the drain interval
//!    has passed (so no record stays on an idle CPU) or the round is forced;
//! 3. advance the grace period while batches wait (non-blocking);
//! 4. free the batches whose grace period has ended, recycling their pages.
//!
//! The thread sleeps on the wake word between rounds: `poll_interval` while
//! batches wait, `drain_interval` otherwise. With `Builder::manual()` there
//! is no thread and the owner calls `KvfreeRcu::run_once`.
//!
//! A worker must not die unnoticed. A round cannot panic on its own (the
//! settings are validated by the builder, the backoff arithmetic saturates,
//! and a panicking user destructor aborts the process, see `drain.rs`), but
//! the grace-period source is user code. So the worker runs each round
//! under `catch_unwind`: a panicking round is counted
//! (`Stats::worker_panics`), the first one is reported on stderr with
//! `write(2)`, and the worker goes on with its next round. What the
//! panicking round had taken out of the queues may be leaked, never freed
//! early: a batch is freed only after its stamp polled complete. `barrier()`
//! never depends on the worker: it collects, advances and frees on the
//! caller's thread, so it cannot hang because the worker is stuck or gone
//! (a panicking grace-period source panics it instead, on the caller).

use crate::drain::OpenPages;
use crate::gp::GracePeriod;
use crate::service::Shared;
use crate::sync::{Ordering, lock};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The first wait after a failed refill; it doubles up to
/// `max_refill_backoff`.
const MIN_REFILL_BACKOFF: Duration = Duration::from_millis(1);

/// The worker's own state: refill backoff and drain timing.
#[derive(Debug)]
pub(crate) struct WorkerState {
    last_collect: Instant,
    refill_retry_at: Option<Instant>,
    refill_backoff: Duration,
    refill_pending: bool,
}

impl WorkerState {
    pub(crate) fn new() -> Self {
        WorkerState {
            last_collect: Instant::now(),
            refill_retry_at: None,
            refill_backoff: Duration::ZERO,
            refill_pending: true,
        }
    }
}

/// What one round did (returned by `KvfreeRcu::run_once`).
///
/// ```
/// use std::sync::Arc;
/// use kvfree_rcu::{KvfreeRcu, Rcu, RoundReport};
/// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
/// let report: RoundReport = service.run_once();
/// assert!(!report.refill_failed);
/// assert_eq!(report.freed, 0); // nothing was retired
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoundReport {
    /// Pages allocated into the caches.
    pub pages_refilled: usize,
    /// Whether a page allocation failed (the next refill backs off).
    pub refill_failed: bool,
    /// Pages and heads collected into a new batch.
    pub collected_pages: usize,
    /// Objects with embedded heads collected into a new batch.
    pub collected_heads: u64,
    /// Whether the grace period advanced.
    pub advanced: bool,
    /// Objects freed.
    pub freed: u64,
}

impl<G: GracePeriod> Shared<G> {
    /// One round of the worker's duty. `woken`: the retire path rang (a
    /// refill request or a flood): full pages and heads are collected at
    /// once. Open pages are collected when the drain interval has passed, or
    /// always with `force` (`run_once`).
    pub(crate) fn round(&self, woken: bool, force: bool) -> RoundReport {
        self.take_injected_round_panic();
        let mut report = RoundReport::default();
        let now = Instant::now();
        let collect_now = {
            let mut st = lock(&self.worker_state);
            // Swap: a request that lands during this round's refill sets the
            // flag again and is served next round.
            if self.refill_requested.swap(false, Ordering::Relaxed) {
                st.refill_pending = true;
            }
            let backing_off = st.refill_retry_at.is_some_and(|t| now < t);
            if st.refill_pending && !backing_off {
                match self.pool.refill() {
                    Ok(n) => {
                        report.pages_refilled = n;
                        st.refill_pending = false;
                        st.refill_retry_at = None;
                        st.refill_backoff = Duration::ZERO;
                    }
                    Err(_) => {
                        report.refill_failed = true;
                        st.refill_backoff =
                            next_backoff(st.refill_backoff, self.config.max_refill_backoff);
                        // An unrepresentable instant: retry at once.
                        st.refill_retry_at = now.checked_add(st.refill_backoff);
                    }
                }
            }
            if force || now.duration_since(st.last_collect) >= self.config.drain_interval {
                st.last_collect = now;
                Some(OpenPages::TakeIdle)
            } else if woken {
                Some(OpenPages::Leave)
            } else {
                None
            }
        };
        if let Some(open) = collect_now {
            let c = self.drain.collect(&*self.gp, &self.pool, &self.heads, open);
            report.collected_pages = c.pages;
            report.collected_heads = c.heads;
        }
        if self.drain.has_pending() {
            report.advanced = self.gp.advance();
        }
        report.freed = self.drain.reap(&*self.gp, &self.pool);
        report
    }

    /// The test hook of `KvfreeRcu::inject_round_panics`.
    fn take_injected_round_panic(&self) {
        let injected =
            self.injected_round_panics
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if injected.is_ok() {
            panic!("kvfree-rcu: injected round panic (test hook)");
        }
    }

    /// A round on the worker thread: a panic is caught, counted and (the
    /// first time) reported, and the worker goes on (see the module docs).
    fn worker_round(&self, woken: bool) {
        if catch_unwind(AssertUnwindSafe(|| self.round(woken, false))).is_err() {
            let before = self.worker_panics.fetch_add(1, Ordering::Relaxed);
            if before == 0 {
                crate::context::write_stderr(
                    "kvfree-rcu: a worker round panicked; the worker goes on (counted in Stats::worker_panics)",
                );
            }
        }
    }
}

/// The refill backoff after one more failure: doubled, at least
/// `MIN_REFILL_BACKOFF`, at most `max`. Never panics, whatever `max` is
/// (`Duration::clamp` panics when `max` is below the minimum).
fn next_backoff(current: Duration, max: Duration) -> Duration {
    current.saturating_mul(2).max(MIN_REFILL_BACKOFF).min(max)
}

/// The worker thread's body.
pub(crate) fn run<G: GracePeriod>(shared: Arc<Shared<G>>) {
    loop {
        if shared.paused.load(Ordering::Relaxed) && !shared.stop.load(Ordering::Acquire) {
            // Leave the wake word rung while paused: producers then see it
            // set and make no futex syscall per fallback.
            std::thread::sleep(shared.config.poll_interval.max(Duration::from_micros(100)));
            continue;
        }
        let timeout = if shared.drain.has_pending() {
            shared.config.poll_interval
        } else {
            shared.config.drain_interval
        };
        let woken = shared.wake.wait(timeout);
        // Acquire: pairs with the Release store in `KvfreeRcu::drop`.
        if shared.stop.load(Ordering::Acquire) {
            // Free everything still queued before leaving: after a normal
            // drop this is quick (drop's own barrier finds nothing), after a
            // detached drop it is the only barrier there is.
            shared.barrier();
            return;
        }
        if woken {
            shared.worker_wakeups.fetch_add(1, Ordering::Relaxed);
        }
        shared.worker_round(woken);
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn backoff_never_panics_and_stays_within_its_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(next_backoff(Duration::ZERO, ms(10)), ms(1));
        assert_eq!(next_backoff(ms(4), ms(10)), ms(8));
        assert_eq!(next_backoff(ms(8), ms(10)), ms(10));
        // A cap below the 1 ms start (`clamp` used to panic here).
        assert_eq!(next_backoff(Duration::ZERO, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            next_backoff(ms(1), Duration::from_micros(10)),
            Duration::from_micros(10)
        );
        assert_eq!(next_backoff(Duration::MAX, Duration::MAX), Duration::MAX);
    }
}
