//! Writing a list to the store as chunks under a prefix: each chunk at most
//! [`CHUNK_ENTRIES`] entries and within etcd's request limit, written in transactions of at
//! most [`MAX_TXN_OPS`] operations that also stay under the limit; then the keys of the
//! previous list that the new one does not use are deleted.

use etcd_client::{Client, GetOptions, Txn, TxnOp};
use filter_core::CidrList;

use crate::store::Store;

/// Entries per chunk by default: the published benchmark's objects of 50,000 CIDRs.
pub const CHUNK_ENTRIES: usize = 50_000;

/// etcd's default `--max-request-bytes`: 1.5 MiB.
pub const MAX_REQUEST_BYTES: usize = 1_572_864;

/// etcd's default `--max-txn-ops`.
pub const MAX_TXN_OPS: usize = 128;

/// Room left in each request for the key and the framing.
const REQUEST_OVERHEAD: usize = 4_096;

/// Why a list cannot be published.
#[derive(Debug)]
pub enum PublishError {
    /// A chunk would pass the request limit.
    TooBig {
        /// The chunk's number.
        chunk: usize,
        /// Its size in bytes.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The store refused or could not be reached.
    Store(etcd_client::Error),
}

impl std::fmt::Display for PublishError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooBig {
                chunk,
                bytes,
                limit,
            } => write!(
                f,
                "chunk {chunk} would be {bytes} bytes, past etcd's request limit of {limit} \
                 bytes (--max-request-bytes): publish with fewer --chunk-entries"
            ),
            Self::Store(e) => write!(f, "etcd: {e}"),
        }
    }
}

impl std::error::Error for PublishError {}

impl From<etcd_client::Error> for PublishError {
    fn from(e: etcd_client::Error) -> Self {
        Self::Store(e)
    }
}

/// Splits `list` into chunks of at most `entries` lines each. With `entries` left to the
/// default, a chunk also ends before it would pass `limit`; a chunk of an explicit size
/// that passes it is refused, naming the limit.
///
/// # Errors
/// [`PublishError::TooBig`].
pub fn split(
    list: &CidrList,
    entries: Option<usize>,
    limit: usize,
) -> Result<Vec<String>, PublishError> {
    let room = limit.saturating_sub(REQUEST_OVERHEAD);
    let most = entries.unwrap_or(CHUNK_ENTRIES).max(1);
    let mut chunks = Vec::new();
    let mut chunk = String::new();
    let mut count = 0;
    for net in list.iter() {
        let line = format!("{net}\n");
        let full = count == most || (entries.is_none() && chunk.len() + line.len() > room);
        if full {
            chunks.push(std::mem::take(&mut chunk));
            count = 0;
        }
        chunk.push_str(&line);
        count += 1;
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    if let Some((i, big)) = chunks.iter().enumerate().find(|(_, c)| c.len() > room) {
        return Err(PublishError::TooBig {
            chunk: i,
            bytes: big.len(),
            limit,
        });
    }
    Ok(chunks)
}

/// The key of chunk `i` under `prefix` (ending in `/`).
pub fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}{i:06}")
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Chunks written.
    pub chunks: usize,
    /// Transactions used.
    pub transactions: usize,
    /// Keys of the previous list deleted.
    pub deleted: usize,
    /// The store's revision after the last transaction.
    pub revision: i64,
}

/// Writes `chunks` under the store's prefix, then deletes the keys under it that they do not
/// use.
///
/// # Errors
/// [`PublishError::Store`] when the store refuses or cannot be reached.
pub async fn publish(
    store: &Store,
    chunks: &[String],
    limit: usize,
) -> Result<Published, PublishError> {
    let client: Client = store.connect().await?;
    // Transactions of puts, each within the limits; up to IN_FLIGHT at a time on the one
    // connection, so the members commit them in a few rounds rather than one by one.
    let mut batches: Vec<Vec<TxnOp>> = Vec::new();
    let mut ops = Vec::new();
    let mut bytes = 0;
    for (i, chunk) in chunks.iter().enumerate() {
        let size = chunk.len() + REQUEST_OVERHEAD;
        if !ops.is_empty() && (ops.len() == MAX_TXN_OPS || bytes + size > limit) {
            batches.push(std::mem::take(&mut ops));
            bytes = 0;
        }
        ops.push(TxnOp::put(key(&store.prefix, i), chunk.as_bytes(), None));
        bytes += size;
    }
    if !ops.is_empty() {
        batches.push(ops);
    }
    let mut transactions = batches.len();
    let mut revision = 0;
    for wave in batches.chunks(IN_FLIGHT) {
        let mut commits = tokio::task::JoinSet::new();
        for ops in wave {
            let mut client = client.clone();
            let ops = ops.clone();
            commits.spawn(async move { commit(&mut client, ops).await });
        }
        while let Some(done) = commits.join_next().await {
            let done =
                done.map_err(|e| PublishError::Store(etcd_client::Error::IoError(e.into())))?;
            revision = revision.max(done?);
        }
    }
    let used: std::collections::BTreeSet<String> =
        (0..chunks.len()).map(|i| key(&store.prefix, i)).collect();
    let old = client
        .clone()
        .get(
            store.prefix.as_str(),
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await?;
    let stale: Vec<String> = old
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .filter(|k| !used.contains(k))
        .collect();
    for keys in stale.chunks(MAX_TXN_OPS) {
        let ops = keys
            .iter()
            .map(|k| TxnOp::delete(k.as_str(), None))
            .collect();
        revision = revision.max(commit(&mut client.clone(), ops).await?);
        transactions += 1;
    }
    Ok(Published {
        chunks: chunks.len(),
        transactions,
        deleted: stale.len(),
        revision,
    })
}

/// Transactions sent at once by [`publish`].
const IN_FLIGHT: usize = 32;

/// [`split`] then [`publish`], waiting for it: for programs without an async runtime.
///
/// # Errors
/// As [`split`] and [`publish`]; [`PublishError::Store`] also when no runtime can start.
pub fn publish_list(
    store: &Store,
    list: &CidrList,
    entries: Option<usize>,
    limit: usize,
) -> Result<Published, PublishError> {
    let chunks = split(list, entries, limit)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PublishError::Store(etcd_client::Error::IoError(e)))?
        .block_on(publish(store, &chunks, limit))
}

/// A blocking writer for programs without an async runtime (the cluster benchmark): one
/// connection kept for many writes.
pub struct Writer {
    runtime: tokio::runtime::Runtime,
    client: Client,
    store: Store,
}

impl Writer {
    /// Connects to `store`.
    ///
    /// # Errors
    /// [`PublishError::Store`] when it cannot be reached.
    pub fn connect(store: &Store) -> Result<Self, PublishError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PublishError::Store(etcd_client::Error::IoError(e)))?;
        let client = runtime.block_on(store.connect())?;
        Ok(Self {
            runtime,
            client,
            store: store.clone(),
        })
    }

    /// Puts `value` at `key` under the prefix; the revision it made.
    ///
    /// # Errors
    /// [`PublishError::Store`].
    pub fn put(&mut self, key: &str, value: &str) -> Result<i64, PublishError> {
        let key = format!("{}{key}", self.store.prefix);
        let response = self.runtime.block_on(self.client.put(key, value, None))?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Deletes `key` under the prefix; the revision it made.
    ///
    /// # Errors
    /// [`PublishError::Store`].
    pub fn delete(&mut self, key: &str) -> Result<i64, PublishError> {
        let key = format!("{}{key}", self.store.prefix);
        let response = self.runtime.block_on(self.client.delete(key, None))?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }
}

async fn commit(client: &mut Client, ops: Vec<TxnOp>) -> Result<i64, PublishError> {
    let response = client.txn(Txn::new().and_then(ops)).await?;
    Ok(response.header().map_or(0, |h| h.revision()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> CidrList {
        filter_core::generate::generate(
            n,
            1,
            filter_core::generate::Mix::Default,
            &filter_core::Family::BOTH,
        )
    }

    #[test]
    fn chunks_hold_every_entry_within_the_limits() {
        let list = list(120_000);
        let chunks = split(&list, None, MAX_REQUEST_BYTES).unwrap();
        assert!(chunks.len() >= 3);
        let lines: usize = chunks.iter().map(|c| c.lines().count()).sum();
        assert_eq!(lines, list.len());
        assert!(chunks.iter().all(|c| c.lines().count() <= CHUNK_ENTRIES));
        assert!(
            chunks
                .iter()
                .all(|c| c.len() <= MAX_REQUEST_BYTES - REQUEST_OVERHEAD)
        );
    }

    #[test]
    fn an_explicit_chunk_past_the_limit_names_it() {
        let err = split(&list(10_000), Some(10_000), 64 * 1024).unwrap_err();
        assert!(err.to_string().contains("65536 bytes"), "{err}");
    }
}
