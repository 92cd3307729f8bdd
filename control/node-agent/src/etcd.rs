//! The etcd source: the chunks are the keys under a prefix; a range read gives the
//! snapshot and its revision, a watch from the next revision the changes.

use std::time::Duration;

use etcd_client::{Client, EventType, GetOptions, WatchOptions, WatchStream};

use crate::source::{Change, Changes, Failure, Snapshot, Source};
use crate::store::Store;

/// Chunks read per request of a full read: two chunks within etcd's request limit fit one
/// default-sized gRPC message with room to spare.
const PAGE_KEYS: i64 = 2;

/// The largest message taken from etcd: a watch catching up sends many events in one.
const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The first key after every key that starts with `prefix`.
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte 0xff: to the end of the key space.
    vec![0]
}

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
    /// Pages of `PAGE_KEYS` (2) chunks, every page at the first page's revision: a list of
    /// many chunks is larger than one gRPC message may be (4 MiB by default).
    async fn read(&mut self) -> Result<Snapshot, Failure> {
        self.watch = None;
        let prefix = self.store.prefix.clone();
        let end = range_end(prefix.as_bytes());
        let mut kv = self
            .client()
            .await?
            .kv_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let mut snapshot = Snapshot::default();
        let mut from = prefix.into_bytes();
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE_KEYS);
            if snapshot.revision > 0 {
                options = options.with_revision(snapshot.revision);
            }
            let page = match kv.get(from.clone(), Some(options)).await {
                Ok(page) => page,
                Err(e) => return Err(self.failed("cannot read the list", &e)),
            };
            if snapshot.revision == 0 {
                snapshot.revision = page.header().map_or(0, |h| h.revision());
            }
            for kv in page.kvs() {
                snapshot.chunks.push((
                    String::from_utf8_lossy(kv.key()).into_owned(),
                    kv.value().to_vec(),
                ));
            }
            match page.kvs().last() {
                Some(last) if page.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => return Ok(snapshot),
            }
        }
    }

    async fn follow(&mut self, revision: i64) -> Result<(), Failure> {
        let prefix = self.store.prefix.clone();
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1)
            .with_progress_notify();
        let watch = self
            .client()
            .await?
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .watch(prefix, Some(options))
            .await;
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_range_end_follows_every_key_of_the_prefix() {
        assert_eq!(super::range_end(b"/egb/list/"), b"/egb/list0".to_vec());
        assert_eq!(super::range_end(b"a\xff"), b"b".to_vec());
    }
}
