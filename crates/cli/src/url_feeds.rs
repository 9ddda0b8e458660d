//! Feeds fetched from URLs on a schedule (`[[feeds]] url = …`).
//!
//! Each URL feed has a thread of its own, so a slow vendor delays nothing
//! else: it fetches (a conditional GET), checks that the body parses, keeps
//! it as the feed's last good copy under `[store] path/feeds/` and wakes the
//! reload thread, which loads the copy like a feed file. A failed fetch
//! leaves the copy alone, so the last good version stays in force; it is
//! logged, counted and raised as a `feed.fetch_failed` alert.
//!
//! On a shared database (`[store] url`) only the node holding the feed's
//! lease fetches; it publishes what it fetched as the database feed of the
//! same name, which every node (itself included) loads as with
//! `source = "database"`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{RecvTimeoutError, Sender};
use parapet_core::alert::{Severity, Signal};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_detect::feed::{self, FeedFormat};
use parapet_feeds::http::copy::{Copy, FetchState, sha256_hex};
use parapet_feeds::http::{self, Fetched, UrlSource};

use crate::config::Config;
use crate::loader::{SUPPLIER_TENANT, Trigger};

pub const DEFAULT_REFRESH_SECONDS: u64 = 3600;
/// The alert rule of a failed fetch.
pub const FETCH_FAILED: &str = "feed.fetch_failed";

/// The fetch state of every URL feed, by name, for metrics.
pub type Statuses = Arc<Mutex<BTreeMap<String, FetchState>>>;

/// One URL feed as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlFeed {
    pub source: UrlSource,
    pub format: FeedFormat,
    pub refresh: Duration,
}

/// The URL feeds of `config`, by name.
pub fn url_feeds(config: &Config) -> BTreeMap<String, UrlFeed> {
    config
        .feeds
        .iter()
        .filter_map(|f| {
            let url = f.url.as_ref()?.get_ref();
            let name = f.name.get_ref();
            let mut source = UrlSource::new(name, url);
            source.ca_file = f.ca_file.as_ref().map(|p| config.resolve(p));
            source.max_bytes = f.max_bytes.unwrap_or(http::DEFAULT_MAX_BYTES);
            if let Some(s) = f.connect_timeout_seconds {
                source.connect_timeout = Duration::from_secs(s);
            }
            if let Some(s) = f.read_timeout_seconds {
                source.read_timeout = Duration::from_secs(s);
            }
            let feed = UrlFeed {
                source,
                format: f.format.into(),
                refresh: Duration::from_secs(f.refresh_seconds.unwrap_or(DEFAULT_REFRESH_SECONDS)),
            };
            Some((name.clone(), feed))
        })
        .collect()
}

/// Where the URL feeds' copies live: `[store] path/feeds`.
pub fn copy_dir(config: &Config) -> PathBuf {
    config.resolve(&config.store.path).join("feeds")
}

/// Whether the URL feeds go through a shared database.
pub fn shared(config: &Config) -> bool {
    config.store.database_url().is_some()
}

/// What every fetch thread shares.
struct Context {
    config: Config,
    wake: Sender<Trigger>,
    alerts: Option<Sender<Signal>>,
    statuses: Statuses,
}

struct Worker {
    feed: UrlFeed,
    stop: Sender<()>,
}

/// The fetch threads, one per URL feed, following config reloads.
pub struct Fetchers {
    workers: HashMap<String, Worker>,
    statuses: Statuses,
    wake: Sender<Trigger>,
    alerts: Option<Sender<Signal>>,
}

impl Fetchers {
    pub fn new(wake: Sender<Trigger>, alerts: Option<Sender<Signal>>, statuses: Statuses) -> Self {
        Self {
            workers: HashMap::new(),
            statuses,
            wake,
            alerts,
        }
    }

    /// Starts a thread for each URL feed of `config` not yet fetched as
    /// configured there, and stops those of feeds changed or gone.
    pub fn update(&mut self, config: &Config) {
        let wanted = url_feeds(config);
        self.workers.retain(|name, w| {
            let keep = wanted.get(name) == Some(&w.feed);
            if !keep {
                let _ = w.stop.send(());
            }
            keep
        });
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|name, _| wanted.contains_key(name));
        let ctx = Arc::new(Context {
            config: config.clone(),
            wake: self.wake.clone(),
            alerts: self.alerts.clone(),
            statuses: self.statuses.clone(),
        });
        for (name, feed) in wanted {
            if self.workers.contains_key(&name) {
                continue;
            }
            let (stop, stopped) = crossbeam_channel::bounded(1);
            let (ctx, f) = (ctx.clone(), feed.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("parapet-fetch-{name}"))
                .spawn(move || fetch_loop(&ctx, &f, &stopped));
            match spawned {
                Ok(_) => {
                    self.workers.insert(name, Worker { feed, stop });
                }
                Err(e) => tracing::error!(feed = %name, "cannot start the fetch thread: {e}"),
            }
        }
    }
}

/// Fetches `feed` every refresh until told to stop (or its sender is gone).
fn fetch_loop(ctx: &Context, feed: &UrlFeed, stop: &crossbeam_channel::Receiver<()>) {
    let mut store: Option<Box<dyn parapet_store::Db>> = None;
    loop {
        run_once(ctx, feed, &mut store);
        match stop.recv_timeout(feed.refresh) {
            Err(RecvTimeoutError::Timeout) => continue,
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// On a shared database: whether this node holds the feed's lease (and so
/// fetches). A lease lasts two refreshes and a bit, so another node takes
/// over when the holder has missed two.
fn holds_lease(
    ctx: &Context,
    feed: &UrlFeed,
    store: &mut Option<Box<dyn parapet_store::Db>>,
) -> Result<bool, String> {
    if store.is_none() {
        *store = Some(ctx.config.open_store().map_err(|e| format!("{e:#}"))?);
    }
    let db = store.as_mut().ok_or("no store")?;
    let ttl = feed.refresh * 2 + Duration::from_secs(30);
    db.try_lease(
        &format!("feed-fetch:{}", feed.source.name),
        SystemTime::now(),
        ttl,
    )
    .map_err(|e| {
        *store = None;
        e.to_string()
    })
}

/// One scheduled fetch of `feed`, with its bookkeeping.
fn run_once(ctx: &Context, feed: &UrlFeed, store: &mut Option<Box<dyn parapet_store::Db>>) {
    let name = &feed.source.name;
    let shared = shared(&ctx.config);
    if shared {
        match holds_lease(ctx, feed, store) {
            Ok(true) => {}
            Ok(false) => {
                tracing::debug!(feed = %name, "url feed: another node holds the lease and fetches");
                return;
            }
            Err(e) => {
                tracing::error!(feed = %name, "url feed: cannot take the fetch lease: {e}");
                return;
            }
        }
    }
    let copy = Copy::new(&copy_dir(&ctx.config), name);
    let mut state = copy.read_state();
    let current =
        state.url == feed.source.url && state.format == feed.format.as_str() && copy.holds(&state);
    let prior = if current {
        state.validators.clone()
    } else {
        http::Validators::default()
    };
    state.url = feed.source.url.clone();
    state.last_fetch = now_unix();
    state.fetches += 1;
    let started = std::time::Instant::now();
    let outcome = match http::fetch(&feed.source, &prior) {
        Ok(Fetched::NotModified) => {
            tracing::debug!(feed = %name, "url feed not modified");
            Ok(false)
        }
        Ok(Fetched::Body {
            bytes,
            validators,
            url,
        }) => keep_if_good(feed, &copy, &mut state, &bytes, validators, &url, current),
        Err(e) => Err(e.to_string()),
    };
    let outcome = outcome.and_then(|changed| {
        if shared {
            publish(feed, &copy, &state, store)?;
        }
        Ok(changed)
    });
    match outcome {
        Ok(changed) => {
            state.last_success = state.last_fetch;
            state.last_error = None;
            if changed {
                state.last_change = state.last_fetch;
                tracing::info!(
                    feed = %name,
                    entries = state.entries,
                    bytes = state.bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "fetched a new version of url feed {name}"
                );
                let _ = ctx.wake.send(Trigger::Fetched);
            }
        }
        Err(message) => {
            state.failures += 1;
            state.last_error = Some(message.clone());
            state.last_error_at = state.last_fetch;
            let kept = if state.sha256.is_empty() {
                "it has no good version yet, so it blocks nothing until a fetch succeeds"
            } else {
                "the last good version stays in force"
            };
            tracing::error!(feed = %name, "url feed fetch failed: {message}; {kept}");
            raise(
                ctx,
                name,
                format!("feed `{name}` could not be fetched; {kept}"),
                message,
            );
        }
    }
    if let Err(e) = copy.write_state(&state) {
        tracing::error!(feed = %name, "cannot write the fetch state of url feed {name}: {e}");
    }
    ctx.statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.clone(), state);
}

/// Keeps a fetched body as the feed's copy when it parses as the feed's
/// format; a body that does not parse is an error and changes nothing.
/// `Ok(true)` when the copy changed.
fn keep_if_good(
    feed: &UrlFeed,
    copy: &Copy,
    state: &mut FetchState,
    bytes: &[u8],
    validators: http::Validators,
    url: &str,
    current: bool,
) -> Result<bool, String> {
    let entries = match feed::parse_feed(bytes, feed.format, url) {
        Ok(parsed) => parsed.rules.triggers() as u64,
        Err(errors) => {
            let first = errors.first().map(ToString::to_string).unwrap_or_default();
            return Err(format!(
                "feed `{}`: {url}: not a valid {} feed ({} error(s)): {first}",
                feed.source.name,
                feed.format.as_str(),
                errors.len()
            ));
        }
    };
    let sha256 = sha256_hex(bytes);
    let changed = !(current && sha256 == state.sha256);
    if changed {
        copy.write_body(bytes).map_err(|e| {
            format!(
                "feed `{}`: cannot keep the fetched copy at {}: {e}",
                feed.source.name,
                copy.body_path().display()
            )
        })?;
    }
    state.validators = validators;
    state.format = feed.format.as_str().to_string();
    state.bytes = bytes.len() as u64;
    state.sha256 = sha256;
    state.entries = entries;
    Ok(changed)
}

/// Publishes the copy for the other nodes unless the database already has
/// it (the same bytes publish as the same version).
fn publish(
    feed: &UrlFeed,
    copy: &Copy,
    state: &FetchState,
    store: &mut Option<Box<dyn parapet_store::Db>>,
) -> Result<(), String> {
    let name = &feed.source.name;
    let db = store.as_mut().ok_or("no store")?;
    let published = db
        .feed_version(name)
        .map_err(|e| format!("feed `{name}`: cannot read the published version: {e}"))?;
    if published.is_some_and(|v| v.sha256 == state.sha256) {
        return Ok(());
    }
    let bytes = copy
        .read_body()
        .map_err(|e| format!("feed `{name}`: cannot read its copy: {e}"))?;
    let v = db
        .publish_feed(name, &bytes, SystemTime::now())
        .map_err(|e| format!("feed `{name}`: cannot publish it: {e}"))?;
    tracing::info!(feed = %name, version = v.version, "published url feed {name} for every node");
    Ok(())
}

fn raise(ctx: &Context, name: &str, reason: String, evidence: String) {
    if let Some(tx) = &ctx.alerts {
        let _ = tx.send(Signal {
            time: SystemTime::now(),
            tenant: Arc::from(SUPPLIER_TENANT),
            rule: FETCH_FAILED,
            severity: Severity::High,
            domain: name.to_string(),
            client: ClientPseudonym([0; 8]),
            feed: Some(Arc::from(name)),
            reason,
            evidence,
            folded: None,
        });
    }
}

/// A metric: name, type, help and its value from a feed's fetch state.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&FetchState) -> u64,
);

/// The URL feeds' fetch figures as Prometheus samples.
pub fn render_metrics(text: &mut String, statuses: &Mutex<BTreeMap<String, FetchState>>) {
    use std::fmt::Write;
    let statuses = statuses.lock().unwrap_or_else(|e| e.into_inner());
    if statuses.is_empty() {
        return;
    }
    let series: [Series; 5] = [
        (
            "parapet_feed_fetches_total",
            "counter",
            "Fetches of each URL feed by this node.",
            |s| s.fetches,
        ),
        (
            "parapet_feed_fetch_failures_total",
            "counter",
            "Fetches of each URL feed that failed (the last good version stays in force).",
            |s| s.failures,
        ),
        (
            "parapet_feed_last_fetch_timestamp_seconds",
            "gauge",
            "When each URL feed was last fetched, successfully or not.",
            |s| s.last_fetch,
        ),
        (
            "parapet_feed_last_fetch_error_timestamp_seconds",
            "gauge",
            "When a fetch of each URL feed last failed (0: never).",
            |s| s.last_error_at,
        ),
        (
            "parapet_feed_fetch_healthy",
            "gauge",
            "1 when the last fetch of each URL feed succeeded.",
            |s| u64::from(s.last_error.is_none()),
        ),
    ];
    for (metric, kind, help, value) in series {
        let _ = writeln!(text, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
        for (name, s) in statuses.iter() {
            let name = name.replace(['\\', '"', '\n'], "_");
            let _ = writeln!(text, "{metric}{{feed=\"{name}\"}} {}", value(s));
        }
    }
}

/// Prints each URL feed's fetch state, as this node's fetcher left it under
/// `[store] path/feeds`; on a shared database also the version published
/// for every node (fetched by whichever node holds the feed's lease).
/// Returns whether every URL feed is healthy (its last fetch succeeded).
pub fn print_status(config: &Config) -> anyhow::Result<bool> {
    let feeds = url_feeds(config);
    if feeds.is_empty() {
        return Ok(true);
    }
    let mut store = if shared(config) {
        Some(config.open_store()?)
    } else {
        None
    };
    let dir = copy_dir(config);
    let when = |t: u64| match t {
        0 => "never".to_string(),
        t => parapet_core::calendar::format_local(t as i64),
    };
    let mut healthy = true;
    for (name, feed) in &feeds {
        let s = Copy::new(&dir, name).read_state();
        println!(
            "{name}\t{} ({} format, every {} s)",
            feed.source.url,
            feed.format.as_str(),
            feed.refresh.as_secs()
        );
        println!(
            "  entries {}\tlast fetch {}\tlast success {}\tlast new version {}\tfetches {}\tfailures {}",
            s.entries,
            when(s.last_fetch),
            when(s.last_success),
            when(s.last_change),
            s.fetches,
            s.failures
        );
        match &s.last_error {
            Some(e) => println!("  last error ({}): {e}", when(s.last_error_at)),
            None => println!("  last error: none"),
        }
        if let Some(db) = store.as_mut() {
            match db.feed_version(name)? {
                Some(v) => println!(
                    "  published for every node: version {} (sha256 {}) at {}",
                    v.version,
                    v.sha256,
                    parapet_core::calendar::format_local(v.published_at / 1000)
                ),
                None => println!("  published for every node: not yet"),
            }
            if s.fetches == 0 {
                println!("  (this node has not fetched it: another node holds its lease)");
            }
            healthy &= s.last_error.is_none();
        } else {
            healthy &= s.last_error.is_none() && s.last_success > 0;
        }
    }
    Ok(healthy)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(feed: &str) -> anyhow::Result<Config> {
        Config::parse(
            &format!("[[feeds]]\nname = \"v\"\n{feed}"),
            Path::new("c.toml"),
        )
    }

    #[test]
    fn url_feeds_are_checked_with_their_line() {
        let cfg = parse(
            "url = \"https://h.test/hosts.gz\"\nformat = \"hosts\"\nrefresh_seconds = 300\nca_file = \"ca.pem\"\nmax_bytes = 1000\n",
        )
        .unwrap();
        let feeds = url_feeds(&cfg);
        let v = &feeds["v"];
        assert_eq!(v.refresh, Duration::from_secs(300));
        assert_eq!(v.source.max_bytes, 1000);
        assert_eq!(v.source.ca_file.as_deref(), Some(Path::new("./ca.pem")));
        assert_eq!(v.source.read_timeout, http::DEFAULT_READ_TIMEOUT);
        let defaults =
            url_feeds(&parse("url = \"http://h.test/d\"\nformat = \"domains\"\n").unwrap());
        assert_eq!(
            defaults["v"].refresh,
            Duration::from_secs(DEFAULT_REFRESH_SECONDS)
        );
        assert_eq!(defaults["v"].source.max_bytes, http::DEFAULT_MAX_BYTES);
        for (feed, says) in [
            (
                "url = \"ftp://h.test/x\"\n",
                "is not an http:// or https:// URL",
            ),
            (
                "url = \"https://h.test/x\"\npath = \"x.txt\"\n",
                "has no path or source",
            ),
            (
                "url = \"http://h.test/x\"\nca_file = \"ca.pem\"\n",
                "ca_file needs an https:// URL",
            ),
            (
                "url = \"https://h.test/x\"\nrefresh_seconds = 0\n",
                "refresh_seconds must be at least 1",
            ),
        ] {
            let err = parse(&format!("{feed}format = \"domains\"\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("c.toml:3: [[feeds]] url: feed `v`"),
                "{err}"
            );
            assert!(err.contains(says), "{says}: {err}");
        }
        let err = Config::parse(
            "[[feeds]]\nname = \"a/b\"\nurl = \"https://h.test/x\"\nformat = \"domains\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("names its copy on disk"), "{err}");
    }

    #[test]
    fn fetch_figures_render_per_feed() {
        let statuses = Mutex::new(BTreeMap::from([(
            "v".to_string(),
            FetchState {
                fetches: 3,
                failures: 1,
                last_fetch: 100,
                last_error_at: 90,
                ..FetchState::default()
            },
        )]));
        let mut text = String::new();
        render_metrics(&mut text, &statuses);
        for line in [
            "parapet_feed_fetches_total{feed=\"v\"} 3",
            "parapet_feed_fetch_failures_total{feed=\"v\"} 1",
            "parapet_feed_last_fetch_timestamp_seconds{feed=\"v\"} 100",
            "parapet_feed_last_fetch_error_timestamp_seconds{feed=\"v\"} 90",
            "parapet_feed_fetch_healthy{feed=\"v\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}:\n{text}");
        }
    }
}
