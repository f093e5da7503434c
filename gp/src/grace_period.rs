//! The `GracePeriod` trait: what the deferred-free service needs from a
//! grace-period engine, so it can run over [`Rcu`] or over another scheme
//! (crossbeam-epoch, with the `crossbeam-epoch` feature).

use crate::sync::Patience;
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
///
/// # Safety
/// Deferred frees are memory-safe only if this trait tells the truth: a
/// caller unlinks an object, takes a state, and frees the object once
/// `poll_state` accepts the state (or once `synchronize` returns), without
/// any other check. So an implementation must guarantee, for every state `s`
/// returned by `get_state` or `start_poll` of this source (or of a handle
/// that shares its grace periods, such as a clone):
///
/// 1. **Taking a state orders the caller's past.** `get_state` and
///    `start_poll` act as a `SeqCst` fence before they take the state: every
///    read-side critical section of this source either began before that
///    call, or observes every write the calling thread made before the call
///    (so it cannot find the unlinked object).
/// 2. **`poll_state(s)` returns true only after every critical section that
///    began before `s` was taken has ended**, and every memory access made
///    inside those sections *happens before* `poll_state` returns true (in
///    the sense of the C++/Rust memory model), so that a free made after it
///    does not race with them.
/// 3. **`synchronize()` returns only after a full grace period**: point 1
///    holds for its call as for `get_state`, and every critical section that
///    began before the call has ended, with the happens-before of point 2,
///    when it returns.
/// 4. **Nothing else breaks 1 to 3.** `advance`, `get_state`, `start_poll`,
///    `poll_state`, `synchronize`, `grace_periods` and
///    `current_thread_in_read_section`, called any number of times, from any
///    threads, at once, never make `poll_state` or `synchronize` pass early.
///    In particular `advance` completes a grace period only when point 2
///    holds for every state the completion lets pass, no matter how many
///    callers race.
///
/// Not part of this contract (a wrong implementation costs deadlocks,
/// latency or wrong reports, not memory safety): the context promises of
/// each method (which calls are lock-free or allocation-free), progress
/// (`advance` may return false forever while a reader stays inside), and
/// the answer of [`current_thread_in_read_section`](GracePeriod::current_thread_in_read_section),
/// which only feeds the context checker.
pub unsafe trait GracePeriod: Send + Sync + 'static {
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
    /// Grace periods completed so far: a statistic for reports, never a
    /// cookie (use [`get_state`](GracePeriod::get_state) to wait).
    ///
    /// Precisely: 0 for a new source (or, for a handle that shares its grace
    /// periods, the count of the source it shares), never decreasing, and
    /// counted in grace periods, not in internal steps: when `poll_state(s)`
    /// first accepts a state `s`, or a `synchronize()` returns, the count has
    /// grown by at least one since `s` was taken (since the call began), and
    /// it grows only when some grace period has ended. Grace periods that
    /// overlap in time may count once or once each: [`Rcu`] counts back-to-back
    /// grace periods (half its epoch, [`Rcu::epoch`]); `EpochGracePeriod`
    /// counts each `advance` request whose grace period has ended. Read
    /// without ordering (`Relaxed`): it may lag the state `poll_state` sees.
    ///
    /// ```
    /// use kvfree_rcu_gp::{GracePeriod, Rcu};
    /// let rcu = Rcu::new();
    /// let before = GracePeriod::grace_periods(&rcu);
    /// GracePeriod::synchronize(&rcu);
    /// assert!(GracePeriod::grace_periods(&rcu) > before);
    /// ```
    fn grace_periods(&self) -> u64;
    /// True if the calling thread is inside a read-side critical section of
    /// this source right now. No lock, no waiting (`Rcu`: no allocation and
    /// no registration either; `EpochGracePeriod`: crossbeam registers a
    /// thread with its collector on its first call, as `pin()` does). For
    /// the context checker only (a call that waits for a grace period from
    /// inside a read section would wait for itself forever): never branch
    /// behaviour on it. A source that cannot tell answers false.
    ///
    /// ```
    /// use kvfree_rcu_gp::{GracePeriod, Rcu};
    /// let rcu = Rcu::new();
    /// assert!(!rcu.current_thread_in_read_section());
    /// let guard = rcu.read_lock();
    /// assert!(GracePeriod::current_thread_in_read_section(&rcu));
    /// drop(guard);
    /// assert!(!GracePeriod::current_thread_in_read_section(&rcu));
    /// ```
    fn current_thread_in_read_section(&self) -> bool;
}

/// Whether misuse checks that cost a lookup are compiled in (debug
/// assertions, or feature `context-check`, which the kvfree-rcu crate's own
/// `context-check` feature turns on).
pub(crate) const CONTEXT_CHECKS: bool = cfg!(any(debug_assertions, feature = "context-check"));

/// The kernel's "Illegal synchronize_rcu() in RCU read-side critical
/// section", for a wait that could never end.
#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn illegal_synchronize_panic() -> ! {
    panic!(
        "Illegal synchronize() in RCU read-side critical section of the same domain: \
         it would wait for itself forever"
    )
}

/// The blocking wait every source shares: reports a wait that could never
/// end (the calling thread inside a read section of `gp`, checked builds),
/// then advances, politely, until a fresh state polls complete.
pub(crate) fn synchronize_by_polling<G: GracePeriod>(gp: &G) {
    if CONTEXT_CHECKS && gp.current_thread_in_read_section() {
        illegal_synchronize_panic();
    }
    let target = gp.get_state();
    let mut patience = Patience::new();
    while !gp.poll_state(target) {
        if !gp.advance() {
            patience.wait();
        }
    }
}

// SAFETY: the protocol and its argument are in the `domain` module docs
// (docs/DESIGN.md section 1); point by point:
// 1. `Rcu::get_state` (and `start_poll`, which calls it) runs a `SeqCst`
//    fence before it loads the epoch. A reader announces itself, runs the
//    light barrier (a `SeqCst` fence, or a compiler fence that the
//    advancer's `membarrier()` turns into a full barrier), then loads
//    pointers. Of the two fences one comes first: if the reader's, its
//    section began before the call (and every later advancer's scan sees
//    its announcement); if ours, its loads see the caller's writes.
// 2. A state is `epoch + 2`. The epoch reaches it only through the AcqRel
//    CAS from `E + 1`, whose advancer ran its heavy barrier after our fence
//    and saw, in every slot word, no reader still inside a section that
//    began before the state (the `+ 2` argument). `poll_state`'s Acquire
//    load reads that CAS or a later one (the CASes form one release
//    sequence), and each advancer's scan read every slot word with Acquire,
//    where every store is Release (`slot` module docs): so every access of
//    those sections happens before `poll_state` returns true.
// 3. `Rcu::synchronize` is `get_state` then `poll_state` until true.
// 4. `advance` CASes the epoch only from the value its own scan validated,
//    by exactly one; the other calls only read the epoch, or write the
//    `requested` hint, which `poll_state` does not read.
unsafe impl GracePeriod for Rcu {
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
    fn current_thread_in_read_section(&self) -> bool {
        Rcu::current_thread_in_read_section(self)
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
