//! The reclaim threads' scheduler time slice ([`ReclaimSlice`]).
//!
//! # Why
//! Under oversubscription (more runnable producers than CPUs) the worker
//! wakes every poll interval for a short round (collect, advance the grace
//! period, reap), and then waits for a CPU. Linux's fair scheduler (EEVDF)
//! gives a waking thread a deadline one slice (3 ms by default) after its
//! eligible time, so a running producer is not preempted for it: the worker
//! waits up to a whole tick per round, grace periods come tens of
//! milliseconds apart, and the backlog, the peak memory and the head-list
//! fallbacks grow with them. A short slice (Linux >= 6.12 lets any thread
//! ask for its own, with `sched_setattr`'s `sched_runtime`, between 100 µs
//! and 100 ms) gives the reclaim threads an early deadline: they run soon
//! after they wake, in short turns. Their share of the CPU is unchanged
//! (fair scheduling still decides it), so a producer loses no more time to
//! them than before, only in shorter pieces (measured in
//! docs/BENCHMARKS.md, "Reclaim threads' time slice").
//!
//! # Whose threads, and when
//! Only the service's own threads ask, each once as it starts: the worker
//! and each reclaim helper. The request changes nothing else: it reads the
//! thread's scheduling attributes and writes them back with the slice, and
//! only for the fair policies (`SCHED_OTHER`, `SCHED_BATCH`); a worker
//! started from a real-time thread inherits its policy and keeps it.
//! Kernels before 6.12 ignore the field. The request is an optimisation: on
//! other systems, under Miri, and when the call fails (a seccomp filter),
//! the thread keeps the default slice.

use std::time::Duration;

/// The scheduler time slice the service's reclaim threads (the worker and
/// its helpers) ask for ([`Builder::reclaim_slice`](crate::Builder::reclaim_slice)).
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use kvfree_rcu::{KvfreeRcu, Rcu, ReclaimSlice};
/// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
///     .reclaim_slice(ReclaimSlice::Requested(Duration::from_micros(500)))
///     .build();
/// # drop(service);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReclaimSlice {
    /// Ask the scheduler for this slice (Linux >= 6.12's custom slices for
    /// fair-policy threads; elsewhere as `SchedulerDefault`). Allowed:
    /// 100 µs ..= 100 ms, the kernel's own bounds.
    Requested(Duration),
    /// Leave the scheduler's default slice.
    SchedulerDefault,
}

impl Default for ReclaimSlice {
    /// `Requested(100 µs)`: the shortest slice the kernel grants.
    fn default() -> ReclaimSlice {
        ReclaimSlice::Requested(SHORTEST)
    }
}

/// The kernel's bounds for a requested slice.
pub(crate) const SHORTEST: Duration = Duration::from_micros(100);
/// See [`SHORTEST`].
pub(crate) const LONGEST: Duration = Duration::from_millis(100);

/// Asks the scheduler for `slice` on the calling thread (the worker or a
/// helper, at its start). Ordinary context (two syscalls).
pub(crate) fn request(slice: ReclaimSlice) {
    match slice {
        ReclaimSlice::SchedulerDefault => {}
        ReclaimSlice::Requested(slice) => {
            #[cfg(all(target_os = "linux", not(miri)))]
            let _ = linux::set_own_slice(slice);
            #[cfg(not(all(target_os = "linux", not(miri))))]
            let _ = slice;
        }
    }
}

#[cfg(all(target_os = "linux", not(miri)))]
mod linux {
    use std::time::Duration;

    /// The kernel's `struct sched_attr` (`include/uapi/linux/sched/types.h`,
    /// the version with utilisation clamps: 56 bytes).
    #[repr(C)]
    #[derive(Debug, Default)]
    pub(crate) struct SchedAttr {
        size: u32,
        pub(crate) policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        /// The slice of a fair-policy thread, in nanoseconds (Linux >= 6.12).
        pub(crate) runtime: u64,
        deadline: u64,
        period: u64,
        util_min: u32,
        util_max: u32,
    }

    /// `size_of::<SchedAttr>()`, the `size` the kernel is told.
    const ATTR_SIZE: u32 = size_of::<SchedAttr>() as u32;
    /// The fair policies, whose threads may ask for a slice.
    const SCHED_OTHER: u32 = 0;
    /// See [`SCHED_OTHER`].
    const SCHED_BATCH: u32 = 3;
    /// `sched_attr.flags`: children go back to the default policy.
    const SCHED_FLAG_RESET_ON_FORK: u64 = 0x01;

    /// The calling thread's scheduling attributes.
    pub(crate) fn own_attributes() -> std::io::Result<SchedAttr> {
        let mut attr = SchedAttr::default();
        // SAFETY: sched_getattr(0, ...) reads the calling thread's
        // attributes into `attr`, writing at most `ATTR_SIZE` bytes, which
        // is its size; the flags must be 0.
        let got = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &raw mut attr,
                libc::c_uint::from(ATTR_SIZE),
                0,
            )
        };
        if got != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(attr)
    }

    /// Sets the calling thread's slice to `slice`, keeping its policy, nice
    /// value and clamps; does nothing for a non-fair policy.
    pub(crate) fn set_own_slice(slice: Duration) -> std::io::Result<()> {
        let mut attr = own_attributes()?;
        if attr.policy != SCHED_OTHER && attr.policy != SCHED_BATCH {
            return Ok(());
        }
        attr.size = ATTR_SIZE;
        attr.runtime = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
        // Keep reset-on-fork, the one flag that is thread state; without
        // the SCHED_FLAG_UTIL_CLAMP flags the clamps read back are ignored
        // (left as they are).
        attr.flags &= SCHED_FLAG_RESET_ON_FORK;
        // SAFETY: sched_setattr(0, ...) sets the calling thread's attributes
        // from `attr`, a valid `struct sched_attr` whose `size` is its size;
        // the syscall's own flags argument must be 0.
        let set = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &raw const attr, 0) };
        if set != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(all(test, target_os = "linux", not(miri)))]
mod tests {
    use super::*;

    /// A thread that asks gets the slice (on a kernel that reports slices;
    /// older ones read back 0) and keeps its policy and nice value.
    #[test]
    fn requested_slice_is_set_and_nothing_else_changes() {
        std::thread::spawn(|| {
            // SAFETY: getpriority has no preconditions (errno is not read).
            let nice_before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            let before = linux::own_attributes().expect("sched_getattr");
            request(ReclaimSlice::Requested(Duration::from_micros(300)));
            let after = linux::own_attributes().expect("sched_getattr");
            assert_eq!(after.policy, before.policy);
            if after.runtime != before.runtime {
                assert_eq!(after.runtime, 300_000);
            }
            // SAFETY: getpriority has no preconditions (errno is not read).
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            assert_eq!(
                nice, nice_before,
                "the slice request must keep the nice value"
            );
        })
        .join()
        .unwrap();
    }

    /// `SchedulerDefault` leaves the thread alone.
    #[test]
    fn scheduler_default_changes_nothing() {
        std::thread::spawn(|| {
            let before = linux::own_attributes().expect("sched_getattr");
            request(ReclaimSlice::SchedulerDefault);
            let after = linux::own_attributes().expect("sched_getattr");
            assert_eq!(
                (after.policy, after.runtime),
                (before.policy, before.runtime)
            );
        })
        .join()
        .unwrap();
    }
}
