//! Parallel reclaim: when a backlog builds, the worker starts helper threads
//! that free a large ready batch alongside whoever reaps it.
//!
//! # Why
//! One worker frees what every producer retires. Under oversubscription
//! (more runnable threads than CPUs) the scheduler gives each thread the
//! same share, so with `P` producers the worker gets `1 / (P + 1)` of the
//! CPU time and frees far slower than they allocate: records pile up (the
//! peak memory grows with the flood) and pages come back to the caches too
//! late (the head-list fallback takes most calls). Helpers raise reclaim's
//! share to `(H + 1) / (P + H + 1)`; keeping up needs roughly as many
//! reclaim threads as producers when a free costs about what an allocation
//! costs, so the default cap is a few per CPU (see [`Settings`]).
//!
//! # Fork-join inside `reap`
//! Freeing stays where it was, in `BatchQueue::reap`, under the free lock,
//! oldest batch first, and a batch's sequence number is still published only
//! once all of it is freed. What changes is who frees a batch: when helpers
//! exist and the batch holds at least two [`RECORDS_PER_THREAD`] objects, the
//! reaping thread (the worker, or a `barrier()` caller) splits it into
//! [`Chunk`]s (runs of consecutive pages, two per freeing thread, see
//! [`PageRun`], and the head lists it took: a list can only be walked from
//! its top, so each is one chunk, see `head.rs`), queues them on the
//! [`Board`], wakes the helpers, frees chunks itself too, and waits until
//! the last chunk a helper took is done ([`Board::free_batch`]). Only then
//! does it complete the batch. A thread frees a chunk a bite at a time
//! ([`CHUNK_PAGES`] pages, [`HEAD_BITE`] heads) and puts the rest back on
//! the board, a stack, so it takes its own rest again at once unless it
//! was preempted, and a preempted thread holds up one bite. Pages go back
//! to the pool as soon as their bite's records are freed (whoever freed
//! them; a helper's, the next time the reaping thread takes the lock), so
//! the retire path has pages again while the rest of a large batch is
//! freed: a batch of a flood takes milliseconds.
//!
//! Why runs and not bites dealt out one by one: a batch lists its pages
//! lane by lane, so consecutive pages hold objects of the same few
//! producers, and the allocator takes each object back to the arena (glibc)
//! or page (mimalloc) of the thread that allocated it. With bites dealt out
//! in list order, every freeing thread worked in the same producers'
//! arenas at once, and each `free` waited for the arena's header line
//! (glibc reads the arena pointer next to the arena's lock and fastbin
//! flag, which every `free` and the producer's `malloc` write) to come back
//! from another CPU. With a run per thread, each arena is mostly written by
//! its producer and one freeing thread: the head-less 8-thread flood's
//! reclaim threads spent half the CPU time for the same frees
//! (docs/BENCHMARKS.md, "Freeing runs of one producer together").
//!
//! While the service is behind, a retiring thread's
//! `LocalRetirer::reclaim` lends a hand: it takes one chunk from the board,
//! frees a small bite of it ([`Bite::Local`]) and gives the rest back, as a
//! helper would, but once ([`Board::lend_a_bite`]). The reaping thread
//! polls for a lent chunk instead of sleeping on `done`, so the lender, a
//! retiring thread, never makes the syscall that would wake it.
//!
//! A chunk is taken from the board by one thread at a time, under its lock,
//! so every object is freed once, and only after its batch's grace period
//! (the batch was polled complete before it reached the board). The board's lock orders a
//! helper's frees before the reaping thread's return (the helper gives the
//! chunk back under the lock; the reaper reads the count under it), so a
//! `barrier()` that sees the batch complete sees its destructors' effects.
//!
//! Helpers run destructors as the worker does: marked as freeing for the
//! service (`freeing.rs`), so a destructor that calls back into the same
//! service (`barrier`, `shrink`, `run_once`, drop) is caught instead of
//! deadlocking, and under an abort-on-unwind guard, so a panicking
//! destructor aborts the process (`batch_queue.rs`).
//!
//! # The crew
//! Helpers are started by the worker thread only, never on a retire path
//! and never by a `barrier()` caller: after each round, if a reap since the
//! last look found a ready batch of at least [`BACKLOG_RECORDS`] records
//! (freeing fell behind: batches grow when rounds are slow), the worker
//! starts one more helper, up to `max_reclaim_helpers`. A failed spawn is
//! not an error: the worker frees alone and tries again after
//! [`SPAWN_RETRY`]. Helpers sleep on a condition variable while the board
//! is empty (no polling), and live until the worker exits: the [`Crew`] is
//! owned by the worker thread's stack, and dropping it (the worker's normal
//! exit after its final barrier, or an unwind) stops every helper and joins
//! it. Helpers hold an `Arc` of the shared state, so none outlives what it
//! uses. A service built with `Builder::manual()` has no worker and so no
//! helpers.
//!
//! # fork()
//! A forked child has neither worker nor helpers. The fork handlers hold
//! the free lock across the fork, so no batch is being freed then: no chunk
//! is queued or in flight. They also hold the board's lock (a helper going
//! back to sleep holds it briefly), and the child forgets the parent's
//! helpers ([`BoardLock::forget_helpers`]), so its reaps free alone.

use crate::affinity::ReclaimAffinity;
use crate::gp::GracePeriod;
use crate::head::HeadChain;
use crate::pool::PageList;
use crate::priority::ReclaimPriority;
use crate::settings::SettingError;
use crate::shared::Shared;
use crate::sync::{
    AtomicBool, AtomicU64, Condvar, Mutex, Ordering, SMALL, lock, try_lock, wait, yield_now,
};
use crate::time_slice::{self, ReclaimSlice};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Pages per bite of a [`PageRun`], what a thread frees between two visits
/// to the board: about 2000 records, tens of microseconds of frees, so that
/// a visit (a lock) is cheap next to it, and a helper preempted in the
/// middle of one holds up the batch for little; also the unit in which a
/// batch's pages go back to the pool.
const CHUNK_PAGES: usize = if SMALL { 1 } else { 4 };

/// Heads a thread frees from a list before it puts the rest back on the
/// board: a list can only be walked from its top, so this is what keeps a
/// helper preempted in the middle of a long list from holding up the batch
/// (another thread takes the rest). The board is a stack, so a thread that
/// is not preempted takes its own rest back at once.
pub(crate) const HEAD_BITE: u64 = if SMALL { 1 } else { 2000 };

/// Pages of records a `LocalRetirer::reclaim` call frees at most
/// ([`Bite::Local`]).
const LOCAL_BITE_PAGES: usize = 2;

/// Heads a `LocalRetirer::reclaim` call frees at most ([`Bite::Local`]):
/// as many as its pages hold, [`crate::RECLAIM_BITE`] in all.
const LOCAL_HEAD_BITE: u64 = if SMALL { 1 } else { crate::RECLAIM_BITE };

const _: () = assert!(
    (LOCAL_BITE_PAGES * crate::pool::RECORDS_PER_PAGE) as u64 <= crate::RECLAIM_BITE,
    "a reclaim call's pages hold at most RECLAIM_BITE records"
);

/// How much of a chunk a thread frees before it gives the rest back (or,
/// for a `LocalRetirer::reclaim` call, returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bite {
    /// [`CHUNK_PAGES`] pages or [`HEAD_BITE`] heads: the reaping thread and
    /// the helpers.
    Reaper,
    /// [`LOCAL_BITE_PAGES`] pages or [`LOCAL_HEAD_BITE`] heads, at most
    /// [`crate::RECLAIM_BITE`] objects: a `LocalRetirer::reclaim` call,
    /// whose frees then take tens of microseconds at most (a retiring
    /// thread calls it inside its flood).
    Local,
}

impl Bite {
    /// Pages of a [`PageRun`] per bite.
    pub(crate) fn pages(self) -> usize {
        match self {
            Bite::Reaper => CHUNK_PAGES,
            Bite::Local => LOCAL_BITE_PAGES,
        }
    }

    /// Heads of a list per bite.
    pub(crate) fn heads(self) -> u64 {
        match self {
            Bite::Reaper => HEAD_BITE,
            Bite::Local => LOCAL_HEAD_BITE,
        }
    }
}

/// Objects of a ready batch per thread that frees it: a batch with fewer is
/// freed by the reaping thread alone, and one helper is woken per this many
/// more. About half a millisecond of frees: what one thread clears between
/// two polling rounds, so that batches a lone worker keeps up with (a
/// single producer) never wake a helper, and the parallelism follows the
/// backlog.
const RECORDS_PER_THREAD: u64 = if SMALL { 2 } else { 16 * 1024 };

/// A ready batch of at least this many objects means freeing fell behind:
/// the worker starts a helper. 64 Ki objects (2 MiB of 32-byte objects;
/// about 2 ms of a producer's flood). A single producer with the worker on
/// a CPU of its own makes batches of 5 to 20 thousand objects per round;
/// the threshold leaves room for a round delayed by the scheduler. (A
/// helper started by mistake costs only a sleeping thread: it is woken for
/// batches of at least two [`RECORDS_PER_THREAD`].)
pub(crate) const BACKLOG_RECORDS: u64 = if SMALL { 16 } else { 64 * 1024 };

/// How long the worker waits before trying again after a helper could not
/// be spawned.
pub(crate) const SPAWN_RETRY: Duration = Duration::from_secs(1);

/// Allowed `max_reclaim_helpers`.
const MAX_HELPERS: usize = 64;

/// The parallel-reclaim settings of a [`Builder`](crate::Builder).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    /// Most helper threads the worker starts (0: it frees alone).
    pub(crate) max_helpers: usize,
    /// Where the worker and the helpers free a page's objects.
    pub(crate) affinity: ReclaimAffinity,
    /// The scheduler slice the worker and the helpers ask for.
    pub(crate) slice: ReclaimSlice,
    /// The nice value the worker and the helpers take.
    pub(crate) priority: ReclaimPriority,
}

impl Default for Settings {
    /// Two helpers per CPU, at most 16.
    fn default() -> Settings {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Settings {
            max_helpers: (2 * cpus).min(16),
            affinity: ReclaimAffinity::default(),
            slice: ReclaimSlice::default(),
            priority: ReclaimPriority::default(),
        }
    }
}

impl Settings {
    /// Applies the per-thread settings to the calling thread: the worker
    /// and each helper, as they start.
    ///
    /// # Errors
    /// The OS refused the priority (`priority.rs`); the other settings are
    /// applied all the same (they are optimisations that cannot fail
    /// visibly).
    pub(crate) fn become_reclaim_thread(&self) -> std::io::Result<()> {
        let priority = self.priority.apply_to_current_thread();
        crate::affinity::become_reclaim_thread(self.affinity);
        time_slice::request(self.slice);
        priority
    }

    /// Checks the settings: the first one out of range is the error.
    pub(crate) fn validate(&self) -> Result<(), SettingError> {
        if self.max_helpers > MAX_HELPERS {
            return Err(SettingError::new(
                "max_reclaim_helpers",
                self.max_helpers.to_string(),
                "allowed range 0..=64",
            ));
        }
        self.priority.validate()?;
        match self.slice {
            ReclaimSlice::Requested(slice)
                if !(time_slice::SHORTEST..=time_slice::LONGEST).contains(&slice) =>
            {
                Err(SettingError::new(
                    "reclaim_slice",
                    format!("{slice:?}"),
                    "allowed range 100µs..=100ms",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// A part of a ready batch that one thread frees at a time.
pub(crate) enum Chunk {
    /// A run of the batch's pages (or what is left of it).
    Pages(PageRun),
    /// One of the head lists the batch took (or what is left of it).
    Heads(HeadChain),
}

/// A run of consecutive pages of a batch, freed [`CHUNK_PAGES`] at a time
/// by one thread at a time (see the module doc for why runs).
pub(crate) struct PageRun {
    /// Pages whose records are still to free.
    unfreed: PageList,
    /// The last bite's pages, their records freed: to recycle.
    freed: PageList,
}

impl PageRun {
    pub(crate) fn new(pages: PageList) -> PageRun {
        PageRun {
            unfreed: pages,
            freed: PageList::new(),
        }
    }

    /// Takes the next bite of `size`: the caller frees the records of the
    /// pages it returns (once), which then count as freed.
    pub(crate) fn bite(&mut self, size: Bite) -> &PageList {
        debug_assert!(self.freed.is_empty(), "the last bite was not taken back");
        self.freed = self.unfreed.split_front(size.pages());
        &self.freed
    }
}

/// Pages per [`PageRun`] when `threads` threads share a batch of `pages`
/// pages: two runs per thread, so that a thread that finishes early takes
/// another whole run rather than a bite of someone else's; at least a bite.
fn run_pages(pages: usize, threads: usize) -> usize {
    pages.div_ceil(2 * threads.max(1)).max(CHUNK_PAGES)
}

/// A chunk after a bite of it was freed.
struct AfterBite {
    /// Pages whose records are all freed (none for heads), to recycle.
    spent: PageList,
    /// What is left to free, if anything.
    rest: Option<Chunk>,
}

impl Chunk {
    /// What is left after `FreeChunk` freed a bite of it.
    fn after_bite(self) -> AfterBite {
        match self {
            Chunk::Pages(mut run) => {
                let spent = core::mem::take(&mut run.freed);
                let rest = (!run.unfreed.is_empty()).then_some(Chunk::Pages(run));
                AfterBite { spent, rest }
            }
            Chunk::Heads(heads) => AfterBite {
                spent: PageList::new(),
                rest: (!heads.is_empty()).then_some(Chunk::Heads(heads)),
            },
        }
    }
}

impl core::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Chunk::Pages(run) => f
                .debug_struct("Pages")
                .field("unfreed", &run.unfreed)
                .field("freed", &run.freed)
                .finish(),
            Chunk::Heads(heads) => f.debug_tuple("Heads").field(&heads.len()).finish(),
        }
    }
}

/// What frees a bite of a chunk: every record of a `Pages` chunk (the
/// pages stay, to be recycled), or up to [`HEAD_BITE`] heads of a `Heads`
/// chunk (the rest stays); returns how many. Given by `batch_queue.rs`,
/// which owns the free's safety argument.
pub(crate) type FreeChunk<'a> = &'a dyn Fn(&mut Chunk) -> u64;

/// What takes a chunk's pages once their records are freed (the pool's
/// `recycle`).
pub(crate) type Recycle<'a> = &'a dyn Fn(PageList);

/// Chunks of the batch being freed, shared by the reaping thread and the
/// helpers (see the module docs).
#[derive(Debug)]
pub(crate) struct Board {
    jobs: Mutex<Jobs>,
    /// Helpers wait here for chunks, or for the order to stop.
    work: Condvar,
    /// The reaping thread waits here for the last chunk a helper took.
    done: Condvar,
    /// A reap found a ready batch of at least `BACKLOG_RECORDS` records
    /// since the worker last looked.
    backlog: AtomicBool,
    /// Objects freed on helper threads (`Stats::freed_by_helpers`).
    freed_by_helpers: AtomicU64,
}

#[derive(Debug, Default)]
struct Jobs {
    /// Chunks no thread has taken yet.
    queued: Vec<Chunk>,
    /// Chunks helpers and lenders took and have not given back yet.
    in_flight: usize,
    /// Of those, the lenders'.
    lent: usize,
    /// Pages of chunks helpers freed, for the reaping thread to recycle.
    drained: PageList,
    /// Objects freed by helpers in the current batch.
    freed: u64,
    /// The reaping thread sleeps on `done` (set and read under the lock, so
    /// no wake-up is lost): whoever gives back the last chunk wakes it only
    /// then, since a condition variable's notify is a syscall even with
    /// nobody waiting. It sleeps only while no chunk is lent (it polls for
    /// a lender's), so a lender, a retiring thread, never wakes it.
    reaper_waits: bool,
    /// Helper threads running.
    helpers: usize,
    /// Helpers exit once the board is empty.
    stop: bool,
}

impl Board {
    pub(crate) fn new() -> Board {
        Board {
            jobs: Mutex::new(Jobs::default()),
            work: Condvar::new(),
            done: Condvar::new(),
            backlog: AtomicBool::new(false),
            freed_by_helpers: AtomicU64::new(0),
        }
    }

    /// Frees the records of `pages` and the heads of `heads` with
    /// `free_chunk`, sharing them in chunks with the helpers if there are
    /// any and the batch is large enough; returns the pages, drained, and
    /// the objects freed. Returns only once every one is freed. The reaping
    /// thread only (under the free lock): one batch on the board at a time.
    ///
    /// With `recycle`, each page chunk goes to it as soon as its records are
    /// freed (by this thread, or by a helper the next time this thread
    /// takes the lock), so the retire path gets pages back while the rest
    /// of a large batch is still being freed, and the returned list holds
    /// only what was left; without it, every page comes back in the list.
    pub(crate) fn free_batch(
        &self,
        pages: PageList,
        heads: HeadChain,
        free_chunk: FreeChunk<'_>,
        recycle: Option<Recycle<'_>>,
    ) -> (PageList, u64) {
        let records = pages.records() as u64 + heads.len();
        // Helpers to wake: one per `RECORDS_PER_THREAD` beyond the first.
        let wanted = usize::try_from(records / RECORDS_PER_THREAD)
            .unwrap_or(usize::MAX)
            .saturating_sub(1);
        let helpers = if wanted == 0 {
            0
        } else {
            lock(&self.jobs).helpers.min(wanted)
        };
        if helpers == 0 {
            return free_alone(pages, heads, free_chunk, recycle);
        }
        let mut pages = pages;
        let mut chunks = 0;
        let run_pages = run_pages(pages.pages(), helpers + 1);
        {
            let mut jobs = lock(&self.jobs);
            debug_assert!(jobs.queued.is_empty() && jobs.in_flight == 0);
            while !pages.is_empty() {
                jobs.queued
                    .push(Chunk::Pages(PageRun::new(pages.split_front(run_pages))));
                chunks += 1;
            }
            for list in heads.into_lists() {
                jobs.queued.push(Chunk::Heads(list));
                chunks += 1;
            }
        }
        // This thread takes chunks too: wake at most one helper per other
        // chunk.
        for _ in 0..helpers.min(chunks - 1) {
            self.work.notify_one();
        }
        let mut freed = 0;
        let mut jobs = lock(&self.jobs);
        loop {
            if let Some(mut chunk) = jobs.queued.pop() {
                let helpers_drained = match recycle {
                    Some(_) => core::mem::take(&mut jobs.drained),
                    None => PageList::new(),
                };
                drop(jobs);
                if let Some(recycle) = recycle {
                    recycle(helpers_drained);
                }
                freed += free_chunk(&mut chunk);
                let AfterBite { spent, rest } = chunk.after_bite();
                match recycle {
                    Some(recycle) => recycle(spent),
                    None => pages.append(spent),
                }
                jobs = lock(&self.jobs);
                if let Some(rest) = rest {
                    jobs.queued.push(rest);
                }
            } else if jobs.lent > 0 {
                // A lender's chunk is out: poll for it, rather than sleep
                // and have the lender wake us with a syscall.
                drop(jobs);
                yield_now();
                jobs = lock(&self.jobs);
            } else if jobs.in_flight > 0 {
                jobs.reaper_waits = true;
                jobs = wait(&self.done, jobs);
                jobs.reaper_waits = false;
            } else {
                break;
            }
        }
        // Every chunk is back: the helpers' frees happened before they gave
        // their chunks back under the lock we hold.
        pages.append(core::mem::take(&mut jobs.drained));
        let by_helpers = core::mem::take(&mut jobs.freed);
        drop(jobs);
        // Relaxed: a statistic.
        self.freed_by_helpers
            .fetch_add(by_helpers, Ordering::Relaxed);
        (pages, freed + by_helpers)
    }

    /// A helper thread's loop: frees the chunks it takes with `free_chunk`
    /// (as in [`free_batch`](Self::free_batch)) until told to stop, sleeping
    /// while the board is empty.
    pub(crate) fn serve(&self, free_chunk: FreeChunk<'_>) {
        let mut jobs = lock(&self.jobs);
        loop {
            if let Some(mut chunk) = jobs.queued.pop() {
                jobs.in_flight += 1;
                drop(jobs);
                let freed = free_chunk(&mut chunk);
                jobs = lock(&self.jobs);
                self.give_back(&mut jobs, chunk, freed);
            } else if jobs.stop {
                return;
            } else {
                jobs = wait(&self.work, jobs);
            }
        }
    }

    /// Frees one bite of a queued chunk with `free_chunk` (which bites what
    /// it likes), as a helper does, for a thread that lends a hand once
    /// (`LocalRetirer::reclaim` while the service is behind); returns how
    /// many it freed, which count as the helpers' (0 at once: the board is
    /// empty, or its lock is held).
    ///
    /// It never waits for work, and takes the board's lock without waiting
    /// to find a chunk; giving the chunk back waits for that lock, held by
    /// others only for a few instructions at a time. The reaping thread
    /// waits for the chunk like for a helper's, so a thread preempted in
    /// the middle of its bite holds up the batch, as a preempted helper
    /// does; but it polls for a lent chunk instead of sleeping, so that the
    /// lender, a retiring thread, does not make a syscall to wake it.
    pub(crate) fn lend_a_bite(&self, free_chunk: FreeChunk<'_>) -> u64 {
        let Some(mut jobs) = try_lock(&self.jobs) else {
            return 0;
        };
        let Some(mut chunk) = jobs.queued.pop() else {
            return 0;
        };
        jobs.in_flight += 1;
        jobs.lent += 1;
        drop(jobs);
        let freed = free_chunk(&mut chunk);
        let mut jobs = lock(&self.jobs);
        // So this call never wakes the reaping thread (a syscall): it sleeps
        // only while no chunk is lent and the queue is empty, and a helper
        // takes back its own rest under the lock it gave it back under, so
        // the queue stays empty until the last chunk is back.
        if cfg!(any(debug_assertions, kvfree_loom)) {
            assert!(
                !jobs.reaper_waits,
                "the reaping thread sleeps while a chunk is lent"
            );
        }
        jobs.lent -= 1;
        self.give_back(&mut jobs, chunk, freed);
        freed
    }

    /// A helper or a lender gives back a chunk it took and freed a bite of
    /// (`freed` objects): the spent pages go to the reaping thread, the
    /// rest back on the board.
    fn give_back(&self, jobs: &mut Jobs, chunk: Chunk, freed: u64) {
        jobs.in_flight -= 1;
        jobs.freed += freed;
        let AfterBite { spent, rest } = chunk.after_bite();
        jobs.drained.append(spent);
        if let Some(rest) = rest {
            jobs.queued.push(rest);
        }
        if jobs.in_flight == 0 && jobs.queued.is_empty() && jobs.reaper_waits {
            // The reaping thread sleeps only once the queue is empty, for
            // the last chunk in flight: this one.
            self.done.notify_one();
        }
    }

    /// Records the size of a ready batch: a large one asks the worker for a
    /// helper.
    pub(crate) fn note_ready(&self, records: u64) {
        if records >= BACKLOG_RECORDS {
            // Relaxed: a hint the worker reads after its round.
            self.backlog.store(true, Ordering::Relaxed);
        }
    }

    /// Whether a backlog was noted since the last call.
    fn take_backlog(&self) -> bool {
        // Relaxed: a hint (see `note_ready`).
        self.backlog.swap(false, Ordering::Relaxed)
    }

    /// Helper threads running now (`Stats::reclaim_helpers`).
    pub(crate) fn helpers(&self) -> usize {
        lock(&self.jobs).helpers
    }

    /// Objects freed on helper threads so far.
    pub(crate) fn freed_by_helpers(&self) -> u64 {
        // Relaxed: a statistic.
        self.freed_by_helpers.load(Ordering::Relaxed)
    }

    /// Counts a helper about to be spawned (it serves at once); undone by
    /// [`helper_gone`](Self::helper_gone) if the spawn fails.
    fn helper_starting(&self) {
        lock(&self.jobs).helpers += 1;
    }

    fn helper_gone(&self) {
        let mut jobs = lock(&self.jobs);
        jobs.helpers = jobs.helpers.saturating_sub(1);
    }

    /// Tells every helper to exit once the board is empty.
    fn stop_helpers(&self) {
        lock(&self.jobs).stop = true;
        self.work.notify_all();
    }

    /// After every helper exited: a later crew starts afresh.
    fn helpers_stopped(&self) {
        let mut jobs = lock(&self.jobs);
        jobs.helpers = 0;
        jobs.stop = false;
    }

    /// The board's lock, or `None` at once if it is held (the fork
    /// handlers, see `fork.rs`).
    #[cfg(all(unix, not(kvfree_loom), not(miri)))]
    pub(crate) fn try_lock(&self) -> Option<BoardLock<'_>> {
        crate::fork::try_lock(&self.jobs).map(|jobs| BoardLock { jobs })
    }
}

/// The board's lock, held by the fork handlers across a `fork()`.
#[cfg(all(unix, not(kvfree_loom), not(miri)))]
pub(crate) struct BoardLock<'a> {
    jobs: crate::sync::MutexGuard<'a, Jobs>,
}

#[cfg(all(unix, not(kvfree_loom), not(miri)))]
impl BoardLock<'_> {
    /// In a forked child: the parent's helpers do not exist here. The
    /// handlers hold the free lock too, so no chunk is queued or in flight.
    pub(crate) fn forget_helpers(&mut self) {
        debug_assert!(self.jobs.queued.is_empty() && self.jobs.in_flight == 0);
        self.jobs.helpers = 0;
        self.jobs.stop = false;
    }
}

fn free_alone(
    pages: PageList,
    heads: HeadChain,
    free_chunk: FreeChunk<'_>,
    recycle: Option<Recycle<'_>>,
) -> (PageList, u64) {
    let mut freed = 0;
    let mut drained = PageList::new();
    let mut free_all_of = |mut chunk: Chunk| loop {
        freed += free_chunk(&mut chunk);
        let AfterBite { spent, rest } = chunk.after_bite();
        match recycle {
            Some(recycle) => recycle(spent),
            None => drained.append(spent),
        }
        match rest {
            Some(rest) => chunk = rest,
            None => break,
        }
    };
    // Pages first, a bite at a time (each recycled as soon as it is
    // done), then the heads.
    if !pages.is_empty() {
        free_all_of(Chunk::Pages(PageRun::new(pages)));
    }
    free_all_of(Chunk::Heads(heads));
    (drained, freed)
}

/// Frees one bite of a batch with `free_chunk`: its first pages' records
/// or, once no page is left, heads (as many as `free_chunk` bites); the
/// spent pages go to `recycle` and the rest stays in `pages` and `heads`.
/// Returns how many objects it freed. For a thread that frees a batch a
/// bite per call (`LocalRetirer::reclaim`).
pub(crate) fn free_one_bite(
    pages: &mut PageList,
    heads: &mut HeadChain,
    free_chunk: FreeChunk<'_>,
    recycle: Recycle<'_>,
) -> u64 {
    let mut chunk = if pages.is_empty() {
        Chunk::Heads(core::mem::take(heads))
    } else {
        Chunk::Pages(PageRun::new(core::mem::take(pages)))
    };
    let freed = free_chunk(&mut chunk);
    let AfterBite { spent, rest } = chunk.after_bite();
    recycle(spent);
    match rest {
        Some(Chunk::Pages(run)) => *pages = run.unfreed,
        Some(Chunk::Heads(rest)) => *heads = rest,
        None => {}
    }
    freed
}

/// The worker's helper threads: started one at a time when a backlog
/// builds, stopped and joined when dropped (see the module docs). Lives on
/// the worker thread's stack.
pub(crate) struct Crew<G: GracePeriod> {
    shared: Arc<Shared<G>>,
    name: String,
    /// The worker's settings: the cap, and what each helper applies to
    /// itself as it starts.
    settings: Settings,
    handles: Vec<JoinHandle<()>>,
    retry_at: Option<Instant>,
}

impl<G: GracePeriod> Crew<G> {
    /// No helpers yet; `name` is the worker's thread name.
    pub(crate) fn new(shared: Arc<Shared<G>>, name: String, settings: Settings) -> Crew<G> {
        Crew {
            shared,
            name,
            settings,
            handles: Vec::new(),
            retry_at: None,
        }
    }

    /// After a round: starts one more helper if a reap found a backlog, the
    /// crew is below its cap and no failed spawn is being waited out.
    pub(crate) fn grow_if_backlogged(&mut self) {
        let board = &self.shared.batches.board;
        if !board.take_backlog() || self.handles.len() >= self.settings.max_helpers {
            return;
        }
        let now = Instant::now();
        if self.retry_at.is_some_and(|t| now < t) {
            return;
        }
        let shared = self.shared.clone();
        let settings = self.settings;
        board.helper_starting();
        let spawned = std::thread::Builder::new()
            .name(format!("{}-h{}", self.name, self.handles.len() + 1))
            .spawn(move || {
                // Refused only if `RLIMIT_NICE` was lowered since the worker
                // took the same priority: the helper then runs at the
                // worker's, which it inherited (`priority.rs`).
                let _ = settings.become_reclaim_thread();
                shared.batches.help_reclaim(&shared.pool);
            });
        match spawned {
            Ok(handle) => {
                self.handles.push(handle);
                self.retry_at = None;
            }
            Err(_) => {
                board.helper_gone();
                self.retry_at = now.checked_add(SPAWN_RETRY);
            }
        }
    }
}

impl<G: GracePeriod> Drop for Crew<G> {
    /// Stops every helper and joins it. Runs on the worker thread, which is
    /// not inside a free here (its rounds are over), so the helpers' last
    /// chunks never wait for it.
    fn drop(&mut self) {
        if self.handles.is_empty() {
            return;
        }
        let board = &self.shared.batches.board;
        board.stop_helpers();
        for handle in self.handles.drain(..) {
            // A helper's frees cannot unwind (a panicking destructor aborts
            // the process), so an error here is not expected; nothing is
            // lost either way.
            let _ = handle.join();
        }
        board.helpers_stopped();
    }
}

/// What the unit tests and the loom models share: a counted node, and
/// the functions that free a bite of a chunk.
#[cfg(test)]
mod test_support {
    use super::*;

    /// A node for the tests and models: its head first, counting its frees.
    #[repr(C)]
    pub(super) struct CountedNode {
        pub(super) head: crate::head::RcuHead,
        pub(super) frees: crate::sync::AtomicUsize,
    }

    /// A head free function that only counts: the test or model owns the
    /// nodes.
    ///
    /// # Safety
    /// `head` is the first field of a live [`CountedNode`].
    pub(super) unsafe fn count_free(head: core::ptr::NonNull<crate::head::RcuHead>) {
        // SAFETY: the caller's contract.
        let node = unsafe { head.cast::<CountedNode>().as_ref() };
        // Relaxed: the tests check the ordering the board provides.
        node.frees.fetch_add(1, Ordering::Relaxed);
    }

    /// Frees a bite of `size` of a test or model chunk: its pages' records (leaked
    /// boxes, each freed by its kind's function) or heads (each freed by
    /// the function it was pushed with).
    pub(super) fn free_bite(chunk: &mut Chunk, size: Bite) -> u64 {
        match chunk {
            Chunk::Pages(run) => {
                let pages = run.bite(size);
                let mut freed = 0;
                pages.for_each_record(|ptr, kind| {
                    // SAFETY: every kind was made by `kind_of` of a free
                    // function for the leaked boxes the tests push (the models push
                    // none); the
                    // board hands each chunk to one thread.
                    unsafe { crate::free_fn::free_fn_of(kind)(ptr) };
                    freed += 1;
                });
                freed
            }
            // SAFETY: every head was pushed with a function that frees (or
            // counts) its node once.
            Chunk::Heads(heads) => unsafe { heads.free_some(size.heads()) },
        }
    }

    pub(super) fn free_chunk(chunk: &mut Chunk) -> u64 {
        free_bite(chunk, Bite::Reaper)
    }

    pub(super) fn free_local_bite(chunk: &mut Chunk) -> u64 {
        free_bite(chunk, Bite::Local)
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::free_fn::{free_fn_of, kind_of};
    use crate::head::{HeadLists, RcuHead};
    use crate::pool::{BusyLanes, Config, Kind, Pool, USABLE_RECORDS as USABLE};
    use core::ptr::NonNull;
    use std::sync::atomic::AtomicUsize;

    static FREED: AtomicUsize = AtomicUsize::new(0);

    /// A headed object (its head first) and its free function.
    #[repr(C)]
    struct Node {
        head: RcuHead,
        value: u64,
    }

    unsafe fn free_node(head: NonNull<RcuHead>) {
        // SAFETY: every head here is the first field of a leaked Box<Node>,
        // derived from the whole box; freed once.
        let node = unsafe { Box::from_raw(head.cast::<Node>().as_ptr()) };
        assert_eq!(node.value, 7, "freed twice, or not a live node");
        FREED.fetch_add(1, Ordering::Relaxed);
    }

    unsafe fn free_u64(ptr: NonNull<()>) {
        // SAFETY: the caller's record, as `free_u64_uncounted` requires.
        unsafe { free_u64_uncounted(ptr) };
        FREED.fetch_add(1, Ordering::Relaxed);
    }

    /// `free_u64` without counting in `FREED` (which a test that may run at
    /// the same time checks).
    unsafe fn free_u64_uncounted(ptr: NonNull<()>) {
        // SAFETY: every record here is a leaked Box<u64>, freed once.
        let value = unsafe { Box::from_raw(ptr.cast::<u64>().as_ptr()) };
        assert_eq!(*value, 7, "freed twice, or not a live value");
    }

    /// A pool of `lanes` lanes filled with leaked `Box<u64>`s of `kind`
    /// until no page is left, and all its pages, sealed: the records and
    /// how many.
    fn filled_pages(lanes: usize, kind: Kind) -> (Pool, PageList, usize) {
        let mut config = Config::default();
        config.lanes = Some(lanes);
        let pool = Pool::new(config).unwrap();
        pool.refill().unwrap();
        let mut records = 0;
        loop {
            let value = NonNull::from(Box::leak(Box::new(7u64)));
            if pool.push(value.cast(), kind).is_err() {
                // SAFETY: not recorded (no page left): still ours, from
                // Box::leak, dropped once.
                drop(unsafe { Box::from_raw(value.as_ptr()) });
                break;
            }
            records += 1;
        }
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Wait);
        (pool, pages, records)
    }

    /// A batch of pages and heads shared with two helper threads: every
    /// object is freed exactly once, before `free_batch` returns, and every
    /// page comes back. Runs under Miri (its data-race detector checks the
    /// board's hand-offs).
    #[test]
    fn helpers_free_every_object_of_a_shared_batch_once() {
        let (pool, pages, records) = filled_pages(2, kind_of(free_u64));
        assert_eq!(pages.records(), records);
        let heads_n: u64 = if SMALL { 12 } else { 100_000 };
        let lists = HeadLists::per_cpu();
        for i in 0..heads_n {
            let node = NonNull::from(Box::leak(Box::new(Node {
                head: RcuHead::new(),
                value: 7,
            })));
            // SAFETY: the head is the node's first field (repr(C)), derived
            // from the whole box; `free_node` frees it once.
            unsafe { lists.push(i as usize % 2, node.cast(), free_node) };
        }
        let board = Arc::new(Board::new());
        let helpers: Vec<_> = (0..2)
            .map(|_| {
                board.helper_starting();
                let board = board.clone();
                std::thread::spawn(move || board.serve(&free_chunk))
            })
            .collect();
        let total = records as u64 + heads_n;
        let (drained, freed) = board.free_batch(pages, lists.take_all(), &free_chunk, None);
        assert_eq!(freed, total);
        assert_eq!(FREED.load(Ordering::Relaxed) as u64, total);
        assert_eq!(drained.records(), records, "every page back");
        pool.recycle(drained);
        board.stop_helpers();
        for helper in helpers {
            helper.join().unwrap();
        }
        board.helpers_stopped();
        assert_eq!(board.helpers(), 0);
    }

    /// Two threads lend bites (`lend_a_bite`, in a loop) while the reaping
    /// thread shares a batch of pages and heads, and the batch's only
    /// helper never runs: every object is freed exactly once, before
    /// `free_batch` returns, and every page comes back. Runs under Miri.
    #[test]
    fn lenders_free_bites_of_a_shared_batch_once() {
        let (pool, pages, records) = filled_pages(2, kind_of(free_u64_uncounted));
        let heads_n: u64 = if SMALL { 12 } else { 100_000 };
        let lists = HeadLists::per_cpu();
        let nodes: Vec<_> = (0..heads_n)
            .map(|_| {
                NonNull::from(Box::leak(Box::new(CountedNode {
                    head: RcuHead::new(),
                    frees: AtomicUsize::new(0),
                })))
            })
            .collect();
        for (i, node) in nodes.iter().enumerate() {
            // SAFETY: the head is the node's first field (repr(C)); the
            // nodes are freed by the test after the batch, `count_free`
            // only counts.
            unsafe { lists.push(i % 2, node.cast(), count_free) };
        }
        let board = Board::new();
        // Counted, so the batch is shared, but never served.
        board.helper_starting();
        let done = std::sync::atomic::AtomicBool::new(false);
        let local_bite_max = Bite::Local
            .heads()
            .max((Bite::Local.pages() * USABLE) as u64);
        let (drained, freed, lent) = std::thread::scope(|s| {
            let lenders: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut lent = 0;
                        while !done.load(Ordering::Acquire) {
                            let bite = board.lend_a_bite(&free_local_bite);
                            assert!(bite <= local_bite_max);
                            lent += bite;
                            std::thread::yield_now();
                        }
                        lent
                    })
                })
                .collect();
            let (drained, freed) = board.free_batch(pages, lists.take_all(), &free_chunk, None);
            // Release: pairs with the lenders' Acquire loads (only a stop
            // flag; the batch's frees are ordered by the board's lock).
            done.store(true, Ordering::Release);
            let lent: u64 = lenders.into_iter().map(|l| l.join().unwrap()).sum();
            (drained, freed, lent)
        });
        assert_eq!(freed, records as u64 + heads_n);
        assert!(lent <= freed);
        assert_eq!(
            board.freed_by_helpers(),
            lent,
            "lent bites count as the helpers'"
        );
        for node in &nodes {
            // SAFETY: from Box::leak above, freed (counted) by the batch
            // only, which has returned; dropped once here.
            let node = unsafe { Box::from_raw(node.as_ptr()) };
            assert_eq!(node.frees.load(Ordering::Relaxed), 1);
        }
        assert_eq!(drained.records(), records, "every page back");
        pool.recycle(drained);
    }

    /// A run gives its pages back a bite of `CHUNK_PAGES` at a time, each
    /// bite's records freed, until nothing is left; every record is freed
    /// once and every page comes back. (Its own free function: `FREED` is
    /// checked by a test that may run at the same time.)
    #[test]
    fn a_page_run_is_freed_a_bite_at_a_time() {
        let (pool, pages, records) = filled_pages(1, kind_of(free_u64_uncounted));
        let page_count = pages.pages();
        assert!(page_count > CHUNK_PAGES, "the run needs more than one bite");
        let mut chunk = Chunk::Pages(PageRun::new(pages));
        let (mut bites, mut freed, mut back) = (0, 0, PageList::new());
        loop {
            let Chunk::Pages(run) = &mut chunk else {
                unreachable!("a run stays a run")
            };
            run.bite(Bite::Reaper).for_each_record(|ptr, kind| {
                // SAFETY: every kind was made by `kind_of(free_u64_uncounted)`
                // for a leaked Box<u64>, and each record is bitten once.
                unsafe { free_fn_of(kind)(ptr) };
                freed += 1;
            });
            bites += 1;
            let AfterBite { spent, rest } = chunk.after_bite();
            assert_eq!(spent.pages(), CHUNK_PAGES.min(page_count - back.pages()));
            back.append(spent);
            match rest {
                Some(rest) => chunk = rest,
                None => break,
            }
        }
        assert_eq!(freed, records);
        assert_eq!(bites, page_count.div_ceil(CHUNK_PAGES));
        assert_eq!(back.pages(), page_count, "every page back");
        pool.recycle(back);
    }

    #[test]
    fn a_batch_is_shared_in_two_runs_per_thread() {
        let bite = CHUNK_PAGES;
        assert_eq!(run_pages(200 * bite, 1), 100 * bite);
        assert_eq!(run_pages(200 * bite, 5), 20 * bite);
        assert_eq!(run_pages(200 * bite + 1, 5), 20 * bite + 1);
        // Never below a bite, whatever the split.
        assert_eq!(run_pages(3 * bite, 5), bite);
        assert_eq!(run_pages(0, 5), bite);
        assert_eq!(run_pages(10, 0), run_pages(10, 1));
    }

    #[test]
    fn max_helpers_out_of_range_is_named() {
        let with = |max_helpers| Settings {
            max_helpers,
            ..Settings::default()
        };
        assert_eq!(with(0).validate(), Ok(()));
        assert_eq!(with(MAX_HELPERS).validate(), Ok(()));
        let err = with(MAX_HELPERS + 1).validate().unwrap_err();
        assert_eq!(err.setting(), "max_reclaim_helpers");
        assert_eq!(Settings::default().validate(), Ok(()));
    }
}

/// Loom model of the fork-join (run by `ci/20-loom.sh` with the crate's
/// other internal models): a reaping thread and a helper share a batch's
/// chunks, bite by bite; every object is freed once, and every free
/// happens before `free_batch` returns (what lets the batch complete).
#[cfg(all(test, kvfree_loom))]
mod loom_models {
    use super::test_support::*;
    use super::*;
    use crate::head::{HeadLists, RcuHead};
    use core::ptr::NonNull;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    /// A batch of four counted nodes in two head lists, a board with one
    /// helper counted (so `free_batch` shares the batch), and the nodes.
    fn shared_batch() -> (Arc<Vec<CountedNode>>, HeadChain, Arc<Board>) {
        let nodes: Arc<Vec<CountedNode>> = Arc::new(
            (0..4)
                .map(|_| CountedNode {
                    head: RcuHead::new(),
                    frees: AtomicUsize::new(0),
                })
                .collect(),
        );
        let lists = HeadLists::per_cpu();
        for (i, node) in nodes.iter().enumerate() {
            // SAFETY: the nodes live until the model ends; `count_free`
            // only counts.
            unsafe { lists.push(i % 2, NonNull::from(&node.head), count_free) };
        }
        let board = Arc::new(Board::new());
        board.helper_starting();
        (nodes, lists.take_all(), board)
    }

    /// A helper thread serving `board` until told to stop.
    fn spawn_helper(board: &Arc<Board>) -> loom::thread::JoinHandle<()> {
        let board = board.clone();
        loom::thread::spawn(move || board.serve(&free_chunk))
    }

    /// A thread lending `board` one bite; joins to what it freed.
    fn spawn_lender(board: &Arc<Board>) -> loom::thread::JoinHandle<u64> {
        let board = board.clone();
        loom::thread::spawn(move || board.lend_a_bite(&free_local_bite))
    }

    /// After `free_batch` returned: every node was freed exactly once.
    fn assert_each_freed_once(nodes: &[CountedNode]) {
        for node in nodes {
            // Relaxed: `free_batch` returned, so every free happened before
            // this load (through the board's lock).
            assert_eq!(node.frees.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn a_batch_shared_with_a_helper_is_freed_once_before_it_completes() {
        loom::model(|| {
            let (nodes, heads, board) = shared_batch();
            let helper = spawn_helper(&board);
            let (pages, freed) = board.free_batch(PageList::new(), heads, &free_chunk, None);
            assert_eq!(freed, 4);
            assert!(pages.is_empty());
            assert_each_freed_once(&nodes);
            board.stop_helpers();
            helper.join().unwrap();
        });
    }

    /// A thread lends one bite while the reaping thread shares a batch and
    /// its only helper sleeps (counted, never served): every object is
    /// freed once before `free_batch` returns, and the rest the lender
    /// leaves on the board does not strand the reaping thread (a wait for a
    /// chunk nobody takes: loom reports it as a deadlock).
    #[test]
    fn a_lenders_rest_is_freed_before_the_batch_completes() {
        loom::model(|| {
            let (nodes, heads, board) = shared_batch();
            let lender = spawn_lender(&board);
            let (pages, freed) = board.free_batch(PageList::new(), heads, &free_chunk, None);
            let lent = lender.join().unwrap();
            assert_eq!(freed, 4);
            assert!(lent <= 1, "a lender frees one bite");
            assert!(pages.is_empty());
            assert_each_freed_once(&nodes);
        });
    }

    /// The reaping thread, a helper and a lender share a batch: every
    /// object is freed once before `free_batch` returns, whoever frees it,
    /// nobody waits for good, and the reaping thread never sleeps while a
    /// chunk is lent (`lend_a_bite` asserts it under loom), so the lender
    /// never has to wake it.
    #[test]
    fn a_helper_and_a_lender_share_a_batch() {
        // Exhaustive: about 20 seconds.
        loom::model(|| {
            let (nodes, heads, board) = shared_batch();
            let helper = spawn_helper(&board);
            let lender = spawn_lender(&board);
            let (_, freed) = board.free_batch(PageList::new(), heads, &free_chunk, None);
            assert_eq!(freed, 4);
            assert_each_freed_once(&nodes);
            lender.join().unwrap();
            board.stop_helpers();
            helper.join().unwrap();
        });
    }
}
