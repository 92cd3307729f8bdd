//! `egress-bench report` on a hand-made sweep: no root needed.

use std::process::Command;

fn record(load: f64, added: f64, memory: u64) -> serde_json::Value {
    let paired = |added: f64| {
        serde_json::json!({
            "destinations": "One", "added_ns": added, "added_ns_min": added - 1.0, "added_ns_max": added + 1.0,
            "ratio": 1.0 + added / 500.0, "ratio_min": 1.0, "ratio_max": 1.1, "baseline_ns": 500.0, "runs": []
        })
    };
    serde_json::json!({
        "figures": {
            "load_seconds": load, "enforcement_seconds": load, "teardown_seconds": 0.01,
            "enforcement_resolution_us": 30.0,
            "stats": {"kernel_memory": {"bytes": memory, "source": "test"}},
            "program_costs": [{"case": "v4 hit", "median_ns": 100.0, "min_ns": 99.0, "max_ns": 101.0, "repeat": 1, "rounds": 1}],
            "send_path": {
                "none_vs_none": paired(1.0), "one_destination": paired(added),
                "many_destinations": paired(added * 2.0), "warnings": ["spread too wide"]
            }
        }
    })
}

fn sweep(dir: &std::path::Path, ipset_load: f64) {
    let runs = serde_json::json!({
        "description": "fixture",
        "runs": [
            {"filter": "ipset", "size": 1000, "status": "ok", "record": record(ipset_load, 120.0, 1 << 20)},
            {"filter": "ipset-restore", "size": 1000, "status": "ok", "record": record(0.4, 120.0, 1 << 20)},
            {"filter": "iptables", "size": 1000000, "status": "over budget", "record": null},
            {"filter": "ipset", "size": 1000000, "status": "ok", "record": record(ipset_load * 100.0, 150.0, 1 << 25)},
        ]
    });
    let mut runs = runs;
    runs["runs"][3]["record"]["figures"]["updates"] = serde_json::json!({
        "updates_per_second": 54615.4, "call_us": [16.5, 42.1, 762.0], "enforcement_us": 188.0,
        "violations": 0
    });
    std::fs::write(dir.join("results.json"), serde_json::to_vec(&runs).unwrap()).unwrap();
}

#[test]
fn report_writes_tables_csv_and_plots() {
    let now = tempfile::tempdir().unwrap();
    let before = tempfile::tempdir().unwrap();
    sweep(now.path(), 0.1);
    sweep(before.path(), 0.2);
    let out = Command::new(env!("CARGO_BIN_EXE_egress-bench"))
        .arg("report")
        .arg(now.path())
        .arg("--baseline")
        .arg(before.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = std::fs::read_to_string(now.path().join("summary.md")).unwrap();
    assert!(summary.contains("| ipset | 1000 | 0.100 |"), "{summary}");
    assert!(summary.contains("0.25x"), "load vs reference: {summary}");
    assert!(
        summary.contains("| iptables | 1000000 | over budget |"),
        "{summary}"
    );
    assert!(summary.contains("+120 [+119..+121]"), "{summary}");
    assert!(
        summary.contains("| ipset | 1000 | 0.50x |"),
        "baseline comparison: {summary}"
    );
    assert!(summary.contains("spread too wide"), "{summary}");
    assert!(
        summary.contains("## Live updates")
            && summary.contains("| ipset | 1000000 | 54615 | 16.5 | 42.1 | 188 | 0 |"),
        "{summary}"
    );
    assert!(now.path().join("update_rate.svg").exists());
    let load = std::fs::read_to_string(now.path().join("load.csv")).unwrap();
    assert_eq!(load.lines().count(), 5, "{load}");
    let send = std::fs::read_to_string(now.path().join("send_path.csv")).unwrap();
    assert!(send.contains("ipset,1000,one_destination,120"), "{send}");
    let svg = std::fs::read_to_string(now.path().join("load_time.svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("ipset"),
        "plot has a line per filter"
    );
}
