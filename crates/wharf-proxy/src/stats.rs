//! Recent traffic of a release: requests, 5xx responses and latency.
//!
//! * [`LatencyHistogram`]: fixed buckets from 1ms to 10s, quantiles as
//!   bucket upper bounds.
//! * [`WindowStats`]: what one release did during some span of time.
//! * [`SlidingWindow`]: a ring of short buckets of [`WindowStats`], so the
//!   stats of "the last minute" can be read at any time without keeping
//!   every sample.
//!
//! The proxy keeps one [`SlidingWindow`] per (app, release), fed with every
//! proxied response, and hands snapshots out through
//! [`Proxy::release_stats`](crate::Proxy::release_stats); the deploy engine
//! compares them to judge a canary (`wharf_deploy::analysis`).
//!
//! The types themselves read no clock: time is passed in as a [`Duration`]
//! since some fixed origin, so they can be tested with synthetic time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A latency histogram with fixed buckets from 1ms to 10s (about ×1.5 per
/// step), plus an overflow bucket for anything slower.
///
/// Quantiles are reported as the **upper bound of the bucket** holding the
/// requested sample, capped at the largest sample recorded: never below the
/// true quantile and at most one bucket (≤ ×1.67) above it. Samples above
/// 10s land in the overflow bucket, whose quantile is the largest sample.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Per-bucket counts; the last one is the overflow bucket.
    counts: [u64; LatencyHistogram::BUCKETS],
    /// Number of samples (sum of `counts`).
    total: u64,
    /// Largest sample, in microseconds.
    max_us: u64,
}

impl LatencyHistogram {
    /// Inclusive upper bounds of the buckets, in microseconds. A sample `d`
    /// goes into the first bucket whose bound is `>= d`.
    pub const BUCKET_BOUNDS_US: [u64; 25] = [
        1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000, 30_000, 50_000, 75_000,
        100_000, 150_000, 200_000, 300_000, 500_000, 750_000, 1_000_000, 1_500_000, 2_000_000,
        3_000_000, 5_000_000, 7_500_000, 10_000_000,
    ];

    /// Number of buckets, the overflow bucket included.
    pub const BUCKETS: usize = Self::BUCKET_BOUNDS_US.len() + 1;

    /// An empty histogram.
    pub fn new() -> LatencyHistogram {
        LatencyHistogram::default()
    }

    /// Adds one sample.
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let index = Self::BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        if let Some(count) = self.counts.get_mut(index) {
            *count = count.saturating_add(1);
        }
        self.total = self.total.saturating_add(1);
        self.max_us = self.max_us.max(us);
    }

    /// Adds every sample of `other` to `self`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.total = self.total.saturating_add(other.total);
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Number of samples recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest sample, `None` when empty.
    pub fn max(&self) -> Option<Duration> {
        (self.total > 0).then(|| Duration::from_micros(self.max_us))
    }

    /// The `q`-quantile (`0.5` for the median, `0.99` for p99): the upper
    /// bound of the bucket holding the `ceil(q × count)`-th smallest sample,
    /// capped at the largest sample (see the type's docs). `q` is clamped to
    /// `[0, 1]`; `None` when the histogram is empty or `q` is NaN.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 || q.is_nan() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        // Float to int `as` saturates; the clamp keeps the rank in 1..=total.
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*count);
            if seen >= rank {
                let bound = Self::BUCKET_BOUNDS_US
                    .get(index)
                    .copied()
                    .unwrap_or(u64::MAX);
                return Some(Duration::from_micros(bound.min(self.max_us)));
            }
        }
        // Unreachable while `total` is the sum of `counts`; the largest
        // sample is still a sound answer.
        Some(Duration::from_micros(self.max_us))
    }
}

/// What one release did during one window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowStats {
    /// Requests answered (whatever the status).
    pub requests: u64,
    /// Of those, responses with a 5xx status.
    pub errors: u64,
    /// Latency of every request counted in `requests`.
    pub latency: LatencyHistogram,
}

impl WindowStats {
    /// Empty stats.
    pub fn new() -> WindowStats {
        WindowStats::default()
    }

    /// Counts one request with its response `status` and `latency`; 500–599
    /// counts as an error.
    pub fn record(&mut self, status: u16, latency: Duration) {
        self.requests = self.requests.saturating_add(1);
        if (500..=599).contains(&status) {
            self.errors = self.errors.saturating_add(1);
        }
        self.latency.record(latency);
    }

    /// Adds `other`'s counts to `self`.
    pub fn merge(&mut self, other: &WindowStats) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.latency.merge(&other.latency);
    }

    /// `errors / requests` (at most 1), `None` when there were no requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors.min(self.requests) as f64 / self.requests as f64)
    }

    /// Median latency (see [`LatencyHistogram::quantile`]).
    pub fn p50(&self) -> Option<Duration> {
        self.latency.quantile(0.5)
    }

    /// 99th percentile latency (see [`LatencyHistogram::quantile`]).
    pub fn p99(&self) -> Option<Duration> {
        self.latency.quantile(0.99)
    }
}

/// One bucket of a [`SlidingWindow`].
#[derive(Debug, Clone, Default)]
struct Slot {
    /// `now / bucket` of the samples it holds; `None` when never used.
    epoch: Option<u64>,
    stats: WindowStats,
}

/// A release's recent traffic: a ring of `buckets` buckets of `bucket`
/// length each, fed by the proxy.
///
/// Time is a [`Duration`] since any fixed origin (e.g. `Instant::elapsed`
/// of an `Instant` taken at startup) and is passed in. The window at `now`
/// is the bucket holding `now` plus the `buckets - 1` before it, so it
/// spans between `(buckets - 1) × bucket` and `buckets × bucket` of time.
/// Older buckets are ignored by [`snapshot`](SlidingWindow::snapshot) and
/// reused by [`record`](SlidingWindow::record).
#[derive(Debug, Clone)]
pub struct SlidingWindow {
    bucket: Duration,
    slots: Vec<Slot>,
}

impl SlidingWindow {
    /// A window of `buckets` buckets of `bucket` each (e.g. 1s × 60). A
    /// zero `bucket` is taken as 1ms and zero `buckets` as 1.
    pub fn new(bucket: Duration, buckets: usize) -> SlidingWindow {
        SlidingWindow {
            bucket: if bucket.is_zero() {
                Duration::from_millis(1)
            } else {
                bucket
            },
            slots: vec![Slot::default(); buckets.max(1)],
        }
    }

    /// Length of one bucket.
    pub fn bucket(&self) -> Duration {
        self.bucket
    }

    /// The span of time covered: `bucket × buckets`.
    pub fn window(&self) -> Duration {
        let n = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.bucket.saturating_mul(n)
    }

    fn epoch(&self, now: Duration) -> u64 {
        let bucket = self.bucket.as_nanos().max(1);
        u64::try_from(now.as_nanos() / bucket).unwrap_or(u64::MAX)
    }

    fn slots_len(&self) -> u64 {
        u64::try_from(self.slots.len()).unwrap_or(u64::MAX)
    }

    /// Counts a request answered at `now` with `status` after `latency`. A
    /// sample older than what its bucket already holds (its slot was reused
    /// by a later bucket) is dropped: it is out of the window anyway.
    pub fn record(&mut self, now: Duration, status: u16, latency: Duration) {
        let epoch = self.epoch(now);
        let index = usize::try_from(epoch % self.slots_len()).unwrap_or(0);
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        match slot.epoch {
            Some(e) if e == epoch => {}
            Some(e) if e > epoch => return,
            _ => {
                slot.epoch = Some(epoch);
                slot.stats = WindowStats::default();
            }
        }
        slot.stats.record(status, latency);
    }

    /// The merged stats of the buckets in the window at `now`. Buckets later
    /// than `now` are left out.
    pub fn snapshot(&self, now: Duration) -> WindowStats {
        self.merge_last(now, self.slots_len())
    }

    /// Like [`snapshot`](SlidingWindow::snapshot), over the last `span`
    /// only: the bucket holding `now` plus as many before it as it takes to
    /// cover `span` (`ceil(span / bucket)` buckets in all, at least one and
    /// at most the whole window).
    pub fn snapshot_last(&self, now: Duration, span: Duration) -> WindowStats {
        let wanted = span.as_nanos().div_ceil(self.bucket.as_nanos().max(1));
        let buckets = u64::try_from(wanted)
            .unwrap_or(u64::MAX)
            .clamp(1, self.slots_len());
        self.merge_last(now, buckets)
    }

    /// Merges the bucket holding `now` and the `buckets - 1` before it.
    fn merge_last(&self, now: Duration, buckets: u64) -> WindowStats {
        let current = self.epoch(now);
        let mut merged = WindowStats::default();
        for slot in &self.slots {
            if let Some(epoch) = slot.epoch
                && epoch <= current
                && current - epoch < buckets
            {
                merged.merge(&slot.stats);
            }
        }
        merged
    }
}

/// The proxy's live window of one (app, release): a [`SlidingWindow`] of
/// [`LiveWindow::BUCKETS`] buckets of [`LiveWindow::BUCKET`], shared by
/// every backend of that release (each holds an `Arc`, resolved once when
/// the backend is made), with time measured from the proxy's creation.
#[derive(Debug)]
pub(crate) struct LiveWindow {
    origin: Instant,
    window: Mutex<SlidingWindow>,
}

impl LiveWindow {
    pub(crate) const BUCKET: Duration = Duration::from_secs(1);
    pub(crate) const BUCKETS: usize = 120;

    fn new(origin: Instant) -> LiveWindow {
        LiveWindow {
            origin,
            window: Mutex::new(SlidingWindow::new(Self::BUCKET, Self::BUCKETS)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlidingWindow> {
        // A panic while holding the lock can't leave the window
        // inconsistent in a way that matters: keep using it.
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one response; the lock is held for the `record` call only.
    pub(crate) fn record(&self, status: u16, latency: Duration) {
        let now = self.origin.elapsed();
        self.lock().record(now, status, latency);
    }

    /// The stats of the last `span` (see [`SlidingWindow::snapshot_last`]).
    pub(crate) fn snapshot_last(&self, span: Duration) -> WindowStats {
        let now = self.origin.elapsed();
        self.lock().snapshot_last(now, span)
    }

    fn is_empty(&self) -> bool {
        let now = self.origin.elapsed();
        self.lock().snapshot(now).requests == 0
    }
}

/// Every [`LiveWindow`] of a proxy, by (app, release).
#[derive(Debug)]
pub(crate) struct LiveWindows {
    origin: Instant,
    windows: Mutex<HashMap<(String, u64), Arc<LiveWindow>>>,
}

impl LiveWindows {
    /// No windows yet; time starts now.
    pub(crate) fn new() -> LiveWindows {
        LiveWindows {
            origin: Instant::now(),
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(String, u64), Arc<LiveWindow>>> {
        self.windows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The window of (`app`, `release`), made if needed. Making one first
    /// forgets the windows no backend uses any more and that saw nothing
    /// during their whole span (they could only ever answer empty stats), so
    /// the map does not grow with every release ever deployed.
    pub(crate) fn get_or_create(&self, app: &str, release: u64) -> Arc<LiveWindow> {
        let mut windows = self.lock();
        let key = (app.to_owned(), release);
        if let Some(w) = windows.get(&key) {
            return w.clone();
        }
        windows.retain(|_, w| Arc::strong_count(w) > 1 || !w.is_empty());
        let w = Arc::new(LiveWindow::new(self.origin));
        windows.insert(key, w.clone());
        w
    }

    /// The stats of (`app`, `release`) over the last `span`; empty when the
    /// proxy knows nothing of that release.
    pub(crate) fn snapshot_last(&self, app: &str, release: u64, span: Duration) -> WindowStats {
        // Look up, then let go of the map before locking the window.
        let window = self.lock().get(&(app.to_owned(), release)).cloned();
        window.map_or_else(WindowStats::new, |w| w.snapshot_last(span))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
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

    #[test]
    fn histogram_quantiles() {
        let mut h = LatencyHistogram::new();
        assert_eq!(h.quantile(0.5), None);
        assert_eq!(h.max(), None);
        assert_eq!(h.count(), 0);

        for _ in 0..90 {
            h.record(ms(4)); // bucket (3ms, 5ms]
        }
        for _ in 0..10 {
            h.record(ms(180)); // bucket (150ms, 200ms]
        }
        assert_eq!(h.count(), 100);
        // Upper bound of the bucket...
        assert_eq!(h.quantile(0.5), Some(ms(5)));
        assert_eq!(h.quantile(0.9), Some(ms(5)));
        // ...capped at the largest sample.
        assert_eq!(h.quantile(0.91), Some(ms(180)));
        assert_eq!(h.quantile(0.99), Some(ms(180)));
        assert_eq!(h.quantile(0.0), Some(ms(5)));
        // Out-of-range and NaN q.
        assert_eq!(h.quantile(7.0), Some(ms(180)));
        assert_eq!(h.quantile(-1.0), Some(ms(5)));
        assert_eq!(h.quantile(f64::NAN), None);
        assert_eq!(h.max(), Some(ms(180)));

        // A bound is inclusive.
        let mut edge = LatencyHistogram::new();
        edge.record(ms(200));
        edge.record(Duration::from_micros(200_001));
        edge.record(ms(1000));
        assert_eq!(edge.quantile(0.3), Some(ms(200)));
        assert_eq!(edge.quantile(0.6), Some(ms(300)));

        // Overflow: the largest sample; absurd durations don't panic.
        let mut slow = LatencyHistogram::new();
        slow.record(Duration::from_secs(20));
        slow.record(Duration::from_secs(30));
        assert_eq!(slow.quantile(0.5), Some(Duration::from_secs(30)));
        slow.record(Duration::MAX);
        assert_eq!(slow.count(), 3);
        assert!(slow.quantile(1.0).is_some());

        // Merge.
        let mut merged = h.clone();
        merged.merge(&slow);
        assert_eq!(merged.count(), 103);
        assert_eq!(merged.quantile(0.5), Some(ms(5)));
        // No longer capped at 180ms: the largest sample is now `slow`'s.
        assert_eq!(merged.quantile(0.95), Some(ms(200)));
        assert_eq!(merged.max(), slow.max());
    }

    #[test]
    fn window_stats_record_and_merge() {
        let mut w = WindowStats::new();
        assert_eq!(w.error_rate(), None);
        assert_eq!(w.p50(), None);
        for status in [200, 404, 499, 500, 503, 599, 600] {
            w.record(status, ms(10));
        }
        assert_eq!((w.requests, w.errors), (7, 3));
        let mut total = w.clone();
        total.merge(&win(3, 0, 10));
        assert_eq!((total.requests, total.errors), (10, 3));
        assert_eq!(total.error_rate(), Some(0.3));
        assert_eq!(total.latency.count(), 10);
        assert_eq!(total.p50(), Some(ms(10)));
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn sliding_window_expiry_and_merging() {
        let mut w = SlidingWindow::new(Duration::from_secs(1), 10);
        assert_eq!(w.window(), Duration::from_secs(10));
        assert_eq!(w.bucket(), Duration::from_secs(1));
        assert_eq!(w.snapshot(secs(0.0)), WindowStats::new());

        w.record(secs(0.5), 200, ms(10));
        w.record(secs(0.7), 500, ms(10));
        w.record(secs(1.5), 200, ms(10));
        w.record(secs(9.9), 503, ms(300));

        // Buckets 0..=9 are all in the window at 9.9s.
        let s = w.snapshot(secs(9.9));
        assert_eq!((s.requests, s.errors), (4, 2));
        assert_eq!(s.p99(), Some(ms(300)));
        // At 10s bucket 0 has expired.
        let s = w.snapshot(secs(10.0));
        assert_eq!((s.requests, s.errors), (2, 1));
        // Buckets later than `now` are left out.
        let s = w.snapshot(secs(1.2));
        assert_eq!((s.requests, s.errors), (3, 1));

        // Bucket 10 reuses bucket 0's slot.
        w.record(secs(10.2), 200, ms(10));
        let s = w.snapshot(secs(10.5));
        assert_eq!((s.requests, s.errors), (3, 1));
        // A late sample for bucket 0 is dropped (its slot now holds bucket 10).
        w.record(secs(0.9), 500, ms(10));
        assert_eq!(w.snapshot(secs(10.5)), s);
        // A late sample still within its bucket's life counts.
        w.record(secs(1.9), 500, ms(10));
        let s = w.snapshot(secs(10.5));
        assert_eq!((s.requests, s.errors), (4, 2));

        // Long after: everything is stale.
        assert_eq!(w.snapshot(secs(100.0)), WindowStats::new());
        // ...and recording again starts afresh.
        w.record(secs(100.0), 200, ms(10));
        assert_eq!(w.snapshot(secs(100.0)).requests, 1);
    }

    #[test]
    fn sliding_window_snapshot_last() {
        let mut w = SlidingWindow::new(Duration::from_secs(1), 10);
        for s in 0..10u64 {
            w.record(
                Duration::from_secs(s),
                if s == 9 { 500 } else { 200 },
                ms(10),
            );
        }
        let now = secs(9.5);
        assert_eq!(w.snapshot_last(now, Duration::from_secs(1)).requests, 1);
        assert_eq!(w.snapshot_last(now, Duration::from_secs(1)).errors, 1);
        // Rounded up to whole buckets; zero is the current bucket.
        assert_eq!(w.snapshot_last(now, secs(2.5)).requests, 3);
        assert_eq!(w.snapshot_last(now, Duration::ZERO).requests, 1);
        // Capped at the window.
        assert_eq!(w.snapshot_last(now, Duration::MAX), w.snapshot(now));
        assert_eq!(w.snapshot_last(now, Duration::from_secs(10)).requests, 10);
        // Buckets later than `now` are left out here too.
        assert_eq!(
            w.snapshot_last(secs(4.0), Duration::from_secs(3)).requests,
            3
        );
    }

    #[test]
    fn live_windows_are_shared_and_pruned() {
        let live = LiveWindows::new();
        assert_eq!(
            live.snapshot_last("web", 1, Duration::from_secs(60)),
            WindowStats::new()
        );
        let a = live.get_or_create("web", 1);
        let b = live.get_or_create("web", 1);
        assert!(Arc::ptr_eq(&a, &b));
        a.record(200, ms(3));
        b.record(502, ms(4));
        let s = live.snapshot_last("web", 1, Duration::from_secs(60));
        assert_eq!((s.requests, s.errors, s.latency.count()), (2, 1, 2));
        assert_eq!(
            live.snapshot_last("web", 2, Duration::from_secs(60)),
            WindowStats::new()
        );
        assert_eq!(
            live.snapshot_last("api", 1, Duration::from_secs(60)),
            WindowStats::new()
        );

        // Unused and empty: forgotten when another window is made.
        drop(live.get_or_create("web", 2));
        assert_eq!(live.len(), 2);
        // Unused but with recent data: kept.
        drop((a, b));
        let _c = live.get_or_create("web", 3);
        assert_eq!(live.len(), 2);
        assert_eq!(
            live.snapshot_last("web", 1, Duration::from_secs(60))
                .requests,
            2
        );
    }

    #[test]
    fn sliding_window_degenerate_sizes() {
        let mut w = SlidingWindow::new(Duration::ZERO, 0);
        assert_eq!(w.window(), ms(1));
        w.record(Duration::ZERO, 200, Duration::ZERO);
        assert_eq!(w.snapshot(Duration::ZERO).requests, 1);
        w.record(Duration::MAX, 200, Duration::MAX);
        assert_eq!(w.snapshot(Duration::MAX).requests, 1);
        assert_eq!(w.snapshot(Duration::ZERO).requests, 0);
    }
}
