//! Parsers of the numeric command-line flags people type (used by clap in `front::cli`):
//! each takes any string and gives the value or a message saying what was expected.

/// `--lr`: a positive finite number.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        Ok(_) => Err("expected a positive finite number, e.g. 1e-3".into()),
        Err(_) => Err("expected a number, e.g. 1e-3".into()),
    }
}

/// An EMA momentum: a number in [0, 1).
pub fn momentum(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err("expected a number in [0, 1), e.g. 0.5".into()),
    }
}

/// A number in (0, 1), e.g. `--ema-eps`.
pub fn open_unit(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err("expected a number in (0, 1), e.g. 1e-4".into()),
    }
}

/// A whole number in `lo..=hi` (what clap's ranged parsers check, for the property tests).
pub fn count(s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(v) if (lo..=hi).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is not in {lo}..={hi}")),
        Err(e) => Err(format!("{e}; expected a whole number in {lo}..={hi}")),
    }
}

/// `--phase-split 1,5`: positive finite weights.
pub fn phase_split(s: &str) -> Result<Vec<f64>, String> {
    let v: Result<Vec<f64>, _> = s.split(',').map(|x| x.trim().parse::<f64>()).collect();
    match v {
        Ok(v) if v.iter().all(|w| w.is_finite() && *w > 0.0) => Ok(v),
        _ => Err(format!(
            "--phase-split '{s}': expected positive numbers like 1,5"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        assert_eq!(positive_f64("1e-3"), Ok(1e-3));
        for bad in ["0", "-1", "nan", "NaN", "inf", "-inf", "", "x", "1e400"] {
            assert!(positive_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(momentum("0"), Ok(0.0));
        for bad in ["1", "1.5", "-0.1", "nan"] {
            assert!(momentum(bad).is_err(), "{bad}");
        }
        assert!(open_unit("0").is_err() && open_unit("1").is_err() && open_unit("1e-4").is_ok());
        assert_eq!(count("5", 1, 9), Ok(5));
        assert!(count("0", 1, 9).is_err() && count("-1", 1, 9).is_err());
        assert_eq!(phase_split("1, 5"), Ok(vec![1.0, 5.0]));
        assert!(phase_split("1,nan").is_err() && phase_split("1,,2").is_err());
    }
}
