//! The main job: the rcuscale-grade flood for every scheme, one table, JSON
//! and an SVG.
//!
//! `cargo run --release -- --help` lists the knobs. For each thread count
//! and scheme it runs the flood (2M objects per thread by default) `--runs`
//! times, each run in a fresh child process of this executable (`--one`),
//! and reports the median end-to-end time, the sampled retire-call
//! percentiles, the retiring threads' syscalls, the fast-path miss share,
//! allocations per retire and peak RSS; then it measures per-call retire
//! latency back to back with the worker running and stalled. Progress goes
//! to stderr (a bar on a terminal, plain lines otherwise); the tables go to
//! stdout; `results/flood.json` and `results/flood.svg` are written and
//! named. The steps live in `job/`.

use clap::Parser;
use kvfree_rcu_bench::alloc_count::CountingAlloc;

mod job;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    job::run(&job::Args::parse());
}
