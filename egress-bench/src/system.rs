//! Facts about the machine, for records.

use std::fs;

use records::{human_bytes, human_size};

pub use records::{AllocationDelta, Environment, PeakMemory};

/// The machine this runs on.
pub fn environment() -> Environment {
    let tool = |program: &str, arg: &str| {
        filter_core::run_command(std::process::Command::new(program).arg(arg))
            .map_or_else(|_| "not installed".to_owned(), |v| v.trim().to_owned())
    };
    Environment {
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |s| s.trim().to_owned()),
        cpus: crate::sys::cpu_count(),
        iptables: tool("iptables", "--version"),
        ipset: tool("ipset", "version"),
        egress_bench: env!("CARGO_PKG_VERSION").into(),
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

/// A reading of [`kernel_allocations`] taken before a load, with how much the figure moves
/// by itself on this machine (the most it changed over a few idle readings).
#[derive(Debug, Clone, Copy)]
pub struct AllocationBaseline {
    bytes: u64,
    noise: u64,
}

/// The least change across a load that is taken as the filter's own: per-CPU slab caches
/// and page-granular accounting move the figure by this much with nothing happening.
const ALLOCATION_FLOOR: u64 = 1 << 20;

impl AllocationBaseline {
    /// Five readings 20 ms apart; the baseline is the last, the noise their range.
    pub fn read() -> Option<Self> {
        let mut readings = Vec::with_capacity(5);
        for i in 0..5 {
            if i > 0 {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            readings.push(kernel_allocations()?);
        }
        let (min, max) = (readings.iter().min()?, readings.iter().max()?);
        Some(Self {
            bytes: *readings.last()?,
            noise: max - min,
        })
    }

    /// The change to `after`, when it can be taken as what the load allocated: positive and
    /// above four times the idle noise (and 1 MiB); otherwise why not.
    pub fn delta_to(&self, after: u64) -> AllocationDelta {
        let raw = i64::try_from(after).unwrap_or(i64::MAX) - i64::try_from(self.bytes).unwrap_or(0);
        let threshold = (4 * self.noise).max(ALLOCATION_FLOOR);
        let untrusted = if raw < 0 {
            Some(format!(
                "not a figure: the kernel's allocations fell by {} across the load \
                 (memory freed elsewhere outweighed the filter's)",
                human_size(raw.unsigned_abs())
            ))
        } else if raw.unsigned_abs() < threshold {
            Some(format!(
                "not a figure: {} is below the noise (the idle reading moved {}; trusted \
                 from {})",
                human_bytes(raw, true),
                human_size(self.noise),
                human_size(threshold)
            ))
        } else {
            None
        };
        AllocationDelta {
            bytes: untrusted.is_none().then_some(raw),
            raw_bytes: raw,
            noise_bytes: self.noise,
            untrusted,
        }
    }
}

/// Peak resident memory of this process, from `getrusage(RUSAGE_SELF)`.
pub fn peak_memory() -> PeakMemory {
    use nix::sys::resource::{UsageWho, getrusage};
    let peak = |who| {
        getrusage(who)
            .ok()
            .map(|u| u64::try_from(u.max_rss()).unwrap_or(0) * 1024)
    };
    PeakMemory {
        egress_bench_bytes: peak(UsageWho::RUSAGE_SELF).unwrap_or(0),
        children_bytes: peak(UsageWho::RUSAGE_CHILDREN).filter(|&b| b > 0),
    }
}

#[cfg(test)]
mod allocation_tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn baseline(noise: u64) -> AllocationBaseline {
        AllocationBaseline {
            bytes: 1000 * MIB,
            noise,
        }
    }

    #[test]
    fn a_fall_is_not_a_figure() {
        let delta = baseline(0).delta_to(936 * MIB);
        assert_eq!((delta.bytes, delta.raw_bytes), (None, -64 * MIB as i64));
        assert!(delta.untrusted.unwrap().contains("fell by 64.0 MiB"));
    }

    #[test]
    fn a_change_within_the_noise_is_not_a_figure() {
        let delta = baseline(2 * MIB).delta_to(1005 * MIB);
        assert_eq!(delta.bytes, None);
        assert!(delta.untrusted.unwrap().contains("below the noise"));
        let delta = baseline(0).delta_to(1000 * MIB + MIB / 2);
        assert_eq!(delta.bytes, None, "under the 1 MiB floor");
        // Small figures read in KiB, not as "0.0 MiB".
        let why = delta.untrusted.unwrap();
        assert!(
            why.contains("+512 KiB") && why.contains("moved 0 KiB"),
            "{why}"
        );
    }

    #[test]
    fn a_clear_rise_is_the_figure() {
        let delta = baseline(2 * MIB).delta_to(1590 * MIB);
        assert_eq!(delta.bytes, Some(590 * MIB as i64));
        assert!(delta.untrusted.is_none());
    }
}
