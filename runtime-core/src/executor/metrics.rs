//! Per-node metrics: how many items a node processed and emitted, its errors, and a
//! latency histogram of its `process` calls.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Live counters of one node in one session.
#[derive(Debug)]
pub(crate) struct NodeMetrics {
    node_id: String,
    node_type: String,
    processed: AtomicU64,
    emitted: AtomicU64,
    errors: AtomicU64,
    latency_ns: Mutex<Histogram<u64>>,
}

impl NodeMetrics {
    pub(crate) fn new(node_id: &str, node_type: &str) -> Self {
        // 1 ns .. 1 hour, 2 significant digits: a few KiB per node.
        let histogram = Histogram::new_with_bounds(1, 3_600_000_000_000, 2)
            .expect("constant histogram bounds are valid");
        Self {
            node_id: node_id.to_owned(),
            node_type: node_type.to_owned(),
            processed: AtomicU64::new(0),
            emitted: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency_ns: Mutex::new(histogram),
        }
    }

    pub(crate) fn record(&self, latency_ns: u64, emitted: usize) {
        self.processed.fetch_add(1, Ordering::Relaxed);
        self.emitted.fetch_add(emitted as u64, Ordering::Relaxed);
        if let Ok(mut h) = self.latency_ns.lock() {
            h.saturating_record(latency_ns.max(1));
        }
    }

    pub(crate) fn record_flush(&self, emitted: usize) {
        self.emitted.fetch_add(emitted as u64, Ordering::Relaxed);
    }

    pub(crate) fn record_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> NodeMetricsSnapshot {
        let (p50, p99, max, mean) = match self.latency_ns.lock() {
            Ok(h) if !h.is_empty() => (
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.max(),
                h.mean(),
            ),
            _ => (0, 0, 0, 0.0),
        };
        NodeMetricsSnapshot {
            node_id: self.node_id.clone(),
            node_type: self.node_type.clone(),
            processed: self.processed.load(Ordering::Relaxed),
            emitted: self.emitted.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency_p50_ns: p50,
            latency_p99_ns: p99,
            latency_max_ns: max,
            latency_mean_ns: mean,
        }
    }
}

/// A point-in-time copy of one node's metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NodeMetricsSnapshot {
    /// The node's id.
    pub node_id: String,
    /// The node's type.
    pub node_type: String,
    /// Inputs processed.
    pub processed: u64,
    /// Items emitted (including at flush).
    pub emitted: u64,
    /// Failed `process`/`flush` calls.
    pub errors: u64,
    /// Median `process` latency.
    pub latency_p50_ns: u64,
    /// 99th percentile `process` latency.
    pub latency_p99_ns: u64,
    /// Slowest `process` call.
    pub latency_max_ns: u64,
    /// Mean `process` latency.
    pub latency_mean_ns: f64,
}
