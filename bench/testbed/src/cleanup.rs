//! Removing what killed runs left, and cleaning up on Ctrl-C.

use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use filter_core::{Error, OBJECT_PREFIX, Result, Tag, run_command};

use crate::claim::Claim;

use crate::bed::live;

/// How cleanup lists and removes the engines' objects in this namespace (chains, sets,
/// tables, tc filters) of one tag, or of every tag under `egb-`: the program's registry.
pub struct HostObjects<'a> {
    /// The objects under a prefix, one description each (see
    /// [`Registry::leftovers`](filter_core::Registry::leftovers)).
    pub list: &'a dyn Fn(&str) -> Result<Vec<String>>,
    /// Removes the objects under a prefix; returns what it removed.
    pub remove: &'a dyn Fn(&str) -> Result<Vec<String>>,
}

/// What a cleanup did, and what it left alone and why.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanupReport {
    /// What it removed.
    pub removed: Vec<String>,
    /// What it did not touch, each with the reason.
    pub left_alone: Vec<String>,
}

/// Where testbeds make their objects: namespaces, host links and client cgroups.
fn testbed_dirs() -> Vec<(&'static str, std::path::PathBuf)> {
    let mut dirs = vec![
        ("network namespace", "/run/netns".into()),
        ("link", "/sys/class/net".into()),
    ];
    if let Some(mount) = crate::cgroup::unified_mount() {
        dirs.push(("cgroup", mount));
    }
    dirs
}

/// Whether `name` in `kind`'s directory is a testbed's (not a sweep's memory cage).
fn is_testbed_object(kind: &str, name: &str) -> bool {
    name.starts_with(OBJECT_PREFIX) && !(kind == "cgroup" && crate::cgroup::is_cage_name(name))
}

/// Namespaces, host links and client cgroups named `egb-*`, by name.
fn testbed_objects() -> Result<Vec<(&'static str, String)>> {
    let mut found = Vec::new();
    for (kind, dir) in testbed_dirs() {
        let dir = dir.display().to_string();
        let dir = dir.as_str();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            // No namespace was ever made: nothing to list.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("reading {dir}"), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(format!("reading {dir}"), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // A cgroup is a directory; its files (cgroup.procs...) are not objects.
            if is_testbed_object(kind, &name) && (kind != "cgroup" || entry.path().is_dir()) {
                found.push((kind, name));
            }
        }
    }
    Ok(found)
}

fn remove_testbed_object(kind: &str, name: &str) -> Result<()> {
    if kind == "cgroup" {
        let dir = crate::cgroup::unified_mount()
            .ok_or_else(|| Error::InvalidInput("the cgroup v2 hierarchy went away".into()))?
            .join(name);
        return fs::remove_dir(&dir)
            .map_err(|e| Error::io(format!("removing cgroup {}", dir.display()), e));
    }
    let args: [&str; 3] = if kind == "link" {
        ["link", "del", name]
    } else {
        ["netns", "del", name]
    };
    run_command(Command::new("ip").args(args)).map(drop)
}

/// Removes what benchmark runs that died left behind: for every dead claim ([`claim`]), its
/// namespaces and host links and, in this namespace, the engines' objects of its tag. Live
/// runs' objects are left alone, and so is every `egb-*` object no run claimed (a filter a
/// program embedding the engine crates installed, or a run from before claims), unless
/// `unclaimed` asks for those too. The report says what stayed and why.
///
/// # Errors
/// The first object that could not be listed or removed.
///
/// [`claim`]: crate::claim
pub fn cleanup(host: &HostObjects<'_>, unclaimed: bool) -> Result<CleanupReport> {
    let mut report = CleanupReport::default();
    let claims = crate::claim::claims()?;
    let mut live = Vec::new();
    for found in &claims {
        match found {
            Claim::Live { tag, pid } => {
                live.push(tag.clone());
                report
                    .left_alone
                    .push(format!("{tag}*: its run (pid {pid}) is alive"));
            }
            Claim::Dead { tag } => {
                // Held while its objects go, so no new run takes the tag meanwhile.
                let Some(_claim) = crate::claim::adopt_dead(tag)? else {
                    live.push(tag.clone());
                    continue;
                };
                for (kind, name) in testbed_objects()? {
                    if name == *tag || name.starts_with(&format!("{tag}-")) {
                        remove_testbed_object(kind, &name)?;
                        report.removed.push(format!("{kind} {name}"));
                    }
                }
                report.removed.extend((host.remove)(tag)?);
            }
        }
    }
    let claimed = |name: &str| {
        claims
            .iter()
            .any(|c| Tag::from_name(name).is_ok_and(|t| t.as_str() == c.tag()))
    };
    for (kind, name) in testbed_objects()? {
        if claimed(&name) {
            continue;
        }
        if unclaimed {
            remove_testbed_object(kind, &name)?;
            report.removed.push(format!("{kind} {name}"));
        } else {
            report.left_alone.push(format!("{kind} {name}: {NO_CLAIM}"));
        }
    }
    // The live runs' own objects, as the engines describe them, are not unclaimed ones.
    let mut theirs = Vec::new();
    for tag in &live {
        theirs.extend((host.list)(tag)?);
    }
    let others: Vec<String> = (host.list)(OBJECT_PREFIX)?
        .into_iter()
        .filter(|o| !theirs.contains(o))
        .collect();
    if unclaimed && live.is_empty() {
        report.removed.extend((host.remove)(OBJECT_PREFIX)?);
    } else if unclaimed {
        // Objects named by a tag go by that tag; those the kernel names otherwise (tc
        // filters, TCX programs) cannot be told from a live run's and stay.
        let mut tags: Vec<String> = others
            .iter()
            .filter_map(|o| o.split_whitespace().find_map(|w| Tag::from_name(w).ok()))
            .map(|t| t.as_str().to_owned())
            .filter(|t| !live.contains(t))
            .collect();
        tags.sort();
        tags.dedup();
        for tag in &tags {
            report.removed.extend((host.remove)(tag)?);
        }
        let left = (host.list)(OBJECT_PREFIX)?;
        report.left_alone.extend(
            left.into_iter()
                .filter(|o| !theirs.contains(o))
                .map(|o| format!("{o}: cannot be told from a live run's while one runs")),
        );
    } else {
        report
            .left_alone
            .extend(others.into_iter().map(|o| format!("{o}: {NO_CLAIM}")));
    }
    Ok(report)
}

/// Why an unclaimed object stays.
const NO_CLAIM: &str = "no benchmark run claims it (a filter of another program, or a run \
                        from before run claims); `egress-bench cleanup --unclaimed` removes it";

/// Namespaces and host links whose names start with `prefix` (for example a run's tag):
/// what [`cleanup`] would remove. Tests use it to prove nothing was left behind.
pub fn leftovers(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (kind, dir) in testbed_dirs() {
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if filter_core::under_prefix(&name, prefix) && is_testbed_object(kind, &name) {
                    found.push(format!("{}/{name}", dir.display()));
                }
            }
        }
    }
    found
}

type Hook = Box<dyn Fn() + Send>;
static SIGNAL_HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Runs `hook` on SIGINT, SIGTERM or SIGHUP, before the namespaces are removed: for objects
/// outside testbed namespaces (a filter on the host's own firewall).
pub fn on_signal(hook: impl Fn() + Send + 'static) {
    SIGNAL_HOOKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(hook));
}

/// On SIGINT, SIGTERM or SIGHUP, runs the [`on_signal`] hooks, removes every testbed of this
/// process and exits with status 130 (SIGINT) or 143. Call once, early in `main`.
///
/// # Errors
/// [`Error::Io`](filter_core::Error::Io) when the handlers cannot be installed.
pub fn install_signal_cleanup() -> Result<()> {
    use std::io::Write as _;

    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let caught = CAUGHT.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // Set inside the handler itself, before the cleanup thread is even scheduled, so the
        // main thread can tell that its own failure was caused by the cleanup under way.
        signal_hook::flag::register_usize(signal, Arc::clone(caught), signal as usize)
            .map_err(|e| Error::io("install signal handlers", e))?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .map_err(|e| Error::io("install signal handlers", e))?;
    thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            for hook in SIGNAL_HOOKS
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                hook();
            }
            let names: Vec<String> = live().clone();
            // Not eprintln!: with the parent gone, stderr is a broken pipe, and a panic here
            // would leave the run alive with its objects in place.
            let _ = writeln!(
                std::io::stderr(),
                "\ninterrupted: removing {}",
                names.join(", ")
            );
            for name in names {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
            crate::cgroup::remove_live_workloads();
            crate::claim::release_all();
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

/// The signal caught by [`install_signal_cleanup`], if one was.
static CAUGHT: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Call before `main` returns: when a signal was caught, the cleanup it started removes the
/// run's objects under the main thread's feet, and whatever the main thread then reports (a
/// failed load, a vanished set) is a consequence of the signal, not the run's result. This
/// waits for that cleanup to exit the process with 128 + the signal, and exits so itself if
/// the cleanup has not finished within a minute. Returns at once when no signal was caught.
pub fn exit_if_interrupted() {
    let Some(signal) = CAUGHT
        .get()
        .map(|caught| caught.load(Ordering::SeqCst))
        .filter(|&signal| signal != 0)
    else {
        return;
    };
    thread::sleep(Duration::from_secs(60));
    std::process::exit(128 + i32::try_from(signal).unwrap_or(0));
}
