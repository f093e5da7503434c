//! # kvfree-rcu-bench
//!
//! The schemes compared by the main job (`cargo run --release`) and the
//! criterion benches (`cargo bench`), and the scenarios that run them:
//!
//! - [`schemes`]: kvfree-rcu headed and head-less, a naive `call_rcu`,
//!   crossbeam-epoch, optionally liburcu, and the two floors (a
//!   thread-local push, a direct free), behind one [`schemes::Scheme`] trait;
//! - [`flood`]: the kernel's rcuscale `kfree_rcu` flood;
//! - [`latency`]: per-call retire latency percentiles;
//! - [`parallel`]: the timed parallel retire loop of the `retire` bench;
//! - [`alloc_count`]: the counting global allocator (allocations inside the
//!   retire call, live heap bytes);
//! - [`report`]: the table, the JSON and the SVG chart.
//!
//! See `docs/BENCHMARKS.md` for numbers and how to reproduce them.

pub mod alloc_count;
pub mod flood;
pub mod latency;
pub mod object;
pub mod parallel;
pub mod report;
pub mod schemes;
