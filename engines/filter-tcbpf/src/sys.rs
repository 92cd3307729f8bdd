//! The raw calls aya does not offer, in one place: `BPF_MAP_UPDATE_BATCH`, the mmap of an
//! array map, the links we make and pin ourselves (TCX, cgroup), and mounting bpffs.
//! Everything else (map creation, program load, lookups, test runs) goes through aya.
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

/// `CLOCK_MONOTONIC_COARSE` in milliseconds (0 if it cannot be read, so that nothing
/// waiting on it is ever taken as old enough).
pub(crate) fn coarse_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer given and keeps nothing.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &raw mut now) } != 0 {
        return 0;
    }
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let millis = u64::try_from(now.tv_nsec).unwrap_or(0) / 1_000_000;
    secs.saturating_mul(1_000).saturating_add(millis)
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
// SAFETY: as for u32.
unsafe impl Plain for u64 {}
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
    assert!(size_of::<ObjAttr>() == 16);
    assert!(size_of::<ByIdAttr>() == 16);
    assert!(size_of::<InfoAttr>() == 16);
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

/// `enum bpf_cmd`: pinning and the lookups by id an adopted link needs.
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `enum bpf_attach_type`: `BPF_TCX_EGRESS`.
pub const BPF_TCX_EGRESS: u32 = 47;

/// Runs `bpf(cmd, attr)`: the kernel's return value, or its refusal.
fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: every caller passes a valid, initialised `union bpf_attr` prefix of
    // `size_of::<T>()` bytes; the kernel reads it and writes at most within it.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A descriptor the kernel just returned from `bpf()`, owned by nobody else.
fn owned(ret: libc::c_long) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd as _;
    let fd = i32::try_from(ret).expect("file descriptors fit an int");
    // SAFETY: the kernel just returned this descriptor, owned by nobody else.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// Links `program` to the TCX egress hook of the interface with index `ifindex` in the
/// calling thread's network namespace; the link holds until its last descriptor closes or
/// its pin is removed.
///
/// # Errors
/// The kernel's refusal.
pub fn tcx_link(program: BorrowedFd<'_>, ifindex: u32) -> io::Result<std::os::fd::OwnedFd> {
    // `target_ifindex` shares its place with `target_fd`; the `tcx` member after `flags`
    // (relative_fd, expected_revision) is read as zeros: append after every other program.
    let mut attr = LinkCreateAttr {
        prog_fd: raw(program),
        target_fd: ifindex,
        attach_type: BPF_TCX_EGRESS,
        flags: 0,
    };
    bpf(BPF_LINK_CREATE, &mut attr).map(owned)
}

/// The `obj_pin` / `obj_get` member of `union bpf_attr`.
#[repr(C, align(8))]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// Pins the BPF object open as `fd` at `path` (on a bpffs): it lives until the file is
/// removed, whoever holds a descriptor.
///
/// # Errors
/// The kernel's refusal (`EEXIST` when the path is taken, `EPERM` off a bpffs).
pub fn pin(fd: BorrowedFd<'_>, path: &std::ffi::CStr) -> io::Result<()> {
    let mut attr = ObjAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: raw(fd),
        file_flags: 0,
    };
    bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// Opens the BPF object pinned at `path`.
///
/// # Errors
/// The kernel's refusal (`ENOENT` when nothing is pinned there).
pub fn pinned(path: &std::ffi::CStr) -> io::Result<std::os::fd::OwnedFd> {
    let mut attr = ObjAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: 0,
        file_flags: 0,
    };
    bpf(BPF_OBJ_GET, &mut attr).map(owned)
}

/// The head of `struct bpf_link_info`: enough for the program a link runs.
#[repr(C)]
#[derive(Default)]
struct LinkInfoHead {
    link_type: u32,
    id: u32,
    prog_id: u32,
    padding: u32,
    // The per-type union that follows; the kernel writes at most `info_len` bytes.
    rest: [u64; 6],
}

/// The `info` member of `union bpf_attr`.
#[repr(C, align(8))]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The kernel's description of the link open as `link`.
fn link_info(link: BorrowedFd<'_>) -> io::Result<LinkInfoHead> {
    let mut info = LinkInfoHead::default();
    let mut attr = InfoAttr {
        bpf_fd: raw(link),
        info_len: u32::try_from(size_of::<LinkInfoHead>()).expect("a small struct"),
        info: std::ptr::from_mut(&mut info) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info)
}

/// The id of the program `link` runs.
///
/// # Errors
/// The kernel's refusal.
pub fn link_program_id(link: BorrowedFd<'_>) -> io::Result<u32> {
    link_info(link).map(|info| info.prog_id)
}

/// The kernel's id of `link`: two descriptors with the same id are the same link.
///
/// # Errors
/// The kernel's refusal.
pub fn link_id(link: BorrowedFd<'_>) -> io::Result<u32> {
    link_info(link).map(|info| info.id)
}

/// The `prog_id` member of `union bpf_attr` for `BPF_PROG_GET_FD_BY_ID`.
#[repr(C, align(8))]
struct ByIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
    /// `fd_by_id_token_fd`: named so the struct has no padding (the kernel refuses non-zero
    /// bytes past the fields it knows).
    token_fd: u32,
}

/// A descriptor of the loaded program with id `id`.
///
/// # Errors
/// The kernel's refusal (`ENOENT` once the program is gone).
pub fn program_by_id(id: u32) -> io::Result<std::os::fd::OwnedFd> {
    let mut attr = ByIdAttr {
        id,
        next_id: 0,
        open_flags: 0,
        token_fd: 0,
    };
    bpf(BPF_PROG_GET_FD_BY_ID, &mut attr).map(owned)
}

/// The index of the interface `name` in the calling thread's network namespace.
///
/// # Errors
/// `ENODEV` when there is none.
pub fn interface_index(name: &std::ffi::CStr) -> io::Result<u32> {
    // SAFETY: name is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// Mounts a BPF file system at `target` (mode 0700).
///
/// # Errors
/// The kernel's refusal.
pub fn mount_bpffs(target: &std::ffi::CStr) -> io::Result<()> {
    let fstype = c"bpf";
    // SAFETY: every pointer is a valid NUL-terminated string living across the call.
    let ret = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unmounts the file system at `target`, lazily (`MNT_DETACH`).
///
/// # Errors
/// The kernel's refusal.
pub fn unmount(target: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: target is a valid NUL-terminated string living across the call.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
