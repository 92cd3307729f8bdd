//! The agent's loop: read every chunk under the prefix, make the filter equal to their
//! union, then follow the store's watch from that revision, applying changes once they
//! settle. Any failure to reach the store leaves the filter as it is (stale, reported);
//! a compacted watch is followed by a full read.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use etcd_client::{EventType, GetOptions, WatchOptions};
use filter_core::EgressFilter;

use crate::state::Chunks;
use crate::status::{Reporter, State, Status};
use crate::store::Store;

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the list is.
    pub store: Store,
    /// Where the status is written, besides standard error.
    pub status: Option<std::path::PathBuf>,
    /// How long changes must be quiet before they are applied (a publish of many chunks is
    /// then one sync, not one per chunk).
    pub settle: Duration,
    /// How long to wait before trying the store again after a failure.
    pub retry: Duration,
}

/// Why the store was left: stale, or a full read wanted.
enum Restart {
    /// The store failed: report stale and try again after the retry delay.
    Failed(String),
    /// The watch was compacted past our revision: read everything again now.
    Compacted(i64),
    /// Asked to stop.
    Stop,
}

/// Keeps `filter` equal to the union of the chunks under the prefix until `stop` is set;
/// `adopted` says whether it was taken over from an earlier agent (reported). The filter is
/// left as it is on return: a filter made to outlive the process stays enforced.
///
/// # Errors
/// When the async runtime cannot start.
pub fn run(
    filter: &mut dyn EgressFilter,
    adopted: bool,
    config: &Config,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut agent = Agent {
        filter,
        config,
        chunks: Chunks::default(),
        reporter: Reporter::new(config.status.as_deref()),
        status: Status {
            state: State::Starting,
            revision: 0,
            chunks: 0,
            entries: 0,
            refused: Vec::new(),
            adopted,
            syncs: 0,
            last_sync_ms: 0.0,
            error: None,
            at_unix_ms: 0,
        },
        stop,
    };
    agent.reporter.report(&mut agent.status);
    runtime.block_on(agent.follow());
    Ok(())
}

struct Agent<'a> {
    filter: &'a mut dyn EgressFilter,
    config: &'a Config,
    chunks: Chunks,
    reporter: Reporter,
    status: Status,
    stop: &'a AtomicBool,
}

impl Agent<'_> {
    async fn follow(&mut self) {
        loop {
            match self.session().await {
                Restart::Stop => return,
                Restart::Compacted(revision) => {
                    eprintln!(
                        "agent: the watch was compacted past revision {revision}: reading \
                         the whole list again"
                    );
                }
                Restart::Failed(why) => {
                    self.status.state = match self.status.state {
                        State::Starting => State::Starting,
                        _ => State::Stale,
                    };
                    self.status.error = Some(why);
                    self.reporter.report(&mut self.status);
                    if self.wait(self.config.retry).await {
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps `span` in short steps; whether asked to stop meanwhile.
    async fn wait(&self, span: Duration) -> bool {
        let until = Instant::now() + span;
        while Instant::now() < until {
            if self.stop.load(Ordering::SeqCst) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop.load(Ordering::SeqCst)
    }

    /// One connection: a full read, then the watch, until something ends it.
    async fn session(&mut self) -> Restart {
        let store = &self.config.store;
        let failed = |what: &str, e: etcd_client::Error| {
            Restart::Failed(format!("{what} ({}): {e}", store.endpoints.join(",")))
        };
        let mut client = match store.connect().await {
            Ok(client) => client,
            Err(e) => return failed("cannot reach etcd", e),
        };
        let read = match client
            .get(store.prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
        {
            Ok(read) => read,
            Err(e) => return failed("cannot read the list", e),
        };
        let mut revision = read.header().map_or(0, |h| h.revision());
        let kvs: Vec<(String, Vec<u8>)> = read
            .kvs()
            .iter()
            .map(|kv| {
                (
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                )
            })
            .collect();
        self.chunks = self
            .chunks
            .resync(kvs.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
        if let Some(restart) = self.apply(revision) {
            return restart;
        }
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
            .with_progress_notify();
        let mut watch = match client.watch(store.prefix.as_str(), Some(options)).await {
            Ok(watch) => watch,
            Err(e) => return failed("cannot watch the list", e),
        };
        let mut changed_at: Option<Instant> = None;
        loop {
            if self.stop.load(Ordering::SeqCst) {
                return Restart::Stop;
            }
            if changed_at.is_some_and(|at| at.elapsed() >= self.config.settle) {
                changed_at = None;
                if let Some(restart) = self.apply(revision) {
                    return restart;
                }
            }
            let message = tokio::time::timeout(Duration::from_millis(50), watch.message()).await;
            let response = match message {
                Err(_) => continue,
                Ok(Err(e)) => return failed("the watch failed", e),
                Ok(Ok(None)) => {
                    return Restart::Failed("etcd closed the watch".into());
                }
                Ok(Ok(Some(response))) => response,
            };
            if response.compact_revision() > 0 {
                return Restart::Compacted(revision);
            }
            if response.canceled() {
                return Restart::Failed(format!(
                    "etcd cancelled the watch: {}",
                    response.cancel_reason()
                ));
            }
            let mut changed = false;
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let key = String::from_utf8_lossy(kv.key());
                changed |= match event.event_type() {
                    EventType::Put => self.chunks.put(&key, kv.value()),
                    EventType::Delete => self.chunks.delete(&key),
                };
            }
            if let Some(header) = response.header() {
                revision = header.revision();
            }
            if changed {
                changed_at.get_or_insert_with(Instant::now);
            } else if changed_at.is_none() {
                // Nothing in force changed (a refused chunk, a progress note): say so.
                self.status.revision = revision;
                self.refresh_refused();
                self.reporter.report(&mut self.status);
            }
        }
    }

    fn refresh_refused(&mut self) {
        self.status.refused = self.chunks.refused().map(ToString::to_string).collect();
    }

    /// Makes the filter equal to the chunks' union; on failure the filter keeps what it
    /// had (every engine's sync either applies or leaves the old list) and the agent
    /// retries from a full read.
    fn apply(&mut self, revision: i64) -> Option<Restart> {
        let desired = self.chunks.union();
        let started = Instant::now();
        self.refresh_refused();
        match self.filter.sync(&desired) {
            Ok(_) => {
                self.status.state = State::InSync;
                self.status.revision = revision;
                self.status.chunks = self.chunks.len();
                self.status.entries = desired.len();
                self.status.syncs += 1;
                self.status.last_sync_ms = started.elapsed().as_secs_f64() * 1e3;
                self.status.error = None;
                self.reporter.report(&mut self.status);
                None
            }
            Err(e) => Some(Restart::Failed(format!(
                "the filter refused the list at revision {revision} (the last good list \
                 stays): {e}"
            ))),
        }
    }
}
