//! TCX: a BPF link on the interface's egress hook (Linux 6.6+), after any program already
//! there. It goes away with the last file descriptor of the link, that is with the process
//! (nothing outlives a killed run), unless the filter pins it.

use aya::programs::tc::TcAttachType;
use aya::util::KernelVersion;
use filter_core::{NetNs, Result};

use super::HookKind;
use super::links::LinkHook;
use super::tc::on_each_link;

/// The TCX attach kind.
pub static KIND: HookKind = HookKind {
    name: "tcx",
    about: "a TCX link on the interface's egress (Linux 6.6+); removed when the process exits",
    available: || KernelVersion::current().is_ok_and(|v| v >= KernelVersion::new(6, 6, 0)),
    make: |target, _| Ok(Box::new(LinkHook::new(target, &KIND, TCX_EGRESS)?)),
    leftovers: programs,
    remove_leftovers: |_, _| Ok(Vec::new()),
    target: filter_core::TargetKind::Egress,
    flavour: super::Flavour::Tc,
};

/// The one program of a TCX hook: no suffix, the egress attach type.
const TCX_EGRESS: &[(&str, u32)] = &[("", crate::sys::BPF_TCX_EGRESS)];

/// The programs on the TCX egress hook of `interface` in `netns`, by id and name.
///
/// # Errors
/// When the kernel refuses the query.
pub fn programs_on(netns: &NetNs, interface: &str) -> Result<Vec<(u32, String)>> {
    let Ok(name) = std::ffi::CString::new(interface) else {
        // A name with a NUL byte is no interface: nothing is hooked there.
        return Ok(Vec::new());
    };
    let (_, programs) = netns
        .run(move || {
            aya::programs::SchedClassifier::query_tcx(name.as_c_str(), TcAttachType::Egress)
        })?
        .map_err(|e| {
            crate::error::kernel(format!("querying the TCX egress hook of {interface}"), e)
        })?;
    Ok(programs
        .iter()
        .map(|p| (p.id(), p.name_as_str().unwrap_or_default().to_owned()))
        .collect())
}

/// Programs of ours on TCX egress hooks in `netns`. TCX links carry no name we choose, so
/// every `egb_*` program counts, whatever the prefix; they go away with the process that
/// made them, so there is nothing to remove.
fn programs(netns: &NetNs, _prefix: &str) -> Result<Vec<String>> {
    if !(KIND.available)() {
        return Ok(Vec::new());
    }
    on_each_link(netns, |link| {
        Ok(programs_on(netns, link)?
            .into_iter()
            .filter(|(_, name)| name.starts_with("egb_"))
            .map(|(id, _)| format!("tcx egress program {id} on {link}"))
            .collect())
    })
}
