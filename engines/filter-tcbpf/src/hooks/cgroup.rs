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

/// The cgroup attach kind.
pub static KIND: HookKind = HookKind {
    name: "cgroup",
    about: "a cgroup_skb/egress link on a cgroup v2 (the packets of its processes' sockets, \
            Linux 5.7+); removed when the process exits",
    available: || {
        KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(5, 7, 0))
            && unified_mount().is_some()
    },
    make: |target, _| Ok(Box::new(CgroupHook::new(target)?)),
    leftovers: programs,
    // A cgroup link lives as long as its descriptor: a killed run leaves none to remove.
    remove_leftovers: |_, _| Ok(Vec::new()),
    target: TargetKind::Cgroup,
    flavour: Flavour::CgroupSkb,
};

/// Where the unified (cgroup v2) hierarchy is mounted, read from `/proc/self/mountinfo`
/// (`/sys/fs/cgroup` on a pure v2 system, `/sys/fs/cgroup/unified` on a hybrid one).
pub fn unified_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dash = fields.iter().position(|&f| f == "-")?;
        let mount = fields.get(4)?;
        (fields.get(dash + 1) == Some(&"cgroup2")).then(|| PathBuf::from(mount))
    })
}

/// Programs of ours (`egb_*`) on the egress of the testbed cgroups (`egb-*` at the root of
/// the unified hierarchy) whose names fall under `prefix`. Only live processes hold them.
/// A cgroup elsewhere (a library user's target) is not looked at.
fn programs(_: &NetNs, prefix: &str) -> Result<Vec<String>> {
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
        let ids = sys::cgroup_programs(cgroup.as_fd(), BPF_CGROUP_INET_EGRESS)
            .map_err(|e| kernel(format!("querying the egress programs of cgroup {name}"), e))?;
        for id in ids {
            let ours = aya::programs::loaded_programs()
                .flatten()
                .any(|p| p.id() == id && p.name_as_str().is_some_and(|n| n.starts_with("egb_")));
            if ours {
                found.push(format!("cgroup_skb egress program {id} on cgroup {name}"));
            }
        }
    }
    Ok(found)
}

struct CgroupHook {
    path: PathBuf,
    link: Option<OwnedFd>,
}

impl CgroupHook {
    fn new(target: &Target) -> Result<Self> {
        let path = target.cgroup_path().ok_or_else(|| {
            Error::InvalidInput(format!(
                "the cgroup attach hooks a cgroup v2, not the {target} (Target::cgroup)"
            ))
        })?;
        Ok(Self {
            path: path.to_owned(),
            link: None,
        })
    }

    fn link(&self, ebpf: &Ebpf, program: &str) -> Result<OwnedFd> {
        let cgroup = std::fs::File::open(&self.path)
            .map_err(|e| Error::io(format!("opening cgroup {}", self.path.display()), e))?;
        let fd = program_fd(ebpf, program)?;
        sys::cgroup_link(fd.as_fd(), cgroup.as_fd(), BPF_CGROUP_INET_EGRESS).map_err(|e| {
            kernel(
                format!(
                    "linking {program} to the egress of cgroup {}",
                    self.path.display()
                ),
                e,
            )
            .into()
        })
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
        &KIND
    }

    fn attach(&mut self, _: &NetNs, ebpf: &mut Ebpf, program: &str) -> Result<()> {
        self.link = Some(self.link(ebpf, program)?);
        Ok(())
    }

    fn swap(
        &mut self,
        _: &NetNs,
        _from: &mut Ebpf,
        to: &mut Ebpf,
        program: &str,
        fail: bool,
    ) -> Result<()> {
        let link = self.link.as_ref().ok_or(TcbpfError::NotHooked)?;
        if fail {
            // What a refused update does: the link keeps the old program.
            return Err(TcbpfError::Refused(filter_core::Refusal {
                operation: "swapping programs on the cgroup link (injected by a test)".into(),
                code: -1,
                message: "injected failure".into(),
            })
            .into());
        }
        let fd = program_fd(to, program)?;
        sys::link_update(link.as_fd(), fd.as_fd())
            .map_err(|e| kernel("swapping programs on the cgroup link (BPF_LINK_UPDATE)", e).into())
    }

    fn is_attached(&self) -> bool {
        self.link.is_some()
    }

    fn release(&mut self, _: &NetNs) -> Result<()> {
        // Closing the link's last descriptor unhooks the program.
        self.link = None;
        Ok(())
    }
}
