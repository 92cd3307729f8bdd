//! Closing the connections a cgroup already has to newly denied addresses: what the
//! connect-time hooks cannot see, since they decide at `connect()`.
//!
//! A BPF socket iterator (`iter/tcp`, `iter/udp`) walks the namespace's sockets; for each
//! socket of the cgroup whose peer is in a small LPM trie of the entries just denied, it calls
//! the `bpf_sock_destroy` kfunc (Linux 6.5+): the kernel aborts the connection (`ECONNABORTED`
//! to the owner, a reset to a TCP peer). The program is a few dozen instructions assembled
//! here, because aya's loader does not resolve kfunc calls; every kernel layout it reads
//! (member offsets, function ids) comes from the kernel's BTF at run time.

#![allow(
    unsafe_code,
    reason = "the bpf() calls aya does not offer: kfunc calls"
)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use ipnet::IpNet;

use crate::btf::KernelBtf;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_ITER_CREATE: libc::c_long = 33;
const BPF_MAP_TYPE_LPM_TRIE: u32 = 11;
const BPF_F_NO_PREALLOC: u32 = 1;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_ITER: u32 = 28;
const BPF_PSEUDO_MAP_FD: u8 = 1;
const BPF_PSEUDO_KFUNC_CALL: u8 = 2;
const BPF_FUNC_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_FUNC_SKC_TO_TCP_SOCK: i32 = 137;
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;

/// `union bpf_attr`, as bytes: every command here uses its first 128.
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Self {
        Self([0; 128])
    }

    fn u32(mut self, at: usize, value: u32) -> Self {
        self.0[at..at + 4].copy_from_slice(&value.to_ne_bytes());
        self
    }

    fn u64(mut self, at: usize, value: u64) -> Self {
        self.0[at..at + 8].copy_from_slice(&value.to_ne_bytes());
        self
    }

    /// Runs `command`; a new file descriptor when the command returns one.
    fn call(mut self, command: libc::c_long) -> io::Result<i64> {
        // SAFETY: a zero-tailed `bpf_attr` of the size passed, pointers in it valid for the
        // call (the caller keeps what they point at alive).
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                command,
                self.0.as_mut_ptr(),
                self.0.len() as libc::c_uint,
            )
        };
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    fn fd(self, command: libc::c_long) -> io::Result<OwnedFd> {
        let fd = self.call(command)?;
        // SAFETY: the command returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
    }
}

/// One `struct bpf_insn`.
#[derive(Clone, Copy)]
struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (src << 4) | dst,
            off,
            imm,
        }
    }

    fn bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// A tiny assembler: instructions with forward jumps to named labels.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    fixups: Vec<(usize, &'static str)>,
    labels: Vec<(&'static str, usize)>,
}

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn::new(code, dst, src, off, imm));
    }
    /// `dst = *(size *)(src + off)`; `size`: 0x61 word, 0x69 half, 0x79 double word.
    fn load(&mut self, size: u8, dst: u8, src: u8, off: u32) {
        self.op(size, dst, src, off as i16, 0);
    }
    fn mov(&mut self, dst: u8, src: u8) {
        self.op(0xbf, dst, src, 0, 0);
    }
    fn imm64(&mut self, dst: u8, src: u8, value: u64) {
        self.op(0x18, dst, src, 0, value as u32 as i32);
        self.op(0, 0, 0, 0, (value >> 32) as u32 as i32);
    }
    /// Jumps to `label` when `dst` compares to `imm` (`code`: 0x15 equal, 0x55 not equal).
    fn jump_imm(&mut self, code: u8, dst: u8, imm: i32, label: &'static str) {
        self.fixups.push((self.insns.len(), label));
        self.op(code, dst, 0, 0, imm);
    }
    fn jump_reg_ne(&mut self, dst: u8, src: u8, label: &'static str) {
        self.fixups.push((self.insns.len(), label));
        self.op(0x5d, dst, src, 0, 0);
    }
    fn goto(&mut self, label: &'static str) {
        self.fixups.push((self.insns.len(), label));
        self.op(0x05, 0, 0, 0, 0);
    }
    fn call(&mut self, src: u8, imm: i32) {
        self.op(0x85, 0, src, 0, imm);
    }
    fn label(&mut self, name: &'static str) {
        self.labels.push((name, self.insns.len()));
    }
    fn finish(mut self) -> Vec<u8> {
        for (at, name) in std::mem::take(&mut self.fixups) {
            let (_, target) = self
                .labels
                .iter()
                .find(|(n, _)| *n == name)
                .expect("every label is placed");
            self.insns[at].off = (*target as i64 - at as i64 - 1) as i16;
        }
        self.insns.iter().flat_map(|i| i.bytes()).collect()
    }
}

/// Where the program reads: byte offsets and ids from the kernel's BTF.
struct Layout {
    iter_tcp: u32,
    iter_udp: u32,
    family: u32,
    v6_daddr: u32,
    cgroup: u32,
    cgroup_kn: u32,
    kn_id: u32,
    sock_destroy: u32,
}

impl Layout {
    /// This kernel's layout, read from its BTF once per process.
    fn get() -> io::Result<&'static Self> {
        static LAYOUT: std::sync::OnceLock<Result<Layout, String>> = std::sync::OnceLock::new();
        LAYOUT
            .get_or_init(|| {
                KernelBtf::load()
                    .and_then(|btf| Self::of(&btf))
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))
    }

    fn of(btf: &KernelBtf) -> io::Result<Self> {
        Ok(Self {
            iter_tcp: btf.func("bpf_iter_tcp")?,
            iter_udp: btf.func("bpf_iter_udp")?,
            family: btf.offset("sock_common", "skc_family")?,
            v6_daddr: btf.offset("sock_common", "skc_v6_daddr")?,
            // `struct sock` starts `tcp_sock` and `udp_sock` (their first members, down to
            // `inet_sock.sk`), so its members are at the same offsets in both.
            cgroup: btf.offset("sock", "sk_cgrp_data")?
                + btf.offset("sock_cgroup_data", "cgroup")?
                + btf.offset("inet_sock", "sk")?,
            cgroup_kn: btf.offset("cgroup", "kn")?,
            kn_id: btf.offset("kernfs_node", "id")?,
            sock_destroy: btf.func("bpf_sock_destroy")?,
        })
    }
}

/// The iterator program for `tcp` or `udp`: destroys the sockets of cgroup `cgroup_id` whose
/// peer the trie of its family (`maps`: IPv4, IPv6) holds.
fn program(layout: &Layout, tcp: bool, cgroup_id: u64, maps: [i32; 2]) -> Vec<u8> {
    let (r0, r1, r2, r6, r7, r8, r10) = (0, 1, 2, 6, 7, 8, 10);
    let mut a = Asm::default();
    // r6: the socket (`ctx->sk_common` / `ctx->udp_sk`, both at offset 8 of the context).
    a.load(0x79, r6, r1, 8);
    a.jump_imm(0x15, r6, 0, "out");
    if tcp {
        a.mov(r1, r6);
        a.call(0, BPF_FUNC_SKC_TO_TCP_SOCK);
        a.jump_imm(0x15, r0, 0, "out");
        a.mov(r7, r0);
    } else {
        a.mov(r7, r6);
    }
    // The socket's cgroup: sk->sk_cgrp_data.cgroup->kn->id.
    a.load(0x79, r1, r7, layout.cgroup);
    a.jump_imm(0x15, r1, 0, "out");
    a.load(0x79, r1, r1, layout.cgroup_kn);
    a.jump_imm(0x15, r1, 0, "out");
    a.load(0x79, r1, r1, layout.kn_id);
    a.imm64(r2, 0, cgroup_id);
    a.jump_reg_ne(r1, r2, "out");
    // The LPM key on the stack at fp-24: prefix length, then the peer's address.
    a.load(0x69, r8, r6, layout.family);
    a.jump_imm(0x55, r8, AF_INET, "v6");
    a.op(0x62, r10, 0, -24, 32);
    // `skc_daddr` opens `struct sock_common` (its first union).
    a.load(0x61, r1, r6, 0);
    a.op(0x63, r10, r1, -20, 0);
    a.imm64(r1, BPF_PSEUDO_MAP_FD, maps[0] as u32 as u64);
    a.goto("lookup");
    a.label("v6");
    a.jump_imm(0x55, r8, AF_INET6, "out");
    a.op(0x62, r10, 0, -24, 128);
    for i in 0..4u32 {
        a.load(0x61, r1, r6, layout.v6_daddr + 4 * i);
        a.op(0x63, r10, r1, -20 + 4 * i as i16, 0);
    }
    a.imm64(r1, BPF_PSEUDO_MAP_FD, maps[1] as u32 as u64);
    a.label("lookup");
    a.mov(r2, r10);
    a.op(0x07, r2, 0, 0, -24);
    a.call(0, BPF_FUNC_MAP_LOOKUP_ELEM);
    a.jump_imm(0x15, r0, 0, "out");
    a.mov(r1, r6);
    a.call(BPF_PSEUDO_KFUNC_CALL, layout.sock_destroy as i32);
    a.label("out");
    a.op(0xb7, r0, 0, 0, 0);
    a.op(0x95, 0, 0, 0, 0);
    a.finish()
}

const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
/// Entries per family the closer's tries hold; longer changes are closed in turns.
const CAPACITY: usize = 65_536;

/// The LPM trie key of `net`: prefix length, then the network's address bytes.
fn key(net: IpNet) -> Vec<u8> {
    let mut key = u32::from(net.prefix_len()).to_ne_bytes().to_vec();
    match net.trunc() {
        IpNet::V4(v4) => key.extend_from_slice(&v4.network().octets()),
        IpNet::V6(v6) => key.extend_from_slice(&v6.network().octets()),
    }
    key
}

/// An empty LPM trie of [`CAPACITY`] keys of `bytes` address bytes.
fn trie(bytes: usize) -> io::Result<OwnedFd> {
    Attr::new()
        .u32(0, BPF_MAP_TYPE_LPM_TRIE)
        .u32(4, 4 + bytes as u32)
        .u32(8, 1)
        .u32(12, CAPACITY as u32)
        .u32(16, BPF_F_NO_PREALLOC)
        .fd(BPF_MAP_CREATE)
}

/// Loads the iterator program for `tcp` or `udp` and links it (a link of an iterator
/// program is attached to nothing: each [`BPF_ITER_CREATE`] from it runs one walk).
fn iterator_link(
    layout: &Layout,
    tcp: bool,
    cgroup_id: u64,
    maps: [i32; 2],
) -> io::Result<OwnedFd> {
    let code = program(layout, tcp, cgroup_id, maps);
    let target = if tcp {
        layout.iter_tcp
    } else {
        layout.iter_udp
    };
    let license = c"GPL";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    let short: &[u8] = if tcp {
        b"egb_close_tcp"
    } else {
        b"egb_close_udp"
    };
    name[..short.len()].copy_from_slice(short);
    let mut load = Attr::new()
        .u32(0, BPF_PROG_TYPE_TRACING)
        .u32(4, (code.len() / 8) as u32)
        .u64(8, code.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64)
        .u32(68, BPF_TRACE_ITER)
        .u32(108, target);
    load.0[48..64].copy_from_slice(&name);
    let prog = load.fd(BPF_PROG_LOAD).map_err(|e| {
        let len = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let text = String::from_utf8_lossy(&log[..len]);
        let tail: Vec<&str> = text.lines().rev().take(3).collect();
        io::Error::new(
            e.kind(),
            format!(
                "{e} (verifier: {})",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        )
    })?;
    Attr::new()
        .u32(0, prog.as_raw_fd() as u32)
        .u32(8, BPF_TRACE_ITER)
        .fd(BPF_LINK_CREATE)
}

/// Closes a cgroup's sockets to newly denied peers: two tries (IPv4, IPv6) and the two
/// iterator programs that read them, loaded once and kept, so that a change costs its key
/// updates and the walks.
pub(crate) struct Closer {
    maps: [OwnedFd; 2],
    links: [OwnedFd; 2],
    /// The keys in each trie, to take out before the next change.
    keys: [Vec<Vec<u8>>; 2],
}

impl Closer {
    /// A closer for the sockets of the cgroup whose id (its directory's inode) is
    /// `cgroup_id`.
    ///
    /// # Errors
    /// When the kernel lacks BTF, `bpf_sock_destroy` (Linux < 6.5) or refuses the program.
    pub(crate) fn new(cgroup_id: u64) -> io::Result<Self> {
        let layout = Layout::get()?;
        let maps = [trie(4)?, trie(16)?];
        let fds = [maps[0].as_raw_fd(), maps[1].as_raw_fd()];
        let links = [
            iterator_link(layout, true, cgroup_id, fds)?,
            iterator_link(layout, false, cgroup_id, fds)?,
        ];
        Ok(Self {
            maps,
            links,
            keys: [Vec::new(), Vec::new()],
        })
    }

    /// Aborts the cgroup's TCP and UDP sockets whose peer `entries` cover, in the calling
    /// thread's network namespace.
    ///
    /// # Errors
    /// When the kernel refuses a key update or a walk.
    pub(crate) fn close(&mut self, entries: &[IpNet]) -> io::Result<()> {
        for chunk in entries.chunks(CAPACITY) {
            let value = 1u8;
            for family in 0..2 {
                for key in self.keys[family].drain(..) {
                    Attr::new()
                        .u32(0, self.maps[family].as_raw_fd() as u32)
                        .u64(8, key.as_ptr() as u64)
                        .call(BPF_MAP_DELETE_ELEM)?;
                }
            }
            for net in chunk {
                let family = usize::from(net.addr().is_ipv6());
                let key = key(*net);
                Attr::new()
                    .u32(0, self.maps[family].as_raw_fd() as u32)
                    .u64(8, key.as_ptr() as u64)
                    .u64(16, (&raw const value) as u64)
                    .call(BPF_MAP_UPDATE_ELEM)?;
                self.keys[family].push(key);
            }
            for link in &self.links {
                let iter = Attr::new()
                    .u32(0, link.as_raw_fd() as u32)
                    .fd(BPF_ITER_CREATE)?;
                // Reading the iterator runs the program over every socket; it writes nothing.
                let mut file = std::fs::File::from(iter);
                std::io::copy(&mut file, &mut std::io::sink())?;
            }
        }
        Ok(())
    }
}
