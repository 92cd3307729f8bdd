//! `egress-bench run`: one filter, one list, one testbed ([`local`]) or this host against
//! `egress-bench serve` ([`two_hosts`]); the record is written and summed up in text by the
//! report's text exporter.

mod local;
mod two_hosts;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use filter_core::engine::{Placement, Target};
use indicatif::{ProgressBar, ProgressStyle};
use testbed::Probe;

use crate::filters::FilterKind;
use crate::list::ListArgs;
use crate::record::Record;

/// Gap between the probe packets that time enforcement.
const ENFORCEMENT_INTERVAL: Duration = Duration::from_micros(20);

/// Arguments of `egress-bench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The filter to install (`egress-bench filters` lists them).
    #[arg(long)]
    pub filter: FilterKind,
    #[command(flatten)]
    pub list: ListArgs,
    #[command(flatten)]
    pub engine: crate::filters::EngineFlags,
    /// Skip timing the eBPF program with BPF_PROG_TEST_RUN (a few seconds).
    #[arg(long)]
    pub no_program_cost: bool,
    /// Also measure what the filter adds to the cost of sending a packet (paired rounds
    /// through sink devices, one and many destinations, with a none-vs-none check; ~15 s).
    #[arg(long)]
    pub send_path: bool,
    /// With --send-path, also a new flow per packet (a new destination port on each pass
    /// over the addresses): what filters with conntrack pay for a first packet (~8 s).
    #[arg(long, requires = "send_path")]
    pub new_flows: bool,
    /// Also measure traffic through the filter to an allowed address, alternated N-A-A-N
    /// with a twin testbed without a filter over rounds: UDP throughput (1470- and 18-byte
    /// payloads, and at 1 Gbit/s offered), CPU time per packet, UDP and TCP round-trip
    /// percentiles, a none-vs-none check before the load, and iperf3 as a cross-check (~25 s).
    #[arg(long)]
    pub traffic: bool,
    /// UDP flows of the traffic measurement (sockets with their own source port).
    #[arg(long, default_value_t = 1, requires = "traffic")]
    pub flows: usize,
    /// N-A-A-N rounds of each traffic figure (the report gives median and range).
    #[arg(long, default_value_t = 7, requires = "traffic")]
    pub traffic_rounds: u32,
    /// Milliseconds of each leg of a traffic round.
    #[arg(long, default_value_t = 150, requires = "traffic")]
    pub traffic_leg_ms: u64,
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
    #[command(flatten)]
    pub updates: crate::updates::UpdateArgs,
    /// Write the JSON record here.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Name the run's kernel objects `egb-<ID>-...` (1 to 8 letters or digits).
    #[arg(long)]
    pub run_id: Option<String>,
}

impl RunArgs {
    /// Where and how the filter is placed: a namespace, a tag, and an interface's egress or
    /// the client side's cgroup, as the filter's attach kind hooks.
    ///
    /// # Errors
    /// A cgroup attach where there is no client cgroup (two-host runs, no cgroup v2).
    fn placement(
        &self,
        netns: &filter_core::NetNs,
        tag: &filter_core::Tag,
        interface: String,
        cgroup: Option<&std::path::Path>,
    ) -> Result<Placement> {
        let options = self.engine.options();
        let target = match self.filter.target_kind(&options) {
            filter_core::TargetKind::Egress => Target::egress(interface),
            filter_core::TargetKind::Cgroup => Target::cgroup(cgroup.ok_or_else(|| {
                anyhow::anyhow!(
                    "{} with a cgroup attach needs the testbed's client cgroup (a mounted cgroup \
                     v2 hierarchy); two-host runs hook interfaces only",
                    self.filter.name()
                )
            })?),
        };
        Ok(Placement {
            netns: netns.clone(),
            tag: tag.clone(),
            target,
            options,
        })
    }
}

/// The run's tag (`--run-id`, or a fresh one), claimed for this process: a second run
/// cannot take it while this one lives, and `cleanup` leaves its objects alone.
fn claim_tag(args: &RunArgs) -> Result<(filter_core::Tag, testbed::RunClaim)> {
    let Some(id) = &args.run_id else {
        return Ok(testbed::RunClaim::fresh()?);
    };
    let tag = filter_core::Tag::new(id)?;
    let claim = testbed::RunClaim::take(&tag)?;
    Ok((tag, claim))
}

/// Runs `egress-bench run`: in a testbed, or against a server with `--server`.
pub fn run(args: &RunArgs) -> Result<()> {
    testbed::install_signal_cleanup()?;
    match &args.server {
        Some(server) => two_hosts::run(args, server),
        None => local::run(args),
    }
}

/// What a run found: its list, verdict, figures and machine.
type Found = (
    crate::list::ListInfo,
    crate::record::Verdict,
    Option<crate::record::Figures>,
    crate::system::Environment,
);

/// The record of a run that has just ended (its time and peak memory read now).
fn record(args: &RunArgs, backend: String, tag: &filter_core::Tag, found: Found) -> Record {
    let (list, verdict, figures, environment) = found;
    Record {
        filter: args.filter.name().into(),
        backend,
        warnings: Vec::new(),
        two_hosts: None,
        run_id: tag.to_string(),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        list,
        verdict,
        figures,
        environment,
        peak_memory: crate::system::peak_memory(),
    }
}

fn finish(args: &RunArgs, record: &Record) -> Result<()> {
    if let Some(path) = &args.output {
        let json = serde_json::to_vec_pretty(record)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    print!("{}", crate::report::text::render(record));
    if !record.verdict.ok {
        bail!(
            "the {} filter did not behave as a filter should; no figures reported",
            record.filter
        );
    }
    Ok(())
}

fn new_spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// The verdict of both kinds of run: each `(denied, allowed)` pair probed with `probe`; the
/// denied address must be dropped when the filter filters, the allowed one always delivered.
fn verdict(
    kind: FilterKind,
    pairs: &[(IpAddr, IpAddr)],
    mut probe: impl FnMut(IpAddr) -> Result<Probe>,
) -> Result<crate::record::Verdict> {
    let denied_expected = if kind.filters() {
        Probe::Dropped
    } else {
        Probe::Delivered
    };
    let mut probes = Vec::new();
    for &(denied, allowed) in pairs {
        for (address, expected) in [(denied, denied_expected), (allowed, Probe::Delivered)] {
            let observed = probe(address)?;
            probes.push(crate::record::ProbeResult {
                address: address.to_string(),
                expected: outcome(expected),
                observed: outcome(observed),
            });
        }
    }
    let ok = probes.iter().all(|p| p.expected == p.observed);
    Ok(crate::record::Verdict { ok, probes })
}

/// A probe's outcome as records hold it.
fn outcome(probe: Probe) -> records::ProbeOutcome {
    match probe {
        Probe::Delivered => records::ProbeOutcome::Delivered,
        Probe::Dropped => records::ProbeOutcome::Dropped,
        Probe::Unreachable(_) => records::ProbeOutcome::Unreachable,
    }
}
