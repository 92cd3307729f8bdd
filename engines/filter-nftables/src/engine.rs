//! The engine as egress-bench's registry sees it: its variants, its options and how to find
//! the tables a run left in a namespace.

use filter_core::engine::{Placement, Variant};
use filter_core::{EgressFilter, Engine, NetNs, Result, run_command};

use crate::{Loader, NftablesFilter};

/// The engine's variant: sets filled over nfnetlink.
pub const NFTABLES: &str = "nftables";
/// The reference loader's variant: the same ruleset as text through `nft -f`.
pub const NFT_F: &str = "nft-f";

/// The engine: [`NFTABLES`] and its reference loader [`NFT_F`]; options [`NftablesOptions`].
pub static ENGINE: Engine = Engine {
    name: "nftables",
    variants: &[
        Variant {
            load_compared_with: Some(NFT_F),
            ..Variant::engine(
                NFTABLES,
                "nftables hash sets, one per family and prefix length (inet table, output \
                 hook), filled over nfnetlink in batched transactions, one rule per set",
                |at| build(at, Loader::Netlink),
            )
        },
        Variant::reference(
            NFT_F,
            "Reference loader: the same ruleset as text through `nft -f`",
            |at| build(at, Loader::Script),
        ),
    ],
    leftovers,
    remove_leftovers,
    target_kind: filter_core::engine::egress_target,
};

/// The settings of the nftables engine in a [`Placement`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NftablesOptions {
    /// Hosts' sets that keep time, for `add_with_timeout` (the kernel's resizable hash,
    /// slower to load).
    pub timeouts: bool,
}

fn build(at: &Placement, loader: Loader) -> Result<Box<dyn EgressFilter>> {
    let mut filter = NftablesFilter::with_loader(at.netns.clone(), at.tag.clone(), loader)?;
    if at.options.get::<NftablesOptions>().timeouts {
        filter = filter.with_timeouts();
    }
    Ok(Box::new(filter))
}

/// The tables in `netns` whose names start with `prefix`.
fn tables(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    Ok(
        run_command(netns.command("nft").args(["list", "tables", "inet"]))?
            .lines()
            .filter_map(|l| l.strip_prefix("table inet "))
            .filter(|name| filter_core::under_prefix(name, prefix))
            .map(str::to_owned)
            .collect(),
    )
}

fn leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    Ok(tables(netns, prefix)?
        .into_iter()
        .map(|t| format!("nftables table inet {t}"))
        .collect())
}

fn remove_leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for table in tables(netns, prefix)? {
        run_command(
            netns
                .command("nft")
                .args(["delete", "table", "inet", &table]),
        )?;
        removed.push(format!("nftables table inet {table}"));
    }
    Ok(removed)
}
