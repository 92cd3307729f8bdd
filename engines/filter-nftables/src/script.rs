//! The reference loader's ruleset text: what a script would hand to `nft -f`.

use std::fmt::Write as _;

use filter_core::Family;
use ipnet::IpNet;

use filter_core::Result;

use crate::layout::{SETS, family_index, hash_size, set_name};
use crate::messages::{CHAIN, SetKind};
use crate::state::FamilyState;
use crate::{Loaded, NftablesFilter};

/// A set as the script writes it.
pub(crate) struct ScriptSet {
    /// Its name (`h4-0`).
    pub(crate) name: String,
    /// Its family.
    pub(crate) family: Family,
    /// Hash or intervals.
    pub(crate) kind: SetKind,
    /// Its entries.
    pub(crate) nets: Vec<IpNet>,
    /// A hash set's size, as the engine makes it.
    pub(crate) size: u32,
}

/// `{ a, b, ... }`, eight to a line; a set without intervals takes bare addresses.
fn elements(text: &mut String, kind: SetKind, nets: &[IpNet]) {
    text.push('{');
    for (i, net) in nets.iter().enumerate() {
        text.push_str(if i % 8 == 0 { "\n      " } else { " " });
        let _ = match kind {
            SetKind::Hash => write!(text, "{},", net.addr()),
            SetKind::Interval => write!(text, "{net},"),
        };
    }
    text.push_str("\n    }");
}

/// One `set` block; an interval set gets `auto-merge`, so that `nft` merges overlapping
/// prefixes itself.
fn set_block(text: &mut String, set: &ScriptSet) {
    let (name, nets) = (&set.name, &set.nets);
    let key = match set.family {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    };
    let _ = write!(text, "  set {name} {{\n    type {key}\n");
    match set.kind {
        SetKind::Interval => text.push_str("    flags interval\n    auto-merge\n"),
        SetKind::Hash => {
            let _ = writeln!(text, "    size {}", set.size);
        }
    }
    if !nets.is_empty() {
        text.push_str("    elements = ");
        elements(text, set.kind, nets);
        text.push('\n');
    }
    text.push_str("  }\n");
}

/// A loaded table's sets emptied and filled with a new list, in one transaction (deleting
/// and re-creating the table in one file lets packets through while the hooks move).
pub(crate) fn refill(table: &str, sets: &[ScriptSet]) -> String {
    let entries: usize = sets.iter().map(|s| s.nets.len()).sum();
    let mut text = String::with_capacity(64 + entries * 24);
    for ScriptSet {
        name: set,
        kind,
        nets,
        ..
    } in sets
    {
        let _ = writeln!(text, "flush set inet {table} {set}");
        if !nets.is_empty() {
            let _ = write!(text, "add element inet {table} {set} ");
            elements(&mut text, *kind, nets);
            text.push('\n');
        }
    }
    text
}

/// The whole table, as a script would first create it.
pub(crate) fn ruleset(table: &str, sets: &[ScriptSet]) -> String {
    let entries: usize = sets.iter().map(|s| s.nets.len()).sum();
    let mut text = String::with_capacity(64 + entries * 24);
    let _ = writeln!(text, "table inet {table} {{");
    for set in sets {
        set_block(&mut text, set);
    }
    let _ = write!(
        text,
        "  chain {CHAIN} {{\n    type filter hook output priority 0; policy accept;\n"
    );
    for ScriptSet { name, family, .. } in sets {
        let (proto, ip) = match family {
            Family::V4 => ("ipv4", "ip"),
            Family::V6 => ("ipv6", "ip6"),
        };
        let _ = writeln!(
            text,
            "    meta nfproto {proto} {ip} daddr @{name} counter drop"
        );
    }
    text.push_str("  }\n}\n");
    text
}

impl NftablesFilter {
    /// The ruleset through `nft -f`: the whole table for a load, the sets emptied and filled
    /// again (one transaction) once loaded.
    pub(crate) fn script(&mut self, families: [FamilyState; 2]) -> Result<()> {
        let sets: Vec<ScriptSet> = SETS
            .into_iter()
            .map(|(family, kind)| {
                let state = &families[family_index(family)];
                let nets = state.nets(kind);
                ScriptSet {
                    name: set_name(family, kind, 0),
                    family,
                    kind,
                    size: hash_size(state.host_count()),
                    nets,
                }
            })
            .collect();
        let text = if self.loaded.is_some() {
            refill(self.table(), &sets)
        } else {
            ruleset(self.table(), &sets)
        };
        let mut cmd = self.netns.command("nft");
        cmd.args(["-f", "-"]);
        filter_core::run_with_input(&mut cmd, |w| w.write_all(text.as_bytes()))?;
        self.loaded = Some(Loaded {
            generation: 0,
            capacity: families.each_ref().map(|f| hash_size(f.host_count())),
            families,
        });
        Ok(())
    }
}
