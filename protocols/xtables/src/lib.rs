//! Driving `iptables-restore` and `ip6tables-restore` in a network namespace: one process
//! per transaction, whatever its size, on either back-end; and finding and removing the
//! chains egress-bench's engines (`filter-iptables`, `filter-ipset`) hook into `OUTPUT`.
//!
//! ```no_run
//! use filter_core::{Family, NetNs};
//! use xtables::Backend;
//!
//! let ns = NetNs::named("blue");
//! // One transaction: the kernel applies all of it or none.
//! xtables::restore(&ns, Backend::Nft, Family::V4, "*filter\n:egb-demo - [0:0]\n\
//!     -A egb-demo -d 203.0.113.0/24 -j DROP\n-A OUTPUT -j egb-demo\nCOMMIT\n")?;
//! let (packets, bytes) = xtables::counters_both(&ns, Backend::Nft, "egb-demo")?;
//! println!("{packets} packets, {bytes} bytes dropped");
//! xtables::remove_chain_both(&ns, Backend::Nft, "egb-demo")?;
//! # Ok::<(), filter_core::Error>(())
//! ```

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::io::{self, Write};
use std::process::Command;
use std::str::FromStr;

use filter_core::{Family, NetNs, Result, run_command, run_with_input};

/// The kernel interface iptables drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// `iptables-nft`: rules become nf_tables rules (Debian 12's default `iptables`).
    #[default]
    Nft,
    /// `iptables-legacy`: the x_tables blob replaced whole through setsockopt.
    Legacy,
}

impl Backend {
    /// The name used on the command line and in records (`nft`, `legacy`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Nft => "nft",
            Backend::Legacy => "legacy",
        }
    }

    /// The iptables program of this back-end for `family`.
    pub fn program(self, family: Family) -> &'static str {
        match (self, family) {
            (Backend::Nft, Family::V4) => "iptables-nft",
            (Backend::Nft, Family::V6) => "ip6tables-nft",
            (Backend::Legacy, Family::V4) => "iptables-legacy",
            (Backend::Legacy, Family::V6) => "ip6tables-legacy",
        }
    }

    /// The restore program of this back-end for `family`.
    pub fn restore_program(self, family: Family) -> &'static str {
        match (self, family) {
            (Backend::Nft, Family::V4) => "iptables-nft-restore",
            (Backend::Nft, Family::V6) => "ip6tables-nft-restore",
            (Backend::Legacy, Family::V4) => "iptables-legacy-restore",
            (Backend::Legacy, Family::V6) => "ip6tables-legacy-restore",
        }
    }

    /// The back-end and its version, for records: `nft (iptables v1.8.9 (nf_tables))`.
    pub fn describe(self) -> String {
        format!("{} ({})", self.name(), self.version())
    }

    /// `iptables --version` of this back-end, for records.
    pub fn version(self) -> String {
        run_command(Command::new(self.program(Family::V4)).arg("--version"))
            .map_or_else(|e| format!("unknown ({e})"), |out| out.trim().to_owned())
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "nft" => Ok(Backend::Nft),
            "legacy" => Ok(Backend::Legacy),
            _ => Err(format!(
                "unknown iptables back-end {s:?}; expected nft or legacy"
            )),
        }
    }
}

/// Applies one `iptables-restore --noflush` transaction whose text `write` produces, streamed
/// into the restore process (the whole text is never held in memory). The kernel sees all of
/// it or, if any line fails, none of it.
///
/// # Errors
/// [`Error::Command`](filter_core::Error::Command) with the restore program's standard
/// error when any line is refused (nothing applied); [`Error::Io`](filter_core::Error::Io)
/// when it cannot start.
pub fn restore_with(
    netns: &NetNs,
    backend: Backend,
    family: Family,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let mut cmd = netns.command(backend.restore_program(family));
    cmd.args(["--noflush", "--wait"]);
    run_with_input(&mut cmd, write)
}

/// Applies a small `iptables-restore --noflush` transaction given as text.
///
/// # Errors
/// As [`restore_with`].
pub fn restore(netns: &NetNs, backend: Backend, family: Family, text: &str) -> Result<()> {
    restore_with(netns, backend, family, |w| w.write_all(text.as_bytes()))
}

/// Whether `chain` exists in the filter table.
pub fn chain_exists(netns: &NetNs, backend: Backend, family: Family, chain: &str) -> bool {
    let mut cmd = netns.command(backend.program(family));
    cmd.args(["--wait", "-t", "filter", "-n", "-L", chain]);
    run_command(&mut cmd).is_ok()
}

/// Sums the packet and byte counters of the rules in `chain`.
///
/// # Errors
/// [`Error::Command`](filter_core::Error::Command) when the chain cannot be listed.
pub fn chain_counters(
    netns: &NetNs,
    backend: Backend,
    family: Family,
    chain: &str,
) -> Result<(u64, u64)> {
    let mut cmd = netns.command(backend.program(family));
    cmd.args(["--wait", "-t", "filter", "-n", "-v", "-x", "-L", chain]);
    let out = run_command(&mut cmd)?;
    let (mut packets, mut bytes) = (0, 0);
    // Two header lines, then one line per rule starting with its packet and byte counts.
    for line in out.lines().skip(2) {
        let mut fields = line.split_whitespace();
        if let (Some(p), Some(b)) = (fields.next(), fields.next())
            && let (Ok(p), Ok(b)) = (p.parse::<u64>(), b.parse::<u64>())
        {
            packets += p;
            bytes += b;
        }
    }
    Ok((packets, bytes))
}

/// The rules in `chain` of `family`, as the kernel lists them (`-S`).
///
/// # Errors
/// [`Error::Command`](filter_core::Error::Command) when the chain cannot be listed.
pub fn rule_count(netns: &NetNs, backend: Backend, family: Family, chain: &str) -> Result<u64> {
    let mut cmd = netns.command(backend.program(family));
    cmd.args(["--wait", "-t", "filter", "-S", chain]);
    let rule = format!("-A {chain} ");
    Ok(run_command(&mut cmd)?
        .lines()
        .filter(|line| line.starts_with(&rule))
        .count() as u64)
}

/// The packet and byte counters of `chain`'s rules, summed over both families.
///
/// # Errors
/// As [`chain_counters`].
pub fn counters_both(netns: &NetNs, backend: Backend, chain: &str) -> Result<(u64, u64)> {
    let mut sum = (0, 0);
    for family in Family::BOTH {
        let (packets, bytes) = chain_counters(netns, backend, family, chain)?;
        sum = (sum.0 + packets, sum.1 + bytes);
    }
    Ok(sum)
}

/// Unhooks and deletes `chain` in both families, trying both whatever fails; the first error.
///
/// # Errors
/// The first family's failure, as [`remove_chain`].
pub fn remove_chain_both(netns: &NetNs, backend: Backend, chain: &str) -> Result<()> {
    Family::BOTH
        .into_iter()
        .map(|family| remove_chain(netns, backend, family, chain))
        .fold(Ok(()), Result::and)
}

/// The transaction that unhooks `chain` from OUTPUT and deletes it, if it exists.
///
/// # Errors
/// As [`restore`], when the chain exists and cannot be removed.
pub fn remove_chain(netns: &NetNs, backend: Backend, family: Family, chain: &str) -> Result<()> {
    if !chain_exists(netns, backend, family, chain) {
        return Ok(());
    }
    restore(
        netns,
        backend,
        family,
        &format!("*filter\n-D OUTPUT -j {chain}\n-F {chain}\n-X {chain}\nCOMMIT\n"),
    )
}

/// Every back-end and family, in the order leftovers are listed.
const TABLES: [(Backend, Family); 4] = [
    (Backend::Nft, Family::V4),
    (Backend::Nft, Family::V6),
    (Backend::Legacy, Family::V4),
    (Backend::Legacy, Family::V6),
];

/// Whether the legacy filter table of `family` exists in `netns`: reading it with
/// `iptables-legacy-save` would otherwise create it, changing the firewall just to look.
fn legacy_table_exists(netns: &NetNs, family: Family) -> bool {
    let names = match family {
        Family::V4 => "/proc/net/ip_tables_names",
        Family::V6 => "/proc/net/ip6_tables_names",
    };
    run_command(netns.command("cat").arg(names)).is_ok_and(|t| t.lines().any(|l| l == "filter"))
}

/// The filter-table chains of every back-end and family in `netns` whose names start with
/// `prefix`.
///
/// # Errors
/// [`Error::Command`](filter_core::Error::Command) when a `*-save` program cannot run: a
/// finder that cannot look must not report that nothing is there.
pub fn chains(netns: &NetNs, prefix: &str) -> Result<Vec<(Backend, Family, String)>> {
    let mut found = Vec::new();
    for (backend, family) in TABLES {
        if backend == Backend::Legacy && !legacy_table_exists(netns, family) {
            continue;
        }
        let save = format!("{}-save", backend.program(family));
        let out = run_command(netns.command(&save).args(["-t", "filter"]))?;
        // "-save" lists chains as ":name policy [packets:bytes]".
        found.extend(
            out.lines()
                .filter_map(|line| line.strip_prefix(':')?.split_whitespace().next())
                .filter(|chain| filter_core::under_prefix(chain, prefix))
                .map(|chain| (backend, family, chain.to_owned())),
        );
    }
    Ok(found)
}

/// [`chains`], described for a leftovers listing (`iptables-nft chain egb-1a2b3c`).
///
/// # Errors
/// As [`chains`].
pub fn chain_leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    Ok(chains(netns, prefix)?
        .into_iter()
        .map(|(backend, family, chain)| format!("{} chain {chain}", backend.program(family)))
        .collect())
}

/// Unhooks and removes every chain [`chains`] finds; returns what it removed.
///
/// # Errors
/// As [`chains`], or the first chain the back-end refused to remove.
pub fn remove_chain_leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (backend, family, chain) in chains(netns, prefix)? {
        remove_chain(netns, backend, family, &chain)?;
        removed.push(format!("{} chain {chain}", backend.program(family)));
    }
    Ok(removed)
}
