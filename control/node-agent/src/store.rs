//! The etcd connection both sides share: endpoints, TLS with a client certificate (or
//! plaintext when asked for), time-outs and keep-alives chosen so a dead member is noticed
//! in seconds, and the prefix normalised to end with `/`.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// How the connection is secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// TLS, the server checked against `ca`, this side proven by `cert` and `key` (PEM).
    Tls {
        /// The CA that signed the members' certificates.
        ca: PathBuf,
        /// The client certificate.
        cert: PathBuf,
        /// Its private key.
        key: PathBuf,
    },
    /// No encryption and no client identity: only when asked for.
    Plaintext,
}

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct Store {
    /// Client URLs (`https://10.0.0.5:2379`), tried in turn from one chosen by process id.
    pub endpoints: Vec<String>,
    /// The key prefix that holds the list's chunks.
    pub prefix: String,
    /// TLS or plaintext.
    pub security: Security,
}

impl Store {
    /// A store at `endpoints` (comma-separated allowed), keys under `prefix`.
    pub fn new(endpoints: &[String], prefix: &str, security: Security) -> Self {
        let endpoints = endpoints
            .iter()
            .flat_map(|e| e.split(','))
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self {
            endpoints,
            prefix,
            security,
        }
    }

    /// Where this process starts trying endpoints: its process id modulo their number.
    fn first_endpoint(&self) -> usize {
        let pid = usize::try_from(std::process::id()).unwrap_or(0);
        pid.checked_rem(self.endpoints.len()).unwrap_or(0)
    }

    /// A client: 2 s to connect, 10 s per request, an HTTP/2 ping every second that fails
    /// the stream after 3 s without an answer.
    ///
    /// # Errors
    /// When an endpoint's scheme does not match the security (`https://` for TLS), a
    /// certificate cannot be read, or no endpoint answers.
    pub async fn connect(&self) -> Result<Client, etcd_client::Error> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(3))
            .with_keep_alive_while_idle(true);
        let scheme = match &self.security {
            Security::Tls { ca, cert, key } => {
                let read = |path: &PathBuf| {
                    std::fs::read(path).map_err(|e| {
                        etcd_client::Error::IoError(std::io::Error::new(
                            e.kind(),
                            format!("{}: {e}", path.display()),
                        ))
                    })
                };
                options = options.with_tls(
                    TlsOptions::new()
                        .ca_certificate(Certificate::from_pem(read(ca)?))
                        .identity(Identity::from_pem(read(cert)?, read(key)?)),
                );
                "https://"
            }
            Security::Plaintext => "http://",
        };
        if let Some(wrong) = self.endpoints.iter().find(|e| !e.starts_with(scheme)) {
            return Err(etcd_client::Error::InvalidArgs(format!(
                "{wrong}: with {} the endpoints are {scheme} URLs",
                match self.security {
                    Security::Tls { .. } => "TLS",
                    Security::Plaintext => "--plaintext",
                }
            )));
        }
        // One endpoint at a time, the first that answers: a channel balanced over every
        // endpoint fails its requests while any one member is down. Each process starts at
        // its own member (by process id), so a fleet's watches spread over the members
        // instead of all landing on the first.
        let start = self.first_endpoint();
        let mut last = None;
        for endpoint in self.endpoints[start..]
            .iter()
            .chain(&self.endpoints[..start])
        {
            let answered = async {
                let mut client = Client::connect([endpoint], Some(options.clone())).await?;
                client.status().await?;
                Ok::<_, etcd_client::Error>(client)
            };
            match answered.await {
                Ok(client) => return Ok(client),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| etcd_client::Error::InvalidArgs("no etcd endpoint".into())))
    }
}
