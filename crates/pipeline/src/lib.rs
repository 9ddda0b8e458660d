//! The event pipeline: how a query the resolver answered becomes a stored
//! row, a detection signal and a delivered alert.
//!
//! ```text
//! resolver ─try_send─▶ event queue ─▶ collector ─batches─▶ writer ─▶ store
//!                                    (pseudonymise,        │  detection → alerts
//!                                     fold repeats)        └─▶ outbox ─▶ notifier (webhook, e-mail)
//! ```
//!
//! - [`collect`]: drains the bounded queue the resolver fills, pseudonymises
//!   each client, folds repeats into runs, cuts batches and appends each to
//!   the spool before handing it over.
//! - [`spool`]: the append-only, checksummed log of batches under
//!   `[store] path/spool` that the store is written from: nothing is lost
//!   while the store is down (up to `spool_max_mb`), nothing stored twice.
//! - [`writer`]: stores each batch once, in one transaction, replaying the
//!   spool after an outage; runs the detector over the same runs, folds
//!   signals into alerts (raised ones get a row in the notification outbox); the
//!   heartbeat and the retention job; the aggregate fold.
//! - [`sched`]: the storage threads yield the CPU to answers until they
//!   fall behind.
//! - [`notify`]: alert delivery per tenant route, from the outbox.
//! - [`export`]: SIEM exports (syslog, HTTP, file), each from its cursor in
//!   the store.
//!
//! Architecture invariant: nothing here runs on the resolver's threads; the
//! resolver only ever `try_send`s on the queue.

mod collect;
pub mod export;
pub mod notify;
mod sched;
pub mod seal;
mod spool;
mod stats;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crossbeam_channel::Receiver;
use parapet_core::alert::Signal;
use parapet_core::event::QueryEvent;
use parapet_core::pseudonym::Pseudonymiser;
use parapet_detect::rules::{DetectConfig, Detector};
use parapet_store::{Db, Retention, StoreError};

use crate::export::{AlertCounts, ExportConfig};
use crate::notify::{Notifier, NotifyConfig, NotifyStats};
pub use crate::stats::PipelineStats;
use crate::writer::EventWriter;

/// What the pipeline is built from.
pub struct Parts {
    pub store: Box<dyn Db>,
    /// A second connection for the aggregate fold, when `store`
    /// [defers aggregates](parapet_store::EventStore::defers_aggregates).
    pub fold_store: Option<Box<dyn Db>>,
    /// The notifier's connection: it works the notification outbox.
    pub notify_store: Box<dyn Db>,
    pub detect: DetectConfig,
    pub notify: NotifyConfig,
    pub pseudonymiser: Pseudonymiser,
    /// How often a batch is cut, at most (`[store] flush_interval_ms`).
    pub flush_every: Duration,
    /// `[store] writer_nice`: the storage threads' nice value.
    pub nice: i32,
    pub retention: Retention,
    /// The database feeds this node serves, for its heartbeat.
    pub served: Arc<Mutex<Vec<(String, i64)>>>,
    /// Alerts about Parapet itself (feeds or config failing to load).
    pub system_signals: Receiver<Signal>,
    /// The spool's folder (`[store] path/spool`) and its limit in bytes
    /// (`[store] spool_max_mb`).
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    /// Counts the queries dropped because the spool was full while the
    /// store was down (`parapet_events_dropped_total{reason="spool_full"}`).
    pub spool_dropped: Arc<AtomicU64>,
    /// The tenant of alerts about Parapet itself (`store.unavailable`).
    pub supplier: Arc<str>,
    /// `[[exports]]`, each with its own store connection.
    pub exports: Vec<(ExportConfig, Box<dyn Db>)>,
    /// This node's name: the syslog HOSTNAME and HEC `host` of exports.
    pub node: String,
    /// The folder relative export paths resolve against.
    pub base: PathBuf,
    /// `[privacy] investigation_public_key`: with it, each batch also keeps
    /// its clients' addresses sealed to it.
    pub seal: Option<seal::SealKey>,
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot read what detection has learnt: {0}")]
    Store(#[from] StoreError),
    #[error("cannot start a pipeline thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("{0}")]
    Export(String),
    #[error("{0}")]
    Spool(String),
}

/// A pipeline ready to take events: detection has its memory back, and the
/// notifier and the aggregate fold run.
pub struct Pipeline {
    writer: EventWriter,
    notify_stats: Arc<NotifyStats>,
    stats: Arc<PipelineStats>,
}

impl Pipeline {
    /// Restores what detection learnt before (per tenant: since when, and
    /// the domains seen) and starts the notifier (which also drops the
    /// notifications no route wants) and the aggregate fold (when the store
    /// defers it).
    pub fn new(parts: Parts) -> Result<Self, StartError> {
        let Parts {
            mut store,
            fold_store,
            notify_store,
            detect,
            notify,
            pseudonymiser,
            flush_every,
            nice,
            retention,
            served,
            system_signals,
            spool_dir,
            spool_max_bytes,
            spool_dropped,
            supplier,
            exports,
            node,
            base,
            seal,
        } = parts;
        let spool = spool::Spool::open(&spool_dir, spool_max_bytes)
            .map_err(|e| StartError::Spool(e.to_string()))?;
        let mut detector = Detector::new(detect);
        for seen in store.load_seen()? {
            let since = std::time::UNIX_EPOCH + Duration::from_millis(seen.since.max(0) as u64);
            detector.load_seen(Arc::from(seen.tenant.as_str()), since, seen.domains);
        }
        let alert_counts = Arc::new(AlertCounts::default());
        let notifier = Notifier::new(notify, notify_store).counting(alert_counts.clone());
        let notify_stats = notifier.stats();
        std::thread::Builder::new()
            .name("parapet-notify".into())
            .spawn(move || notifier.run())?;
        let (exporters, export_stats) =
            export::exporters(exports, &node, &base).map_err(StartError::Export)?;
        for (i, e) in exporters.into_iter().enumerate() {
            std::thread::Builder::new()
                .name(format!("parapet-export{i}"))
                .spawn(move || e.run())?;
        }
        let batch_latency = Arc::new(stats::Histogram::default());
        let stats = Arc::new(PipelineStats {
            batch_latency: batch_latency.clone(),
            spool: spool.clone(),
            alerts: alert_counts,
            exports: export_stats,
        });
        if let Some(folder) = fold_store {
            std::thread::Builder::new()
                .name("parapet-fold".into())
                .spawn(move || writer::fold_loop(folder, nice))?;
        }
        let writer = EventWriter {
            store,
            detector,
            system_signals,
            pseudonymiser,
            flush_every: flush_every.max(Duration::from_millis(1)),
            nice,
            retention,
            served,
            started_at: parapet_store::unix_millis(SystemTime::now()),
            replay: writer::Replay::new(&spool),
            spool,
            dropped: spool_dropped,
            supplier,
            batch_latency,
            seal,
        };
        Ok(Self {
            writer,
            notify_stats,
            stats,
        })
    }

    /// The storage, spool, alert and export figures, for `/metrics`.
    pub fn stats(&self) -> Arc<PipelineStats> {
        self.stats.clone()
    }

    /// The notification outbox's figures, for `/metrics`.
    pub fn notify_stats(&self) -> Arc<NotifyStats> {
        self.notify_stats.clone()
    }

    /// Starts the collector and the writer on `events`, the queue the
    /// resolver sends to.
    pub fn start(self, events: Receiver<QueryEvent>) -> Result<Running, StartError> {
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            let w = self.writer;
            std::thread::Builder::new()
                .name("parapet-events".into())
                .spawn(move || w.run(events, &stop))?
        };
        Ok(Running { stop, writer })
    }
}

/// The running collector and writer.
pub struct Running {
    stop: Arc<AtomicBool>,
    writer: std::thread::JoinHandle<()>,
}

impl Running {
    /// Stores the last events of the run (what is queued, and the batches
    /// in hand) and returns when the writer has finished.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.writer.join();
    }
}
