//! The service's timing settings, defined, defaulted and validated once:
//! [`Timing`] is what the [`Builder`](crate::Builder) sets, what it checks
//! before building, and what the shared state and the worker read. A
//! setting outside its range is a [`SettingError`] naming the setting.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

/// The worker's timing: how often it seals idle pages, how often it polls
/// waiting batches, how often it may advance the grace period, and how long
/// it backs off after a failed refill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// How often open pages and head lists are sealed into a batch when
    /// nothing wakes the worker.
    pub(crate) drain_interval: Duration,
    /// How often the worker polls while batches wait for a grace period.
    pub(crate) poll_interval: Duration,
    /// The shortest time between two of the worker's attempts to advance
    /// the grace period (each one a process-wide barrier that interrupts
    /// every CPU running the process's threads).
    pub(crate) advance_interval: Duration,
    /// Longest wait before retrying refills after an allocation failure.
    pub(crate) max_refill_backoff: Duration,
}

/// Allowed `drain_interval`: below 100 µs the idle worker would be a busy
/// loop; above 10 s records on an idle CPU would wait too long for a free.
const DRAIN_INTERVAL: RangeInclusive<Duration> =
    Duration::from_micros(100)..=Duration::from_secs(10);
/// Allowed `poll_interval`: at least 10 µs (no busy polling), at most 1 s.
const POLL_INTERVAL: RangeInclusive<Duration> = Duration::from_micros(10)..=Duration::from_secs(1);
/// Allowed `advance_interval`: at most 1 s (batches would wait that long);
/// zero lets every polling round advance.
const ADVANCE_INTERVAL: RangeInclusive<Duration> = Duration::ZERO..=Duration::from_secs(1);
/// Allowed `max_refill_backoff`: at least the first wait of the backoff
/// (1 ms), at most 10 s.
const MAX_REFILL_BACKOFF: RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(10);

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            drain_interval: Duration::from_millis(5),
            poll_interval: Duration::from_micros(250),
            advance_interval: Duration::from_millis(1),
            max_refill_backoff: Duration::from_millis(10),
        }
    }
}

impl Timing {
    /// Checks every setting against its range; the first one outside it is
    /// the error.
    pub(crate) fn validate(&self) -> Result<(), SettingError> {
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
            "advance_interval",
            self.advance_interval,
            ADVANCE_INTERVAL,
            "allowed range 0..=1s",
        )?;
        check_duration(
            "max_refill_backoff",
            self.max_refill_backoff,
            MAX_REFILL_BACKOFF,
            "allowed range 1ms..=10s",
        )
    }
}

fn check_duration(
    setting: &'static str,
    value: Duration,
    allowed: RangeInclusive<Duration>,
    allowed_text: &'static str,
) -> Result<(), SettingError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(SettingError::new(
            setting,
            format!("{value:?}"),
            allowed_text,
        ))
    }
}

/// A [`Builder`](crate::Builder) setting of the service outside its allowed range.
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
    pub(crate) fn new(setting: &'static str, value: String, allowed: &'static str) -> SettingError {
        SettingError {
            setting,
            value,
            allowed,
        }
    }

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

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_within_their_ranges() {
        assert_eq!(Timing::default().validate(), Ok(()));
    }

    #[test]
    fn each_setting_outside_its_range_is_named() {
        let slow_drain = Timing {
            drain_interval: Duration::from_secs(11),
            ..Timing::default()
        };
        assert_eq!(
            slow_drain.validate().unwrap_err().setting(),
            "drain_interval"
        );
        let slow_advance = Timing {
            advance_interval: Duration::from_millis(1001),
            ..Timing::default()
        };
        assert_eq!(
            slow_advance.validate().unwrap_err().setting(),
            "advance_interval"
        );
        let every_round = Timing {
            advance_interval: Duration::ZERO,
            ..Timing::default()
        };
        assert_eq!(every_round.validate(), Ok(()));
        let busy_poll = Timing {
            poll_interval: Duration::ZERO,
            ..Timing::default()
        };
        assert_eq!(busy_poll.validate().unwrap_err().setting(), "poll_interval");
    }
}
