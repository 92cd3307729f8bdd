//! A repeated measurement: median and range.

use serde::{Deserialize, Serialize};

/// The median of repeated measurements with their smallest and largest value (NaN, written
/// as `null`, when there were none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Median (the upper one of an even count).
    #[serde(deserialize_with = "nan_if_null")]
    pub median: f64,
    /// Smallest value.
    #[serde(deserialize_with = "nan_if_null")]
    pub min: f64,
    /// Largest value.
    #[serde(deserialize_with = "nan_if_null")]
    pub max: f64,
    /// How many values.
    pub count: u32,
}

/// JSON has no NaN: serde_json writes it as `null`, read back here as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Spread {
    /// The spread of `values` (NaN everywhere for none; NaN values are left out).
    pub fn of(values: &[f64]) -> Self {
        let v = crate::stats::sorted(values);
        let nan = f64::NAN;
        Self {
            median: crate::stats::median(&v),
            min: v.first().copied().unwrap_or(nan),
            max: v.last().copied().unwrap_or(nan),
            count: u32::try_from(v.len()).unwrap_or(u32::MAX),
        }
    }

    /// Whether the whole range lies on one side of `value`: a difference from it resolved.
    pub fn excludes(&self, value: f64) -> bool {
        self.min > value || self.max < value
    }

    /// `median [min..max]` with `digits` decimals (`-` for no values).
    pub fn show(&self, digits: usize) -> String {
        if self.count == 0 {
            return "-".into();
        }
        format!(
            "{:.digits$} [{:.digits$}..{:.digits$}]",
            self.median, self.min, self.max
        )
    }

    /// A ratio to a baseline in words: `x0.912 [0.905..0.920]` when every value lies on one
    /// side of 1, else `no difference resolved (x0.995 [0.980..1.010])`.
    pub fn ratio(&self) -> String {
        if self.count == 0 {
            "-".into()
        } else if self.excludes(1.0) {
            format!("x{}", self.show(3))
        } else {
            format!("no difference resolved (x{})", self.show(3))
        }
    }
}

impl Spread {
    /// [`ratio`](Self::ratio) for a table cell: the same when resolved, `~x0.995` when the
    /// values straddle 1 (the table's footnote says what `~` means).
    pub fn compact_ratio(&self) -> String {
        if self.count == 0 {
            "-".into()
        } else if self.excludes(1.0) {
            format!("x{}", self.show(3))
        } else {
            format!("~x{:.2}", self.median)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn median_range_and_resolution() {
        let s = Spread::of(&[3.0, 1.0, f64::NAN, 2.0, 5.0]);
        assert_eq!((s.median, s.min, s.max, s.count), (3.0, 1.0, 5.0, 4));
        assert!(s.excludes(0.5) && s.excludes(6.0) && !s.excludes(2.5));
        let none = Spread::of(&[]);
        assert!(none.median.is_nan());
        let back: Spread = serde_json::from_str(&serde_json::to_string(&none).unwrap()).unwrap();
        assert!(back.median.is_nan() && back.count == 0);
        assert_eq!(Spread::of(&[0.9, 0.95]).ratio(), "x0.950 [0.900..0.950]");
        assert_eq!(
            Spread::of(&[0.99, 1.02]).ratio(),
            "no difference resolved (x1.020 [0.990..1.020])"
        );
        assert_eq!(Spread::of(&[0.99, 1.02]).compact_ratio(), "~x1.02");
        assert_eq!(
            Spread::of(&[0.9, 0.95]).compact_ratio(),
            "x0.950 [0.900..0.950]"
        );
    }
}
