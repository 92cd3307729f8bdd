//! summary.md's "published benchmark vs here": each finding of Kinvolk's egress filtering
//! benchmark, part 2 (December 2020: Calico v3.16.4, Cilium v1.9.0 on Kubernetes), beside
//! what this sweep measured for the profile that replays that data path and for the raw
//! engine it builds on. A cell the sweep has no figure for says so; nothing is filled in.

use std::fmt::Write as _;

use records::RunStatus;

use super::{SendCase, Sweep, figures, send_path, throughput};

/// The profiles the table is about, each with the raw engine it builds on.
const PAIRS: [(&str, &str); 3] = [
    ("calico-felix", "ipset"),
    ("cilium", "tcbpf"),
    ("cilium-cidr-group", "tcbpf"),
];

/// A list size as the sweep names it: 10k, 1M, else the count with separators.
fn entries(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => {
            let digits = n.to_string();
            let mut out = String::new();
            for (i, c) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
    }
}

/// The largest size a filter has figures at.
fn largest_ok(sweep: &Sweep, filter: &str) -> Option<u64> {
    sweep
        .sizes()
        .into_iter()
        .rev()
        .find(|&size| sweep.ok_runs(filter, size).next().is_some())
}

/// `filter`'s added ns per packet in `case` at `size`, with the size.
fn per_packet(sweep: &Sweep, filter: &str, size: u64, case: SendCase) -> Option<String> {
    let added = sweep.median_of(filter, size, |f| send_path(f, case).map(|p| p.added_ns))?;
    Some(format!("{added:+.0} ns"))
}

/// Throughput (1470-byte UDP) and CPU per packet as ratios to no filter at `size`.
fn traffic(sweep: &Sweep, filter: &str, size: u64) -> Option<String> {
    let run = sweep.first_ok(filter, size)?;
    let t = throughput(figures(run)?, 1470, false)?;
    let pps = t.ratio_pps.as_ref()?.median;
    let cpu = t
        .ratio_cpu
        .as_ref()
        .map_or_else(String::new, |c| format!(", CPU x{:.2}", c.median));
    Some(format!("x{pps:.2} packets/s{cpu}"))
}

/// The per-packet figures of a filter at the largest size it holds here.
fn measured(sweep: &Sweep, filter: &str) -> String {
    let Some(size) = largest_ok(sweep, filter) else {
        return "not in this sweep".into();
    };
    let mut parts = vec![format!("at {}", entries(size))];
    for (case, label) in [
        (SendCase::One, "established"),
        (SendCase::Many, "many destinations"),
        (SendCase::NewFlows, "new flows"),
    ] {
        if let Some(added) = per_packet(sweep, filter, size, case) {
            parts.push(format!("{label} {added}"));
        }
    }
    if let Some(t) = traffic(sweep, filter, size) {
        parts.push(t);
    }
    parts.join("; ")
}

/// The smallest size a filter failed at, with the start of its error.
fn first_failure(sweep: &Sweep, filter: &str) -> Option<String> {
    let run = sweep
        .runs
        .iter()
        .filter(|r| r.filter == filter && r.status == RunStatus::Failed)
        .min_by_key(|r| r.size)?;
    let error = run.error.as_deref().unwrap_or("failed");
    let short: String = error.chars().take(160).collect();
    Some(format!(
        "fails at {}: {short}{}",
        entries(run.size),
        if short.len() < error.len() { "..." } else { "" }
    ))
}

/// Where a filter stops: the failure this sweep met, else the largest size it held.
fn limit(sweep: &Sweep, filter: &str, holds: &str) -> String {
    match (first_failure(sweep, filter), largest_ok(sweep, filter)) {
        (Some(failure), Some(size)) => {
            format!("holds {}; {failure}", entries(size))
        }
        (Some(failure), None) => failure,
        (None, Some(size)) => format!(
            "holds {} here; by its limits it holds {holds} (run `cargo xtask bench --scale` for the failure)",
            entries(size)
        ),
        (None, None) => "not in this sweep".into(),
    }
}

/// What calico-felix's record says of Felix's full restore and listing, at its largest size.
fn felix_times(sweep: &Sweep) -> Option<String> {
    let size = largest_ok(sweep, "calico-felix")?;
    let record = sweep.first_ok("calico-felix", size)?.record.as_ref()?;
    let at = record.backend.find("a full ipset restore took")?;
    Some(format!("at {}: {}", entries(size), &record.backend[at..]))
}

/// The table; nothing when the sweep ran none of the profiles.
pub(super) fn table(md: &mut String, sweep: &Sweep) {
    if !PAIRS
        .iter()
        .any(|(profile, _)| sweep.filters.iter().any(|f| f == profile))
    {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Published benchmark vs here\n\nThe findings of Kinvolk's egress filtering benchmark, \
         part 2 (Calico v3.16.4 and Cilium v1.9.0 on Kubernetes, 2020), beside this sweep's figures \
         for the profile that replays each data path (`calico-felix`: Calico v3.16 Felix iptables \
         data path, replayed without Felix; `cilium`, `cilium-cidr-group`: Cilium 1.9 host-firewall \
         data path model, not Cilium) and for the raw engine it builds on. Per packet: ns added to \
         a 64-byte UDP send (established flow, many destinations, a new flow per packet); traffic: \
         1470-byte UDP throughput and CPU per packet as ratios to no filter.\n"
    );
    let _ = writeln!(md, "| published finding | profile here | raw engine here |");
    let _ = writeln!(md, "|---|---|---|");
    let row = |md: &mut String, finding: &str, profile: String, raw: String| {
        let _ = writeln!(md, "| {finding} | {profile} | {raw} |");
    };
    row(
        md,
        "Calico close to raw IP sets, slightly more CPU",
        format!("calico-felix: {}", measured(sweep, "calico-felix")),
        format!("ipset: {}", measured(sweep, "ipset")),
    );
    row(
        md,
        "Calico fails above 1,048,576 entries (\"Hash is full\") until maxIpsetSize is raised",
        format!(
            "calico-felix: {}",
            limit(sweep, "calico-felix", "1,048,576 (MaxIpsetSize)")
        ),
        format!("ipset: {}", limit(sweep, "ipset", "what memory allows")),
    );
    row(
        md,
        "Calico holds 10M with its agent flapping between live and not live (20 s window)",
        felix_times(sweep).map_or_else(
            || "calico-felix: no restore timing in this sweep".into(),
            |t| format!("calico-felix {t}"),
        ),
        "-".into(),
    );
    row(
        md,
        "Cilium ~2.3 Gbit/s against 2.5-2.7 for the others, CPU highest but iptables (40%)",
        format!("cilium: {}", measured(sweep, "cilium")),
        format!("tcbpf: {}", measured(sweep, "tcbpf")),
    );
    row(
        md,
        "Cilium fails from 100,000 rules (policy map full, cilium#14377)",
        format!(
            "cilium: {}",
            limit(
                sweep,
                "cilium",
                "16,383 (policy map 16,384 with the allow entry; 65,535 at --policy-map-max 65536)"
            )
        ),
        format!("tcbpf: {}", limit(sweep, "tcbpf", "what memory allows")),
    );
    row(
        md,
        "Cilium >= 1.16 CIDR groups: ~100k CIDRs with ease (cilium#33441); the ipcache stays 512,000",
        format!(
            "cilium-cidr-group: {}; {}",
            measured(sweep, "cilium-cidr-group"),
            limit(sweep, "cilium-cidr-group", "512,000 (the ipcache)")
        ),
        "-".into(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table appears only with a profile, and says where it has no figure.
    #[test]
    fn the_table_names_what_it_has_not_measured() {
        let mut md = String::new();
        table(
            &mut md,
            &Sweep {
                runs: Vec::new(),
                filters: vec!["ipset".into()],
                description: String::new(),
                cluster: None,
            },
        );
        assert!(md.is_empty());
        let failed = records::SweepRun {
            filter: "cilium".into(),
            size: 100_000,
            status: RunStatus::Failed,
            error: Some("cilium_policy max entries exceeded".into()),
            stderr_tail: Vec::new(),
            record: None,
        };
        table(
            &mut md,
            &Sweep {
                runs: vec![failed],
                filters: vec!["cilium".into()],
                description: String::new(),
                cluster: None,
            },
        );
        assert!(md.contains("## Published benchmark vs here"), "{md}");
        assert!(
            md.contains("cilium: fails at 100k: cilium_policy max entries"),
            "{md}"
        );
        assert!(md.contains("calico-felix: not in this sweep"), "{md}");
        assert_eq!(entries(16_383), "16,383");
        assert_eq!(entries(1_000_000), "1M");
    }
}
