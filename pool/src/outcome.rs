//! What a push or a refill reports to its caller.
//!
//! A push that finds no page fails at once with [`NoPage`] (the service then
//! takes its fallback); a push that succeeds may still ask, through
//! [`Pushed::refill_wanted`], for the refiller to be woken.

use core::fmt;

/// [`Pool::push`](crate::Pool::push) stored the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// True when this push took the slot's next empty page and left fewer
    /// than the low watermark cached: the caller should wake the refiller.
    /// It is reported once per page taken, not on every push.
    pub refill_wanted: bool,
}

/// [`Pool::push`](crate::Pool::push) failed at once: no page was available
/// (every slot was busy, or ours had a full or no open page and an empty
/// cache). The record was not stored; the caller should take its fallback and
/// wake the refiller. Counted in [`PoolStats::no_page`](crate::PoolStats::no_page)
/// and [`PoolStats::refill_requests`](crate::PoolStats::refill_requests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoPage;

impl fmt::Display for NoPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no page available in the pool")
    }
}

impl std::error::Error for NoPage {}

/// A page allocation failed during [`Pool::refill`](crate::Pool::refill)
/// (really, or injected with
/// [`Pool::inject_alloc_failures`](crate::Pool::inject_alloc_failures)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("page allocation failed")
    }
}

impl std::error::Error for AllocError {}
