//! summary.md: a table per metric, with ratios to the reference loaders and to no filter.

use std::fmt::Write as _;

use records::Figures;

use super::{
    SendCase, Sweep, figures, latency, load_seconds, median, memory_bytes, program_cost, send_path,
    throughput,
};
use filter_core::{CostCase, CostProbe, Family, Registry, Variant};

use crate::filters::REGISTRY;

/// The label of the filter a label's figures are set against (`ipset/hosts` ->
/// `ipset-restore/hosts`), from the registry: its reference loader or its floor.
fn yardstick(label: &str, pick: impl Fn(&Variant) -> Option<&'static str>) -> Option<String> {
    yardstick_in(&REGISTRY, label, pick)
}

/// [`yardstick`] in a given registry.
pub(crate) fn yardstick_in(
    registry: &Registry,
    label: &str,
    pick: impl Fn(&Variant) -> Option<&'static str>,
) -> Option<String> {
    let variant = registry.variant(label)?;
    let other = pick(variant)?;
    // The same mix and attach suffix as the label's.
    Some(format!("{other}{}", &label[variant.name.len()..]))
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// The whole summary.
pub fn summary(sweep: &Sweep, plots: &[super::plot::Plot]) -> String {
    if sweep.runs.is_empty()
        && let Some(cluster) = &sweep.cluster
    {
        return format!("# Cluster\n\n{}", crate::cluster::render(cluster));
    }
    let mut md = String::from("# egress-bench sweep\n\n");
    if !sweep.description.is_empty() {
        let _ = writeln!(md, "{}\n", sweep.description);
    }
    headline(&mut md, sweep);
    load_table(&mut md, sweep);
    scale_table(&mut md, sweep);
    send_path_table(&mut md, sweep);
    traffic_tables(&mut md, sweep);
    program_cost_table(&mut md, sweep);
    updates_table(&mut md, sweep);
    super::published::table(&mut md, sweep);
    warnings(&mut md, sweep);
    if let Some(cluster) = &sweep.cluster {
        let _ = write!(md, "\n## Cluster\n\n{}", crate::cluster::render(cluster));
    }
    if !plots.is_empty() {
        let _ = writeln!(
            md,
            "\n## Plots\n\nEach as SVG{} beside this file; report.html has them inline.",
            if plots.iter().any(|p| p.png) {
                " and PNG"
            } else {
                ""
            }
        );
        for plot in plots {
            let _ = writeln!(
                md,
                "\n### {}\n\n![{}]({}.svg)\n\n{}",
                plot.title, plot.title, plot.file, plot.caption
            );
        }
    }
    md
}

/// The detail tables' headings, which the headline's columns link to.
const SETUP: &str = "Set-up";
const SEND_PATH: &str = "Send path: cost added per packet";
const TRAFFIC: &str = "Traffic through the filter (testbed veth, to an allowed address)";
const UPDATES: &str = "Live updates";

/// A heading's anchor as GitHub makes it (and report.html): lower case, spaces to hyphens,
/// other punctuation dropped.
pub(crate) fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// A rate with the precision its size needs: 200618, 33.4, 0.41.
fn rate(v: f64) -> String {
    match v {
        v if v.is_nan() => "-".into(),
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 1.0 => format!("{v:.1}"),
        v => format!("{v:.2}"),
    }
}

/// The headline: one row per filter a user would install (engines and profiles, attached the
/// default way), at the largest size it has figures at; in each column the best among the
/// rows at the sweep's largest size is in bold.
fn headline(md: &mut String, sweep: &Sweep) {
    let rows: Vec<(&String, u64)> = sweep
        .filters
        .iter()
        .filter(|label| !label.contains(['@', '/']))
        .filter(|label| {
            REGISTRY.variant(label).is_some_and(|v| {
                matches!(
                    v.role,
                    filter_core::Role::Engine | filter_core::Role::Profile
                )
            })
        })
        .filter_map(|label| {
            let size = sweep
                .sizes()
                .into_iter()
                .rev()
                .find(|&size| sweep.ok_runs(label, size).next().is_some())?;
            Some((label, size))
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let largest = rows.iter().map(|&(_, size)| size).max().unwrap_or(0);
    // Per row: load s, kernel bytes, added ns one, added ns many, throughput ratio, updates/s.
    let figures_of = |label: &str, size: u64| -> [Option<f64>; 6] {
        let added = |case| sweep.median_of(label, size, |f| send_path(f, case).map(|p| p.added_ns));
        [
            sweep.median_of(label, size, load_seconds),
            sweep.median_of(label, size, memory_bytes),
            added(SendCase::One),
            added(SendCase::Many),
            sweep.median_of(label, size, |f| {
                throughput(f, 1470, false)?
                    .ratio_pps
                    .as_ref()
                    .map(|r| r.median)
            }),
            sweep.median_of(label, size, |f| {
                f.updates.as_ref().map(|u| u.updates_per_second)
            }),
        ]
    };
    let figures: Vec<[Option<f64>; 6]> = rows
        .iter()
        .map(|&(label, size)| figures_of(label, size))
        .collect();
    // Lower is better but for throughput and updates.
    let higher_is_better = [false, false, false, false, true, true];
    let mut best: [Option<f64>; 6] = [None; 6];
    for (_, values) in rows
        .iter()
        .zip(&figures)
        .filter(|&(&(_, size), _)| size == largest)
    {
        for (i, &value) in values.iter().enumerate() {
            if let Some(v) = value {
                let better = match best[i] {
                    None => true,
                    Some(b) if higher_is_better[i] => v > b,
                    Some(b) => v < b,
                };
                if better {
                    best[i] = Some(v);
                }
            }
        }
    }
    let _ = writeln!(
        md,
        "## Headline\n\nEach filter a user would install, at the largest size it ran (profiles \
         stop where their product's limits do); **bold**: the best at the sweep's largest size. \
         Load: seconds (its reference loader's time, where it has one, in the set-up table); \
         per packet: ns added to a 64-byte UDP send, one / many destinations (send-path table); \
         throughput: 1470-byte UDP packets per second with the filter over without (traffic \
         table); updates: single-entry changes per second (live updates table).\n"
    );
    // Each column's header links to the table its figures come from.
    // (A column with no figure has no table to link to.)
    let measured = |i: usize| figures.iter().any(|values| values[i].is_some());
    let link = |text: &str, heading: &str, i: usize| {
        if measured(i) {
            format!("[{text}](#{})", anchor(heading))
        } else {
            text.to_owned()
        }
    };
    let _ = writeln!(
        md,
        "| filter | entries | {} | {} | {} | {} | {} |",
        link("load (s)", SETUP, 0),
        link("kernel memory", SETUP, 1),
        link("per packet, one / many (ns)", SEND_PATH, 2),
        link("throughput", TRAFFIC, 4),
        link("updates/s", UPDATES, 5),
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for (&(label, size), values) in rows.iter().zip(&figures) {
        let mark = |i: usize, text: String| {
            if size == largest && values[i].is_some() && values[i] == best[i] {
                format!("**{text}**")
            } else {
                text
            }
        };
        let show = |i: usize, f: &dyn Fn(f64) -> String| {
            values[i].map_or_else(|| "-".to_owned(), |v| mark(i, f(v)))
        };
        let _ = writeln!(
            md,
            "| {label} | {size} | {} | {} | {} / {} | {} | {} |",
            show(0, &|v| format!("{v:.3}")),
            show(1, &|v| records::human_bytes(v as i64, false)),
            show(2, &|v| format!("{v:+.0}")),
            show(3, &|v| format!("{v:+.0}")),
            show(4, &|v| format!("x{v:.2}")),
            show(5, &rate),
        );
    }
    md.push('\n');
}

fn load_table(md: &mut String, sweep: &Sweep) {
    let _ = writeln!(
        md,
        "\n## {SETUP}\n\nMedians over runs. Enforcement: from the start of the load until a probe stream \
         (one packet every ~30 us) to a denied address stopped getting through. Kernel memory: the \
         filter's own figure (ipset memsize, BPF map memlock) where it has one, else the slab + vmalloc \
         + per-CPU change across the load (approximate).\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | load (s) | enforced (s) | teardown (s) | kernel memory (MiB) | load vs reference |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for size in sweep.sizes() {
        // Rows only where the filter was scheduled: largest-only variants and profiles past
        // their limits have no row at the other sizes.
        for filter in sweep.filters.iter().filter(|f| sweep.scheduled(f, size)) {
            if let Some(why) = sweep.missing(filter, size) {
                let _ = writeln!(md, "| {filter} | {size} | {why} | | | | |");
                continue;
            }

            let ratio = yardstick(filter, |d| d.load_compared_with)
                .and_then(|reference| {
                    Some(
                        sweep.median_of(filter, size, load_seconds)?
                            / sweep.median_of(&reference, size, load_seconds)?,
                    )
                })
                .map_or_else(String::new, |r| format!("{r:.2}x"));
            let memory = sweep
                .median_of(filter, size, memory_bytes)
                .map(|b| b / f64::from(1 << 20));
            let _ = writeln!(
                md,
                "| {filter} | {size} | {} | {} | {} | {} | {ratio} |",
                fmt(sweep.median_of(filter, size, load_seconds), 3),
                fmt(sweep.median_of(filter, size, |f| f.enforcement_seconds), 3),
                fmt(
                    sweep.median_of(filter, size, |f| Some(f.teardown_seconds)),
                    3
                ),
                fmt(memory, 1),
            );
        }
    }
}

/// Lists from this size up count as the scale test.
const SCALE_FROM: u64 = 10_000_000;

/// The breaking-point table: each engine at 10M+ entries, with what the list was, what it
/// cost, and per-packet figures; or the error that stopped it.
fn scale_table(md: &mut String, sweep: &Sweep) {
    let sizes: Vec<u64> = sweep
        .sizes()
        .into_iter()
        .filter(|&s| s >= SCALE_FROM)
        .collect();
    if sizes.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Scale\n\nEach engine at {} entries and more (first run). List: distinct entries, \
         entries inside a broader one, share of the IPv4 space denied. Memory: the filter's own \
         figure / slab+vmalloc+per-CPU change across the load (MiB); peak RSS of egress-bench. \
         Per packet: BPF_PROG_TEST_RUN warm v4 hit and \
         miss above the empty program, cold per random lookup (eBPF); send path added per packet, \
         one / 32,768 destinations (where measured).\n",
        SCALE_FROM
    );
    let _ = writeln!(
        md,
        "| filter | entries | list | load (s) | memory (MiB) | peak RSS (MiB) | per packet (ns) |"
    );
    let _ = writeln!(md, "|---|---:|---|---:|---:|---:|---|");
    let mib = |v: Option<f64>| fmt(v.map(|b| b / f64::from(1 << 20)), 0);
    for &size in &sizes {
        for filter in sweep.filters.iter().filter(|f| sweep.scheduled(f, size)) {
            if let Some(why) = sweep.missing(filter, size) {
                let _ = writeln!(md, "| {filter} | {size} | | {why} | | | |");
                continue;
            }
            let Some(r) = sweep
                .first_ok(filter, size)
                .and_then(|run| run.record.as_deref())
            else {
                continue;
            };
            let Some(f) = r.figures.as_ref() else {
                continue;
            };
            let stats = &r.list.stats;
            let list = format!(
                "{} distinct, {} covered, {:.1}% of v4",
                stats.distinct,
                stats.covered,
                stats.v4_space_denied * 100.0
            );
            let memory = format!(
                "{} / {}",
                mib(f.stats.kernel_memory.as_ref().map(|m| m.bytes as f64)),
                mib(f.kernel_allocations_bytes().map(|b| b as f64))
            );
            let rss = mib(Some(r.peak_memory.egress_bench_bytes as f64));
            let cost = |case: CostCase| program_cost(f, case);
            let mut per_packet = Vec::new();
            if let (Some(floor), Some(hit), Some(miss)) = (
                cost(CostCase::Floor),
                cost(CostCase::Probe(CostProbe::V4Hit)),
                cost(CostCase::Probe(CostProbe::V4Miss)),
            ) {
                per_packet.push(format!(
                    "warm hit {:+.0} / miss {:+.0} (floor {floor:.0})",
                    hit - floor,
                    miss - floor
                ));
            }
            for (name, family) in [("", Family::V4), (" v6", Family::V6)] {
                if let Some(cold) = cost(CostCase::ColdPerLookup(family)) {
                    per_packet.push(format!("cold{name} {cold:.0}"));
                }
            }
            if let (Some(one), Some(many)) = (
                send_path(f, SendCase::One).map(|p| p.added_ns),
                send_path(f, SendCase::Many).map(|p| p.added_ns),
            ) {
                per_packet.push(format!("send path {one:+.0} / {many:+.0}"));
            }
            let _ = writeln!(
                md,
                "| {filter} | {size} | {list} | {} | {memory} | {rss} | {} |",
                fmt(Some(f.load_seconds), 2),
                per_packet.join("; ")
            );
        }
    }
}

fn cell(sweep: &Sweep, filter: &str, size: u64, case: SendCase) -> Option<String> {
    let run = sweep.ok_runs(filter, size).next()?;
    let p = send_path(figures(run)?, case)?;
    Some(format!(
        "{:+.0} [{:+.0}..{:+.0}] x{:.3}",
        p.added_ns, p.added_ns_min, p.added_ns_max, p.ratio
    ))
}

fn send_path_table(md: &mut String, sweep: &Sweep) {
    let has = |filter: &str, size: u64| {
        sweep
            .ok_runs(filter, size)
            .any(|r| figures(r).is_some_and(|f| f.send_path.is_some()))
    };
    if !sweep
        .sizes()
        .into_iter()
        .any(|s| sweep.filters.iter().any(|f| has(f, s)))
    {
        return;
    }
    let _ = writeln!(
        md,
        "\n## {SEND_PATH}\n\n64-byte UDP through sink devices, one pinned sender alternating \
         chunks between a namespace with the filter and one without (ABBA); ns per packet, median of runs \
         [min..max], and the ratio to no filter. Many destinations: 32,768 addresses of 198.19.0.0/17 through \
         one gateway. `none vs none` is the method's zero, measured in the same run. For eBPF filters, \
         `above floor` subtracts `tcbpf-empty` (the same hook with a program that returns at once). \
         `tcbpf-cold` looks up each destination mixed with a counter into a pseudo-random address (the \
         cache-cold trie of traffic to the whole Internet, which the test range never makes) and drops \
         nothing; its `above floor` subtracts `tcbpf-mix`, the same program without the lookup: the cost \
         of a cold lookup on the real send path; `tcbpf-dir-cold` does the same on the constant-time \
         table. `@clsact`: attached through a clsact qdisc instead of TCX; `@cgroup`: on the sender's \
         cgroup (`cgroup_skb/egress`), `@connect`: its connect-time hooks (a connected socket's \
         packets pass unexamined, an unconnected send is checked by `sendmsg4`).\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | none vs none | one destination | many destinations | above floor (one / many) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for size in sweep.sizes() {
        for filter in sweep.filters.iter().filter(|f| has(f, size)) {
            let floor = |case: SendCase| {
                let base = yardstick(filter, |d| d.send_path_floor)?;
                let added = |f: &Figures| send_path(f, case).map(|p| p.added_ns);
                Some(sweep.median_of(filter, size, added)? - sweep.median_of(&base, size, added)?)
            };
            let above = match (floor(SendCase::One), floor(SendCase::Many)) {
                (Some(a), Some(b)) => format!("{a:+.0} / {b:+.0}"),
                _ => String::new(),
            };
            let nvn = sweep
                .median_of(filter, size, |f| {
                    send_path(f, SendCase::NoneVsNone).map(|p| p.added_ns)
                })
                .map_or_else(|| "-".into(), |v| format!("{v:+.1}"));
            let _ = writeln!(
                md,
                "| {filter} | {size} | {nvn} | {} | {} | {above} |",
                cell(sweep, filter, size, SendCase::One).unwrap_or_default(),
                cell(sweep, filter, size, SendCase::Many).unwrap_or_default(),
            );
        }
    }
    new_flows_table(md, sweep);
    connect_table(md, sweep);
}

/// Established flows against a new flow per packet, where the run measured both.
fn new_flows_table(md: &mut String, sweep: &Sweep) {
    let rows: Vec<(u64, &String, String)> = sweep
        .sizes()
        .into_iter()
        .flat_map(|size| {
            sweep.filters.iter().filter_map(move |filter| {
                cell(sweep, filter, size, SendCase::NewFlows).map(|c| (size, filter, c))
            })
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n### New flows against established ones\n\nThe same pairing with a new flow per packet \
         (the 32,768 addresses in turn, the destination port one higher on each pass, so no \
         5-tuple repeats). Filters that keep conntrack pay for a connection's first packet here: \
         Calico's chains accept established flows before any set lookup, the Cilium model creates \
         a conntrack entry (and checks policy for every packet); filters without state cost the \
         same as for many destinations. `one destination` is one established flow.\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | one destination (established) | many destinations | new flow per packet |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|");
    for (size, filter, new) in rows {
        let _ = writeln!(
            md,
            "| {filter} | {size} | {} | {} | {new} |",
            cell(sweep, filter, size, SendCase::One).unwrap_or_default(),
            cell(sweep, filter, size, SendCase::Many).unwrap_or_default(),
        );
    }
}

/// What filters on a cgroup add to one `connect()`.
fn connect_table(md: &mut String, sweep: &Sweep) {
    let rows: Vec<(u64, &String, String)> = sweep
        .sizes()
        .into_iter()
        .flat_map(|size| {
            sweep.filters.iter().filter_map(move |filter| {
                cell(sweep, filter, size, SendCase::Connects).map(|c| (size, filter, c))
            })
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n### connect(): cost added per call, filters on a cgroup\n\n`connect()` of a UDP socket to \
         32,768 addresses in turn, and a non-blocking TCP `connect()` of a fresh socket (its SYN to \
         the sink) with its close, paired the same way (ns per call; connects per second are 1e9 / \
         the call's time). `@connect` decides there (the `cgroup/connect4` hook and a table lookup) \
         and then costs nothing per packet of a connected socket; `@cgroup` looks at every packet \
         instead, the TCP SYN included.\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | UDP connect() | TCP connect() and close |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|");
    for (size, filter, c) in rows {
        let tcp = cell(sweep, filter, size, SendCase::TcpConnects).unwrap_or_default();
        let _ = writeln!(md, "| {filter} | {size} | {c} | {tcp} |");
    }
}

fn traffic_tables(md: &mut String, sweep: &Sweep) {
    let has = |r: &super::Run| r.ok() && figures(r).is_some_and(|f| f.traffic.is_some());
    if !sweep.runs.iter().any(has) {
        return;
    }
    let _ = writeln!(
        md,
        "\n## {TRAFFIC}\n\n\
         UDP from the client to the server namespace, alternated N-A-A-N with a twin testbed without a \
         filter in each of several rounds (first run at each size): median [min..max] over rounds. A/N: \
         the per-round ratio with the filter over without, with its [min..max]; `~x0.96`: the rounds fall \
         on both sides of 1, no difference resolved (their spread is in traffic.csv). CPU: the sender's and receiver's own \
         CPU time plus the softirq threads', per received packet. `none vs none`: both testbeds without \
         a filter, before the load: the method's zero in the same run.\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | none vs none (A/N packets/s) | 1470 B: Gbit/s | A/N | 18 B: packets/s | A/N | CPU ns/packet at 1 Gbit/s | A/N CPU |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for size in sweep.sizes() {
        for filter in &sweep.filters {
            let Some(f) = sweep
                .ok_runs(filter, size)
                .find(|r| has(r))
                .and_then(figures)
            else {
                continue;
            };
            let traffic = f.traffic.as_ref().expect("checked by has");
            let nvn = traffic
                .none_vs_none
                .as_ref()
                .and_then(|t| t.ratio_pps.as_ref())
                .map_or_else(|| "-".into(), records::Spread::ratio);
            let ratio = |t: Option<&records::Throughput>, cpu: bool| {
                t.and_then(|t| if cpu { t.ratio_cpu } else { t.ratio_pps })
                    .map_or_else(|| "-".into(), |r| r.compact_ratio())
            };
            let (big, small, paced) = (
                throughput(f, 1470, false),
                throughput(f, 18, false),
                throughput(f, 1470, true),
            );
            let _ = writeln!(
                md,
                "| {filter} | {size} | {nvn} | {} | {} | {} | {} | {} | {} |",
                big.map_or_else(|| "-".into(), |t| t.filter.received_gbps.show(2)),
                ratio(big, false),
                small.map_or_else(|| "-".into(), |t| t.filter.received_pps.show(0)),
                ratio(small, false),
                paced.map_or_else(|| "-".into(), |t| t.filter.cpu_ns_per_packet.show(0)),
                ratio(paced, true),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nRound trips at 100 us intervals, microseconds, with the filter: median [min..max] over rounds \
         of each round's percentile, and the per-round A/N ratio of the median:\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | UDP p50 | p99 | A/N p50 | TCP p50 | p99 | A/N p50 |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for size in sweep.sizes() {
        for filter in &sweep.filters {
            let Some(f) = sweep
                .ok_runs(filter, size)
                .find(|r| has(r))
                .and_then(figures)
            else {
                continue;
            };
            let mut cells = Vec::new();
            for proto in records::Protocol::BOTH {
                match latency(f, proto) {
                    Some(l) => {
                        cells.push(l.filter.p50_us.show(1));
                        cells.push(l.filter.p99_us.show(1));
                        cells.push(
                            l.ratio_p50
                                .map_or_else(|| "-".into(), |r| r.compact_ratio()),
                        );
                    }
                    None => cells.extend(["-".to_owned(), "-".to_owned(), "-".to_owned()]),
                }
            }
            let _ = writeln!(md, "| {filter} | {size} | {} |", cells.join(" | "));
        }
    }
}

/// The live-update feed of each engine (`run --updates max`): rate, call latency, time to
/// enforcement, and violations, which must be 0.
fn updates_table(md: &mut String, sweep: &Sweep) {
    let rows: Vec<(&str, u64, &Figures)> = sweep
        .runs
        .iter()
        .filter(|r| r.ok())
        .filter_map(|r| Some((r.filter.as_str(), r.size, figures(r)?)))
        .filter(|(_, _, f)| f.updates.is_some())
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## {UPDATES}\n\n\
         After the load, single-entry adds and removes as fast as the filter takes them (a window of \
         entries turning over, as under a threat feed) while one probe stream goes to an address the \
         list holds throughout and one to an address it never holds. Violations: packets to the first \
         that got through plus packets to the second that were lost; they must be 0. Enforced: from the \
         start of an add call until packets to the added network stop getting through (median of 5). \
         Send path quiet / during: ns added per packet (many destinations) without and while the feed \
         runs flat out on the other CPU, where the send path was measured.\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | updates/s | call p50 (us) | call p99 (us) | enforced after (us) | violations | send path quiet / during (ns) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (filter, size, f) in rows {
        let u = f.updates.as_ref().expect("filtered above");
        let churn = match (
            send_path(f, SendCase::Many),
            send_path(f, SendCase::DuringUpdates),
        ) {
            (Some(quiet), Some(during)) => format!(
                "{:+.0} / {:+.0} [{:+.0}..{:+.0}]",
                quiet.added_ns, during.added_ns, during.added_ns_min, during.added_ns_max
            ),
            _ => "-".into(),
        };
        let _ = writeln!(
            md,
            "| {filter} | {size} | {} | {} | {} | {} | {} | {churn} |",
            rate(u.updates_per_second),
            fmt(Some(u.call_us[0]), 1),
            fmt(Some(u.call_us[1]), 1),
            fmt(u.enforcement_us, 0),
            u.violations,
        );
    }
}

fn program_cost_table(md: &mut String, sweep: &Sweep) {
    let costs = |run: &super::Run| -> Vec<(CostCase, f64)> {
        figures(run)
            .map(|f| &f.program_costs)
            .into_iter()
            .flatten()
            .map(|c| (c.case, c.median_ns))
            .collect()
    };
    let Some(first) = sweep.runs.iter().find(|r| r.ok() && !costs(r).is_empty()) else {
        return;
    };
    let cases: Vec<CostCase> = costs(first).into_iter().map(|(c, _)| c).collect();
    let headers: Vec<String> = cases.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        md,
        "\n## eBPF program cost per run (BPF_PROG_TEST_RUN, ns, median of rounds)\n\n\
         Warm cache: one packet repeated. The cold rows look up 64 pseudo-random addresses per run (IPv4, and \
         IPv6 in 2000::/3 where the list holds IPv6); the per-lookup rows are their difference over 64.\n"
    );
    let _ = writeln!(md, "| filter | entries | {} |", headers.join(" | "));
    let _ = writeln!(md, "|---|---:|{}", "---:|".repeat(cases.len()));
    for size in sweep.sizes() {
        for filter in &sweep.filters {
            let runs: Vec<_> = sweep
                .ok_runs(filter, size)
                .filter(|r| !costs(r).is_empty())
                .collect();
            if runs.is_empty() {
                continue;
            }
            let cells: Vec<String> = cases
                .iter()
                .map(|case| {
                    let v: Vec<f64> = runs
                        .iter()
                        .flat_map(|r| costs(r))
                        .filter(|(c, _)| c == case)
                        .map(|(_, ns)| ns)
                        .collect();
                    fmt((!v.is_empty()).then(|| median(v)), 1)
                })
                .collect();
            let _ = writeln!(md, "| {filter} | {size} | {} |", cells.join(" | "));
        }
    }
}

/// `comparison.md`: this sweep against `base`, every figure both have, each with its
/// spread over runs where it has one, and the ratio (now / baseline).
pub fn comparison(sweep: &Sweep, base: &Sweep, base_name: &str) -> String {
    let mut md = format!(
        "# Against {base_name}\n\nThis sweep's figures over the baseline's, per filter and size: \
         now, then, and the ratio (below 1: less now). Send-path figures carry the spread of \
         their runs [min..max]; a ratio inside the two spreads' overlap is no difference \
         resolved. summary.md beside this file is the sweep's own report.\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | load (s) | kernel memory | one destination (ns) | many destinations (ns) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    let scalar = |filter: &str,
                  size: u64,
                  pick: &dyn Fn(&Figures) -> Option<f64>,
                  unit: &dyn Fn(f64) -> String| {
        let (now, then) = (
            sweep.median_of(filter, size, pick)?,
            base.median_of(filter, size, pick)?,
        );
        Some(format!(
            "{} vs {} (x{:.2})",
            unit(now),
            unit(then),
            now / then
        ))
    };
    let paired = |filter: &str, size: u64, case: SendCase| {
        let now = sweep
            .first_ok(filter, size)
            .and_then(figures)
            .and_then(|f| send_path(f, case))?;
        let then = base
            .first_ok(filter, size)
            .and_then(figures)
            .and_then(|f| send_path(f, case))?;
        let overlap =
            now.added_ns_min <= then.added_ns_max && then.added_ns_min <= now.added_ns_max;
        Some(format!(
            "{:+.0} [{:+.0}..{:+.0}] vs {:+.0} [{:+.0}..{:+.0}]{}",
            now.added_ns,
            now.added_ns_min,
            now.added_ns_max,
            then.added_ns,
            then.added_ns_min,
            then.added_ns_max,
            if overlap { " ~" } else { "" }
        ))
    };
    let seconds = |v: f64| format!("{v:.3}");
    let bytes = |v: f64| records::human_bytes(v as i64, false);
    for size in sweep.sizes() {
        for filter in &sweep.filters {
            let cells = [
                scalar(filter, size, &load_seconds, &seconds),
                scalar(filter, size, &memory_bytes, &bytes),
                paired(filter, size, SendCase::One),
                paired(filter, size, SendCase::Many),
            ];
            if cells.iter().all(Option::is_none) {
                continue;
            }
            let cells: Vec<String> = cells
                .into_iter()
                .map(|c| c.unwrap_or_else(|| "-".into()))
                .collect();
            let _ = writeln!(md, "| {filter} | {size} | {} |", cells.join(" | "));
        }
    }
    let _ = writeln!(
        md,
        "\n`~`: the two runs' spreads overlap (no difference resolved)."
    );
    md
}

/// How far from 1 the none-vs-none traffic ratio may be before summary.md warns.
const NONE_VS_NONE_TOLERANCE: f64 = 0.03;

fn warnings(md: &mut String, sweep: &Sweep) {
    let mut all = Vec::new();
    // What a filter could not do as asked (a fallback): its figures are not its path's.
    for run in &sweep.runs {
        for w in run.record.iter().flat_map(|r| &r.warnings) {
            all.push(format!("- {} at {}: {w}", run.filter, run.size));
        }
    }
    for run in sweep.runs.iter().filter(|r| r.ok()) {
        let Some(send_path) = figures(run).and_then(|f| f.send_path.as_ref()) else {
            continue;
        };
        for w in &send_path.warnings {
            all.push(format!("- {} at {}: {w}", run.filter, run.size));
        }
    }
    for run in sweep.runs.iter().filter(|r| r.ok()) {
        let check = figures(run)
            .and_then(|f| f.traffic.as_ref())
            .and_then(|t| t.none_vs_none.as_ref())
            .and_then(|n| n.ratio_pps);
        if let Some(ratio) = check.filter(|r| (r.median - 1.0).abs() > NONE_VS_NONE_TOLERANCE) {
            all.push(format!(
                "- {} at {}: traffic with no filter on either testbed differed by {:+.1}% (none vs none): \
                 throughput differences smaller than that are noise here (a busy machine; run again when it is quiet)",
                run.filter,
                run.size,
                (ratio.median - 1.0) * 100.0
            ));
        }
    }
    if !all.is_empty() {
        let _ = writeln!(md, "\n## Warnings\n\n{}", all.join("\n"));
    }
}
