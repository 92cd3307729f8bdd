//! Filters that outlive their process: the hook's links pinned in bpffs, one directory per
//! tag (`<bpffs>/egb-<id>/link`, `link_c4`...). A pinned link keeps its program, and the
//! program its maps, so the list stays enforced with no process holding anything; a later
//! process opens the pins and takes the links over. Removing the directory (teardown,
//! `cleanup`) unhooks the programs, and the last one gone takes the bpffs this crate
//! mounted (if it did) with it.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use filter_core::{Error, Result, Tag};

use crate::error::kernel;
use crate::sys;

/// Where this crate mounts a bpffs of its own when none is mounted; unmounted again once
/// it holds no pin (see [`release_own_mount`]), so no mount is left behind.
pub const OWN_MOUNT: &str = "/run/egress-bench/bpf";

/// Where bpffs is mounted, mounting one at [`OWN_MOUNT`] when none is (Debian mounts none).
/// Refused inside a mount namespace other than init's (`ip netns exec` makes one), where a
/// mount made here would vanish with the process, and the pins with it.
///
/// # Errors
/// [`Error::InvalidInput`] in such a namespace; the kernel's refusal to mount.
pub fn bpffs() -> Result<PathBuf> {
    if let Some(found) = filter_core::mounts::bpffs() {
        return Ok(found);
    }
    // Where init's namespace cannot be read (a container's pid 1 of another user), this one
    // is taken for the host's.
    let ours = std::fs::read_link("/proc/self/ns/mnt").ok();
    let init = std::fs::read_link("/proc/1/ns/mnt").ok();
    if ours.is_some() && init.is_some() && ours != init {
        return Err(Error::InvalidInput(
            "no bpffs is mounted in this mount namespace, and one mounted here would vanish \
             with the process (and the pinned filter with it): mount bpffs on the host \
             (mount -t bpf bpf /sys/fs/bpf) or run outside `ip netns exec`"
                .into(),
        ));
    }
    let path = PathBuf::from(OWN_MOUNT);
    std::fs::create_dir_all(&path).map_err(|e| Error::io(format!("creating {OWN_MOUNT}"), e))?;
    sys::mount_bpffs(&c_path(&path)?)
        .map_err(|e| kernel(format!("mounting bpffs at {OWN_MOUNT}"), e))?;
    Ok(path)
}

/// Unmounts the bpffs at [`OWN_MOUNT`] when it holds no pin any more (only the iterators
/// the kernel preloads into every bpffs, `*.debug`); a bpffs mounted by anyone else is
/// never touched.
///
/// # Errors
/// When it cannot be listed or unmounted.
pub fn release_own_mount() -> Result<()> {
    let own = Path::new(OWN_MOUNT);
    let mounted = filter_core::mounts::mounts()?
        .iter()
        .any(|m| m.fstype == "bpf" && m.path == own);
    if !mounted {
        return Ok(());
    }
    let entries =
        std::fs::read_dir(own).map_err(|e| Error::io(format!("listing {OWN_MOUNT}"), e))?;
    let pinned = entries
        .flatten()
        .any(|e| !e.file_name().to_string_lossy().ends_with(".debug"));
    if pinned {
        return Ok(());
    }
    sys::unmount(&c_path(own)?).map_err(|e| kernel(format!("unmounting {OWN_MOUNT}"), e))?;
    let _ = std::fs::remove_dir(own);
    Ok(())
}

/// The directory of `tag`'s pins in the bpffs mounted now; `None` when none is (then
/// nothing is pinned). Looking never mounts: only pinning does.
fn mounted_dir(tag: &Tag) -> Option<PathBuf> {
    filter_core::mounts::bpffs().map(|root| root.join(tag.as_str()))
}

fn c_path(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidInput(format!("{} holds a NUL byte", path.display())))
}

/// Pins each of `links` under `<bpffs>/<tag>/` by its name, mounting a bpffs ([`bpffs`]) and
/// making the directory. A name already pinned is left as it is when it pins the same link
/// (after a swap, the link is the one pinned before). When the own bpffs was unmounted
/// between (another process removed the last pin in it), it is mounted again once.
///
/// # Errors
/// When the directory holds a different filter's pins (adopt that one first), or the
/// kernel refuses.
pub(crate) fn pin_links(tag: &Tag, links: &[(String, std::os::fd::BorrowedFd<'_>)]) -> Result<()> {
    let pinned = pin_in(&bpffs()?.join(tag.as_str()), links);
    if pinned.is_err() && filter_core::mounts::bpffs().is_none() {
        return pin_in(&bpffs()?.join(tag.as_str()), links);
    }
    pinned
}

fn pin_in(dir: &Path, links: &[(String, std::os::fd::BorrowedFd<'_>)]) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    for (name, fd) in links {
        let path = dir.join(name);
        match sys::pin(*fd, &c_path(&path)?) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let ours = link_id(*fd)?;
                let there = sys::pinned(&c_path(&path)?)
                    .map_err(|e| kernel(format!("opening {}", path.display()), e))?;
                let there = link_id(std::os::fd::AsFd::as_fd(&there))?;
                if ours != there {
                    return Err(Error::InvalidInput(format!(
                        "{} already pins another filter's link: adopt it, or remove it \
                         (egress-bench cleanup --unclaimed)",
                        path.display()
                    )));
                }
            }
            Err(e) => return Err(kernel(format!("pinning {}", path.display()), e).into()),
        }
    }
    Ok(())
}

/// The kernel's id of the link open as `fd`.
fn link_id(fd: std::os::fd::BorrowedFd<'_>) -> Result<u32> {
    Ok(sys::link_id(fd).map_err(|e| kernel("reading a link's id", e))?)
}

/// The links pinned for `tag` by `names`, opened; `None` when nothing is pinned.
///
/// # Errors
/// When some of the names are pinned and others not (a run killed while pinning), or the
/// kernel refuses to open one.
pub(crate) fn open(tag: &Tag, names: &[String]) -> Result<Option<Vec<OwnedFd>>> {
    let Some(dir) = mounted_dir(tag) else {
        return Ok(None);
    };
    let present: Vec<bool> = names.iter().map(|n| dir.join(n).exists()).collect();
    if !present.iter().any(|&p| p) {
        return Ok(None);
    }
    if !present.iter().all(|&p| p) {
        return Err(Error::InvalidInput(format!(
            "{} holds only some of the pins {names:?}: not a whole filter to adopt",
            dir.display()
        )));
    }
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            sys::pinned(&c_path(&path)?).map_err(|e| {
                kernel(format!("opening the pinned link {}", path.display()), e).into()
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// Removes `tag`'s pins (the links they held go once no descriptor holds them); whether
/// there were any.
///
/// # Errors
/// When a pin or the directory cannot be removed.
pub(crate) fn remove(tag: &Tag) -> Result<bool> {
    match mounted_dir(tag) {
        Some(dir) => remove_dir(&dir),
        None => Ok(false),
    }
}

/// Removes `dir` and its pins, and the own bpffs once it holds none.
fn remove_dir(dir: &Path) -> Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            release_own_mount()?;
            return Ok(false);
        }
        Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
    };
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io(format!("listing {}", dir.display()), e))?
            .path();
        std::fs::remove_file(&path)
            .map_err(|e| Error::io(format!("removing {}", path.display()), e))?;
    }
    std::fs::remove_dir(dir).map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
    release_own_mount()?;
    Ok(true)
}

/// The pinned filters under `prefix` in a mounted bpffs, one description each (none when no
/// bpffs is mounted: nothing can be pinned then).
///
/// # Errors
/// When the bpffs cannot be listed.
pub fn pinned(prefix: &str) -> Result<Vec<String>> {
    let Some(root) = filter_core::mounts::bpffs() else {
        return Ok(Vec::new());
    };
    let entries = std::fs::read_dir(&root)
        .map_err(|e| Error::io(format!("listing {}", root.display()), e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(format!("listing {}", root.display()), e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if filter_core::under_prefix(&name, prefix) && entry.path().is_dir() {
            found.push(format!("pinned filter {}", entry.path().display()));
        }
    }
    found.sort();
    Ok(found)
}

/// Removes the pinned filters [`pinned`] finds; returns what it removed.
///
/// # Errors
/// The first that cannot be removed.
pub fn remove_pinned(prefix: &str) -> Result<Vec<String>> {
    let Some(root) = filter_core::mounts::bpffs() else {
        return Ok(Vec::new());
    };
    let mut removed = Vec::new();
    for found in pinned(prefix)? {
        let name = found.rsplit('/').next().unwrap_or_default();
        if remove_dir(&root.join(name))? {
            removed.push(found);
        }
    }
    Ok(removed)
}
