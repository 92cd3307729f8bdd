//! Data-path profile: **Cilium 1.9 host-firewall data path model, not Cilium.** The kernel
//! objects Cilium's agent programs for a host endpoint with an egress deny policy on CIDRs,
//! with Cilium's layouts, defaults and limits, and the work its tc program then does for each
//! packet a local process sends, built by egress-bench (no Cilium code, no agent):
//!
//! - `cilium_ipcache`: LPM trie, 512,000 entries, not preallocated, Cilium's 24-byte key
//!   (`{prefixlen = 32 + n, pad, family, ip[16]}`). Every CIDR of the list takes one entry
//!   with its identity.
//! - `cilium_policy`: the endpoint's policy map, a hash of `--policy-map-max` entries
//!   (Cilium's `bpf-policy-map-max`: default 16,384, 256..65,536), 8-byte key `{identity,
//!   dport, protocol, direction}`, 24-byte value with the deny flag and counters. The allow
//!   policy the published benchmark paired with its deny policies (`toEntities: all`) is one
//!   wildcard entry `{0, 0, 0, egress}`.
//! - Conntrack: `cilium_ct4_global` / `cilium_ct6_global` (TCP, LRU, 524,288) and
//!   `cilium_ct_any4_global` / `cilium_ct_any6_global` (other, LRU, 262,144), preallocated as
//!   LRU maps are: ~200 MiB of kernel memory whatever the list.
//! - The program (`ebpf/cilium-model-ebpf`) on tc egress: ipcache lookup of the source,
//!   conntrack lookup, ipcache lookup of the destination, four policy lookups with the deny
//!   check, conntrack insert for a new flow; policy is checked for every packet, established
//!   flows included, as Cilium does for packets that are not replies.
//!
//! Two identity models ([`Identities`]): Cilium 1.9 gives each CIDR its own node-local
//! identity and so one deny entry in the policy map (`cilium`: the map's size is the limit,
//! cilium#14377); Cilium >= 1.16's CiliumCIDRGroup gives the group one identity and one deny
//! entry, every CIDR still in the ipcache (`cilium-cidr-group`: 512,000 is the limit).
//!
//! Maps are filled one entry per system call, as Cilium's agent writes them. A list the maps
//! cannot hold fails where the kernel refuses it, before anything is hooked: the error names
//! the map, its limit and the kernel's answer.

// Dependencies of the shipped code only: tests bring their own.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

use std::collections::HashMap as StdHashMap;

use aya::maps::lpm_trie::Key;
use aya::maps::{HashMap, LpmTrie, MapData, MapError, PerCpuArray};
use aya::programs::SchedClassifier;
use aya::{Ebpf, EbpfLoader};
use cilium_model_common as common;
use filter_core::engine::{Placement, Variant};
use filter_core::{
    CidrList, EgressFilter, Engine, Error, FilterStats, KernelMemory, NetNs, Result, Tag, Target,
    TargetKind,
};
use filter_tcbpf::hooks::{Attach, Hook};
use filter_tcbpf::{TcbpfOptions, kernel_error, map_memlock};
use ipnet::IpNet;

/// The program, built by `build.rs`.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cilium-model-ebpf"));

/// The name of the per-CIDR identity variant.
pub const CILIUM: &str = "cilium";
/// The name of the CIDR-group variant.
pub const CILIUM_CIDR_GROUP: &str = "cilium-cidr-group";
/// How every record labels both variants.
pub const LABEL: &str = "Cilium 1.9 host-firewall data path model, not Cilium";

/// The profile's settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct CiliumOptions {
    /// The policy map's size (Cilium's `bpf-policy-map-max`); `None`: 16,384.
    pub policy_map_max: Option<u32>,
}

/// The profile as egress-bench's registry sees it.
pub static ENGINE: Engine = Engine {
    name: "cilium-model",
    variants: &[
        Variant {
            // N CIDRs take N deny entries and the allow entry one.
            holds: Some(common::POLICY_MAP_DEFAULT as u64 - 1),
            ..Variant::profile(
                CILIUM,
                "Cilium 1.9 host-firewall data path model, not Cilium: an identity, ipcache \
                 entry and policy-map deny entry per CIDR (policy map 16,384, --policy-map-max)",
                |at| build(at, Identities::PerCidr),
            )
        },
        Variant {
            holds: Some(common::IPCACHE_MAX as u64),
            ..Variant::profile(
                CILIUM_CIDR_GROUP,
                "Cilium >= 1.16 CiliumCIDRGroup on the 1.9 host-firewall data path model, not \
                 Cilium: one identity for the list, every CIDR in the ipcache (512,000)",
                |at| build(at, Identities::Group),
            )
        },
    ],
    leftovers,
    remove_leftovers,
    target_kind: filter_core::engine::egress_target,
};

fn build(at: &Placement, identities: Identities) -> Result<Box<dyn EgressFilter>> {
    let options: CiliumOptions = at.options.get();
    let attach = at.options.get::<TcbpfOptions>().attach;
    Ok(Box::new(CiliumModel::new(
        at.netns.clone(),
        at.tag.clone(),
        &at.target,
        attach,
        identities,
        options.policy_map_max.unwrap_or(common::POLICY_MAP_DEFAULT),
    )?))
}

/// What a killed run left: the tc hooks (clsact filters by tag; TCX links go with their
/// process). The maps are not pinned, so they go with the program.
fn leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for attach in [Attach::TCX, Attach::CLSACT] {
        found.extend((attach.resolve().leftovers)(netns, prefix)?);
    }
    Ok(found)
}

fn remove_leftovers(netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for attach in [Attach::TCX, Attach::CLSACT] {
        removed.extend((attach.resolve().remove_leftovers)(netns, prefix)?);
    }
    Ok(removed)
}

/// How CIDRs get identities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identities {
    /// Cilium 1.9: a node-local identity per CIDR, each with its own deny entry.
    PerCidr,
    /// A CiliumCIDRGroup (Cilium >= 1.16): one identity and one deny entry for the list.
    Group,
}

/// The identity of the group ([`Identities::Group`]).
const GROUP_IDENTITY: u32 = common::LOCAL_IDENTITY_FLAG | 1;

/// One loaded program with its maps and the identities it gave out.
struct Instance {
    ebpf: Ebpf,
    identities: StdHashMap<IpNet, u32>,
    next_identity: u32,
    entries: [u64; 2],
}

/// The model; see the [crate docs](crate).
pub struct CiliumModel {
    netns: NetNs,
    hook: Box<dyn Hook>,
    identities: Identities,
    policy_map_max: u32,
    current: Option<Instance>,
    held: filter_core::Held,
}

impl CiliumModel {
    /// A model for the egress of `target`'s interface in `netns`, hooked with `attach` (TCX
    /// or clsact; `auto` picks), its policy map `policy_map_max` entries.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the target is no interface, the attach kind hooks no
    /// interface, or `policy_map_max` is outside Cilium's 256..65,536.
    pub fn new(
        netns: NetNs,
        tag: Tag,
        target: &Target,
        attach: Attach,
        identities: Identities,
        policy_map_max: u32,
    ) -> Result<Self> {
        if !(common::POLICY_MAP_MIN..=common::POLICY_MAP_MAX).contains(&policy_map_max) {
            return Err(Error::InvalidInput(format!(
                "--policy-map-max {policy_map_max}: Cilium accepts {}..{}",
                common::POLICY_MAP_MIN,
                common::POLICY_MAP_MAX
            )));
        }
        let kind = attach.resolve();
        if kind.target != TargetKind::Egress || target.kind() != TargetKind::Egress {
            return Err(Error::InvalidInput(format!(
                "the Cilium model hooks the tc egress of a host interface (tcx or clsact), \
                 not {} on the {target}",
                kind.name
            )));
        }
        Ok(Self {
            netns,
            hook: (kind.make)(target, &tag)?,
            identities,
            policy_map_max,
            current: None,
            held: filter_core::Held::default(),
        })
    }

    /// A fresh program with its maps filled with `list`, not hooked.
    fn instance(&self, list: &CidrList) -> Result<Instance> {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(common::MAP_POLICY, self.policy_map_max)
            .load(PROGRAM)
            .map_err(|e| kernel_error("creating the model's BPF maps", e))?;
        let program: &mut SchedClassifier = ebpf
            .program_mut(common::PROG_HOST_EGRESS)
            .ok_or_else(|| Error::InvalidInput("the model's program is missing".into()))?
            .try_into()
            .map_err(|e| kernel_error("the model's program", e))?;
        program
            .load()
            .map_err(|e| kernel_error("loading the model's program (verifier)", e))?;
        let mut instance = Instance {
            ebpf,
            identities: StdHashMap::new(),
            next_identity: 1,
            entries: [0; 2],
        };
        // The allow policy first, then each CIDR's identity as the agent allocates it.
        policy(&mut instance.ebpf)?
            .insert(
                &common::policy_key(0, 0, 0, common::DIRECTION_EGRESS),
                &common::policy_entry(false),
                0,
            )
            .map_err(|e| self.policy_full(e, 1))?;
        let all: Vec<IpNet> = list.iter().collect();
        self.insert(&mut instance, &all)?;
        Ok(instance)
    }

    /// Gives each of `entries` an identity, an ipcache entry and (per the identity model) a
    /// deny entry. On a refusal the entries this call wrote are taken out again.
    fn insert(&self, instance: &mut Instance, entries: &[IpNet]) -> Result<()> {
        let mut written = Vec::new();
        let fresh = entries
            .iter()
            .filter(|net| !instance.identities.contains_key(net))
            .count();
        let total = instance.identities.len() + fresh;
        for net in entries {
            if instance.identities.contains_key(net) {
                continue;
            }
            let result = self.insert_one(instance, *net, total);
            if let Err(e) = result {
                let undone = self.delete(instance, &written);
                return match undone {
                    Ok(()) => Err(e),
                    Err(restore) => Err(Error::RestoreFailed {
                        failed: Box::new(e),
                        restore: Box::new(restore),
                    }),
                };
            }
            written.push(*net);
        }
        Ok(())
    }

    /// Writes one CIDR; `total`: the CIDRs the list being written makes, for the error.
    fn insert_one(&self, instance: &mut Instance, net: IpNet, total: usize) -> Result<()> {
        let id = match self.identities {
            Identities::PerCidr => {
                let id = common::LOCAL_IDENTITY_FLAG | instance.next_identity;
                instance.next_identity += 1;
                id
            }
            Identities::Group => GROUP_IDENTITY,
        };
        let first_of_group = self.identities == Identities::Group && instance.identities.is_empty();
        ipcache(&mut instance.ebpf)?
            .insert(&ipcache_key(net), &common::ipcache_value(id), 0)
            .map_err(|e| {
                map_full(
                    e,
                    Map::Ipcache,
                    total,
                    u64::from(common::IPCACHE_MAX),
                    "every CIDR takes an ipcache entry whatever the identity model; \
                     aggregate the list",
                )
            })?;
        if self.identities == Identities::PerCidr || first_of_group {
            let denies = match self.identities {
                Identities::PerCidr => total,
                Identities::Group => 1,
            };
            let inserted = policy(&mut instance.ebpf)?.insert(
                &common::policy_key(id, 0, 0, common::DIRECTION_EGRESS),
                &common::policy_entry(true),
                0,
            );
            if let Err(e) = inserted {
                let _ = ipcache(&mut instance.ebpf)?.remove(&ipcache_key(net));
                // The allow entry is in the map with the deny entries.
                return Err(self.policy_full(e, denies + 1));
            }
        }
        instance.identities.insert(net, id);
        instance.entries[family_index(net)] += 1;
        Ok(())
    }

    /// Takes `entries` out: their deny entry (the group's with its last CIDR), then their
    /// ipcache entry.
    fn delete(&self, instance: &mut Instance, entries: &[IpNet]) -> Result<()> {
        for net in entries {
            let Some(id) = instance.identities.remove(net) else {
                continue;
            };
            instance.entries[family_index(*net)] -= 1;
            let last_of_group =
                self.identities == Identities::Group && instance.identities.is_empty();
            if self.identities == Identities::PerCidr || last_of_group {
                remove_present(
                    policy(&mut instance.ebpf)?.remove(&common::policy_key(
                        id,
                        0,
                        0,
                        common::DIRECTION_EGRESS,
                    )),
                    "deleting a deny entry of cilium_policy",
                )?;
            }
            remove_present(
                ipcache(&mut instance.ebpf)?.remove(&ipcache_key(*net)),
                "deleting an entry of cilium_ipcache",
            )?;
        }
        Ok(())
    }

    /// The policy map's refusal, named as Cilium's limit; `needed`: its entries, the allow
    /// entry included.
    fn policy_full(&self, err: MapError, needed: usize) -> Error {
        map_full(
            err,
            Map::Policy,
            needed,
            u64::from(self.policy_map_max),
            &format!(
                "each CIDR's identity takes a deny entry beside the allow policy's wildcard \
                 entry, as in cilium#14377; raise --policy-map-max (at most {}) or use a \
                 CIDR group (cilium-cidr-group)",
                common::POLICY_MAP_MAX
            ),
        )
    }

    fn discard(&self, instance: Instance) {
        let _ = self.netns.run(move || drop(instance));
    }
}

/// The maps a list can fill.
#[derive(Debug, Clone, Copy)]
enum Map {
    Ipcache,
    Policy,
}

impl Map {
    /// The limit's name in errors.
    fn limit(self) -> &'static str {
        match self {
            Self::Ipcache => "cilium_ipcache max entries (Cilium's ipcache, fixed at 512,000)",
            Self::Policy => "cilium_policy max entries (Cilium's bpf-policy-map-max)",
        }
    }
}

/// A refused insert: `E2BIG` (hash full) and `ENOSPC` (LPM trie full) as [`Error::Limit`] of
/// `map`, anything else as the kernel's error.
fn map_full(err: MapError, map: Map, requested: usize, max: u64, hint: &str) -> Error {
    let errno = match &err {
        MapError::SyscallError(e) => e.io_error.raw_os_error(),
        _ => None,
    };
    match errno {
        Some(code) if code == libc::E2BIG || code == libc::ENOSPC => Error::Limit {
            limit: map.limit(),
            requested: requested as u64,
            max,
            hint: format!(
                "the kernel refused the insert ({}); {hint}",
                std::io::Error::from_raw_os_error(code)
            ),
        },
        _ => kernel_error(format!("inserting into {}", map.limit()), err),
    }
}

/// A delete's result, a key already gone counting as deleted.
fn remove_present(result: std::result::Result<(), MapError>, what: &str) -> Result<()> {
    match result {
        Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(kernel_error(what, e)),
    }
}

fn family_index(net: IpNet) -> usize {
    match net {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => 1,
    }
}

fn ipcache_key(net: IpNet) -> Key<[u8; common::IPCACHE_KEY_DATA]> {
    let (family, addr) = match net.trunc() {
        IpNet::V4(v4) => {
            let mut addr = [0u8; 16];
            addr[..4].copy_from_slice(&v4.network().octets());
            (common::FAMILY_V4, addr)
        }
        IpNet::V6(v6) => (common::FAMILY_V6, v6.network().octets()),
    };
    let (len, data) = common::ipcache_key(family, addr, u32::from(net.prefix_len()));
    Key::new(len, data)
}

type Ipcache<'a> =
    LpmTrie<&'a mut MapData, [u8; common::IPCACHE_KEY_DATA], [u8; common::IPCACHE_VALUE]>;
type Policy<'a> = HashMap<&'a mut MapData, [u8; common::POLICY_KEY], [u8; common::POLICY_VALUE]>;

fn ipcache(ebpf: &mut Ebpf) -> Result<Ipcache<'_>> {
    ebpf.map_mut(common::MAP_IPCACHE)
        .ok_or_else(|| Error::InvalidInput("the ipcache map is missing".into()))?
        .try_into()
        .map_err(|e| kernel_error("opening cilium_ipcache", e))
}

fn policy(ebpf: &mut Ebpf) -> Result<Policy<'_>> {
    ebpf.map_mut(common::MAP_POLICY)
        .ok_or_else(|| Error::InvalidInput("the policy map is missing".into()))?
        .try_into()
        .map_err(|e| kernel_error("opening cilium_policy", e))
}

impl EgressFilter for CiliumModel {
    fn name(&self) -> &'static str {
        match self.identities {
            Identities::PerCidr => CILIUM,
            Identities::Group => CILIUM_CIDR_GROUP,
        }
    }

    fn backend(&self) -> String {
        let identities = match self.identities {
            Identities::PerCidr => "an identity per CIDR",
            Identities::Group => "one CIDR-group identity",
        };
        format!(
            "{LABEL}: ipcache LPM trie (512,000), policy map {} entries, {identities}, \
             conntrack LRU maps; {} attach, one update per entry, aya",
            self.policy_map_max,
            self.hook.kind().name
        )
    }

    fn load(&mut self, list: &CidrList) -> Result<()> {
        if self.current.is_some() {
            return Err(Error::AlreadyLoaded);
        }
        let mut instance = self.instance(list)?;
        if let Err(e) = self
            .hook
            .attach(&self.netns, &mut instance.ebpf, common::PROG_HOST_EGRESS)
        {
            self.discard(instance);
            let _ = self.teardown();
            return Err(e);
        }
        self.current = Some(instance);
        self.held.set(list);
        Ok(())
    }

    fn replace(&mut self, list: &CidrList) -> Result<()> {
        if self.current.is_none() {
            return Err(Error::NotLoaded);
        }
        let mut next = self.instance(list)?;
        let mut old = self.current.take().expect("checked above");
        let swapped = self.hook.swap(
            &self.netns,
            Some(&mut old.ebpf),
            &mut next.ebpf,
            common::PROG_HOST_EGRESS,
            false,
        );
        match swapped {
            Ok(()) => {
                self.current = Some(next);
                self.held.set(list);
                self.discard(old);
                Ok(())
            }
            Err(e) => {
                self.discard(next);
                if self.hook.is_attached() {
                    self.current = Some(old);
                } else {
                    self.discard(old);
                    self.held.clear();
                }
                Err(e)
            }
        }
    }

    fn add(&mut self, entries: &[IpNet]) -> Result<()> {
        let mut instance = self.current.take().ok_or(Error::NotLoaded)?;
        let result = self.insert(&mut instance, entries);
        self.current = Some(instance);
        result?;
        self.held.add(entries);
        Ok(())
    }

    fn remove(&mut self, entries: &[IpNet]) -> Result<()> {
        let mut instance = self.current.take().ok_or(Error::NotLoaded)?;
        let result = self.delete(&mut instance, entries);
        self.current = Some(instance);
        result?;
        self.held.remove(entries);
        Ok(())
    }

    fn held(&self) -> Option<CidrList> {
        self.current.as_ref().map(|_| self.held.list())
    }

    /// Past a quarter of the list changing, a fresh program and maps swapped in by one link
    /// update beat per-entry updates.
    fn sync(&mut self, desired: &CidrList) -> Result<filter_core::SyncReport> {
        filter_core::sync_or_swap(self, desired, 0.25)
    }

    /// The ipcache's keys per family, walked in the kernel.
    fn kernel_count(&self) -> Result<Option<filter_core::KernelCount>> {
        let instance = self.current.as_ref().ok_or(Error::NotLoaded)?;
        let map = instance
            .ebpf
            .map(common::MAP_IPCACHE)
            .ok_or_else(|| Error::InvalidInput("the ipcache map is missing".into()))?;
        let trie: LpmTrie<&MapData, [u8; common::IPCACHE_KEY_DATA], [u8; common::IPCACHE_VALUE]> =
            map.try_into()
                .map_err(|e| kernel_error("opening cilium_ipcache", e))?;
        let mut read = [0u64; 2];
        for key in trie.keys() {
            let key = key.map_err(|e| kernel_error("walking cilium_ipcache", e))?;
            match key.data()[3] {
                common::FAMILY_V4 => read[0] += 1,
                _ => read[1] += 1,
            }
        }
        Ok(Some(filter_core::KernelCount {
            unit: filter_core::CountUnit::MapKeys,
            read: [Some(read[0]), Some(read[1])],
            expected: instance.entries,
        }))
    }

    fn stats(&self) -> Result<FilterStats> {
        let instance = self.current.as_ref().ok_or(Error::NotLoaded)?;
        let counters: PerCpuArray<&MapData, [u64; 2]> = instance
            .ebpf
            .map(common::MAP_COUNTERS)
            .ok_or_else(|| Error::InvalidInput("the counters map is missing".into()))?
            .try_into()
            .map_err(|e| kernel_error("opening the counters", e))?;
        let denied = counters
            .get(&common::COUNTER_DENIED, 0)
            .map_err(|e| kernel_error("reading the counters", e))?
            .iter()
            .fold([0u64; 2], |sum, cpu| [sum[0] + cpu[0], sum[1] + cpu[1]]);
        let memory = common::MAPS
            .iter()
            .filter_map(|name| instance.ebpf.map(name))
            .map(map_memlock)
            .sum();
        Ok(FilterStats {
            entries_v4: instance.entries[0],
            entries_v6: instance.entries[1],
            packets_matched: Some(denied[0]),
            bytes_matched: Some(denied[1]),
            kernel_memory: Some(KernelMemory {
                bytes: memory,
                source: filter_core::MemorySource::MapMemlock,
            }),
        })
    }

    fn teardown(&mut self) -> Result<()> {
        self.held.clear();
        if let Some(instance) = self.current.take() {
            self.discard(instance);
        }
        self.hook.release(&self.netns)
    }
}

impl Drop for CiliumModel {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}
