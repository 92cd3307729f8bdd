//! Hooking the program to the interface's egress (TCX or clsact), and unhooking it.

use std::ffi::CString;

use aya::programs::LinkOrder;
use aya::programs::tc::{NlOptions, TcAttach, TcAttachType};
use filter_core::{Error, Result};

use crate::error::{TcbpfError, kernel};
use crate::instance::{Instance, program_mut};
use crate::{Attach, TcbpfFilter};

impl TcbpfFilter {
    /// Hooks a loaded instance to the interface, inside the namespace.
    pub(crate) fn hook(&mut self, instance: &mut Instance) -> Result<()> {
        let interface = CString::new(self.interface.clone())
            .map_err(|_| TcbpfError::InterfaceName(self.interface.clone()))?;
        let attach = self.attach;
        let hooked = self.program_name();
        let handle = crate::engine::tag_handle(self.tag.as_str());
        let ebpf = &mut instance.ebpf;
        let (link, created) = self.netns.run(move || -> Result<_> {
            let mut created = false;
            if attach == Attach::Clsact {
                match aya::programs::tc::qdisc_add_clsact(interface.as_c_str()) {
                    Ok(()) => created = true,
                    Err(e) if os_error(&e) == Some(libc::EEXIST) => {}
                    Err(e) => {
                        return Err(
                            kernel(format!("adding a clsact qdisc to {interface:?}"), e).into()
                        );
                    }
                }
            }
            let program = program_mut(ebpf, hooked)?;
            let how = match attach {
                Attach::Clsact => TcAttach::Netlink {
                    parent: TcAttachType::Egress.into(),
                    options: NlOptions {
                        handle,
                        ..NlOptions::default()
                    },
                },
                _ => TcAttach::Tcx {
                    attach_type: TcAttachType::Egress,
                    order: LinkOrder::default(),
                },
            };
            let link = program.attach(interface.as_c_str(), how).map_err(|e| {
                kernel(
                    format!(
                        "attaching to the egress of {interface:?} ({})",
                        attach.name()
                    ),
                    e,
                )
            })?;
            Ok((link, created))
        })??;
        self.created_qdisc |= created;
        instance.link = Some(link);
        Ok(())
    }

    /// Drops an instance (detaching it) inside the namespace: a clsact filter is removed by
    /// interface index, which only means the right interface there.
    pub(crate) fn discard(&self, instance: Instance) {
        let _ = self.netns.run(move || drop(instance));
    }

    pub(crate) fn current(&mut self) -> Result<&mut Instance> {
        self.current.as_mut().ok_or(Error::NotLoaded)
    }

    /// Whether tc filters other than ours sit on the interface's clsact hooks (ours are
    /// gone when this is asked).
    pub(crate) fn other_tc_filters(&self) -> Result<bool> {
        for direction in ["ingress", "egress"] {
            let mut cmd = self.netns.command("tc");
            cmd.args(["filter", "show", "dev", &self.interface, direction]);
            if filter_core::run_command(&mut cmd)?
                .lines()
                .any(|l| !l.trim().is_empty())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The errno somewhere in an error's chain (the netlink layer words the top of it).
fn os_error(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(code) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
        {
            return Some(code);
        }
        source = cause.source();
    }
    None
}
