//! The throttle on failed authentications, per peer address.
//!
//! Each address may fail `limit` times within `window`; after that it is
//! refused (429, with the time until its oldest failure leaves the window)
//! without its token being looked at, so guessing tokens costs a window per
//! `limit` guesses. A success does not clear the count (a guesser holding
//! one valid read token gains nothing). Time is passed in, so the rules are
//! tested without sleeping; the table is bounded, forgetting the addresses
//! whose failures are all out of the window first.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures remembered at the most, over all addresses.
const MAX_PEERS: usize = 10_000;

#[derive(Debug)]
pub struct Throttle {
    limit: usize,
    window: Duration,
    failures: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Throttle {
    pub fn new(limit: usize, window: Duration) -> Throttle {
        Throttle {
            limit: limit.max(1),
            window,
            failures: HashMap::new(),
        }
    }

    /// `Err(retry_after)` when `peer` has failed too often lately.
    pub fn check(&mut self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(times) = self.failures.get_mut(&peer) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            times.pop_front();
        }
        if times.len() < self.limit {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err(self
            .window
            .saturating_sub(now.saturating_duration_since(oldest))
            .max(Duration::from_secs(1)))
    }

    /// Records a failed authentication of `peer`.
    pub fn failed(&mut self, peer: IpAddr, now: Instant) {
        if self.failures.len() >= MAX_PEERS && !self.failures.contains_key(&peer) {
            let window = self.window;
            self.failures.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < window)
            });
            if self.failures.len() >= MAX_PEERS {
                // Still full of live entries: forget the quietest one.
                if let Some(quiet) = self
                    .failures
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(ip, _)| *ip)
                {
                    self.failures.remove(&quiet);
                }
            }
        }
        let times = self.failures.entry(peer).or_default();
        times.push_back(now);
        while times.len() > self.limit {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_refused_after_its_limit_until_the_window_moves_on() {
        let mut t = Throttle::new(3, Duration::from_secs(60));
        let a: IpAddr = "203.0.113.7".parse().expect("ip");
        let b: IpAddr = "203.0.113.8".parse().expect("ip");
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(t.check(a, t0 + Duration::from_secs(i)).is_ok());
            t.failed(a, t0 + Duration::from_secs(i));
        }
        let wait = t.check(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        // Another peer is not affected.
        assert!(t.check(b, t0 + Duration::from_secs(10)).is_ok());
        // Once the first failure is a window old, one more try is allowed.
        assert!(t.check(a, t0 + Duration::from_secs(60)).is_ok());
        t.failed(a, t0 + Duration::from_secs(60));
        assert!(t.check(a, t0 + Duration::from_millis(60_500)).is_err());
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut t = Throttle::new(1, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_PEERS as u32 + 50) {
            let ip = IpAddr::from(i.to_be_bytes());
            t.failed(ip, t0);
        }
        assert!(t.failures.len() <= MAX_PEERS);
    }
}
