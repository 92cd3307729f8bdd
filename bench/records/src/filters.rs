//! `egress-bench filters --json`: every filter of the registry, what it is and how a sweep
//! treats it, read by `cargo xtask bench`.

use filter_core::Role;
use serde::{Deserialize, Serialize};

/// One filter: what the engine says of it, and the sweep's policy for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilterEntry {
    /// Its name on the command line and in records.
    pub name: String,
    /// One line saying what it is.
    pub about: String,
    /// What it is for.
    pub role: Role,
    /// Whether it drops the denied probes.
    pub drops: bool,
    /// The filter whose load time this one's is set against.
    pub load_compared_with: Option<String>,
    /// The filter whose per-packet cost is this one's floor.
    pub send_path_floor: Option<String>,
    /// How a sweep schedules it.
    pub sweep: SweepPolicy,
}

/// How a sweep schedules a filter: the benchmark's decision, derived from the filter's role
/// and pairing by `egress-bench`, never stated by an engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepPolicy {
    /// Runs at the largest size only (benchmark-only programs that are no engine's floor).
    pub largest_only: bool,
    /// Runs in the scale test (engines and reference loaders).
    pub scale: bool,
    /// Its send path is measured (not for reference loaders: the same kernel state as
    /// their engine).
    pub send_path: bool,
    /// Its packet program is timed (engines; those without a program report none).
    pub program_cost: bool,
    /// Other labels it also runs under, at the largest size (`tcbpf-empty@clsact`: the
    /// attach floor of another attach kind).
    pub also_as: Vec<String>,
    /// The longest list it holds with default options (a profile's product limit): the
    /// default sweep runs it at the sizes up to this, the scale test past it too (the
    /// failure, naming the limit, is the row).
    #[serde(default)]
    pub holds: Option<u64>,
}

impl FilterEntry {
    /// The entry of the filter a label names (`tcbpf-empty@clsact`, `ipset/hosts`).
    pub fn find<'a>(entries: &'a [Self], label: &str) -> Option<&'a Self> {
        let name = label.split(['@', '/']).next().unwrap_or(label);
        entries.iter().find(|e| e.name == name)
    }
}
