//! `egress-bench churn` (hidden, for the crash tests): a filter in this namespace loaded with
//! one list, then replaced and synced between two lists without end, until the process is
//! killed. Both lists hold the testbed's denied probe networks, so whatever point a kill -9
//! lands on, a filter that never opens a window still drops the denied probes afterwards.

use anyhow::Result;
use clap::Args;
use filter_core::engine::{Placement, Target};
use filter_core::generate::{Mix, generate};
use filter_core::{CidrList, Family, NetNs, Tag};

use crate::filters::{EngineFlags, FilterKind};

/// Arguments of `egress-bench churn`.
#[derive(Debug, Args)]
pub struct ChurnArgs {
    /// The filter to keep changing.
    #[arg(long)]
    pub filter: FilterKind,
    /// The interface whose egress eBPF filters hook.
    #[arg(long)]
    pub interface: String,
    /// The cgroup eBPF filters hook with `--attach cgroup` or `connect`.
    #[arg(long)]
    pub cgroup: Option<std::path::PathBuf>,
    /// Name the filter's objects `egb-<ID>-...` (claimed like a run's).
    #[arg(long)]
    pub run_id: String,
    /// Generated entries per family in each of the two lists.
    #[arg(long, default_value_t = 20_000)]
    pub rules: usize,
    #[command(flatten)]
    pub engine: EngineFlags,
}

/// Says `loading`, loads the first list, says `loaded` on standard output, then alternates replaces and
/// syncs between the two lists until killed.
///
/// # Errors
/// When the filter refuses a change: a crash test must not mistake that for a kill.
pub fn churn(args: &ChurnArgs) -> Result<()> {
    use std::io::Write as _;
    let tag = Tag::new(&args.run_id)?;
    let _claim = testbed::RunClaim::take(&tag)?;
    // The denied probe networks first and last (IPv4: the /24 before every generated entry,
    // the /32 after), so that a load cut short that enforced part of a list shows.
    let [first, last_v4, last_v6] = testbed::denied_probe_nets();
    let lists: [CidrList; 2] = [1, 2].map(|seed| {
        let mut list = CidrList::new();
        list.push(first);
        list.extend(generate(args.rules, seed, Mix::Default, &Family::BOTH).iter());
        list.push(last_v4);
        list.push(last_v6);
        list
    });
    let options = args.engine.options();
    let target = match args.filter.target_kind(&options) {
        filter_core::TargetKind::Egress => Target::egress(args.interface.clone()),
        filter_core::TargetKind::Cgroup => Target::cgroup(
            args.cgroup
                .clone()
                .ok_or_else(|| anyhow::anyhow!("a cgroup attach needs --cgroup"))?,
        ),
    };
    let placement = Placement {
        netns: NetNs::current(),
        tag,
        target,
        options,
    };
    let mut filter = args.filter.build(&placement)?;
    println!("loading");
    std::io::stdout().flush()?;
    filter.load(&lists[0])?;
    println!("loaded");
    std::io::stdout().flush()?;
    loop {
        for list in [&lists[1], &lists[0]] {
            filter.replace(list)?;
        }
        for list in [&lists[1], &lists[0]] {
            filter.sync(list)?;
        }
    }
}
