//! Userspace RCU for kvfree-rcu: wait-free read-side guards, and blocking and
//! polled grace periods callable from atomic context.
//!
//! An [`Rcu`] domain has a global epoch and a fixed table of reader slots.
//! A reader's [`read_lock`](Rcu::read_lock) announces the epoch in its own
//! slot (one load and one store, plus a compiler fence when the advancer
//! has a process-wide barrier, see *Platform* below); [`advance`](Rcu::advance) moves the epoch
//! once no reader from before it remains; a grace period has elapsed when the
//! epoch has moved twice since [`get_state`](Rcu::get_state). The protocol
//! and its argument are in the `domain` module and docs/DESIGN.md section 1.
//!
//! | call | context | cost |
//! |---|---|---|
//! | `read_lock` / drop | any (after `register_current_thread`) | wait-free, no allocation, no syscall |
//! | `get_state`, `start_poll`, `poll_state` | any | lock-free, no allocation, no syscall |
//! | `advance` | ordinary, non-blocking | may call `membarrier()` (Linux) or `FlushProcessWriteBuffers()` (Windows) |
//! | `synchronize` | ordinary, blocks | loops `advance` with backoff |
//!
//! # Platform
//! Linux (x86-64 and aarch64), macOS, Windows and FreeBSD. Readers pay only
//! a compiler fence where the advancer has a process-wide barrier to make
//! up for it: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` on Linux (when
//! the kernel supports it), `FlushProcessWriteBuffers()` on Windows
//! ([`Rcu::uses_membarrier`] says which). Elsewhere, on kernels without
//! membarrier, under Miri, loom or `--cfg kvfree_tsan`, and when the Linux
//! fast paths are turned off with `--cfg kvfree_portable`, both sides use
//! `fence(SeqCst)`: the same guarantees, a costlier `read_lock`. Fork safety
//! (`pthread_atfork`) is on every unix target; Windows has no fork.
//!
//! # Example
//!
//! ```
//! use kvfree_rcu_gp::Rcu;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicPtr, Ordering};
//!
//! let rcu = Arc::new(Rcu::new());
//! let config = Arc::new(AtomicPtr::new(Box::into_raw(Box::new(String::from("v1")))));
//!
//! let reader = {
//!     let (rcu, config) = (rcu.clone(), config.clone());
//!     std::thread::spawn(move || {
//!         rcu.register_current_thread().unwrap(); // no allocation from here on
//!         for _ in 0..100 {
//!             let _guard = rcu.read_lock();
//!             // SAFETY: objects are freed only after a grace period, and
//!             // this guard keeps the current one from ending.
//!             let value = unsafe { &*config.load(Ordering::Acquire) };
//!             assert!(value.starts_with('v'));
//!         }
//!     })
//! };
//!
//! // Updater: publish a new version, then free the old one after a grace
//! // period, here with the polled API (synchronize() would block instead).
//! let old = config.swap(Box::into_raw(Box::new(String::from("v2"))), Ordering::AcqRel);
//! let state = rcu.start_poll();
//! while !rcu.poll_state(state) {
//!     if !rcu.advance() {
//!         std::thread::yield_now();
//!     }
//! }
//! // SAFETY: unlinked before `start_poll`, and its grace period has elapsed.
//! drop(unsafe { Box::from_raw(old) });
//!
//! reader.join().unwrap();
//! // SAFETY: no reader is left.
//! drop(unsafe { Box::from_raw(config.load(Ordering::Relaxed)) });
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]

mod asymmetric_fence;
mod domain;
// Not under loom: crossbeam-epoch's atomics are not loom's, so a model could
// not explore them.
#[cfg(all(feature = "crossbeam-epoch", not(kvfree_loom)))]
mod epoch_adapter;
mod fork;
mod grace_period;
mod guard;
mod membarrier;
mod reader_slot;
mod registry;
mod sync;

pub use asymmetric_fence::AsymmetricFence;
pub use domain::{DEFAULT_CAPACITY, Rcu};
#[cfg(all(feature = "crossbeam-epoch", not(kvfree_loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "crossbeam-epoch")))]
pub use epoch_adapter::{CollectorMismatch, EpochGracePeriod};
pub use grace_period::GracePeriod;
pub use guard::RcuReadGuard;
pub use registry::MAX_DOMAINS;

use core::fmt;

/// Every reader slot of a domain is owned by a live thread.
///
/// ```
/// let e = kvfree_rcu_gp::CapacityError { capacity: 4 };
/// assert!(e.to_string().contains("4"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError {
    /// The domain's number of reader slots.
    pub capacity: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "all {} reader slots of this RCU domain are taken by live threads; \
             create the domain with Rcu::with_capacity(n) for a larger n",
            self.capacity
        )
    }
}

impl std::error::Error for CapacityError {}

/// The identity of an RCU domain ([`Rcu::domain_id`],
/// [`RcuReadGuard::domain_id`]): equal for handles and guards of the same
/// domain, different between live domains.
///
/// ```
/// let rcu = kvfree_rcu_gp::Rcu::new();
/// assert_eq!(rcu.read_lock().domain_id(), rcu.domain_id());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DomainId(usize);

/// A grace-period cookie from [`Rcu::get_state`] or [`Rcu::start_poll`],
/// for [`Rcu::poll_state`]. Later states compare greater.
///
/// ```
/// let rcu = kvfree_rcu_gp::Rcu::new();
/// let a = rcu.get_state();
/// rcu.advance();
/// assert!(rcu.get_state() > a);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GpState(u64);
