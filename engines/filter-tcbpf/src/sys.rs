//! The raw calls aya does not offer, in one place: `BPF_MAP_UPDATE_BATCH` and the mmap of an
//! array map. Everything else (map creation, program load, attach, lookups, test runs) goes
//! through aya.
#![allow(unsafe_code, reason = "the raw calls aya does not wrap")]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `enum bpf_cmd`: `BPF_MAP_UPDATE_BATCH`.
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h), padded to the size
/// the kernel checks unused bytes up to.
#[repr(C, align(8))]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

// The layout the kernel reads: uapi's `batch` struct is 56 bytes, with `count` at 32,
// `map_fd` at 36 and `flags` at 48.
const _: () = {
    assert!(size_of::<BatchAttr>() == 56);
    assert!(std::mem::offset_of!(BatchAttr, keys) == 16);
    assert!(std::mem::offset_of!(BatchAttr, count) == 32);
    assert!(std::mem::offset_of!(BatchAttr, map_fd) == 36);
    assert!(std::mem::offset_of!(BatchAttr, elem_flags) == 40);
    assert!(std::mem::offset_of!(BatchAttr, flags) == 48);
};

/// Updates `count` entries of `map` from packed `keys` and `values` in one call. Returns how
/// many the kernel processed (all of them on success); on failure, the error and the number
/// processed before it.
///
/// Needs Linux 5.6+ and a map type with batch support (LPM tries and arrays have it).
pub fn update_batch(
    map: BorrowedFd<'_>,
    keys: &[u8],
    values: &[u8],
    count: u32,
) -> Result<u32, (io::Error, u32)> {
    let key_size = keys.len() / count.max(1) as usize;
    let value_size = values.len() / count.max(1) as usize;
    assert_eq!(
        key_size * count as usize,
        keys.len(),
        "keys must hold count keys"
    );
    assert_eq!(
        value_size * count as usize,
        values.len(),
        "values must hold count values"
    );
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count,
        map_fd: u32::try_from(map.as_raw_fd()).expect("valid fds are non-negative"),
        ..BatchAttr::default()
    };
    // SAFETY: attr is a valid, initialised bpf_attr prefix; the kernel reads `count` keys and
    // values from the two slices, whose lengths were checked above, writes back only
    // `attr.count`, and keeps no pointer after the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_BATCH,
            &raw mut attr,
            size_of::<BatchAttr>(),
        )
    };
    if ret < 0 {
        Err((io::Error::last_os_error(), attr.count))
    } else {
        Ok(attr.count)
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> io::Result<u64> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer given and keeps nothing.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    Ok(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// Kernel memory charged to a BPF object, from `memlock:` in `/proc/self/fdinfo/<fd>`
/// (the map's own accounting, `map_mem_usage`, on Linux 6.4+).
pub fn memlock(fd: BorrowedFd<'_>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}

/// A `BPF_F_MMAPABLE` array map's values mapped into this process (shared with the kernel:
/// what is written here, the program reads). Unmapped on drop; the map lives while mapped.
pub struct Mapping {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory, owned by this value alone.
unsafe impl Send for Mapping {}

/// Types the mapped values are viewed as.
///
/// # Safety
///
/// Implementors must be plain bytes: no padding, every bit pattern a valid value, alignment
/// at most a page (the mapping's), since the kernel and the program write them freely.
pub unsafe trait Plain: Copy {}
// SAFETY: a u32 is four bytes, any pattern valid.
unsafe impl Plain for u32 {}
// SAFETY: a byte array (the constant-time table's chunks) is bytes, any pattern valid.
unsafe impl<const N: usize> Plain for [u8; N] {}

impl Mapping {
    /// Maps the first `len` bytes of the values of the array map `map`, read-write.
    pub fn new(map: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of a BPF map fd; the kernel checks the length
        // against the map's size and the map's flags (BPF_F_MMAPABLE).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                map.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = std::ptr::NonNull::new(ptr.cast()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }

    /// The mapped values as a slice of `T`.
    pub fn slice<T: Plain>(&self) -> &[T] {
        // SAFETY: the mapping is page-aligned, `len` bytes long and valid while `self` is;
        // every bit pattern is a valid `T`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast(), self.len / size_of::<T>()) }
    }

    /// The mapped values as a mutable slice of `T`.
    pub fn slice_mut<T: Plain>(&mut self) -> &mut [T] {
        // SAFETY: as in `slice`; `&mut self` makes this the only view in this process.
        unsafe {
            std::slice::from_raw_parts_mut(self.ptr.as_ptr().cast(), self.len / size_of::<T>())
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped; no slice outlives `self`.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// `enum bpf_cmd`: `BPF_LINK_CREATE` and `BPF_LINK_UPDATE`.
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_LINK_UPDATE: libc::c_long = 29;

/// The `link_create` member of `union bpf_attr` as far as a cgroup link uses it; the kernel
/// reads the rest as zeros.
#[repr(C, align(8))]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
}

/// The `link_update` member of `union bpf_attr`.
#[repr(C, align(8))]
struct LinkUpdateAttr {
    link_fd: u32,
    new_prog_fd: u32,
    flags: u32,
    old_prog_fd: u32,
}

const _: () = {
    assert!(size_of::<LinkCreateAttr>() == 16);
    assert!(size_of::<LinkUpdateAttr>() == 16);
};

fn raw(fd: BorrowedFd<'_>) -> u32 {
    u32::try_from(fd.as_raw_fd()).expect("valid fds are non-negative")
}

/// Links `program` to the cgroup open as `cgroup` at `attach_type` (`enum bpf_attach_type`);
/// the link holds until its last file descriptor closes.
///
/// # Errors
/// The kernel's refusal.
pub fn cgroup_link(
    program: BorrowedFd<'_>,
    cgroup: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    let mut attr = LinkCreateAttr {
        prog_fd: raw(program),
        target_fd: raw(cgroup),
        attach_type,
        flags: 0,
    };
    // SAFETY: attr is a valid, initialised bpf_attr prefix the kernel only reads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_CREATE,
            &raw mut attr,
            size_of::<LinkCreateAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).expect("file descriptors fit an int");
    // SAFETY: the kernel just returned this descriptor, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Moves `link` to `program` in one kernel operation: every packet sees one of the two.
///
/// # Errors
/// The kernel's refusal; then the link keeps its program.
pub fn link_update(link: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = LinkUpdateAttr {
        link_fd: raw(link),
        new_prog_fd: raw(program),
        flags: 0,
        old_prog_fd: 0,
    };
    // SAFETY: attr is a valid, initialised bpf_attr prefix the kernel only reads.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_LINK_UPDATE,
            &raw mut attr,
            size_of::<LinkUpdateAttr>(),
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// `enum bpf_cmd`: `BPF_PROG_QUERY`.
const BPF_PROG_QUERY: libc::c_long = 16;

/// The `query` member of `union bpf_attr`, up to the program list.
#[repr(C, align(8))]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

const _: () = {
    assert!(std::mem::offset_of!(QueryAttr, prog_ids) == 16);
    assert!(std::mem::offset_of!(QueryAttr, prog_cnt) == 24);
};

/// The ids of the programs attached to the cgroup open as `cgroup` at `attach_type`.
///
/// # Errors
/// The kernel's refusal.
pub fn cgroup_programs(cgroup: BorrowedFd<'_>, attach_type: u32) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: raw(cgroup),
        attach_type,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: u32::try_from(ids.len()).expect("64 fits"),
        ..QueryAttr::default()
    };
    // SAFETY: attr is a valid bpf_attr prefix; the kernel writes at most `prog_cnt` ids into
    // `ids`, which outlives the call, and the count back into attr.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &raw mut attr,
            size_of::<QueryAttr>(),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}
