//! `cgroup_skb/egress`: a BPF link on a cgroup v2, so the program sees the packets of every
//! socket the cgroup's processes (and its descendants') open, whatever interface they
//! leave by. Per workload (a pod, a container, a systemd service), or per node at the
//! hierarchy's root. The link goes with the last file descriptor of it, that is with the
//! process: like TCX, a killed run leaves nothing hooked (and its filter lapses).

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use aya::Ebpf;
use aya::util::KernelVersion;
use filter_core::{Error, NetNs, Result, Target, TargetKind};

use crate::error::{TcbpfError, kernel};
use crate::sys;

use super::{Flavour, Hook, HookKind};

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
    make: |target, _| Ok(Box::new(CgroupHook::new(target, &KIND, SKB_EGRESS)?)),
    leftovers: |_, prefix| programs(prefix, SKB_EGRESS),
    // A cgroup link lives as long as its descriptor: a killed run leaves none to remove.
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

/// Programs hooked to a cgroup by BPF links, one per `(program suffix, attach type)`: the
/// links go with their descriptors, so with the process.
pub(super) struct CgroupHook {
    kind: &'static HookKind,
    path: PathBuf,
    hooks: &'static [(&'static str, u32)],
    links: Vec<OwnedFd>,
}

impl CgroupHook {
    pub(super) fn new(
        target: &Target,
        kind: &'static HookKind,
        hooks: &'static [(&'static str, u32)],
    ) -> Result<Self> {
        let path = target.cgroup_path().ok_or_else(|| {
            Error::InvalidInput(format!(
                "the {} attach hooks a cgroup v2, not the {target} (Target::cgroup)",
                kind.name
            ))
        })?;
        Ok(Self {
            kind,
            path: path.to_owned(),
            hooks,
            links: Vec::new(),
        })
    }

    fn link(&self, ebpf: &Ebpf, program: &str) -> Result<Vec<OwnedFd>> {
        let cgroup = std::fs::File::open(&self.path)
            .map_err(|e| Error::io(format!("opening cgroup {}", self.path.display()), e))?;
        let mut links = Vec::new();
        for (suffix, attach_type) in self.hooks {
            let name = format!("{program}{suffix}");
            let fd = program_fd(ebpf, &name)?;
            let link = sys::cgroup_link(fd.as_fd(), cgroup.as_fd(), *attach_type).map_err(|e| {
                kernel(
                    format!("linking {name} to cgroup {}", self.path.display()),
                    e,
                )
            })?;
            links.push(link);
        }
        Ok(links)
    }
}

/// The loaded program `name` of `ebpf`, by descriptor.
fn program_fd<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a aya::programs::ProgramFd> {
    let program = ebpf
        .program(name)
        .ok_or_else(|| TcbpfError::MissingObject(format!("program {name}")))?;
    Ok(program
        .fd()
        .map_err(|e| kernel(format!("program {name} (not loaded)"), e))?)
}

impl Hook for CgroupHook {
    fn kind(&self) -> &'static HookKind {
        self.kind
    }

    fn attach(&mut self, _: &NetNs, ebpf: &mut Ebpf, program: &str) -> Result<()> {
        // All the links or none: those made so far close with the error.
        self.links = self.link(ebpf, program)?;
        Ok(())
    }

    fn swap(
        &mut self,
        _: &NetNs,
        from: &mut Ebpf,
        to: &mut Ebpf,
        program: &str,
        fail: bool,
    ) -> Result<()> {
        if self.links.is_empty() {
            return Err(TcbpfError::NotHooked.into());
        }
        if fail {
            // What a refused update does: the links keep the old programs.
            return Err(TcbpfError::Refused(filter_core::Refusal {
                operation: "swapping programs on the cgroup links (injected by a test)".into(),
                code: -1,
                message: "injected failure".into(),
            })
            .into());
        }
        // Each link moves in one kernel operation; with several hooks, each sees the old
        // list or the new one. A refusal part way moves the links already moved back.
        let move_one = |ebpf: &Ebpf, i: usize| -> Result<()> {
            let name = format!("{program}{}", self.hooks[i].0);
            let fd = program_fd(ebpf, &name)?;
            sys::link_update(self.links[i].as_fd(), fd.as_fd()).map_err(|e| {
                kernel(
                    format!("swapping {name} in on the cgroup link (BPF_LINK_UPDATE)"),
                    e,
                )
                .into()
            })
        };
        for i in 0..self.links.len() {
            if let Err(failed) = move_one(to, i) {
                for j in 0..i {
                    if let Err(restore) = move_one(from, j) {
                        return Err(Error::RestoreFailed {
                            failed: Box::new(failed),
                            restore: Box::new(restore),
                        });
                    }
                }
                return Err(failed);
            }
        }
        Ok(())
    }

    fn is_attached(&self) -> bool {
        !self.links.is_empty()
    }

    fn release(&mut self, _: &NetNs) -> Result<()> {
        // Closing a link's last descriptor unhooks its program.
        self.links.clear();
        Ok(())
    }
}
