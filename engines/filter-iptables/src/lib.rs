//! Egress filter engine with one `DROP` rule per CIDR: the baseline every published
//! egress-filter comparison starts from.
//!
//! The rules live in a chain named after the filter's [`Tag`], jumped to from `OUTPUT`
//! (`iptables` for IPv4, `ip6tables` for IPv6). Every change is one `iptables-restore
//! --noflush` transaction per family, so the kernel never holds half a list: the legacy
//! back-end swaps its whole table blob, nf_tables commits one batch.
//!
//! Requires the iptables tools (1.8+, `iptables-restore` with `--wait`) and `CAP_NET_ADMIN`
//! in the target namespace. Cost grows linearly with the rule count, on every packet.
//!
//! ```no_run
//! use filter_core::{CidrList, EgressFilter, NetNs, Tag};
//! use filter_iptables::{Backend, IptablesFilter};
//!
//! let list: CidrList = ["203.0.113.0/24".parse()?].into_iter().collect();
//! let mut filter = IptablesFilter::new(NetNs::named("blue"), Tag::new("demo")?, Backend::Nft);
//! filter.load(&list)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod error;
mod legacy;

use std::collections::HashMap;
use std::fmt::Display;
use std::io::{self, Write};

use filter_core::engine::{Placement, Variant};
use filter_core::{CidrList, EgressFilter, Engine, Family, FilterStats, NetNs, Result, Tag};
use ipnet::IpNet;

pub use error::IptablesError;
pub use legacy::XT_MAX_TABLE_SIZE;
pub use xtables::Backend;

/// The engine's variant: rules streamed into one restore transaction per family.
pub const IPTABLES: &str = "iptables";
/// The reference loader's variant: the same rules from a script.
pub const IPTABLES_RESTORE: &str = "iptables-restore";

/// The engine, as egress-bench's registry sees it: [`IPTABLES`] and its reference loader
/// [`IPTABLES_RESTORE`]; options [`IptablesOptions`].
pub static ENGINE: Engine = Engine {
    name: "iptables",
    variants: &[
        Variant {
            load_compared_with: Some(IPTABLES_RESTORE),
            ..Variant::engine(
                IPTABLES,
                "One iptables DROP rule per CIDR, streamed into iptables-restore",
                |at| {
                    Ok(Box::new(IptablesFilter::new(
                        at.netns.clone(),
                        at.tag.clone(),
                        backend(at),
                    )))
                },
            )
        },
        Variant::reference(
            IPTABLES_RESTORE,
            "Reference loader: the same rules from a script through iptables-restore",
            |at| {
                Ok(Box::new(IptablesFilter::reference(
                    at.netns.clone(),
                    at.tag.clone(),
                    backend(at),
                )))
            },
        ),
    ],
    leftovers: xtables::chain_leftovers,
    remove_leftovers: xtables::remove_chain_leftovers,
    target_kind: filter_core::engine::egress_target,
};

/// The settings of the iptables engine in a [`Placement`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IptablesOptions {
    /// Which iptables back-end rules go through (`nft` by default).
    pub backend: Backend,
}

/// The iptables back-end a placement asks for.
fn backend(at: &Placement) -> Backend {
    at.options.get::<IptablesOptions>().backend
}

/// How the rule text reaches `iptables-restore`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loader {
    /// Streamed into the restore process while it parses (the engine).
    Streamed,
    /// Written out as a whole script first, then restored (what a shell script does; the
    /// reference loader every load time is compared with).
    Script,
}

/// What a rule line does to the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleOp {
    /// `-A`: append the rule.
    Append,
    /// `-D`: delete the first rule equal to it.
    Delete,
}

impl RuleOp {
    fn flag(self) -> &'static str {
        match self {
            RuleOp::Append => "-A",
            RuleOp::Delete => "-D",
        }
    }
}

/// One DROP rule per CIDR; see the [crate docs](crate).
#[derive(Debug)]
pub struct IptablesFilter {
    netns: NetNs,
    tag: Tag,
    backend: Backend,
    loader: Loader,
    loaded: bool,
    /// The loaded list, kept so that rule counts are built only when first needed.
    list: CidrList,
    /// Rules per entry, so that adding a present entry or removing an absent one is a no-op;
    /// built from `list` on the first add or remove.
    rules: Option<HashMap<IpNet, u32>>,
    /// Tests only: the next IPv6 transaction fails, as a kernel refusal would.
    fail_next_v6: std::cell::Cell<bool>,
}

impl IptablesFilter {
    /// The engine: rule text streamed into one restore transaction per family.
    pub fn new(netns: NetNs, tag: Tag, backend: Backend) -> Self {
        Self::with_loader(netns, tag, backend, Loader::Streamed)
    }

    /// The reference loader: the same rules, written as a script and restored the way a
    /// shell script would (`iptables-restore --noflush < rules`).
    pub fn reference(netns: NetNs, tag: Tag, backend: Backend) -> Self {
        Self::with_loader(netns, tag, backend, Loader::Script)
    }

    fn with_loader(netns: NetNs, tag: Tag, backend: Backend, loader: Loader) -> Self {
        Self {
            netns,
            tag,
            backend,
            loader,
            loaded: false,
            list: CidrList::new(),
            rules: None,
            fail_next_v6: std::cell::Cell::new(false),
        }
    }

    /// Tests only (feature `test-hooks`): the next replace fails half way, at its IPv6
    /// restore transaction, to prove the old list stays in force in both families.
    #[cfg(feature = "test-hooks")]
    pub fn fail_next_swap(&mut self) {
        self.fail_next_v6.set(true);
    }

    /// The IPv4 rules in force: the loaded list changed by any adds and removes.
    fn live_v4(&self) -> Vec<IpNet> {
        match &self.rules {
            None => self.list.v4().iter().map(|&n| IpNet::V4(n)).collect(),
            Some(rules) => rules
                .iter()
                .filter(|(net, _)| matches!(net, IpNet::V4(_)))
                .flat_map(|(&net, &count)| std::iter::repeat_n(net, count as usize))
                .collect(),
        }
    }

    /// The rules the bookkeeping says are in each family's chain (IPv4, IPv6).
    fn rules_written(&self) -> [u64; 2] {
        match &self.rules {
            None => [self.list.v4().len() as u64, self.list.v6().len() as u64],
            Some(rules) => rules
                .iter()
                .fold([0, 0], |[v4, v6], (net, &count)| match net {
                    IpNet::V4(_) => [v4 + u64::from(count), v6],
                    IpNet::V6(_) => [v4, v6 + u64::from(count)],
                }),
        }
    }

    /// The chain holding the rules.
    pub fn chain(&self) -> &str {
        self.tag.as_str()
    }

    /// The back-end in use.
    pub fn backend_kind(&self) -> Backend {
        self.backend
    }

    fn transaction<N: Display>(
        &self,
        family: Family,
        header: &str,
        op: RuleOp,
        nets: impl Iterator<Item = N>,
        footer: &str,
    ) -> Result<()> {
        if family == Family::V6 && self.fail_next_v6.replace(false) {
            return Err(IptablesError::Refused(filter_core::Refusal {
                operation: "the IPv6 restore transaction (injected by a test)".into(),
                code: -1,
                message: "injected failure".into(),
            })
            .into());
        }
        let chain = self.chain();
        let write = |w: &mut dyn Write| -> io::Result<()> {
            w.write_all(header.as_bytes())?;
            for net in nets {
                writeln!(w, "{} {chain} -d {net} -j DROP", op.flag())?;
            }
            w.write_all(footer.as_bytes())?;
            w.write_all(b"COMMIT\n")
        };
        match self.loader {
            Loader::Streamed => xtables::restore_with(&self.netns, self.backend, family, write),
            Loader::Script => {
                let mut script = Vec::new();
                write(&mut script).expect("writing to memory");
                let script = String::from_utf8(script).expect("rules are ASCII");
                xtables::restore(&self.netns, self.backend, family, &script)
            }
        }
    }

    fn fill(&self, list: &CidrList, hook: bool) -> Result<()> {
        if self.backend == Backend::Legacy {
            legacy::check_blob_size(list.v4().len(), legacy::RULE_BYTES_V4, "IPv4")?;
            legacy::check_blob_size(list.v6().len(), legacy::RULE_BYTES_V6, "IPv6")?;
        }
        let chain = self.chain();
        // Declaring a user chain in a --noflush transaction creates it, or empties it.
        let header = format!("*filter\n:{chain} - [0:0]\n");
        let footer = if hook {
            format!("-A OUTPUT -j {chain}\n")
        } else {
            String::new()
        };
        if hook && self.loader == Loader::Streamed && self.backend == Backend::Legacy {
            // The whole IPv4 chain in one IPT_SO_SET_REPLACE, no text in between.
            legacy::load_chain(&self.netns, chain, list.v4())?;
        } else {
            self.transaction(
                Family::V4,
                &header,
                RuleOp::Append,
                list.v4().iter(),
                &footer,
            )?;
        }
        if let Err(e) = self.transaction(
            Family::V6,
            &header,
            RuleOp::Append,
            list.v6().iter(),
            &footer,
        ) {
            if hook {
                let _ = xtables::remove_chain(&self.netns, self.backend, Family::V4, chain);
            } else {
                // A replace: the IPv4 chain already holds the new list; put the old one back
                // so that both families keep what they had.
                let old = self.live_v4();
                if let Err(restore) =
                    self.transaction(Family::V4, &header, RuleOp::Append, old.iter(), "")
                {
                    return Err(filter_core::Error::RestoreFailed {
                        failed: Box::new(e),
                        restore: Box::new(restore),
                    });
                }
            }
            return Err(e);
        }
        Ok(())
    }

    fn count(list: &CidrList) -> HashMap<IpNet, u32> {
        let mut rules = HashMap::with_capacity(list.len());
        for net in list.iter() {
            *rules.entry(net).or_insert(0) += 1;
        }
        rules
    }

    fn change(&mut self, entries: &[IpNet], op: RuleOp) -> Result<()> {
        if !self.loaded {
            return Err(filter_core::Error::NotLoaded);
        }
        let adding = op == RuleOp::Append;
        let rules = self.rules.get_or_insert_with(|| Self::count(&self.list));
        let mut picked: Vec<IpNet> = Vec::new();
        for net in entries.iter().map(IpNet::trunc) {
            let present = rules.get(&net).copied().unwrap_or(0);
            if adding && present == 0 && !picked.contains(&net) {
                picked.push(net);
            } else if !adding && present > 0 && !picked.contains(&net) {
                picked.extend(std::iter::repeat_n(net, present as usize));
            }
        }
        let header = "*filter\n";
        for family in Family::BOTH {
            let nets = picked.iter().filter(|n| Family::of(n.addr()) == family);
            if nets.clone().next().is_some() {
                self.transaction(family, header, op, nets, "")?;
            }
        }
        let rules = self.rules.as_mut().expect("built above");
        for net in picked {
            if adding {
                rules.insert(net, 1);
            } else {
                rules.remove(&net);
            }
        }
        Ok(())
    }
}

impl EgressFilter for IptablesFilter {
    fn name(&self) -> &'static str {
        match self.loader {
            Loader::Streamed => IPTABLES,
            Loader::Script => IPTABLES_RESTORE,
        }
    }

    fn backend(&self) -> String {
        let how = match (self.loader, self.backend) {
            (Loader::Streamed, Backend::Legacy) => {
                "IPv4 loads as one IPT_SO_SET_REPLACE, the rest via restore"
            }
            (Loader::Streamed, Backend::Nft) => "rules streamed into iptables-nft-restore",
            (Loader::Script, _) => "script through iptables-restore",
        };
        format!("{}; {how}", self.backend.describe())
    }

    fn load(&mut self, list: &CidrList) -> Result<()> {
        if self.loaded {
            return Err(filter_core::Error::AlreadyLoaded);
        }
        self.fill(list, true)?;
        self.list = list.clone();
        self.rules = None;
        self.loaded = true;
        Ok(())
    }

    fn replace(&mut self, list: &CidrList) -> Result<()> {
        if !self.loaded {
            return Err(filter_core::Error::NotLoaded);
        }
        // Each family's chain is emptied and refilled in one transaction; the jump stays.
        self.fill(list, false)?;
        self.list = list.clone();
        self.rules = None;
        Ok(())
    }

    fn add(&mut self, entries: &[IpNet]) -> Result<()> {
        self.change(entries, RuleOp::Append)
    }

    fn remove(&mut self, entries: &[IpNet]) -> Result<()> {
        self.change(entries, RuleOp::Delete)
    }

    fn held(&self) -> Option<CidrList> {
        if !self.loaded {
            return None;
        }
        Some(match &self.rules {
            None => self.list.clone(),
            Some(rules) => rules.keys().copied().collect(),
        })
    }

    fn stats(&self) -> Result<FilterStats> {
        let [entries_v4, entries_v6] = self.rules_written();
        let mut stats = FilterStats {
            entries_v4,
            entries_v6,
            ..FilterStats::default()
        };
        if self.loaded {
            let (packets, bytes) = xtables::counters_both(&self.netns, self.backend, self.chain())?;
            stats.packets_matched = Some(packets);
            stats.bytes_matched = Some(bytes);
        }
        Ok(stats)
    }

    /// The rules in the chain of each family, listed by the back-end, against the rules the
    /// filter's bookkeeping says it wrote.
    fn kernel_count(&self) -> Result<Option<filter_core::KernelCount>> {
        if !self.loaded {
            return Err(filter_core::Error::NotLoaded);
        }
        let mut read = [None; 2];
        for (i, family) in Family::BOTH.into_iter().enumerate() {
            read[i] = Some(xtables::rule_count(
                &self.netns,
                self.backend,
                family,
                self.chain(),
            )?);
        }
        Ok(Some(filter_core::KernelCount {
            unit: filter_core::CountUnit::Rules,
            read,
            expected: self.rules_written(),
        }))
    }

    fn teardown(&mut self) -> Result<()> {
        let removed = xtables::remove_chain_both(&self.netns, self.backend, self.tag.as_str());
        self.loaded = false;
        self.list = CidrList::new();
        self.rules = None;
        removed
    }
}

impl Drop for IptablesFilter {
    fn drop(&mut self) {
        if self.loaded {
            let _ = self.teardown();
        }
    }
}
