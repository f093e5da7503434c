//! The tables on stdout: header lines naming the flood's parameters, the
//! allocator, how runs are summarised, the timer and its cost, and how
//! syscalls are counted; the flood table; then the latency table if
//! latencies were measured.

use super::args::Settings;
use kvfree_rcu_bench::report::{self, Results};

/// Online CPUs (1 if unknown).
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn print(settings: &Settings, results: &Results) {
    let overhead = &results.timer.overhead_ns;
    println!(
        "Flood: {} object(s) x {} loop(s) per thread, 24-byte objects, {} CPU(s), allocator: {}{}.",
        results.objects,
        results.loops,
        results.cpus,
        results.allocator,
        if results.counting_allocator {
            ""
        } else {
            " (counting allocator missing: alloc/op reads 0)"
        },
    );
    println!(
        "Each configuration ran {} time(s), each in a fresh process: e2e ns/op = the median run's \
         time from start to last free / objects; latency over all runs' samples; RSS = largest VmHWM.",
        results.runs
    );
    if results.sample_every > 0 {
        println!(
            "Retire latency (ns): about 1 call in {} timed with {}, which moves in steps of \
             {:.1} ns; its own cost, p50 {} ns, p99 {} ns, is included in every figure.",
            results.sample_every,
            results.timer.kind,
            results.timer.resolution_ns,
            overhead.p50,
            overhead.p99
        );
    }
    println!(
        "Syscalls per million retires on the retiring threads (sysc/1M): {}.",
        results.syscall_counter
    );
    print!("{}", report::flood_table(&results.flood));
    if !results.latency.is_empty() {
        println!(
            "\nRetire latency (ns), one thread, {} calls back to back, each timed with {}:",
            settings.latency_calls, results.timer.kind
        );
        print!(
            "{}",
            report::latency_table(&results.latency, &results.timer.overhead_ns)
        );
    }
}
