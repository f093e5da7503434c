//! One configuration in this process (`--one SCHEME --threads N ...`): the
//! flood once, then one line of JSON ([`ConfigRun`]) on stdout. The parent
//! (`floods.rs`) runs each configuration this way, in a fresh process of
//! the same executable, so the peak RSS read at the end is this
//! configuration's alone; `bench/syscalls.sh` runs it under strace.

use super::args::Settings;
use kvfree_rcu_bench::flood::{FloodConfig, FloodRun, HeapPeak, run_flood};
use kvfree_rcu_bench::peak_rss::peak_rss_bytes;
use kvfree_rcu_bench::schemes::{Scheme, SchemeKind, SchemeVisitor};
use kvfree_rcu_bench::timer::Timer;

/// What one child process reports.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ConfigRun {
    /// Scheme name.
    pub(crate) scheme: String,
    /// Retiring threads.
    pub(crate) threads: usize,
    /// The timer that timed the samples.
    pub(crate) timer: String,
    /// The process's peak RSS (VmHWM), bytes, if known.
    pub(crate) peak_rss_bytes: Option<u64>,
    /// The flood's measurements.
    pub(crate) run: FloodRun,
}

struct OneFlood {
    cfg: FloodConfig,
    result: Option<(String, FloodRun)>,
}

impl SchemeVisitor for OneFlood {
    fn visit<S: Scheme>(&mut self, scheme: &S) {
        let run = run_flood(scheme, &self.cfg);
        self.result = Some((scheme.name().to_owned(), run));
    }
}

/// Runs `kind` at the one thread count in `settings`, prints the result;
/// exits with status 2 when `--threads` does not name exactly one count.
pub(crate) fn run(kind: SchemeKind, settings: &Settings) {
    let [threads] = settings.threads[..] else {
        eprintln!(
            "--one runs one configuration: give exactly one --threads value (got {:?})",
            settings.threads
        );
        std::process::exit(2);
    };
    // Calibrated before the flood, not inside it.
    let timer = Timer::get();
    let mut flood = OneFlood {
        cfg: FloodConfig {
            threads,
            objects: settings.objects,
            loops: settings.loops,
            sample_every: settings.sample_every,
            syscalls: settings.syscalls,
            heap_peak: HeapPeak::NotSampled,
            loop_markers: settings.loop_markers,
        },
        result: None,
    };
    // The scheme is built, run and dropped (its worker stopped) inside.
    kind.visit(&mut flood);
    let (scheme, run) = flood.result.expect("the visitor ran the flood");
    let result = ConfigRun {
        scheme,
        threads,
        timer: timer.describe(),
        peak_rss_bytes: peak_rss_bytes(),
        run,
    };
    println!(
        "{}",
        serde_json::to_string(&result).expect("a ConfigRun serialises")
    );
}
