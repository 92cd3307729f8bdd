//! The engines the harness can run. Each engine crate exports its [`Engine`] (variants,
//! options, leftovers); [`REGISTRY`] lists them, so a new engine is one crate and one line
//! there. The command line's `--filter`, `egress-bench filters` (which `cargo xtask bench`
//! reads), summary.md's reference and floor pairs and `egress-bench cleanup` all derive
//! from it.

use std::fmt;
use std::str::FromStr;

use filter_core::engine::{Placement, Variant};
use filter_core::{CidrList, EgressFilter, Engine, FilterStats, NetNs, Registry, Result};
use ipnet::IpNet;

/// Every engine the harness runs, in the order `egress-bench filters` lists them.
pub static REGISTRY: Registry = Registry::new(&[
    &BASELINE,
    &filter_iptables::ENGINE,
    &filter_ipset::ENGINE,
    &filter_nftables::ENGINE,
    &filter_tcbpf::ENGINE,
]);

/// No filter: the baseline every figure is compared with.
pub static BASELINE: Engine = Engine {
    name: "none",
    variants: &[Variant {
        role: filter_core::Role::Baseline,
        drops: false,
        scale: false,
        ..Variant::engine(
            "none",
            "No filter: the baseline every figure is compared with",
            |_| Ok(Box::new(NoFilter::default())),
        )
    }],
    options: &[],
    leftovers: |_, _| Vec::new(),
    remove_leftovers: |_, _| Vec::new(),
};

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
    let all: Vec<&Variant> = registry.variants().collect();
    if json {
        return Ok(serde_json::to_string_pretty(&all)?);
    }
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
    text.push_str("\noptions (egress-bench run --backend / --attach / --ipset-maxelem):\n");
    for engine in registry.engines() {
        for option in engine.options {
            text.push_str(&format!(
                "  {:<10} {:<8} {}\n",
                engine.name, option.key, option.about
            ));
        }
    }
    Ok(text)
}

/// Prints the registry.
pub fn print(args: &FiltersArgs) -> anyhow::Result<()> {
    if args.leftovers {
        let found = REGISTRY.leftovers(&NetNs::current(), filter_core::OBJECT_PREFIX);
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
pub fn remove_leftovers(prefix: &str) -> Vec<String> {
    REGISTRY.remove_leftovers(&NetNs::current(), prefix)
}

#[cfg(test)]
mod tests {
    use filter_core::Role;

    use super::*;

    #[test]
    fn every_name_it_points_to_is_a_filter() {
        REGISTRY.check().unwrap();
        for v in REGISTRY.variants() {
            assert_eq!(REGISTRY.variant(v.name).map(|v| v.name), Some(v.name));
            assert_eq!(v.drops, v.role == Role::Engine || v.role == Role::Reference);
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
            interface: "lo".into(),
            options: Default::default(),
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
        options: &[],
        leftovers: |_, prefix| vec![format!("dummy object {prefix}x")],
        remove_leftovers: |_, prefix| vec![format!("removed dummy object {prefix}x")],
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
            interface: "lo".into(),
            options: Default::default(),
        };
        let mut filter = kind.build(&at).unwrap();
        filter.load(&CidrList::default()).unwrap();
        // `egress-bench filters --json`, which `cargo xtask bench` reads, lists both variants
        // with their roles and pairing.
        let json: serde_json::Value =
            serde_json::from_str(&render(&WITH_DUMMY, true).unwrap()).unwrap();
        let dummy = json
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "dummy")
            .unwrap();
        assert_eq!(dummy["role"], "engine");
        assert_eq!(dummy["load_compared_with"], "dummy-slow");
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
            WITH_DUMMY.leftovers(&here, "egb-"),
            vec!["dummy object egb-x"]
        );
        assert_eq!(
            WITH_DUMMY.remove_leftovers(&here, "egb-"),
            vec!["removed dummy object egb-x"]
        );
    }
}
