//! [`AtomicSection`]: a thread declares itself in atomic context (a signal
//! handler, a real-time loop) for the checker, until the guard drops.

use super::tracking;
use core::marker::PhantomData;

/// Declares the current thread to be in atomic context until dropped: put
/// one at the top of a signal handler or around a real-time loop. Nestable,
/// `!Send`; costs nothing without [`CHECKS`](super::CHECKS).
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
        tracking::atomic_section_entered();
        AtomicSection {
            _not_send: PhantomData,
        }
    }
}

impl Drop for AtomicSection {
    #[inline]
    fn drop(&mut self) {
        tracking::atomic_section_left();
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::super::{CHECKS, in_atomic};
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
}
