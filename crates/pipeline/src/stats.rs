//! The pipeline's own figures for `/metrics`: how long storage batches
//! take, what the spool holds, the alert counts and the exports.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::export::{AlertCounts, ExportStats};
use crate::spool::Spool;

/// Storage batch latency buckets, in seconds: a batch normally commits
/// in milliseconds; seconds mean a slow disk or database.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// A Prometheus histogram kept in atomics.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, text: &mut String, name: &str, help: &str) {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(text, "{name}_bucket{{le=\"{b}\"}} {cum}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            text,
            "{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {}\n{name}_count {count}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
}

/// Everything the pipeline adds to `/metrics`.
#[derive(Debug)]
pub struct PipelineStats {
    pub(crate) batch_latency: Arc<Histogram>,
    pub(crate) spool: Arc<Spool>,
    pub(crate) alerts: Arc<AlertCounts>,
    pub(crate) exports: Arc<ExportStats>,
}

impl PipelineStats {
    /// Appends the pipeline's metrics in the Prometheus text format.
    pub fn render(&self, text: &mut String) {
        self.batch_latency.render(
            text,
            "parapet_storage_batch_duration_seconds",
            "Time to store one batch of query events (one transaction).",
        );
        let _ = writeln!(
            text,
            "# HELP parapet_spool_bytes Bytes in the spool of batches not yet released (grows while the store is behind or down).\n\
             # TYPE parapet_spool_bytes gauge\nparapet_spool_bytes {}",
            self.spool.bytes()
        );
        self.spool.append_latency.render(
            text,
            "parapet_spool_append_duration_seconds",
            "Time to append one batch to the spool, its fdatasync included.",
        );
        let _ = writeln!(
            text,
            "# HELP parapet_spool_quarantined_total Batches of query events the store refused for good, set aside under the spool's quarantine folder.\n\
             # TYPE parapet_spool_quarantined_total counter\nparapet_spool_quarantined_total {}",
            self.spool.quarantined()
        );
        self.alerts.render(text);
        self.exports.render(text);
    }
}
