//! The etcd connection both sides share: endpoints, time-outs and keep-alives chosen so a
//! dead member is noticed in seconds, and the prefix normalised to end with `/`.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions};

/// How to reach the store.
#[derive(Debug, Clone)]
pub struct Store {
    /// Client URLs (`http://127.0.0.1:2379`), tried in turn.
    pub endpoints: Vec<String>,
    /// The key prefix that holds the list's chunks.
    pub prefix: String,
}

impl Store {
    /// A store at `endpoints` (comma-separated allowed), keys under `prefix`.
    pub fn new(endpoints: &[String], prefix: &str) -> Self {
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
        Self { endpoints, prefix }
    }

    /// A client: 2 s to connect, 10 s per request, an HTTP/2 ping every second that fails
    /// the stream after 3 s without an answer.
    ///
    /// # Errors
    /// When no endpoint answers.
    pub async fn connect(&self) -> Result<Client, etcd_client::Error> {
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(10))
            .with_keep_alive(Duration::from_secs(1), Duration::from_secs(3))
            .with_keep_alive_while_idle(true);
        Client::connect(&self.endpoints, Some(options)).await
    }
}
