//! The text exporter: one run's record as the lines `egress-bench run` prints, section by
//! section, beside the sweep's CSV, markdown and plot exporters.

use std::fmt::Write as _;

use filter_core::count;
use records::{
    AllocationDelta, Figures, Record, SendPath, Traffic, Updates, human_bytes, human_size,
};

/// `writeln!` into the exporter's string (which cannot fail).
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// What a record says, for a person.
pub fn render(record: &Record) -> String {
    let mut out = String::new();
    header(&mut out, record);
    if let Some(f) = &record.figures {
        figures(&mut out, f);
        if let Some(sp) = &f.send_path {
            send_path(&mut out, sp);
        }
        if let Some(u) = &f.updates {
            updates(&mut out, u);
        }
        if let Some(t) = &f.traffic {
            traffic(&mut out, t);
        }
        allocations(&mut out, f.kernel_allocations.as_ref());
    }
    out
}

/// The list, the filter, egress-bench's memory and the probes.
fn header(out: &mut String, record: &Record) {
    let list = &record.list;
    line!(
        out,
        "{}: {} ({}{}; {} distinct, {}, {} covered, {}; {:.2}% of the IPv4 space denied) [{}]",
        record.filter,
        count(list.loaded_entries as u64, "entry", "entries"),
        list.source,
        list.mix.map_or_else(String::new, |m| format!(
            " mix {m} seed {}",
            list.seed.unwrap_or(0)
        )),
        list.stats.distinct,
        count(list.stats.duplicates, "duplicate", "duplicates"),
        list.stats.covered,
        count(
            list.stats.host_bits_normalised,
            "entry with host bits normalised",
            "entries with host bits normalised"
        ),
        list.stats.v4_space_denied * 100.0,
        record.backend,
    );
    for warning in &record.warnings {
        line!(out, "  warning: {warning}");
    }
    line!(
        out,
        "  peak memory of egress-bench: {}",
        human_size(record.peak_memory.egress_bench_bytes)
    );
    for probe in &record.verdict.probes {
        let mark = if probe.expected == probe.observed {
            "ok"
        } else {
            "WRONG"
        };
        line!(
            out,
            "  probe {:<22} {:<9} (expected {}) {mark}",
            probe.address,
            probe.observed,
            probe.expected
        );
    }
}

/// Load, enforcement and teardown times, kernel memory and the program's own cost.
fn figures(out: &mut String, f: &Figures) {
    let enforcement = match (
        f.enforcement_seconds,
        f.enforcement_resolution_us,
        f.enforcement_max_gap_us,
    ) {
        (Some(s), Some(every), Some(gap)) => {
            format!("enforced after {s:.3} s (probe every {every:.0} us, longest gap {gap:.0} us)")
        }
        (None, Some(every), _) => format!("never enforced (probe every {every:.0} us)"),
        _ => "enforcement not watched".to_owned(),
    };
    line!(
        out,
        "  load {:.3} s, {enforcement}, teardown {:.3} s",
        f.load_seconds,
        f.teardown_seconds
    );
    if let Some(mem) = &f.stats.kernel_memory {
        line!(
            out,
            "  kernel memory {} ({})",
            human_size(mem.bytes),
            mem.source
        );
    }
    if let Some(count) = &f.kernel_count {
        let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
        line!(
            out,
            "  read back from the kernel: {} / {} {:?} (IPv4 / IPv6){}",
            show(count.read[0]),
            show(count.read[1]),
            count.unit,
            if count.agrees() {
                ", as the engine's bookkeeping says"
            } else {
                ", NOT what the engine's bookkeeping says"
            }
        );
    }
    if !f.program_costs.is_empty() {
        line!(
            out,
            "  program cost per run (BPF_PROG_TEST_RUN, median of rounds [min..max]):"
        );
        for c in &f.program_costs {
            line!(
                out,
                "    {:<40} {:>8.1} ns [{:.1}..{:.1}]",
                c.case,
                c.median_ns,
                c.min_ns,
                c.max_ns
            );
        }
    }
}

/// What the filter adds per packet on the send path.
fn send_path(out: &mut String, sp: &SendPath) {
    line!(
        out,
        "  send path, 64-byte UDP, added per packet (median of runs [min..max]), ratio to no filter:"
    );
    let during = sp.during_updates.as_ref().map(|d| {
        (
            &d.paired,
            format!("Many, during {:.0} updates/s", d.updates_per_second),
        )
    });
    let rows = [
        (
            &sp.none_vs_none,
            "none vs none (the method's zero)".to_owned(),
        ),
        (&sp.one_destination, "One destination(s)".to_owned()),
        (&sp.many_destinations, "Many destination(s)".to_owned()),
    ];
    let new_flows = sp
        .new_flows
        .as_ref()
        .map(|p| (p, "New flow per packet".to_owned()));
    let connects = sp
        .connects
        .as_ref()
        .map(|c| (c, "UDP connect(), per call".to_owned()))
        .into_iter()
        .chain(
            sp.tcp_connects
                .as_ref()
                .map(|c| (c, "TCP connect() and close, per call".to_owned())),
        );
    let count = rows.len() + usize::from(during.is_some()) + usize::from(new_flows.is_some());
    for (i, (p, label)) in rows
        .into_iter()
        .chain(during)
        .chain(new_flows)
        .chain(connects)
        .enumerate()
    {
        let unit = if i < count { "packet" } else { "call" };
        line!(
            out,
            "    {label:<34} {:>+9.1} ns [{:+.1}..{:+.1}]  x{:.3} [{:.3}..{:.3}]  (no filter: {:.0} ns/{unit})",
            p.added_ns,
            p.added_ns_min,
            p.added_ns_max,
            p.ratio,
            p.ratio_min,
            p.ratio_max,
            p.baseline_ns
        );
    }
    for w in &sp.warnings {
        line!(out, "  warning: {w}");
    }
}

/// The live-update feed.
fn updates(out: &mut String, u: &Updates) {
    line!(
        out,
        "  updates ({} requested, {} per call): {} in {:.1} s = {:.0} updates/s; call p50 {:.1} us, p99 {:.1} us, max {:.0} us",
        u.requested,
        u.batch,
        u.updates,
        u.seconds,
        u.updates_per_second,
        u.call_us[0],
        u.call_us[1],
        u.call_us[2]
    );
    if let Some(e) = u.enforcement_us {
        line!(
            out,
            "    an added network is enforced {e:.0} us after the call starts (median)"
        );
    }
    line!(
        out,
        "    violations: {} ({} of {} packets to {} got through, {} of {} to {} were lost)",
        u.violations,
        u.stays_denied.delivered,
        u.stays_denied.sent,
        u.stays_denied.address,
        u.stays_allowed.sent - u.stays_allowed.delivered,
        u.stays_allowed.sent,
        u.stays_allowed.address
    );
}

/// Traffic with and without the filter.
fn traffic(out: &mut String, t: &Traffic) {
    line!(
        out,
        "  traffic: median of {} N-A-A-N rounds [min..max], with the filter (A) and a twin testbed without (N); {}",
        t.throughput.first().map_or(0, |x| x.rounds),
        t.pinning
    );
    for x in t.none_vs_none.iter().chain(&t.throughput) {
        let offered = x
            .offered_bps
            .map_or_else(|| "max".into(), |b| format!("{:.1} Gbit/s", b / 1e9));
        let label = if std::ptr::eq(x, t.none_vs_none.as_ref().map_or(std::ptr::null(), |n| n)) {
            "none vs none".to_owned()
        } else {
            format!("{} B, {offered}", x.payload_bytes)
        };
        line!(
            out,
            "  UDP {label:<22} A {} Gbit/s, {} packets/s, CPU {} ns/packet",
            x.filter.received_gbps.show(3),
            x.filter.received_pps.show(0),
            x.filter.cpu_ns_per_packet.show(0),
        );
        if let Some(none) = &x.none {
            line!(
                out,
                "  {:<26} N {} Gbit/s, {} packets/s, CPU {} ns/packet",
                "",
                none.received_gbps.show(3),
                none.received_pps.show(0),
                none.cpu_ns_per_packet.show(0),
            );
        }
        if let (Some(pps), Some(cpu)) = (&x.ratio_pps, &x.ratio_cpu) {
            line!(
                out,
                "  {:<26} A/N packets/s {}; CPU/packet {}",
                "",
                pps.ratio(),
                cpu.ratio()
            );
        }
    }
    for l in &t.latency {
        line!(
            out,
            "  {} round trip (us), A: p50 {}  p99 {}  p99.9 {}  max {}  ({} round trips)",
            l.protocol,
            l.filter.p50_us.show(1),
            l.filter.p99_us.show(1),
            l.filter.p999_us.show(1),
            l.filter.max_us.show(0),
            l.filter.round_trips
        );
        if let (Some(none), Some(p50), Some(p99)) = (&l.none, &l.ratio_p50, &l.ratio_p99) {
            line!(
                out,
                "  {} round trip (us), N: p50 {}  p99 {}; A/N p50 {}, p99 {}",
                l.protocol,
                none.p50_us.show(1),
                none.p99_us.show(1),
                p50.ratio(),
                p99.ratio()
            );
        }
    }
    if let Some(i) = &t.iperf3 {
        line!(
            out,
            "  iperf3 UDP cross-check: {:.3} Gbit/s, {} % lost",
            i["bits_per_second"].as_f64().unwrap_or(0.0) / 1e9,
            i["lost_percent"].as_f64().unwrap_or(f64::NAN)
        );
    }
}

/// The kernel's allocations across the load, or why they are no figure.
fn allocations(out: &mut String, delta: Option<&AllocationDelta>) {
    match delta {
        Some(AllocationDelta {
            bytes: Some(delta), ..
        }) => line!(
            out,
            "  kernel allocations changed by {} across the load (slab+vmalloc+percpu, approximate)",
            human_bytes(*delta, true)
        ),
        Some(AllocationDelta {
            untrusted: Some(why),
            ..
        }) => line!(out, "  kernel allocations across the load: {why}"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    /// The exporter renders a real record's sections: the probes, the program's own cost by
    /// case, the send path, traffic and memory.
    #[test]
    fn a_record_renders_section_by_section() {
        let record: records::Record = serde_json::from_str(include_str!(
            "../../../bench/records/tests/fixtures/record.json"
        ))
        .unwrap();
        let text = render(&record);
        for expected in [
            "probe ",
            "empty program (floor)",
            "cold: per random IPv4 lookup",
            "kernel memory ",
            "send path, 64-byte UDP",
            "traffic: median of",
            "round trip (us)",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
    }
}
