//! One CSV file per metric, one row per run (every sample, not only medians).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use super::Sweep;

fn num(v: &Value) -> String {
    v.as_f64().map_or_else(String::new, |x| format!("{x}"))
}

/// Writes load.csv, send_path.csv and program_cost.csv into `dir`.
pub fn write_all(sweep: &Sweep, dir: &Path) -> Result<()> {
    let mut load = String::from(
        "filter,entries,status,load_s,enforcement_s,enforcement_resolution_us,teardown_s,kernel_memory_bytes,kernel_memory_source,kernel_allocations_delta_bytes\n",
    );
    let mut send = String::from(
        "filter,entries,destinations,added_ns,added_ns_min,added_ns_max,ratio,ratio_min,ratio_max,no_filter_ns\n",
    );
    let mut cost = String::from("filter,entries,case,median_ns,min_ns,max_ns,repeat,rounds\n");
    for run in &sweep.runs {
        let f = run.figures();
        let memory = &f["stats"]["kernel_memory"];
        let _ = writeln!(
            load,
            "{},{},{},{},{},{},{},{},\"{}\",{}",
            run.filter,
            run.size,
            run.status,
            num(&f["load_seconds"]),
            num(&f["enforcement_seconds"]),
            num(&f["enforcement_resolution_us"]),
            num(&f["teardown_seconds"]),
            num(&memory["bytes"]),
            memory["source"].as_str().unwrap_or_default(),
            num(&f["kernel_allocations_delta_bytes"]),
        );
        for case in ["none_vs_none", "one_destination", "many_destinations"] {
            let p = &f["send_path"][case];
            if p.is_null() {
                continue;
            }
            let _ = writeln!(
                send,
                "{},{},{case},{},{},{},{},{},{},{}",
                run.filter,
                run.size,
                num(&p["added_ns"]),
                num(&p["added_ns_min"]),
                num(&p["added_ns_max"]),
                num(&p["ratio"]),
                num(&p["ratio_min"]),
                num(&p["ratio_max"]),
                num(&p["baseline_ns"]),
            );
        }
        for c in f["program_costs"].as_array().into_iter().flatten() {
            let _ = writeln!(
                cost,
                "{},{},\"{}\",{},{},{},{},{}",
                run.filter,
                run.size,
                c["case"].as_str().unwrap_or_default(),
                num(&c["median_ns"]),
                num(&c["min_ns"]),
                num(&c["max_ns"]),
                num(&c["repeat"]),
                num(&c["rounds"]),
            );
        }
    }
    std::fs::write(dir.join("load.csv"), load)?;
    std::fs::write(dir.join("send_path.csv"), send)?;
    std::fs::write(dir.join("program_cost.csv"), cost)?;
    Ok(())
}
