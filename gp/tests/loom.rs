//! Loom models of the grace-period protocol (`--cfg kvfree_loom`; loom's
//! fence stands in for the light barrier, as with the fence flavour).
#![cfg(kvfree_loom)]

use kvfree_rcu_gp::Rcu;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

const ALIVE: u64 = 1;
const POISON: u64 = 0xDEAD;

/// An RCU-protected pointer to a two-state cell: the updater swaps in a new
/// cell, waits, then poisons the old one; readers must never see poison.
struct Shared {
    current: AtomicPtr<AtomicU64>,
}

impl Shared {
    fn new() -> Shared {
        Shared {
            current: AtomicPtr::new(Box::into_raw(Box::new(AtomicU64::new(ALIVE)))),
        }
    }
    fn read(&self) -> u64 {
        let p = self.current.load(Ordering::Acquire);
        // SAFETY: cells are only poisoned (never freed) during the model,
        // and freed in `Drop` after every thread is joined.
        unsafe { &*p }.load(Ordering::Relaxed)
    }
    /// Unlink the current cell, returning it for poisoning.
    fn unlink(&self) -> *mut AtomicU64 {
        self.current.swap(
            Box::into_raw(Box::new(AtomicU64::new(ALIVE))),
            Ordering::AcqRel,
        )
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: the model is over; we own the last cell.
        drop(unsafe { Box::from_raw(self.current.load(Ordering::Relaxed)) });
    }
}

fn poison(old: *mut AtomicU64) {
    // SAFETY: `old` came from Box::into_raw; we poison it (a "free" a reader
    // can detect), then really free it since its grace period is over.
    let old = unsafe { Box::from_raw(old) };
    old.store(POISON, Ordering::Relaxed);
}

fn wait_polled(rcu: &Rcu, state: kvfree_rcu_gp::GpState) {
    while !rcu.poll_state(state) {
        if !rcu.advance() {
            loom::thread::yield_now();
        }
    }
}

/// (1) A reader that may have seen the old pointer keeps `poll_state` false.
#[test]
fn reader_before_get_state_blocks_poll() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(2));
        let shared = Arc::new(Shared::new());
        let reader = {
            let (rcu, shared) = (rcu.clone(), shared.clone());
            loom::thread::spawn(move || {
                let _guard = rcu.read_lock();
                assert_eq!(shared.read(), ALIVE);
                assert_eq!(shared.read(), ALIVE);
            })
        };
        let old = shared.unlink();
        let state = rcu.get_state();
        wait_polled(&rcu, state);
        poison(old);
        reader.join().unwrap();
    });
}

/// (2) Nested guards: the inner drop does not end the critical section.
#[test]
fn nested_guards() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(2));
        let shared = Arc::new(Shared::new());
        let reader = {
            let (rcu, shared) = (rcu.clone(), shared.clone());
            loom::thread::spawn(move || {
                let outer = rcu.read_lock();
                let p = shared.current.load(Ordering::Acquire);
                drop(rcu.read_lock());
                // SAFETY: see `Shared::read`; `outer` still protects `p`.
                assert_eq!(unsafe { &*p }.load(Ordering::Relaxed), ALIVE);
                drop(outer);
            })
        };
        let old = shared.unlink();
        rcu.synchronize();
        poison(old);
        reader.join().unwrap();
    });
}

/// (3) Two advancers racing while a reader reads never let `poll_state`
/// pass while the reader may hold the old object.
#[test]
fn concurrent_advancers() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(3));
        let shared = Arc::new(Shared::new());
        let freed = Arc::new(AtomicBool::new(false));
        let reader = {
            let (rcu, shared) = (rcu.clone(), shared.clone());
            loom::thread::spawn(move || {
                let _guard = rcu.read_lock();
                assert_eq!(shared.read(), ALIVE);
            })
        };
        let advancer = {
            let rcu = rcu.clone();
            loom::thread::spawn(move || {
                rcu.advance();
                rcu.advance();
            })
        };
        let old = shared.unlink();
        let state = rcu.start_poll();
        wait_polled(&rcu, state);
        poison(old);
        freed.store(true, Ordering::Relaxed);
        reader.join().unwrap();
        advancer.join().unwrap();
        assert!(freed.load(Ordering::Relaxed));
    });
}

/// A cell the reader reads without atomics, so that loom checks that the
/// updater's write after the grace period happens after the read.
struct Cell(loom::cell::UnsafeCell<u64>);

/// (4) A reader that leaves its section and enters a new one: an advancer
/// whose scan reads the re-entry announcement must still synchronize with
/// the first section's reads (a later plain store does not extend the
/// release sequence of the exit store, so the announcement itself must be a
/// Release store).
#[test]
fn reentry_announcement_orders_the_previous_section() {
    loom::model(|| {
        let rcu = Arc::new(Rcu::with_capacity(2));
        let old = Box::into_raw(Box::new(Cell(loom::cell::UnsafeCell::new(ALIVE))));
        let current = Arc::new(AtomicPtr::new(old));
        let reader = {
            let (rcu, current) = (rcu.clone(), current.clone());
            loom::thread::spawn(move || {
                {
                    let _section_1 = rcu.read_lock();
                    // SAFETY: cells are freed only after every thread is
                    // joined.
                    let cell = unsafe { &*current.load(Ordering::Acquire) };
                    let value = cell.0.with(|v| {
                        // SAFETY: the updater writes an unlinked cell only
                        // after a grace period that began after the unlink,
                        // so not while this section reads it (loom checks).
                        unsafe { *v }
                    });
                    assert_eq!(value, ALIVE);
                }
                drop(rcu.read_lock());
            })
        };
        let new = Box::into_raw(Box::new(Cell(loom::cell::UnsafeCell::new(ALIVE))));
        let unlinked = current.swap(new, Ordering::AcqRel);
        let state = rcu.get_state();
        wait_polled(&rcu, state);
        // SAFETY: `unlinked` is freed only at the end of the model.
        let cell = unsafe { &*unlinked };
        cell.0.with_mut(|v| {
            // SAFETY: the grace period has elapsed, so no reader still reads
            // the unlinked cell (the property under test).
            unsafe { *v = POISON }
        });
        reader.join().unwrap();
        // SAFETY: both cells came from Box::into_raw; every thread is joined.
        unsafe {
            drop(Box::from_raw(unlinked));
            drop(Box::from_raw(current.load(Ordering::Relaxed)));
        }
    });
}
