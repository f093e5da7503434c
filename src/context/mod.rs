//! The debug context checker: `might_sleep()` and lockdep in miniature.
//!
//! Linus's rule for this project: code never *changes behaviour* by guessing
//! the context it runs in; the caller states the context (by which function it
//! calls), and context tracking exists only to catch callers who state it
//! wrongly. So this module only ever *reports*.
//!
//! Each thread keeps three counters in a thread-local that has no destructor
//! (so touching it never allocates, not even from inside the allocator):
//! - raw spinlocks held ([`RawSpinLock`](crate::RawSpinLock) increments it
//!   before spinning and decrements it after unlocking);
//! - atomic sections entered ([`AtomicSection`]: signal handlers and real-time
//!   loops declare themselves with it);
//! - allocations made through [`CheckedAlloc`](crate::CheckedAlloc), so tests
//!   can prove a path allocated nothing.
//!
//! While either of the first two is non-zero the thread is in *atomic
//! context*: sleeping calls ([`might_sleep`], `kvfree_rcu_mightsleep`,
//! `barrier`, `synchronize` through the service) and allocations are
//! violations. A violation is counted (per thread and per process) and then
//! handled by the [`ReportMode`]: panic (the default; allocation reports are
//! never panics, they downgrade to a warning, since unwinding allocates),
//! warn on stderr with an async-signal-safe `write(2)`, or count only.
//!
//! The tracking is compiled in with debug assertions or the `context-check`
//! feature ([`CHECKS`]); otherwise every function here is an empty inline
//! function and release builds pay nothing.
//!
//! ```
//! use kvfree_rcu::{RawSpinLock, context};
//! let lock = RawSpinLock::new(());
//! context::might_sleep(); // ordinary context: fine
//! let guard = lock.lock();
//! assert_eq!(context::in_atomic(), context::CHECKS); // atomic context now
//! drop(guard);
//! ```
//!
//! The toolkit, one concept per file:
//! - tracking: the per-thread counters (`tracking.rs`);
//! - reporting: [`ReportMode`], [`Violation`], [`report`] (`reporting.rs`);
//! - the checks [`might_sleep`] and the read-section check (`checks.rs`);
//! - the token [`Sleepable`] (`token.rs`) and [`AtomicSection`]
//!   (`atomic_section.rs`);
//! - the locks [`RawSpinLock`](crate::RawSpinLock) and
//!   [`SpinLock`](crate::SpinLock) (`locks.rs`);
//! - the checked allocator [`CheckedAlloc`](crate::CheckedAlloc)
//!   (`checked_alloc.rs`).
//!
//! The service's re-entry guard is not here: it protects correctness, so it
//! lives next to the free loop (`src/freeing.rs`).

mod atomic_section;
pub(crate) mod checked_alloc;
mod checks;
pub(crate) mod locks;
mod reporting;
mod token;
mod tracking;

pub use atomic_section::AtomicSection;
pub use checks::might_sleep;
pub(crate) use checks::might_wait_for_grace_period;
pub use reporting::{ReportMode, Violation, report, report_mode, set_report_mode, violations};
pub(crate) use reporting::{report_fatal, write_stderr};
pub use token::Sleepable;
pub(crate) use tracking::{LockClass, lock_acquired, lock_released, note_allocation};
pub use tracking::{in_atomic, raw_locks_held, thread_allocations, thread_violations};

/// Whether context tracking is compiled in (debug assertions or the
/// `context-check` feature).
///
/// ```
/// use kvfree_rcu::context::{self, AtomicSection};
/// let _atomic = AtomicSection::enter();
/// // Without CHECKS the tracking is compiled away.
/// assert_eq!(context::in_atomic(), context::CHECKS);
/// ```
pub const CHECKS: bool = cfg!(any(debug_assertions, feature = "context-check"));
