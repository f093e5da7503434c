//! The reclaim threads' scheduling priority ([`ReclaimPriority`]).
//!
//! # Why
//! Under oversubscription (more runnable producers than CPUs) Linux's fair
//! scheduler (EEVDF) shares the CPUs among runnable threads in proportion
//! to their weights, and a thread's weight is set by its nice value alone.
//! At the same nice value the worker and its helpers are a few threads
//! among many producers: they get a few parts in `P + H + 1` of the CPU
//! time, the worker's rounds come late, grace periods come tens of
//! milliseconds apart, and what waits to be freed, the peak memory and the
//! head-list fallbacks grow with the flood (docs/BENCHMARKS.md, "Reclaim
//! threads' priority"). More helpers help less (four per CPU instead of
//! two took the 8-thread flood's peak from 152 to 128 MiB): the worker's
//! rounds, which hand the helpers their batches, still come late. Weight
//! for the worker alone, or for the helpers alone, got a little over half
//! of what weight for both got.
//!
//! A lower nice value gives the reclaim threads more weight (each step
//! about 1.25x; nice -5 about 3x that of a nice-0 producer), so reclaim
//! keeps up with the producers. The kernel meets the same need for its RCU
//! threads with a priority the system's owner states
//! (`rcutree.kthread_prio`, a real-time one): nothing guesses it. Taking
//! CPU for reclaim is taking it from the producers, so it is opt-in, and
//! lowering a nice value needs a privilege (`CAP_SYS_NICE`, or an
//! `RLIMIT_NICE` that allows it); raising one does not.
//!
//! # Whose threads, and when
//! The worker sets its own nice value as it starts, before its first
//! round, and reports the result to [`Builder::try_build`](crate::Builder::try_build),
//! which waits for it: a request the system refuses is a
//! [`BuildError::Priority`](crate::BuildError::Priority), never a silent
//! change of behaviour, and the worker that could not take it exits before
//! it does anything. Helpers are spawned by the worker and set the same
//! value as they start; should a helper be refused (only if the process's
//! `RLIMIT_NICE` was lowered since the worker started), it runs at the
//! worker's value, which Linux threads inherit from the thread that
//! creates them. The retire path never touches any of this.
//!
//! Per-thread nice values are Linux's: other systems set one for the whole
//! process, so there `Nice` is refused at build time
//! (`std::io::ErrorKind::Unsupported`).

use crate::settings::SettingError;

/// The scheduling priority of the service's reclaim threads (the worker
/// and its helpers), see
/// [`Builder::reclaim_priority`](crate::Builder::reclaim_priority).
///
/// ```
/// use std::sync::Arc;
/// use kvfree_rcu::{BuildError, KvfreeRcu, Rcu, ReclaimPriority};
/// match KvfreeRcu::builder(Arc::new(Rcu::new()))
///     .reclaim_priority(ReclaimPriority::Nice(-5))
///     .try_build()
/// {
///     Ok(service) => drop(service),
///     // Not privileged, or not Linux: the error says which.
///     Err(e @ BuildError::Priority { .. }) => eprintln!("{e}"),
///     Err(e) => panic!("{e}"),
/// }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReclaimPriority {
    /// The priority of the thread that builds the service, which the worker
    /// inherits (the default).
    #[default]
    Inherited,
    /// This nice value, `-20 ..= 19` (lower runs more): Linux only. Below
    /// the building thread's value it needs `CAP_SYS_NICE` or an
    /// `RLIMIT_NICE` that allows it.
    Nice(i8),
}

/// Allowed nice values, the kernel's.
const NICE_RANGE: core::ops::RangeInclusive<i8> = -20..=19;

impl ReclaimPriority {
    /// Checks the value: a nice value outside the kernel's range is the
    /// error.
    pub(crate) fn validate(self) -> Result<(), SettingError> {
        match self {
            ReclaimPriority::Nice(nice) if !NICE_RANGE.contains(&nice) => Err(SettingError::new(
                "reclaim_priority",
                format!("{self:?}"),
                "a nice value in -20..=19",
            )),
            _ => Ok(()),
        }
    }

    /// Gives the calling thread (the worker or a helper, at its start) this
    /// priority. Ordinary context (a syscall). `Inherited` does nothing.
    ///
    /// # Errors
    /// The OS's refusal (`PermissionDenied` when lowering the nice value
    /// needs a privilege the thread lacks), or `Unsupported` for `Nice`
    /// outside Linux.
    pub(crate) fn apply_to_current_thread(self) -> std::io::Result<()> {
        match self {
            ReclaimPriority::Inherited => Ok(()),
            ReclaimPriority::Nice(nice) => set_own_nice(nice),
        }
    }
}

#[cfg(all(any(target_os = "linux", target_os = "android"), not(miri)))]
fn set_own_nice(nice: i8) -> std::io::Result<()> {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // On Linux a nice value belongs to a thread, and PRIO_PROCESS with a
    // thread id sets that thread's alone (setpriority(2), BUGS).
    let who = libc::id_t::try_from(tid).expect("thread ids are positive");
    // SAFETY: setpriority has no memory preconditions; `who` is the
    // calling thread's id.
    let set = unsafe { libc::setpriority(libc::PRIO_PROCESS, who, libc::c_int::from(nice)) };
    if set != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(all(any(target_os = "linux", target_os = "android"), not(miri))))]
fn set_own_nice(_nice: i8) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "per-thread nice values are Linux-only (elsewhere a nice value is the whole process's)",
    ))
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn nice_values_outside_the_kernels_range_are_named() {
        for nice in [-21, 20, i8::MIN, i8::MAX] {
            let err = ReclaimPriority::Nice(nice).validate().unwrap_err();
            assert_eq!(err.setting(), "reclaim_priority");
            assert!(err.to_string().contains("-20..=19"), "{err}");
        }
        for nice in [-20, 0, 19] {
            assert_eq!(ReclaimPriority::Nice(nice).validate(), Ok(()));
        }
        assert_eq!(ReclaimPriority::Inherited.validate(), Ok(()));
    }

    #[test]
    fn inherited_changes_nothing() {
        std::thread::spawn(|| {
            assert!(ReclaimPriority::Inherited.apply_to_current_thread().is_ok());
        })
        .join()
        .unwrap();
    }

    /// Raising a nice value needs no privilege; it is the calling thread's
    /// alone.
    #[cfg(all(target_os = "linux", not(miri)))]
    #[test]
    fn a_higher_nice_value_is_set_on_the_calling_thread_only() {
        // SAFETY: getpriority has no preconditions (errno is not read).
        let own = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let before = own();
        let target = i8::try_from((before + 3).min(19)).unwrap();
        std::thread::spawn(move || {
            ReclaimPriority::Nice(target)
                .apply_to_current_thread()
                .expect("raising a nice value needs no privilege");
            assert_eq!(own(), libc::c_int::from(target));
        })
        .join()
        .unwrap();
        assert_eq!(own(), before, "another thread's nice value changed");
    }

    #[cfg(not(all(any(target_os = "linux", target_os = "android"), not(miri))))]
    #[test]
    fn nice_is_refused_outside_linux() {
        let err = ReclaimPriority::Nice(0)
            .apply_to_current_thread()
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    }
}
