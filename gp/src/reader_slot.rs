//! Reader slots: one word per registered thread saying whether, and since
//! which epoch, that thread is inside a read-side critical section.
//!
//! A slot's `state` packs `epoch << 16 | nesting` ([`NESTING_BITS`]). Nesting
//! 0 means "not reading". Only the slot's owner ever writes `state`, so the
//! read side is a plain load and a plain store, never a read-modify-write:
//! that keeps it wait-free, and makes it reentrant with respect to signal
//! handlers, whose own lock/unlock pair leaves the word as they found it.
//!
//! Every store to `state` is a Release store, and advancers read it with
//! Acquire. That is what orders a finished section's reads before a free:
//! an advancer may read any later value of the word (a re-entry, a deeper
//! nesting), and since C++20 a later plain store by the same thread does not
//! continue the release sequence of the exit store, so a Relaxed store there
//! would let the advancer accept the slot without synchronizing with the
//! section that just ended. A Release store is a plain `mov` on x86; on Arm
//! it is `stlr` instead of `str`, which waits for the thread's earlier
//! accesses to be performed before the store is (a few cycles, no fence).
//!
//! Ownership is an `owner` word, 0 when free or the owner's thread token
//! ([`thread_token`]), claimed by CAS and released with a Release store, so
//! the single-writer rule holds across owners too: the previous owner's last
//! store happens before the next owner's first. The token says *which*
//! thread owns the slot, so that a forked child can give back the slots of
//! the threads that did not survive the fork (`fork.rs`).
//!
//! A [`ReaderSlotTable`] is the fixed array of slots of one domain, allocated once.
//! Its `high_water` mark (one past the highest slot ever claimed) bounds the
//! advancer's scan.

use crate::fork::thread_token;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};
use crossbeam_utils::CachePadded;

/// Bits of `state` holding the nesting depth.
pub(crate) const NESTING_BITS: u32 = 16;
/// Mask of the nesting depth in `state`.
pub(crate) const NESTING_MASK: u64 = (1 << NESTING_BITS) - 1;

/// The nesting depth packed in a slot word.
#[inline(always)]
pub(crate) fn nesting(state: u64) -> u64 {
    state & NESTING_MASK
}

/// The epoch packed in a slot word (the low 48 bits of the epoch).
#[inline(always)]
pub(crate) fn epoch_of(state: u64) -> u64 {
    state >> NESTING_BITS
}

/// The low 48 bits of an epoch, as stored in a slot word.
#[inline(always)]
pub(crate) fn truncate_epoch(epoch: u64) -> u64 {
    epoch & (u64::MAX >> NESTING_BITS)
}

/// One reader's announcement word and its owner word.
#[derive(Debug)]
pub(crate) struct ReaderSlot {
    state: AtomicU64,
    /// 0 (free) or the owner's [`thread_token`].
    owner: AtomicUsize,
}

impl ReaderSlot {
    fn new() -> ReaderSlot {
        ReaderSlot {
            state: AtomicU64::new(0),
            owner: AtomicUsize::new(0),
        }
    }

    /// Enter a critical section, announcing `epoch` if this is the outermost
    /// one. Owner only. Returns true if this was the outermost entry (the
    /// caller then runs the light barrier).
    #[inline(always)]
    pub(crate) fn enter(&self, epoch: &AtomicU64) -> bool {
        // Relaxed: only we write this word, so we read our own last store.
        let s = self.state.load(Ordering::Relaxed);
        if nesting(s) == 0 {
            // Acquire: keeps the RCU-protected loads that follow after this
            // load even on weakly ordered CPUs, where the membarrier flavour's
            // compiler fence would not (see `Rcu::advance` for why a reader
            // must not announce an epoch newer than the pointers it read).
            let e = truncate_epoch(epoch.load(Ordering::Acquire));
            // Release: pairs with the Acquire load in `state` (the
            // advancer's scan). The store is made visible to advancers by
            // the light barrier (a SeqCst fence, or their membarrier()); an
            // advancer that reads it must also synchronize with this
            // thread's previous critical sections (and, for a slot taken
            // over by CAS, with the previous owner's), whose exit store is
            // no longer the value it reads: no later plain store extends a
            // release sequence (C++20), so only Release here orders those
            // sections' reads before the advancer's CAS, and so before the
            // free (loom model `reentry_announcement_orders_the_previous_section`).
            // Free on x86 (a plain `mov`); `stlr` instead of `str` on Arm.
            self.state.store(e << NESTING_BITS | 1, Ordering::Release);
            true
        } else {
            assert!(
                nesting(s) < NESTING_MASK,
                "RCU read-side critical sections nested more than {NESTING_MASK} deep"
            );
            // Release: the epoch is unchanged, only the depth grows, but an
            // advancer's Acquire scan (`state`) may read this value instead
            // of the outermost announcement, and must synchronize with the
            // previous sections just the same (see the outermost case). The
            // Fence flavour's light barrier would cover this store too; the
            // membarrier flavour's compiler fence does not, in the model.
            self.state.store(s + 1, Ordering::Release);
            false
        }
    }

    /// Leave a critical section. Owner only.
    #[inline(always)]
    pub(crate) fn exit(&self) {
        // Relaxed: only we write this word.
        let s = self.state.load(Ordering::Relaxed);
        debug_assert!(nesting(s) > 0, "RCU read unlock without a lock");
        // Release: our critical section's loads happen before an advancer's
        // Acquire load of this word sees us out (and so before the free).
        self.state.store(s - 1, Ordering::Release);
    }

    /// The announcement word, for advancers.
    #[inline]
    pub(crate) fn state(&self) -> u64 {
        // Acquire: pairs with every store to this word (all Release: `enter`
        // and `exit`), so whatever value the scan reads, the owner's
        // finished critical sections happen before it.
        self.state.load(Ordering::Acquire)
    }

    /// Give the slot back. Owner only, outside any critical section.
    pub(crate) fn release(&self) {
        debug_assert_eq!(nesting(self.state.load(Ordering::Relaxed)), 0);
        // Release: pairs with the Acquire CAS in `ReaderSlotTable::claim`, so our
        // last store to `state` happens before the next owner's first.
        self.owner.store(0, Ordering::Release);
    }

    /// In a forked child, where only the thread with token `survivor` is
    /// left: if another thread owned this slot, forget its section (it will
    /// never exit it) and free the slot. The survivor's own slots, and its
    /// nesting if it forked inside a section, are kept.
    ///
    /// Only for the child's fork handler: no other thread may use the slot.
    pub(crate) fn reset_unless_owned_by(&self, survivor: usize) {
        // Relaxed: a single thread is left, and it wrote nothing here.
        let owner = self.owner.load(Ordering::Relaxed);
        if owner != 0 && owner != survivor {
            // Relaxed: no other thread exists to read it before the Release.
            self.state.store(0, Ordering::Relaxed);
            // Release: as in `release`.
            self.owner.store(0, Ordering::Release);
        }
    }

    /// True while a reader owns the slot and is inside a critical section.
    pub(crate) fn is_reading(&self) -> bool {
        nesting(self.state()) != 0
    }
}

/// The fixed table of reader slots of one domain.
#[derive(Debug)]
pub(crate) struct ReaderSlotTable {
    slots: Box<[CachePadded<ReaderSlot>]>,
    high_water: AtomicUsize,
}

impl ReaderSlotTable {
    /// A table of `capacity` free slots (the only allocation a domain makes).
    pub(crate) fn new(capacity: usize) -> ReaderSlotTable {
        ReaderSlotTable {
            slots: (0..capacity)
                .map(|_| CachePadded::new(ReaderSlot::new()))
                .collect(),
            high_water: AtomicUsize::new(0),
        }
    }

    /// Number of slots.
    pub(crate) fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Claim a free slot: lock-free, no allocation. `None` if all are owned.
    pub(crate) fn claim(&self) -> Option<usize> {
        for (i, slot) in self.slots.iter().enumerate() {
            // Relaxed peek: a stale answer only costs a failed CAS or a skip
            // of a slot that is being released right now.
            if slot.owner.load(Ordering::Relaxed) != 0 {
                continue;
            }
            // Acquire: pairs with the Release owner store in
            // `ReaderSlot::release` (or `reset_unless_owned_by`), so the
            // previous owner's last store to `state` happens before our first.
            if slot
                .owner
                .compare_exchange(0, thread_token(), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // Release: pairs with the Acquire load in `in_use`. What makes
                // an advancer scan this slot when it must is the barrier pair,
                // not this pairing: the mark is written before our first
                // announcement and light barrier, so an advancer whose heavy
                // barrier comes after them reads the new mark.
                self.high_water.fetch_max(i + 1, Ordering::Release);
                return Some(i);
            }
        }
        None
    }

    /// The slot at `index` (from `claim`).
    #[inline(always)]
    pub(crate) fn get(&self, index: usize) -> &ReaderSlot {
        &self.slots[index]
    }

    /// The slot `slot` points to, if it is one of this table's slots: one
    /// subtraction and one compare (the address range of the slot array).
    /// Never dereferences `slot` unless it lies inside this table.
    #[inline(always)]
    pub(crate) fn find(&self, slot: *const ReaderSlot) -> Option<&ReaderSlot> {
        let base = self.slots.as_ptr().addr();
        let offset = slot.addr().wrapping_sub(base);
        let size = core::mem::size_of::<CachePadded<ReaderSlot>>();
        if offset < self.slots.len() * size && offset % size == 0 {
            // SAFETY: `offset` is a multiple of the element size below the
            // array's length in bytes, so it is the offset of an element of
            // `slots`, which lives as long as `self`.
            Some(unsafe { &*self.slots.as_ptr().byte_add(offset) })
        } else {
            None
        }
    }

    /// Every slot that has ever been claimed (a prefix of the table).
    pub(crate) fn in_use(&self) -> impl Iterator<Item = &ReaderSlot> {
        // Acquire: pairs with the Release fetch_max in `claim`.
        let used = self.high_water.load(Ordering::Acquire);
        self.slots[..used].iter().map(|padded| &**padded)
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn word_packing() {
        let s = 7 << NESTING_BITS | 3;
        assert_eq!(nesting(s), 3);
        assert_eq!(epoch_of(s), 7);
        assert_eq!(truncate_epoch(u64::MAX), u64::MAX >> 16);
    }

    #[test]
    fn enter_exit_nest_and_keep_the_first_epoch() {
        let table = ReaderSlotTable::new(2);
        let epoch = AtomicU64::new(5);
        let slot = table.get(table.claim().unwrap());
        assert!(slot.enter(&epoch));
        epoch.store(6, Ordering::Relaxed);
        assert!(!slot.enter(&epoch));
        assert_eq!(slot.state(), 5 << NESTING_BITS | 2);
        slot.exit();
        assert!(slot.is_reading());
        slot.exit();
        assert!(!slot.is_reading());
        assert_eq!(epoch_of(slot.state()), 5);
    }

    #[test]
    fn claim_until_full_then_release() {
        let table = ReaderSlotTable::new(3);
        assert_eq!(table.in_use().count(), 0);
        let ids: Vec<_> = (0..3).map(|_| table.claim().unwrap()).collect();
        assert_eq!(ids, [0, 1, 2]);
        assert_eq!(table.claim(), None);
        assert_eq!(table.in_use().count(), 3);
        table.get(1).release();
        assert_eq!(table.claim(), Some(1));
        assert_eq!(table.capacity(), 3);
    }
}
