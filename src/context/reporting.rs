//! Reporting a violation: the [`ReportMode`], the kinds of [`Violation`],
//! and the async-signal-safe ways out (`write(2)` to stderr, abort).
//!
//! A report counts the violation (process-wide here, per thread in
//! [`tracking`](super::tracking)) and then panics, warns or stays silent.
//! Nothing here allocates or takes a lock before it decides to panic, so it
//! is safe to call from atomic context, a signal handler or the allocator.

use super::tracking;
use crate::sync::Ordering;
use crate::sync::global::{AtomicU8, AtomicU64};
use core::fmt;

/// What the checker does when it finds a violation.
///
/// ```
/// use kvfree_rcu::context::{self, ReportMode};
/// context::set_report_mode(ReportMode::Warn); // log violations, keep going
/// # context::set_report_mode(ReportMode::Panic);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ReportMode {
    /// Panic with a message naming the violation (the default). Violations
    /// found inside the allocator are reported as [`ReportMode::Warn`].
    Panic = 0,
    /// Write one line to stderr (with `write(2)`: no lock, no allocation).
    Warn = 1,
    /// Only count; read the counts with [`violations`] and
    /// [`thread_violations`](super::thread_violations).
    Count = 2,
}

/// A kind of context violation.
///
/// ```
/// use kvfree_rcu::context::{self, ReportMode, Violation};
/// context::set_report_mode(ReportMode::Count);
/// let before = context::thread_violations();
/// context::report(Violation::SleepInAtomic);
/// assert_eq!(context::thread_violations(), before + 1);
/// # context::set_report_mode(ReportMode::Panic);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// A call that may sleep was made in atomic context.
    SleepInAtomic,
    /// Memory was allocated in atomic context (seen by [`CheckedAlloc`](crate::CheckedAlloc)).
    AllocInAtomic,
    /// A sleeping lock was taken while a raw spinlock is held
    /// (lockdep's "Invalid wait context").
    InvalidWaitContext,
    /// An object with an `RcuHead` was retired while already queued.
    DoubleRetire,
    /// A service call that waits for that service's frees (`barrier`,
    /// `shrink`, `run_once`, drop) was made from a destructor the same
    /// service is running. The call does not wait (it would wait for
    /// itself): see `docs/CONTEXTS.md`.
    WaitInsideFree,
    /// A call that waits for a grace period (`barrier`,
    /// `kvfree_rcu_mightsleep`, dropping the service) was made inside a
    /// read-side critical section of the service's grace-period source: it
    /// would wait for itself forever.
    WaitForGpInReadSection,
}

impl Violation {
    fn message(self) -> &'static str {
        match self {
            Violation::SleepInAtomic => {
                "kvfree-rcu: BUG: sleeping function called from atomic context (raw spinlock held or AtomicSection active)"
            }
            Violation::AllocInAtomic => {
                "kvfree-rcu: BUG: memory allocated in atomic context (raw spinlock held or AtomicSection active)"
            }
            Violation::InvalidWaitContext => {
                "kvfree-rcu: BUG: invalid wait context: sleeping SpinLock taken while a RawSpinLock is held"
            }
            Violation::DoubleRetire => {
                "kvfree-rcu: BUG: object retired twice (its RcuHead is already queued)"
            }
            Violation::WaitInsideFree => {
                "kvfree-rcu: BUG: barrier()/shrink()/run_once()/drop of a KvfreeRcu called from a destructor that same service is running"
            }
            Violation::WaitForGpInReadSection => {
                "kvfree-rcu: BUG: Illegal wait for a grace period (barrier(), kvfree_rcu_mightsleep() or drop of a KvfreeRcu) in a read-side critical section of its grace-period source: it would wait for itself forever"
            }
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

static MODE: AtomicU8 = AtomicU8::new(ReportMode::Panic as u8);
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);

/// Sets how violations are reported, process-wide.
///
/// ```
/// use kvfree_rcu::context::{self, ReportMode};
/// context::set_report_mode(ReportMode::Count);
/// # context::set_report_mode(ReportMode::Panic);
/// ```
pub fn set_report_mode(mode: ReportMode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// The current report mode.
///
/// ```
/// use kvfree_rcu::context::{self, ReportMode};
/// if context::report_mode() == ReportMode::Panic {
///     // a violation on this thread would panic
/// }
/// ```
pub fn report_mode() -> ReportMode {
    match MODE.load(Ordering::Relaxed) {
        0 => ReportMode::Panic,
        1 => ReportMode::Warn,
        _ => ReportMode::Count,
    }
}

/// Violations reported in this process so far.
///
/// ```
/// let seen = kvfree_rcu::context::violations();
/// assert!(seen >= kvfree_rcu::context::thread_violations());
/// ```
pub fn violations() -> u64 {
    VIOLATIONS.load(Ordering::Relaxed)
}

/// Reports a violation: counts it, then panics, warns or stays silent
/// according to [`report_mode`].
///
/// # Panics
/// In [`ReportMode::Panic`] (except for [`Violation::AllocInAtomic`]).
///
/// # Example
/// ```
/// use kvfree_rcu::context::{self, ReportMode, Violation};
/// context::set_report_mode(ReportMode::Count);
/// let before = context::thread_violations();
/// context::report(Violation::WaitInsideFree); // counted, no panic
/// assert_eq!(context::thread_violations(), before + 1);
/// # context::set_report_mode(ReportMode::Panic);
/// ```
#[cold]
pub fn report(violation: Violation) {
    VIOLATIONS.fetch_add(1, Ordering::Relaxed);
    tracking::count_violation();
    let mode = report_mode();
    if mode == ReportMode::Panic && violation != Violation::AllocInAtomic {
        panic!("{}", violation.message());
    }
    if mode != ReportMode::Count {
        write_stderr(violation.message());
    }
}

/// One line to stderr with `write(2)`: async-signal-safe, no lock, no allocation.
pub(crate) fn write_stderr(message: &str) {
    #[cfg(all(unix, not(miri)))]
    for part in [message.as_bytes(), b"\n"] {
        // SAFETY: `part` is a valid, initialised byte slice for the duration
        // of the call; write(2) reads at most `part.len()` bytes from it.
        // A short or failed write only loses the warning.
        let _ = unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    #[cfg(any(not(unix), miri))]
    let _ = message;
}

/// Writes `message` to stderr (async-signal-safe) and aborts the process.
#[cold]
pub(crate) fn report_fatal(message: &str) -> ! {
    write_stderr(message);
    std::process::abort()
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_violation() {
        assert!(
            Violation::SleepInAtomic
                .to_string()
                .contains("atomic context")
        );
        assert!(
            Violation::InvalidWaitContext
                .to_string()
                .contains("invalid wait context")
        );
    }
}
