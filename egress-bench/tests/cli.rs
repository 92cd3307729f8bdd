//! `egress-bench` end to end, as root, in testbeds of its own.
//!
//! `egress-bench cleanup` removes every `egb-*` object, so these tests take one lock: no
//! other testbed of this binary exists while one runs. (Cargo runs test binaries one at a
//! time.)

use std::io::Write;
use std::process::{Command, Output};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use filter_core::{CostCase, CostProbe, Family};
use testbed::leftovers;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_egress-bench"))
}

fn run(args: &[&str]) -> Output {
    bench().args(args).output().expect("egress-bench starts")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `egress-bench run` with `args` and `--output`; the output and the record written.
fn run_recorded(args: &[&str]) -> (Output, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--output", json.to_str().unwrap()]);
    let out = run(&all);
    assert!(out.status.success(), "{}", text(&out));
    let record = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    (out, record)
}

fn list_file(lines: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(lines.as_bytes()).unwrap();
    file
}

#[test]
fn run_records_a_working_filter_and_leaves_nothing() {
    testbed::needs_root!();
    let _lock = serial();
    let (_, record) = run_recorded(&[
        "--filter", "ipset", "--rules", "5000", "--family", "both", "--run-id", "clirec",
    ]);
    assert_eq!(record["verdict"]["ok"], true, "{record:#}");
    assert_eq!(record["verdict"]["probes"].as_array().unwrap().len(), 4);
    let figures = &record["figures"];
    assert!(figures["load_seconds"].as_f64().unwrap() > 0.0);
    let enforced = figures["enforcement_seconds"]
        .as_f64()
        .expect("enforcement measured");
    assert!(
        enforced <= figures["load_seconds"].as_f64().unwrap() + 0.01,
        "{figures:#}"
    );
    assert_eq!(record["list"]["loaded_entries"], 10_003);
    assert!(figures["stats"]["kernel_memory"]["bytes"].as_u64().unwrap() > 0);
    // The set members the kernel lists, read back, are the list's (5,000 + 2 probes, 5,000 + 1).
    assert_eq!(
        figures["kernel_count"]["read"],
        serde_json::json!([5_002, 5_001]),
        "{figures:#}"
    );
    assert_eq!(
        figures["kernel_count"]["read"],
        figures["kernel_count"]["expected"]
    );
    assert!(record.get("warnings").is_none(), "{record:#}");
    assert!(leftovers("egb-clirec").is_empty());
}

/// An update feed under probes: updates are applied and counted, an added network is
/// enforced, nothing that stays denied passes and nothing that stays allowed drops, and the
/// list is back as loaded afterwards.
#[test]
fn update_feed_is_counted_and_never_wrong() {
    testbed::needs_root!();
    let _lock = serial();
    for filter in ["tcbpf-dir", "nftables"] {
        let (out, record) = run_recorded(&[
            "--filter",
            filter,
            "--rules",
            "2000",
            "--no-program-cost",
            "--updates",
            "max",
            "--update-batch",
            "10",
            "--update-duration",
            "0.5",
        ]);
        let updates = &record["figures"]["updates"];
        assert!(
            updates["updates"].as_u64().unwrap() >= 10,
            "{filter}: {updates:#}"
        );
        assert_eq!(updates["batch"], 10);
        assert_eq!(updates["violations"], 0, "{filter}: {updates:#}");
        assert!(updates["stays_denied"]["sent"].as_u64().unwrap() > 100);
        assert!(updates["enforcement_us"].as_f64().unwrap() > 0.0);
        assert_eq!(
            record["figures"]["stats"]["entries_v4"], 2_002,
            "{filter}: the feed's entries are gone again"
        );
        assert!(text(&out).contains("violations: 0"), "{}", text(&out));
    }
}

#[test]
fn ipv6_only_run_times_ipv6_cold_lookups_and_says_what_memory_it_trusts() {
    testbed::needs_root!();
    let _lock = serial();
    let (out, record) = run_recorded(&[
        "--filter", "tcbpf", "--rules", "3000", "--family", "6", "--run-id", "cliv6",
    ]);
    let typed: records::Record = serde_json::from_value(record.clone()).unwrap();
    let cases: Vec<CostCase> = typed
        .figures
        .as_ref()
        .unwrap()
        .program_costs
        .iter()
        .map(|c| c.case)
        .collect();
    assert!(
        cases.contains(&CostCase::ColdPerLookup(Family::V6))
            && !cases.contains(&CostCase::ColdPerLookup(Family::V4))
            && !cases.contains(&CostCase::Probe(CostProbe::V4Hit)),
        "{cases:?}"
    );
    let figures = &record["figures"];
    let said = text(&out);
    assert!(!said.contains("IPv4 lookup"), "{said}");
    // The allocation change is a figure only when it can be trusted; otherwise it says why.
    let allocations = &figures["kernel_allocations"];
    match allocations["bytes"].as_i64() {
        Some(delta) => assert!(
            delta > 0 && allocations["untrusted"].is_null(),
            "{figures:#}"
        ),
        None => assert!(
            allocations["untrusted"]
                .as_str()
                .unwrap()
                .starts_with("not a figure"),
            "{figures:#}"
        ),
    }
    assert!(leftovers("egb-cliv6").is_empty());
}

#[test]
fn send_path_sees_what_a_filter_costs() {
    testbed::needs_root!();
    let _lock = serial();
    let dir = tempfile::tempdir().unwrap();
    let measure = |filter: &str| -> serde_json::Value {
        let json = dir.path().join(format!("{filter}.json"));
        let out = run(&[
            "run",
            "--filter",
            filter,
            "--backend",
            "legacy",
            "--rules",
            "2000",
            "--send-path",
            "--output",
            json.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        record["figures"]["send_path"].clone()
    };
    // 2,000 rules, each compared on every packet: microseconds, far above any noise.
    let iptables = measure("iptables");
    for case in ["one_destination", "many_destinations"] {
        let added = iptables[case]["added_ns"].as_f64().unwrap();
        assert!(added > 1_000.0, "{case}: {iptables:#}");
        assert!(
            iptables[case]["ratio"].as_f64().unwrap() > 2.0,
            "{iptables:#}"
        );
    }
    let none = measure("none");
    let added = none["one_destination"]["added_ns"].as_f64().unwrap();
    assert!(
        added.abs() < 1_000.0,
        "no filter adds nothing like a rule list: {none:#}"
    );
    assert!(leftovers("egb-").is_empty(), "{:?}", leftovers("egb-"));
}

/// Two hosts, played by the testbed's two namespaces: `serve` in one, `run --server
/// --on-host` in the other, each in its namespace's own stack: the code path real hosts take.
#[test]
fn two_hosts_across_namespaces_leave_nothing_behind() {
    testbed::needs_root!();
    let _lock = serial();
    let bed = testbed::Testbed::new().unwrap();
    let _serve = serve(&bed);
    let dir = tempfile::tempdir().unwrap();
    let client = |args: &[&str]| in_ns(bed.client()).args(args).output().unwrap();
    let out = client(&[
        "run",
        "--filter",
        "ipset",
        "--rules",
        "100",
        "--server",
        "198.18.0.2",
    ]);
    assert!(
        !out.status.success(),
        "two-host mode without --on-host must refuse"
    );
    assert!(text(&out).contains("--on-host"), "{}", text(&out));
    for filter in ["ipset", "tcbpf", "iptables"] {
        let json = dir.path().join(format!("{filter}.json"));
        let out = client(&[
            "run",
            "--filter",
            filter,
            "--rules",
            "1000",
            "--server",
            "198.18.0.2",
            "--on-host",
            "--denied-probe",
            "198.19.255.1",
            "--traffic",
            "--output",
            json.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{filter}: {}", text(&out));
        let record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(record["verdict"]["ok"], true, "{record:#}");
        assert_eq!(record["two_hosts"]["interface"], bed.client_link().as_str());
        let received = record["figures"]["traffic"]["throughput"][0]["filter"]["received_packets"]
            .as_u64()
            .unwrap();
        assert!(
            received > 100,
            "{filter}: traffic reached the server: {record:#}"
        );
        let left = client(&["filters", "--leftovers"]);
        assert!(left.status.success(), "{}", text(&left));
        assert!(left.stdout.is_empty(), "{filter} left {}", text(&left));
    }
    let conflicting = list_file("1.2.3.4\n198.18.0.0/24\n");
    let out = client(&[
        "run",
        "--filter",
        "ipset",
        "--cidrs",
        conflicting.path().to_str().unwrap(),
        "--server",
        "198.18.0.2",
        "--on-host",
        "--denied-probe",
        "198.19.255.1",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("line 2: 198.18.0.0/24"),
        "{}",
        text(&out)
    );
}

#[test]
fn every_bad_line_is_named_and_nothing_is_created() {
    testbed::needs_root!();
    let _lock = serial();
    let file = list_file("# feed\n1.2.3.4\n1.2.3.999\n5.6.7.8\nexample.com\n10.0.0.0/33 ; typo\n");
    let out = run(&[
        "run",
        "--filter",
        "ipset",
        "--run-id",
        "clibad",
        "--cidrs",
        file.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = text(&out);
    for named in [
        "3 bad lines",
        "line 3: \"1.2.3.999\"",
        "line 5: \"example.com\"",
        "line 6: \"10.0.0.0/33\"",
    ] {
        assert!(said.contains(named), "{named:?} not in: {said}");
    }
    assert!(leftovers("egb-clibad").is_empty());
}

/// A list over a kernel limit is refused once the testbed exists, naming the limit, and the
/// testbed goes with the run: the leftover check here could find something.
#[test]
fn list_over_the_ipset_maxelem_is_refused_by_name_and_nothing_is_left() {
    testbed::needs_root!();
    let _lock = serial();
    let out = run(&[
        "run",
        "--filter",
        "ipset",
        "--rules",
        "1000",
        "--ipset-maxelem",
        "1000",
        "--run-id",
        "climax",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("ipset maxelem") && said.contains("1002") && said.contains("1000"),
        "{said}"
    );
    assert!(leftovers("egb-climax").is_empty());
}

/// A sweep holding a real run's record and a real failure (the runs `cargo xtask bench` makes,
/// put together the way it does) reads back typed, and the report shows the failure as a
/// row naming its error instead of a gap.
#[test]
fn a_failing_engine_is_a_failure_row_in_the_report() {
    testbed::needs_root!();
    let _lock = serial();
    let failed = run(&[
        "run",
        "--filter",
        "ipset",
        "--rules",
        "1000",
        "--ipset-maxelem",
        "1000",
        "--run-id",
        "clifail",
    ]);
    assert!(!failed.status.success(), "{}", text(&failed));
    let stderr: Vec<String> = String::from_utf8_lossy(&failed.stderr)
        .lines()
        .map(str::to_owned)
        .collect();
    let (_, record) = run_recorded(&[
        "--filter",
        "ipset",
        "--rules",
        "1000",
        "--traffic",
        "--traffic-rounds",
        "2",
        "--run-id",
        "clifine",
    ]);
    let record: records::Record = serde_json::from_value(record).expect("a typed record");
    let results = records::SweepResults {
        description: "two runs".into(),
        cluster: None,
        options: String::new(),
        runs: vec![
            records::SweepRun::finished("ipset", 1000, record),
            records::SweepRun::failed("ipset", 10_000, &stderr, &failed.status.to_string()),
        ],
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("results.json"),
        serde_json::to_vec(&results).unwrap(),
    )
    .unwrap();
    let out = run(&["report", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let summary = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| ipset | 10000 |"))
        .unwrap_or_default();
    assert!(
        row.contains("failed: ") && row.contains("maxelem"),
        "{summary}"
    );
    assert!(
        summary.contains("## Traffic through the filter"),
        "{summary}"
    );
    assert!(leftovers("egb-clifail").is_empty() && leftovers("egb-clifine").is_empty());
}

#[test]
fn wrong_family_is_named() {
    testbed::needs_root!();
    let _lock = serial();
    let file = list_file("1.2.3.4\n2001:db8::/32\n");
    let out = run(&[
        "run",
        "--filter",
        "iptables",
        "--family",
        "4",
        "--cidrs",
        file.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("line 2") && said.contains("--family"),
        "{said}"
    );
}

/// Without --family, a file is loaded and checked in the families it holds: an IPv6-only
/// list needs no flag.
#[test]
fn a_files_families_are_its_default() {
    testbed::needs_root!();
    let _lock = serial();
    let file = list_file("2001:db8::/32\n2001:db8:1::1\n");
    let (out, record) = run_recorded(&[
        "--filter",
        "tcbpf-dir",
        "--no-program-cost",
        "--run-id",
        "clifam",
        "--cidrs",
        file.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(record["list"]["families"], "V6", "{record:#}");
    assert_eq!(record["verdict"]["ok"], true, "{record:#}");
}

#[test]
fn list_covering_the_testbed_stops_unless_excluded() {
    testbed::needs_root!();
    let _lock = serial();
    let file = list_file("1.2.3.4\n198.18.0.0/15\n5.6.7.0/24\n198.19.0.1\n");
    let path = file.path().to_str().unwrap();
    let out = run(&[
        "run", "--filter", "ipset", "--run-id", "cliconf", "--cidrs", path,
    ]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("line 2: 198.18.0.0/15") && said.contains("line 4"),
        "{said}"
    );
    assert!(leftovers("egb-cliconf").is_empty());
    // IPv6 too: a list covering the testbed's IPv6 hosts or allowed probe stops, by line.
    let v6 = list_file(
        "2001:db8::/32
2001:2::/48
2001:2:0:1000::1
",
    );
    let out = run(&[
        "run",
        "--filter",
        "ipset",
        "--run-id",
        "cliconf",
        "--cidrs",
        v6.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("line 2: 2001:2::/48") && said.contains("line 3"),
        "{said}"
    );
    assert!(leftovers("egb-cliconf").is_empty());
    let out = run(&[
        "run",
        "--filter",
        "ipset",
        "--cidrs",
        path,
        "--exclude-conflicting",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("left out 2 entries that cover the"),
        "{}",
        text(&out)
    );
    let one = list_file("1.2.3.4\n198.19.0.0/16\n");
    let out = run(&[
        "run",
        "--filter",
        "ipset",
        "--cidrs",
        one.path().to_str().unwrap(),
        "--exclude-conflicting",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("left out 1 entry that covers the"),
        "{}",
        text(&out)
    );
}

/// `egress-bench` inside namespace `ns`.
fn in_ns(ns: &filter_core::NetNs) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        ns.name().unwrap(),
        env!("CARGO_BIN_EXE_egress-bench"),
    ]);
    cmd
}

/// `egress-bench` in a namespace like [`in_ns`], but through `nsenter`, which keeps this
/// process's view of /sys (`ip netns exec` mounts a fresh sysfs, hiding the cgroup mounts).
fn in_ns_with_cgroups(ns: &filter_core::NetNs) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", ns.name().unwrap()))
        .arg(env!("CARGO_BIN_EXE_egress-bench"));
    cmd
}

/// A child process killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `egress-bench serve` in the testbed's server namespace, for two-host runs from the client
/// namespace (the "host").
fn serve(bed: &testbed::Testbed) -> KillOnDrop {
    let serve = KillOnDrop(
        in_ns(bed.server())
            .args(["serve", "--listen", "0.0.0.0:9200"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    serve
}

fn wait_for_namespace(prefix: &str) {
    let start = Instant::now();
    while leftovers(prefix).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the run never built its testbed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run whose load lasts seconds (`ipset restore` of `rules` entries), named `egb-<id>`.
fn slow_load(id: &str, rules: &str) -> Command {
    let mut cmd = bench();
    cmd.args([
        "run",
        "--filter",
        "ipset-restore",
        "--rules",
        rules,
        "--run-id",
        id,
    ]);
    cmd
}

#[test]
fn sigkill_mid_load_then_cleanup_leaves_the_machine_clean() {
    testbed::needs_root!();
    let _lock = serial();
    // ipset restore takes seconds for 2M entries: long enough to be killed mid-load.
    let mut child = slow_load("clikill", "2000000")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_namespace("egb-clikill");
    // While it lives, its run id is its own: a second run with it changes nothing.
    let twin = run(&[
        "run", "--filter", "ipset", "--rules", "10", "--run-id", "clikill",
    ]);
    assert!(!twin.status.success());
    assert!(
        text(&twin).contains("run id clikill is in use by a live run"),
        "{}",
        text(&twin)
    );
    // A cleanup beside it leaves it alone, and says so.
    let out = run(&["cleanup"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "left alone egb-clikill*: its run (pid {}) is alive",
            child.id()
        )),
        "{}",
        text(&out)
    );
    assert!(
        !leftovers("egb-clikill").is_empty(),
        "cleanup took a live run's testbed"
    );
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !leftovers("egb-clikill").is_empty(),
        "a killed run leaves its testbed"
    );
    // Dead now: its objects and its claim go.
    let out = run(&["cleanup"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("egb-clikill-client"), "{}", text(&out));
    assert!(
        leftovers("egb-clikill").is_empty(),
        "{:?}",
        leftovers("egb-clikill")
    );
    assert!(!std::path::Path::new("/run/egress-bench/egb-clikill.lock").exists());
    let out = run(&["cleanup"]);
    assert!(!text(&out).contains("egb-clikill"), "{}", text(&out));
}

/// A run whose parent went away (its stdout and stderr are broken pipes, as when a sweep is
/// killed) still removes its testbed on SIGTERM and exits: the signal's message cannot panic
/// the cleanup away (it once did, leaving the run alive mid-load).
#[test]
fn sigterm_cleans_up_even_with_stderr_gone() {
    testbed::needs_root!();
    let _lock = serial();
    let mut child = slow_load("cliterm", "4000000")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Mid-load (ipset restore is busy for seconds), the parent's ends of the pipes close.
    wait_for_namespace("egb-cliterm");
    std::thread::sleep(Duration::from_millis(1_000));
    drop(child.stdout.take());
    drop(child.stderr.take());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // Seconds before the load would end by itself (a broken cleanup waited for that).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run outlived its SIGTERM by 5 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    assert!(
        leftovers("egb-cliterm").is_empty(),
        "{:?}",
        leftovers("egb-cliterm")
    );
    assert!(!std::path::Path::new("/run/egress-bench/egb-cliterm.lock").exists());
}

/// A filter installed by another program (a library consumer naming its objects `egb-*`)
/// is no benchmark run's: `cleanup` lists it as left alone and it keeps dropping.
#[test]
fn cleanup_never_takes_a_library_filter() {
    use filter_core::{EgressFilter, Tag};
    testbed::needs_root!();
    let _lock = serial();
    let bed = testbed::Testbed::new().unwrap();
    let mut library = filter_ipset::IpsetFilter::new(
        bed.client().clone(),
        Tag::new("libkeep").unwrap(),
        filter_ipset::Backend::Nft,
    )
    .unwrap();
    library
        .load(&testbed::denied_probe_nets().into_iter().collect())
        .unwrap();
    let here = bed.client().name().unwrap().to_owned();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &here,
            env!("CARGO_BIN_EXE_egress-bench"),
            "cleanup",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("left alone ipset egb-libkeep-v4: no benchmark run claims it"),
        "{said}"
    );
    assert!(!said.contains("removed ipset egb-libkeep"), "{said}");
    assert_eq!(
        bed.probe(testbed::DENIED_V4.into()).unwrap(),
        testbed::Probe::Dropped,
        "the library's filter still drops"
    );
    library.teardown().unwrap();
    bed.remove().unwrap();
}

#[test]
fn sigterm_mid_load_removes_the_testbed() {
    testbed::needs_root!();
    let _lock = serial();
    let mut child = bench()
        .args([
            "run",
            "--filter",
            "iptables",
            "--backend",
            "legacy",
            "--rules",
            "1000000",
            "--run-id",
            "cliterm",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_namespace("egb-cliterm");
    std::thread::sleep(Duration::from_millis(1500));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(!exit.success());
    assert!(
        leftovers("egb-cliterm").is_empty(),
        "{:?}",
        leftovers("egb-cliterm")
    );
}

#[test]
fn generate_writes_the_list_a_run_would_load() {
    testbed::needs_root!();
    let out = run(&[
        "generate", "--rules", "5000", "--family", "both", "--seed", "7",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let list = filter_core::CidrList::parse(
        out.stdout.as_slice(),
        "generate",
        &filter_core::ParseOptions { strict: true },
    )
    .unwrap();
    assert_eq!((list.v4().len(), list.v6().len()), (5000, 5000));
    assert_eq!(list.stats().distinct, 10_000);
    let again = run(&[
        "generate", "--rules", "5000", "--family", "both", "--seed", "7",
    ]);
    assert_eq!(out.stdout, again.stdout, "same seed, same list");
}

/// A leftover check that cannot run one of its tools fails, naming it, instead of reporting
/// that nothing is left: here `ipset` is missing from the PATH while every other tool is
/// there, and the same check with it passes.
#[test]
fn a_leftover_check_without_its_tool_fails() {
    testbed::needs_root!();
    let _lock = serial();
    let tools = tempfile::tempdir().unwrap();
    let link = |name: &str| {
        for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
            let path = std::path::Path::new(dir).join(name);
            if path.exists() {
                std::os::unix::fs::symlink(&path, tools.path().join(name)).unwrap();
                return;
            }
        }
    };
    for tool in [
        "ip",
        "tc",
        "nft",
        "cat",
        "iptables-nft-save",
        "ip6tables-nft-save",
        "iptables-legacy-save",
        "ip6tables-legacy-save",
        "xtables-nft-multi",
        "xtables-legacy-multi",
    ] {
        link(tool);
    }
    let check = |path: &std::path::Path| {
        bench()
            .args(["filters", "--leftovers"])
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let without = check(tools.path());
    assert!(!without.status.success(), "{}", text(&without));
    assert!(text(&without).contains("ipset"), "{}", text(&without));
    link("ipset");
    let with = check(tools.path());
    assert!(with.status.success(), "{}", text(&with));
}

/// On a host's own firewall (a namespace standing in for the host), a run interrupted with
/// SIGINT mid-load removes its chains and sets itself, and one killed with -9 leaves them to
/// `cleanup`, which removes exactly those (the run's claim is dead), while the filter of a
/// live run would stay.
#[test]
fn on_host_runs_are_cleaned_after_sigint_and_kill() {
    testbed::needs_root!();
    let _lock = serial();
    let bed = testbed::Testbed::new().unwrap();
    let host = bed.client().name().unwrap().to_owned();
    let in_host = |args: &[&str]| {
        let mut cmd = in_ns(bed.client());
        cmd.args(args);
        cmd
    };
    let _serve = serve(&bed);
    let sets = || {
        let out = Command::new("ip")
            .args(["netns", "exec", &host, "ipset", "list", "-n"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (id, signal) in [("cliint", "-INT"), ("clik9", "-KILL")] {
        let mut child = in_host(&[
            "run",
            "--filter",
            "ipset-restore",
            "--rules",
            "2000000",
            "--server",
            "198.18.0.2",
            "--on-host",
            "--denied-probe",
            "198.19.255.1",
            "--run-id",
            id,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        // Its set exists once the restore is under way.
        let start = Instant::now();
        while !sets().contains(&format!("egb-{id}-v4")) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{id}: no set made"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let ended = child.wait().unwrap();
        // Stopped mid-load by the signal, not finished: SIGINT's handler exits with 130.
        use std::os::unix::process::ExitStatusExt;
        match signal {
            "-INT" => assert_eq!(ended.code(), Some(130), "{id}: {ended}"),
            _ => assert_eq!(ended.signal(), Some(9), "{id}: {ended}"),
        }
        if signal == "-KILL" {
            assert!(
                sets().contains(&format!("egb-{id}")),
                "a killed run leaves its set"
            );
            let out = in_host(&["cleanup"]).output().unwrap();
            assert!(out.status.success(), "{}", text(&out));
            assert!(
                text(&out).contains(&format!("removed ipset egb-{id}-v4")),
                "{}",
                text(&out)
            );
        }
        let left = in_host(&["filters", "--leftovers"]).output().unwrap();
        assert!(left.status.success(), "{}", text(&left));
        assert!(
            !String::from_utf8_lossy(&left.stdout).contains(id),
            "{id}: {}",
            text(&left)
        );
        assert!(!std::path::Path::new(&format!("/run/egress-bench/egb-{id}.lock")).exists());
    }
    bed.remove().unwrap();
}

/// Waits (up to 10 s) until no process is left in network namespace `netns`.
fn helpers_gone(netns: &filter_core::NetNs) {
    use std::os::unix::fs::MetadataExt as _;
    let name = netns.name().expect("a named namespace");
    let inode = std::fs::metadata(format!("/run/netns/{name}"))
        .unwrap()
        .ino();
    let wanted = format!("net:[{inode}]");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let inside: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
            .filter(|e| {
                std::fs::read_link(e.path().join("ns/net"))
                    .is_ok_and(|l| l.to_string_lossy() == wanted)
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        if inside.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "processes {inside:?} still run in {name} 10 s after their run was killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A process loading a filter, then changing it (replaces and syncs between two lists that
/// both deny the probe networks), killed with -9 at a random point of its load or of its
/// changes. Afterwards the kernel enforces, per family, no list or a whole one after a cut
/// load (the denied networks at both ends of the list agree), and the old list or the new
/// one after a cut change, never none, for every engine whose state outlives its process;
/// `cleanup` then removes exactly that filter. A TCX link, and the cgroup and connect links,
/// go with their process: the filter fails open, which this states and checks.
#[test]
fn a_filter_killed_mid_load_or_change_leaves_a_whole_list() {
    use std::io::BufRead;
    testbed::needs_root!();
    let _lock = serial();
    // Where the kill lands: spread by the clock, said in every message.
    let mut draw = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    // (filter, attach, whether its state outlives its process, entries per family: loads
    // of a few hundred milliseconds)
    let cases = [
        ("iptables", "auto", true, "20000"),
        ("ipset", "auto", true, "150000"),
        ("nftables", "auto", true, "150000"),
        ("tcbpf", "clsact", true, "150000"),
        ("tcbpf-dir", "clsact", true, "150000"),
        ("tcbpf", "tcx", false, "150000"),
        ("tcbpf-dir", "cgroup", false, "150000"),
        ("tcbpf", "connect", false, "150000"),
    ];
    let mut i = 0;
    for (filter, attach, outlives, rules) in cases {
        // First a kill in the changes, which also times the load; then three kills spread
        // over the load's thirds.
        let mut load_time = Duration::ZERO;
        for attempt in 0..4u32 {
            i += 1;
            let bed = testbed::Testbed::new().unwrap();
            let id = format!("crash{i}");
            let mut child = in_ns_with_cgroups(bed.client())
                .args([
                    "churn", "--filter", filter, "--attach", attach, "--run-id", &id,
                ])
                .args(["--interface", &bed.client_link(), "--rules", rules])
                .args(["--cgroup".as_ref(), bed.workload().unwrap().as_os_str()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::inherit())
                .spawn()
                .unwrap();
            let (lines, said) = std::sync::mpsc::channel();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = lines.send(line);
                }
            });
            let mut heard = Vec::new();
            let wait_for = |heard: &mut Vec<String>, line: &str| {
                while heard.last().map(String::as_str) != Some(line) {
                    heard.push(said.recv_timeout(Duration::from_secs(120)).unwrap());
                }
            };
            wait_for(&mut heard, "loading");
            let loading = std::time::Instant::now();
            draw = draw.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let (start, delay) = if attempt == 0 {
                wait_for(&mut heard, "loaded");
                load_time = loading.elapsed();
                ("loaded", Duration::from_millis(u64::from(draw % 1_000)))
            } else {
                let third = load_time / 3;
                let within = third.mul_f64(f64::from(draw % 1_000) / 1_000.0);
                ("loading", third * (attempt - 1) + within)
            };
            std::thread::sleep(if attempt == 0 {
                delay
            } else {
                delay.saturating_sub(loading.elapsed())
            });
            assert!(
                child.try_wait().unwrap().is_none(),
                "{filter}@{attach}: the churn stopped by itself"
            );
            child.kill().unwrap();
            child.wait().unwrap();
            // Its helpers (iptables-restore, ipset, nft) die with it; wait until they are
            // gone, so that what the kernel holds is final before it is probed.
            helpers_gone(bed.client());
            heard.extend(said.try_iter());
            let cut_load = !heard.iter().any(|l| l == "loaded");
            let case = format!(
                "{filter}@{attach} killed {delay:?} after '{start}' ({}; its load takes {load_time:?})",
                if cut_load {
                    "during its load"
                } else {
                    "during its changes"
                }
            );
            eprintln!("{case}");
            // The IPv4 list starts with DENIED_NET_V4 and ends with DENIED_HOST_V4: both
            // enforced or neither.
            let ends = [
                bed.probe(testbed::DENIED_V4.into()).unwrap(),
                bed.probe(testbed::DENIED_HOST_V4.into()).unwrap(),
            ];
            assert_eq!(
                ends[0], ends[1],
                "{case}: part of the IPv4 list is enforced"
            );
            let v6 = bed.probe(testbed::DENIED_V6.into()).unwrap();
            for (family, denied) in [("IPv4", ends[0]), ("IPv6", v6)] {
                let fine = match (outlives, cut_load) {
                    (false, _) => denied == testbed::Probe::Delivered,
                    (true, false) => denied == testbed::Probe::Dropped,
                    // A cut first load: that family's list whole, or not yet hooked.
                    (true, true) => !matches!(denied, testbed::Probe::Unreachable(_)),
                };
                assert!(fine, "{case}: {family}'s denied probe {denied:?}");
            }
            for allowed in [
                std::net::IpAddr::from(testbed::ALLOWED_V4),
                testbed::ALLOWED_V6.into(),
            ] {
                assert_eq!(
                    bed.probe(allowed).unwrap(),
                    testbed::Probe::Delivered,
                    "{case}: {allowed}"
                );
            }
            // The process is dead, so its claim is: cleanup takes what it left, and only that.
            let out = in_ns(bed.client()).arg("cleanup").output().unwrap();
            assert!(out.status.success(), "{case}: {}", text(&out));
            let left = in_ns(bed.client())
                .args(["filters", "--leftovers"])
                .output()
                .unwrap();
            assert!(left.status.success(), "{case}: {}", text(&left));
            assert!(
                String::from_utf8_lossy(&left.stdout).trim().is_empty(),
                "{case}: {}",
                text(&left)
            );
            for denied in [
                std::net::IpAddr::from(testbed::DENIED_V4),
                testbed::DENIED_V6.into(),
            ] {
                assert_eq!(
                    bed.probe(denied).unwrap(),
                    testbed::Probe::Delivered,
                    "{case}: {denied} after cleanup"
                );
            }
            bed.remove().unwrap();
        }
    }
}
