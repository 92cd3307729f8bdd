//! The reference loader's ruleset text: what a script would hand to `nft -f`.

use std::fmt::Write as _;

use ipnet::IpNet;

use crate::messages::CHAIN;

/// `{ a, b, ... }`, eight to a line.
fn elements(text: &mut String, nets: &[IpNet]) {
    text.push('{');
    for (i, net) in nets.iter().enumerate() {
        text.push_str(if i % 8 == 0 { "\n      " } else { " " });
        let _ = write!(text, "{net},");
    }
    text.push_str("\n    }");
}

/// One `set` block: `auto-merge` lets `nft` merge overlapping prefixes itself.
fn set_block(text: &mut String, name: &str, key: &str, nets: &[IpNet]) {
    let _ = write!(
        text,
        "  set {name} {{\n    type {key}\n    flags interval\n    auto-merge\n"
    );
    if !nets.is_empty() {
        text.push_str("    elements = ");
        elements(text, nets);
        text.push('\n');
    }
    text.push_str("  }\n");
}

/// A loaded table's sets emptied and filled with a new list, in one transaction (deleting
/// and re-creating the table in one file lets packets through while the hooks move).
pub(crate) fn refill(table: &str, v4: &[IpNet], v6: &[IpNet]) -> String {
    let mut text = String::with_capacity(64 + (v4.len() + v6.len()) * 24);
    for (set, nets) in [("v4-0", v4), ("v6-0", v6)] {
        let _ = writeln!(text, "flush set inet {table} {set}");
        if !nets.is_empty() {
            let _ = write!(text, "add element inet {table} {set} ");
            elements(&mut text, nets);
            text.push('\n');
        }
    }
    text
}

/// The whole table, as a script would first create it.
pub(crate) fn ruleset(table: &str, v4: &[IpNet], v6: &[IpNet]) -> String {
    let mut text = String::with_capacity(64 + (v4.len() + v6.len()) * 24);
    let _ = writeln!(text, "table inet {table} {{");
    set_block(&mut text, "v4-0", "ipv4_addr", v4);
    set_block(&mut text, "v6-0", "ipv6_addr", v6);
    let _ = write!(
        text,
        "  chain {CHAIN} {{\n    type filter hook output priority 0; policy accept;\n    \
         meta nfproto ipv4 ip daddr @v4-0 counter drop\n    \
         meta nfproto ipv6 ip6 daddr @v6-0 counter drop\n  }}\n}}\n"
    );
    text
}
