//! The harness's cgroups.
//!
//! - [`Workload`]: a testbed's client side as a cgroup v2 (`egb-<id>` at the root of the
//!   unified hierarchy), the target of the cgroup hooks. Its probe and traffic sockets are
//!   made by a process inside it, so they belong to it wherever they are used from.
//! - [`MemoryCage`]: a run and everything it starts (reference tools such as `nft -f`
//!   included) under a memory limit, so that a list too big for the machine is killed inside
//!   its cgroup, named with its figures, and never sets off the machine-wide out-of-memory
//!   killer. It goes under the caller's own memory cgroup, in the unified hierarchy when its
//!   memory controller is there, else in cgroup v1's `memory` hierarchy (this project's
//!   machines mount a hybrid layout with the controller on v1).

use std::path::{Path, PathBuf};

use filter_core::{Error, Result};

/// Which interface the memory controller speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2: `memory.max`, `memory.events`, `memory.peak`.
    Unified,
    /// cgroup v1: `memory.limit_in_bytes`, `memory.oom_control`, `memory.max_usage_in_bytes`.
    V1,
}

/// A cgroup of its own with a memory limit, removed when dropped (once its processes are
/// gone). Names start with `egb-`.
#[derive(Debug)]
pub struct MemoryCage {
    dir: PathBuf,
    hierarchy: Hierarchy,
    limit: u64,
}

/// Mount points of cgroup file systems: the unified one, and v1's memory hierarchy.
fn mounts() -> Result<(Option<PathBuf>, Option<PathBuf>)> {
    let all = filter_core::mounts::mounts()?;
    let unified = all
        .iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.path.clone());
    let v1 = all
        .iter()
        .find(|m| m.fstype == "cgroup" && m.options.iter().any(|o| o == "memory"))
        .map(|m| m.path.clone());
    Ok((unified, v1))
}

/// This process's cgroup path in a hierarchy: `0::/x` for the unified one, `N:memory:/x`
/// for v1's memory controller.
fn own_path(unified: bool) -> Result<String> {
    let text = read("/proc/self/cgroup".as_ref())?;
    text.lines()
        .find_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let wanted = if unified {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == "memory")
            };
            wanted.then(|| path.to_owned())
        })
        .ok_or_else(|| Error::InvalidInput("this process is in no memory cgroup".into()))
}

/// Where a memory cgroup can be made: under this process's own cgroup of the hierarchy that
/// has the memory controller.
///
/// # Errors
/// [`Error::InvalidInput`] when no hierarchy has it (then nothing can be limited).
pub fn memory_parent() -> Result<(PathBuf, Hierarchy)> {
    let (unified, v1) = mounts()?;
    if let Some(mount) = unified {
        let own = mount.join(own_path(true)?.trim_start_matches('/'));
        let controllers =
            std::fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Ok((own, Hierarchy::Unified));
        }
    }
    if let Some(mount) = v1 {
        let own = mount.join(own_path(false)?.trim_start_matches('/'));
        return Ok((own, Hierarchy::V1));
    }
    Err(Error::InvalidInput(
        "no cgroup hierarchy here has the memory controller".into(),
    ))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .map_err(|e| Error::io(format!("writing {value} to {}", path.display()), e))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file (`memory.events`, `memory.oom_control`).
fn keyed(path: &Path, key: &str) -> Option<u64> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

impl MemoryCage {
    /// Makes cgroup `name` (which must start with `egb-`) with a memory limit of `limit`
    /// bytes; on the unified hierarchy the parent's `subtree_control` gets `+memory`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a foreign name or no memory controller; [`Error::Io`]
    /// when the cgroup cannot be made or limited (it is removed again).
    pub fn new(name: &str, limit: u64) -> Result<Self> {
        if !name.starts_with(filter_core::OBJECT_PREFIX) {
            return Err(Error::InvalidInput(format!(
                "cgroup {name}: names of egress-bench's cgroups start with {}",
                filter_core::OBJECT_PREFIX
            )));
        }
        let (parent, hierarchy) = memory_parent()?;
        if hierarchy == Hierarchy::Unified {
            write(&parent.join("cgroup.subtree_control"), "+memory")?;
        }
        let dir = parent.join(name);
        std::fs::create_dir(&dir)
            .map_err(|e| Error::io(format!("making cgroup {}", dir.display()), e))?;
        let cage = Self {
            dir,
            hierarchy,
            limit,
        };
        let limited = match hierarchy {
            Hierarchy::Unified => std::fs::write(cage.dir.join("memory.max"), limit.to_string())
                .and_then(|()| std::fs::write(cage.dir.join("memory.swap.max"), "0"))
                .or_else(|e| {
                    // memory.swap.max exists only with swap accounting.
                    if cage.dir.join("memory.swap.max").exists() {
                        Err(e)
                    } else {
                        Ok(())
                    }
                }),
            Hierarchy::V1 => {
                std::fs::write(cage.dir.join("memory.limit_in_bytes"), limit.to_string()).and_then(
                    |()| {
                        // Swap counts too where it is accounted; the limit is set first.
                        let memsw = cage.dir.join("memory.memsw.limit_in_bytes");
                        if memsw.exists() {
                            std::fs::write(memsw, limit.to_string())
                        } else {
                            Ok(())
                        }
                    },
                )
            }
        };
        limited.map_err(|e| Error::io(format!("limiting cgroup {}", cage.dir.display()), e))?;
        Ok(cage)
    }

    /// Moves process `pid` (and so every process it starts later) into the cgroup.
    ///
    /// # Errors
    /// [`Error::Io`] when the kernel refuses.
    pub fn add(&self, pid: u32) -> Result<()> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string())?;
        Ok(())
    }

    /// Makes `cmd`'s process join the cgroup between fork and exec, so that nothing it does
    /// runs outside it.
    ///
    /// # Panics
    /// Never: a path made by [`MemoryCage::new`] has no NUL byte.
    pub fn enclose(&self, cmd: &mut std::process::Command) {
        use std::os::unix::ffi::OsStrExt as _;
        use std::os::unix::process::CommandExt as _;
        let procs = std::ffi::CString::new(self.dir.join("cgroup.procs").as_os_str().as_bytes())
            .expect("a cgroup path has no NUL byte");
        #[expect(unsafe_code, reason = "pre_exec: the child runs open and write only")]
        // SAFETY: between fork and exec the closure calls only open(2) and write(2) on a
        // path made before the fork: no allocation, no lock.
        unsafe {
            cmd.pre_exec(move || {
                let fd = nix::fcntl::open(
                    procs.as_c_str(),
                    nix::fcntl::OFlag::O_WRONLY,
                    nix::sys::stat::Mode::empty(),
                )?;
                nix::unistd::write(&fd, b"0")?;
                Ok(())
            });
        }
    }

    /// The limit, in bytes.
    #[must_use]
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Which hierarchy the cgroup is in.
    #[must_use]
    pub fn hierarchy(&self) -> Hierarchy {
        self.hierarchy
    }

    /// The cgroup's directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Processes the kernel killed in this cgroup for reaching its limit.
    #[must_use]
    pub fn oom_kills(&self) -> Option<u64> {
        match self.hierarchy {
            Hierarchy::Unified => keyed(&self.dir.join("memory.events"), "oom_kill"),
            Hierarchy::V1 => keyed(&self.dir.join("memory.oom_control"), "oom_kill"),
        }
    }

    /// The most memory the cgroup used at once (kernel memory charged to it included), where
    /// the kernel keeps that figure.
    #[must_use]
    pub fn peak(&self) -> Option<u64> {
        match self.hierarchy {
            Hierarchy::Unified => read_u64(&self.dir.join("memory.peak")),
            Hierarchy::V1 => read_u64(&self.dir.join("memory.max_usage_in_bytes")),
        }
    }

    /// How often the cgroup's usage hit its limit (`memory.failcnt` on v1, the `max` event
    /// on v2): a kernel allocation charged to it then fails with `ENOMEM` rather than killing.
    #[must_use]
    pub fn limit_hits(&self) -> Option<u64> {
        match self.hierarchy {
            Hierarchy::Unified => keyed(&self.dir.join("memory.events"), "max"),
            Hierarchy::V1 => read_u64(&self.dir.join("memory.failcnt")),
        }
    }

    /// Why the cgroup's processes failed, in words with the figures, when its limit is what
    /// stopped them: killed there, or refused memory there; `None` otherwise.
    #[must_use]
    pub fn verdict(&self) -> Option<String> {
        let gib = |b: u64| {
            #[expect(clippy::cast_precision_loss, reason = "a figure for people")]
            let g = b as f64 / f64::from(1 << 30);
            g
        };
        let peak = self
            .peak()
            .map_or_else(String::new, |p| format!(" at {:.2} GiB", gib(p)));
        let Some(kills) = self.oom_kills().filter(|&k| k > 0) else {
            let hits = self.limit_hits().filter(|&h| h > 0)?;
            return Some(format!(
                "reached the memory limit of its cgroup{peak} (limit {:.2} GiB, hit {hits} \
                 times): kernel allocations charged to it were refused",
                gib(self.limit)
            ));
        };
        Some(format!(
            "killed by the memory limit of its cgroup{peak} (limit {:.2} GiB; {kills} process{} \
             killed inside it)",
            gib(self.limit),
            if kills == 1 { "" } else { "es" },
        ))
    }

    /// Removes the cgroup, waiting up to a second for its processes to be gone.
    ///
    /// # Errors
    /// [`Error::Io`] when it still cannot be removed.
    pub fn remove(mut self) -> Result<()> {
        self.remove_dir()
    }

    fn remove_dir(&mut self) -> Result<()> {
        if !self.dir.exists() {
            return Ok(());
        }
        let mut last = None;
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => last = Some(e),
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(Error::io(
            format!("removing cgroup {}", self.dir.display()),
            last.expect("the loop ran"),
        ))
    }
}

impl Drop for MemoryCage {
    fn drop(&mut self) {
        let _ = self.remove_dir();
    }
}

/// The name of the `n`th cage of this process: `egb-mem<pid>-<n>`, so that a later run can
/// tell a live process's cage from a dead one's.
#[must_use]
pub fn cage_name(n: usize) -> String {
    format!(
        "{}mem{}-{n}",
        filter_core::OBJECT_PREFIX,
        std::process::id()
    )
}

/// Whether `name` is a memory cage's ([`cage_name`]): `egb-mem<pid>-<n>`.
#[must_use]
pub fn is_cage_name(name: &str) -> bool {
    cage_owner(name).is_some()
}

fn cage_owner(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(filter_core::OBJECT_PREFIX)?
        .strip_prefix("mem")?;
    let (pid, n) = rest.split_once('-')?;
    n.parse::<usize>().ok()?;
    pid.parse().ok()
}

/// The cages of processes that are gone (see [`cage_name`]), left by a run that was killed:
/// removed when empty (a cgroup that still holds a process cannot be, and is left).
/// Returns the names removed.
///
/// # Errors
/// [`Error::Io`] when the parent cgroup cannot be listed.
pub fn remove_dead_cages() -> Result<Vec<String>> {
    let Ok((parent, _)) = memory_parent() else {
        return Ok(Vec::new());
    };
    let entries = std::fs::read_dir(&parent)
        .map_err(|e| Error::io(format!("listing {}", parent.display()), e))?;
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = cage_owner(&name) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() && std::fs::remove_dir(entry.path()).is_ok()
        {
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Where the unified (cgroup v2) hierarchy is mounted ([`filter_core::mounts::cgroup2`]).
#[must_use]
pub fn unified_mount() -> Option<PathBuf> {
    filter_core::mounts::cgroup2()
}

/// A cgroup v2 standing for a testbed's client side: `egb-<id>` at the root of the unified
/// hierarchy. Sockets made by [`Workload::sockets`] belong to it (the kernel ties a socket to
/// the cgroup of the process that opens it), so a cgroup hook there filters them, and no
/// other process's. Removed on drop.
#[derive(Debug)]
pub struct Workload {
    dir: PathBuf,
}

/// Workloads of this process, removed by the signal handler.
static LIVE_WORKLOADS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes this process's workload cgroups (on a signal, before it exits).
pub(crate) fn remove_live_workloads() {
    for dir in LIVE_WORKLOADS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
    {
        let _ = std::fs::remove_dir(dir);
    }
}

/// The descriptor numbers the socket-making child puts its sockets at.
const HANDOVER_FD: i32 = 500;

impl Workload {
    /// Makes cgroup `name` (a tag, or a tag's name for one of its parts) at the root of the
    /// unified hierarchy; `None` where no cgroup v2 hierarchy is mounted.
    ///
    /// # Errors
    /// [`Error::Io`] when the cgroup cannot be made.
    pub fn create(name: &str) -> Result<Option<Self>> {
        let Some(mount) = unified_mount() else {
            return Ok(None);
        };
        let dir = mount.join(name);
        std::fs::create_dir(&dir)
            .map_err(|e| Error::io(format!("making cgroup {}", dir.display()), e))?;
        LIVE_WORKLOADS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(dir.clone());
        Ok(Some(Self { dir }))
    }

    /// The cgroup's directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Makes `cmd`'s process join the cgroup between fork and exec (a traffic tool of the
    /// client side, so that cgroup hooks see its sockets).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a path the kernel cannot be given.
    pub fn enclose(&self, cmd: &mut std::process::Command) -> Result<()> {
        join_in_child(&self.dir, cmd)
    }

    /// Sockets opened inside the cgroup and `netns`: [`sockets_in`].
    ///
    /// # Errors
    /// As [`sockets_in`].
    pub fn sockets(
        &self,
        netns: &filter_core::NetNs,
        kinds: &[(i32, i32)],
    ) -> Result<Vec<std::os::fd::OwnedFd>> {
        sockets_in(&self.dir, netns, kinds)
    }
}

/// Sockets opened inside cgroup `dir` and inside `netns`, one per `(domain, type)` (`libc`
/// constants: `AF_INET`, `SOCK_DGRAM`...): a child process joins both, opens them and this
/// process takes them over (`pidfd_getfd`, Linux 5.6+). The kernel ties a socket to the
/// cgroup of the process that opened it, wherever it is used from later.
///
/// # Errors
/// [`Error::Io`] when the child cannot be started or its sockets taken.
pub fn sockets_in(
    dir: &Path,
    netns: &filter_core::NetNs,
    kinds: &[(i32, i32)],
) -> Result<Vec<std::os::fd::OwnedFd>> {
    use nix::libc;
    use std::os::fd::AsRawFd as _;
    use std::os::unix::ffi::OsStrExt as _;
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|_| Error::InvalidInput("a cgroup path with a NUL byte".into()))?;
    let ns_path = netns
        .name()
        .map(|name| std::ffi::CString::new(format!("/run/netns/{name}")))
        .transpose()
        .map_err(|_| Error::InvalidInput("a namespace name with a NUL byte".into()))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::io("making a pipe", e.into()))?;
    let ready = ready_w.as_raw_fd();
    #[expect(
        unsafe_code,
        reason = "fork: the child makes raw system calls only, then waits to be killed"
    )]
    // SAFETY: in the child of a multi-threaded process only async-signal-safe system calls
    // follow (close_range, open, write, setns, socket, dup2, close, pause, _exit) on values
    // made before the fork: no allocation, no lock. The child never returns from the block.
    let pid = unsafe {
        let pid = libc::fork();
        if pid == 0 {
            // Let go at once of every descriptor inherited from the other threads (a BPF
            // link, a socket), so that this child never keeps another's object alive.
            let ready_u = ready as libc::c_uint;
            libc::syscall(libc::SYS_close_range, 3, ready_u - 1, 0);
            libc::syscall(libc::SYS_close_range, ready_u + 1, libc::c_uint::MAX, 0);
            let mut status = 0u8;
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                status = 1;
            }
            libc::close(fd);
            if status == 0
                && let Some(path) = &ns_path
            {
                let ns = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if ns < 0 || libc::setns(ns, libc::CLONE_NEWNET) != 0 {
                    status = 2;
                }
                libc::close(ns);
            }
            for (i, &(domain, kind)) in kinds.iter().enumerate() {
                if status != 0 {
                    break;
                }
                let socket = libc::socket(domain, kind, 0);
                #[expect(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                let slot = HANDOVER_FD + i as i32;
                if socket < 0 || libc::dup2(socket, slot) < 0 {
                    status = 3;
                }
                libc::close(socket);
            }
            libc::write(ready, (&raw const status).cast(), 1);
            if status != 0 {
                libc::_exit(1);
            }
            loop {
                libc::pause();
            }
        }
        pid
    };
    drop(ready_w);
    if pid < 0 {
        return Err(Error::io(
            "forking to open sockets in a cgroup",
            std::io::Error::last_os_error(),
        ));
    }
    let child = nix::unistd::Pid::from_raw(pid);
    let mut status = [9u8];
    let said = nix::unistd::read(&ready_r, &mut status);
    let taken = match (said, status[0]) {
        (Ok(1), 0) => take_fds(u32::try_from(pid).unwrap_or_default(), kinds.len()),
        (_, code) => Err(Error::InvalidInput(format!(
            "opening sockets in cgroup {} and {}: the child failed at step {code} (1: join the \
             cgroup, 2: enter the namespace, 3: open a socket)",
            dir.display(),
            netns.name().unwrap_or("this namespace")
        ))),
    };
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, None);
    taken
}

/// Makes `cmd`'s process write itself into `dir`'s `cgroup.procs` between fork and exec.
fn join_in_child(dir: &Path, cmd: &mut std::process::Command) -> Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::process::CommandExt as _;
    let procs = std::ffi::CString::new(dir.join("cgroup.procs").as_os_str().as_bytes())
        .map_err(|_| Error::InvalidInput("a cgroup path with a NUL byte".into()))?;
    #[expect(unsafe_code, reason = "pre_exec: the child runs open and write only")]
    // SAFETY: between fork and exec the closure calls only open(2), write(2) and close(2)
    // on a path made before the fork: no allocation, no lock.
    unsafe {
        cmd.pre_exec(move || {
            use nix::libc;
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    Ok(())
}

/// Duplicates descriptors `HANDOVER_FD..HANDOVER_FD + count` of process `pid` into this one.
fn take_fds(pid: u32, count: usize) -> Result<Vec<std::os::fd::OwnedFd>> {
    use nix::libc;
    use std::os::fd::FromRawFd as _;
    let failed = |what: &str| Error::io(what.to_owned(), std::io::Error::last_os_error());
    let pid = i32::try_from(pid).map_err(|_| Error::InvalidInput(format!("pid {pid}")))?;
    #[expect(
        unsafe_code,
        reason = "pidfd_open and pidfd_getfd have no safe wrapper"
    )]
    // SAFETY: plain system calls on integers; each descriptor returned is new and owned here.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0);
        if pidfd < 0 {
            return Err(failed("pidfd_open of the socket-making child"));
        }
        let pidfd = std::os::fd::OwnedFd::from_raw_fd(
            i32::try_from(pidfd).expect("file descriptors fit an int"),
        );
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            #[expect(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            let slot = HANDOVER_FD + i as i32;
            let fd = libc::syscall(
                libc::SYS_pidfd_getfd,
                std::os::fd::AsRawFd::as_raw_fd(&pidfd),
                slot,
                0,
            );
            if fd < 0 {
                return Err(failed("pidfd_getfd of a socket made in the cgroup"));
            }
            out.push(std::os::fd::OwnedFd::from_raw_fd(
                i32::try_from(fd).expect("file descriptors fit an int"),
            ));
        }
        Ok(out)
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        // Its processes (the socket-making children) are gone; sockets they made still
        // point at it, which does not keep a cgroup directory from going.
        let _ = std::fs::remove_dir(&self.dir);
        LIVE_WORKLOADS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|d| *d != self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that holds 256 MiB (`tail` keeps a line without a newline whole) in a
    /// 64 MiB cage is killed there, and the verdict names the limit and the peak. Without
    /// the limit it would end by itself, and the test fail.
    #[test]
    fn a_process_past_its_limit_is_killed_in_its_cage_and_named() {
        crate::needs_root!();
        let name = cage_name(0);
        let cage = MemoryCage::new(&name, 64 << 20).unwrap();
        assert_eq!(cage.oom_kills(), Some(0));
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", "head -c 268435456 /dev/zero | tail"])
            .stdout(std::process::Stdio::null());
        cage.enclose(&mut cmd);
        let status = cmd.status().unwrap();
        assert!(!status.success(), "{status}: the limit did not hold");
        let verdict = cage.verdict().expect("the limit killed it");
        assert!(
            verdict.starts_with("killed by the memory limit of its cgroup at 0.06 GiB")
                && verdict.contains("limit 0.06 GiB"),
            "{verdict}"
        );
        let dir = cage.path().to_owned();
        cage.remove().unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn only_egress_bench_names_are_made() {
        let err = MemoryCage::new("user-slice", 1 << 30).unwrap_err();
        assert!(err.to_string().contains("start with egb-"), "{err}");
    }
}
