//! A filter made to outlive its process stays enforced when its value is dropped, is found
//! by the leftover check, is adopted by a later filter of the same tag (with no second
//! program hooked), moves to a new list by `sync`, and goes with `teardown`.

use filter_core::{CidrList, EgressFilter, Target};
use filter_tcbpf::{Attach, TcbpfFilter, hooks};
use ipnet::IpNet;
use testbed::{ALLOWED_V4, DENIED_HOST_V4, DENIED_V4, Probe, Testbed};

/// Removes the pins of a tag when dropped: a failed test must not leave a filter that
/// outlives it.
struct Unpin(String);

impl Drop for Unpin {
    fn drop(&mut self) {
        let _ = filter_tcbpf::pin::remove_pinned(&self.0);
    }
}

/// The tests of this file one at a time: each checks that the bpffs mounted for its pins
/// is gone with them, which another test's pins would keep.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether the bpffs the crate mounts itself is mounted.
fn own_mount() -> bool {
    let own = std::path::Path::new(filter_tcbpf::pin::OWN_MOUNT);
    filter_core::mounts::mounts()
        .unwrap()
        .iter()
        .any(|m| m.fstype == "bpf" && m.path == own)
}

/// A generated list (clear of the test range) with `nets` added.
fn list(nets: &[IpNet]) -> CidrList {
    use filter_core::generate::{Mix, generate};
    let mut list = generate(200, 3, Mix::Default, &filter_core::Family::BOTH);
    list.extend(nets.iter().copied());
    list
}

/// The filter of `bed` hooked the way `attach` says: the client's egress for TCX, its
/// cgroup for the cgroup kinds.
fn filter(bed: &Testbed, attach: Attach) -> TcbpfFilter {
    let target = match attach.resolve().target {
        filter_core::TargetKind::Cgroup => {
            Target::cgroup(bed.workload().expect("cgroup v2 is mounted here"))
        }
        filter_core::TargetKind::Egress => Target::egress(bed.client_link()),
    };
    TcbpfFilter::at(bed.client().clone(), bed.tag().clone(), &target, attach).unwrap()
}

/// Our programs hooked for `bed` the way `attach` does, counted by the engine's finder.
fn hooked(bed: &Testbed) -> Vec<String> {
    conformance::objects(&filter_tcbpf::ENGINE, bed, bed.tag().as_str())
        .into_iter()
        .filter(|o| !o.starts_with("pinned filter"))
        .collect()
}

#[test]
fn a_pinned_filter_outlives_its_value_and_is_adopted() {
    testbed::needs_root!();
    let _serial = serial();
    for attach in [Attach::TCX, Attach::CGROUP, Attach::CONNECT] {
        let bed = Testbed::new().unwrap();
        let _unpin = Unpin(bed.tag().to_string());
        let denied: IpNet = format!("{DENIED_V4}/32").parse().unwrap();
        let later: IpNet = format!("{DENIED_HOST_V4}/32").parse().unwrap();
        let mut first = filter(&bed, attach);
        first.persist().unwrap();
        first.load(&list(&[denied])).unwrap();
        drop(first);
        // Still enforced with no value (and, for the process, no descriptor) holding it.
        assert_eq!(
            bed.probe(DENIED_V4.into()).unwrap(),
            Probe::Dropped,
            "{attach:?}"
        );
        assert_eq!(
            bed.probe(ALLOWED_V4.into()).unwrap(),
            Probe::Delivered,
            "{attach:?}"
        );
        let pins = filter_tcbpf::pin::pinned(bed.tag().as_str()).unwrap();
        assert_eq!(pins.len(), 1, "{attach:?}: {pins:?}");
        let before = hooked(&bed);
        assert!(!before.is_empty(), "{attach:?}: nothing hooked");

        let mut second = filter(&bed, attach);
        assert!(second.adopt().unwrap(), "{attach:?}: nothing adopted");
        assert_eq!(
            bed.probe(DENIED_V4.into()).unwrap(),
            Probe::Dropped,
            "{attach:?}"
        );
        // The adopted list is not read back: changes wait for a sync.
        assert!(second.held().is_none());
        second.sync(&list(&[later])).unwrap();
        assert_eq!(
            bed.probe(DENIED_V4.into()).unwrap(),
            Probe::Delivered,
            "{attach:?}"
        );
        assert_eq!(
            bed.probe(DENIED_HOST_V4.into()).unwrap(),
            Probe::Dropped,
            "{attach:?}"
        );
        // The same links moved: no second program hooked beside the first.
        assert_eq!(
            hooked(&bed).len(),
            before.len(),
            "{attach:?}: {:?}",
            hooked(&bed)
        );
        second.add(&[denied]).unwrap();
        assert_eq!(
            bed.probe(DENIED_V4.into()).unwrap(),
            Probe::Dropped,
            "{attach:?}"
        );
        drop(second);
        assert_eq!(
            bed.probe(DENIED_V4.into()).unwrap(),
            Probe::Dropped,
            "{attach:?}"
        );

        // Teardown of an adopted filter removes it, pins and all.
        let mut third = filter(&bed, attach);
        assert!(third.adopt().unwrap());
        third.teardown().unwrap();
        assert_eq!(
            bed.probe(DENIED_V4.into()).unwrap(),
            Probe::Delivered,
            "{attach:?}"
        );
        assert!(
            filter_tcbpf::pin::pinned(bed.tag().as_str())
                .unwrap()
                .is_empty()
        );
        assert!(hooked(&bed).is_empty(), "{attach:?}: {:?}", hooked(&bed));
        assert!(
            !filter(&bed, attach).adopt().unwrap(),
            "{attach:?}: adopted nothing"
        );
        // The bpffs mounted for the pins (if none was) went with the last of them.
        assert!(
            !own_mount(),
            "{attach:?}: {} left mounted",
            filter_tcbpf::pin::OWN_MOUNT
        );
        bed.remove().unwrap();
    }
}

/// A pinned filter whose owner is gone is what `cleanup` removes: the engine's leftover
/// finder lists it and its remover takes it (the links go, the hook is free).
#[test]
fn the_leftover_finder_sees_and_removes_a_pinned_filter() {
    testbed::needs_root!();
    let _serial = serial();
    let bed = Testbed::new().unwrap();
    let _unpin = Unpin(bed.tag().to_string());
    let mut filter = filter(&bed, Attach::TCX);
    filter.persist().unwrap();
    filter.load(&list(&[])).unwrap();
    drop(filter);
    let here = filter_core::NetNs::current();
    let found = (filter_tcbpf::ENGINE.leftovers)(&here, bed.tag().as_str()).unwrap();
    assert!(
        found.iter().any(|f| f.starts_with("pinned filter")),
        "{found:?}"
    );
    let removed = (filter_tcbpf::ENGINE.remove_leftovers)(&here, bed.tag().as_str()).unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(
        filter_tcbpf::pin::pinned(bed.tag().as_str())
            .unwrap()
            .is_empty()
    );
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Delivered);
    assert!(!own_mount(), "the remover left its bpffs mounted");
    assert!(
        hooks::tcx::programs_on(bed.client(), &bed.client_link())
            .unwrap()
            .is_empty()
    );
    bed.remove().unwrap();
}

/// clsact filters stay after their process anyway, but hold no link to adopt: refused by
/// name rather than half-supported.
#[test]
fn clsact_refuses_to_persist() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let err = filter(&bed, Attach::CLSACT).persist().unwrap_err();
    assert!(err.to_string().contains("clsact"), "{err}");
    bed.remove().unwrap();
}
