//! Removing what killed runs left, and cleaning up on Ctrl-C.

use std::fs;
use std::process::Command;
use std::sync::Mutex;
use std::thread;

use filter_core::{Error, OBJECT_PREFIX, Result, run_command};

use crate::bed::live;

/// Removes every testbed namespace and host link (`egb-*`) left by runs that were killed,
/// and returns their names. Never touches objects without the prefix.
///
/// # Errors
/// The first object that could not be removed.
pub fn cleanup() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(OBJECT_PREFIX) {
                run_command(Command::new("ip").args(["netns", "del", &name]))?;
                removed.push(format!("network namespace {name}"));
            }
        }
    }
    if let Ok(entries) = fs::read_dir("/sys/class/net") {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(OBJECT_PREFIX) {
                run_command(Command::new("ip").args(["link", "del", &name]))?;
                removed.push(format!("link {name}"));
            }
        }
    }
    Ok(removed)
}

/// Namespaces and host links whose names start with `prefix` (for example a run's tag):
/// what [`cleanup`] would remove. Tests use it to prove nothing was left behind.
pub fn leftovers(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for dir in ["/run/netns", "/sys/class/net"] {
        if let Ok(entries) = fs::read_dir(dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(prefix) {
                    found.push(format!("{dir}/{name}"));
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
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
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
            eprintln!("\ninterrupted: removing {}", names.join(", "));
            for name in names {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}
