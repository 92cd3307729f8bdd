//! clsact: a `clsact` qdisc on the interface (made if missing) with a direct-action BPF
//! filter on its egress, whose handle is derived from the run's tag. It stays after the
//! process exits, so a later cleanup finds it by that handle.

use aya::programs::tc::{NlOptions, TcAttach, TcAttachType, TcHandle};
use filter_core::{NetNs, OBJECT_PREFIX, Result, Tag, Target, run_command};

use crate::error::{kernel, os_error};

use super::tc::{TcHook, TcKind, on_each_link};
use super::{Hook, HookKind};

/// The clsact attach kind.
pub static KIND: HookKind = HookKind {
    name: "clsact",
    about: "a clsact qdisc with a direct-action filter (any kernel with tc BPF); stays after \
            the process exits",
    available: || true,
    make,
    leftovers,
    remove_leftovers,
    target: filter_core::TargetKind::Egress,
    flavour: super::Flavour::Tc,
};

/// The clsact filter handle of a tag (`egb-<id>`): its FNV-1a hash, never 0 (0 asks the
/// kernel to pick one). A run's tc filters carry it, so a cleanup by tag finds them.
pub(crate) fn tag_handle(tag: &str) -> TcHandle {
    let hash = tag.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    TcHandle::from(hash.max(1))
}

fn make(target: &Target, tag: &Tag) -> Result<Box<dyn Hook>> {
    let clsact = Clsact {
        handle: tag_handle(tag.as_str()),
        created_qdisc: false,
    };
    Ok(Box::new(TcHook::new(clsact, target)?))
}

struct Clsact {
    /// The handle of our filters: derived from the run's tag.
    handle: TcHandle,
    /// Whether this hook made the qdisc (then it removes it, unless others use it).
    created_qdisc: bool,
}

/// Whether tc filters sit on the clsact hooks of `interface` (ours are gone when this is
/// asked).
fn tc_filters_on(netns: &NetNs, interface: &str) -> Result<bool> {
    for direction in ["ingress", "egress"] {
        let mut cmd = netns.command("tc");
        cmd.args(["filter", "show", "dev", interface, direction]);
        if run_command(&mut cmd)?.lines().any(|l| !l.trim().is_empty()) {
            return Ok(true);
        }
    }
    Ok(false)
}

impl TcKind for Clsact {
    fn kind(&self) -> &'static HookKind {
        &KIND
    }

    fn how(&self) -> TcAttach {
        TcAttach::Netlink {
            parent: TcAttachType::Egress.into(),
            options: NlOptions {
                handle: self.handle,
                ..NlOptions::default()
            },
        }
    }

    /// Adds the clsact qdisc unless the interface has one.
    fn prepare(&mut self, netns: &NetNs, interface: &str) -> Result<()> {
        let name = std::ffi::CString::new(interface)
            .map_err(|_| crate::TcbpfError::InterfaceName(interface.to_owned()))?;
        let created = netns.run(move || -> Result<bool> {
            match aya::programs::tc::qdisc_add_clsact(name.as_c_str()) {
                Ok(()) => Ok(true),
                Err(e) if os_error(&e) == Some(libc::EEXIST) => Ok(false),
                Err(e) => Err(kernel(format!("adding a clsact qdisc to {name:?}"), e).into()),
            }
        })??;
        self.created_qdisc |= created;
        Ok(())
    }

    /// Removes the qdisc this hook made, unless another filter has hooked it since.
    fn release(&mut self, netns: &NetNs, interface: &str) -> Result<()> {
        if std::mem::take(&mut self.created_qdisc) && !tc_filters_on(netns, interface)? {
            let mut cmd = netns.command("tc");
            cmd.args(["qdisc", "del", "dev", interface, "clsact"]);
            run_command(&mut cmd)?;
        }
        Ok(())
    }
}

/// A tc egress filter of ours: the link, its preference, its handle and the line.
struct TcFilter {
    link: String,
    pref: String,
    handle: String,
    line: String,
}

/// tc egress filters running one of our programs (`egb_*`) in `netns`, all of them for the
/// whole [`OBJECT_PREFIX`], else those whose handle is the [`tag_handle`] of `prefix`.
fn tc_filters(netns: &NetNs, prefix: &str) -> Result<Vec<TcFilter>> {
    let handle = format!("{:#x}", u32::from(tag_handle(prefix)));
    on_each_link(netns, |link| {
        let out = run_command(
            netns
                .command("tc")
                .args(["filter", "show", "dev", link, "egress"]),
        )?;
        let mut found = Vec::new();
        for line in out.lines().filter(|l| l.contains(" egb_")) {
            // "filter protocol all pref 49152 bpf chain 0 handle 0x1 egb_filter direct-action"
            let words: Vec<&str> = line.split_whitespace().collect();
            let after = |key: &str| {
                let at = words.iter().position(|w| *w == key)?;
                words.get(at + 1).map(|w| (*w).to_owned())
            };
            if let (Some(pref), Some(found_handle)) = (after("pref"), after("handle"))
                && (prefix == OBJECT_PREFIX || found_handle == handle)
            {
                found.push(TcFilter {
                    link: link.to_owned(),
                    pref,
                    handle: found_handle,
                    line: line.trim().to_owned(),
                });
            }
        }
        Ok(found)
    })
}

fn leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    Ok(tc_filters(netns, prefix)?
        .into_iter()
        .map(|f| format!("tc egress filter on {}: {}", f.link, f.line))
        .collect())
}

fn remove_leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for f in tc_filters(netns, prefix)? {
        run_command(netns.command("tc").args([
            "filter", "del", "dev", &f.link, "egress", "pref", &f.pref, "handle", &f.handle, "bpf",
        ]))?;
        removed.push(format!("tc egress filter on {} (pref {})", f.link, f.pref));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_handles_differ_and_are_never_zero() {
        let a = u32::from(tag_handle("egb-1a2b3c"));
        let b = u32::from(tag_handle("egb-1a2b3d"));
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert_eq!(a, u32::from(tag_handle("egb-1a2b3c")));
    }
}
