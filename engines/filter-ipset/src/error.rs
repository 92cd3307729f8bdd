//! What can go wrong in the ipset engine.

use filter_core::Error;

use crate::{FELIX_DEFAULT_MAXELEM, MAX_ENTRIES};

/// What can go wrong in the ipset engine. Converts into [`filter_core::Error`] (what the
/// [`EgressFilter`](filter_core::EgressFilter) methods return): set limits become
/// [`Error::Limit`], refusals [`Error::Kernel`], a list the set cannot hold
/// [`Error::InvalidInput`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpsetError {
    /// More distinct entries than the set's fixed `maxelem`.
    #[error("ipset maxelem exceeded: {requested} requested, at most {maxelem} allowed")]
    MaxelemExceeded {
        /// Distinct entries of one family.
        requested: u64,
        /// The fixed `maxelem`.
        maxelem: u32,
    },
    /// More entries than one `hash:net` set can be sized for ([`MAX_ENTRIES`]).
    #[error(
        "ipset hash:net entries exceeded: {requested} requested, at most {MAX_ENTRIES} allowed"
    )]
    TooManyEntries {
        /// Distinct entries of one family.
        requested: u64,
    },
    /// A `/0` entry: `hash:net` cannot hold one.
    #[error(
        "{place}: ipset hash:net cannot hold a /0 prefix (it would match everything); use a /1 \
         pair (0.0.0.0/1 and 128.0.0.0/1, or ::/1 and 8000::/1) instead"
    )]
    ZeroPrefix {
        /// The line (or entry) holding it.
        place: String,
    },
    /// The kernel refused an ipset request.
    #[error(transparent)]
    Refused(filter_core::Refusal),
}

impl From<IpsetError> for Error {
    fn from(err: IpsetError) -> Self {
        match err {
            IpsetError::MaxelemExceeded { requested, maxelem } => Error::Limit {
                limit: "ipset maxelem",
                requested,
                max: u64::from(maxelem),
                hint: format!(
                    "the set would be full (the kernel's \"Hash is full, cannot add more \
                     elements\"); raise maxelem (--ipset-maxelem; Calico Felix: MaxIpsetSize, \
                     default {FELIX_DEFAULT_MAXELEM}) or shorten the list"
                ),
            },
            IpsetError::TooManyEntries { requested } => Error::Limit {
                limit: "ipset hash:net entries",
                requested,
                max: MAX_ENTRIES,
                hint: "split the list across sets, or use the tcbpf engine".into(),
            },
            IpsetError::Refused(refusal) => refusal.into(),
            other => Error::InvalidInput(other.to_string()),
        }
    }
}
