//! `parapet serve`: wires the resolver, the feed loader, the event consumer
//! and the web endpoint together and runs them until SIGINT/SIGTERM.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use parapet_core::event::{OwnedRun, QueryEvent, RunFolder};
use parapet_core::pseudonym::{PseudonymCache, Pseudonymiser};
use parapet_detect::rules::{Detector, Observed};
use parapet_dns::{CacheConfig, Metrics, Resolver, Settings};
use parapet_store::{Db, Retention};

use crate::BadInput;
use crate::config::Config;
use crate::loader::{Loader, Trigger, reload_loop};
use crate::storage_sched::{Backlog, Mode, StorageSched};

pub fn run(config_path: Option<&Path>, demo: bool) -> anyhow::Result<ExitCode> {
    crate::loader::fix_mmap_threshold();
    let config = match config_path {
        Some(p) => Config::load(p).map_err(|e| BadInput(format!("{e:#}")))?,
        None => {
            tracing::info!("no --config: embedded defaults with the bundled example feed");
            Config::embedded()
        }
    };
    let threads = match config.dns.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let upstreams = config.upstreams();
    if upstreams.is_empty() {
        tracing::warn!(
            "no upstream resolvers configured or found in /etc/resolv.conf: every name outside the feeds will get SERVFAIL"
        );
    }
    let d = &config.dns;
    let settings = Settings {
        listen: d.listen.clone(),
        upstreams: upstreams.clone(),
        upstream_timeout: Duration::from_millis(d.upstream_timeout_ms),
        attempt_timeout: Duration::from_millis(d.attempt_timeout_ms),
        cache: CacheConfig {
            capacity: d.cache_size,
            max_ttl: d.max_ttl,
            max_negative_ttl: d.max_negative_ttl,
        },
        udp_payload: d.udp_payload,
        tcp_idle_timeout: Duration::from_millis(d.tcp_idle_timeout_ms),
        tcp_max_connections: d.tcp_max_connections,
        udp_sockets_per_listener: threads,
    };

    let (key, key_source) = config.pseudonym_key()?;
    let pseudonymiser =
        Pseudonymiser::new(&key).map_err(|e| BadInput(format!("{key_source}: {e}")))?;
    tracing::info!("client pseudonyms: HMAC-SHA256 truncated to 64 bits, key from {key_source}");
    let store = config.open_store().context("cannot open the store")?;
    let node = config.node.name();
    tracing::info!("store: {} (node {node})", store.location());
    let dashboard = crate::dashboard::build(&config, demo)?;
    let (system_tx, system_rx) = crossbeam_channel::unbounded();
    let mut detector = Detector::new(config.detect_config());
    let mut store = store;
    for seen in store
        .load_seen()
        .context("cannot read what detection has learnt")?
    {
        let since = std::time::UNIX_EPOCH + Duration::from_millis(seen.since.max(0) as u64);
        detector.load_seen(Arc::from(seen.tenant.as_str()), since, seen.domains);
    }
    let notifier = crate::notify::Notifier::new(config.notify.clone());
    let alerts_tx = if notifier.is_configured() {
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("parapet-notify".into())
            .spawn(move || notifier.run(rx))?;
        Some(tx)
    } else {
        None
    };
    let nice = config.store.writer_nice;
    if store.defers_aggregates() {
        let folder = config
            .open_store()
            .context("cannot open the store for the aggregate fold")?;
        std::thread::Builder::new()
            .name("parapet-fold".into())
            .spawn(move || fold_loop(folder, nice))?;
    }
    let metrics = Arc::new(Metrics::default());
    let mut loader = Loader::new(config.clone(), metrics.clone());
    let served = loader.served_versions();
    let writer = EventWriter {
        store,
        detector,
        system_signals: system_rx,
        alerts_tx,
        pseudonymiser,
        flush_every: Duration::from_millis(config.store.flush_interval_ms.max(1)),
        nice,
        retention: config.store.retention(),
        served: served.clone(),
        started_at: parapet_store::unix_millis(SystemTime::now()),
    };

    let mailcheck_alerts = system_tx.clone();
    loader.raise_alerts_on(system_tx);
    let snapshot = loader.initial();
    let (events_tx, events_rx) = crossbeam_channel::bounded::<QueryEvent>(d.event_queue.max(1));
    let resolver = Arc::new(Resolver::new(
        settings.clone(),
        snapshot,
        metrics,
        Some(events_tx),
    ));

    let bound = parapet_dns::server::bind(&settings.listen, threads)?;
    for b in &bound {
        tracing::info!("DNS listening on {} (UDP and TCP)", b.addr);
    }
    tracing::info!(?upstreams, "forwarding to upstreams");

    let stop_writer = Arc::new(AtomicBool::new(false));
    let writer_thread = {
        let stop = stop_writer.clone();
        std::thread::Builder::new()
            .name("parapet-events".into())
            .spawn(move || writer.run(events_rx, &stop))?
    };

    let (trigger_tx, trigger_rx) = crossbeam_channel::unbounded();
    {
        let resolver = resolver.clone();
        std::thread::Builder::new()
            .name("parapet-reload".into())
            .spawn(move || reload_loop(loader, resolver, trigger_rx))?;
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let web_listen = config.web.listen;
    // on a shared database every sample names its node
    let label_node = config.store.database_url().is_some();
    rt.block_on(async move {
        let _dns = parapet_dns::server::spawn(resolver.clone(), bound)?;
        let listener = tokio::net::TcpListener::bind(web_listen)
            .await
            .with_context(|| format!("cannot listen on {web_listen} for the web endpoint"))?;
        tracing::info!("web listening on http://{}", listener.local_addr()?);
        let state = parapet_web::AppState {
            metrics: {
                let r = resolver.clone();
                Arc::new(move || {
                    let mut text = r.render_metrics();
                    if label_node {
                        text = with_node_label(&text, &node);
                    }
                    node_metrics(&mut text, &node, &served);
                    text
                })
            },
            dashboard: Some(dashboard),
        };
        tokio::spawn(async move {
            if let Err(e) = parapet_web::serve(listener, state).await {
                tracing::error!("web endpoint stopped: {e}");
            }
        });
        tokio::spawn(crate::mailcheck_cmd::schedule(
            config.clone(),
            upstreams.first().copied(),
            mailcheck_alerts,
        ));
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = hup.recv() => { let _ = trigger_tx.send(Trigger::Reload); }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        tracing::info!("shutting down");
        let _ = trigger_tx.send(Trigger::Stop);
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    // the last events of the run go to the store before exit
    stop_writer.store(true, Ordering::Relaxed);
    let _ = writer_thread.join();
    Ok(ExitCode::SUCCESS)
}

/// `text` (Prometheus exposition) with `node="NAME"` added to every sample's
/// labels, last, so series from several nodes stay apart once aggregated.
fn with_node_label(text: &str, node: &str) -> String {
    let node = node.replace(['\\', '"', '\n'], "_");
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else if let Some(close) = line.find('}') {
            let (head, tail) = line.split_at(close);
            out.push_str(head);
            if !head.ends_with('{') {
                out.push(',');
            }
            out.push_str(&format!("node=\"{node}\""));
            out.push_str(tail);
        } else if let Some(space) = line.find(' ') {
            let (name, tail) = line.split_at(space);
            out.push_str(&format!("{name}{{node=\"{node}\"}}{tail}"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[test]
fn a_queue_that_never_empties_is_still_handed_over_on_time() {
    use parapet_core::event::EventAction;
    use parapet_core::name::{EventName, text_to_key};

    let (tx, rx) = crossbeam_channel::bounded(10_000);
    let name = EventName::new(&text_to_key("a.example").unwrap());
    for _ in 0..10_000 {
        tx.send(QueryEvent {
            time: SystemTime::now(),
            tenant: "council-a".into(),
            client: "192.0.2.1".parse().unwrap(),
            qname: name.clone(),
            qtype: 1,
            rcode: 0,
            action: EventAction::Resolved,
            feed: None,
        })
        .unwrap();
    }
    let (out_tx, out_rx) = crossbeam_channel::unbounded();
    // stopped: drains what is queued, hands the rest over, returns
    let stop = AtomicBool::new(true);
    let pseudonymiser = parapet_core::pseudonym::Pseudonymiser::new(b"0123456789abcdef").unwrap();
    let sched = StorageSched::new(0);
    // every 1,024 events the flush interval (zero) has passed: ten batches
    // of one run each, not one batch of 10,000 queries after the drain
    collect(&rx, &stop, &pseudonymiser, Duration::ZERO, &out_tx, &sched);
    let batches: Vec<Vec<OwnedRun>> = out_rx.try_iter().collect();
    let sizes: Vec<(usize, u32)> = batches
        .iter()
        .map(|b| (b.len(), b.iter().map(|r| r.queries).sum()))
        .collect();
    assert_eq!(sizes.len(), 10, "{sizes:?}");
    assert!(
        sizes[..9].iter().all(|&s| s == (1, CLOCK_EVERY as u32)),
        "{sizes:?}"
    );
    assert_eq!(sizes.iter().map(|s| s.1).sum::<u32>(), 10_000);
}

#[cfg(test)]
#[test]
fn every_sample_names_the_node() {
    let text = "# HELP a x\n# TYPE a counter\na 3\nb{feed=\"f\"} 1\nc{} 2\n";
    assert_eq!(
        with_node_label(text, "n1"),
        "# HELP a x\n# TYPE a counter\na{node=\"n1\"} 3\nb{feed=\"f\",node=\"n1\"} 1\nc{node=\"n1\"} 2\n"
    );
}

/// Which node this is and the database feed versions it serves, as
/// Prometheus samples (the other metrics carry the node through the
/// scrape target; `parapet_node_info` names it).
fn node_metrics(text: &mut String, node: &str, served: &std::sync::Mutex<Vec<(String, i64)>>) {
    use std::fmt::Write;
    let node = node.replace(['\\', '"', '\n'], "_");
    let _ = writeln!(
        text,
        "# HELP parapet_node_info This node's name (several nodes can share one database).\n\
         # TYPE parapet_node_info gauge\nparapet_node_info{{node=\"{node}\"}} 1"
    );
    let served = served.lock().unwrap_or_else(|e| e.into_inner());
    if !served.is_empty() {
        let _ = writeln!(
            text,
            "# HELP parapet_feed_db_version Version of each database feed this node serves.\n\
             # TYPE parapet_feed_db_version gauge"
        );
        for (feed, v) in served.iter() {
            let feed = feed.replace(['\\', '"', '\n'], "_");
            let _ = writeln!(
                text,
                "parapet_feed_db_version{{node=\"{node}\",feed=\"{feed}\"}} {v}"
            );
        }
    }
}

/// Sets the calling thread's nice value (`[store] writer_nice`) for the
/// storage threads (collector, writer, fold). It is what they run at while
/// they are behind; while they keep up, the collector and the writer run as
/// `SCHED_IDLE` ([`crate::storage_sched`]). Measured before that existed,
/// with the server pinned to one core (bench/dns/RESULTS.md): p99 at 80k
/// QPS of cache hits 2.7-3.0 ms at 0, 0.26-0.56 ms at 19; events stored at
/// saturation on that core 100% at 0, 20-92% at 19 (bench/store/node).
pub(crate) fn storage_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers; who = 0 is this thread
        // on Linux.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        if rc != 0 {
            tracing::debug!(
                "cannot lower the storage threads' priority: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = nice;
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// How often pending hourly counts are folded into the aggregates (on the
/// PostgreSQL backend; one node at a time does it).
const FOLD_EVERY: Duration = Duration::from_secs(5);

/// Folds the hourly counts the event writer appends, on its own connection
/// so the write path never waits for it.
fn fold_loop(mut store: Box<dyn Db>, nice: i32) {
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

/// Drains the event queue every [`EVENT_POLL`], pseudonymising each client
/// and folding the repeats of a query into one run, and hands the runs to
/// the writer when there are [`MAX_BATCH`] of them or every `flush_every`.
/// A full hand-over waits: the event queue then fills and the resolver
/// drops (and counts), never waits.
fn collect(
    rx: &crossbeam_channel::Receiver<QueryEvent>,
    stop: &AtomicBool,
    pseudonymiser: &Pseudonymiser,
    flush_every: Duration,
    out: &crossbeam_channel::Sender<Vec<OwnedRun>>,
    sched: &StorageSched,
) {
    let mut pseudonyms = PseudonymCache::new(pseudonymiser.clone());
    // repeats fold here, as they are drained: a batch holds each distinct
    // query once, however many times it was asked
    let mut batch = RunFolder::default();
    let mut last_flush = Instant::now();
    let hand_over = |batch: &mut RunFolder| {
        if !batch.is_empty() {
            let _ = out.send(batch.take());
        }
    };
    loop {
        std::thread::sleep(EVENT_POLL);
        pseudonyms.expire(Instant::now());
        let mut closed = stop.load(Ordering::Relaxed);
        loop {
            match rx.try_recv() {
                Ok(ev) => {
                    let client = pseudonyms.pseudonymise(ev.client);
                    batch.push(ev.with_pseudonym(client));
                    // a queue that never empties (repeats of a few names
                    // at saturation fill no batch) still hands over every
                    // `flush_every`: a crash loses no more, and a run
                    // spans no longer, than that
                    if batch.runs() >= MAX_BATCH
                        || (batch.queries().is_multiple_of(CLOCK_EVERY)
                            && last_flush.elapsed() >= flush_every)
                    {
                        hand_over(&mut batch);
                        last_flush = Instant::now();
                    }
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {
                    sched.drained();
                    break;
                }
                Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || last_flush.elapsed() >= flush_every {
            hand_over(&mut batch);
            last_flush = Instant::now();
        }
        if closed {
            return;
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
struct EventWriter {
    store: Box<dyn Db>,
    detector: Detector,
    /// Alerts about Parapet itself (feeds or config failing to load).
    system_signals: crossbeam_channel::Receiver<parapet_core::alert::Signal>,
    /// New and reopened alerts go to the notifier, when one is configured.
    alerts_tx: Option<crossbeam_channel::Sender<parapet_core::alert::Alert>>,
    pseudonymiser: Pseudonymiser,
    flush_every: Duration,
    /// `[store] writer_nice`, for the writer and the collector.
    nice: i32,
    retention: Retention,
    /// The database feeds this node serves, for its heartbeat.
    served: Arc<std::sync::Mutex<Vec<(String, i64)>>>,
    started_at: i64,
}

/// How often the queue is drained; with the default queue of 16384 events
/// this absorbs 800k queries per second.
const EVENT_POLL: Duration = Duration::from_millis(20);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// How long a node's claim on the retention job lasts: it renews every
/// [`RETENTION_EVERY`], so the job moves to another node only when the
/// holder has stopped.
const RETENTION_LEASE: Duration = Duration::from_secs(2 * 3600);
/// How often a node records that it is alive and what it serves.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// Most distinct queries (runs) in one batch.
const MAX_BATCH: usize = 20_000;
/// Events the collector drains between two looks at the clock.
const CLOCK_EVERY: usize = 1024;
/// Full batches waiting for the writer, beyond the one it is writing.
const BATCHES_IN_FLIGHT: usize = 2;

impl EventWriter {
    /// Runs the pipeline until `stop` is set and the queue is drained: a
    /// collector thread drains the queue and pseudonymises into batches
    /// while this thread writes the previous batch, so a slow write (a
    /// fold, a checkpoint, a burst of alerts) is absorbed by up to
    /// [`BATCHES_IN_FLIGHT`] batches instead of the event queue alone.
    fn run(mut self, rx: crossbeam_channel::Receiver<QueryEvent>, stop: &AtomicBool) {
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
                        if let Some(tx) = &self.alerts_tx {
                            let _ = tx.send(a);
                        }
                    }
                }
            }
            Err(e) => tracing::error!(signals = seen.signals.len(), "could not store alerts: {e}"),
        }
    }
}
