//! A statistic that retire calls add to from any context: one cache line
//! per possible CPU, so calls on different CPUs never write the same line.
//!
//! A single shared counter on a fallback path bounced its line between the
//! CPUs of every thread that fell back: under a flood at two threads that
//! put 50 to 150 ns on each such call, the tail the fallback exists to
//! avoid. A call adds one to its own CPU's count (`fetch_add`: threads
//! sharing a CPU, and a signal handler interrupting one, may add at once);
//! a reader sums them, which is approximate while calls run, like every
//! statistic.

use crate::sync::{AtomicU64, Ordering};
use crossbeam_utils::CachePadded;

/// A count kept per CPU (see the module docs).
pub(crate) struct PerCpuCount {
    counts: Box<[CachePadded<AtomicU64>]>,
}

impl PerCpuCount {
    /// A zero count with a line for each possible CPU.
    pub(crate) fn per_cpu() -> PerCpuCount {
        PerCpuCount {
            counts: (0..crate::pool::possible_cpus().max(1))
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        }
    }

    /// Adds one on the calling thread's CPU's line. Any context: no
    /// allocation, no lock, no syscall (the CPU number is read as the pool
    /// reads it).
    #[inline]
    pub(crate) fn add_one(&self) {
        let cpu = crate::pool::current_cpu() % self.counts.len();
        // Relaxed: a statistic, ordered with nothing.
        self.counts[cpu].fetch_add(1, Ordering::Relaxed);
    }

    /// The sum over the CPUs.
    pub(crate) fn sum(&self) -> u64 {
        // Relaxed: a statistic.
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}
