//! Canary analysis: should a canary deploy continue, or roll back?
//!
//! During a canary deploy the proxy sends a share of the traffic to the new
//! ("canary") release and the rest to the current ("stable") one. For each
//! release it feeds a [`SlidingWindow`]: a ring of short buckets (say one
//! second each) of [`WindowStats`] — requests, 5xx responses and a
//! [`LatencyHistogram`]. Every [`Rules::interval`] the deploy engine takes a
//! snapshot of both releases ([`wharf_proxy::Proxy::release_stats`]) and
//! hands them to a [`Judge`], which answers with a [`Verdict`]: continue, or
//! roll back. The window types live in [`wharf_proxy::stats`] (the proxy
//! fills them) and are re-exported here.
//!
//! One comparison is [`check`], a pure function of the [`Rules`] and the two
//! windows. It returns a [`Check`]:
//!
//! * [`Check::NotEnoughData`] while the canary has served fewer than
//!   [`Rules::min_requests`] requests in the window; nothing is judged.
//! * [`Check::Fail`] with one [`Violation`] per broken rule:
//!   - **absolute error rate**: the canary's 5xx rate is above
//!     [`Rules::max_error_rate`], whatever stable does;
//!   - **error rate increase**: the canary's 5xx rate is more than
//!     [`Rules::max_error_rate_increase`] above stable's (a difference of
//!     rates, in percentage points);
//!   - **latency ratio**: the canary's p99 latency is more than
//!     [`Rules::max_p99_ratio`] times stable's, and at least
//!     [`Rules::p99_floor`] (a canary that is fast in absolute terms never
//!     fails on latency).
//! * [`Check::Pass`] otherwise.
//!
//! The two error-rate rules only fire once the canary has at least
//! [`Rules::min_errors`] errors in the window, so that one or two unlucky
//! requests in a small sample don't roll a release back. The relative rules
//! (increase and latency ratio) need a baseline: they are skipped when stable
//! served fewer than [`Rules::min_requests`] requests in the window (in
//! particular when it served none); the absolute rule still applies.
//!
//! Windows overlap from one check to the next, so a single burst of errors
//! shows up in several consecutive checks; [`Rules::failures_tolerated`]
//! absorbs a failing check or two (e.g. a burst right at the window's edge),
//! while the noise of small samples is handled by `min_requests` and
//! `min_errors`.
//!
//! Nothing here reads a clock or does I/O: time is passed in, so the whole
//! model can be tested with synthetic windows.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use wharf_proxy::stats::{LatencyHistogram, SlidingWindow, WindowStats};

/// Differences smaller than this (relative to the limit, or absolute for
/// limits below 1) are rounding, not a breach: a rate exactly at a limit
/// passes even when floating point lands a hair above it.
const EPSILON: f64 = 1e-9;

/// Whether `value` is above `limit` by more than rounding error. False when
/// either is NaN.
fn exceeds(value: f64, limit: f64) -> bool {
    value > limit && value - limit > EPSILON * limit.abs().max(1.0)
}

/// When a canary fails. Deserializes from config with every field optional
/// (missing ones take the [`Default`] values); durations are strings like
/// `"1s"` or `"50ms"`.
///
/// The defaults catch a release failing 5% of its requests (both error-rate
/// rules fire) while tolerating a canary at 0.5% errors next to a stable at
/// 0.4%, and need enough requests for a p99 to mean something.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rules {
    /// Absolute limit on the canary's 5xx rate, as a fraction (`0.02` is
    /// 2%). Fails when the rate is strictly above it. Default `0.02`.
    pub max_error_rate: f64,
    /// Limit on how far the canary's 5xx rate may be above stable's, as a
    /// difference of fractions: `0.01` fails when
    /// `canary_rate - stable_rate > 0.01`, i.e. more than one percentage
    /// point worse (a canary at 1.6% next to a stable at 0.5% fails; 1.5%
    /// passes). Skipped without a stable baseline. Default `0.01`.
    pub max_error_rate_increase: f64,
    /// Error-rate rules ignore a canary with fewer than this many 5xx in the
    /// window: in small samples one or two errors swing the rate by whole
    /// percents. Set to 0 or 1 for zero tolerance. Default `5`.
    pub min_errors: u64,
    /// Limit on canary p99 / stable p99. Fails when the canary's p99 is
    /// strictly above `max_p99_ratio ×` stable's and at least
    /// [`p99_floor`](Rules::p99_floor). Skipped without a stable baseline.
    /// Default `2.0`.
    pub max_p99_ratio: f64,
    /// A canary p99 below this never fails the latency rule, however it
    /// compares to stable (5ms vs 2ms is not worth a rollback). Default
    /// `50ms`.
    #[serde(with = "wharf_config::humantime_serde")]
    pub p99_floor: Duration,
    /// Canary requests needed in the window before anything is judged;
    /// stable needs as many for the relative rules to apply. Default `100`
    /// (with fewer samples the p99 is simply the slowest request).
    pub min_requests: u64,
    /// Consecutive failed checks tolerated: the verdict is
    /// [`Verdict::Rollback`] on failed check number `failures_tolerated + 1`
    /// in a row. With `1`, a single failed check continues and the second
    /// consecutive one rolls back; `0` rolls back on the first. A passing
    /// check resets the count; [`Check::NotEnoughData`] leaves it as is.
    /// Default `1`.
    pub failures_tolerated: u32,
    /// How often the engine should check. Default `1s`.
    #[serde(with = "wharf_config::humantime_serde")]
    pub interval: Duration,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            max_error_rate: 0.02,
            max_error_rate_increase: 0.01,
            min_errors: 5,
            max_p99_ratio: 2.0,
            p99_floor: Duration::from_millis(50),
            min_requests: 50,
            failures_tolerated: 1,
            interval: Duration::from_secs(1),
        }
    }
}

impl Rules {
    /// Checks that the values make sense: rates finite and within `[0, 1]`,
    /// ratio finite and positive, interval non-zero. [`check`] never panics
    /// on invalid rules (a NaN limit simply never fires), but config loading
    /// should reject them.
    pub fn validate(&self) -> Result<(), InvalidRules> {
        let rate = |field: &'static str, value: f64| {
            if value.is_finite() && (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(InvalidRules {
                    field,
                    reason: format!("{value} is not a fraction between 0 and 1"),
                })
            }
        };
        rate("max_error_rate", self.max_error_rate)?;
        rate("max_error_rate_increase", self.max_error_rate_increase)?;
        if !(self.max_p99_ratio.is_finite() && self.max_p99_ratio > 0.0) {
            return Err(InvalidRules {
                field: "max_p99_ratio",
                reason: format!("{} is not a positive number", self.max_p99_ratio),
            });
        }
        if self.interval.is_zero() {
            return Err(InvalidRules {
                field: "interval",
                reason: "must be longer than 0s".to_owned(),
            });
        }
        Ok(())
    }
}

/// A [`Rules`] field with a value that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid canary rule `{field}`: {reason}")]
pub struct InvalidRules {
    /// The field's name, as spelled in config.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// A broken rule, with the numbers that broke it. Rates are fractions
/// (`0.05` is 5%).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Violation {
    /// The canary's error rate is above [`Rules::max_error_rate`].
    ErrorRate {
        /// The canary's error rate.
        canary: f64,
        /// [`Rules::max_error_rate`].
        limit: f64,
        /// The canary's 5xx responses in the window.
        errors: u64,
        /// The canary's requests in the window.
        requests: u64,
    },
    /// The canary's error rate exceeds stable's by more than
    /// [`Rules::max_error_rate_increase`].
    ErrorRateIncrease {
        /// The canary's error rate.
        canary: f64,
        /// Stable's error rate.
        stable: f64,
        /// [`Rules::max_error_rate_increase`].
        limit: f64,
        /// The canary's 5xx responses in the window.
        canary_errors: u64,
        /// The canary's requests in the window.
        canary_requests: u64,
        /// Stable's 5xx responses in the window.
        stable_errors: u64,
        /// Stable's requests in the window.
        stable_requests: u64,
    },
    /// The canary's p99 is more than [`Rules::max_p99_ratio`] times stable's.
    LatencyRatio {
        /// The canary's p99 latency.
        #[serde(with = "wharf_config::humantime_serde")]
        canary_p99: Duration,
        /// Stable's p99 latency.
        #[serde(with = "wharf_config::humantime_serde")]
        stable_p99: Duration,
        /// [`Rules::max_p99_ratio`].
        limit: f64,
    },
}

impl Violation {
    /// The rule's name, as in the serialized `rule` tag (`error_rate`,
    /// `error_rate_increase`, `latency_ratio`); handy as a metric label.
    pub fn rule(&self) -> &'static str {
        match self {
            Violation::ErrorRate { .. } => "error_rate",
            Violation::ErrorRateIncrease { .. } => "error_rate_increase",
            Violation::LatencyRatio { .. } => "latency_ratio",
        }
    }
}

/// The number of decimals (1 to 3) needed for `a` and `b` to print
/// differently, so a value just over its limit doesn't read "2.0% > 2.0%".
fn decimals_apart(a: f64, b: f64) -> usize {
    (1..=3)
        .find(|&k| format!("{a:.k$}") != format!("{b:.k$}"))
        .unwrap_or(3)
}

/// "300ms", "1.5ms", "2.5s".
fn human_duration(d: Duration) -> String {
    fn trimmed(value: f64, decimals: usize) -> String {
        let s = format!("{value:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    }
    if d < Duration::from_secs(1) {
        format!("{}ms", trimmed(d.as_secs_f64() * 1e3, 1))
    } else {
        format!("{}s", trimmed(d.as_secs_f64(), 3))
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::ErrorRate {
                canary,
                limit,
                errors,
                requests,
            } => {
                let (c, l) = (canary * 100.0, limit * 100.0);
                let k = decimals_apart(c, l);
                write!(
                    f,
                    "error rate {c:.k$}% > limit {l:.k$}% ({errors} of {requests} requests)"
                )
            }
            Violation::ErrorRateIncrease {
                canary,
                stable,
                limit,
                canary_errors,
                canary_requests,
                stable_errors,
                stable_requests,
            } => {
                let (c, s, l) = (canary * 100.0, stable * 100.0, limit * 100.0);
                let d = c - s;
                let k = decimals_apart(d, l);
                write!(
                    f,
                    "error rate {c:.k$}% exceeds stable's {s:.k$}% by {d:.k$} points \
                     > limit {l:.k$} points ({canary_errors} of {canary_requests} requests \
                     vs {stable_errors} of {stable_requests})"
                )
            }
            Violation::LatencyRatio {
                canary_p99,
                stable_p99,
                limit,
            } => {
                let ratio = latency_ratio(*canary_p99, *stable_p99);
                let k = decimals_apart(ratio, *limit);
                write!(
                    f,
                    "p99 latency {} is {ratio:.k$}x stable's {} > limit {limit:.k$}x",
                    human_duration(*canary_p99),
                    human_duration(*stable_p99),
                )
            }
        }
    }
}

/// `canary / stable`, with stable taken as at least 1µs (no division by 0).
fn latency_ratio(canary: Duration, stable: Duration) -> f64 {
    canary.as_secs_f64() / stable.as_secs_f64().max(1e-6)
}

/// The outcome of one comparison of canary with stable (see [`check`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", content = "details", rename_all = "snake_case")]
pub enum Check {
    /// No rule is broken.
    Pass,
    /// The canary served too few requests in the window to judge.
    NotEnoughData {
        /// The canary's requests in the window.
        requests: u64,
        /// [`Rules::min_requests`].
        needed: u64,
    },
    /// At least one rule is broken (never empty), in the order: error rate,
    /// error rate increase, latency ratio.
    Fail(Vec<Violation>),
}

impl Check {
    /// Whether this is [`Check::Pass`].
    pub fn is_pass(&self) -> bool {
        matches!(self, Check::Pass)
    }

    /// The broken rules; empty unless [`Check::Fail`].
    pub fn violations(&self) -> &[Violation] {
        match self {
            Check::Fail(violations) => violations,
            _ => &[],
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::Pass => f.write_str("pass"),
            Check::NotEnoughData { requests, needed } => {
                write!(f, "not enough data ({requests} of {needed} requests)")
            }
            Check::Fail(violations) => {
                f.write_str("fail: ")?;
                write_violations(f, violations)
            }
        }
    }
}

/// "a; b; c".
fn write_violations(f: &mut fmt::Formatter<'_>, violations: &[Violation]) -> fmt::Result {
    for (i, violation) in violations.iter().enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{violation}")?;
    }
    Ok(())
}

/// Compares the canary's window with stable's under `rules`. Pure: same
/// inputs, same answer; never panics.
///
/// Returns [`Check::NotEnoughData`] while `canary.requests <
/// rules.min_requests`. Otherwise applies the rules described on [`Rules`]:
/// the absolute error rate always, the error rate increase and latency ratio
/// only when `stable.requests >= rules.min_requests` (and at least 1), and
/// the error-rate rules only when `canary.errors >= rules.min_errors`.
pub fn check(rules: &Rules, stable: &WindowStats, canary: &WindowStats) -> Check {
    if canary.requests < rules.min_requests {
        return Check::NotEnoughData {
            requests: canary.requests,
            needed: rules.min_requests,
        };
    }
    let baseline = stable.requests > 0 && stable.requests >= rules.min_requests;
    let mut violations = Vec::new();

    if let Some(canary_rate) = canary.error_rate()
        && canary.errors >= rules.min_errors
    {
        if exceeds(canary_rate, rules.max_error_rate) {
            violations.push(Violation::ErrorRate {
                canary: canary_rate,
                limit: rules.max_error_rate,
                errors: canary.errors,
                requests: canary.requests,
            });
        }
        if baseline
            && let Some(stable_rate) = stable.error_rate()
            && exceeds(canary_rate - stable_rate, rules.max_error_rate_increase)
        {
            violations.push(Violation::ErrorRateIncrease {
                canary: canary_rate,
                stable: stable_rate,
                limit: rules.max_error_rate_increase,
                canary_errors: canary.errors,
                canary_requests: canary.requests,
                stable_errors: stable.errors,
                stable_requests: stable.requests,
            });
        }
    }

    if baseline
        && let (Some(canary_p99), Some(stable_p99)) = (canary.p99(), stable.p99())
        && canary_p99 >= rules.p99_floor
        && exceeds(
            canary_p99.as_secs_f64(),
            stable_p99.as_secs_f64() * rules.max_p99_ratio,
        )
    {
        violations.push(Violation::LatencyRatio {
            canary_p99,
            stable_p99,
            limit: rules.max_p99_ratio,
        });
    }

    if violations.is_empty() {
        Check::Pass
    } else {
        Check::Fail(violations)
    }
}

/// What the engine should do after a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Keep going (the check may still have failed, within tolerance).
    Continue {
        /// This check's outcome.
        check: Check,
    },
    /// Roll the canary back.
    Rollback {
        /// What the last check found broken.
        violations: Vec<Violation>,
        /// Consecutive failed checks, this one included.
        failed_checks: u32,
    },
}

impl Verdict {
    /// Whether this is [`Verdict::Rollback`].
    pub fn is_rollback(&self) -> bool {
        matches!(self, Verdict::Rollback { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Continue { check } => write!(f, "continue ({check})"),
            Verdict::Rollback {
                violations,
                failed_checks,
            } => {
                let s = if *failed_checks == 1 { "" } else { "s" };
                write!(f, "roll back after {failed_checks} failed check{s}: ")?;
                write_violations(f, violations)
            }
        }
    }
}

/// Judges a canary check after check, counting consecutive failures.
///
/// A [`Check::Fail`] adds one to the count and rolls back once the count is
/// above [`Rules::failures_tolerated`]; a [`Check::Pass`] resets it;
/// [`Check::NotEnoughData`] leaves it alone (a traffic lull neither clears
/// nor worsens a canary's record). [`Verdict::Rollback`] is meant to be
/// final; observing further keeps counting and keeps rolling back while
/// checks fail.
#[derive(Debug, Clone)]
pub struct Judge {
    rules: Rules,
    failed_checks: u32,
}

impl Judge {
    /// A judge with no failures yet.
    pub fn new(rules: Rules) -> Judge {
        Judge {
            rules,
            failed_checks: 0,
        }
    }

    /// The rules it judges by (the engine checks every `rules().interval`).
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Consecutive failed checks so far.
    pub fn failed_checks(&self) -> u32 {
        self.failed_checks
    }

    /// Runs [`check`] on the two windows and updates the failure count.
    pub fn observe(&mut self, stable: &WindowStats, canary: &WindowStats) -> Verdict {
        let check = check(&self.rules, stable, canary);
        match check {
            Check::Pass => self.failed_checks = 0,
            Check::NotEnoughData { .. } => {}
            Check::Fail(violations) => {
                self.failed_checks = self.failed_checks.saturating_add(1);
                if self.failed_checks > self.rules.failures_tolerated {
                    return Verdict::Rollback {
                        violations,
                        failed_checks: self.failed_checks,
                    };
                }
                return Verdict::Continue {
                    check: Check::Fail(violations),
                };
            }
        }
        Verdict::Continue { check }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `requests` requests of which `errors` are 5xx, all taking `latency_ms`.
    fn win(requests: u64, errors: u64, latency_ms: u64) -> WindowStats {
        let mut w = WindowStats::new();
        for i in 0..requests {
            w.record(if i < errors { 503 } else { 200 }, ms(latency_ms));
        }
        w
    }

    #[derive(Debug)]
    enum Expect {
        Pass,
        NotEnough,
        Fail(&'static [&'static str]),
    }

    const RATE: &str = "error_rate";
    const INCREASE: &str = "error_rate_increase";
    const LATENCY: &str = "latency_ratio";

    #[test]
    fn check_table() {
        // (name, stable (requests, errors, ms), canary (requests, errors, ms), expect)
        type Row = (&'static str, (u64, u64, u64), (u64, u64, u64), Expect);
        #[rustfmt::skip]
        let rows: &[Row] = &[
            ("clean", (1000, 0, 20), (1000, 0, 20), Expect::Pass),
            // minimum sample
            ("below min_requests", (1000, 0, 20), (49, 25, 900), Expect::NotEnough),
            ("at min_requests", (1000, 0, 20), (50, 0, 20), Expect::Pass),
            ("at min_requests, failing", (1000, 0, 20), (50, 5, 20), Expect::Fail(&[RATE, INCREASE])),
            // min_errors
            ("4% but only 4 errors", (1000, 0, 20), (100, 4, 20), Expect::Pass),
            ("5% with 5 errors", (1000, 0, 20), (100, 5, 20), Expect::Fail(&[RATE, INCREASE])),
            // absolute rule at and over the limit (stable alike: relative passes)
            ("rate exactly 2%", (1000, 20, 20), (1000, 20, 20), Expect::Pass),
            ("rate 2.1%", (1000, 20, 20), (1000, 21, 20), Expect::Fail(&[RATE])),
            // relative rule at and over the limit
            ("increase exactly 1 point", (1000, 5, 20), (1000, 15, 20), Expect::Pass),
            ("increase exactly 1 point, other counts", (4000, 8, 20), (1000, 12, 20), Expect::Pass),
            ("increase 1.1 points", (1000, 5, 20), (1000, 16, 20), Expect::Fail(&[INCREASE])),
            // relative vs absolute
            ("3% vs 2.5%: absolute only", (1000, 25, 20), (1000, 30, 20), Expect::Fail(&[RATE])),
            ("1.5% vs 0.1%: relative only", (1000, 1, 20), (1000, 15, 20), Expect::Fail(&[INCREASE])),
            ("0.5% vs 0.4%", (9000, 36, 20), (1000, 5, 20), Expect::Pass),
            // latency ratio, with its floor
            ("p99 exactly 2x", (1000, 0, 100), (1000, 0, 200), Expect::Pass),
            ("p99 3x", (1000, 0, 100), (1000, 0, 300), Expect::Fail(&[LATENCY])),
            ("p99 4.9x under the floor", (1000, 0, 10), (1000, 0, 49), Expect::Pass),
            ("p99 5x at the floor", (1000, 0, 10), (1000, 0, 50), Expect::Fail(&[LATENCY])),
            ("faster canary", (1000, 0, 300), (1000, 0, 20), Expect::Pass),
            ("everything", (1000, 0, 100), (1000, 100, 500), Expect::Fail(&[RATE, INCREASE, LATENCY])),
            // no (or too little) stable traffic: relative rules skipped
            ("stable idle, canary 1.5% and slow", (0, 0, 0), (1000, 15, 900), Expect::Pass),
            ("stable idle, canary 3%", (0, 0, 0), (1000, 30, 900), Expect::Fail(&[RATE])),
            ("stable below min_requests", (49, 0, 10), (1000, 15, 900), Expect::Pass),
        ];
        let rules = Rules::default();
        for (name, s, c, expect) in rows {
            let stable = win(s.0, s.1, s.2);
            let canary = win(c.0, c.1, c.2);
            let got = check(&rules, &stable, &canary);
            match (expect, &got) {
                (Expect::Pass, Check::Pass) => {}
                (Expect::NotEnough, Check::NotEnoughData { requests, needed }) => {
                    assert_eq!((*requests, *needed), (c.0, rules.min_requests), "{name}");
                }
                (Expect::Fail(want), Check::Fail(violations)) => {
                    let names: Vec<_> = violations.iter().map(Violation::rule).collect();
                    assert_eq!(&names, want, "{name}");
                }
                (expect, got) => panic!("{name}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn violations_carry_the_numbers() {
        let rules = Rules::default();
        let got = check(&rules, &win(1000, 1, 100), &win(2400, 120, 300));
        assert_eq!(
            got,
            Check::Fail(vec![
                Violation::ErrorRate {
                    canary: 0.05,
                    limit: 0.02,
                    errors: 120,
                    requests: 2400,
                },
                Violation::ErrorRateIncrease {
                    canary: 0.05,
                    stable: 0.001,
                    limit: 0.01,
                    canary_errors: 120,
                    canary_requests: 2400,
                    stable_errors: 1,
                    stable_requests: 1000,
                },
                Violation::LatencyRatio {
                    canary_p99: ms(300),
                    stable_p99: ms(100),
                    limit: 2.0,
                },
            ])
        );
        assert_eq!(got.violations().len(), 3);
        assert!(!got.is_pass());
    }

    #[test]
    fn canary_without_latency_samples_is_judged_on_errors_only() {
        let canary = WindowStats {
            requests: 1000,
            errors: 0,
            latency: LatencyHistogram::new(),
        };
        assert_eq!(
            check(&Rules::default(), &win(1000, 0, 1), &canary),
            Check::Pass
        );
    }

    #[test]
    fn inconsistent_or_degenerate_input_does_not_panic() {
        let weird = WindowStats {
            requests: 10,
            errors: 1000,
            latency: LatencyHistogram::new(),
        };
        assert_eq!(weird.error_rate(), Some(1.0));
        let zero_latency = win(1000, 0, 0);
        assert_eq!(zero_latency.p99(), Some(Duration::ZERO));
        let rules = Rules {
            min_requests: 0,
            min_errors: 0,
            max_error_rate: f64::NAN,
            max_error_rate_increase: f64::NAN,
            ..Rules::default()
        };
        // Nothing to divide by, NaN limits: no panic, NaN never fires.
        assert_eq!(
            check(&rules, &WindowStats::new(), &WindowStats::new()),
            Check::Pass
        );
        assert_eq!(check(&rules, &weird, &weird), Check::Pass);
        // A stable p99 of 0: the canary fails (when above the floor) and the
        // message is still finite.
        let got = check(&Rules::default(), &zero_latency, &win(1000, 0, 60));
        let [violation] = got.violations() else {
            panic!("{got:?}")
        };
        assert_eq!(
            violation.to_string(),
            "p99 latency 60ms is 60000.0x stable's 0ms > limit 2.0x"
        );
    }

    #[test]
    fn judge_tolerates_one_failure() {
        let rules = Rules {
            failures_tolerated: 1,
            ..Rules::default()
        };
        let stable = win(9000, 0, 20);
        let bad = win(1000, 50, 20);
        let good = win(1000, 0, 20);

        // fail, pass, fail: the pass resets the count.
        let mut judge = Judge::new(rules.clone());
        for canary in [&bad, &good, &bad] {
            let verdict = judge.observe(&stable, canary);
            assert!(!verdict.is_rollback(), "{verdict:?}");
        }
        assert_eq!(judge.failed_checks(), 1);

        // fail, fail: rolls back on the second.
        let mut judge = Judge::new(rules.clone());
        let first = judge.observe(&stable, &bad);
        assert!(
            matches!(&first, Verdict::Continue { check: Check::Fail(v) } if v.len() == 2),
            "{first:?}"
        );
        let second = judge.observe(&stable, &bad);
        let Verdict::Rollback {
            violations,
            failed_checks,
        } = second
        else {
            panic!("{second:?}")
        };
        assert_eq!(failed_checks, 2);
        assert_eq!(violations.len(), 2);
    }

    #[test]
    fn judge_not_enough_data_neither_resets_nor_counts() {
        let stable = win(9000, 0, 20);
        let bad = win(1000, 50, 20);
        let few = win(10, 10, 20);
        let mut judge = Judge::new(Rules::default());
        assert!(!judge.observe(&stable, &bad).is_rollback());
        for _ in 0..5 {
            let verdict = judge.observe(&stable, &few);
            assert!(
                matches!(
                    verdict,
                    Verdict::Continue {
                        check: Check::NotEnoughData {
                            requests: 10,
                            needed: 50
                        }
                    }
                ),
                "{verdict:?}"
            );
            assert_eq!(judge.failed_checks(), 1);
        }
        assert!(judge.observe(&stable, &bad).is_rollback());
    }

    #[test]
    fn judge_with_no_tolerance_rolls_back_at_once() {
        let mut judge = Judge::new(Rules {
            failures_tolerated: 0,
            ..Rules::default()
        });
        let verdict = judge.observe(&win(9000, 0, 20), &win(1000, 50, 20));
        assert!(
            matches!(
                verdict,
                Verdict::Rollback {
                    failed_checks: 1,
                    ..
                }
            ),
            "{verdict:?}"
        );
    }

    #[test]
    fn defaults_catch_a_5_percent_failure() {
        let rules = Rules::default();
        assert_eq!(rules.validate(), Ok(()));
        let stable = win(9000, 0, 20);
        let canary = win(1000, 50, 20);
        let got = check(&rules, &stable, &canary);
        let names: Vec<_> = got.violations().iter().map(Violation::rule).collect();
        assert_eq!(names, [RATE, INCREASE]);

        let mut judge = Judge::new(rules);
        assert!(!judge.observe(&stable, &canary).is_rollback());
        assert!(judge.observe(&stable, &canary).is_rollback());
    }

    #[test]
    fn defaults_tolerate_noise() {
        let mut judge = Judge::new(Rules::default());
        // 0.5% vs 0.4%, with a slightly slower canary.
        let stable = win(9000, 36, 80);
        let canary = win(1000, 5, 120);
        for _ in 0..100 {
            assert_eq!(
                judge.observe(&stable, &canary),
                Verdict::Continue { check: Check::Pass }
            );
        }
        // 3 errors in the first 100 canary requests (3%) is not enough
        // evidence yet.
        assert_eq!(
            check(&Rules::default(), &win(900, 0, 20), &win(100, 3, 20)),
            Check::Pass
        );
    }

    #[test]
    fn violation_display() {
        let cases = [
            (
                Violation::ErrorRate {
                    canary: 0.05,
                    limit: 0.02,
                    errors: 120,
                    requests: 2400,
                },
                "error rate 5.0% > limit 2.0% (120 of 2400 requests)",
            ),
            (
                // Just over the limit: enough decimals to tell them apart.
                Violation::ErrorRate {
                    canary: 0.0201,
                    limit: 0.02,
                    errors: 201,
                    requests: 10000,
                },
                "error rate 2.01% > limit 2.00% (201 of 10000 requests)",
            ),
            (
                Violation::ErrorRateIncrease {
                    canary: 0.015,
                    stable: 0.001,
                    limit: 0.01,
                    canary_errors: 15,
                    canary_requests: 1000,
                    stable_errors: 1,
                    stable_requests: 1000,
                },
                "error rate 1.5% exceeds stable's 0.1% by 1.4 points > limit 1.0 points \
                 (15 of 1000 requests vs 1 of 1000)",
            ),
            (
                Violation::LatencyRatio {
                    canary_p99: ms(300),
                    stable_p99: ms(100),
                    limit: 2.0,
                },
                "p99 latency 300ms is 3.0x stable's 100ms > limit 2.0x",
            ),
            (
                Violation::LatencyRatio {
                    canary_p99: Duration::from_micros(2_500_000),
                    stable_p99: Duration::from_micros(1_500),
                    limit: 2.0,
                },
                "p99 latency 2.5s is 1666.7x stable's 1.5ms > limit 2.0x",
            ),
        ];
        for (violation, text) in cases {
            assert_eq!(violation.to_string(), text);
        }
    }

    #[test]
    fn check_and_verdict_display() {
        assert_eq!(Check::Pass.to_string(), "pass");
        assert_eq!(
            Check::NotEnoughData {
                requests: 12,
                needed: 100
            }
            .to_string(),
            "not enough data (12 of 100 requests)"
        );
        let v = Violation::LatencyRatio {
            canary_p99: ms(300),
            stable_p99: ms(100),
            limit: 2.0,
        };
        assert_eq!(
            Check::Fail(vec![v.clone(), v.clone()]).to_string(),
            "fail: p99 latency 300ms is 3.0x stable's 100ms > limit 2.0x; \
             p99 latency 300ms is 3.0x stable's 100ms > limit 2.0x"
        );
        assert_eq!(
            Verdict::Rollback {
                violations: vec![v],
                failed_checks: 2
            }
            .to_string(),
            "roll back after 2 failed checks: p99 latency 300ms is 3.0x stable's 100ms > limit 2.0x"
        );
        assert_eq!(
            Verdict::Continue { check: Check::Pass }.to_string(),
            "continue (pass)"
        );
    }

    #[test]
    fn serialization() {
        let verdict = Verdict::Rollback {
            violations: vec![
                Violation::ErrorRate {
                    canary: 0.05,
                    limit: 0.02,
                    errors: 50,
                    requests: 1000,
                },
                Violation::LatencyRatio {
                    canary_p99: ms(300),
                    stable_p99: ms(100),
                    limit: 2.0,
                },
            ],
            failed_checks: 2,
        };
        let json = serde_json::to_value(&verdict).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "verdict": "rollback",
                "violations": [
                    {"rule": "error_rate", "canary": 0.05, "limit": 0.02, "errors": 50, "requests": 1000},
                    {"rule": "latency_ratio", "canary_p99": "300ms", "stable_p99": "100ms", "limit": 2.0},
                ],
                "failed_checks": 2,
            })
        );
        let back: Verdict = serde_json::from_value(json).unwrap();
        assert_eq!(back, verdict);

        for check in [
            Check::Pass,
            Check::NotEnoughData {
                requests: 1,
                needed: 2,
            },
            Check::Fail(verdict_violations(&verdict)),
        ] {
            let json = serde_json::to_string(&Verdict::Continue {
                check: check.clone(),
            })
            .unwrap();
            let back: Verdict = serde_json::from_str(&json).unwrap();
            assert_eq!(back, Verdict::Continue { check });
        }
        assert_eq!(
            serde_json::to_value(Check::NotEnoughData {
                requests: 1,
                needed: 2
            })
            .unwrap(),
            serde_json::json!({"result": "not_enough_data", "details": {"requests": 1, "needed": 2}})
        );
    }

    fn verdict_violations(verdict: &Verdict) -> Vec<Violation> {
        match verdict {
            Verdict::Rollback { violations, .. } => violations.clone(),
            Verdict::Continue { check } => check.violations().to_vec(),
        }
    }

    #[test]
    fn rules_serde() {
        let rules = Rules::default();
        let json = serde_json::to_value(&rules).unwrap();
        assert_eq!(json["interval"], "1s");
        assert_eq!(json["p99_floor"], "50ms");
        assert_eq!(serde_json::from_value::<Rules>(json).unwrap(), rules);

        let partial: Rules =
            serde_json::from_str(r#"{"max_error_rate": 0.05, "interval": "2s"}"#).unwrap();
        assert_eq!(
            partial,
            Rules {
                max_error_rate: 0.05,
                interval: Duration::from_secs(2),
                ..Rules::default()
            }
        );
        assert!(serde_json::from_str::<Rules>(r#"{"interval": "soon"}"#).is_err());
    }

    #[test]
    fn rules_validate() {
        let bad = [
            Rules {
                max_error_rate: 1.5,
                ..Rules::default()
            },
            Rules {
                max_error_rate_increase: f64::NAN,
                ..Rules::default()
            },
            Rules {
                max_p99_ratio: 0.0,
                ..Rules::default()
            },
            Rules {
                interval: Duration::ZERO,
                ..Rules::default()
            },
        ];
        let fields: Vec<_> = bad
            .iter()
            .map(|r| r.validate().map_err(|e| e.field))
            .collect();
        assert_eq!(
            fields,
            [
                Err("max_error_rate"),
                Err("max_error_rate_increase"),
                Err("max_p99_ratio"),
                Err("interval")
            ]
        );
        let err = bad[0].validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid canary rule `max_error_rate`: 1.5 is not a fraction between 0 and 1"
        );
    }

    #[test]
    fn sliding_window_feeds_the_judge() {
        let mut stable = SlidingWindow::new(Duration::from_secs(1), 30);
        let mut canary = SlidingWindow::new(Duration::from_secs(1), 30);
        let mut judge = Judge::new(Rules::default());
        let mut rolled_back_at = None;
        // 100 rps, 10% to the canary, which fails every 10th request.
        for tick in 0..60u64 {
            for i in 0..100u64 {
                let now = Duration::from_millis(tick * 1000 + i * 10);
                if i % 10 == 0 {
                    let status = if (tick * 10 + i / 10) % 10 == 0 {
                        500
                    } else {
                        200
                    };
                    canary.record(now, status, ms(20));
                } else {
                    stable.record(now, 200, ms(20));
                }
            }
            let now = Duration::from_secs(tick + 1);
            let verdict = judge.observe(&stable.snapshot(now), &canary.snapshot(now));
            if verdict.is_rollback() {
                rolled_back_at = Some(tick);
                break;
            }
        }
        // 10 canary requests a second: first judged (and failed) after the
        // 5th second (tick 4, 50 requests); that failure is tolerated, the
        // next one rolls back.
        assert_eq!(rolled_back_at, Some(5));
    }
}
