//! The worker's wake word: while traffic flows the worker polls and retire
//! calls make no syscall; only the first retire after the worker went idle
//! wakes it.
//!
//! The word holds one of three states:
//! - [`AWAKE`]: the worker is running or napping between polling rounds. A
//!   retire call reads it (one `load`, a line no one writes while traffic
//!   flows) and returns: no store, no syscall. This is the state of a whole
//!   flood.
//! - [`IDLE`]: the worker found nothing to do for a drain interval and
//!   sleeps until woken. The first retire call that reads it moves it to
//!   `AWAKE` with a CAS and, having won, makes the one OS wake
//!   (`futex(FUTEX_WAKE)` on Linux, an unpark elsewhere: `os_wait.rs`).
//! - [`KICKED`]: the owner asks the worker to look now (shutdown, resume
//!   after a pause, a test hook); it ends a nap as well as an idle sleep.
//!
//! As the kernel's `kvfree_rcu()` only arms its monitor work, the retire
//! path at most flips this word: finding full pages, refilling caches and
//! advancing grace periods is the polling worker's job.
//!
//! # Going idle without losing a wake
//! A retire call stores its record (the pool's push, or a head-list push
//! and that list's count), then loads the word. The worker stores
//! `IDLE`, then loads the counters that say whether records wait
//! ([`Shared::has_queued_records`](crate::shared::Shared)). This is a
//! store-buffering handshake: without a full fence on both sides, both
//! loads may miss the other side's store, the retire call seeing `AWAKE`
//! and the worker seeing no record, and the worker would sleep on a queued
//! record. Paying `fence(SeqCst)` on every retire call is the cost we
//! avoid: the calls use [`AsymmetricFence::light`] (a compiler fence where
//! the platform has `membarrier()` or `FlushProcessWriteBuffers()`), and
//! the worker, which goes idle rarely, [`AsymmetricFence::heavy`]. Then
//! either the worker's check sees the record, and it does not sleep, or the
//! call's load sees `IDLE`, and it wakes the worker. The idle sleep still
//! has a timeout ([`IDLE_TIMEOUT`]): the handshake does not rely on it, but
//! an idle worker also re-checks once a second whatever happens.
//!
//! The word carries no data: each queue publishes its own entries (the
//! pool's Release lane and hand-off stores, the head lists' Release CAS),
//! and the worker takes them with Acquire swaps.

use crate::gp::AsymmetricFence;
use crate::os_wait::Sleeper;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// The worker sleeps until a retire call wakes it.
pub(crate) const IDLE: u32 = 0;
/// The worker runs or polls: retire calls leave the word alone.
pub(crate) const AWAKE: u32 = 1;
/// The owner asked the worker to look now.
pub(crate) const KICKED: u32 = 2;

/// The longest an idle worker sleeps before it checks again (a safety net:
/// the handshake in the module docs does not need it).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// How an idle sleep ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdleEnd {
    /// Records were queued when the worker checked: it did not sleep.
    FoundWork,
    /// A retire call or the owner woke it.
    Woken,
    /// The timeout passed (or the wake was spurious).
    TimedOut,
}

/// The worker's wake word (see the module docs).
#[derive(Debug)]
pub(crate) struct WakeWord {
    word: AtomicU32,
    fence: AsymmetricFence,
    sleeper: Sleeper,
    /// OS wakes made by retire calls (each is one syscall).
    wakes: AtomicU64,
}

impl Default for WakeWord {
    /// Starts `AWAKE`: a service without a worker (`Builder::manual`) never
    /// goes idle, so its retire calls never make a syscall.
    fn default() -> WakeWord {
        WakeWord {
            word: AtomicU32::new(AWAKE),
            fence: AsymmetricFence::new(),
            sleeper: Default::default(),
            wakes: AtomicU64::new(0),
        }
    }
}

impl WakeWord {
    /// What every retire call runs after storing its record: wakes the
    /// worker if it is idle. Any context: a compiler fence and one load;
    /// after an idle period, one CAS and one OS wake (never blocks).
    /// Returns whether it found the worker idle.
    #[inline]
    pub(crate) fn wake_if_idle(&self) -> bool {
        // The hot side of the handshake: our record's stores come before,
        // the word's load after (see the module docs).
        self.fence.light();
        // Relaxed: the handshake's ordering comes from the fence pair, and
        // the word carries no data.
        let idle = self.word.load(Ordering::Relaxed) == IDLE;
        if idle {
            self.wake_idle_worker();
        }
        idle
    }

    #[cold]
    fn wake_idle_worker(&self) {
        // Relaxed: only one caller must make the wake; the word carries no
        // data. A CAS, not a swap: a `KICKED` is left for the worker.
        if self
            .word
            .compare_exchange(IDLE, AWAKE, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.wakes.fetch_add(1, Ordering::Relaxed);
            self.sleeper.wake(&self.word);
        }
    }

    /// Asks the worker to look now, whatever it is doing (shutdown, resume,
    /// test hooks). Any context: one swap and one OS wake.
    pub(crate) fn kick(&self) {
        // Relaxed: the reasons for a kick (the stop and pause flags) are
        // published by their own stores, which the worker reads itself.
        self.word.swap(KICKED, Ordering::Relaxed);
        self.sleeper.wake(&self.word);
    }

    /// The worker's pause between polling rounds: sleeps up to `timeout`
    /// unless kicked, leaving the word `AWAKE`. Ordinary context.
    pub(crate) fn nap(&self, timeout: Duration) {
        // Relaxed loads and CAS: the word carries no data (as above).
        if self.word.load(Ordering::Relaxed) == AWAKE {
            self.sleeper.wait(&self.word, AWAKE, timeout);
        }
        let _ = self
            .word
            .compare_exchange(KICKED, AWAKE, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The worker goes idle: marks the word `IDLE`, then sleeps unless
    /// `has_work` (called after the heavy fence) finds records queued, up
    /// to `timeout`. Leaves the word `AWAKE`. Ordinary context: the heavy
    /// fence may be a syscall.
    pub(crate) fn sleep_while_idle(
        &self,
        has_work: impl FnOnce() -> bool,
        timeout: Duration,
    ) -> IdleEnd {
        // Relaxed: ordered for the handshake by the heavy fence below.
        if self.word.swap(IDLE, Ordering::Relaxed) == KICKED {
            self.word.store(AWAKE, Ordering::Relaxed);
            return IdleEnd::Woken;
        }
        // The rare side of the handshake: our `IDLE` store comes before,
        // the records' counters' loads (in `has_work`) after.
        self.fence.heavy();
        if has_work() {
            // A retire call may have woken us meanwhile: either way AWAKE.
            self.word.store(AWAKE, Ordering::Relaxed);
            return IdleEnd::FoundWork;
        }
        self.sleeper.wait(&self.word, IDLE, timeout);
        // Relaxed: as above. Whoever moved the word off IDLE woke us.
        if self.word.swap(AWAKE, Ordering::Relaxed) == IDLE {
            IdleEnd::TimedOut
        } else {
            IdleEnd::Woken
        }
    }

    /// OS wakes made by retire calls so far (`Stats::worker_wakeups`).
    pub(crate) fn wakes(&self) -> u64 {
        // Relaxed: a statistic.
        self.wakes.load(Ordering::Relaxed)
    }

    /// Whether the worker is idle (tests).
    #[cfg(all(test, not(kvfree_loom)))]
    pub(crate) fn is_idle(&self) -> bool {
        self.word.load(Ordering::Relaxed) == IDLE
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    const LONG: Duration = Duration::from_secs(3600);

    #[test]
    fn an_awake_word_costs_retire_calls_no_wake() {
        let w = WakeWord::default();
        for _ in 0..1000 {
            w.wake_if_idle();
        }
        assert_eq!(w.wakes(), 0);
    }

    #[test]
    fn work_found_after_going_idle_keeps_the_worker_awake() {
        let w = WakeWord::default();
        assert_eq!(w.sleep_while_idle(|| true, LONG), IdleEnd::FoundWork);
        assert!(!w.is_idle());
        w.wake_if_idle();
        assert_eq!(w.wakes(), 0);
    }

    #[test]
    fn a_kick_before_going_idle_is_not_lost() {
        let w = WakeWord::default();
        w.kick();
        assert_eq!(w.sleep_while_idle(|| false, LONG), IdleEnd::Woken);
        w.kick();
        w.nap(LONG); // returns at once: kicked
    }

    #[test]
    fn the_first_retire_after_idle_wakes_the_worker_once() {
        let w = Arc::new(WakeWord::default());
        let slept = Arc::new(AtomicBool::new(false));
        let worker = {
            let (w, slept) = (w.clone(), slept.clone());
            std::thread::spawn(move || {
                slept.store(true, Ordering::Release);
                // A timeout is not a wake: loop until woken.
                while w.sleep_while_idle(|| false, Duration::from_secs(60)) != IdleEnd::Woken {}
            })
        };
        while !(slept.load(Ordering::Acquire) && w.is_idle()) {
            std::thread::yield_now();
        }
        w.wake_if_idle();
        w.wake_if_idle(); // already AWAKE: no second wake
        worker.join().unwrap();
        assert_eq!(w.wakes(), 1);
    }
}

/// Loom model of the idle handshake (run by `ci/20-loom.sh`): a worker going
/// idle and a retire call racing it never both miss the other.
#[cfg(all(test, kvfree_loom))]
mod loom_models {
    use super::*;
    use crate::sync::AtomicBool;
    use loom::sync::Arc;

    #[test]
    fn going_idle_never_misses_a_queued_record() {
        loom::model(|| {
            let wake = Arc::new(WakeWord::default());
            let queued = Arc::new(AtomicU64::new(0));
            let worker_found_nothing = Arc::new(AtomicBool::new(false));
            let worker = {
                let (wake, queued, found_nothing) =
                    (wake.clone(), queued.clone(), worker_found_nothing.clone());
                loom::thread::spawn(move || {
                    wake.sleep_while_idle(
                        || {
                            let found = queued.load(Ordering::Relaxed) > 0;
                            found_nothing.store(!found, Ordering::Relaxed);
                            found
                        },
                        IDLE_TIMEOUT,
                    )
                })
            };
            // The retire call: its record, then the wake check.
            queued.store(1, Ordering::Relaxed);
            let saw_idle = wake.wake_if_idle();
            let end = worker.join().unwrap();
            // Under loom the idle sleep has no timeout: had the retire call
            // missed the idle worker, the model would never end.
            assert_ne!(end, IdleEnd::TimedOut);
            if !worker_found_nothing.load(Ordering::Relaxed) {
                assert_eq!(end, IdleEnd::FoundWork);
            } else {
                assert!(saw_idle, "woken by someone else than the retire call");
            }
        });
    }
}
