//! One set of kernel tests that every [`EgressFilter`] engine must pass, run by each engine
//! crate through [`conformance_tests!`](crate::conformance_tests) from its registry entry
//! (its [`Engine`], a variant name and options). A test-support crate: engine crates take it
//! as a dev-dependency, the shipped binary never links it.
//!
//! Each check builds its own testbed, so the checks run in parallel safely, and panics when
//! the engine breaks the contract: it is a test.
//!
//! In an engine crate's `tests/conformance.rs`, one module per variant and option set (the
//! engine's own typed options, or none for its defaults):
//!
//! ```ignore
//! mod legacy_rule {
//!     conformance::conformance_tests!(
//!         filter_ipset::ENGINE,
//!         "ipset",
//!         filter_ipset::IpsetOptions { backend: filter_ipset::Backend::Legacy, ..Default::default() }
//!     );
//! }
//! ```

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]
#![allow(
    clippy::missing_panics_doc,
    reason = "every check is a test: failing is panicking"
)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use filter_core::engine::{Placement, Target};
use filter_core::generate::{Mix, generate};
use filter_core::{CidrList, EgressFilter, Engine, Error, Family, Tag};
use ipnet::IpNet;
use testbed::{
    ALLOWED_V4, ALLOWED_V6, DENIED_V4, DENIED_V6, Probe, Testbed, denied_probe_nets, leftovers,
    link_hooks,
};

pub use filter_core::engine::Options;

/// The filter under test: a variant of an engine, with options.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    /// The engine crate's registry entry.
    pub engine: &'static Engine,
    /// The variant's name (`ipset`, `ipset-restore`).
    pub variant: &'static str,
    /// The engine's typed options.
    pub options: fn() -> Options,
}

impl Subject {
    /// Builds the filter for a testbed's client (its namespace, tag and link).
    ///
    /// # Panics
    /// When the engine has no such variant or the build fails: a test failure.
    pub fn make(&self, bed: &Testbed) -> Box<dyn EgressFilter> {
        let variant = self
            .engine
            .variants
            .iter()
            .find(|v| v.name == self.variant)
            .unwrap_or_else(|| panic!("{} has no variant {}", self.engine.name, self.variant));
        let options = (self.options)();
        let target = match (self.engine.target_kind)(&options) {
            filter_core::TargetKind::Egress => Target::egress(bed.client_link()),
            filter_core::TargetKind::Cgroup => Target::cgroup(
                bed.workload()
                    .expect("a cgroup attach needs the testbed's cgroup (cgroup v2 mounted)"),
            ),
        };
        let at = Placement {
            netns: bed.client().clone(),
            tag: bed.tag().clone(),
            target,
            options,
        };
        (variant.build)(&at).expect("building the filter")
    }

    /// What the filter left in the testbed: see [`objects`].
    pub fn objects(&self, bed: &Testbed, tag: &Tag) -> Vec<String> {
        objects(self.engine, bed, tag.as_str())
    }
}

/// What an engine's filters left in a testbed: the engine's objects under `prefix` (a tag),
/// and anything hooked to the client's link.
pub fn objects(engine: &Engine, bed: &Testbed, prefix: &str) -> Vec<String> {
    let mut found = (engine.leftovers)(bed.client(), prefix).expect("listing leftovers");
    found.extend(link_hooks(bed).expect("listing what is hooked to the client link"));
    found
}

const ADDRS: [(IpAddr, IpAddr); 2] = [
    (IpAddr::V4(DENIED_V4), IpAddr::V4(ALLOWED_V4)),
    (IpAddr::V6(DENIED_V6), IpAddr::V6(ALLOWED_V6)),
];

/// A generated list of `n` entries per family plus the deliberate probe networks.
pub fn list_with_probes(n: usize, seed: u64) -> CidrList {
    let mut list = generate(n, seed, Mix::Default, &Family::BOTH);
    list.extend(denied_probe_nets());
    list
}

fn bed() -> Testbed {
    Testbed::new().expect("building the testbed needs root (run `cargo xtask test`)")
}

fn expect_probes(bed: &Testbed, denied: Probe, when: &str) {
    for (deny, allow) in ADDRS {
        assert_eq!(bed.probe(deny).unwrap(), denied, "{deny} {when}");
        assert_eq!(
            bed.probe(allow).unwrap(),
            Probe::Delivered,
            "{allow} {when}"
        );
    }
}

/// The disjoint address ranges `list`'s entries of `family` make, overlapping or touching
/// ones merged.
fn disjoint_ranges(list: &CidrList, family: Family) -> u64 {
    let mut spans: Vec<(u128, u128)> = list
        .iter()
        .filter(|n| Family::of(n.addr()) == family)
        .map(|n| match n {
            ipnet::IpNet::V4(n) => (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            ),
            ipnet::IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
        })
        .collect();
    spans.sort_unstable();
    let mut ranges = 0;
    let mut end: Option<u128> = None;
    for (first, last) in spans {
        match end {
            Some(e) if first <= e.saturating_add(1) => end = Some(e.max(last)),
            _ => {
                ranges += 1;
                end = Some(last);
            }
        }
    }
    ranges
}

/// The kernel holds what the engine's bookkeeping says, read back from the kernel (rules,
/// set members or elements, map keys); where the unit is one per entry, that is also
/// `list`'s distinct entries. Every engine reads its state back.
pub fn assert_kernel_agrees(filter: &dyn EgressFilter, list: &CidrList, when: &str) {
    use filter_core::CountUnit;
    let count = filter
        .kernel_count()
        .expect("reading back what the kernel holds")
        .unwrap_or_else(|| panic!("{} cannot read back what the kernel holds", filter.name()));
    assert!(
        count.read.iter().any(Option::is_some),
        "{when}: nothing read back: {count:?}"
    );
    assert!(
        count.agrees(),
        "{when}: the kernel holds {:?} {:?}, the engine's bookkeeping says {:?}",
        count.read,
        count.unit,
        count.expected
    );
    if count.unit == CountUnit::Ranges {
        for (i, family) in Family::BOTH.into_iter().enumerate() {
            if let Some(read) = count.read[i] {
                assert_eq!(
                    read,
                    disjoint_ranges(list, family),
                    "{when}: {family:?} denied ranges in the kernel"
                );
            }
        }
    } else if count.unit != CountUnit::SetElements {
        let distinct = |family| {
            list.iter()
                .filter(|n| Family::of(n.addr()) == family)
                .map(|n| n.trunc())
                .collect::<std::collections::BTreeSet<_>>()
                .len() as u64
        };
        for (i, family) in Family::BOTH.into_iter().enumerate() {
            if let Some(read) = count.read[i] {
                assert_eq!(
                    read,
                    distinct(family),
                    "{when}: {family:?} entries in the kernel"
                );
            }
        }
    }
}

/// How long a torn-down filter may still show: a BPF link (TCX, cgroup) goes with its last
/// file descriptor, and a child that another thread of this process forks meanwhile holds a
/// copy until it execs (the tests run in parallel threads that start `ip` all the time).
const RELEASE_GRACE: Duration = Duration::from_millis(1_000);

fn assert_clean(subject: &Subject, bed: &Testbed, tag: &Tag) {
    let until = std::time::Instant::now() + RELEASE_GRACE;
    loop {
        let left = subject.objects(bed, tag);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < until,
            "left behind {RELEASE_GRACE:?} after teardown: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The probes after a teardown: the allowed ones at once, the denied ones delivered within
/// [`RELEASE_GRACE`].
fn expect_released(bed: &Testbed) {
    let until = std::time::Instant::now() + RELEASE_GRACE;
    for (deny, allow) in ADDRS {
        assert_eq!(
            bed.probe(allow).unwrap(),
            Probe::Delivered,
            "{allow} after teardown"
        );
        while bed.probe(deny).unwrap() != Probe::Delivered {
            assert!(
                std::time::Instant::now() < until,
                "{deny} still dropped {RELEASE_GRACE:?} after teardown"
            );
        }
    }
}

/// Loading blocks the denied probes and passes the allowed ones, in both families, and
/// the statistics count the entries and the drops.
pub fn load_blocks_denied_passes_allowed(subject: &Subject) {
    testbed::needs_root!();
    let bed = bed();
    let tag = bed.tag().clone();
    let mut filter = subject.make(&bed);
    expect_probes(&bed, Probe::Delivered, "before load");
    let list = list_with_probes(2_000, 1);
    filter.load(&list).unwrap();
    expect_probes(&bed, Probe::Dropped, "after load");
    assert_kernel_agrees(filter.as_ref(), &list, "after load");
    let stats = filter.stats().unwrap();
    assert!(
        stats.entries_v4 > 1_900 && stats.entries_v6 > 1_900,
        "{stats:?}"
    );
    if let Some(packets) = stats.packets_matched {
        assert!(packets > 0, "drops counted: {stats:?}");
    }
    assert!(matches!(filter.load(&list), Err(Error::AlreadyLoaded)));
    expect_probes(&bed, Probe::Dropped, "after a refused second load");
    filter.teardown().unwrap();
    expect_released(&bed);
    assert_clean(subject, &bed, &tag);
    filter.teardown().expect("teardown twice is fine");
    drop(filter);
    let name = tag.to_string();
    bed.remove().unwrap();
    assert!(leftovers(&name).is_empty());
}

/// Adding and removing single entries takes effect; a present add or an absent remove is
/// not an error; removing a narrow entry inside a broad one leaves the broad one working.
pub fn add_and_remove_entries(subject: &Subject) {
    testbed::needs_root!();
    let bed = bed();
    let mut filter = subject.make(&bed);
    filter
        .load(&generate(500, 3, Mix::Default, &Family::BOTH))
        .unwrap();
    expect_probes(&bed, Probe::Delivered, "before add");
    let probes = denied_probe_nets();
    filter.add(&probes).unwrap();
    expect_probes(&bed, Probe::Dropped, "after add");
    let held = filter.held().expect("a loaded filter holds its list");
    assert_kernel_agrees(filter.as_ref(), &held, "after add");
    filter.add(&probes).expect("adding present entries");
    let hosts: Vec<IpNet> = ADDRS.iter().map(|&(d, _)| IpNet::from(d)).collect();
    filter.add(&hosts).unwrap();
    filter.remove(&hosts).unwrap();
    expect_probes(
        &bed,
        Probe::Dropped,
        "after removing host entries inside denied nets",
    );
    filter.remove(&probes).unwrap();
    expect_probes(&bed, Probe::Delivered, "after remove");
    filter.remove(&probes).expect("removing absent entries");
    let tag = bed.tag().clone();
    drop(filter);
    assert_clean(subject, &bed, &tag);
}

/// A list of one family gains its first entry of the other, by add and by sync: the new
/// family's denied probe drops, its allowed one passes, and the kernel holds it.
pub fn first_entry_of_a_family(subject: &Subject) {
    testbed::needs_root!();
    let bed = bed();
    let mut filter = subject.make(&bed);
    let v4_only = generate(200, 5, Mix::Default, &[Family::V4]);
    filter.load(&v4_only).unwrap();
    assert_eq!(bed.probe(DENIED_V6.into()).unwrap(), Probe::Delivered);
    let v6_net = IpNet::V6(testbed::DENIED_NET_V6);
    filter.add(&[v6_net]).unwrap();
    assert_eq!(
        bed.probe(DENIED_V6.into()).unwrap(),
        Probe::Dropped,
        "the first IPv6 entry, added"
    );
    assert_eq!(bed.probe(ALLOWED_V6.into()).unwrap(), Probe::Delivered);
    let mut with_v6 = v4_only.clone();
    with_v6.push(v6_net);
    assert_kernel_agrees(filter.as_ref(), &with_v6, "after the first IPv6 entry");
    filter.sync(&v4_only).unwrap();
    assert_eq!(bed.probe(DENIED_V6.into()).unwrap(), Probe::Delivered);
    filter.sync(&with_v6).unwrap();
    assert_eq!(
        bed.probe(DENIED_V6.into()).unwrap(),
        Probe::Dropped,
        "the first IPv6 entry, synced"
    );
    let tag = bed.tag().clone();
    filter.teardown().unwrap();
    assert_clean(subject, &bed, &tag);
}

/// Replacing the list while packets flow to a denied and an allowed address: the allowed
/// stream loses nothing, the denied stream gets nothing through, and the new list applies.
pub fn replace_under_traffic(subject: &Subject) {
    testbed::needs_root!();
    let bed = bed();
    let mut filter = subject.make(&bed);
    filter.load(&list_with_probes(5_000, 1)).unwrap();
    for (deny, allow) in ADDRS {
        let denied = bed
            .watch_enforcement(deny, Duration::from_micros(50))
            .unwrap();
        let allowed = bed
            .watch_enforcement(allow, Duration::from_micros(50))
            .unwrap();
        let start = Instant::now();
        for seed in 10..13 {
            filter.replace(&list_with_probes(5_000, seed)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
        let (denied, allowed) = (
            denied.finish(start).expect("the denied stream ran"),
            allowed.finish(start).expect("the allowed stream ran"),
        );
        assert_eq!(
            denied.delivered, 0,
            "denied packets leaked during replace: {denied:?}"
        );
        // Both streams really ran through the replaces: a silent sender proves nothing.
        assert!(denied.sent > 50, "{denied:?}");
        assert_eq!(
            allowed.delivered, allowed.sent,
            "allowed packets lost during replace: {allowed:?}"
        );
        assert!(allowed.sent > 50, "{allowed:?}");
    }
    filter
        .replace(&generate(5_000, 20, Mix::Default, &Family::BOTH))
        .unwrap();
    expect_probes(
        &bed,
        Probe::Delivered,
        "after replacing with a list without the probes",
    );
    let stats = filter.stats().unwrap();
    assert!(
        stats.entries_v4 > 4_900 && stats.entries_v4 <= 5_000,
        "{stats:?}"
    );
    filter.replace(&list_with_probes(10, 21)).unwrap();
    expect_probes(
        &bed,
        Probe::Dropped,
        "after replacing with the probes again",
    );
    let tag = bed.tag().clone();
    filter.teardown().unwrap();
    assert_clean(subject, &bed, &tag);
}

/// Dropping a loaded filter without teardown removes its objects.
pub fn drop_removes_everything(subject: &Subject) {
    testbed::needs_root!();
    let bed = bed();
    let tag = bed.tag().clone();
    {
        let mut filter = subject.make(&bed);
        filter.load(&list_with_probes(100, 4)).unwrap();
        // Both: the filter works, and its objects are there to be found (so that the check
        // after the drop can fail).
        assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
        assert!(!subject.objects(&bed, &tag).is_empty());
    }
    assert_clean(subject, &bed, &tag);
    expect_probes(&bed, Probe::Delivered, "after drop");
}

/// After a sequence of syncs the filter holds exactly the last list: big changes (a new
/// draw from a pool, past the point where engines swap in a new copy) alternate with small
/// ones (a few entries in and out), the probe networks in every other list. After each, the
/// probes drop exactly when the list holds them, the held list and the counts are the list's,
/// and the report counts the difference.
pub fn sync_converges(subject: &Subject) {
    testbed::needs_root!();
    use rand::{Rng, SeedableRng};
    let bed = bed();
    let tag = bed.tag().clone();
    let mut filter = subject.make(&bed);
    let pool: Vec<IpNet> = generate(300, 7, Mix::Default, &Family::BOTH)
        .iter()
        .collect();
    let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
    let mut last: Vec<IpNet> = Vec::new();
    for step in 0..8 {
        let mut desired: Vec<IpNet> = if step % 2 == 0 {
            pool.iter()
                .filter(|_| rng.random_bool(0.5))
                .copied()
                .collect()
        } else {
            let mut next: Vec<IpNet> = last
                .iter()
                .filter(|n| !denied_probe_nets().contains(n))
                .copied()
                .collect();
            for _ in 0..5 {
                let pick = pool[rng.random_range(0..pool.len())];
                match next.iter().position(|n| *n == pick) {
                    Some(at) => {
                        next.remove(at);
                    }
                    None => next.push(pick),
                }
            }
            next
        };
        let with_probes = step % 4 < 2;
        if with_probes {
            desired.extend(denied_probe_nets());
        }
        let list: CidrList = desired.iter().copied().collect();
        let held_before: CidrList = last.iter().copied().collect();
        let (gone, came) = filter_core::difference(&held_before, &list);
        let report = filter.sync(&list).unwrap();
        let when = format!("after sync {step} ({report:?})");
        if step > 0 {
            assert_eq!(
                (report.added, report.removed),
                (came.len() as u64, gone.len() as u64),
                "{when}"
            );
        }
        let denied = if with_probes {
            Probe::Dropped
        } else {
            Probe::Delivered
        };
        for (deny, _) in ADDRS {
            assert_eq!(bed.probe(deny).unwrap(), denied, "{deny} {when}");
        }
        if let Some(held) = filter.held() {
            let (extra, missing) = filter_core::difference(&held, &list);
            assert!(
                extra.is_empty() && missing.is_empty(),
                "{when}: held differs"
            );
        }
        let stats = filter.stats().unwrap();
        assert_eq!(
            (stats.entries_v4, stats.entries_v6),
            (list.v4().len() as u64, list.v6().len() as u64),
            "{when}"
        );
        assert_kernel_agrees(filter.as_ref(), &list, &when);
        last = desired;
    }
    filter.teardown().unwrap();
    assert_clean(subject, &bed, &tag);
}

/// A replace made to fail half way by `inject` (an engine's test hook) leaves the old list in
/// force in both families, with its entry counts. `filter` holds a list with the probe
/// networks; the new list lacks them, so had either family switched, its denied probe would
/// pass. Returns the new list, for the caller to replace with once nothing fails.
pub fn replace_failing_half_way<F: EgressFilter>(
    bed: &Testbed,
    filter: &mut F,
    inject: impl FnOnce(&mut F),
) -> CidrList {
    let before = filter.stats().unwrap();
    let new = generate(500, 2, Mix::Default, &Family::BOTH);
    inject(filter);
    let err = filter.replace(&new).unwrap_err();
    assert!(err.to_string().contains("injected"), "{err}");
    expect_probes(bed, Probe::Dropped, "after a replace that failed half way");
    let after = filter.stats().unwrap();
    assert_eq!(
        (after.entries_v4, after.entries_v6),
        (before.entries_v4, before.entries_v6)
    );
    new
}

/// Entries added with a timeout that a plain [`add`](EgressFilter::add) or a
/// [`sync`](EgressFilter::sync) keeps lose their timeout: after their time they are still
/// enforced, and nothing is left expiring. `filter` holds a list without
/// [`DENIED_HOST_V4`](testbed::DENIED_HOST_V4) or `198.19.253.1`; it is left with both.
pub fn timed_entries_kept_become_permanent<F: EgressFilter>(bed: &Testbed, filter: &mut F) {
    let by_add: IpNet = "198.19.253.1/32".parse().unwrap();
    let by_sync = IpNet::from(std::net::IpAddr::from(testbed::DENIED_HOST_V4));
    let ttl = std::time::Duration::from_millis(1_200);
    filter.add_with_timeout(&[by_add, by_sync], ttl).unwrap();
    assert_eq!(filter.expiring(), vec![by_add, by_sync]);
    filter.add(&[by_add]).unwrap();
    let mut desired = filter.held().unwrap();
    desired.extend([by_sync]);
    filter.sync(&desired).unwrap();
    assert!(filter.expiring().is_empty(), "{:?}", filter.expiring());
    std::thread::sleep(ttl + std::time::Duration::from_millis(800));
    for (net, how) in [(by_add, "added"), (by_sync, "synced")] {
        assert_eq!(
            bed.probe(net.addr()).unwrap(),
            Probe::Dropped,
            "{net}, {how} again without a timeout, expired"
        );
    }
    let held = filter.held().unwrap();
    assert!(held.iter().any(|n| n == by_add) && held.iter().any(|n| n == by_sync));
}

/// Expands to one `#[test]` per conformance check for a variant of an engine, built with the
/// engine's typed options when given (its defaults otherwise):
/// `conformance_tests!(filter_nftables::ENGINE, "nftables", NftablesOptions { timeouts: true })`.
#[macro_export]
macro_rules! conformance_tests {
    ($engine:path, $variant:literal $(, $options:expr)? $(,)?) => {
        const SUBJECT: $crate::Subject = $crate::Subject {
            engine: &$engine,
            variant: $variant,
            options: || $crate::Options::default()$(.with($options))?,
        };
        #[test]
        fn load_blocks_denied_passes_allowed() {
            $crate::load_blocks_denied_passes_allowed(&SUBJECT);
        }
        #[test]
        fn add_and_remove_entries() {
            $crate::add_and_remove_entries(&SUBJECT);
        }
        #[test]
        fn replace_under_traffic() {
            $crate::replace_under_traffic(&SUBJECT);
        }
        #[test]
        fn drop_removes_everything() {
            $crate::drop_removes_everything(&SUBJECT);
        }
        #[test]
        fn sync_converges() {
            $crate::sync_converges(&SUBJECT);
        }
        #[test]
        fn first_entry_of_a_family() {
            $crate::first_entry_of_a_family(&SUBJECT);
        }
    };
}
