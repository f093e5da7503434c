//! Writers that retire in floods, each through a `LocalRetirer` of its own
//! in a thread-local, on the safe layer and the process-wide service.
//!
//! Run: `cargo run --release --example local_flood [replacements_per_writer]`
//!
//! # The pattern
//! A table of `Atomic<Entry>` slots; readers look an entry up under
//! `Rcu::global().read_lock()`, writers replace whole entries with
//! `Atomic::swap` and retire the old one. A thread that retires often keeps
//! a `LocalRetirer` for `kvfree_rcu::global()` in a thread-local
//! (`global().local_retirer()`, made once, in ordinary context): its
//! retires (`Unlinked::retire_local`) go through a lane of its own, with no
//! locked instruction, and stay callable in any context.
//!
//! Half of the writers here may also free (ordinary context, like a data
//! structure's maintenance thread): every 256 replacements they call
//! `reclaim()`, which frees on the calling thread one bite (at most
//! `RECLAIM_BITE` objects) of what has expired, into that thread's own
//! allocator caches. The other half stand for real-time threads: they
//! retire and never free, and the worker frees what they retire.
//!
//! # Why it is correct
//! - **Use after free**: an entry is retired only after `swap` unlinked
//!   it, and freed only a grace period of `Rcu::global()`'s domain later,
//!   so a reader that loaded it under a guard still sees it. Readers check
//!   each entry's `check == !version` and that it was not poisoned by its
//!   `Drop`.
//! - **Freed once**: `swap` hands each old entry to one writer, which
//!   retires its token once, and `reclaim` frees only what the service
//!   gives it: every entry dropped exactly once, checked after
//!   `kvfree_rcu::barrier()`.
//! - `reclaim` may run destructors, so it is called outside any read
//!   section and spinlock (the context checker reports a call in atomic
//!   context).

use kvfree_rcu::{Atomic, LocalRetirer, Owned, RECLAIM_BITE, Rcu};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

static ALLOCATED: AtomicU64 = AtomicU64::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);
const POISON: u64 = u64::MAX;
const SLOTS: usize = 64;
const WRITERS: u64 = 4;
const READERS: u64 = 2;
/// Replacements between two `reclaim` calls on a writer that may free.
const RECLAIM_EVERY: u64 = 256;

struct Entry {
    /// `check == !version`: a reader that sees anything else read a freed
    /// or torn entry.
    version: AtomicU64,
    check: AtomicU64,
}

impl Entry {
    fn owned(version: u64) -> Owned<Entry> {
        ALLOCATED.fetch_add(1, Ordering::Relaxed);
        Owned::new(Entry {
            version: AtomicU64::new(version),
            check: AtomicU64::new(!version),
        })
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.version.store(POISON, Ordering::Relaxed);
        self.check.store(POISON, Ordering::Relaxed);
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

thread_local! {
    /// This thread's handle into the global service, made on first use.
    static LOCAL: RefCell<Option<LocalRetirer<'static>>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's handle (made on first use: ordinary
/// context, as here).
fn with_local<R>(f: impl FnOnce(&LocalRetirer<'static>) -> R) -> R {
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        f(local.get_or_insert_with(|| kvfree_rcu::global().local_retirer()))
    })
}

/// What a writer freed itself through `reclaim`.
#[derive(Default)]
struct Reclaimed {
    objects: u64,
    largest_call: u64,
}

fn writer(table: &[Atomic<Entry>], id: u64, replacements: u64, may_free: bool) -> Reclaimed {
    let mut reclaimed = Reclaimed::default();
    for n in 0..replacements {
        let slot = ((n * 7 + id * 13) % SLOTS as u64) as usize;
        let old = table[slot].swap(Some(Entry::owned(id << 32 | n)));
        if let Some(old) = old {
            // SAFETY: (1) `swap` unlinked it, and the table holds no other
            // link to it; (2) readers use guards of `Rcu::global()`, the
            // global service's domain; (3) `swap` handed it to this thread
            // alone, retired once here.
            with_local(|local| unsafe { old.retire_local(local) });
        }
        if may_free && n % RECLAIM_EVERY == RECLAIM_EVERY - 1 {
            // Ordinary context: no read section or lock held here.
            let freed = with_local(|local| local.reclaim());
            reclaimed.objects += freed;
            reclaimed.largest_call = reclaimed.largest_call.max(freed);
        }
    }
    // The handle's drop hands its open page to the worker; at thread exit
    // the thread-local would do it too.
    LOCAL.with(|local| local.borrow_mut().take());
    reclaimed
}

fn reader(table: &[Atomic<Entry>], stop: &AtomicBool) -> u64 {
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        for slot in table {
            let guard = Rcu::global().read_lock();
            if let Some(entry) = slot.load(&guard).as_ref() {
                let (v, c) = (
                    entry.version.load(Ordering::Relaxed),
                    entry.check.load(Ordering::Relaxed),
                );
                assert!(v != POISON && c == !v, "reader saw a freed entry");
            }
            reads += 1;
        }
    }
    reads
}

fn main() {
    let replacements: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("replacements_per_writer: a number"))
        .unwrap_or(1_000_000);
    let table: Vec<Atomic<Entry>> = (0..SLOTS as u64)
        .map(|i| {
            ALLOCATED.fetch_add(1, Ordering::Relaxed);
            Atomic::new(Entry {
                version: AtomicU64::new(i),
                check: AtomicU64::new(!i),
            })
        })
        .collect();
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (reclaimed, reads) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|_| s.spawn(|| reader(&table, &stop)))
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|id| {
                let table = &table;
                s.spawn(move || writer(table, id, replacements, id % 2 == 0))
            })
            .collect();
        let reclaimed: Vec<Reclaimed> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        stop.store(true, Ordering::Relaxed);
        let reads: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
        (reclaimed, reads)
    });
    let elapsed = start.elapsed();
    kvfree_rcu::barrier();
    let retired = WRITERS * replacements;
    let by_writers: u64 = reclaimed.iter().map(|r| r.objects).sum();
    let largest = reclaimed.iter().map(|r| r.largest_call).max().unwrap_or(0);
    assert!(
        largest <= RECLAIM_BITE,
        "a reclaim call freed {largest} objects"
    );
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        retired,
        "every retired entry dropped exactly once"
    );
    for slot in &table {
        if let Some(entry) = slot.swap(None) {
            // SAFETY: (1) unlinked, no reader left; (2) the global domain;
            // (3) retired once.
            unsafe { entry.retire(kvfree_rcu::global()) };
        }
    }
    kvfree_rcu::barrier();
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        ALLOCATED.load(Ordering::Relaxed),
        "every entry dropped exactly once"
    );
    println!(
        "local_flood: {WRITERS} writers x {replacements} replacements in {:.1} ms \
         ({:.1} ns per replacement per writer), {reads} reads checked; \
         {by_writers} of {retired} entries freed by the writers' own reclaim calls \
         (largest call: {largest} objects, at most {RECLAIM_BITE}), the rest by the worker",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_nanos() as f64 / replacements as f64,
    );
}
