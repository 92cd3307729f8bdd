//! The node agent against a real etcd (Debian's etcd-server, private to the test on
//! loopback) and a real filter in a testbed: it follows published lists, refuses a bad
//! chunk by key and line while its last good version stays, keeps the list enforced when
//! killed and while etcd is down (reporting stale), and is adopted by its successor.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node_agent::{State, Status};
use testbed::{ALLOWED_V4, DENIED_HOST_V4, DENIED_V4, Probe, Testbed};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// Makes them in `dir` under `name` (`name-ca.pem`, `name-server.pem`, ...).
    fn make(dir: &Path, name: &str) -> Self {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &["-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat()
            .into_iter()
            .chain(["-days", "2", "-subj", "/CN=egb-test-ca"])
            .collect::<Vec<_>>(),
        );
        for (who, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            let (key, csr, pem, ext) = (
                format!("{who}.key"),
                format!("{who}.csr"),
                format!("{who}.pem"),
                format!("{who}.ext"),
            );
            std::fs::write(
                dir.join(&ext),
                format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
            )
            .unwrap();
            openssl(
                &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr]]
                    .concat()
                    .into_iter()
                    .chain(["-subj", &format!("/CN=egb-test-{who}")])
                    .collect::<Vec<_>>(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        Self { dir }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// The client side's flags.
    fn flags(&self) -> Vec<String> {
        [
            "--cacert",
            "ca.pem",
            "--cert",
            "client.pem",
            "--key",
            "client.key",
        ]
        .chunks(2)
        .flat_map(|pair| [pair[0].to_owned(), self.path(pair[1])])
        .collect()
    }

    fn security(&self) -> node_agent::Security {
        node_agent::Security::Tls {
            ca: self.path("ca.pem").into(),
            cert: self.path("client.pem").into(),
            key: self.path("client.key").into(),
        }
    }
}

/// A private etcd on loopback, serving TLS with client certificates, killed (and its data
/// removed) when dropped.
struct Etcd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    certs: Certs,
    client: u16,
    peer: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs = Certs::make(dir.path(), "ours");
        let mut etcd = Self {
            child: None,
            dir,
            certs,
            client: free_port(),
            peer: free_port(),
        };
        etcd.restart();
        etcd
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.client)
    }

    /// Starts it (again, on the same data) and waits until it serves.
    fn restart(&mut self) {
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let child = Command::new("etcd")
            .args(["--name", "egb-test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg(format!("--initial-cluster=egb-test={peer}"))
            .args([
                "--client-cert-auth",
                "--trusted-ca-file",
                &self.certs.path("ca.pem"),
            ])
            .args(["--cert-file", &self.certs.path("server.pem")])
            .args(["--key-file", &self.certs.path("server.key")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("etcd.log")).unwrap())
            .spawn()
            .expect("etcd is installed (cargo xtask installs etcd-server)");
        self.child = Some(child);
        let store = node_agent::Store::new(&[client], "/egb-probe", self.certs.security());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = runtime.block_on(async {
                let mut c = store.connect().await?;
                c.get("/egb-probe", None).await
            });
            if ready.is_ok() {
                return;
            }
            assert!(Instant::now() < until, "etcd did not start: {ready:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Puts `value` at `key` directly.
    fn put(&self, key: &str, value: &str) -> i64 {
        let store = node_agent::Store::new(&[self.url()], "/", self.certs.security());
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

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
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

fn agent(bed: &Testbed, etcd: &Etcd, status: &Path) -> Agent {
    let child = bench()
        .args([
            "agent", "--filter", "tcbpf", "--attach", "tcx", "--prefix", PREFIX,
        ])
        .args([
            "--etcd",
            &etcd.url(),
            "--netns",
            bed.client().name().unwrap(),
        ])
        .args(["--interface", &bed.client_link(), "--run-id", id(bed)])
        .args(etcd.certs.flags())
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
        .args(etcd.certs.flags())
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
    let removed = bench()
        .args([
            "agent", "--filter", "tcbpf", "--attach", "tcx", "--prefix", PREFIX,
        ])
        .args([
            "--etcd",
            &etcd.url(),
            "--netns",
            bed.client().name().unwrap(),
        ])
        .args([
            "--interface",
            &bed.client_link(),
            "--run-id",
            id(&bed),
            "--remove",
        ])
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");
    assert_eq!(probe(DENIED_V4), Probe::Delivered);
    assert!(
        filter_tcbpf::pin::pinned(bed.tag().as_str())
            .unwrap()
            .is_empty()
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
    assert!(publish(&etcd.certs.flags()).status.success());
    let stranger = Certs::make(etcd.dir.path(), "stranger");
    let mut mixed = etcd.certs.flags();
    // Our CA (the server is trusted), a client certificate from another CA.
    mixed[3] = stranger.path("client.pem");
    mixed[5] = stranger.path("client.key");
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
