//! The asymmetric barrier pair: a *light* barrier for readers and a *heavy*
//! one for advancers.
//!
//! A reader must make its slot announcement visible before it loads any
//! RCU-protected pointer (a store-then-load ordering, which only a full fence
//! provides). Paying that fence on every `read_lock()` is the dominant read
//! cost, so, like liburcu's "memb" flavour and folly's asymmetric fences, we
//! move it to the rare side: the advancer makes every CPU currently running
//! one of our threads execute a full barrier. Readers then need only a
//! compiler fence, which stops the compiler from moving their loads above
//! their announcement. The heavy barrier is, per platform:
//! - **Linux**: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (through
//!   rustix). The kernel is asked once (`MEMBARRIER_CMD_QUERY`) whether it
//!   supports the command, and the process registers for it once
//!   (`MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`); if either step fails,
//!   the fence flavour is used.
//! - **Windows**: `FlushProcessWriteBuffers()` (through windows-sys), which
//!   interrupts every processor running a thread of the process and so runs
//!   a full barrier there: the same guarantee (.NET's
//!   `Interlocked.MemoryBarrierProcessWide` is this call on Windows and
//!   membarrier on Linux). It cannot fail.
//! - **Everywhere else** (macOS, the BSDs, ...): no such call is used, and
//!   both sides use `fence(SeqCst)`.
//!
//! The flavour is decided once per process ([`Flavour::get`]). It is always
//! the fence flavour under Miri, loom or TSan (none of which model an
//! asymmetric barrier), and under `--cfg kvfree_portable`, which forces the
//! portable code paths so that a Linux test run covers them. Each domain
//! caches the flavour in a plain field at creation, so readers branch on a
//! value they already have in cache.

use crate::sync::{Ordering, compiler_fence, fence};

/// Which barrier pair this process uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// Readers: compiler fence. Advancers: the platform's process-wide
    /// barrier (`membarrier()` on Linux, `FlushProcessWriteBuffers()` on
    /// Windows).
    Asymmetric,
    /// Both sides: `fence(SeqCst)`.
    // Never chosen on Windows outside Miri, loom, TSan and the portable cfg:
    // `FlushProcessWriteBuffers` always exists there.
    #[cfg_attr(
        all(windows, not(any(miri, kvfree_loom, kvfree_tsan, kvfree_portable))),
        allow(dead_code)
    )]
    Fence,
}

impl Flavour {
    /// The process-wide flavour, decided (and, on Linux, registered with the
    /// kernel) on the first call. Ordinary context: the first call may make
    /// two syscalls.
    pub(crate) fn get() -> Flavour {
        #[cfg(all(
            any(target_os = "linux", windows),
            not(any(miri, kvfree_loom, kvfree_tsan, kvfree_portable))
        ))]
        {
            static FLAVOUR: std::sync::OnceLock<Flavour> = std::sync::OnceLock::new();
            *FLAVOUR.get_or_init(sys::detect)
        }
        #[cfg(not(all(
            any(target_os = "linux", windows),
            not(any(miri, kvfree_loom, kvfree_tsan, kvfree_portable))
        )))]
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
            // announcement in the instruction stream; the advancer's heavy
            // barrier supplies the CPU-level ordering.
            Flavour::Asymmetric => compiler_fence(Ordering::SeqCst),
            // SeqCst: pairs with the SeqCst fence in `heavy` (and in
            // `Rcu::get_state`).
            Flavour::Fence => fence(Ordering::SeqCst),
        }
    }

    /// The advancer's barrier, before it scans the reader slots. Ordinary
    /// context (it may be a syscall).
    pub(crate) fn heavy(self) {
        match self {
            Flavour::Asymmetric => {
                #[cfg(all(
                    any(target_os = "linux", windows),
                    not(any(miri, kvfree_loom, kvfree_tsan, kvfree_portable))
                ))]
                sys::process_wide_barrier();
                // SeqCst: the process-wide barrier (membarrier(), FlushProcessWriteBuffers) is no fence in the language's memory
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

#[cfg(all(
    target_os = "linux",
    not(any(miri, kvfree_loom, kvfree_tsan, kvfree_portable))
))]
mod sys {
    //! membarrier(2), through rustix.
    use super::Flavour;
    use rustix::thread::{MembarrierCommand, MembarrierQuery, membarrier, membarrier_query};

    /// Query the kernel and register this process; `Fence` if anything fails.
    pub(super) fn detect() -> Flavour {
        let needed =
            MembarrierQuery::PRIVATE_EXPEDITED | MembarrierQuery::REGISTER_PRIVATE_EXPEDITED;
        // An empty set when the kernel has no membarrier(2) at all.
        if !membarrier_query().contains(needed) {
            return Flavour::Fence;
        }
        if membarrier(MembarrierCommand::RegisterPrivateExpedited).is_err() {
            return Flavour::Fence;
        }
        Flavour::Asymmetric
    }

    /// A full barrier on every CPU running one of this process's threads.
    pub(super) fn process_wide_barrier() {
        // Cannot fail once registration succeeded; if it ever did, readers
        // that rely on it would be unprotected, so stop here.
        if let Err(e) = membarrier(MembarrierCommand::PrivateExpedited) {
            panic!("membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed: {e:?}");
        }
    }
}

#[cfg(all(windows, not(any(miri, kvfree_loom, kvfree_tsan, kvfree_portable))))]
mod sys {
    //! FlushProcessWriteBuffers, through windows-sys.
    use super::Flavour;

    /// Always available (Windows Vista and later), nothing to register.
    pub(super) fn detect() -> Flavour {
        Flavour::Asymmetric
    }

    /// A full barrier on every processor running one of this process's
    /// threads (an inter-processor interrupt each).
    pub(super) fn process_wide_barrier() {
        // SAFETY: FlushProcessWriteBuffers takes no arguments, touches no
        // memory of ours and cannot fail.
        unsafe { windows_sys::Win32::System::Threading::FlushProcessWriteBuffers() }
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
        if cfg!(any(miri, kvfree_portable)) || !cfg!(any(target_os = "linux", windows)) {
            assert_eq!(
                flavour,
                Flavour::Fence,
                "the portable flavour is forced here"
            );
        }
    }
}
