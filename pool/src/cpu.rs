//! Which CPU we run on: only a locality hint for choosing a lane.
//!
//! Ownership of a lane comes from the `swap(BUSY)` on its `open` word, never
//! from the CPU number, so a stale answer (the thread migrated right after
//! asking) costs locality, not correctness. On Linux the answer is libc's
//! `sched_getcpu()`, which glibc (>= 2.35) serves from the rseq area without
//! a syscall (or from the vDSO); an error reads as CPU 0. (rustix's
//! `sched_getcpu` is not used: it makes the `getcpu` syscall where the vDSO
//! has no `getcpu`, e.g. aarch64, and this is on every push.) Elsewhere, and
//! under `--cfg kvfree_portable`, every thread reads CPU 0: threads then
//! start on the same slot and spread over its lanes and, when those are
//! busy, over the others (the push path's fallback), which costs locality
//! only.
//!
//! Miri and loom have no `sched_getcpu`: there a thread-local *simulated* CPU
//! stands in, 0 until a test sets it with [`set_simulated_cpu`], so tests can
//! put two threads on the same lane or move a thread between lanes.

/// Lanes per CPU by default: a producer preempted while it owns a lane makes
/// that lane `BUSY` until it runs again, and the other threads of its CPU
/// then divert to the next lane. Under oversubscription that is not rare:
/// with eight producers on two CPUs, six are off their CPU at any moment,
/// a wake-up preempts one inside its push now and then, and each lane so
/// held stays `BUSY` for milliseconds. With two lanes per CPU 14% of the
/// pushes found their own lane `BUSY`, and 1.5% found every lane busy or
/// dry and fell back while the caches held hundreds of pages; with four
/// (picked by [`lane_rank`]) those fallbacks nearly vanished
/// (docs/BENCHMARKS.md, "Four lanes per CPU"). The lanes' base and
/// allocated caches were halved with it (`Config::default`), so a CPU's
/// pages at rest and its allocated budget under a flood stay the same.
pub(crate) const LANES_PER_CPU: usize = 4;

/// Which of its CPU's lanes this thread uses, below [`LANES_PER_CPU`] (the
/// lane of CPU `c` at rank `r` is lane `c + r * cpus`): fixed at its first push
/// (round-robin over threads), so threads sharing a CPU spread over that
/// CPU's lanes. Natively a destructor-free `const` thread-local (never
/// allocates); 0 under loom and Miri, where tests pick lanes with
/// [`set_simulated_cpu`].
#[cfg(not(any(miri, kvfree_loom)))]
#[inline(always)]
pub(crate) fn lane_rank() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    static NEXT_LANE: AtomicUsize = AtomicUsize::new(0);
    std::thread_local! {
        static LANE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    LANE.try_with(|lane| {
        let mut l = lane.get();
        if l == usize::MAX {
            // Relaxed: a locality hint; any value is correct. Reduced here,
            // once, so that the push path's lane index needs no division.
            l = NEXT_LANE.fetch_add(1, Relaxed) % LANES_PER_CPU;
            lane.set(l);
        }
        l
    })
    .unwrap_or(0)
}

/// Which of its CPU's lanes this thread uses (always 0 under loom and Miri).
#[cfg(any(miri, kvfree_loom))]
#[inline(always)]
pub(crate) fn lane_rank() -> usize {
    0
}

/// The number of per-CPU lanes when [`Config::lanes`](crate::Config::lanes) is
/// `None`: the possible CPUs (2 under loom and Miri).
pub(crate) fn possible_cpus() -> usize {
    if crate::sync::SMALL {
        return 2;
    }
    #[cfg(all(unix, not(any(miri, kvfree_loom))))]
    {
        // SAFETY: sysconf has no preconditions; it only reads system configuration.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
        usize::try_from(n).unwrap_or(1).max(1)
    }
    // Windows and others: the CPUs this process may use (ordinary context:
    // this runs when a pool is created).
    #[cfg(all(not(unix), not(any(miri, kvfree_loom))))]
    {
        std::thread::available_parallelism().map_or(1, usize::from)
    }
    #[cfg(any(miri, kvfree_loom))]
    2
}

/// The CPU this thread is running on (a hint; see the module doc).
#[cfg(not(any(miri, kvfree_loom)))]
#[inline(always)]
pub(crate) fn current() -> usize {
    #[cfg(all(target_os = "linux", not(kvfree_portable)))]
    {
        // SAFETY: sched_getcpu has no preconditions; it is async-signal-safe
        // and, with glibc >= 2.35, reads the rseq area (no syscall).
        let cpu = unsafe { libc::sched_getcpu() };
        usize::try_from(cpu).unwrap_or(0)
    }
    // The portable hint (see the module docs).
    #[cfg(not(all(target_os = "linux", not(kvfree_portable))))]
    0
}

#[cfg(any(miri, kvfree_loom))]
crate::sync::thread_local! {
    static SIMULATED_CPU: crate::sync::Cell<usize> = crate::sync::Cell::new(0);
}

/// The simulated CPU of this thread (loom and Miri only).
#[cfg(any(miri, kvfree_loom))]
#[inline(always)]
pub(crate) fn current() -> usize {
    SIMULATED_CPU.with(|cpu| cpu.get())
}

/// Sets the CPU that this thread's pushes start from (loom and Miri only,
/// where `sched_getcpu` is unavailable). Tests use it to put two producers on
/// one lane, or to "migrate" a producer between pushes.
#[cfg(any(miri, kvfree_loom))]
pub fn set_simulated_cpu(cpu: usize) {
    SIMULATED_CPU.with(|c| c.set(cpu));
}
