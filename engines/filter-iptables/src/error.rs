//! What can go wrong in the iptables engine's own kernel path (the legacy x_tables blob).

use filter_core::Error;

use crate::XT_MAX_TABLE_SIZE;

/// What can go wrong in the iptables engine beyond the `iptables-restore` it drives.
/// Converts into [`filter_core::Error`] (what the
/// [`EgressFilter`](filter_core::EgressFilter) methods return): sizes become
/// [`Error::Limit`], refusals [`Error::Kernel`], tables it cannot read
/// [`Error::InvalidInput`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IptablesError {
    /// The rules would make the legacy table blob reach the kernel's `XT_MAX_TABLE_SIZE`.
    #[error(
        "x_tables table blob (XT_MAX_TABLE_SIZE) exceeded: {bytes} bytes for {rules} {family} rules"
    )]
    BlobTooLarge {
        /// Rules of the family.
        rules: usize,
        /// `IPv4` or `IPv6`.
        family: &'static str,
        /// Bytes one rule takes.
        bytes_per_rule: u64,
        /// Bytes the blob would take.
        bytes: u64,
    },
    /// A count or size does not fit the 32-bit fields of the x_tables interface.
    #[error(
        "x_tables {what} exceeded: {requested} requested, at most {} allowed",
        u32::MAX
    )]
    TooBig {
        /// Which field (`rule count`, `blob size`).
        what: &'static str,
        /// What was needed.
        requested: u64,
    },
    /// The table the kernel returned is not laid out as x_tables lays tables out.
    #[error("malformed x_tables blob from the kernel: entry at byte {at}: {why}")]
    Malformed {
        /// Byte offset of the entry.
        at: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Another program changed the table between our two reads of it.
    #[error("the legacy filter table changed while it was read; try again")]
    TableChanged,
    /// The legacy filter table has no `OUTPUT` hook.
    #[error("the legacy filter table has no OUTPUT hook")]
    NoOutputHook,
    /// A chain name longer than x_tables' 28 bytes.
    #[error("chain name {0:?} is longer than 28 bytes")]
    ChainName(String),
    /// A socket option or a restore transaction was refused.
    #[error(transparent)]
    Refused(filter_core::Refusal),
}

impl From<IptablesError> for Error {
    fn from(err: IptablesError) -> Self {
        match err {
            IptablesError::BlobTooLarge {
                rules,
                family,
                bytes_per_rule,
                bytes,
            } => Error::Limit {
                limit: "x_tables table blob (XT_MAX_TABLE_SIZE)",
                requested: bytes,
                max: XT_MAX_TABLE_SIZE - 1,
                hint: format!(
                    "bytes for {rules} {family} rules of {bytes_per_rule} bytes: the legacy \
                     back-end holds at most ~{} such rules in one table; use ipset or tcbpf for \
                     lists this long",
                    XT_MAX_TABLE_SIZE / bytes_per_rule
                ),
            },
            IptablesError::TooBig { what, requested } => Error::Limit {
                limit: if what == "rule count" {
                    "x_tables rule count"
                } else {
                    "x_tables blob size"
                },
                requested,
                max: u64::from(u32::MAX),
                hint: "load fewer rules, or use the ipset or tcbpf engine".into(),
            },
            IptablesError::Refused(refusal) => refusal.into(),
            other => Error::InvalidInput(other.to_string()),
        }
    }
}
