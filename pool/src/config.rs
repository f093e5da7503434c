//! Pool configuration: the per-slot cache watermarks and the slot count.
//!
//! The low watermark is when to ask for pages: a push that leaves its slot's
//! cache below it asks for a refill, and [`Pool::refill`](crate::Pool::refill)
//! tops up every slot below it. The high watermark is how far: a refill fills
//! such a slot's cache up to it, and [`Pool::recycle`](crate::Pool::recycle)
//! keeps at most that many, freeing the rest. Both are bounded by
//! [`CACHE_CAPACITY`], the fixed size of the cache array (a push never
//! allocates, so the cache cannot grow).
//!
//! Every value is checked by [`Pool::new`](crate::Pool::new), in every build:
//! a low watermark of 0 would never ask for a page (every push would fail),
//! a high watermark below the low one would make each refill stop short of
//! what was asked, and a slot count of 0 or above [`MAX_SLOTS`] has no pool
//! (or a useless one of megabytes). The error names the field and its range.

use crate::CACHE_CAPACITY;
use core::fmt;

/// The largest slot count a [`Config`] may ask for: 65536, eight times the
/// largest CPU count Linux supports (`NR_CPUS` 8192), two lanes each with
/// room to spare. A default config resolves to at most this many slots.
///
/// ```
/// use kvfree_rcu_pool::{Config, MAX_SLOTS, Pool};
/// let too_many = Config { slots: Some(MAX_SLOTS + 1), ..Config::default() };
/// assert!(Pool::new(too_many).is_err());
/// ```
pub const MAX_SLOTS: usize = 1 << 16;

/// How a [`Pool`](crate::Pool) is sized.
///
/// Allowed values: `1 <= low_watermark <= high_watermark <= CACHE_CAPACITY`
/// and `slots` in `1..=MAX_SLOTS` (or `None`).
///
/// # Example
/// ```
/// use kvfree_rcu_pool::{Config, ConfigError, Pool};
///
/// let config = Config { low_watermark: 2, high_watermark: 1, slots: Some(4) };
/// assert!(matches!(Pool::new(config), Err(ConfigError::HighWatermark { .. })));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// When to ask for pages: a push that leaves its slot's cache below it
    /// asks for a refill, and [`Pool::refill`](crate::Pool::refill) tops up
    /// the slots below it. In `1..=high_watermark`.
    pub low_watermark: usize,
    /// How many empty pages per slot [`Pool::refill`](crate::Pool::refill)
    /// fills a low cache up to, and [`Pool::recycle`](crate::Pool::recycle)
    /// keeps at most (the rest are freed). In
    /// `low_watermark..=CACHE_CAPACITY`.
    pub high_watermark: usize,
    /// Number of slots, in `1..=MAX_SLOTS`; `None`: two lanes per possible
    /// CPU (`sysconf(_SC_NPROCESSORS_CONF)`, at most [`MAX_SLOTS`] in all),
    /// or 2 in all under loom and Miri.
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
    /// Checks every field against its range (see [`Config`]), and resolves
    /// `slots: None`.
    pub(crate) fn validate(mut self) -> Result<Config, ConfigError> {
        let low = self.low_watermark;
        if !(1..=CACHE_CAPACITY).contains(&low) {
            return Err(ConfigError::LowWatermark {
                value: low,
                min: 1,
                max: CACHE_CAPACITY,
            });
        }
        let high = self.high_watermark;
        if !(low..=CACHE_CAPACITY).contains(&high) {
            return Err(ConfigError::HighWatermark {
                value: high,
                min: low,
                max: CACHE_CAPACITY,
            });
        }
        let slots = self.slots.unwrap_or_else(|| {
            let slots = if crate::sync::SMALL {
                crate::cpu::possible_cpus()
            } else {
                crate::cpu::possible_cpus() * crate::cpu::LANES_PER_CPU
            };
            slots.min(MAX_SLOTS)
        });
        if !(1..=MAX_SLOTS).contains(&slots) {
            return Err(ConfigError::Slots {
                value: slots,
                min: 1,
                max: MAX_SLOTS,
            });
        }
        self.slots = Some(slots);
        Ok(self)
    }
}

/// Why [`Pool::new`](crate::Pool::new) refused a [`Config`]: the field, the
/// value given, and the allowed range `min..=max`.
///
/// ```
/// use kvfree_rcu_pool::{Config, ConfigError, MAX_SLOTS, Pool};
/// let err = Pool::new(Config { slots: Some(0), ..Config::default() }).unwrap_err();
/// assert_eq!(err, ConfigError::Slots { value: 0, min: 1, max: MAX_SLOTS });
/// assert_eq!(err.field(), "slots");
/// assert_eq!(err.to_string(), format!("pool slots must be in 1..={MAX_SLOTS}, got 0"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `low_watermark` is outside `1..=CACHE_CAPACITY`.
    LowWatermark {
        /// The value given.
        value: usize,
        /// The smallest value allowed (1).
        min: usize,
        /// The largest value allowed ([`CACHE_CAPACITY`]).
        max: usize,
    },
    /// `high_watermark` is outside `low_watermark..=CACHE_CAPACITY`.
    HighWatermark {
        /// The value given.
        value: usize,
        /// The smallest value allowed (the low watermark given).
        min: usize,
        /// The largest value allowed ([`CACHE_CAPACITY`]).
        max: usize,
    },
    /// `slots` is outside `1..=MAX_SLOTS`.
    Slots {
        /// The value given.
        value: usize,
        /// The smallest value allowed (1).
        min: usize,
        /// The largest value allowed ([`MAX_SLOTS`]).
        max: usize,
    },
}

impl ConfigError {
    /// The name of the [`Config`] field that is out of range.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::LowWatermark { .. } => "low_watermark",
            ConfigError::HighWatermark { .. } => "high_watermark",
            ConfigError::Slots { .. } => "slots",
        }
    }

    /// `(value, min, max)`: the value given and the allowed range.
    fn range(&self) -> (usize, usize, usize) {
        match *self {
            ConfigError::LowWatermark { value, min, max }
            | ConfigError::HighWatermark { value, min, max }
            | ConfigError::Slots { value, min, max } => (value, min, max),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (value, min, max) = self.range();
        write!(
            f,
            "pool {} must be in {min}..={max}, got {value}",
            self.field()
        )?;
        match self {
            ConfigError::LowWatermark { value: 0, .. } => {
                f.write_str(" (a pool that never asks for pages has none)")
            }
            ConfigError::HighWatermark { .. } => {
                f.write_str(" (from the low watermark to the cache capacity)")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {}
