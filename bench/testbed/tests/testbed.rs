//! The testbed against the real kernel (needs root).

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use filter_core::Tag;
use testbed::{ALLOWED_V4, ALLOWED_V6, DENIED_V4, DENIED_V6, Probe, Testbed, leftovers};

fn route(bed: &Testbed, args: &str) {
    let ns = bed.client().name().unwrap();
    let status = Command::new("ip")
        .args(["-n", ns])
        .args(args.split_whitespace())
        .status()
        .unwrap();
    assert!(status.success(), "ip {args}");
}

#[test]
fn probes_see_delivery_and_drops_in_both_families() {
    testbed::needs_root!();
    let bed = Testbed::new().expect("testbed (run as root)");
    let tag = bed.tag().to_string();
    for dst in [
        IpAddr::from(ALLOWED_V4),
        DENIED_V4.into(),
        ALLOWED_V6.into(),
        DENIED_V6.into(),
    ] {
        assert_eq!(
            bed.probe(dst).unwrap(),
            Probe::Delivered,
            "{dst} before any drop"
        );
    }
    // A plain netfilter rule stands in for a filter: probes must notice the loss.
    for (tool, net) in [
        ("iptables-nft", "198.19.255.0/24"),
        ("ip6tables-nft", "2001:2:0:1fff::/64"),
    ] {
        let ok = Command::new("ip")
            .args(["netns", "exec", bed.client().name().unwrap(), tool])
            .args(["-A", "OUTPUT", "-d", net, "-j", "DROP"])
            .status()
            .unwrap()
            .success();
        assert!(ok, "{tool} -A OUTPUT -d {net} -j DROP");
    }
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert_eq!(bed.probe(DENIED_V6.into()).unwrap(), Probe::Dropped);
    assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
    // A path broken by its route is not filtered: its probe never counts as a drop.
    route(&bed, "route add unreachable 198.19.0.0/24");
    route(&bed, "route add blackhole 198.19.1.0/24");
    for dst in ["198.19.0.1", "198.19.1.1"] {
        assert!(
            matches!(
                bed.probe(dst.parse().unwrap()).unwrap(),
                Probe::Unreachable(_)
            ),
            "{dst}: a send the route refuses is no filter's drop"
        );
    }
    assert!(
        bed.probe("192.0.2.1".parse().unwrap()).is_err(),
        "outside the test range"
    );
    bed.remove().unwrap();
    assert_eq!(leftovers(&tag), Vec::<String>::new());
}

#[test]
fn enforcement_watch_times_a_change() {
    testbed::needs_root!();
    let bed = Testbed::new().expect("testbed (run as root)");
    let watch = bed
        .watch_enforcement(DENIED_V4.into(), Duration::from_micros(20))
        .unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let start = Instant::now();
    route(&bed, "route add blackhole 198.19.255.0/24");
    let changed = start.elapsed();
    std::thread::sleep(Duration::from_millis(30));
    let e = watch.finish(start).unwrap();
    let after = e.after.expect("the route blocks the probes");
    assert!(
        after <= changed + e.max_gap,
        "{e:?} changed after {changed:?}"
    );
    assert!(e.resolution < Duration::from_micros(200), "{e:?}");
    assert!(e.sent > 100, "{e:?}");
}

#[test]
fn dropping_removes_everything() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let tag = bed.tag().to_string();
    let alive = leftovers(&tag);
    let cgroups = usize::from(testbed::cgroup::unified_mount().is_some());
    assert_eq!(
        alive.len(),
        2 + cgroups,
        "two namespaces and the client cgroup while alive: {alive:?}"
    );
    drop(bed);
    assert!(leftovers(&tag).is_empty());
}

/// A run's claim: shared within the process, listed as live while held, gone with its last
/// holder; a claim file nobody holds is a dead run's.
#[test]
fn claims_tell_live_runs_from_dead_ones() {
    use testbed::claim::{Claim, claims};
    testbed::needs_root!();
    let tag = Tag::new("claimt").unwrap();
    let path = std::path::Path::new(testbed::claim::CLAIMS_DIR).join("egb-claimt.lock");
    let first = testbed::RunClaim::take(&tag).unwrap();
    let second = testbed::RunClaim::take(&tag).expect("this process shares its own claim");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        std::process::id().to_string()
    );
    assert!(claims().unwrap().contains(&Claim::Live {
        tag: "egb-claimt".into(),
        pid: std::process::id().to_string(),
    }));
    drop(first);
    assert!(path.exists(), "a clone still holds it");
    drop(second);
    assert!(!path.exists(), "the last holder removes the claim");
    // What a killed run leaves: the file without its lock.
    std::fs::write(&path, "999999\n").unwrap();
    assert!(claims().unwrap().contains(&Claim::Dead {
        tag: "egb-claimt".into()
    }));
    let adopted = testbed::claim::adopt_dead("egb-claimt").unwrap();
    assert!(adopted.is_some());
    drop(adopted);
    assert!(!path.exists());
}
