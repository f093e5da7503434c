//! Readers: read-side critical sections over the table with random delays,
//! checking every object they reach, twice.
//!
//! The check: the object is alive (`magic` is `ALIVE`, not `POISON`), not
//! torn (its payload's first and last words hold its id), and young. Its
//! *pipeline age* is `epoch_now - removed_epoch`, the epoch steps completed
//! since an updater unlinked it. rcutorture's rule holds here: while a
//! reader that found the object is still inside its critical section, at
//! most one epoch step can complete after the unlink (the design's
//! `get_state() = epoch + 2` argument), so an age of 2 or more means a grace
//! period ended under a reader: the run fails.

use super::failure::fail;
use super::objects::{ALIVE, LINKED, Object};
use super::rng::Rng;
use super::shared::{AGES, Shared};
use std::sync::atomic::Ordering;

/// A random short delay inside a read-side critical section, as rcutorture's
/// readers do: mostly nothing, sometimes a spin, sometimes a yield (which,
/// with more threads than cores, gets the reader preempted).
fn read_delay(rng: &mut Rng) {
    match rng.below(64) {
        0..=1 => std::thread::yield_now(),
        2..=9 => (0..rng.below(256)).for_each(|_| std::hint::spin_loop()),
        _ => {}
    }
}

impl Shared {
    /// Checks one object a reader found; returns its pipeline age (0, 1, 2+).
    fn check(&self, obj: &dyn Object) -> usize {
        let h = obj.header();
        let magic = h.magic.load(Ordering::Relaxed);
        if magic != ALIVE {
            fail(&format!("reader saw a freed object (magic {magic:#x})"));
        }
        let p = obj.payload();
        if p[0] != h.id || p[p.len() - 1] != h.id {
            fail(&format!(
                "reader saw a torn or reused object: id {} payload {} .. {}",
                h.id,
                p[0],
                p[p.len() - 1]
            ));
        }
        let removed = h.removed_epoch.load(Ordering::Relaxed);
        if removed == LINKED {
            return 0;
        }
        // Relaxed: a stale epoch only makes the age smaller (never a false failure).
        let age = self.rcu.epoch().saturating_sub(removed) as usize;
        if age >= 2 {
            self.ages[2].fetch_add(1, Ordering::Relaxed);
            fail(&format!(
                "pipeline age {age}: a grace period ended while a reader held object {}",
                h.id
            ));
        }
        age.min(1)
    }

    /// One reader thread: read-side sections until `stop_readers`.
    pub fn reader(&self, seed: u64) {
        self.rcu.register_current_thread().expect("reader slot");
        let mut rng = Rng::new(seed);
        let mut reads = 0;
        let mut ages = [0u64; AGES];
        while !self.stop_readers.load(Ordering::Relaxed) {
            let guard = self.rcu.read_lock();
            for _ in 0..4 {
                self.read_one(&mut rng, &mut ages);
            }
            drop(guard);
            reads += 1;
        }
        self.reads.fetch_add(reads, Ordering::Relaxed);
        for (total, n) in self.ages.iter().zip(ages) {
            total.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Inside the caller's read-side critical section (sometimes nested in
    /// one more): reaches a random element, checks it, waits a random
    /// delay, checks it again (still alive, still young).
    fn read_one(&self, rng: &mut Rng, ages: &mut [u64; AGES]) {
        let i = rng.below(self.table.slots() as u64) as usize;
        let nested = (rng.below(16) == 0).then(|| self.rcu.read_lock());
        // Loaded inside our caller's read-side critical section; updaters
        // retire only after unlinking, so the object is not freed before the
        // caller's guard drops.
        let obj: &dyn Object = match rng.below(4) {
            // SAFETY: see above.
            0 => unsafe { &*self.table.small[i].load(Ordering::Acquire) },
            // SAFETY: see above.
            1 => unsafe { &*self.table.medium[i].load(Ordering::Acquire) },
            // SAFETY: see above.
            2 => unsafe { &*self.table.large[i].load(Ordering::Acquire) },
            // SAFETY: see above.
            _ => unsafe { &*self.table.custom[i].load(Ordering::Acquire) },
        };
        ages[self.check(obj)] += 1;
        read_delay(rng);
        ages[self.check(obj)] += 1;
        drop(nested);
    }
}
