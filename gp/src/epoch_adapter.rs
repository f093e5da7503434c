//! [`EpochGracePeriod`]: grace periods of a crossbeam-epoch collector (the
//! default one, or any [`Collector`] a structure owns), so structures whose
//! readers pin with crossbeam-epoch can retire through the deferred-free
//! service.
//!
//! # Which collector
//! The adapter's grace periods are those of one collector. Readers pinned to
//! another collector do not hold them: an object those readers can see would
//! be freed too early. What can be detected, and how:
//! - a guard handed to [`EpochGracePeriod::check_guard`] (or
//!   [`assert_guard`](EpochGracePeriod::assert_guard)) is compared with the
//!   adapter's collector: one pointer compare, any context. A structure that
//!   retires inside a pinned operation passes its guard, and a guard of
//!   another collector (or `crossbeam_epoch::unprotected()`) is refused with
//!   a [`CollectorMismatch`] naming both.
//! - `synchronize` while this thread is pinned to the default collector is
//!   reported (checked builds) for an adapter over the default collector, as
//!   before: crossbeam's `is_pinned()` answers for that collector only.
//! - What cannot be detected: whether this thread is pinned to a collector
//!   other than the default (crossbeam keeps no per-thread record of the
//!   handles of other collectors), so for an adapter over its own collector
//!   `current_thread_in_read_section` is always false and a `synchronize`
//!   inside such a pinned section deadlocks without a report; and a retire
//!   made without a guard (the service cannot see which collector the
//!   structure's readers use).
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

use crate::sync::{Arc, AtomicU64, Ordering, fence};
use core::fmt;
use crossbeam_epoch::{Collector, Guard};

#[derive(Debug, Default)]
struct Counters {
    requested: AtomicU64,
    completed: AtomicU64,
}

/// A [`GracePeriod`](crate::GracePeriod) over a crossbeam-epoch
/// collector: crossbeam's default one ([`new`](Self::new)) or any other
/// ([`with_collector`](Self::with_collector)). Feature `crossbeam-epoch`.
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
#[derive(Debug, Clone)]
pub struct EpochGracePeriod {
    counters: Arc<Counters>,
    collector: Collector,
}

impl Default for EpochGracePeriod {
    fn default() -> Self {
        EpochGracePeriod::new()
    }
}

// The adapter's own state is atomics, and a collector's interior state is
// crossbeam's lock-free bookkeeping, consistent at every instruction (it is
// shared by every thread and outlives their panics anyway): a panic that
// unwinds past a borrowed adapter leaves nothing half-updated. Without these,
// adding the collector would have made the adapter not unwind-safe.
impl std::panic::RefUnwindSafe for EpochGracePeriod {}
impl std::panic::UnwindSafe for EpochGracePeriod {}

/// A guard of another collector than the adapter's was passed to
/// [`EpochGracePeriod::check_guard`]: objects its readers can see would be
/// freed too early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CollectorMismatch {
    /// The guard is `crossbeam_epoch::unprotected()`: it pins nothing.
    Unprotected,
    /// The guard pins another collector.
    OtherCollector,
}

impl fmt::Display for CollectorMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CollectorMismatch::Unprotected => f.write_str(
                "EpochGracePeriod: the guard is crossbeam_epoch::unprotected(), which does not hold this adapter's grace periods",
            ),
            CollectorMismatch::OtherCollector => f.write_str(
                "EpochGracePeriod: the guard pins another crossbeam-epoch collector than this adapter's; build the adapter with EpochGracePeriod::with_collector(the structure's collector)",
            ),
        }
    }
}

impl std::error::Error for CollectorMismatch {}

impl EpochGracePeriod {
    /// A fresh adapter over crossbeam's default collector (its own counters).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu_gp::EpochGracePeriod;
    /// let gp = Arc::new(EpochGracePeriod::new());
    /// # drop(gp);
    /// ```
    pub fn new() -> EpochGracePeriod {
        EpochGracePeriod::with_collector(crossbeam_epoch::default_collector().clone())
    }

    /// A fresh adapter over `collector` (a handle: the collector lives as
    /// long as its last handle). Its [`advance`](crate::GracePeriod::advance)
    /// registers a short-lived handle with the collector (one small
    /// allocation; ordinary context, as the trait says).
    ///
    /// ```
    /// use crossbeam_epoch::Collector;
    /// use kvfree_rcu_gp::{EpochGracePeriod, GracePeriod};
    /// let collector = Collector::new();
    /// let gp = EpochGracePeriod::with_collector(collector.clone());
    /// let reader = collector.register();
    /// let guard = reader.pin();
    /// gp.check_guard(&guard).expect("the adapter's collector");
    /// let s = gp.start_poll();
    /// drop(guard);
    /// gp.synchronize();
    /// assert!(gp.poll_state(s));
    /// ```
    pub fn with_collector(collector: Collector) -> EpochGracePeriod {
        EpochGracePeriod {
            counters: Arc::default(),
            collector,
        }
    }

    /// The collector whose grace periods this adapter waits for.
    pub fn collector(&self) -> &Collector {
        &self.collector
    }

    /// `Ok` when `guard` pins this adapter's collector, so that retiring
    /// through a service over this adapter while holding it is sound for
    /// readers of that collector. Any context: one pointer compare.
    ///
    /// ```
    /// use kvfree_rcu_gp::{CollectorMismatch, EpochGracePeriod};
    /// let gp = EpochGracePeriod::with_collector(crossbeam_epoch::Collector::new());
    /// let default_guard = crossbeam_epoch::pin();
    /// assert_eq!(gp.check_guard(&default_guard), Err(CollectorMismatch::OtherCollector));
    /// ```
    pub fn check_guard(&self, guard: &Guard) -> Result<(), CollectorMismatch> {
        match guard.collector() {
            None => Err(CollectorMismatch::Unprotected),
            Some(c) if *c == self.collector => Ok(()),
            Some(_) => Err(CollectorMismatch::OtherCollector),
        }
    }

    /// [`check_guard`](Self::check_guard), panicking with the mismatch's
    /// message. Any context.
    ///
    /// # Panics
    /// When `guard` does not pin this adapter's collector.
    #[track_caller]
    pub fn assert_guard(&self, guard: &Guard) {
        if let Err(e) = self.check_guard(guard) {
            panic!("{e}");
        }
    }

    /// Whether this adapter waits for crossbeam's default collector (whose
    /// thread-local handle `crossbeam_epoch::pin()` uses).
    fn over_default_collector(&self) -> bool {
        self.collector == *crossbeam_epoch::default_collector()
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
        // The default collector's thread-local handle where it applies;
        // another collector's through a handle registered for this call (a
        // guard keeps its handle's registration alive until it unpins).
        let guard = if self.over_default_collector() {
            crossbeam_epoch::pin()
        } else {
            self.collector.register().pin()
        };
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

    /// Panics in checked builds when this thread is pinned to the default
    /// collector and the adapter is over it (see
    /// [`Rcu::synchronize`](crate::Rcu::synchronize)): crossbeam's epoch
    /// cannot advance far enough while it is. (Pinned to another collector
    /// cannot be detected: module docs.)
    fn synchronize(&self) {
        crate::grace_period::synchronize_by_polling(self);
    }

    fn grace_periods(&self) -> u64 {
        // Relaxed: a statistic.
        self.counters.completed.load(Ordering::Relaxed)
    }

    /// Over the default collector, crossbeam-epoch's `is_pinned()`: true
    /// while this thread holds a guard of it. Over another collector, false:
    /// crossbeam cannot say (module docs).
    fn current_thread_in_read_section(&self) -> bool {
        self.over_default_collector() && crossbeam_epoch::is_pinned()
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

    /// A reader pinned to the adapter's own collector holds its grace
    /// period; a reader pinned to the default collector does not (which is
    /// why a guard of the wrong collector is refused).
    #[test]
    #[cfg_attr(miri, ignore = "1000 advances: minutes under Miri")]
    fn own_collector_readers_hold_the_grace_period_and_others_do_not() {
        let collector = Collector::new();
        let gp = EpochGracePeriod::with_collector(collector.clone());
        let (pinned_tx, pinned_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let handle = collector.register();
            let _guard = handle.pin();
            pinned_tx.send(()).unwrap();
            release_rx.recv().unwrap();
        });
        pinned_rx.recv().unwrap();
        let s = gp.start_poll();
        for _ in 0..1000 {
            gp.advance();
        }
        assert!(
            !gp.poll_state(s),
            "a reader of the adapter's collector is inside"
        );
        release_tx.send(()).unwrap();
        reader.join().unwrap();
        gp.synchronize();
        assert!(gp.poll_state(s));

        // Pinned to the default collector: not a reader of this adapter.
        let default_guard = crossbeam_epoch::pin();
        assert!(!gp.current_thread_in_read_section());
        let s = gp.start_poll();
        gp.synchronize(); // completes while the default guard is held
        assert!(gp.poll_state(s));
        assert_eq!(
            gp.check_guard(&default_guard),
            Err(CollectorMismatch::OtherCollector)
        );
    }

    #[test]
    fn check_guard_refuses_other_collectors_and_unprotected() {
        let own = Collector::new();
        let gp = EpochGracePeriod::with_collector(own.clone());
        let handle = own.register();
        assert_eq!(gp.check_guard(&handle.pin()), Ok(()));
        // SAFETY: the unprotected guard is only compared, never used to load.
        let unprotected = unsafe { crossbeam_epoch::unprotected() };
        assert_eq!(
            gp.check_guard(unprotected),
            Err(CollectorMismatch::Unprotected)
        );
        let default_gp = EpochGracePeriod::new();
        assert_eq!(default_gp.check_guard(&crossbeam_epoch::pin()), Ok(()));
        assert_eq!(
            default_gp.check_guard(&handle.pin()),
            Err(CollectorMismatch::OtherCollector)
        );
        let message = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            default_gp.assert_guard(&handle.pin())
        }))
        .unwrap_err()
        .downcast::<String>()
        .unwrap();
        assert!(message.contains("with_collector"), "{message}");
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
