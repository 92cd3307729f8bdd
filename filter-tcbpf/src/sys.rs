//! The raw bpf(2) calls aya does not offer, in one place: `BPF_MAP_UPDATE_BATCH`. Everything
//! else (map creation, program load, attach, lookups, test runs) goes through aya.
#![allow(unsafe_code, reason = "the one raw bpf(2) call aya does not wrap")]

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

/// Kernel memory charged to a BPF object, from `memlock:` in `/proc/self/fdinfo/<fd>`
/// (the map's own accounting, `map_mem_usage`, on Linux 6.4+).
pub fn memlock(fd: BorrowedFd<'_>) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("memlock:"))
        .and_then(|v| v.trim().parse().ok())
}
