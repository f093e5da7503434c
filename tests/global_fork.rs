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

mod common;

use kvfree_rcu::{Rcu, RcuCell};
use std::time::Duration;

#[test]
fn a_forked_child_gets_a_worker_for_the_global_service() {
    // The parent uses the global service, so its worker exists (in the
    // parent only) when we fork.
    let cell = RcuCell::new(0u64);
    for i in 1..=100 {
        cell.replace(i);
    }
    kvfree_rcu::barrier();
    let status = common::fork_and_wait("the forked child's global service freed nothing", || {
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
