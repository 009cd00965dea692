//! `HELLO_FAILURE_RATE`: which requests fail, spread evenly and
//! deterministically.
//!
//! Request `n` (counting from 0) fails when `floor((n+1)*rate) >
//! floor(n*rate)`, so of any first `N` requests exactly `floor(N*rate)` fail.
//! The rate is kept in parts per million so the arithmetic is exact.

const SCALE: u64 = 1_000_000;

/// A failure rate between 0 and 1, in parts per million.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureRate {
    ppm: u64,
}

impl FailureRate {
    /// Parses `0.0`–`1.0` (also `0`, `1`, `.25`).
    pub fn parse(s: &str) -> Result<Self, String> {
        let rate: f64 = s
            .trim()
            .parse()
            .map_err(|_| "not a number; use a fraction from 0.0 to 1.0".to_owned())?;
        if !(0.0..=1.0).contains(&rate) {
            return Err("out of range; use a fraction from 0.0 to 1.0".to_owned());
        }
        Ok(FailureRate {
            ppm: (rate * SCALE as f64).round() as u64,
        })
    }

    /// Whether request `n` (0-based) fails.
    pub fn fails(self, n: u64) -> bool {
        let failures_before = |k: u64| (u128::from(k) * u128::from(self.ppm)) / u128::from(SCALE);
        failures_before(n.saturating_add(1)) > failures_before(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(rate: &str, n: u64) -> u64 {
        let rate = FailureRate::parse(rate).unwrap();
        (0..n).filter(|&i| rate.fails(i)).count() as u64
    }

    #[test]
    fn exact_counts() {
        assert_eq!(count("0.2", 100), 20);
        assert_eq!(count("0.2", 5), 1);
        assert_eq!(count("0", 1000), 0);
        assert_eq!(count("1", 1000), 1000);
        assert_eq!(count("1.0", 7), 7);
        assert_eq!(count("0.5", 10), 5);
        assert_eq!(count("0.7", 10), 7);
        assert_eq!(count("0.1", 100), 10);
        assert_eq!(count("0.333333", 3_000_000), 999_999);
        assert_eq!(count(".25", 8), 2);
    }

    #[test]
    fn spread_evenly() {
        let rate = FailureRate::parse("0.2").unwrap();
        let failing: Vec<u64> = (0..20).filter(|&i| rate.fails(i)).collect();
        assert_eq!(failing, vec![4, 9, 14, 19]);
        let half = FailureRate::parse("0.5").unwrap();
        assert_eq!(
            (0..6).map(|i| half.fails(i)).collect::<Vec<_>>(),
            vec![false, true, false, true, false, true]
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(FailureRate::parse("1.5").is_err());
        assert!(FailureRate::parse("-0.1").is_err());
        assert!(FailureRate::parse("lots").is_err());
        assert!(FailureRate::parse("NaN").is_err());
        assert!(FailureRate::parse("").is_err());
    }

    #[test]
    fn huge_request_numbers_do_not_overflow() {
        let rate = FailureRate::parse("0.5").unwrap();
        let _ = rate.fails(u64::MAX);
        let _ = rate.fails(u64::MAX - 1);
    }
}
