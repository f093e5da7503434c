//! Waking the worker from any context: an atomic word plus an OS wake.
//!
//! `notify()` is what the retire paths call: one `load` (usually the end of
//! it: the worker is already asked), then a `swap` to 1 and, only on the
//! 0 -> 1 transition, one OS wake (`futex(FUTEX_WAKE)` on Linux, an unpark
//! elsewhere: see `os_wait.rs`). It never blocks and may run in a signal
//! handler; nothing allocates or takes a lock, unlike a channel or a
//! condition variable (whose mutex a signal handler could deadlock on).
//!
//! `wait()` is the worker's: it consumes a pending notification, or sleeps
//! while the word is 0, with a timeout. A notification that lands between
//! the worker's swap to 0 and its sleep changes the word to 1, so the worker
//! does not sleep (the kernel's compare in `FUTEX_WAIT`, or the parker's
//! token). Under loom there is no OS wake; the word alone is modelled and
//! `wait` yields.
//!
//! **The bell carries no data.** `notify` returns early, without any store,
//! when the word already reads 1, so its Release cannot order what the
//! caller queued before it. Each queue publishes its own entries: the head
//! lists with their Release CAS (`head.rs`), the pool with its Release
//! lane and hand-off stores; the worker's collect takes them with Acquire
//! swaps. The bell only says "a round is wanted soon"; a ring that is
//! missed (the word read a stale 1) costs latency, bounded by the worker's
//! timed wait, never a lost object.

use crate::os_wait::Sleeper;
use crate::sync::{AtomicU32, Ordering};
use std::time::Duration;

/// The worker's doorbell.
#[derive(Debug, Default)]
pub(crate) struct WakeWord {
    word: AtomicU32,
    sleeper: Sleeper,
}

impl WakeWord {
    /// Rings the bell: any context, lock-free, allocation-free.
    #[inline]
    pub(crate) fn notify(&self) -> bool {
        // Relaxed load first: when the bell is already rung (a flood), the
        // caller neither dirties the shared line nor makes a syscall. It may
        // read a stale 1 (the worker just consumed the ring): the worker's
        // timed wait bounds that delay (see the module docs).
        if self.word.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // Release: pairs with the Acquire swap in `wait` when that swap
        // reads this 1. Nothing relies on it for data: the early return
        // above makes no store (see the module docs).
        if self.word.swap(1, Ordering::Release) == 0 {
            self.sleeper.wake(&self.word);
            return true;
        }
        false
    }

    /// Rings even when the bell looks rung (shutdown: the worker must see it).
    pub(crate) fn notify_always(&self) {
        // Release: as in `notify` (the stop flag has its own Release store
        // in `KvfreeRcu::drop`, read with Acquire by the worker).
        self.word.swap(1, Ordering::Release);
        self.sleeper.wake(&self.word);
    }

    /// Waits up to `timeout` for a notification; true when one was pending
    /// or arrived. Ordinary context (the worker).
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        // Acquire: pairs with the Release swap in `notify`/`notify_always`
        // that wrote the 1 it reads (not relied on for data, see above).
        if self.word.swap(0, Ordering::Acquire) != 0 {
            return true;
        }
        self.sleeper.wait(&self.word, timeout);
        self.word.swap(0, Ordering::Acquire) != 0
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn notify_before_wait_is_not_lost() {
        let w = WakeWord::default();
        assert!(w.notify());
        assert!(!w.notify(), "second ring while pending is free");
        assert!(w.wait(Duration::from_secs(5)));
        assert!(!w.wait(Duration::from_millis(1)), "consumed");
    }

    #[test]
    fn notify_wakes_a_sleeper() {
        let w = Arc::new(WakeWord::default());
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            // Loop: a timeout is not a notification.
            while !w2.wait(Duration::from_millis(50)) {}
        });
        std::thread::sleep(Duration::from_millis(5));
        w.notify();
        t.join().unwrap();
    }
}
