//! [`EpochGracePeriod`]: grace periods of crossbeam-epoch's default
//! collector, so structures whose readers use `crossbeam_epoch::pin()` can
//! retire through the deferred-free service.
//!
//! Two counters: `requested` names grace periods, `completed` records the
//! highest one known to have elapsed. `advance()` takes a fresh number `n`,
//! pins, and defers `completed.fetch_max(n)` into crossbeam's collector,
//! then flushes. crossbeam runs a deferred function only after the global
//! epoch has advanced twice past the epoch its bag was sealed in, which
//! requires every thread pinned at sealing time to have unpinned (the same
//! `+ 2` argument as [`Rcu`](crate::Rcu)'s). A state `s = requested + 1`
//! read after a `SeqCst` fence is passed only by a deferral numbered
//! `n >= s`, whose `fetch_add` came after that read and so after the
//! caller's unlink; a reader that could see the unlinked object was pinned
//! (with crossbeam's `SeqCst` pin fence) before that, so it has unpinned by
//! the time the deferral runs.

use crate::domain::{CONTEXT_CHECKS, illegal_synchronize_panic};
use crate::sync::{Arc, AtomicU64, Ordering, fence};
use crossbeam_utils::Backoff;

#[derive(Debug, Default)]
struct Counters {
    requested: AtomicU64,
    completed: AtomicU64,
}

/// A [`GracePeriod`](crate::GracePeriod) over crossbeam-epoch's default
/// collector (feature `crossbeam-epoch`).
///
/// ```
/// use kvfree_rcu_gp::{EpochGracePeriod, GracePeriod};
///
/// let gp = EpochGracePeriod::new();
/// let s = gp.get_state();
/// {
///     let _pinned = crossbeam_epoch::pin();
/// }
/// gp.synchronize();
/// assert!(gp.poll_state(s));
/// ```
#[derive(Debug, Default, Clone)]
pub struct EpochGracePeriod {
    counters: Arc<Counters>,
}

impl EpochGracePeriod {
    /// A fresh adapter (its own counters, crossbeam's default collector).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu_gp::EpochGracePeriod;
    /// let gp = Arc::new(EpochGracePeriod::new());
    /// # drop(gp);
    /// ```
    pub fn new() -> EpochGracePeriod {
        EpochGracePeriod::default()
    }
}

// SAFETY: the argument is in the module docs; point by point:
// 1. `get_state` (and `start_poll`, which is `get_state`) runs a `SeqCst`
//    fence before it loads `requested`. A reader pins with crossbeam's
//    `SeqCst` pin fence before it loads pointers; of the two fences one
//    comes first: if the reader's, it was pinned before the call; if ours,
//    its loads see the caller's writes.
// 2. `poll_state(s)` is `completed >= s` (Acquire), and `completed` reaches
//    `s` only through the `fetch_max(n)` of a closure deferred by the
//    `advance` that drew `n >= s` from `requested.fetch_add`. That
//    `fetch_add` follows, in `requested`'s modification order, the value
//    `s - 1` our load read, so the pin and `defer` after it come after the
//    call that took `s`. crossbeam runs a deferred closure only after every
//    thread pinned when it was deferred has unpinned, and with its unpin
//    (Release) and epoch scan (Acquire) ordering those threads' accesses
//    before the closure, as its own `defer_destroy` relies on; the closure's
//    AcqRel `fetch_max` then pairs with `poll_state`'s Acquire load.
// 3. `synchronize` is `get_state` then `poll_state` until true.
// 4. Only the deferred closures write `completed` (each with its own `n`,
//    only after its grace period); `requested` only grows; the other calls
//    only read.
unsafe impl crate::GracePeriod for EpochGracePeriod {
    type State = u64;

    fn get_state(&self) -> u64 {
        // SeqCst: orders the caller's unlink before the load (see module docs).
        fence(Ordering::SeqCst);
        // Acquire: pairs with the AcqRel fetch_add in `advance`.
        self.counters.requested.load(Ordering::Acquire) + 1
    }

    fn start_poll(&self) -> u64 {
        self.get_state()
    }

    fn poll_state(&self, state: u64) -> bool {
        // Acquire: pairs with the AcqRel fetch_max run by the deferred closure.
        self.counters.completed.load(Ordering::Acquire) >= state
    }

    fn advance(&self) -> bool {
        // Acquire: see `poll_state`.
        let before = self.counters.completed.load(Ordering::Acquire);
        // AcqRel: totally orders grace-period numbers after earlier states.
        let n = self.counters.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let counters = Arc::clone(&self.counters);
        let guard = crossbeam_epoch::pin();
        guard.defer(move || {
            // AcqRel: publishes the elapsed grace period to `poll_state`.
            counters.completed.fetch_max(n, Ordering::AcqRel);
        });
        guard.flush();
        drop(guard);
        self.counters.completed.load(Ordering::Acquire) > before
    }

    /// Panics in checked builds when this thread is pinned (see
    /// [`Rcu::synchronize`](crate::Rcu::synchronize)): crossbeam's epoch
    /// cannot advance far enough while it is.
    fn synchronize(&self) {
        if CONTEXT_CHECKS && crossbeam_epoch::is_pinned() {
            illegal_synchronize_panic();
        }
        let target = self.get_state();
        let backoff = Backoff::new();
        while !self.poll_state(target) {
            if !self.advance() {
                backoff.snooze();
            }
        }
    }

    fn grace_periods(&self) -> u64 {
        // Relaxed: a statistic.
        self.counters.completed.load(Ordering::Relaxed)
    }

    /// crossbeam-epoch's `is_pinned()`: true while this thread holds a
    /// guard of the default collector.
    fn current_thread_in_read_section(&self) -> bool {
        crossbeam_epoch::is_pinned()
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use crate::GracePeriod;

    #[test]
    fn a_pinned_reader_holds_the_grace_period() {
        let gp = EpochGracePeriod::new();
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let _guard = crossbeam_epoch::pin();
            pinned_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        pinned_rx.recv().unwrap();
        let s = gp.start_poll();
        for _ in 0..1000 {
            gp.advance();
        }
        assert!(!gp.poll_state(s));
        release_tx.send(()).unwrap();
        reader.join().unwrap();
        gp.synchronize();
        assert!(gp.poll_state(s));
        assert!(gp.grace_periods() >= 1);
    }

    #[test]
    fn in_read_section_is_crossbeams_is_pinned() {
        let gp = EpochGracePeriod::new();
        assert!(!gp.current_thread_in_read_section());
        let guard = crossbeam_epoch::pin();
        assert!(gp.current_thread_in_read_section());
        drop(guard);
        assert!(!gp.current_thread_in_read_section());
    }

    /// Hangs forever without the check: crossbeam cannot complete the grace
    /// period while this thread stays pinned.
    #[cfg(any(debug_assertions, feature = "context-check"))]
    #[test]
    fn synchronize_while_pinned_panics() {
        let _watchdog = crate::tests::Watchdog::arm("synchronize_while_pinned_panics");
        let gp = EpochGracePeriod::new();
        let guard = crossbeam_epoch::pin();
        let err = std::panic::catch_unwind(|| gp.synchronize())
            .expect_err("synchronize while pinned must panic");
        assert!(
            err.downcast_ref::<&str>()
                .is_some_and(|m| m.contains("Illegal synchronize()")),
        );
        drop(guard);
        gp.synchronize();
    }
}
