//! One CSV file per metric, one row per run (every sample, not only medians).

use std::fmt::Write as _;
use std::path::Path;

use super::{SendCase, Sweep, figures, send_path};
use anyhow::Result;

fn num(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(String::new, |x| format!("{x}"))
}

/// Writes load.csv, send_path.csv, program_cost.csv and traffic.csv into `dir`.
///
/// # Errors
/// When a file cannot be written.
pub fn write_all(sweep: &Sweep, dir: &Path) -> Result<()> {
    let mut load = String::from(
        "filter,entries,status,error,load_s,enforcement_s,enforcement_resolution_us,teardown_s,kernel_memory_bytes,kernel_memory_source,kernel_allocations_delta_bytes\n",
    );
    let mut send = String::from(
        "filter,entries,destinations,added_ns,added_ns_min,added_ns_max,ratio,ratio_min,ratio_max,no_filter_ns\n",
    );
    let mut cost = String::from("filter,entries,case,median_ns,min_ns,max_ns,repeat,rounds\n");
    let mut traffic = String::from(
        "filter,entries,case,side,rounds,flows,gbps,gbps_min,gbps_max,pps,pps_min,pps_max,cpu_ns_per_packet,cpu_min,cpu_max,ratio_pps,ratio_pps_min,ratio_pps_max\n",
    );
    for run in &sweep.runs {
        let f = figures(run);
        let memory = f.and_then(|f| f.stats.kernel_memory.as_ref());
        let status = serde_json::to_value(run.status)?;
        let _ = writeln!(
            load,
            "{},{},{},\"{}\",{},{},{},{},{},\"{}\",{}",
            run.filter,
            run.size,
            status.as_str().unwrap_or_default(),
            run.error.as_deref().unwrap_or_default().replace('"', "'"),
            num(f.map(|f| f.load_seconds)),
            num(f.and_then(|f| f.enforcement_seconds)),
            num(f.and_then(|f| f.enforcement_resolution_us)),
            num(f.map(|f| f.teardown_seconds)),
            num(memory.map(|m| m.bytes as f64)),
            memory.map(|m| m.source.to_string()).unwrap_or_default(),
            num(f.and_then(|f| f.kernel_allocations_bytes().map(|b| b as f64))),
        );
        let Some(f) = f else {
            continue;
        };
        for case in SendCase::ALL {
            let Some(p) = send_path(f, case) else {
                continue;
            };
            let _ = writeln!(
                send,
                "{},{},{},{},{},{},{},{},{},{}",
                run.filter,
                run.size,
                case.name(),
                num(Some(p.added_ns)),
                num(Some(p.added_ns_min)),
                num(Some(p.added_ns_max)),
                num(Some(p.ratio)),
                num(Some(p.ratio_min)),
                num(Some(p.ratio_max)),
                num(Some(p.baseline_ns)),
            );
        }
        for c in &f.program_costs {
            let _ = writeln!(
                cost,
                "{},{},\"{}\",{},{},{},{},{}",
                run.filter, run.size, c.case, c.median_ns, c.min_ns, c.max_ns, c.repeat, c.rounds,
            );
        }
        let Some(t) = &f.traffic else {
            continue;
        };
        let cases = t
            .none_vs_none
            .iter()
            .map(|x| ("none_vs_none".to_owned(), x))
            .chain(t.throughput.iter().map(|x| {
                let rate = x
                    .offered_bps
                    .map_or_else(|| "max".into(), |b| format!("{b}bps"));
                (format!("{}B_{rate}", x.payload_bytes), x)
            }));
        for (case, x) in cases {
            for (side_name, side) in [("filter", Some(&x.filter)), ("none", x.none.as_ref())] {
                let Some(side) = side else {
                    continue;
                };
                let ratio = x.ratio_pps.filter(|_| side_name == "filter");
                let _ = writeln!(
                    traffic,
                    "{},{},{case},{side_name},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    run.filter,
                    run.size,
                    x.rounds,
                    x.flows,
                    num(Some(side.received_gbps.median)),
                    num(Some(side.received_gbps.min)),
                    num(Some(side.received_gbps.max)),
                    num(Some(side.received_pps.median)),
                    num(Some(side.received_pps.min)),
                    num(Some(side.received_pps.max)),
                    num(Some(side.cpu_ns_per_packet.median)),
                    num(Some(side.cpu_ns_per_packet.min)),
                    num(Some(side.cpu_ns_per_packet.max)),
                    num(ratio.map(|r| r.median)),
                    num(ratio.map(|r| r.min)),
                    num(ratio.map(|r| r.max)),
                );
            }
        }
    }
    std::fs::write(dir.join("load.csv"), load)?;
    std::fs::write(dir.join("send_path.csv"), send)?;
    std::fs::write(dir.join("program_cost.csv"), cost)?;
    std::fs::write(dir.join("traffic.csv"), traffic)?;
    Ok(())
}
