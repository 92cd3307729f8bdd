//! A record written by a real run (`egress-bench run --filter tcbpf --rules 1000 --send-path
//! --traffic --traffic-rounds 2 --updates max --update-duration 0.5`) reads into the typed
//! `Record` and writes back the same JSON: a field renamed or retyped on either side fails
//! here. Regenerate the fixture with that command when a field is added on purpose.

use records::{Record, RunStatus, SweepResults, SweepRun};

const FIXTURE: &str = include_str!("fixtures/record.json");

#[test]
fn a_real_record_round_trips_through_the_typed_reader() {
    let record: Record = serde_json::from_str(FIXTURE).expect("the fixture reads as a Record");
    let figures = record
        .figures
        .as_ref()
        .expect("a working filter has figures");
    assert!(figures.send_path.is_some() && figures.updates.is_some());
    let traffic = figures.traffic.as_ref().expect("traffic was measured");
    assert!(traffic.none_vs_none.is_some() && !traffic.throughput.is_empty());
    assert!(!figures.program_costs.is_empty());
    let written = serde_json::to_value(&record).unwrap();
    let read: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    assert_eq!(
        written, read,
        "fields lost or renamed between reading and writing"
    );
}

/// Records written before `kernel_allocations_delta_bytes` was dropped (the same figure is
/// `kernel_allocations.bytes`) still read.
#[test]
fn an_older_record_still_reads() {
    let older = FIXTURE.replacen(
        "\"kernel_allocations\":",
        "\"kernel_allocations_delta_bytes\": null,\n    \"kernel_allocations\":",
        1,
    );
    assert_ne!(older, FIXTURE);
    let record: Record = serde_json::from_str(&older).expect("an older record reads");
    assert!(record.figures.is_some());
}

#[test]
fn a_sweep_with_failures_round_trips() {
    let record: Record = serde_json::from_str(FIXTURE).unwrap();
    let stderr: Vec<String> = (0..30)
        .map(|i| format!("line {i}"))
        .chain(["egress-bench: loading the list: set is full (maxelem 10)".to_owned()])
        .collect();
    let sweep = SweepResults {
        description: "fixture".into(),
        options: String::new(),
        cluster: None,
        runs: vec![
            SweepRun::finished("tcbpf", 1000, record),
            SweepRun::failed("ipset", 1000, &stderr, "exit status: 1"),
            SweepRun::stopped(
                "iptables",
                1_000_000,
                RunStatus::OverBudget,
                "stopped at the 300 s budget".into(),
            ),
        ],
    };
    let text = serde_json::to_string(&sweep).unwrap();
    let back: SweepResults = serde_json::from_str(&text).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&sweep).unwrap()
    );
    let failed = &back.runs[1];
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(
        failed.error.as_deref(),
        Some("loading the list: set is full (maxelem 10)")
    );
    assert_eq!(failed.stderr_tail.len(), records::STDERR_TAIL_LINES);
    assert!(back.runs[0].ok() && !failed.ok());
    let status = serde_json::to_value(RunStatus::OverBudget).unwrap();
    assert_eq!(status, "over_budget");
}
