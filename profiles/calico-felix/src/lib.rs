//! `calico-felix`: Calico v3.16 Felix's iptables data path, replayed without Felix.
//!
//! No Kubernetes or Felix runs here; this profile programs the kernel objects Felix
//! programmed for the published benchmark (a GlobalNetworkSet referenced by two deny
//! GlobalNetworkPolicies and an allow policy, through a host endpoint), the way Felix writes
//! them, so the same packets do the same work:
//!
//! - the IP set: `hash:net`, `family inet` (`inet6` for IPv6), `maxelem` Felix's
//!   `MaxIpsetSize` (1,048,576 unless `--ipset-maxelem` says otherwise), no `hashsize` (the
//!   kernel starts small and grows), written in one `ipset restore` session per change: a
//!   new list creates a temporary set, adds every member, swaps it in and destroys it; later
//!   changes are `add` and `del --exist` lines. Past `maxelem` the kernel refuses with
//!   "Hash is full", as it refused Felix;
//! - the chains (module `chains`): `cali-OUTPUT`, `cali-to-host-endpoint`, `cali-th-<iface>`
//!   (conntrack's shortcut for established flows first, `cali-failsafe-out`, the mark bits),
//!   two deny policies with TCP, UDP and ICMP rules on the set, an allow policy, the drop.
//!
//! Felix's names are kept (`cali-*` chains; sets `cali40s:` / `cali60s:` with the run's tag
//! after the colon, so a cleanup finds them by tag). The profile refuses a namespace where a
//! `cali-OUTPUT` chain exists already: a real Felix's chains are never touched.

mod chains;

use filter_core::engine::{Placement, Variant};
use filter_core::{
    CidrList, EgressFilter, Engine, Error, Family, FilterStats, NetNs, Result, Tag, run_with_input,
};
use filter_ipset::IpsetOptions;
use ipnet::IpNet;
use xtables::Backend;

/// The variant's name.
pub const CALICO_FELIX: &str = "calico-felix";

/// Felix's default `MaxIpsetSize` (felix `config/config_params.go`).
pub const MAX_IPSET_SIZE: u32 = 1_048_576;

/// The profile as egress-bench's registry sees it; options [`IpsetOptions`] (`maxelem` is
/// Felix's `MaxIpsetSize`, `backend` the iptables back-end).
pub static ENGINE: Engine = Engine {
    name: "calico",
    variants: &[Variant {
        holds: Some(MAX_IPSET_SIZE as u64),
        ..Variant::profile(
            CALICO_FELIX,
            "Calico v3.16 Felix iptables data path, replayed without Felix: its ipset \
             (maxelem MaxIpsetSize, 1,048,576), chains, marks and conntrack shortcut",
            build,
        )
    }],
    leftovers,
    remove_leftovers,
    target_kind: filter_core::engine::egress_target,
};

fn build(at: &Placement) -> Result<Box<dyn EgressFilter>> {
    let options: IpsetOptions = at.options.get();
    let interface = at.target.interface().ok_or_else(|| {
        Error::InvalidInput(format!(
            "calico-felix hooks a host endpoint's interface, not the {}",
            at.target
        ))
    })?;
    Ok(Box::new(CalicoFelix::new(
        at.netns.clone(),
        at.tag.clone(),
        interface,
        options.backend,
        options.maxelem.unwrap_or(MAX_IPSET_SIZE),
    )?))
}

/// Felix's set prefix per family: `cali40s:` / `cali60s:`, temporary `cali4t0:` / `cali6t0:`.
fn set_name(family: Family, temporary: bool, tag: &str) -> String {
    let digit = match family {
        Family::V4 => 4,
        Family::V6 => 6,
    };
    let kind = if temporary { "t0" } else { "0s" };
    // Felix: `cali40s:` + 23 characters of a hash; here the run's tag stands there.
    format!("cali{digit}{kind}:{tag}")
}

/// The replayed data path in one namespace, on one interface's host endpoint.
#[derive(Debug)]
pub struct CalicoFelix {
    netns: NetNs,
    tag: Tag,
    interface: String,
    backend: Backend,
    maxelem: u32,
    held: filter_core::Held,
    loaded: bool,
    /// How long the last full `ipset restore` of the list and a full `ipset list` of the
    /// sets took, in seconds: Felix does both, and reports itself not live when its loop is
    /// silent for [`FELIX_LIVENESS_SECONDS`].
    felix_seconds: Option<(f64, f64)>,
}

/// Felix reports itself not live when its data-plane loop is silent this long.
pub const FELIX_LIVENESS_SECONDS: f64 = 20.0;

impl CalicoFelix {
    /// The profile for `interface` in `netns`, its sets named after `tag`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a `cali-OUTPUT` chain exists already (a Felix of its
    /// own runs there).
    pub fn new(
        netns: NetNs,
        tag: Tag,
        interface: &str,
        backend: Backend,
        maxelem: u32,
    ) -> Result<Self> {
        for family in Family::BOTH {
            if xtables::chain_exists(&netns, backend, family, "cali-OUTPUT") {
                return Err(Error::InvalidInput(
                    "cali-OUTPUT exists here: a Calico Felix (or another replay) owns these \
                     chains, and the profile does not touch them"
                        .into(),
                ));
            }
        }
        Ok(Self {
            netns,
            tag,
            interface: interface.to_owned(),
            backend,
            maxelem,
            held: filter_core::Held::default(),
            loaded: false,
            felix_seconds: None,
        })
    }

    fn set(&self, family: Family) -> String {
        set_name(family, false, self.tag.as_str())
    }

    /// One `ipset restore` session (Felix writes each change this way) of `requested`
    /// members at most; the kernel's "Hash is full" is Felix's `MaxIpsetSize`, named so.
    fn restore(
        &self,
        requested: u64,
        write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
    ) -> Result<()> {
        let result = run_with_input(self.netns.command("ipset").arg("restore"), write);
        match result {
            Err(Error::Command { stderr, .. }) if stderr.contains("Hash is full") => {
                Err(Error::Limit {
                    limit: "Calico Felix MaxIpsetSize (the set's maxelem)",
                    requested,
                    max: u64::from(self.maxelem),
                    hint: format!(
                        "the kernel refused as it refused Felix: \"{}\"; raise MaxIpsetSize \
                         (--ipset-maxelem)",
                        stderr.lines().last().unwrap_or_default().trim()
                    ),
                })
            }
            other => other,
        }
    }

    /// A new list into the main set of each family, as Felix writes one: a temporary set,
    /// every member, a swap, the temporary set destroyed. `create` makes the main set first.
    fn write_list(&self, list: &CidrList, create: bool) -> Result<()> {
        for family in Family::BOTH {
            let (main, temp) = (self.set(family), set_name(family, true, self.tag.as_str()));
            let inet = match family {
                Family::V4 => "inet",
                Family::V6 => "inet6",
            };
            let maxelem = self.maxelem;
            let written = self.restore(list.len_of(family) as u64, |w| {
                let create_line = |w: &mut dyn std::io::Write, name: &str| {
                    writeln!(w, "create {name} hash:net family {inet} maxelem {maxelem}")
                };
                if create {
                    create_line(w, &main)?;
                }
                create_line(w, &temp)?;
                match family {
                    Family::V4 => list
                        .v4()
                        .iter()
                        .try_for_each(|n| writeln!(w, "add {temp} {n}"))?,
                    Family::V6 => list
                        .v6()
                        .iter()
                        .try_for_each(|n| writeln!(w, "add {temp} {n}"))?,
                }
                writeln!(w, "swap {temp} {main}")?;
                writeln!(w, "destroy {temp}")
            });
            if let Err(e) = written {
                // A refused session applied its lines up to the refusal: the temporary set
                // (and on a load the main one) may be there.
                let _ = self.destroy_sets(family, create);
                return Err(e);
            }
        }
        Ok(())
    }

    fn destroy_sets(&self, family: Family, main_too: bool) -> Result<()> {
        let mut names = vec![set_name(family, true, self.tag.as_str())];
        if main_too {
            names.push(self.set(family));
        }
        for name in names {
            let _ = filter_core::run_command(self.netns.command("ipset").args(["destroy", &name]));
        }
        Ok(())
    }

    fn icmp(family: Family) -> &'static str {
        match family {
            Family::V4 => "icmp",
            Family::V6 => "ipv6-icmp",
        }
    }

    fn members(&self, family: Family) -> Result<u64> {
        let text = filter_core::run_command(self.netns.command("ipset").args([
            "list",
            "-t",
            &self.set(family),
        ]))?;
        text.lines()
            .find_map(|l| l.strip_prefix("Number of entries:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| {
                Error::InvalidInput(format!("no entry count for set {}", self.set(family)))
            })
    }

    fn change(&mut self, entries: &[IpNet], add: bool) -> Result<()> {
        if !self.loaded {
            return Err(Error::NotLoaded);
        }
        let (v4, v6) = (self.set(Family::V4), self.set(Family::V6));
        let held = self.held.list();
        let requested = (held.len() + if add { entries.len() } else { 0 }) as u64;
        self.restore(requested, |w| {
            for net in entries {
                let set = if net.addr().is_ipv4() { &v4 } else { &v6 };
                if add {
                    writeln!(w, "add {set} {} -exist", net.trunc())?;
                } else {
                    writeln!(w, "del {set} {} -exist", net.trunc())?;
                }
            }
            Ok(())
        })?;
        if add {
            self.held.add(entries);
        } else {
            self.held.remove(entries);
        }
        Ok(())
    }
}

impl EgressFilter for CalicoFelix {
    fn name(&self) -> &'static str {
        CALICO_FELIX
    }

    fn backend(&self) -> String {
        let felix = self
            .felix_seconds
            .map_or_else(String::new, |(restore, list)| {
                format!(
                    "; a full ipset restore took {restore:.1} s and a full ipset list {list:.1} s \
                 (Felix's liveness window: {FELIX_LIVENESS_SECONDS:.0} s)"
                )
            });
        format!(
            "Calico v3.16 Felix iptables data path, replayed without Felix: ipset hash:net \
             maxelem {} through ipset restore, cali-* chains on {} ({}){felix}",
            self.maxelem,
            self.interface,
            self.backend.describe()
        )
    }

    fn load(&mut self, list: &CidrList) -> Result<()> {
        if self.loaded {
            return Err(Error::AlreadyLoaded);
        }
        // Felix writes its sets before the rules that name them.
        let restore = std::time::Instant::now();
        self.write_list(list, true)?;
        let restore = restore.elapsed().as_secs_f64();
        for family in Family::BOTH {
            let rules = chains::ruleset(&self.interface, &self.set(family), Self::icmp(family));
            if let Err(e) = xtables::restore(&self.netns, self.backend, family, &rules) {
                if family == Family::V6 {
                    let _ = xtables::restore(
                        &self.netns,
                        self.backend,
                        Family::V4,
                        &chains::removal(&self.interface),
                    );
                }
                for family in Family::BOTH {
                    let _ = self.destroy_sets(family, true);
                }
                return Err(e);
            }
        }
        self.loaded = true;
        self.held.set(list);
        // What Felix's periodic resync reads back: every member of every set.
        let listing = std::time::Instant::now();
        for family in Family::BOTH {
            filter_core::run_command(
                self.netns
                    .command("ipset")
                    .args(["list", &self.set(family)]),
            )?;
        }
        self.felix_seconds = Some((restore, listing.elapsed().as_secs_f64()));
        Ok(())
    }

    fn warnings(&self) -> Vec<String> {
        let Some((restore, list)) = self.felix_seconds else {
            return Vec::new();
        };
        [("restore", restore), ("list", list)]
            .into_iter()
            .filter(|&(_, seconds)| seconds > FELIX_LIVENESS_SECONDS)
            .map(|(what, seconds)| {
                format!(
                    "a full `ipset {what}` of the list took {seconds:.1} s, over Felix's \
                     {FELIX_LIVENESS_SECONDS:.0} s liveness window: Felix would have reported \
                     itself not live meanwhile"
                )
            })
            .collect()
    }

    fn replace(&mut self, list: &CidrList) -> Result<()> {
        if !self.loaded {
            return Err(Error::NotLoaded);
        }
        self.write_list(list, false)?;
        self.held.set(list);
        Ok(())
    }

    fn add(&mut self, entries: &[IpNet]) -> Result<()> {
        self.change(entries, true)
    }

    fn remove(&mut self, entries: &[IpNet]) -> Result<()> {
        self.change(entries, false)
    }

    fn held(&self) -> Option<CidrList> {
        self.loaded.then(|| self.held.list())
    }

    fn stats(&self) -> Result<FilterStats> {
        if !self.loaded {
            return Err(Error::NotLoaded);
        }
        Ok(FilterStats {
            entries_v4: self.members(Family::V4)?,
            entries_v6: self.members(Family::V6)?,
            packets_matched: None,
            bytes_matched: None,
            kernel_memory: None,
        })
    }

    fn kernel_count(&self) -> Result<Option<filter_core::KernelCount>> {
        if !self.loaded {
            return Err(Error::NotLoaded);
        }
        let held = self.held.list();
        let distinct = |nets: Vec<IpNet>| -> u64 {
            nets.into_iter()
                .map(|n| n.trunc())
                .collect::<std::collections::HashSet<_>>()
                .len() as u64
        };
        Ok(Some(filter_core::KernelCount {
            unit: filter_core::CountUnit::SetMembers,
            read: [
                Some(self.members(Family::V4)?),
                Some(self.members(Family::V6)?),
            ],
            expected: [
                distinct(held.v4().iter().map(|&n| IpNet::V4(n)).collect()),
                distinct(held.v6().iter().map(|&n| IpNet::V6(n)).collect()),
            ],
        }))
    }

    fn teardown(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.loaded) {
            return Ok(());
        }
        self.held = filter_core::Held::default();
        let mut first = None;
        for family in Family::BOTH {
            if let Err(e) = xtables::restore(
                &self.netns,
                self.backend,
                family,
                &chains::removal(&self.interface),
            ) {
                first.get_or_insert(e);
            }
        }
        for family in Family::BOTH {
            let _ = self.destroy_sets(family, true);
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for CalicoFelix {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// The profile's sets in `netns` whose tag falls under `prefix`, and, where there are any,
/// its `cali-*` chains (Felix's names carry no tag; they live beside the sets).
fn leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let (sets, chains) = found(netns, prefix)?;
    Ok(sets
        .into_iter()
        .map(|s| format!("ipset {s}"))
        .chain(
            chains
                .into_iter()
                .map(|(b, f, c)| format!("{} {f:?} chain {c}", b.name())),
        )
        .collect())
}

/// A chain: the back-end and family of its table, and its name.
type Chain = (Backend, Family, String);

fn found(netns: &NetNs, prefix: &str) -> Result<(Vec<String>, Vec<Chain>)> {
    let names = filter_core::run_command(netns.command("ipset").args(["list", "-n"]))?;
    let sets: Vec<String> = names
        .lines()
        .filter(|n| n.starts_with("cali"))
        .filter(|n| {
            n.split_once(':')
                .is_some_and(|(_, tag)| filter_core::under_prefix(tag, prefix))
        })
        .map(str::to_owned)
        .collect();
    let chains = if sets.is_empty() {
        Vec::new()
    } else {
        xtables::chains(netns, "cali-")?
    };
    Ok((sets, chains))
}

fn remove_leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let (sets, chains) = found(netns, prefix)?;
    let mut removed = Vec::new();
    let mut tables: Vec<(Backend, Family)> = chains.iter().map(|(b, f, _)| (*b, *f)).collect();
    tables.dedup();
    for (backend, family) in tables {
        let mut text = String::from("*filter\n");
        if xtables::chain_exists(netns, backend, family, "cali-OUTPUT") {
            text.push_str("-D OUTPUT -j cali-OUTPUT\n");
        }
        let mine: Vec<&String> = chains
            .iter()
            .filter(|(b, f, _)| (*b, *f) == (backend, family))
            .map(|(_, _, c)| c)
            .collect();
        for c in &mine {
            text.push_str(&format!("-F {c}\n"));
        }
        for c in &mine {
            text.push_str(&format!("-X {c}\n"));
        }
        text.push_str("COMMIT\n");
        xtables::restore(netns, backend, family, &text)?;
        removed.extend(
            mine.iter()
                .map(|c| format!("{} {family:?} chain {c}", backend.name())),
        );
    }
    for set in sets {
        filter_core::run_command(netns.command("ipset").args(["destroy", &set]))?;
        removed.push(format!("ipset {set}"));
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names_follow_felix_with_the_tag() {
        assert_eq!(set_name(Family::V4, false, "egb-ab12"), "cali40s:egb-ab12");
        assert_eq!(set_name(Family::V6, true, "egb-ab12"), "cali6t0:egb-ab12");
    }
}
