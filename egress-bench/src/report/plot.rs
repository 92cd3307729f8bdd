//! Plots against list size on a log axis, one line per filter, as SVG and PNG.

use std::path::Path;

use anyhow::{Context, Result};
use filter_core::{CostCase, CostProbe};
use plotters::prelude::*;
use records::Figures;

use super::{
    SendCase, Sweep, latency, load_seconds, memory_bytes, program_cost, send_path, throughput,
};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers a TrueType font for the PNG backend (SVG writes text as text). Returns false
/// when none is installed: then only SVG files are written.
fn font() -> bool {
    static FONT_BYTES: std::sync::OnceLock<Option<&'static [u8]>> = std::sync::OnceLock::new();
    let bytes = FONT_BYTES.get_or_init(|| std::fs::read(FONT).ok().map(|b| &*Vec::leak(b)));
    bytes
        .is_some_and(|b| plotters::style::register_font("sans-serif", FontStyle::Normal, b).is_ok())
}

struct Chart<'a> {
    file: &'a str,
    title: &'a str,
    /// What to read from it, in one line (summary.md and report.html print it).
    caption: &'a str,
    y_label: &'a str,
    log_y: bool,
    pick: &'a dyn Fn(&Figures) -> Option<f64>,
}

/// A plot written: its file name without extension, title and caption, and whether a PNG
/// was written beside the SVG.
#[derive(Debug, Clone)]
pub struct Plot {
    /// File name without extension (`load_time`).
    pub file: String,
    /// The title drawn on it.
    pub title: String,
    /// What to read from it, in one line.
    pub caption: String,
    /// Whether `<file>.png` exists beside `<file>.svg`.
    pub png: bool,
}

/// Writes every plot; returns what it wrote.
pub fn write_all(sweep: &Sweep, dir: &Path) -> Result<Vec<Plot>> {
    let send_added = |case| move |f: &Figures| send_path(f, case).map(|p| p.added_ns);
    let one = send_added(SendCase::One);
    let many = send_added(SendCase::Many);
    let hit = |f: &Figures| program_cost(f, CostCase::Probe(CostProbe::V4Hit));
    let memory = |f: &Figures| memory_bytes(f).map(|b| b / f64::from(1 << 20));
    let gbps = |f: &Figures| throughput(f, 1470, false).map(|t| t.filter.received_gbps.median);
    let cpu = |f: &Figures| throughput(f, 1470, true).map(|t| t.filter.cpu_ns_per_packet.median);
    let p99 = |f: &Figures| latency(f, records::Protocol::Udp).map(|l| l.filter.p99_us.median);
    let rate = |f: &Figures| f.updates.as_ref().map(|u| u.updates_per_second);
    let charts = [
        Chart {
            file: "load_time",
            title: "Load time",
            caption: "How long loading the list takes; lower is better, and a line steeper than its neighbours scales worse with the list.",
            y_label: "seconds",
            log_y: true,
            pick: &load_seconds,
        },
        Chart {
            file: "send_path_one_destination",
            title: "Added per packet, one destination",
            caption: "Nanoseconds the filter adds to each packet sent to one address (warm caches), above the same send with no filter; the method's noise is a few ns.",
            y_label: "ns per packet",
            log_y: true,
            pick: &one,
        },
        Chart {
            file: "send_path_many_destinations",
            title: "Added per packet, 32,768 destinations",
            caption: "The same across 32,768 destinations, where the filter's lookups miss the caches: the figure that grows with the list for trees and tries.",
            y_label: "ns per packet",
            log_y: true,
            pick: &many,
        },
        Chart {
            file: "program_cost",
            title: "eBPF program per packet (test run, v4 hit)",
            caption: "The eBPF program alone per packet (BPF_PROG_TEST_RUN, an address the list denies): the lookup's own cost, without the stack around it.",
            y_label: "ns",
            log_y: false,
            pick: &hit,
        },
        Chart {
            file: "kernel_memory",
            title: "Kernel memory",
            caption: "Kernel memory the filter's sets, rules or maps take: what a node pays to hold the list.",
            y_label: "MiB",
            log_y: true,
            pick: &memory,
        },
        Chart {
            file: "throughput",
            title: "UDP throughput, 1470-byte payload",
            caption: "UDP goodput through the filter with 1470-byte payloads: a flat line means the filter is not the bottleneck at that size.",
            y_label: "Gbit/s",
            log_y: false,
            pick: &gbps,
        },
        Chart {
            file: "cpu_per_packet",
            title: "CPU per packet at 1 Gbit/s offered (all cores)",
            caption: "CPU time per packet, all cores, at 1 Gbit/s offered: the filter's cost when the link is not saturated.",
            y_label: "ns",
            log_y: true,
            pick: &cpu,
        },
        Chart {
            file: "update_rate",
            title: "Live updates, single entries under probes",
            caption: "Single-entry changes per second while probes check the filter; higher is better for feeds that change often.",
            y_label: "updates per second",
            log_y: true,
            pick: &rate,
        },
        Chart {
            file: "latency_p99",
            title: "UDP round trip, 99th percentile",
            caption: "99th-percentile UDP round trip through the filter: what the filter adds to a request's tail.",
            y_label: "microseconds",
            log_y: true,
            pick: &p99,
        },
    ];
    let png = font();
    let mut written = Vec::new();
    for chart in &charts {
        let mut series = sweep.series(chart.pick);
        // No filter is no series: its load is nothing and its send-path figure is the
        // method's noise, which a line would show as a cost.
        series.retain(|_, (name, _)| name != "none");
        if chart.log_y {
            // A log axis has no room for zero or below (none vs none can be -1 ns).
            for (_, points) in series.values_mut() {
                points.retain(|&(_, y)| y > 0.0);
            }
            series.retain(|_, (_, points)| !points.is_empty());
        }
        if series.is_empty() {
            continue;
        }
        let svg = dir.join(format!("{}.svg", chart.file));
        draw(
            SVGBackend::new(&svg, (900, 560)).into_drawing_area(),
            chart,
            &series,
        )?;
        if png {
            let path = dir.join(format!("{}.png", chart.file));
            draw(
                BitMapBackend::new(&path, (900, 560)).into_drawing_area(),
                chart,
                &series,
            )?;
        }
        written.push(Plot {
            file: chart.file.to_owned(),
            title: chart.title.to_owned(),
            caption: chart.caption.to_owned(),
            png,
        });
    }
    Ok(written)
}

type Series = std::collections::BTreeMap<usize, (String, Vec<(u64, f64)>)>;

fn draw<B: DrawingBackend>(
    area: DrawingArea<B, plotters::coord::Shift>,
    chart: &Chart<'_>,
    series: &Series,
) -> Result<()>
where
    B::ErrorType: 'static,
{
    let err =
        |e: DrawingAreaErrorKind<B::ErrorType>| anyhow::anyhow!("drawing {}: {e:?}", chart.file);
    area.fill(&WHITE).map_err(err)?;
    let points = series.values().flat_map(|(_, p)| p.iter());
    let (min_x, max_x) = points
        .clone()
        .fold((u64::MAX, 1), |(lo, hi), &(x, _)| (lo.min(x), hi.max(x)));
    let (min_y, max_y) = points.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(_, y)| {
        (lo.min(y), hi.max(y))
    });
    let x_range = (min_x.max(1) as f64 / 2.0)..(max_x as f64 * 2.0);
    let mut builder = ChartBuilder::on(&area);
    builder
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70);
    // Okabe and Ito's colour-blind-safe palette (black last, then darker shades).
    const OKABE_ITO: [(u8, u8, u8); 8] = [
        (0, 114, 178),
        (213, 94, 0),
        (0, 158, 115),
        (204, 121, 167),
        (230, 159, 0),
        (86, 180, 233),
        (160, 140, 0),
        (0, 0, 0),
    ];
    let palette = |i: usize| {
        let (r, g, b) = OKABE_ITO[i % OKABE_ITO.len()];
        // A second round of the eight, darker, for sweeps with more series.
        let shade = if (i / OKABE_ITO.len()) % 2 == 1 {
            0.6
        } else {
            1.0
        };
        let dim = |c: u8| (f64::from(c) * shade) as u8;
        RGBColor(dim(r), dim(g), dim(b)).to_rgba()
    };
    macro_rules! finish {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_label_formatter(&|x| entries_tick(*x))
                .y_label_formatter(&|y| value_tick(*y))
                .x_desc("entries in the list")
                .y_desc(chart.y_label)
                .draw()
                .map_err(err)?;
            for (&i, (name, pts)) in series {
                let color = palette(i);
                ctx.draw_series(LineSeries::new(
                    pts.iter().map(|&(x, y)| (x as f64, y)),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
                ctx.draw_series(
                    pts.iter()
                        .map(|&(x, y)| Circle::new((x as f64, y), 3, color.filled())),
                )
                .map_err(err)?;
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperLeft)
                .draw()
                .map_err(err)?;
        }};
    }
    if chart.log_y {
        let lo = (min_y.max(1e-6)) / 2.0;
        let hi = max_y.max(lo * 4.0) * 2.0;
        finish!(
            builder
                .build_cartesian_2d(x_range.log_scale(), (lo..hi).log_scale())
                .map_err(err)?
        );
    } else {
        let hi = if max_y > 0.0 { max_y * 1.15 } else { 1.0 };
        finish!(
            builder
                .build_cartesian_2d(x_range.log_scale(), 0.0..hi)
                .map_err(err)?
        );
    }
    area.present().map_err(err).context("writing the plot")?;
    Ok(())
}

/// An axis tick for a list size: 10, 100, 1k, 10k, 100k, 1M, 10M.
fn entries_tick(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{}M", trim(x / 1e6)),
        x if x >= 1e3 => format!("{}k", trim(x / 1e3)),
        x => trim(x),
    }
}

/// An axis tick for a figure: 0.001, 0.25, 12, 3000, 1e-5.
fn value_tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor();
    if (-3.0..7.0).contains(&magnitude) {
        let decimals = (-magnitude).max(0.0) as usize + 1;
        let text = format!("{v:.decimals$}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        text.to_owned()
    } else {
        format!("{v:.0e}")
    }
}

/// A number without a trailing `.0`.
fn trim(v: f64) -> String {
    let text = format!("{v:.1}");
    text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::entries_tick;

    #[test]
    fn ticks_read_as_list_sizes() {
        let ticks: Vec<String> = [10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 2.5e6]
            .into_iter()
            .map(entries_tick)
            .collect();
        assert_eq!(
            ticks,
            ["10", "100", "1k", "10k", "100k", "1M", "10M", "2.5M"]
        );
        let values: Vec<String> = [0.001, 0.25, 12.0, 3000.0, 1e-5, 0.0]
            .into_iter()
            .map(super::value_tick)
            .collect();
        assert_eq!(values, ["0.001", "0.25", "12", "3000", "1e-5", "0"]);
    }
}
