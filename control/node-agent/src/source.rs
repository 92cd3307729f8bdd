//! Where the chunks come from, behind one trait: [`Source`]. etcd is the one built
//! ([`crate::etcd::EtcdSource`]); a Kubernetes source (GlobalNetworkSets, or a resource of
//! our own, listed then watched through the API server from a resourceVersion) would be
//! another implementation: its list is a [`Snapshot`], its watch events [`Change`]s, and
//! its "410 Gone" a [`Failure::Compacted`].

use std::time::Duration;

/// Every chunk at one revision of the source.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The source's revision of the read.
    pub revision: i64,
    /// Each chunk by key, with its raw value.
    pub chunks: Vec<(String, Vec<u8>)>,
}

/// One change to a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A chunk written (new or replaced).
    Put(String, Vec<u8>),
    /// A chunk deleted.
    Delete(String),
}

/// Changes that came together, and the revision they bring the source to.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The source's revision after them.
    pub revision: i64,
    /// The changes, in order.
    pub changes: Vec<Change>,
}

/// Why the source stopped answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It cannot be reached or refused: the last good list stays; try again later.
    Unreachable(String),
    /// Its history no longer reaches back to the revision followed: read it all again.
    Compacted(i64),
}

/// A store of chunks the agent reads in full, then follows.
#[expect(
    async_fn_in_trait,
    reason = "used by the agent's own single-threaded runtime"
)]
pub trait Source {
    /// Reads every chunk.
    ///
    /// # Errors
    /// [`Failure::Unreachable`].
    async fn read(&mut self) -> Result<Snapshot, Failure>;

    /// Starts following changes made after `revision`.
    ///
    /// # Errors
    /// As [`read`](Self::read); [`Failure::Compacted`] when the history is gone.
    async fn follow(&mut self, revision: i64) -> Result<(), Failure>;

    /// The next changes, waiting at most `wait`; `None` when none came. A revision with no
    /// changes (a progress note) comes as empty [`Changes`].
    ///
    /// # Errors
    /// As [`follow`](Self::follow).
    async fn next(&mut self, wait: Duration) -> Result<Option<Changes>, Failure>;
}
