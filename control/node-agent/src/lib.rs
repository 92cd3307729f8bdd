//! A node agent: keeps an [`EgressFilter`](filter_core::EgressFilter) equal to a deny-list
//! held in etcd, one key per chunk under a prefix (plain lines, or Calico GlobalNetworkSet
//! resources as Calico's etcd datastore stores them), through `sync` (the fewest changes, or
//! a whole-list swap when most of the list changed).
//!
//! - [`agent::run`]: a full read, then the watch from that revision; changes applied once
//!   they settle; a full read again after a compaction. The chunks come from a [`Source`]
//!   ([`EtcdSource`] here), reached over TLS with a client certificate ([`Security`]).
//! - Never lapses: while etcd cannot be reached the filter keeps the last good list and the
//!   status says stale; a chunk with a bad line is refused (key and line named) and its last
//!   good version stays in force. With a filter made to outlive the process
//!   ([`persist`](filter_core::EgressFilter::persist)), a killed or restarted agent leaves
//!   the list enforced, and the next one adopts it.
//! - [`publish`]: a list written as chunks within etcd's request limit, in transactions.
//!
//! Only etcd's own replication is used: run one agent per node against the cluster's etcd.

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod agent;
pub mod chunk;
pub mod etcd;
pub mod publish;
pub mod source;
pub mod state;
pub mod status;
pub mod store;

pub use agent::{Config, run};
pub use etcd::EtcdSource;
pub use source::Source;
pub use status::{State, Status};
pub use store::{Security, Store};
