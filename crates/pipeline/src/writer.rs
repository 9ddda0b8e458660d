//! The writer: stores each batch of runs in one transaction, runs detection
//! over the same runs, folds the signals into alerts (the store queues the
//! raised ones' notifications in the same transaction); between batches,
//! the heartbeat and the retention job. Also the aggregate fold for backends that defer it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parapet_core::alert::{Severity, Signal};
use parapet_core::event::{OwnedRun, QueryEvent};
use parapet_core::pseudonym::{ClientPseudonym, Pseudonymiser};
use parapet_detect::rules::{Detector, Observed};
use parapet_store::{BatchId, Db, Findings, Retention, SealedClient, StoreError};

use crate::collect::{Batch, EVENT_POLL, collect};
use crate::sched::{Backlog, Mode, StorageSched, storage_priority};
use crate::spool::{Found, Pos, Spool};

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
/// ([`collect`]) pseudonymises each client, cuts batches at most every
/// `flush_every` and appends each to the [`Spool`] before handing it over
/// (so a crash loses at most the batch it is filling, `flush_every` of
/// traffic, and the one whose sync is under way); this writer stores them in spool order, exactly once
/// ([`BatchId`]), replays what the store missed when it was down, runs
/// detection over every batch as it arrives, and runs the retention job
/// at start and every hour.
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
    pub(crate) spool: Arc<Spool>,
    pub(crate) replay: Replay,
    /// Queries dropped because the spool was full and the store down.
    pub(crate) dropped: Arc<AtomicU64>,
    /// The tenant of alerts about Parapet itself.
    pub(crate) supplier: Arc<str>,
    /// How long each batch's transaction takes.
    pub(crate) batch_latency: Arc<crate::stats::Histogram>,
    /// The investigation public key client addresses are sealed to.
    pub(crate) seal: Option<crate::seal::SealKey>,
}

/// Where the writer is in the spool, and what it owes the store.
#[derive(Debug)]
pub(crate) struct Replay {
    /// Every record before this is stored (or was reported unreadable).
    acked: Pos,
    /// The store failed: no write is tried before `retry_at`.
    down: Option<Down>,
    /// What detection found in batches it ran over whose transaction
    /// failed after that (so a retry does not run detection twice over
    /// them); a batch's entry goes when it is stored, found already
    /// stored, quarantined or dropped. Holds a batch or two.
    pending: BTreeMap<BatchId, Findings>,
    /// Findings no stored batch carries yet: alerts about Parapet itself
    /// (`store.unavailable`, feeds or config failing), and what detection
    /// found in batches that were dropped or quarantined. They go in with
    /// the next batch stored, or on their own when there is no traffic.
    held: Findings,
    alerted: bool,
}

#[derive(Debug)]
struct Down {
    retry_at: Instant,
    backoff: Duration,
    since: Instant,
}

impl Replay {
    pub(crate) fn new(spool: &Spool) -> Self {
        Self {
            acked: spool.start(),
            down: None,
            pending: BTreeMap::new(),
            held: Findings::default(),
            alerted: false,
        }
    }
}

/// The longest wait between two tries of a store that is down.
const RETRY_MAX: Duration = Duration::from_secs(10);
/// The longest the writer replays the spool before it looks at new
/// batches, alerts and its periodic jobs again.
const REPLAY_SLICE: Duration = Duration::from_secs(2);

const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How long a node's claim on the retention job lasts: it renews every
/// [`RETENTION_EVERY`], so the job moves to another node only when the
/// holder has stopped.
const RETENTION_LEASE: Duration = Duration::from_secs(2 * 3600);
/// How often a node records that it is alive and what it serves.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// Full batches waiting for the writer, beyond the one it is writing;
/// past them the collector hands over nothing (each batch is in the
/// spool already, and the writer reads it back from there).
const BATCHES_IN_FLIGHT: usize = 2;
/// The most signals (and, apart, seen domains) held in memory for a store
/// that is down when no batch carries them; past it the oldest go, logged.
const HELD_MAX: usize = 10_000;

/// Why a batch was not stored.
enum Failed {
    /// The store did not answer, or failed in a way that may pass: the
    /// batch waits in the spool for the next try.
    Down,
    /// The store refused the batch's data itself; trying again would fail
    /// the same way.
    Rejected(StoreError),
}

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
        let spool = self.spool.clone();
        let run = self.started_at;
        let written = AtomicBool::new(false);
        let seal = self.seal.clone();
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
                    let out = crate::collect::Out {
                        batches: &batches_tx,
                        spool: &spool,
                        run,
                    };
                    collect(rx, stop, &pseudonymiser, flush_every, &out, sched, seal)
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
        batches: &crossbeam_channel::Receiver<Batch>,
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
                Ok(batch) => self.take(batch),
                // alerts about Parapet itself go out even with no traffic,
                // and a store that was down is tried again
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.replay.acked < self.spool.end() || self.replay.down.is_some() {
                        self.catch_up();
                    }
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    // the last batches: one more try of the store, then
                    // whatever it could not take waits in the spool
                    if let Some(down) = &mut self.replay.down {
                        down.retry_at = Instant::now();
                    }
                    self.catch_up();
                    self.record_held();
                    sched.writing(false);
                    return;
                }
            }
            self.record_held();
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

    /// Takes one batch from the collector: it is stored now (and run
    /// through detection in the same step) when the store is up and
    /// nothing older waits in the spool, or replayed from the spool in its
    /// turn.
    fn take(&mut self, batch: Batch) {
        let Batch {
            id,
            runs,
            sealed,
            spooled,
        } = batch;
        match spooled {
            Some((_, end)) if end <= self.replay.acked => {}
            Some((start, end)) if start == self.replay.acked && self.replay.down.is_none() => {
                match self.store_batch(id, &runs, &sealed) {
                    Ok(()) => self.advance(end),
                    Err(Failed::Rejected(e)) => {
                        self.quarantine(id, &runs, &e);
                        self.advance(end);
                    }
                    Err(Failed::Down) => {}
                }
            }
            Some(_) => self.catch_up(),
            // not in the spool (full, or unwritable): stored now or lost
            None => {
                let due = self
                    .replay
                    .down
                    .as_ref()
                    .is_none_or(|d| Instant::now() >= d.retry_at);
                match due.then(|| self.store_batch(id, &runs, &sealed)) {
                    Some(Ok(())) => {}
                    Some(Err(Failed::Rejected(e))) => self.quarantine(id, &runs, &e),
                    Some(Err(Failed::Down)) | None => self.drop_batch(id, &runs),
                }
            }
        }
    }

    /// Every batch before `next` is stored (or set aside): the spool may
    /// let go of it.
    fn advance(&mut self, next: Pos) {
        self.replay.acked = next;
        self.spool.release(next);
    }

    /// Stores one batch exactly once, with what detection finds in it and
    /// the held findings, in one transaction. Detection runs only over a
    /// batch the store does not hold yet, and once per batch however often
    /// its transaction is tried. On a failure that may pass, the store
    /// counts as down until its next try (backing off up to
    /// [`RETRY_MAX`]).
    fn store_batch(
        &mut self,
        id: BatchId,
        runs: &[OwnedRun],
        sealed: &[SealedClient],
    ) -> Result<(), Failed> {
        let as_runs: Vec<_> = runs.iter().map(OwnedRun::as_run).collect();
        let started = Instant::now();
        let Self {
            store,
            detector,
            replay,
            ..
        } = self;
        let Replay { pending, held, .. } = replay;
        let mut detect = || {
            let mut found = pending
                .entry(id)
                .or_insert_with(|| observe(detector, runs))
                .clone();
            found.extend(held.clone());
            found
        };
        // the sealed addresses after the batch, also once per batch: after a
        // failure between the two, the replay finds the batch stored and
        // writes only the addresses
        let result = store
            .insert_batch_found(id, &as_runs, &mut detect)
            .and_then(|stored| store.insert_sealed(id, sealed).map(|_| stored));
        match result {
            Ok(stored) => {
                self.replay.pending.remove(&id);
                if let Some(stored) = stored {
                    self.batch_latency.observe(started.elapsed());
                    // detection ran: the held findings went in with it
                    self.replay.held = Findings::default();
                    self.log_raised(&stored.alerts);
                }
                Ok(())
            }
            Err(e) if e.rejects_data() => Err(Failed::Rejected(e)),
            Err(e) => {
                self.mark_down(&e, runs.len());
                Err(Failed::Down)
            }
        }
    }

    /// Counts the store as down from now until its next try.
    fn mark_down(&mut self, e: &StoreError, runs: usize) {
        let now = Instant::now();
        match &mut self.replay.down {
            Some(d) => {
                d.backoff = (d.backoff * 2).min(RETRY_MAX);
                d.retry_at = now + d.backoff;
            }
            None => {
                tracing::error!(
                    runs,
                    "could not store query events, keeping them in the spool until the store answers: {e}"
                );
                let backoff = self.flush_every.min(RETRY_MAX);
                self.replay.down = Some(Down {
                    retry_at: now + backoff,
                    backoff,
                    since: now,
                });
            }
        }
    }

    /// Replays the spool from the first batch the store lacks, in order,
    /// for at most [`REPLAY_SLICE`]; when the store is down, only once its
    /// retry is due.
    fn catch_up(&mut self) {
        if self
            .replay
            .down
            .as_ref()
            .is_some_and(|d| Instant::now() < d.retry_at)
        {
            return;
        }
        let started = Instant::now();
        let mut replayed = 0u64;
        while started.elapsed() < REPLAY_SLICE {
            match self.spool.read(self.replay.acked) {
                Found::Batch {
                    id,
                    runs,
                    sealed,
                    next,
                } => {
                    match self.store_batch(id, &runs, &sealed) {
                        Ok(()) => replayed += 1,
                        Err(Failed::Rejected(e)) => self.quarantine(id, &runs, &e),
                        Err(Failed::Down) => return,
                    }
                    self.advance(next);
                }
                Found::Bad { why, next } => {
                    tracing::error!("spool: skipping an unreadable record: {why}");
                    self.advance(next);
                }
                Found::End => {
                    if let Some(d) = self.replay.down.take() {
                        tracing::warn!(
                            down_for_s = d.since.elapsed().as_secs(),
                            replayed,
                            "the store answers again; the spool is replayed"
                        );
                    }
                    self.replay.alerted = false;
                    return;
                }
            }
        }
    }

    /// Sets aside a batch the store refused for good, so that it no longer
    /// holds back the batches behind it: a copy goes to the spool's
    /// quarantine folder (for the operator to inspect), and what detection
    /// found in it is kept, to be recorded with the next batch.
    fn quarantine(&mut self, id: BatchId, runs: &[OwnedRun], e: &StoreError) {
        let e = with_sources(e);
        match self.spool.quarantine(id, runs) {
            Ok(path) => tracing::error!(
                run = id.run,
                seq = id.seq,
                file = %path.display(),
                "the store refused a batch of query events; it is set aside in the spool's quarantine: {e}"
            ),
            Err(q) => tracing::error!(
                run = id.run,
                seq = id.seq,
                "the store refused a batch of query events, and it cannot be set aside ({q}): its events are lost: {e}"
            ),
        }
        let found = self
            .replay
            .pending
            .remove(&id)
            .unwrap_or_else(|| observe(&mut self.detector, runs));
        self.hold(found);
    }

    /// Counts a batch lost to a full spool and a store that is down, keeps
    /// what detection finds in it (its alerts are not lost with its
    /// events), and raises `store.unavailable` once per outage.
    fn drop_batch(&mut self, id: BatchId, runs: &[OwnedRun]) {
        let queries: u64 = runs.iter().map(|r| u64::from(r.queries)).sum();
        self.dropped.fetch_add(queries, Ordering::Relaxed);
        tracing::error!(
            queries,
            spool_bytes = self.spool.bytes(),
            "query events dropped: the store is unavailable and the spool is full"
        );
        let found = self
            .replay
            .pending
            .remove(&id)
            .unwrap_or_else(|| observe(&mut self.detector, runs));
        self.hold(found);
        if !self.replay.alerted {
            self.replay.alerted = true;
            let location = self.store.location();
            self.hold(Findings {
                signals: vec![Signal {
                    time: SystemTime::now(),
                    tenant: self.supplier.clone(),
                    rule: "store.unavailable",
                    severity: Severity::High,
                    domain: location.clone(),
                    client: ClientPseudonym([0; 8]),
                    feed: None,
                    reason: format!(
                        "the store {location} did not answer and the spool reached [store] spool_max_mb: query events are being dropped (parapet_events_dropped_total{{reason=\"spool_full\"}})"
                    ),
                    evidence: String::new(),
                    folded: None,
                }],
                ..Findings::default()
            });
        }
    }

    /// Keeps `found` until a batch (or [`EventWriter::record_held`])
    /// stores it; past [`HELD_MAX`] the oldest go.
    fn hold(&mut self, found: Findings) {
        let held = &mut self.replay.held;
        held.extend(found);
        let over = held.signals.len().saturating_sub(HELD_MAX);
        if over > 0 {
            held.signals.drain(..over);
            tracing::error!(
                signals = over,
                "the store has been unavailable too long: the oldest detection signals held for it are lost"
            );
        }
        let over = held.new_domains.len().saturating_sub(HELD_MAX);
        held.new_domains.drain(..over);
    }

    /// Records the held findings (with the alerts about Parapet itself that
    /// came meanwhile) when no batch has carried them: when there is no
    /// traffic, or every batch was dropped. Kept for the next try when the
    /// store fails.
    fn record_held(&mut self) {
        let system: Vec<Signal> = self.system_signals.try_iter().collect();
        if !system.is_empty() {
            self.hold(Findings {
                signals: system,
                ..Findings::default()
            });
        }
        if self.replay.held.is_empty() || self.replay.down.is_some() {
            return;
        }
        let held = &self.replay.held;
        let result = self
            .store
            .save_seen(&held.learning_started, &held.new_domains)
            .and_then(|()| self.store.record_signals(&held.signals));
        match result {
            Ok(touched) => {
                self.replay.held = Findings::default();
                self.log_raised(&touched);
            }
            Err(e) => {
                tracing::error!(
                    signals = self.replay.held.signals.len(),
                    "could not store alerts, keeping them until the store answers: {e}"
                );
                self.mark_down(&e, 0);
            }
        }
    }

    /// Logs each alert raised (new, or reopened).
    fn log_raised(&mut self, touched: &[(i64, bool)]) {
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
}

/// An error with its sources: the database's own words (a PostgreSQL
/// error displays as "db error" and keeps them in its source).
fn with_sources(e: &StoreError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// Runs detection over a batch's runs (the repeats of a query are one row
/// and one step of detection).
fn observe(detector: &mut Detector, runs: &[OwnedRun]) -> Findings {
    let mut seen = Observed::default();
    for run in runs {
        detector.observe_run(&run.as_run(), &mut seen);
    }
    Findings {
        signals: std::mem::take(&mut seen.signals),
        learning_started: std::mem::take(&mut seen.learning_started),
        new_domains: std::mem::take(&mut seen.new_domains),
    }
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
