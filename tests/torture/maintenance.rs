//! The maintenance thread: while readers run, at random, `barrier()`,
//! `shrink()`, injected page-allocation failures, `run_once()`, and
//! short-lived threads that retire a few objects and exit at once (nothing
//! they queued may be stranded). A random sleep of up to 2 ms between steps.

use super::rng::Rng;
use super::shared::Shared;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Replacements each short-lived thread makes before it exits.
const SHORT_THREAD_UPDATES: u64 = 8;

impl Shared {
    /// Runs until `stop_readers`.
    pub fn maintenance(self: &Arc<Self>, seed: u64) {
        let mut rng = Rng::new(seed);
        while !self.stop_readers.load(Ordering::Relaxed) {
            match rng.below(16) {
                0..=3 => {
                    self.service.barrier();
                    self.barriers.fetch_add(1, Ordering::Relaxed);
                }
                4 => {
                    self.service.shrink();
                    self.shrinks.fetch_add(1, Ordering::Relaxed);
                }
                5 => self.service.inject_alloc_failures(2),
                6..=7 => self.short_lived_updater(seed ^ 0xABCD),
                _ => {
                    self.service.run_once();
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(2_000)));
        }
    }

    /// A thread that retires a few objects and exits; joined before return.
    fn short_lived_updater(self: &Arc<Self>, seed: u64) {
        let me = self.clone();
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let local = (seed % 2 == 1).then(|| me.service.local_retirer());
            for _ in 0..SHORT_THREAD_UPDATES {
                me.update_once(&mut rng, local.as_ref());
            }
            drop(local);
            me.updates
                .fetch_add(SHORT_THREAD_UPDATES, Ordering::Relaxed);
        })
        .join()
        .expect("short-lived updater");
        self.short_threads.fetch_add(1, Ordering::Relaxed);
    }
}
