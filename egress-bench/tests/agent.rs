//! The node agent against a real etcd (Debian's etcd-server, private to the test on
//! loopback) and a real filter in a testbed: it follows published lists, refuses a bad
//! chunk by key and line while its last good version stays, keeps the list enforced when
//! killed and while etcd is down (reporting stale), and is adopted by its successor.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node_agent::{State, Status};
use testbed::etcd::{Certs, EtcdCluster};
use testbed::{ALLOWED_V4, DENIED_HOST_V4, DENIED_V4, Probe, Testbed};

/// A private one-member etcd serving TLS with client certificates.
struct Etcd {
    cluster: EtcdCluster,
}

impl Etcd {
    fn start() -> Self {
        Self {
            cluster: EtcdCluster::start("egb-agenttest", 1, true)
                .expect("etcd is installed (cargo xtask installs etcd-server)"),
        }
    }

    fn url(&self) -> String {
        self.cluster.url(0)
    }

    fn flags(&self) -> Vec<String> {
        self.cluster.client_flags()
    }

    fn certs(&self) -> &Certs {
        self.cluster.certs().expect("it serves TLS")
    }

    fn stop(&mut self) {
        self.cluster.kill(0);
    }

    fn restart(&mut self) {
        self.cluster.restart(0).unwrap();
        self.cluster.ready(0).unwrap();
    }

    /// Puts `value` at `key` directly.
    fn put(&self, key: &str, value: &str) -> i64 {
        let certs = self.certs();
        let security = node_agent::Security::Tls {
            ca: certs.path("ca.pem"),
            cert: certs.path("client.pem"),
            key: certs.path("client.key"),
        };
        let store = node_agent::Store::new(&[self.url()], "/", security);
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let mut c = store.connect().await?;
                c.put(key, value, None).await
            })
            .unwrap()
            .header()
            .unwrap()
            .revision()
    }
}

/// Removes the pins of a tag when dropped: a failed test must not leave a filter that
/// outlives it.
struct Unpin(String);

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = filter_tcbpf::pin::remove_pinned(&self.0);
    }
}

/// An agent process, killed when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_egress-bench"))
}

const PREFIX: &str = "/egb-test/list";

/// `egress-bench agent` for the testbed's filter (tcbpf on the client's TCX egress).
fn agent_command(bed: &Testbed) -> Command {
    let mut cmd = bench();
    cmd.args(["agent", "--filter", "tcbpf", "--attach", "tcx"])
        .args(["--netns", bed.client().name().unwrap()])
        .args(["--interface", &bed.client_link(), "--run-id", id(bed)]);
    cmd
}

fn agent(bed: &Testbed, etcd: &Etcd, status: &Path) -> Agent {
    let child = agent_command(bed)
        .args(["--etcd", &etcd.url(), "--prefix", PREFIX])
        .args(etcd.flags())
        .args(["--retry-ms", "200", "--status"])
        .arg(status)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Agent(child)
}

/// The testbed's run id: the agent's pins are named by it.
fn id(bed: &Testbed) -> &str {
    bed.tag().as_str().trim_start_matches("egb-")
}

/// Waits (up to 30 s) for a status that `ok` accepts.
fn wait_for(status: &Path, what: &str, ok: impl Fn(&Status) -> bool) -> Status {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let read = node_agent::status::read(status);
        if let Ok(s) = &read
            && ok(s)
        {
            return s.clone();
        }
        assert!(Instant::now() < until, "no status {what}: last {read:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Publishes a generated list of `n` entries plus `extra` with `egress-bench publish`; the
/// list's entry count and the revision it reached.
fn publish(etcd: &Etcd, n: usize, extra: &[IpAddr], chunk_entries: usize) -> (usize, i64) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("list.txt");
    let generated = bench()
        .args(["generate", "--rules", &n.to_string(), "--seed", "7"])
        .output()
        .unwrap();
    assert!(generated.status.success());
    let mut text = String::from_utf8(generated.stdout).unwrap();
    for addr in extra {
        text.push_str(&format!("{addr}\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let out = bench()
        .args(["publish", "--etcd", &etcd.url(), "--prefix", PREFIX])
        .args(["--chunk-entries", &chunk_entries.to_string()])
        .args(etcd.flags())
        .arg(&path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revision = said
        .split("(revision ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no revision in {said:?}"));
    (n + extra.len(), revision)
}

fn in_sync_at(revision: i64) -> impl Fn(&Status) -> bool {
    move |s| s.state == State::InSync && s.revision >= revision
}

#[test]
fn the_agent_follows_etcd_and_never_lets_the_filter_lapse() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let _unpin = Unpin(bed.tag().to_string());
    let mut etcd = Etcd::start();
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status.json");
    let probe = |addr: std::net::Ipv4Addr| bed.probe(addr.into()).unwrap();

    // A list in three chunks, then the agent: in step, enforcing it.
    let (entries, revision) = publish(&etcd, 2_500, &[DENIED_V4.into()], 1_000);
    let first = agent(&bed, &etcd, &status);
    let s = wait_for(&status, "in sync with the first list", in_sync_at(revision));
    assert_eq!(
        (s.chunks, s.entries, s.adopted),
        (3, entries, false),
        "{s:?}"
    );
    assert_eq!(probe(DENIED_V4), Probe::Dropped);
    assert_eq!(probe(ALLOWED_V4), Probe::Delivered);

    // A chunk of its own, then spoiled: refused by key and line, its last good version stays.
    let key = format!("{PREFIX}/extra");
    let revision = etcd.put(&key, &format!("{DENIED_HOST_V4}\n"));
    wait_for(&status, "with the extra chunk", in_sync_at(revision));
    assert_eq!(probe(DENIED_HOST_V4), Probe::Dropped);
    let revision = etcd.put(&key, &format!("{DENIED_HOST_V4}\nnot-a-cidr\n"));
    let s = wait_for(&status, "refusing the bad chunk", |s| {
        s.revision >= revision && !s.refused.is_empty()
    });
    assert!(
        s.refused[0].contains(&key) && s.refused[0].contains("line 2"),
        "{s:?}"
    );
    assert_eq!(
        probe(DENIED_HOST_V4),
        Probe::Dropped,
        "the last good chunk stays"
    );

    // A new list replaces the old chunks (the extra key included): what it no longer holds
    // passes, and the agent applies it without a restart.
    let (entries, revision) = publish(&etcd, 1_500, &[DENIED_HOST_V4.into()], 1_000);
    let s = wait_for(&status, "in sync with the second list", |s| {
        in_sync_at(revision)(s) && s.refused.is_empty()
    });
    assert_eq!((s.chunks, s.entries), (2, entries), "{s:?}");
    assert_eq!(probe(DENIED_V4), Probe::Delivered);
    assert_eq!(probe(DENIED_HOST_V4), Probe::Dropped);

    // Killed: the list stays enforced.
    drop(first);
    assert_eq!(
        probe(DENIED_HOST_V4),
        Probe::Dropped,
        "lapsed when the agent died"
    );

    // A new agent adopts it; etcd down: stale, still enforced; back: in step again.
    std::fs::remove_file(&status).unwrap();
    let second = agent(&bed, &etcd, &status);
    let s = wait_for(&status, "adopted and in sync", in_sync_at(revision));
    assert!(s.adopted, "{s:?}");
    let hooked = filter_tcbpf::hooks::tcx::programs_on(bed.client(), &bed.client_link()).unwrap();
    assert_eq!(hooked.len(), 1, "one program on the hook: {hooked:?}");
    etcd.stop();
    let s = wait_for(&status, "stale with etcd down", |s| s.state == State::Stale);
    assert!(s.error.is_some(), "{s:?}");
    assert_eq!(
        probe(DENIED_HOST_V4),
        Probe::Dropped,
        "lapsed while etcd was down"
    );
    etcd.restart();
    let revision = etcd.put(&format!("{PREFIX}/back"), &format!("{DENIED_V4}\n"));
    wait_for(&status, "in sync once etcd is back", in_sync_at(revision));
    assert_eq!(probe(DENIED_V4), Probe::Dropped);

    // SIGTERM: a clean exit that leaves the filter; --remove takes it away.
    let mut second = second;
    Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status()
        .unwrap();
    assert!(second.0.wait().unwrap().success());
    assert_eq!(probe(DENIED_V4), Probe::Dropped, "lapsed at a clean exit");
    let removed = agent_command(&bed).arg("--remove").output().unwrap();
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(probe(DENIED_V4), Probe::Delivered);
    assert!(
        filter_tcbpf::pin::pinned(bed.tag().as_str())
            .unwrap()
            .is_empty()
    );
    // The bpffs the agent mounted for its pins (none was mounted here) went with them.
    let own = Path::new(filter_tcbpf::pin::OWN_MOUNT);
    assert!(
        !filter_core::mounts::mounts()
            .unwrap()
            .iter()
            .any(|m| m.fstype == "bpf" && m.path == own),
        "{} left mounted",
        own.display()
    );
    bed.remove().unwrap();
}

/// etcd with client-certificate auth refuses a client whose certificate another CA signed,
/// and the tools refuse to talk plaintext unless asked, before anything is sent.
#[test]
fn etcd_is_reached_only_with_a_trusted_client_certificate() {
    let etcd = Etcd::start();
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(list.path(), "203.0.113.0/24\n").unwrap();
    let publish = |extra: &[String]| {
        bench()
            .args(["publish", "--etcd", &etcd.url(), "--prefix", PREFIX])
            .args(extra)
            .arg(list.path())
            .output()
            .unwrap()
    };
    assert!(publish(&etcd.flags()).status.success());
    let dir = tempfile::tempdir().unwrap();
    let stranger = Certs::make(dir.path()).unwrap();
    let mut mixed = etcd.flags();
    // Our CA (the server is trusted), a client certificate from another CA.
    mixed[3] = stranger.path("client.pem").display().to_string();
    mixed[5] = stranger.path("client.key").display().to_string();
    let refused = publish(&mixed);
    assert!(!refused.status.success(), "{refused:?}");
    let none = publish(&[]);
    assert!(!none.status.success());
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("--plaintext"),
        "{none:?}"
    );
    let plain = publish(&["--plaintext".to_owned()]);
    assert!(!plain.status.success());
    assert!(
        String::from_utf8_lossy(&plain.stderr).contains("http://"),
        "{plain:?}"
    );
}
