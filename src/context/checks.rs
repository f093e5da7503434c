//! The assertions callers make about their context: [`might_sleep`] (the
//! kernel's `might_sleep()`) and the lockdep check that a call which may
//! wait for a grace period is not made inside a read-side critical section.
//! Both only report.

use super::CHECKS;
use super::reporting::{Violation, report};
use super::tracking::in_atomic;

/// Asserts (in checked builds) that the caller may sleep: reports
/// [`Violation::SleepInAtomic`] when a raw spinlock is held or an
/// [`AtomicSection`](super::AtomicSection) is active. The kernel's `might_sleep()`.
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

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::super::{AtomicSection, thread_violations};
    use super::*;

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
}
