//! Waking the worker from any context: an atomic word plus a futex wake.
//!
//! `notify()` is what the retire paths call: one `load` (usually the end of
//! it: the worker is already asked), then a `swap` to 1 and, only on the
//! 0 -> 1 transition, one `futex(FUTEX_WAKE)`. `FUTEX_WAKE` never blocks and
//! is async-signal-safe; nothing allocates or takes a lock, unlike a channel
//! or a condition variable (whose mutex a signal handler could deadlock on).
//!
//! `wait()` is the worker's: it consumes a pending notification, or sleeps in
//! `FUTEX_WAIT` on the value 0 with a timeout. A notification that lands
//! between the worker's swap to 0 and its wait changes the word to 1, so the
//! kernel's compare in `FUTEX_WAIT` fails and the worker does not sleep.
//! Under loom there is no futex; the word alone is modelled and `wait`
//! yields.
//!
//! **The bell carries no data.** `notify` returns early, without any store,
//! when the word already reads 1, so its Release cannot order what the
//! caller queued before it. Each queue publishes its own entries: the head
//! lists with their Release CAS (`head.rs`), the pool with its Release
//! lane and hand-off stores; the worker's collect takes them with Acquire
//! swaps. The bell only says "a round is wanted soon"; a ring that is
//! missed (the word read a stale 1) costs latency, bounded by the worker's
//! timed wait, never a lost object.

use crate::sync::{AtomicU32, Ordering};
use std::time::Duration;

/// The worker's doorbell.
#[derive(Debug, Default)]
pub(crate) struct WakeWord {
    word: AtomicU32,
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
            futex_wake(&self.word);
            return true;
        }
        false
    }

    /// Rings even when the bell looks rung (shutdown: the worker must see it).
    pub(crate) fn notify_always(&self) {
        // Release: as in `notify` (the stop flag has its own Release store
        // in `KvfreeRcu::drop`, read with Acquire by the worker).
        self.word.swap(1, Ordering::Release);
        futex_wake(&self.word);
    }

    /// Waits up to `timeout` for a notification; true when one was pending
    /// or arrived. Ordinary context (the worker).
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        // Acquire: pairs with the Release swap in `notify`/`notify_always`
        // that wrote the 1 it reads (not relied on for data, see above).
        if self.word.swap(0, Ordering::Acquire) != 0 {
            return true;
        }
        futex_wait(&self.word, timeout);
        self.word.swap(0, Ordering::Acquire) != 0
    }
}

#[cfg(all(target_os = "linux", not(kvfree_loom)))]
fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE reads nothing but the address, which is a live,
    // aligned u32 (an AtomicU32 has the layout of u32). The result (how many
    // were woken) is not needed.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

#[cfg(all(target_os = "linux", not(kvfree_loom)))]
fn futex_wait(word: &AtomicU32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live aligned u32 and `ts` a valid relative timeout
    // that outlives the call. Spurious returns (EINTR, EAGAIN, ETIMEDOUT) are
    // all fine: the caller re-reads the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            0u32,
            &ts as *const libc::timespec,
        );
    }
}

#[cfg(any(not(target_os = "linux"), kvfree_loom))]
fn futex_wake(_word: &AtomicU32) {}

#[cfg(any(not(target_os = "linux"), kvfree_loom))]
fn futex_wait(_word: &AtomicU32, timeout: Duration) {
    #[cfg(kvfree_loom)]
    {
        let _ = timeout;
        loom::thread::yield_now();
    }
    #[cfg(not(kvfree_loom))]
    std::thread::sleep(timeout.min(Duration::from_millis(1)));
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
