//! `egress-bench run`: one filter, one list, one testbed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use clap::Args;
use filter_core::{Family, Tag, count};
use filter_iptables::Backend;
use filter_tcbpf::Attach;
use indicatif::{ProgressBar, ProgressStyle};
use testbed::{
    ALLOWED_V4, ALLOWED_V6, DENIED_HOST_V4, DENIED_V4, DENIED_V6, NEAR_MISS_V4, Probe, Testbed,
};

use crate::filters::{FilterKind, Placement};
use crate::list::{self, ListArgs};
use crate::record::{Figures, ProbeResult, Record, Verdict};
use crate::system::{self, Environment};

/// Gap between the probe packets that time enforcement.
const ENFORCEMENT_INTERVAL: Duration = Duration::from_micros(20);

/// Arguments of `egress-bench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The filter to install.
    #[arg(long, value_enum)]
    pub filter: FilterKind,
    #[command(flatten)]
    pub list: ListArgs,
    /// iptables back-end for the rules of iptables and ipset filters.
    #[arg(long, default_value = "nft", value_parser = parse_backend)]
    pub backend: Backend,
    /// tc attach mode of eBPF filters: auto (TCX on 6.6+, else clsact), tcx, clsact.
    #[arg(long, default_value = "auto", value_parser = parse_attach)]
    pub attach: Attach,
    /// Create ipsets with this maxelem instead of twice the list, and refuse longer lists as
    /// the kernel would: Calico Felix's default MaxIpsetSize is 1048576, where the published
    /// benchmark saw "Hash is full, cannot add more elements".
    #[arg(long)]
    pub ipset_maxelem: Option<u32>,
    /// Skip timing the eBPF program with BPF_PROG_TEST_RUN (a few seconds).
    #[arg(long)]
    pub no_program_cost: bool,
    /// Also measure what the filter adds to the cost of sending a packet (paired rounds
    /// through sink devices, one and many destinations, with a none-vs-none check; ~15 s).
    #[arg(long)]
    pub send_path: bool,
    /// Also measure traffic through the filter to an allowed address: UDP throughput (1470-
    /// and 18-byte payloads, and at 1 Gbit/s offered), CPU time per packet, UDP and TCP
    /// round-trip percentiles, and iperf3 as a cross-check (~8 s).
    #[arg(long)]
    pub traffic: bool,
    /// Two hosts: drive `egress-bench serve` at `ADDR[:PORT]` instead of building a testbed,
    /// with the filter in this host's own network stack (needs --on-host).
    #[arg(long, requires = "on_host")]
    pub server: Option<String>,
    /// Allow changing this host's own firewall and tc hooks (two-host mode). Everything is
    /// named `egb-<run id>` and removed on exit, error and Ctrl-C.
    #[arg(long)]
    pub on_host: bool,
    /// Two-host mode: another address of the server, which the run adds to the list to prove
    /// that the filter blocks (it must reach the server before the filter is loaded).
    #[arg(long, requires = "server")]
    pub denied_probe: Option<IpAddr>,
    /// Write the JSON record here.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Name the run's kernel objects `egb-<ID>-...` (1 to 8 letters or digits).
    #[arg(long)]
    pub run_id: Option<String>,
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse()
}

fn parse_attach(s: &str) -> Result<Attach, String> {
    s.parse()
}

pub fn run(args: &RunArgs) -> Result<()> {
    testbed::install_signal_cleanup()?;
    if let Some(server) = &args.server {
        return run_two_hosts(args, server);
    }
    let tag = match &args.run_id {
        Some(id) => Tag::new(id)?,
        None => Tag::random(),
    };
    let (list, list_info) = list::build(&args.list)?;
    let families = args.list.family.list();
    let environment = Environment::read();

    let bed = Testbed::with_tag(tag.clone()).context("building the testbed (needs root)")?;
    let placement = Placement {
        netns: bed.client().clone(),
        tag: tag.clone(),
        interface: bed.client_link(),
        backend: args.backend,
        attach: args.attach,
        ipset_maxelem: args.ipset_maxelem,
    };
    let mut filter = args
        .filter
        .build(&placement)
        .with_context(|| format!("setting up the {} filter", args.filter.name()))?;

    let watched: IpAddr = if families.contains(&Family::V4) {
        DENIED_V4.into()
    } else {
        DENIED_V6.into()
    };
    let memory_before = system::AllocationBaseline::read();
    let watch = bed.watch_enforcement(watched, ENFORCEMENT_INTERVAL)?;
    std::thread::sleep(Duration::from_millis(5));
    let spinner = new_spinner(format!(
        "loading {} into {}",
        count(list.len() as u64, "entry", "entries"),
        filter.name()
    ));
    let start = Instant::now();
    let loaded = filter.load(&list);
    let load_time = start.elapsed();
    spinner.finish_and_clear();
    std::thread::sleep(Duration::from_millis(50));
    let enforcement = watch.finish(start);
    loaded.with_context(|| format!("loading the list into the {} filter", filter.name()))?;
    // After the load: how a list is held can depend on the list.
    let backend = filter.backend();

    let verdict = verify(&bed, args.filter, families)?;
    let figures = if verdict.ok {
        // Read before traffic runs: sockets and queues would count as the filter's memory.
        let allocations = memory_before
            .zip(system::kernel_allocations())
            .map(|(before, after)| before.delta_to(after));
        let traffic = if args.traffic {
            let spinner = new_spinner("sending traffic through the filter".into());
            let traffic = crate::traffic::measure(&bed, &crate::traffic::Settings::default())
                .context("measuring traffic through the filter")?;
            spinner.finish_and_clear();
            Some(traffic)
        } else {
            None
        };
        let stats = filter.stats().context("reading the filter's statistics")?;
        let program_costs = if args.no_program_cost {
            Vec::new()
        } else {
            let probes = cost_probes(families);
            let timing = new_spinner(format!(
                "timing the {} program (BPF_PROG_TEST_RUN)",
                filter.name()
            ));
            let costs = filter
                .program_costs(&probes)
                .context("timing the filter program")?;
            timing.finish_and_clear();
            costs
        };
        let start = Instant::now();
        filter.teardown().context("tearing the filter down")?;
        let teardown_time = start.elapsed();
        let send_path = if args.send_path {
            Some(measure_send_path(args, &tag, &list)?)
        } else {
            None
        };
        Some(Figures {
            load_seconds: load_time.as_secs_f64(),
            enforcement_seconds: enforcement.after.map(|d| d.as_secs_f64()),
            enforcement_resolution_us: enforcement.resolution.as_secs_f64() * 1e6,
            enforcement_max_gap_us: enforcement.max_gap.as_secs_f64() * 1e6,
            teardown_seconds: teardown_time.as_secs_f64(),
            stats,
            program_costs,
            send_path,
            traffic,
            kernel_allocations_delta_bytes: allocations.as_ref().and_then(|a| a.bytes),
            kernel_allocations: allocations,
        })
    } else {
        None
    };
    drop(filter);
    bed.remove().context("removing the testbed")?;

    let record = Record {
        filter: args.filter.name(),
        backend,
        two_hosts: None,
        run_id: tag.to_string(),
        unix_time: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        list: list_info,
        verdict,
        figures,
        environment,
        peak_memory: system::PeakMemory::read(),
    };
    finish(args, &record)
}

fn finish(args: &RunArgs, record: &Record) -> Result<()> {
    if let Some(path) = &args.output {
        let json = serde_json::to_vec_pretty(record)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    print_summary(record);
    if !record.verdict.ok {
        bail!(
            "the {} filter did not behave as a filter should; no figures reported",
            record.filter
        );
    }
    Ok(())
}

/// Two hosts: the filter goes into this host's own stack, traffic goes to `egress-bench serve`.
fn run_two_hosts(args: &RunArgs, server_address: &str) -> Result<()> {
    use crate::{hostclean, remote};
    let denied = args.denied_probe.context(
        "--denied-probe ADDR is needed: another address of the server, which the run adds to the list \
         to prove that the filter blocks",
    )?;
    let tag = match &args.run_id {
        Some(id) => Tag::new(id)?,
        None => Tag::random(),
    };
    let mut server = remote::Server::connect(server_address)?;
    let probe_net = ipnet::IpNet::from(denied);
    let (list, list_info) = list::build_for(&args.list, &[server.ip], &[probe_net])?;
    if !list.iter().any(|n| n == probe_net) {
        bail!("--denied-probe {denied} is not of a family the run loads (--family)");
    }
    let interface = remote::route_interface(server.ip)?;
    let environment = Environment::read();
    println!(
        "egress-bench will change this host's network stack: the {} filter on egress of {interface} \
         (iptables chains, ipsets or tc programs named {tag}*), and remove it all on exit.",
        args.filter.name()
    );
    if !server.probe(server.ip)? {
        bail!(
            "UDP to {} port {} does not arrive: is something between the hosts blocking it?",
            server.ip,
            remote::DEFAULT_PORT + 1
        );
    }
    if !server.probe(denied)? {
        bail!(
            "--denied-probe {denied} does not reach the server before any filter: give an address the server receives"
        );
    }
    {
        let tag = tag.to_string();
        testbed::on_signal(move || {
            for item in hostclean::remove(&tag) {
                eprintln!("removed {item}");
            }
        });
    }
    let placement = Placement {
        netns: filter_core::NetNs::current(),
        tag: tag.clone(),
        interface: interface.clone(),
        backend: args.backend,
        attach: args.attach,
        ipset_maxelem: args.ipset_maxelem,
    };
    let mut filter = args.filter.build(&placement)?;
    let backend = filter.backend();
    let result = (|| -> Result<(Verdict, Option<Figures>)> {
        let start = Instant::now();
        filter
            .load(&list)
            .with_context(|| format!("loading the list into the {} filter", filter.name()))?;
        let load_time = start.elapsed();
        let expect_denied = if args.filter.filters() {
            Probe::Dropped
        } else {
            Probe::Delivered
        };
        let mut probes = Vec::new();
        for (address, expected) in [(denied, expect_denied), (server.ip, Probe::Delivered)] {
            let observed = if server.probe(address)? {
                Probe::Delivered
            } else {
                Probe::Dropped
            };
            probes.push(ProbeResult {
                address: address.to_string(),
                expected: probe_name(expected),
                observed: probe_name(observed),
            });
        }
        let ok = probes.iter().all(|p| p.expected == p.observed);
        let verdict = Verdict { ok, probes };
        if !ok {
            return Ok((verdict, None));
        }
        let traffic = if args.traffic {
            let d = Duration::from_secs(1);
            Some(crate::traffic::Traffic {
                throughput: vec![server.throughput(1470, d)?, server.throughput(18, d)?],
                latency: server.latency(2_000, Duration::from_micros(100))?,
                iperf3: None,
            })
        } else {
            None
        };
        let stats = filter.stats()?;
        let start = Instant::now();
        filter.teardown()?;
        Ok((
            verdict,
            Some(Figures {
                load_seconds: load_time.as_secs_f64(),
                enforcement_seconds: None,
                enforcement_resolution_us: 0.0,
                enforcement_max_gap_us: 0.0,
                teardown_seconds: start.elapsed().as_secs_f64(),
                stats,
                program_costs: Vec::new(),
                send_path: None,
                traffic,
                kernel_allocations_delta_bytes: None,
                kernel_allocations: None,
            }),
        ))
    })();
    drop(filter);
    let left = hostclean::remove(tag.as_str());
    let (verdict, figures) = result?;
    if !left.is_empty() {
        bail!(
            "the filter left objects behind on this host (now removed): {}",
            left.join(", ")
        );
    }
    let record = Record {
        filter: args.filter.name(),
        backend,
        two_hosts: Some(remote::TwoHosts {
            server: server.ip.to_string(),
            interface,
            denied_probe: denied.to_string(),
        }),
        run_id: tag.to_string(),
        unix_time: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        list: list_info,
        verdict,
        figures,
        environment,
        peak_memory: system::PeakMemory::read(),
    };
    finish(args, &record)
}

/// Builds a sink pair, checks none against none, loads the list into one side and measures
/// what the filter adds per packet.
fn measure_send_path(
    args: &RunArgs,
    tag: &Tag,
    list: &filter_core::CidrList,
) -> Result<crate::sendpath::SendPath> {
    use crate::sendpath;
    let spinner = new_spinner(format!(
        "measuring the send path with and without {}",
        args.filter.name()
    ));
    let pair = testbed::sink::SinkPair::new(tag.clone()).context("building the sink namespaces")?;
    let settings = sendpath::Settings::default();
    let none = sendpath::baseline(pair.filtered(), pair.bare(), &settings)?;
    let placement = Placement {
        netns: pair.filtered().clone(),
        tag: tag.clone(),
        interface: pair.filtered_link(),
        backend: args.backend,
        attach: args.attach,
        ipset_maxelem: args.ipset_maxelem,
    };
    let mut filter = args.filter.build(&placement)?;
    filter
        .load(list)
        .context("loading the list into the sink namespace")?;
    let result = sendpath::with_filter(pair.filtered(), pair.bare(), none, &settings);
    filter.teardown()?;
    drop(filter);
    pair.remove()?;
    spinner.finish_and_clear();
    result
}

fn new_spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Probes the denied and allowed addresses of every loaded family.
fn verify(bed: &Testbed, kind: FilterKind, families: &[Family]) -> Result<Verdict> {
    let mut probes = Vec::new();
    for &family in families {
        let (denied, allowed): (IpAddr, IpAddr) = match family {
            Family::V4 => (DENIED_V4.into(), ALLOWED_V4.into()),
            Family::V6 => (DENIED_V6.into(), ALLOWED_V6.into()),
        };
        let denied_expected = if kind.filters() {
            Probe::Dropped
        } else {
            Probe::Delivered
        };
        for (address, expected) in [(denied, denied_expected), (allowed, Probe::Delivered)] {
            let observed = bed.probe(address)?;
            probes.push(ProbeResult {
                address: address.to_string(),
                expected: probe_name(expected),
                observed: probe_name(observed),
            });
        }
    }
    let ok = probes.iter().all(|p| p.expected == p.observed);
    Ok(Verdict { ok, probes })
}

/// The destinations the program is timed with: a denied one (hit) and an allowed one (miss)
/// per loaded family.
fn cost_probes(families: &[Family]) -> Vec<(String, IpAddr)> {
    let mut probes = Vec::new();
    for &family in families {
        match family {
            Family::V4 => {
                probes.push(("v4 hit".to_owned(), DENIED_V4.into()));
                probes.push(("v4 miss".to_owned(), ALLOWED_V4.into()));
                probes.push(("v4 hit, /32".to_owned(), DENIED_HOST_V4.into()));
                probes.push(("v4 miss, next to a /32".to_owned(), NEAR_MISS_V4.into()));
            }
            Family::V6 => {
                probes.push(("v6 hit".to_owned(), DENIED_V6.into()));
                probes.push(("v6 miss".to_owned(), ALLOWED_V6.into()));
            }
        }
    }
    probes
}

fn probe_name(probe: Probe) -> &'static str {
    match probe {
        Probe::Delivered => "delivered",
        Probe::Dropped => "dropped",
    }
}

fn print_summary(record: &Record) {
    let list = &record.list;
    println!(
        "{}: {} ({}{}; {} distinct, {}, {} covered, {}; {:.2}% of the IPv4 space denied) [{}]",
        record.filter,
        count(list.loaded_entries as u64, "entry", "entries"),
        list.source,
        list.mix.map_or_else(String::new, |m| format!(
            " mix {m} seed {}",
            list.seed.unwrap_or(0)
        )),
        list.stats.distinct,
        count(list.stats.duplicates, "duplicate", "duplicates"),
        list.stats.covered,
        count(
            list.stats.host_bits_normalised,
            "entry with host bits normalised",
            "entries with host bits normalised"
        ),
        list.stats.v4_space_denied * 100.0,
        record.backend,
    );
    println!(
        "  peak memory of egress-bench: {:.0} MiB",
        record.peak_memory.egress_bench_bytes as f64 / f64::from(1 << 20)
    );
    for probe in &record.verdict.probes {
        let mark = if probe.expected == probe.observed {
            "ok"
        } else {
            "WRONG"
        };
        println!(
            "  probe {:<22} {:<9} (expected {}) {mark}",
            probe.address, probe.observed, probe.expected
        );
    }
    if let Some(f) = &record.figures {
        let enforcement = f
            .enforcement_seconds
            .map_or_else(|| "never".into(), |s| format!("{s:.3} s"));
        println!(
            "  load {:.3} s, enforced after {enforcement} (probe every {:.0} us, longest gap {:.0} us), teardown {:.3} s",
            f.load_seconds,
            f.enforcement_resolution_us,
            f.enforcement_max_gap_us,
            f.teardown_seconds
        );
        if let Some(mem) = &f.stats.kernel_memory {
            println!(
                "  kernel memory {:.1} MiB ({})",
                mem.bytes as f64 / (1 << 20) as f64,
                mem.source
            );
        }
        if !f.program_costs.is_empty() {
            println!("  program cost per run (BPF_PROG_TEST_RUN, median of rounds [min..max]):");
            for c in &f.program_costs {
                println!(
                    "    {:<40} {:>8.1} ns [{:.1}..{:.1}]",
                    c.case, c.median_ns, c.min_ns, c.max_ns
                );
            }
        }
        if let Some(sp) = &f.send_path {
            println!(
                "  send path, 64-byte UDP, added per packet (median of runs [min..max]), ratio to no filter:"
            );
            for p in [&sp.none_vs_none, &sp.one_destination, &sp.many_destinations] {
                let label = if std::ptr::eq(p, &sp.none_vs_none) {
                    "none vs none (the method's zero)".to_owned()
                } else {
                    format!("{:?} destination(s)", p.destinations)
                };
                println!(
                    "    {label:<34} {:>+9.1} ns [{:+.1}..{:+.1}]  x{:.3} [{:.3}..{:.3}]  (no filter: {:.0} ns/packet)",
                    p.added_ns,
                    p.added_ns_min,
                    p.added_ns_max,
                    p.ratio,
                    p.ratio_min,
                    p.ratio_max,
                    p.baseline_ns
                );
            }
            for w in &sp.warnings {
                println!("  warning: {w}");
            }
        }
        if let Some(t) = &f.traffic {
            for x in &t.throughput {
                let offered = x
                    .offered_bps
                    .map_or_else(|| "max".into(), |b| format!("{:.1} Gbit/s", b / 1e9));
                println!(
                    "  UDP {:>4}-byte payload, offered {offered}: {:.3} Gbit/s, {:.0} packets/s received of {} sent; CPU {} ns/packet",
                    x.payload_bytes,
                    x.received_gbps,
                    x.received_pps,
                    x.sent_packets,
                    x.cpu_ns_per_packet
                        .map_or_else(|| "-".into(), |c| format!("{c:.0}")),
                );
            }
            for l in &t.latency {
                println!(
                    "  {} round trip (us): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  ({} round trips)",
                    l.protocol, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.max_us, l.round_trips
                );
            }
            if let Some(i) = &t.iperf3 {
                println!(
                    "  iperf3 UDP cross-check: {:.3} Gbit/s, {} % lost",
                    i["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9,
                    i["lost_percent"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
        match &f.kernel_allocations {
            Some(system::AllocationDelta {
                bytes: Some(delta), ..
            }) => println!(
                "  kernel allocations changed by {:+.1} MiB across the load (slab+vmalloc+percpu, approximate)",
                *delta as f64 / f64::from(1 << 20)
            ),
            Some(system::AllocationDelta {
                untrusted: Some(why),
                ..
            }) => println!("  kernel allocations across the load: {why}"),
            _ => {}
        }
    }
}
