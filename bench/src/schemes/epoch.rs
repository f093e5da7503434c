//! `Epoch`: crossbeam-epoch, the usual Rust answer: `pin()` and
//! `defer_destroy` per retire. Deferred functions go into a thread-local bag
//! of 64; a full bag is sealed and pushed onto a global queue (one
//! allocation), and any thread's `pin()` may collect expired bags.
//!
//! There is no exact barrier: [`Scheme::barrier`] pins and flushes a few
//! times, and the flood loops on the freed-object count.

use super::Scheme;
use crate::object::FloodObj;
use crossbeam_epoch::{self as epoch, Shared};
use std::ptr::NonNull;

/// crossbeam-epoch's default collector.
#[derive(Debug, Default)]
pub struct Epoch;

impl Epoch {
    /// The scheme (crossbeam's global collector).
    pub fn new() -> Epoch {
        Epoch
    }
}

impl Scheme for Epoch {
    fn name(&self) -> &'static str {
        "crossbeam-epoch"
    }

    #[inline]
    unsafe fn retire(&self, obj: NonNull<FloodObj>) {
        let guard = epoch::pin();
        let shared = Shared::from(obj.as_ptr().cast_const());
        // SAFETY: the trait's contract: `obj` is a Box<FloodObj> (what
        // `defer_destroy` drops), retired once and unreachable, so no other
        // thread can still obtain it after the current epoch.
        unsafe { guard.defer_destroy(shared) };
    }

    fn barrier(&self) {
        for _ in 0..64 {
            epoch::pin().flush();
        }
    }
}
