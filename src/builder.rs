//! `Builder`: configuration of a [`KvfreeRcu`](crate::KvfreeRcu). The
//! timing settings and their ranges are defined once, in `settings.rs`.

use crate::gp::GracePeriod;
use crate::pool::{self, ConfigError};
use crate::reclaim;
use crate::service::KvfreeRcu;
use crate::settings::{SettingError, Timing};
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
    pub(crate) timing: Timing,
    pub(crate) worker: WorkerMode,
    pub(crate) thread_name: String,
    pub(crate) reclaim: reclaim::Settings,
}

/// Who drives the service's rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WorkerMode {
    /// A worker thread of its own (the default).
    Thread,
    /// The owner, with `run_once` ([`Builder::manual`]).
    Manual,
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
    /// The OS refused the reclaim threads' priority
    /// ([`Builder::reclaim_priority`]): lowering a nice value needs
    /// `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows it
    /// (`PermissionDenied`), and nice values are per thread on Linux only
    /// (`Unsupported` elsewhere). No worker runs; nothing was retired.
    Priority {
        /// What was asked for.
        requested: crate::ReclaimPriority,
        /// The OS's answer.
        error: std::io::Error,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Pool(e) => write!(f, "kvfree-rcu: invalid pool configuration: {e}"),
            BuildError::Spawn(e) => write!(f, "kvfree-rcu: cannot spawn the worker thread: {e}"),
            BuildError::Setting(e) => write!(f, "kvfree-rcu: invalid service setting: {e}"),
            BuildError::Priority { requested, error } => write!(
                f,
                "kvfree-rcu: cannot give the reclaim threads {requested:?}: {error}{}",
                if error.kind() == std::io::ErrorKind::PermissionDenied {
                    " (a lower nice value needs CAP_SYS_NICE or a higher RLIMIT_NICE)"
                } else {
                    ""
                }
            ),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Pool(e) => Some(e),
            BuildError::Spawn(e) => Some(e),
            BuildError::Setting(e) => Some(e),
            BuildError::Priority { error, .. } => Some(error),
        }
    }
}

impl<G: GracePeriod> Builder<G> {
    pub(crate) fn new(gp: Arc<G>) -> Self {
        Builder {
            gp,
            pool: pool::Config::default(),
            timing: Timing::default(),
            worker: WorkerMode::Thread,
            thread_name: "kvfree-rcu".to_owned(),
            reclaim: reclaim::Settings::default(),
        }
    }

    /// The low watermark, in pages per lane: a retire that leaves a lane's
    /// cache of empty pages below its low mark asks the worker to refill it
    /// (default 5, the kernel's `rcu_min_cached_objs`). This is the low mark
    /// at the base target; a lane whose target grew (see
    /// [`max_watermark`](Self::max_watermark)) asks sooner: its low mark
    /// grows by half of what its target grew by. In `1..=high_watermark`.
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

    /// The base target, in pages per lane (default 8): a refill fills a
    /// lane's cache up to its target, and drained pages beyond it are freed.
    /// Every lane starts here; a lane that runs dry (a retire found no page
    /// on it) grows its target straight to
    /// [`max_watermark`](Self::max_watermark), and shrinks back here,
    /// halving at most once per 100 ms (and per drain interval), once it
    /// has been idle (no retire on it) for that long. In
    /// `low_watermark..=CACHE_CAPACITY`.
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

    /// The most a lane's target grows to under a flood, in pages per lane
    /// (default [`CACHE_CAPACITY`](crate::CACHE_CAPACITY), 256: 1 MiB per
    /// lane at the most, held only while the lane's traffic needs it, and
    /// past the lane's share of [`alloc_watermark`](Self::alloc_watermark)'s
    /// budget made only of pages from the reserve). Set
    /// it to the high watermark to keep every cache at a fixed size (small
    /// fixed caches make the fallbacks run often, for tests). In
    /// `high_watermark..=CACHE_CAPACITY`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .lanes(3)
    ///     .low_watermark(2)
    ///     .high_watermark(4)
    ///     .max_watermark(4) // fixed: never grows
    ///     .build();
    /// assert_eq!(service.stats().cache_target, 3 * 4);
    /// ```
    pub fn max_watermark(mut self, pages: usize) -> Self {
        self.pool.max_watermark = pages;
        self
    }

    /// A refill's allocation budget, in pages per lane (default
    /// [`DEFAULT_ALLOC_WATERMARK`](crate::DEFAULT_ALLOC_WATERMARK), 64):
    /// one refill allocates at most `lanes x alloc_watermark` pages, shared
    /// equally by the lanes that need pages, and never less than this into
    /// each. Past its share, up to its target, a lane gets only pages from
    /// the reserve (see [`max_reserve`](Self::max_reserve)), which reclaim
    /// has already brought back. So a lone producer's lane may allocate up
    /// to its target, a lane grows past its share only while reclaim keeps
    /// up, with no new allocation, and a flood that outruns reclaim on every
    /// lane allocates no more than this per lane per refill. In
    /// `1..=CACHE_CAPACITY`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .alloc_watermark(kvfree_rcu::CACHE_CAPACITY) // every cached page may be allocated
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn alloc_watermark(mut self, pages: usize) -> Self {
        self.pool.alloc_watermark = pages;
        self
    }

    /// The most empty pages the pool keeps past the lanes' caches, for the
    /// next refill or `kvfree_rcu_mightsleep` that needs a page, instead of
    /// freeing them and allocating again (default
    /// [`DEFAULT_RESERVE`](crate::DEFAULT_RESERVE), 4096: 16 MiB at the most,
    /// held only while the traffic uses it: each drain interval in which no
    /// page was taken from it halves it). 0 frees every page past the
    /// caches at once. The pages of a slab just allocated that the caches
    /// do not take wait here too, past this bound (at most
    /// [`slab_pages`](Self::slab_pages) - 1 of them). In
    /// `0..=`[`MAX_RESERVE`](crate::MAX_RESERVE).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .max_reserve(0) // no reserve
    ///     .slab_pages(1) // each page its own allocation: no slab's rest either
    ///     .build();
    /// assert_eq!(service.stats().pages_reserved, 0);
    /// ```
    pub fn max_reserve(mut self, pages: usize) -> Self {
        self.pool.max_reserve = pages;
        self
    }

    /// How many pages the pool allocates at a time, in one block (a slab),
    /// which goes back to the allocator with the last of its pages
    /// (default [`DEFAULT_SLAB_PAGES`](crate::DEFAULT_SLAB_PAGES), 16: one
    /// 64 KiB allocation). A page allocated puts the rest of its slab into
    /// the reserve for the next refill or `kvfree_rcu_mightsleep`. Why:
    /// glibc grows a thread's heap by exactly what each request needs, one
    /// `mprotect` call under the process's memory-map lock per page
    /// allocated one at a time, and the worker's refills waited for that
    /// lock behind the producers' own heap growth (docs/BENCHMARKS.md,
    /// "Pages allocated in slabs"). The cost: a page the pool keeps keeps
    /// its slab allocated. 1 allocates each page on its own: the better
    /// setting on an allocator that grows its heap in large steps
    /// (mimalloc), where slabs gain nothing and an 8-thread flood's peak
    /// memory was about 10% higher with them. In
    /// `1..=`[`MAX_SLAB_PAGES`](crate::MAX_SLAB_PAGES).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .slab_pages(32) // 128 KiB at a time
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn slab_pages(mut self, pages: usize) -> Self {
        self.pool.slab_pages = pages;
        self
    }

    /// Number of pool lanes, each with an open page and a cache (default:
    /// four lanes per possible CPU, so a producer preempted while holding one
    /// does not push its CPU's other threads into the fallbacks, even with
    /// several producers per CPU).
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
        self.timing.drain_interval = interval;
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
        self.timing.poll_interval = interval;
        self
    }

    /// The shortest time between two of the worker's attempts to advance
    /// the grace period (default 1 ms; zero: every polling round may
    /// advance). Each attempt is a process-wide barrier (`membarrier()` on
    /// Linux, `FlushProcessWriteBuffers()` on Windows) that interrupts every
    /// CPU running a thread of the process, retiring threads included, for
    /// microseconds on a VM: pacing the attempts keeps those interrupts out
    /// of the retire call's p99.99, and a batch still waits only a few
    /// milliseconds for its grace period. `barrier()`, `shrink()`,
    /// `run_once()` and `kvfree_rcu_mightsleep` are not paced. Allowed: 0 ..= 1 s; otherwise
    /// [`try_build`](Self::try_build) returns [`BuildError::Setting`].
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .advance_interval(Duration::from_micros(250))
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn advance_interval(mut self, interval: Duration) -> Self {
        self.timing.advance_interval = interval;
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
        self.timing.max_refill_backoff = max;
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
        self.worker = WorkerMode::Manual;
        self
    }

    /// Most reclaim helper threads the worker starts when a backlog builds
    /// (default: three per CPU, at most 16; 0: the worker always frees
    /// alone). Helpers are started one at a time, only when a ready batch
    /// is large (freeing fell behind, as when producers outnumber the CPUs
    /// and the worker gets a small share of them); they free large batches'
    /// pages alongside the worker, sleep while there is nothing to free,
    /// and exit with the worker. The cap trades producer speed for memory:
    /// more helpers give reclaim a larger share of the CPUs, so fewer
    /// objects wait and fewer retire calls fall back, and the producers
    /// run slower (measured in `docs/BENCHMARKS.md`, "The crew's size" and
    /// "The crew's size, with the dealer").
    /// Without a worker ([`manual`](Self::manual)) there are none.
    /// Allowed: 0 ..= 64; otherwise [`try_build`](Self::try_build) returns
    /// [`BuildError::Setting`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .max_reclaim_helpers(4)
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn max_reclaim_helpers(mut self, helpers: usize) -> Self {
        self.reclaim.max_helpers = helpers;
        self
    }

    /// Where the worker and its reclaim helpers free a page's objects.
    /// The default, [`ReclaimAffinity::Anywhere`](crate::ReclaimAffinity::Anywhere), leaves them where the
    /// scheduler puts them. [`ReclaimAffinity::FillingCpu`](crate::ReclaimAffinity::FillingCpu) moves them to
    /// the CPU that filled the page, where the objects are in that CPU's
    /// caches, as the kernel's per-CPU work frees them (Linux only;
    /// elsewhere it has no effect): the flood on glibc runs up to twice as
    /// fast, but the reclaim thread then shares the producer's CPU, and an
    /// ordinary-priority producer may be preempted by it for a scheduler
    /// slice in the middle of a retire call. A real-time one is not, but
    /// beside a real-time producer that never sleeps the reclaim thread
    /// runs only in the window the kernel keeps for ordinary threads, and
    /// reclaim slows or stalls: use `FillingCpu` with ordinary-priority
    /// producers only. See
    /// `docs/BENCHMARKS.md` for what each costs.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu, ReclaimAffinity};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .reclaim_affinity(ReclaimAffinity::FillingCpu)
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn reclaim_affinity(mut self, affinity: crate::ReclaimAffinity) -> Self {
        self.reclaim.affinity = affinity;
        self
    }

    /// The scheduler time slice the worker and its reclaim helpers ask
    /// for. The default, [`ReclaimSlice::Requested`](crate::ReclaimSlice::Requested)`(100 µs)`, lets them run soon
    /// after they wake when producers outnumber the CPUs (Linux >= 6.12;
    /// elsewhere it has no effect), so grace periods and frees keep pace
    /// with the flood; their share of the CPU is the same.
    /// [`ReclaimSlice::SchedulerDefault`](crate::ReclaimSlice::SchedulerDefault) leaves the scheduler's. A requested
    /// slice outside 100 µs ..= 100 ms is a [`BuildError::Setting`] from
    /// [`try_build`](Self::try_build). See `docs/BENCHMARKS.md` for what it
    /// changes.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{KvfreeRcu, Rcu, ReclaimSlice};
    /// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .reclaim_slice(ReclaimSlice::SchedulerDefault)
    ///     .build();
    /// # drop(service);
    /// ```
    pub fn reclaim_slice(mut self, slice: crate::ReclaimSlice) -> Self {
        self.reclaim.slice = slice;
        self
    }

    /// The scheduling priority of the worker and its reclaim helpers. The
    /// default, [`ReclaimPriority::Inherited`](crate::ReclaimPriority::Inherited), is the building thread's.
    /// Under oversubscription (more runnable producers than CPUs) the
    /// scheduler shares the CPUs by weight, and at equal nice values the
    /// reclaim threads get too little of them to keep up with a flood:
    /// what waits to be freed and the head-list fallbacks grow with it.
    /// [`ReclaimPriority::Nice`](crate::ReclaimPriority::Nice)`(-5)` gives them about three times a
    /// nice-0 producer's weight: in the 8-thread flood on 2 CPUs the peak
    /// memory went from a median of 136 to 56 MiB and the fallbacks from
    /// 19% to 7%, for 18 to 21% more time per object on glibc (none on
    /// mimalloc); at 2 threads the fallbacks went to 0 (`docs/BENCHMARKS.md`,
    /// "Reclaim threads' priority"). With
    /// [`reclaim_affinity`](Self::reclaim_affinity)`(FillingCpu)` as well,
    /// the glibc flood kept the small peak and ran faster than with either
    /// alone ("Both options"). The CPU it gives reclaim is the
    /// producers', so it is opt-in, as the kernel's `rcutree.kthread_prio`
    /// is for its RCU threads. Linux only. A value the OS refuses (lowering
    /// a nice value needs `CAP_SYS_NICE` or an `RLIMIT_NICE` that allows
    /// it), or `Nice` on another system, is a [`BuildError::Priority`] from
    /// [`try_build`](Self::try_build) (and a panic from
    /// [`build`](Self::build)); a nice value outside `-20 ..= 19` is a
    /// [`BuildError::Setting`]. Without a worker ([`manual`](Self::manual))
    /// it has no effect.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use kvfree_rcu::{BuildError, KvfreeRcu, Rcu, ReclaimPriority};
    /// let built = KvfreeRcu::builder(Arc::new(Rcu::new()))
    ///     .reclaim_priority(ReclaimPriority::Nice(-5))
    ///     .try_build();
    /// match built {
    ///     Ok(service) => drop(service),
    ///     // Not privileged, or not Linux: the message says which.
    ///     Err(e @ BuildError::Priority { .. }) => eprintln!("{e}"),
    ///     Err(e) => panic!("{e}"),
    /// }
    /// ```
    pub fn reclaim_priority(mut self, priority: crate::ReclaimPriority) -> Self {
        self.reclaim.priority = priority;
        self
    }

    /// Name of the worker thread (default `kvfree-rcu`); reclaim helpers
    /// are named after it (`kvfree-rcu-h1`, ...). It must not contain a NUL
    /// byte (the OS cannot take it); otherwise
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
        self.timing.validate().map_err(BuildError::Setting)?;
        self.reclaim.validate().map_err(BuildError::Setting)?;
        if self.thread_name.contains('\0') {
            return Err(BuildError::Setting(SettingError::new(
                "thread_name",
                format!("{:?}", self.thread_name),
                "a name without NUL bytes",
            )));
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
