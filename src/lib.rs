//! # kvfree-rcu
//!
//! Retire objects from any context (under a raw spinlock, in a signal
//! handler, on a real-time thread) and have each freed after an RCU grace
//! period. The retire call never calls the general allocator, never takes a
//! lock, never sleeps and never waits: it writes the pointer into a page that
//! a worker allocated earlier, in ordinary context, as the Linux kernel's
//! `kvfree_rcu()` does since it learned to run under raw spinlocks.
//!
//! Most users reach for the process-wide service, [`global()`], and the
//! safe layer on top of it: [`RcuCell`] for one RCU-protected value, and
//! [`Atomic`]/[`Owned`]/[`Shared`]/[`Unlinked`] for linked structures.
//!
//! ```
//! use kvfree_rcu::{Owned, RawSpinLock, Rcu, RcuCell};
//!
//! kvfree_rcu::init_global(); // at start-up: allocates, spawns the worker
//! let limit = RcuCell::new(1u64);
//! let writer_lock = RawSpinLock::new(());
//!
//! // Reader: wait-free; the reference lives as long as the guard.
//! {
//!     let guard = Rcu::global().read_lock();
//!     assert_eq!(*limit.read(&guard), 1);
//! }
//!
//! // Updater, under a raw spinlock: the node was allocated beforehand, and
//! // the old value is retired without allocating or failing.
//! let next = Owned::new(2);
//! {
//!     let _locked = writer_lock.lock();
//!     limit.replace_with(next);
//! }
//!
//! kvfree_rcu::barrier(); // every value retired so far is dropped
//! ```
//!
//! The raw API retires objects you allocate yourself, from any context:
//!
//! ```
//! use std::ptr::NonNull;
//! use kvfree_rcu::{Rcu, RcuHead, RawSpinLock, impl_rcu_headed};
//! use std::sync::atomic::{AtomicPtr, Ordering};
//!
//! struct Config { limit: u64, head: RcuHead }
//! impl_rcu_headed!(Config, head);
//!
//! let rcu = Rcu::global();
//! let service = kvfree_rcu::init_global();
//! let current = AtomicPtr::new(Box::into_raw(Box::new(Config { limit: 1, head: RcuHead::new() })));
//! let writer_lock = RawSpinLock::new(());
//!
//! // Reader: wait-free.
//! {
//!     let _guard = rcu.read_lock();
//!     // SAFETY: the pointer is live for the read-side critical section.
//!     let limit = unsafe { &*current.load(Ordering::Acquire) }.limit;
//!     assert_eq!(limit, 1);
//! }
//!
//! // Updater, under a raw spinlock: publish the new value, retire the old one.
//! {
//!     let _locked = writer_lock.lock();
//!     let new = Box::into_raw(Box::new(Config { limit: 2, head: RcuHead::new() }));
//!     let old = current.swap(new, Ordering::AcqRel);
//!     // SAFETY: `old` came from Box::into_raw, is unlinked, and is retired once.
//!     unsafe { service.kvfree_rcu(NonNull::new(old).unwrap()) };
//! }
//!
//! service.barrier(); // every object retired so far is freed
//! # // SAFETY: the last value, never retired, no readers left.
//! # unsafe { drop(Box::from_raw(current.load(Ordering::Relaxed))) };
//! ```
//!
//! A structure may also build a service of its own
//! ([`KvfreeRcu::new`]); each costs a worker thread and its page caches
//! (four lanes per CPU of 8 pages of 4 KiB at rest, more while a flood
//! needs them; about 650 KiB of RSS with its own domain, measured on 2
//! CPUs), so share the global one unless a
//! structure needs its own settings or domain.
//!
//! ## Crates
//! - [`gp`] (`kvfree-rcu-gp`): the RCU domain [`Rcu`], read-side guards,
//!   blocking and polled grace periods, the [`GracePeriod`] trait.
//! - `kvfree-rcu-pool`: the lock-free per-CPU pool of pages of retired
//!   pointers, an implementation detail. Only what users of this crate need
//!   is re-exported: [`PoolConfigError`] (inside [`BuildError::Pool`]) and
//!   the bounds of the builder's settings, [`MAX_LANES`] and
//!   [`CACHE_CAPACITY`]. (The engine stays public as [`gp`]: users hold its
//!   domains and guards.)
//! - this crate: [`KvfreeRcu`] and its worker, [`LocalRetirer`] (a
//!   thread's own lane, for threads that retire in floods), the process-wide service
//!   ([`global()`] and the free functions [`kvfree_rcu()`],
//!   [`try_kvfree_rcu`], [`kvfree_rcu_mightsleep`], [`barrier`]), the safe
//!   layer ([`RcuCell`], [`Atomic`]), and the context discipline:
//!   [`RawSpinLock`], the [`context`] checker, [`CheckedAlloc`].
//!
//! ## Test hooks
//! Items marked `#[doc(hidden)]` (`pause_worker`, `resume_worker`,
//! `inject_alloc_failures`, `inject_round_panics`) are test hooks for this
//! workspace's tests, examples and benchmark: fault injection and stalls.
//! They are not part of the public API: outside semver, they may change or
//! go away in any release. (Chosen over a `testing` feature so that
//! `cargo test` runs every test without feature flags.)
//!
//! ## Which call where
//! | call | atomic context | ordinary context |
//! |---|---|---|
//! | [`KvfreeRcu::kvfree_rcu`], [`KvfreeRcu::call_rcu`] (headed) | yes: never fails | yes |
//! | [`KvfreeRcu::try_kvfree_rcu`], [`KvfreeRcu::kvfree_rcu_with`] | yes: `Err` when no page | yes |
//! | [`KvfreeRcu::local_retirer`] | **no**: may allocate | yes |
//! | [`LocalRetirer`]'s calls (the same four, through the thread's own lane: no locked instruction) | yes | yes |
//! | [`LocalRetirer::reclaim`] | **no**: frees | yes: frees one bite (at most [`RECLAIM_BITE`]) of what has expired, on this thread |
//! | [`Parking::park`], [`Parking::try_kvfree_rcu_or_park`] | yes: `Err` when full | yes |
//! | [`Parking::flush`] | **no** | yes: may wait a grace period |
//! | [`KvfreeRcu::kvfree_rcu_mightsleep`] | **no** (reported) | yes: may wait a grace period |
//! | [`KvfreeRcu::barrier`], [`KvfreeRcu::shrink`], [`Rcu::synchronize`] | **no** | yes |
//! | [`Rcu::read_lock`], `get_state`, `start_poll`, `poll_state` | yes | yes |
//! | [`global()`] (once created), [`RcuCell::read`], [`RcuCell::replace_with`], [`Atomic::load`], [`Atomic::swap`], compare-exchange, [`Unlinked::retire`], [`Unlinked::retire_local`] | yes | yes |
//! | [`init_global`], [`RcuCell::new`], [`RcuCell::replace`], [`RcuCell::update`], [`Owned::new`] | **no**: allocate | yes |
//!
//! The full table is in `docs/CONTEXTS.md`; the design in `docs/DESIGN.md`.
//!
//! ## Feature flags
//! - `crossbeam-epoch`: [`gp::EpochGracePeriod`][epoch-adapter], a
//!   grace-period source over any crossbeam-epoch collector, so structures
//!   whose readers pin with crossbeam-epoch retire through the service
//!   ([`KvfreeRcu::builder_with`]).
//! - `context-check`: the [`context`] checker in release builds too (it is
//!   always on with debug assertions, and compiled away otherwise).
//! - `rt`: [`SpinLock`] becomes a sleeping lock, as `spinlock_t` is under
//!   PREEMPT_RT.
//!
//! ## Platform
//! Linux (x86-64 and aarch64), macOS, Windows and FreeBSD; the atomic-context
//! guarantees (no allocation, no lock, no blocking call) hold on all of them.
//!
//! | | Linux | Windows | macOS, FreeBSD |
//! |---|---|---|---|
//! | readers' barrier | compiler fence + `membarrier()` on the advancer (`fence(SeqCst)` on kernels without it) | compiler fence + `FlushProcessWriteBuffers()` | `fence(SeqCst)` |
//! | worker wake | `futex` | std's thread parking (`WakeByAddressSingle`) | std's thread parking (`dispatch_semaphore_signal`, `_umtx_op`) |
//! | CPU hint for the pool's lanes | `sched_getcpu()` | 0 | 0 |
//! | fork safety | `pthread_atfork` | (no fork) | `pthread_atfork` |
//!
//! (On other unix targets whose std parks threads with a mutex and a
//! condition variable, such as illumos, waking the worker takes that mutex;
//! those targets are not supported for signal-handler use.)
//!
//! The Linux fast paths can be turned off with `RUSTFLAGS="--cfg
//! kvfree_portable"`, which selects the fallbacks of the other platforms;
//! CI runs the whole test suite that way, and type-checks the other
//! targets. Linux x86-64 is where the tests and benchmarks run.
//!
// The adapter exists only with its feature; without it the link goes to the
// engine's docs, so `cargo doc` has no broken link either way.
#![cfg_attr(
    all(feature = "crossbeam-epoch", not(kvfree_loom)),
    doc = "[epoch-adapter]: gp::EpochGracePeriod"
)]
#![cfg_attr(
    not(all(feature = "crossbeam-epoch", not(kvfree_loom))),
    doc = "[epoch-adapter]: gp"
)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod affinity;
#[cfg(not(kvfree_loom))]
mod atomic;
mod batch_queue;
mod builder;
#[cfg(not(kvfree_loom))]
mod cell;
pub mod context;
mod fork;
mod free_fn;
mod freeing;
#[cfg(not(kvfree_loom))]
mod global;
mod head;
mod local;
#[cfg(not(kvfree_loom))]
mod node;
mod os_wait;
mod parking;
mod per_cpu_count;
mod priority;
mod reclaim;
mod service;
mod settings;
mod shared;
mod stats;
mod sync;
mod time_slice;
mod wake;
mod worker;

/// The RCU engine (`kvfree-rcu-gp`).
pub use kvfree_rcu_gp as gp;
/// The page pool: an implementation detail (crate docs), not re-exported.
use kvfree_rcu_pool as pool;

pub use affinity::ReclaimAffinity;
#[cfg(not(kvfree_loom))]
pub use atomic::{Atomic, Shared, Unlinked};
pub use builder::{BuildError, Builder};
#[cfg(not(kvfree_loom))]
pub use cell::RcuCell;
pub use context::checked_alloc::CheckedAlloc;
pub use context::locks::{RawSpinLock, RawSpinLockGuard, SpinLock, SpinLockGuard};
pub use context::{AtomicSection, ReportMode, Violation, might_sleep};
pub use free_fn::FreeFn;
#[cfg(not(kvfree_loom))]
pub use global::{
    GlobalInitError, barrier, global, init_global, init_global_with, kvfree_rcu,
    kvfree_rcu_mightsleep, try_kvfree_rcu,
};
pub use gp::{CapacityError, DomainId, GpState, GracePeriod, Rcu, RcuReadGuard};
pub use head::{HeadFreeFn, RcuHead, RcuHeaded};
pub use kvfree_rcu_pool::{
    CACHE_CAPACITY, ConfigError as PoolConfigError, DEFAULT_ALLOC_WATERMARK, DEFAULT_RESERVE,
    DEFAULT_SLAB_PAGES, MAX_LANES, MAX_RESERVE, MAX_SLAB_PAGES,
};
pub use local::{LocalRetirer, RECLAIM_BITE};
#[cfg(not(kvfree_loom))]
pub use node::Owned;
pub use parking::Parking;
pub use priority::ReclaimPriority;
pub use service::KvfreeRcu;
pub use settings::SettingError;
pub use shared::RoundReport;
pub use stats::Stats;
pub use time_slice::ReclaimSlice;

/// The README's examples, compiled and run as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
