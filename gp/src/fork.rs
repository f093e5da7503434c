//! fork() safety: the child gives back the reader slots of the threads that
//! did not survive the fork.
//!
//! After `fork()` the child has one thread, the one that called `fork()`.
//! Every other thread of the parent is gone, but the slots it owned are
//! copied as they were: a thread that sat in a read-side critical section
//! left its slot nested forever, so every `advance()` in the child fails and
//! `synchronize()` never returns. As liburcu does with `pthread_atfork`, the
//! child handler walks every live domain and frees each slot owned by a
//! thread other than the forking one (nesting 0, owner released). The
//! forking thread's own slots are kept as they are, with its nesting if it
//! forked inside a read section, so its guards stay valid.
//!
//! A slot's owner word holds the owner's [`thread_token`] (its `pthread_t`,
//! which the forking thread keeps in the child), so the child can tell its
//! slots from the others'.
//!
//! The domains are found through a process-wide list of weak references,
//! filled when a domain is created (ordinary context) and pruned of dead
//! entries then. The prepare handler takes the list's lock, so no creation
//! is half done at the fork; the parent and child handlers release it. The
//! child handler upgrades each weak reference (a CAS on the count, no
//! allocation; the drop that follows cannot free the domain, because a
//! reference the upgrade found stays counted by someone else), resets the
//! slots, and allocates nothing. A thread's registrations in the domains are
//! thread-locals that die with it in the child, holding strong references:
//! the domains they name are never freed in the child, which is a leak of
//! one table per domain, not a hazard.
//!
//! The handlers are registered once per process (`pthread_atfork`), when the
//! first domain is created. `fork()` from a signal handler that interrupted
//! this crate is not supported (POSIX does not run atfork handlers safely
//! there either).

/// A word naming the calling thread, never 0: the owner word of the slots
/// it claims. Wait-free, async-signal-safe (reads the thread pointer).
#[inline]
pub(crate) fn thread_token() -> usize {
    #[cfg(all(unix, not(kvfree_loom)))]
    {
        // SAFETY: pthread_self has no preconditions and cannot fail.
        let me = unsafe { libc::pthread_self() } as usize;
        // `pthread_t` is a pointer on Linux; 0 would mean "free".
        me.max(1)
    }
    #[cfg(not(all(unix, not(kvfree_loom))))]
    {
        // No fork here (or loom, which runs every model thread on one OS
        // thread): ownership only needs "not 0".
        1
    }
}

#[cfg(all(unix, not(kvfree_loom), not(miri)))]
pub(crate) use handlers::track;

/// Nothing to track where there is no fork (or under loom and Miri).
#[cfg(not(all(unix, not(kvfree_loom), not(miri))))]
pub(crate) fn track(_domain: &crate::sync::Arc<crate::domain::Domain>) {}

#[cfg(all(unix, not(kvfree_loom), not(miri)))]
mod handlers {
    use super::thread_token;
    use crate::domain::Domain;
    use crate::sync::Patience;
    use core::cell::UnsafeCell;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Once, Weak};

    /// The live domains, behind a lock the prepare handler can hold across
    /// the fork (a `std` mutex guard cannot be kept between two handlers).
    struct DomainList {
        locked: AtomicBool,
        domains: UnsafeCell<Vec<Weak<Domain>>>,
    }

    // SAFETY: `domains` is only touched by the holder of `locked` (see
    // `lock` / `unlock`), so it is never accessed from two threads at once.
    unsafe impl Sync for DomainList {}

    static DOMAINS: DomainList = DomainList {
        locked: AtomicBool::new(false),
        domains: UnsafeCell::new(Vec::new()),
    };

    impl DomainList {
        /// Ordinary context: waits with the crate's [`Patience`] until the
        /// lock is ours.
        fn lock(&self) {
            let mut patience = Patience::new();
            // Acquire: pairs with the Release in `unlock`, so the previous
            // holder's changes to the list happen before ours.
            while self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                patience.wait();
            }
        }

        /// The holder only.
        fn unlock(&self) {
            // Release: pairs with the Acquire in `lock`.
            self.locked.store(false, Ordering::Release);
        }

        /// The list. The caller holds the lock, and keeps the reference no
        /// longer than it does.
        #[allow(clippy::mut_from_ref)]
        fn domains(&self) -> &mut Vec<Weak<Domain>> {
            // SAFETY: the caller holds the lock (see above), so no other
            // reference to the list exists.
            unsafe { &mut *self.domains.get() }
        }
    }

    /// Adds a new domain to the list the child handler walks, registering
    /// the handlers on the process's first domain. Ordinary context.
    pub(crate) fn track(domain: &Arc<Domain>) {
        static REGISTER: Once = Once::new();
        REGISTER.call_once(|| {
            // SAFETY: the three handlers are `extern "C" fn()` that stay
            // valid for the life of the process.
            let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
            // Only ENOMEM is possible: without the handlers a forked child
            // could hang, so say so.
            assert_eq!(
                rc, 0,
                "kvfree-rcu-gp: pthread_atfork failed (out of memory): fork() would not be safe"
            );
        });
        DOMAINS.lock();
        let domains = DOMAINS.domains();
        domains.retain(|weak| weak.strong_count() > 0);
        domains.push(Arc::downgrade(domain));
        DOMAINS.unlock();
    }

    /// Before the fork, on the forking thread: no domain creation is half
    /// done while the list is copied into the child.
    extern "C" fn prepare() {
        DOMAINS.lock();
    }

    /// After the fork, in the parent: nothing changed.
    extern "C" fn parent() {
        DOMAINS.unlock();
    }

    /// After the fork, in the child (one thread): free every slot owned by
    /// a thread that did not survive. No allocation, no lock but our own.
    extern "C" fn child() {
        let survivor = thread_token();
        for weak in DOMAINS.domains().iter() {
            if let Some(domain) = weak.upgrade() {
                super::forget_lost_readers(domain.reader_slots(), survivor);
            }
        }
        DOMAINS.unlock();
    }
}

/// The child's repair of one domain: every slot owned by a thread other
/// than `survivor` (the forking thread's token) is freed, with its nesting.
/// Only valid where `survivor` is the only thread (a forked child).
#[cfg_attr(not(all(unix, not(kvfree_loom), not(miri))), allow(dead_code))]
pub(crate) fn forget_lost_readers(slots: &crate::reader_slot::ReaderSlotTable, survivor: usize) {
    for slot in slots.in_use() {
        slot.reset_unless_owned_by(survivor);
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::reader_slot::ReaderSlotTable;
    use crate::sync::AtomicU64;

    /// The state a child inherits: a thread that is gone owned a slot in
    /// the middle of a section. The survivor's own section is kept.
    #[test]
    fn a_lost_reader_is_forgotten_and_the_survivor_kept() {
        let table = ReaderSlotTable::new(4);
        let epoch = AtomicU64::new(3);
        std::thread::scope(|s| {
            s.spawn(|| {
                let lost = table.get(table.claim().unwrap());
                lost.enter(&epoch);
                // The thread ends without leaving: as if it vanished at fork.
            });
        });
        let mine = table.get(table.claim().unwrap());
        mine.enter(&epoch);
        let reading = || table.in_use().filter(|s| s.is_reading()).count();
        assert_eq!(reading(), 2);

        forget_lost_readers(&table, thread_token());

        assert_eq!(reading(), 1, "only the survivor's section is left");
        assert!(mine.is_reading(), "the survivor's nesting is kept");
        assert_eq!(
            table.claim(),
            Some(0),
            "the lost reader's slot is free again"
        );
        mine.exit();
        assert_eq!(reading(), 0);
    }
}
