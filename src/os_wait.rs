//! The OS-facing half of the worker's wake word ([`WakeWord`]): how the
//! worker sleeps while the word holds a given state, and how a caller that
//! changed it wakes the worker. The word's protocol is in `wake.rs`; this file only
//! sleeps and wakes, and either may return spuriously (the caller re-reads
//! the word, and the worker always sleeps with a timeout).
//!
//! Three implementations, chosen at compile time:
//! - **Linux** (not Miri, not `--cfg kvfree_portable`): a private futex on the
//!   word itself, through rustix. `FUTEX_WAKE` never blocks and is
//!   async-signal-safe; `FUTEX_WAIT` sleeps only while the word still holds
//!   the state it was given (the kernel's compare), so a wake cannot be lost
//!   in between.
//! - **Everywhere else** (macOS, Windows, the BSDs, Miri, and Linux under
//!   `--cfg kvfree_portable`): std's thread parking. The first `wait`
//!   registers the calling thread (the worker); `wake` unparks it through the
//!   stored [`Thread`] handle, which is one atomic swap plus, only when the
//!   worker is parked, the platform's wake call: `futex(FUTEX_WAKE)` on Linux
//!   and Android, `_umtx_op` on FreeBSD (also futex-like on OpenBSD and
//!   DragonFly), `WakeByAddressSingle` on Windows, `dispatch_semaphore_signal`
//!   on macOS and iOS. None of these allocates or takes a lock of the
//!   process's, so a signal handler that interrupted anything can make the
//!   call (POSIX lists none of them as async-signal-safe, `futex` included:
//!   each is an atomic and a kernel call, no user-space state). (Platforms where std parks with a pthread mutex and condition
//!   variable, such as illumos, are not lock-free on this path; they are not
//!   among the supported targets.) A notification that lands between the
//!   worker's check of the word and its `park_timeout` is kept by the
//!   parker's token, so `park_timeout` returns at once.
//! - **loom**: no OS call; `wait` yields until the word changes (no
//!   timeout: a lost wake never returns, and loom reports the model).
//!
//! **fork()**: in a forked child there is no worker. The futex wake is then
//! a harmless syscall on a word nobody waits on, but the parent's worker's
//! `Thread` must not be unparked there (on macOS that would signal a
//! dispatch semaphore of the parent's in the child), so the handle is only
//! used in the fork generation it was registered in.
//!
//! [`WakeWord`]: crate::wake::WakeWord
//! [`Thread`]: std::thread::Thread

use crate::sync::AtomicU32;
use std::time::Duration;

pub(crate) use imp::Sleeper;

#[cfg(all(target_os = "linux", not(any(miri, kvfree_loom, kvfree_portable))))]
mod imp {
    use super::{AtomicU32, Duration};
    use rustix::thread::futex;

    /// Nothing to keep: the futex is the word itself.
    #[derive(Debug, Default)]
    pub(crate) struct Sleeper;

    impl Sleeper {
        /// Wakes the thread sleeping on `word`, if any. Any context:
        /// one `FUTEX_WAKE` syscall, which never blocks.
        #[inline]
        pub(crate) fn wake(&self, word: &AtomicU32) {
            // The result (how many were woken, or an error, which FUTEX_WAKE
            // on a valid private word does not produce) is not needed.
            let _ = futex::wake(word, futex::Flags::PRIVATE, 1);
        }

        /// Sleeps while `word` is `expected`, up to `timeout`. Ordinary
        /// context.
        pub(crate) fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) {
            let timeout = futex::Timespec {
                tv_sec: timeout.as_secs().try_into().unwrap_or(futex::Secs::MAX),
                tv_nsec: timeout.subsec_nanos().into(),
            };
            // Spurious returns (EINTR, EAGAIN when the word no longer holds
            // `expected`, ETIMEDOUT) are all fine: the caller re-reads the
            // word.
            let _ = futex::wait(word, futex::Flags::PRIVATE, expected, Some(&timeout));
        }
    }
}

#[cfg(not(any(all(target_os = "linux", not(any(miri, kvfree_portable))), kvfree_loom)))]
mod imp {
    use super::{AtomicU32, Duration};
    use std::sync::OnceLock;
    use std::sync::atomic::{Ordering, fence};
    use std::thread::{self, Thread};

    /// The thread that waits on the word (the worker), registered by its
    /// first `wait`.
    #[derive(Debug, Default)]
    pub(crate) struct Sleeper {
        sleeper: OnceLock<Registered>,
    }

    #[derive(Debug)]
    struct Registered {
        thread: Thread,
        /// The fork generation the thread lives in (see the module docs).
        generation: u64,
    }

    impl Sleeper {
        /// Wakes the registered thread, if any. Any context: an atomic load,
        /// and `Thread::unpark` (see the module docs).
        #[inline]
        pub(crate) fn wake(&self, _word: &AtomicU32) {
            // SeqCst: pairs with the SeqCst fence in `wait`. The caller's
            // change of the word comes before this fence and the load of
            // the registration after it; the waiter registers before its
            // fence and reads the word after it. So either we see the
            // registration (and unpark), or the waiter sees the changed
            // word (and does not park).
            fence(Ordering::SeqCst);
            if let Some(registered) = self.sleeper.get() {
                if registered.generation == crate::fork::generation() {
                    registered.thread.unpark();
                }
            }
        }

        /// Sleeps while `word` is `expected`, up to `timeout`. Ordinary
        /// context. Only the first thread to call it is ever unparked; any
        /// other caller (there is none in the service: one worker per word)
        /// polls.
        pub(crate) fn wait(&self, word: &AtomicU32, expected: u32, timeout: Duration) {
            let registered = self.sleeper.get_or_init(|| Registered {
                thread: thread::current(),
                generation: crate::fork::generation(),
            });
            if registered.thread.id() != thread::current().id()
                || registered.generation != crate::fork::generation()
            {
                thread::sleep(timeout.min(Duration::from_millis(1)));
                return;
            }
            // SeqCst: pairs with the SeqCst fence in `wake` (see there).
            fence(Ordering::SeqCst);
            // Relaxed: only decides whether to park; the caller's own
            // Acquire swap afterwards is what synchronises with a notifier.
            if word.load(Ordering::Relaxed) == expected {
                thread::park_timeout(timeout);
            }
        }
    }
}

#[cfg(kvfree_loom)]
mod imp {
    use super::{AtomicU32, Duration};

    /// Nothing to keep: loom models the word alone.
    #[derive(Debug, Default)]
    pub(crate) struct Sleeper;

    impl Sleeper {
        #[inline]
        pub(crate) fn wake(&self, _word: &AtomicU32) {}

        /// Waits, yielding, until the word changes: a sleep without its
        /// timeout, so a lost wake is a model that never ends (loom fails
        /// it), not a late return that hides it.
        pub(crate) fn wait(&self, word: &AtomicU32, expected: u32, _timeout: Duration) {
            // Relaxed: only decides whether to go on waiting, as the futex's
            // compare does.
            while word.load(crate::sync::Ordering::Relaxed) == expected {
                loom::thread::yield_now();
            }
        }
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::sync::Ordering;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    /// Runs `body`, aborting the test process if it has not returned after
    /// 60 s: the waits below have a one-hour timeout, so only a lost wake
    /// takes that long.
    fn with_watchdog(body: impl FnOnce()) {
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let done = done.clone();
            std::thread::spawn(move || {
                for _ in 0..600 {
                    if done.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                eprintln!("os_wait test: a wake was lost (the sleeper slept 60 s)");
                std::process::abort();
            })
        };
        body();
        done.store(true, Ordering::Release);
        watchdog.join().unwrap();
    }

    const LONG: Duration = Duration::from_secs(3600);

    /// A wake that lands before the sleeper first waits is not lost: the
    /// sleeper sees the word and does not sleep out its timeout.
    #[test]
    fn a_wake_before_the_first_wait_is_not_lost() {
        let word = AtomicU32::new(0);
        let sleeper: Sleeper = Default::default();
        word.store(1, Ordering::Release);
        sleeper.wake(&word);
        with_watchdog(|| sleeper.wait(&word, 0, LONG));
    }

    /// A wake reaches a thread that sleeps (or is about to) on the word.
    /// Fails (by the watchdog) if `wake` does not wake: the worker would
    /// then only run on its timeouts.
    #[test]
    fn a_wake_reaches_a_sleeping_waiter() {
        let word = Arc::new(AtomicU32::new(0));
        let sleeper: Arc<Sleeper> = Arc::default();
        with_watchdog(|| {
            let waiter = {
                let (word, sleeper) = (word.clone(), sleeper.clone());
                std::thread::spawn(move || {
                    // Loop: a return may be spurious.
                    while word.load(Ordering::Acquire) == 0 {
                        sleeper.wait(&word, 0, LONG);
                    }
                })
            };
            // Most runs: the waiter is asleep by now; either way it must
            // wake.
            std::thread::sleep(Duration::from_millis(20));
            word.store(1, Ordering::Release);
            sleeper.wake(&word);
            waiter.join().unwrap();
        });
    }
}
