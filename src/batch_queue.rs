//! `BatchQueue`: the FIFO queue of batches, how retired objects wait for
//! their grace period and get freed.
//!
//! `collect` takes everything queued so far (the open pages, sealed first in
//! each lane, then the hand-off list of full pages, then the head lists) into
//! one batch and stamps it with `start_poll()`. The stamp is taken *after*
//! the take: the take's Acquire (a `swap` pairing with the producers'
//! Release) makes every record's write, and so each caller's unlink before
//! its retire call, happen before the stamp's `SeqCst` fence (point 1 of the
//! `GracePeriod` contract: taking a state acts as one). A reader that
//! could still see one of the objects therefore began before the stamp, and
//! `poll_state(stamp)` waits for it.
//!
//! The queue is FIFO and collected under its lock, so sequence numbers and
//! stamps increase together and `reap` takes batches oldest-first,
//! stopping at the first batch still in its grace period. Batches are
//! taken under a second lock (`free_lock`), not the queue lock: destructors
//! run under it or after it, so a destructor that retires more objects
//! never contends with collection. Batches finish in order, which lets
//! `barrier()` wait for a sequence number: a batch taken while others are
//! on the reclaim board ([`crate::reclaim`]) goes there too, and the board
//! completes its batches in order; a batch freed alone is taken only while
//! the board is empty, and completed before the free lock is released. A
//! `LocalRetirer::reclaim` call frees one bite of a batch
//! ([`Reaper::LocalThread`]); the rest stays under the free lock (the lock
//! guards it), and every reap takes it first, so it stays the oldest.
//! While it frees, the thread is marked as freeing for this queue
//! ([`crate::freeing`]), so that a destructor calling back into the same
//! service is caught instead of deadlocking on `free_lock`.
//!
//! When helpers exist and a batch is large, or batches are on the board,
//! the batch goes on the board, where the reaping thread, the helpers and
//! retiring threads that lend a hand free it a bite at a time
//! ([`crate::reclaim`]): the reaping thread does not wait for it, and it
//! completes, in order, only once all of it is freed. Everyone who frees
//! is marked as freeing for this queue and aborts on a panicking
//! destructor as the reaping thread does.
//!
//! A destructor that panics would lose the rest of its batch, so the
//! process aborts instead (as a panic in a kernel RCU callback would oops).
//! Only a panic that unwinds *out of* a destructor the batch runs does
//! that: freeing a batch while the thread is already unwinding from an
//! unrelated panic (a service dropped during unwinding, or a `Drop` impl
//! calling `barrier` then) is an ordinary free.

use crate::free_fn::free_fn_of;
use crate::freeing::{self, FreeingFor};
use crate::gp::GracePeriod;
use crate::head::{HeadChain, HeadLists};
use crate::pool::{BusyLanes, LaneTag, PageList, Pool};
use crate::reclaim::{self, Bite, Bites, Board, Chunk, Freer};
use crate::sync::{AtomicU64, Mutex, Ordering, lock, try_lock};
use std::collections::VecDeque;

/// Objects that wait for one grace period together.
struct Batch<S> {
    seq: u64,
    stamp: S,
    pages: PageList,
    heads: HeadChain,
}

struct Queue<S> {
    batches: VecDeque<Batch<S>>,
    /// Sequence number of the next batch (the first is 1).
    next_seq: u64,
}

/// The batches waiting for their grace period.
pub(crate) struct BatchQueue<S> {
    queue: Mutex<Queue<S>>,
    /// Held by the thread that frees batches. It guards the batch a
    /// [`Reaper::LocalThread`] left partly freed (its grace period has
    /// ended; the next reap, whoever runs it, frees the rest first).
    free_lock: Mutex<Option<Batch<S>>>,
    /// Objects freed from batches.
    pub(crate) freed: AtomicU64,
    /// Batches collected.
    pub(crate) batches_collected: AtomicU64,
    /// Where the reaping thread shares a large batch's pages with the
    /// reclaim helpers.
    pub(crate) board: Board,
}

/// Who reaps, which says how it takes the queue's locks and whether it
/// shares large batches with the reclaim helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reaper {
    /// A thread waiting for its own batch (`barrier`, `shrink`, `run_once`,
    /// drop): waits for the locks, posts large batches for the helpers.
    Waiter,
    /// The worker's polling round: skips the reap while another thread
    /// reaps (it polls again soon), posts large batches for the helpers.
    Poller,
    /// The worker's polling round while it is behind and others free for
    /// the service: its helpers, or retiring threads
    /// (`LocalRetirer::reclaim`) (`Shared::reaper_due`). Skips the reap
    /// while another thread reaps, posts every ready batch on the board by
    /// thread lane ([`Board::post_by_lane`]: each taker cuts its own bite,
    /// a lender from its own lane's pages first) and wakes helpers for it,
    /// frees at most [`DEALER_BITES`] bites itself, and goes back to its
    /// rounds, so that refills run and grace periods keep advancing while
    /// the others free.
    Dealer,
    /// A retiring thread's `LocalRetirer::reclaim`: never waits for a lock
    /// to find work, and frees one [`Bite::Local`] per call, so that a
    /// call's cost is bounded: alone while the board is empty (the objects
    /// go back to its own allocator caches), else of the board's chunks
    /// ([`BatchQueue::lend_a_bite`]). Not waiting keeps the calls free of
    /// futex syscalls too.
    LocalThread,
}

/// Bites of the board's chunks a [`Reaper::Dealer`] frees per round: about
/// 8 000 objects, a quarter of a millisecond of frees, so its rounds stay
/// short; and a share of the backlog freed whoever else frees (millions of
/// objects a second at a round per millisecond), should the retiring
/// threads that reclaim be few and no helper run.
const DEALER_BITES: usize = 4;

/// What `collect` does with the lanes' open (partly filled) pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpenPages {
    /// Leave them: take only full pages and heads. For wake-ups during a
    /// flood, where sealing the page a producer just opened would waste a
    /// cached page per wake-up.
    Leave,
    /// Take those no producer holds this instant (the drain interval).
    TakeIdle,
    /// Take them all, waiting for producers to let go (`barrier`).
    TakeAll,
}

/// What one `collect` found.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Collected {
    pub(crate) pages: usize,
    pub(crate) heads: u64,
}

impl<S: Copy> BatchQueue<S> {
    pub(crate) fn new() -> Self {
        BatchQueue {
            queue: Mutex::new(Queue {
                batches: VecDeque::new(),
                next_seq: 1,
            }),
            free_lock: Mutex::new(None),
            freed: AtomicU64::new(0),
            batches_collected: AtomicU64::new(0),
            board: Board::new(),
        }
    }

    /// Takes what is queued in `pool` and `heads` into a new batch stamped
    /// by `gp`; `open` says what happens to the lanes' open pages.
    pub(crate) fn collect<G: GracePeriod<State = S>>(
        &self,
        gp: &G,
        pool: &Pool,
        heads: &HeadLists,
        open: OpenPages,
    ) -> Collected {
        let mut q = lock(&self.queue);
        let mut pages = PageList::new();
        // Open pages first: a producer that fills a page hands it off before it
        // releases its lane, so once we own every lane the hand-off list holds
        // every page sealed before this call.
        if open != OpenPages::Leave {
            let busy = match open {
                OpenPages::TakeAll => BusyLanes::Wait,
                _ => BusyLanes::Skip,
            };
            pool.seal_open(&mut pages, busy);
        }
        pages.append(pool.take_sealed());
        let heads = heads.take_all();
        let found = Collected {
            pages: pages.pages(),
            heads: heads.len(),
        };
        if pages.records() == 0 && heads.is_empty() {
            // Empty pages (a lane sealed right after a recycle) go back.
            pool.recycle(pages);
            return found;
        }
        let stamp = gp.start_poll();
        let seq = q.next_seq;
        q.next_seq += 1;
        q.batches.push_back(Batch {
            seq,
            stamp,
            pages,
            heads,
        });
        self.batches_collected.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Identifies this queue (and so its service) to [`crate::freeing`].
    fn id(&self) -> usize {
        core::ptr::from_ref(self).addr()
    }

    /// Whether this thread is running a destructor for this queue, i.e.
    /// holds its `free_lock` further up the stack: a call that waits for
    /// this queue's frees would wait for itself.
    pub(crate) fn is_freeing_on_this_thread(&self) -> bool {
        freeing::is_freeing_for(self.id())
    }

    /// Whether batches wait for their grace period.
    pub(crate) fn has_pending(&self) -> bool {
        !lock(&self.queue).batches.is_empty()
    }

    /// Sequence number of the newest batch collected so far (0: none).
    pub(crate) fn newest_seq(&self) -> u64 {
        lock(&self.queue).next_seq - 1
    }

    /// Whether every batch up to `seq` has been freed.
    pub(crate) fn completed(&self, seq: u64) -> bool {
        self.board.completed(seq)
    }

    /// Frees the batches whose grace period has ended, oldest first, as
    /// `reaper`; returns the number of objects it freed, or `None` at once
    /// if `reaper` does not wait and another thread is reaping.
    ///
    /// The worker and a waiter take every ready batch: a small one (no
    /// helper wanted) they free alone while the board is empty; any other
    /// they post on the board ([`Board::post`]), then they free bites of
    /// the board's chunks until none is queued. They do not wait for the
    /// chunks other threads hold: whoever gives back a batch's last chunk
    /// completes it. A [`Reaper::Dealer`] posts every ready batch by
    /// thread lane and frees at most [`DEALER_BITES`] bites. A [`Reaper::LocalThread`]
    /// frees one bite of the oldest ready batch alone while the board is
    /// empty, and otherwise lends the board a bite
    /// ([`lend_a_bite`](Self::lend_a_bite)).
    pub(crate) fn reap<G: GracePeriod<State = S>>(
        &self,
        reaper: Reaper,
        gp: &G,
        pool: &Pool,
    ) -> Option<u64> {
        let mut freed = 0;
        {
            let mut partly_freed = match reaper {
                Reaper::Waiter => lock(&self.free_lock),
                Reaper::Poller | Reaper::Dealer | Reaper::LocalThread => try_lock(&self.free_lock)?,
            };
            if reaper == Reaper::LocalThread && self.board.is_busy() {
                // Batches are on the board: one freed alone now would
                // complete before them.
                drop(partly_freed);
                return Some(self.lend_a_bite(gp, pool, None));
            }
            let _freeing = FreeingFor::enter(self.id());
            while let Some(batch) = self.next_ready(&mut partly_freed, reaper, gp) {
                let seq = batch.seq;
                match reaper {
                    Reaper::Waiter | Reaper::Poller => {
                        let records = batch.pages.records() as u64 + batch.heads.len();
                        self.board.note_ready(records);
                        let helpers = self.board.helpers_wanted(records);
                        if helpers == 0 && !self.board.is_busy() {
                            freed += self.count_freed(free_alone(batch, pool));
                            self.board.complete(seq);
                        } else {
                            let threads = helpers + 1;
                            self.board.post(seq, batch.pages, batch.heads, threads);
                        }
                    }
                    Reaper::Dealer => {
                        let records = batch.pages.records() as u64 + batch.heads.len();
                        self.board.note_ready(records);
                        self.board.post_by_lane(seq, batch.pages, batch.heads);
                    }
                    Reaper::LocalThread => {
                        let (bite, rest) = free_bite(batch, pool);
                        freed += self.count_freed(bite);
                        match rest {
                            Some(rest) => *partly_freed = Some(rest),
                            None => self.board.complete(seq),
                        }
                        // One bite per call.
                        break;
                    }
                }
            }
        }
        let bites = match reaper {
            Reaper::Waiter | Reaper::Poller => Bites::WhileQueued,
            Reaper::Dealer => Bites::AtMost(DEALER_BITES),
            Reaper::LocalThread => return Some(freed),
        };
        // The free lock is released: lenders may post the next ready
        // batches meanwhile. Counted in `freed` by each bite.
        self.board.wake_for_queued();
        freed += self.board.help(
            Freer::Reaper,
            bites,
            &|chunk| self.free_shared_chunk(chunk, Freer::Reaper, pool),
            &|pages| pool.recycle(pages),
        );
        Some(freed)
    }

    /// Adds `objects` just freed to `freed`, before the batch they belong to
    /// is completed: a `barrier()` that sees the completion then sees them
    /// counted (`Stats::pending` is 0 after it). Returns `objects`.
    fn count_freed(&self, objects: u64) -> u64 {
        // Relaxed: ordered before the completion's Release (`Board::complete`)
        // by program order; a counter otherwise.
        self.freed.fetch_add(objects, Ordering::Relaxed);
        objects
    }

    /// The oldest batch to free next, under the free lock: the one a local
    /// reap left partly freed (its grace period has ended), else the
    /// queue's oldest if its grace period has ended. A local reap does not
    /// wait for the queue's lock (a collect may hold it while it waits for
    /// a producer).
    fn next_ready<G: GracePeriod<State = S>>(
        &self,
        partly_freed: &mut Option<Batch<S>>,
        reaper: Reaper,
        gp: &G,
    ) -> Option<Batch<S>> {
        if let Some(batch) = partly_freed.take() {
            return Some(batch);
        }
        let mut q = match reaper {
            Reaper::Waiter | Reaper::Poller | Reaper::Dealer => lock(&self.queue),
            Reaper::LocalThread => try_lock(&self.queue)?,
        };
        match q.batches.front() {
            Some(b) if gp.poll_state(b.stamp) => q.batches.pop_front(),
            _ => None,
        }
    }

    /// Frees one bite of the board's chunks, for a retiring thread that
    /// lends a hand (`LocalRetirer::reclaim` while the service is behind,
    /// or while batches are on the board): of its own thread lane's pages
    /// (`lane`) if a chunk of them is queued; if no chunk is queued, first
    /// posts the oldest ready batch there, split by thread lane, without
    /// waking a helper (a syscall).
    /// Returns how many objects it freed (0 at once when there is nothing
    /// to take, or a lock it would need is held). The objects count as the
    /// helpers'.
    pub(crate) fn lend_a_bite<G: GracePeriod<State = S>>(
        &self,
        gp: &G,
        pool: &Pool,
        lane: Option<LaneTag>,
    ) -> u64 {
        let lend = || {
            self.board.help(
                Freer::Lender(lane),
                Bites::AtMost(1),
                &|chunk| self.free_shared_chunk(chunk, Freer::Lender(lane), pool),
                &|pages| pool.recycle(pages),
            )
        };
        let lent = lend();
        if lent > 0 || self.board.has_queued() {
            return lent;
        }
        let posted = {
            let Some(mut partly_freed) = try_lock(&self.free_lock) else {
                return 0;
            };
            match self.next_ready(&mut partly_freed, Reaper::LocalThread, gp) {
                Some(mut batch) => {
                    self.board
                        .note_ready(batch.pages.records() as u64 + batch.heads.len());
                    match self
                        .board
                        .try_post_by_lane(batch.seq, batch.pages, batch.heads)
                    {
                        Ok(()) => true,
                        Err((pages, heads)) => {
                            // The board's lock is held: the batch stays the
                            // oldest ready one, for the next reap.
                            (batch.pages, batch.heads) = (pages, heads);
                            *partly_freed = Some(batch);
                            false
                        }
                    }
                }
                None => false,
            }
        };
        if posted { lend() } else { 0 }
    }

    /// The body of a reclaim helper thread: frees bites of the board's
    /// chunks until the worker stops it.
    pub(crate) fn help_reclaim(&self, pool: &Pool) {
        self.board.serve(
            &|chunk| self.free_shared_chunk(chunk, Freer::Helper, pool),
            &|pages| pool.recycle(pages),
        );
    }

    /// Frees a bite of a chunk taken from the board, as `freer`; counts
    /// it in `freed`.
    fn free_shared_chunk(&self, chunk: &mut Chunk, freer: Freer, pool: &Pool) -> u64 {
        // Marked per chunk: a helper runs this service's destructors only
        // here.
        let _freeing = FreeingFor::enter(self.id());
        let abort = AbortOnUnwind;
        // SAFETY: the board holds only chunks of batches whose grace period
        // ended (posted by `reap` or `lend_a_bite` after polling them), each
        // taken by one thread at a time (`Board::help`, `Board::serve`).
        let freed = unsafe { free_chunk(chunk, freer.bite()) };
        // Every destructor returned: nothing unwound out of the chunk.
        core::mem::forget(abort);
        top_up_from_reserve(pool);
        // Before the chunk goes back, and so before its batch completes.
        self.count_freed(freed)
    }
}

/// The queue's two locks, held together: while they are held no batch is
/// being collected or freed (`fork.rs` holds them across a `fork()`).
#[cfg(all(unix, not(kvfree_loom), not(miri)))]
pub(crate) struct BatchQueueLocks<'a, S> {
    _queue: crate::sync::MutexGuard<'a, Queue<S>>,
    _free: crate::sync::MutexGuard<'a, Option<Batch<S>>>,
    board: crate::reclaim::BoardLock<'a>,
}

#[cfg(all(unix, not(kvfree_loom), not(miri)))]
impl<S> BatchQueue<S> {
    /// Both locks, or `None` at once if either is held (the caller backs
    /// off and retries, so no lock order is needed).
    pub(crate) fn try_lock_all(&self) -> Option<BatchQueueLocks<'_, S>> {
        let free = crate::fork::try_lock(&self.free_lock)?;
        let queue = crate::fork::try_lock(&self.queue)?;
        let board = self.board.try_lock()?;
        Some(BatchQueueLocks {
            _queue: queue,
            _free: free,
            board,
        })
    }
}

#[cfg(all(unix, not(kvfree_loom), not(miri)))]
impl<S> BatchQueueLocks<'_, S> {
    /// In a forked child: the parent's reclaim helpers do not exist here.
    pub(crate) fn forget_helpers(&mut self) {
        self.board.forget_helpers();
    }
}

/// Aborts the process when dropped. `free_batch` forgets it once every
/// destructor has returned, so it is dropped only by an unwind out of a
/// destructor of the batch, which would leave the rest of the batch unfreed.
/// (Asking `std::thread::panicking()` instead would also abort a batch freed
/// normally while the thread unwinds from an unrelated panic.)
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        crate::context::report_fatal(
            "kvfree-rcu: a destructor panicked while the service freed retired objects; aborting so that none is lost or freed twice",
        );
    }
}

/// Frees a small batch whose grace period has ended on the calling thread
/// alone (no helper wanted, and the board is empty), recycling each bite's
/// pages as soon as its records are freed: the retire path needs them
/// meanwhile. Returns the objects freed.
fn free_alone<S>(batch: Batch<S>, pool: &Pool) -> u64 {
    let abort = AbortOnUnwind;
    let recycle = |pages: PageList| pool.recycle(pages);
    let (pages, freed) = reclaim::free_alone(
        batch.pages,
        batch.heads,
        &|chunk| {
            // SAFETY: the chunk is part of this batch, whose grace period
            // has ended (the caller polled it), and only this thread frees
            // it (under the free lock).
            let freed = unsafe { free_chunk(chunk, Bite::Reaper) };
            top_up_from_reserve(pool);
            freed
        },
        Some(&recycle),
    );
    // Every destructor returned: nothing unwound out of the batch.
    core::mem::forget(abort);
    pool.recycle(pages);
    freed
}

/// Frees one bite of a batch whose grace period has ended, on the calling
/// thread alone ([`reclaim::free_one_bite`]); returns how many objects it
/// freed, and the rest of the batch if any is left.
fn free_bite<S>(mut batch: Batch<S>, pool: &Pool) -> (u64, Option<Batch<S>>) {
    let abort = AbortOnUnwind;
    let freed = reclaim::free_one_bite(
        &mut batch.pages,
        &mut batch.heads,
        &|chunk| {
            // SAFETY: the chunk is part of this batch, whose grace period
            // has ended (the caller polled it, or a reap before it did),
            // and only this thread frees it (under the free lock).
            unsafe { free_chunk(chunk, Bite::Local) }
        },
        &|pages| pool.recycle(pages),
    );
    // Every destructor returned: nothing unwound out of the bite.
    core::mem::forget(abort);
    top_up_from_reserve(pool);
    let rest = (!batch.pages.is_empty() || !batch.heads.is_empty()).then_some(batch);
    (freed, rest)
}

/// After a bite of a batch: if a lane is below its low mark, tops the lanes
/// up from the pool's reserve (never allocating). A thread reaping a large
/// batch, most of it head lists, is the worker, so nobody refilled the
/// lanes while it reaped: they ran dry and the retire path fell back for
/// milliseconds while the reserve held hundreds of pages
/// (docs/BENCHMARKS.md, "Topping up from the reserve while reaping").
fn top_up_from_reserve(pool: &Pool) {
    if pool.needs_refill() {
        pool.refill_from_reserve();
    }
}

/// Frees a bite of `size` of `chunk`: every record of its next pages
/// (which stay, to be recycled), or up to `size.heads()` heads of its list
/// (the rest stays); returns how many.
///
/// # Safety
/// 1. The chunk belongs to a batch whose grace period has ended.
/// 2. No other call frees the objects of this chunk.
unsafe fn free_chunk(chunk: &mut Chunk, size: Bite) -> u64 {
    match chunk {
        Chunk::Pages(run) => {
            let pages = run.bite(size);
            // Our reclaim threads free where the chunk was filled
            // (`affinity.rs`); its first page stands for the chunk.
            if let Some(cpu) = pages.first_page_cpu() {
                crate::affinity::move_to_filling_cpu(cpu);
            }
            let mut freed = 0;
            pages.for_each_record(|ptr, kind| {
                // Every kind in the pool was made by `kind_of` from the
                // retire call's free function, and the record was retired
                // once by a caller who promised it matches that function and
                // is unreachable for readers.
                // SAFETY: as above, contract 1 (its grace period has ended)
                // and 2 (freed once).
                unsafe { free_fn_of(kind)(ptr) };
                freed += 1;
            });
            freed
        }
        // SAFETY: contract 1 (the grace period the chain was taken before
        // has ended) and 2.
        Chunk::Heads(heads) => unsafe { heads.free_some(size.heads()) },
    }
}
