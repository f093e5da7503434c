//! The domain through its public API: capacity, states and epochs,
//! readers holding grace periods back, concurrent advancers, registration
//! limits, and the misuse checks (sizes shrink under Miri; `ci/30-miri.sh`
//! runs this file).

use kvfree_rcu_gp::{CapacityError, MAX_DOMAINS, Rcu};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};

#[test]
#[should_panic(expected = "at least one reader slot")]
fn zero_capacity_panics() {
    let _ = Rcu::with_capacity(0);
}

#[test]
fn fresh_domain() {
    let rcu = Rcu::with_capacity(3);
    assert_eq!(rcu.capacity(), 3);
    assert_eq!(rcu.grace_periods(), 0);
    assert!(!rcu.is_current_thread_registered());
    assert!(format!("{rcu:?}").contains("capacity: 3"));
    assert_eq!(Rcu::default().capacity(), kvfree_rcu_gp::DEFAULT_CAPACITY);
}

#[test]
fn states_expire_after_two_epochs() {
    let rcu = Rcu::with_capacity(2);
    let s = rcu.get_state();
    assert!(!rcu.poll_state(s));
    assert!(rcu.advance());
    assert!(!rcu.poll_state(s));
    assert!(rcu.advance());
    assert!(rcu.poll_state(s));
    assert_eq!((rcu.epoch(), rcu.grace_periods()), (2, 1));
}

/// Issue 13: `grace_periods` counted epochs (two per grace period) while
/// `EpochGracePeriod` counted grace periods, so the service's
/// `Stats::grace_periods` changed meaning with the backend. One grace period
/// is one now, through the inherent method and the trait alike.
#[test]
fn one_synchronize_counts_one_grace_period() {
    use kvfree_rcu_gp::GracePeriod;
    let rcu = Rcu::with_capacity(2);
    rcu.synchronize();
    assert_eq!(rcu.epoch(), 2);
    assert_eq!(rcu.grace_periods(), 1);
    assert_eq!(GracePeriod::grace_periods(&rcu), 1);
    let state = rcu.get_state();
    while !rcu.poll_state(state) {
        rcu.advance();
    }
    assert_eq!(GracePeriod::grace_periods(&rcu), 2);
}

#[test]
fn a_reader_blocks_expiry_until_it_leaves() {
    let rcu = Rcu::with_capacity(2);
    let guard = rcu.read_lock();
    assert!(!guard.is_ephemeral());
    assert!(rcu.is_current_thread_registered());
    let s = rcu.start_poll();
    for _ in 0..5 {
        rcu.advance();
    }
    assert!(!rcu.poll_state(s));
    assert!(rcu.has_pending_requests());
    drop(guard);
    rcu.synchronize();
    assert!(rcu.poll_state(s));
    assert!(!rcu.has_pending_requests());
}

#[test]
fn nested_guards_hold_until_the_outermost_drops() {
    let rcu = Rcu::with_capacity(2);
    let outer = rcu.read_lock();
    let s = rcu.get_state();
    {
        let _inner = rcu.read_lock();
        let _innermost = rcu.read_lock();
    }
    for _ in 0..5 {
        rcu.advance();
    }
    assert!(!rcu.poll_state(s));
    drop(outer);
    assert!(rcu.advance() || rcu.advance());
    rcu.synchronize();
    assert!(rcu.poll_state(s));
}

#[test]
fn a_reader_on_another_thread_blocks_synchronize() {
    let rcu = Rcu::with_capacity(4);
    let inside = Barrier::new(2);
    let released = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let guard = rcu.read_lock();
            inside.wait();
            while !released.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            // The updater cannot have finished: we are still inside.
            assert!(!done.load(Ordering::Acquire));
            drop(guard);
        });
        inside.wait();
        let state = rcu.get_state();
        for _ in 0..10 {
            rcu.advance();
        }
        assert!(!rcu.poll_state(state));
        released.store(true, Ordering::Release);
        rcu.synchronize();
        done.store(true, Ordering::Release);
        assert!(rcu.poll_state(state));
    });
}

#[test]
fn concurrent_advancers_move_the_epoch_one_step_at_a_time() {
    let rcu = Rcu::with_capacity(4);
    let rounds = if cfg!(miri) { 20 } else { 2000 };
    let moved = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..rounds {
                    if rcu.advance() {
                        moved.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(rcu.read_lock());
                }
            });
        }
    });
    assert_eq!(moved.load(Ordering::Relaxed), rcu.epoch());
}

#[test]
fn capacity_error_and_slots_come_back_at_thread_exit() {
    let rcu = Rcu::with_capacity(1);
    std::thread::scope(|s| {
        s.spawn(|| rcu.register_current_thread().unwrap())
            .join()
            .unwrap();
    });
    // The first thread exited and gave its slot back.
    rcu.register_current_thread().unwrap();
    let err = std::thread::scope(|s| s.spawn(|| rcu.register_current_thread()).join().unwrap());
    assert_eq!(err, Err(CapacityError { capacity: 1 }));
    let message = err.unwrap_err().to_string();
    assert!(message.contains('1') && message.contains("Rcu::with_capacity"));
}

#[test]
fn read_lock_on_a_full_domain_panics_with_the_capacity() {
    let rcu = Rcu::with_capacity(1);
    rcu.register_current_thread().unwrap();
    let payload = std::thread::scope(|s| s.spawn(|| drop(rcu.read_lock())).join().unwrap_err());
    let message = payload.downcast_ref::<String>().unwrap();
    assert!(message.contains("all 1 reader slots"), "{message}");
    assert!(message.contains("Rcu::with_capacity"), "{message}");
}

#[test]
fn more_domains_than_the_thread_table_use_ephemeral_slots() {
    let domains: Vec<Rcu> = (0..MAX_DOMAINS + 1)
        .map(|_| Rcu::with_capacity(2))
        .collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            for rcu in &domains[..MAX_DOMAINS] {
                rcu.register_current_thread().unwrap();
            }
            let last = &domains[MAX_DOMAINS];
            // The table is full: registration is Ok, reads are ephemeral.
            last.register_current_thread().unwrap();
            assert!(!last.is_current_thread_registered());
            let a = last.read_lock();
            let b = last.read_lock();
            assert!(a.is_ephemeral() && b.is_ephemeral());
            let state = last.get_state();
            for _ in 0..4 {
                last.advance();
            }
            assert!(!last.poll_state(state));
            drop(b);
            drop(a);
            last.synchronize();
            assert!(last.poll_state(state));
            // Both ephemeral slots were given back.
            let first = last.read_lock();
            let second = last.read_lock();
            drop((first, second));
        });
    });
}

#[test]
fn domains_outlive_their_handles_while_threads_are_registered() {
    let rcu = Rcu::with_capacity(2);
    let clone = rcu.clone();
    rcu.register_current_thread().unwrap();
    drop(rcu);
    drop(clone.read_lock());
    clone.synchronize();
}

#[test]
fn global_is_one_domain() {
    assert!(std::ptr::eq(Rcu::global(), Rcu::global()));
    drop(Rcu::global().read_lock());
}

/// A small rcutorture: readers check that what they reach is never poisoned.
#[test]
fn readers_never_see_a_freed_object() {
    struct Node {
        alive: AtomicBool,
    }
    let rcu = Rcu::with_capacity(4);
    let head = AtomicPtr::new(Box::into_raw(Box::new(Node {
        alive: AtomicBool::new(true),
    })));
    let stop = AtomicBool::new(false);
    let updates = if cfg!(miri) { 6 } else { 300 };
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    let _guard = rcu.read_lock();
                    // SAFETY: nodes are poisoned and freed only after a grace
                    // period that started after their unlink.
                    let node = unsafe { &*head.load(Ordering::Acquire) };
                    assert!(
                        node.alive.load(Ordering::Relaxed),
                        "reader saw a freed node"
                    );
                    std::thread::yield_now();
                    assert!(
                        node.alive.load(Ordering::Relaxed),
                        "reader saw a freed node"
                    );
                }
            });
        }
        for i in 0..updates {
            let fresh = Box::into_raw(Box::new(Node {
                alive: AtomicBool::new(true),
            }));
            let old = head.swap(fresh, Ordering::AcqRel);
            if i % 2 == 0 {
                rcu.synchronize();
            } else {
                let state = rcu.start_poll();
                while !rcu.poll_state(state) {
                    if !rcu.advance() {
                        std::thread::yield_now();
                    }
                }
            }
            // SAFETY: `old` is unlinked and its grace period has elapsed.
            let old = unsafe { Box::from_raw(old) };
            old.alive.store(false, Ordering::Relaxed);
            drop(old);
        }
        stop.store(true, Ordering::Release);
    });
    // SAFETY: every reader has finished.
    drop(unsafe { Box::from_raw(head.load(Ordering::Relaxed)) });
}

#[test]
fn shared_through_an_arc() {
    let rcu = Arc::new(Rcu::with_capacity(2));
    let other = Arc::clone(&rcu);
    std::thread::spawn(move || drop(other.read_lock()))
        .join()
        .unwrap();
    rcu.synchronize();
}

/// Aborts the process if it is still armed after 60 s, so that a test whose
/// subject hangs (a wait for a grace period that can never end) fails
/// instead of hanging CI. Disarmed on drop.
// Only the misuse-check tests (checked builds) use it.
#[cfg(any(debug_assertions, feature = "context-check"))]
struct Watchdog {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(any(debug_assertions, feature = "context-check"))]
impl Watchdog {
    fn arm(what: &'static str) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let done = done.clone();
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                while !done.load(Ordering::Relaxed) {
                    if start.elapsed() > std::time::Duration::from_secs(60) {
                        eprintln!("WATCHDOG: {what} still running after 60 s: hung; aborting");
                        std::process::abort();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
        };
        Watchdog {
            done,
            thread: Some(thread),
        }
    }
}

#[cfg(any(debug_assertions, feature = "context-check"))]
impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn in_read_section_follows_this_threads_guards_in_this_domain_only() {
    let rcu = Rcu::with_capacity(2);
    let other = Rcu::with_capacity(2);
    assert!(!rcu.current_thread_in_read_section());
    let outer = rcu.read_lock();
    let inner = rcu.read_lock();
    assert!(rcu.current_thread_in_read_section());
    assert!(!other.current_thread_in_read_section());
    drop(inner);
    assert!(rcu.current_thread_in_read_section());
    std::thread::scope(|s| {
        s.spawn(|| {
            // Another thread: not inside, and the query does not register it.
            assert!(!rcu.current_thread_in_read_section());
            assert!(!rcu.is_current_thread_registered());
        });
    });
    drop(outer);
    assert!(!rcu.current_thread_in_read_section());
}

#[test]
fn in_read_section_does_not_register_a_fresh_thread() {
    let rcu = Rcu::with_capacity(1);
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(!rcu.current_thread_in_read_section());
            assert!(!rcu.is_current_thread_registered());
        });
    });
    // The only slot is still free.
    rcu.register_current_thread().unwrap();
}

/// The kernel's "Illegal synchronize_rcu() in RCU read-side critical
/// section": a wait for itself. Hangs forever without the check.
#[cfg(any(debug_assertions, feature = "context-check"))]
#[test]
fn synchronize_inside_a_section_of_the_same_domain_panics() {
    let _watchdog = Watchdog::arm("synchronize_inside_a_section_of_the_same_domain_panics");
    let rcu = Rcu::with_capacity(2);
    let guard = rcu.read_lock();
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rcu.synchronize()))
        .expect_err("synchronize inside a read section must panic");
    let message = err.downcast_ref::<&str>().copied().map(String::from);
    let message = message.or_else(|| err.downcast_ref::<String>().cloned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("Illegal synchronize() in RCU read-side critical section")),
        "{message:?}"
    );
    drop(guard);
    // Outside the section, and inside a section of another domain: fine.
    rcu.synchronize();
    let other = Rcu::with_capacity(2);
    let _other_guard = other.read_lock();
    rcu.synchronize();
}

/// Hangs forever without the check: crossbeam cannot complete the grace
/// period while this thread stays pinned. (`EpochGracePeriod`'s
/// counterpart of the test above.)
#[cfg(all(
    feature = "crossbeam-epoch",
    any(debug_assertions, feature = "context-check")
))]
#[test]
fn synchronize_while_pinned_panics() {
    use kvfree_rcu_gp::GracePeriod;
    let _watchdog = Watchdog::arm("synchronize_while_pinned_panics");
    let gp = kvfree_rcu_gp::EpochGracePeriod::new();
    let guard = crossbeam_epoch::pin();
    let err = std::panic::catch_unwind(|| gp.synchronize())
        .expect_err("synchronize while pinned must panic");
    assert!(
        err.downcast_ref::<&str>()
            .is_some_and(|m| m.contains("Illegal synchronize()")),
    );
    drop(guard);
    gp.synchronize();
}

/// `read_lock`'s fast path remembers the slot of the domain the thread last
/// read: alternating domains, each guard must still land in its own
/// domain's slot (a guard of one domain holds back that domain only), and a
/// dropped domain's slot is never used for a new one.
#[test]
fn alternating_domains_each_use_their_own_slot() {
    let (a, b) = (Rcu::new(), Rcu::new());
    for _ in 0..3 {
        let in_a = a.read_lock();
        assert!(b.advance() && b.advance(), "a reader of `a` held back `b`");
        let in_b = b.read_lock();
        drop(in_a);
        assert!(a.advance() && a.advance(), "`a` has no reader left");
        assert!(b.advance(), "the reader of `b` announced the current epoch");
        assert!(!b.advance(), "the reader of `b` holds it back");
        drop(in_b);
        assert!(b.advance());
    }
    // A domain dropped while this thread is registered in it stays
    // allocated (the thread's table holds it), so a new domain never shares
    // its slots' addresses: the new domain's first read registers anew.
    drop(a);
    let c = Rcu::new();
    let in_c = c.read_lock();
    assert!(c.advance());
    assert!(!c.advance(), "the reader of `c` is in `c`'s own slot");
    drop(in_c);
}
