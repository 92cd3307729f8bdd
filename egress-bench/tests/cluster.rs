//! A cluster run killed with -9 takes its etcd members and agents with it, and the next
//! `egress-bench cleanup` removes what it left: its testbeds, its agents' pinned filters and
//! its etcd data.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_egress-bench"))
}

/// The processes whose command line names `needle`.
fn processes_naming(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn a_killed_cluster_run_leaves_nothing_after_cleanup() {
    testbed::needs_root!();
    let mut run = bench()
        .args([
            "cluster",
            "--nodes",
            "2",
            "--members",
            "1",
            "--sizes",
            "1000",
        ])
        .args(["--changes", "2", "--no-faults", "--plaintext"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = run.id();
    let data = format!("egb-cluster-etcd-{pid}-0");
    // Killed once its nodes and agents run and the list is being published.
    let stderr = BufReader::new(run.stderr.take().unwrap());
    let mut seen = Vec::new();
    for line in stderr.lines() {
        let line = line.unwrap();
        let publishing = line.contains("publishing");
        seen.push(line);
        if publishing {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("publishing")),
        "the cluster run did not get as far as publishing: {seen:?}"
    );
    assert!(
        testbed::etcd::data_dirs()
            .iter()
            .any(|(dir, alive)| *alive && dir.ends_with(&data)),
        "the run's etcd data folder {data} is not where cleanup looks"
    );
    run.kill().unwrap();
    run.wait().unwrap();

    // Its members and agents die with it (parent-death signal).
    let until = Instant::now() + Duration::from_secs(10);
    while !processes_naming(&data).is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        processes_naming(&data),
        Vec::<u32>::new(),
        "etcd members outlived the run"
    );

    // What it left is listed as left over, then removed by cleanup.
    let listed = bench().args(["filters", "--leftovers"]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&data),
        "filters --leftovers does not list the dead run's etcd data"
    );
    let cleaned = bench().arg("cleanup").output().unwrap();
    let said = String::from_utf8_lossy(&cleaned.stdout);
    assert!(cleaned.status.success(), "cleanup failed: {said}");
    assert!(
        said.contains(&data),
        "cleanup did not remove {data}: {said}"
    );
    assert!(
        !testbed::etcd::data_dirs()
            .iter()
            .any(|(dir, _)| dir.ends_with(&data)),
        "{data} is still there"
    );
    let listed = bench().args(["filters", "--leftovers"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed
            .lines()
            .any(|l| l.contains(&format!("-{pid}-")) || l.contains("pinned")),
        "left after cleanup: {listed}"
    );
}
