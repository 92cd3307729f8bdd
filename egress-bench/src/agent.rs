//! `egress-bench agent` and `egress-bench publish`: a node's filter kept equal to a deny-list
//! in etcd (the control logic is the `node-agent` crate's), and a list written there in
//! chunks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use filter_core::engine::{Placement, Target};
use filter_core::{NetNs, ParseOptions, Tag, TargetKind};

use crate::filters::{EngineFlags, FilterKind};

/// Arguments of `egress-bench agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The filter to keep (one that outlives the agent: tcbpf or tcbpf-dir, attached with
    /// tcx, cgroup or connect).
    #[arg(long)]
    filter: FilterKind,
    /// etcd client URLs, comma-separated (http://127.0.0.1:2379).
    #[arg(long, value_delimiter = ',', required = true)]
    etcd: Vec<String>,
    /// The key prefix of the list's chunks (each key one chunk: lines, or a Calico
    /// GlobalNetworkSet resource).
    #[arg(long)]
    prefix: String,
    /// The interface whose egress is filtered (tcx attach).
    #[arg(long, required_unless_present = "cgroup")]
    interface: Option<String>,
    /// The cgroup v2 directory whose sockets are filtered (cgroup and connect attach).
    #[arg(long)]
    cgroup: Option<PathBuf>,
    /// The named network namespace (`ip netns`) the interface is in; this one by default.
    #[arg(long)]
    netns: Option<String>,
    #[command(flatten)]
    engine: EngineFlags,
    /// Name of the filter's pins and objects: `egb-<ID>` (1 to 8 letters or digits). A
    /// restarted agent with the same id adopts the filter its predecessor left.
    #[arg(long, default_value = "agent")]
    run_id: String,
    /// Write the agent's status (in-sync / stale, revision, entries, refused chunks) here as
    /// JSON, replaced on each change.
    #[arg(long)]
    status: Option<PathBuf>,
    /// Milliseconds changes must be quiet before they are applied.
    #[arg(long, default_value_t = 100)]
    settle_ms: u64,
    /// Milliseconds between attempts to reach etcd after a failure.
    #[arg(long, default_value_t = 1000)]
    retry_ms: u64,
    /// Remove the filter the agent left (adopt it, tear it down) and exit.
    #[arg(long)]
    remove: bool,
}

/// Runs the agent until SIGINT or SIGTERM; the filter stays enforced after it exits.
pub fn agent(args: &AgentArgs) -> Result<()> {
    let tag = Tag::new(&args.run_id)?;
    let options = args.engine.options();
    let target = match (
        args.filter.target_kind(&options),
        &args.interface,
        &args.cgroup,
    ) {
        (TargetKind::Egress, Some(interface), _) => Target::egress(interface.clone()),
        (TargetKind::Cgroup, _, Some(cgroup)) => Target::cgroup(cgroup.clone()),
        (TargetKind::Egress, None, _) => {
            bail!("--attach {} needs --interface", args.engine.attach.name())
        }
        (TargetKind::Cgroup, _, None) => {
            bail!("--attach {} needs --cgroup", args.engine.attach.name())
        }
    };
    let placement = Placement {
        netns: args.netns.clone().map_or_else(NetNs::current, NetNs::named),
        tag: tag.clone(),
        target,
        options,
    };
    let mut filter = args.filter.build(&placement)?;
    filter.persist().with_context(|| {
        format!(
            "the agent keeps filters that outlive it; {} cannot",
            args.filter.name()
        )
    })?;
    let adopted = filter
        .adopt()
        .context("adopting the filter a previous agent left")?;
    if args.remove {
        filter.teardown()?;
        eprintln!(
            "agent: {}",
            if adopted {
                format!("removed the filter {tag}")
            } else {
                format!("no filter {tag} to remove")
            }
        );
        return Ok(());
    }
    if adopted {
        eprintln!("agent: adopted the filter {tag} left enforced by an earlier agent");
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let config = node_agent::Config {
        store: node_agent::Store::new(&args.etcd, &args.prefix),
        status: args.status.clone(),
        settle: Duration::from_millis(args.settle_ms),
        retry: Duration::from_millis(args.retry_ms),
    };
    node_agent::run(filter.as_mut(), adopted, &config, &stop)?;
    eprintln!(
        "agent: stopped; the filter {tag} stays enforced (pinned). A new agent with --run-id {} \
         adopts it; `egress-bench agent --remove` removes it",
        args.run_id
    );
    Ok(())
}

/// Arguments of `egress-bench publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The list: one address or CIDR per line (`-` for standard input).
    file: PathBuf,
    /// etcd client URLs, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    etcd: Vec<String>,
    /// The key prefix the agent watches; the list's chunks are `<prefix>/000000`, ...
    #[arg(long)]
    prefix: String,
    /// Entries per chunk (default 50000, fewer where a chunk would pass the request limit).
    #[arg(long)]
    chunk_entries: Option<usize>,
    /// etcd's request limit (its --max-request-bytes; 1.5 MiB by default).
    #[arg(long, default_value_t = node_agent::publish::MAX_REQUEST_BYTES)]
    max_request_bytes: usize,
}

/// Writes a list to etcd as chunks, replacing the previous list's.
pub fn publish(args: &PublishArgs) -> Result<()> {
    let list = filter_core::CidrList::parse_file(&args.file, &ParseOptions::default())
        .with_context(|| format!("reading {}", args.file.display()))?;
    let store = node_agent::Store::new(&args.etcd, &args.prefix);
    let done = node_agent::publish::publish_list(
        &store,
        &list,
        args.chunk_entries,
        args.max_request_bytes,
    )?;
    println!(
        "published {} entries as {} chunks under {} in {} transactions (revision {}); {} \
         chunks of the previous list deleted",
        list.len(),
        done.chunks,
        store.prefix,
        done.transactions,
        done.revision,
        done.deleted
    );
    Ok(())
}
