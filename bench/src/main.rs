//! The main job: the flood for every scheme, one table, JSON and an SVG.
//!
//! `cargo run --release -- --help` lists the knobs. For each scheme and
//! thread count it runs the rcuscale-style flood repeatedly for at least
//! `--seconds` (and at least once), reports the median run, then measures
//! per-call retire latency with the worker running and stalled. Progress goes
//! to stderr (a bar on a terminal, plain lines otherwise); the tables go to
//! stdout; `results/flood.json` and `results/flood.svg` are written and named.

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use kvfree_rcu_bench::alloc_count::{self, CountingAlloc};
use kvfree_rcu_bench::flood::{FloodConfig, FloodRun, run_flood};
use kvfree_rcu_bench::latency::{Percentiles, measure_latency, timer_overhead};
use kvfree_rcu_bench::report::{self, FloodRow, LatencyRow, Results};
use kvfree_rcu_bench::schemes::SchemeKind;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Flood benchmark of kvfree-rcu against a naive call_rcu, crossbeam-epoch
/// and the floors (a thread-local push, a direct free).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Thread counts to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    threads: Vec<usize>,
    /// Objects each thread allocates and retires per loop (rcuscale's kfree_alloc_num).
    #[arg(long, default_value_t = 8000)]
    objects: usize,
    /// Loops per thread (rcuscale's kfree_loops).
    #[arg(long, default_value_t = 10)]
    loops: usize,
    /// Minimum measuring time per (scheme, threads) cell; runs repeat until it is spent.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Most runs per cell.
    #[arg(long, default_value_t = 50)]
    max_runs: usize,
    /// Schemes to run (comma-separated; default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    schemes: Vec<SchemeKind>,
    /// Time one retire call in this many during the flood.
    #[arg(long, default_value_t = 16)]
    sample_every: usize,
    /// Calls per latency measurement (0 skips the latency runs).
    #[arg(long, default_value_t = 200_000)]
    latency_calls: usize,
    /// Directory for flood.json and flood.svg.
    #[arg(long, default_value = "results")]
    out: PathBuf,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

/// Progress on stderr: a bar on a terminal, a line per step otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    fn new(steps: u64, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(steps);
            bar.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        Progress { bar, quiet }
    }

    fn step(&self, msg: String) {
        match &self.bar {
            Some(bar) => bar.set_message(msg),
            None if !self.quiet => eprintln!("  {msg}"),
            None => {}
        }
    }

    fn done_one(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn flood_cell(kind: SchemeKind, cfg: &FloodConfig, args: &Args) -> FloodRow {
    let scheme = kind.build();
    let budget = Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut runs: Vec<FloodRun> = Vec::new();
    while runs.is_empty() || (started.elapsed() < budget && runs.len() < args.max_runs.max(1)) {
        runs.push(run_flood(&*scheme, cfg));
    }
    let mut latencies: Vec<u64> = runs
        .iter_mut()
        .flat_map(|r| std::mem::take(&mut r.latencies_ns))
        .collect();
    let allocs: u64 = runs.iter().map(|r| r.allocs_in_retire).sum();
    let retired: u64 = runs.iter().map(|r| r.retired).sum();
    let fallbacks: Option<u64> = runs.iter().map(|r| r.fallbacks).sum();
    let peak = runs.iter().map(|r| r.peak_bytes).max().unwrap_or(0);
    runs.sort_by_key(|r| r.elapsed);
    let median = &runs[runs.len() / 2];
    FloodRow {
        scheme: scheme.name().to_owned(),
        threads: cfg.threads,
        runs: runs.len(),
        median_ms: median.elapsed.as_secs_f64() * 1e3,
        mobj_per_sec: median.retired as f64 / median.elapsed.as_secs_f64() / 1e6,
        vs_call_rcu: None,
        retire_ns: Percentiles::of(&mut latencies),
        allocs_per_retire: allocs as f64 / retired.max(1) as f64,
        peak_deferred_bytes: peak,
        grace_periods: median.grace_periods,
        fallback_share: fallbacks.map(|f| f as f64 / retired.max(1) as f64),
    }
}

fn main() {
    let args = Args::parse();
    let schemes = if args.schemes.is_empty() {
        SchemeKind::all()
    } else {
        args.schemes.clone()
    };
    let counting = alloc_count::is_installed();
    let latency_steps = if args.latency_calls > 0 {
        schemes.len() * 2
    } else {
        0
    };
    let progress = Progress::new(
        (schemes.len() * args.threads.len() + latency_steps) as u64,
        args.quiet,
    );
    let started = Instant::now();

    let mut flood = Vec::new();
    for &threads in &args.threads {
        let cfg = FloodConfig {
            threads,
            objects: args.objects,
            loops: args.loops,
            sample_every: args.sample_every,
        };
        for &kind in &schemes {
            progress.step(format!("flood: {kind:?}, {threads} thread(s)"));
            flood.push(flood_cell(kind, &cfg, &args));
            progress.done_one();
        }
    }
    let call_rcu_name = SchemeKind::CallRcu.build().name();
    for i in 0..flood.len() {
        let base = flood
            .iter()
            .find(|r| r.scheme == call_rcu_name && r.threads == flood[i].threads);
        flood[i].vs_call_rcu = base.map(|b| flood[i].mobj_per_sec / b.mobj_per_sec);
    }

    let mut latency = Vec::new();
    let timer_ns = timer_overhead(args.latency_calls.max(1));
    if args.latency_calls > 0 {
        for &kind in &schemes {
            for (stalled, worker) in [(false, "running"), (true, "stalled")] {
                progress.step(format!("latency: {kind:?}, worker {worker}"));
                let scheme = kind.build();
                if let Some(run) = measure_latency(&*scheme, args.latency_calls, stalled) {
                    latency.push(LatencyRow {
                        scheme: scheme.name().to_owned(),
                        worker,
                        latency: run.latency,
                        allocs_per_retire: run.allocs_in_retire as f64 / args.latency_calls as f64,
                        fallback_share: run.fallbacks.map(|f| f as f64 / args.latency_calls as f64),
                    });
                }
                progress.done_one();
            }
        }
    }
    progress.finish();

    println!(
        "Flood: {} object(s) x {} loop(s) per thread, 24-byte objects, {} CPU(s); median of runs; \
         retire latency sampled 1/{} calls (timer p50 {} ns included); allocator: {}; allocations counted: {}",
        args.objects,
        args.loops,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        args.sample_every,
        timer_ns.p50,
        alloc_count::ALLOCATOR,
        if counting {
            "yes"
        } else {
            "NO (counting allocator missing)"
        },
    );
    print!("{}", report::flood_table(&flood));
    if !latency.is_empty() {
        println!(
            "\nRetire latency, one thread, {} calls back to back:",
            args.latency_calls
        );
        print!("{}", report::latency_table(&latency, &timer_ns));
    }

    let results = Results {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        objects: args.objects,
        loops: args.loops,
        allocator: alloc_count::ALLOCATOR,
        counting_allocator: counting,
        flood,
        latency,
        timer_ns,
    };
    if let Err(e) = std::fs::create_dir_all(&args.out) {
        eprintln!("cannot create {}: {e}", args.out.display());
        std::process::exit(1);
    }
    let json = args.out.join("flood.json");
    let svg = args.out.join("flood.svg");
    match report::write_json(&json, &results) {
        Ok(()) => println!("\nwrote {}", json.display()),
        Err(e) => eprintln!("cannot write {}: {e}", json.display()),
    }
    match report::write_svg(&svg, &results.flood) {
        Ok(()) => println!("wrote {}", svg.display()),
        Err(e) => eprintln!("cannot write {}: {e}", svg.display()),
    }
    println!("finished in {:.1} s", started.elapsed().as_secs_f64());
}
