//! `Builder`: configuration of a [`KvfreeRcu`](crate::KvfreeRcu).

use crate::gp::GracePeriod;
use crate::pool::{self, ConfigError};
use crate::service::KvfreeRcu;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Configures and builds a [`KvfreeRcu`].
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use kvfree_rcu::{KvfreeRcu, Rcu};
/// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
///     .low_watermark(8)
///     .high_watermark(16)
///     .drain_interval(Duration::from_millis(2))
///     .build();
/// # drop(service);
/// ```
#[derive(Debug)]
pub struct Builder<G> {
    pub(crate) gp: Arc<G>,
    pub(crate) pool: pool::Config,
    pub(crate) drain_interval: Duration,
    pub(crate) poll_interval: Duration,
    pub(crate) max_refill_backoff: Duration,
    pub(crate) spawn_worker: bool,
    pub(crate) thread_name: String,
}

/// Why [`Builder::try_build`] failed.
///
/// ```
/// use std::sync::Arc;
/// use kvfree_rcu::{BuildError, KvfreeRcu, Rcu};
/// let err = KvfreeRcu::builder(Arc::new(Rcu::new()))
///     .low_watermark(9)
///     .high_watermark(4) // below the low watermark
///     .try_build()
///     .unwrap_err();
/// assert!(matches!(err, BuildError::Pool(_)));
/// println!("{err}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The page-pool configuration is invalid (a watermark or the lane
    /// count out of range); the pool's error names the field and the range.
    Pool(ConfigError),
    /// The worker thread could not be spawned.
    Spawn(std::io::Error),
    /// A service setting is outside its allowed range (its setter's docs
    /// give the range).
    Setting(SettingError),
}

/// A [`Builder`] setting of the service outside its allowed range.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use kvfree_rcu::{BuildError, KvfreeRcu, Rcu};
/// let err = KvfreeRcu::builder(Arc::new(Rcu::new()))
///     .max_refill_backoff(Duration::ZERO)
///     .try_build()
///     .unwrap_err();
/// let BuildError::Setting(setting) = &err else { panic!("{err}") };
/// assert_eq!(setting.setting(), "max_refill_backoff");
/// assert!(err.to_string().contains("1ms..=10s"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    setting: &'static str,
    value: String,
    allowed: &'static str,
}

impl SettingError {
    /// The name of the `Builder` method that set the value.
    pub fn setting(&self) -> &'static str {
        self.setting
    }

    /// What is allowed, in words.
    pub fn allowed(&self) -> &'static str {
        self.allowed
    }
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} is not allowed: {}",
            self.setting, self.value, self.allowed
        )
    }
}

impl std::error::Error for SettingError {}

/// Allowed `drain_interval`: below 100 µs the idle worker would be a busy
/// loop; above 10 s records on an idle CPU would wait too long for a free.
const DRAIN_INTERVAL: core::ops::RangeInclusive<Duration> =
    Duration::from_micros(100)..=Duration::from_secs(10);
/// Allowed `poll_interval`: at least 10 µs (no busy polling), at most 1 s.
const POLL_INTERVAL: core::ops::RangeInclusive<Duration> =
    Duration::from_micros(10)..=Duration::from_secs(1);
/// Allowed `max_refill_backoff`: at least the first wait of the backoff
/// (1 ms), at most 10 s.
const MAX_REFILL_BACKOFF: core::ops::RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(10);

fn check_duration(
    setting: &'static str,
    value: Duration,
    allowed: core::ops::RangeInclusive<Duration>,
    allowed_text: &'static str,
) -> Result<(), BuildError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(BuildError::Setting(SettingError {
            setting,
            value: format!("{value:?}"),
            allowed: allowed_text,
        }))
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Pool(e) => write!(f, "kvfree-rcu: invalid pool configuration: {e}"),
            BuildError::Spawn(e) => write!(f, "kvfree-rcu: cannot spawn the worker thread: {e}"),
            BuildError::Setting(e) => write!(f, "kvfree-rcu: invalid service setting: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Pool(e) => Some(e),
            BuildError::Spawn(e) => Some(e),
            BuildError::Setting(e) => Some(e),
        }
    }
}

impl<G: GracePeriod> Builder<G> {
    pub(crate) fn new(gp: Arc<G>) -> Self {
        Builder {
            gp,
            pool: pool::Config::default(),
            drain_interval: Duration::from_millis(5),
            poll_interval: Duration::from_micros(250),
            max_refill_backoff: Duration::from_millis(10),
            spawn_worker: true,
            thread_name: "kvfree-rcu".to_owned(),
        }
    }

    /// Empty pages each CPU keeps cached; below it the worker refills
    /// (default 5, the kernel's `rcu_min_cached_objs`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).low_watermark(2).build();
    /// # drop(service);
    /// ```
    pub fn low_watermark(mut self, pages: usize) -> Self {
        self.pool.low_watermark = pages;
        self
    }

    /// Most empty pages a CPU keeps; drained pages beyond it are freed.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .low_watermark(1)
    ///     .high_watermark(4)
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn high_watermark(mut self, pages: usize) -> Self {
        self.pool.high_watermark = pages;
        self
    }

    /// Number of pool lanes, each with an open page and a cache (default:
    /// two lanes per possible CPU, so a producer preempted while holding one
    /// does not push its CPU's other threads into the fallbacks).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).lanes(4).build();
    /// # drop(service);
    /// ```
    pub fn lanes(mut self, lanes: usize) -> Self {
        self.pool.lanes = Some(lanes);
        self
    }

    /// How often the worker seals open pages and head lists into a batch
    /// when nothing wakes it (default 5 ms). A flood (a cache under its low
    /// watermark) wakes it at once. Allowed: 100 µs ..= 10 s; otherwise
    /// [`try_build`](Self::try_build) returns [`BuildError::Setting`].
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .drain_interval(Duration::from_millis(1))
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn drain_interval(mut self, interval: Duration) -> Self {
        self.drain_interval = interval;
        self
    }

    /// How often the worker polls while batches wait for a grace period
    /// (default 250 µs). Allowed: 10 µs ..= 1 s; otherwise
    /// [`try_build`](Self::try_build) returns [`BuildError::Setting`].
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .poll_interval(Duration::from_micros(100))
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Longest wait before retrying refills after an allocation failure
    /// (default 10 ms; the wait doubles from 1 ms and resets on success).
    /// Keep it short: failures that recur more often than this cap would
    /// otherwise meet every retry, and the caches would never refill even
    /// though most allocations succeed (the torture soak found this with a
    /// 100 ms cap). Allowed: 1 ms ..= 10 s; otherwise
    /// [`try_build`](Self::try_build) returns [`BuildError::Setting`].
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .max_refill_backoff(Duration::from_millis(5))
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn max_refill_backoff(mut self, max: Duration) -> Self {
        self.max_refill_backoff = max;
        self
    }

    /// No worker thread: the owner drives the service with
    /// [`KvfreeRcu::run_once`] (and `barrier`/`shrink`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
    /// service.run_once(); // the owner does the worker's rounds
    /// ```
    pub fn manual(mut self) -> Self {
        self.spawn_worker = false;
        self
    }

    /// Name of the worker thread (default `kvfree-rcu`). It must not
    /// contain a NUL byte (the OS cannot take it); otherwise
    /// [`try_build`](Self::try_build) returns [`BuildError::Setting`]. Linux
    /// shows only its first 15 bytes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .thread_name("my-kvfree")
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Builds the service, or says why it cannot.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// match KvfreeRcu::builder(Arc::new(Rcu::new())).try_build() {
    ///     Ok(service) => assert_eq!(service.stats().pending, 0),
    ///     Err(e) => eprintln!("no service: {e}"),
    /// }
    /// ```
    pub fn try_build(self) -> Result<KvfreeRcu<G>, BuildError> {
        KvfreeRcu::from_builder(self)
    }

    /// Checks the service's own settings (the pool checks its `Config`).
    pub(crate) fn validate(&self) -> Result<(), BuildError> {
        check_duration(
            "drain_interval",
            self.drain_interval,
            DRAIN_INTERVAL,
            "allowed range 100µs..=10s",
        )?;
        check_duration(
            "poll_interval",
            self.poll_interval,
            POLL_INTERVAL,
            "allowed range 10µs..=1s",
        )?;
        check_duration(
            "max_refill_backoff",
            self.max_refill_backoff,
            MAX_REFILL_BACKOFF,
            "allowed range 1ms..=10s",
        )?;
        if self.thread_name.contains('\0') {
            return Err(BuildError::Setting(SettingError {
                setting: "thread_name",
                value: format!("{:?}", self.thread_name),
                allowed: "a name without NUL bytes",
            }));
        }
        Ok(())
    }

    /// Builds the service.
    ///
    /// # Panics
    /// With the [`BuildError`] message when the configuration is invalid or
    /// the worker thread cannot be spawned.
    ///
    /// # Example
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).build();
    /// # drop(service);
    /// ```
    pub fn build(self) -> KvfreeRcu<G> {
        self.try_build().unwrap_or_else(|e| panic!("{e}"))
    }
}
