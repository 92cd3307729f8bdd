//! Deny-lists: parsing the text formats real lists come in, and what the kernel will be given.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both families, v4 first.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// Bits in an address of the family: 32 or 128.
    pub const fn max_prefix_len(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }
}

/// How strictly text is read.
#[derive(Debug, Clone, Default)]
pub struct ParseOptions {
    /// Reject entries with host bits set (`10.1.2.3/8`) instead of normalising them.
    pub strict: bool,
}

/// How many bad lines a [`ParseError::Lines`] names in full; the rest are counted.
pub const BAD_LINES_SHOWN: usize = 20;

/// Why a deny-list could not be read. Nothing has been applied when this is returned.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Lines that are not entries: every one is counted, the first [`BAD_LINES_SHOWN`] kept.
    #[error("{}", describe_bad_lines(.shown, *.total))]
    Lines {
        /// The first bad lines, in line order.
        shown: Vec<BadLine>,
        /// How many lines were bad in all.
        total: u64,
    },
    /// The input could not be read.
    #[error("reading {source_name}: {error}")]
    Io {
        /// File name, or `stdin`.
        source_name: String,
        /// The underlying error.
        error: io::Error,
    },
}

impl ParseError {
    /// The bad lines named in full (empty for an I/O error).
    pub fn bad_lines(&self) -> &[BadLine] {
        match self {
            Self::Lines { shown, .. } => shown,
            Self::Io { .. } => &[],
        }
    }
}

/// One line of a deny-list that is not an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: u64,
    /// The line's text (without its comment).
    pub text: String,
    /// What is wrong with it.
    pub problem: LineProblem,
}

/// What is wrong with a [`BadLine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineProblem {
    /// Not an address, a CIDR or a comment; why.
    NotAnEntry(String),
    /// Strict mode: host bits are set; the network the entry would be.
    HostBits(IpNet),
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { line, text, .. } = self;
        match &self.problem {
            LineProblem::NotAnEntry(reason) => {
                write!(
                    f,
                    "line {line}: {text:?} is not an IP address or CIDR: {reason}"
                )
            }
            LineProblem::HostBits(network) => write!(
                f,
                "line {line}: {text:?} has host bits set (its network is {network}); \
                 fix it or drop --strict to normalise"
            ),
        }
    }
}

fn describe_bad_lines(shown: &[BadLine], total: u64) -> String {
    if let ([only], 1) = (shown, total) {
        return only.to_string();
    }
    format!(
        "{}:{}",
        crate::count(total, "bad line", "bad lines"),
        crate::listing(shown, total)
    )
}

/// Counts that describe a list as the kernel will see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListStats {
    /// IPv4 entries.
    pub entries_v4: u64,
    /// IPv6 entries.
    pub entries_v6: u64,
    /// Distinct entries of both families: the entries less exact duplicates.
    pub distinct: u64,
    /// IPv4 addresses inside at least one entry.
    pub v4_addresses_denied: u64,
    /// The share of the whole IPv4 space (2^32 addresses) inside at least one entry.
    pub v4_space_denied: f64,
    /// Entries whose host bits were cleared while parsing.
    pub host_bits_normalised: u64,
    /// Entries equal to an earlier entry.
    pub duplicates: u64,
    /// Entries inside a broader entry of the list (not counting exact duplicates).
    pub covered: u64,
}

/// A validated, normalised deny-list: IPv4 and IPv6 networks, each with the source line it
/// came from when it was parsed from text.
///
/// Entries stay in input order and are not merged: N entries mean N kernel entries unless
/// [`aggregate`](Self::aggregate) is asked for.
///
/// A clone shares the entries until one side changes them (an engine keeps the list it
/// loaded: a copy of 100M entries cost a load 0.3 to 1.6 s).
#[derive(Debug, Clone, Default)]
pub struct CidrList {
    v4: Arc<Vec<Ipv4Net>>,
    v6: Arc<Vec<Ipv6Net>>,
    /// Source lines (u32: four billion lines; 4 bytes an entry at 100M entries).
    v4_lines: Arc<Vec<u32>>,
    v6_lines: Arc<Vec<u32>>,
    host_bits_normalised: u64,
}

/// An entry of a list, with the line it came from (if it came from text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    /// 1-based source line, if parsed from text.
    pub line: Option<u64>,
    /// The entry.
    pub net: IpNet,
}

impl CidrList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a list from text: one address or CIDR per line; bare addresses mean /32 or /128;
    /// `#` and `;` start comments (whole-line or trailing); blank lines and CRLF are fine.
    /// The whole input is read: the error names every bad line (number, text and why; the
    /// first [`BAD_LINES_SHOWN`] in full, the rest counted).
    ///
    /// # Errors
    /// [`ParseError::Lines`] naming every bad line; [`ParseError::Io`] when reading fails.
    pub fn parse(
        reader: impl Read,
        source_name: &str,
        options: &ParseOptions,
    ) -> Result<Self, ParseError> {
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut list = Self::new();
        let mut buf = Vec::with_capacity(128);
        let mut line_no = 0u64;
        let mut bad = Vec::new();
        let mut bad_total = 0u64;
        loop {
            buf.clear();
            let read = reader
                .read_until(b'\n', &mut buf)
                .map_err(|error| ParseError::Io {
                    source_name: source_name.to_owned(),
                    error,
                })?;
            if read == 0 {
                break;
            }
            line_no += 1;
            let text = match buf.iter().position(|&b| b == b'#' || b == b';') {
                Some(end) => &buf[..end],
                None => &buf[..],
            };
            let text = text.trim_ascii();
            if text.is_empty() {
                continue;
            }
            match read_entry(text, line_no, options) {
                Ok((net, normalised)) if bad_total == 0 => {
                    list.host_bits_normalised += u64::from(normalised);
                    // read_entry refuses lines past u32::MAX.
                    let line = u32::try_from(line_no).unwrap_or(u32::MAX);
                    list.push_at(net, Some(line));
                }
                // Past the first bad line the list is only checked, not kept.
                Ok(_) => {}
                Err(problem) => {
                    bad_total += 1;
                    if bad.len() < BAD_LINES_SHOWN {
                        bad.push(BadLine {
                            line: line_no,
                            text: String::from_utf8_lossy(text).into_owned(),
                            problem,
                        });
                    }
                }
            }
        }
        if bad_total > 0 {
            return Err(ParseError::Lines {
                shown: bad,
                total: bad_total,
            });
        }
        Ok(list)
    }

    /// Reads a list from a file, or from standard input when `path` is `-`.
    ///
    /// # Errors
    /// As [`parse`](Self::parse), and [`ParseError::Io`] naming the file when it cannot be opened.
    pub fn parse_file(path: &Path, options: &ParseOptions) -> Result<Self, ParseError> {
        if path == Path::new("-") {
            return Self::parse(io::stdin().lock(), "stdin", options);
        }
        let name = path.display().to_string();
        let file = File::open(path).map_err(|error| ParseError::Io {
            source_name: name.clone(),
            error,
        })?;
        Self::parse(file, &name, options)
    }

    /// Appends one entry (its host bits are cleared).
    pub fn push(&mut self, net: IpNet) {
        let trunc = net.trunc();
        if trunc != net {
            self.host_bits_normalised += 1;
        }
        self.push_at(trunc, None);
    }

    fn push_at(&mut self, net: IpNet, line: Option<u32>) {
        match net {
            IpNet::V4(n) => {
                Arc::make_mut(&mut self.v4).push(n);
                if let Some(line) = line {
                    Arc::make_mut(&mut self.v4_lines).push(line);
                }
            }
            IpNet::V6(n) => {
                Arc::make_mut(&mut self.v6).push(n);
                if let Some(line) = line {
                    Arc::make_mut(&mut self.v6_lines).push(line);
                }
            }
        }
    }

    /// IPv4 entries, in input order.
    pub fn v4(&self) -> &[Ipv4Net] {
        &self.v4
    }

    /// IPv6 entries, in input order.
    pub fn v6(&self) -> &[Ipv6Net] {
        &self.v6
    }

    /// Entries of both families (v4 first).
    pub fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.v4
            .iter()
            .map(|&n| IpNet::V4(n))
            .chain(self.v6.iter().map(|&n| IpNet::V6(n)))
    }

    /// Number of entries of one family.
    pub fn len_of(&self, family: Family) -> usize {
        match family {
            Family::V4 => self.v4.len(),
            Family::V6 => self.v6.len(),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether the list has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The source line of entry `index` of a family, if the list was parsed from text.
    pub fn line_of(&self, family: Family, index: usize) -> Option<u64> {
        match family {
            Family::V4 => self.v4_lines.get(index).map(|&l| u64::from(l)),
            Family::V6 => self.v6_lines.get(index).map(|&l| u64::from(l)),
        }
    }

    /// Makes room for `additional` more entries of `family`.
    pub fn reserve(&mut self, family: Family, additional: usize) {
        match family {
            Family::V4 => Arc::make_mut(&mut self.v4).reserve_exact(additional),
            Family::V6 => Arc::make_mut(&mut self.v6).reserve_exact(additional),
        }
    }

    /// Counts entries, normalised host bits, duplicates, covered entries and the IPv4
    /// addresses denied. Sorts a copy of one family at a time (5 bytes an IPv4 entry):
    /// O(n log n).
    ///
    /// # Panics
    /// Never: entries of one family always make a network of that family.
    pub fn stats(&self) -> ListStats {
        let v4 = redundancy(&self.v4, |n| {
            (
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            )
        });
        let v6 = redundancy(&self.v6, |n| {
            (u128::from(n.network()), u128::from(n.broadcast()))
        });
        let entries = (self.v4.len() + self.v6.len()) as u64;
        #[expect(clippy::cast_precision_loss, reason = "a share")]
        let v4_space_denied = v4.addresses as f64 / 4_294_967_296.0;
        ListStats {
            entries_v4: self.v4.len() as u64,
            entries_v6: self.v6.len() as u64,
            distinct: entries - v4.duplicates - v6.duplicates,
            v4_addresses_denied: u64::try_from(v4.addresses).expect("at most 2^32"),
            v4_space_denied,
            host_bits_normalised: self.host_bits_normalised,
            duplicates: v4.duplicates + v6.duplicates,
            covered: v4.covered + v6.covered,
        }
    }

    /// The same set of addresses in the fewest entries: duplicates and covered entries removed,
    /// adjacent networks merged. Source lines are not kept.
    pub fn aggregate(&self) -> Self {
        Self {
            v4: Arc::new(Ipv4Net::aggregate(&self.v4)),
            v6: Arc::new(Ipv6Net::aggregate(&self.v6)),
            ..Self::default()
        }
    }

    /// Entries that contain any of `addrs`, with their source lines.
    pub fn covering(&self, addrs: &[IpAddr]) -> Vec<Located> {
        let mut found = Vec::new();
        for (i, net) in self.v4.iter().enumerate() {
            if addrs
                .iter()
                .any(|a| matches!(a, IpAddr::V4(a) if net.contains(a)))
            {
                found.push(Located {
                    line: self.line_of(Family::V4, i),
                    net: IpNet::V4(*net),
                });
            }
        }
        for (i, net) in self.v6.iter().enumerate() {
            if addrs
                .iter()
                .any(|a| matches!(a, IpAddr::V6(a) if net.contains(a)))
            {
                found.push(Located {
                    line: self.line_of(Family::V6, i),
                    net: IpNet::V6(*net),
                });
            }
        }
        found
    }

    /// Removes every entry that contains any of `addrs`; returns how many were removed.
    pub fn remove_covering(&mut self, addrs: &[IpAddr]) -> usize {
        let before = self.len();
        let keep4: Vec<bool> = self
            .v4
            .iter()
            .map(|n| {
                !addrs
                    .iter()
                    .any(|a| matches!(a, IpAddr::V4(a) if n.contains(a)))
            })
            .collect();
        let keep6: Vec<bool> = self
            .v6
            .iter()
            .map(|n| {
                !addrs
                    .iter()
                    .any(|a| matches!(a, IpAddr::V6(a) if n.contains(a)))
            })
            .collect();
        retain_by(Arc::make_mut(&mut self.v4), &keep4);
        retain_by(Arc::make_mut(&mut self.v4_lines), &keep4);
        retain_by(Arc::make_mut(&mut self.v6), &keep6);
        retain_by(Arc::make_mut(&mut self.v6_lines), &keep6);
        before - self.len()
    }
}

impl FromIterator<IpNet> for CidrList {
    fn from_iter<I: IntoIterator<Item = IpNet>>(iter: I) -> Self {
        let mut list = Self::new();
        for net in iter {
            list.push(net);
        }
        list
    }
}

impl Extend<IpNet> for CidrList {
    fn extend<I: IntoIterator<Item = IpNet>>(&mut self, iter: I) {
        for net in iter {
            self.push(net);
        }
    }
}

fn retain_by<T>(items: &mut Vec<T>, keep: &[bool]) {
    if items.is_empty() {
        return;
    }
    let mut i = 0;
    items.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// One non-empty line as an entry: the network and whether host bits were cleared.
fn read_entry(
    text: &[u8],
    line_no: u64,
    options: &ParseOptions,
) -> Result<(IpNet, bool), LineProblem> {
    let written = match plain_v4(text) {
        Some(net) => IpNet::V4(net),
        None => {
            let text = std::str::from_utf8(text)
                .map_err(|_| LineProblem::NotAnEntry("not UTF-8 text".into()))?;
            parse_entry(text).map_err(LineProblem::NotAnEntry)?
        }
    };
    if line_no > u64::from(u32::MAX) {
        return Err(LineProblem::NotAnEntry(format!(
            "lists are read up to line {} at most",
            u32::MAX
        )));
    }
    let net = written.trunc();
    if net != written && options.strict {
        return Err(LineProblem::HostBits(net));
    }
    Ok((net, net != written))
}

/// The common case read without the general parser: `a.b.c.d` or `a.b.c.d/n` written
/// canonically (no leading zeros, octets up to 255, lengths up to 32). Anything else is
/// `None` and goes to [`parse_entry`], which reads these forms the same way.
fn plain_v4(text: &[u8]) -> Option<Ipv4Net> {
    /// A decimal number of one to `max_digits` digits without a leading zero, and the rest.
    fn number(text: &[u8], max_digits: usize) -> Option<(u32, &[u8])> {
        let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > max_digits || (digits > 1 && text[0] == b'0') {
            return None;
        }
        let value = text[..digits]
            .iter()
            .fold(0u32, |n, &b| n * 10 + u32::from(b - b'0'));
        Some((value, &text[digits..]))
    }
    let mut rest = text;
    let mut address = 0u32;
    for i in 0..4 {
        if i > 0 {
            rest = rest.strip_prefix(b".")?;
        }
        let (octet, after) = number(rest, 3)?;
        if octet > 255 {
            return None;
        }
        address = address << 8 | octet;
        rest = after;
    }
    let length = match rest {
        [] => 32,
        [b'/', digits @ ..] => match number(digits, 2)? {
            (length, []) if length <= 32 => length,
            _ => return None,
        },
        _ => return None,
    };
    Ipv4Net::new(address.into(), u8::try_from(length).ok()?).ok()
}

fn parse_entry(text: &str) -> Result<IpNet, String> {
    if text.contains(char::is_whitespace) {
        return Err("one entry per line expected".into());
    }
    if text.contains('/') {
        text.parse::<IpNet>().map_err(|_| {
            let (addr, len) = text.split_once('/').unwrap_or((text, ""));
            match addr.parse::<IpAddr>() {
                Err(_) => "bad address".to_owned(),
                Ok(IpAddr::V4(_)) => format!("prefix length {len:?} is not 0..=32"),
                Ok(IpAddr::V6(_)) => format!("prefix length {len:?} is not 0..=128"),
            }
        })
    } else {
        text.parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| "bad address".to_owned())
    }
}

/// What [`redundancy`] finds in one family.
struct Redundancy {
    duplicates: u64,
    covered: u64,
    /// Addresses inside at least one entry (saturating at `u128::MAX` for `::/0`).
    addresses: u128,
}

/// Counts exact duplicates, entries covered by a broader entry, and the addresses the entries
/// cover together. `range` gives a network's first and last address. Networks order by
/// (network, prefix length), so a sorted copy puts each network before everything inside it.
fn redundancy<N: Ord + Copy>(nets: &[N], range: impl Fn(&N) -> (u128, u128)) -> Redundancy {
    let mut sorted = nets.to_vec();
    sorted.sort_unstable();
    let mut found = Redundancy {
        duplicates: 0,
        covered: 0,
        addresses: 0,
    };
    let mut previous: Option<N> = None;
    // Networks nest or are disjoint, so an entry is covered exactly when it ends within the
    // last entry that was not covered.
    let mut cover_end: Option<u128> = None;
    for net in sorted {
        let (first, last) = range(&net);
        if previous == Some(net) {
            found.duplicates += 1;
        } else if cover_end.is_some_and(|c| last <= c) {
            found.covered += 1;
        } else {
            cover_end = Some(last);
            found.addresses = found
                .addresses
                .saturating_add(last - first)
                .saturating_add(1);
        }
        previous = Some(net);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<CidrList, ParseError> {
        CidrList::parse(text.as_bytes(), "test", &ParseOptions::default())
    }

    #[test]
    fn the_ipv4_fast_path_reads_what_the_general_parser_reads() {
        let cases = [
            "1.2.3.4",
            "1.2.3.4/32",
            "0.0.0.0/0",
            "255.255.255.255",
            "10.0.0.0/8",
            "10.1.2.3/8",
            "198.18.0.0/15",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/08",
            "1.2.3.4/0",
            "01.2.3.4",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "1.2.3.4/1/2",
            "1..3.4",
            "1.2.3.4x",
            "1234.1.1.1",
            "1.2.3.4/100",
            "::1",
            "a.b.c.d",
        ];
        for case in ["1.2.3.4", "10.1.2.3/8", "0.0.0.0/0", "255.255.255.255/32"] {
            assert!(plain_v4(case.as_bytes()).is_some(), "{case}");
        }
        for case in cases {
            let general = parse_entry(case).ok();
            // Left to the general parser is fine; what the fast path reads, it reads the same.
            if let Some(fast) = plain_v4(case.as_bytes()) {
                assert_eq!(Some(IpNet::V4(fast)), general, "{case}");
            }
        }
    }

    #[test]
    fn reads_real_list_formats() {
        let list = parse(
            "# comment\r\n1.2.3.4\r\n\n10.0.0.0/8 ; SBL123\n  2001:db8::/32  # trailing\n;x\n2001:db8::1\n",
        )
        .unwrap();
        assert_eq!(
            list.v4(),
            &["1.2.3.4/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()]
        );
        assert_eq!(
            list.v6(),
            &[
                "2001:db8::/32".parse().unwrap(),
                "2001:db8::1/128".parse().unwrap()
            ]
        );
        assert_eq!(list.line_of(Family::V4, 1), Some(4));
        assert_eq!(list.line_of(Family::V6, 1), Some(7));
    }

    #[test]
    fn bad_lines_name_line_and_text() {
        let err = parse("1.2.3.4\n1.2.3.400\n").unwrap_err();
        assert!(
            matches!(err.bad_lines(), [BadLine { line: 2, text, .. }] if text == "1.2.3.400"),
            "{err}"
        );
        assert!(err.to_string().starts_with("line 2: "), "{err}");
        let err = parse("1.2.3.0/33\n").unwrap_err();
        assert!(err.to_string().contains("0..=32"), "{err}");
        let err = parse("\n\n1.2.3.4 5.6.7.8\n").unwrap_err();
        assert!(matches!(err.bad_lines(), [BadLine { line: 3, .. }]));
    }

    #[test]
    fn every_bad_line_is_named_up_to_the_cap() {
        let err = parse("1.2.3.4\nx\n10.0.0.0/8\n1.2.3.400 # typo\n::1/129\n").unwrap_err();
        let lines: Vec<u64> = err.bad_lines().iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 4, 5]);
        let text = err.to_string();
        assert!(text.starts_with("3 bad lines:\n  line 2: \"x\""), "{text}");
        assert!(text.contains("line 5: \"::1/129\""), "{text}");
        assert!(!text.contains("more"), "{text}");

        let many: String = (0..45).map(|i| format!("bad{i}\n1.1.1.{i}\n")).collect();
        let err = parse(&many).unwrap_err();
        let ParseError::Lines { shown, total } = &err else {
            panic!("{err}")
        };
        assert_eq!((shown.len(), *total), (BAD_LINES_SHOWN, 45));
        assert_eq!(shown.last().map(|b| b.line), Some(39));
        assert!(err.to_string().ends_with("\n  and 25 more"), "{err}");
    }

    #[test]
    fn host_bits_normalised_or_rejected() {
        let list = parse("10.1.2.3/8\n").unwrap();
        assert_eq!(list.v4(), &["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(list.stats().host_bits_normalised, 1);
        let strict = ParseOptions { strict: true };
        let err = CidrList::parse("10.1.2.3/8\n".as_bytes(), "t", &strict).unwrap_err();
        assert!(
            matches!(
                err.bad_lines(),
                [BadLine { line: 1, problem: LineProblem::HostBits(net), .. }]
                    if *net == "10.0.0.0/8".parse::<IpNet>().unwrap()
            ),
            "{err}"
        );
    }

    #[test]
    fn counts_duplicates_and_covered() {
        let list = parse("10.0.0.0/8\n10.1.0.0/16\n10.1.2.3\n10.1.2.3\n11.0.0.1\n10.0.0.0/8\n::/0\n2001:db8::1\n").unwrap();
        let stats = list.stats();
        assert_eq!(stats.duplicates, 2);
        assert_eq!(stats.covered, 3);
        let agg = list.aggregate();
        assert_eq!(agg.len(), 3);
    }

    #[test]
    fn finds_and_removes_entries_covering_addresses() {
        let mut list = parse("198.18.0.0/15\n1.1.1.1\n198.18.0.1\n").unwrap();
        let addr: IpAddr = "198.18.0.1".parse().unwrap();
        let found = list.covering(&[addr]);
        assert_eq!(
            found.iter().map(|l| l.line).collect::<Vec<_>>(),
            vec![Some(1), Some(3)]
        );
        assert_eq!(list.remove_covering(&[addr]), 2);
        assert_eq!(list.len(), 1);
        assert_eq!(list.line_of(Family::V4, 0), Some(2));
    }
}
