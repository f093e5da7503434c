//! Results as a text table, JSON and an SVG chart.
//!
//! One [`FloodRow`] per (scheme, thread count): the median flood run's
//! throughput (objects retired per second, to the last free), its ratio
//! against the naive `call_rcu` at the same thread count, sampled retire-call
//! percentiles, allocations per retire, peak deferred memory and grace
//! periods. The latency rows hold the per-call percentiles with the worker
//! running and stalled.

use crate::latency::Percentiles;
use plotters::prelude::*;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

/// One cell of the flood table.
#[derive(Clone, Debug, Serialize)]
pub struct FloodRow {
    /// Scheme name.
    pub scheme: String,
    /// Retiring threads.
    pub threads: usize,
    /// Runs measured (the median is reported).
    pub runs: usize,
    /// Median time from start to last free, milliseconds.
    pub median_ms: f64,
    /// Objects retired (and freed) per second in the median run, millions.
    pub mobj_per_sec: f64,
    /// Throughput divided by the naive call_rcu's at the same thread count.
    pub vs_call_rcu: Option<f64>,
    /// Sampled retire-call latency (all runs), nanoseconds.
    pub retire_ns: Percentiles,
    /// Allocations made inside retire calls, per call (all runs).
    pub allocs_per_retire: f64,
    /// Largest peak of live heap bytes above the run's start (all runs).
    pub peak_deferred_bytes: u64,
    /// Grace periods (epochs) used by the median run, if the scheme counts them.
    pub grace_periods: Option<u64>,
    /// Share of retire calls (all runs) that missed the fast path, if the scheme has one.
    pub fallback_share: Option<f64>,
}

/// One latency measurement.
#[derive(Clone, Debug, Serialize)]
pub struct LatencyRow {
    /// Scheme name.
    pub scheme: String,
    /// "running" or "stalled".
    pub worker: &'static str,
    /// Per-call latency, nanoseconds (timer cost included).
    pub latency: Percentiles,
    /// Allocations inside the timed calls, per call.
    pub allocs_per_retire: f64,
    /// Share of the timed calls that missed the fast path, if the scheme has one.
    pub fallback_share: Option<f64>,
}

/// Everything one run of the main job measured.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// Online CPUs.
    pub cpus: usize,
    /// The command line.
    pub command: String,
    /// Objects per thread per loop.
    pub objects: usize,
    /// Loops per thread.
    pub loops: usize,
    /// The allocator under the counting one: "system" or "mimalloc".
    pub allocator: &'static str,
    /// Whether the counting allocator was installed (allocation columns are meaningful).
    pub counting_allocator: bool,
    /// The flood table.
    pub flood: Vec<FloodRow>,
    /// The latency table.
    pub latency: Vec<LatencyRow>,
    /// Cost of the two timer reads around each timed call.
    pub timer_ns: Percentiles,
}

fn percent(share: Option<f64>) -> String {
    share.map_or("-".into(), |s| format!("{:.1}%", s * 100.0))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The flood table, as aligned text.
pub fn flood_table(rows: &[FloodRow]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>3} {:>9} {:>8} {:>8} {:>7} {:>7} {:>9} {:>8} {:>9} {:>6} {:>9}",
        "scheme",
        "thr",
        "Mobj/s",
        "vs call",
        "ms",
        "p50 ns",
        "p99 ns",
        "max ns",
        "alloc/op",
        "peak MiB",
        "GPs",
        "fallback"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "{:<22} {:>3} {:>9.2} {:>8} {:>8.1} {:>7} {:>7} {:>9} {:>8.3} {:>9.2} {:>6} {:>9}",
            r.scheme,
            r.threads,
            r.mobj_per_sec,
            r.vs_call_rcu.map_or("-".into(), |v| format!("{v:.2}x")),
            r.median_ms,
            r.retire_ns.p50,
            r.retire_ns.p99,
            r.retire_ns.max,
            r.allocs_per_retire,
            mib(r.peak_deferred_bytes),
            r.grace_periods.map_or("-".into(), |g| g.to_string()),
            percent(r.fallback_share),
        );
    }
    out
}

/// The latency table, as aligned text.
pub fn latency_table(rows: &[LatencyRow], timer: &Percentiles) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>8} {:>9}",
        "scheme",
        "worker",
        "calls",
        "p50 ns",
        "p99 ns",
        "p99.99 ns",
        "max ns",
        "alloc/op",
        "fallback"
    );
    let mut line =
        |name: &str, worker: &str, p: &Percentiles, allocs: f64, fallback: Option<f64>| {
            let _ = writeln!(
                out,
                "{:<22} {:>8} {:>8} {:>7} {:>7} {:>9} {:>9} {:>8.3} {:>9}",
                name,
                worker,
                p.count,
                p.p50,
                p.p99,
                p.p9999,
                p.max,
                allocs,
                percent(fallback)
            );
        };
    line("(timer alone)", "-", timer, 0.0, None);
    for r in rows {
        line(
            &r.scheme,
            r.worker,
            &r.latency,
            r.allocs_per_retire,
            r.fallback_share,
        );
    }
    out
}

/// Writes `results` as pretty JSON.
pub fn write_json(path: &Path, results: &Results) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(results).map_err(std::io::Error::other)?;
    std::fs::write(path, json + "\n")
}

/// Writes a grouped bar chart of flood throughput: one group per thread
/// count, one bar per scheme.
pub fn write_svg(path: &Path, rows: &[FloodRow]) -> Result<(), Box<dyn std::error::Error>> {
    let mut threads: Vec<usize> = rows.iter().map(|r| r.threads).collect();
    threads.sort_unstable();
    threads.dedup();
    let mut schemes: Vec<&str> = Vec::new();
    for r in rows {
        if !schemes.contains(&r.scheme.as_str()) {
            schemes.push(&r.scheme);
        }
    }
    let top = rows
        .iter()
        .map(|r| r.mobj_per_sec)
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.15;
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Flood: objects retired and freed per second (to the last free), {} allocator",
                crate::alloc_count::ALLOCATOR
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5f64..threads.len() as f64 - 0.5, 0f64..top)?;
    let labels = threads.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(threads.len() * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
                format!("{} thread(s)", labels[i as usize])
            } else {
                String::new()
            }
        })
        .y_desc("million objects / s")
        .draw()?;
    let width = 0.8 / schemes.len() as f64;
    for (k, scheme) in schemes.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        let bars: Vec<_> = rows
            .iter()
            .filter(|r| r.scheme == *scheme)
            .filter_map(|r| {
                let g = threads.iter().position(|&t| t == r.threads)? as f64;
                let x0 = g - 0.4 + k as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.9, r.mobj_per_sec)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(*scheme)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .draw()?;
    root.present()?;
    Ok(())
}
