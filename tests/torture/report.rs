//! What a run reports: the soak's progress line, and the summary both the
//! test and the example print.

use super::config::Config;
use super::shared::{AGES, Shared};
use std::fmt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub elapsed: Duration,
    pub readers: usize,
    pub updaters: usize,
    pub reads: u64,
    pub updates: u64,
    /// Reader observations by pipeline age: [0, 1, >=2]. The last must be 0.
    pub ages: [u64; AGES],
    /// (type, created, retired, dropped) per type.
    pub per_type: Vec<(&'static str, u64, u64, u64)>,
    pub stats: kvfree_rcu::Stats,
    pub inline_frees: u64,
    pub barriers: u64,
    pub shrinks: u64,
    pub short_threads: u64,
    pub uses_membarrier: bool,
}

impl Summary {
    /// The summary of a finished run: every thread joined, `stats` taken
    /// after the final `barrier()`, `per_type` checked.
    pub fn collect(
        shared: &Shared,
        config: &Config,
        started: Instant,
        stats: kvfree_rcu::Stats,
        per_type: Vec<(&'static str, u64, u64, u64)>,
    ) -> Summary {
        Summary {
            elapsed: started.elapsed(),
            readers: config.readers,
            updaters: config.updaters,
            reads: shared.reads.load(Ordering::SeqCst),
            updates: shared.updates.load(Ordering::SeqCst),
            ages: std::array::from_fn(|i| shared.ages[i].load(Ordering::SeqCst)),
            per_type,
            stats,
            inline_frees: shared.inline_frees.load(Ordering::SeqCst),
            barriers: shared.barriers.load(Ordering::SeqCst),
            shrinks: shared.shrinks.load(Ordering::SeqCst),
            short_threads: shared.short_threads.load(Ordering::SeqCst),
            uses_membarrier: shared.rcu.uses_membarrier(),
        }
    }
}

/// The soak's progress line, on stderr.
pub fn print_progress(shared: &Shared, started: Instant) {
    let s = shared.service.stats();
    eprintln!(
        "torture: {:>5.0} s: updates {} freed {} queued_heads {} try_failed {} epochs {}",
        started.elapsed().as_secs_f64(),
        shared.counts.retired(),
        s.freed,
        s.queued_heads,
        s.try_failed,
        s.grace_periods
    );
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "torture: {:.1} s, {} readers, {} updaters, membarrier: {}",
            self.elapsed.as_secs_f64(),
            self.readers,
            self.updaters,
            self.uses_membarrier
        )?;
        writeln!(f, "  reads: {}  updates: {}", self.reads, self.updates)?;
        writeln!(
            f,
            "  reader pipeline ages: 0: {}  1: {}  >=2 (failures): {}",
            self.ages[0], self.ages[1], self.ages[2]
        )?;
        for (name, created, retired, dropped) in &self.per_type {
            writeln!(
                f,
                "  {name:<13} created {created:>10}  retired {retired:>10}  dropped {dropped:>10}"
            )?;
        }
        self.fmt_service(f)
    }
}

impl Summary {
    /// The service's counters and the maintenance thread's.
    fn fmt_service(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "  service: queued_pages {}  queued_heads {}  try_failed {}  freed {}  freed_inline {}  (harness inline frees {})",
            s.queued_pages,
            s.queued_heads,
            s.try_failed,
            s.freed,
            s.freed_inline,
            self.inline_frees
        )?;
        writeln!(
            f,
            "  pages: allocated {}  live {}  alloc_failures {}  refill_requests {}  batches {}  worker_wakeups {}",
            s.pages_allocated,
            s.pages_live,
            s.alloc_failures,
            s.refill_requests,
            s.batches,
            s.worker_wakeups
        )?;
        write!(
            f,
            "  epochs advanced: {}  barriers: {}  shrinks: {}  short-lived retiring threads: {}",
            s.grace_periods, self.barriers, self.shrinks, self.short_threads
        )
    }
}
