//! [`AsymmetricFence`]: the domains' barrier pair (`membarrier.rs`), for
//! other protocols of the same shape.
//!
//! The shape is a store-buffering handshake where one side is hot and the
//! other rare. The hot side stores, then loads a flag; the rare side stores
//! the flag, then loads what the hot side stored. Each side needs a full
//! fence between its store and its load, or both may miss the other's store
//! (x86 lets a plain store wait in the store buffer past a later load). The
//! pair puts all the cost on the rare side: [`light`](AsymmetricFence::light)
//! is a compiler fence where the platform has a process-wide barrier, and
//! [`heavy`](AsymmetricFence::heavy) is that barrier. The guarantee is the
//! one readers and advancers rely on: if a hot side's `light` comes before
//! the rare side's `heavy`, the rare side's loads after `heavy` see the hot
//! side's stores before `light`; otherwise the hot side's loads after
//! `light` see the rare side's stores before `heavy`.
//!
//! The service's worker uses it to go idle (see the crate `kvfree-rcu`'s
//! `wake.rs`): retire calls store a record, then check whether the worker
//! is asleep; the worker marks itself asleep, then checks for records.

use crate::membarrier::Flavour;

/// An asymmetric fence pair: [`light`](Self::light) for the hot side of a
/// store-buffering handshake, [`heavy`](Self::heavy) for the rare side (see
/// the module docs). Copy it into the structure that uses it: the hot side
/// then branches on a value already in its cache line.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
/// use kvfree_rcu_gp::AsymmetricFence;
/// let fence = AsymmetricFence::new();
/// let (data, asleep) = (AtomicBool::new(false), AtomicBool::new(false));
/// // Hot side: store, light fence, load.
/// data.store(true, Relaxed);
/// fence.light();
/// let must_wake = asleep.load(Relaxed);
/// // Rare side: store, heavy fence, load.
/// asleep.store(true, Relaxed);
/// fence.heavy();
/// let found = data.load(Relaxed);
/// assert!(must_wake || found); // never both missed
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsymmetricFence(Flavour);

impl AsymmetricFence {
    /// The process's pair. Ordinary context: the process's first call (of
    /// this or of `Rcu::new`) may make two syscalls to register for
    /// `membarrier()`.
    pub fn new() -> AsymmetricFence {
        AsymmetricFence(Flavour::get())
    }

    /// The hot side's fence, between its store and its load. Any context:
    /// a compiler fence, or `fence(SeqCst)` where the platform has no
    /// process-wide barrier; never a syscall.
    #[inline(always)]
    pub fn light(self) {
        self.0.light();
    }

    /// The rare side's fence, between its store and its load. Ordinary
    /// context: `membarrier()` on Linux, `FlushProcessWriteBuffers()` on
    /// Windows (each interrupts the CPUs running this process's threads),
    /// `fence(SeqCst)` elsewhere.
    pub fn heavy(self) {
        self.0.heavy();
    }

    /// Whether `heavy` is a process-wide barrier (and `light` only a
    /// compiler fence) rather than a fence pair.
    pub fn is_process_wide(self) -> bool {
        self.0 == Flavour::Asymmetric
    }
}

impl Default for AsymmetricFence {
    /// [`AsymmetricFence::new`].
    fn default() -> Self {
        AsymmetricFence::new()
    }
}
