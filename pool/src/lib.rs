//! A lock-free per-CPU pool of 4 KiB pages of retired pointers.
//!
//! Producers ([`Pool::push`]) run in atomic context: under raw spinlocks, in
//! signal handlers, on real-time threads. A push never allocates, never locks,
//! never blocks and makes no syscall but `getcpu` (served from rseq by glibc);
//! it is lock-free, reentrant and migration-safe. One consumer, in ordinary
//! context, collects full pages ([`Pool::take_sealed`]), seals the open ones
//! ([`Pool::seal_open`]), refills the per-CPU caches of empty pages
//! ([`Pool::refill`]), gives drained pages back ([`Pool::recycle`]) and
//! lets idle caches shrink ([`Pool::relax`]). Each lane's cache adapts to
//! its traffic: it grows when the lane runs dry and shrinks back when the
//! lane is idle (`watermark.rs`). A caller in ordinary context whose push
//! found no page can allocate one on the spot ([`Pool::push_with_new_page`]).
//!
//! # The protocol (docs/DESIGN.md, section 2)
//!
//! **Exactly one party owns a page at any moment**: the producer that took it
//! from a lane, a cache entry or list it sits in, or the consumer. Nobody reads
//! or writes a page they do not own, so the owner may free a page at any time,
//! with no hazard pointers and no grace period for the pool's own memory.
//!
//! - Each CPU has four lanes (`lane.rs`), each an `open` word holding null, the open page, or
//!   `BUSY`; whoever swaps `BUSY` in owns the lane and its open page until it
//!   stores a page (or null) back with `Release`. A party that finds `BUSY`
//!   moves on to another lane: nobody ever waits for a producer.
//! - Each lane has a cache of empty pages: producers take one with
//!   `swap(null)`, the consumer puts one with a CAS from null; a count
//!   beside it is only a hint (`lane.rs`).
//! - A thread may claim a lane of its own ([`Pool::claim_thread_lane`],
//!   `thread_lane.rs`): its pushes ([`Pool::push_local`]) use plain stores
//!   and a compiler fence, no read-modify-write, and the consumer takes its
//!   open page through an asymmetric-fence handshake (`membarrier()` on its
//!   side), only at a barrier or once the page has stayed open a whole
//!   drain interval.
//! - Full pages are handed off on a Treiber list (`hand_off.rs`) that the
//!   consumer takes whole.
//! - A page (`page.rs`) stores records as a run-length stream: `MARKER, kind` when the
//!   kind changes, then the pointer. `MARKER` is null, which no (`NonNull`) pointer
//!   or kind can be, so every other address, `usize::MAX` included, is a pointer.
//!
//! # Example
//! ```
//! use core::ptr::NonNull;
//! use kvfree_rcu_pool::{BusyLanes, Config, Kind, PageList, Pool};
//!
//! let pool = Pool::new(Config::default()).unwrap();
//! pool.refill().unwrap(); // ordinary context: allocate pages into the caches
//!
//! let mut object = 7u64;
//! let kind = Kind::new(NonNull::<u8>::dangling().cast());
//! let ptr = NonNull::from(&mut object).cast::<()>();
//! pool.push(ptr, kind).unwrap(); // atomic context: no allocation, no lock
//!
//! let mut pages = pool.take_sealed();
//! pool.seal_open(&mut pages, BusyLanes::Wait);
//! let mut seen = 0;
//! pages.for_each_record(|p, k| {
//!     assert_eq!((p, k), (ptr, kind));
//!     seen += 1;
//! });
//! assert_eq!(seen, 1);
//! pool.recycle(pages);
//! ```
//!
//! # An implementation detail of `kvfree-rcu`
//! This crate is published so that `kvfree-rcu` can depend on it; its API
//! follows that crate's needs, and `kvfree-rcu` re-exports only what its
//! users need (the pool's configuration error and bounds).
//!
//! # Test hooks
//! Items marked `#[doc(hidden)]` (fault injection: `inject_alloc_failures`)
//! are test hooks for this workspace's tests and benchmarks: not part of the
//! public API, outside semver, and they may change or go away in any release.

mod config;
mod cpu;
mod fork;
mod hand_off;
mod kind;
mod lane;
mod outcome;
mod page;
mod page_list;
mod pool;
pub mod prefetch;
mod push;
mod push_local;
mod push_new_page;
mod refill;
mod reserve;
mod seal;
mod slab;
mod stats;
mod sync;
#[cfg(all(test, not(kvfree_loom)))]
mod test_support;
mod thread_lane;
mod watermark;

pub use config::{
    Config, ConfigError, DEFAULT_ALLOC_WATERMARK, DEFAULT_RESERVE, DEFAULT_SLAB_PAGES, MAX_LANES,
    MAX_RESERVE, MAX_SLAB_PAGES,
};
#[cfg(any(miri, kvfree_loom))]
pub use cpu::set_simulated_cpu;
pub use kind::Kind;
pub use outcome::{AllocError, NoPage, Pushed};
pub use page_list::PageList;
pub use pool::Pool;
pub use seal::BusyLanes;
pub use stats::PoolStats;
pub use thread_lane::LaneTag;
pub use thread_lane::ThreadLane;

/// Size and alignment of one page, in bytes.
///
/// ```
/// assert_eq!(kvfree_rcu_pool::PAGE_SIZE, 4096);
/// ```
pub const PAGE_SIZE: usize = 4096;

/// Records in a page's array (a record is one pointer-sized word).
///
/// ```
/// use kvfree_rcu_pool::{PAGE_SIZE, RECORDS_PER_PAGE};
/// // The records and the page header fit in one page.
/// assert!(RECORDS_PER_PAGE * size_of::<usize>() < PAGE_SIZE);
/// ```
pub const RECORDS_PER_PAGE: usize = 502;

/// Records the pool actually fills per page: [`RECORDS_PER_PAGE`], or a
/// handful under loom and Miri so that their tests exercise full pages.
///
/// A page holds `USABLE_RECORDS - 2` pointers of a single kind (its first
/// record pays for `MARKER, kind`).
///
/// ```
/// use kvfree_rcu_pool::{RECORDS_PER_PAGE, USABLE_RECORDS};
/// assert!(USABLE_RECORDS <= RECORDS_PER_PAGE);
/// ```
pub const USABLE_RECORDS: usize = if sync::SMALL { 6 } else { RECORDS_PER_PAGE };

/// Entries in each lane's cache of empty pages: the most a lane's target
/// can grow to (the upper bound of every watermark). 256 normally (1 MiB
/// of pages, about 128 000 records, per lane at the most; past the lane's
/// share of a refill's allocation budget, [`Config::alloc_watermark`] (64
/// by default) per lane of the pool, only with pages from the reserve), 2
/// under loom and Miri (`sync::SMALL`). A lane caches that many
/// only while its traffic needs them (`watermark.rs`).
///
/// ```
/// use kvfree_rcu_pool::{CACHE_CAPACITY, Config, Pool};
/// let mut too_high = Config::default();
/// too_high.max_watermark = CACHE_CAPACITY + 1;
/// assert!(Pool::new(too_high).is_err());
/// ```
pub const CACHE_CAPACITY: usize = if sync::SMALL { 2 } else { 256 };

/// The number of possible CPUs as the pool counts them (2 under loom and
/// Miri): every [`current_cpu`] is below it. Ordinary context (a syscall or
/// a query of the OS); for sizing per-CPU structures next to the pool's.
///
/// ```
/// assert!(kvfree_rcu_pool::possible_cpus() > kvfree_rcu_pool::current_cpu());
/// ```
pub fn possible_cpus() -> usize {
    cpu::possible_cpus()
}

/// The CPU this thread runs on: a locality hint only (ownership never depends
/// on it), for callers that keep their own per-CPU structures next to the
/// pool's lanes. Async-signal-safe, no syscall with glibc's rseq.
///
/// ```
/// use kvfree_rcu_pool::current_cpu;
/// // A locality hint for the caller's own per-CPU counters.
/// let mut hits = [0u64; 64];
/// hits[current_cpu() % 64] += 1;
/// assert_eq!(hits.iter().sum::<u64>(), 1);
/// ```
#[inline(always)]
pub fn current_cpu() -> usize {
    cpu::current()
}
