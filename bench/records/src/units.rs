//! How figures are written for people: byte sizes in the unit that keeps them readable.

/// `bytes` in KiB below 1 MiB, MiB below 10 GiB, GiB above (`512 KiB`, `96.4 MiB`,
/// `12.1 GiB`), signed when `signed` (`+3.2 MiB`).
#[expect(clippy::cast_precision_loss, reason = "a figure for reading")]
pub fn human_bytes(bytes: i64, signed: bool) -> String {
    let sign = match (signed, bytes < 0) {
        (_, true) => "-",
        (true, false) => "+",
        (false, false) => "",
    };
    let b = bytes.unsigned_abs() as f64;
    let (value, unit, decimals) = if b < f64::from(1 << 20) {
        (b / 1024.0, "KiB", 0)
    } else if b < 10.0 * f64::from(1 << 30) {
        (b / f64::from(1 << 20), "MiB", 1)
    } else {
        (b / f64::from(1 << 30), "GiB", 1)
    };
    format!("{sign}{value:.decimals$} {unit}")
}

/// An unsigned size in the same units (`512 KiB`, `96.4 MiB`).
pub fn human_size(bytes: u64) -> String {
    human_bytes(i64::try_from(bytes).unwrap_or(i64::MAX), false)
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn small_figures_are_not_zero_mib() {
        assert_eq!(human_bytes(5_000, false), "5 KiB");
        assert_eq!(human_bytes(0, false), "0 KiB");
        assert_eq!(human_bytes(100 << 20, false), "100.0 MiB");
        assert_eq!(human_bytes(-(3 << 20), true), "-3.0 MiB");
        assert_eq!(human_bytes(3 << 20, true), "+3.0 MiB");
        assert_eq!(human_bytes(12 << 30, false), "12.0 GiB");
    }
}
