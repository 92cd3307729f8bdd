//! Seeded, reproducible deny-lists of distinct global unicast networks.
//!
//! Generated entries never fall inside special-purpose ranges (private, loopback, multicast,
//! documentation, ...) and so never inside the testbed's 198.18.0.0/15 or 2001:2::/48.
//! The same seed, mix and count give the same list on every machine and every run.
//!
//! # Distinct entries, at any scale
//!
//! Entries are drawn **without replacement**: N entries are N distinct networks (N kernel
//! entries), even at 100M. For each prefix length, a keyed permutation of that length's index
//! space (a Feistel network with cycle walking) is walked from the start and networks that
//! touch a special-purpose range are skipped; nothing is remembered, so a stream of 100M
//! entries needs no memory of its own.
//!
//! # How a mix scales
//!
//! A mix gives each prefix length a share of the list. A share cannot exceed what exists: only
//! about 57,000 global unicast /16s exist, so 1% of a 10M list (100,000 /16s) cannot be
//! distinct. Every length but the mix's longest is therefore capped at a **quarter** of its
//! global unicast prefixes (so a list never denies most of the address space through short
//! prefixes), and what a capped length cannot take is shared among the others by their
//! weights. The longest length may use all of its prefixes. For the default IPv4 mix the
//! published 89/10/1 shape holds up to about 1.42M entries; past that the /16s stay at 14,2xx
//! (a quarter of them), and past about 36M the /24s stay at a quarter of theirs; the /32s take
//! the rest. [`Generator::plan`] tells the counts for any size.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64Mcg;
use serde::Serialize;

use crate::{CidrList, Family};

/// Which prefix lengths a generated list has (see [How a mix scales](self#how-a-mix-scales)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize)]
pub enum Mix {
    /// As in the published egress-filtering benchmark: 89% /32, 10% /24, 1% /16 (up to about
    /// 1.42M entries; past that the /16s are capped). IPv6: 20% /128, 30% /64, 40% /48, 10% /32.
    #[default]
    Default,
    /// Host entries only: /32 (IPv6: /128).
    Hosts,
    /// Prefix lengths uniform in /8../32 (IPv6: /16../128), short lengths capped at a quarter
    /// of what exists.
    Uniform,
    /// Like a real threat feed, with many lengths: IPv4 85% /32, 8% /24, 7% over the other
    /// lengths of /16../31; IPv6 25% /128, 30% /64, 10% /56, 15% /48, 20% allocations over
    /// /29../47.
    Feed,
}

impl Mix {
    /// Every mix, in the order the CLI lists them.
    pub const ALL: [Mix; 4] = [Mix::Default, Mix::Hosts, Mix::Uniform, Mix::Feed];

    /// The mix's CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Mix::Default => "default",
            Mix::Hosts => "hosts",
            Mix::Uniform => "uniform",
            Mix::Feed => "feed",
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

impl Mix {
    /// Prefix lengths of `family` with their weights, longest first.
    fn weights(self, family: Family) -> Vec<(u8, u64)> {
        match (self, family) {
            (Mix::Default, Family::V4) => vec![(32, 89), (24, 10), (16, 1)],
            (Mix::Default, Family::V6) => vec![(128, 20), (64, 30), (48, 40), (32, 10)],
            (Mix::Hosts, Family::V4) => vec![(32, 1)],
            (Mix::Hosts, Family::V6) => vec![(128, 1)],
            (Mix::Uniform, Family::V4) => (8..=32).rev().map(|len| (len, 1)).collect(),
            (Mix::Uniform, Family::V6) => (16..=128).rev().map(|len| (len, 1)).collect(),
            (Mix::Feed, Family::V4) => [(32, 850), (24, 80)]
                .into_iter()
                .chain((16..=31).rev().filter(|&l| l != 24).map(|len| (len, 5)))
                .collect(),
            (Mix::Feed, Family::V6) => [(128, 250), (64, 300), (56, 100), (48, 150)]
                .into_iter()
                .chain((29..=47).rev().map(|len| (len, 10)))
                .collect(),
        }
    }
}

/// The address space a family's lists are drawn from: its width, and the fixed leading bits
/// (IPv6 lists stay inside 2000::/3).
#[derive(Debug, Clone, Copy)]
struct Space {
    width: u8,
    fixed_bits: u8,
    base: u128,
}

impl Space {
    fn of(family: Family) -> Self {
        match family {
            Family::V4 => Self {
                width: 32,
                fixed_bits: 0,
                base: 0,
            },
            Family::V6 => Self {
                width: 128,
                fixed_bits: 3,
                base: 1 << 125,
            },
        }
    }

    fn reserved(self) -> Vec<(u128, u8)> {
        if self.width == 32 {
            RESERVED_V4
                .iter()
                .map(|&(r, len)| (u128::from(r), len))
                .collect()
        } else {
            RESERVED_V6.to_vec()
        }
    }

    /// Bits that tell the networks of length `len` apart.
    fn index_bits(self, len: u8) -> u32 {
        u32::from(len - self.fixed_bits)
    }

    /// The network of length `len` with index `index`.
    fn network(self, len: u8, index: u128) -> u128 {
        let shift = u32::from(self.width - len);
        self.base | if shift >= 128 { 0 } else { index << shift }
    }

    fn is_reserved(self, reserved: &[(u128, u8)], bits: u128, len: u8) -> bool {
        reserved
            .iter()
            .any(|&(r, r_len)| overlaps(bits, len, r, r_len, self.width))
    }

    /// Networks of length `len` that touch no special-purpose range.
    fn available(self, len: u8) -> u128 {
        let bits = self.index_bits(len);
        let shift = u32::from(self.width - len);
        let mut excluded: Vec<(u128, u128)> = self
            .reserved()
            .into_iter()
            .map(|(r, r_len)| {
                let first = (r - self.base) >> shift;
                let count = if r_len <= len {
                    1u128 << (len - r_len)
                } else {
                    1
                };
                (first, first + count)
            })
            .collect();
        excluded.sort_unstable();
        let (mut total, mut end) = (0u128, 0u128);
        for (first, last) in excluded {
            let first = first.max(end);
            if last > first {
                total += last - first;
                end = last;
            }
        }
        let all = if bits >= 128 {
            u128::MAX
        } else {
            1u128 << bits
        };
        all - total
    }
}

/// A keyed permutation of `0..2^bits`: a balanced Feistel network on the next even number of
/// bits, walked again while the result falls outside the range (cycle walking).
#[derive(Debug, Clone)]
struct Permutation {
    bits: u32,
    half: u32,
    keys: [u64; 4],
}

impl Permutation {
    fn new(bits: u32, rng: &mut Pcg64Mcg) -> Self {
        Self {
            bits,
            half: bits.div_ceil(2),
            keys: rng.random(),
        }
    }

    fn round(value: u64, key: u64) -> u64 {
        // splitmix64's finaliser: every input bit reaches every output bit.
        let mut z = value ^ key;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn once(&self, value: u128) -> u128 {
        let mask = (1u128 << self.half) - 1;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "halves hold at most 64 bits"
        )]
        let (mut left, mut right) = ((value >> self.half) as u64, (value & mask) as u64);
        #[expect(clippy::cast_possible_truncation, reason = "mask of at most 64 bits")]
        let half_mask = mask as u64;
        for key in self.keys {
            let next = left ^ (Self::round(right, key) & half_mask);
            left = right;
            right = next;
        }
        (u128::from(left) << self.half) | u128::from(right)
    }

    fn apply(&self, index: u128) -> u128 {
        let limit = if self.bits >= 128 {
            u128::MAX
        } else {
            1u128 << self.bits
        };
        let mut value = self.once(index);
        while value >= limit {
            value = self.once(value);
        }
        value
    }
}

/// One prefix length's draw without replacement.
#[derive(Debug, Clone)]
struct Draw {
    len: u8,
    left: u64,
    next_index: u128,
    permutation: Permutation,
}

/// A reproducible stream of distinct networks of one family: `count` of them (fewer only when
/// the mix runs out of networks), with the mix's shares, in random order. Holds no list, so
/// it can feed 100M entries straight into an engine or a file.
#[derive(Debug, Clone)]
pub struct Generator {
    rng: Pcg64Mcg,
    space: Space,
    reserved: Vec<(u128, u8)>,
    draws: Vec<Draw>,
    left: u64,
    family: Family,
}

impl Generator {
    /// A stream of `count` distinct networks of `family` with prefix lengths from `mix`,
    /// starting from `seed`.
    pub fn new(seed: u64, mix: Mix, family: Family, count: u64) -> Self {
        let stream = match family {
            Family::V4 => 0x4,
            Family::V6 => 0x6,
        };
        let mut rng = Pcg64Mcg::seed_from_u64(seed.wrapping_mul(0x100).wrapping_add(stream));
        let space = Space::of(family);
        let draws: Vec<Draw> = Self::plan(mix, family, count)
            .into_iter()
            .map(|(len, count)| Draw {
                len,
                left: count,
                next_index: 0,
                permutation: Permutation::new(space.index_bits(len), &mut rng),
            })
            .collect();
        Self {
            rng,
            space,
            reserved: space.reserved(),
            left: draws.iter().map(|d| d.left).sum(),
            draws,
            family,
        }
    }

    /// How many networks of each prefix length a list of `count` entries of `family` gets
    /// from `mix`, longest length first (see [How a mix scales](self#how-a-mix-scales)).
    /// The counts add up to `count` unless the mix runs out of networks.
    pub fn plan(mix: Mix, family: Family, count: u64) -> Vec<(u8, u64)> {
        let space = Space::of(family);
        let weights = mix.weights(family);
        let caps: Vec<u64> = weights
            .iter()
            .enumerate()
            .map(|(i, &(len, _))| {
                let available = space.available(len);
                let cap = if i == 0 { available } else { available / 4 };
                u64::try_from(cap).unwrap_or(u64::MAX)
            })
            .collect();
        // Water-filling: a length whose share exceeds its cap is fixed at the cap, and the
        // rest is shared again among the others, until no share exceeds its cap.
        let mut fixed: Vec<Option<u64>> = vec![None; weights.len()];
        loop {
            let taken: u64 = fixed.iter().flatten().sum();
            let left = count.saturating_sub(taken);
            let weight: u64 = weights
                .iter()
                .zip(&fixed)
                .filter(|(_, f)| f.is_none())
                .map(|(&(_, w), _)| w)
                .sum();
            let mut changed = false;
            for (i, &(_, w)) in weights.iter().enumerate() {
                if fixed[i].is_none() && share(left, w, weight) > caps[i] {
                    fixed[i] = Some(caps[i]);
                    changed = true;
                }
            }
            if !changed {
                let mut counts: Vec<u64> = weights
                    .iter()
                    .zip(&fixed)
                    .map(|(&(_, w), f)| f.unwrap_or_else(|| share(left, w, weight)))
                    .collect();
                // Rounding leftovers go to the uncapped lengths, heaviest first.
                let mut short = count.saturating_sub(counts.iter().sum());
                let mut order: Vec<usize> = (0..weights.len()).collect();
                order.sort_by_key(|&i| std::cmp::Reverse(weights[i].1));
                for i in order.into_iter().cycle().take(weights.len() * 2) {
                    if short == 0 {
                        break;
                    }
                    if fixed[i].is_none() && counts[i] < caps[i] {
                        counts[i] += 1;
                        short -= 1;
                    }
                }
                return weights.iter().map(|&(len, _)| len).zip(counts).collect();
            }
        }
    }

    /// The next IPv4 network (`None` for an IPv6 stream or when the stream is done).
    pub fn next_v4(&mut self) -> Option<Ipv4Net> {
        match self.next()? {
            IpNet::V4(net) => Some(net),
            IpNet::V6(_) => None,
        }
    }

    /// The next IPv6 network, inside 2000::/3 (`None` for an IPv4 stream or when done).
    pub fn next_v6(&mut self) -> Option<Ipv6Net> {
        match self.next()? {
            IpNet::V6(net) => Some(net),
            IpNet::V4(_) => None,
        }
    }

    fn next_bits(&mut self) -> Option<(u128, u8)> {
        if self.left == 0 {
            return None;
        }
        // Without replacement across lengths too: a length is picked with the odds of its
        // remaining count, so every length ends with exactly its planned count.
        let mut pick = self.rng.random_range(0..self.left);
        let draw = self
            .draws
            .iter_mut()
            .find(|d| {
                if pick < d.left {
                    true
                } else {
                    pick -= d.left;
                    false
                }
            })
            .expect("the picks add up to the remaining count");
        let (space, reserved) = (self.space, &self.reserved);
        loop {
            let index = draw.permutation.apply(draw.next_index);
            draw.next_index += 1;
            let bits = space.network(draw.len, index);
            if !space.is_reserved(reserved, bits, draw.len) {
                draw.left -= 1;
                self.left -= 1;
                return Some((bits, draw.len));
            }
        }
    }
}

fn share(total: u64, weight: u64, of: u64) -> u64 {
    if of == 0 {
        return 0;
    }
    u64::try_from(u128::from(total) * u128::from(weight) / u128::from(of)).unwrap_or(u64::MAX)
}

impl Iterator for Generator {
    type Item = IpNet;

    fn next(&mut self) -> Option<IpNet> {
        let (bits, len) = self.next_bits()?;
        Some(match self.family {
            #[expect(clippy::cast_possible_truncation, reason = "IPv4 networks fit 32 bits")]
            Family::V4 => IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(bits as u32), len).expect("length is at most 32"),
            ),
            Family::V6 => {
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(bits), len).expect("length is at most 128"))
            }
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.left).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Generator {}

/// A list of `count` distinct entries of each family in `families`, from `seed` and `mix`.
pub fn generate(count: usize, seed: u64, mix: Mix, families: &[Family]) -> CidrList {
    let mut list = CidrList::new();
    for &family in families {
        let generator = Generator::new(seed, mix, family, count as u64);
        list.reserve(family, generator.len());
        list.extend(generator);
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
    fn permutation_is_a_bijection() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        for bits in [8, 9, 13, 16] {
            let p = Permutation::new(bits, &mut rng);
            let mut seen: Vec<u128> = (0..1u128 << bits).map(|i| p.apply(i)).collect();
            assert!(seen.iter().all(|&v| v < 1 << bits));
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 1 << bits, "{bits} bits");
        }
    }

    #[test]
    fn entries_are_distinct_even_where_draws_with_replacement_collide() {
        // 300,000 hosts of the default mix ask for 3,000 /16s, which collide often when
        // drawn with replacement from ~57,000; uniform /8../32 asks for more /8s than exist.
        for mix in Mix::ALL {
            let list = generate(300_000, 4, mix, &Family::BOTH);
            let stats = list.stats();
            assert_eq!(stats.duplicates, 0, "{mix}");
            assert_eq!(list.v4().len(), 300_000, "{mix}");
            assert_eq!(list.v6().len(), 300_000, "{mix}");
            assert_eq!(stats.distinct, 600_000, "{mix}");
        }
    }

    #[test]
    fn plans_keep_the_published_shape_then_cap_short_lengths() {
        assert_eq!(
            Generator::plan(Mix::Default, Family::V4, 1_000),
            vec![(32, 890), (24, 100), (16, 10)]
        );
        let available_16 = Space::of(Family::V4).available(16);
        assert!((56_000..58_000).contains(&available_16), "{available_16}");
        let plan = Generator::plan(Mix::Default, Family::V4, 100_000_000);
        let cap_16 = u64::try_from(available_16 / 4).unwrap();
        assert_eq!(plan[2], (16, cap_16));
        let cap_24 = u64::try_from(Space::of(Family::V4).available(24) / 4).unwrap();
        assert_eq!(plan[1], (24, cap_24));
        assert_eq!(plan.iter().map(|p| p.1).sum::<u64>(), 100_000_000);
        // Under the caps, weights hold; over them, the rest goes to the other lengths.
        let plan = Generator::plan(Mix::Default, Family::V4, 10_000_000);
        assert_eq!(plan[2], (16, cap_16));
        assert_eq!(plan[1].1, (10_000_000 - cap_16) * 10 / 99);
        // Only the hosts mix's one length may use every network it has.
        let all_32 = u64::try_from(Space::of(Family::V4).available(32)).unwrap();
        assert_eq!(
            Generator::plan(Mix::Hosts, Family::V4, u64::MAX),
            vec![(32, all_32)]
        );
    }

    #[test]
    fn share_of_the_space_denied() {
        let list: CidrList = ["1.0.0.0/8", "1.2.0.0/16", "2.0.0.0/31", "2.0.0.0/31"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let stats = list.stats();
        assert_eq!(stats.v4_addresses_denied, (1 << 24) + 2);
        assert!((stats.v4_space_denied - 16_777_218.0 / 4_294_967_296.0).abs() < 1e-12);
        assert_eq!((stats.distinct, stats.covered), (3, 1));
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
