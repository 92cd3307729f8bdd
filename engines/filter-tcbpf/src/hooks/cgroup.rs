//! `cgroup_skb/egress`: a BPF link on a cgroup v2, so the program sees the packets of every
//! socket the cgroup's processes (and its descendants') open, whatever interface they
//! leave by. Per workload (a pod, a container, a systemd service), or per node at the
//! hierarchy's root. The link goes with the last file descriptor of it, that is with the
//! process: like TCX, a killed run leaves nothing hooked (and its filter lapses).

use std::os::fd::AsFd;
use std::path::PathBuf;

use aya::util::KernelVersion;
use filter_core::{Error, Result, TargetKind};

use crate::error::kernel;
use crate::sys;

use super::links::LinkHook;
use super::{Flavour, HookKind};

/// `enum bpf_attach_type`: `BPF_CGROUP_INET_EGRESS`.
const BPF_CGROUP_INET_EGRESS: u32 = 1;

/// The one program of a `cgroup_skb` hook: no suffix, the egress attach type.
const SKB_EGRESS: &[(&str, u32)] = &[("", BPF_CGROUP_INET_EGRESS)];

/// The cgroup attach kind.
pub static KIND: HookKind = HookKind {
    name: "cgroup",
    about: "a cgroup_skb/egress link on a cgroup v2 (the packets of its processes' sockets, \
            Linux 5.7+); removed when the process exits",
    available: || {
        KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(5, 7, 0))
            && unified_mount().is_some()
    },
    make: |target, _| Ok(Box::new(LinkHook::new(target, &KIND, SKB_EGRESS)?)),
    leftovers: |_, prefix| programs(prefix, SKB_EGRESS),
    // A cgroup link lives as long as its descriptor or its pin: a killed run leaves none
    // to remove here (pins are the engine's, see `pins`).
    remove_leftovers: |_, _| Ok(Vec::new()),
    target: TargetKind::Cgroup,
    flavour: Flavour::CgroupSkb,
};

/// Where the unified (cgroup v2) hierarchy is mounted ([`filter_core::mounts::cgroup2`]).
pub fn unified_mount() -> Option<PathBuf> {
    filter_core::mounts::cgroup2()
}

/// Programs of ours (`egb_*`) at `hooks`' attach types of the testbed cgroups (`egb-*` at the
/// root of the unified hierarchy) whose names fall under `prefix`. Only live processes hold
/// them. A cgroup elsewhere (a library user's target) is not looked at.
pub(super) fn programs(prefix: &str, hooks: &[(&str, u32)]) -> Result<Vec<String>> {
    let Some(mount) = unified_mount() else {
        return Ok(Vec::new());
    };
    let entries = std::fs::read_dir(&mount)
        .map_err(|e| Error::io(format!("listing {}", mount.display()), e))?;
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !filter_core::under_prefix(&name, prefix) || !entry.path().is_dir() {
            continue;
        }
        let Ok(cgroup) = std::fs::File::open(entry.path()) else {
            continue; // removed while looked at
        };
        for &(_, attach_type) in hooks {
            let ids = sys::cgroup_programs(cgroup.as_fd(), attach_type).map_err(|e| {
                kernel(
                    format!("querying the programs of cgroup {name} (attach type {attach_type})"),
                    e,
                )
            })?;
            for id in ids {
                let program = aya::programs::loaded_programs()
                    .flatten()
                    .find(|p| p.id() == id)
                    .and_then(|p| p.name_as_str().map(str::to_owned))
                    .filter(|n| n.starts_with("egb_"));
                if let Some(program) = program {
                    found.push(format!("program {program} ({id}) on cgroup {name}"));
                }
            }
        }
    }
    Ok(found)
}
