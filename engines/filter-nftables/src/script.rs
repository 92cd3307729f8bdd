//! The reference loader's ruleset text: what a script would hand to `nft -f`.

use std::fmt::Write as _;

use filter_core::{Family, Result};
use ipnet::IpNet;

use crate::layout::{MadeSet, family_index, set_name, sets_for, width};
use crate::messages::{CHAIN, SetKind};
use crate::state::FamilyState;
use crate::{Loaded, NftablesFilter};

/// `{ a, b, ... }`, eight to a line: the sets hold bare addresses (hosts, or the network
/// addresses of one prefix length).
fn elements(text: &mut String, nets: &[IpNet]) {
    text.push('{');
    for (i, net) in nets.iter().enumerate() {
        text.push_str(if i % 8 == 0 { "\n      " } else { " " });
        let _ = write!(text, "{},", net.addr());
    }
    text.push_str("\n    }");
}

/// `ip daddr` or `ip6 daddr & <mask>`: the destination as a set of `kind` is looked up with.
fn destination(family: Family, kind: SetKind) -> String {
    let ip = match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    };
    match kind {
        SetKind::Hash => format!("{ip} daddr"),
        SetKind::Prefix(len) => {
            let mask = width(family).mask(len);
            let mask: std::net::IpAddr = match family {
                #[expect(clippy::cast_possible_truncation, reason = "IPv4 masks are 32 bits")]
                Family::V4 => std::net::Ipv4Addr::from(mask as u32).into(),
                Family::V6 => std::net::Ipv6Addr::from(mask).into(),
            };
            format!("{ip} daddr & {mask}")
        }
    }
}

/// The table block: `sets` of `generation` filled from `families`, and the chain with a
/// rule per set (added to the chain as it stands: a refill flushes it first).
fn table_block(
    table: &str,
    families: &[FamilyState; 2],
    sets: &[MadeSet],
    generation: u32,
) -> String {
    let entries: u64 = families.iter().map(FamilyState::entries).sum();
    let mut text = String::with_capacity(256 + entries as usize * 24);
    let _ = writeln!(text, "table inet {table} {{");
    for &(family, kind, size) in sets {
        let name = set_name(family, kind, generation);
        let key = match family {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        let _ = write!(text, "  set {name} {{\n    type {key}\n    size {size}\n");
        let nets = families[family_index(family)].nets(kind);
        if !nets.is_empty() {
            text.push_str("    elements = ");
            elements(&mut text, &nets);
            text.push('\n');
        }
        text.push_str("  }\n");
    }
    let _ = write!(
        text,
        "  chain {CHAIN} {{\n    type filter hook output priority 0; policy accept;\n"
    );
    for &(family, kind, _) in sets {
        let name = set_name(family, kind, generation);
        let proto = match family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        };
        let _ = writeln!(
            text,
            "    meta nfproto {proto} {} @{name} counter drop",
            destination(family, kind)
        );
    }
    text.push_str("  }\n}\n");
    text
}

/// The whole table, as a script would first create it.
pub(crate) fn ruleset(table: &str, families: &[FamilyState; 2], sets: &[MadeSet]) -> String {
    table_block(table, families, sets, 0)
}

/// A loaded table moved to new sets in one transaction: its rules flushed, its sets
/// deleted, new sets filled and the rules added again (deleting and re-creating the table
/// in one file lets packets through while the hooks move).
pub(crate) fn refill(
    table: &str,
    old: (&[MadeSet], u32),
    families: &[FamilyState; 2],
    sets: &[MadeSet],
) -> String {
    let (old_sets, old_generation) = old;
    let mut text = format!("flush chain inet {table} {CHAIN}\n");
    for &(family, kind, _) in old_sets {
        let _ = writeln!(
            text,
            "delete set inet {table} {}",
            set_name(family, kind, old_generation)
        );
    }
    text.push_str(&table_block(table, families, sets, old_generation + 1));
    text
}

impl NftablesFilter {
    /// The ruleset through `nft -f`: the whole table for a load, new sets swapped in (one
    /// transaction) once loaded.
    pub(crate) fn script(&mut self, families: [FamilyState; 2]) -> Result<()> {
        let sets = sets_for(&families);
        let (text, generation) = match &self.loaded {
            Some(loaded) => (
                refill(
                    self.table(),
                    (&loaded.sets, loaded.generation),
                    &families,
                    &sets,
                ),
                loaded.generation + 1,
            ),
            None => (ruleset(self.table(), &families, &sets), 0),
        };
        let mut cmd = self.netns.command("nft");
        cmd.args(["-f", "-"]);
        filter_core::run_with_input(&mut cmd, |w| w.write_all(text.as_bytes()))?;
        self.loaded = Some(Loaded {
            generation,
            sets,
            families,
        });
        Ok(())
    }
}
