//! What a torture run does: how many readers and updaters, what bounds the
//! run (an iteration count for CI, wall-clock time for the soak), the table's
//! size and the service's per-CPU cache watermarks.

use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub readers: usize,
    pub updaters: usize,
    /// Replacements per updater (the CI bound); ignored when `duration` is set.
    pub updates_per_updater: u64,
    /// Run for this long instead (the soak).
    pub duration: Option<Duration>,
    /// Elements per type in the table.
    pub slots: usize,
    /// Small per-CPU caches, so floods run the fallbacks often.
    pub low_watermark: usize,
    pub high_watermark: usize,
    /// How far a lane's cache may grow when it runs dry (equal to
    /// `high_watermark`: fixed caches, the fallbacks keep running).
    pub max_watermark: usize,
    /// Print a progress line every this many seconds (soak only).
    pub progress: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            readers: 4,
            updaters: 3,
            updates_per_updater: 20_000,
            duration: None,
            slots: 16,
            low_watermark: 2,
            high_watermark: 4,
            max_watermark: 4,
            progress: None,
        }
    }
}

impl Config {
    /// Replacements each updater makes before it stops on its own: the CI
    /// bound, or no bound at all in the soak (the deadline stops updaters).
    pub fn update_limit(&self) -> u64 {
        if self.duration.is_some() {
            u64::MAX
        } else {
            self.updates_per_updater
        }
    }
}

/// Scales an iteration count by `KVFREE_STRESS_SCALE` (a float, default 1;
/// the sanitizer scripts set it below 1).
pub fn stress_scale(n: u64) -> u64 {
    let scale = std::env::var("KVFREE_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as u64).max(1)
}
