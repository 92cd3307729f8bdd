//! The sweep's plan: which filter runs at which size, mix and repeat, and what each run
//! measures, from the options and the registry `egress-bench filters --json` lists.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use filter_core::Role;
use records::FilterEntry;

use super::Options;

/// The filters `egress-bench filters --json` lists, with the sweep policy it derived for
/// each: the one place a filter's role and scheduling are written down.
pub(super) struct Registry(Vec<FilterEntry>);

impl Registry {
    /// Asks the binary for its registry.
    pub(super) fn read(binary: &Path) -> Result<Self> {
        let out = Command::new(binary)
            .args(["filters", "--json"])
            .output()
            .context("asking egress-bench for its filters")?;
        anyhow::ensure!(out.status.success(), "egress-bench filters --json failed");
        Ok(Self(
            serde_json::from_slice(&out.stdout).context("reading egress-bench filters --json")?,
        ))
    }

    /// The registry entry of the filter a label names (`tcbpf-empty@clsact`, `ipset/hosts`).
    pub(super) fn entry(&self, label: &str) -> Option<&FilterEntry> {
        FilterEntry::find(&self.0, label)
    }

    fn role(&self, label: &str) -> Option<Role> {
        self.entry(label).map(|e| e.role)
    }

    /// A filter a user would install (or a product's data path replayed), attached the
    /// default way.
    fn is_engine(&self, label: &str) -> bool {
        !label.contains('@') && matches!(self.role(label), Some(Role::Engine | Role::Profile))
    }

    /// The longest list the filter a label names holds, when a product limit caps it.
    fn holds(&self, label: &str) -> Option<u64> {
        self.entry(label).and_then(|e| e.sweep.holds)
    }

    fn is_reference(&self, label: &str) -> bool {
        self.role(label) == Some(Role::Reference)
    }

    /// Benchmark-only variants and other attach kinds run at the largest size only.
    fn largest_only(&self, label: &str) -> bool {
        label.contains('@') || self.entry(label).is_some_and(|e| e.sweep.largest_only)
    }

    /// Whether the sweep measures the send path of the filter a label names.
    fn send_path(&self, label: &str) -> bool {
        self.entry(label).is_some_and(|e| e.sweep.send_path)
    }

    /// Whether a run times the packet program: once per size and table (the program is the
    /// same whatever fills its maps), in the first repeat, attached the default way.
    pub(super) fn times_program(&self, job: &Job) -> bool {
        self.entry(&job.filter)
            .is_some_and(|e| e.sweep.program_cost)
            && !job.filter.contains('@')
            && job.repeat == 0
    }

    /// The quick look's filters: the baseline, every engine and profile, and the attach
    /// floors engines are measured above.
    fn quick_filters(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| {
                matches!(e.role, Role::Baseline | Role::Engine | Role::Profile)
                    || self.0.iter().any(|o| {
                        o.role == Role::Engine && o.send_path_floor.as_ref() == Some(&e.name)
                    })
            })
            .map(|e| e.name.clone())
            .collect()
    }

    /// The default sweep's filters: every variant, then the other labels it is run under.
    fn sweep_filters(&self) -> Vec<String> {
        self.0
            .iter()
            .flat_map(|e| std::iter::once(e.name.clone()).chain(e.sweep.also_as.iter().cloned()))
            .collect()
    }

    /// The scale test's filters: every engine and reference loader.
    fn scale_filters(&self) -> Vec<String> {
        self.0
            .iter()
            .filter(|e| e.sweep.scale)
            .map(|e| e.name.clone())
            .collect()
    }
}

/// Sizes of the quick look.
const QUICK_SIZES: [u64; 2] = [1_000, 100_000];

/// Sizes of the scale test.
const SCALE_SIZES: [u64; 3] = [10_000_000, 50_000_000, 100_000_000];

/// The largest size the scale test runs reference loaders at: their ratio to the engine
/// holds from 10M to 50M (0.21x and 0.25x for ipset, 0.84x and 0.78x for tcbpf here), and at
/// 100M they would take ten of the sweep's forty minutes.
const SCALE_REFERENCE_MAX: u64 = 50_000_000;

/// At scale, the send path (which loads the list a second time, into the sink namespace) is
/// measured only where the load is projected to take at most this long.
pub(super) const SCALE_SEND_PATH_MAX_LOAD: Duration = Duration::from_secs(100);

/// One run of the sweep.
pub(super) struct Job {
    /// The filter, as `egress-bench run --filter` takes it, with `@attach` for other kinds.
    pub(super) filter: String,
    /// The label in results: the filter, then `/mix` when not the default.
    pub(super) label: String,
    /// Entries per family (0: a list read from a file).
    pub(super) size: u64,
    /// The generator's prefix-length mix.
    pub(super) mix: String,
    /// Which repeat of this cell.
    pub(super) repeat: u32,
    /// Whether the run measures the send path (and traffic, outside the scale test).
    pub(super) send_path: bool,
    /// Whether the run also applies the live-update feed.
    pub(super) updates: bool,
    /// Whether the send path also times a new flow per packet (at the largest size).
    pub(super) new_flows: bool,
}

/// The runs of a sweep, in order, and the family their lists hold.
pub(super) struct Plan {
    pub(super) jobs: Vec<Job>,
    pub(super) family: String,
}

/// Plans the sweep `options` ask for.
pub(super) fn plan(options: &Options, registry: &Registry) -> Plan {
    let filters = if options.scale {
        registry.scale_filters()
    } else if options.quick && options.filters.is_none() {
        registry.quick_filters()
    } else {
        options
            .filters
            .clone()
            .unwrap_or_else(|| registry.sweep_filters())
    };
    let repeats = if options.scale || options.quick {
        1
    } else {
        options.repeats
    };
    let (sizes, mixes, family) = if options.scale {
        (
            SCALE_SIZES.to_vec(),
            vec!["default".into(), "hosts".into()],
            "4".to_owned(),
        )
    } else if options.quick {
        (
            QUICK_SIZES.to_vec(),
            vec!["default".into()],
            options.family.clone(),
        )
    } else if options.full {
        let mut sizes = options.sizes.clone();
        sizes.push(10_000_000);
        (
            sizes,
            vec!["default".into(), "hosts".into(), "uniform".into()],
            "both".to_owned(),
        )
    } else if options.cidrs.is_some() {
        (vec![0], vec!["default".into()], options.family.clone())
    } else {
        (
            options.sizes.clone(),
            options.mix.clone(),
            options.family.clone(),
        )
    };
    let mut jobs = Vec::new();
    for mix in &mixes {
        for &size in &sizes {
            for repeat in 0..repeats {
                for filter in filters
                    .iter()
                    // Outside the scale test, a profile runs at the sizes it holds, the
                    // largest of them standing for the sweep's largest.
                    .filter(|f| options.scale || registry.holds(f).is_none_or(|max| size <= max))
                    .filter(|f| {
                        largest_for(&sizes, size, registry.holds(f)) || !registry.largest_only(f)
                    })
                    .filter(|f| {
                        !(options.scale
                            && (mix != "default" || size > SCALE_REFERENCE_MAX)
                            && registry.is_reference(f))
                    })
                {
                    let label = if mix == "default" {
                        filter.clone()
                    } else {
                        format!("{filter}/{mix}")
                    };
                    let send_path = !options.no_send_path
                        && repeat == 0
                        && (!options.quick || largest_for(&sizes, size, registry.holds(filter)))
                        && registry.send_path(filter)
                        && !(options.scale && mix != "default");
                    // Live updates: every engine, once, at the largest size.
                    let largest = largest_for(&sizes, size, registry.holds(filter));
                    let updates = largest
                        && repeat == 0
                        && !options.scale
                        && options.update_seconds > 0.0
                        && registry.is_engine(filter);
                    let new_flows = send_path && largest && !options.scale && !options.quick;
                    jobs.push(Job {
                        filter: filter.clone(),
                        label,
                        size,
                        mix: mix.clone(),
                        repeat,
                        send_path,
                        updates,
                        new_flows,
                    });
                }
            }
        }
    }
    Plan { jobs, family }
}

/// Whether `size` is the largest of `sizes` a filter holding at most `holds` runs at.
fn largest_for(sizes: &[u64], size: u64, holds: Option<u64>) -> bool {
    sizes
        .iter()
        .copied()
        .filter(|&s| holds.is_none_or(|max| s <= max))
        .max()
        == Some(size)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use filter_core::Role;
    use records::{FilterEntry, SweepPolicy};

    use super::{Registry, plan};

    fn entry(name: &str, role: Role, sweep: SweepPolicy) -> FilterEntry {
        FilterEntry {
            name: name.into(),
            about: String::new(),
            role,
            drops: matches!(role, Role::Engine | Role::Reference),
            load_compared_with: None,
            send_path_floor: None,
            sweep,
        }
    }

    /// A registry shaped like egress-bench's: an engine, its reference loader, an attach
    /// floor swept under another attach kind too, a largest-only benchmark program.
    fn registry() -> Registry {
        let engine = SweepPolicy {
            scale: true,
            send_path: true,
            program_cost: true,
            ..SweepPolicy::default()
        };
        Registry(vec![
            entry("eng", Role::Engine, engine.clone()),
            entry(
                "eng-ref",
                Role::Reference,
                SweepPolicy {
                    scale: true,
                    ..SweepPolicy::default()
                },
            ),
            entry(
                "floor",
                Role::BenchmarkOnly,
                SweepPolicy {
                    send_path: true,
                    also_as: vec!["floor@clsact".into()],
                    ..SweepPolicy::default()
                },
            ),
            entry(
                "cold",
                Role::BenchmarkOnly,
                SweepPolicy {
                    largest_only: true,
                    send_path: true,
                    ..SweepPolicy::default()
                },
            ),
            entry(
                "prof",
                Role::Profile,
                SweepPolicy {
                    holds: Some(5_000),
                    ..engine.clone()
                },
            ),
        ])
    }

    fn options(args: &[&str]) -> super::Options {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            options: super::Options,
        }
        let mut argv = vec!["bench"];
        argv.extend_from_slice(args);
        Cli::parse_from(argv).options
    }

    /// Largest-only programs and other attach kinds run at the largest size only; the
    /// update feed runs once per engine there; reference loaders get no send path; repeats
    /// after the first measure no send path.
    #[test]
    fn the_default_sweep_schedules_by_policy() {
        let jobs = plan(&options(&["--sizes", "10,1000"]), &registry()).jobs;
        let at = |label: &str, size: u64| {
            jobs.iter()
                .filter(|j| j.label == label && j.size == size)
                .collect::<Vec<_>>()
        };
        assert_eq!(at("eng", 10).len(), 2, "two repeats");
        assert_eq!(at("floor", 10).len(), 2, "the floor runs at every size");
        assert!(at("cold", 10).is_empty() && at("floor@clsact", 10).is_empty());
        assert_eq!(at("cold", 1000).len(), 2);
        assert_eq!(at("floor@clsact", 1000).len(), 2);
        assert!(at("eng-ref", 1000).iter().all(|j| !j.send_path));
        let eng = at("eng", 1000);
        assert!(
            eng[0].send_path && !eng[1].send_path,
            "send path in the first repeat"
        );
        assert!(eng[0].updates && !eng[1].updates);
        assert!(
            at("eng", 10).iter().all(|j| !j.updates),
            "the feed at the largest size"
        );
        assert!(
            jobs.iter()
                .filter(|j| j.updates)
                .all(|j| j.filter == "eng" || j.filter == "prof")
        );
    }

    /// The quick look: engines, profiles, the baseline and floors at 1k and 100k, once, the
    /// send path and the update feed only at the largest size each holds.
    #[test]
    fn the_quick_look_is_small() {
        let jobs = plan(&options(&["--quick"]), &registry()).jobs;
        assert!(jobs.iter().all(|j| j.repeat == 0 && !j.new_flows));
        assert!(
            jobs.iter()
                .all(|j| j.filter != "eng-ref" && j.filter != "cold")
        );
        let eng: Vec<_> = jobs.iter().filter(|j| j.filter == "eng").collect();
        assert_eq!(
            eng.iter().map(|j| j.size).collect::<Vec<_>>(),
            [1_000, 100_000]
        );
        assert!(!eng[0].send_path && eng[1].send_path && eng[1].updates);
        let prof: Vec<_> = jobs.iter().filter(|j| j.filter == "prof").collect();
        assert_eq!(prof.len(), 1, "holds 5,000: 1k only");
        assert!(prof[0].send_path && prof[0].updates);
    }

    /// A profile runs at the sizes its product limit allows, the largest of them taking the
    /// update feed; the scale test runs it past the limit, where the failure is the row.
    #[test]
    fn a_profile_runs_at_the_sizes_it_holds() {
        let jobs = plan(&options(&["--sizes", "10,1000,100000"]), &registry()).jobs;
        let prof: Vec<_> = jobs.iter().filter(|j| j.filter == "prof").collect();
        assert!(prof.iter().all(|j| j.size <= 1000), "not past 5,000");
        assert!(prof.iter().any(|j| j.size == 10));
        assert!(
            prof.iter()
                .any(|j| j.updates && j.new_flows && j.size == 1000)
        );
        assert!(prof.iter().all(|j| !j.new_flows || j.size == 1000));
        let scale = plan(&options(&["--scale"]), &registry()).jobs;
        assert!(
            scale
                .iter()
                .any(|j| j.filter == "prof" && j.size == 10_000_000)
        );
    }

    /// The scale test runs engines and reference loaders, once each, reference loaders on
    /// the default mix up to 50M only, and no send path on the hosts mix.
    #[test]
    fn the_scale_test_schedules_engines_and_references() {
        let jobs = plan(&options(&["--scale"]), &registry()).jobs;
        assert!(
            jobs.iter()
                .all(|j| ["eng", "eng-ref", "prof"].contains(&j.filter.as_str()))
        );
        assert!(jobs.iter().all(|j| j.repeat == 0 && !j.updates));
        let references: Vec<_> = jobs.iter().filter(|j| j.filter == "eng-ref").collect();
        assert!(
            references
                .iter()
                .all(|j| j.mix == "default" && j.size <= 50_000_000)
        );
        assert_eq!(references.len(), 2, "10M and 50M");
        assert!(
            jobs.iter()
                .filter(|j| j.mix == "hosts")
                .all(|j| !j.send_path)
        );
        assert_eq!(
            jobs.iter().filter(|j| j.filter == "eng").count(),
            6,
            "three sizes, two mixes"
        );
    }
}
