//! What an engine crate tells the rest of egress-bench about itself: an [`Engine`] with its
//! [`Variant`]s (the names a user picks), how each is built from a [`Placement`], how the
//! benchmark treats it, and how to find and remove what a killed run of it left behind.
//!
//! Each engine crate exports one `pub static ENGINE: Engine`; a program that runs several
//! engines keeps a [`Registry`] of them, so that adding an engine is one crate and one line.
//!
//! ```no_run
//! use filter_core::engine::{Options, Placement};
//! use filter_core::{CidrList, NetNs, Registry, Tag};
//! # static IPSET: filter_core::Engine = filter_core::Engine { name: "ipset", variants: &[],
//! #     options: &[], leftovers: |_, _| Vec::new(), remove_leftovers: |_, _| Vec::new() };
//! # static TCBPF: filter_core::Engine = filter_core::Engine { name: "tcbpf", variants: &[],
//! #     options: &[], leftovers: |_, _| Vec::new(), remove_leftovers: |_, _| Vec::new() };
//! // In a program: `&filter_ipset::ENGINE, &filter_tcbpf::ENGINE, ...`
//! static ENGINES: Registry = Registry::new(&[&IPSET, &TCBPF]);
//!
//! let variant = ENGINES.find("ipset")?;
//! let at = Placement {
//!     netns: NetNs::named("blue"),
//!     tag: Tag::new("demo")?,
//!     interface: "eth0".into(),
//!     options: Options::of([("backend", "nft")]),
//! };
//! let mut filter = (variant.build)(&at)?;
//! filter.load(&CidrList::parse("203.0.113.0/24\n".as_bytes(), "inline", &Default::default())?)?;
//! // What a killed run left, by tag: chains, sets, tc filters.
//! for leftover in ENGINES.leftovers(&at.netns, at.tag.as_str()) {
//!     println!("{leftover}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;

use crate::{EgressFilter, Error, NetNs, Result, Tag};

/// Where a filter is installed and with which settings.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The namespace the filter works in.
    pub netns: NetNs,
    /// The names of the filter's kernel objects.
    pub tag: Tag,
    /// The interface whose egress the filter guards (tc engines hook it; others ignore it).
    pub interface: String,
    /// Engine settings by name (`backend=legacy`, `attach=clsact`, `maxelem=1048576`); each
    /// engine reads those its [`Engine::options`] list and ignores the rest.
    pub options: Options,
}

/// Engine settings by name, as given on a command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(BTreeMap<String, String>);

impl Options {
    /// Sets `key` to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Options from `(key, value)` pairs.
    pub fn of<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut options = Self::default();
        for (key, value) in pairs {
            options.set(key, value);
        }
        options
    }

    /// The value of `key` parsed as `T`, `None` when unset.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the option and the value when `T` does not parse it.
    pub fn get<T: FromStr>(&self, key: &str) -> Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        self.0
            .get(key)
            .map(|value| {
                value
                    .parse()
                    .map_err(|e| Error::InvalidInput(format!("option {key}={value:?}: {e}")))
            })
            .transpose()
    }
}

/// What a variant is for in a benchmark sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// No filter: the baseline every figure is compared with.
    Baseline,
    /// A filter a user would install.
    Engine,
    /// The same kernel state as an engine, loaded the slow, well-known way: the yardstick of
    /// that engine's load time.
    Reference,
    /// A program for the benchmark only (attach floor, cold lookups) that filters nothing.
    BenchmarkOnly,
}

/// Builds a variant's filter at a placement.
pub type Build = fn(&Placement) -> Result<Box<dyn EgressFilter>>;

/// One filter a user can pick by name, and how the benchmark treats it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Variant {
    /// The name on the command line and in records (`ipset`, `ipset-restore`).
    pub name: &'static str,
    /// One line for `--help` and `egress-bench filters`.
    pub about: &'static str,
    /// What it is for.
    pub role: Role,
    /// Whether it drops the denied probes.
    pub drops: bool,
    /// The variant whose load time this one's is set against.
    pub load_compared_with: Option<&'static str>,
    /// The variant whose send-path cost is this one's floor.
    pub send_path_floor: Option<&'static str>,
    /// Whether a sweep measures its send path (not for reference loaders: same state).
    pub send_path: bool,
    /// Whether a sweep times its packet program ([`EgressFilter::program_costs`]).
    pub program_cost: bool,
    /// Whether a sweep runs it at the largest size only.
    pub largest_only: bool,
    /// Whether the scale test (10M to 100M entries) runs it.
    pub scale: bool,
    /// Other labels a sweep runs it under, beside its name: `<name>@<attach mode>`
    /// (`tcbpf-empty@clsact`: the attach floor of the other hook too).
    pub sweep_also: &'static [&'static str],
    /// Builds it.
    #[serde(skip)]
    pub build: Build,
}

impl Variant {
    /// A filter a user would install, measured at every size.
    pub const fn engine(name: &'static str, about: &'static str, build: Build) -> Self {
        Self {
            name,
            about,
            role: Role::Engine,
            drops: true,
            load_compared_with: None,
            send_path_floor: None,
            send_path: true,
            program_cost: false,
            largest_only: false,
            scale: true,
            sweep_also: &[],
            build,
        }
    }

    /// A reference loader: an engine's kernel state, loaded the slow, well-known way.
    pub const fn reference(name: &'static str, about: &'static str, build: Build) -> Self {
        Self {
            role: Role::Reference,
            send_path: false,
            ..Self::engine(name, about, build)
        }
    }

    /// A benchmark-only program that drops nothing, run at the largest size only, with the
    /// variant whose send path is its floor.
    pub const fn benchmark_only(
        name: &'static str,
        about: &'static str,
        floor: Option<&'static str>,
        build: Build,
    ) -> Self {
        Self {
            role: Role::BenchmarkOnly,
            drops: false,
            send_path_floor: floor,
            largest_only: true,
            scale: false,
            ..Self::engine(name, about, build)
        }
    }
}

/// A setting an engine reads from [`Placement::options`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OptionSpec {
    /// Its key.
    pub key: &'static str,
    /// What it sets and which values it takes.
    pub about: &'static str,
}

/// An engine crate, as the rest of egress-bench sees it.
#[derive(Debug, Serialize)]
pub struct Engine {
    /// The crate's engine name (`ipset`).
    pub name: &'static str,
    /// The filters it offers.
    pub variants: &'static [Variant],
    /// The settings it reads.
    pub options: &'static [OptionSpec],
    /// Finds the kernel objects it made in `netns` whose names start with `prefix` (a run's
    /// [`Tag`], or [`OBJECT_PREFIX`](crate::OBJECT_PREFIX) for every run), described one per
    /// item. Objects the kernel does not let it name are described when `prefix` is the
    /// whole [`OBJECT_PREFIX`](crate::OBJECT_PREFIX).
    #[serde(skip)]
    pub leftovers: fn(&NetNs, &str) -> Vec<String>,
    /// Removes what [`leftovers`](Self::leftovers) finds; returns what it removed.
    #[serde(skip)]
    pub remove_leftovers: fn(&NetNs, &str) -> Vec<String>,
}

/// The engines a program can run, in the order it lists them.
#[derive(Debug, Clone, Copy)]
pub struct Registry {
    engines: &'static [&'static Engine],
}

impl Registry {
    /// A registry of `engines`.
    pub const fn new(engines: &'static [&'static Engine]) -> Self {
        Self { engines }
    }

    /// The engines.
    pub fn engines(&self) -> impl Iterator<Item = &'static Engine> + '_ {
        self.engines.iter().copied()
    }

    /// Every variant of every engine.
    pub fn variants(&self) -> impl Iterator<Item = &'static Variant> + '_ {
        self.engines().flat_map(|engine| engine.variants.iter())
    }

    /// The variant of a name, or of a sweep label (`tcbpf-empty@clsact`, `ipset/hosts`).
    pub fn variant(&self, label: &str) -> Option<&'static Variant> {
        let name = label.split(['@', '/']).next().unwrap_or(label);
        self.variants().find(|v| v.name == name)
    }

    /// The variant of `name`, or an error listing the names there are.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when no engine offers `name`.
    pub fn find(&self, name: &str) -> Result<&'static Variant> {
        self.variant(name).ok_or_else(|| {
            let names: Vec<&str> = self.variants().map(|v| v.name).collect();
            Error::InvalidInput(format!(
                "no filter named {name:?}; there are: {}",
                names.join(", ")
            ))
        })
    }

    /// What every engine left in `netns` under `prefix`.
    pub fn leftovers(&self, netns: &NetNs, prefix: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .engines()
            .flat_map(|engine| (engine.leftovers)(netns, prefix))
            .collect();
        // Engines that share a kind of object (iptables chains) each report it.
        found.sort();
        found.dedup();
        found
    }

    /// Removes what every engine left in `netns` under `prefix`; returns what it removed.
    pub fn remove_leftovers(&self, netns: &NetNs, prefix: &str) -> Vec<String> {
        self.engines()
            .flat_map(|engine| (engine.remove_leftovers)(netns, prefix))
            .collect()
    }

    /// Checks that every name a variant points to (reference, floor) is a variant, that
    /// names are unique, and that sweep labels name their own variant.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first variant that breaks either rule.
    pub fn check(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for v in self.variants() {
            if !seen.insert(v.name) {
                return Err(Error::InvalidInput(format!("two filters named {}", v.name)));
            }
            if let Some(label) = v.sweep_also.iter().find(|l| {
                l.strip_prefix(v.name)
                    .is_none_or(|rest| !rest.starts_with('@'))
            }) {
                return Err(Error::InvalidInput(format!(
                    "{}: sweep label {label} is not `{}@<attach mode>`",
                    v.name, v.name
                )));
            }
            for other in [v.load_compared_with, v.send_path_floor]
                .into_iter()
                .flatten()
            {
                if self.variant(other).is_none() {
                    return Err(Error::InvalidInput(format!(
                        "{} points to {other}, which no engine offers",
                        v.name
                    )));
                }
            }
        }
        Ok(())
    }
}
