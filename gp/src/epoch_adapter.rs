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
use crate::sync::{Arc, AtomicU64, Ordering, Patience, fence};

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
//    `s - 1` our load read, so the SeqCst fence of `get_state` precedes, in
//    the single order of SeqCst fences, the pin fence of that `advance`
//    (the fences follow the counter's coherence order): a reader that could
//    see the unlinked object pinned before that `advance` deferred its
//    closure. crossbeam runs a deferred closure only after every thread
//    pinned when it was deferred has unpinned, and with its unpin
//    (Release) and epoch scan (Acquire) ordering those threads' accesses
//    before the closure, as its own `defer_destroy` relies on; the closure's
//    Release `fetch_max` then pairs with `poll_state`'s Acquire load.
// 3. `synchronize` is `get_state` then `poll_state` until true.
// 4. Only the deferred closures write `completed` (each with its own `n`,
//    only after its grace period); `requested` only grows; the other calls
//    only read.
unsafe impl crate::GracePeriod for EpochGracePeriod {
    type State = u64;

    fn get_state(&self) -> u64 {
        // SeqCst: orders the caller's unlink before the load, and before the
        // SeqCst pin fence of any advance whose `fetch_add` comes after the
        // value this load reads in `requested`'s modification order (the
        // fences' order follows that coherence order; module docs).
        fence(Ordering::SeqCst);
        // Relaxed: the fence above and the coherence of `requested` give all
        // the ordering the argument needs; nothing is read through the value.
        self.counters.requested.load(Ordering::Relaxed) + 1
    }

    fn start_poll(&self) -> u64 {
        self.get_state()
    }

    fn poll_state(&self, state: u64) -> bool {
        // Acquire: pairs with the Release fetch_max of the deferred closures.
        self.counters.completed.load(Ordering::Acquire) >= state
    }

    fn advance(&self) -> bool {
        // Relaxed: only compared with the load at the end, to say whether
        // this call saw a grace period complete.
        let before = self.counters.completed.load(Ordering::Relaxed);
        // Relaxed: a read-modify-write, so every advance draws a distinct
        // number, later in `requested`'s modification order than any value a
        // `get_state` read before it; the SeqCst fences (in `get_state`, and
        // in the `pin` below) order the rest (module docs).
        let n = self.counters.requested.fetch_add(1, Ordering::Relaxed) + 1;
        let counters = Arc::clone(&self.counters);
        let guard = crossbeam_epoch::pin();
        guard.defer(move || {
            // Release: pairs with `poll_state`'s Acquire load, carrying what
            // crossbeam ordered before this closure (the unpinned readers'
            // accesses) to the caller that frees. Every `fetch_max` is a
            // read-modify-write, so a later closure's value continues this
            // release sequence: reading it synchronizes with us too.
            counters.completed.fetch_max(n, Ordering::Release);
        });
        guard.flush();
        drop(guard);
        // Relaxed: the answer is a progress hint; a caller that frees calls
        // `poll_state`, whose Acquire load does the pairing.
        self.counters.completed.load(Ordering::Relaxed) > before
    }

    /// Panics in checked builds when this thread is pinned (see
    /// [`Rcu::synchronize`](crate::Rcu::synchronize)): crossbeam's epoch
    /// cannot advance far enough while it is.
    fn synchronize(&self) {
        if CONTEXT_CHECKS && crossbeam_epoch::is_pinned() {
            illegal_synchronize_panic();
        }
        let target = self.get_state();
        let mut patience = Patience::new();
        while !self.poll_state(target) {
            if !self.advance() {
                patience.wait();
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

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::GracePeriod;

    #[test]
    #[cfg_attr(
        miri,
        ignore = "1000 advances, each pinning and flushing crossbeam's collector: minutes under Miri"
    )]
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
}
