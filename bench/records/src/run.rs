//! One run of one filter with one list.

use filter_core::generate::Mix;
use filter_core::{Family, FilterStats, ListStats, ProgramCost};
use serde::{Deserialize, Serialize};

use crate::machine::{AllocationDelta, Environment, PeakMemory, TwoHosts};
use crate::{SendPath, Traffic, Updates};

/// One run of one filter with one list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The filter's registry name (`ipset`, `tcbpf-dir`, ...).
    pub filter: String,
    /// How the filter reached the kernel, as it reported after the load.
    pub backend: String,
    /// What the filter could not do as asked (a fallback to a slower path): its figures are
    /// not those of the path its name promises.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Two-host mode: the server and the client interface toward it (`None`: the testbed).
    pub two_hosts: Option<TwoHosts>,
    /// The run's id (the kernel objects' tag).
    pub run_id: String,
    /// When the run ended, seconds since the Unix epoch.
    pub unix_time: u64,
    /// The list loaded.
    pub list: ListInfo,
    /// Whether the filter did its job.
    pub verdict: Verdict,
    /// Present only when the verdict is ok: figures of a filter that does not work are
    /// not reported.
    pub figures: Option<Figures>,
    /// The machine.
    pub environment: Environment,
    /// Peak resident memory of egress-bench over the whole run.
    pub peak_memory: PeakMemory,
}

/// Whether the filter did its job, probe by probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    /// Every probe saw what it expected.
    pub ok: bool,
    /// The probes.
    pub probes: Vec<ProbeResult>,
}

/// One probe: an address, what should happen to packets sent there, and what did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    /// The address probed.
    pub address: String,
    /// What should happen.
    pub expected: ProbeOutcome,
    /// What did.
    pub observed: ProbeOutcome,
}

/// What happened to a probe's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeOutcome {
    /// The server answered.
    Delivered,
    /// No answer came back.
    Dropped,
    /// The send found no path (no route): the path is broken, not filtered.
    Unreachable,
}

impl std::fmt::Display for ProbeOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Self::Delivered => "delivered",
            Self::Dropped => "dropped",
            Self::Unreachable => "unreachable",
        })
    }
}

/// What the run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// Wall-clock time of the filter's load call.
    pub load_seconds: f64,
    /// From the start of the load until a probe to a denied address stopped getting through.
    pub enforcement_seconds: Option<f64>,
    /// The probe stream's median gap between packets: the resolution of enforcement
    /// (`None` where no stream watched the load: two-host runs).
    pub enforcement_resolution_us: Option<f64>,
    /// The probe stream's longest gap.
    pub enforcement_max_gap_us: Option<f64>,
    /// Wall-clock time of the filter's teardown call.
    pub teardown_seconds: f64,
    /// What the filter reports: entries, counters, and its own kernel memory figure.
    pub stats: FilterStats,
    /// What the kernel holds, read back from it, against the engine's bookkeeping (lists
    /// up to [`KERNEL_COUNT_MAX`] entries: it walks every entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_count: Option<filter_core::KernelCount>,
    /// The filter program's own time per run, from BPF_PROG_TEST_RUN (eBPF filters only):
    /// the empty program (the method's floor), hit and miss per family, and cold lookups.
    pub program_costs: Vec<ProgramCost>,
    /// What the filter adds to the cost of sending a packet (paired rounds through sinks),
    /// when asked for with `--send-path`.
    pub send_path: Option<SendPath>,
    /// Traffic through the filter on the testbed (`--traffic`).
    pub traffic: Option<Traffic>,
    /// Live updates applied while probes watched (`--updates`).
    pub updates: Option<Updates>,
    /// Change in the kernel's slab + vmalloc + per-CPU memory across the load (approximate):
    /// the change as read, its noise, and the figure when it can be trusted (older records
    /// also carry it as `kernel_allocations_delta_bytes`, which readers now skip).
    pub kernel_allocations: Option<AllocationDelta>,
}

/// The largest list whose kernel state a run reads back ([`Figures::kernel_count`]): the walk
/// took 7.6 s for nftables and 1.6 s for tcbpf at 1M entries here (more than their loads),
/// so past this it would weigh on the run; the conformance suite checks every engine anyway.
pub const KERNEL_COUNT_MAX: usize = 200_000;

/// Which address families a run loads and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Families {
    /// IPv4 only.
    #[value(name = "4")]
    V4,
    /// IPv6 only.
    #[value(name = "6")]
    V6,
    /// Both.
    Both,
}

impl Figures {
    /// The trusted change in kernel allocations across the load, in bytes.
    pub fn kernel_allocations_bytes(&self) -> Option<i64> {
        self.kernel_allocations.as_ref().and_then(|a| a.bytes)
    }
}

impl Families {
    /// The families, IPv4 first.
    pub fn list(self) -> &'static [Family] {
        match self {
            Families::V4 => &[Family::V4],
            Families::V6 => &[Family::V6],
            Families::Both => &Family::BOTH,
        }
    }
}

/// What a record says about its list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListInfo {
    /// `generated` or the file read.
    pub source: String,
    /// Entries asked for per family (`--rules`); the generator gives that many distinct
    /// networks unless the mix runs out of them.
    pub requested: Option<usize>,
    /// The generator's seed.
    pub seed: Option<u64>,
    /// The generator's prefix-length mix.
    pub mix: Option<Mix>,
    /// The families loaded.
    pub families: Families,
    /// Counts before the probe entries were added.
    pub stats: ListStats,
    /// Whether the list was aggregated before the load.
    pub aggregated: bool,
    /// Entries left out because they covered the testbed's own addresses.
    pub excluded_conflicting: usize,
    /// Deliberate entries the harness added so that probes can prove the filter blocks.
    pub probe_entries: Vec<String>,
    /// Entries handed to the filter.
    pub loaded_entries: usize,
}
