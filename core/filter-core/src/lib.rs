//! Shared vocabulary of egress-bench: the [`EgressFilter`] trait every engine implements,
//! the [`CidrList`] deny-list (parsed from text or [generated](generate)), and the
//! [`NetNs`] handle an engine works in.
//!
//! An engine crate (`filter-ipset`, `filter-iptables`, ...) depends on this crate only;
//! a program that wants one filter installs it without the benchmark harness:
//!
//! ```no_run
//! use filter_core::{CidrList, EgressFilter, NetNs, ParseOptions};
//! # fn engine(ns: NetNs) -> Box<dyn EgressFilter> { unimplemented!() }
//! let list = CidrList::parse_file("blocklist.txt".as_ref(), &ParseOptions::default())?;
//! let mut filter = engine(NetNs::current());
//! filter.load(&list)?;           // all or nothing
//! println!("{:?}", filter.stats()?);
//! filter.teardown()?;            // also done on drop
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod cidr;
mod cost;
pub mod engine;
mod error;
mod filter;
pub mod generate;
pub mod memory;
pub mod mounts;
mod netns;

pub use cidr::{
    BAD_LINES_SHOWN, BadLine, CidrList, Family, LineProblem, ListStats, Located, ParseError,
    ParseOptions,
};
pub use cost::{CostCase, CostProbe, ProgramCost};
pub use engine::{Engine, Options, Placement, Registry, Role, Target, TargetKind, Variant};
pub use error::{Error, Refusal, Result};
pub use filter::{
    CountUnit, Deadlines, EgressFilter, FilterStats, Held, KernelCount, KernelMemory, MemorySource,
    OBJECT_PREFIX, SyncReport, Tag, difference, sync_or_swap, timed_and_desired, under_prefix,
};
pub use netns::{
    NetNs, command_line, dies_with_caller, exit_cause, oom_kills, run_command, run_with_input,
};

/// Items one per indented line, then "and N more" for the `total` beyond those given: how
/// errors name the first few of many bad lines or entries.
pub fn listing<T: std::fmt::Display>(shown: impl IntoIterator<Item = T>, total: u64) -> String {
    let mut text = String::new();
    let mut given = 0u64;
    for item in shown {
        text.push_str(&format!("\n  {item}"));
        given += 1;
    }
    if total > given {
        text.push_str(&format!("\n  and {} more", total - given));
    }
    text
}

/// `n` and a noun in the right number: `count(1, "entry", "entries")` is "1 entry".
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}
