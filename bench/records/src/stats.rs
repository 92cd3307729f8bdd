//! The statistics every figure of egress-bench is made with, and their one rule for missing
//! values: NaN values are left out, and a statistic of no values is NaN (written `null` in
//! JSON, shown as `-`).

/// The values without NaNs, in increasing order.
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The `p` quantile (0 to 1) by nearest rank: the value at `round((n - 1) * p)` of the
/// sorted values (NaN for none).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let v = sorted(values);
    if v.is_empty() {
        return f64::NAN;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into the values"
    )]
    let at = ((v.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    v[at]
}

/// The median: the middle value, the upper one of an even count (NaN for none).
pub fn median(values: &[f64]) -> f64 {
    percentile(values, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_missing_values() {
        assert!(median(&[]).is_nan());
        assert!(median(&[f64::NAN]).is_nan());
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), 2.0);
        assert_eq!(
            median(&[4.0, 1.0, 3.0, 2.0]),
            3.0,
            "the upper of an even count"
        );
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.99), 5.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.0), 1.0);
    }
}
