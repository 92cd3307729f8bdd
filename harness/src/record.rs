//! The JSON record of one run.

use filter_core::{FilterStats, ProgramCost};
use serde::{Deserialize, Serialize};

use crate::list::ListInfo;
use crate::system::Environment;

/// One run of one filter with one list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub filter: String,
    pub backend: String,
    /// Two-host mode: the server and the client interface toward it (`None`: the testbed).
    pub two_hosts: Option<crate::remote::TwoHosts>,
    pub run_id: String,
    pub unix_time: u64,
    pub list: ListInfo,
    pub verdict: Verdict,
    /// Present only when the verdict is ok: figures of a filter that does not work are
    /// not reported.
    pub figures: Option<Figures>,
    pub environment: Environment,
    /// Peak resident memory of egress-bench over the whole run.
    pub peak_memory: crate::system::PeakMemory,
}

/// Whether the filter did its job, probe by probe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub ok: bool,
    pub probes: Vec<ProbeResult>,
}

/// One probe: an address, what should happen to packets sent there, and what did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProbeResult {
    pub address: String,
    pub expected: String,
    pub observed: String,
}

/// What the run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figures {
    /// Wall-clock time of the filter's load call.
    pub load_seconds: f64,
    /// From the start of the load until a probe to a denied address stopped getting through.
    pub enforcement_seconds: Option<f64>,
    /// The probe stream's median gap between packets: the resolution of enforcement.
    pub enforcement_resolution_us: f64,
    /// The probe stream's longest gap.
    pub enforcement_max_gap_us: f64,
    /// Wall-clock time of the filter's teardown call.
    pub teardown_seconds: f64,
    /// What the filter reports: entries, counters, and its own kernel memory figure.
    pub stats: FilterStats,
    /// The filter program's own time per run, from BPF_PROG_TEST_RUN (eBPF filters only):
    /// the empty program (the method's floor), hit and miss per family, and cold lookups.
    pub program_costs: Vec<ProgramCost>,
    /// What the filter adds to the cost of sending a packet (paired rounds through sinks),
    /// when asked for with `--send-path`.
    pub send_path: Option<crate::sendpath::SendPath>,
    /// Traffic through the filter on the testbed (`--traffic`).
    pub traffic: Option<crate::traffic::Traffic>,
    /// Live updates applied while probes watched (`--updates`).
    pub updates: Option<crate::updates::Updates>,
    /// Change in the kernel's slab + vmalloc + per-CPU memory across the load (approximate),
    /// only when it can be trusted (positive and above the machine's idle noise).
    pub kernel_allocations_delta_bytes: Option<i64>,
    /// The change as read, its noise, and why it is not a figure when it is not.
    pub kernel_allocations: Option<crate::system::AllocationDelta>,
}
