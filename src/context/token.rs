//! The [`Sleepable`] token: the claim "this thread may sleep here" as a
//! value, so the compiler rejects sleeping calls inside a raw spinlock's
//! critical section (Rust for Linux style).

use super::checks::might_sleep;
use core::marker::PhantomData;

/// Proof, at the type level, that the holder may sleep (Rust for Linux style).
///
/// Make one at the top of ordinary-context code ([`Sleepable::new`] checks
/// the claim in checked builds). Sleeping calls that take `&Sleepable`
/// ([`KvfreeRcu::kvfree_rcu_mightsleep_with_token`](crate::KvfreeRcu::kvfree_rcu_mightsleep_with_token),
/// [`KvfreeRcu::barrier_with_token`](crate::KvfreeRcu::barrier_with_token)) cannot be called
/// while a raw spinlock taken with
/// [`RawSpinLock::lock_with_token`](crate::RawSpinLock::lock_with_token) is held, because
/// that guard borrows the token mutably:
///
/// ```compile_fail
/// use std::{ptr::NonNull, sync::Arc};
/// use kvfree_rcu::{KvfreeRcu, RawSpinLock, Rcu, context::Sleepable};
/// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
/// let lock = RawSpinLock::new(());
/// let mut ctx = Sleepable::new();
/// let guard = lock.lock_with_token(&mut ctx);
/// let p = NonNull::from(Box::leak(Box::new(1u32)));
/// // SAFETY: from Box::leak, never published, retired once.
/// unsafe { service.kvfree_rcu_mightsleep_with_token(&ctx, p) }; // error: `ctx` is mutably borrowed
/// drop(guard);
/// ```
///
/// Once the guard is gone the token is usable again:
///
/// ```
/// use std::{ptr::NonNull, sync::Arc};
/// use kvfree_rcu::{KvfreeRcu, RawSpinLock, Rcu, context::Sleepable};
/// let service = KvfreeRcu::new(Arc::new(Rcu::new()));
/// let lock = RawSpinLock::new(());
/// let mut ctx = Sleepable::new();
/// drop(lock.lock_with_token(&mut ctx));
/// let p = NonNull::from(Box::leak(Box::new(1u32)));
/// // SAFETY: from Box::leak, never published, retired once.
/// unsafe { service.kvfree_rcu_mightsleep_with_token(&ctx, p) };
/// service.barrier_with_token(&ctx);
/// ```
#[derive(Debug)]
pub struct Sleepable {
    _not_send: PhantomData<*const ()>,
}

// No `Default`: claiming that a thread may sleep should be a visible call.
#[allow(clippy::new_without_default)]
impl Sleepable {
    /// Claims that this thread may sleep here; checked builds report the
    /// claim when it is false ([`might_sleep`]).
    ///
    /// ```
    /// use kvfree_rcu::context::Sleepable;
    /// let ctx = Sleepable::new(); // ordinary context: may sleep
    /// # drop(ctx);
    /// ```
    #[track_caller]
    pub fn new() -> Sleepable {
        might_sleep();
        Sleepable {
            _not_send: PhantomData,
        }
    }
}
