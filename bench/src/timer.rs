//! The cheap clock that times sampled retire calls.
//!
//! On x86_64 it reads the time-stamp counter (`rdtsc`, about 20 cycles, no
//! syscall, no vDSO call), converted to nanoseconds with a rate calibrated
//! once per process against [`Instant`] over [`CALIBRATION`] of sleep (both
//! clocks advance while the thread sleeps, so the sleep costs no CPU and
//! preemption does not skew the rate). Elsewhere, or when the calibration
//! gives an implausible rate (a TSC that does not tick at a constant rate),
//! it falls back to [`Instant`] (`clock_gettime` through the vDSO).
//!
//! Both reads sit around every timed call, so the timer's own cost is in
//! every sample; [`Timer::overhead`] measures it with nothing between the
//! reads, and the tables report it next to the figures it inflates.
//! `rdtsc` is not a serialising instruction: the CPU may start it a few
//! instructions early or late, which is noise well below the timer's own
//! cost.

use crate::latency::Percentiles;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the TSC rate is calibrated against [`Instant`].
pub const CALIBRATION: Duration = Duration::from_millis(10);

/// Which clock [`Timer`] reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TimerKind {
    /// The time-stamp counter, at `ticks_per_ns` ticks per nanosecond.
    Tsc {
        /// Calibrated rate.
        ticks_per_ns: f64,
    },
    /// [`Instant`], nanoseconds since `origin`.
    Monotonic {
        /// Where the tick count starts.
        origin: Instant,
    },
}

/// A calibrated clock (see the module docs). Get the process's one with
/// [`Timer::get`].
#[derive(Clone, Copy, Debug)]
pub struct Timer {
    kind: TimerKind,
}

static TIMER: OnceLock<Timer> = OnceLock::new();

/// Rates outside this range (ticks per ns) mean the TSC is not usable as a clock.
const PLAUSIBLE_TSC_RATE: std::ops::RangeInclusive<f64> = 0.2..=10.0;

/// Reads the time-stamp counter.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
// `_rdtsc` is an `unsafe fn` in some toolchains and safe in others.
#[allow(unused_unsafe)]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads a counter register: no memory access, no
    // precondition (every x86_64 CPU has the instruction).
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(target_arch = "x86_64")]
fn calibrate_tsc() -> Option<f64> {
    // Each end reads the TSC on both sides of `Instant::now()` and takes the
    // middle, so the pairing error is half one clock read.
    let pair = || {
        let a = rdtsc();
        let t = Instant::now();
        let b = rdtsc();
        (a / 2 + b / 2, t)
    };
    let (tsc0, t0) = pair();
    std::thread::sleep(CALIBRATION);
    let (tsc1, t1) = pair();
    let ns = t1.duration_since(t0).as_nanos() as f64;
    let rate = tsc1.wrapping_sub(tsc0) as f64 / ns;
    PLAUSIBLE_TSC_RATE.contains(&rate).then_some(rate)
}

#[cfg(not(target_arch = "x86_64"))]
fn calibrate_tsc() -> Option<f64> {
    None
}

impl Timer {
    /// The process's timer, calibrated on first use (about [`CALIBRATION`]).
    pub fn get() -> Timer {
        *TIMER.get_or_init(|| Timer {
            kind: match calibrate_tsc() {
                Some(ticks_per_ns) => TimerKind::Tsc { ticks_per_ns },
                None => TimerKind::Monotonic {
                    origin: Instant::now(),
                },
            },
        })
    }

    /// Which clock this is.
    pub fn kind(&self) -> TimerKind {
        self.kind
    }

    /// A short name for tables: `"rdtsc (2.59 GHz)"` or `"Instant"`.
    pub fn describe(&self) -> String {
        match self.kind {
            TimerKind::Tsc { ticks_per_ns } => format!("rdtsc ({ticks_per_ns:.2} GHz)"),
            TimerKind::Monotonic { .. } => "Instant".to_owned(),
        }
    }

    /// The current tick count (compare two with [`Timer::ns_between`]).
    #[inline(always)]
    pub fn ticks(&self) -> u64 {
        match self.kind {
            #[cfg(target_arch = "x86_64")]
            TimerKind::Tsc { .. } => rdtsc(),
            #[cfg(not(target_arch = "x86_64"))]
            TimerKind::Tsc { .. } => unreachable!("the TSC is only calibrated on x86_64"),
            TimerKind::Monotonic { origin } => origin.elapsed().as_nanos() as u64,
        }
    }

    /// Nanoseconds from `start` to `end` (0 if `end` is earlier, as a TSC
    /// read on another core may be).
    #[inline]
    pub fn ns_between(&self, start: u64, end: u64) -> u64 {
        let ticks = end.saturating_sub(start);
        match self.kind {
            TimerKind::Tsc { ticks_per_ns } => (ticks as f64 / ticks_per_ns) as u64,
            TimerKind::Monotonic { .. } => ticks,
        }
    }

    /// The smallest step the clock takes, in nanoseconds: the least
    /// non-zero difference of `reads` consecutive reads (a TSC virtualised
    /// by a hypervisor may move in steps of several nanoseconds).
    pub fn resolution_ns(&self, reads: usize) -> f64 {
        let mut previous = self.ticks();
        let mut step = u64::MAX;
        for _ in 0..reads {
            let now = self.ticks();
            if now > previous {
                step = step.min(now - previous);
            }
            previous = now;
        }
        match self.kind {
            TimerKind::Tsc { ticks_per_ns } => step as f64 / ticks_per_ns,
            TimerKind::Monotonic { .. } => step as f64,
        }
    }

    /// The cost of one timed sample with nothing timed: `samples` pairs of
    /// back-to-back reads, in nanoseconds.
    pub fn overhead(&self, samples: usize) -> Percentiles {
        let mut ns: Vec<u64> = (0..samples)
            .map(|_| {
                let t0 = self.ticks();
                std::hint::black_box(());
                let t1 = self.ticks();
                self.ns_between(t0, t1)
            })
            .collect();
        Percentiles::of(&mut ns)
    }
}
