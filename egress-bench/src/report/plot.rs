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

/// A run's [min..max] around a figure.
type RangeOf = dyn Fn(&Figures) -> Option<(f64, f64)>;

struct Chart<'a> {
    file: &'a str,
    title: &'a str,
    /// What to read from it, in one line (summary.md and report.html print it).
    caption: &'a str,
    y_label: &'a str,
    log_y: bool,
    pick: &'a dyn Fn(&Figures) -> Option<f64>,
    /// A run's own [min..max] around its figure, where it has one (the send path's rounds);
    /// otherwise the spread over runs is the figure's own.
    range: Option<&'a RangeOf>,
    /// Shade the method's zero (none vs none, both ways) as a band: send-path charts.
    noise: bool,
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
    let send_range =
        |case| move |f: &Figures| send_path(f, case).map(|p| (p.added_ns_min, p.added_ns_max));
    let one_range = send_range(SendCase::One);
    let many_range = send_range(SendCase::Many);
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
            range: None,
            noise: false,
            pick: &load_seconds,
        },
        Chart {
            file: "send_path_one_destination",
            title: "Added per packet, one destination",
            caption: "Nanoseconds the filter adds to each packet sent to one address (warm caches), above the same send with no filter; the method's noise is a few ns.",
            y_label: "ns per packet",
            log_y: true,
            range: Some(&one_range),
            noise: true,
            pick: &one,
        },
        Chart {
            file: "send_path_many_destinations",
            title: "Added per packet, 32,768 destinations",
            caption: "The same across 32,768 destinations, where the filter's lookups miss the caches: the figure that grows with the list for trees and tries.",
            y_label: "ns per packet",
            log_y: true,
            range: Some(&many_range),
            noise: true,
            pick: &many,
        },
        Chart {
            file: "program_cost",
            title: "eBPF program per packet (test run, v4 hit)",
            caption: "The eBPF program alone per packet (BPF_PROG_TEST_RUN, an address the list denies): the lookup's own cost, without the stack around it.",
            y_label: "ns",
            log_y: false,
            range: None,
            noise: false,
            pick: &hit,
        },
        Chart {
            file: "kernel_memory",
            title: "Kernel memory",
            caption: "Kernel memory the filter's sets, rules or maps take: what a node pays to hold the list.",
            y_label: "MiB",
            log_y: true,
            range: None,
            noise: false,
            pick: &memory,
        },
        Chart {
            file: "throughput",
            title: "UDP throughput, 1470-byte payload",
            caption: "UDP goodput through the filter with 1470-byte payloads: a flat line means the filter is not the bottleneck at that size.",
            y_label: "Gbit/s",
            log_y: false,
            range: None,
            noise: false,
            pick: &gbps,
        },
        Chart {
            file: "cpu_per_packet",
            title: "CPU per packet at 1 Gbit/s offered (all cores)",
            caption: "CPU time per packet, all cores, at 1 Gbit/s offered: the filter's cost when the link is not saturated.",
            y_label: "ns",
            log_y: true,
            range: None,
            noise: false,
            pick: &cpu,
        },
        Chart {
            file: "update_rate",
            title: "Live updates, single entries under probes",
            caption: "Single-entry changes per second while probes check the filter; higher is better for feeds that change often.",
            y_label: "updates per second",
            log_y: true,
            range: None,
            noise: false,
            pick: &rate,
        },
        Chart {
            file: "latency_p99",
            title: "UDP round trip, 99th percentile",
            caption: "99th-percentile UDP round trip through the filter: what the filter adds to a request's tail.",
            y_label: "microseconds",
            log_y: true,
            range: None,
            noise: false,
            pick: &p99,
        },
    ];
    let png = font();
    let mut written = Vec::new();
    for chart in &charts {
        let series = series(sweep, chart);
        if series.is_empty() {
            continue;
        }
        // Variants measured at one size only (the largest) are bars of their own, not
        // lonely points among the lines.
        let (single, series): (Series, Series) =
            if series.values().any(|(_, points)| points.len() > 1) {
                series
                    .into_iter()
                    .partition(|(_, (_, points))| points.len() == 1)
            } else {
                (Series::new(), series)
            };
        let noise = if chart.noise {
            noise(sweep)
        } else {
            Vec::new()
        };
        let lines = Plot {
            file: chart.file.to_owned(),
            title: chart.title.to_owned(),
            caption: chart.caption.to_owned(),
            png,
        };
        Figure::Lines(&series, &noise).write(dir, chart, &lines)?;
        written.push(lines);
        if !single.is_empty() {
            let bars = Plot {
                file: format!("{}_one_size", chart.file),
                title: format!("{}: variants run at one size", chart.title),
                caption: "The same figure for the variants the sweep runs at one size only \
                          (named with it), each with its spread [min..max]; read them against \
                          the engine they vary."
                    .to_owned(),
                png,
            };
            Figure::Bars(&single).write(dir, chart, &bars)?;
            written.push(bars);
        }
    }
    Ok(written)
}

/// What one plot file draws.
enum Figure<'a> {
    /// Lines against list size, and the method's zero band (empty: none).
    Lines(&'a Series, &'a [(u64, f64)]),
    /// One bar per variant.
    Bars(&'a Series),
}

impl Figure<'_> {
    /// Writes `plot.file` as SVG, and as PNG when `plot.png`.
    fn write(&self, dir: &Path, chart: &Chart<'_>, plot: &Plot) -> Result<()> {
        const SIZE: (u32, u32) = (900, 560);
        let svg = dir.join(format!("{}.svg", plot.file));
        self.draw_on(
            SVGBackend::new(&svg, SIZE).into_drawing_area(),
            chart,
            &plot.title,
        )?;
        if plot.png {
            let png = dir.join(format!("{}.png", plot.file));
            self.draw_on(
                BitMapBackend::new(&png, SIZE).into_drawing_area(),
                chart,
                &plot.title,
            )?;
        }
        Ok(())
    }

    fn draw_on<B: DrawingBackend>(
        &self,
        area: DrawingArea<B, plotters::coord::Shift>,
        chart: &Chart<'_>,
        title: &str,
    ) -> Result<()>
    where
        B::ErrorType: 'static,
    {
        match self {
            Self::Lines(series, noise) => draw(area, chart, title, series, noise),
            Self::Bars(series) => draw_bars(area, chart, title, series),
        }
    }
}

/// One point of a series: the median at a size and its spread.
#[derive(Debug, Clone, Copy)]
struct Point {
    x: u64,
    y: f64,
    lo: f64,
    hi: f64,
}

/// Per filter (but `none`: no filter has no cost to draw), its points: the median over
/// runs, and the spread from the lowest to the highest of the runs' figures (or of their own
/// ranges). On a log axis, points at or below zero are left out.
fn series(sweep: &Sweep, chart: &Chart<'_>) -> Series {
    let mut out = Series::new();
    for (i, filter) in sweep.filters.iter().enumerate() {
        if filter == "none" {
            continue;
        }
        let points: Vec<Point> = sweep
            .sizes()
            .into_iter()
            .filter_map(|size| {
                let y = sweep.median_of(filter, size, chart.pick)?;
                let (lo, hi) = sweep
                    .ok_runs(filter, size)
                    .filter_map(|r| {
                        let f = super::figures(r)?;
                        match chart.range {
                            Some(range) => range(f),
                            None => (chart.pick)(f).map(|v| (v, v)),
                        }
                    })
                    .fold((y, y), |(lo, hi), (a, b)| (lo.min(a), hi.max(b)));
                Some(Point { x: size, y, lo, hi })
            })
            .filter(|p| !chart.log_y || p.y > 0.0)
            .collect();
        if !points.is_empty() {
            out.insert(i, (filter.clone(), points));
        }
    }
    out
}

/// Per size, how far the method's own zero (none vs none, in every run at that size) strays
/// from zero either way: a cost inside it is not told from nothing.
fn noise(sweep: &Sweep) -> Vec<(u64, f64)> {
    sweep
        .sizes()
        .into_iter()
        .filter_map(|size| {
            sweep
                .runs
                .iter()
                .filter(|r| r.size == size && r.ok())
                .filter_map(|r| send_path(super::figures(r)?, SendCase::NoneVsNone))
                .map(|p| {
                    p.added_ns_min
                        .abs()
                        .max(p.added_ns_max.abs())
                        .max(p.added_ns.abs())
                })
                .reduce(f64::max)
                .map(|v| (size, v))
        })
        .collect()
}

type Series = std::collections::BTreeMap<usize, (String, Vec<Point>)>;

/// Okabe and Ito's colour-blind-safe palette (black last), a darker round for more series.
fn palette(i: usize) -> RGBAColor {
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
    let (r, g, b) = OKABE_ITO[i % OKABE_ITO.len()];
    let shade = if (i / OKABE_ITO.len()) % 2 == 1 {
        0.6
    } else {
        1.0
    };
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "0..=255"
    )]
    let dim = |c: u8| (f64::from(c) * shade) as u8;
    RGBColor(dim(r), dim(g), dim(b)).to_rgba()
}

/// Lines against list size, each point with a whisker over its spread; on send-path charts
/// the method's zero as a grey band from the axis up to how far it strays.
fn draw<B: DrawingBackend>(
    area: DrawingArea<B, plotters::coord::Shift>,
    chart: &Chart<'_>,
    title: &str,
    series: &Series,
    noise: &[(u64, f64)],
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
        .fold((u64::MAX, 1), |(lo, hi), p| (lo.min(p.x), hi.max(p.x)));
    let (min_y, max_y) = points.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.y), hi.max(p.hi.max(p.y)))
    });
    let x_range = (min_x.max(1) as f64 / 2.0)..(max_x as f64 * 2.0);
    let mut builder = ChartBuilder::on(&area);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70);
    macro_rules! finish {
        ($ctx:expr, $floor:expr) => {{
            let mut ctx = $ctx;
            let floor: f64 = $floor;
            ctx.configure_mesh()
                .x_label_formatter(&|x| entries_tick(*x))
                .y_label_formatter(&|y| value_tick(*y))
                .x_desc("entries in the list")
                .y_desc(chart.y_label)
                .draw()
                .map_err(err)?;
            if !noise.is_empty() {
                let grey = RGBColor(120, 120, 120);
                ctx.draw_series(AreaSeries::new(
                    noise.iter().map(|&(x, v)| (x as f64, v.max(floor))),
                    floor,
                    grey.mix(0.25),
                ))
                .map_err(err)?
                .label("method's zero (none vs none), either way")
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 18, y + 5)], grey.mix(0.25).filled())
                });
            }
            for (&i, (name, pts)) in series {
                let color = palette(i);
                ctx.draw_series(LineSeries::new(
                    pts.iter().map(|p| (p.x as f64, p.y)),
                    color.stroke_width(2),
                ))
                .map_err(err)?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
                ctx.draw_series(
                    pts.iter()
                        .map(|p| Circle::new((p.x as f64, p.y), 3, color.filled())),
                )
                .map_err(err)?;
                // Whiskers: [min..max], with short caps.
                ctx.draw_series(pts.iter().filter(|p| p.hi > p.lo).flat_map(|p| {
                    let (x, lo, hi) = (p.x as f64, p.lo.max(floor), p.hi.max(floor));
                    [
                        PathElement::new(vec![(x, lo), (x, hi)], color.stroke_width(1)),
                        PathElement::new(
                            vec![(x * 0.93, lo), (x * 1.07, lo)],
                            color.stroke_width(1),
                        ),
                        PathElement::new(
                            vec![(x * 0.93, hi), (x * 1.07, hi)],
                            color.stroke_width(1),
                        ),
                    ]
                }))
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
    // The band must show: the axis starts below its top too.
    let band_top = noise.iter().map(|&(_, v)| v).fold(f64::INFINITY, f64::min);
    if chart.log_y {
        let lo = min_y.min(band_top).max(1e-6) / 2.0;
        let hi = max_y.max(lo * 4.0) * 2.0;
        finish!(
            builder
                .build_cartesian_2d(x_range.log_scale(), (lo..hi).log_scale())
                .map_err(err)?,
            lo
        );
    } else {
        let hi = if max_y > 0.0 { max_y * 1.15 } else { 1.0 };
        finish!(
            builder
                .build_cartesian_2d(x_range.log_scale(), 0.0..hi)
                .map_err(err)?,
            0.0
        );
    }
    area.present().map_err(err).context("writing the plot")?;
    Ok(())
}

/// One horizontal bar per variant (its median), with a whisker over its spread.
fn draw_bars<B: DrawingBackend>(
    area: DrawingArea<B, plotters::coord::Shift>,
    chart: &Chart<'_>,
    title: &str,
    series: &Series,
) -> Result<()>
where
    B::ErrorType: 'static,
{
    let err =
        |e: DrawingAreaErrorKind<B::ErrorType>| anyhow::anyhow!("drawing {}: {e:?}", chart.file);
    area.fill(&WHITE).map_err(err)?;
    let bars: Vec<(usize, &str, Point)> = series
        .iter()
        .map(|(&i, (name, points))| (i, name.as_str(), points[0]))
        .collect();
    let top = bars
        .iter()
        .map(|(_, _, p)| p.hi.max(p.y))
        .fold(0.0, f64::max);
    let hi = if top > 0.0 { top * 1.15 } else { 1.0 };
    let lo = bars
        .iter()
        .map(|(_, _, p)| p.lo.min(p.y))
        .fold(0.0, f64::min);
    #[expect(clippy::cast_precision_loss, reason = "a handful of bars")]
    let rows = bars.len() as f64;
    let names: Vec<String> = bars
        .iter()
        .map(|(_, n, p)| format!("{n} @ {}", entries_tick(p.x as f64)))
        .collect();
    macro_rules! bars_body {
        ($ctx:ident, $base:expr) => {{
            let base: f64 = $base;
            let ctx = &mut $ctx;
            ctx.configure_mesh()
                .disable_y_mesh()
                .y_labels(bars.len())
                .y_label_formatter(&|y| {
                    let k = y.round();
                    if (y - k).abs() < 0.01 && k >= 0.0 {
                        #[expect(
                            clippy::cast_possible_truncation,
                            clippy::cast_sign_loss,
                            reason = "a row index"
                        )]
                        names.get(k as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .x_label_formatter(&|x| value_tick(*x))
                .x_desc(chart.y_label)
                .draw()
                .map_err(err)?;
            for (row, (i, name, p)) in bars.iter().enumerate() {
                #[expect(clippy::cast_precision_loss, reason = "a row index")]
                let y = row as f64;
                let color = palette(*i);
                ctx.draw_series(std::iter::once(Rectangle::new(
                    [(base, y - 0.3), (p.y.max(base), y + 0.3)],
                    color.filled(),
                )))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 18, y + 5)], color.filled())
                });
                if p.hi > p.lo {
                    let (lo, hi) = (p.lo.max(base), p.hi.max(base));
                    ctx.draw_series([
                        PathElement::new(vec![(lo, y), (hi, y)], BLACK.stroke_width(1)),
                        PathElement::new(
                            vec![(lo, y - 0.12), (lo, y + 0.12)],
                            BLACK.stroke_width(1),
                        ),
                        PathElement::new(
                            vec![(hi, y - 0.12), (hi, y + 0.12)],
                            BLACK.stroke_width(1),
                        ),
                    ])
                    .map_err(err)?;
                }
            }
            // The axis reaches well past the longest bar: the legend has the right side.
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .position(SeriesLabelPosition::UpperRight)
                .draw()
                .map_err(err)?;
        }};
    }
    let smallest = bars
        .iter()
        .map(|(_, _, p)| p.y)
        .filter(|&v| v > 0.0)
        .fold(f64::INFINITY, f64::min);
    // Figures orders of magnitude apart (a netfilter chain beside an eBPF table) on a log
    // axis, as the chart's own lines are.
    if chart.log_y && lo >= 0.0 && top / smallest > 50.0 {
        let floor = smallest / 2.0;
        let mut ctx = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(190)
            .build_cartesian_2d((floor..hi * 60.0).log_scale(), -0.5..rows - 0.5)
            .map_err(err)?;
        bars_body!(ctx, floor);
    } else {
        let mut ctx = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(190)
            .build_cartesian_2d(lo.min(0.0) * 1.15..hi * 1.6, -0.5..rows - 0.5)
            .map_err(err)?;
        bars_body!(ctx, 0.0);
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
