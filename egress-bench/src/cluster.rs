//! `egress-bench cluster`: a cluster on one machine. An etcd cluster on loopback and K
//! nodes, each a testbed with its own `egress-bench agent`; lists published to etcd and
//! timed until every node's kernel enforces them, single-entry changes timed to every node,
//! and the same through faults, while probe streams on every node count violations.
//!
//! Each node sends three streams of numbered packets from its client, one every
//! millisecond: to an address every published list denies (set-up time, then violations),
//! to an address single-entry changes add and delete (propagation), and to an allowed
//! address (packets lost). Times are read back from which packets arrived.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use filter_core::generate::{Mix, generate};
use filter_core::{CidrList, Family};
use node_agent::publish::{MAX_REQUEST_BYTES, Writer};
use node_agent::status::{State, Status};
use records::cluster::{ClusterRecord, ClusterSize, Fault};
use testbed::etcd::EtcdCluster;
use testbed::{ALLOWED_V4, DENIED_HOST_V4, DENIED_V4, EnforcementWatch, Stream, Testbed};

use crate::filters::FilterKind;

/// Arguments of `egress-bench cluster`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The filter every node's agent keeps (one that outlives its agent).
    #[arg(long, default_value = "tcbpf-dir")]
    filter: FilterKind,
    /// Nodes: testbeds with an agent each.
    #[arg(long, default_value_t = 8)]
    nodes: usize,
    /// etcd members.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// List sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    sizes: Vec<usize>,
    /// Single-entry changes timed at each size.
    #[arg(long, default_value_t = 1000)]
    changes: usize,
    /// Skip the faults (an etcd member killed mid-publish, an agent killed mid-sync and
    /// restarted, every member stopped for --outage-seconds).
    #[arg(long)]
    no_faults: bool,
    /// How long every etcd member is stopped in the outage fault.
    #[arg(long, default_value_t = 10)]
    outage_seconds: u64,
    /// The agents' settle time in milliseconds (`agent --settle-ms`).
    #[arg(long, default_value_t = node_agent::agent::DEFAULT_SETTLE_MS)]
    settle_ms: u64,
    /// Reach etcd unencrypted (by default a CA and certificates are made for the run).
    #[arg(long)]
    plaintext: bool,
    /// Put the record in this folder's results.json (beside a sweep's runs, if it holds a
    /// sweep) and render its summary.md, which gets a "Cluster" table.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// How long any one wait for the nodes may take.
const WAIT: Duration = Duration::from_secs(120);

/// The gap between the packets of each probe stream.
const STREAM_INTERVAL: Duration = Duration::from_millis(1);

/// The key single-entry changes write and delete.
const CHANGE_KEY: &str = "change";

/// One node: a testbed, its agent and its probe streams.
struct Node {
    bed: Testbed,
    agent: Option<Child>,
    status: PathBuf,
    streams: Option<[EnforcementWatch; 3]>,
}

impl Node {
    fn id(&self) -> &str {
        self.bed
            .tag()
            .as_str()
            .trim_start_matches(filter_core::OBJECT_PREFIX)
    }

    fn status(&self) -> Option<Status> {
        node_agent::status::read(&self.status).ok()
    }
}

/// Everything a cluster run made, removed in `Drop` whatever happened: agents killed, their
/// pinned filters removed, testbeds and etcd gone.
struct Cluster {
    etcd: EtcdCluster,
    nodes: Vec<Node>,
    filter: FilterKind,
    settle_ms: u64,
    prefix: String,
    /// Where the agents' logs and statuses go: the output folder's `logs/` (kept), or a
    /// temporary folder.
    dir: PathBuf,
    _temporary: Option<tempfile::TempDir>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut agent) = node.agent.take() {
                let _ = agent.kill();
                let _ = agent.wait();
            }
            if let Some(streams) = node.streams.take() {
                for stream in streams {
                    let _ = stream.stream();
                }
            }
            let _ = filter_tcbpf::pin::remove_pinned(node.bed.tag().as_str());
        }
    }
}

impl Cluster {
    fn start(args: &ClusterArgs) -> Result<Self> {
        let etcd = EtcdCluster::start("egb-cluster", args.members, !args.plaintext)
            .context("starting the etcd cluster")?;
        let (dir, temporary) = match &args.out {
            Some(out) => (out.join("logs"), None),
            None => {
                let temporary = tempfile::tempdir()?;
                (temporary.path().to_owned(), Some(temporary))
            }
        };
        std::fs::create_dir_all(&dir)?;
        let mut nodes = Vec::with_capacity(args.nodes);
        for i in 0..args.nodes {
            let bed = Testbed::new().context("building a node's testbed")?;
            nodes.push(Node {
                status: dir.join(format!("node{i}.json")),
                bed,
                agent: None,
                streams: None,
            });
        }
        // On SIGINT or SIGTERM: the pinned filters and etcd's data go too (the testbeds go
        // with the signal cleanup, the agents and members with this process).
        let tags: Vec<String> = nodes.iter().map(|n| n.bed.tag().to_string()).collect();
        let data = etcd.dir().to_owned();
        testbed::on_signal(move || {
            for tag in &tags {
                let _ = filter_tcbpf::pin::remove_pinned(tag);
            }
            let _ = std::fs::remove_dir_all(&data);
        });
        let prefix = format!("/egb-cluster/{}/list", nodes.first().map_or("x", Node::id));
        let mut cluster = Self {
            etcd,
            nodes,
            filter: args.filter,
            settle_ms: args.settle_ms,
            prefix,
            dir,
            _temporary: temporary,
        };
        for i in 0..cluster.nodes.len() {
            cluster.spawn_agent(i)?;
        }
        Ok(cluster)
    }

    fn store(&self) -> node_agent::Store {
        let security = match self.etcd.certs() {
            Some(certs) => node_agent::Security::Tls {
                ca: certs.path("ca.pem"),
                cert: certs.path("client.pem"),
                key: certs.path("client.key"),
            },
            None => node_agent::Security::Plaintext,
        };
        node_agent::Store::new(&self.etcd.urls(), &self.prefix, security)
    }

    /// `egress-bench agent` for node `i`'s filter, dying with this process (a killed
    /// benchmark takes its agents with it; their pins go with the signal hook, or with a
    /// later `cleanup`, the testbeds' tags being claimed).
    fn agent_command(&self, i: usize) -> Result<Command> {
        let node = &self.nodes[i];
        let mut agent = Command::new(std::env::current_exe()?);
        filter_core::dies_with_caller(&mut agent);
        agent
            .args(["agent", "--filter", self.filter.name(), "--attach", "tcx"])
            .args(["--netns", node.bed.client().name().unwrap_or_default()])
            .args([
                "--interface",
                &node.bed.client_link(),
                "--run-id",
                node.id(),
            ]);
        Ok(agent)
    }

    fn spawn_agent(&mut self, i: usize) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("agent{i}.log")))?;
        let child = self
            .agent_command(i)?
            .args([
                "--etcd",
                &self.etcd.urls().join(","),
                "--prefix",
                &self.prefix,
            ])
            .args(self.etcd.client_flags())
            .args([
                "--settle-ms",
                &self.settle_ms.to_string(),
                "--retry-ms",
                "200",
            ])
            .arg("--status")
            .arg(&self.nodes[i].status)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting an agent")?;
        self.nodes[i].agent = Some(child);
        Ok(())
    }

    fn kill_agent(&mut self, i: usize) {
        if let Some(mut agent) = self.nodes[i].agent.take() {
            let _ = agent.kill();
            let _ = agent.wait();
        }
    }

    /// Waits until every node is in step at `revision` or later.
    fn wait_in_sync(&self, revision: i64, what: &str) -> Result<()> {
        let until = Instant::now() + WAIT;
        loop {
            let lagging: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| {
                    !self.nodes[i]
                        .status()
                        .is_some_and(|s| s.state == State::InSync && s.revision >= revision)
                })
                .collect();
            if lagging.is_empty() {
                return Ok(());
            }
            if Instant::now() > until {
                bail!(
                    "{what}: nodes {lagging:?} not in step at revision {revision} after {}s \
                     (agent logs in {})",
                    WAIT.as_secs(),
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    fn start_streams(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.streams = Some([
                node.bed
                    .watch_enforcement(DENIED_HOST_V4.into(), STREAM_INTERVAL)?,
                node.bed
                    .watch_enforcement(DENIED_V4.into(), STREAM_INTERVAL)?,
                node.bed
                    .watch_enforcement(ALLOWED_V4.into(), STREAM_INTERVAL)?,
            ]);
        }
        Ok(())
    }

    /// Stops the streams: per node, [steady deny, change, allow].
    fn stop_streams(&mut self) -> Result<Vec<[Stream; 3]>> {
        let mut all = Vec::new();
        for node in &mut self.nodes {
            let Some([a, b, c]) = node.streams.take() else {
                bail!("the probe streams were not running");
            };
            all.push([a.stream()?, b.stream()?, c.stream()?]);
        }
        Ok(all)
    }

    /// Removes every node's filter (adopted from its pins) and stops the agents.
    fn finish(mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            self.kill_agent(i);
            let out = self.agent_command(i)?.arg("--remove").output()?;
            if !out.status.success() {
                bail!(
                    "removing node {i}'s filter: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        for node in std::mem::take(&mut self.nodes) {
            node.bed.remove()?;
        }
        Ok(())
    }
}

/// What happened at one size, in time: read against the streams once they stop.
struct Timeline {
    entries: usize,
    chunks: usize,
    publish_ms: f64,
    /// When the publish call started.
    published_at: Instant,
    /// When the next reset (or the end) came: the steady address was denied in between.
    denied_until: Instant,
    /// When each change was made and whether it denied the change address.
    changes: Vec<(Instant, bool)>,
    /// When the changes were over (the last one undone).
    changes_end: Instant,
    /// When each fault's publish (or the fault's end) came, its name and note.
    faults: Vec<(Instant, String, String)>,
    /// The end of the size's last phase.
    end: Instant,
}

/// A generated IPv4 list of `n` entries (outside the test range) with `probes` added.
fn list(n: usize, seed: u64, probes: &[std::net::Ipv4Addr]) -> CidrList {
    let mut list = generate(n, seed, Mix::Default, &[Family::V4]);
    list.extend(
        probes
            .iter()
            .map(|&a| ipnet::IpNet::from(ipnet::Ipv4Net::from(a))),
    );
    list
}

/// Runs the cluster benchmark.
pub fn cluster(args: &ClusterArgs) -> Result<()> {
    if args.nodes == 0 || args.members == 0 || args.sizes.is_empty() {
        bail!("--nodes, --members and --sizes must not be empty");
    }
    let started = Instant::now();
    testbed::install_signal_cleanup()?;
    let mut cluster = Cluster::start(args)?;
    eprintln!(
        "cluster: {} nodes, {} etcd members ({}), agents of {} in step",
        args.nodes,
        args.members,
        if args.plaintext { "plaintext" } else { "TLS" },
        args.filter.name()
    );
    let mut writer = Writer::connect(&cluster.store())?;
    cluster.start_streams()?;
    let mut timelines = Vec::new();
    for (i, &size) in args.sizes.iter().enumerate() {
        let seed = i as u64 + 1;
        timelines.push(measure_size(&mut cluster, &mut writer, args, size, seed)?);
    }
    let streams = cluster.stop_streams()?;
    let record = ClusterRecord {
        filter: args.filter.name().to_owned(),
        nodes: args.nodes,
        members: args.members,
        tls: !args.plaintext,
        settle_ms: args.settle_ms,
        sizes: timelines.iter().map(|t| read_back(t, &streams)).collect(),
    };
    cluster.finish()?;
    eprintln!("cluster: done in {:.0} s", started.elapsed().as_secs_f64());
    match &args.out {
        Some(out) => write_results(out, record, args)?,
        None => println!("{}", render(&record)),
    }
    Ok(())
}

/// Puts `record` in `out`'s results.json (beside a sweep's runs, when the folder holds a
/// sweep) and renders the folder's report: summary.md gets its "Cluster" table.
fn write_results(out: &std::path::Path, record: ClusterRecord, args: &ClusterArgs) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let path = out.join("results.json");
    let mut results = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<records::SweepResults>(&text)
            .with_context(|| format!("{} is not a sweep's results", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => records::SweepResults {
            description: String::new(),
            options: format!("{args:?}"),
            runs: Vec::new(),
            cluster: None,
        },
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    results.cluster = Some(record);
    std::fs::write(&path, serde_json::to_string_pretty(&results)?)?;
    crate::report::report(&crate::report::ReportArgs {
        dir: out.to_owned(),
        baseline: None,
    })?;
    eprintln!(
        "cluster: wrote {} (its \"cluster\" record) and summary.md",
        path.display()
    );
    Ok(())
}

/// Publishes `list`; its chunk count, the call's duration and the revision it reached.
fn publish(cluster: &Cluster, list: &CidrList) -> Result<(usize, Duration, i64)> {
    let started = Instant::now();
    let done = node_agent::publish::publish_list(&cluster.store(), list, None, MAX_REQUEST_BYTES)
        .context("publishing the list")?;
    Ok((done.chunks, started.elapsed(), done.revision))
}

fn measure_size(
    cluster: &mut Cluster,
    writer: &mut Writer,
    args: &ClusterArgs,
    size: usize,
    seed: u64,
) -> Result<Timeline> {
    // Reset: nothing denied, every node in step.
    let (_, _, revision) = publish(cluster, &CidrList::new())?;
    cluster.wait_in_sync(revision, "emptying the list")?;
    std::thread::sleep(Duration::from_millis(50));
    eprintln!("cluster: publishing {size} entries");
    let published = list(size, seed, &[DENIED_HOST_V4]);
    let entries = published.len();
    let published_at = Instant::now();
    let (chunks, took, revision) = publish(cluster, &published)?;
    cluster.wait_in_sync(revision, "the list")?;
    std::thread::sleep(Duration::from_millis(20));
    // Single-entry changes, each waited for on every node.
    let mut changes = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        let deny = i % 2 == 0;
        let at = Instant::now();
        let revision = if deny {
            writer.put(CHANGE_KEY, &format!("{DENIED_V4}\n"))?
        } else {
            writer.delete(CHANGE_KEY)?
        };
        changes.push((at, deny));
        let put_ms = at.elapsed().as_secs_f64() * 1e3;
        cluster.wait_in_sync(revision, "a single-entry change")?;
        if std::env::var_os("EGB_DEBUG").is_some() {
            eprintln!(
                "put {put_ms:.1} ms, in sync {:.1} ms",
                at.elapsed().as_secs_f64() * 1e3
            );
        }
        // Let every stream send a packet or two in the new state before the next change
        // (a stream with none there would count the change as never seen).
        std::thread::sleep(Duration::from_millis(5));
    }
    if changes.len() % 2 == 1 {
        let revision = writer.delete(CHANGE_KEY)?;
        cluster.wait_in_sync(revision, "the last change undone")?;
    }
    let changes_end = Instant::now();
    let mut faults = Vec::new();
    if !args.no_faults {
        faults = run_faults(cluster, writer, args, size, seed)?;
    }
    let end = Instant::now();
    Ok(Timeline {
        entries,
        chunks,
        publish_ms: took.as_secs_f64() * 1e3,
        published_at,
        denied_until: end,
        changes,
        changes_end,
        faults,
        end,
    })
}

/// The faults, each ending with the change address denied by a new list on every node (the
/// time read back from the streams) and then allowed again.
fn run_faults(
    cluster: &mut Cluster,
    writer: &mut Writer,
    args: &ClusterArgs,
    size: usize,
    seed: u64,
) -> Result<Vec<(Instant, String, String)>> {
    let mut faults = Vec::new();
    let with_probe = list(size, seed + 100, &[DENIED_HOST_V4, DENIED_V4]);
    let without_probe = list(size, seed + 200, &[DENIED_HOST_V4]);

    // 1. An etcd member killed with -9 while the list is published; the publish is retried
    // once if the member took it down.
    let at = Instant::now();
    let victim = 0;
    let killer = {
        let pid = cluster.etcd.pid(victim);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            if let Some(pid) = pid {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        })
    };
    let first = publish(cluster, &with_probe);
    let _ = killer.join();
    let (note, revision) = match first {
        Ok((_, _, revision)) => ("the publish went through".to_owned(), revision),
        Err(e) => {
            // As an operator would: again until the survivors have elected a leader.
            let mut attempts = 1;
            let revision = loop {
                std::thread::sleep(Duration::from_millis(500));
                attempts += 1;
                match publish(cluster, &with_probe) {
                    Ok((_, _, revision)) => break revision,
                    Err(again) if attempts < 40 => drop(again),
                    Err(again) => return Err(again.context("publishing after a member's death")),
                }
            };
            (
                format!("the publish failed ({e:#}) and went through at attempt {attempts}"),
                revision,
            )
        }
    };
    cluster.wait_in_sync(revision, "the list published through a member's death")?;
    faults.push((at, "etcd member killed -9 mid-publish".to_owned(), note));
    cluster.etcd.restart(victim)?;
    cluster.etcd.ready(victim)?;
    let (_, _, revision) = publish(cluster, &without_probe)?;
    cluster.wait_in_sync(revision, "the probe allowed again")?;
    std::thread::sleep(Duration::from_millis(20));

    // 2. An agent killed with -9 while it syncs a new list, then restarted: it adopts its
    // pinned filter and catches up.
    let at = Instant::now();
    let node = cluster.nodes.len() - 1;
    let (_, _, revision) = publish(cluster, &with_probe)?;
    std::thread::sleep(Duration::from_millis(args.settle_ms + 2));
    cluster.kill_agent(node);
    let _ = std::fs::remove_file(&cluster.nodes[node].status);
    cluster.spawn_agent(node)?;
    cluster.wait_in_sync(revision, "the list after an agent's restart")?;
    faults.push((
        at,
        "agent killed -9 mid-sync, restarted".to_owned(),
        format!("node {node}'s agent restarted and adopted its pinned filter"),
    ));
    let (_, _, revision) = publish(cluster, &without_probe)?;
    cluster.wait_in_sync(revision, "the probe allowed again")?;
    std::thread::sleep(Duration::from_millis(20));

    // 3. Every member down for the outage; the list published once they are back.
    for i in 0..cluster.etcd.len() {
        cluster.etcd.kill(i);
    }
    std::thread::sleep(Duration::from_secs(args.outage_seconds));
    let stale = cluster
        .nodes
        .iter()
        .filter(|n| n.status().is_some_and(|s| s.state == State::Stale))
        .count();
    for i in 0..cluster.etcd.len() {
        cluster.etcd.restart(i)?;
    }
    for i in 0..cluster.etcd.len() {
        cluster.etcd.ready(i)?;
    }
    *writer = Writer::connect(&cluster.store())?;
    let at = Instant::now();
    let (_, _, revision) = publish(cluster, &with_probe)?;
    cluster.wait_in_sync(revision, "the list after the outage")?;
    faults.push((
        at,
        format!("every etcd member down {} s", args.outage_seconds),
        format!(
            "{stale} of {} agents reported stale during the outage",
            cluster.nodes.len()
        ),
    ));
    let (_, _, revision) = publish(cluster, &without_probe)?;
    cluster.wait_in_sync(revision, "the probe allowed again")?;
    std::thread::sleep(Duration::from_millis(20));
    Ok(faults)
}

/// The figures of one size, read from the streams.
fn read_back(t: &Timeline, streams: &[[Stream; 3]]) -> ClusterSize {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let setup_ms: Vec<Option<f64>> = streams
        .iter()
        .map(|[steady, _, _]| {
            steady
                .settled(t.published_at, t.denied_until, false)
                .map(ms)
        })
        .collect();
    let propagation_ms = t
        .changes
        .iter()
        .enumerate()
        .map(|(i, &(at, deny))| {
            let until = t.changes.get(i + 1).map_or(t.changes_end, |next| next.0);
            streams
                .iter()
                .map(|[_, change, _]| change.settled(at, until, !deny).map(ms))
                .try_fold(0.0f64, |most, node| node.map(|n| most.max(n)))
        })
        .collect();
    let faults = t
        .faults
        .iter()
        .map(|(at, name, note)| {
            let until = *at + WAIT;
            let enforced_ms = streams
                .iter()
                .map(|[_, change, _]| first_dropped(change, *at, until).map(ms))
                .try_fold(0.0f64, |most, node| node.map(|n| most.max(n)));
            Fault {
                name: name.clone(),
                enforced_ms,
                note: note.clone(),
            }
        })
        .collect();
    // The steady address is denied from each node's set-up until the size ends.
    let denied_reached = streams
        .iter()
        .zip(&setup_ms)
        .map(|([steady, _, _], setup)| match setup {
            Some(setup) => steady.against(
                t.published_at + Duration::from_secs_f64(setup / 1e3),
                t.denied_until,
                false,
            ),
            None => 0,
        })
        .sum();
    let allowed_lost = streams
        .iter()
        .map(|[_, _, allow]| allow.against(t.published_at, t.end, true))
        .sum();
    let steady_packets = streams
        .iter()
        .map(|[steady, _, allow]| {
            steady.count(t.published_at, t.end) + allow.count(t.published_at, t.end)
        })
        .sum();
    ClusterSize {
        entries: t.entries,
        chunks: t.chunks,
        publish_ms: t.publish_ms,
        setup_ms,
        propagation_ms,
        faults,
        denied_reached,
        allowed_lost,
        steady_packets,
    }
}

/// From `from`, the time until the first packet of `stream` that was dropped (a list that
/// denies the change address took effect).
fn first_dropped(stream: &Stream, from: Instant, until: Instant) -> Option<Duration> {
    let start = stream.sent.partition_point(|&t| t < from);
    let end = stream.sent.partition_point(|&t| t < until);
    (start..end)
        .find(|&seq| !stream.delivered.contains(&(seq as u64)))
        .map(|seq| stream.sent[seq].saturating_duration_since(from))
}

/// The "Cluster" table: one row per size.
pub fn render(record: &ClusterRecord) -> String {
    let fmt = |v: f64| {
        if v.is_nan() {
            "never".to_owned()
        } else if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    let mut out = format!(
        "{} nodes, each a testbed with its own agent keeping `{}` in step; a {}-member etcd \
         cluster on loopback ({}); agents settle {} ms. Set-up: from the publish call until \
         a node drops a probe to an address the list denies (median and slowest node). \
         Propagation: a single entry added or deleted, until every node shows it (p50, p99 \
         over the changes). Violations: packets to an always-denied address that got \
         through once it was enforced, and packets to an allowed address lost, over every \
         node and the whole size.\n\n",
        record.nodes,
        record.filter,
        record.members,
        if record.tls {
            "TLS with client certificates"
        } else {
            "plaintext"
        },
        record.settle_ms
    );
    out.push_str(
        "| entries | chunks | publish call (ms) | set-up median (ms) | set-up slowest (ms) | \
         changes | propagation p50 (ms) | p99 (ms) | not propagated | faults: enforced after (ms) | \
         denied reached | allowed lost |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n",
    );
    for size in &record.sizes {
        let (median, slowest) = size.setup();
        let (p50, p99, missed) = size.propagation();
        let faults = size
            .faults
            .iter()
            .map(|f| format!("{}: {}", f.name, f.enforced_ms.map_or("never".into(), fmt)))
            .collect::<Vec<_>>()
            .join("; ");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} of {} | {} |\n",
            size.entries,
            size.chunks,
            fmt(size.publish_ms),
            fmt(median),
            fmt(slowest),
            size.propagation_ms.len(),
            fmt(p50),
            fmt(p99),
            missed,
            if faults.is_empty() {
                "-".into()
            } else {
                faults
            },
            size.denied_reached,
            size.steady_packets,
            size.allowed_lost
        ));
    }
    out
}
