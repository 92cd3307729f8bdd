//! Up-front kernel memory checks: an engine estimates what a list will take and refuses it,
//! naming the figures, before the kernel is asked, so a list too big for the machine fails
//! with an error rather than with the OOM killer halfway through a load.

use crate::{Error, Result};

/// The share of `MemAvailable` one filter may plan to take.
pub const USABLE_SHARE: (u64, u64) = (3, 4);

/// `MemAvailable` from `/proc/meminfo`, in bytes: the one reader of it in egress-bench.
pub fn available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a plan needing `bytes` of kernel memory when that exceeds three quarters of
/// `MemAvailable`, with an [`Error::Limit`] naming `what` and both figures.
///
/// # Errors
///
/// [`Error::Limit`] when the estimate does not fit; [`Error::InvalidInput`] when
/// `MemAvailable` cannot be read (a check that cannot run must not pass).
pub fn require(what: &'static str, bytes: u64, hint: &str) -> Result<()> {
    let Some(available) = available() else {
        return Err(Error::InvalidInput(format!(
            "cannot read MemAvailable from /proc/meminfo, so the {what} check ({bytes} bytes) \
             cannot run"
        )));
    };
    let usable = available / USABLE_SHARE.1 * USABLE_SHARE.0;
    if bytes > usable {
        return Err(Error::Limit {
            limit: what,
            requested: bytes,
            max: usable,
            hint: format!(
                "bytes of kernel memory, against 3/4 of MemAvailable ({} MiB); {hint}",
                available >> 20
            ),
        });
    }
    Ok(())
}
