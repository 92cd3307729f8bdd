//! What an engine's packet program is timed on ([`CostCase`]) and the figure it gets
//! ([`ProgramCost`]): typed once, so a report that looks a case up fails to compile when the
//! case is renamed, instead of showing an empty cell. Records keep the case as the text its
//! `Display` gives, as they always have.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Family;

/// A destination the filter program is timed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostProbe {
    /// IPv4, inside a denied network.
    V4Hit,
    /// IPv4, allowed.
    V4Miss,
    /// IPv4, a denied host address (`/32`).
    V4HostHit,
    /// IPv4, allowed, next to a denied `/32`.
    V4NearMiss,
    /// IPv6, inside a denied network.
    V6Hit,
    /// IPv6, allowed.
    V6Miss,
}

impl CostProbe {
    /// Every probe, in the order records list them.
    pub const ALL: [Self; 6] = [
        Self::V4Hit,
        Self::V4Miss,
        Self::V4HostHit,
        Self::V4NearMiss,
        Self::V6Hit,
        Self::V6Miss,
    ];

    /// Its family.
    pub fn family(self) -> Family {
        match self {
            Self::V6Hit | Self::V6Miss => Family::V6,
            _ => Family::V4,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Self::V4Hit => "v4 hit",
            Self::V4Miss => "v4 miss",
            Self::V4HostHit => "v4 hit, /32",
            Self::V4NearMiss => "v4 miss, next to a /32",
            Self::V6Hit => "v6 hit",
            Self::V6Miss => "v6 miss",
        }
    }
}

/// What one figure of [`ProgramCost`] timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum CostCase {
    /// The program that passes every packet at once: the method's floor.
    Floor,
    /// The filter program on a packet to a probe destination.
    Probe(CostProbe),
    /// A benchmark program doing `lookups` lookups of pseudo-random addresses per run.
    ColdLookups {
        /// The family of the addresses.
        family: Family,
        /// Lookups per run.
        lookups: u32,
    },
    /// The same program without the lookups.
    ColdBase {
        /// The family of the addresses.
        family: Family,
        /// Addresses per run.
        lookups: u32,
    },
    /// One cache-cold lookup: the difference of the two above, per lookup.
    ColdPerLookup(Family),
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "IPv4",
        Family::V6 => "IPv6",
    }
}

impl fmt::Display for CostCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match *self {
            Self::Floor => "empty program (floor)".to_owned(),
            Self::Probe(probe) => probe.text().to_owned(),
            Self::ColdLookups { family, lookups } => {
                format!("cold: {lookups} random {} lookups", family_name(family))
            }
            Self::ColdBase { family, lookups } => format!(
                "cold: {lookups} random {} addresses, no lookup",
                family_name(family)
            ),
            Self::ColdPerLookup(family) => {
                format!("cold: per random {} lookup", family_name(family))
            }
        };
        f.pad(&text)
    }
}

impl FromStr for CostCase {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text == "empty program (floor)" {
            return Ok(Self::Floor);
        }
        if let Some(probe) = CostProbe::ALL.into_iter().find(|p| p.text() == text) {
            return Ok(Self::Probe(probe));
        }
        let family = |name: &str| match name {
            "IPv4" => Some(Family::V4),
            "IPv6" => Some(Family::V6),
            _ => None,
        };
        let cold = text.strip_prefix("cold: ");
        if let Some(name) = cold
            .and_then(|t| t.strip_prefix("per random "))
            .and_then(|t| t.strip_suffix(" lookup"))
            .and_then(family)
        {
            return Ok(Self::ColdPerLookup(name));
        }
        let words: Vec<&str> = cold.unwrap_or_default().split(' ').collect();
        if let [n, "random", name, rest @ ..] = words.as_slice()
            && let (Ok(lookups), Some(family)) = (n.parse(), family(name))
        {
            match rest {
                ["lookups"] => return Ok(Self::ColdLookups { family, lookups }),
                ["addresses,", "no", "lookup"] => return Ok(Self::ColdBase { family, lookups }),
                _ => {}
            }
        }
        Err(format!("unknown program-cost case {text:?}"))
    }
}

impl From<CostCase> for String {
    fn from(case: CostCase) -> Self {
        case.to_string()
    }
}

impl TryFrom<String> for CostCase {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

/// The time one run of an engine's packet program takes, over repeated timed rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramCost {
    /// What was timed.
    pub case: CostCase,
    /// Median over rounds of the mean time per run, in nanoseconds.
    pub median_ns: f64,
    /// Fastest round.
    pub min_ns: f64,
    /// Slowest round.
    pub max_ns: f64,
    /// Program runs per round.
    pub repeat: u32,
    /// Rounds.
    pub rounds: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every case reads back from the text records hold, and those texts are the ones
    /// earlier records hold.
    #[test]
    fn cases_round_trip_through_their_text() {
        let mut cases = vec![CostCase::Floor];
        cases.extend(CostProbe::ALL.map(CostCase::Probe));
        for family in Family::BOTH {
            cases.push(CostCase::ColdLookups {
                family,
                lookups: 64,
            });
            cases.push(CostCase::ColdBase {
                family,
                lookups: 64,
            });
            cases.push(CostCase::ColdPerLookup(family));
        }
        for case in cases {
            assert_eq!(case.to_string().parse::<CostCase>(), Ok(case));
        }
        assert_eq!(
            CostCase::ColdPerLookup(Family::V4).to_string(),
            "cold: per random IPv4 lookup"
        );
        assert_eq!(
            CostCase::Probe(CostProbe::V4NearMiss).to_string(),
            "v4 miss, next to a /32"
        );
        assert!("v4 hitt".parse::<CostCase>().is_err());
    }
}
