//! The deny-list of a run: generated or read, checked against the testbed, with the
//! deliberate probe entries added.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use filter_core::generate::{Generator, Mix, generate};
use filter_core::{BAD_LINES_SHOWN, CidrList, Family, Located, ParseOptions, count, listing};

pub use records::{Families, ListInfo};

/// Where the list comes from and how it is read.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Generate this many distinct entries per family (global unicast, never the test range).
    #[arg(long, conflicts_with = "cidrs", required_unless_present = "cidrs")]
    pub rules: Option<usize>,
    /// Seed of the generated list.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix-length mix of the generated list: default (89% /32, 10% /24, 1% /16), hosts, uniform, feed (many lengths, like a threat feed).
    #[arg(long, default_value_t = Mix::Default, value_parser = parse_mix)]
    pub mix: Mix,
    /// Read the list from a file (`-` for stdin): one address or CIDR per line, # and ; comments.
    #[arg(long)]
    pub cidrs: Option<PathBuf>,
    /// Address families to load and check (default: 4 for a generated list, the families the
    /// file holds for --cidrs).
    #[arg(long, value_enum)]
    pub family: Option<Families>,
    /// Reject entries with host bits set instead of normalising them.
    #[arg(long)]
    pub strict: bool,
    /// Collapse duplicates, covered and adjacent entries before loading.
    #[arg(long)]
    pub aggregate: bool,
    /// Leave out entries that cover the testbed's own addresses instead of stopping.
    #[arg(long)]
    pub exclude_conflicting: bool,
}

fn parse_mix(s: &str) -> Result<Mix, String> {
    s.parse()
}

/// Builds the run's list for the testbed: generated or read, checked against the testbed's
/// addresses, with the testbed's denied probe networks appended.
pub fn build(args: &ListArgs) -> Result<(CidrList, ListInfo)> {
    build_for(
        args,
        &testbed::protected_addresses(),
        &testbed::denied_probe_nets(),
    )
}

/// Builds the run's list: generated or read, refused (or trimmed) if it covers any of
/// `protected`, with `probes` appended for the families in use.
/// Entries with their lines, one per line: the first [`BAD_LINES_SHOWN`], then a count.
fn listed(entries: &[Located]) -> String {
    let shown = entries
        .iter()
        .take(BAD_LINES_SHOWN)
        .map(|entry| match entry.line {
            Some(line) => format!("line {line}: {}", entry.net),
            None => entry.net.to_string(),
        });
    listing(shown, entries.len() as u64)
}

pub fn build_for(
    args: &ListArgs,
    protected: &[std::net::IpAddr],
    probes: &[ipnet::IpNet],
) -> Result<(CidrList, ListInfo)> {
    let (mut list, source, families) = if let Some(path) = &args.cidrs {
        let options = ParseOptions {
            strict: args.strict,
        };
        let list = CidrList::parse_file(path, &options)
            .with_context(|| format!("reading deny-list {}", path.display()))?;
        // Unless asked, a file's list is checked in the families it holds.
        let families = args
            .family
            .unwrap_or(match (list.v4().is_empty(), list.v6().is_empty()) {
                (true, false) => Families::V6,
                (false, false) => Families::Both,
                _ => Families::V4,
            });
        for family in Family::BOTH {
            if !families.list().contains(&family) && list.len_of(family) > 0 {
                let place = list
                    .line_of(family, 0)
                    .map_or_else(String::new, |l| format!(" (first at line {l})"));
                bail!(
                    "{}: {}{place} but --family {:?} was asked for; \
                     pass --family both, or remove them",
                    path.display(),
                    count(
                        list.len_of(family) as u64,
                        &format!("{family:?} entry"),
                        &format!("{family:?} entries")
                    ),
                    families
                );
            }
        }
        (list, path.display().to_string(), families)
    } else {
        let rules = args.rules.expect("clap requires --rules or --cidrs");
        let families = args.family.unwrap_or(Families::V4);
        (
            generate(rules, args.seed, args.mix, families.list()),
            "generated".into(),
            families,
        )
    };
    let aggregated = args.aggregate;
    if aggregated {
        list = list.aggregate();
    }
    let conflicts = list.covering(protected);
    let mut excluded = 0;
    if !conflicts.is_empty() {
        if !args.exclude_conflicting {
            bail!(
                "{} the test hosts' own addresses and would cut them off; nothing was \
                 changed. Remove them, or pass --exclude-conflicting to leave them out:{}",
                count(conflicts.len() as u64, "entry covers", "entries cover"),
                listed(&conflicts)
            );
        }
        excluded = list.remove_covering(protected);
        eprintln!(
            "left out {} that cover{} the testbed's addresses (--exclude-conflicting)",
            count(excluded as u64, "entry", "entries"),
            if excluded == 1 { "s" } else { "" }
        );
    }
    let stats = list.stats();
    let probes: Vec<_> = probes
        .iter()
        .copied()
        .filter(|n| families.list().contains(&Family::of(n.addr())))
        .collect();
    list.extend(probes.iter().copied());
    let info = ListInfo {
        source,
        requested: args.rules,
        seed: args.cidrs.is_none().then_some(args.seed),
        mix: args.cidrs.is_none().then_some(args.mix),
        families,
        stats,
        aggregated,
        excluded_conflicting: excluded,
        probe_entries: probes.iter().map(ToString::to_string).collect(),
        loaded_entries: list.len(),
    };
    Ok((list, info))
}

/// What `egress-bench generate` writes.
#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    /// Distinct entries per family.
    #[arg(long)]
    pub rules: u64,
    /// Seed of the generated list.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Prefix-length mix: default (89% /32, 10% /24, 1% /16), hosts, uniform, feed.
    #[arg(long, default_value_t = Mix::Default, value_parser = parse_mix)]
    pub mix: Mix,
    /// Address families to generate (IPv4 lines first).
    #[arg(long, value_enum, default_value_t = Families::V4)]
    pub family: Families,
}

/// Streams a generated list to standard output: memory stays flat whatever the size.
pub fn write_generated(args: &GenerateArgs) -> Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout().lock();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
    for &family in args.family.list() {
        for net in Generator::new(args.seed, args.mix, family, args.rules) {
            match writeln!(out, "{net}") {
                // A closed pipe (`| head`) ends the list quietly.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                other => other.context("writing the list")?,
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the list"),
    }
}
