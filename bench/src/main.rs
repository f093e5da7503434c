//! The main job: the flood for every scheme, one table, JSON and an SVG.
//!
//! `cargo run --release -- --help` lists the knobs. For each scheme and
//! thread count it runs the rcuscale-style flood repeatedly for at least
//! `--seconds` (and at least once), reports the median run, then measures
//! per-call retire latency with the worker running and stalled. Progress goes
//! to stderr (a bar on a terminal, plain lines otherwise); the tables go to
//! stdout; `results/flood.json` and `results/flood.svg` are written and named.
//! The steps live in `job/`.

use clap::Parser;
use kvfree_rcu_bench::alloc_count::CountingAlloc;

mod job;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    job::run(&job::Args::parse());
}
