//! The few facts the connection closer needs from the kernel's own BTF
//! (`/sys/kernel/btf/vmlinux`): the ids of functions (an iterator's target, a kfunc) and the
//! byte offsets of struct members, so that nothing about the kernel's layout is hard-coded.

use std::collections::HashMap;
use std::io;

/// BTF kinds this reader tells apart.
const KIND_STRUCT: u32 = 4;
const KIND_FUNC: u32 = 12;

/// The kernel's BTF, indexed by name.
pub(crate) struct KernelBtf {
    data: Vec<u8>,
    /// Where the strings start.
    strings: usize,
    /// Type id to its byte offset in `data` (index 0 is the void type).
    types: Vec<usize>,
    /// (kind, name) to type id, for structs and functions.
    by_name: HashMap<(u32, String), u32>,
}

fn u32_at(data: &[u8], at: usize) -> io::Result<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "BTF ends early"))
}

impl KernelBtf {
    /// Reads `/sys/kernel/btf/vmlinux`.
    ///
    /// # Errors
    /// When the kernel has no BTF or it cannot be parsed.
    pub(crate) fn load() -> io::Result<Self> {
        Self::parse(std::fs::read("/sys/kernel/btf/vmlinux")?)
    }

    fn parse(data: Vec<u8>) -> io::Result<Self> {
        let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        if data.get(..2) != Some(&[0x9f, 0xeb]) {
            return Err(bad("not little-endian BTF"));
        }
        let header = u32_at(&data, 4)? as usize;
        let (type_off, type_len) = (u32_at(&data, 8)? as usize, u32_at(&data, 12)? as usize);
        let strings = header + u32_at(&data, 16)? as usize;
        let (mut at, end) = (header + type_off, header + type_off + type_len);
        let mut types = vec![0];
        let mut by_name = HashMap::new();
        while at < end {
            let (name, info) = (u32_at(&data, at)?, u32_at(&data, at + 4)?);
            let (kind, vlen) = ((info >> 24) & 0x1f, (info & 0xffff) as usize);
            let id = types.len() as u32;
            types.push(at);
            let extra = match kind {
                1 | 14 | 17 => 4,
                3 => 12,
                4 | 5 | 15 | 19 => 12 * vlen,
                6 | 13 => 8 * vlen,
                2 | 7..=12 | 16 | 18 => 0,
                _ => return Err(bad("unknown BTF kind")),
            };
            if (kind == KIND_STRUCT || kind == KIND_FUNC) && name != 0 {
                let text = Self::string(&data, strings, name)?;
                by_name.entry((kind, text)).or_insert(id);
            }
            at += 12 + extra;
        }
        Ok(Self {
            data,
            strings,
            types,
            by_name,
        })
    }

    fn string(data: &[u8], strings: usize, offset: u32) -> io::Result<String> {
        let start = strings + offset as usize;
        let tail = data.get(start..).unwrap_or_default();
        let len = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        Ok(String::from_utf8_lossy(&tail[..len]).into_owned())
    }

    /// The id of function `name`.
    pub(crate) fn func(&self, name: &str) -> io::Result<u32> {
        self.by_name
            .get(&(KIND_FUNC, name.to_owned()))
            .copied()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("the kernel's BTF has no function {name}"),
                )
            })
    }

    /// The byte offset of `member` in struct `name` (a direct member, not a bitfield).
    pub(crate) fn offset(&self, name: &str, member: &str) -> io::Result<u32> {
        let missing = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("the kernel's BTF has no member {name}.{member}"),
            )
        };
        let id = *self
            .by_name
            .get(&(KIND_STRUCT, name.to_owned()))
            .ok_or_else(missing)?;
        let at = self.types[id as usize];
        let info = u32_at(&self.data, at + 4)?;
        let bitfields = info >> 31 == 1;
        for i in 0..(info & 0xffff) as usize {
            let m = at + 12 + 12 * i;
            let text = Self::string(&self.data, self.strings, u32_at(&self.data, m)?)?;
            if text == member {
                let raw = u32_at(&self.data, m + 8)?;
                let bits = if bitfields { raw & 0x00ff_ffff } else { raw };
                return Ok(bits / 8);
            }
        }
        Err(missing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Read from this kernel: members the closer needs, at offsets the C headers give.
    #[test]
    fn finds_members_and_functions_of_this_kernel() {
        let Ok(btf) = KernelBtf::load() else {
            eprintln!("skipped: no /sys/kernel/btf/vmlinux");
            return;
        };
        assert_eq!(btf.offset("sock_common", "skc_family").unwrap(), 16);
        assert_eq!(btf.offset("inet_sock", "sk").unwrap(), 0);
        assert!(btf.offset("sock", "sk_cgrp_data").unwrap() > 0);
        assert!(btf.func("bpf_iter_tcp").unwrap() > 0);
        assert!(btf.offset("sock", "no_such_member").is_err());
    }
}
