//! `egress-bench run`: one filter, one list, one testbed ([`local`]) or this host against
//! `egress-bench serve` ([`two_hosts`]); the record is written and summed up in text
//! ([`summary`]).

mod local;
mod summary;
mod two_hosts;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use filter_core::Family;
use filter_core::engine::Options;
use filter_iptables::Backend;
use filter_tcbpf::Attach;
use indicatif::{ProgressBar, ProgressStyle};
use testbed::{ALLOWED_V4, ALLOWED_V6, DENIED_HOST_V4, DENIED_V4, DENIED_V6, NEAR_MISS_V4, Probe};

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
    /// The engine options the flags set.
    fn options(&self) -> Options {
        let mut options = Options::of([
            (filter_iptables::BACKEND_OPTION.key, self.backend.name()),
            (filter_tcbpf::ATTACH_OPTION.key, self.attach.name()),
        ]);
        if let Some(maxelem) = self.ipset_maxelem {
            options.set(filter_ipset::MAXELEM_OPTION, maxelem.to_string());
        }
        options
    }
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse()
}

fn parse_attach(s: &str) -> Result<Attach, String> {
    s.parse()
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
    summary::print(record);
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

/// A probe's outcome as records name it.
fn probe_name(probe: Probe) -> &'static str {
    match probe {
        Probe::Delivered => "delivered",
        Probe::Dropped => "dropped",
    }
}
