//! summary.md: a table per metric, with ratios to the reference loaders and to no filter.

use std::fmt::Write as _;

use serde_json::Value;

use super::{Sweep, load_seconds, median, memory_bytes, program_cost, send_path};
use filter_core::{Registry, Variant};

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
pub fn summary(sweep: &Sweep, baseline: Option<&Sweep>, plots: &[String]) -> String {
    let mut md = String::from("# egress-bench sweep\n\n");
    if !sweep.description.is_empty() {
        let _ = writeln!(md, "{}\n", sweep.description);
    }
    load_table(&mut md, sweep);
    scale_table(&mut md, sweep);
    send_path_table(&mut md, sweep);
    traffic_tables(&mut md, sweep);
    program_cost_table(&mut md, sweep);
    updates_table(&mut md, sweep);
    if let Some(base) = baseline {
        comparison(&mut md, sweep, base);
    }
    warnings(&mut md, sweep);
    if !plots.is_empty() {
        let _ = writeln!(
            md,
            "\n## Plots\n\n{}",
            plots
                .iter()
                .map(|p| format!("- `{p}`"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    md
}

fn load_table(md: &mut String, sweep: &Sweep) {
    let _ = writeln!(
        md,
        "## Set-up\n\nMedians over runs. Enforcement: from the start of the load until a probe stream \
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
        for filter in &sweep.filters {
            if let Some(why) = sweep.missing(filter, size) {
                let _ = writeln!(md, "| {filter} | {size} | {why} | | | | |");
                continue;
            }
            let get = |key: &str| sweep.median_of(filter, size, |f| f[key].as_f64());
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
                fmt(get("load_seconds"), 3),
                fmt(get("enforcement_seconds"), 3),
                fmt(get("teardown_seconds"), 3),
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
        for filter in &sweep.filters {
            if let Some(why) = sweep.missing(filter, size) {
                let _ = writeln!(md, "| {filter} | {size} | | {why} | | | |");
                continue;
            }
            let Some(run) = sweep.first_ok(filter, size) else {
                continue;
            };
            let (r, f) = (&run.record, &run.record["figures"]);
            let stats = &r["list"]["stats"];
            let list = format!(
                "{} distinct, {} covered, {:.1}% of v4",
                stats["distinct"].as_u64().unwrap_or(0),
                stats["covered"].as_u64().unwrap_or(0),
                stats["v4_space_denied"].as_f64().unwrap_or(f64::NAN) * 100.0
            );
            let memory = format!(
                "{} / {}",
                mib(f["stats"]["kernel_memory"]["bytes"].as_f64()),
                mib(f["kernel_allocations_delta_bytes"].as_f64())
            );
            let rss = mib(r["peak_memory"]["egress_bench_bytes"].as_f64());
            let cost = |case: &str| program_cost(f, case);
            let mut per_packet = Vec::new();
            if let (Some(floor), Some(hit), Some(miss)) = (
                cost("empty program (floor)"),
                cost("v4 hit"),
                cost("v4 miss"),
            ) {
                per_packet.push(format!(
                    "warm hit {:+.0} / miss {:+.0} (floor {floor:.0})",
                    hit - floor,
                    miss - floor
                ));
            }
            for (family, case) in [
                ("", "cold: per random IPv4 lookup"),
                (" v6", "cold: per random IPv6 lookup"),
            ] {
                if let Some(cold) = cost(case) {
                    per_packet.push(format!("cold{family} {cold:.0}"));
                }
            }
            if let (Some(one), Some(many)) = (
                send_path(f, "one_destination")["added_ns"].as_f64(),
                send_path(f, "many_destinations")["added_ns"].as_f64(),
            ) {
                per_packet.push(format!("send path {one:+.0} / {many:+.0}"));
            }
            let _ = writeln!(
                md,
                "| {filter} | {size} | {list} | {} | {memory} | {rss} | {} |",
                fmt(f["load_seconds"].as_f64(), 2),
                per_packet.join("; ")
            );
        }
    }
}

fn cell(sweep: &Sweep, filter: &str, size: u64, case: &str) -> Option<String> {
    let run = sweep.ok_runs(filter, size).next()?;
    let p = send_path(&run.record["figures"], case);
    let added = p["added_ns"].as_f64()?;
    Some(format!(
        "{added:+.0} [{:+.0}..{:+.0}] x{:.3}",
        p["added_ns_min"].as_f64()?,
        p["added_ns_max"].as_f64()?,
        p["ratio"].as_f64()?
    ))
}

fn send_path_table(md: &mut String, sweep: &Sweep) {
    let has = |filter: &str, size: u64| {
        sweep
            .ok_runs(filter, size)
            .any(|r| !r.record["figures"]["send_path"].is_null())
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
        "\n## Send path: cost added per packet\n\n64-byte UDP through sink devices, one pinned sender alternating \
         chunks between a namespace with the filter and one without (ABBA); ns per packet, median of runs \
         [min..max], and the ratio to no filter. Many destinations: 32,768 addresses of 198.19.0.0/17 through \
         one gateway. `none vs none` is the method's zero, measured in the same run. For eBPF filters, \
         `above floor` subtracts `tcbpf-empty` (the same hook with a program that returns at once). \
         `tcbpf-cold` looks up each destination mixed with a counter into a pseudo-random address (the \
         cache-cold trie of traffic to the whole Internet, which the test range never makes) and drops \
         nothing; its `above floor` subtracts `tcbpf-mix`, the same program without the lookup: the cost \
         of a cold lookup on the real send path; `tcbpf-dir-cold` does the same on the constant-time \
         table. `@clsact`: attached through a clsact qdisc instead of TCX.\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | none vs none | one destination | many destinations | above floor (one / many) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    for size in sweep.sizes() {
        for filter in sweep.filters.iter().filter(|f| has(f, size)) {
            let floor = |case: &str| {
                let base = yardstick(filter, |d| d.send_path_floor)?;
                let added = |f: &Value| send_path(f, case)["added_ns"].as_f64();
                Some(sweep.median_of(filter, size, added)? - sweep.median_of(&base, size, added)?)
            };
            let above = match (floor("one_destination"), floor("many_destinations")) {
                (Some(a), Some(b)) => format!("{a:+.0} / {b:+.0}"),
                _ => String::new(),
            };
            let nvn = sweep
                .median_of(filter, size, |f| {
                    send_path(f, "none_vs_none")["added_ns"].as_f64()
                })
                .map_or_else(|| "-".into(), |v| format!("{v:+.1}"));
            let _ = writeln!(
                md,
                "| {filter} | {size} | {nvn} | {} | {} | {above} |",
                cell(sweep, filter, size, "one_destination").unwrap_or_default(),
                cell(sweep, filter, size, "many_destinations").unwrap_or_default(),
            );
        }
    }
}

fn traffic_tables(md: &mut String, sweep: &Sweep) {
    let runs: Vec<&super::Run> = sweep
        .runs
        .iter()
        .filter(|r| r.ok() && !r.record["figures"]["traffic"].is_null())
        .collect();
    if runs.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Traffic through the filter (testbed veth, to an allowed address)\n\n\
         UDP from the client to the server namespace for 1 s; Gbit/s of Ethernet frames received; CPU: busy \
         time of all cores (softirq included, /proc/stat) per received packet. Ratios to `none` at the same size. \
         Both ends share this machine's two cores, so these figures swing between runs: the send-path table \
         above resolves small costs far better.\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | 1470 B: Gbit/s (vs none) | 18 B: packets/s (vs none) | CPU ns/packet at 1 Gbit/s | iperf3 UDP Gbit/s |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
    let tput = |f: &Value, payload: u64, offered: bool, key: &str| {
        f["traffic"]["throughput"]
            .as_array()?
            .iter()
            .find(|t| t["payload_bytes"] == payload && t["offered_bps"].is_null() != offered)?[key]
            .as_f64()
    };
    for size in sweep.sizes() {
        for filter in &sweep.filters {
            if !runs.iter().any(|r| &r.filter == filter && r.size == size) {
                continue;
            }
            let mine = |payload, offered, key: &'static str| {
                sweep.median_of(filter, size, |f| tput(f, payload, offered, key))
            };
            let none = |payload, offered, key: &'static str| {
                sweep.median_of("none", size, |f| tput(f, payload, offered, key))
            };
            let with_ratio = |v: Option<f64>, base: Option<f64>, digits: usize| match (v, base) {
                (Some(v), Some(b)) if b > 0.0 => format!("{v:.digits$} ({:.2})", v / b),
                (v, _) => fmt(v, digits),
            };
            let iperf = sweep.median_of(filter, size, |f| {
                f["traffic"]["iperf3"]["bits_per_second"]
                    .as_f64()
                    .map(|b| b / 1e9)
            });
            let _ = writeln!(
                md,
                "| {filter} | {size} | {} | {} | {} | {} |",
                with_ratio(
                    mine(1470, false, "received_gbps"),
                    none(1470, false, "received_gbps"),
                    2
                ),
                with_ratio(
                    mine(18, false, "received_pps"),
                    none(18, false, "received_pps"),
                    0
                ),
                fmt(mine(1470, true, "cpu_ns_per_packet"), 0),
                fmt(iperf, 2),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nRound trips, 2,000 at 100 us intervals, microseconds (HDR histogram):\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | UDP p50 | p90 | p99 | p99.9 | max | TCP p50 | p90 | p99 | p99.9 | max |"
    );
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let lat = |f: &Value, proto: &str, key: &str| {
        f["traffic"]["latency"]
            .as_array()?
            .iter()
            .find(|l| l["protocol"] == proto)?[key]
            .as_f64()
    };
    for size in sweep.sizes() {
        for filter in &sweep.filters {
            if !runs.iter().any(|r| &r.filter == filter && r.size == size) {
                continue;
            }
            let mut cells = Vec::new();
            for proto in ["udp", "tcp"] {
                for key in ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"] {
                    cells.push(fmt(
                        sweep.median_of(filter, size, |f| lat(f, proto, key)),
                        1,
                    ));
                }
            }
            let _ = writeln!(md, "| {filter} | {size} | {} |", cells.join(" | "));
        }
    }
}

/// The live-update feed of each engine (`run --updates max`): rate, call latency, time to
/// enforcement, and violations, which must be 0.
fn updates_table(md: &mut String, sweep: &Sweep) {
    let rows: Vec<(&str, u64, &Value)> = sweep
        .runs
        .iter()
        .filter(|r| r.ok() && !r.record["figures"]["updates"].is_null())
        .map(|r| (r.filter.as_str(), r.size, &r.record["figures"]["updates"]))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Live updates\n\n\
         After the load, single-entry adds and removes as fast as the filter takes them (a window of \
         entries turning over, as under a threat feed) while one probe stream goes to an address the \
         list holds throughout and one to an address it never holds. Violations: packets to the first \
         that got through plus packets to the second that were lost; they must be 0. Enforced: from the \
         start of an add call until packets to the added network stop getting through (median of 5).\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | updates/s | call p50 (us) | call p99 (us) | enforced after (us) | violations |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for (filter, size, u) in rows {
        let _ = writeln!(
            md,
            "| {filter} | {size} | {} | {} | {} | {} | {} |",
            fmt(u["updates_per_second"].as_f64(), 0),
            fmt(u["call_us"][0].as_f64(), 1),
            fmt(u["call_us"][1].as_f64(), 1),
            fmt(u["enforcement_us"].as_f64(), 0),
            u["violations"]
                .as_u64()
                .map_or_else(|| "-".into(), |v| v.to_string()),
        );
    }
}

fn program_cost_table(md: &mut String, sweep: &Sweep) {
    let costs = |run: &super::Run| -> Vec<(String, f64)> {
        run.record["figures"]["program_costs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some((c["case"].as_str()?.to_owned(), c["median_ns"].as_f64()?)))
            .collect()
    };
    let Some(first) = sweep.runs.iter().find(|r| r.ok() && !costs(r).is_empty()) else {
        return;
    };
    let cases: Vec<String> = costs(first).into_iter().map(|(c, _)| c).collect();
    let _ = writeln!(
        md,
        "\n## eBPF program cost per run (BPF_PROG_TEST_RUN, ns, median of rounds)\n\n\
         Warm cache: one packet repeated. The cold rows look up 64 pseudo-random addresses per run (IPv4, and \
         IPv6 in 2000::/3 where the list holds IPv6); the per-lookup rows are their difference over 64.\n"
    );
    let _ = writeln!(md, "| filter | entries | {} |", cases.join(" | "));
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

fn comparison(md: &mut String, sweep: &Sweep, base: &Sweep) {
    let _ = writeln!(
        md,
        "\n## Against the baseline\n\nThis sweep over the baseline (below 1: faster now).\n"
    );
    let _ = writeln!(
        md,
        "| filter | entries | load | added per packet, one destination |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|");
    let one = |f: &Value| send_path(f, "one_destination")["added_ns"].as_f64();
    for size in sweep.sizes() {
        for filter in &sweep.filters {
            let ratio = |pick: &dyn Fn(&Value) -> Option<f64>| {
                Some(sweep.median_of(filter, size, pick)? / base.median_of(filter, size, pick)?)
            };
            let (load, send) = (ratio(&load_seconds), ratio(&one));
            if load.is_none() && send.is_none() {
                continue;
            }
            let _ = writeln!(
                md,
                "| {filter} | {size} | {} | {} |",
                load.map_or_else(|| "-".into(), |r| format!("{r:.2}x")),
                send.map_or_else(|| "-".into(), |r| format!("{r:.2}x")),
            );
        }
    }
}

fn warnings(md: &mut String, sweep: &Sweep) {
    let mut all = Vec::new();
    for run in sweep.runs.iter().filter(|r| r.ok()) {
        for w in run.record["figures"]["send_path"]["warnings"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(w) = w.as_str() {
                all.push(format!("- {} at {}: {w}", run.filter, run.size));
            }
        }
    }
    if !all.is_empty() {
        let _ = writeln!(md, "\n## Warnings\n\n{}", all.join("\n"));
    }
}
