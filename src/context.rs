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

use crate::sync::global::{AtomicU8, AtomicU64};
use crate::sync::{Ordering, thread_local};
use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;

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
    /// [`thread_violations`].
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

/// Which kernel lock a held spinning lock stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LockClass {
    /// `raw_spinlock_t` ([`RawSpinLock`](crate::RawSpinLock)): never sleeps,
    /// even under PREEMPT_RT; no sleeping lock may be taken inside it.
    Raw,
    /// `spinlock_t` without `rt` ([`SpinLock`](crate::SpinLock)): spins, so
    /// its holder is in atomic context, but another `spinlock_t` may nest
    /// inside it (under PREEMPT_RT both would sleep).
    #[cfg_attr(feature = "rt", allow(dead_code))]
    Spin,
}

struct ThreadContext {
    raw_locks: Cell<u32>,
    /// Spinning `SpinLock`s held (without `rt`).
    spin_locks: Cell<u32>,
    atomic_sections: Cell<u32>,
    allocations: Cell<u64>,
    violations: Cell<u64>,
}

impl ThreadContext {
    /// Holding a raw spinlock or inside an `AtomicSection`.
    fn is_atomic(&self) -> bool {
        self.raw_locks.get() + self.spin_locks.get() + self.atomic_sections.get() > 0
    }

    const fn new() -> ThreadContext {
        ThreadContext {
            raw_locks: Cell::new(0),
            spin_locks: Cell::new(0),
            atomic_sections: Cell::new(0),
            allocations: Cell::new(0),
            violations: Cell::new(0),
        }
    }
}

// `const` initialisation: no lazy-init state, no destructor, so touching it
// never allocates (it runs inside the global allocator). Loom's macro has no
// `const` form.
#[cfg(not(kvfree_loom))]
thread_local! {
    static CONTEXT: ThreadContext = const { ThreadContext::new() };
}
#[cfg(kvfree_loom)]
thread_local! {
    static CONTEXT: ThreadContext = ThreadContext::new();
}

static MODE: AtomicU8 = AtomicU8::new(ReportMode::Panic as u8);
static VIOLATIONS: AtomicU64 = AtomicU64::new(0);

#[inline]
fn with<R>(f: impl FnOnce(&ThreadContext) -> R) -> Option<R> {
    // `try_with`: the thread-local has no destructor, but a thread in the
    // middle of tearing down its other thread-locals may still call in.
    CONTEXT.try_with(f).ok()
}

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

/// Violations reported on this thread so far (useful in tests, which run in
/// parallel threads of one process).
///
/// ```
/// use kvfree_rcu::context;
/// let before = context::thread_violations();
/// context::might_sleep(); // ordinary context: no violation
/// assert_eq!(context::thread_violations(), before);
/// ```
pub fn thread_violations() -> u64 {
    with(|c| c.violations.get()).unwrap_or(0)
}

/// Allocations this thread made through [`CheckedAlloc`](crate::CheckedAlloc)
/// (always 0 when it is not the global allocator, or without [`CHECKS`]).
///
/// ```
/// use kvfree_rcu::context;
/// // Counts only when `CheckedAlloc` is the `#[global_allocator]`.
/// let before = context::thread_allocations();
/// let v = vec![1u8; 16];
/// assert!(context::thread_allocations() >= before);
/// # drop(v);
/// ```
pub fn thread_allocations() -> u64 {
    with(|c| c.allocations.get()).unwrap_or(0)
}

/// True while this thread holds a raw spinlock or is inside an
/// [`AtomicSection`]. Always false without [`CHECKS`]. For assertions and
/// reports only: never branch behaviour on it.
///
/// ```
/// use kvfree_rcu::{RawSpinLock, context};
/// let lock = RawSpinLock::new(());
/// assert!(!context::in_atomic());
/// let guard = lock.lock();
/// assert_eq!(context::in_atomic(), context::CHECKS);
/// drop(guard);
/// assert!(!context::in_atomic());
/// ```
#[inline]
pub fn in_atomic() -> bool {
    CHECKS && with(ThreadContext::is_atomic).unwrap_or(false)
}

/// Number of raw spinlocks ([`RawSpinLock`](crate::RawSpinLock)) this
/// thread holds (0 without [`CHECKS`]); a spinning
/// [`SpinLock`](crate::SpinLock) is not one.
///
/// ```
/// use kvfree_rcu::{RawSpinLock, context};
/// let lock = RawSpinLock::new(());
/// let guard = lock.lock();
/// assert_eq!(context::raw_locks_held(), u32::from(context::CHECKS));
/// drop(guard);
/// assert_eq!(context::raw_locks_held(), 0);
/// ```
pub fn raw_locks_held() -> u32 {
    if CHECKS {
        with(|c| c.raw_locks.get()).unwrap_or(0)
    } else {
        0
    }
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
    with(|c| c.violations.set(c.violations.get() + 1));
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

/// Asserts (in checked builds) that the caller may sleep: reports
/// [`Violation::SleepInAtomic`] when a raw spinlock is held or an
/// [`AtomicSection`] is active. The kernel's `might_sleep()`.
///
/// ```
/// kvfree_rcu::context::might_sleep(); // fine: ordinary context
/// ```
#[inline]
#[track_caller]
pub fn might_sleep() {
    if in_atomic() {
        report(Violation::SleepInAtomic);
    }
}

/// Reports [`Violation::WaitForGpInReadSection`] (in checked builds) when the
/// calling thread is inside a read-side critical section of `gp`, on every
/// call that may wait for one of its grace periods, whether or not it ends
/// up waiting (as `might_sleep()` does). lockdep's "Illegal
/// synchronize_rcu() in RCU read-side critical section".
#[inline]
pub(crate) fn might_wait_for_grace_period<G: crate::gp::GracePeriod>(gp: &G) {
    if CHECKS && gp.current_thread_in_read_section() {
        report(Violation::WaitForGpInReadSection);
    }
}

/// Proof, at the type level, that the holder may sleep (Rust for Linux style).
///
/// Make one at the top of ordinary-context code ([`Sleepable::new`] checks
/// the claim in checked builds). Sleeping calls that take `&Sleepable`
/// ([`KvfreeRcu::kvfree_rcu_mightsleep_in`](crate::KvfreeRcu::kvfree_rcu_mightsleep_in),
/// [`KvfreeRcu::barrier_in`](crate::KvfreeRcu::barrier_in)) cannot be called
/// while a raw spinlock taken with
/// [`RawSpinLock::lock_in`](crate::RawSpinLock::lock_in) is held, because
/// that guard borrows the token mutably:
///
/// ```compile_fail
/// use std::{ptr::NonNull, sync::Arc};
/// use kvfree_rcu::{KvfreeRcu, RawSpinLock, Rcu, context::Sleepable};
/// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
/// let lock = RawSpinLock::new(());
/// let mut ctx = Sleepable::new();
/// let guard = lock.lock_in(&mut ctx);
/// let p = NonNull::from(Box::leak(Box::new(1u32)));
/// // SAFETY: from Box::leak, never published, retired once.
/// unsafe { service.kvfree_rcu_mightsleep_in(&ctx, p) }; // error: `ctx` is mutably borrowed
/// drop(guard);
/// ```
///
/// Once the guard is gone the token is usable again:
///
/// ```
/// use std::{ptr::NonNull, sync::Arc};
/// use kvfree_rcu::{KvfreeRcu, RawSpinLock, Rcu, context::Sleepable};
/// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
/// let lock = RawSpinLock::new(());
/// let mut ctx = Sleepable::new();
/// drop(lock.lock_in(&mut ctx));
/// let p = NonNull::from(Box::leak(Box::new(1u32)));
/// // SAFETY: from Box::leak, never published, retired once.
/// unsafe { service.kvfree_rcu_mightsleep_in(&ctx, p) };
/// service.barrier_in(&ctx);
/// ```
#[derive(Debug)]
pub struct Sleepable {
    _not_send: PhantomData<*const ()>,
}

// No `Default`: claiming that a thread may sleep should be a visible call.
#[allow(clippy::new_without_default)]
impl Sleepable {
    /// Claims that this thread may sleep here; checked builds report the
    /// claim when it is false ([`might_sleep`]).
    ///
    /// ```
    /// use kvfree_rcu::context::Sleepable;
    /// let ctx = Sleepable::new(); // ordinary context: may sleep
    /// # drop(ctx);
    /// ```
    #[track_caller]
    pub fn new() -> Sleepable {
        might_sleep();
        Sleepable {
            _not_send: PhantomData,
        }
    }
}

/// Declares the current thread to be in atomic context until dropped: put
/// one at the top of a signal handler or around a real-time loop. Nestable,
/// `!Send`; costs nothing without [`CHECKS`].
///
/// ```
/// use kvfree_rcu::context::{AtomicSection, in_atomic};
/// {
///     let _atomic = AtomicSection::enter();
///     assert_eq!(in_atomic(), kvfree_rcu::context::CHECKS);
/// }
/// assert!(!in_atomic());
/// ```
#[must_use = "the section ends when this guard is dropped"]
#[derive(Debug)]
pub struct AtomicSection {
    _not_send: PhantomData<*const ()>,
}

impl AtomicSection {
    /// Enters an atomic section.
    ///
    /// ```
    /// use kvfree_rcu::context::{AtomicSection, might_sleep};
    /// // A real-time loop or a signal handler:
    /// let section = AtomicSection::enter();
    /// // ... only atomic-context calls here (no `might_sleep()` callers) ...
    /// drop(section);
    /// might_sleep(); // fine again
    /// ```
    #[inline]
    pub fn enter() -> AtomicSection {
        if CHECKS {
            with(|c| c.atomic_sections.set(c.atomic_sections.get() + 1));
        }
        AtomicSection {
            _not_send: PhantomData,
        }
    }
}

impl Drop for AtomicSection {
    #[inline]
    fn drop(&mut self) {
        if CHECKS {
            with(|c| {
                c.atomic_sections
                    .set(c.atomic_sections.get().saturating_sub(1))
            });
        }
    }
}

impl ThreadContext {
    fn held(&self, class: LockClass) -> &Cell<u32> {
        match class {
            LockClass::Raw => &self.raw_locks,
            LockClass::Spin => &self.spin_locks,
        }
    }
}

#[inline]
pub(crate) fn lock_acquired(class: LockClass) {
    if CHECKS {
        with(|c| c.held(class).set(c.held(class).get() + 1));
    }
}

#[inline]
pub(crate) fn lock_released(class: LockClass) {
    if CHECKS {
        with(|c| c.held(class).set(c.held(class).get().saturating_sub(1)));
    }
}

/// Counts an allocation and reports it when in atomic context. Called by
/// `CheckedAlloc` from inside the global allocator: touches only the
/// destructor-free thread-local.
#[inline]
pub(crate) fn note_allocation() {
    if CHECKS {
        let atomic = with(|c| {
            c.allocations.set(c.allocations.get() + 1);
            c.is_atomic()
        });
        if atomic == Some(true) {
            report(Violation::AllocInAtomic);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_section_nests() {
        assert!(!in_atomic());
        let a = AtomicSection::enter();
        let b = AtomicSection::enter();
        assert_eq!(in_atomic(), CHECKS);
        drop(b);
        assert_eq!(in_atomic(), CHECKS);
        drop(a);
        assert!(!in_atomic());
    }

    #[test]
    fn might_sleep_in_atomic_panics_in_checked_builds() {
        let before = thread_violations();
        let result = std::panic::catch_unwind(|| {
            let _a = AtomicSection::enter();
            might_sleep();
        });
        assert_eq!(result.is_err(), CHECKS);
        assert_eq!(thread_violations() - before, u64::from(CHECKS));
        assert!(!in_atomic(), "the section guard unwound");
    }

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
