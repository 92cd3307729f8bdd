//! What a filter left on the client's link: anything hooked there came from a filter, since
//! the testbed hooks nothing itself.

use filter_core::{Result, run_command};

use crate::Testbed;

/// tc filters and clsact qdiscs on the client's link, one line each. An engine's own objects
/// (chains, sets, maps, TCX programs, which only the kernel can be asked about) are listed
/// by its [`Engine::leftovers`](filter_core::Engine::leftovers).
///
/// # Errors
/// When `tc` cannot run: a check that cannot look must not report that nothing is there.
pub fn link_hooks(bed: &Testbed) -> Result<Vec<String>> {
    let ns = bed.client();
    let link = bed.client_link();
    let filters = run_command(
        ns.command("tc")
            .args(["filter", "show", "dev", &link, "egress"]),
    )?;
    let qdiscs = run_command(ns.command("tc").args(["qdisc", "show", "dev", &link]))?;
    Ok(filters
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("tc egress: {l}"))
        .chain(
            qdiscs
                .lines()
                .filter(|l| l.contains("clsact"))
                .map(|l| format!("qdisc: {l}")),
        )
        .collect())
}
