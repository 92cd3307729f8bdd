//! The JSON records of egress-bench, typed once for the program that writes them and every
//! program that reads them (the report, `cargo xtask bench`): a renamed or retyped field
//! fails to compile or fails the round-trip test, instead of silently emptying a table.
//!
//! - [`Record`]: one run of one filter with one list (`egress-bench run --output`).
//! - [`SweepResults`]: a sweep's `results.json`, one [`SweepRun`] per filter and size,
//!   failed runs included with their error and the last lines they printed.
//! - [`FilterEntry`]: one filter of `egress-bench filters --json`, with its [`SweepPolicy`].
//!
//! ```
//! let text = r#"{"description": "", "options": "", "runs": []}"#;
//! let sweep: records::SweepResults = serde_json::from_str(text)?;
//! assert!(sweep.runs.is_empty());
//! # Ok::<(), serde_json::Error>(())
//! ```

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

pub mod cluster;
mod filters;
mod machine;
mod run;
mod send_path;
mod spread;
pub mod stats;
mod sweep;
mod traffic;
mod units;
mod updates;

pub use filters::{FilterEntry, SweepPolicy};
pub use machine::{AllocationDelta, Environment, PeakMemory, TwoHosts};
pub use run::{
    Families, Figures, KERNEL_COUNT_MAX, ListInfo, ProbeOutcome, ProbeResult, Record, Verdict,
};
pub use send_path::{Destinations, DuringUpdates, Paired, SendPath, SendPathRun};
pub use spread::Spread;
pub use sweep::{RunStatus, STDERR_TAIL_LINES, SweepResults, SweepRun};
pub use traffic::{Latency, LatencySide, Pinning, Protocol, Side, Throughput, Traffic};
pub use units::{human_bytes, human_size};
pub use updates::{Stream, Updates};
