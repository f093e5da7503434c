//! Cache-line prefetch hints: [`read()`] for lines about to be read (the
//! objects a page lists, while it is freed), [`write()`] for lines about to be
//! written (a lane's next page switch). A hint never faults and changes
//! nothing, whatever the address (null, a kind's function pointer, a
//! dangling record); each is a no-op where we have no instruction for it,
//! and under Miri and loom. Public for the service's head lists, which
//! prefetch the next head while they free one.
//!
//! ```
//! let x = 7u64;
//! kvfree_rcu_pool::prefetch::read(core::ptr::from_ref(&x).cast());
//! kvfree_rcu_pool::prefetch::write(core::ptr::null()); // any address
//! ```

/// Asks the CPU to bring the cache line at `addr` in, to be read.
#[inline(always)]
pub fn read(addr: *const ()) {
    prefetch(addr, Intent::Read);
}

/// Asks the CPU to bring the cache line at `addr` in, owned, to be
/// written: a later store (or atomic read-modify-write) then finds it in
/// this core's cache, exclusive, instead of fetching it from another's.
#[inline(always)]
pub fn write(addr: *const ()) {
    prefetch(addr, Intent::Write);
}

/// What the line is fetched for.
#[derive(Clone, Copy)]
enum Intent {
    Read,
    Write,
}

/// The one place with the instructions (`intent` is a constant at every
/// call, so the match folds away).
#[inline(always)]
fn prefetch(addr: *const (), intent: Intent) {
    #[cfg(all(target_arch = "x86_64", not(any(miri, kvfree_loom))))]
    {
        use core::arch::x86_64::{_MM_HINT_ET0, _MM_HINT_T0, _mm_prefetch};
        let addr = addr.cast::<i8>();
        // `_mm_prefetch` is an unsafe fn before Rust 1.87 (our MSRV is
        // older) and safe since, where SSE is enabled, as it always is on
        // x86-64.
        #[allow(unused_unsafe)]
        // SAFETY: PREFETCHT0 and PREFETCHW are hints: they never fault and
        // write nothing (a CPU without PREFETCHW executes it as a no-op).
        unsafe {
            match intent {
                Intent::Read => _mm_prefetch::<_MM_HINT_T0>(addr),
                Intent::Write => _mm_prefetch::<_MM_HINT_ET0>(addr),
            }
        }
    }
    #[cfg(all(target_arch = "aarch64", not(any(miri, kvfree_loom))))]
    // SAFETY: PRFM is a hint: it never faults and writes nothing.
    unsafe {
        match intent {
            Intent::Read => core::arch::asm!(
                "prfm pldl1keep, [{addr}]",
                addr = in(reg) addr,
                options(nostack, readonly, preserves_flags)
            ),
            Intent::Write => core::arch::asm!(
                "prfm pstl1keep, [{addr}]",
                addr = in(reg) addr,
                options(nostack, readonly, preserves_flags)
            ),
        }
    }
    #[cfg(any(
        miri,
        kvfree_loom,
        not(any(target_arch = "x86_64", target_arch = "aarch64"))
    ))]
    let _ = (addr, intent);
}
