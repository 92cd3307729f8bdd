//! The JSON record of one run: typed in the `records` crate, shared with the report and xtask.

pub use records::{Figures, ProbeResult, Record, Verdict};
