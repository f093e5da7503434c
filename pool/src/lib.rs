//! STUB: API contract for the page pool. The helper replaces every body and
//! splits the crate into one concept per file; signatures here are the contract.
#![allow(missing_docs, unused_variables, dead_code)]

mod sync;

use core::ptr::NonNull;

pub const PAGE_SIZE: usize = 4096;
pub const RECORDS_PER_PAGE: usize = 502;
pub const CACHE_CAPACITY: usize = 16;

/// Opaque, pointer-sized record kind (the service stores a function pointer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind(NonNull<()>);
// SAFETY: STUB; a Kind is an opaque address the pool never dereferences.
unsafe impl Send for Kind {}
// SAFETY: as above.
unsafe impl Sync for Kind {}
impl Kind {
    pub const fn new(ptr: NonNull<()>) -> Kind { Kind(ptr) }
    pub const fn as_ptr(self) -> NonNull<()> { self.0 }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub low_watermark: usize,
    pub high_watermark: usize,
    /// Number of per-CPU slots; `None`: the possible-CPU count.
    pub slots: Option<usize>,
}
impl Default for Config {
    fn default() -> Self { Config { low_watermark: 5, high_watermark: CACHE_CAPACITY, slots: None } }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError { Watermarks { low: usize, high: usize, max: usize }, ZeroSlots }

/// `push` succeeded; `refill_wanted` is true when the caller should wake the refiller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pushed { pub refill_wanted: bool }

/// `push` failed at once: no page was available (every slot busy or its cache empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoPage;

/// A page allocation failed during `refill` (real or injected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub pages_allocated: u64,
    pub pages_freed: u64,
    pub pages_live: u64,
    pub pages_cached: u64,
    pub pages_in_flight: u64,
    pub records_pushed: u64,
    pub refill_requests: u64,
    pub no_page: u64,
    pub alloc_failures: u64,
}

/// Pages owned by the consumer (a singly linked list through page headers).
pub struct PageList {}
impl PageList {
    pub const fn new() -> PageList { PageList {} }
    pub fn is_empty(&self) -> bool { unimplemented!() }
    pub fn pages(&self) -> usize { unimplemented!() }
    pub fn records(&self) -> usize { unimplemented!() }
    pub fn append(&mut self, other: PageList) { unimplemented!() }
    /// Calls `f(ptr, kind)` for every record, page by page, in write order.
    pub fn for_each_record(&self, f: impl FnMut(NonNull<()>, Kind)) { unimplemented!() }
}
impl Default for PageList { fn default() -> Self { PageList::new() } }
// SAFETY: STUB.
unsafe impl Send for PageList {}

pub struct Pool {}
impl Pool {
    pub fn new(config: Config) -> Result<Pool, ConfigError> { unimplemented!() }
    pub fn slots(&self) -> usize { unimplemented!() }
    pub fn config(&self) -> &Config { unimplemented!() }
    pub fn push(&self, ptr: NonNull<()>, kind: Kind) -> Result<Pushed, NoPage> { unimplemented!() }
    pub fn take_sealed(&self) -> PageList { unimplemented!() }
    /// Returns the number of busy slots skipped (always 0 when `wait`).
    pub fn seal_open(&self, into: &mut PageList, wait: bool) -> usize { unimplemented!() }
    pub fn needs_refill(&self) -> bool { unimplemented!() }
    pub fn refill(&self) -> Result<usize, AllocError> { unimplemented!() }
    pub fn recycle(&self, pages: PageList) { unimplemented!() }
    pub fn shrink(&self) -> usize { unimplemented!() }
    pub fn inject_alloc_failures(&self, n: usize) { unimplemented!() }
    pub fn stats(&self) -> PoolStats { unimplemented!() }
}
impl Default for Pool { fn default() -> Self { Pool::new(Config::default()).unwrap() } }
