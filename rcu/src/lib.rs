//! STUB: API contract for the RCU engine. The helper replaces every body and
//! splits the crate into one concept per file; signatures here are the contract.
#![allow(missing_docs, unused_variables, dead_code)]

mod sync;

use core::marker::PhantomData;

/// Error returned when a domain's reader table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError {
    pub capacity: usize,
}

/// A grace-period cookie (see `get_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GpState(u64);

pub struct Rcu {}

pub struct RcuReadGuard<'a> {
    _rcu: &'a Rcu,
    _not_send: PhantomData<*const ()>,
}

impl Rcu {
    pub fn new() -> Rcu { unimplemented!() }
    pub fn with_capacity(max_threads: usize) -> Rcu { unimplemented!() }
    pub fn global() -> &'static Rcu { unimplemented!() }
    pub fn capacity(&self) -> usize { unimplemented!() }
    pub fn register_current_thread(&self) -> Result<(), CapacityError> { unimplemented!() }
    pub fn read_lock(&self) -> RcuReadGuard<'_> { unimplemented!() }
    pub fn synchronize(&self) { unimplemented!() }
    pub fn get_state(&self) -> GpState { unimplemented!() }
    pub fn start_poll(&self) -> GpState { unimplemented!() }
    pub fn poll_state(&self, state: GpState) -> bool { unimplemented!() }
    pub fn advance(&self) -> bool { unimplemented!() }
    pub fn grace_periods(&self) -> u64 { unimplemented!() }
    pub fn uses_membarrier(&self) -> bool { unimplemented!() }
}

impl Default for Rcu {
    fn default() -> Self { Rcu::new() }
}

pub trait GracePeriod: Send + Sync + 'static {
    type State: Copy + Send + Sync + core::fmt::Debug + 'static;
    fn get_state(&self) -> Self::State;
    fn start_poll(&self) -> Self::State;
    fn poll_state(&self, state: Self::State) -> bool;
    fn advance(&self) -> bool;
    fn synchronize(&self);
    fn grace_periods(&self) -> u64;
}

impl GracePeriod for Rcu {
    type State = GpState;
    fn get_state(&self) -> GpState { Rcu::get_state(self) }
    fn start_poll(&self) -> GpState { Rcu::start_poll(self) }
    fn poll_state(&self, state: GpState) -> bool { Rcu::poll_state(self, state) }
    fn advance(&self) -> bool { Rcu::advance(self) }
    fn synchronize(&self) { Rcu::synchronize(self) }
    fn grace_periods(&self) -> u64 { Rcu::grace_periods(self) }
}
