//! A `SchedClassifier` program hooked to an interface's egress through aya's tc attach
//! (netlink for clsact), moved to a new program by a netlink filter replace; the kind says
//! only how it attaches and what it sets up around that ([`TcKind`]). Also the walk over a
//! namespace's links that the tc kinds' leftover finders share. (TCX links are made
//! directly, as the cgroup ones are: see `links`.)

use std::ffi::CString;

use aya::Ebpf;
use aya::programs::tc::{SchedClassifierLinkId, TcAttach};
use filter_core::{Error, NetNs, Result, Target};

use crate::error::{TcbpfError, kernel};
use crate::instance::program_mut;

use super::{Hook, HookKind};

/// What one tc attach kind does its own way; the rest is [`TcHook`]'s.
pub(super) trait TcKind: Send {
    /// Its kind.
    fn kind(&self) -> &'static HookKind;

    /// How a program is attached.
    fn how(&self) -> TcAttach;

    /// Sets up what attaching needs on the interface (a qdisc).
    fn prepare(&mut self, netns: &NetNs, interface: &str) -> Result<()> {
        let _ = (netns, interface);
        Ok(())
    }

    /// Undoes [`prepare`](Self::prepare) once no program of ours is hooked.
    fn release(&mut self, netns: &NetNs, interface: &str) -> Result<()> {
        let _ = (netns, interface);
        Ok(())
    }
}

/// A program on an interface's egress, hooked the way its [`TcKind`] says.
pub(super) struct TcHook<K: TcKind> {
    kind: K,
    interface: String,
    link: Option<SchedClassifierLinkId>,
    /// Whether a program holds the hook (it may, with its link's id lost to a refused move).
    hooked: bool,
}

impl<K: TcKind> TcHook<K> {
    /// A hook of `kind` on the interface `target` names.
    pub(super) fn new(kind: K, target: &Target) -> Result<Self> {
        let interface = target
            .interface()
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{} attaches to an interface, not to the {target}",
                    kind.kind().name
                ))
            })?
            .to_owned();
        Ok(Self {
            kind,
            interface,
            link: None,
            hooked: false,
        })
    }
}

impl<K: TcKind> Hook for TcHook<K> {
    fn kind(&self) -> &'static HookKind {
        self.kind.kind()
    }

    fn attach(&mut self, netns: &NetNs, ebpf: &mut Ebpf, program: &str) -> Result<()> {
        self.kind.prepare(netns, &self.interface)?;
        let interface = CString::new(self.interface.clone())
            .map_err(|_| TcbpfError::InterfaceName(self.interface.clone()))?;
        let how = self.kind.how();
        let kind = self.kind.kind().name;
        let link = netns.run(move || -> Result<_> {
            program_mut(ebpf, program)?
                .attach(interface.as_c_str(), how)
                .map_err(|e| {
                    kernel(
                        format!("attaching to the egress of {interface:?} ({kind})"),
                        e,
                    )
                    .into()
                })
        })??;
        self.link = Some(link);
        self.hooked = true;
        Ok(())
    }

    fn swap(
        &mut self,
        netns: &NetNs,
        from: Option<&mut Ebpf>,
        to: &mut Ebpf,
        program: &str,
        fail: bool,
    ) -> Result<()> {
        let from = from.ok_or(TcbpfError::NotHooked)?;
        let old = program_mut(from, program)?;
        let id = self.link.take().ok_or(TcbpfError::NotHooked)?;
        // On a refusal the old program keeps its link (so the hook stays), only its id is
        // gone: the list stays enforced, and later moves say the hook is lost.
        let link = old
            .take_link(id)
            .map_err(|e| kernel("taking the hook's link", e))?;
        self.hooked = false;
        let swapped = netns.run(move || {
            if fail {
                // What a refused update does: the link is gone, the old program unhooked.
                drop(link);
                return Err(TcbpfError::Refused(filter_core::Refusal {
                    operation: "swapping programs on the hook (injected by a test)".into(),
                    code: -1,
                    message: "injected failure".into(),
                }));
            }
            program_mut(to, program)?.attach_to_link(link).map_err(|e| {
                kernel(
                    "swapping programs on the hook (BPF_LINK_UPDATE / tc replace)",
                    e,
                )
            })
        })?;
        match swapped {
            Ok(id) => {
                self.link = Some(id);
                self.hooked = true;
                Ok(())
            }
            Err(e) => {
                // The link went with the failed update: hook the old program again.
                let failed = Error::from(e);
                match self.attach(netns, from, program) {
                    Ok(()) => Err(failed),
                    Err(restore) => Err(Error::RestoreFailed {
                        failed: Box::new(failed),
                        restore: Box::new(restore),
                    }),
                }
            }
        }
    }

    fn is_attached(&self) -> bool {
        self.hooked
    }

    fn release(&mut self, netns: &NetNs) -> Result<()> {
        self.link = None;
        self.hooked = false;
        self.kind.release(netns, &self.interface)
    }
}

/// What `look` finds on each link of `netns`, link by link. A link that went away while it
/// was looked at (a testbed being removed) held nothing; any other failure is an error.
///
/// # Errors
/// When `ip link` cannot run, or `look` fails on a link that is still there.
pub(super) fn on_each_link<T>(
    netns: &NetNs,
    mut look: impl FnMut(&str) -> Result<Vec<T>>,
) -> Result<Vec<T>> {
    let mut found = Vec::new();
    for link in links(netns)? {
        match look(&link) {
            Ok(on_link) => found.extend(on_link),
            Err(_) if !links(netns)?.contains(&link) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}

/// The links of `netns`, by name.
fn links(netns: &NetNs) -> Result<Vec<String>> {
    // "2: egb-1a2b-c@if3: <BROADCAST,..." -> "egb-1a2b-c"
    Ok(
        filter_core::run_command(netns.command("ip").args(["-o", "link", "show"]))?
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .collect(),
    )
}
