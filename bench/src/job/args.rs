//! The command line (`--help` is generated from these doc comments).

use clap::Parser;
use kvfree_rcu_bench::schemes::SchemeKind;
use std::path::PathBuf;

/// Flood benchmark of kvfree-rcu against a naive call_rcu, crossbeam-epoch
/// and the floors (a thread-local push, a direct free).
#[derive(Parser, Debug)]
#[command(version, about)]
pub(crate) struct Args {
    /// Thread counts to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub(crate) threads: Vec<usize>,
    /// Objects each thread allocates and retires per loop (rcuscale's kfree_alloc_num).
    #[arg(long, default_value_t = 8000)]
    pub(crate) objects: usize,
    /// Loops per thread (rcuscale's kfree_loops).
    #[arg(long, default_value_t = 10)]
    pub(crate) loops: usize,
    /// Minimum measuring time per (scheme, threads) cell; runs repeat until it is spent.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) seconds: f64,
    /// Most runs per cell.
    #[arg(long, default_value_t = 50)]
    pub(crate) max_runs: usize,
    /// Schemes to run (comma-separated; default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    schemes: Vec<SchemeKind>,
    /// Time one retire call in this many during the flood.
    #[arg(long, default_value_t = 16)]
    pub(crate) sample_every: usize,
    /// Calls per latency measurement (0 skips the latency runs).
    #[arg(long, default_value_t = 200_000)]
    pub(crate) latency_calls: usize,
    /// Directory for flood.json and flood.svg.
    #[arg(long, default_value = "results")]
    pub(crate) out: PathBuf,
    /// No progress output.
    #[arg(long)]
    pub(crate) quiet: bool,
}

impl Args {
    /// The schemes to run: those named, or all.
    pub(crate) fn schemes(&self) -> Vec<SchemeKind> {
        if self.schemes.is_empty() {
            SchemeKind::all()
        } else {
            self.schemes.clone()
        }
    }
}
