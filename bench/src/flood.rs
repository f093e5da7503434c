//! The flood: the kernel's rcuscale `kfree_rcu` test. Each of `threads`
//! threads allocates a 24-byte object and retires it, `objects` times per
//! loop for `loops` loops, as fast as it can; then the main thread waits for
//! the last free.
//!
//! Measured per run:
//! - the time from the start signal to the last free (`elapsed`), the
//!   flood's end-to-end cost;
//! - sampled retire-call latency: about one call in `sample_every` is timed
//!   with the calibrated [`Timer`] (the gap between samples is drawn
//!   uniformly from `sample_every/2 .. sample_every*3/2` with a per-thread
//!   xorshift, so sampling cannot lock onto a scheme's own period, such as
//!   crossbeam-epoch's bag of 64); the countdown to the next sample is the
//!   only cost on the calls not timed;
//! - syscalls made by the retiring threads during their alloc + retire loop,
//!   and how many of them manage memory (the allocator's)
//!   ([`SyscallCounter`], when `syscalls` is [`SyscallCounting::Perf`] and
//!   the system allows it);
//! - allocations made inside retire calls: the thread's allocation count
//!   over the loop less the loop's own one per object (exact, and free: no
//!   per-call counting);
//! - optionally the peak of live heap bytes above the start ([`HeapPeak`]:
//!   a sampler thread, which the main job leaves off because each of its
//!   runs is a fresh process whose peak RSS says more);
//! - grace periods and fast-path misses, from the scheme's own counters.
//!
//! With [`LoopMarkers::Stderr`] each retiring thread writes
//! `flood-loop-start tid=N` to stderr (one `write`) just before its loop and
//! `flood-loop-end tid=N` just after (each one `write(2)`), so a tracer (`bench/syscalls.sh`,
//! under strace) can cut each thread's syscalls down to the loop.

use crate::alloc_count::{PeakSampler, thread_allocations};
use crate::object::{FloodObj, freed_objects};
use crate::schemes::Scheme;
use crate::syscall_count::{SyscallCounter, SyscallCounts, Tracepoints, tracepoints};
use crate::timer::Timer;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Whether the retiring threads count their syscalls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyscallCounting {
    /// A perf counter on `raw_syscalls:sys_enter` per retiring thread (Linux).
    Perf,
    /// No counting (for runs under strace, which counts them itself).
    Off,
}

/// Whether a sampler thread tracks the peak of live heap bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeapPeak {
    /// Sample [`live_bytes`](crate::alloc_count::live_bytes) every 250 µs.
    Sampled,
    /// No sampler thread.
    NotSampled,
}

/// Whether the retiring threads mark their loop on stderr (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopMarkers {
    /// No markers.
    Off,
    /// One `write` to stderr before and after each thread's loop.
    Stderr,
}

/// The flood's parameters.
#[derive(Clone, Copy, Debug)]
pub struct FloodConfig {
    /// Retiring threads.
    pub threads: usize,
    /// Objects each thread allocates and retires per loop (rcuscale's `kfree_alloc_num`).
    pub objects: usize,
    /// Loops per thread (rcuscale's `kfree_loops`).
    pub loops: usize,
    /// Time about one retire call in this many (0: none).
    pub sample_every: usize,
    /// Count the retiring threads' syscalls?
    pub syscalls: SyscallCounting,
    /// Track the peak of live heap bytes?
    pub heap_peak: HeapPeak,
    /// Mark each thread's loop on stderr?
    pub loop_markers: LoopMarkers,
}

impl FloodConfig {
    /// A flood with latency sampling and syscall counting off, no heap
    /// sampler and no markers (the criterion bench's).
    pub fn plain(threads: usize, objects: usize, loops: usize) -> FloodConfig {
        FloodConfig {
            threads,
            objects,
            loops,
            sample_every: 0,
            syscalls: SyscallCounting::Off,
            heap_peak: HeapPeak::NotSampled,
            loop_markers: LoopMarkers::Off,
        }
    }

    /// Objects each thread retires in one run.
    pub fn per_thread(&self) -> usize {
        self.objects * self.loops
    }

    /// Objects retired in one run.
    pub fn total(&self) -> u64 {
        (self.threads * self.per_thread()) as u64
    }
}

/// What one flood run measured.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FloodRun {
    /// From the start signal to the last free.
    pub elapsed: Duration,
    /// Objects retired.
    pub retired: u64,
    /// Allocations made inside retire calls, all threads.
    pub allocs_in_retire: u64,
    /// Syscalls the retiring threads made in their loops, if counted on
    /// every thread.
    pub syscalls: Option<u64>,
    /// Those of them that manage memory (mmap, brk, madvise...: the
    /// allocator's), if counted on every thread.
    pub memory_syscalls: Option<u64>,
    /// Peak live heap bytes above the run's starting point, if sampled.
    pub peak_heap_bytes: Option<u64>,
    /// Grace periods (epochs) the scheme's domain completed during the run.
    pub grace_periods: Option<u64>,
    /// Retire calls that missed the scheme's fast path, if it has one.
    pub fallbacks: Option<u64>,
    /// The largest backlog (objects retired and not yet freed) the scheme
    /// saw, if it keeps such a mark ([`Scheme::peak_backlog`]: since the
    /// scheme was built, so a scheme that ran earlier floods counts them).
    pub peak_backlog: Option<u64>,
    /// Sampled retire-call latencies, nanoseconds (timer cost included).
    pub latencies_ns: Vec<u64>,
}

/// The gaps between timed calls (see the module docs).
struct SampleGaps {
    mean: usize,
    state: u64,
}

impl SampleGaps {
    fn new(mean: usize, thread: usize) -> SampleGaps {
        SampleGaps {
            mean,
            // Any non-zero seed; distinct per thread.
            state: 0x9E37_79B9_7F4A_7C15 ^ (thread as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
        }
    }

    /// Calls until the next timed one (never, when sampling is off).
    fn next(&mut self) -> usize {
        match self.mean {
            0 => usize::MAX,
            1 => 1,
            mean => {
                // xorshift64
                self.state ^= self.state << 13;
                self.state ^= self.state >> 7;
                self.state ^= self.state << 17;
                mean / 2 + (self.state % mean as u64) as usize
            }
        }
    }

    /// The most samples `calls` calls can take (the shortest gap every time).
    fn most_samples(&self, calls: usize) -> usize {
        match self.mean {
            0 => 0,
            mean => calls / (mean / 2).max(1) + 1,
        }
    }
}

/// The OS thread id (what strace names its per-thread files by).
fn os_thread_id() -> u64 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_gettid) as u64 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// Writes a loop marker for thread `tid` (looked up before the loop, so
/// the lookup's own syscall is outside it): one `write(2)` of the whole
/// line, straight to the file descriptor (Rust's `Stderr` takes a lock that
/// other threads' markers would contend for, adding futex calls).
fn mark(markers: LoopMarkers, what: &str, tid: u64) {
    if markers == LoopMarkers::Stderr {
        let line = format!("flood-loop-{what} tid={tid}\n");
        #[cfg(unix)]
        // SAFETY: writes `line.len()` initialised bytes from a live buffer
        // to fd 2 (a write to a closed fd just fails).
        unsafe {
            libc::write(2, line.as_ptr().cast(), line.len());
        }
        #[cfg(not(unix))]
        {
            use std::io::Write;
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }
}

/// What one retiring thread measured.
struct ThreadRun {
    latencies_ns: Vec<u64>,
    allocs_in_retire: u64,
    syscalls: Option<SyscallCounts>,
    /// Closed only after the clock stops (closing the last counter
    /// unregisters the tracepoint, which takes milliseconds).
    _counter: Option<SyscallCounter>,
}

/// One thread's share of the flood.
fn retire_thread<S: Scheme + ?Sized>(
    scheme: &S,
    cfg: &FloodConfig,
    index: usize,
    tracepoints: Option<&Tracepoints>,
    start: &Barrier,
) -> ThreadRun {
    scheme.register_thread();
    let counter = match cfg.syscalls {
        SyscallCounting::Perf => SyscallCounter::open(tracepoints),
        SyscallCounting::Off => None,
    };
    let timer = Timer::get();
    let per_thread = cfg.per_thread();
    let mut gaps = SampleGaps::new(cfg.sample_every, index);
    let mut ticks = Vec::with_capacity(gaps.most_samples(per_thread));
    let tid = match cfg.loop_markers {
        LoopMarkers::Stderr => os_thread_id(),
        LoopMarkers::Off => 0,
    };
    start.wait();
    mark(cfg.loop_markers, "start", tid);
    let syscalls_before = counter.as_ref().and_then(SyscallCounter::read);
    let allocs_before = thread_allocations();
    let mut countdown = gaps.next();
    for _ in 0..cfg.loops {
        for i in 0..cfg.objects {
            let obj = FloodObj::alloc(i as u64);
            countdown -= 1;
            if countdown == 0 {
                countdown = gaps.next();
                let t0 = timer.ticks();
                // SAFETY: a fresh FloodObj::alloc object, never shared, retired once.
                unsafe { scheme.retire(obj) };
                let t1 = timer.ticks();
                ticks.push(t1.saturating_sub(t0));
            } else {
                // SAFETY: as above.
                unsafe { scheme.retire(obj) };
            }
        }
    }
    let allocs = thread_allocations() - allocs_before;
    let syscalls = counter
        .as_ref()
        .zip(syscalls_before)
        .and_then(|(c, before)| c.syscalls_since(before));
    mark(cfg.loop_markers, "end", tid);
    scheme.flush_thread();
    scheme.unregister_thread();
    ThreadRun {
        latencies_ns: ticks.iter().map(|&t| timer.ns_between(0, t)).collect(),
        // The loop's own FloodObj::alloc calls are one per object.
        allocs_in_retire: allocs.saturating_sub(per_thread as u64),
        syscalls,
        _counter: counter,
    }
}

/// Runs one flood and waits for the last free.
pub fn run_flood<S: Scheme + ?Sized>(scheme: &S, cfg: &FloodConfig) -> FloodRun {
    let target = freed_objects() + cfg.total();
    let gp_before = scheme.grace_periods();
    let fallbacks_before = scheme.fallbacks();
    let tracepoints = match cfg.syscalls {
        SyscallCounting::Perf => tracepoints(),
        SyscallCounting::Off => None,
    };
    let sampler = match cfg.heap_peak {
        HeapPeak::Sampled => Some(PeakSampler::start(Duration::from_micros(250))),
        HeapPeak::NotSampled => None,
    };
    let start = Barrier::new(cfg.threads + 1);
    let (elapsed, threads) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..cfg.threads)
            .map(|index| {
                let (start, tracepoints) = (&start, tracepoints.as_ref());
                std::thread::Builder::new()
                    .name(format!("flood-{index}"))
                    .spawn_scoped(s, move || {
                        retire_thread(scheme, cfg, index, tracepoints, start)
                    })
                    .expect("spawn a flood thread")
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let threads: Vec<ThreadRun> = handles
            .into_iter()
            .map(|h| h.join().expect("flood thread panicked"))
            .collect();
        scheme.barrier();
        while freed_objects() < target {
            std::thread::yield_now();
            scheme.barrier();
        }
        (t0.elapsed(), threads)
    });
    let run = FloodRun {
        elapsed,
        retired: cfg.total(),
        allocs_in_retire: threads.iter().map(|t| t.allocs_in_retire).sum(),
        syscalls: threads.iter().map(|t| t.syscalls.map(|s| s.all)).sum(),
        memory_syscalls: threads
            .iter()
            .map(|t| t.syscalls.and_then(|s| s.memory))
            .sum(),
        peak_heap_bytes: sampler.map(PeakSampler::finish),
        grace_periods: scheme
            .grace_periods()
            .zip(gp_before)
            .map(|(after, before)| after - before),
        fallbacks: scheme
            .fallbacks()
            .zip(fallbacks_before)
            .map(|(after, before)| after - before),
        peak_backlog: scheme.peak_backlog(),
        latencies_ns: threads
            .iter()
            .flat_map(|t| t.latencies_ns.iter().copied())
            .collect(),
    };
    // The counters close here, after the clock stopped.
    drop(threads);
    run
}
