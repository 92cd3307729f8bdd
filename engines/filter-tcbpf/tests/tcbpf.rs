//! tc eBPF engine specifics against the real kernel.

use std::net::IpAddr;

use filter_core::generate::{Mix, generate};
use filter_core::{CidrList, CostCase, CostProbe, EgressFilter, Family};
use filter_tcbpf::{Attach, Fill, Table, TcbpfFilter};
use ipnet::IpNet;
use testbed::{
    ALLOWED_V4, DENIED_HOST_V4, DENIED_V4, DENIED_V6, Probe, Testbed, denied_probe_nets,
};

fn list(n: usize) -> filter_core::CidrList {
    let mut list = generate(n, 9, Mix::Default, &Family::BOTH);
    list.extend(denied_probe_nets());
    list
}

#[test]
fn attached_program_is_visible_then_gone() {
    testbed::needs_root!();
    for attach in [Attach::TCX, Attach::CLSACT] {
        let bed = Testbed::new().unwrap();
        let tag = bed.tag().clone();
        let mut filter = TcbpfFilter::new(
            bed.client().clone(),
            tag.clone(),
            &bed.client_link(),
            attach,
        );
        assert_eq!(filter.attach_mode(), attach);
        filter.load(&list(100)).unwrap();
        // The leftover check must see a live hook, or it could never fail.
        let live = conformance::objects(&filter_tcbpf::ENGINE, &bed, tag.as_str());
        assert!(
            !live.is_empty(),
            "{attach:?}: nothing visible while attached"
        );
        assert!(
            filter.backend().contains(attach.name()),
            "{}",
            filter.backend()
        );
        filter.teardown().unwrap();
        assert!(
            conformance::objects(&filter_tcbpf::ENGINE, &bed, tag.as_str()).is_empty(),
            "{attach:?}"
        );
    }
}

/// A clsact qdisc this filter made stays when another filter has hooked it since: tearing
/// down must not take someone else's filter with it.
#[test]
fn clsact_qdisc_another_filter_uses_is_kept() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let link = bed.client_link();
    let loaded = || {
        let mut filter = TcbpfFilter::new(
            bed.client().clone(),
            bed.tag().clone(),
            &link,
            Attach::CLSACT,
        );
        filter.load(&list(100)).unwrap();
        filter
    };
    let mut filter = loaded();
    let tc =
        |args: &[&str]| filter_core::run_command(bed.client().command("tc").args(args)).unwrap();
    // A classifier that matches everything and does nothing (this kernel has no tc action
    // modules).
    tc(&[
        "filter", "add", "dev", &link, "egress", "pref", "7", "u32", "match", "u32", "0", "0",
    ]);
    filter.teardown().unwrap();
    assert!(tc(&["qdisc", "show", "dev", &link]).contains("clsact"));
    assert!(tc(&["filter", "show", "dev", &link, "egress"]).contains("u32"));
    // Alone on the qdisc, it removes it.
    tc(&["qdisc", "del", "dev", &link, "clsact"]);
    loaded().teardown().unwrap();
    assert!(!tc(&["qdisc", "show", "dev", &link]).contains("clsact"));
}

#[test]
fn stats_count_entries_drops_and_memory() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter = TcbpfFilter::new(
        bed.client().clone(),
        bed.tag().clone(),
        &bed.client_link(),
        Attach::Auto,
    )
    .with_fill(Fill::PerEntry);
    let list = list(10_000);
    filter.load(&list).unwrap();
    let before = filter.stats().unwrap();
    let expected = list.stats();
    assert_eq!(
        before.entries_v4 + before.entries_v6,
        expected.entries_v4 + expected.entries_v6 - expected.duplicates
    );
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
    let after = filter.stats().unwrap();
    assert!(
        after.packets_matched.unwrap() >= before.packets_matched.unwrap() + 3,
        "{after:?}"
    );
    assert!(after.bytes_matched.unwrap() > before.bytes_matched.unwrap());
    let memory = after.kernel_memory.unwrap();
    assert!(memory.bytes > 20_000 * 16, "{memory:?}");
    assert!(
        filter.backend().contains("per-entry"),
        "{}",
        filter.backend()
    );
}

#[test]
fn program_costs_are_timed_against_the_floor() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter = TcbpfFilter::new(
        bed.client().clone(),
        bed.tag().clone(),
        &bed.client_link(),
        Attach::Auto,
    );
    filter.load(&list(50_000)).unwrap();
    let probes = vec![
        (CostProbe::V4Hit, IpAddr::from(DENIED_V4)),
        (CostProbe::V4Miss, IpAddr::from(ALLOWED_V4)),
    ];
    let costs = filter.program_costs(&probes).unwrap();
    let get = |case: CostCase| {
        costs
            .iter()
            .find(|c| c.case == case)
            .unwrap_or_else(|| panic!("{case}: {costs:?}"))
    };
    let floor = get(CostCase::Floor);
    let hit = get(CostCase::Probe(CostProbe::V4Hit));
    assert!(
        floor.median_ns > 0.0 && hit.median_ns > floor.median_ns,
        "{costs:#?}"
    );
    assert!(
        get(CostCase::ColdPerLookup(Family::V4)).median_ns > 0.0,
        "{costs:#?}"
    );
}

fn dir_filter(bed: &Testbed) -> TcbpfFilter {
    TcbpfFilter::new(
        bed.client().clone(),
        bed.tag().clone(),
        &bed.client_link(),
        Attach::Auto,
    )
    .with_table(Table::Dir24)
}

fn v4(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn probe(bed: &Testbed, addr: &str) -> Probe {
    bed.probe(addr.parse().unwrap()).unwrap()
}

/// The IPv4 layouts of the constant-time tables: the range table (short lists, by default)
/// and DIR-24-8 (long lists, or asked for), with what the backend says for each.
const V4_LAYOUTS: [(usize, &str); 2] = [
    (usize::MAX, "range table (IPv4"),
    (0, "DIR-24-8 table (IPv4)"),
];

#[test]
fn dir_table_keeps_overlapping_prefixes_right_on_real_packets() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    for (range_max, layout) in V4_LAYOUTS {
        overlapping_prefixes_on_real_packets(&bed, range_max, layout);
    }
}

fn overlapping_prefixes_on_real_packets(bed: &Testbed, range_max: usize, layout: &str) {
    let mut filter = dir_filter(bed).with_ipv4_range_max(range_max);
    // A /24 with a host inside it, and a lone host in another /24 (the chunk path).
    let list: CidrList = [
        v4("198.19.7.0/24"),
        v4("198.19.7.9/32"),
        v4("198.19.8.1/32"),
    ]
    .into_iter()
    .collect();
    filter.load(&list).unwrap();
    assert!(filter.backend().contains(layout), "{}", filter.backend());
    assert_eq!(probe(bed, "198.19.8.1"), Probe::Dropped);
    assert_eq!(probe(bed, "198.19.8.2"), Probe::Delivered);
    assert_eq!(probe(bed, "198.19.7.200"), Probe::Dropped);

    // Removing the host inside the denied /24 keeps the /24 denied.
    filter.remove(&[v4("198.19.7.9/32")]).unwrap();
    assert_eq!(probe(bed, "198.19.7.9"), Probe::Dropped);
    // Removing the /24 puts back what is still listed inside it.
    filter.add(&[v4("198.19.7.9/32")]).unwrap();
    filter.remove(&[v4("198.19.7.0/24")]).unwrap();
    assert_eq!(probe(bed, "198.19.7.9"), Probe::Dropped);
    assert_eq!(probe(bed, "198.19.7.10"), Probe::Delivered);
    // A /16 over both, then gone again.
    filter.add(&[v4("198.19.0.0/16")]).unwrap();
    assert_eq!(probe(bed, "198.19.8.2"), Probe::Dropped);
    filter.remove(&[v4("198.19.0.0/16")]).unwrap();
    assert_eq!(probe(bed, "198.19.8.2"), Probe::Delivered);
    assert_eq!(probe(bed, "198.19.8.1"), Probe::Dropped);
    assert_eq!(filter.stats().unwrap().entries_v4, 2);
    filter.teardown().unwrap();
}

#[test]
fn dir_table_rebuilds_when_its_chunks_run_out() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    for (range_max, layout) in V4_LAYOUTS {
        rebuilds_when_full(&bed, range_max, layout);
    }
}

/// With either layout: adds past what the loaded table has room for (chunks, or the range
/// table's leaves) swap in a bigger table, and nothing is lost on the way.
fn rebuilds_when_full(bed: &Testbed, range_max: usize, layout: &str) {
    let mut filter = dir_filter(bed).with_ipv4_range_max(range_max);
    let mut list = CidrList::new();
    list.extend(denied_probe_nets());
    filter.load(&list).unwrap();
    assert!(filter.backend().contains(layout), "{}", filter.backend());
    // Hosts in 20,000 different /24s (never sent to): more chunks than a small list's maps
    // hold, so an add must swap in a bigger table, and nothing may be lost on the way.
    let hosts: Vec<IpNet> = (0..20_000u32)
        .map(|i| {
            IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(
                0x2d00_0001 + (i << 8),
            )))
        })
        .collect();
    filter.add(&hosts).unwrap();
    filter.add(&[v4("198.19.9.9/32")]).unwrap();
    assert_eq!(filter.stats().unwrap().entries_v4, 20_003);
    assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
    assert_eq!(bed.probe(DENIED_V6.into()).unwrap(), Probe::Dropped);
    assert_eq!(probe(bed, "198.19.9.9"), Probe::Dropped);
    assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
    conformance::assert_kernel_agrees(&filter, &filter.held().unwrap(), "after the adds");
    filter.remove(&hosts).unwrap();
    assert_eq!(filter.stats().unwrap().entries_v4, 3);
    filter.teardown().unwrap();
    assert!(conformance::objects(&filter_tcbpf::ENGINE, bed, bed.tag().as_str()).is_empty());
}

/// The range table's kernel memory follows the list: 10,000 IPv4 entries in a few MiB,
/// where DIR-24-8 takes 64 MiB from the first entry; the same packets either way.
#[test]
fn short_ipv4_lists_take_memory_that_follows_them() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let listed = list(10_000);
    let mut memory = Vec::new();
    for (range_max, layout) in V4_LAYOUTS {
        let mut filter = dir_filter(&bed).with_ipv4_range_max(range_max);
        filter.load(&listed).unwrap();
        assert!(filter.backend().contains(layout), "{}", filter.backend());
        assert_eq!(bed.probe(DENIED_V4.into()).unwrap(), Probe::Dropped);
        assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
        conformance::assert_kernel_agrees(&filter, &listed, layout);
        memory.push(filter.stats().unwrap().kernel_memory.unwrap().bytes);
        filter.teardown().unwrap();
    }
    assert!(memory[0] <= 8 << 20, "range table: {memory:?}");
    assert!(memory[1] >= 64 << 20, "DIR-24-8: {memory:?}");
}

/// IPv6 of any prefix lengths goes to the range table: a few lengths or /16../128 alike;
/// a leaf past its 31 flip points becomes a subdirectory in the kernel; every change shows in
/// real packets, and the kernel's ranges agree with the list's.
#[test]
fn dir_table_keeps_ipv6_of_any_lengths_in_a_range_table() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let near: IpNet = "2001:2:0:1abc::/63".parse().unwrap();
    // Every other address of 2001:2:0:1000::/120 from ::2 on: 128 flip points in one /120.
    let hosts: Vec<IpNet> = (1..=64u16)
        .map(|i| format!("2001:2:0:1000::{:x}/128", i * 2).parse().unwrap())
        .collect();
    for mix in [Mix::Default, Mix::Uniform] {
        let mut listed = generate(2_000, 9, mix, &[Family::V6]);
        listed.extend(denied_probe_nets());
        let mut filter = dir_filter(&bed);
        filter.load(&listed).unwrap();
        assert!(
            filter.backend().contains("range table"),
            "{}",
            filter.backend()
        );
        assert_eq!(
            bed.probe(DENIED_V6.into()).unwrap(),
            Probe::Dropped,
            "{mix}"
        );
        assert_eq!(probe(&bed, "2001:2:0:1000::1"), Probe::Delivered, "{mix}");
        filter.add(&[near]).unwrap();
        filter.add(&hosts).unwrap();
        assert_eq!(probe(&bed, "2001:2:0:1abd::9"), Probe::Dropped, "{mix}");
        assert_eq!(probe(&bed, "2001:2:0:1000::4"), Probe::Dropped, "{mix}");
        assert_eq!(probe(&bed, "2001:2:0:1000::1"), Probe::Delivered, "{mix}");
        let mut with = listed.clone();
        with.extend([near].into_iter().chain(hosts.iter().copied()));
        conformance::assert_kernel_agrees(&filter, &with, "after the adds");
        filter.remove(&[near]).unwrap();
        filter.remove(&hosts).unwrap();
        assert_eq!(probe(&bed, "2001:2:0:1abd::9"), Probe::Delivered, "{mix}");
        assert_eq!(probe(&bed, "2001:2:0:1000::4"), Probe::Delivered, "{mix}");
        assert_eq!(
            bed.probe(DENIED_V6.into()).unwrap(),
            Probe::Dropped,
            "{mix}"
        );
        conformance::assert_kernel_agrees(&filter, &listed, "after the removes");
        filter.teardown().unwrap();
    }
}

/// Entries added with a timeout stop matching on time with no call from this process, in both
/// families; an expired longer prefix never hides a shorter one that still holds (permanent or
/// timed); the sweep deletes expired keys; a sync that keeps a timed entry makes it permanent;
/// the constant-time table refuses timeouts by name.
#[test]
fn timed_entries_expire_in_the_program() {
    testbed::needs_root!();
    use std::time::Duration;
    let host = |a: IpAddr| IpNet::from(a);
    let net = |s: &str| s.parse::<IpNet>().unwrap();
    let bed = Testbed::new().unwrap();
    let mut filter = TcbpfFilter::new(
        bed.client().clone(),
        bed.tag().clone(),
        &bed.client_link(),
        Attach::Auto,
    );
    let base = generate(1_000, 3, Mix::Default, &Family::BOTH);
    filter.load(&base).unwrap();
    for probe in [DENIED_V4, DENIED_HOST_V4] {
        assert_eq!(bed.probe(probe.into()).unwrap(), Probe::Delivered);
    }
    // DENIED_V4: a /32 for 1 s inside a /24 for 3 s. DENIED_V6: a /128 for 1 s inside a
    // permanent /64. DENIED_HOST_V4: a /32 for 1 s alone.
    filter
        .add_with_timeout(&[net("198.19.255.0/24")], Duration::from_secs(3))
        .unwrap();
    filter.add(&[IpNet::V6(testbed::DENIED_NET_V6)]).unwrap();
    let short = [
        host(DENIED_V4.into()),
        host(DENIED_V6.into()),
        host(DENIED_HOST_V4.into()),
    ];
    filter
        .add_with_timeout(&short, Duration::from_secs(1))
        .unwrap();
    let expiring = filter.expiring();
    assert_eq!(expiring.len(), 4, "{expiring:?}");
    for probe in [DENIED_V4.into(), DENIED_V6.into(), DENIED_HOST_V4.into()] {
        assert_eq!(bed.probe(probe).unwrap(), Probe::Dropped, "{probe}");
    }
    let entries = |f: &TcbpfFilter| {
        let stats = f.stats().unwrap();
        stats.entries_v4 + stats.entries_v6
    };
    let before = entries(&filter);
    std::thread::sleep(Duration::from_millis(1_300));
    // No call since: the program alone decides.
    assert_eq!(
        bed.probe(DENIED_HOST_V4.into()).unwrap(),
        Probe::Delivered,
        "an expired /32 still matched"
    );
    assert_eq!(
        bed.probe(DENIED_V4.into()).unwrap(),
        Probe::Dropped,
        "an expired /32 hid the /24 that still holds"
    );
    assert_eq!(
        bed.probe(DENIED_V6.into()).unwrap(),
        Probe::Dropped,
        "an expired /128 hid the permanent /64"
    );
    assert_eq!(entries(&filter), before, "expired keys stay until swept");
    assert_eq!(filter.sweep_expired().unwrap(), 3);
    assert_eq!(entries(&filter), before - 3);
    assert!(!filter.held().unwrap().iter().any(|n| short.contains(&n)));
    // A sync that keeps the timed /24 makes it permanent.
    let mut desired = base.clone();
    desired.extend([net("198.19.255.0/24"), IpNet::V6(testbed::DENIED_NET_V6)]);
    let report = filter.sync(&desired).unwrap();
    assert_eq!((report.added, report.removed), (1, 0), "{report:?}");
    assert!(filter.expiring().is_empty());
    std::thread::sleep(Duration::from_millis(2_000));
    assert_eq!(
        bed.probe(DENIED_V4.into()).unwrap(),
        Probe::Dropped,
        "the synced /24 expired"
    );
    conformance::timed_entries_kept_become_permanent(&bed, &mut filter);
    filter.teardown().unwrap();

    let mut dir = TcbpfFilter::new(
        bed.client().clone(),
        bed.tag().clone(),
        &bed.client_link(),
        Attach::Auto,
    )
    .with_table(Table::Dir24);
    dir.load(&base).unwrap();
    let err = dir
        .add_with_timeout(&short, Duration::from_secs(1))
        .unwrap_err();
    assert!(
        matches!(err, filter_core::Error::Unsupported { .. }) && err.to_string().contains("bit"),
        "{err}"
    );
    dir.teardown().unwrap();
    assert!(conformance::objects(&filter_tcbpf::ENGINE, &bed, bed.tag().as_str()).is_empty());
}

/// The denied probe gets through within a second of a teardown: a link goes with its last
/// descriptor, which a child forked meanwhile by another test's thread holds until it execs.
fn released(bed: &Testbed) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while bed.probe(DENIED_V4.into()).unwrap() != Probe::Delivered {
        assert!(
            std::time::Instant::now() < until,
            "still dropped after teardown"
        );
    }
}

/// A filter on the testbed's client cgroup, hooked the way `attach` says.
fn on_the_client_cgroup(bed: &Testbed, attach: Attach) -> TcbpfFilter {
    let cgroup = bed.workload().expect("cgroup v2 is mounted here");
    TcbpfFilter::at(
        bed.client().clone(),
        bed.tag().clone(),
        &filter_core::Target::cgroup(cgroup),
        attach,
    )
    .unwrap()
}

/// On a cgroup, the filter sees the sockets of the cgroup's processes and no one else's: the
/// testbed's probes (made in its client cgroup) to a denied address are refused, the same
/// probe from this process (outside the cgroup, same namespace) goes through, and with the
/// filter gone both pass.
#[test]
fn a_cgroup_filter_sees_its_cgroup_only() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let cgroup = bed
        .workload()
        .expect("cgroup v2 is mounted here")
        .to_owned();
    for table in [Table::LpmTrie, Table::Dir24] {
        let mut filter = on_the_client_cgroup(&bed, Attach::CGROUP).with_table(table);
        filter.load(&list(1_000)).unwrap();
        let live = conformance::objects(&filter_tcbpf::ENGINE, &bed, bed.tag().as_str());
        assert!(!live.is_empty(), "{table:?}: the link is not visible");
        for denied in [IpAddr::from(DENIED_V4), DENIED_V6.into()] {
            assert_eq!(bed.probe(denied).unwrap(), Probe::Dropped, "{table:?}");
            assert_eq!(
                bed.probe_outside_workload(denied).unwrap(),
                Probe::Delivered,
                "{table:?}: a socket outside the cgroup was filtered"
            );
        }
        assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
        filter.teardown().unwrap();
        released(&bed);
        assert!(conformance::objects(&filter_tcbpf::ENGINE, &bed, bed.tag().as_str()).is_empty());
    }
    // An interface target is refused by name, before anything is loaded.
    let err = TcbpfFilter::at(
        bed.client().clone(),
        bed.tag().clone(),
        &filter_core::Target::egress(bed.client_link()),
        Attach::CGROUP,
    )
    .err()
    .expect("a cgroup attach needs a cgroup");
    assert!(err.to_string().contains("hooks a cgroup v2"), "{err}");
    bed.remove().unwrap();
    assert!(!cgroup.exists(), "the testbed's cgroup is left");
}

/// With the connect-time hooks, the cgroup's `connect()` to a denied address fails at once
/// with EPERM (no packet is sent), its unconnected UDP sends to one are refused, and an
/// allowed address is reached as before; outside the cgroup nothing changes.
#[test]
fn connect_time_filter_refuses_denied_connects() {
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let mut filter = on_the_client_cgroup(&bed, Attach::CONNECT);
    filter.load(&list(1_000)).unwrap();
    for denied in [IpAddr::from(DENIED_V4), DENIED_V6.into()] {
        let refused = bed
            .client_tcp_connect((denied, 9).into())
            .expect_err("connect to a denied address");
        assert!(
            refused.to_string().contains("Operation not permitted"),
            "{denied}: {refused}"
        );
        assert_eq!(bed.probe(denied).unwrap(), Probe::Dropped, "{denied}");
        assert_eq!(
            bed.probe_outside_workload(denied).unwrap(),
            Probe::Delivered,
            "{denied}: outside the cgroup"
        );
    }
    // An allowed address is connected to as before: the server refuses port 9 itself.
    let answered = bed
        .client_tcp_connect((ALLOWED_V4, 9).into())
        .expect_err("nothing listens on port 9");
    assert!(
        answered.to_string().contains("Connection refused"),
        "{answered}"
    );
    assert_eq!(bed.probe(ALLOWED_V4.into()).unwrap(), Probe::Delivered);
    filter.teardown().unwrap();
    released(&bed);
}

/// With the connect-time hooks, a TCP connection the cgroup opened before its address was
/// denied is closed when the address is added (a BPF socket iterator calling
/// `bpf_sock_destroy`): the owner's next read fails. A connection to the same address from a
/// process outside the cgroup carries on, and so does the cgroup's connection to an allowed
/// address.
#[test]
fn connect_time_filter_closes_connections_opened_before_the_deny() {
    use std::io::{Read, Write};
    testbed::needs_root!();
    let bed = Testbed::new().unwrap();
    let listener = bed
        .server()
        .run(|| std::net::TcpListener::bind(("0.0.0.0", 7070)))
        .unwrap()
        .unwrap();
    let mut filter = on_the_client_cgroup(&bed, Attach::CONNECT);
    filter
        .load(&generate(1_000, 9, Mix::Default, &Family::BOTH))
        .unwrap();
    let mut inside = bed.client_tcp_connect((DENIED_V4, 7070).into()).unwrap();
    let mut allowed = bed.client_tcp_connect((ALLOWED_V4, 7070).into()).unwrap();
    let mut outside = bed
        .client()
        .run(|| std::net::TcpStream::connect((DENIED_V4, 7070)))
        .unwrap()
        .unwrap();
    let accepted: Vec<_> = (0..3).map(|_| listener.accept().unwrap().0).collect();
    for stream in [&mut inside, &mut allowed, &mut outside] {
        stream.write_all(b"before").unwrap();
    }
    // Open connections of the cgroup to allowed addresses, for the walk to pass over.
    let (others, backlog): (Vec<_>, Vec<_>) = (0..100)
        .map(|_| {
            let stream = bed.client_tcp_connect((ALLOWED_V4, 7070).into()).unwrap();
            (stream, listener.accept().unwrap().0)
        })
        .unzip();
    filter.add(&denied_probe_nets()).unwrap();
    assert!(filter.warnings().is_empty(), "{:?}", filter.warnings());
    eprintln!(
        "closing took {:?} with {} sockets in the namespace",
        filter.closing_time().unwrap(),
        2 * (others.len() + 3)
    );
    // Again, with the kernel's layout already read.
    filter.add(&["203.0.113.0/24".parse().unwrap()]).unwrap();
    eprintln!("closing took {:?} again", filter.closing_time().unwrap());
    let mut byte = [0u8; 1];
    inside
        .set_read_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    let closed = inside.read(&mut byte);
    assert!(
        matches!(&closed, Err(e) if e.raw_os_error() == Some(libc_econnaborted())),
        "the cgroup's connection to a denied address: {closed:?}"
    );
    for stream in [&mut allowed, &mut outside] {
        stream.write_all(b"after").unwrap();
    }
    drop((accepted, backlog, others));
    filter.teardown().unwrap();
}

/// `ECONNABORTED`, what a destroyed socket's owner reads.
fn libc_econnaborted() -> i32 {
    103
}
