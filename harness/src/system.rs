//! Facts about the machine, for records.

use std::fs;

use serde::Serialize;

/// The machine a record was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub kernel: String,
    pub cpus: usize,
    pub iptables: String,
    pub ipset: String,
    pub egress_bench: &'static str,
}

impl Environment {
    pub fn read() -> Self {
        let tool = |program: &str, arg: &str| {
            filter_core::run_command(std::process::Command::new(program).arg(arg))
                .map_or_else(|_| "not installed".to_owned(), |v| v.trim().to_owned())
        };
        Self {
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned()),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            iptables: tool("iptables", "--version"),
            ipset: tool("ipset", "version"),
            egress_bench: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Kernel memory that filters can take, from `/proc/meminfo`: slab, vmalloc and per-CPU
/// allocations, in bytes. Differences between two readings are approximate: anything else
/// the kernel allocates meanwhile counts too.
pub fn kernel_allocations() -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let mut total = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        if let (Some(key), Some(value)) = (fields.next(), fields.next())
            && matches!(key, "Slab:" | "VmallocUsed:" | "Percpu:")
        {
            total += value.parse::<u64>().ok()? * 1024;
        }
    }
    Some(total)
}

/// Peak resident memory of this process, in bytes, from `getrusage(RUSAGE_SELF)`. (Children
/// are left out: a child's peak counts the pages it shared with this process before `exec`.)
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PeakMemory {
    pub egress_bench_bytes: u64,
}

impl PeakMemory {
    pub fn read() -> Self {
        let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
        Self {
            egress_bench_bytes: usage.map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0) * 1024),
        }
    }
}
