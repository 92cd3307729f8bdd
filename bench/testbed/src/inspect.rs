//! What a filter left on the client's link: anything hooked there came from a filter, since
//! the testbed hooks nothing itself.

use filter_core::run_command;

use crate::Testbed;

/// tc filters, clsact qdiscs and TCX programs on the egress of the client's link, one line
/// each. An engine's own objects elsewhere (chains, sets, maps) are listed by its
/// [`Engine::leftovers`](filter_core::Engine::leftovers).
pub fn link_hooks(bed: &Testbed) -> Vec<String> {
    let ns = bed.client();
    let link = bed.client_link();
    let mut found = Vec::new();
    if let Ok(out) = run_command(
        ns.command("tc")
            .args(["filter", "show", "dev", &link, "egress"]),
    ) {
        found.extend(
            out.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| format!("tc egress: {l}")),
        );
    }
    if let Ok(out) = run_command(ns.command("tc").args(["qdisc", "show", "dev", &link])) {
        found.extend(
            out.lines()
                .filter(|l| l.contains("clsact"))
                .map(|l| format!("qdisc: {l}")),
        );
    }
    // TCX programs show neither in tc nor in Debian 12's bpftool: ask the kernel.
    if let Ok(name) = std::ffi::CString::new(link)
        && let Ok(Ok((_, programs))) = ns.run(move || {
            aya::programs::SchedClassifier::query_tcx(
                name.as_c_str(),
                aya::programs::tc::TcAttachType::Egress,
            )
        })
    {
        found.extend(
            programs
                .iter()
                .map(|p| format!("tcx egress program id {}", p.id())),
        );
    }
    found
}
