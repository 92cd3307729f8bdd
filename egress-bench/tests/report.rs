//! `egress-bench report` on a sweep made of a real run's record (the `records` crate's
//! fixture, written by `egress-bench run`), with figures changed per filter: no root needed.

use std::process::Command;

use filter_core::KernelMemory;
use records::{Record, RunStatus, SweepResults, SweepRun};

const FIXTURE: &str = include_str!("../../bench/records/tests/fixtures/record.json");

fn record(filter: &str, load: f64, added: f64, memory: u64) -> Record {
    let mut record: Record = serde_json::from_str(FIXTURE).expect("the fixture is a Record");
    record.filter = filter.into();
    let f = record.figures.as_mut().expect("the fixture has figures");
    f.load_seconds = load;
    f.enforcement_seconds = Some(load);
    f.stats.kernel_memory = Some(KernelMemory {
        bytes: memory,
        source: filter_core::MemorySource::MapMemlock,
    });
    let send_path = f.send_path.as_mut().expect("the fixture has a send path");
    for (paired, added) in [
        (&mut send_path.one_destination, added),
        (&mut send_path.many_destinations, added * 2.0),
    ] {
        paired.added_ns = added;
        paired.added_ns_min = added - 1.0;
        paired.added_ns_max = added + 1.0;
    }
    send_path.warnings = vec!["spread too wide".into()];
    let updates = f.updates.as_mut().expect("the fixture has updates");
    updates.updates_per_second = 54_615.4;
    updates.call_us = [16.5, 42.1, 762.0];
    updates.enforcement_us = Some(188.0);
    updates.violations = 0;
    record
}

fn sweep(dir: &std::path::Path, ipset_load: f64) {
    let stderr = [
        "loading 1000 entries into nftables".to_owned(),
        "egress-bench: loading the list into the nftables filter: kernel refused (injected)"
            .to_owned(),
    ];
    let results = SweepResults {
        description: "fixture".into(),
        options: String::new(),
        cluster: None,
        runs: vec![
            SweepRun::finished("ipset", 1000, record("ipset", ipset_load, 120.0, 1 << 20)),
            SweepRun::finished("ipset-restore", 1000, {
                let mut r = record("ipset-restore", 0.4, 120.0, 1 << 20);
                r.warnings = vec!["fell back to the slow path".into()];
                r
            }),
            SweepRun::failed("nftables", 1000, &stderr, "exit status: 1"),
            SweepRun::stopped(
                "iptables",
                1_000_000,
                RunStatus::OverBudget,
                "stopped at the 300 s budget".into(),
            ),
            SweepRun::finished(
                "ipset",
                1_000_000,
                record("ipset", ipset_load * 100.0, 150.0, 1 << 25),
            ),
        ],
    };
    std::fs::write(
        dir.join("results.json"),
        serde_json::to_vec(&results).unwrap(),
    )
    .unwrap();
}

/// Runs `egress-bench report` on `dir` (against `baseline`), which must succeed; returns the
/// summary.md it wrote.
fn report(dir: &std::path::Path, baseline: Option<&std::path::Path>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_egress-bench"));
    command.arg("report").arg(dir);
    if let Some(baseline) = baseline {
        command.arg("--baseline").arg(baseline);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(dir.join("summary.md")).unwrap()
}

#[test]
fn report_writes_tables_csv_and_plots() {
    let now = tempfile::tempdir().unwrap();
    let before = tempfile::tempdir().unwrap();
    sweep(now.path(), 0.1);
    sweep(before.path(), 0.2);
    let summary = report(now.path(), Some(before.path()));
    assert!(summary.contains("| ipset | 1000 | 0.100 |"), "{summary}");
    // The headline comes first: one row per engine at its largest size, the best in bold.
    let headline = summary.find("## Headline").expect("a headline");
    assert!(headline < summary.find("## Set-up").unwrap(), "{summary}");
    assert!(
        summary[headline..].contains("| ipset | 1000000 | **10.000** |"),
        "{summary}"
    );
    assert!(summary.contains("0.25x"), "load vs reference: {summary}");
    assert!(
        summary.contains("| iptables | 1000000 | over budget: stopped at the 300 s budget |"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "| nftables | 1000 | failed: loading the list into the nftables filter: kernel refused (injected) |"
        ),
        "a failed run is a row naming its error: {summary}"
    );
    assert!(summary.contains("+120 [+119..+121]"), "{summary}");
    // The comparison goes beside the sweep's own summary, not into it.
    assert!(!summary.contains("Against"), "{summary}");
    let compared = std::fs::read_to_string(now.path().join("comparison.md")).unwrap();
    assert!(
        compared.contains("| ipset | 1000 | 0.100 vs 0.200 (x0.50) |"),
        "baseline comparison: {compared}"
    );
    assert!(compared.contains("+120 [+119..+121] vs"), "{compared}");
    assert!(summary.contains("spread too wide"), "{summary}");
    // A filter's fallback is a warning beside the figures it skews.
    assert!(
        summary.contains("- ipset-restore at 1000: fell back to the slow path"),
        "{summary}"
    );
    assert!(
        summary.contains("## Live updates")
            && summary.contains("| ipset | 1000000 | 54615 | 16.5 | 42.1 | 188 | 0 | +300 / "),
        "{summary}"
    );
    // Traffic rows carry their spread, and a ratio only where the rounds resolve one.
    let traffic = summary
        .split("## Traffic through the filter")
        .nth(1)
        .and_then(|t| t.lines().find(|l| l.starts_with("| ipset | 1000 |")))
        .unwrap_or_default();
    assert!(traffic.matches("..").count() >= 4, "{summary}");
    assert!(
        traffic.contains("no difference resolved (x") || traffic.contains("| x"),
        "{traffic}"
    );
    assert!(now.path().join("update_rate.svg").exists());
    let load = std::fs::read_to_string(now.path().join("load.csv")).unwrap();
    assert_eq!(load.lines().count(), 6, "{load}");
    assert!(load.contains("nftables,1000,failed,"), "{load}");
    let send = std::fs::read_to_string(now.path().join("send_path.csv")).unwrap();
    assert!(send.contains("ipset,1000,one_destination,120"), "{send}");
    assert!(
        send.contains("ipset,1000,many_destinations_during_updates,"),
        "{send}"
    );
    let traffic = std::fs::read_to_string(now.path().join("traffic.csv")).unwrap();
    assert!(
        traffic.contains("ipset,1000,none_vs_none,filter,"),
        "{traffic}"
    );
    let svg = std::fs::read_to_string(now.path().join("load_time.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.lines().any(|l| l.trim() == "ipset"),
        "plot has a line per filter"
    );
    // ipset-restore ran at one size only: a bar of its own, not a lonely point.
    assert!(
        !svg.contains("ipset-restore"),
        "a one-size variant among the lines"
    );
    let bars = std::fs::read_to_string(now.path().join("load_time_one_size.svg")).unwrap();
    assert!(bars.contains("ipset-restore @ 1k"), "{bars}");
    // Ticks read as list sizes; the send path shades the method's zero.
    let texts: Vec<&str> = svg.lines().map(str::trim).collect();
    assert!(
        texts.contains(&"1k") && texts.contains(&"1M"),
        "x ticks in 1k/1M form"
    );
    let send = std::fs::read_to_string(now.path().join("send_path_one_destination.svg")).unwrap();
    assert!(
        send.contains("zero (none vs none), either way"),
        "no noise band"
    );
    assert!(
        summary.contains("### Load time: variants run at one size"),
        "{summary}"
    );
}

/// A cluster benchmark run into a sweep's folder: its record sits beside the runs in
/// results.json, and summary.md gets its "Cluster" table after the sweep's own tables.
#[test]
fn a_cluster_record_beside_the_sweep_gets_its_table() {
    let dir = tempfile::tempdir().unwrap();
    sweep(dir.path(), 0.1);
    let path = dir.path().join("results.json");
    let mut results: SweepResults = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    results.cluster = Some(records::cluster::ClusterRecord {
        filter: "tcbpf-dir".into(),
        nodes: 8,
        members: 3,
        tls: true,
        settle_ms: 20,
        sizes: vec![records::cluster::ClusterSize {
            entries: 1_000_001,
            chunks: 21,
            publish_ms: 1100.0,
            setup_ms: vec![Some(2900.0), Some(3400.0), None],
            propagation_ms: vec![Some(25.0), Some(27.5)],
            faults: Vec::new(),
            denied_reached: 0,
            allowed_lost: 0,
            steady_packets: 1000,
        }],
    });
    std::fs::write(&path, serde_json::to_vec(&results).unwrap()).unwrap();
    let summary = report(dir.path(), None);
    let cluster = summary.find("## Cluster").expect("a Cluster section");
    assert!(summary.find("## Headline").unwrap() < cluster, "{summary}");
    assert!(summary[cluster..].contains("| 1000001 | 21 |"), "{summary}");
}

/// report.html needs nothing but itself: opened by a headless browser (Debian's chromium,
/// which `cargo xtask test` installs) with no network, every plot summary.md links is drawn.
#[test]
fn report_html_renders_every_plot_in_a_headless_browser() {
    let dir = tempfile::tempdir().unwrap();
    sweep(dir.path(), 0.1);
    let summary = report(dir.path(), None);
    let plots = summary.lines().filter(|l| l.starts_with("![")).count();
    assert!(plots >= 3, "summary.md links {plots} plots: {summary}");
    // The headline's columns link to the tables their figures come from, in summary.md
    // and in report.html.
    assert!(
        summary.contains("[load (s)](#set-up)")
            && summary.contains("[updates/s](#live-updates)")
            && summary.contains("## Live updates"),
        "{summary}"
    );
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(
        page.contains("href=\"#set-up\"") && page.contains("<h2 id=\"set-up\">"),
        "report.html's links have no target"
    );
    assert_eq!(
        page.matches("<figure><svg").count(),
        plots,
        "every plot inline"
    );
    assert!(
        !page.contains("src=\"") && !page.contains("href=\"http"),
        "report.html must not load anything"
    );
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("a headless chromium (cargo xtask test installs Debian's chromium)");
    let profile = tempfile::tempdir().unwrap();
    let dom = Command::new("timeout")
        .args([
            "120",
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=3000", "--dump-dom"])
        .arg(format!(
            "file://{}",
            dir.path().join("report.html").display()
        ))
        .output()
        .unwrap();
    let dom_text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom_text.contains(&format!("data-plots-rendered=\"{plots}\"")),
        "chromium did not draw all {plots} plots ({}): {}",
        String::from_utf8_lossy(&dom.stderr)
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .join(" | "),
        dom_text.chars().take(400).collect::<String>()
    );
}
