//! Seeded, reproducible deny-lists of global unicast networks.
//!
//! Generated entries never fall inside special-purpose ranges (private, loopback, multicast,
//! documentation, ...) and so never inside the testbed's 198.18.0.0/15 or 2001:2::/48.
//! The same seed and mix give the same list on every machine and every run.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use crate::{CidrList, Family};

/// Which prefix lengths a generated list has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum Mix {
    /// As in the published egress-filtering benchmark: 89% /32, 10% /24, 1% /16.
    /// IPv6: 20% /128, 30% /64, 40% /48, 10% /32.
    #[default]
    Default,
    /// Host entries only: /32 (IPv6: /128).
    Hosts,
    /// Prefix lengths uniform in /8../32 (IPv6: /16../128).
    Uniform,
}

impl Mix {
    /// Every mix, in the order the CLI lists them.
    pub const ALL: [Mix; 3] = [Mix::Default, Mix::Hosts, Mix::Uniform];

    /// The mix's CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Mix::Default => "default",
            Mix::Hosts => "hosts",
            Mix::Uniform => "uniform",
        }
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mix::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| format!("unknown mix {s:?}; expected one of default, hosts, uniform"))
    }
}

/// Networks that are not global unicast (RFC 6890 and friends), the testbed's included.
const RESERVED_V4: [(u32, u8); 15] = [
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0A00_0000, 8),  // 10.0.0.0/8 private
    (0x6440_0000, 10), // 100.64.0.0/10 shared address space
    (0x7F00_0000, 8),  // 127.0.0.0/8 loopback
    (0xA9FE_0000, 16), // 169.254.0.0/16 link local
    (0xAC10_0000, 12), // 172.16.0.0/12 private
    (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2.0/24 documentation
    (0xC058_6300, 24), // 192.88.99.0/24 6to4 relay
    (0xC0A8_0000, 16), // 192.168.0.0/16 private
    (0xC612_0000, 15), // 198.18.0.0/15 benchmarking: the testbed
    (0xC633_6400, 24), // 198.51.100.0/24 documentation
    (0xCB00_7100, 24), // 203.0.113.0/24 documentation
    (0xE000_0000, 4),  // 224.0.0.0/4 multicast
    (0xF000_0000, 4),  // 240.0.0.0/4 reserved, broadcast
];

/// Special-purpose networks inside 2000::/3, the testbed's 2001:2::/48 among them.
const RESERVED_V6: [(u128, u8); 4] = [
    (0x2001_0000 << 96, 23), // 2001::/23 IETF protocol assignments (2001:2::/48 benchmarking)
    (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
    (0x2002_0000 << 96, 16), // 2002::/16 6to4
    (0x3fff_0000 << 96, 20), // 3fff::/20 documentation
];

fn overlaps(a: u128, a_len: u8, b: u128, b_len: u8, width: u8) -> bool {
    let shared = a_len.min(b_len);
    shared == 0 || (a ^ b) >> (width - shared) == 0
}

fn mask(bits: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        0
    } else {
        bits & (u128::MAX >> (128 - width)) & !((1u128 << (width - len)) - 1)
    }
}

/// An endless, reproducible stream of networks of one family. Holds no text and no list,
/// so it can feed 100M entries straight into an engine or a file.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Pcg64Mcg,
    mix: Mix,
    family: Family,
}

impl Generator {
    /// A stream for `family` with prefix lengths drawn from `mix`, starting from `seed`.
    pub fn new(seed: u64, mix: Mix, family: Family) -> Self {
        let stream = match family {
            Family::V4 => 0x4,
            Family::V6 => 0x6,
        };
        Self {
            rng: Pcg64Mcg::seed_from_u64(seed.wrapping_mul(0x100).wrapping_add(stream)),
            mix,
            family,
        }
    }

    fn v4_len(&mut self) -> u8 {
        match self.mix {
            Mix::Default => match self.rng.random_range(0..100u8) {
                0..89 => 32,
                89..99 => 24,
                _ => 16,
            },
            Mix::Hosts => 32,
            Mix::Uniform => self.rng.random_range(8..=32),
        }
    }

    fn v6_len(&mut self) -> u8 {
        match self.mix {
            Mix::Default => match self.rng.random_range(0..100u8) {
                0..20 => 128,
                20..50 => 64,
                50..90 => 48,
                _ => 32,
            },
            Mix::Hosts => 128,
            Mix::Uniform => self.rng.random_range(16..=128),
        }
    }

    /// The next IPv4 network.
    pub fn next_v4(&mut self) -> Ipv4Net {
        let len = self.v4_len();
        loop {
            let bits = mask(u128::from(self.rng.random::<u32>()), len, 32);
            if !RESERVED_V4
                .iter()
                .any(|&(r, r_len)| overlaps(bits, len, u128::from(r), r_len, 32))
            {
                #[expect(clippy::cast_possible_truncation, reason = "masked to 32 bits")]
                let addr = Ipv4Addr::from(bits as u32);
                return Ipv4Net::new(addr, len).expect("length is at most 32");
            }
        }
    }

    /// The next IPv6 network, inside 2000::/3.
    pub fn next_v6(&mut self) -> Ipv6Net {
        let len = self.v6_len();
        loop {
            let bits = (self.rng.random::<u128>() >> 3) | (1u128 << 125);
            let bits = mask(bits, len, 128);
            if !RESERVED_V6
                .iter()
                .any(|&(r, r_len)| overlaps(bits, len, r, r_len, 128))
            {
                return Ipv6Net::new(Ipv6Addr::from(bits), len).expect("length is at most 128");
            }
        }
    }
}

impl Iterator for Generator {
    type Item = IpNet;

    fn next(&mut self) -> Option<IpNet> {
        Some(match self.family {
            Family::V4 => IpNet::V4(self.next_v4()),
            Family::V6 => IpNet::V6(self.next_v6()),
        })
    }
}

/// A list of `count` entries of each family in `families`, from `seed` and `mix`.
pub fn generate(count: usize, seed: u64, mix: Mix, families: &[Family]) -> CidrList {
    let mut list = CidrList::new();
    for &family in families {
        list.extend(Generator::new(seed, mix, family).take(count));
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproducible_and_mixed_as_published() {
        let a = generate(100_000, 1, Mix::Default, &[Family::V4]);
        let b = generate(100_000, 1, Mix::Default, &[Family::V4]);
        assert_eq!(a.v4(), b.v4());
        let count = |len| a.v4().iter().filter(|n| n.prefix_len() == len).count();
        assert!((88_000..90_000).contains(&count(32)), "{}", count(32));
        assert!((9_500..10_500).contains(&count(24)), "{}", count(24));
        assert!((800..1_200).contains(&count(16)), "{}", count(16));
        let c = generate(1000, 2, Mix::Default, &[Family::V4]);
        assert_ne!(a.v4()[..1000], c.v4()[..]);
    }

    #[test]
    fn never_special_purpose_or_testbed() {
        let testbed_v4: Ipv4Net = "198.18.0.0/15".parse().unwrap();
        let testbed_v6: Ipv6Net = "2001:2::/48".parse().unwrap();
        for mix in Mix::ALL {
            let list = generate(50_000, 7, mix, &Family::BOTH);
            for n in list.v4() {
                assert!(n.addr().is_global_unicast_like(), "{n}");
                assert!(!testbed_v4.contains(n) && !n.contains(&testbed_v4), "{n}");
            }
            for n in list.v6() {
                assert!(!testbed_v6.contains(n) && !n.contains(&testbed_v6), "{n}");
                assert_eq!(n.addr().segments()[0] >> 13, 1, "{n} outside 2000::/3");
            }
        }
    }

    trait GlobalUnicast {
        fn is_global_unicast_like(&self) -> bool;
    }
    impl GlobalUnicast for Ipv4Addr {
        fn is_global_unicast_like(&self) -> bool {
            !(self.is_private()
                || self.is_loopback()
                || self.is_link_local()
                || self.is_multicast()
                || self.is_documentation()
                || self.is_unspecified()
                || self.is_broadcast()
                || self.octets()[0] >= 240
                || self.octets()[0] == 0)
        }
    }
}
