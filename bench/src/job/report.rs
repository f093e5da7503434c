//! The tables on stdout: a header line naming the flood's parameters, the
//! allocator and the timer's cost, the flood table, then the latency table
//! if latencies were measured.

use super::args::Args;
use kvfree_rcu_bench::report::{self, Results};

/// Online CPUs (1 if unknown).
pub(crate) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn print(args: &Args, results: &Results) {
    println!(
        "Flood: {} object(s) x {} loop(s) per thread, 24-byte objects, {} CPU(s); median of runs; \
         retire latency sampled 1/{} calls (timer p50 {} ns included); allocator: {}; allocations counted: {}",
        results.objects,
        results.loops,
        results.cpus,
        args.sample_every,
        results.timer_ns.p50,
        results.allocator,
        if results.counting_allocator {
            "yes"
        } else {
            "NO (counting allocator missing)"
        },
    );
    print!("{}", report::flood_table(&results.flood));
    if !results.latency.is_empty() {
        println!(
            "\nRetire latency, one thread, {} calls back to back:",
            args.latency_calls
        );
        print!(
            "{}",
            report::latency_table(&results.latency, &results.timer_ns)
        );
    }
}
