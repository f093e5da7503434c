//! The main job, step by step: the flood grid (`floods`), the latency runs
//! (`latencies`), the tables on stdout (`report`), then `flood.json` and
//! `flood.svg` (`output`). `args` is the command line, `progress` the
//! progress display on stderr.

mod args;
mod floods;
mod latencies;
mod output;
mod progress;
mod report;

pub(crate) use args::Args;

use kvfree_rcu_bench::alloc_count;
use kvfree_rcu_bench::latency::timer_overhead;
use kvfree_rcu_bench::report::Results;
use progress::Progress;
use std::time::Instant;

/// Runs every step; exits with status 1 if the output directory cannot be
/// created.
pub(crate) fn run(args: &Args) {
    let schemes = args.schemes();
    let counting = alloc_count::is_installed();
    let progress = Progress::new(
        (floods::steps(args, &schemes) + latencies::steps(args, &schemes)) as u64,
        args.quiet,
    );
    let started = Instant::now();
    let flood = floods::run(args, &schemes, &progress);
    let timer_ns = timer_overhead(args.latency_calls.max(1));
    let latency = latencies::run(args, &schemes, &progress);
    progress.finish();
    let results = Results {
        cpus: report::cpus(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        objects: args.objects,
        loops: args.loops,
        allocator: alloc_count::ALLOCATOR,
        counting_allocator: counting,
        flood,
        latency,
        timer_ns,
    };
    report::print(args, &results);
    output::write(&args.out, &results);
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
}
