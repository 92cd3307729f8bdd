//! The etcd source: the chunks are the keys under a prefix; a range read gives the
//! snapshot and its revision, a watch from the next revision the changes.

use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchStream};

use crate::source::{Change, Changes, Failure, Snapshot, Source};
use crate::store::Store;

/// Chunks under a prefix of an etcd cluster.
pub struct EtcdSource {
    store: Store,
    client: Option<Client>,
    watch: Option<WatchStream>,
}

impl EtcdSource {
    /// The chunks under `store`'s prefix.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            client: None,
            watch: None,
        }
    }

    fn failed(&mut self, what: &str, e: &dyn std::fmt::Display) -> Failure {
        // Connect again next time: the channel may be what failed.
        self.client = None;
        self.watch = None;
        Failure::Unreachable(format!("{what} ({}): {e}", self.store.endpoints.join(",")))
    }

    async fn client(&mut self) -> Result<&mut Client, Failure> {
        if self.client.is_none() {
            match self.store.connect().await {
                Ok(client) => self.client = Some(client),
                Err(e) => return Err(self.failed("cannot reach etcd", &e)),
            }
        }
        Ok(self.client.as_mut().expect("set above"))
    }
}

impl Source for EtcdSource {
    async fn read(&mut self) -> Result<Snapshot, Failure> {
        self.watch = None;
        let prefix = self.store.prefix.clone();
        let read = self
            .client()
            .await?
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await;
        let read = match read {
            Ok(read) => read,
            Err(e) => return Err(self.failed("cannot read the list", &e)),
        };
        Ok(Snapshot {
            revision: read.header().map_or(0, |h| h.revision()),
            chunks: read
                .kvs()
                .iter()
                .map(|kv| {
                    (
                        String::from_utf8_lossy(kv.key()).into_owned(),
                        kv.value().to_vec(),
                    )
                })
                .collect(),
        })
    }

    async fn follow(&mut self, revision: i64) -> Result<(), Failure> {
        let prefix = self.store.prefix.clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
            .with_progress_notify();
        let watch = self.client().await?.watch(prefix, Some(options)).await;
        match watch {
            Ok(watch) => {
                self.watch = Some(watch);
                Ok(())
            }
            Err(e) => Err(self.failed("cannot watch the list", &e)),
        }
    }

    async fn next(&mut self, wait: Duration) -> Result<Option<Changes>, Failure> {
        let Some(watch) = self.watch.as_mut() else {
            return Err(Failure::Unreachable("not following the list".into()));
        };
        let response = match tokio::time::timeout(wait, watch.message()).await {
            Err(_) => return Ok(None),
            Ok(Err(e)) => return Err(self.failed("the watch failed", &e)),
            Ok(Ok(None)) => return Err(self.failed("the watch ended", &"closed by etcd")),
            Ok(Ok(Some(response))) => response,
        };
        if response.compact_revision() > 0 {
            self.watch = None;
            return Err(Failure::Compacted(response.compact_revision()));
        }
        if response.canceled() {
            let reason = response.cancel_reason().to_owned();
            return Err(self.failed("etcd cancelled the watch", &reason));
        }
        let changes: Vec<Change> = response
            .events()
            .iter()
            .filter_map(|event| {
                let kv = event.kv()?;
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                Some(match event.event_type() {
                    EventType::Put => Change::Put(key, kv.value().to_vec()),
                    EventType::Delete => Change::Delete(key),
                })
            })
            .collect();
        // The revision the changes bring the list to: their own, for events; the header's
        // only for a progress note (every event up to it was sent). The header of the
        // response that confirms the watch is the store's revision at that moment, with
        // events up to it possibly still to come: it says nothing.
        let revision = if response.created() {
            0
        } else if changes.is_empty() {
            response.header().map_or(0, |h| h.revision())
        } else {
            response
                .events()
                .iter()
                .filter_map(|e| e.kv().map(|kv| kv.mod_revision()))
                .max()
                .unwrap_or(0)
        };
        Ok(Some(Changes { revision, changes }))
    }
}
