//! The pure decisions of ordering and renewal: when a certificate is due,
//! how long to wait after failed orders, and whether to order now. Times
//! are Unix seconds; nothing here reads a clock or the disk.

use std::time::Duration;

/// The first wait after a failed order.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(60);
/// The longest wait between failed orders.
pub const BACKOFF_MAX: Duration = Duration::from_secs(6 * 60 * 60);

/// Whether a certificate expiring at `not_after` is due for renewal at
/// `now`: `not_after - now <= renew_before` (an expired one is due).
pub fn renewal_due(not_after: i64, now: i64, renew_before: Duration) -> bool {
    let before = i64::try_from(renew_before.as_secs()).unwrap_or(i64::MAX);
    not_after.saturating_sub(now) <= before
}

/// How long to wait after `failures` failed orders in a row: nothing after
/// none, then 1 min doubling each time, at most 6 h.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doublings = (failures - 1).min(20);
    let wait = BACKOFF_FIRST.saturating_mul(1 << doublings);
    wait.min(BACKOFF_MAX)
}

/// When to try again after the `failures`-th failed order ended at `now`.
pub fn next_attempt(now: i64, failures: u32) -> i64 {
    let wait = i64::try_from(backoff(failures).as_secs()).unwrap_or(i64::MAX);
    now.saturating_add(wait)
}

/// Whether to start an order for an ACME host now.
///
/// - after failed orders (`failures > 0`): once the backoff has passed
///   (`now >= next_attempt`), whatever the certificate;
/// - otherwise: when there is no usable certificate (`not_after` is
///   `None`) or it is due for renewal.
pub fn should_order(
    now: i64,
    not_after: Option<i64>,
    failures: u32,
    next_attempt: Option<i64>,
    renew_before: Duration,
) -> bool {
    if failures > 0 {
        return next_attempt.is_none_or(|at| now >= at);
    }
    match not_after {
        None => true,
        Some(not_after) => renewal_due(not_after, now, renew_before),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60;
    const THIRTY_DAYS: Duration = Duration::from_secs(30 * 24 * 60 * 60);

    #[test]
    fn renewal_is_due_within_renew_before_of_expiry() {
        let now = 1_000 * DAY;
        let cases = [
            (now + 90 * DAY, false),
            (now + 30 * DAY + 1, false),
            (now + 30 * DAY, true),
            (now + 29 * DAY, true),
            (now, true),
            (now - DAY, true),
            (i64::MIN, true),
            (i64::MAX, false),
        ];
        for (not_after, want) in cases {
            assert_eq!(
                renewal_due(not_after, now, THIRTY_DAYS),
                want,
                "not_after = now {:+}",
                not_after.saturating_sub(now)
            );
        }
        assert!(!renewal_due(i64::MAX, i64::MIN, Duration::ZERO));
        assert!(renewal_due(i64::MAX, i64::MIN, Duration::MAX));
        assert!(renewal_due(i64::MIN, i64::MAX, Duration::ZERO));
    }

    #[test]
    fn backoff_doubles_from_a_minute_up_to_six_hours() {
        let cases = [
            (0, 0),
            (1, 60),
            (2, 120),
            (3, 240),
            (4, 480),
            (5, 960),
            (6, 1_920),
            (7, 3_840),
            (8, 7_680),
            (9, 15_360),
            (10, 21_600),
            (11, 21_600),
            (30, 21_600),
            (u32::MAX, 21_600),
        ];
        for (failures, secs) in cases {
            assert_eq!(backoff(failures), Duration::from_secs(secs), "{failures}");
        }
    }

    #[test]
    fn next_attempt_adds_the_backoff_without_overflow() {
        assert_eq!(next_attempt(1_000, 1), 1_060);
        assert_eq!(next_attempt(1_000, 3), 1_240);
        assert_eq!(next_attempt(i64::MAX, 5), i64::MAX);
    }

    #[test]
    fn should_order_respects_backoff_first_then_renewal() {
        let now = 1_000 * DAY;
        let fresh = Some(now + 60 * DAY);
        let due = Some(now + 10 * DAY);
        // (not_after, failures, next_attempt, want)
        let cases = [
            (None, 0, None, true),
            (fresh, 0, None, false),
            (due, 0, None, true),
            (None, 1, Some(now + 1), false),
            (None, 1, Some(now), true),
            (None, 2, Some(now - 1), true),
            (due, 3, Some(now + 100), false),
            (fresh, 1, Some(now - 1), true),
            (fresh, 1, None, true),
        ];
        for (not_after, failures, next, want) in cases {
            assert_eq!(
                should_order(now, not_after, failures, next, THIRTY_DAYS),
                want,
                "not_after {not_after:?}, failures {failures}, next {next:?}"
            );
        }
    }
}
