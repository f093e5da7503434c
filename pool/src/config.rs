//! Pool configuration: the per-slot cache watermarks and the slot count.
//!
//! The low watermark is what [`Pool::refill`](crate::Pool::refill) fills each
//! slot's cache up to, and below which a push asks for a refill; the high
//! watermark is what [`Pool::recycle`](crate::Pool::recycle) keeps, freeing the
//! rest. Both are bounded by [`CACHE_CAPACITY`], the fixed size of the cache
//! array (a push never allocates, so the cache cannot grow).

use crate::CACHE_CAPACITY;
use core::fmt;

/// How a [`Pool`](crate::Pool) is sized.
///
/// # Example
/// ```
/// use kvfree_rcu_pool::{Config, ConfigError, Pool};
///
/// let config = Config { low_watermark: 2, high_watermark: 1, slots: Some(4) };
/// assert!(matches!(Pool::new(config), Err(ConfigError::Watermarks { .. })));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Empty pages per slot that [`Pool::refill`](crate::Pool::refill) keeps
    /// ready; a push that leaves its slot's cache below it asks for a refill.
    pub low_watermark: usize,
    /// Empty pages per slot that [`Pool::recycle`](crate::Pool::recycle) keeps
    /// at most; the rest are freed. At most [`CACHE_CAPACITY`].
    pub high_watermark: usize,
    /// Number of slots; `None`: two lanes per possible CPU
    /// (`sysconf(_SC_NPROCESSORS_CONF)`), or 2 in all under loom and Miri.
    pub slots: Option<usize>,
}

impl Default for Config {
    /// Low watermark 5 (1 under loom and Miri), high watermark
    /// [`CACHE_CAPACITY`], two slots (lanes) per possible CPU.
    fn default() -> Self {
        Config {
            low_watermark: if crate::sync::SMALL { 1 } else { 5 },
            high_watermark: CACHE_CAPACITY,
            slots: None,
        }
    }
}

impl Config {
    /// Checks the watermarks and the slot count, and resolves `slots: None`.
    pub(crate) fn validate(mut self) -> Result<Config, ConfigError> {
        let (low, high) = (self.low_watermark, self.high_watermark);
        if low > high || high > CACHE_CAPACITY {
            return Err(ConfigError::Watermarks {
                low,
                high,
                max: CACHE_CAPACITY,
            });
        }
        let slots = self.slots.unwrap_or_else(|| {
            if crate::sync::SMALL {
                crate::cpu::possible_cpus()
            } else {
                crate::cpu::possible_cpus() * crate::cpu::LANES_PER_CPU
            }
        });
        if slots == 0 {
            return Err(ConfigError::ZeroSlots);
        }
        self.slots = Some(slots);
        Ok(self)
    }
}

/// Why [`Pool::new`](crate::Pool::new) refused a [`Config`].
///
/// ```
/// use kvfree_rcu_pool::{Config, ConfigError, Pool};
/// let err = Pool::new(Config { slots: Some(0), ..Config::default() }).unwrap_err();
/// assert_eq!(err, ConfigError::ZeroSlots);
/// println!("{err}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The watermarks break `low <= high <= max` (`max` is [`CACHE_CAPACITY`]).
    Watermarks {
        /// The low watermark given.
        low: usize,
        /// The high watermark given.
        high: usize,
        /// The cache capacity.
        max: usize,
    },
    /// `slots: Some(0)`.
    ZeroSlots,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Watermarks { low, high, max } => write!(
                f,
                "pool watermarks must satisfy low <= high <= {max}, got low {low}, high {high}"
            ),
            ConfigError::ZeroSlots => f.write_str("a pool needs at least one slot"),
        }
    }
}

impl std::error::Error for ConfigError {}
