//! The engines egress-bench can run. Each engine crate exports its [`Engine`] (variants,
//! leftovers) and its typed options; [`REGISTRY`] lists the engines, so a new engine is one
//! crate and one line there (and its options' line in [`EngineFlags::options`] if it has
//! any). The command line's `--filter`, `egress-bench filters` (which `cargo xtask bench`
//! reads, with the sweep policy [`sweep_policy`] derives), summary.md's reference and floor
//! pairs and `egress-bench cleanup` all derive from it.

use std::fmt;
use std::str::FromStr;

use filter_cilium_model::CiliumOptions;
use filter_core::engine::{Options, Placement, Variant};
use filter_core::{CidrList, EgressFilter, Engine, FilterStats, NetNs, Registry, Result, Role};
use filter_ipset::IpsetOptions;
use filter_iptables::{Backend, IptablesOptions};
use filter_tcbpf::{Attach, TcbpfOptions};
use ipnet::IpNet;
use records::{FilterEntry, SweepPolicy};

/// Every engine the harness runs, in the order `egress-bench filters` lists them.
pub static REGISTRY: Registry = Registry::new(&[
    &BASELINE,
    &filter_iptables::ENGINE,
    &filter_ipset::ENGINE,
    &filter_nftables::ENGINE,
    &filter_tcbpf::ENGINE,
    &filter_calico_felix::ENGINE,
    &filter_cilium_model::ENGINE,
]);

/// No filter: the baseline every figure is compared with.
pub static BASELINE: Engine = Engine {
    name: "none",
    variants: &[Variant {
        role: Role::Baseline,
        drops: false,
        ..Variant::engine(
            "none",
            "No filter: the baseline every figure is compared with",
            |_| Ok(Box::new(NoFilter::default())),
        )
    }],
    leftovers: |_, _| Ok(Vec::new()),
    remove_leftovers: |_, _| Ok(Vec::new()),
    target_kind: filter_core::engine::egress_target,
};

/// The engine settings of the command line, typed as the engines declare them.
#[derive(Debug, Clone, clap::Args)]
pub struct EngineFlags {
    /// iptables back-end of the rules of the iptables and ipset filters: nft or legacy.
    #[arg(long, default_value = "nft")]
    pub backend: Backend,
    /// How eBPF filters are hooked: auto (TCX on Linux 6.6+, else clsact), tcx, clsact,
    /// cgroup (`cgroup_skb/egress` of the testbed's client cgroup: every packet) or connect
    /// (`connect()` and unconnected UDP sends of that cgroup refused with EPERM).
    #[arg(long, default_value = "auto")]
    pub attach: Attach,
    /// Create ipsets with this maxelem instead of twice the list, and refuse longer lists as
    /// the kernel would: Calico Felix's default MaxIpsetSize is 1048576, where the published
    /// benchmark saw "Hash is full, cannot add more elements".
    #[arg(long)]
    pub ipset_maxelem: Option<u32>,
    /// The Cilium model's policy map size (Cilium's `bpf-policy-map-max`, 256..65536;
    /// default 16384): each CIDR takes a deny entry, so past it the list fails as in
    /// cilium#14377.
    #[arg(long)]
    pub policy_map_max: Option<u32>,
}

impl EngineFlags {
    /// Every engine's typed options, as the flags set them.
    pub fn options(&self) -> Options {
        Options::default()
            .with(IptablesOptions {
                backend: self.backend,
            })
            .with(IpsetOptions {
                backend: self.backend,
                maxelem: self.ipset_maxelem,
                timeouts: false,
            })
            .with(TcbpfOptions {
                attach: self.attach,
            })
            .with(CiliumOptions {
                policy_map_max: self.policy_map_max,
            })
    }
}

/// Which variants of an engine a sweep also runs under another attach kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AlsoUnder {
    /// The attach floors only: what the hook itself costs.
    Floors,
    /// The floors and the engines: the filters a user would hook there.
    FloorsAndEngines,
}

/// Other attach kinds a sweep also runs variants under, at the largest size, so that each
/// hook's own cost is known: the benchmark's choice, by engine. The floor under clsact; the
/// filters and the floor on the client side's cgroup, per packet (`cgroup_skb/egress`) and
/// per connection (`connect`).
const ALSO_UNDER: &[(&Engine, Attach, AlsoUnder)] = &[
    (&filter_tcbpf::ENGINE, Attach::CLSACT, AlsoUnder::Floors),
    (
        &filter_tcbpf::ENGINE,
        Attach::CGROUP,
        AlsoUnder::FloorsAndEngines,
    ),
    (
        &filter_tcbpf::ENGINE,
        Attach::CONNECT,
        AlsoUnder::FloorsAndEngines,
    ),
];

/// How a sweep schedules a variant of `registry`, from its role and pairing.
pub fn sweep_policy(registry: &Registry, variant: &Variant) -> SweepPolicy {
    let floor_of_engine = registry
        .variants()
        .any(|v| v.role == Role::Engine && v.send_path_floor == Some(variant.name));
    let also_as = ALSO_UNDER
        .iter()
        .filter(|(engine, _, which)| {
            let runs = floor_of_engine
                || *which == AlsoUnder::FloorsAndEngines && variant.role == Role::Engine;
            runs && engine.variants.iter().any(|v| v.name == variant.name)
        })
        .map(|(_, attach, _)| format!("{}@{attach}", variant.name))
        .collect();
    SweepPolicy {
        largest_only: variant.role == Role::BenchmarkOnly && !floor_of_engine,
        scale: matches!(variant.role, Role::Engine | Role::Reference | Role::Profile),
        send_path: variant.role != Role::Reference,
        program_cost: variant.role == Role::Engine,
        also_as,
        holds: variant.holds,
    }
}

/// The registry as `egress-bench filters --json` lists it.
pub fn entries(registry: &Registry) -> Vec<FilterEntry> {
    registry
        .variants()
        .map(|v| FilterEntry {
            name: v.name.into(),
            about: v.about.into(),
            role: v.role,
            drops: v.drops,
            load_compared_with: v.load_compared_with.map(Into::into),
            send_path_floor: v.send_path_floor.map(Into::into),
            sweep: sweep_policy(registry, v),
        })
        .collect()
}

/// A filter of the registry, as picked on the command line (`--filter ipset`).
#[derive(Clone, Copy)]
pub struct FilterKind(&'static Variant);

impl FilterKind {
    /// The filter of a name in `registry`.
    pub fn parse_in(registry: &Registry, name: &str) -> Result<Self> {
        registry.find(name).map(Self)
    }

    /// The name used on the command line and in records.
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// Whether the filter is expected to drop the denied probes.
    pub fn filters(self) -> bool {
        self.0.drops
    }

    /// Builds the filter.
    pub fn build(self, at: &Placement) -> Result<Box<dyn EgressFilter>> {
        (self.0.build)(at)
    }

    /// The kind of target the filter hooks with `options` (a cgroup for `--attach cgroup`).
    pub fn target_kind(self, options: &Options) -> filter_core::TargetKind {
        REGISTRY
            .engine_of(self.0.name)
            .map_or(filter_core::TargetKind::Egress, |engine| {
                (engine.target_kind)(options)
            })
    }
}

impl fmt::Debug for FilterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name)
    }
}

impl FromStr for FilterKind {
    type Err = filter_core::Error;

    fn from_str(name: &str) -> Result<Self> {
        Self::parse_in(&REGISTRY, name)
    }
}

/// The baseline: installs nothing, so every packet passes.
#[derive(Debug, Default)]
pub struct NoFilter {
    entries: (u64, u64),
}

impl EgressFilter for NoFilter {
    fn name(&self) -> &'static str {
        "none"
    }

    fn backend(&self) -> String {
        "none".into()
    }

    fn load(&mut self, list: &CidrList) -> Result<()> {
        self.entries = (list.v4().len() as u64, list.v6().len() as u64);
        Ok(())
    }

    fn replace(&mut self, list: &CidrList) -> Result<()> {
        self.load(list)
    }

    fn add(&mut self, _: &[IpNet]) -> Result<()> {
        Ok(())
    }

    fn remove(&mut self, _: &[IpNet]) -> Result<()> {
        Ok(())
    }

    fn stats(&self) -> Result<FilterStats> {
        Ok(FilterStats::default())
    }

    fn teardown(&mut self) -> Result<()> {
        Ok(())
    }
}

/// `egress-bench filters`: the registry, as a table or as JSON for `cargo xtask bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct FiltersArgs {
    /// Print JSON (one object per filter) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Instead, list what egress-bench's filters left in this network namespace (`egb-*`
    /// chains, sets, tc filters, TCX programs), one per line; `egress-bench cleanup`
    /// removes them.
    #[arg(long, conflicts_with = "json")]
    pub leftovers: bool,
}

/// The registry as `egress-bench filters` prints it.
pub fn render(registry: &Registry, json: bool) -> anyhow::Result<String> {
    if json {
        return Ok(serde_json::to_string_pretty(&entries(registry))?);
    }
    let all: Vec<&Variant> = registry.variants().collect();
    let mut text = format!(
        "{:<16} {:<15} {:<6} {:<18} {:<13} {}\n",
        "filter", "role", "drops", "load compared with", "floor", "what it is"
    );
    for v in all {
        text.push_str(&format!(
            "{:<16} {:<15} {:<6} {:<18} {:<13} {}\n",
            v.name,
            serde_json::to_value(v.role)?.as_str().unwrap_or("-"),
            if v.drops { "yes" } else { "no" },
            v.load_compared_with.unwrap_or("-"),
            v.send_path_floor.unwrap_or("-"),
            v.about,
        ));
    }
    text.push_str("\nattach kinds of eBPF filters (egress-bench run --attach):\n");
    for kind in filter_tcbpf::hooks::HOOKS {
        text.push_str(&format!("  {:<8} {}\n", kind.name, kind.about));
    }
    Ok(text)
}

/// Prints the registry.
pub fn print(args: &FiltersArgs) -> anyhow::Result<()> {
    if args.leftovers {
        let mut found = REGISTRY.leftovers(&NetNs::current(), filter_core::OBJECT_PREFIX)?;
        // The etcd data of cluster runs that are gone (a live run's is its own).
        found.extend(
            testbed::etcd::data_dirs()
                .into_iter()
                .filter(|(_, alive)| !alive)
                .map(|(dir, _)| format!("etcd data {}", dir.display())),
        );
        eprintln!(
            "{} here",
            filter_core::count(found.len() as u64, "object", "objects")
        );
        for item in found {
            println!("{item}");
        }
        return Ok(());
    }
    print!("{}", render(&REGISTRY, args.json)?);
    if args.json {
        println!();
    }
    Ok(())
}

/// Removes every object the registry's engines left in this namespace under `prefix` (a
/// run's tag, or `egb-` for all); returns what it removed.
pub fn remove_leftovers(prefix: &str) -> Result<Vec<String>> {
    REGISTRY.remove_leftovers(&NetNs::current(), prefix)
}

#[cfg(test)]
mod tests {
    use filter_core::Role;

    use super::*;

    /// The sweep's policy, derived from roles and pairing, is the one the sweep has always
    /// run: attach floors at every size (and under clsact too), other benchmark programs at
    /// the largest size only, no send path for reference loaders.
    #[test]
    fn sweep_policy_follows_roles() {
        let listed = entries(&REGISTRY);
        let policy = |name: &str| FilterEntry::find(&listed, name).unwrap().sweep.clone();
        assert!(!policy("tcbpf-empty").largest_only);
        assert_eq!(
            policy("tcbpf-empty").also_as,
            vec![
                "tcbpf-empty@clsact",
                "tcbpf-empty@cgroup",
                "tcbpf-empty@connect"
            ]
        );
        assert_eq!(
            policy("tcbpf-dir").also_as,
            vec!["tcbpf-dir@cgroup", "tcbpf-dir@connect"]
        );
        assert_eq!(
            policy("tcbpf").also_as,
            vec!["tcbpf@cgroup", "tcbpf@connect"]
        );
        assert!(policy("tcbpf-per-entry").also_as.is_empty());
        assert!(policy("tcbpf-mix").largest_only && policy("tcbpf-cold").largest_only);
        assert!(policy("tcbpf-mix").also_as.is_empty());
        assert!(!policy("ipset-restore").send_path && policy("ipset-restore").scale);
        assert!(policy("tcbpf-dir").program_cost && !policy("tcbpf-per-entry").program_cost);
        assert!(!policy("none").scale && policy("none").send_path);
        // Profiles run at the sizes their product limits allow, past them in the scale test.
        assert_eq!(policy("cilium").holds, Some(16_383));
        assert_eq!(policy("calico-felix").holds, Some(1_048_576));
        assert!(policy("cilium-cidr-group").scale && policy("cilium").send_path);
        assert!(policy("ipset").holds.is_none());
    }

    #[test]
    fn every_name_it_points_to_is_a_filter() {
        REGISTRY.check().unwrap();
        for v in REGISTRY.variants() {
            assert_eq!(REGISTRY.variant(v.name).map(|v| v.name), Some(v.name));
            assert_eq!(
                v.drops,
                matches!(v.role, Role::Engine | Role::Reference | Role::Profile)
            );
        }
        assert_eq!(
            REGISTRY.variant("tcbpf-empty@clsact").map(|v| v.name),
            Some("tcbpf-empty")
        );
        assert_eq!(
            REGISTRY.variant("ipset/hosts").map(|v| v.name),
            Some("ipset")
        );
        let unknown = "nosuch".parse::<FilterKind>().unwrap_err().to_string();
        assert!(unknown.contains("there are: none, iptables,"), "{unknown}");
    }

    /// A built filter reports the name it is registered under (records carry it).
    #[test]
    fn built_filters_carry_their_registry_names() {
        let at = Placement {
            netns: NetNs::current(),
            tag: filter_core::Tag::new("names").unwrap(),
            target: filter_core::Target::egress("lo"),
            options: Options::default(),
        };
        for v in REGISTRY.variants() {
            let filter = (v.build)(&at).unwrap();
            assert_eq!(filter.name(), v.name);
        }
    }

    /// A made-up engine: what a new crate would export.
    static DUMMY: Engine = Engine {
        name: "dummy",
        variants: &[
            Variant {
                load_compared_with: Some("dummy-slow"),
                ..Variant::engine("dummy", "A dummy engine", |_| {
                    Ok(Box::new(NoFilter::default()))
                })
            },
            Variant::reference("dummy-slow", "Its reference loader", |_| {
                Ok(Box::new(NoFilter::default()))
            }),
        ],
        leftovers: |_, prefix| Ok(vec![format!("dummy object {prefix}x")]),
        remove_leftovers: |_, prefix| Ok(vec![format!("removed dummy object {prefix}x")]),
        target_kind: filter_core::engine::egress_target,
    };

    /// Adding an engine is one line in the registry: everything else derives from it.
    #[test]
    fn a_new_engine_is_one_registry_line() {
        static WITH_DUMMY: Registry = Registry::new(&[
            &BASELINE, &DUMMY, // the one line
        ]);
        WITH_DUMMY.check().unwrap();
        // The command line picks it and builds it.
        let kind = FilterKind::parse_in(&WITH_DUMMY, "dummy").unwrap();
        let at = Placement {
            netns: NetNs::current(),
            tag: filter_core::Tag::new("dummy").unwrap(),
            target: filter_core::Target::egress("lo"),
            options: Options::default(),
        };
        let mut filter = kind.build(&at).unwrap();
        filter.load(&CidrList::default()).unwrap();
        // `egress-bench filters --json`, which `cargo xtask bench` reads, lists both variants
        // with their roles and pairing.
        let listed: Vec<FilterEntry> =
            serde_json::from_str(&render(&WITH_DUMMY, true).unwrap()).unwrap();
        let dummy = FilterEntry::find(&listed, "dummy").unwrap();
        assert_eq!(dummy.role, Role::Engine);
        assert_eq!(dummy.load_compared_with.as_deref(), Some("dummy-slow"));
        assert!(dummy.sweep.scale && dummy.sweep.send_path && !dummy.sweep.largest_only);
        let slow = FilterEntry::find(&listed, "dummy-slow").unwrap();
        assert!(
            !slow.sweep.send_path,
            "a reference loader's send path is its engine's"
        );
        assert!(render(&WITH_DUMMY, false).unwrap().contains("dummy-slow"));
        // summary.md sets its load against its reference.
        assert_eq!(
            crate::report::markdown::yardstick_in(&WITH_DUMMY, "dummy/hosts", |v| v
                .load_compared_with),
            Some("dummy-slow/hosts".into())
        );
        // Cleanup finds and removes its leftovers.
        let here = NetNs::current();
        assert_eq!(
            WITH_DUMMY.leftovers(&here, "egb-").unwrap(),
            vec!["dummy object egb-x"]
        );
        assert_eq!(
            WITH_DUMMY.remove_leftovers(&here, "egb-").unwrap(),
            vec!["removed dummy object egb-x"]
        );
    }
}
