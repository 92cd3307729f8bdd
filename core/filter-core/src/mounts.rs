//! Where file systems are mounted, from `/proc/self/mountinfo`: the cgroup hierarchies a
//! filter on a cgroup or a memory limit needs, found rather than assumed (a pure cgroup v2
//! system mounts the unified hierarchy at `/sys/fs/cgroup`, a hybrid one at
//! `/sys/fs/cgroup/unified`).

use std::path::PathBuf;

/// A mounted file system: where, of which type, with which super-block options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount point.
    pub path: PathBuf,
    /// The file system type (`cgroup2`, `cgroup`, `bpf`...).
    pub fstype: String,
    /// Its super-block options (for cgroup v1, the controllers: `rw,memory`).
    pub options: Vec<String>,
}

/// Every mount this process sees, in `/proc/self/mountinfo` order.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) when the file cannot be read.
pub fn mounts() -> crate::Result<Vec<Mount>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| crate::Error::io("reading /proc/self/mountinfo", e))?;
    Ok(text.lines().filter_map(parse).collect())
}

/// One line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTIONS`.
fn parse(line: &str) -> Option<Mount> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let dash = fields.iter().position(|&f| f == "-")?;
    Some(Mount {
        path: PathBuf::from(fields.get(4)?),
        fstype: (*fields.get(dash + 1)?).to_owned(),
        options: fields
            .get(dash + 3)
            .map(|o| o.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

/// Where the unified (cgroup v2) hierarchy is mounted, if it is.
pub fn cgroup2() -> Option<PathBuf> {
    mounts()
        .ok()?
        .into_iter()
        .find(|m| m.fstype == "cgroup2")
        .map(|m| m.path)
}

/// Where a BPF file system (bpffs) is mounted, if one is: the first in mount order.
pub fn bpffs() -> Option<PathBuf> {
    mounts()
        .ok()?
        .into_iter()
        .find(|m| m.fstype == "bpf")
        .map(|m| m.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mountinfo_line_gives_its_parts() {
        let line =
            "35 24 0:30 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory";
        let mount = parse(line).unwrap();
        assert_eq!(mount.path, PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(mount.fstype, "cgroup");
        assert_eq!(mount.options, ["rw", "memory"]);
        assert!(parse("no dash here").is_none());
    }
}
