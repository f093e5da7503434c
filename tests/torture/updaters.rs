//! Updaters: each replacement unlinks a random element of a random type,
//! stamps it with the epoch its pipeline age counts from, and retires it
//! through the call that type stands for:
//! - `Small`: headed `kvfree_rcu`;
//! - `Medium`: `try_kvfree_rcu`, falling back to `kvfree_rcu_mightsleep`;
//! - `Large`: headed `kvfree_rcu` under the `RawSpinLock`;
//! - `Custom`: `kvfree_rcu_with` under the `RawSpinLock`; when it is
//!   rejected (no page), a grace period and an inline free after the lock.
//!
//! Updaters with an odd seed (and every other short-lived one) hold a
//! `LocalRetirer` and make the same calls through it: their retires go
//! through a thread lane of their own, which the worker takes from only
//! when idle or at a barrier (`maintenance.rs` runs `barrier`, `shrink` and
//! `run_once` concurrently). About one replacement in 32 they also call
//! `reclaim`, which frees a bite of what has expired on the updater's
//! thread (or of the batch the worker shares, while it is behind), so
//! partly freed batches meet the worker's reaps, barriers and the readers'
//! checks.

use super::objects::{Custom, Header, Large, Medium, Object, Small, free_custom};
use super::rng::Rng;
use super::shared::Shared;
use kvfree_rcu::LocalRetirer;
use std::ptr::NonNull;
use std::sync::atomic::{Ordering, fence};

impl Shared {
    /// One updater thread: `limit` replacements, or fewer if `stop_updaters`.
    pub fn updater(&self, seed: u64, limit: u64) {
        let mut rng = Rng::new(seed);
        let local = (seed % 2 == 1).then(|| self.service.local_retirer());
        let mut n = 0;
        while n < limit && !self.stop_updaters.load(Ordering::Relaxed) {
            self.update_once(&mut rng, local.as_ref());
            n += 1;
        }
        self.updates.fetch_add(n, Ordering::Relaxed);
    }

    /// One replacement of a random element of a random type, retired
    /// through `local` if given, else the service; sometimes a yield, so
    /// updaters get preempted between replacements too.
    pub fn update_once(&self, rng: &mut Rng, local: Option<&LocalRetirer<'_>>) {
        let i = rng.below(self.table.slots() as u64) as usize;
        let id = self.id();
        match rng.below(4) {
            0 => self.replace_small(i, id, local),
            1 => self.replace_medium(i, id, local),
            2 => self.replace_large(i, id, local),
            _ => self.replace_custom(i, id, local),
        }
        if let Some(local) = local {
            if rng.below(32) == 0 {
                local.reclaim();
            }
        }
        if rng.below(64) == 0 {
            std::thread::yield_now();
        }
    }

    /// Stamps a just-unlinked object with the epoch its pipeline age counts from.
    fn mark_removed(&self, h: &Header) {
        // SeqCst fence: orders the unlink before the epoch load, as
        // `Rcu::get_state` does (pairs with the readers' light barrier and the
        // advancers' heavy one).
        fence(Ordering::SeqCst);
        h.removed_epoch.store(self.rcu.epoch(), Ordering::Relaxed);
        h.counts.retired.fetch_add(1, Ordering::Relaxed);
    }

    fn replace_small(&self, i: usize, id: u64, local: Option<&LocalRetirer<'_>>) {
        let old = self.table.small[i].swap(Small::boxed(id, self.counts.small), Ordering::AcqRel);
        // SAFETY: `old` is a live table element we just unlinked.
        self.mark_removed(unsafe { (*old).header() });
        let old = NonNull::new(old).unwrap();
        // SAFETY: from Box::into_raw, unlinked above, retired once.
        unsafe {
            match local {
                Some(local) => local.kvfree_rcu(old),
                None => self.service.kvfree_rcu(old),
            }
        };
    }

    fn replace_medium(&self, i: usize, id: u64, local: Option<&LocalRetirer<'_>>) {
        let old =
            self.table.medium[i].swap(Medium::boxed(id, self.counts.medium), Ordering::AcqRel);
        // SAFETY: `old` is a live table element we just unlinked.
        self.mark_removed(unsafe { (*old).header() });
        let old = NonNull::new(old).unwrap();
        // SAFETY: from Box::into_raw, unlinked above, retired once; on Err
        // the object is ours again and this is ordinary context, so the
        // sleeping variant retires it.
        let tried = unsafe {
            match local {
                Some(local) => local.try_kvfree_rcu(old),
                None => self.service.try_kvfree_rcu(old),
            }
        };
        if let Err(old) = tried {
            // SAFETY: Err handed ownership back; retired once.
            unsafe { self.service.kvfree_rcu_mightsleep(old) };
        }
    }

    fn replace_large(&self, i: usize, id: u64, local: Option<&LocalRetirer<'_>>) {
        let new = Large::boxed(id, self.counts.large); // allocate outside the lock
        let _locked = self.writer_lock.lock();
        let old = self.table.large[i].swap(new, Ordering::AcqRel);
        // SAFETY: `old` is a live table element we just unlinked.
        self.mark_removed(unsafe { (*old).header() });
        let old = NonNull::new(old).unwrap();
        // SAFETY: from Box::into_raw, unlinked above, retired once; the
        // headed call never fails, so it is the one to use under a raw
        // spinlock.
        unsafe {
            match local {
                Some(local) => local.kvfree_rcu(old),
                None => self.service.kvfree_rcu(old),
            }
        };
    }

    fn replace_custom(&self, i: usize, id: u64, local: Option<&LocalRetirer<'_>>) {
        let new = Custom::boxed(id, self.counts.custom);
        let rejected = {
            let _locked = self.writer_lock.lock();
            let old = self.table.custom[i].swap(new, Ordering::AcqRel);
            // SAFETY: `old` is a live table element we just unlinked.
            self.mark_removed(unsafe { (*old).header() });
            let old = NonNull::new(old).unwrap().cast();
            // SAFETY: `free_custom` frees a `Custom` box, once; unlinked above.
            unsafe {
                match local {
                    Some(local) => local.kvfree_rcu_with(old, free_custom),
                    None => self.service.kvfree_rcu_with(old, free_custom),
                }
            }
            .err()
        };
        if let Some(old) = rejected {
            // No page: after the lock, wait a grace period and free inline.
            self.rcu.synchronize();
            // SAFETY: a `Custom` box, unlinked a grace period ago, freed once.
            unsafe { free_custom(old) };
            self.inline_frees.fetch_add(1, Ordering::Relaxed);
        }
    }
}
