//! The cold-start histogram: a Pool's measured wakes ([`WakeTimes`], kept by the controller
//! and carried in its status) exposed as a Prometheus histogram in seconds. The counts are
//! already bucketed when a scrape renders them, so this metric only encodes them.

use std::sync::Mutex;

use llorch_manifests::status::{WAKE_BUCKETS_MS, WakeTimes};
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// One Pool's wakes, set once per scrape.
#[derive(Debug, Default)]
pub(super) struct WakeHistogram(Mutex<WakeTimes>);

impl WakeHistogram {
    /// Takes the Pool's counts.
    pub(super) fn set(&self, times: &WakeTimes) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = times.clone();
    }
}

impl TypedMetric for WakeHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for WakeHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let times = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let count = |i: usize| times.buckets.get(i).copied().unwrap_or(0);
        let mut buckets: Vec<(f64, u64)> = WAKE_BUCKETS_MS
            .iter()
            .enumerate()
            .map(|(i, ms)| (*ms as f64 / 1000.0, count(i)))
            .collect();
        buckets.push((f64::INFINITY, count(WAKE_BUCKETS_MS.len())));
        encoder.encode_histogram::<NoLabelSet>(times.sum_ms as f64 / 1000.0, times.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}
