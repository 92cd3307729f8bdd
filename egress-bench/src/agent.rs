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

/// Where the list is kept in etcd, and how the connection is secured.
#[derive(Debug, Args)]
pub struct EtcdFlags {
    /// etcd client URLs, comma-separated (https://10.0.0.5:2379; http:// with --plaintext).
    #[arg(long, value_delimiter = ',')]
    etcd: Vec<String>,
    /// The key prefix of the list's chunks (each key one chunk: lines, or a Calico
    /// GlobalNetworkSet resource); `publish` writes `<prefix>/000000`, ...
    #[arg(long)]
    prefix: Option<String>,
    /// The CA certificate (PEM) that signed the etcd members' certificates.
    #[arg(long, requires_all = ["cert", "key"])]
    cacert: Option<PathBuf>,
    /// This client's certificate (PEM), for etcd's --client-cert-auth.
    #[arg(long, requires = "cacert")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cacert")]
    key: Option<PathBuf>,
    /// Talk to etcd unencrypted and without a client certificate (a loopback test store).
    #[arg(long, conflicts_with = "cacert")]
    plaintext: bool,
}

impl EtcdFlags {
    /// The store the flags name.
    fn store(&self) -> Result<node_agent::Store> {
        let Some(prefix) = self.prefix.as_deref().filter(|_| !self.etcd.is_empty()) else {
            bail!("--etcd and --prefix say where the list is");
        };
        let security = match (&self.cacert, &self.cert, &self.key, self.plaintext) {
            (Some(ca), Some(cert), Some(key), false) => node_agent::Security::Tls {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            },
            (None, None, None, true) => node_agent::Security::Plaintext,
            _ => bail!(
                "etcd is reached over TLS with a client certificate (--cacert, --cert, --key), \
                 or unencrypted only with --plaintext"
            ),
        };
        Ok(node_agent::Store::new(&self.etcd, prefix, security))
    }
}

/// Arguments of `egress-bench agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The filter to keep (one that outlives the agent: tcbpf or tcbpf-dir, attached with
    /// tcx, cgroup or connect).
    #[arg(long)]
    filter: FilterKind,
    #[command(flatten)]
    store: EtcdFlags,
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
    #[arg(long, default_value_t = node_agent::agent::DEFAULT_SETTLE_MS)]
    settle_ms: u64,
    /// Milliseconds between attempts to reach etcd after a failure.
    #[arg(long, default_value_t = 1000)]
    retry_ms: u64,
    /// Remove the filter the agent left (adopt it, tear it down) and exit; no store needed.
    #[arg(long)]
    remove: bool,
}

/// Runs the agent until SIGINT or SIGTERM; the filter stays enforced after it exits.
pub fn agent(args: &AgentArgs) -> Result<()> {
    let tag = Tag::new(&args.run_id)?;
    // Checked before anything changes; --remove needs no store.
    let store = if args.remove {
        None
    } else {
        Some(args.store.store()?)
    };
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
    let Some(store) = store else {
        // --remove
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
    };
    if adopted {
        eprintln!("agent: adopted the filter {tag} left enforced by an earlier agent");
    }
    let mut source = node_agent::EtcdSource::new(store);
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let config = node_agent::Config {
        status: args.status.clone(),
        settle: Duration::from_millis(args.settle_ms),
        retry: Duration::from_millis(args.retry_ms),
    };
    node_agent::run(filter.as_mut(), adopted, &mut source, &config, &stop)?;
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
    #[command(flatten)]
    store: EtcdFlags,
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
    let store = args.store.store()?;
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
