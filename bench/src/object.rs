//! The object every scheme retires: 24 bytes, like the kernel rcuscale
//! test's `struct kfree_obj { char kfree_obj[8]; struct rcu_head rh; }`.
//!
//! Every scheme allocates and frees the same type, so allocator costs are
//! identical; head-less schemes just leave the two head words unused
//! (liburcu uses them as its own `struct rcu_head`, which has the same
//! two-word layout). Dropping an object bumps a "freed" counter, which lets
//! the flood tell when the *last* object was freed even for schemes without
//! an exact barrier (crossbeam-epoch).
//!
//! The counter is one cache-padded shard per thread, claimed at the
//! thread's first drop and given back when it exits, and bumped with a
//! relaxed load and store: only its owner writes it, so no count is lost,
//! and the drop adds no read-modify-write. A `fetch_add` there (as before)
//! is, on x86-64, a locked instruction: a full barrier that waits for the
//! freeing thread's earlier stores, among them the allocator's stores into
//! the chunks it just freed. For schemes that free on a reclaim thread,
//! chunks another CPU wrote, that wait was the harness's cost, not the
//! scheme's (docs/BENCHMARKS.md, "The harness's own barriers"). A thread
//! that finds all 64 shards claimed (more than 64 threads dropping objects
//! at once) counts in a shared counter with `fetch_add`.

use crossbeam_utils::CachePadded;
use kvfree_rcu::{RcuHead, impl_rcu_headed};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const SHARDS: usize = 64;
/// Freed counts of the threads that own a shard (one writer each).
static OWNED: [CachePadded<AtomicU64>; SHARDS] =
    [const { CachePadded::new(AtomicU64::new(0)) }; SHARDS];
/// Whether a live thread owns `OWNED[i]`.
static CLAIMED: [AtomicBool; SHARDS] = [const { AtomicBool::new(false) }; SHARDS];
/// Freed counts of the threads that found every shard owned, and of
/// threads being torn down: shared, counted with `fetch_add`.
static SHARED: CachePadded<AtomicU64> = CachePadded::new(AtomicU64::new(0));

/// A thread's claim on one of the [`OWNED`] shards, given back when the
/// thread exits so that a long process (criterion) never runs out.
struct ShardClaim(Option<usize>);

impl ShardClaim {
    fn claim() -> ShardClaim {
        let index = (0..SHARDS).find(|&i| {
            // Acquire: pairs with the Release store in `drop`, so the
            // previous owner's last count happens before ours.
            CLAIMED[i]
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        });
        ShardClaim(index)
    }
}

impl Drop for ShardClaim {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            // Release: pairs with the Acquire in `claim`.
            CLAIMED[i].store(false, Ordering::Release);
        }
    }
}

thread_local! {
    static SHARD: ShardClaim = ShardClaim::claim();
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
        let owned = SHARD.try_with(|claim| claim.0).ok().flatten();
        match owned {
            // Relaxed load and store, no read-modify-write: only this
            // thread writes its shard, so no count is lost, and the harness
            // adds no full barrier to every free. Readers of
            // `freed_objects` wait for it with their scheme's own
            // synchronisation (joins, barriers).
            Some(i) => OWNED[i].store(OWNED[i].load(Ordering::Relaxed) + 1, Ordering::Relaxed),
            // Relaxed: as above.
            None => {
                SHARED.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Objects dropped so far, process-wide.
pub fn freed_objects() -> u64 {
    // Relaxed: a statistic.
    OWNED.iter().map(|s| s.load(Ordering::Relaxed)).sum::<u64>() + SHARED.load(Ordering::Relaxed)
}
