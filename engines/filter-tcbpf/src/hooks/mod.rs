//! Where the program is hooked: one file per attach kind, each exporting a [`HookKind`]
//! (its name, whether this kernel has it, how to hook a loaded program, what a killed run
//! leaves behind), listed once in [`HOOKS`]. A new attach point is one file here plus one
//! line in [`HOOKS`], as aya keeps one file per program type.
//!
//! - [`tcx`]: a TCX link on the interface's egress (Linux 6.6+); it goes with the process.
//! - [`clsact`]: a `clsact` qdisc and a direct-action filter (any kernel with tc BPF); it
//!   stays after the process exits, named by the run's tag.
//! - [`cgroup`]: a `cgroup_skb/egress` link on a cgroup v2 (the packets of its processes'
//!   sockets); it goes with the process.
//! - [`connect`]: `connect()` and unconnected UDP sends to a denied address refused on a
//!   cgroup v2 (`cgroup/connect4`, `connect6`, `sendmsg4`, `sendmsg6`); it goes with the
//!   process.

pub mod cgroup;
pub mod clsact;
pub mod connect;
mod links;
mod tc;
pub mod tcx;

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};

use aya::Ebpf;
use filter_core::{NetNs, Result, Tag, Target, TargetKind};

/// Every attach kind; `auto` tries those on an interface, in this order.
pub static HOOKS: &[&HookKind] = &[&tcx::KIND, &clsact::KIND, &cgroup::KIND, &connect::KIND];

/// Which build of the programs a hook runs: the kernel types each hook by its program type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// `SchedClassifier` programs (`egb_filter`...): packets from the Ethernet header.
    Tc,
    /// `cgroup_skb` programs (`egb_cg_filter`...): packets from the IP header.
    CgroupSkb,
    /// `cgroup/sock_addr` programs (`egb_cn_filter_c4`...): destinations of `connect()` and
    /// `sendmsg()`.
    Connect,
}

/// An attach kind: what `--attach NAME` picks.
pub struct HookKind {
    /// Its name on the command line and in records (`tcx`, `clsact`).
    pub name: &'static str,
    /// One line saying what it is.
    pub about: &'static str,
    /// Whether this kernel offers it.
    pub available: fn() -> bool,
    /// A hook of this kind for a target and a run's tag.
    pub make: fn(&Target, &Tag) -> Result<Box<dyn Hook>>,
    /// What runs left hooked this way in a namespace under a prefix (see
    /// [`Engine::leftovers`](filter_core::Engine::leftovers)).
    pub leftovers: fn(&NetNs, &str) -> Result<Vec<String>>,
    /// Removes what [`leftovers`](Self::leftovers) finds; returns what it removed.
    pub remove_leftovers: fn(&NetNs, &str) -> Result<Vec<String>>,
    /// The kind of target it hooks.
    pub target: TargetKind,
    /// The programs it runs.
    pub flavour: Flavour,
}

impl fmt::Debug for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl PartialEq for HookKind {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for HookKind {}

/// A program hooked to a target: attached, moved to a new program in one kernel
/// operation, and released. The hook keeps the link of the program it holds.
pub trait Hook: Send {
    /// Its kind.
    fn kind(&self) -> &'static HookKind;

    /// Hooks program `program` of `ebpf` (loaded) inside `netns`.
    ///
    /// # Errors
    /// When the kernel refuses the link or filter, or the program is not in `ebpf`.
    fn attach(&mut self, netns: &NetNs, ebpf: &mut Ebpf, program: &str) -> Result<()>;

    /// Moves the hook from `from`'s program to `to`'s in one kernel operation, so every
    /// packet sees one of them. On failure the old program is hooked again (or the error
    /// says it could not be). `from` is `None` when the old program is not this process's
    /// (an adopted filter's); the hooks that need it refuse. `fail` makes the move fail
    /// after the old link was taken (tests).
    ///
    /// # Errors
    /// When the kernel refuses the move; [`is_attached`](Self::is_attached) then says
    /// whether `from` is hooked again.
    fn swap(
        &mut self,
        netns: &NetNs,
        from: Option<&mut Ebpf>,
        to: &mut Ebpf,
        program: &str,
        fail: bool,
    ) -> Result<()>;

    /// Whether a program is hooked.
    fn is_attached(&self) -> bool;

    /// Undoes what `attach` set up besides the link (a qdisc it created), once the hooked
    /// program is gone.
    ///
    /// # Errors
    /// When the kernel refuses to remove what was set up.
    fn release(&mut self, netns: &NetNs) -> Result<()>;

    /// The hook's BPF links with the name each is pinned under, for a filter that outlives
    /// the process; empty for a hook that holds no link of its own (clsact).
    fn links(&self) -> Vec<(String, BorrowedFd<'_>)> {
        Vec::new()
    }

    /// The names [`links`](Self::links) gives, whether attached or not: the pins a
    /// restarted process opens to [`adopt`](Self::adopt). Empty: the kind cannot be pinned.
    fn link_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Takes over links opened from pins, in the order of [`link_names`](Self::link_names):
    /// the hook then holds them as if it had made them, and swaps move them.
    ///
    /// # Errors
    /// When the kind cannot be pinned, or the count is not its own.
    fn adopt(&mut self, links: Vec<OwnedFd>) -> Result<()> {
        drop(links);
        Err(filter_core::Error::InvalidInput(format!(
            "the {} attach keeps no link of its own to pin or adopt",
            self.kind().name
        )))
    }
}

/// How the program is hooked: the first available kind of [`HOOKS`], or one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Attach {
    /// TCX where the kernel has it (6.6+), else clsact.
    #[default]
    Auto,
    /// This kind.
    Kind(&'static HookKind),
}

impl Attach {
    /// A TCX link on the egress hook (Linux 6.6+); removed when the process exits.
    pub const TCX: Self = Self::Kind(&tcx::KIND);
    /// A `clsact` qdisc with a direct-action filter (any kernel with tc BPF).
    pub const CLSACT: Self = Self::Kind(&clsact::KIND);
    /// A `cgroup_skb/egress` link on a cgroup v2 (Linux 5.7+); removed when the process exits.
    pub const CGROUP: Self = Self::Kind(&cgroup::KIND);
    /// Connect-time links on a cgroup v2 (Linux 5.7+); removed when the process exits.
    pub const CONNECT: Self = Self::Kind(&connect::KIND);

    /// The name used on the command line and in records (`auto`, `tcx`, `clsact`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Kind(kind) => kind.name,
        }
    }

    /// The kind this picks on this kernel.
    pub fn resolve(self) -> &'static HookKind {
        match self {
            Self::Kind(kind) => kind,
            Self::Auto => HOOKS
                .iter()
                .copied()
                .find(|kind| kind.target == TargetKind::Egress && (kind.available)())
                .unwrap_or(&clsact::KIND),
        }
    }

    /// `auto` or the name of a kind in `hooks`.
    ///
    /// # Errors
    /// A message listing the names there are.
    pub fn parse_in(hooks: &[&'static HookKind], name: &str) -> std::result::Result<Self, String> {
        if name == "auto" {
            return Ok(Self::Auto);
        }
        hooks
            .iter()
            .find(|kind| kind.name == name)
            .map(|&kind| Self::Kind(kind))
            .ok_or_else(|| {
                let names: Vec<&str> = hooks.iter().map(|k| k.name).collect();
                format!(
                    "unknown attach mode {name:?}; expected auto, {}",
                    names.join(", ")
                )
            })
    }
}

impl fmt::Display for Attach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Attach {
    type Err = String;

    fn from_str(name: &str) -> std::result::Result<Self, String> {
        Self::parse_in(HOOKS, name)
    }
}

/// What every attach kind left in `netns` under `prefix`.
pub(crate) fn leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    // Pins live in the mount namespace, not a network one: looked at from this one only.
    let mut found = if netns.name().is_none() {
        crate::pin::pinned(prefix)?
    } else {
        Vec::new()
    };
    for kind in HOOKS {
        found.extend((kind.leftovers)(netns, prefix)?);
    }
    Ok(found)
}

/// Removes what every attach kind left in `netns` under `prefix`, and (from the current
/// namespace) the filters pinned under it.
pub(crate) fn remove_leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let mut removed = if netns.name().is_none() {
        crate::pin::remove_pinned(prefix)?
    } else {
        Vec::new()
    };
    for kind in HOOKS {
        removed.extend((kind.remove_leftovers)(netns, prefix)?);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up attach kind: what a new hook file would export.
    mod dummy {
        use super::*;

        pub static KIND: HookKind = HookKind {
            name: "dummy",
            about: "hooks nothing",
            available: || false,
            make: |_, _| Ok(Box::new(Nothing(false))),
            leftovers: |_, prefix| Ok(vec![format!("dummy hook {prefix}x")]),
            remove_leftovers: |_, _| Ok(Vec::new()),
            target: TargetKind::Egress,
            flavour: Flavour::Tc,
        };

        struct Nothing(bool);

        impl Hook for Nothing {
            fn kind(&self) -> &'static HookKind {
                &KIND
            }
            fn attach(&mut self, _: &NetNs, _: &mut Ebpf, _: &str) -> Result<()> {
                self.0 = true;
                Ok(())
            }
            fn swap(
                &mut self,
                _: &NetNs,
                _: Option<&mut Ebpf>,
                _: &mut Ebpf,
                _: &str,
                _: bool,
            ) -> Result<()> {
                Ok(())
            }
            fn is_attached(&self) -> bool {
                self.0
            }
            fn release(&mut self, _: &NetNs) -> Result<()> {
                self.0 = false;
                Ok(())
            }
        }
    }

    /// A new attach kind is one file and one line in the hook list: the option parses it,
    /// `auto` passes over it when the kernel lacks it, and it builds its hook.
    #[test]
    fn a_new_hook_is_one_file_and_one_line() {
        let hooks: &[&'static HookKind] = &[
            &tcx::KIND,
            &clsact::KIND,
            &cgroup::KIND,
            &connect::KIND,
            &dummy::KIND,
        ];
        let attach = Attach::parse_in(hooks, "dummy").unwrap();
        assert_eq!(attach, Attach::Kind(&dummy::KIND));
        assert_eq!(attach.resolve().name, "dummy");
        let tag = Tag::new("hooks").unwrap();
        let hook = (attach.resolve().make)(&Target::egress("lo"), &tag).unwrap();
        assert!(!hook.is_attached());
        assert_eq!(hook.kind().name, "dummy");
        assert_eq!(
            (dummy::KIND.leftovers)(&NetNs::current(), "egb-").unwrap(),
            vec!["dummy hook egb-x"]
        );
        let unknown = Attach::parse_in(hooks, "nosuch").unwrap_err();
        assert!(
            unknown.contains("auto, tcx, clsact, cgroup, connect, dummy"),
            "{unknown}"
        );
        assert_eq!("clsact".parse::<Attach>().unwrap(), Attach::CLSACT);
        assert_ne!(Attach::Auto.resolve().name, "dummy");
    }
}
