//! The flood chart (`flood.svg`): two panels, both in nanoseconds per
//! object, lower is better, on a log scale (naive call_rcu can be ten times
//! its peers and a tail a thousand times the median, and the peers must
//! still be told apart):
//! - top: end-to-end cost, start to the last free, per object;
//! - bottom: the retire call's p99.99 (timer cost included).
//!
//! One group per thread count, one bar per compared scheme, each labelled
//! with its value; the axis ticks are 1, 2 and 5 times powers of ten; one
//! legend row above both panels. The reference schemes (direct free, and the floor when
//! it ran) are not bars but dashed horizontal lines across each group: what
//! allocating and freeing costs with no deferral at all.

use crate::report::FloodRow;
use crate::schemes::SchemeKind;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// The chart's size in pixels.
pub const SIZE: (u32, u32) = (1100, 900);

/// Each scheme's colour, fixed whatever else ran (colour-blind-safe
/// "tab10" hues for the bars; black and grey for the reference lines).
fn colour_of(kind: SchemeKind) -> RGBColor {
    match kind {
        SchemeKind::KvfreeHeaded => RGBColor(0x1f, 0x77, 0xb4),
        SchemeKind::KvfreeHeadedAffine => RGBColor(0x17, 0xbe, 0xcf),
        SchemeKind::KvfreeHeadedNice => RGBColor(0xe3, 0x77, 0xc2),
        SchemeKind::KvfreeHeadedAffineNice => RGBColor(0xd6, 0x27, 0x28),
        SchemeKind::KvfreeLocal => RGBColor(0xbc, 0xbd, 0x22),
        SchemeKind::KvfreeLocalReclaim => RGBColor(0x8c, 0x56, 0x4b),
        SchemeKind::KvfreeHeadless => RGBColor(0x6b, 0xae, 0xd6),
        SchemeKind::CallRcu => RGBColor(0xff, 0x7f, 0x0e),
        SchemeKind::CrossbeamEpoch => RGBColor(0x2c, 0xa0, 0x2c),
        #[cfg(feature = "liburcu")]
        SchemeKind::Liburcu => RGBColor(0x94, 0x67, 0xbd),
        SchemeKind::Floor => RGBColor(0x7f, 0x7f, 0x7f),
        SchemeKind::Direct => RGBColor(0, 0, 0),
    }
}

/// A value in nanoseconds, short: "68", "1.4 µs", "12 ms".
fn short_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0}")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

/// What one panel plots.
struct Panel<'a> {
    title: String,
    y_desc: &'static str,
    value: &'a dyn Fn(&FloodRow) -> f64,
}

/// The rows' thread counts (ascending) and scheme names (first-seen order),
/// compared schemes and references apart.
struct Layout<'a> {
    threads: Vec<usize>,
    bars: Vec<(&'a str, RGBColor)>,
    references: Vec<(&'a str, RGBColor)>,
}

impl<'a> Layout<'a> {
    fn of(rows: &'a [FloodRow]) -> Layout<'a> {
        let mut threads: Vec<usize> = rows.iter().map(|r| r.threads).collect();
        threads.sort_unstable();
        threads.dedup();
        let mut layout = Layout {
            threads,
            bars: Vec::new(),
            references: Vec::new(),
        };
        for r in rows {
            let list = if r.reference {
                &mut layout.references
            } else {
                &mut layout.bars
            };
            if !list.iter().any(|(name, _)| *name == r.scheme) {
                list.push((&r.scheme, colour_of(r.kind)));
            }
        }
        layout
    }

    fn group(&self, threads: usize) -> Option<f64> {
        self.threads
            .iter()
            .position(|&t| t == threads)
            .map(|g| g as f64)
    }
}

/// The log axis range: from a power of ten below the smallest value to
/// room above the largest for the value labels.
fn y_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi == 0.0 {
        return (1.0, 10.0);
    }
    let lo = 10f64.powf((lo / 3.0).log10().floor());
    (lo, hi * 1.8)
}

/// The axis ticks: 1, 2 and 5 times each power of ten in `lo..=hi`, or
/// only the powers of ten when the axis spans more than three decades.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let first = lo.log10().floor() as i32;
    let last = hi.log10().ceil() as i32;
    let steps: &[f64] = if last - first > 3 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    (first..=last)
        .flat_map(|e| steps.iter().map(move |m| m * 10f64.powi(e)))
        .filter(|v| (lo..=hi).contains(v))
        .collect()
}

/// A tick label: "50", "200", "1 µs", "20 µs", "1 ms".
fn tick_label(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0}")
    } else if ns < 1e6 {
        format!("{:.0} µs", ns / 1e3)
    } else {
        format!("{:.0} ms", ns / 1e6)
    }
}

/// "1 thread", "8 threads".
fn threads_label(threads: usize) -> String {
    if threads == 1 {
        "1 thread".to_owned()
    } else {
        format!("{threads} threads")
    }
}

/// Legend rows' height, pixels.
const LEGEND_ROW: i32 = 22;

/// The legend's entries: label, colour, and whether it is a reference line.
fn legend_entries(layout: &Layout<'_>) -> Vec<(String, RGBColor, bool)> {
    let bars = layout
        .bars
        .iter()
        .map(|&(scheme, colour)| (scheme.to_owned(), colour, false));
    let references = layout
        .references
        .iter()
        .map(|&(scheme, colour)| (format!("{scheme} (reference)"), colour, true));
    bars.chain(references).collect()
}

/// Where each legend entry goes within `width` pixels, wrapping onto
/// further rows: (x, y) per entry.
fn legend_places(entries: &[(String, RGBColor, bool)], width: i32) -> Vec<(i32, i32)> {
    let right = width - 10;
    let (mut x, mut y) = (80, LEGEND_ROW / 2 + 2);
    entries
        .iter()
        .map(|(label, _, _)| {
            // About 8 pixels a character at this size.
            let w = 26 + 8 * label.chars().count() as i32;
            if x + w > right && x > 80 {
                (x, y) = (80, y + LEGEND_ROW);
            }
            let place = (x, y);
            x += w + 20;
            place
        })
        .collect()
}

/// The legend above the panels: a swatch per compared scheme, a dashed
/// line per reference, wrapped onto more rows when one is not enough.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[(String, RGBColor, bool)],
    places: &[(i32, i32)],
) -> Result<(), Box<dyn std::error::Error>> {
    let font = ("sans-serif", 15).into_font();
    for ((label, colour, reference), &(x, y)) in entries.iter().zip(places) {
        if *reference {
            for dash in [x, x + 12] {
                area.draw(&PathElement::new(
                    [(dash, y), (dash + 8, y)],
                    colour.stroke_width(2),
                ))?;
            }
        } else {
            area.draw(&Rectangle::new(
                [(x, y - 7), (x + 18, y + 7)],
                colour.filled(),
            ))?;
        }
        area.draw(&Text::new(label.as_str(), (x + 26, y - 8), font.clone()))?;
    }
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    rows: &[FloodRow],
    layout: &Layout<'_>,
    panel: &Panel<'_>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (lo, hi) = y_range(rows.iter().map(panel.value));
    let groups = layout.threads.len();
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 20))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(
            -0.5f64..groups as f64 - 0.5,
            (lo..hi).log_scale().with_key_points(ticks(lo, hi)),
        )?;
    let threads = layout.threads.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < threads.len() {
                threads_label(threads[i as usize])
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| tick_label(*v))
        .y_desc(panel.y_desc)
        .label_style(("sans-serif", 14))
        .draw()?;
    let width = 0.84 / layout.bars.len().max(1) as f64;
    for (k, &(scheme, colour)) in layout.bars.iter().enumerate() {
        let mine: Vec<(f64, f64)> = rows
            .iter()
            .filter(|r| r.scheme == scheme)
            .filter_map(|r| {
                let x0 = layout.group(r.threads)? - 0.42 + k as f64 * width;
                Some((x0, (panel.value)(r)))
            })
            .collect();
        chart
            .draw_series(mine.iter().map(|&(x0, v)| {
                Rectangle::new([(x0, lo), (x0 + width * 0.9, v)], colour.filled())
            }))?;
        chart.draw_series(mine.iter().map(|&(x0, v)| {
            Text::new(
                short_ns(v),
                (x0 + width * 0.45, v * 1.12),
                ("sans-serif", 12).into_font().color(&BLACK).pos(
                    plotters::style::text_anchor::Pos::new(
                        plotters::style::text_anchor::HPos::Center,
                        plotters::style::text_anchor::VPos::Bottom,
                    ),
                ),
            )
        }))?;
    }
    for &(scheme, colour) in &layout.references {
        let style = colour.stroke_width(2);
        for r in rows.iter().filter(|r| r.scheme == scheme) {
            let Some(g) = layout.group(r.threads) else {
                continue;
            };
            let v = (panel.value)(r);
            chart.draw_series(DashedLineSeries::new(
                [(g - 0.46, v), (g + 0.46, v)],
                8,
                4,
                style,
            ))?;
        }
    }
    Ok(())
}

/// Writes the two-panel chart of `rows` to `path` (SVG); `subtitle` names
/// the flood's size and allocator.
pub fn write_svg(
    path: &Path,
    rows: &[FloodRow],
    subtitle: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(subtitle, ("sans-serif", 16))?;
    let layout = Layout::of(rows);
    let entries = legend_entries(&layout);
    let places = legend_places(&entries, SIZE.0 as i32);
    let bottom = places.iter().map(|&(_, y)| y).max().unwrap_or(0);
    let (legend, root) = root.split_vertically(bottom + LEGEND_ROW / 2 + 6);
    draw_legend(&legend, &entries, &places)?;
    let panels = [
        Panel {
            title: "End to end, start to last free: ns per object (lower is better)".into(),
            y_desc: "ns per object (log scale)",
            value: &|r: &FloodRow| r.e2e_ns_per_op,
        },
        Panel {
            title: "Retire call p99.99, timer included: ns (lower is better)".into(),
            y_desc: "ns per call (log scale)",
            value: &|r: &FloodRow| r.retire_ns.p9999 as f64,
        },
    ];
    let areas = root.split_evenly((panels.len(), 1));
    for (area, panel) in areas.iter().zip(&panels) {
        draw_panel(area, rows, &layout, panel)?;
    }
    root.present()?;
    Ok(())
}
