//! Pool configuration: the per-lane cache watermarks and the lane count.
//!
//! Each lane's cache has a *target*, the pages a refill fills it up to and
//! [`Pool::recycle`](crate::Pool::recycle) keeps at most (freeing the rest),
//! and a *low mark*: a push that leaves fewer cached pages asks for a
//! refill, and [`Pool::refill`](crate::Pool::refill) tops up the lanes below
//! it. Both adapt to the lane's traffic (`watermark.rs`): the target starts
//! at the high watermark (the base), grows when the lane runs dry straight
//! to the max watermark (allocated up to the lane's share of a refill's
//! budget, the alloc watermark per lane, the rest from the reserve), and
//! halves back toward the base once the lane is idle;
//! the low mark is the low watermark at the base and grows by half of what
//! the target grows by. All three are bounded by [`CACHE_CAPACITY`], the
//! fixed size of the cache array (a push never allocates, so the cache
//! cannot grow past it). `max_watermark == high_watermark` fixes the target.
//!
//! Every value is checked by [`Pool::new`](crate::Pool::new), in every build:
//! a low watermark of 0 would never ask for a page (every push would fail),
//! a high watermark below the low one would make each refill stop short of
//! what was asked, a max watermark below the high one would cap the target
//! below its start, an alloc watermark of 0 would never allocate a page,
//! a reserve above [`MAX_RESERVE`] (4 GiB) is a mistake, a slab of 0
//! pages holds none and one above [`MAX_SLAB_PAGES`] (256 KiB) is a
//! mistake too, and a lane count
//! of 0 or above [`MAX_LANES`] has no pool (or a useless one of
//! megabytes). The error names the field and its range.

use crate::CACHE_CAPACITY;
use core::fmt;

/// The largest lane count a [`Config`] may ask for: 65536, eight times the
/// largest CPU count Linux supports (`NR_CPUS` 8192), four lanes each with
/// room to spare. A default config resolves to at most this many lanes.
///
/// ```
/// use kvfree_rcu_pool::{Config, MAX_LANES, Pool};
/// let mut too_many = Config::default();
/// too_many.lanes = Some(MAX_LANES + 1);
/// assert!(Pool::new(too_many).is_err());
/// ```
pub const MAX_LANES: usize = 1 << 16;

/// The default [`Config::alloc_watermark`]: 64 pages per lane (256 KiB,
/// about 32 000 records; 256 pages for a CPU's four lanes, what its two
/// lanes of 128 had before "Four lanes per CPU" in docs/BENCHMARKS.md), so
/// one refill allocates at most 512 pages (2 MiB) for the 8 lanes of 2
/// CPUs, shared by the lanes that need pages: a lone producer's lane may
/// take up to its target ([`CACHE_CAPACITY`], 256), eight busy lanes get
/// 64 each; past a lane's share its pages come only from the reserve (a
/// 2-thread flood whose worker is preempted for a scheduler tick or two
/// keeps finding pages, and an 8-thread flood, whose reserve is empty
/// while reclaim runs behind, allocates about what it did with a per-lane
/// cap: docs/BENCHMARKS.md, "Caches that grow past 128 pages from the
/// reserve only", "The low lanes share the allocation budget"). 2 under
/// loom and Miri.
pub const DEFAULT_ALLOC_WATERMARK: usize = if crate::sync::SMALL { 2 } else { 64 };

/// The largest reserve a [`Config`] may ask for: 2^20 pages, 4 GiB.
pub const MAX_RESERVE: usize = 1 << 20;

/// The default [`Config::max_reserve`]: 4096 pages (16 MiB). Enough for the
/// pages one large batch of a flood brings back at once (about 2 600 in
/// the head-less 8-thread flood, docs/BENCHMARKS.md), held only while the
/// traffic uses them (`relax` halves an unused reserve).
pub const DEFAULT_RESERVE: usize = if crate::sync::SMALL { 2 } else { 4096 };

/// The largest [`Config::slab_pages`]: 64 pages, 256 KiB per allocation.
pub const MAX_SLAB_PAGES: usize = 64;

/// The default [`Config::slab_pages`]: 16 pages, one 64 KiB allocation
/// (below glibc's 128 KiB `mmap` threshold, so it comes from the thread's
/// arena, grown once for all 16: `slab.rs`, and docs/BENCHMARKS.md, "Pages
/// allocated in slabs"). 2 under loom and Miri.
pub const DEFAULT_SLAB_PAGES: usize = if crate::sync::SMALL { 2 } else { 16 };

/// How a [`Pool`](crate::Pool) is sized.
///
/// Allowed values: `1 <= low_watermark <= high_watermark <= max_watermark
/// <= CACHE_CAPACITY`, `alloc_watermark` in `1..=CACHE_CAPACITY`,
/// `max_reserve` in `0..=MAX_RESERVE`, `slab_pages` in
/// `1..=MAX_SLAB_PAGES` and `lanes` in `1..=MAX_LANES` (or `None`).
///
/// # Example
/// ```
/// use kvfree_rcu_pool::{Config, ConfigError, Pool};
///
/// let mut config = Config::default();
/// (config.low_watermark, config.high_watermark, config.lanes) = (2, 1, Some(4));
/// assert!(matches!(Pool::new(config), Err(ConfigError::HighWatermark { .. })));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// When to ask for pages, at the base target: a push that leaves its
    /// lane's cache below the lane's low mark asks for a refill, and
    /// [`Pool::refill`](crate::Pool::refill) tops up the lanes below theirs.
    /// A lane's low mark is this plus half of what its target grew by above
    /// the base. In `1..=high_watermark`.
    pub low_watermark: usize,
    /// The base target: how many empty pages per lane
    /// [`Pool::refill`](crate::Pool::refill) fills a low cache up to, and
    /// [`Pool::recycle`](crate::Pool::recycle) keeps at most (the rest are
    /// freed), until the lane runs dry; then its target grows straight to
    /// `max_watermark`, and [`Pool::relax`](crate::Pool::relax) brings it
    /// back here, halving it, once the lane is idle. In
    /// `low_watermark..=CACHE_CAPACITY`.
    pub high_watermark: usize,
    /// The most a lane's target grows to under a flood (pages per lane). In
    /// `high_watermark..=CACHE_CAPACITY`; equal to `high_watermark`, the
    /// targets stay fixed.
    pub max_watermark: usize,
    /// A refill's allocation budget, in pages per lane of the pool: one
    /// refill *allocates* at most `lanes x alloc_watermark` pages, shared
    /// equally by the lanes below their low marks, and never less than
    /// `alloc_watermark` into each (`watermark.rs`). Past its share, up to
    /// its target, a lane gets only pages from the reserve (`reserve.rs`),
    /// which reclaim has already brought back, so a target grown past it
    /// needs no new allocation; and a lane filled to its share counts as
    /// filled (armed to grow) even if its target is higher. In
    /// `1..=CACHE_CAPACITY`; at `max_watermark` or above, every page of a
    /// refill may be allocated.
    pub alloc_watermark: usize,
    /// The most empty pages the pool keeps past the lanes' caches for
    /// reuse (its *reserve*, `reserve.rs`): pages a recycle brings back
    /// beyond the lanes' targets wait there for the next refill or
    /// [`Pool::push_with_new_page`](crate::Pool::push_with_new_page)
    /// instead of being freed and allocated again;
    /// [`Pool::relax`](crate::Pool::relax) halves an unused reserve. In
    /// `0..=MAX_RESERVE` (0: no reserve, every page past the targets is
    /// freed).
    pub max_reserve: usize,
    /// Pages per allocation: the pool allocates its pages this many at a
    /// time, in one block (a *slab*, `slab.rs`), and frees a slab when the
    /// last of its pages is freed. A page allocated puts the rest of its
    /// slab into the reserve, past `max_reserve` if need be, for the next
    /// pages a refill or an inline push needs. In `1..=MAX_SLAB_PAGES`
    /// (1: each page its own allocation).
    pub slab_pages: usize,
    /// Number of lanes, in `1..=MAX_LANES`; `None`: four lanes per possible
    /// CPU (`sysconf(_SC_NPROCESSORS_CONF)`, at most [`MAX_LANES`] in all),
    /// or 2 in all under loom and Miri.
    pub lanes: Option<usize>,
}

impl Default for Config {
    /// Low watermark 5 and high watermark 8 (the base: the kernel's
    /// `rcu_min_cached_objs` pages, and room for a burst between two
    /// refills; 32 pages for a CPU's four lanes), max watermark
    /// [`CACHE_CAPACITY`], alloc watermark [`DEFAULT_ALLOC_WATERMARK`], a
    /// reserve of at most [`DEFAULT_RESERVE`] pages, slabs of
    /// [`DEFAULT_SLAB_PAGES`], four lanes per possible CPU. Under loom and
    /// Miri: 1, 2, 2, 2, a reserve of 2 and slabs of 2.
    fn default() -> Self {
        Config {
            low_watermark: if crate::sync::SMALL { 1 } else { 5 },
            high_watermark: if crate::sync::SMALL { 2 } else { 8 },
            max_watermark: CACHE_CAPACITY,
            alloc_watermark: DEFAULT_ALLOC_WATERMARK,
            max_reserve: DEFAULT_RESERVE,
            slab_pages: DEFAULT_SLAB_PAGES,
            lanes: None,
        }
    }
}

impl Config {
    /// Checks every field against its range (see [`Config`]), and resolves
    /// `lanes: None`.
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
        let max = self.max_watermark;
        if !(high..=CACHE_CAPACITY).contains(&max) {
            return Err(ConfigError::MaxWatermark {
                value: max,
                min: high,
                max: CACHE_CAPACITY,
            });
        }
        if !(1..=CACHE_CAPACITY).contains(&self.alloc_watermark) {
            return Err(ConfigError::AllocWatermark {
                value: self.alloc_watermark,
                min: 1,
                max: CACHE_CAPACITY,
            });
        }
        if self.max_reserve > MAX_RESERVE {
            return Err(ConfigError::MaxReserve {
                value: self.max_reserve,
                min: 0,
                max: MAX_RESERVE,
            });
        }
        if !(1..=MAX_SLAB_PAGES).contains(&self.slab_pages) {
            return Err(ConfigError::SlabPages {
                value: self.slab_pages,
                min: 1,
                max: MAX_SLAB_PAGES,
            });
        }
        let lanes = self.lanes.unwrap_or_else(|| {
            let lanes = if crate::sync::SMALL {
                crate::cpu::possible_cpus()
            } else {
                crate::cpu::possible_cpus() * crate::cpu::LANES_PER_CPU
            };
            lanes.min(MAX_LANES)
        });
        if !(1..=MAX_LANES).contains(&lanes) {
            return Err(ConfigError::Lanes {
                value: lanes,
                min: 1,
                max: MAX_LANES,
            });
        }
        self.lanes = Some(lanes);
        Ok(self)
    }
}

/// Why [`Pool::new`](crate::Pool::new) refused a [`Config`]: the field, the
/// value given, and the allowed range `min..=max`.
///
/// ```
/// use kvfree_rcu_pool::{Config, ConfigError, MAX_LANES, Pool};
/// let mut config = Config::default();
/// config.lanes = Some(0);
/// let err = Pool::new(config).unwrap_err();
/// assert_eq!(err, ConfigError::Lanes { value: 0, min: 1, max: MAX_LANES });
/// assert_eq!(err.field(), "lanes");
/// assert_eq!(err.to_string(), format!("pool lanes must be in 1..={MAX_LANES}, got 0"));
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
    /// `max_watermark` is outside `high_watermark..=CACHE_CAPACITY`.
    MaxWatermark {
        /// The value given.
        value: usize,
        /// The smallest value allowed (the high watermark given).
        min: usize,
        /// The largest value allowed ([`CACHE_CAPACITY`]).
        max: usize,
    },
    /// `alloc_watermark` is outside `1..=CACHE_CAPACITY`.
    AllocWatermark {
        /// The value given.
        value: usize,
        /// The smallest value allowed (1).
        min: usize,
        /// The largest value allowed ([`CACHE_CAPACITY`]).
        max: usize,
    },
    /// `max_reserve` is outside `0..=MAX_RESERVE`.
    MaxReserve {
        /// The value given.
        value: usize,
        /// The smallest value allowed (0).
        min: usize,
        /// The largest value allowed ([`MAX_RESERVE`]).
        max: usize,
    },
    /// `slab_pages` is outside `1..=MAX_SLAB_PAGES`.
    SlabPages {
        /// The value given.
        value: usize,
        /// The smallest value allowed (1).
        min: usize,
        /// The largest value allowed ([`MAX_SLAB_PAGES`]).
        max: usize,
    },
    /// `lanes` is outside `1..=MAX_LANES`.
    Lanes {
        /// The value given.
        value: usize,
        /// The smallest value allowed (1).
        min: usize,
        /// The largest value allowed ([`MAX_LANES`]).
        max: usize,
    },
}

impl ConfigError {
    /// The name of the [`Config`] field that is out of range.
    pub fn field(&self) -> &'static str {
        match self {
            ConfigError::LowWatermark { .. } => "low_watermark",
            ConfigError::HighWatermark { .. } => "high_watermark",
            ConfigError::MaxWatermark { .. } => "max_watermark",
            ConfigError::AllocWatermark { .. } => "alloc_watermark",
            ConfigError::MaxReserve { .. } => "max_reserve",
            ConfigError::SlabPages { .. } => "slab_pages",
            ConfigError::Lanes { .. } => "lanes",
        }
    }

    /// `(value, min, max)`: the value given and the allowed range.
    fn range(&self) -> (usize, usize, usize) {
        match *self {
            ConfigError::LowWatermark { value, min, max }
            | ConfigError::HighWatermark { value, min, max }
            | ConfigError::MaxWatermark { value, min, max }
            | ConfigError::AllocWatermark { value, min, max }
            | ConfigError::MaxReserve { value, min, max }
            | ConfigError::SlabPages { value, min, max }
            | ConfigError::Lanes { value, min, max } => (value, min, max),
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
            ConfigError::MaxWatermark { .. } => {
                f.write_str(" (from the high watermark to the cache capacity)")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;
    use crate::Pool;

    #[test]
    fn config_is_validated() {
        use crate::MAX_LANES;
        use crate::MAX_RESERVE;
        let config = |low, high, lanes| Config {
            low_watermark: low,
            high_watermark: high,
            max_watermark: CACHE_CAPACITY,
            alloc_watermark: CACHE_CAPACITY,
            max_reserve: 0,
            slab_pages: 1,
            lanes,
        };
        let cap = CACHE_CAPACITY;
        let cases = [
            // Issue 10 item 3: a low watermark of 0 never asks for a page.
            (
                config(0, 1, None),
                ConfigError::LowWatermark {
                    value: 0,
                    min: 1,
                    max: cap,
                },
                format!("pool low_watermark must be in 1..={cap}, got 0"),
            ),
            (
                config(cap + 1, cap + 1, None),
                ConfigError::LowWatermark {
                    value: cap + 1,
                    min: 1,
                    max: cap,
                },
                format!("pool low_watermark must be in 1..={cap}, got {}", cap + 1),
            ),
            (
                config(2, 1, None),
                ConfigError::HighWatermark {
                    value: 1,
                    min: 2,
                    max: cap,
                },
                format!("pool high_watermark must be in 2..={cap}, got 1"),
            ),
            (
                config(1, cap + 1, None),
                ConfigError::HighWatermark {
                    value: cap + 1,
                    min: 1,
                    max: cap,
                },
                format!("pool high_watermark must be in 1..={cap}, got {}", cap + 1),
            ),
            (
                Config {
                    max_watermark: 1,
                    ..config(1, 2, None)
                },
                ConfigError::MaxWatermark {
                    value: 1,
                    min: 2,
                    max: cap,
                },
                format!("pool max_watermark must be in 2..={cap}, got 1"),
            ),
            (
                Config {
                    max_watermark: cap + 1,
                    ..config(1, 2, None)
                },
                ConfigError::MaxWatermark {
                    value: cap + 1,
                    min: 2,
                    max: cap,
                },
                format!("pool max_watermark must be in 2..={cap}, got {}", cap + 1),
            ),
            (
                Config {
                    alloc_watermark: 0,
                    ..config(1, 1, None)
                },
                ConfigError::AllocWatermark {
                    value: 0,
                    min: 1,
                    max: cap,
                },
                format!("pool alloc_watermark must be in 1..={cap}, got 0"),
            ),
            (
                Config {
                    alloc_watermark: cap + 1,
                    ..config(1, 1, None)
                },
                ConfigError::AllocWatermark {
                    value: cap + 1,
                    min: 1,
                    max: cap,
                },
                format!("pool alloc_watermark must be in 1..={cap}, got {}", cap + 1),
            ),
            (
                Config {
                    max_reserve: MAX_RESERVE + 1,
                    ..config(1, 1, None)
                },
                ConfigError::MaxReserve {
                    value: MAX_RESERVE + 1,
                    min: 0,
                    max: MAX_RESERVE,
                },
                format!(
                    "pool max_reserve must be in 0..={MAX_RESERVE}, got {}",
                    MAX_RESERVE + 1
                ),
            ),
            (
                Config {
                    slab_pages: 0,
                    ..config(1, 1, None)
                },
                ConfigError::SlabPages {
                    value: 0,
                    min: 1,
                    max: MAX_SLAB_PAGES,
                },
                format!("pool slab_pages must be in 1..={MAX_SLAB_PAGES}, got 0"),
            ),
            (
                Config {
                    slab_pages: MAX_SLAB_PAGES + 1,
                    ..config(1, 1, None)
                },
                ConfigError::SlabPages {
                    value: MAX_SLAB_PAGES + 1,
                    min: 1,
                    max: MAX_SLAB_PAGES,
                },
                format!(
                    "pool slab_pages must be in 1..={MAX_SLAB_PAGES}, got {}",
                    MAX_SLAB_PAGES + 1
                ),
            ),
            (
                config(1, 1, Some(0)),
                ConfigError::Lanes {
                    value: 0,
                    min: 1,
                    max: MAX_LANES,
                },
                format!("pool lanes must be in 1..={MAX_LANES}, got 0"),
            ),
            (
                config(1, 1, Some(MAX_LANES + 1)),
                ConfigError::Lanes {
                    value: MAX_LANES + 1,
                    min: 1,
                    max: MAX_LANES,
                },
                format!(
                    "pool lanes must be in 1..={MAX_LANES}, got {}",
                    MAX_LANES + 1
                ),
            ),
        ];
        for (config, error, message) in cases {
            let err = Pool::new(config.clone()).unwrap_err();
            assert_eq!(err, error, "{config:?}");
            // The message names the field and its range (plus maybe a why).
            assert!(err.to_string().starts_with(&message), "{err}");
            assert!(err.to_string().contains(err.field()), "{err}");
        }
        // The edges of every range are accepted.
        for config in [
            config(1, 1, Some(1)),
            config(cap, cap, Some(MAX_LANES)),
            config(1, cap, None),
            Config {
                max_watermark: 1,
                ..config(1, 1, None)
            },
            Config {
                max_reserve: MAX_RESERVE,
                ..config(1, 1, None)
            },
        ] {
            // Checked without building: MAX_LANES lanes take megabytes.
            config
                .clone()
                .validate()
                .unwrap_or_else(|e| panic!("{config:?}: {e}"));
        }
        let pool = Pool::default();
        assert!((1..=MAX_LANES).contains(&pool.lanes()));
        assert_eq!(pool.config().lanes, Some(pool.lanes()));
    }
}
