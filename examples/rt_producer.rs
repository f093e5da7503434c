//! A real-time producer: a thread that must never allocate publishes a new
//! buffer at a steady rate and retires the previous one with `kvfree_rcu`,
//! while an ordinary thread reads the current buffer under
//! `Rcu::global().read_lock()`. It uses the raw API (a headed `Box`, an
//! `AtomicPtr`, `kvfree_rcu` on the process-wide service
//! `kvfree_rcu::global()`, created by `init_global()` at start-up) to show
//! exactly what the real-time loop does; `RcuCell::replace_with` with
//! preallocated `Owned` buffers would do the same.
//!
//! Run: `cargo run --release --example rt_producer [buffers]`
//!
//! # The pattern
//! - Before its loop, in ordinary context, the producer registers with the
//!   global RCU domain (`register_current_thread`: the first registration may
//!   allocate) and takes its whole supply of buffers, allocated up front
//!   (here all at once; a real system would hand it preallocated buffers
//!   through a lock-free ring). It could also switch to `SCHED_FIFO` here.
//! - Its loop runs inside an [`AtomicSection`]: each period it fills a
//!   buffer, publishes it with a `swap(AcqRel)`, and retires the previous one
//!   with `KvfreeRcu::kvfree_rcu` on `kvfree_rcu::global()`, which never
//!   fails, allocates, locks or sleeps (a headed object: when the pool has no
//!   page, the embedded `RcuHead` goes onto a lock-free list instead).
//! - The reader loads the current buffer with `Acquire` inside a read
//!   section and checks its contents.
//!
//! # Why it is correct
//! - The swap unlinks the old buffer before it is retired, and the service
//!   frees it a grace period later, so a reader that loaded it before the
//!   swap finishes reading it first.
//! - `Release` (in the `AcqRel` swap) publishes the new buffer's contents to
//!   the reader's `Acquire` load; `Acquire` makes the producer the owner of
//!   the old buffer it retires.
//!
//! # What it proves
//! `CheckedAlloc` is the global allocator: with the context checker on
//! (debug builds, or the `context-check` feature) the producer's loop made
//! zero allocations (`context::thread_allocations()`) and no violation was
//! reported. Every buffer is dropped exactly once, and the reader never saw
//! a torn or freed buffer.

use kvfree_rcu::context::{self, AtomicSection, CHECKS};
use kvfree_rcu::{CheckedAlloc, KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
use std::hint::spin_loop;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CheckedAlloc = CheckedAlloc::system();

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The producer's period.
const PERIOD: Duration = Duration::from_micros(20);
const WORDS: usize = 32;
const POISON: u64 = u64::MAX;

/// One sample buffer: every word holds the sequence number.
struct Buffer {
    words: [AtomicU64; WORDS],
    head: RcuHead,
}
impl_rcu_headed!(Buffer, head);

impl Buffer {
    fn boxed(seq: u64) -> NonNull<Buffer> {
        NonNull::from(Box::leak(Box::new(Buffer {
            words: std::array::from_fn(|_| AtomicU64::new(seq)),
            head: RcuHead::new(),
        })))
    }

    fn fill(&self, seq: u64) {
        for w in &self.words {
            // Relaxed: published by the Release swap that follows.
            w.store(seq, Ordering::Relaxed);
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        for w in &self.words {
            w.store(POISON, Ordering::Relaxed);
        }
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let buffers: u64 = std::env::args()
        .nth(1)
        .map_or(50_000, |s| s.parse().expect("buffers: a number"));
    context::set_report_mode(context::ReportMode::Count);
    // Ordinary context, at start-up: creates the service and its worker, so
    // that the real-time loop never does.
    let service: &'static KvfreeRcu = kvfree_rcu::init_global();
    let rcu: &'static Rcu = Rcu::global();
    let current = Arc::new(AtomicPtr::new(Buffer::boxed(0).as_ptr()));
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let (current, done) = (current.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut reads, mut last) = (0u64, 0u64);
            // Relaxed: only ends the loop; the join orders everything else.
            while !done.load(Ordering::Relaxed) {
                let _guard = rcu.read_lock();
                // SAFETY: loaded inside the read section; buffers are freed
                // only a grace period after the swap that unlinked them.
                let buf = unsafe { &*current.load(Ordering::Acquire) };
                let seq = buf.words[0].load(Ordering::Relaxed);
                assert_ne!(seq, POISON, "reader saw a freed buffer");
                assert!(
                    buf.words.iter().all(|w| w.load(Ordering::Relaxed) == seq),
                    "torn buffer"
                );
                assert!(seq >= last, "sequence went backwards");
                last = seq;
                reads += 1;
            }
            reads
        })
    };

    let producer = {
        let current = current.clone();
        std::thread::spawn(move || {
            // Ordinary context: register, take the supply.
            rcu.register_current_thread().expect("a reader slot");
            let mut supply: Vec<NonNull<Buffer>> = (0..buffers).map(|_| Buffer::boxed(0)).collect();
            let (mut late, mut seq) = (0u64, 0u64);
            let allocations_before = context::thread_allocations();
            let violations_before = context::thread_violations();
            let start = Instant::now();
            {
                let _atomic = AtomicSection::enter();
                let mut deadline = start;
                while let Some(buf) = supply.pop() {
                    deadline += PERIOD;
                    // Busy-wait for the period (an RT thread would sleep with
                    // clock_nanosleep(TIMER_ABSTIME); Instant::now is a vDSO call).
                    if Instant::now() > deadline {
                        late += 1;
                    }
                    while Instant::now() < deadline {
                        spin_loop();
                    }
                    seq += 1;
                    // SAFETY: `buf` is ours: from Box::leak, not yet published.
                    unsafe { buf.as_ref() }.fill(seq);
                    // AcqRel: Release publishes the contents to the reader's
                    // Acquire load; Acquire makes us the owner of `old`.
                    let old = current.swap(buf.as_ptr(), Ordering::AcqRel);
                    // SAFETY: (1) every buffer comes from Box::leak; (2) `old`
                    // was unlinked by the swap above; (3) only this thread
                    // swaps, so each buffer is swapped out, and retired, once.
                    unsafe { service.kvfree_rcu(NonNull::new(old).expect("never null")) };
                }
            }
            let elapsed = start.elapsed();
            let allocations = context::thread_allocations() - allocations_before;
            let violations = context::thread_violations() - violations_before;
            (elapsed, allocations, violations, late)
        })
    };

    let (elapsed, allocations, violations, late) = producer.join().expect("the producer panicked");
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().expect("the reader panicked");
    let last = current.swap(std::ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: both threads have exited: nobody can read the last buffer.
    drop(unsafe { Box::from_raw(last) });
    service.barrier();
    let stats = service.stats();

    println!(
        "rt_producer: {buffers} buffers in {:.3} s ({:.0}/s, period {} us, {late} periods late); reader did {reads} reads",
        elapsed.as_secs_f64(),
        buffers as f64 / elapsed.as_secs_f64(),
        PERIOD.as_micros(),
    );
    println!(
        "  producer loop: {allocations} allocations, {violations} violations (checker {}); pages path {}, head-list fallback {}; dropped {}",
        if CHECKS {
            "on"
        } else {
            "off: build with debug assertions or --features context-check"
        },
        stats.queued_pages,
        stats.queued_heads,
        DROPPED.load(Ordering::Relaxed),
    );
    assert_eq!(allocations, 0, "the real-time loop allocated");
    assert_eq!(
        violations, 0,
        "the context checker reported a violation in the real-time loop"
    );
    assert_eq!(
        DROPPED.load(Ordering::Relaxed),
        buffers + 1,
        "every buffer is freed exactly once"
    );
}
