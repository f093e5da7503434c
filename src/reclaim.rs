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
//! # Post and leave
//! Batches are still taken oldest first, under the queue's free lock, and
//! a batch's sequence number is still published only once all of it (and
//! every batch before it) is freed. What changes is who frees a batch:
//! when helpers exist and the batch holds at least two
//! [`RECORDS_PER_THREAD`] objects, or batches are already on the board, the
//! reaping thread (the worker, or a `barrier()` caller) splits it into
//! [`Chunk`]s (runs of consecutive pages, two per freeing thread, see
//! [`PageRun`], and the head lists it took: a list can only be walked from
//! its top, so each is one chunk, see `head.rs`), posts them on the
//! [`Board`] ([`Board::post`]), wakes the helpers and frees chunks itself
//! until none is queued ([`Board::help`]). It does not wait for the chunks
//! other threads hold: the board counts each open batch's unfinished
//! chunks, and whoever gives back a batch's last chunk completes it,
//! together with the finished batches after it, but never before the ones
//! before it (`Board::give_back`). So the reaping thread goes back to its
//! rounds (advancing grace periods, refilling the caches) while a thread
//! preempted in the middle of a bite finishes it later, and the threads
//! that free take the next batch's chunks meanwhile: several batches may be
//! on the board at once.
//!
//! A thread frees a chunk a bite at a time ([`CHUNK_PAGES`] pages,
//! [`HEAD_BITE`] heads) and puts the rest of a run back at the front of
//! the queue (a lane's whole pages: at the back, [`Split::Whole`]),
//! so it takes its own rest again at once unless it was preempted, and a
//! preempted thread holds up one chunk, not the board. Pages go back to
//! the pool as soon as their bite's records are freed, recycled by the
//! thread that freed them, so the retire path has pages again while the
//! rest of a large batch is freed: a batch of a flood takes milliseconds.
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
//! A retiring thread's `LocalRetirer::reclaim` lends a hand while the
//! service is behind or batches are on the board: it frees one small bite
//! ([`Bite::Local`]) of a chunk, as a helper would, but once
//! (`BatchQueue::lend_a_bite`): of a chunk of its own thread lane's pages
//! if one is queued, else of the chunk at the front of the queue. If none
//! is queued it first posts the oldest ready batch itself
//! ([`Board::try_post_by_lane`]), with no helper woken, since a wake-up is
//! a syscall; the worker wakes sleeping helpers for such chunks in its
//! next reap. A lender never waits for a
//! lock, to find work or to give it back: if the board's lock is held when
//! it gives its chunk back, it leaves the chunk on the board's return list
//! (a lock-free stack, [`Board::leave_returned`]), and the next thread to
//! take the lock gives it back ([`Board::take_returned`]). Waiting there
//! was a futex syscall whenever a preempted thread held the lock: one to
//! four per million retires in an 8-thread flood on 2 CPUs.
//!
//! A chunk is taken from the board by one thread at a time, under its lock,
//! so every object is freed once, and only after its batch's grace period
//! (the batch was polled complete before it reached the board). The
//! board's lock orders every bite's frees before the completion that
//! counts them (each thread gives its chunk back under the lock, and the
//! one that finds a batch finished publishes its sequence number with
//! `Release` after that), so a `barrier()` that sees the batch complete
//! sees its destructors' effects. A chunk on the return list gets there by
//! a `Release` CAS after its bite's frees, and leaves it by the lock
//! holder's `Acquire` swap, before it is given back: the same order.
//!
//! Helpers and lenders run destructors as the worker does: marked as
//! freeing for the service (`freeing.rs`), so a destructor that calls back
//! into the same service (`barrier`, `shrink`, `run_once`, drop) is caught
//! instead of deadlocking, and under an abort-on-unwind guard, so a
//! panicking destructor aborts the process (`batch_queue.rs`).
//!
//! # Freeing a thread's own objects
//! Every page a thread lane fills carries the lane's tag (the pool's
//! `LaneTag`), and a batch goes on the board split by lane
//! ([`Board::post_by_lane`], [`Board::try_post_by_lane`]: one walk of the
//! pages, before the lock), each lane's pages whole ([`Split::Whole`]: each
//! taker cuts its own bite off the front). A lender takes its own lane's
//! pages first, so the objects it frees are mostly the ones it allocated,
//! and they go back to its own allocator caches (glibc's tcache and arena,
//! mimalloc's thread-local free list) instead of another thread's: in the
//! 8-thread flood on glibc the lenders' frees no longer contend with the
//! producers' allocations in the same arenas (docs/BENCHMARKS.md, "Lenders
//! free their own lane's pages first"). Helpers and the reaping thread
//! take chunks in queue order, whatever their lane.
//!
//! # The crew
//! Helpers are started by the worker thread only, never on a retire path
//! and never by a `barrier()` caller: after each round, if a reap since the
//! last look found a ready batch of at least [`BACKLOG_RECORDS`] records
//! (freeing fell behind: batches grow when rounds are slow), the worker
//! starts one more helper, up to `max_reclaim_helpers`. A failed spawn is
//! not an error: the worker frees alone and tries again after
//! [`SPAWN_RETRY`]. Helpers sleep on a condition variable while no chunk is
//! queued (no polling), and live until the worker exits: the [`Crew`] is
//! owned by the worker thread's stack, and dropping it (the worker's normal
//! exit after its final barrier, or an unwind) stops every helper and joins
//! it. Helpers hold an `Arc` of the shared state, so none outlives what it
//! uses. A service built with `Builder::manual()` has no worker and so no
//! helpers.
//!
//! # fork()
//! A forked child has neither worker nor helpers. The fork handlers hold
//! the free lock and the board's lock across the fork, and take them only
//! while no chunk is in flight ([`Board::try_lock`]): a chunk in flight is
//! held by a thread the child does not have. Chunks still queued are the
//! child's to free: each of its reaps helps the board.
//! The child forgets the parent's helpers ([`BoardLock::forget_helpers`]).

use crate::affinity::ReclaimAffinity;
use crate::gp::GracePeriod;
use crate::head::HeadChain;
use crate::pool::{LaneTag, PageList};
use crate::priority::ReclaimPriority;
use crate::settings::SettingError;
use crate::shared::Shared;
use crate::sync::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering, SMALL,
    lock, try_lock, wait,
};
use crate::time_slice::{self, ReclaimSlice};
use std::collections::VecDeque;
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
    /// Three helpers per CPU, at most 16. With the worker dealing its
    /// batches out (`Reaper::Dealer`) the helpers do most of the freeing
    /// under oversubscription: at 8 producers on 2 CPUs, six helpers
    /// instead of four took the default flood's peak memory down by 15%
    /// (glibc) and 25% (mimalloc) at the same speed, and cost the 4-thread
    /// flood about 2% on glibc; eight cost it 12% (docs/BENCHMARKS.md, "The
    /// crew's size, with the dealer").
    fn default() -> Settings {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Settings {
            max_helpers: (3 * cpus).min(16),
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

/// Chunks of the ready batches being freed, shared by every thread that
/// frees for the service (see the module docs).
#[derive(Debug)]
pub(crate) struct Board {
    jobs: Mutex<Jobs>,
    /// Helpers wait here for chunks, or for the order to stop.
    work: Condvar,
    /// Sequence number of the last batch completely freed: every batch up
    /// to it is freed, on the board or off it.
    completed_seq: AtomicU64,
    /// A reap found a ready batch of at least `BACKLOG_RECORDS` records
    /// since the worker last looked.
    backlog: AtomicBool,
    /// Objects freed on helper threads and by lenders
    /// (`Stats::freed_by_helpers`).
    freed_by_helpers: AtomicU64,
    /// `jobs.queued.len()` and `jobs.open.len()` as of the last change,
    /// for readers that do not take the lock (`has_queued`, `is_busy`).
    queued_len: AtomicUsize,
    open_len: AtomicUsize,
    /// Chunks lenders gave back while another thread held the lock: a
    /// stack of [`Returned`] nodes, pushed lock-free, taken whole by the
    /// next thread that takes the lock (`Board::take_returned`).
    returned: AtomicPtr<Returned>,
}

#[derive(Debug, Default)]
struct Jobs {
    /// Chunks no thread has taken, each with its batch's sequence number:
    /// taken from the front, a rest given back to the front (so a thread
    /// not preempted takes its own run again; the rest of a
    /// [`Split::Whole`] chunk goes to the back instead), a new batch's
    /// chunks posted at the back (so older batches mostly finish first).
    queued: VecDeque<Queued>,
    /// The batches on the board, oldest first, with their chunks not yet
    /// finished (queued or in flight).
    open: VecDeque<OpenBatch>,
    /// Chunks taken and not given back yet.
    in_flight: usize,
    /// Helper threads running.
    helpers: usize,
    /// Of those, the ones asleep on `work`.
    sleeping: usize,
    /// Helpers exit once the board is empty.
    stop: bool,
}

/// A chunk on the board and the batch it belongs to.
#[derive(Debug)]
struct Queued {
    seq: u64,
    chunk: Chunk,
    /// How the chunk is shared.
    split: Split,
    /// The thread lane that filled the chunk's pages, if one did (batches
    /// are posted by lane: `Board::post_by_lane`, `Board::try_post_by_lane`).
    lane: Option<LaneTag>,
}

/// How a chunk of pages is shared among the threads that free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// A run cut when posted (`Board::post`), or a head list: a thread
    /// takes it whole, frees a bite and gives the rest back, so that it
    /// mostly frees the objects of the same few producers while other
    /// threads free others'.
    Run,
    /// A thread lane's pages of a batch (`Board::post_by_lane`): each
    /// taker cuts off its bite and leaves the rest queued at once, at the
    /// back of the queue, so that any number of threads free the lane's
    /// pages in turn, and the next taker starts on another chunk (another
    /// lane's, or a newer batch's) rather than the next pages of the same
    /// lane. Putting the rest back where it was, so that older batches
    /// finish first, made the 8-thread local reclaim flood slower on glibc
    /// (58.1 -> 69.8 ns per object, medians of ten interleaved runs) and
    /// no faster elsewhere; batches still complete in order, only later.
    Whole,
}

/// A batch on the board.
#[derive(Debug)]
struct OpenBatch {
    seq: u64,
    /// Its chunks not yet finished: queued, or taken and not given back.
    chunks: usize,
}

/// Who takes a bite of a chunk on the board: how large a bite, and whose
/// frees they count as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Freer {
    /// The thread that reaps (the worker, or a waiter): [`Bite::Reaper`].
    Reaper,
    /// A reclaim helper thread: [`Bite::Reaper`], counted as the helpers'.
    Helper,
    /// A `LocalRetirer::reclaim` call: [`Bite::Local`], counted as the
    /// helpers'; it takes a chunk of its own thread lane's pages first, if
    /// one is queued, so that the objects go back to the allocator caches
    /// of the thread that allocated them.
    Lender(Option<LaneTag>),
}

impl Freer {
    /// The bite this freer takes of a chunk.
    pub(crate) fn bite(self) -> Bite {
        match self {
            Freer::Reaper | Freer::Helper => Bite::Reaper,
            Freer::Lender(_) => Bite::Local,
        }
    }
}

/// How many bites [`Board::help`] takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bites {
    /// At most this many, while chunks are queued: one for a lender, a
    /// few for the worker dealing batches out (`Reaper::Dealer`).
    AtMost(usize),
    /// Until no chunk is queued (the reaping thread).
    WhileQueued,
}

impl Board {
    pub(crate) fn new() -> Board {
        Board {
            jobs: Mutex::new(Jobs::default()),
            work: Condvar::new(),
            completed_seq: AtomicU64::new(0),
            backlog: AtomicBool::new(false),
            freed_by_helpers: AtomicU64::new(0),
            queued_len: AtomicUsize::new(0),
            open_len: AtomicUsize::new(0),
            returned: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// Publishes the queue's and the open list's lengths (under the lock,
    /// after a change).
    fn publish(&self, jobs: &Jobs) {
        // Relaxed: a hint for the worker and the lenders.
        self.queued_len.store(jobs.queued.len(), Ordering::Relaxed);
        // Release: pairs with the Acquire load in `is_busy` (see there).
        self.open_len.store(jobs.open.len(), Ordering::Release);
    }

    /// The board's lock, with the chunks lenders left on the return list
    /// given back ([`take_returned`](Self::take_returned)). Every thread
    /// but a lender takes the lock this way.
    fn lock_jobs(&self) -> MutexGuard<'_, Jobs> {
        let mut jobs = lock(&self.jobs);
        self.take_returned(&mut jobs);
        jobs
    }

    /// [`lock_jobs`](Self::lock_jobs), or `None` at once if the lock is
    /// held: a lender's way.
    fn try_lock_jobs(&self) -> Option<MutexGuard<'_, Jobs>> {
        let mut jobs = try_lock(&self.jobs)?;
        self.take_returned(&mut jobs);
        Some(jobs)
    }

    /// Leaves a chunk a lender freed a bite of on the return list, for the
    /// next thread that takes the lock to give back: the lender found the
    /// lock held, and a retiring thread does not wait for a lock (the wait
    /// is a futex syscall when the holder was preempted). The chunk stays
    /// in flight, and its batch open, until then.
    fn leave_returned(&self, back: GiveBack) {
        let node = Box::into_raw(Box::new(Returned {
            back,
            next: core::ptr::null_mut(),
        }));
        // Relaxed: only the pointer's value is used (written into our node
        // as its `next`); it is never dereferenced here.
        let mut top = self.returned.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours alone (just allocated) until the CAS
            // below publishes it.
            unsafe { (*node).next = top };
            // Release: pairs with the Acquire swap in `take_returned`, which
            // so sees the node's contents and the bite's frees (done before
            // this). A later push's CAS continues this release sequence, so
            // the swap that reads it sees this node too.
            match self.returned.compare_exchange_weak(
                top,
                node,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => top = now,
            }
        }
    }

    /// Gives back every chunk on the return list (under the lock) and
    /// completes what that finishes.
    fn take_returned(&self, jobs: &mut Jobs) {
        // Relaxed: a cheap look first, so that a lock finding the list empty
        // (nearly every one) does not write its line; a node pushed just
        // after is taken by the next holder.
        if self.returned.load(Ordering::Relaxed).is_null() {
            return;
        }
        // Acquire: pairs with the Release CAS in `leave_returned`.
        let mut node = self.returned.swap(core::ptr::null_mut(), Ordering::Acquire);
        let mut completed = None;
        while !node.is_null() {
            // SAFETY: each node came from `Box::into_raw` (`leave_returned`);
            // the swap took the whole list, so its nodes are this thread's
            // alone, and each is turned back into a box once.
            let returned = unsafe { Box::from_raw(node) };
            let Returned { back, next } = *returned;
            completed = completed.max(self.give_back(jobs, back));
            node = next;
        }
        if let Some(seq) = completed {
            self.complete(seq);
        }
    }

    /// Whether lenders left chunks on the return list (a hint: no lock).
    pub(crate) fn has_returned(&self) -> bool {
        // Relaxed: a hint for the worker's idle check (see `Shared::has_work`).
        !self.returned.load(Ordering::Relaxed).is_null()
    }

    /// Whether every batch up to `seq` has been freed.
    pub(crate) fn completed(&self, seq: u64) -> bool {
        // Acquire: pairs with the Release `fetch_max` in `complete`, so the
        // caller sees the batches' frees as done.
        self.completed_seq.load(Ordering::Acquire) >= seq
    }

    /// Marks every batch up to `seq` as freed. Monotonic (`fetch_max`):
    /// completions found by different threads may be published in any
    /// order.
    pub(crate) fn complete(&self, seq: u64) {
        // Release: pairs with the Acquire load in `completed`; whoever
        // completes a batch saw, under the board's lock, every chunk of it
        // given back after its frees.
        self.completed_seq.fetch_max(seq, Ordering::Release);
    }

    /// Helper threads to wake for a batch of `records` objects: one per
    /// [`RECORDS_PER_THREAD`] beyond the first, at most the running ones.
    /// 0: the batch is small, or there are no helpers.
    pub(crate) fn helpers_wanted(&self, records: u64) -> usize {
        let wanted = usize::try_from(records / RECORDS_PER_THREAD)
            .unwrap_or(usize::MAX)
            .saturating_sub(1);
        if wanted == 0 {
            return 0;
        }
        self.lock_jobs().helpers.min(wanted)
    }

    /// Whether batches are on the board (posted and not completed): a
    /// batch reaped after them must go on the board too, so that batches
    /// complete in order.
    ///
    /// Called under the queue's free lock, without the board's: batches are
    /// posted only under the free lock, so every post before the caller
    /// took it published a non-zero length that this load sees (or the zero
    /// that the batch's completion published later, Release, paired with
    /// this Acquire).
    pub(crate) fn is_busy(&self) -> bool {
        self.open_len.load(Ordering::Acquire) > 0
    }

    /// Whether chunks wait on the board for a thread to take them (a hint:
    /// no lock).
    pub(crate) fn has_queued(&self) -> bool {
        // Relaxed: see `publish`.
        self.queued_len.load(Ordering::Relaxed) > 0
    }

    /// Puts the ready batch `seq` on the board: its pages in runs (two per
    /// freeing thread, `threads` threads, cut before the lock is taken) and
    /// each of its head lists, then wakes sleeping helpers for them (the
    /// worker or a waiter posts; a lender uses `try_post_by_lane`).
    /// Batches are posted in sequence order (by the holder of the queue's
    /// free lock), and none is ever completed before every batch posted
    /// before it.
    pub(crate) fn post(&self, seq: u64, pages: PageList, heads: HeadChain, threads: usize) {
        let mut pages = pages;
        let run_pages = run_pages(pages.pages(), threads);
        let mut chunks = Vec::new();
        while !pages.is_empty() {
            let chunk = Chunk::Pages(PageRun::new(pages.split_front(run_pages)));
            chunks.push((chunk, Split::Run, None));
        }
        chunks.extend(
            heads
                .into_lists()
                .map(|list| (Chunk::Heads(list), Split::Run, None)),
        );
        let jobs = self.lock_jobs();
        let helpers = jobs.helpers;
        let posted = self.enqueue(jobs, seq, chunks);
        // The poster takes chunks too: at most one helper per other chunk.
        for _ in 0..helpers
            .min(threads.saturating_sub(1))
            .min(posted.saturating_sub(1))
        {
            self.work.notify_one();
        }
    }

    /// [`post_by_lane`](Self::post_by_lane) for a lender, which neither
    /// waits for the board's lock nor wakes a helper (a syscall): `Err`
    /// hands the batch back, every object still in it, when the lock is
    /// held.
    pub(crate) fn try_post_by_lane(
        &self,
        seq: u64,
        pages: PageList,
        heads: HeadChain,
    ) -> Result<(), (PageList, HeadChain)> {
        // Split before the lock: the walk reads every page's header.
        let lanes = pages.split_by_thread_lane();
        let Some(jobs) = self.try_lock_jobs() else {
            let mut pages = PageList::new();
            for (_, lane) in lanes {
                pages.append(lane);
            }
            return Err((pages, heads));
        };
        self.enqueue(jobs, seq, lane_chunks(lanes, heads));
        Ok(())
    }

    /// Puts the ready batch `seq` on the board with its pages split by the
    /// thread lane that filled them, each lane's pages whole
    /// ([`Split::Whole`]: each taker cuts its own bite, and a lender takes
    /// its own lane's first), and wakes a sleeping helper per
    /// [`RECORDS_PER_THREAD`] objects: the worker dealing a batch out
    /// (`Reaper::Dealer`), which frees little of it itself. The split is
    /// one walk of the pages, before the lock.
    pub(crate) fn post_by_lane(&self, seq: u64, pages: PageList, heads: HeadChain) {
        let records = pages.records() as u64 + heads.len();
        let chunks = lane_chunks(pages.split_by_thread_lane(), heads);
        let jobs = self.lock_jobs();
        let wake = usize::try_from(records / RECORDS_PER_THREAD)
            .unwrap_or(usize::MAX)
            .min(jobs.sleeping);
        self.enqueue(jobs, seq, chunks);
        for _ in 0..wake {
            self.work.notify_one();
        }
    }

    /// Queues batch `seq`'s chunks at the back (under the lock) and opens
    /// it; a batch with nothing to free completes once every batch before
    /// it has (at once if none is open). Returns how many chunks it queued.
    fn enqueue(
        &self,
        mut jobs: MutexGuard<'_, Jobs>,
        seq: u64,
        chunks: Vec<(Chunk, Split, Option<LaneTag>)>,
    ) -> usize {
        debug_assert!(jobs.open.back().is_none_or(|b| b.seq < seq));
        let count = chunks.len();
        if count == 0 && jobs.open.is_empty() {
            drop(jobs);
            self.complete(seq);
            return 0;
        }
        for (chunk, split, lane) in chunks {
            jobs.queued.push_back(Queued {
                seq,
                chunk,
                split,
                lane,
            });
        }
        jobs.open.push_back(OpenBatch { seq, chunks: count });
        self.publish(&jobs);
        count
    }

    /// Takes bites of queued chunks as `freer`, freeing each with
    /// `free_chunk` and handing the spent pages to `recycle` (outside the
    /// lock): at most so many bites, or until no chunk is queued
    /// (`bites`). Never waits for work, and a lender does not wait for the
    /// board's lock to find it either (it try-locks). Returns the objects
    /// freed. Whoever gives back a batch's last chunk completes it, and the
    /// batches after it that are finished.
    pub(crate) fn help(
        &self,
        freer: Freer,
        bites: Bites,
        free_chunk: FreeChunk<'_>,
        recycle: Recycle<'_>,
    ) -> u64 {
        let first = match freer {
            // A retiring thread never waits for the lock to find work.
            Freer::Lender(_) => self.try_lock_jobs(),
            Freer::Reaper | Freer::Helper => Some(self.lock_jobs()),
        };
        let Some(mut jobs) = first else { return 0 };
        let (mut freed, mut taken) = (0, 0);
        while let Some(queued) = self.take(&mut jobs, freer) {
            let (relocked, bite) = self.free_a_bite(jobs, freer, queued, free_chunk, recycle);
            freed += bite;
            taken += 1;
            let more = match bites {
                Bites::AtMost(most) => taken < most,
                Bites::WhileQueued => true,
            };
            match relocked {
                Some(relocked) if more => jobs = relocked,
                // Enough bites, or a lender that left its chunk on the
                // return list (it does not hold the lock).
                _ => break,
            }
        }
        freed
    }

    /// A helper thread's loop: takes bites of queued chunks (as in
    /// [`help`](Self::help)) until told to stop, sleeping while none is
    /// queued.
    pub(crate) fn serve(&self, free_chunk: FreeChunk<'_>, recycle: Recycle<'_>) {
        let mut jobs = self.lock_jobs();
        loop {
            if let Some(queued) = self.take(&mut jobs, Freer::Helper) {
                let (relocked, _) =
                    self.free_a_bite(jobs, Freer::Helper, queued, free_chunk, recycle);
                jobs = relocked.expect("a helper waits for the lock to give a chunk back");
            } else if jobs.stop {
                return;
            } else {
                jobs.sleeping += 1;
                jobs = wait(&self.work, jobs);
                jobs.sleeping -= 1;
                self.take_returned(&mut jobs);
            }
        }
    }

    /// Wakes sleeping helpers for chunks queued without a wake-up (posted
    /// by a lender): one per queued chunk. The worker's call, before it
    /// helps; a notify is a syscall, so only when a helper sleeps.
    pub(crate) fn wake_for_queued(&self) {
        let jobs = self.lock_jobs();
        let wake = jobs.sleeping.min(jobs.queued.len().saturating_sub(1));
        drop(jobs);
        for _ in 0..wake {
            self.work.notify_one();
        }
    }

    /// Takes the chunk at the front of the queue for `freer` (under the
    /// lock), or, for a lender, the first chunk of its own thread lane's
    /// pages if one is queued: of pages posted whole, only `freer`'s bite,
    /// the rest staying queued at the back (another chunk of its batch).
    fn take(&self, jobs: &mut Jobs, freer: Freer) -> Option<Queued> {
        let own = match freer {
            Freer::Lender(Some(lane)) => jobs.queued.iter().position(|q| q.lane == Some(lane)),
            Freer::Lender(None) | Freer::Reaper | Freer::Helper => None,
        };
        let mut queued = jobs.queued.remove(own.unwrap_or(0))?;
        let pages = freer.bite().pages();
        if let (Split::Whole, Chunk::Pages(run)) = (queued.split, &mut queued.chunk) {
            if run.unfreed.pages() > pages {
                let mut rest = core::mem::take(&mut run.unfreed);
                run.unfreed = rest.split_front(pages);
                let seq = queued.seq;
                jobs.queued.push_back(Queued {
                    seq,
                    chunk: Chunk::Pages(PageRun::new(rest)),
                    split: Split::Whole,
                    lane: queued.lane,
                });
                let batch = jobs
                    .open
                    .iter_mut()
                    .find(|b| b.seq == seq)
                    .expect("a queued chunk's batch is open");
                batch.chunks += 1;
            }
        }
        jobs.in_flight += 1;
        self.publish(jobs);
        Some(queued)
    }

    /// Frees a bite of `queued`, taken under `jobs`, with the lock released
    /// meanwhile; hands the spent pages to `recycle`, then gives the chunk
    /// back under the lock and completes what that finishes. Returns the
    /// lock, held again, and the objects freed. A lender does not wait for
    /// the lock: if it is held, the chunk goes on the return list
    /// ([`leave_returned`](Self::leave_returned)) and the lock is `None`.
    fn free_a_bite<'a>(
        &'a self,
        jobs: MutexGuard<'a, Jobs>,
        freer: Freer,
        mut queued: Queued,
        free_chunk: FreeChunk<'_>,
        recycle: Recycle<'_>,
    ) -> (Option<MutexGuard<'a, Jobs>>, u64) {
        drop(jobs);
        let freed = free_chunk(&mut queued.chunk);
        if freer != Freer::Reaper {
            // Relaxed: a statistic.
            self.freed_by_helpers.fetch_add(freed, Ordering::Relaxed);
        }
        let AfterBite { spent, rest } = queued.chunk.after_bite();
        recycle(spent);
        let back = GiveBack {
            seq: queued.seq,
            split: queued.split,
            lane: queued.lane,
            rest,
        };
        let relocked = match freer {
            Freer::Lender(_) => self.try_lock_jobs(),
            Freer::Reaper | Freer::Helper => Some(self.lock_jobs()),
        };
        let Some(mut jobs) = relocked else {
            self.leave_returned(back);
            return (None, freed);
        };
        if let Some(seq) = self.give_back(&mut jobs, back) {
            self.complete(seq);
        }
        (Some(jobs), freed)
    }

    /// Gives back a chunk taken from the board (under the lock): its rest
    /// to the front of the queue, or, if nothing is left, one chunk fewer
    /// for its batch. Returns the newest batch this completes, if any: the
    /// finished batches at the front of `open`, oldest first.
    fn give_back(&self, jobs: &mut Jobs, back: GiveBack) -> Option<u64> {
        jobs.in_flight -= 1;
        match back.rest {
            Some(chunk) => {
                jobs.queued.push_front(Queued {
                    seq: back.seq,
                    chunk,
                    split: back.split,
                    lane: back.lane,
                });
                self.publish(jobs);
                return None;
            }
            None => {
                let batch = jobs
                    .open
                    .iter_mut()
                    .find(|b| b.seq == back.seq)
                    .expect("a chunk's batch is open until its last chunk is back");
                batch.chunks -= 1;
            }
        }
        let mut completed = None;
        while jobs.open.front().is_some_and(|b| b.chunks == 0) {
            completed = jobs.open.pop_front().map(|b| b.seq);
        }
        self.publish(jobs);
        completed
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
        self.lock_jobs().helpers
    }

    /// Objects freed on helper threads and by lenders so far.
    pub(crate) fn freed_by_helpers(&self) -> u64 {
        // Relaxed: a statistic.
        self.freed_by_helpers.load(Ordering::Relaxed)
    }

    /// Counts a helper about to be spawned (it serves at once); undone by
    /// [`helper_gone`](Self::helper_gone) if the spawn fails.
    fn helper_starting(&self) {
        self.lock_jobs().helpers += 1;
    }

    fn helper_gone(&self) {
        let mut jobs = self.lock_jobs();
        jobs.helpers = jobs.helpers.saturating_sub(1);
    }

    /// Tells every helper to exit once the board is empty.
    fn stop_helpers(&self) {
        self.lock_jobs().stop = true;
        self.work.notify_all();
    }

    /// After every helper exited: a later crew starts afresh.
    fn helpers_stopped(&self) {
        let mut jobs = self.lock_jobs();
        jobs.helpers = 0;
        jobs.stop = false;
    }

    /// The board's lock, or `None` at once if it is held or a chunk is in
    /// flight (the fork handlers, see `fork.rs`: a chunk in flight is held
    /// by a thread the child would not have). The chunks on the return list
    /// are given back first: no thread holds them.
    #[cfg(all(unix, not(kvfree_loom), not(miri)))]
    pub(crate) fn try_lock(&self) -> Option<BoardLock<'_>> {
        let mut jobs = crate::fork::try_lock(&self.jobs)?;
        self.take_returned(&mut jobs);
        (jobs.in_flight == 0).then_some(BoardLock { jobs })
    }
}

impl Drop for Board {
    /// Gives back what is left on the return list, so that no chunk's box
    /// leaks. None is in practice: the service's last `barrier()` waits for
    /// every batch on the board, and a batch completes only once every
    /// chunk of it is given back.
    fn drop(&mut self) {
        drop(self.lock_jobs());
    }
}

/// A batch's chunks: its pages split by thread lane
/// (`PageList::split_by_thread_lane`), each lane's pages whole
/// ([`Split::Whole`]) and tagged with the lane, so that a lender takes its
/// own lane's pages first (`Board::take`); and each head list a chunk (a
/// list can only be walked from its top).
fn lane_chunks(
    lanes: Vec<(Option<LaneTag>, PageList)>,
    heads: HeadChain,
) -> Vec<(Chunk, Split, Option<LaneTag>)> {
    let mut chunks: Vec<_> = lanes
        .into_iter()
        .map(|(lane, pages)| (Chunk::Pages(PageRun::new(pages)), Split::Whole, lane))
        .collect();
    chunks.extend(
        heads
            .into_lists()
            .map(|list| (Chunk::Heads(list), Split::Run, None)),
    );
    chunks
}

/// What goes back to the board after a bite.
struct GiveBack {
    seq: u64,
    split: Split,
    lane: Option<LaneTag>,
    rest: Option<Chunk>,
}

/// A node of the board's return list: a chunk a lender gave back while
/// another thread held the lock (`Board::leave_returned`).
struct Returned {
    back: GiveBack,
    next: *mut Returned,
}

// A `Returned` is handed from the lender's thread to whoever takes the
// list: its chunk must be `Send` (as every chunk on the board is).
const _: fn() = || {
    fn chunk_is_send<T: Send>() {}
    chunk_is_send::<GiveBack>();
};

/// The board's lock, held by the fork handlers across a `fork()`.
#[cfg(all(unix, not(kvfree_loom), not(miri)))]
pub(crate) struct BoardLock<'a> {
    jobs: crate::sync::MutexGuard<'a, Jobs>,
}

#[cfg(all(unix, not(kvfree_loom), not(miri)))]
impl BoardLock<'_> {
    /// In a forked child: the parent's helpers do not exist here. No chunk
    /// was in flight at the fork (`Board::try_lock`), so every chunk of the
    /// open batches is queued, and the child's reaps free them.
    pub(crate) fn forget_helpers(&mut self) {
        debug_assert_eq!(self.jobs.in_flight, 0);
        self.jobs.helpers = 0;
        self.jobs.stop = false;
    }
}

pub(crate) fn free_alone(
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
                    // SAFETY: each kind is `kind_of` a free function for the
                    // tests' leaked boxes (the models push none); the board
                    // hands each chunk to one thread.
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

    /// Starts `n` helper threads serving `board`, each handing the pages it
    /// spent to `back`.
    fn spawn_helpers(
        n: usize,
        board: &Arc<Board>,
        back: &Arc<std::sync::Mutex<PageList>>,
    ) -> Vec<std::thread::JoinHandle<()>> {
        (0..n)
            .map(|_| {
                board.helper_starting();
                let (board, back) = (board.clone(), back.clone());
                std::thread::spawn(move || {
                    board.serve(&free_chunk, &|pages| back.lock().unwrap().append(pages))
                })
            })
            .collect()
    }

    /// `n` leaked counted nodes pushed on `lists`, spread over the first
    /// `spread` lists (one chunk each on the board); check and free them
    /// with [`assert_each_freed_once`].
    fn counted_heads(lists: &HeadLists, n: u64, spread: usize) -> Vec<NonNull<CountedNode>> {
        let nodes: Vec<_> = (0..n)
            .map(|_| {
                NonNull::from(Box::leak(Box::new(CountedNode {
                    head: RcuHead::new(),
                    frees: AtomicUsize::new(0),
                })))
            })
            .collect();
        for (i, node) in nodes.iter().enumerate() {
            // SAFETY: the head is the node's first field (repr(C)); the
            // nodes are freed by `assert_each_freed_once`, `count_free` only
            // counts.
            unsafe { lists.push(i % spread, node.cast(), count_free) };
        }
        nodes
    }

    /// Asserts that every node was freed (counted) exactly once, and drops
    /// the nodes.
    ///
    /// # Safety
    /// 1. `nodes` came from [`counted_heads`], and every batch they were
    ///    in has completed (nothing touches them any more).
    unsafe fn assert_each_freed_once(nodes: Vec<NonNull<CountedNode>>) {
        for node in nodes {
            // SAFETY: contract 1: from Box::leak in `counted_heads`, unused
            // now, dropped once here.
            let node = unsafe { Box::from_raw(node.as_ptr()) };
            assert_eq!(node.frees.load(Ordering::Relaxed), 1);
        }
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
        let back = Arc::new(std::sync::Mutex::new(PageList::new()));
        let helpers = spawn_helpers(2, &board, &back);
        let total = records as u64 + heads_n;
        board.post(1, pages, lists.take_all(), 3);
        board.help(Freer::Reaper, Bites::WhileQueued, &free_chunk, &|pages| {
            back.lock().unwrap().append(pages)
        });
        // The helpers may still hold chunks: the last one back completes.
        while !board.completed(1) {
            std::thread::yield_now();
        }
        assert_eq!(FREED.load(Ordering::Relaxed) as u64, total);
        let drained = core::mem::take(&mut *back.lock().unwrap());
        assert_eq!(drained.records(), records, "every page back");
        pool.recycle(drained);
        board.stop_helpers();
        for helper in helpers {
            helper.join().unwrap();
        }
        board.helpers_stopped();
        assert_eq!(board.helpers(), 0);
    }

    /// Frees (and counts, by value) the leaked `Box<u64>` of a lane test.
    ///
    /// # Safety
    /// 1. `ptr` is a leaked `Box<u64>` holding 0, 1 or 2, freed once.
    unsafe fn free_lane_value(ptr: NonNull<()>) {
        // SAFETY: contract 1.
        let value = unsafe { Box::from_raw(ptr.cast::<u64>().as_ptr()) };
        LANE_FREES[*value as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Objects `free_lane_value` freed, by value (the lane test's only).
    static LANE_FREES: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

    /// A batch posted by thread lane (`Board::post_by_lane`): a lender takes
    /// its bite of its own lane's pages first, whatever their place in the
    /// queue, and a lender of another lane (or none) takes the front; every
    /// object is freed once and every page comes back. Runs under Miri.
    #[test]
    fn a_lender_frees_its_own_lanes_pages_first() {
        let mut config = Config::default();
        config.lanes = Some(1);
        let pool = Pool::new(config).unwrap();
        pool.refill().unwrap();
        let kind = kind_of(free_lane_value);
        let (a, b) = (pool.claim_thread_lane(), pool.claim_thread_lane());
        // Two pages per lane (a page holds `USABLE - 2` of one kind).
        let per_lane = USABLE;
        for (value, lane) in [(1u64, a), (2, b)] {
            pool.refill().unwrap();
            for _ in 0..per_lane {
                let object = NonNull::from(Box::leak(Box::new(value)));
                // SAFETY: the lane is ours (claimed above, used by this
                // thread only, released below).
                unsafe { pool.push_local(lane, object.cast(), kind) }.unwrap();
            }
        }
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Wait);
        assert_eq!(pages.records(), 2 * per_lane);
        let board = Board::new();
        board.post_by_lane(1, pages, HeadChain::default());
        let back = std::sync::Mutex::new(PageList::new());
        let recycle = |pages| back.lock().unwrap().append(pages);
        // The lender of the lane whose pages are not at the front.
        let front = lock(&board.jobs).queued.front().and_then(|q| q.lane);
        let (own, mine, front_value) = if front == Some(a.tag()) {
            (b, 2, 1)
        } else {
            assert_eq!(front, Some(b.tag()));
            (a, 1, 2)
        };
        let lent = board.help(
            Freer::Lender(Some(own.tag())),
            Bites::AtMost(1),
            &free_local_bite,
            &recycle,
        );
        assert!(lent > 0);
        assert_eq!(
            LANE_FREES[mine].load(Ordering::Relaxed) as u64,
            lent,
            "its own lane's"
        );
        assert_eq!(LANE_FREES[front_value].load(Ordering::Relaxed), 0);
        let lent = board.help(
            Freer::Lender(None),
            Bites::AtMost(1),
            &free_local_bite,
            &recycle,
        );
        assert_eq!(
            LANE_FREES[front_value].load(Ordering::Relaxed) as u64,
            lent,
            "no lane: the front"
        );
        board.help(Freer::Reaper, Bites::WhileQueued, &free_chunk, &recycle);
        assert!(board.completed(1));
        assert_eq!(LANE_FREES[1].load(Ordering::Relaxed), per_lane);
        assert_eq!(LANE_FREES[2].load(Ordering::Relaxed), per_lane);
        // SAFETY: claimed above, not used afterwards.
        unsafe {
            pool.release_thread_lane(a);
            pool.release_thread_lane(b);
        }
        pool.recycle(back.into_inner().unwrap());
    }

    /// A batch dealt out whole (`Board::post_by_lane`, the worker's way while
    /// it deals) wakes the sleeping helpers, which free it while the
    /// dealer frees at most its bites: every object is freed exactly once,
    /// the batch completes, and every page comes back. Runs under Miri.
    #[test]
    fn a_batch_dealt_whole_is_freed_by_the_helpers_it_wakes() {
        let (pool, pages, records) = filled_pages(2, kind_of(free_u64_uncounted));
        let heads_n: u64 = if SMALL { 12 } else { 100_000 };
        let lists = HeadLists::per_cpu();
        let nodes = counted_heads(&lists, heads_n, 2);
        let board = Arc::new(Board::new());
        let back = Arc::new(std::sync::Mutex::new(PageList::new()));
        let helpers = spawn_helpers(2, &board, &back);
        // Both asleep: the post must wake them.
        while lock(&board.jobs).sleeping < 2 {
            std::thread::yield_now();
        }
        board.post_by_lane(1, pages, lists.take_all());
        let dealt = board.help(Freer::Reaper, Bites::AtMost(2), &free_chunk, &|pages| {
            back.lock().unwrap().append(pages)
        });
        let bite_max = Bite::Reaper
            .heads()
            .max((Bite::Reaper.pages() * USABLE) as u64);
        assert!(dealt <= 2 * bite_max, "the dealer frees at most its bites");
        while !board.completed(1) {
            std::thread::yield_now();
        }
        assert_eq!(
            dealt + board.freed_by_helpers(),
            records as u64 + heads_n,
            "the helpers free the rest"
        );
        // SAFETY: the nodes' only batch has completed; checked once.
        unsafe { assert_each_freed_once(nodes) };
        board.stop_helpers();
        for helper in helpers {
            helper.join().unwrap();
        }
        let drained = core::mem::take(&mut *back.lock().unwrap());
        assert_eq!(drained.records(), records, "every page back");
        pool.recycle(drained);
    }

    /// Two threads lend bites (`Board::help` as lenders, in a loop) while
    /// the reaping thread shares a batch of pages and heads with them, and
    /// a second batch is posted behind it: every object is freed exactly
    /// once, each lent bite stays within `Bite::Local`, the batches
    /// complete in order (the first before the second, whoever finishes
    /// first), and every page comes back. Runs under Miri.
    #[test]
    fn lenders_free_bites_of_the_boards_batches_once_and_in_order() {
        let (pool, pages, records) = filled_pages(2, kind_of(free_u64_uncounted));
        let heads_n: u64 = if SMALL { 12 } else { 100_000 };
        let lists = HeadLists::per_cpu();
        let nodes = counted_heads(&lists, heads_n, 2);
        let board = Board::new();
        let back = std::sync::Mutex::new(PageList::new());
        let recycle = |pages| back.lock().unwrap().append(pages);
        let local_bite_max = Bite::Local
            .heads()
            .max((Bite::Local.pages() * USABLE) as u64);
        // Batch 1: the pages; batch 2: the heads.
        // Batch 1 as a lender posts it: pages whole, cut a bite per take.
        assert!(
            board
                .try_post_by_lane(1, pages, HeadChain::default())
                .is_ok()
        );
        board.post(2, PageList::new(), lists.take_all(), 3);
        let (freed, lent) = std::thread::scope(|s| {
            let lenders: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut lent = 0;
                        while !board.completed(2) {
                            let bite = board.help(
                                Freer::Lender(None),
                                Bites::AtMost(1),
                                &free_local_bite,
                                &recycle,
                            );
                            assert!(bite <= local_bite_max);
                            lent += bite;
                            std::thread::yield_now();
                        }
                        lent
                    })
                })
                .collect();
            let freed = board.help(Freer::Reaper, Bites::WhileQueued, &free_chunk, &recycle);
            let lent: u64 = lenders.into_iter().map(|l| l.join().unwrap()).sum();
            (freed, lent)
        });
        assert_eq!(freed + lent, records as u64 + heads_n);
        assert_eq!(
            board.freed_by_helpers(),
            lent,
            "lent bites count as the helpers'"
        );
        // SAFETY: the nodes' only batch has completed; checked once.
        unsafe { assert_each_freed_once(nodes) };
        let drained = back.into_inner().unwrap();
        assert_eq!(drained.records(), records, "every page back");
        pool.recycle(drained);
    }

    /// A lender that finds the board's lock held when it gives its chunk
    /// back does not wait: the chunk goes on the return list, still in
    /// flight and its batch open, and the next thread to take the lock
    /// gives it back: the rest is queued again and freed, or, if the bite
    /// was the batch's last, the batch completes. Every object is freed
    /// once. Runs under Miri.
    #[test]
    fn a_lender_leaves_its_chunk_on_the_return_list_while_the_lock_is_held() {
        let bite = Bite::Local.heads();
        for (objects, rest) in [(bite + 3, 3), (bite, 0)] {
            let lists = HeadLists::per_cpu();
            let nodes = counted_heads(&lists, objects, 1);
            let board = Board::new();
            // One list: one chunk, which the lender takes.
            board.post(1, PageList::new(), lists.take_all(), 2);
            let bitten = std::sync::Barrier::new(2);
            let locked = std::sync::Barrier::new(2);
            let lent = std::thread::scope(|s| {
                let lender = s.spawn(|| {
                    let free_then_wait = |chunk: &mut Chunk| {
                        let freed = free_local_bite(chunk);
                        bitten.wait();
                        locked.wait();
                        freed
                    };
                    board.help(
                        Freer::Lender(None),
                        Bites::AtMost(1),
                        &free_then_wait,
                        &|_| {},
                    )
                });
                bitten.wait();
                // Held while the lender gives back; taken without giving
                // back the return list, to look at it.
                let jobs = lock(&board.jobs);
                locked.wait();
                let lent = lender.join().unwrap();
                assert!(board.has_returned(), "the chunk is on the return list");
                assert_eq!(jobs.in_flight, 1, "and still in flight");
                drop(jobs);
                lent
            });
            assert_eq!(lent, bite);
            assert!(!board.completed(1), "the batch waits for its chunk");
            let freed = board.help(Freer::Reaper, Bites::WhileQueued, &free_chunk, &|_| {});
            assert_eq!(freed, rest, "the rest is freed after the give-back");
            assert!(!board.has_returned());
            assert!(board.completed(1));
            // SAFETY: the nodes' only batch has completed; checked once.
            unsafe { assert_each_freed_once(nodes) };
        }
    }

    /// A batch with nothing in it completes at once on an empty board, and
    /// after the batches before it on a busy one.
    #[test]
    fn an_empty_batch_completes_in_order() {
        let board = Board::new();
        board.post(1, PageList::new(), HeadChain::default(), 1);
        assert!(board.completed(1));
        let lists = HeadLists::per_cpu();
        let nodes = counted_heads(&lists, 1, 1);
        board.post(2, PageList::new(), lists.take_all(), 1);
        board.post(3, PageList::new(), HeadChain::default(), 1);
        assert!(!board.completed(2) && !board.completed(3));
        let freed = board.help(Freer::Reaper, Bites::WhileQueued, &free_chunk, &|_| {});
        assert_eq!(freed, 1);
        assert!(board.completed(3));
        // SAFETY: the node's only batch (2) has completed; checked once.
        unsafe { assert_each_freed_once(nodes) };
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

/// Loom models of the board (run exhaustively by `ci/20-loom.sh` with the
/// crate's other internal models): the reaping thread, a helper and a
/// lender share the chunks of one batch, or of two, bite by bite; every
/// object is freed once, every free happens before its batch completes,
/// and batches complete in order whoever gives back their last chunk.
#[cfg(all(test, kvfree_loom))]
mod loom_models {
    use super::test_support::*;
    use super::*;
    use crate::head::{HeadLists, RcuHead};
    use core::ptr::NonNull;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    /// `n` counted nodes.
    fn nodes(n: usize) -> Arc<Vec<CountedNode>> {
        Arc::new(
            (0..n)
                .map(|_| CountedNode {
                    head: RcuHead::new(),
                    frees: AtomicUsize::new(0),
                })
                .collect(),
        )
    }

    /// A batch of `nodes` in two head lists (two chunks).
    fn batch_of(nodes: &[CountedNode]) -> HeadChain {
        let lists = HeadLists::per_cpu();
        for (i, node) in nodes.iter().enumerate() {
            // SAFETY: the nodes live until the model ends; `count_free`
            // only counts.
            unsafe { lists.push(i % 2, NonNull::from(&node.head), count_free) };
        }
        lists.take_all()
    }

    /// A board with one helper counted.
    fn board() -> Arc<Board> {
        let board = Arc::new(Board::new());
        board.helper_starting();
        board
    }

    /// A helper thread serving `board` until told to stop.
    fn spawn_helper(board: &Arc<Board>) -> loom::thread::JoinHandle<()> {
        let board = board.clone();
        loom::thread::spawn(move || board.serve(&free_chunk, &|_| {}))
    }

    /// A lender thread: one bite of `board`'s chunks, as a
    /// `LocalRetirer::reclaim` call takes it, then `check` of what it sees;
    /// returns what it freed.
    fn spawn_lender(
        board: &Arc<Board>,
        check: impl Fn(&Board) + Send + 'static,
    ) -> loom::thread::JoinHandle<u64> {
        let board = board.clone();
        loom::thread::spawn(move || {
            let lent = board.help(
                Freer::Lender(None),
                Bites::AtMost(1),
                &free_local_bite,
                &|_| {},
            );
            check(&board);
            lent
        })
    }

    /// Frees bites of `board`'s chunks until none is queued, as the
    /// reaping thread does after a post.
    fn reap(board: &Board) -> u64 {
        board.help(Freer::Reaper, Bites::WhileQueued, &free_chunk, &|_| {})
    }

    /// Once every other thread is joined, the board is drained: the rest of
    /// a chunk a thread gave back after the last `reap` is freed by the next
    /// (the worker's next round), and then batch `seq` has completed.
    fn drain_after_joins(board: &Board, seq: u64) {
        reap(board);
        assert!(board.completed(seq));
    }

    /// If the board says `seq` completed, every node of `batch` was freed
    /// exactly once, and that is visible here.
    fn assert_freed_if_completed(board: &Board, seq: u64, batch: &[CountedNode]) {
        if board.completed(seq) {
            for node in batch {
                // Relaxed: `completed`'s Acquire orders the frees before.
                assert_eq!(node.frees.load(Ordering::Relaxed), 1);
            }
        }
    }

    #[test]
    fn a_batch_shared_with_a_helper_is_freed_once_before_it_completes() {
        loom::model(|| {
            let nodes = nodes(4);
            let board = board();
            let helper = spawn_helper(&board);
            board.post(1, PageList::new(), batch_of(&nodes), 2);
            reap(&board);
            assert_freed_if_completed(&board, 1, &nodes);
            board.stop_helpers();
            helper.join().unwrap();
            drain_after_joins(&board, 1);
            assert_freed_if_completed(&board, 1, &nodes);
        });
    }

    /// Two batches on the board, a lender taking a bite while the reaping
    /// thread frees the rest: whoever gives back a batch's last chunk,
    /// the batches complete in order, each only once all of it (and of the
    /// one before it) is freed, and neither waits for the other thread.
    #[test]
    fn batches_on_the_board_complete_in_order() {
        loom::model(|| {
            let nodes = nodes(4);
            let board = board();
            let (first, second) = nodes.split_at(2);
            board.post(1, PageList::new(), batch_of(first), 2);
            board.post(2, PageList::new(), batch_of(second), 2);
            let lender = {
                let nodes = nodes.clone();
                spawn_lender(&board, move |board| {
                    assert_freed_if_completed(board, 1, &nodes[..2]);
                    assert_freed_if_completed(board, 2, &nodes);
                })
            };
            let freed = reap(&board);
            assert_freed_if_completed(&board, 1, first);
            assert_freed_if_completed(&board, 2, &nodes);
            let lent = lender.join().unwrap();
            assert!(lent <= 1, "a lender frees one bite");
            assert_eq!(freed + lent, 4);
            drain_after_joins(&board, 2);
            assert_freed_if_completed(&board, 2, &nodes);
        });
    }

    /// A lender whose give-back finds the lock held leaves its chunk on the
    /// return list; the reaping thread, taking the lock until the batch
    /// completes (as the worker's rounds and a `barrier()` do), gives it
    /// back and completes the batch, and then sees the lender's frees
    /// (without a join): the list's Release push and Acquire take order
    /// them before the completion (the model fails with both Relaxed).
    /// The helper is there for loom's sake: with two threads it never runs
    /// the lender's `try_lock` while the other thread holds the lock (a
    /// failed `try_lock` is not a dependency it backtracks on), with a
    /// third it does, in about one execution in six.
    #[test]
    fn a_chunk_left_on_the_return_list_completes_its_batch() {
        loom::model(|| {
            let nodes = nodes(2);
            let board = board();
            let helper = spawn_helper(&board);
            board.post(1, PageList::new(), batch_of(&nodes), 3);
            let lender = spawn_lender(&board, |_| {});
            reap(&board);
            while !board.completed(1) {
                loom::thread::yield_now();
                reap(&board);
            }
            assert_freed_if_completed(&board, 1, &nodes);
            lender.join().unwrap();
            board.stop_helpers();
            helper.join().unwrap();
        });
    }

    /// The reaping thread, a helper and a lender share a batch (two lists
    /// of one node: each thread may take one): every object is freed once
    /// before it completes, whoever frees it, and nobody waits for good.
    #[test]
    fn a_helper_and_a_lender_share_a_batch() {
        loom::model(|| {
            let nodes = nodes(2);
            let board = board();
            let helper = spawn_helper(&board);
            board.post(1, PageList::new(), batch_of(&nodes), 3);
            let lender = {
                let nodes = nodes.clone();
                spawn_lender(&board, move |board| {
                    assert_freed_if_completed(board, 1, &nodes);
                })
            };
            reap(&board);
            lender.join().unwrap();
            board.stop_helpers();
            helper.join().unwrap();
            drain_after_joins(&board, 1);
            assert_freed_if_completed(&board, 1, &nodes);
        });
    }
}
