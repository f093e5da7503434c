//! Which services this thread is running destructors for, right now.
//!
//! A service frees a batch under its `free_lock` and runs user destructors
//! there. A destructor that calls back into the *same* service to wait for
//! frees (`barrier`, `shrink`, `run_once`, or dropping it) would take that
//! lock again and deadlock on itself. A destructor that uses a *different*
//! service is fine and must work normally: so the tracking is per service,
//! not a per-thread "inside some free" flag.
//!
//! This protects correctness (it turns a self-deadlock into a defined
//! outcome), so it is always compiled in, in every build; the context
//! checker only *reports* the re-entry ([`Violation::WaitInsideFree`]) when
//! it is on. The state is a const-initialised thread-local without a
//! destructor (touching it never allocates) holding a small fixed stack of
//! the addresses of the services' drains this thread is freeing for,
//! innermost last. Nesting is bounded by the stack: freeing for more than
//! [`MAX_NESTED`] services at once on one thread (a destructor of service A
//! freeing through B freeing through C ...) aborts the process with a
//! message, rather than forget one and deadlock later.
//!
//! [`Violation::WaitInsideFree`]: crate::context::Violation::WaitInsideFree

use crate::sync::thread_local;
use core::cell::Cell;

/// How many services one thread can be freeing for at the same time.
pub(crate) const MAX_NESTED: usize = 8;

struct Stack {
    services: [Cell<usize>; MAX_NESTED],
    depth: Cell<usize>,
}

impl Stack {
    const fn new() -> Stack {
        Stack {
            services: [const { Cell::new(0) }; MAX_NESTED],
            depth: Cell::new(0),
        }
    }
}

// `const` initialisation, no destructor: no lazy-init state and no
// allocation, and usable while other thread-locals are torn down. Loom's
// macro has no `const` form.
#[cfg(not(kvfree_loom))]
thread_local! {
    static FREEING: Stack = const { Stack::new() };
}
#[cfg(kvfree_loom)]
thread_local! {
    static FREEING: Stack = Stack::new();
}

/// Marks this thread as running destructors for the service identified by
/// `service` (the address of its drain) until dropped.
pub(crate) struct FreeingFor {
    _not_send: core::marker::PhantomData<*const ()>,
}

impl FreeingFor {
    pub(crate) fn enter(service: usize) -> FreeingFor {
        let pushed = FREEING.try_with(|s| {
            let depth = s.depth.get();
            if depth == MAX_NESTED {
                return false;
            }
            s.services[depth].set(service);
            s.depth.set(depth + 1);
            true
        });
        match pushed {
            Ok(true) => {}
            Ok(false) => crate::context::report_fatal(
                "kvfree-rcu: destructors run by more than 8 nested services on one thread; aborting",
            ),
            // A destructor-less thread-local is never destroyed, so this is
            // not expected; without the mark a re-entry would deadlock
            // instead of being caught, so do not go on.
            Err(_) => crate::context::report_fatal(
                "kvfree-rcu: cannot mark the free loop on this thread (thread-local destroyed); aborting",
            ),
        }
        FreeingFor {
            _not_send: core::marker::PhantomData,
        }
    }
}

impl Drop for FreeingFor {
    fn drop(&mut self) {
        // Guards are strictly nested (they live on the stack of the free
        // loop), so the innermost entry is ours.
        let _ = FREEING.try_with(|s| s.depth.set(s.depth.get().saturating_sub(1)));
    }
}

/// Whether this thread is inside a destructor run by any service (it holds
/// that service's free lock). Used by the fork handlers only (unix).
#[cfg_attr(not(all(unix, not(kvfree_loom), not(miri))), allow(dead_code))]
pub(crate) fn is_freeing() -> bool {
    FREEING.try_with(|s| s.depth.get() > 0).unwrap_or(false)
}

/// Whether this thread is inside a destructor run by the service `service`
/// (the address of its drain): waiting for that service's frees here would
/// wait for itself.
pub(crate) fn is_freeing_for(service: usize) -> bool {
    FREEING
        .try_with(|s| {
            let depth = s.depth.get();
            s.services[..depth].iter().any(|c| c.get() == service)
        })
        .unwrap_or(false)
}
