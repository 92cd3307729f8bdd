//! Kernel refusals in words.

use filter_core::Error;

/// A kernel refusal as an [`Error::Kernel`]: the whole error chain in words, the errno
/// where there is one, and a hint for the common limits.
pub(crate) fn kernel(operation: impl Into<String>, err: impl std::error::Error) -> Error {
    let mut message = err.to_string();
    let mut code = 0;
    let mut source = err.source();
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            code = io.raw_os_error().unwrap_or(code);
        }
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
    Error::Kernel {
        operation: operation.into(),
        code,
        message: format!("{message}{hint}"),
    }
}
