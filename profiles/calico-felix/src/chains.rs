//! The chains Felix v3.16 programs for a host endpoint's egress, as `iptables-restore` text
//! (`rules/static.go`, `endpoints.go`, `policy.go` of felix v3.16.4; facts in
//! `shared/notes/cni-data-paths.md`): `OUTPUT -> cali-OUTPUT -> cali-to-host-endpoint ->
//! cali-th-<iface>`, conntrack's shortcut for established flows, the failsafe ports, the
//! mark bits, then the benchmark's policies: two deny policies with a TCP, a UDP and an ICMP
//! rule on the set each, and an allow policy; a packet no policy accepted is dropped.

use std::fmt::Write as _;

/// Felix's accept mark.
const ACCEPT: &str = "0x10000";
/// Felix's pass mark.
const PASS: &str = "0x20000";

/// The policy chains in the order the endpoint chain calls them.
pub(crate) const POLICIES: [&str; 3] = [
    "cali-po-egb-deny-a",
    "cali-po-egb-deny-b",
    "cali-po-egb-allow",
];

/// Every chain the profile makes, callers first.
pub(crate) fn names(interface: &str) -> Vec<String> {
    let mut names: Vec<String> = ["cali-OUTPUT", "cali-to-host-endpoint", "cali-failsafe-out"]
        .map(str::to_owned)
        .to_vec();
    names.insert(2, endpoint_chain(interface));
    names.extend(POLICIES.map(str::to_owned));
    names
}

/// `cali-th-<iface>`: the host endpoint's egress chain.
pub(crate) fn endpoint_chain(interface: &str) -> String {
    format!("cali-th-{interface}")
}

/// The whole ruleset for one family, matching packets whose destination is in `set`.
pub(crate) fn ruleset(interface: &str, set: &str, icmp: &str) -> String {
    let endpoint = endpoint_chain(interface);
    let mut t = String::from("*filter\n");
    for chain in names(interface) {
        let _ = writeln!(t, ":{chain} - [0:0]");
    }
    // Felix puts its jump first in OUTPUT.
    let _ = writeln!(t, "-I OUTPUT 1 -j cali-OUTPUT");
    let _ = writeln!(
        t,
        "-A cali-OUTPUT -m mark --mark {ACCEPT}/{ACCEPT} -j ACCEPT"
    );
    let _ = writeln!(t, "-A cali-OUTPUT -o cali+ -j RETURN");
    let _ = writeln!(t, "-A cali-OUTPUT -j MARK --set-xmark 0x0/0xf0000");
    let _ = writeln!(t, "-A cali-OUTPUT -j cali-to-host-endpoint");
    let _ = writeln!(
        t,
        "-A cali-OUTPUT -m mark --mark {ACCEPT}/{ACCEPT} -j ACCEPT"
    );
    let _ = writeln!(t, "-A cali-to-host-endpoint -o {interface} -g {endpoint}");
    let _ = writeln!(
        t,
        "-A {endpoint} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    );
    let _ = writeln!(t, "-A {endpoint} -m conntrack --ctstate INVALID -j DROP");
    let _ = writeln!(t, "-A {endpoint} -j cali-failsafe-out");
    let _ = writeln!(t, "-A {endpoint} -j MARK --set-xmark 0x0/0x30000");
    for policy in POLICIES {
        let _ = writeln!(
            t,
            "-A {endpoint} -m mark --mark 0x0/{PASS} -j {policy}\n\
             -A {endpoint} -m mark --mark {ACCEPT}/{ACCEPT} -j RETURN"
        );
    }
    let _ = writeln!(
        t,
        "-A {endpoint} -m comment --comment \"Drop if no policies passed packet\" -j DROP"
    );
    for (proto, port) in [
        ("udp", 53),
        ("udp", 67),
        ("tcp", 179),
        ("tcp", 2379),
        ("tcp", 2380),
        ("tcp", 5473),
        ("tcp", 6443),
        ("tcp", 6666),
        ("tcp", 6667),
    ] {
        let _ = writeln!(
            t,
            "-A cali-failsafe-out -p {proto} -m {proto} --dport {port} -j ACCEPT"
        );
    }
    for deny in &POLICIES[..2] {
        for proto in ["tcp", "udp", icmp] {
            let _ = writeln!(
                t,
                "-A {deny} -p {proto} -m set --match-set {set} dst -j DROP"
            );
        }
    }
    let allow = POLICIES[2];
    let _ = writeln!(t, "-A {allow} -j MARK --set-xmark {ACCEPT}/{ACCEPT}");
    let _ = writeln!(t, "-A {allow} -m mark --mark {ACCEPT}/{ACCEPT} -j RETURN");
    t.push_str("COMMIT\n");
    t
}

/// The transaction that unhooks and deletes every chain of the profile.
pub(crate) fn removal(interface: &str) -> String {
    let mut t = String::from("*filter\n-D OUTPUT -j cali-OUTPUT\n");
    let chains = names(interface);
    for chain in &chains {
        let _ = writeln!(t, "-F {chain}");
    }
    for chain in &chains {
        let _ = writeln!(t, "-X {chain}");
    }
    t.push_str("COMMIT\n");
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout Felix v3.16 writes: established first, failsafe, the policies in order with
    /// their return on the accept mark, the final drop; six deny rules on the set.
    #[test]
    fn the_ruleset_has_felix_s_layout() {
        let t = ruleset("eth0", "cali40s:egb-x", "icmp");
        let endpoint: Vec<&str> = t
            .lines()
            .filter(|l| l.starts_with("-A cali-th-eth0"))
            .collect();
        assert!(endpoint[0].contains("RELATED,ESTABLISHED -j ACCEPT"), "{t}");
        assert!(endpoint[2].ends_with("-j cali-failsafe-out"));
        assert!(endpoint.last().unwrap().ends_with("-j DROP"));
        assert_eq!(
            t.matches("--match-set cali40s:egb-x dst -j DROP").count(),
            6
        );
        assert!(t.contains("-A cali-to-host-endpoint -o eth0 -g cali-th-eth0"));
        assert!(removal("eth0").contains("-X cali-po-egb-allow"));
    }
}
