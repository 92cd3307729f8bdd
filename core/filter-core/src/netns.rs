use std::fs::File;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Command;

use nix::sched::{CloneFlags, setns};

use crate::{Error, Result};

/// A network namespace an engine works in: a named one under `/run/netns` (as made by
/// `ip netns add`), or the namespace of the calling process.
///
/// Sockets opened inside [`NetNs::run`] stay bound to the namespace for their whole life,
/// so an engine opens its netlink sockets there once and uses them from any thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNs {
    name: Option<String>,
}

impl NetNs {
    /// The namespace of the calling process (the host, unless the caller moved).
    pub fn current() -> Self {
        Self { name: None }
    }

    /// A namespace created with `ip netns add NAME`.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: Some(name.into()),
        }
    }

    /// The namespace's name, or `None` for the caller's own.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Runs `f` on a short-lived thread that has entered this namespace, and returns its
    /// result. The caller's own thread never changes namespace.
    ///
    /// # Errors
    /// [`Error::Io`] when the namespace cannot be opened or entered.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        let Some(name) = &self.name else {
            return Ok(f());
        };
        let path = PathBuf::from("/run/netns").join(name);
        let file = File::open(&path)
            .map_err(|e| Error::io(format!("open network namespace {}", path.display()), e))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| {
                        Error::io(format!("setns into {}", path.display()), e.into())
                    })?;
                    Ok(f())
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A [`Command`] that runs `program` inside this namespace (through `ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        match &self.name {
            Some(name) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", name, program]);
                cmd
            }
            None => Command::new(program),
        }
    }
}

/// Makes the helper `cmd` starts die with the thread that starts it (`PR_SET_PDEATHSIG`,
/// which survives `ip netns exec`'s exec): a run killed while a helper (`iptables-restore`,
/// `ipset restore`, `nft -f`) works on its list takes the helper with it, instead of leaving
/// it to commit after the run's objects were cleaned up. Only for helpers started by a
/// thread that lives as long as they should (the kernel signals when that thread ends).
pub fn dies_with_caller(cmd: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    #[expect(
        unsafe_code,
        reason = "pre_exec: the child makes two system calls only"
    )]
    // SAFETY: between fork and exec the closure calls prctl(2) and getppid(2): no
    // allocation, no lock.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)?;
            // The caller may have died between fork and prctl.
            if nix::unistd::getppid().as_raw().cast_unsigned() != parent {
                return Err(std::io::Error::other("the caller is gone"));
            }
            Ok(())
        });
    }
}

/// Runs a command to completion and returns its standard output; a failure becomes
/// [`Error::Command`] with the command line and what the command wrote to standard error.
///
/// # Errors
/// [`Error::Io`] when the command cannot start; [`Error::Command`] when it fails.
pub fn run_command(cmd: &mut Command) -> Result<String> {
    let line = command_line(cmd);
    let oom_before = oom_kills();
    dies_with_caller(cmd);
    let output = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("start `{line}`"), e))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(Error::Command {
            command: line,
            status: exit_cause(output.status, oom_before),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Processes the kernel's out-of-memory killer has killed since boot (`oom_kill` in
/// `/proc/vmstat`), or `None` where the kernel does not say.
pub fn oom_kills() -> Option<u64> {
    std::fs::read_to_string("/proc/vmstat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))?
        .trim()
        .parse()
        .ok()
}

/// Why a process ended, in words: its exit status, or the signal that killed it by name,
/// and for SIGKILL whether the out-of-memory killer struck since `oom_before` (an
/// [`oom_kills`] reading taken when the process started). Never a bare "signal: 9".
pub fn exit_cause(status: std::process::ExitStatus, oom_before: Option<u64>) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Some(signal) = status.signal() else {
        return status.to_string();
    };
    let name = nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned());
    let oom = oom_before
        .zip(oom_kills())
        .is_some_and(|(before, now)| now > before);
    if name == "SIGKILL" && oom {
        "killed by the kernel's out-of-memory killer (SIGKILL): it ran out of memory".to_owned()
    } else {
        format!("killed by {name}")
    }
}

/// Runs a command with what `write` produces streamed into its standard input (through a
/// 1 MiB buffer, so the text is never held whole), and waits for it; a failure becomes
/// [`Error::Command`] with the command line and its standard error.
///
/// # Errors
/// As [`run_command`], and [`Error::Io`] when writing its input fails.
///
/// # Panics
/// Never: standard input is always piped.
pub fn run_with_input(
    cmd: &mut Command,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<()> {
    use std::io::Write as _;
    use std::process::Stdio;
    let line = command_line(cmd);
    let oom_before = oom_kills();
    dies_with_caller(cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io(format!("start `{line}`"), e))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, stdin);
    let written = write(&mut writer).and_then(|()| writer.flush());
    drop(writer);
    let output = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("wait for `{line}`"), e))?;
    if !output.status.success() {
        return Err(Error::Command {
            command: line,
            status: exit_cause(output.status, oom_before),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    written.map_err(|e| Error::io(format!("write to `{line}`"), e))
}

/// A command as a shell-like line, for error messages.
pub fn command_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod exit_tests {
    use std::process::Command;

    use super::{exit_cause, oom_kills};

    /// A killed process is named by its signal, never "signal: 9"; an exit by its status.
    #[test]
    fn exit_causes_are_named() {
        let killed = Command::new("sh")
            .args(["-c", "kill -9 $$"])
            .status()
            .unwrap();
        assert_eq!(exit_cause(killed, oom_kills()), "killed by SIGKILL");
        let terminated = Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .status()
            .unwrap();
        assert_eq!(exit_cause(terminated, None), "killed by SIGTERM");
        let failed = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
        assert_eq!(exit_cause(failed, None), "exit status: 3");
    }
}
