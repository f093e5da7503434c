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
        // caller neither dirties the shared line nor makes a syscall.
        if self.word.load(Ordering::Relaxed) != 0 {
            return false;
        }
        // Release: orders the caller's earlier writes (e.g. a queued head)
        // before the worker's Acquire swap in `wait`.
        if self.word.swap(1, Ordering::Release) == 0 {
            self.sleeper.wake(&self.word);
            return true;
        }
        false
    }

    /// Rings even when the bell looks rung (shutdown: the worker must see it).
    pub(crate) fn notify_always(&self) {
        // Release: as in `notify`.
        self.word.swap(1, Ordering::Release);
        self.sleeper.wake(&self.word);
    }

    /// Waits up to `timeout` for a notification; true when one was pending
    /// or arrived. Ordinary context (the worker).
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        // Acquire: pairs with the Release swap in `notify`.
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
