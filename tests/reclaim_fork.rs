//! fork() while reclaim helpers exist, and free (issue 11, target 6): the
//! child has neither worker nor helpers; its service frees alone
//! (`barrier`, drop) and loses nothing, whatever the helpers were doing at
//! the fork (the fork handlers hold the free lock and the helpers' board
//! across it).
//!
//! Its own test binary, as `tests/fork.rs`: forking a process whose other
//! tests run threads would put those tests' threads' state in the child too.
#![cfg(unix)]

mod common;

use common::{DropCounter, Headed};
use kvfree_rcu::{KvfreeRcu, Rcu};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Objects retired while the worker is paused: one batch above the worker's
/// backlog threshold (64 Ki objects), so that reaping it starts a helper
/// and shares the batch with the helpers.
const BACKLOG: u64 = 100_000;

const FORKS: usize = 10;

/// Retires a backlog behind a paused worker, then lets the worker free it.
fn pile_up(service: &KvfreeRcu, counter: &'static DropCounter) {
    service.pause_worker();
    for i in 0..BACKLOG {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    service.resume_worker();
}

#[test]
fn a_child_forked_while_helpers_free_frees_alone() {
    let service = Arc::new(
        KvfreeRcu::builder(Arc::new(Rcu::new()))
            .max_reclaim_helpers(2)
            .build(),
    );
    let parent_counter = DropCounter::leak();
    // Start helpers (each backlog reaped starts one).
    while service.stats().reclaim_helpers < 2 {
        pile_up(&service, parent_counter);
        service.barrier();
        // The worker starts the helper after the round that reaped: let it
        // run one more.
        let batches = service.stats().batches;
        pile_up(&service, parent_counter);
        while service.stats().batches == batches {
            std::thread::yield_now();
        }
    }
    // Keep the helpers busy: backlogs, freed by the worker with them.
    let stop = Arc::new(AtomicBool::new(false));
    let piler = {
        let (service, stop) = (service.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                pile_up(&service, parent_counter);
                while service.stats().pending > BACKLOG {
                    std::thread::yield_now();
                }
            }
        })
    };
    for round in 0..FORKS {
        let status = common::fork_and_wait("the forked child hung", || {
            assert_eq!(service.stats().reclaim_helpers, 0, "no helper in a child");
            let counter = DropCounter::leak();
            for i in 0..BACKLOG {
                // SAFETY: from Box::leak, never published, retired once.
                unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
            }
            service.barrier();
            assert_eq!(counter.dropped(), BACKLOG as usize);
            assert_eq!(service.stats().reclaim_helpers, 0);
        });
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "fork {round}: the child failed (wait status {status:#x})"
        );
    }
    stop.store(true, Ordering::Relaxed);
    piler.join().unwrap();
    service.barrier();
    let freed = parent_counter.dropped();
    assert_eq!(service.stats().pending, 0);
    let service = Arc::into_inner(service).expect("the last handle");
    drop(service);
    assert_eq!(parent_counter.dropped(), freed);
}
