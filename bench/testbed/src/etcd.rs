//! A private etcd cluster on loopback for the node agent's tests and the cluster benchmark:
//! Debian's `etcd` binary, members with ports of their own, data on tmpfs when there is one,
//! TLS with client-certificate auth from a CA made here with `openssl` (or plaintext), and
//! members that can be killed, stopped and started again. Everything goes when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use filter_core::{Error, Result};

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with openssl.
#[derive(Debug)]
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// Makes them in `dir` (`ca.pem`, `server.pem`, `client.pem` and their keys).
    ///
    /// # Errors
    /// When openssl cannot run or refuses.
    pub fn make(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let openssl = |args: &[&str]| -> Result<()> {
            let mut cmd = Command::new("openssl");
            cmd.args(args).current_dir(dir);
            filter_core::run_command(&mut cmd).map(drop)
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let with = |head: &[&'static str], tail: &[&str]| -> Vec<String> {
            head.iter()
                .chain(&ec)
                .copied()
                .chain(tail.iter().copied())
                .map(str::to_owned)
                .collect()
        };
        let args = with(
            &["req", "-x509"],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=egb-test-ca",
            ],
        );
        openssl(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
        for (who, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
            let ext = format!("{who}.ext");
            std::fs::write(
                dir.join(&ext),
                format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
            )
            .map_err(|e| Error::io("writing a certificate extension file", e))?;
            let (key, csr, pem) = (
                format!("{who}.key"),
                format!("{who}.csr"),
                format!("{who}.pem"),
            );
            let subject = format!("/CN=egb-test-{who}");
            let args = with(
                &["req"],
                &["-keyout", &key, "-out", &csr, "-subj", &subject],
            );
            openssl(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
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
            ])?;
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The path of one of the files.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The client side's flags: `--cacert ca.pem --cert client.pem --key client.key`.
    pub fn flags(&self) -> Vec<String> {
        [
            "--cacert",
            "ca.pem",
            "--cert",
            "client.pem",
            "--key",
            "client.key",
        ]
        .chunks(2)
        .flat_map(|pair| [pair[0].to_owned(), self.path(pair[1]).display().to_string()])
        .collect()
    }
}

/// One member: its ports and, while it runs, its process.
#[derive(Debug)]
struct Member {
    name: String,
    client: u16,
    peer: u16,
    child: Option<Child>,
}

/// A private etcd cluster on loopback; see the [module docs](self).
#[derive(Debug)]
pub struct EtcdCluster {
    dir: PathBuf,
    certs: Option<Certs>,
    members: Vec<Member>,
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free loopback port", e))
}

/// Where cluster data folders are made: tmpfs when there is one.
const DATA_BASES: [&str; 2] = ["/dev/shm", "/tmp"];

/// The data folders of clusters this program started (`egb-*-etcd-<pid>-<n>` under
/// `/dev/shm` or `/tmp`), each with whether the process that made it is alive.
#[must_use]
pub fn data_dirs() -> Vec<(PathBuf, bool)> {
    let mut found = Vec::new();
    for base in DATA_BASES {
        let Ok(entries) = std::fs::read_dir(base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name
                .strip_prefix(filter_core::OBJECT_PREFIX)
                .and_then(|rest| rest.split_once("-etcd-"))
                .and_then(|(_, rest)| rest.split_once('-'))
                .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<u32>().ok()));
            if let Some(pid) = owner {
                let alive = Path::new(&format!("/proc/{pid}")).exists();
                found.push((entry.path(), alive));
            }
        }
    }
    found
}

/// Removes the data folders of clusters whose process is gone (a run killed before it
/// could remove its own: its members died with it); those of live runs stay. Returns the
/// folders removed.
///
/// # Errors
/// A folder that could not be removed.
pub fn remove_dead_dirs() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (dir, alive) in data_dirs() {
        if !alive {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
            removed.push(dir.display().to_string());
        }
    }
    Ok(removed)
}

impl EtcdCluster {
    /// Starts `members` members named after `tag` (TLS with client certificates when `tls`)
    /// and waits until each serves.
    ///
    /// # Errors
    /// When etcd is not installed, a member does not start within 30 s, or openssl fails.
    pub fn start(tag: &str, members: usize, tls: bool) -> Result<Self> {
        // tmpfs when there is one: etcd syncs every write, which on a disk sets the pace.
        let base = DATA_BASES
            .into_iter()
            .find(|d| Path::new(d).is_dir())
            .unwrap_or("/tmp");
        static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(base).join(format!("{tag}-etcd-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let certs = tls.then(|| Certs::make(&dir.join("certs"))).transpose()?;
        let members = (0..members)
            .map(|i| {
                Ok(Member {
                    name: format!("{tag}-m{i}"),
                    client: free_port()?,
                    peer: free_port()?,
                    child: None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut cluster = Self {
            dir,
            certs,
            members,
        };
        for i in 0..cluster.members.len() {
            cluster.spawn(i)?;
        }
        for i in 0..cluster.members.len() {
            cluster.ready(i)?;
        }
        Ok(cluster)
    }

    fn scheme(&self) -> &'static str {
        if self.certs.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Where its data, certificates and logs are (removed when it is dropped).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every member's client URL.
    pub fn urls(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.url(i)).collect()
    }

    /// Member `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.members[i].client)
    }

    /// The certificates, when it serves TLS.
    pub fn certs(&self) -> Option<&Certs> {
        self.certs.as_ref()
    }

    /// The flags `agent` and `publish` take to reach it: the certificates, or `--plaintext`.
    pub fn client_flags(&self) -> Vec<String> {
        self.certs
            .as_ref()
            .map_or_else(|| vec!["--plaintext".to_owned()], Certs::flags)
    }

    fn spawn(&mut self, i: usize) -> Result<()> {
        let initial = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let url = self.url(i);
        let member = &self.members[i];
        let peer = format!("http://127.0.0.1:{}", member.peer);
        let data = self.dir.join(&member.name);
        let state = if data.exists() { "existing" } else { "new" };
        let mut cmd = Command::new("etcd");
        cmd.args(["--name", &member.name, "--data-dir"])
            .arg(&data)
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                state,
            ])
            .args([
                "--initial-cluster-token",
                &member.name[..member.name.len() - 3],
            ]);
        if let Some(certs) = &self.certs {
            cmd.arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(certs.path("ca.pem"))
                .arg("--cert-file")
                .arg(certs.path("server.pem"))
                .arg("--key-file")
                .arg(certs.path("server.key"));
        }
        // A killed benchmark takes its members with it.
        filter_core::dies_with_caller(&mut cmd);
        let log = std::fs::File::create(self.dir.join(format!("{}.log", member.name)))
            .map_err(|e| Error::io("creating an etcd log", e))?;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::io("starting etcd (Debian's etcd-server package)", e))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Waits (up to 30 s) until member `i` answers its health check (after
    /// [`restart`](Self::restart) too).
    ///
    /// # Errors
    /// When it does not within 30 s.
    pub fn ready(&self, i: usize) -> Result<()> {
        let until = Instant::now() + Duration::from_secs(30);
        let url = format!("{}/health", self.url(i));
        loop {
            let mut curl = Command::new("curl");
            curl.args(["-s", "--max-time", "1", &url]);
            if let Some(certs) = &self.certs {
                curl.arg("--cacert")
                    .arg(certs.path("ca.pem"))
                    .arg("--cert")
                    .arg(certs.path("client.pem"))
                    .arg("--key")
                    .arg(certs.path("client.key"));
            }
            let healthy = curl
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("\"health\":\"true\""));
            if healthy {
                return Ok(());
            }
            if Instant::now() > until {
                return Err(Error::InvalidInput(format!(
                    "etcd member {} did not become healthy within 30 s (log: {})",
                    self.members[i].name,
                    self.dir
                        .join(format!("{}.log", self.members[i].name))
                        .display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again on its data, and waits until it serves.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i)?;
        Ok(())
    }

    /// The process id of member `i`, while it runs (for a kill from another thread).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.as_ref().map(Child::id)
    }

    /// How many members it has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether it has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
