//! Latency histograms (HDR, microsecond resolution, 3 significant digits).

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Longest latency recorded as itself; anything longer is recorded as this.
const LATENCY_MAX_MICROS: u64 = 300_000_000;

/// A latency distribution.
#[derive(Debug, Clone)]
pub struct Latency {
    histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty distribution.
    pub fn new() -> Latency {
        Latency { histogram: Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3).expect("valid histogram bounds") }
    }

    /// Records one latency (at least 1 µs, at most the bound).
    pub fn record(&mut self, latency: Duration) {
        let micros = (latency.as_micros().min(u128::from(LATENCY_MAX_MICROS)) as u64).max(1);
        self.histogram.record(micros).expect("a value within the histogram's bounds");
    }

    /// Adds another distribution's values.
    pub fn merge(&mut self, other: &Latency) {
        self.histogram.add(&other.histogram).expect("histograms with the same bounds");
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The percentiles a report shows, in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            p50: ms(self.histogram.value_at_quantile(0.5)),
            p99: ms(self.histogram.value_at_quantile(0.99)),
            p99_9: ms(self.histogram.value_at_quantile(0.999)),
            max: ms(self.histogram.max()),
        }
    }
}

/// Latency percentiles in milliseconds (all 0 when nothing was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_in_milliseconds() {
        let mut latency = Latency::new();
        for micros in 1..=1000 {
            latency.record(Duration::from_micros(micros));
        }
        let summary = latency.summary();
        assert!((summary.p50 - 0.5).abs() < 0.01, "{summary:?}");
        assert!((summary.max - 1.0).abs() < 0.01, "{summary:?}");
        let mut other = Latency::new();
        other.record(Duration::from_secs(1000));
        latency.merge(&other);
        assert_eq!(latency.count(), 1001);
        assert!((latency.summary().max - 300_000.0).abs() / 300_000.0 < 0.001);
    }
}
