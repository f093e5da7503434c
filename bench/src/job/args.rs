//! The command line (`--help` is generated from these doc comments), and
//! the settings it resolves to: explicit options win, then `--quick`'s
//! presets, then the defaults.

use clap::Parser;
use kvfree_rcu_bench::flood::{LoopMarkers, SyscallCounting};
use kvfree_rcu_bench::schemes::SchemeKind;
use std::path::PathBuf;

/// Default thread counts.
const THREADS: [usize; 3] = [1, 2, 8];
/// `--quick` thread counts.
const QUICK_THREADS: [usize; 2] = [1, 2];
/// Default objects per thread per loop (the rcuscale-grade flood).
const OBJECTS: usize = 2_000_000;
/// `--quick` objects per thread per loop.
const QUICK_OBJECTS: usize = 100_000;
/// Default runs per configuration.
const RUNS: usize = 3;
/// `--quick` runs per configuration.
const QUICK_RUNS: usize = 1;
/// Default calls per back-to-back latency measurement.
const LATENCY_CALLS: usize = 200_000;
/// `--quick` calls per back-to-back latency measurement.
const QUICK_LATENCY_CALLS: usize = 5_000;

/// The flood of kvfree-rcu against crossbeam-epoch, a naive call_rcu,
/// liburcu (feature `liburcu`) and a direct free: each of T threads
/// allocates a 24-byte object and retires it, N times, and the clock runs
/// to the last free. Each (scheme, threads) configuration runs in a fresh
/// process, so its peak RSS is its own.
#[derive(Parser, Debug)]
#[command(version, about)]
pub(crate) struct Args {
    /// Thread counts to run, comma-separated [default: 1,2,8; --quick: 1,2].
    #[arg(long, value_delimiter = ',', value_parser = at_least_one())]
    threads: Vec<usize>,
    /// Objects each thread allocates and retires per loop (rcuscale's
    /// kfree_alloc_num) [default: 2000000; --quick: 100000].
    #[arg(long, value_parser = at_least_one())]
    objects: Option<usize>,
    /// Loops per thread (rcuscale's kfree_loops).
    #[arg(long, default_value_t = 1, value_parser = at_least_one())]
    loops: usize,
    /// Runs per configuration, each in a fresh process, interleaved; the
    /// table shows the median end-to-end time [default: 3; --quick: 1].
    #[arg(long, value_parser = at_least_one())]
    runs: Option<usize>,
    /// Schemes to run, comma-separated [default: all but floor; the nice
    /// schemes only where the system grants their nice value].
    #[arg(long, value_delimiter = ',', value_enum)]
    pub(crate) schemes: Vec<SchemeKind>,
    /// Time about one retire call in this many (0: none).
    #[arg(long, default_value_t = 64)]
    sample_every: usize,
    /// Count the retiring threads' syscalls with a perf counter ("n/a" in
    /// the table when the system does not allow it).
    #[arg(long, value_enum, default_value = "perf")]
    syscalls: SyscallCounting,
    /// Calls per back-to-back retire latency measurement, worker running
    /// and stalled (0 skips that table) [default: 200000; --quick: 5000].
    #[arg(long)]
    latency_calls: Option<usize>,
    /// Small sizes for CI (threads 1,2; 100000 objects; 1 run; 5000 latency
    /// calls); explicit options still win.
    #[arg(long)]
    quick: bool,
    /// Directory for flood.json and flood.svg.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
    /// Run one configuration (this scheme, the one --threads value) in this
    /// process and print its result as one JSON line: what the job runs in
    /// each child process, and what bench/syscalls.sh traces.
    #[arg(long, value_enum, value_name = "SCHEME", hide = true)]
    pub(crate) one: Option<SchemeKind>,
    /// With --one: each retiring thread writes "flood-loop-start tid=N" and
    /// "flood-loop-end tid=N" to stderr around its loop.
    #[arg(long, hide = true)]
    mark_loop: bool,
}

/// Counts that must be at least 1 (clap names the option and the value
/// when one is not).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// What the job runs, resolved from [`Args`].
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) threads: Vec<usize>,
    pub(crate) objects: usize,
    pub(crate) loops: usize,
    pub(crate) runs: usize,
    pub(crate) schemes: Vec<SchemeKind>,
    pub(crate) sample_every: usize,
    pub(crate) syscalls: SyscallCounting,
    pub(crate) latency_calls: usize,
    pub(crate) loop_markers: LoopMarkers,
    pub(crate) out: PathBuf,
    pub(crate) quiet: bool,
}

impl Args {
    /// Explicit options, then `--quick`'s presets, then the defaults.
    pub(crate) fn settings(&self) -> Settings {
        let pick = |explicit: Option<usize>, quick: usize, default: usize| {
            explicit.unwrap_or(if self.quick { quick } else { default })
        };
        let threads = if !self.threads.is_empty() {
            self.threads.clone()
        } else if self.quick {
            QUICK_THREADS.to_vec()
        } else {
            THREADS.to_vec()
        };
        Settings {
            threads,
            objects: pick(self.objects, QUICK_OBJECTS, OBJECTS),
            loops: self.loops,
            runs: pick(self.runs, QUICK_RUNS, RUNS),
            schemes: if self.one.is_some() {
                // A child runs the one scheme it is given; the default set
                // would only cost it the probes of `unavailable`.
                Vec::new()
            } else if self.schemes.is_empty() {
                SchemeKind::default_set()
            } else {
                self.schemes.clone()
            },
            sample_every: self.sample_every,
            syscalls: self.syscalls,
            latency_calls: pick(self.latency_calls, QUICK_LATENCY_CALLS, LATENCY_CALLS),
            loop_markers: if self.mark_loop {
                LoopMarkers::Stderr
            } else {
                LoopMarkers::Off
            },
            out: self.out.clone(),
            quiet: self.quiet,
        }
    }
}
