//! The object every scheme retires: 24 bytes, like the kernel rcuscale
//! test's `struct kfree_obj { char kfree_obj[8]; struct rcu_head rh; }`.
//!
//! Every scheme allocates and frees the same type, so allocator costs are
//! identical; head-less schemes just leave the two head words unused
//! (liburcu uses them as its own `struct rcu_head`, which has the same
//! two-word layout). Dropping an object bumps a sharded "freed" counter (one
//! uncontended `fetch_add` on the dropping thread's cache line), which lets
//! the flood tell when the *last* object was freed even for schemes without
//! an exact barrier (crossbeam-epoch).

use crossbeam_utils::CachePadded;
use kvfree_rcu::{RcuHead, impl_rcu_headed};
use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const SHARDS: usize = 64;
static FREED: [CachePadded<AtomicU64>; SHARDS] =
    [const { CachePadded::new(AtomicU64::new(0)) }; SHARDS];
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// A 24-byte retired object: 8 bytes of payload and a two-word head.
#[repr(C)]
#[derive(Debug)]
pub struct FloodObj {
    /// Payload (written, so the allocation is really touched).
    pub data: u64,
    /// The embedded head (used by kvfree-rcu's headed call and by liburcu).
    pub head: RcuHead,
}

impl_rcu_headed!(FloodObj, head);

const _: () = assert!(size_of::<FloodObj>() == 24);

impl FloodObj {
    /// Allocates one object and leaks it as a raw pointer for retiring.
    #[inline]
    pub fn alloc(data: u64) -> NonNull<FloodObj> {
        NonNull::from(Box::leak(Box::new(FloodObj {
            data,
            head: RcuHead::new(),
        })))
    }

    /// Frees an object from [`FloodObj::alloc`].
    ///
    /// # Safety
    /// 1. `ptr` came from [`FloodObj::alloc`] and is freed once.
    /// 2. No one uses it afterwards.
    #[inline]
    pub unsafe fn free(ptr: NonNull<FloodObj>) {
        // SAFETY: contract 1 (a leaked Box, freed once) and 2.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
    }
}

impl Drop for FloodObj {
    #[inline]
    fn drop(&mut self) {
        let index = SHARD
            .try_with(|s| {
                if s.get() == usize::MAX {
                    // Relaxed: only spreads threads over shards.
                    s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
                }
                s.get()
            })
            .unwrap_or(0);
        // Relaxed: a count; `freed_objects` readers wait for it with their
        // scheme's own synchronisation (joins, barriers).
        FREED[index].fetch_add(1, Ordering::Relaxed);
    }
}

/// Objects dropped so far, process-wide.
pub fn freed_objects() -> u64 {
    // Relaxed: a statistic.
    FREED.iter().map(|s| s.load(Ordering::Relaxed)).sum()
}
