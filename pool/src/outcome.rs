//! What a push or a refill reports to its caller.
//!
//! A push that finds no page fails at once with [`NoPage`] (the service then
//! takes its fallback); a push that succeeds may still ask, through
//! [`Pushed::refill_wanted`], for the refiller to be woken.

use core::fmt;

/// [`Pool::push`](crate::Pool::push) stored the record.
///
/// ```
/// use core::ptr::NonNull;
/// use kvfree_rcu_pool::{Kind, Pool};
/// let pool = Pool::default();
/// pool.refill().unwrap();
/// let kind = Kind::new(NonNull::<u8>::dangling().cast());
/// let pushed = pool.push(NonNull::<u64>::dangling().cast(), kind).unwrap();
/// if pushed.refill_wanted {
///     pool.refill().unwrap(); // the service wakes its worker instead
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed {
    /// True when this push took the lane's next empty page and left fewer
    /// than its lane's low mark cached (the low watermark, raised with the
    /// lane's target): the caller should wake the refiller.
    /// It is reported once per page taken, not on every push.
    pub refill_wanted: bool,
}

/// [`Pool::push`](crate::Pool::push) failed at once: no page was available
/// (every lane was busy, or ours had a full or no open page and an empty
/// cache). The record was not stored; the caller should take its fallback and
/// wake the refiller. Counted in [`PoolStats::no_page`](crate::PoolStats::no_page)
/// and [`PoolStats::refill_requests`](crate::PoolStats::refill_requests).
///
/// ```
/// use core::ptr::NonNull;
/// use kvfree_rcu_pool::{Kind, NoPage, Pool};
/// let pool = Pool::default(); // not refilled: no page yet
/// let kind = Kind::new(NonNull::<u8>::dangling().cast());
/// assert_eq!(pool.push(NonNull::<u64>::dangling().cast(), kind), Err(NoPage));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoPage;

impl fmt::Display for NoPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no page available in the pool")
    }
}

impl std::error::Error for NoPage {}

/// A page allocation failed during [`Pool::refill`](crate::Pool::refill)
/// (really, or injected with the hidden test hook `inject_alloc_failures`).
///
/// ```
/// use kvfree_rcu_pool::{AllocError, Pool};
/// let pool = Pool::default();
/// pool.inject_alloc_failures(1);
/// assert_eq!(pool.refill(), Err(AllocError));
/// assert_eq!(AllocError.to_string(), "page allocation failed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("page allocation failed")
    }
}

impl std::error::Error for AllocError {}
