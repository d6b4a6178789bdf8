//! Shared by the bench binaries: a latency recorder that prints median and p99.
#![allow(dead_code)]

use std::time::Duration;

use hdrhistogram::Histogram;

/// Latencies, recorded in nanoseconds (3 significant digits).
pub struct Latencies {
    histogram: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Latencies {
            histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds"),
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.histogram.saturating_record(d.as_nanos().max(1) as u64);
    }

    pub fn median_ns(&self) -> u64 {
        self.histogram.value_at_quantile(0.5)
    }

    pub fn p99_ns(&self) -> u64 {
        self.histogram.value_at_quantile(0.99)
    }

    pub fn median_us(&self) -> u64 {
        self.median_ns() / 1000
    }

    pub fn p99_us(&self) -> u64 {
        self.p99_ns() / 1000
    }

    pub fn summary(&self) -> String {
        format!(
            "n={} p50={} µs p99={} µs",
            self.histogram.len(),
            self.median_us(),
            self.p99_us()
        )
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
