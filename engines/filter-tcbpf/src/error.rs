//! What can go wrong in this engine, and kernel refusals in words.

use filter_core::Error;

/// What can go wrong in the tc eBPF engine. Converts into [`filter_core::Error`] (what the
/// [`EgressFilter`](filter_core::EgressFilter) methods return): refusals become
/// [`Error::Kernel`], size limits [`Error::Limit`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TcbpfError {
    /// A `bpf()` call or a tc netlink request was refused.
    #[error(transparent)]
    Refused(filter_core::Refusal),
    /// A map would need more entries than `max_entries` can say.
    #[error(
        "BPF map max_entries exceeded: {requested} requested, at most {} allowed; split the list",
        u32::MAX
    )]
    MapTooLarge {
        /// Entries wanted (twice the list).
        requested: u64,
    },
    /// An `add` found the LPM trie full: it was sized for the list loaded.
    #[error(
        "BPF LPM trie max_entries exceeded: {requested} requested, at most {max} allowed; replace() the list to get maps sized for it ({cause})"
    )]
    TrieFull {
        /// Entries the add needed.
        requested: u64,
        /// The trie's `max_entries`.
        max: u64,
        /// The kernel's words.
        cause: String,
    },
    /// The interface name cannot be given to the kernel.
    #[error("interface name {0:?} is not a valid C string")]
    InterfaceName(String),
    /// The loaded program has no hook to swap (a failed earlier replace).
    #[error("the loaded program is not hooked; tear the filter down and load again")]
    NotHooked,
    /// The embedded object lacks a program or map this crate names (a build problem).
    #[error("the embedded BPF object has no {0}")]
    MissingObject(String),
    /// A key read back from a map does not make a network.
    #[error("{map} holds a key that is not a network: {why}")]
    BadKey {
        /// The map.
        map: &'static str,
        /// Why.
        why: String,
    },
}

impl From<TcbpfError> for Error {
    fn from(err: TcbpfError) -> Self {
        match err {
            TcbpfError::Refused(refusal) => refusal.into(),
            TcbpfError::MapTooLarge { requested } => Error::Limit {
                limit: "BPF map max_entries",
                requested,
                max: u64::from(u32::MAX),
                hint: "split the list".into(),
            },
            TcbpfError::TrieFull {
                requested,
                max,
                cause,
            } => Error::Limit {
                limit: "BPF LPM trie max_entries",
                requested,
                max,
                hint: format!("replace() the list to get maps sized for it ({cause})"),
            },
            other => Error::InvalidInput(other.to_string()),
        }
    }
}

/// The errno somewhere in an error's chain (the netlink and syscall layers word the top).
pub(crate) fn os_error(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(code) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(code);
        }
        source = cause.source();
    }
    None
}

/// A kernel refusal as a [`TcbpfError::Refused`]: the whole error chain in words, the errno
/// where there is one, and a hint for the common limits.
pub(crate) fn kernel(
    operation: impl Into<String>,
    err: impl std::error::Error + 'static,
) -> TcbpfError {
    let mut message = err.to_string();
    let code = os_error(&err).unwrap_or(0);
    let mut source = err.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    let hint = match code {
        libc::EPERM => " (needs root, or CAP_BPF and CAP_NET_ADMIN)",
        libc::ENOMEM => {
            " (not enough kernel memory for the maps: use a shorter or aggregated list)"
        }
        _ => "",
    };
    // A verifier log can run to megabytes: its end says why.
    const KEEP: usize = 2_000;
    if message.len() > 2 * KEEP {
        let mut cut = message.len() - KEEP;
        while !message.is_char_boundary(cut) {
            cut += 1;
        }
        let head: String = message.chars().take(200).collect();
        message = format!("{head} [...] {}", &message[cut..]);
    }
    TcbpfError::Refused(filter_core::Refusal {
        operation: operation.into(),
        code,
        message: format!("{message}{hint}"),
    })
}
