//! `parapet serve`: wires the resolver, the feed loader, the event pipeline
//! and the web endpoint together and runs them until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parapet_core::event::QueryEvent;
use parapet_core::pseudonym::Pseudonymiser;
use parapet_dns::{CacheConfig, Metrics, Resolver, Settings, StaleSettings};
use parapet_pipeline::{Parts, Pipeline};

use crate::BadInput;
use crate::config::{Config, DnsConfig};
use crate::loader::{Loader, Trigger, reload_loop};

/// Run the protective DNS resolver and the web dashboard with its JSON
/// API (and /metrics).
///
/// Without --config: DNS on 127.0.0.1:5353 (UDP and TCP), web on
/// 127.0.0.1:8080, upstreams from /etc/resolv.conf, the bundled example
/// feed. SIGHUP reloads the config and every feed; feed files are also
/// watched for changes. With no account yet, an `admin` account is
/// created and its password printed.
#[derive(clap::Args)]
pub struct Args {
    /// The TOML configuration file.
    #[arg(long, short, env = "PARAPET_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Load the bundled demo data (two councils' traffic and alerts,
    /// Mail Check results, the fixture estate) once, for a first look.
    #[arg(long)]
    demo: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    crate::loader::fix_mmap_threshold();
    let config = match args.config.as_deref() {
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
    let mut settings = dns_settings(&config.dns, &upstreams, threads);
    settings.upstream_tls = crate::encrypted::upstream_tls(&config)?;

    let (key, key_source) = config.pseudonym_key()?;
    let pseudonymiser =
        Pseudonymiser::new(&key).map_err(|e| BadInput(format!("{key_source}: {e}")))?;
    tracing::info!("client pseudonyms: HMAC-SHA256 truncated to 64 bits, key from {key_source}");
    let seal_key = config.seal_key()?;
    match &seal_key {
        Some(k) => tracing::info!(
            "client addresses sealed to the investigation public key {}",
            k.fingerprint()
        ),
        None => {
            tracing::info!("no [privacy] investigation_public_key: client addresses are not kept")
        }
    }
    let store = config.open_store().context("cannot open the store")?;
    let node = config.node.name();
    tracing::info!("store: {} (node {node})", store.location());
    let dashboard = crate::dashboard::build(&config, args.demo)?;
    let (system_tx, system_rx) = crossbeam_channel::unbounded();
    // PostgreSQL folds the hourly counts on a connection of its own
    let fold_store = if store.defers_aggregates() {
        Some(
            config
                .open_store()
                .context("cannot open the store for the aggregate fold")?,
        )
    } else {
        None
    };
    // the notifier works the outbox on its own connection
    let notify_store = config
        .open_store()
        .context("cannot open the store for the notifier")?;
    // each export destination delivers on a connection of its own
    let mut export_stores = Vec::new();
    for e in &config.exports {
        let store = config
            .open_store()
            .context("cannot open the store for an export")?;
        export_stores.push((e.get_ref().clone(), store));
    }
    let metrics = Arc::new(Metrics::default());
    {
        // the tenants page shows each feed's serial, entries and last error
        let m = metrics.clone();
        let _ = dashboard.feed_load.set(Arc::new(move || {
            m.feeds()
                .into_iter()
                .map(|f| parapet_web::FeedLoad {
                    name: f.name,
                    entries: f.entries,
                    serial: f.serial,
                    last_transfer: f.last_transfer,
                    last_load: f.last_load,
                    last_error: f.last_error,
                })
                .collect()
        }));
    }
    let mut loader = Loader::new(config.clone(), metrics.clone());
    loader.allowlist_from_store();
    let served = loader.served_versions();
    let fetch_statuses = loader.fetch_statuses();
    let spool_dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pipeline = Pipeline::new(Parts {
        store,
        fold_store,
        notify_store,
        detect: config.detect_config(),
        notify: config.notify.clone(),
        pseudonymiser,
        flush_every: Duration::from_millis(config.store.flush_interval_ms),
        nice: config.store.writer_nice,
        retention: config.store.retention(),
        served: served.clone(),
        system_signals: system_rx,
        spool_dir: config.resolve(&config.store.path).join("spool"),
        spool_max_bytes: config.store.spool_max_mb.saturating_mul(1 << 20),
        spool_dropped: spool_dropped.clone(),
        supplier: Arc::from(crate::loader::SUPPLIER_TENANT),
        exports: export_stores,
        node: node.clone(),
        base: config.base.clone(),
        seal: seal_key,
    })?;

    let mailcheck_alerts = system_tx.clone();
    loader.raise_alerts_on(system_tx);
    let snapshot = loader.initial();
    let (events_tx, events_rx) =
        crossbeam_channel::bounded::<QueryEvent>(config.dns.event_queue.max(1));
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
    let dns_addrs: Vec<String> = bound.iter().map(|b| b.addr.to_string()).collect();
    let encrypted = crate::encrypted::Encrypted::bind(&config)?;
    let upstream_names: Vec<String> = upstreams.iter().map(|u| u.to_string()).collect();
    tracing::info!(upstreams = ?upstream_names, "forwarding to upstreams");
    let web_listen = config.web.listen;
    let web_listener = std::net::TcpListener::bind(web_listen)
        .with_context(|| format!("cannot listen on {web_listen} for the web endpoint"))?;
    web_listener.set_nonblocking(true)?;
    // every listener is bound: a start that fails on a busy port must not
    // have made an account whose password nobody saw
    crate::dashboard::first_account(&config)?;

    let notify_stats = pipeline.notify_stats();
    let pipeline_stats = pipeline.stats();
    // the queue's depth, read from a clone of its receiving end
    let event_queue = events_rx.clone();
    let pipeline = pipeline.start(events_rx)?;

    let (trigger_tx, trigger_rx) = crossbeam_channel::unbounded();
    // feeds by zone transfer: a thread each, NOTIFY through the listeners
    resolver.set_notify(crate::loader::start_xfr_feeds(&config, &trigger_tx)?);
    loader.start_fetching(trigger_tx.clone());
    // DMARC/TLS-RPT mailboxes: a watcher thread each
    crate::mailbox::start_watchers(&config)?;
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
    // on a shared database every sample names its node
    let label_node = config.store.database_url().is_some();
    rt.block_on(async move {
        let _dns = parapet_dns::server::spawn(resolver.clone(), bound)?;
        let certs = encrypted.spawn(
            &resolver,
            Duration::from_millis(config.dns.watch_interval_ms),
        )?;
        let listener = tokio::net::TcpListener::from_std(web_listener)?;
        tracing::info!("web listening on http://{}", listener.local_addr()?);
        let state = parapet_web::AppState {
            metrics: {
                let r = resolver.clone();
                Arc::new(move || {
                    let mut text = with_spool_drops(&r.render_metrics(), &spool_dropped);
                    crate::url_feeds::render_metrics(&mut text, &fetch_statuses);
                    notify_stats.render(&mut text);
                    pipeline_stats.render(&mut text);
                    event_queue_metrics(&mut text, &event_queue);
                    crate::process_metrics::render(&mut text);
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
            // Mail Check's stub resolver speaks plain DNS
            upstreams
                .iter()
                .find(|u| u.tls_name.is_none())
                .map(|u| u.addr),
            mailcheck_alerts,
        ));
        // every listener is bound and served: systemd may start what
        // depends on DNS (Type=notify), and feed the watchdog from here on
        if let Some(every) = crate::sdnotify::watchdog_interval() {
            tokio::spawn(crate::sdnotify::watchdog(every));
        }
        crate::sdnotify::notify(&format!(
            "READY=1\nSTATUS=DNS on {}; web on {web_listen}",
            dns_addrs.join(", ")
        ));
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        loop {
            tokio::select! {
                _ = hup.recv() => {
                    // READY=1 follows from the reload thread once it is done
                    crate::sdnotify::notify("RELOADING=1\nSTATUS=reloading the configuration and feeds");
                    let _ = trigger_tx.send(Trigger::Reload);
                    certs.reload();
                }
                _ = term.recv() => break,
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        tracing::info!("shutting down");
        crate::sdnotify::notify("STOPPING=1\nSTATUS=storing the last events and stopping");
        let _ = trigger_tx.send(Trigger::Stop);
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    // the last events of the run go to the store before exit
    pipeline.finish();
    Ok(ExitCode::SUCCESS)
}

/// The resolver's settings from `[dns]`; each listen address gets one
/// SO_REUSEPORT UDP socket per worker thread.
fn dns_settings(
    d: &DnsConfig,
    upstreams: &[parapet_dns::UpstreamAddr],
    threads: usize,
) -> Settings {
    Settings {
        listen: d.listen.clone(),
        upstreams: upstreams.to_vec(),
        upstream_tls: None,
        upstream_timeout: Duration::from_millis(d.upstream_timeout_ms),
        attempt_timeout: Duration::from_millis(d.attempt_timeout_ms),
        cache: CacheConfig {
            capacity: d.cache_size,
            max_ttl: d.max_ttl,
            max_negative_ttl: d.max_negative_ttl,
            max_stale: if d.serve_stale {
                d.max_stale_seconds
            } else {
                0
            },
        },
        udp_payload: d.udp_payload,
        tcp_idle_timeout: Duration::from_millis(d.tcp_idle_timeout_ms),
        tcp_max_connections: d.tcp_max_connections,
        udp_sockets_per_listener: threads,
        rate_limit: parapet_dns::RateLimit {
            responses_per_second: d.rate_limit.responses_per_second,
            slip: d.rate_limit.slip,
            ipv4_prefix: d.rate_limit.ipv4_prefix,
            ipv6_prefix: d.rate_limit.ipv6_prefix,
        },
        stale: StaleSettings {
            enabled: d.serve_stale,
            answer_ttl: d.stale_answer_ttl,
            client_timeout: Duration::from_millis(d.stale_answer_client_timeout_ms),
        },
    }
}

/// `text` (Prometheus exposition) with `node="NAME"` added to every sample's
/// labels, last, so series from several nodes stay apart once aggregated.
/// `text` with the queries the spool dropped as one more sample of
/// `parapet_events_dropped_total` (`reason="spool_full"`), next to the
/// event queue's own: a family's samples must be one group.
fn with_spool_drops(text: &str, dropped: &std::sync::atomic::AtomicU64) -> String {
    let n = dropped.load(std::sync::atomic::Ordering::Relaxed);
    let mut out = String::with_capacity(text.len() + 80);
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("parapet_events_dropped_total") {
            out.push_str(&format!(
                "parapet_events_dropped_total{{reason=\"spool_full\"}} {n}\n"
            ));
        }
    }
    out
}

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
fn every_sample_names_the_node() {
    let text = "# HELP a x\n# TYPE a counter\na 3\nb{feed=\"f\"} 1\nc{} 2\n";
    assert_eq!(
        with_node_label(text, "n1"),
        "# HELP a x\n# TYPE a counter\na{node=\"n1\"} 3\nb{feed=\"f\",node=\"n1\"} 1\nc{node=\"n1\"} 2\n"
    );
}

/// How full the event queue between the resolver and the pipeline is.
fn event_queue_metrics(text: &mut String, queue: &crossbeam_channel::Receiver<QueryEvent>) {
    use std::fmt::Write;
    let _ = writeln!(
        text,
        "# HELP parapet_event_queue_depth Query events waiting in the queue from the resolver to storage.\n\
         # TYPE parapet_event_queue_depth gauge\nparapet_event_queue_depth {}\n\
         # HELP parapet_event_queue_capacity Size of that queue ([dns] event_queue); past it events are dropped.\n\
         # TYPE parapet_event_queue_capacity gauge\nparapet_event_queue_capacity {}",
        queue.len(),
        queue.capacity().unwrap_or(0)
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
