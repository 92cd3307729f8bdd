//! What the link-based attach kinds share (TCX, `cgroup_skb`, connect-time): each program is
//! hooked by a BPF link of our own (`BPF_LINK_CREATE`), held as a descriptor, moved to a new
//! program by `BPF_LINK_UPDATE`, and pinned in bpffs when the filter must outlive the
//! process. The link goes when its last descriptor closes and no pin holds it.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use aya::Ebpf;
use filter_core::{Error, NetNs, Result, Target};

use crate::error::{TcbpfError, kernel};
use crate::sys;

use super::{Hook, HookKind};

/// Where a link hooks: a cgroup v2 (opened by path) or an interface's TCX egress (by name,
/// in the filter's namespace).
#[derive(Debug, Clone)]
enum Anchor {
    Cgroup(PathBuf),
    Interface(String),
}

impl std::fmt::Display for Anchor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cgroup(path) => write!(f, "cgroup {}", path.display()),
            Self::Interface(name) => write!(f, "the egress of {name}"),
        }
    }
}

/// Programs hooked by BPF links, one per `(program suffix, attach type)`.
pub(super) struct LinkHook {
    kind: &'static HookKind,
    anchor: Anchor,
    hooks: &'static [(&'static str, u32)],
    links: Vec<OwnedFd>,
}

impl LinkHook {
    /// A hook of `kind` on `target`: a cgroup for the cgroup kinds, an interface for TCX.
    pub(super) fn new(
        target: &Target,
        kind: &'static HookKind,
        hooks: &'static [(&'static str, u32)],
    ) -> Result<Self> {
        let anchor = match (target.cgroup_path(), target.interface(), kind.target) {
            (Some(path), _, filter_core::TargetKind::Cgroup) => Anchor::Cgroup(path.to_owned()),
            (_, Some(name), filter_core::TargetKind::Egress) => Anchor::Interface(name.to_owned()),
            _ => {
                return Err(Error::InvalidInput(format!(
                    "the {} attach hooks {}, not the {target}",
                    kind.name,
                    match kind.target {
                        filter_core::TargetKind::Cgroup => "a cgroup v2 (Target::cgroup)",
                        _ => "an interface (Target::egress)",
                    }
                )));
            }
        };
        Ok(Self {
            kind,
            anchor,
            hooks,
            links: Vec::new(),
        })
    }

    /// One link per hook for the programs of `program` in `ebpf`, all or none.
    fn link(&self, netns: &NetNs, ebpf: &Ebpf, program: &str) -> Result<Vec<OwnedFd>> {
        let mut links = Vec::new();
        for (suffix, attach_type) in self.hooks {
            let name = format!("{program}{suffix}");
            let fd = program_fd(ebpf, &name)?;
            let made = match &self.anchor {
                Anchor::Cgroup(path) => {
                    let cgroup = std::fs::File::open(path)
                        .map_err(|e| Error::io(format!("opening cgroup {}", path.display()), e))?;
                    sys::cgroup_link(fd.as_fd(), cgroup.as_fd(), *attach_type)
                }
                Anchor::Interface(interface) => {
                    let c_name = CString::new(interface.as_str())
                        .map_err(|_| TcbpfError::InterfaceName(interface.clone()))?;
                    let fd = fd.as_fd().try_clone_to_owned().map_err(|e| {
                        Error::io(format!("duplicating the descriptor of {name}"), e)
                    })?;
                    // The index, and the link, in the filter's namespace.
                    netns.run(move || {
                        sys::interface_index(&c_name)
                            .and_then(|index| sys::tcx_link(fd.as_fd(), index))
                    })?
                }
            };
            links.push(made.map_err(|e| kernel(format!("linking {name} to {}", self.anchor), e))?);
        }
        Ok(links)
    }

    /// The name of the pin of link `i`: `link` plus the program's suffix (`link_c4`).
    fn pin_name(&self, i: usize) -> String {
        format!("link{}", self.hooks[i].0)
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

impl Hook for LinkHook {
    fn kind(&self) -> &'static HookKind {
        self.kind
    }

    fn attach(&mut self, netns: &NetNs, ebpf: &mut Ebpf, program: &str) -> Result<()> {
        // All the links or none: those made so far close with the error.
        self.links = self.link(netns, ebpf, program)?;
        Ok(())
    }

    fn swap(
        &mut self,
        _: &NetNs,
        _from: Option<&mut Ebpf>,
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
                operation: format!("swapping programs on {} (injected by a test)", self.anchor),
                code: -1,
                message: "injected failure".into(),
            })
            .into());
        }
        // The programs the links run now, by descriptor from their ids: a refusal part way
        // moves the links already moved back to them, whoever loaded them (an adopted
        // filter's old programs belong to a process that is gone).
        let old: Vec<OwnedFd> = self
            .links
            .iter()
            .map(|link| sys::link_program_id(link.as_fd()).and_then(sys::program_by_id))
            .collect::<std::io::Result<_>>()
            .map_err(|e| kernel(format!("reading the programs linked to {}", self.anchor), e))?;
        // Each link moves in one kernel operation; with several hooks, each sees the old
        // list or the new one.
        let update = |link: BorrowedFd<'_>, program: BorrowedFd<'_>, name: &str| -> Result<()> {
            sys::link_update(link, program).map_err(|e| {
                kernel(
                    format!("swapping {name} in on {} (BPF_LINK_UPDATE)", self.anchor),
                    e,
                )
                .into()
            })
        };
        for i in 0..self.links.len() {
            let name = format!("{program}{}", self.hooks[i].0);
            let moved = program_fd(to, &name)
                .and_then(|fd| update(self.links[i].as_fd(), fd.as_fd(), &name));
            if let Err(failed) = moved {
                for (link, program) in self.links.iter().zip(&old).take(i) {
                    if let Err(restore) = update(link.as_fd(), program.as_fd(), "the old program") {
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
        // Closing a link's last descriptor unhooks its program (unless a pin holds it).
        self.links.clear();
        Ok(())
    }

    fn links(&self) -> Vec<(String, BorrowedFd<'_>)> {
        self.links
            .iter()
            .enumerate()
            .map(|(i, link)| (self.pin_name(i), link.as_fd()))
            .collect()
    }

    fn link_names(&self) -> Vec<String> {
        (0..self.hooks.len()).map(|i| self.pin_name(i)).collect()
    }

    fn adopt(&mut self, links: Vec<OwnedFd>) -> Result<()> {
        if links.len() != self.hooks.len() {
            return Err(Error::InvalidInput(format!(
                "{} pinned links for the {} attach, which has {}",
                links.len(),
                self.kind.name,
                self.hooks.len()
            )));
        }
        self.links = links;
        Ok(())
    }
}
