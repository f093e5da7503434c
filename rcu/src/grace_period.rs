//! The `GracePeriod` trait: what the deferred-free service needs from a
//! grace-period engine, so it can run over [`Rcu`] or over another scheme
//! (crossbeam-epoch, with the `crossbeam-epoch` feature).

use crate::{GpState, Rcu};

/// A source of grace periods, blocking and polled.
///
/// The contract of the polled calls (kernel `get_state_synchronize_rcu` /
/// `poll_state_synchronize_rcu`): `poll_state(s)` returns true only once
/// every read-side critical section that was running when `s` was taken has
/// ended. Taking a state includes a full fence, so an unlink made before it
/// is ordered before it.
///
/// ```
/// use kvfree_rcu_gp::{GracePeriod, Rcu};
///
/// fn wait_one<G: GracePeriod>(gp: &G) {
///     let state = gp.get_state();
///     while !gp.poll_state(state) {
///         gp.advance();
///     }
/// }
/// wait_one(&Rcu::new());
/// ```
pub trait GracePeriod: Send + Sync + 'static {
    /// A cookie naming a grace period.
    type State: Copy + Send + Sync + core::fmt::Debug + 'static;
    /// The state a caller must wait for. Any context: lock-free, no
    /// allocation, no syscall.
    ///
    /// ```
    /// use kvfree_rcu_gp::{GracePeriod, Rcu};
    /// let rcu = Rcu::new();
    /// let state = GracePeriod::get_state(&rcu);
    /// GracePeriod::synchronize(&rcu);
    /// assert!(GracePeriod::poll_state(&rcu, state));
    /// ```
    fn get_state(&self) -> Self::State;
    /// Like `get_state`, and records that someone waits for it. Any context.
    ///
    /// ```
    /// use kvfree_rcu_gp::{GracePeriod, Rcu};
    /// let rcu = Rcu::new();
    /// let state = GracePeriod::start_poll(&rcu);
    /// while !GracePeriod::poll_state(&rcu, state) {
    ///     GracePeriod::advance(&rcu);
    /// }
    /// ```
    fn start_poll(&self) -> Self::State;
    /// True once the grace period named by `state` has elapsed. Any context.
    ///
    /// ```
    /// use kvfree_rcu_gp::{GracePeriod, Rcu};
    /// let rcu = Rcu::new();
    /// let state = GracePeriod::get_state(&rcu);
    /// if !GracePeriod::poll_state(&rcu, state) {
    ///     // not yet: retry later, or wait with `synchronize`
    /// }
    /// ```
    fn poll_state(&self, state: Self::State) -> bool;
    /// One non-blocking attempt to move grace periods forward; true if it
    /// did. Ordinary context.
    ///
    /// ```
    /// use kvfree_rcu_gp::{GracePeriod, Rcu};
    /// let rcu = Rcu::new();
    /// let state = GracePeriod::start_poll(&rcu);
    /// while !GracePeriod::advance(&rcu) && !GracePeriod::poll_state(&rcu, state) {}
    /// ```
    fn advance(&self) -> bool;
    /// Block until a full grace period has elapsed. Ordinary context.
    ///
    /// ```
    /// use kvfree_rcu_gp::{GracePeriod, Rcu};
    /// fn wait<G: GracePeriod>(gp: &G) {
    ///     gp.synchronize(); // every reader that was running has finished
    /// }
    /// wait(&Rcu::new());
    /// ```
    fn synchronize(&self);
    /// Grace periods completed so far.
    ///
    /// ```
    /// use kvfree_rcu_gp::{GracePeriod, Rcu};
    /// let rcu = Rcu::new();
    /// let before = GracePeriod::grace_periods(&rcu);
    /// GracePeriod::synchronize(&rcu);
    /// assert!(GracePeriod::grace_periods(&rcu) > before);
    /// ```
    fn grace_periods(&self) -> u64;
}

impl GracePeriod for Rcu {
    type State = GpState;
    fn get_state(&self) -> GpState {
        Rcu::get_state(self)
    }
    fn start_poll(&self) -> GpState {
        Rcu::start_poll(self)
    }
    fn poll_state(&self, state: GpState) -> bool {
        Rcu::poll_state(self, state)
    }
    fn advance(&self) -> bool {
        Rcu::advance(self)
    }
    fn synchronize(&self) {
        Rcu::synchronize(self)
    }
    fn grace_periods(&self) -> u64 {
        Rcu::grace_periods(self)
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    fn drive<G: GracePeriod>(gp: &G) {
        let before = gp.grace_periods();
        let s = gp.start_poll();
        while !gp.poll_state(s) {
            gp.advance();
        }
        gp.synchronize();
        assert!(gp.grace_periods() >= before + 2);
    }

    #[test]
    fn rcu_through_the_trait() {
        drive(&Rcu::with_capacity(2));
    }
}
