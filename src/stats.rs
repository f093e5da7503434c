//! `Stats`: a snapshot of the service's counters.

/// Counters of a [`KvfreeRcu`](crate::KvfreeRcu), read with
/// [`stats()`](crate::KvfreeRcu::stats). Each field is read separately, so a
/// snapshot taken while other threads retire is approximate; after
/// [`barrier()`](crate::KvfreeRcu::barrier) with no concurrent retires it is
/// exact.
///
/// ```
/// use std::sync::Arc;
/// use kvfree_rcu::{KvfreeRcu, Rcu, Stats};
/// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
/// service.barrier();
/// let stats: Stats = service.stats();
/// assert_eq!(stats.pending, 0);
/// println!("{} freed, {} pages live", stats.freed, stats.pages_live);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Objects recorded in pages (the fast path).
    pub queued_pages: u64,
    /// Objects queued through their embedded `RcuHead` (no page available).
    pub queued_heads: u64,
    /// Objects freed by the worker, `barrier()` or `shrink()`.
    pub freed: u64,
    /// Objects queued and not yet freed.
    pub pending: u64,
    /// The largest `pending` the service found when it went to collect and
    /// free since it was built: a sampled high-water mark of the backlog,
    /// taken at the start of every worker round (every poll interval while
    /// traffic flows) and of every pass of `barrier`, `shrink` and
    /// `run_once`. Under a flood the service's memory follows it: each
    /// object waiting holds its own allocation, and 8 bytes of a page
    /// unless it waits on the head list.
    pub peak_pending: u64,
    /// Objects `kvfree_rcu_mightsleep` freed inline after `synchronize()`
    /// (no page, and allocating one failed).
    pub freed_inline: u64,
    /// Pages `kvfree_rcu_mightsleep` brought on the spot because no page
    /// was available: taken from the pool's reserve (also counted in
    /// `reserve_reuses`) or allocated (also counted in `pages_allocated`).
    pub inline_page_allocs: u64,
    /// `try_kvfree_rcu`/`kvfree_rcu_with` calls that returned `Err`.
    pub try_failed: u64,
    /// Pages allocated since creation, a slab at a time
    /// (`Builder::slab_pages`).
    pub pages_allocated: u64,
    /// Pages currently allocated.
    pub pages_live: u64,
    /// Empty pages cached for the retire path.
    pub pages_cached: u64,
    /// Empty pages kept in the pool's reserve, past the caches, for the
    /// next refill or `kvfree_rcu_mightsleep` that needs a page (at most
    /// `Builder::max_reserve`, plus the rest of the slab allocated last).
    pub pages_reserved: u64,
    /// Pages a refill or `kvfree_rcu_mightsleep` took from the reserve
    /// instead of allocating (the other pages of a new slab among them).
    pub reserve_reuses: u64,
    /// Empty pages the caches are filled up to, summed over the lanes: the
    /// base is lanes x `high_watermark`; a lane that runs dry grows its
    /// share straight to `max_watermark`, and an idle one shrinks back.
    pub cache_target: u64,
    /// Times the retire path asked for a refill.
    pub refill_requests: u64,
    /// Retire calls that found their lane dry: no room in its open page and
    /// no cached page (each grows that lane's cache target). A call that
    /// then found no page on another lane either fell back (`queued_heads`,
    /// `try_failed`); calls that fell back without a dry lane found the
    /// lanes owned by other calls (a thread preempted inside its push).
    pub dry_pushes: u64,
    /// Page allocations that failed (real or injected).
    pub alloc_failures: u64,
    /// Grace periods completed in the service's domain.
    pub grace_periods: u64,
    /// Batches collected (each waits for one grace-period stamp).
    pub batches: u64,
    /// Times a retire call woke the idle worker: each is one OS wake
    /// (`futex(FUTEX_WAKE)` on Linux), the only syscall a retire call makes.
    /// While traffic flows the worker polls and this does not grow: it
    /// counts the first retire after each idle period.
    pub worker_wakeups: u64,
    /// Worker rounds that panicked (a panicking `GracePeriod`): each is
    /// caught, counted here and the worker goes on; the first is also
    /// reported on stderr.
    pub worker_panics: u64,
    /// Reclaim helper threads running now (started by the worker when a
    /// backlog builds, see `Builder::max_reclaim_helpers`).
    pub reclaim_helpers: u64,
    /// Objects freed on reclaim helper threads (part of `freed`), and in
    /// bites lent to them by `LocalRetirer::reclaim` calls while the
    /// service was behind.
    pub freed_by_helpers: u64,
}
