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

use crate::drain::OpenPages;
use crate::gp::GracePeriod;
use crate::service::Shared;
use crate::sync::{Ordering, lock};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
                        st.refill_backoff = (st.refill_backoff * 2)
                            .clamp(Duration::from_millis(1), self.config.max_refill_backoff);
                        st.refill_retry_at = Some(now + st.refill_backoff);
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
        shared.round(woken, false);
    }
}
