//! The process-wide service across fork(): a child that calls
//! `init_global()` after `fork()` gets a new worker for the inherited global
//! service, which frees what the child retires without the child ever
//! calling `barrier` or `run_once`.
//!
//! Without the respawn the child's retired values are never freed (nothing
//! drives the rounds) and the child waits until the parent's watchdog kills
//! it after 60 s and fails the test. No timed assertion otherwise: the child
//! waits as long as it takes.
//!
//! Its own test binary: forking a process whose other tests run threads
//! would put those tests' threads' state in the child too.
#![cfg(unix)]

use kvfree_rcu::{Rcu, RcuCell};
use std::time::{Duration, Instant};

const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs `work` in a forked child; returns its wait status, or kills it and
/// fails after [`WATCHDOG`].
fn fork_and_wait(work: impl FnOnce()) -> i32 {
    // SAFETY: fork has no preconditions; the child only runs `work` and then
    // `_exit`s, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_ok();
        // SAFETY: `_exit` ends the child at once, without the parent's atexit
        // handlers or the test harness.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let started = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child and `status` a valid out-pointer.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(done >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if done == pid {
            return status;
        }
        if started.elapsed() > WATCHDOG {
            // SAFETY: `pid` is our child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above; reap it so no zombie remains.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("the forked child's global service freed nothing for {WATCHDOG:?} (killed)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_forked_child_gets_a_worker_for_the_global_service() {
    // The parent uses the global service, so its worker exists (in the
    // parent only) when we fork.
    let cell = RcuCell::new(0u64);
    for i in 1..=100 {
        cell.replace(i);
    }
    kvfree_rcu::barrier();
    let status = fork_and_wait(|| {
        kvfree_rcu::init_global(); // after fork(), as at start-up
        let before = kvfree_rcu::global().stats().freed;
        let cell = RcuCell::new(0u64);
        for i in 1..=100 {
            cell.replace(i);
        }
        {
            let guard = Rcu::global().read_lock();
            assert_eq!(*cell.read(&guard), 100);
        }
        // Only the worker frees: no barrier, run_once or shrink here.
        while kvfree_rcu::global().stats().freed < before + 100 {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    assert_eq!(status, 0, "the child failed (wait status {status})");
}
