//! # kvfree-rcu-bench
//!
//! The schemes compared by the main job (`cargo run --release`) and the
//! criterion benches (`cargo bench`), and the scenarios that run them:
//!
//! - [`schemes`]: kvfree-rcu headed and head-less, a naive `call_rcu`,
//!   crossbeam-epoch, optionally liburcu, and the two references (a
//!   thread-local push, a direct free), behind one [`schemes::Scheme`] trait;
//! - [`flood`]: the kernel's rcuscale `kfree_rcu` flood;
//! - [`latency`]: per-call retire latency percentiles;
//! - [`parallel`]: the timed parallel retire loop of the `retire` bench;
//! - [`timer`]: the calibrated cheap clock (rdtsc on x86_64) that times
//!   sampled calls;
//! - [`syscall_count`]: a per-thread perf counter of syscalls (Linux);
//! - [`peak_rss`]: the process's peak RSS;
//! - [`alloc_count`]: the counting global allocator (allocations inside the
//!   retire call, live heap bytes);
//! - [`report`]: the tables and the JSON; [`chart`]: the SVG chart.
//!
//! See `docs/BENCHMARKS.md` for numbers and how to reproduce them.

pub mod alloc_count;
pub mod chart;
pub mod flood;
pub mod latency;
pub mod object;
pub mod parallel;
pub mod peak_rss;
pub mod report;
pub mod schemes;
pub mod syscall_count;
pub mod timer;
