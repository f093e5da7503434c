//! The main job, step by step: the flood grid (`floods`, each run in a
//! child process that `child` runs), the latency runs (`latencies`), the
//! tables on stdout (`report`), then `flood.json` and `flood.svg`
//! (`output`). `args` is the command line, `progress` the progress display
//! on stderr.

mod args;
mod child;
mod floods;
mod latencies;
mod output;
mod progress;
mod report;

pub(crate) use args::Args;

use kvfree_rcu_bench::alloc_count;
use kvfree_rcu_bench::flood::SyscallCounting;
use kvfree_rcu_bench::report::{Results, TimerReport};
use kvfree_rcu_bench::syscall_count::{
    MEMORY_SYSCALLS, SyscallCounter, SyscallCounts, tracepoints,
};
use kvfree_rcu_bench::timer::Timer;
use progress::Progress;
use std::time::Instant;

/// Timer-cost samples taken for the report.
const TIMER_SAMPLES: usize = 200_000;

/// Runs the job (or, with `--one`, one configuration); exits with status 1
/// if a flood run failed or the output directory cannot be created.
pub(crate) fn run(args: &Args) {
    let settings = args.settings();
    if let Some(kind) = args.one {
        child::run(kind, &settings);
        return;
    }
    if args.schemes.is_empty() {
        // The default set leaves out what this system cannot run: say so.
        for kind in kvfree_rcu_bench::schemes::SchemeKind::all() {
            if let Some(why) = kind.unavailable() {
                eprintln!("{} is not in the table: {why}", kind.cli_name());
            }
        }
    }
    let started = Instant::now();
    let counting = alloc_count::is_installed();
    let timer = Timer::get();
    let timer = TimerReport {
        kind: timer.describe(),
        overhead_ns: timer.overhead(TIMER_SAMPLES),
        resolution_ns: timer.resolution_ns(TIMER_SAMPLES),
    };
    // Held open through the grid, so the tracepoints stay registered and
    // each child's counters open and close in microseconds instead of
    // registering them anew (tens of milliseconds, untimed but slow).
    let (syscall_counter, keeper) = open_syscall_counter(settings.syscalls);
    let progress = Progress::new(
        (floods::steps(&settings) + latencies::steps(&settings)) as u64,
        settings.quiet,
    );
    let grid = floods::run(&settings, &progress);
    drop(keeper);
    let latency = latencies::run(&settings, &progress);
    progress.finish();
    let results = Results {
        cpus: report::cpus(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        objects: settings.objects,
        loops: settings.loops,
        runs: settings.runs,
        sample_every: settings.sample_every,
        allocator: alloc_count::ALLOCATOR,
        counting_allocator: counting,
        syscall_counter,
        timer,
        flood: grid.rows,
        latency,
        wall_seconds: started.elapsed().as_secs_f64(),
    };
    report::print(&settings, &results);
    output::write(&settings.out, &results);
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
    if grid.failed > 0 {
        eprintln!("{} flood run(s) failed (see above)", grid.failed);
        std::process::exit(1);
    }
}

/// How the syscall columns are measured, or why they say "n/a", and an
/// open counter when they are (each child opens its own).
fn open_syscall_counter(mode: SyscallCounting) -> (String, Option<SyscallCounter>) {
    let counter = match mode {
        SyscallCounting::Perf => SyscallCounter::open(tracepoints().as_ref()),
        SyscallCounting::Off => None,
    };
    let counts = counter.as_ref().and_then(SyscallCounter::read);
    (describe_syscall_counter(mode, counts), counter)
}

/// How the syscall columns are measured, or why they say "n/a"; `counts`
/// is a read of the parent's own counter, if it could open one.
fn describe_syscall_counter(mode: SyscallCounting, counts: Option<SyscallCounts>) -> String {
    match mode {
        SyscallCounting::Off => "off (--syscalls off)".to_owned(),
        SyscallCounting::Perf => match tracepoints() {
            None => "n/a: no raw_syscalls:sys_enter tracepoint in tracefs \
                     (/sys/kernel/tracing or /sys/kernel/debug/tracing)"
                .to_owned(),
            Some(_) => match counts {
                Some(counts) => format!(
                    "perf counters on raw_syscalls:sys_enter in each retiring thread, over its \
                     whole alloc + retire loop; mm/1M = those among them that are {}{}",
                    MEMORY_SYSCALLS.join("/"),
                    if counts.memory.is_some() {
                        ""
                    } else {
                        " (n/a: no syscalls:sys_enter_* tracepoints)"
                    }
                ),
                None => "n/a: perf_event_open refused (needs root or a lower \
                         kernel.perf_event_paranoid)"
                    .to_owned(),
            },
        },
    }
}
