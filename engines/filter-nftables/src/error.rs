//! What can go wrong in the nftables engine.

use filter_core::Error;

/// What can go wrong in the nftables engine. Converts into [`filter_core::Error`] (what the
/// [`EgressFilter`](filter_core::EgressFilter) methods return): refusals become
/// [`Error::Kernel`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NftablesError {
    /// The kernel refused a message of a transaction; nothing of that transaction applied.
    #[error(transparent)]
    Refused(filter_core::Refusal),
}

impl NftablesError {
    /// A refusal with errno `code`, worded.
    pub(crate) fn refused(operation: String, code: i32) -> Self {
        let hint = match code {
            1 => " (needs CAP_NET_ADMIN in the namespace)",
            12 => " (not enough kernel memory for the sets: use a shorter or aggregated list)",
            17 => " (an element overlaps one the set holds, or the table exists)",
            _ => "",
        };
        Self::Refused(filter_core::Refusal {
            operation,
            code,
            message: format!("{}{hint}", std::io::Error::from_raw_os_error(code)),
        })
    }
}

impl From<NftablesError> for Error {
    fn from(err: NftablesError) -> Self {
        match err {
            NftablesError::Refused(refusal) => refusal.into(),
        }
    }
}
