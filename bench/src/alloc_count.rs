//! A counting global allocator for the main job and the benches.
//!
//! Two questions need the allocator's help:
//! - *does the retire call allocate?* Each thread counts its own allocations
//!   in a plain thread-local `Cell` (no atomics, no destructor), so a caller
//!   reads [`thread_allocations`] before and after a call and subtracts;
//! - *how much memory is waiting to be freed?* Only while a [`PeakSampler`]
//!   runs (the criterion flood bench), live heap bytes are kept in
//!   cache-padded per-thread shards (a thread picks its shard once, from a
//!   counter), each updated with one uncontended `fetch_add`; [`live_bytes`]
//!   sums them. Otherwise (the main job, which reports the peak RSS instead)
//!   an allocation costs one more load and branch. The reason: on x86-64 a
//!   `fetch_add` is a locked instruction, a full barrier that waits for the
//!   thread's earlier stores, and a thread that frees objects another CPU
//!   wrote (every scheme that frees on a reclaim thread) then waits for each
//!   free's store into the chunk: the harness's own counting made those
//!   schemes slower than any application would see (docs/BENCHMARKS.md,
//!   "The harness's own barriers").
//!
//! Install it with `#[global_allocator] static A: CountingAlloc = CountingAlloc;`
//! (the main binary and every bench do). Without it the counters stay at 0
//! and [`is_installed`] says so.
//!
//! The allocator underneath is the system's (glibc malloc on Linux) by
//! default, or mimalloc with the `mimalloc` feature; [`ALLOCATOR`] names it.
//! The choice matters for every scheme that frees on another thread than
//! the one that allocated (kvfree-rcu, naive call_rcu, liburcu): glibc
//! returns such a chunk through the owning arena's lock, and the producer's
//! thread cache is never refilled by it; mimalloc pushes it onto the owning
//! page's delayed-free list with one atomic operation.

use crossbeam_utils::CachePadded;
use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};

#[cfg(not(feature = "mimalloc"))]
use std::alloc::System as Inner;

#[cfg(feature = "mimalloc")]
use mimalloc::MiMalloc as Inner;

/// The allocator [`CountingAlloc`] forwards to: `"system"` (glibc malloc on
/// Linux) or `"mimalloc"` (feature `mimalloc`).
pub const ALLOCATOR: &str = if cfg!(feature = "mimalloc") {
    "mimalloc"
} else {
    "system"
};

const SHARDS: usize = 64;
const NO_SHARD: usize = usize::MAX;

static LIVE: [CachePadded<AtomicI64>; SHARDS] =
    [const { CachePadded::new(AtomicI64::new(0)) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
/// [`PeakSampler`]s running now.
static SAMPLERS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static SHARD: Cell<usize> = const { Cell::new(NO_SHARD) };
}

/// Forwards to the [`ALLOCATOR`] (the system's or mimalloc) and counts (see
/// the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingAlloc;

fn shard() -> &'static AtomicI64 {
    let index = SHARD
        .try_with(|s| {
            if s.get() == NO_SHARD {
                // Relaxed: only spreads threads over shards.
                s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or(0);
    &LIVE[index]
}

/// Whether a [`PeakSampler`] is running: live bytes are counted only then.
fn counting_live() -> bool {
    // Relaxed: a switch with no data behind it. An allocation that misses
    // a sampler's start or end by a moment is not counted (see
    // `PeakSampler::start`).
    SAMPLERS.load(Ordering::Relaxed) != 0
}

fn note_alloc(bytes: usize) {
    // `try_with`: during thread teardown the thread-locals may be gone; the
    // allocation is then simply not attributed to the thread.
    let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
    if counting_live() {
        // Relaxed: a statistic summed by a sampler; no data is published.
        shard().fetch_add(bytes as i64, Ordering::Relaxed);
    }
}

fn note_free(bytes: usize) {
    if counting_live() {
        // Relaxed: as in `note_alloc`.
        shard().fetch_sub(bytes as i64, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `Inner` (System or MiMalloc) with the
// caller's arguments unchanged, so Inner's implementation of the GlobalAlloc contract is ours;
// the counting neither allocates nor unwinds.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded contract (non-zero size).
        unsafe { Inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded contract.
        unsafe { Inner.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: forwarded contract (`ptr` came from this allocator with `layout`).
        unsafe { Inner.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: forwarded contract.
        unsafe { Inner.dealloc(ptr, layout) }
    }
}

/// Allocations made by the current thread so far (0 if the allocator is not
/// installed).
#[inline]
pub fn thread_allocations() -> u64 {
    ALLOCATIONS.try_with(Cell::get).unwrap_or(0)
}

/// Heap bytes allocated and not yet freed, process-wide (a sum of shards
/// read one by one: approximate while other threads allocate).
pub fn live_bytes() -> i64 {
    // Relaxed: a statistic.
    LIVE.iter().map(|s| s.load(Ordering::Relaxed)).sum()
}

/// Checks, once, whether [`CountingAlloc`] is the global allocator (an
/// allocation on this thread bumps the counter), and remembers the answer.
pub fn is_installed() -> bool {
    // Relaxed: a cached fact about the process.
    if INSTALLED.load(Ordering::Relaxed) {
        return true;
    }
    let before = thread_allocations();
    drop(std::hint::black_box(Box::new(0u64)));
    let yes = thread_allocations() > before;
    INSTALLED.store(yes, Ordering::Relaxed);
    yes
}

/// Samples [`live_bytes`] on a background thread and keeps the peak above
/// the baseline taken at [`PeakSampler::start`].
#[derive(Debug)]
pub struct PeakSampler {
    stop: std::sync::Arc<AtomicBool>,
    handle: std::thread::JoinHandle<i64>,
    baseline: i64,
}

impl PeakSampler {
    /// Starts sampling every `interval`.
    pub fn start(interval: std::time::Duration) -> PeakSampler {
        // Relaxed: the switch of `counting_live`, with no data behind it.
        // Allocations and frees that do not see it yet go uncounted. None
        // of the run's own objects is among them: its threads are spawned
        // after this call (the spawn orders this increment before their
        // allocations), and whoever frees an object got it through the
        // scheme's synchronisation, after its allocation, so by coherence it
        // reads this increment or a later value too.
        SAMPLERS.fetch_add(1, Ordering::Relaxed);
        let baseline = live_bytes();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("peak-sampler".into())
            .spawn(move || {
                let mut peak = live_bytes();
                // Acquire: pairs with the Release store in `finish`.
                while !flag.load(Ordering::Acquire) {
                    peak = peak.max(live_bytes());
                    std::thread::sleep(interval);
                }
                peak.max(live_bytes())
            })
            .expect("spawn the peak sampler");
        PeakSampler {
            stop,
            handle,
            baseline,
        }
    }

    /// Stops sampling; returns the peak live bytes above the baseline.
    pub fn finish(self) -> u64 {
        // Release: pairs with the sampler's Acquire load.
        self.stop.store(true, Ordering::Release);
        let peak = self.handle.join().expect("peak sampler panicked");
        // Relaxed: as in `start`.
        SAMPLERS.fetch_sub(1, Ordering::Relaxed);
        (peak - self.baseline).max(0) as u64
    }
}
