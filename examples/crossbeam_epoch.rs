//! Readers on `crossbeam_epoch::pin()`, retires through the service: the
//! crossbeam-epoch backend.
//!
//! Run: `cargo run --release --features crossbeam-epoch --example crossbeam_epoch [ops_per_thread]`
//!
//! # The pattern
//! A structure that already uses crossbeam-epoch for its readers (here a
//! table of `AtomicPtr<Entry>`, each replaced as a whole by writers) keeps
//! its read side unchanged: `let guard = crossbeam_epoch::pin();`. Its
//! writers, though, may run where `guard.defer_destroy` cannot: crossbeam's
//! `defer` allocates when its bag is full, so it is not allowed under a raw
//! spinlock, in a signal handler or on a real-time thread. Building the
//! service over [`EpochGracePeriod`] (`KvfreeRcu::builder_with`) gives those
//! writers `kvfree_rcu`: allocation-free, lock-free, and freeing only after
//! crossbeam's collector has seen every pinned thread unpin.
//!
//! # Why it is correct
//! The service stamps each batch with `EpochGracePeriod::start_poll()`
//! *after* taking it, and frees it once `poll_state` accepts the stamp,
//! which happens only when a closure deferred into crossbeam's default
//! collector, after the stamp, has run: crossbeam runs it only after the
//! global epoch moved twice past the bag's epoch, so every thread pinned
//! when the entry was unlinked has unpinned. A reader that loaded the entry
//! was pinned before the unlink, so it is done with it.
//!
//! Readers must pin the *default* collector (`crossbeam_epoch::pin()`), the
//! one the adapter defers into.

#[cfg(feature = "crossbeam-epoch")]
fn main() {
    demo::main();
}

#[cfg(not(feature = "crossbeam-epoch"))]
fn main() {
    eprintln!(
        "crossbeam_epoch: run with --features crossbeam-epoch (the EpochGracePeriod backend)"
    );
    std::process::exit(2);
}

/// The example proper (needs the `crossbeam-epoch` feature).
#[cfg(feature = "crossbeam-epoch")]
mod demo {
    use kvfree_rcu::gp::EpochGracePeriod;
    use kvfree_rcu::{KvfreeRcu, RawSpinLock, RcuHead, impl_rcu_headed};
    use std::ptr::NonNull;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
    use std::time::Instant;

    static ALLOCATED: AtomicU64 = AtomicU64::new(0);
    static DROPPED: AtomicU64 = AtomicU64::new(0);
    const POISON: u64 = u64::MAX;
    const ENTRIES: usize = 64;

    struct Entry {
        /// `check == !version`: a reader that sees anything else read a freed or torn entry.
        version: AtomicU64,
        check: AtomicU64,
        head: RcuHead,
    }
    impl_rcu_headed!(Entry, head);

    impl Entry {
        fn boxed(version: u64) -> *mut Entry {
            ALLOCATED.fetch_add(1, Ordering::Relaxed);
            Box::into_raw(Box::new(Entry {
                version: AtomicU64::new(version),
                check: AtomicU64::new(!version),
                head: RcuHead::new(),
            }))
        }
    }

    impl Drop for Entry {
        fn drop(&mut self) {
            self.version.store(POISON, Ordering::Relaxed);
            self.check.store(POISON, Ordering::Relaxed);
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    struct Table {
        entries: Box<[AtomicPtr<Entry>]>,
        /// Serialises writers; retires happen under it.
        writer: RawSpinLock<()>,
        service: KvfreeRcu<EpochGracePeriod>,
    }

    impl Table {
        fn read(&self, i: usize) -> u64 {
            let _guard = crossbeam_epoch::pin();
            // Acquire: pairs with the Release in the writer's swap.
            // SAFETY: loaded while pinned; entries are freed only after a
            // crossbeam grace period that began after they were unlinked.
            let e = unsafe { &*self.entries[i].load(Ordering::Acquire) };
            let (v, c) = (
                e.version.load(Ordering::Relaxed),
                e.check.load(Ordering::Relaxed),
            );
            assert!(v != POISON && c == !v, "reader saw a freed entry");
            v
        }

        fn replace(&self, i: usize, version: u64) {
            let new = Entry::boxed(version); // allocate before the lock
            let _locked = self.writer.lock();
            // AcqRel: Release publishes `new`; Acquire makes us the owner of `old`.
            let old = self.entries[i].swap(new, Ordering::AcqRel);
            // SAFETY: (1) from Box::into_raw; (2) unlinked by the swap; (3) retired
            // once: the swap handed `old` to us alone.
            unsafe {
                self.service
                    .kvfree_rcu(NonNull::new(old).expect("never null"))
            };
        }
    }

    pub(crate) fn main() {
        let ops: u64 = std::env::args()
            .nth(1)
            .map_or(500_000, |s| s.parse().expect("ops_per_thread: a number"));
        let service = KvfreeRcu::builder_with(Arc::new(EpochGracePeriod::new())).build();
        let table = Arc::new(Table {
            entries: (0..ENTRIES)
                .map(|_| AtomicPtr::new(Entry::boxed(0)))
                .collect(),
            writer: RawSpinLock::new(()),
            service,
        });

        let start = Instant::now();
        let mut threads = Vec::new();
        for r in 0..2u64 {
            let table = table.clone();
            threads.push(std::thread::spawn(move || {
                let mut sum = 0u64;
                for i in 0..ops {
                    sum = sum.wrapping_add(table.read(((i * 7 + r) as usize) % ENTRIES));
                }
                sum
            }));
        }
        let writer = {
            let table = table.clone();
            std::thread::spawn(move || {
                for i in 0..ops {
                    table.replace((i as usize) % ENTRIES, i + 1);
                }
                0
            })
        };
        threads.push(writer);
        for t in threads {
            t.join().expect("a thread panicked");
        }
        let elapsed = start.elapsed();

        let table = Arc::into_inner(table).expect("every thread has exited");
        table.service.barrier();
        let stats = table.service.stats();
        for e in table.entries.iter() {
            // SAFETY: no reader or writer is left; each entry is linked once.
            drop(unsafe { Box::from_raw(e.load(Ordering::Relaxed)) });
        }
        drop(table);
        let (allocated, dropped) = (
            ALLOCATED.load(Ordering::Relaxed),
            DROPPED.load(Ordering::Relaxed),
        );
        println!(
            "crossbeam_epoch: 2 pinned readers + 1 writer x {ops} ops in {:.3} s: {:.2} Mops/s; {} crossbeam grace periods, {} batches; allocated {allocated}, dropped {dropped}",
            elapsed.as_secs_f64(),
            (3 * ops) as f64 / elapsed.as_secs_f64() / 1e6,
            stats.grace_periods,
            stats.batches,
        );
        assert_eq!(allocated, dropped, "every entry is freed exactly once");
    }
}
