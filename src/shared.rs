//! `Shared`: the state the service handle and its worker share, and every
//! step the service takes on it, in one place:
//! - **push** (any context): [`Shared::push_record`], [`Shared::try_push`],
//!   [`Shared::queue_head`], and the refill request they make;
//! - **round** (ordinary context): the worker's duty, also `run_once`'s;
//! - **barrier** and **shrink** (ordinary context);
//! - the **stats** snapshot.
//!
//! Round, barrier and shrink all run the same pipeline,
//! [`collect → advance → reap`](Shared::collect_advance_reap), written once:
//! collect a batch (what [`OpenPages`] says), advance the grace period while
//! batches wait (non-blocking), free the batches whose grace period ended.
//!
//! One round ([`Shared::round`]) does, in order:
//! 1. refill the page caches, if the retire path asked (or at start-up),
//!    backing off exponentially (1 ms doubling to `max_refill_backoff`) after
//!    an allocation failure, so memory pressure slows refills instead of
//!    failing anything: the retire path has its fallbacks;
//! 2. the pipeline, collecting full pages and heads when the retire path
//!    rang (a flood, or a fallback), and the open pages too when the drain
//!    interval has passed (so no record stays on an idle CPU) or the round
//!    is forced ([`Trigger`]).
//!
//! A round cannot panic on its own (the settings are validated by the
//! builder, the backoff arithmetic saturates, and a panicking user
//! destructor aborts the process, see `batch_queue.rs`), but the
//! grace-period source is user code: what a panicking round had taken out
//! of the queues may be leaked, never freed early (a batch is freed only
//! after its stamp polled complete). `barrier()` never depends on the
//! worker: it runs the pipeline on the caller's thread, so it cannot hang
//! because the worker is stuck or gone.

use crate::batch_queue::{BatchQueue, OpenPages, Reaper};
use crate::context::{self, Violation};
use crate::free_fn::{FreeFn, kind_of};
use crate::gp::GracePeriod;
use crate::head::{HeadFreeFn, HeadLists, RcuHead};
use crate::per_cpu_count::PerCpuCount;
use crate::pool::{self, LaneTag, Pool, ThreadLane};
use crate::settings::Timing;
use crate::stats::Stats;
use crate::sync::{AtomicBool, AtomicU64, Mutex, Ordering, Patience, lock};
use crate::wake::WakeWord;
use crossbeam_utils::CachePadded;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which lanes a retire call pushes through.
#[derive(Clone, Copy)]
pub(crate) enum Via<'a> {
    /// The per-CPU lanes (`Pool::push`): every retire call on the service.
    CpuLanes,
    /// A thread's own lane (`Pool::push_local`): the calls on a
    /// [`LocalRetirer`](crate::LocalRetirer).
    ThreadLane(&'a ThreadLane),
}

/// State shared by the service handle and its worker thread.
pub(crate) struct Shared<G: GracePeriod> {
    pub(crate) gp: Arc<G>,
    pub(crate) pool: Pool,
    heads: HeadLists,
    pub(crate) wake: WakeWord,
    refill_requested: CachePadded<AtomicBool>,
    /// Set once by `KvfreeRcu::drop`: the worker runs its exit barrier.
    pub(crate) stop: AtomicBool,
    /// `pause_worker`: the worker skips its rounds.
    pub(crate) paused: AtomicBool,
    pub(crate) timing: Timing,
    pub(crate) batches: BatchQueue<G::State>,
    pub(crate) round_state: Mutex<RoundState>,
    /// Worker rounds that panicked (caught; the worker goes on).
    pub(crate) worker_panics: AtomicU64,
    /// Test hook: the next this many rounds panic at their start.
    injected_round_panics: AtomicU64,
    /// Head-less calls that got `NoPage` (counted per CPU: a flood can take
    /// this path on every CPU at once). Headed fallbacks are counted by the
    /// head lists themselves.
    try_failed: PerCpuCount,
    /// Objects `kvfree_rcu_mightsleep` freed inline (cold: only after a
    /// failed page allocation).
    freed_inline: CachePadded<AtomicU64>,
    /// When the service started: the origin of `last_local_reap`.
    started: Instant,
    /// When a `LocalRetirer::reclaim` last reaped, in nanoseconds since
    /// `started` (0: never): while one reaped within a drain interval, the
    /// worker's polling rounds leave reaping to it (`reaper_due`).
    last_local_reap: CachePadded<AtomicU64>,
    /// The largest backlog a pass of the pipeline found at its start
    /// (`Stats::peak_pending`): written there only, never on the retire
    /// path.
    peak_backlog: AtomicU64,
}

/// The backlog (objects retired and not yet freed) from which the worker
/// deals ready batches out ([`Reaper::Dealer`], `Shared::reaper_due`), to
/// its helpers and to the threads that reclaim, and `reclaim` frees bites
/// of the board's chunks (`Shared::reap_here`): 512 Ki objects, about
/// 1 000 full pages. A thread that retires and reclaims alone keeps about
/// a grace period's worth of objects in flight (50 000 to 120 000 in a
/// 1-thread flood: a grace period of 2 to 3 ms at 20 to 40 ns per object);
/// 128 Ki turned most of the 1-thread mimalloc flood's calls away
/// (docs/BENCHMARKS.md, "Freeing on the retiring thread"), while an
/// 8-thread flood's backlog is in the millions. Dealing from 256 Ki made
/// the 8-thread default flood slower, from 1 or 2 Mi it kept its long
/// rounds (docs/BENCHMARKS.md, "The worker deals to its helpers").
const DEAL_BACKLOG: u64 = 512 * 1024;

/// Whether threads reap through `LocalRetirer::reclaim` (one did within the
/// last drain interval): the worker's view, for [`worker_reaper`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LocalReaps {
    Recent,
    NotRecent,
}

/// How the worker reaps this round (`Shared::reaper_due` has the why):
/// with `backlog` objects waiting and `helpers` helpers running, it deals
/// once [`DEAL_BACKLOG`] objects wait and others free (helpers, or threads
/// that reclaim), leaves the reap to the threads that reclaim below that,
/// and otherwise reaps.
fn worker_reaper(threads: LocalReaps, backlog: u64, helpers: usize) -> Option<Reaper> {
    let others_free = threads == LocalReaps::Recent || helpers > 0;
    if backlog >= DEAL_BACKLOG && others_free {
        Some(Reaper::Dealer)
    } else if threads == LocalReaps::Recent {
        None
    } else {
        Some(Reaper::Poller)
    }
}

/// Who runs the collect-advance-reap pipeline, which decides how often it
/// advances the grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    /// A thread waiting for its own batch (`barrier`, `shrink`), or a round
    /// someone asked for (`run_once`): advances at once, every time.
    Waiter,
    /// The worker's polling rounds: advances at most once per
    /// `advance_interval` ([`Shared::advance_due`]).
    Poller,
}

/// Why a round runs: it decides what the round collects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// The build's first round: refills the caches, collects nothing.
    Start,
    /// The worker's polling round: full pages and heads at once, open pages
    /// once the drain interval has passed since they were last taken.
    Poll,
    /// `run_once`: everything queued, open pages included.
    Forced,
}

/// The first wait after a failed refill; it doubles up to
/// `max_refill_backoff`.
const MIN_REFILL_BACKOFF: Duration = Duration::from_millis(1);

/// The shortest time between two of the worker's `relax` calls: a lane
/// counts as idle, and its cache shrinks, only if no record went through
/// it for this long. Under oversubscription a lane's threads can all be off
/// their CPU for a few drain intervals in the middle of a flood: relaxed at
/// every drain interval (5 ms), an 8-thread flood on 2 CPUs had 5 000 to
/// 7 700 cached pages freed as idle and allocated again moments later, the
/// worker's time and the allocator's churn (docs/BENCHMARKS.md, "Lanes
/// relaxed only after 100 ms idle").
const RELAX_INTERVAL: Duration = Duration::from_millis(100);

/// The rounds' own state: refill backoff and drain timing (one round at a
/// time holds it).
#[derive(Debug)]
pub(crate) struct RoundState {
    last_collect: Instant,
    /// When the pool's caches were last relaxed (`relax_due`).
    last_relax: Instant,
    /// When the worker last tried to advance the grace period.
    last_advance: Option<Instant>,
    refill_retry_at: Option<Instant>,
    refill_backoff: Duration,
    refill_pending: bool,
}

/// What one refill attempt did.
#[derive(Clone, Copy, Debug, Default)]
struct Refilled {
    pages: usize,
    failed: bool,
}

impl RoundState {
    fn new() -> Self {
        RoundState {
            last_collect: Instant::now(),
            last_relax: Instant::now(),
            last_advance: None,
            refill_retry_at: None,
            refill_backoff: Duration::ZERO,
            refill_pending: true,
        }
    }

    /// Whether the worker may try to advance now (at most once per
    /// `interval`); if so, counts this as its last try.
    fn advance_due(&mut self, now: Instant, interval: Duration) -> bool {
        let due = self
            .last_advance
            .is_none_or(|last| now.duration_since(last) >= interval);
        if due {
            self.last_advance = Some(now);
        }
        due
    }

    /// Whether a round that seals idle pages (`collect` is `TakeIdle`) also
    /// relaxes the pool's caches: a polling round at most once per
    /// [`RELAX_INTERVAL`]; a round someone asked for (`run_once`, whose
    /// caller paces its rounds) every time. If so, counts this as the last
    /// relax.
    fn relax_due(&mut self, trigger: Trigger, collect: Option<OpenPages>, now: Instant) -> bool {
        if collect != Some(OpenPages::TakeIdle) {
            return false;
        }
        let due = match trigger {
            Trigger::Poll => now.duration_since(self.last_relax) >= RELAX_INTERVAL,
            Trigger::Start | Trigger::Forced => true,
        };
        if due {
            self.last_relax = now;
        }
        due
    }

    /// Refills `pool` if a refill is pending and the backoff has run out.
    fn refill(&mut self, pool: &Pool, now: Instant, max_backoff: Duration) -> Refilled {
        let backing_off = self.refill_retry_at.is_some_and(|t| now < t);
        if !self.refill_pending || backing_off {
            return Refilled::default();
        }
        match pool.refill() {
            Ok(pages) => {
                self.refill_pending = false;
                self.refill_retry_at = None;
                self.refill_backoff = Duration::ZERO;
                Refilled {
                    pages,
                    failed: false,
                }
            }
            Err(_) => {
                self.refill_backoff = next_backoff(self.refill_backoff, max_backoff);
                // An unrepresentable instant: retry at once.
                self.refill_retry_at = now.checked_add(self.refill_backoff);
                Refilled {
                    pages: 0,
                    failed: true,
                }
            }
        }
    }

    /// What a round with `trigger` collects now (`None`: nothing).
    fn what_to_collect(
        &mut self,
        trigger: Trigger,
        now: Instant,
        drain_interval: Duration,
    ) -> Option<OpenPages> {
        let interval_passed = now.duration_since(self.last_collect) >= drain_interval;
        match trigger {
            Trigger::Start => None,
            Trigger::Forced => {
                self.last_collect = now;
                Some(OpenPages::TakeIdle)
            }
            Trigger::Poll if interval_passed => {
                self.last_collect = now;
                Some(OpenPages::TakeIdle)
            }
            Trigger::Poll => Some(OpenPages::Leave),
        }
    }
}

/// The refill backoff after one more failure: doubled, at least
/// `MIN_REFILL_BACKOFF`, at most `max`. Never panics, whatever `max` is
/// (`Duration::clamp` panics when `max` is below the minimum).
fn next_backoff(current: Duration, max: Duration) -> Duration {
    current.saturating_mul(2).max(MIN_REFILL_BACKOFF).min(max)
}

/// What one round did (returned by `KvfreeRcu::run_once`).
///
/// ```
/// use std::sync::Arc;
/// use kvfree_rcu::{KvfreeRcu, Rcu, RoundReport};
/// let service = KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build();
/// let report: RoundReport = service.run_once();
/// assert!(!report.refill_failed);
/// assert_eq!(report.freed, 0); // nothing was retired
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoundReport {
    /// Pages allocated into the caches.
    pub pages_refilled: usize,
    /// Whether a page allocation failed (the next refill backs off).
    pub refill_failed: bool,
    /// Pages and heads collected into a new batch.
    pub collected_pages: usize,
    /// Objects with embedded heads collected into a new batch, as counted
    /// by their pushes (the head lists are not walked: a head queued while
    /// the round collects may be counted in the next report).
    pub collected_heads: u64,
    /// Whether the grace period advanced.
    pub advanced: bool,
    /// Objects freed.
    pub freed: u64,
}

/// What one pass of collect → advance → reap did.
#[derive(Clone, Copy, Debug, Default)]
struct Pass {
    collected_pages: usize,
    collected_heads: u64,
    advanced: bool,
    freed: u64,
}

impl<G: GracePeriod> Shared<G> {
    /// The state of a new service, its caches filled by a first round (so a
    /// fresh service does not start in its fallbacks).
    pub(crate) fn start(gp: Arc<G>, pool: Pool, timing: Timing) -> Arc<Shared<G>> {
        let heads = HeadLists::per_cpu();
        let shared = Arc::new(Shared {
            gp,
            pool,
            heads,
            wake: WakeWord::default(),
            refill_requested: CachePadded::new(AtomicBool::new(false)),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            timing,
            batches: BatchQueue::new(),
            round_state: Mutex::new(RoundState::new()),
            worker_panics: AtomicU64::new(0),
            injected_round_panics: AtomicU64::new(0),
            try_failed: PerCpuCount::per_cpu(),
            freed_inline: CachePadded::new(AtomicU64::new(0)),
            started: Instant::now(),
            last_local_reap: CachePadded::new(AtomicU64::new(0)),
            peak_backlog: AtomicU64::new(0),
        });
        shared.round(Trigger::Start);
        shared
    }

    /// The fast path of every retire call: records `ptr` in a page, asks
    /// for a refill when the push left a cache low, and wakes the worker if
    /// it is idle. On `NoPage` the caller runs its own fallback, then asks
    /// for the refill itself (after queueing: the wake check must come after
    /// the record's stores, see `wake.rs`).
    #[inline]
    pub(crate) fn push_record(&self, ptr: NonNull<()>, free: FreeFn) -> Result<(), pool::NoPage> {
        // SAFETY: `Via::CpuLanes` has no contract.
        unsafe { self.push_record_via(Via::CpuLanes, ptr, free) }
    }

    /// [`push_record`](Self::push_record) through the lanes `via` names.
    ///
    /// # Safety
    /// 1. A `Via::ThreadLane` lane was claimed from this service's pool and
    ///    is not released, and no other thread pushes through it or
    ///    releases it during the call (`Pool::push_local`'s contract).
    #[inline]
    pub(crate) unsafe fn push_record_via(
        &self,
        via: Via<'_>,
        ptr: NonNull<()>,
        free: FreeFn,
    ) -> Result<(), pool::NoPage> {
        let pushed = match via {
            Via::CpuLanes => self.pool.push(ptr, kind_of(free))?,
            // SAFETY: contract 1 is `push_local`'s.
            Via::ThreadLane(lane) => unsafe { self.pool.push_local(lane, ptr, kind_of(free)) }?,
        };
        if pushed.refill_wanted {
            self.request_refill();
        } else {
            self.wake.wake_if_idle();
        }
        Ok(())
    }

    /// The head-less calls that hand the object back on `NoPage`.
    ///
    /// # Safety
    /// As [`push_record_via`](Self::push_record_via).
    #[inline]
    pub(crate) unsafe fn try_push(
        &self,
        via: Via<'_>,
        ptr: NonNull<()>,
        free: FreeFn,
    ) -> Result<(), NonNull<()>> {
        // SAFETY: the caller's contract 1, forwarded.
        unsafe { self.push_record_via(via, ptr, free) }.map_err(|pool::NoPage| {
            self.try_failed.add_one();
            self.request_refill();
            ptr
        })
    }

    /// The headed retire's fallback: queues `head` on this CPU's head list,
    /// then asks for a refill. Any context.
    ///
    /// # Safety
    /// As [`HeadLists::push`]: 1. `head` is a live head no one else writes
    /// until it is freed; 2. `free(head)` is sound once, after a grace period.
    #[inline]
    pub(crate) unsafe fn queue_head(&self, head: NonNull<RcuHead>, free: HeadFreeFn) {
        let cpu = crate::pool::current_cpu();
        // SAFETY: contracts 1 and 2, forwarded.
        unsafe { self.heads.push(cpu, head, free) };
        self.request_refill();
    }

    /// `kvfree_rcu_mightsleep`'s answer to `NoPage` before it waits for a
    /// grace period: records `ptr` in a page it allocates now (ordinary
    /// context only). `Err` only if the allocation failed.
    pub(crate) fn push_with_new_page(
        &self,
        ptr: NonNull<()>,
        free: FreeFn,
    ) -> Result<(), pool::AllocError> {
        let pushed = self.pool.push_with_new_page(ptr, kind_of(free))?;
        if pushed.refill_wanted {
            self.request_refill();
        } else {
            self.wake.wake_if_idle();
        }
        Ok(())
    }

    /// Counts an object `kvfree_rcu_mightsleep` freed inline.
    pub(crate) fn count_inline_free(&self) {
        self.freed_inline.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks the worker to refill, and wakes it if it is idle: any context.
    #[inline]
    pub(crate) fn request_refill(&self) {
        // Relaxed: the flag carries no data (the pages a refill makes are
        // published by the pool itself). Every polling round reads it, and
        // an idle worker is woken below (the refill requests of a push that
        // found no page come with a queued record, which the idle handshake
        // covers, see `wake.rs`).
        if !self.refill_requested.load(Ordering::Relaxed) {
            self.refill_requested.store(true, Ordering::Relaxed);
        }
        self.wake.wake_if_idle();
    }

    /// Whether records wait to be freed: pushed into pages or queued on
    /// head lists, and not freed yet. The worker's check before it sleeps
    /// (`wake.rs`): the counters it reads are written by retire calls
    /// before their wake check (the pool's per-lane push count, inside the
    /// push; each head list's count, inside the head push).
    pub(crate) fn has_queued_records(&self) -> bool {
        // A stale (smaller) `freed` only keeps the worker awake one more
        // round.
        self.backlog() > 0
    }

    /// Whether the worker has reasons to keep polling: records queued or
    /// waiting for their grace period, chunks on the reclaim board (queued,
    /// or left on its return list by a lender: their batch completes once
    /// the next holder of the board's lock gives them back, a lender's next
    /// call or the worker's next reap), or a refill still to do.
    pub(crate) fn has_work(&self) -> bool {
        self.has_queued_records()
            || self.batches.has_pending()
            || self.batches.board.has_queued()
            || self.batches.board.has_returned()
            || self.refill_requested.load(Ordering::Relaxed)
            || lock(&self.round_state).refill_pending
    }

    /// Whether this thread is running a destructor for this service (its
    /// free loop is further up the stack), where waiting for the service's
    /// frees would wait for itself. Always checked: it protects against a
    /// self-deadlock; the checker only reports it.
    pub(crate) fn reentered_from_own_free(&self) -> bool {
        let reentered = self.batches.is_freeing_on_this_thread();
        if reentered && context::CHECKS {
            context::report(Violation::WaitInsideFree);
        }
        reentered
    }

    /// The pipeline every step below runs: collect a batch (`None`: collect
    /// nothing), advance the grace period while batches wait, free the
    /// batches whose grace period has ended; `driver` paces the advances.
    fn collect_advance_reap(&self, collect: Option<OpenPages>, driver: Driver) -> Pass {
        let backlog = self.note_backlog();
        let mut pass = Pass::default();
        if let Some(open) = collect {
            let c = self
                .batches
                .collect(&*self.gp, &self.pool, &self.heads, open);
            pass.collected_pages = c.pages;
            pass.collected_heads = c.heads;
        }
        if self.batches.has_pending() && self.advance_due(driver) {
            pass.advanced = self.gp.advance();
        }
        if let Some(reaper) = self.reaper_due(driver, backlog) {
            pass.freed = self
                .batches
                .reap(reaper, &*self.gp, &self.pool)
                .unwrap_or(0);
        }
        pass
    }

    /// Whether `driver` reaps now, and how, with `backlog` objects waiting
    /// (`note_backlog`): a waiter always ([`Reaper::Waiter`]); the worker
    /// as follows.
    ///
    /// - **Threads reclaim** (a thread reaped through
    ///   `LocalRetirer::reclaim` within the last drain interval) and fewer
    ///   than [`DEAL_BACKLOG`] objects wait: no reap. That thread frees the
    ///   objects it allocated, on its own CPU and into its own allocator
    ///   caches; the worker (with its helpers) takes over once the calls
    ///   stop.
    /// - **[`DEAL_BACKLOG`] objects or more wait**, and threads reclaim or
    ///   helpers run: the worker deals ([`Reaper::Dealer`]). It puts every
    ///   ready batch on the reclaim board, where the helpers and the calls
    ///   free bites of it, frees a few bites itself, and goes back to its
    ///   rounds: its refills, its grace periods.
    /// - **Otherwise** it reaps ([`Reaper::Poller`]): it frees every ready
    ///   batch, a large one with the helpers it wakes, until none is
    ///   queued.
    ///
    /// Why deal: under oversubscription the worker gets one thread's share
    /// of the CPUs among the producers, the helpers and itself (a
    /// thirteenth with 8 producers and 4 helpers), so a round that frees
    /// until none is queued lasts tens of milliseconds.
    /// Grace periods advanced once per long round, batches grew and the
    /// backlog with them, and no refill ran meanwhile, so the lanes ran
    /// dry: the 8-thread default flood made 5 to 40 grace periods and fell
    /// back for 0.5 to 80% of its calls (medians 6% on glibc, 35% on
    /// mimalloc). Dealing keeps the rounds short
    /// (docs/BENCHMARKS.md, "The worker deals while threads reclaim", "The
    /// worker deals to its helpers"). With no helper and no thread
    /// reclaiming, nobody else would free what it deals, so it reaps.
    fn reaper_due(&self, driver: Driver, backlog: u64) -> Option<Reaper> {
        match driver {
            Driver::Waiter => Some(Reaper::Waiter),
            Driver::Poller => {
                // Relaxed: a hint; a stale value costs one round's reap.
                let last = self.last_local_reap.load(Ordering::Relaxed);
                let interval =
                    u64::try_from(self.timing.drain_interval.as_nanos()).unwrap_or(u64::MAX);
                let threads =
                    if last != 0 && self.nanos_since_start().saturating_sub(last) < interval {
                        LocalReaps::Recent
                    } else {
                        LocalReaps::NotRecent
                    };
                // The board's lock, only when the answer depends on it.
                let helpers = if backlog >= DEAL_BACKLOG && threads == LocalReaps::NotRecent {
                    self.batches.board.helpers()
                } else {
                    0
                };
                worker_reaper(threads, backlog, helpers)
            }
        }
    }

    /// Objects retired and not freed yet (approximate: relaxed counters).
    fn backlog(&self) -> u64 {
        let queued = self.pool.records_pushed() + self.heads.queued();
        // Relaxed: counters.
        queued.saturating_sub(self.batches.freed.load(Ordering::Relaxed))
    }

    /// Raises the backlog's high-water mark (`Stats::peak_pending`) to the
    /// backlog now, and returns the backlog. Once per pass of the
    /// pipeline: a sample, as often as rounds, barriers and shrinks run it.
    fn note_backlog(&self) -> u64 {
        let backlog = self.backlog();
        // Relaxed: a statistic, read only by `stats`. The plain load first,
        // so that a round below the mark writes nothing.
        if backlog > self.peak_backlog.load(Ordering::Relaxed) {
            self.peak_backlog.fetch_max(backlog, Ordering::Relaxed);
        }
        backlog
    }

    /// Nanoseconds since the service started, at least 1 (0 is "never" in
    /// `last_local_reap`).
    fn nanos_since_start(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// `LocalRetirer::reclaim`: frees one bite, on the calling thread, of
    /// the batches whose grace period has ended (`Reaper::LocalThread`: it
    /// never waits for a lock) or, once the backlog is past
    /// [`DEAL_BACKLOG`] or while batches are on the board, of the
    /// board's chunks, those of `lane` (the caller's thread lane) first.
    /// Ordinary context.
    pub(crate) fn reap_here(&self, lane: LaneTag) -> u64 {
        // Relaxed: a hint for the worker (`reaper_due`).
        self.last_local_reap
            .store(self.nanos_since_start(), Ordering::Relaxed);
        let freed = if self.backlog() >= DEAL_BACKLOG || self.batches.board.is_busy() {
            // Falling behind: the worker deals the batches out (one thread
            // freeing alone under the free lock would hold the others off),
            // and this thread frees bites of them. (`reap` checks the board
            // again under the free lock: this look is a shortcut.)
            self.batches.lend_a_bite(&*self.gp, &self.pool, Some(lane))
        } else {
            self.batches
                .reap(Reaper::LocalThread, &*self.gp, &self.pool)
                .unwrap_or(0)
        };
        if self.batches.board.has_returned() {
            // A lend left its chunk on the board's return list (the lock
            // was held), and its batch completes only when the next holder
            // of the lock gives it back. Should the worker have gone idle
            // meanwhile, wake it: its idle check (`has_work`) reads the
            // list after its heavy fence, our push came before this light
            // one, so either it sees the chunk and does not sleep, or we see
            // it idle here (the retire calls' handshake, `wake.rs`). Left
            // alone, the chunk could wait for the idle sleep's timeout.
            self.wake.wake_if_idle();
        }
        freed
    }

    /// Whether `driver` may try to advance the grace period now: a waiter
    /// always, the worker at most once per `advance_interval`.
    ///
    /// Why the worker is paced: each attempt is a process-wide barrier
    /// (`membarrier()` on Linux), which interrupts every CPU running one of
    /// the process's threads, retiring threads included; on a VM such an
    /// interrupt costs microseconds. At one attempt per 250 µs polling round
    /// a producer's retire call met one about once in 10^4 calls, right at
    /// the p99.99 the real-time callers care about. Once per millisecond
    /// keeps that below it, and a batch still waits only two or three
    /// milliseconds for its grace period.
    fn advance_due(&self, driver: Driver) -> bool {
        match driver {
            Driver::Waiter => true,
            Driver::Poller => {
                lock(&self.round_state).advance_due(Instant::now(), self.timing.advance_interval)
            }
        }
    }

    /// Counts a worker round that panicked (caught), and reports the first
    /// one on stderr.
    pub(crate) fn count_round_panic(&self) {
        let before = self.worker_panics.fetch_add(1, Ordering::Relaxed);
        if before == 0 {
            crate::context::write_stderr(
                "kvfree-rcu: a worker round panicked; the worker goes on (counted in Stats::worker_panics)",
            );
        }
    }

    /// One round of the worker's duty (see the module docs); `trigger`
    /// says what it collects.
    pub(crate) fn round(&self, trigger: Trigger) -> RoundReport {
        self.take_injected_round_panic();
        let now = Instant::now();
        let (refilled, collect, relax) = {
            let mut st = lock(&self.round_state);
            // Swap: a request that lands during this round's refill sets the
            // flag again and is served next round. Relaxed: as in
            // `request_refill`, the flag carries no data.
            if self.refill_requested.swap(false, Ordering::Relaxed) {
                st.refill_pending = true;
            }
            let refilled = st.refill(&self.pool, now, self.timing.max_refill_backoff);
            let collect = st.what_to_collect(trigger, now, self.timing.drain_interval);
            let relax = st.relax_due(trigger, collect, now);
            (refilled, collect, relax)
        };
        // The worker's polling rounds are paced; a round someone asked for
        // (`run_once`, which a manual service's owner may call in a loop)
        // advances at once.
        let driver = match trigger {
            Trigger::Poll => Driver::Poller,
            Trigger::Start | Trigger::Forced => Driver::Waiter,
        };
        let pass = self.collect_advance_reap(collect, driver);
        if relax {
            // Only on a round that seals idle pages, a polling one at most
            // once per `RELAX_INTERVAL` (`relax_due`): caches of lanes idle
            // since the last time shrink back toward their base (pool
            // `watermark.rs`).
            self.pool.relax();
        }
        RoundReport {
            pages_refilled: refilled.pages,
            refill_failed: refilled.failed,
            collected_pages: pass.collected_pages,
            collected_heads: pass.collected_heads,
            advanced: pass.advanced,
            freed: pass.freed,
        }
    }

    /// The test hook of `KvfreeRcu::inject_round_panics`.
    fn take_injected_round_panic(&self) {
        let injected =
            self.injected_round_panics
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        if injected.is_ok() {
            panic!("kvfree-rcu: injected round panic (test hook)");
        }
    }

    /// Makes the next `n` rounds panic at their start (test hook).
    pub(crate) fn inject_round_panics(&self, n: u64) {
        self.injected_round_panics.store(n, Ordering::Relaxed);
        self.wake.kick();
    }

    /// Frees every object retired before the call, on this thread: collects
    /// everything, then advances and reaps until that batch is freed.
    /// `barrier()` without the context checks (also used by `drop` and the
    /// worker's exit).
    pub(crate) fn barrier(&self) {
        self.collect_advance_reap(Some(OpenPages::TakeAll), Driver::Waiter);
        let target = self.batches.newest_seq();
        let mut patience = Patience::default();
        while !self.batches.completed(target) {
            if !self.collect_advance_reap(None, Driver::Waiter).advanced {
                patience.wait();
            }
        }
    }

    /// For memory pressure: collects and frees what it can now, then frees
    /// every cached empty page; returns the pages freed.
    pub(crate) fn shrink(&self) -> usize {
        self.collect_advance_reap(Some(OpenPages::TakeIdle), Driver::Waiter);
        self.pool.shrink()
    }

    /// A snapshot of the counters (each read separately: approximate while
    /// other threads retire).
    pub(crate) fn stats(&self) -> Stats {
        let p = self.pool.stats();
        let queued_heads = self.heads.queued();
        let freed = self.batches.freed.load(Ordering::Relaxed);
        Stats {
            queued_pages: p.records_pushed,
            queued_heads,
            freed,
            pending: (p.records_pushed + queued_heads).saturating_sub(freed),
            // Relaxed: a statistic (`note_backlog`).
            peak_pending: self.peak_backlog.load(Ordering::Relaxed),
            freed_inline: self.freed_inline.load(Ordering::Relaxed),
            try_failed: self.try_failed.sum(),
            pages_allocated: p.pages_allocated,
            pages_live: p.pages_live,
            pages_cached: p.pages_cached,
            pages_reserved: p.pages_reserved,
            reserve_reuses: p.reserve_reuses,
            cache_target: p.cache_target,
            inline_page_allocs: p.inline_pages,
            refill_requests: p.refill_requests,
            dry_pushes: p.dry_pushes,
            alloc_failures: p.alloc_failures,
            grace_periods: self.gp.grace_periods(),
            batches: self.batches.batches_collected.load(Ordering::Relaxed),
            worker_wakeups: self.wake.wakes(),
            worker_panics: self.worker_panics.load(Ordering::Relaxed),
            reclaim_helpers: self.batches.board.helpers() as u64,
            freed_by_helpers: self.batches.board.freed_by_helpers(),
        }
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_worker_advances_at_most_once_per_advance_interval() {
        let mut st = RoundState::new();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        assert!(st.advance_due(t0, ms(1)), "the first attempt is due");
        assert!(!st.advance_due(t0 + Duration::from_micros(999), ms(1)));
        assert!(st.advance_due(t0 + ms(1), ms(1)));
        assert!(!st.advance_due(t0 + ms(1), ms(1)));
        // Zero: every round may advance.
        assert!(st.advance_due(t0 + ms(1), Duration::ZERO));
    }

    #[test]
    fn backoff_never_panics_and_stays_within_its_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(next_backoff(Duration::ZERO, ms(10)), ms(1));
        assert_eq!(next_backoff(ms(4), ms(10)), ms(8));
        assert_eq!(next_backoff(ms(8), ms(10)), ms(10));
        // A cap below the 1 ms start (`clamp` used to panic here).
        assert_eq!(next_backoff(Duration::ZERO, Duration::ZERO), Duration::ZERO);
        assert_eq!(
            next_backoff(ms(1), Duration::from_micros(10)),
            Duration::from_micros(10)
        );
        assert_eq!(next_backoff(Duration::MAX, Duration::MAX), Duration::MAX);
    }

    #[test]
    fn a_round_collects_what_its_trigger_says() {
        let drain = Duration::from_secs(3600);
        let mut st = RoundState::new();
        let now = st.last_collect;
        assert_eq!(st.what_to_collect(Trigger::Start, now, drain), None);
        assert_eq!(
            st.what_to_collect(Trigger::Poll, now, drain),
            Some(OpenPages::Leave)
        );
        assert_eq!(
            st.what_to_collect(Trigger::Forced, now, drain),
            Some(OpenPages::TakeIdle)
        );
        let later = now + drain;
        assert_eq!(
            st.what_to_collect(Trigger::Poll, later, drain),
            Some(OpenPages::TakeIdle)
        );
        assert_eq!(
            st.what_to_collect(Trigger::Poll, later, drain),
            Some(OpenPages::Leave)
        );
    }

    #[test]
    fn polling_rounds_relax_at_most_once_per_relax_interval() {
        let mut st = RoundState::new();
        let start = st.last_relax;
        let idle = Some(OpenPages::TakeIdle);
        // Only rounds that seal idle pages relax.
        let later = start + RELAX_INTERVAL;
        assert!(!st.relax_due(Trigger::Poll, Some(OpenPages::Leave), later));
        assert!(!st.relax_due(Trigger::Forced, None, later));
        // A polling round: not before the interval has passed.
        assert!(!st.relax_due(Trigger::Poll, idle, start + RELAX_INTERVAL / 2));
        assert!(st.relax_due(Trigger::Poll, idle, later));
        assert!(!st.relax_due(Trigger::Poll, idle, later + RELAX_INTERVAL / 2));
        // A round someone asked for relaxes every time, and restarts the
        // interval.
        let forced = later + RELAX_INTERVAL / 2;
        assert!(st.relax_due(Trigger::Forced, idle, forced));
        assert!(st.relax_due(Trigger::Forced, idle, forced));
        assert!(!st.relax_due(Trigger::Poll, idle, later + RELAX_INTERVAL));
        assert!(st.relax_due(Trigger::Poll, idle, forced + RELAX_INTERVAL));
    }

    /// The worker deals once it is behind and someone else frees, leaves
    /// the reap to the threads that reclaim below that, and reaps itself
    /// when nobody else would free what it dealt.
    #[test]
    fn the_worker_deals_only_when_behind_and_others_free() {
        let behind = DEAL_BACKLOG;
        let below = DEAL_BACKLOG - 1;
        let cases = [
            (LocalReaps::NotRecent, below, 0, Some(Reaper::Poller)),
            (LocalReaps::NotRecent, below, 4, Some(Reaper::Poller)),
            (LocalReaps::NotRecent, behind, 0, Some(Reaper::Poller)),
            (LocalReaps::NotRecent, behind, 1, Some(Reaper::Dealer)),
            (LocalReaps::Recent, below, 0, None),
            (LocalReaps::Recent, below, 4, None),
            (LocalReaps::Recent, behind, 0, Some(Reaper::Dealer)),
            (LocalReaps::Recent, behind, 4, Some(Reaper::Dealer)),
        ];
        for (threads, backlog, helpers, reaper) in cases {
            assert_eq!(
                worker_reaper(threads, backlog, helpers),
                reaper,
                "{threads:?}, backlog {backlog}, {helpers} helpers"
            );
        }
    }
}
