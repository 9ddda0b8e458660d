//! The writer: stores each batch of runs in one transaction, runs detection
//! over the same runs, folds the signals into alerts (the store queues the
//! raised ones' notifications in the same transaction); between batches,
//! the heartbeat and the retention job. Also the aggregate fold for backends that defer it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parapet_core::alert::Signal;
use parapet_core::event::{OwnedRun, QueryEvent};
use parapet_core::pseudonym::Pseudonymiser;
use parapet_detect::rules::{Detector, Observed};
use parapet_store::{Db, Retention};

use crate::collect::{EVENT_POLL, collect};
use crate::sched::{Backlog, Mode, StorageSched, storage_priority};

/// How often pending hourly counts are folded into the aggregates (on the
/// PostgreSQL backend; one node at a time does it).
const FOLD_EVERY: Duration = Duration::from_secs(5);

/// Folds the hourly counts the event writer appends, on its own connection
/// so the write path never waits for it.
pub(crate) fn fold_loop(mut store: Box<dyn Db>, nice: i32) {
    storage_priority(nice);
    loop {
        std::thread::sleep(FOLD_EVERY);
        match store.fold_aggregates() {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "folded hourly counts into the aggregates"),
            Err(e) => tracing::warn!("could not fold hourly counts: {e}"),
        }
    }
}

/// Drains query events into the store in two threads: the collector
/// ([`collect`]) pseudonymises each client and cuts batches at most every
/// `flush_every`; this writer stores them (so a crash loses at most the
/// batches in hand: `flush_every` of traffic, or [`BATCHES_IN_FLIGHT`] + 1
/// batches under a backlog), runs detection over them, and runs the
/// retention job at start and every hour.
///
/// The collector drains the queue on a timer rather than blocking on it: a
/// receiver blocked in `recv` makes every send a futex wake-up (a syscall
/// and a context switch on the resolver's hot path), a polling one never.
pub(crate) struct EventWriter {
    pub(crate) store: Box<dyn Db>,
    pub(crate) detector: Detector,
    /// Alerts about Parapet itself (feeds or config failing to load).
    pub(crate) system_signals: crossbeam_channel::Receiver<Signal>,
    pub(crate) pseudonymiser: Pseudonymiser,
    pub(crate) flush_every: Duration,
    /// `[store] writer_nice`, for the writer and the collector.
    pub(crate) nice: i32,
    pub(crate) retention: Retention,
    /// The database feeds this node serves, for its heartbeat.
    pub(crate) served: Arc<std::sync::Mutex<Vec<(String, i64)>>>,
    pub(crate) started_at: i64,
}

const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How long a node's claim on the retention job lasts: it renews every
/// [`RETENTION_EVERY`], so the job moves to another node only when the
/// holder has stopped.
const RETENTION_LEASE: Duration = Duration::from_secs(2 * 3600);
/// How often a node records that it is alive and what it serves.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// Full batches waiting for the writer, beyond the one it is writing.
const BATCHES_IN_FLIGHT: usize = 2;

impl EventWriter {
    /// Runs the pipeline until `stop` is set and the queue is drained: a
    /// collector thread drains the queue and pseudonymises into batches
    /// while this thread writes the previous batch, so a slow write (a
    /// fold, a checkpoint, a burst of alerts) is absorbed by up to
    /// [`BATCHES_IN_FLIGHT`] batches instead of the event queue alone.
    pub(crate) fn run(mut self, rx: crossbeam_channel::Receiver<QueryEvent>, stop: &AtomicBool) {
        let sched = StorageSched::new(self.nice);
        let (batches_tx, batches_rx) = crossbeam_channel::bounded(BATCHES_IN_FLIGHT);
        let pseudonymiser = self.pseudonymiser.clone();
        let flush_every = self.flush_every;
        let nice = self.nice;
        let written = AtomicBool::new(false);
        std::thread::scope(|s| {
            let (rx, sched, written) = (&rx, &sched, &written);
            // the watcher stops when this thread leaves the scope, even by
            // a panic, and the batch channel closes with it
            let _done = SetOnDrop(written);
            let batches_rx = batches_rx;
            if sched.enabled() {
                // started before this thread yields, so as a normal thread
                let batches = batches_rx.clone();
                let watcher = std::thread::Builder::new()
                    .name("parapet-storewatch".into())
                    .spawn_scoped(s, move || {
                        sched.watch(written, |sched| Backlog {
                            queued: rx.len(),
                            capacity: rx.capacity().unwrap_or(usize::MAX),
                            batches_waiting: batches.len(),
                            since_drain: sched.since_drain(),
                            writing_for: sched.writing_for(),
                        })
                    });
                if let Err(e) = watcher {
                    tracing::warn!("cannot start the storage watcher: {e}");
                    sched.apply(Mode::Fair);
                }
            }
            let collector = std::thread::Builder::new()
                .name("parapet-collect".into())
                .spawn_scoped(s, move || {
                    storage_priority(nice);
                    let _registered = sched.register();
                    collect(rx, stop, &pseudonymiser, flush_every, &batches_tx, sched)
                });
            if let Err(e) = collector {
                tracing::error!("cannot start the event collector: {e}");
                return;
            }
            storage_priority(self.nice);
            let _registered = sched.register();
            self.write_batches(&batches_rx, sched);
        });
    }

    /// Writes each batch the collector hands over, and runs the periodic
    /// jobs; returns when the collector has finished. Each piece of
    /// database work is marked for the storage watcher
    /// ([`StorageSched::writing`]).
    fn write_batches(
        &mut self,
        batches: &crossbeam_channel::Receiver<Vec<OwnedRun>>,
        sched: &StorageSched,
    ) {
        let mut last_purge: Option<Instant> = None;
        let mut last_heartbeat: Option<Instant> = None;
        loop {
            sched.writing(true);
            if last_purge.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
                self.retention_job();
                last_purge = Some(Instant::now());
            }
            if last_heartbeat.is_none_or(|t| t.elapsed() >= HEARTBEAT_EVERY) {
                self.heartbeat();
                last_heartbeat = Some(Instant::now());
            }
            sched.writing(false);
            let got = batches.recv_timeout(self.flush_every.max(EVENT_POLL));
            sched.writing(true);
            match got {
                Ok(batch) => self.flush(&batch),
                // alerts about Parapet itself go out even with no traffic
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => self.flush(&[]),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    self.flush(&[]);
                    sched.writing(false);
                    return;
                }
            }
            sched.writing(false);
        }
    }

    /// Deletes what retention allows, on one node of the cluster at a time
    /// (the one holding the `retention` lease).
    fn retention_job(&mut self) {
        match self
            .store
            .try_lease("retention", SystemTime::now(), RETENTION_LEASE)
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("retention: another node holds the lease; not run here");
                return;
            }
            Err(e) => {
                tracing::error!("retention job: cannot take the lease: {e}");
                return;
            }
        }
        match self.store.purge(SystemTime::now(), self.retention) {
            Ok(p) => tracing::info!(
                events = p.events,
                aggregates = p.aggregates,
                "retention: deleted old rows"
            ),
            Err(e) => tracing::error!("retention job failed: {e}"),
        }
    }

    fn heartbeat(&mut self) {
        let feeds = {
            let served = self.served.lock().unwrap_or_else(|e| e.into_inner());
            served
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if let Err(e) = self
            .store
            .heartbeat(self.started_at, SystemTime::now(), &feeds)
        {
            tracing::warn!("could not record this node's heartbeat: {e}");
        }
    }

    fn flush(&mut self, batch: &[OwnedRun]) {
        if batch.is_empty() && self.system_signals.is_empty() {
            return;
        }
        // the repeats of a query are one row and one step of detection
        let runs: Vec<_> = batch.iter().map(OwnedRun::as_run).collect();
        if let Err(e) = self.store.insert_runs(&runs) {
            tracing::error!(runs = runs.len(), "could not store query events: {e}");
        }
        let mut seen = Observed::default();
        for run in &runs {
            self.detector.observe_run(run, &mut seen);
        }
        seen.signals.extend(self.system_signals.try_iter());
        if let Err(e) = self
            .store
            .save_seen(&seen.learning_started, &seen.new_domains)
        {
            tracing::error!("could not store the domains detection has seen: {e}");
        }
        if seen.signals.is_empty() {
            return;
        }
        match self.store.record_signals(&seen.signals) {
            Ok(touched) => {
                for (id, _) in touched.iter().filter(|(_, raised)| *raised) {
                    if let Ok(a) = self.store.alert(*id) {
                        tracing::warn!(
                            target: "parapet::alert",
                            id = a.id,
                            tenant = %a.tenant,
                            rule = %a.rule,
                            domain = %a.domain,
                            severity = %a.severity,
                            "new alert: {}",
                            a.reason
                        );
                    }
                }
            }
            Err(e) => tracing::error!(signals = seen.signals.len(), "could not store alerts: {e}"),
        }
    }
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
