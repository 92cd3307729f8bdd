//! What an engine crate tells the rest of egress-bench about itself: an [`Engine`] with its
//! [`Variant`]s (the names a user picks), how each is built at a [`Placement`] (a namespace,
//! a [`Target`] and typed [`Options`]), what role it plays, and how to find and remove what a
//! killed run of it left behind.
//!
//! Each engine crate exports one `pub static ENGINE: Engine`; a program that runs several
//! engines keeps a [`Registry`] of them, so that adding an engine is one crate and one line.
//! How a benchmark schedules a variant (sizes, scale) is the benchmark's business, not the
//! engine's: nothing here says it.
//!
//! ```no_run
//! use filter_core::engine::{Options, Placement, Target};
//! use filter_core::{CidrList, NetNs, Registry, Tag};
//! # static IPSET: filter_core::Engine = filter_core::Engine { name: "ipset", variants: &[],
//! #     leftovers: |_, _| Ok(Vec::new()), remove_leftovers: |_, _| Ok(Vec::new()),
//! #     target_kind: filter_core::engine::egress_target };
//! # static TCBPF: filter_core::Engine = filter_core::Engine { name: "tcbpf", variants: &[],
//! #     leftovers: |_, _| Ok(Vec::new()), remove_leftovers: |_, _| Ok(Vec::new()),
//! #     target_kind: filter_core::engine::egress_target };
//! # #[derive(Debug, Clone, Default)] struct IpsetOptions { maxelem: Option<u32> }
//! // In a program: `&filter_ipset::ENGINE, &filter_tcbpf::ENGINE, ...`
//! static ENGINES: Registry = Registry::new(&[&IPSET, &TCBPF]);
//!
//! let variant = ENGINES.find("ipset")?;
//! let at = Placement {
//!     netns: NetNs::named("blue"),
//!     tag: Tag::new("demo")?,
//!     target: Target::egress("eth0"),
//!     // Each engine reads its own typed options (`filter_ipset::IpsetOptions`, ...).
//!     options: Options::default().with(IpsetOptions { maxelem: Some(1 << 20) }),
//! };
//! let mut filter = (variant.build)(&at)?;
//! filter.load(&CidrList::parse("203.0.113.0/24\n".as_bytes(), "inline", &Default::default())?)?;
//! // What a killed run left, by tag: chains, sets, tc filters.
//! for leftover in ENGINES.leftovers(&at.netns, at.tag.as_str())? {
//!     println!("{leftover}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{EgressFilter, Error, NetNs, Result, Tag};

/// Where a filter is installed and with which settings.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The namespace the filter works in.
    pub netns: NetNs,
    /// The names of the filter's kernel objects.
    pub tag: Tag,
    /// What the filter guards (engines that hook a place read it; netfilter engines filter
    /// the whole namespace's output and ignore it).
    pub target: Target,
    /// Engine settings, typed: each engine reads its own options struct and finds its
    /// defaults when none was given.
    pub options: Options,
}

/// What a filter guards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Target {
    /// Packets leaving an interface (tc egress).
    Egress {
        /// The interface's name.
        interface: String,
    },
    /// The sockets of the processes in a cgroup v2 and its descendants (a workload: a pod,
    /// a container, a systemd service; the hierarchy's root for a whole node).
    Cgroup {
        /// The cgroup's directory in the unified hierarchy.
        path: std::path::PathBuf,
    },
}

/// The kinds of [`Target`], for an engine to say which one a set of options needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// [`Target::Egress`].
    Egress,
    /// [`Target::Cgroup`].
    Cgroup,
}

impl Target {
    /// The egress of `interface`.
    pub fn egress(interface: impl Into<String>) -> Self {
        Self::Egress {
            interface: interface.into(),
        }
    }

    /// The sockets of cgroup `path` (a directory of the unified hierarchy).
    pub fn cgroup(path: impl Into<std::path::PathBuf>) -> Self {
        Self::Cgroup { path: path.into() }
    }

    /// The interface a target is on, if it is one.
    pub fn interface(&self) -> Option<&str> {
        match self {
            Self::Egress { interface } => Some(interface),
            Self::Cgroup { .. } => None,
        }
    }

    /// The cgroup a target is, if it is one.
    pub fn cgroup_path(&self) -> Option<&std::path::Path> {
        match self {
            Self::Cgroup { path } => Some(path),
            Self::Egress { .. } => None,
        }
    }

    /// Its kind.
    pub fn kind(&self) -> TargetKind {
        match self {
            Self::Egress { .. } => TargetKind::Egress,
            Self::Cgroup { .. } => TargetKind::Cgroup,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Egress { interface } => write!(f, "egress of {interface}"),
            Self::Cgroup { path } => write!(f, "cgroup {}", path.display()),
        }
    }
}

/// A typed setting an [`Options`] can hold: any cloneable, printable value.
pub trait Setting: Any + fmt::Debug + Send + Sync {}

impl<T: Any + fmt::Debug + Send + Sync> Setting for T {}

/// Engine settings, typed: at most one value of each type, each engine reading its own
/// options struct (`filter_ipset::IpsetOptions`, `filter_tcbpf::TcbpfOptions`, ...). A
/// program that runs several engines fills in every engine's struct once; an engine finds
/// its defaults when its struct is absent. Nothing is parsed back from text.
#[derive(Debug, Clone, Default)]
pub struct Options(BTreeMap<TypeId, Arc<dyn Setting>>);

impl Options {
    /// These options with `value` set (replacing a value of the same type).
    #[must_use]
    pub fn with<T: Setting>(mut self, value: T) -> Self {
        self.0.insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    /// The value of type `T`, or its default when none was set.
    pub fn get<T: Setting + Clone + Default>(&self) -> T {
        self.0
            .get(&TypeId::of::<T>())
            .and_then(|value| (value.as_ref() as &dyn Any).downcast_ref::<T>())
            .cloned()
            .unwrap_or_default()
    }
}

/// What a variant is for in a benchmark sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    /// A product's data path replayed on the kernel's mechanisms (a CNI's chains, sets and
    /// maps with its layout and limits): measured like an engine, labelled as a model.
    Profile,
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
    /// The variant whose per-packet cost is this one's floor (the same hook with a program
    /// that passes everything).
    pub send_path_floor: Option<&'static str>,
    /// The longest list it holds with its default options, when a product limit caps it
    /// (a profile's map or set size); `None`: only memory does.
    pub holds: Option<u64>,
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
            holds: None,
            build,
        }
    }

    /// A product's data path replayed (see [`Role::Profile`]).
    pub const fn profile(name: &'static str, about: &'static str, build: Build) -> Self {
        Self {
            role: Role::Profile,
            ..Self::engine(name, about, build)
        }
    }

    /// A reference loader: an engine's kernel state, loaded the slow, well-known way.
    pub const fn reference(name: &'static str, about: &'static str, build: Build) -> Self {
        Self {
            role: Role::Reference,
            ..Self::engine(name, about, build)
        }
    }

    /// A benchmark-only program that drops nothing, with the variant whose per-packet cost is
    /// its floor.
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
            ..Self::engine(name, about, build)
        }
    }
}

/// An engine crate, as the rest of egress-bench sees it.
#[derive(Debug, Serialize)]
pub struct Engine {
    /// The crate's engine name (`ipset`).
    pub name: &'static str,
    /// The filters it offers.
    pub variants: &'static [Variant],
    /// Finds the kernel objects it made in `netns` whose names start with `prefix` (a run's
    /// [`Tag`], or [`OBJECT_PREFIX`](crate::OBJECT_PREFIX) for every run), described one per
    /// item. Objects the kernel does not let it name are described when `prefix` is the
    /// whole [`OBJECT_PREFIX`](crate::OBJECT_PREFIX).
    ///
    /// # Errors
    /// When the tool or call that lists them fails: a finder that cannot look must not
    /// report that nothing is there.
    #[serde(skip)]
    pub leftovers: fn(&NetNs, &str) -> Result<Vec<String>>,
    /// Removes what [`leftovers`](Self::leftovers) finds; returns what it removed.
    #[serde(skip)]
    pub remove_leftovers: fn(&NetNs, &str) -> Result<Vec<String>>,
    /// The kind of [`Target`] a filter built with these options hooks: the egress of an
    /// interface, or a cgroup (the netfilter engines hook a whole namespace and take either).
    #[serde(skip)]
    pub target_kind: fn(&Options) -> TargetKind,
}

/// [`Engine::target_kind`] of an engine that hooks the egress of an interface, or the whole
/// namespace (netfilter's output hook), whatever its options.
pub fn egress_target(_: &Options) -> TargetKind {
    TargetKind::Egress
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

    /// The variant of a name, or of a benchmark label (`tcbpf-empty@clsact`, `ipset/hosts`).
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

    /// The engine that offers the variant `name`.
    pub fn engine_of(&self, name: &str) -> Option<&'static Engine> {
        self.engines()
            .find(|engine| engine.variants.iter().any(|v| v.name == name))
    }

    /// What every engine left in `netns` under `prefix`.
    ///
    /// # Errors
    /// The first engine's error that could not look.
    pub fn leftovers(&self, netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
        let mut found = Vec::new();
        for engine in self.engines() {
            found.extend((engine.leftovers)(netns, prefix)?);
        }
        // Engines that share a kind of object (iptables chains) each report it.
        found.sort();
        found.dedup();
        Ok(found)
    }

    /// Removes what every engine left in `netns` under `prefix`; returns what it removed.
    ///
    /// # Errors
    /// The first engine's error that could not look or remove.
    pub fn remove_leftovers(&self, netns: &NetNs, prefix: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for engine in self.engines() {
            removed.extend((engine.remove_leftovers)(netns, prefix)?);
        }
        Ok(removed)
    }

    /// Checks that every name a variant points to (reference, floor) is a variant and that
    /// names are unique.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first variant that breaks either rule.
    pub fn check(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for v in self.variants() {
            if !seen.insert(v.name) {
                return Err(Error::InvalidInput(format!("two filters named {}", v.name)));
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
