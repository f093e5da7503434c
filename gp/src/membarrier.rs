//! The asymmetric barrier pair: a *light* barrier for readers and a *heavy*
//! one for advancers.
//!
//! A reader must make its slot announcement visible before it loads any
//! RCU-protected pointer (a store-then-load ordering, which only a full fence
//! provides). Paying that fence on every `read_lock()` is the dominant read
//! cost, so, like liburcu's "memb" flavour and folly's asymmetric fences, we
//! move it to the rare side: the advancer calls
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes every CPU
//! currently running one of our threads execute a full barrier. Readers then
//! need only a compiler fence, which stops the compiler from moving their
//! loads above their announcement.
//!
//! The flavour is decided once per process ([`Flavour::get`]): the kernel is
//! asked (`MEMBARRIER_CMD_QUERY`) whether it supports the private expedited
//! command, and the process registers for it once
//! (`MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`). If either step fails, or
//! under Miri, loom or TSan (none of which model membarrier), both sides use
//! `fence(SeqCst)` instead. Each domain caches the flavour in a plain `bool`
//! at creation, so readers branch on a value they already have in cache.

use crate::sync::{Ordering, compiler_fence, fence};

/// Which barrier pair this process uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// Readers: compiler fence. Advancers: `membarrier()`.
    Membarrier,
    /// Both sides: `fence(SeqCst)`.
    Fence,
}

impl Flavour {
    /// The process-wide flavour, decided (and registered with the kernel) on
    /// the first call. Ordinary context: the first call makes two syscalls.
    pub(crate) fn get() -> Flavour {
        #[cfg(not(any(miri, kvfree_loom, kvfree_tsan)))]
        {
            static FLAVOUR: std::sync::OnceLock<Flavour> = std::sync::OnceLock::new();
            *FLAVOUR.get_or_init(sys::detect)
        }
        #[cfg(any(miri, kvfree_loom, kvfree_tsan))]
        {
            Flavour::Fence
        }
    }

    /// The reader's barrier, between its announcement and its first
    /// RCU-protected load. Wait-free, no syscall.
    #[inline(always)]
    pub(crate) fn light(self) {
        match self {
            // SeqCst compiler fence: the loads that follow stay after the
            // announcement in the instruction stream; the advancer's
            // membarrier() supplies the CPU-level ordering.
            Flavour::Membarrier => compiler_fence(Ordering::SeqCst),
            // SeqCst: pairs with the SeqCst fence in `heavy` (and in
            // `Rcu::get_state`).
            Flavour::Fence => fence(Ordering::SeqCst),
        }
    }

    /// The advancer's barrier, before it scans the reader slots. Ordinary
    /// context (it may be a syscall).
    pub(crate) fn heavy(self) {
        match self {
            Flavour::Membarrier => {
                #[cfg(not(any(miri, kvfree_loom, kvfree_tsan)))]
                sys::private_expedited();
                // SeqCst: membarrier() is no fence in the language's memory
                // model, and orders nothing for the compiler on this thread.
                // This fence keeps the scan's loads after it, and is the
                // advancer's place in the single order of SeqCst fences that
                // the `+ 2` argument uses (with `Rcu::get_state`'s fence).
                fence(Ordering::SeqCst);
            }
            // SeqCst: pairs with the readers' SeqCst fence in `light`.
            Flavour::Fence => fence(Ordering::SeqCst),
        }
    }
}

#[cfg(not(any(miri, kvfree_loom, kvfree_tsan)))]
mod sys {
    //! The three membarrier(2) commands we use.
    use super::Flavour;

    const MEMBARRIER_CMD_QUERY: libc::c_long = 0;
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier(2) takes (cmd, flags, cpu_id) by value and
        // touches no memory of ours; an unknown command fails with EINVAL.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    /// Query the kernel and register this process; `Fence` if anything fails.
    pub(super) fn detect() -> Flavour {
        let supported = membarrier(MEMBARRIER_CMD_QUERY);
        let needed = MEMBARRIER_CMD_PRIVATE_EXPEDITED | MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;
        if supported < 0 || supported & needed != needed {
            return Flavour::Fence;
        }
        if membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0 {
            return Flavour::Fence;
        }
        Flavour::Membarrier
    }

    /// A full barrier on every CPU running one of this process's threads.
    pub(super) fn private_expedited() {
        let rc = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
        // Cannot fail once registration succeeded; if it ever did, readers
        // that rely on it would be unprotected, so stop here.
        assert!(
            rc == 0,
            "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn flavour_is_decided_once_and_barriers_run() {
        let flavour = Flavour::get();
        assert_eq!(flavour, Flavour::get());
        flavour.light();
        flavour.heavy();
        if cfg!(miri) {
            assert_eq!(flavour, Flavour::Fence);
        }
    }
}
