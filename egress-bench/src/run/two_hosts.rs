//! Two hosts: the filter goes into this host's own stack, traffic goes to a remote
//! `egress-bench serve`.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use testbed::Probe;

use super::record as new_record;
use super::{RunArgs, finish, verdict};
use crate::filters;
use crate::list;
use crate::record::{Figures, Verdict};
use crate::system;

/// Two hosts: the filter goes into this host's own stack, traffic goes to `egress-bench serve`.
pub(super) fn run(args: &RunArgs, server_address: &str) -> Result<()> {
    use crate::remote;
    let denied = args.denied_probe.context(
        "--denied-probe ADDR is needed: another address of the server, which the run adds to the list \
         to prove that the filter blocks",
    )?;
    let (tag, _claim) = super::claim_tag(args)?;
    let mut server = remote::Server::connect(server_address)?;
    let probe_net = ipnet::IpNet::from(denied);
    let (list, list_info) = list::build_for(&args.list, &[server.ip], &[probe_net])?;
    if !list.iter().any(|n| n == probe_net) {
        bail!("--denied-probe {denied} is not of a family the run loads (--family)");
    }
    let interface = remote::route_interface(server.ip)?;
    let environment = system::environment();
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
        testbed::on_signal(move || match filters::remove_leftovers(&tag) {
            // Never eprintln! on a signal: a closed stderr would panic the cleanup away.
            Ok(removed) => removed.iter().for_each(|item| {
                let _ = writeln!(std::io::stderr(), "removed {item}");
            }),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "egress-bench: cleaning up {tag}: {e}");
            }
        });
    }
    let placement = args.placement(
        &filter_core::NetNs::current(),
        &tag,
        interface.clone(),
        None,
    )?;
    let mut filter = args.filter.build(&placement)?;
    let mut backend = filter.backend();
    let mut warnings = Vec::new();
    let result = (|| -> Result<(Verdict, Option<Figures>)> {
        let start = Instant::now();
        filter
            .load(&list)
            .with_context(|| format!("loading the list into the {} filter", filter.name()))?;
        let load_time = start.elapsed();
        // After the load: how a list is held can depend on the list.
        backend = filter.backend();
        warnings = filter.warnings();
        let verdict = verdict(args.filter, &[(denied, server.ip)], |address| {
            Ok(if server.probe(address)? {
                Probe::Delivered
            } else {
                Probe::Dropped
            })
        })?;
        if !verdict.ok {
            return Ok((verdict, None));
        }
        let traffic = if args.traffic {
            let leg = Duration::from_millis(400);
            Some(crate::traffic::Traffic {
                none_vs_none: None,
                throughput: vec![
                    server.throughput(1470, 5, leg)?,
                    server.throughput(18, 5, leg)?,
                ],
                latency: server.latency(5, 400, Duration::from_micros(100))?,
                iperf3: None,
                pinning: records::Pinning::TwoHosts,
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
                enforcement_resolution_us: None,
                enforcement_max_gap_us: None,
                teardown_seconds: start.elapsed().as_secs_f64(),
                stats,
                kernel_count: None,
                program_costs: Vec::new(),
                send_path: None,
                traffic,
                updates: None,
                kernel_allocations: None,
            }),
        ))
    })();
    drop(filter);
    let left = filters::remove_leftovers(tag.as_str())
        .context("looking for what the filter left on this host")?;
    let (verdict, figures) = result?;
    if !left.is_empty() {
        bail!(
            "the filter left objects behind on this host (now removed): {}",
            left.join(", ")
        );
    }
    let found = (list_info, verdict, figures, environment);
    let mut record = new_record(args, backend, &tag, found);
    record.warnings = warnings;
    record.two_hosts = Some(remote::TwoHosts {
        server: server.ip.to_string(),
        interface,
        denied_probe: denied.to_string(),
    });
    finish(args, &record)
}
