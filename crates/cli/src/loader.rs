//! Loading feeds and configuration into resolver snapshots, and keeping
//! them current: on SIGHUP, and when a feed file or the config file changes.
//!
//! A feed that fails to load keeps its last good version in force; the
//! failure is logged with file and line and counted in metrics. Nothing
//! fails open silently.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parapet_core::alert::{Severity, Signal};
use parapet_core::name::text_to_key;
use parapet_core::policy::{FeedMode, FeedRules, FeedSpec, NameSet, PolicySet};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_core::tenant::TenantId;
use parapet_detect::feed::{self, FeedFormat};
use parapet_dns::{BlockMode, BlockResponse, FeedStatus, Metrics, Resolver, Snapshot};

use crate::config::{BlockResponseKind, Config, EMBEDDED_FEED, EMBEDDED_FEED_NAME, FeedModeConfig};

/// Where a feed's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    File(PathBuf),
    Embedded,
    /// Published in the store under this name (`parapet feeds publish`).
    Database(String),
    /// Taken by zone transfer (the feed's name): rules arrive from its
    /// thread ([`Trigger::Xfr`]); the copy on disk is read at start.
    Xfr(String),
}

/// Identity of a file version: a change to any of these means reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

struct FeedState {
    stamp: Option<Stamp>,
    rules: Option<Arc<FeedRules>>,
    status: FeedStatus,
}

/// One feed as configured, resolved.
struct FeedDef {
    name: String,
    source: Source,
    format: FeedFormat,
    category: String,
    mode: FeedMode,
    tenants: Option<Vec<String>>,
    /// Fetched from this URL (`crate::url_feeds`): its source is the copy
    /// the fetcher keeps, which does not exist before the first fetch.
    url: Option<String>,
}

pub struct Loader {
    config: Config,
    config_stamp: Option<Stamp>,
    defs: Vec<FeedDef>,
    /// Keyed by (source, format): survives config reloads that keep a feed.
    states: HashMap<(Source, FeedFormat), FeedState>,
    metrics: Arc<Metrics>,
    /// Where load failures are raised as alerts (never fail open silently).
    alerts: Option<crossbeam_channel::Sender<Signal>>,
    /// The store, opened on first use by a feed with `source = "database"`.
    db: Option<Box<dyn parapet_store::Db>>,
    /// The database feeds in force and their versions (`name`, version), for
    /// the node's heartbeat and metrics.
    served: Arc<std::sync::Mutex<Vec<(String, i64)>>>,
    /// The URL feeds' fetch threads, once started.
    fetchers: Option<crate::url_feeds::Fetchers>,
    fetch_statuses: crate::url_feeds::Statuses,
    /// The database allowlist (`parapet_store::AllowlistStore`), when this
    /// loader applies it: each entry's name and expiry (unix ms), as last
    /// polled, and the names in force in the snapshot.
    db_allows: Option<DbAllows>,
}

/// The database allowlist as the loader last saw it.
#[derive(Default)]
struct DbAllows {
    entries: Vec<(String, i64)>,
    in_force: Vec<String>,
    /// The last poll failed (logged once per outage, not every poll).
    failing: bool,
}

/// The tenant of alerts about Parapet itself rather than a council's traffic.
pub const SUPPLIER_TENANT: &str = "supplier";

/// The store for database feeds, opened on first use (and again after an
/// error dropped it).
fn open_db<'a>(
    db: &'a mut Option<Box<dyn parapet_store::Db>>,
    config: &Config,
) -> Result<&'a mut Box<dyn parapet_store::Db>, String> {
    if db.is_none() {
        *db = Some(config.open_store().map_err(|e| format!("{e:#}"))?);
    }
    db.as_mut().ok_or_else(|| "no store".to_string())
}

fn db_error(label: &str, message: String) -> feed::FeedError {
    feed::FeedError {
        file: label.to_string(),
        line: 0,
        field: "database".into(),
        message,
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn defs_of(config: &Config) -> Vec<FeedDef> {
    if config.source.is_none() && config.feeds.is_empty() {
        return vec![FeedDef {
            name: EMBEDDED_FEED_NAME.into(),
            source: Source::Embedded,
            format: FeedFormat::Rpz,
            category: "malware".into(),
            mode: FeedMode::Block,
            tenants: None,
            url: None,
        }];
    }
    config
        .feeds
        .iter()
        .map(|f| FeedDef {
            name: f.name.get_ref().clone(),
            source: match f.source {
                _ if !f.xfr_primaries().is_empty() => Source::Xfr(f.name.get_ref().clone()),
                // a URL feed is loaded from the fetcher's copy, or on a
                // shared database from what the fetching node published
                _ if f.url.is_some() && crate::url_feeds::shared(config) => {
                    Source::Database(f.name.get_ref().clone())
                }
                _ if f.url.is_some() => {
                    Source::File(crate::url_feeds::copy_dir(config).join(f.name.get_ref()))
                }
                crate::config::FeedSourceConfig::File => Source::File(config.resolve(&f.path)),
                crate::config::FeedSourceConfig::Database => {
                    Source::Database(f.name.get_ref().clone())
                }
            },
            format: f.format.into(),
            category: f.category.clone(),
            mode: match f.mode {
                FeedModeConfig::Block => FeedMode::Block,
                FeedModeConfig::Monitor => FeedMode::Monitor,
            },
            tenants: f
                .tenants
                .as_ref()
                .map(|ts| ts.iter().map(|t| t.get_ref().clone()).collect()),
            url: f.url.as_ref().map(|u| u.get_ref().clone()),
        })
        .collect()
}

impl Loader {
    pub fn new(config: Config, metrics: Arc<Metrics>) -> Self {
        let config_stamp = config.source.as_deref().and_then(stamp);
        Self {
            defs: defs_of(&config),
            config,
            config_stamp,
            states: HashMap::new(),
            metrics,
            alerts: None,
            db: None,
            served: Arc::default(),
            fetchers: None,
            fetch_statuses: Arc::default(),
            db_allows: None,
        }
    }

    /// Adds the store's allowlist entries in force to `[dns] allowlist`,
    /// polled with the feeds (`serve` only: other commands build no
    /// snapshot worth a store).
    pub fn allowlist_from_store(&mut self) {
        self.db_allows = Some(DbAllows::default());
    }

    /// Polls the database allowlist; true when the names in force changed
    /// (an entry added, removed, or expired). While the store cannot be
    /// read, the entries last read stay, each until its own expiry.
    fn refresh_db_allows(&mut self) -> bool {
        let Some(allows) = self.db_allows.as_mut() else {
            return false;
        };
        let now = SystemTime::now();
        match open_db(&mut self.db, &self.config)
            .and_then(|db| db.active_allows(now).map_err(|e| e.to_string()))
        {
            Ok(entries) => {
                if std::mem::take(&mut allows.failing) {
                    tracing::info!("database allowlist read again");
                }
                allows.entries = entries
                    .into_iter()
                    .map(|e| (e.name, e.expires_at))
                    .collect();
            }
            Err(e) => {
                if !std::mem::replace(&mut allows.failing, true) {
                    tracing::warn!(
                        "database allowlist not read, keeping the entries in force until they expire: {e}"
                    );
                }
                self.db = None;
            }
        }
        let now_ms = parapet_store::unix_millis(now);
        let mut names: Vec<String> = (allows.entries.iter())
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(n, _)| n.clone())
            .collect();
        names.sort_unstable();
        names.dedup();
        if names == allows.in_force {
            return false;
        }
        // the first few names say what changed; the count says how many
        let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
        tracing::info!(
            names = names.len(),
            "database allowlist changed: {}{}",
            if shown.is_empty() {
                "-".to_string()
            } else {
                shown.join(" ")
            },
            if names.len() > shown.len() {
                " ..."
            } else {
                ""
            }
        );
        allows.in_force = names;
        true
    }

    /// Starts fetching the URL feeds, each on a thread of its own that
    /// sends `wake` when it brings a new version.
    pub fn start_fetching(&mut self, wake: crossbeam_channel::Sender<Trigger>) {
        let mut f =
            crate::url_feeds::Fetchers::new(wake, self.alerts.clone(), self.fetch_statuses.clone());
        f.update(&self.config);
        self.fetchers = Some(f);
    }

    /// The URL feeds' fetch states, kept current, for metrics.
    pub fn fetch_statuses(&self) -> crate::url_feeds::Statuses {
        self.fetch_statuses.clone()
    }

    /// The database feeds in force with their versions, kept current.
    pub fn served_versions(&self) -> Arc<std::sync::Mutex<Vec<(String, i64)>>> {
        self.served.clone()
    }

    /// Raises feed and config load failures as alerts on `tx`.
    pub fn raise_alerts_on(&mut self, tx: crossbeam_channel::Sender<Signal>) {
        self.alerts = Some(tx);
    }

    fn raise(&self, rule: &'static str, subject: &str, reason: String, evidence: String) {
        if let Some(tx) = &self.alerts {
            let _ = tx.send(Signal {
                time: SystemTime::now(),
                tenant: Arc::from(SUPPLIER_TENANT),
                rule,
                severity: Severity::High,
                domain: subject.to_string(),
                client: ClientPseudonym([0; 8]),
                feed: (rule == "feed.load_failed").then(|| Arc::from(subject)),
                reason,
                evidence,
                folded: None,
            });
        }
    }

    /// With feeds by zone transfer, counts what their next IXFR's delta
    /// needs in the policy in force, here on the reload thread rather than
    /// on the delta's way to being in force.
    fn prepare_deltas(&self, resolver: &Resolver) {
        if self.defs.iter().any(|d| matches!(d.source, Source::Xfr(_))) {
            resolver.snapshot().policy.prepare_deltas();
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Loads every feed (first start) and builds the first snapshot.
    pub fn initial(&mut self) -> Snapshot {
        self.refresh_feeds(true);
        self.build()
    }

    /// Re-reads the config file. On error the running configuration stays.
    /// Returns whether the config changed.
    pub fn reload_config(&mut self) -> bool {
        let Some(path) = self.config.source.clone() else {
            return false;
        };
        self.config_stamp = stamp(&path);
        match Config::load(&path) {
            Ok(new) => {
                warn_restart_needed(&self.config, &new);
                self.defs = defs_of(&new);
                if let Some(f) = &mut self.fetchers {
                    f.update(&new);
                }
                self.config = new;
                // forget feeds no longer configured
                let live: Vec<_> = self
                    .defs
                    .iter()
                    .map(|d| (d.source.clone(), d.format))
                    .collect();
                self.states.retain(|k, _| live.contains(k));
                true
            }
            Err(e) => {
                self.metrics
                    .reload_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!("config reload failed, keeping the running configuration: {e:#}");
                let file = self
                    .config
                    .source
                    .as_deref()
                    .map_or_else(|| "config".to_string(), |p| p.display().to_string());
                self.raise(
                    "config.load_failed",
                    &file,
                    "the configuration file failed to load; the running configuration stays in force".into(),
                    format!("{e:#}"),
                );
                false
            }
        }
    }

    /// True when the config file changed on disk since it was last read.
    pub fn config_changed(&self) -> bool {
        match &self.config.source {
            Some(p) => stamp(p) != self.config_stamp,
            None => false,
        }
    }

    /// Parses feeds whose files changed (all of them with `force`). Returns
    /// whether any feed's rules were replaced.
    pub fn refresh_feeds(&mut self, force: bool) -> bool {
        let mut changed = false;
        for def in &self.defs {
            let key = (def.source.clone(), def.format);
            let st = self.states.entry(key).or_insert_with(|| FeedState {
                stamp: None,
                rules: None,
                status: FeedStatus::default(),
            });
            st.status.name = def.name.clone();
            st.status.category = def.category.clone();
            st.status.format = def.format.as_str().to_string();
            if let Source::Xfr(name) = &def.source {
                // transfers replace the rules; the disk copy only at start
                if st.rules.is_none() && st.status.last_error.is_none() {
                    changed |= load_xfr_copy(&xfr_dir(&self.config), name, st);
                }
                continue;
            }
            let (now_stamp, label) = match &def.source {
                Source::File(p) => (stamp(p), p.display().to_string()),
                Source::Xfr(_) => continue,
                Source::Embedded => (None, "<embedded example feed>".to_string()),
                Source::Database(name) => {
                    // the published version stands in for the file's stamp
                    let version = open_db(&mut self.db, &self.config)
                        .and_then(|db| db.feed_version(name).map_err(|e| e.to_string()))
                        .ok()
                        .flatten()
                        .map(|v| v.version);
                    (
                        version.map(|v| Stamp {
                            modified: None,
                            len: v as u64,
                            inode: 0,
                        }),
                        format!("database feed {name}"),
                    )
                }
            };
            if let Some(url) = def.url.as_ref().filter(|_| now_stamp.is_none())
                && st.rules.is_none()
            {
                // nothing fetched yet: the fetcher reports its own failures
                st.status.last_error = Some(format!("not fetched yet from {url}"));
                continue;
            }
            let first = st.rules.is_none() && st.status.last_error.is_none();
            if !force && !first && now_stamp == st.stamp {
                continue;
            }
            st.stamp = now_stamp;
            let started = std::time::Instant::now();
            let mut db_version = None;
            let parsed = match &def.source {
                Source::File(p) => feed::load_feed(p, def.format),
                Source::Xfr(_) => continue,
                Source::Embedded => feed::parse_feed(EMBEDDED_FEED, def.format, &label),
                Source::Database(name) => {
                    match open_db(&mut self.db, &self.config)
                        .and_then(|db| db.load_feed(name).map_err(|e| e.to_string()))
                    {
                        Ok(Some((v, bytes))) => {
                            db_version = Some(v.version);
                            feed::parse_feed(&bytes, def.format, &format!("{label} v{}", v.version))
                        }
                        Ok(None) => Err(vec![db_error(
                            &label,
                            format!("not published yet (parapet feeds publish {name} FILE)"),
                        )]),
                        Err(e) => {
                            // reconnect next time
                            self.db = None;
                            Err(vec![db_error(&label, e)])
                        }
                    }
                }
            };
            match parsed {
                Ok(pf) => {
                    for w in &pf.warnings {
                        tracing::warn!(feed = %def.name, "{label}:{}: skipped: {}", w.line, w.message);
                    }
                    tracing::info!(
                        feed = %def.name,
                        entries = pf.rules.triggers(),
                        ms = started.elapsed().as_millis() as u64,
                        "loaded feed {label}"
                    );
                    st.status.entries = pf.rules.triggers() as u64;
                    st.status.last_load = now_unix();
                    st.status.last_error = None;
                    st.rules = Some(Arc::new(pf.rules));
                    changed = true;
                    if let Some(v) = db_version {
                        let mut served = self.served.lock().unwrap_or_else(|e| e.into_inner());
                        served.retain(|(n, _)| *n != def.name);
                        served.push((def.name.clone(), v));
                        served.sort();
                    }
                }
                Err(errors) => {
                    st.status.load_failures += 1;
                    st.status.last_error = errors.first().map(ToString::to_string);
                    for e in errors.iter().take(5) {
                        tracing::error!(feed = %def.name, "feed failed to load: {e}");
                    }
                    let kept = if st.rules.is_some() {
                        tracing::error!(feed = %def.name, "keeping the last good version of feed {}", def.name);
                        "the last good version stays in force"
                    } else {
                        tracing::error!(feed = %def.name, "feed {} has no good version: it blocks nothing until fixed", def.name);
                        "it has no good version, so it blocks nothing until fixed"
                    };
                    let first = errors.first().map(ToString::to_string).unwrap_or_default();
                    self.raise(
                        "feed.load_failed",
                        &def.name,
                        format!(
                            "feed `{}` failed to load ({} error(s)); {kept}",
                            def.name,
                            errors.len()
                        ),
                        first,
                    );
                }
            }
        }
        self.publish_status();
        changed | self.refresh_db_allows()
    }

    fn publish_status(&self) {
        let statuses = self
            .defs
            .iter()
            .filter_map(|d| self.states.get(&(d.source.clone(), d.format)))
            .map(|s| s.status.clone())
            .collect();
        self.metrics.set_feeds(statuses);
    }

    /// Compiles the current configuration and feeds into a snapshot.
    pub fn build(&self) -> Snapshot {
        let cfg = &self.config;
        let tenant_names = cfg.tenant_names();
        let tenant_id = |n: &str| {
            tenant_names
                .iter()
                .position(|t| t == n)
                .map(|i| i as TenantId)
        };
        let scoped: Vec<Option<Vec<TenantId>>> = self
            .defs
            .iter()
            .map(|d| {
                d.tenants
                    .as_ref()
                    .map(|ts| ts.iter().filter_map(|t| tenant_id(t)).collect())
            })
            .collect();
        let empty = FeedRules::new();
        let specs: Vec<FeedSpec<'_>> = self
            .defs
            .iter()
            .enumerate()
            .map(|(i, d)| FeedSpec {
                id: i as u16,
                rules: self
                    .states
                    .get(&(d.source.clone(), d.format))
                    .and_then(|s| s.rules.as_deref())
                    .unwrap_or(&empty),
                mode: d.mode,
                tenants: scoped[i].as_deref(),
            })
            .collect();
        let db_allows = self.db_allows.iter().flat_map(|a| &a.in_force);
        let allow_keys: Vec<Vec<u8>> = (cfg.dns.allowlist.iter().map(|a| a.get_ref()))
            .chain(db_allows)
            .filter_map(|a| text_to_key(a).ok())
            .collect();
        let allow = NameSet::new(allow_keys.iter().map(Vec::as_slice));
        let policy = PolicySet::compile(allow, &specs, tenant_names.len());
        let tenants = cfg.tenant_map().unwrap_or_default();
        let block = BlockResponse {
            mode: match cfg.dns.block_response {
                BlockResponseKind::Nxdomain => BlockMode::Nxdomain,
                BlockResponseKind::Sinkhole => BlockMode::Sinkhole {
                    v4: cfg.dns.sinkhole_ipv4,
                    v6: cfg.dns.sinkhole_ipv6,
                },
            },
            ttl: cfg.dns.sinkhole_ttl,
        };
        let feed_names: Vec<String> = self.defs.iter().map(|d| d.name.clone()).collect();
        // tenant i of the config is TenantId i + 1 (0 is the default)
        let exempt: Vec<TenantId> = (cfg.tenants.iter().enumerate())
            .filter(|(_, t)| !t.rate_limit)
            .map(|(i, _)| (i + 1) as TenantId)
            .collect();
        Snapshot::new(
            policy,
            tenants,
            &tenant_names,
            &feed_names,
            block,
            &self.metrics,
        )
        .with_access(parapet_dns::Access::new(&cfg.dns.allow, &cfg.dns.deny))
        .with_rate_limit_exempt(&exempt)
        .with_trusted_ecs(
            cfg.tenants
                .iter()
                .any(|t| !t.trusted_ecs.is_empty())
                .then(|| cfg.trusted_ecs_map().unwrap_or_default()),
        )
    }
}

fn warn_restart_needed(old: &Config, new: &Config) {
    let o = &old.dns;
    let n = &new.dns;
    if o.listen != n.listen
        || o.upstreams != n.upstreams
        || o.cache_size != n.cache_size
        || o.threads != n.threads
        || o.udp_payload != n.udp_payload
        || o.rate_limit != n.rate_limit
        || o.tls.as_ref().map(|t| &t.listen) != n.tls.as_ref().map(|t| &t.listen)
        || o.https.as_ref().map(|t| &t.listen) != n.https.as_ref().map(|t| &t.listen)
        || old.web.listen != new.web.listen
    {
        tracing::warn!(
            "listen addresses, upstreams, cache size, threads, [dns.rate_limit] and [web] take effect at restart; feeds, tenants, allowlist, allow/deny and block response were reloaded"
        );
    }
    let xfr = |c: &Config| -> Vec<String> {
        c.feeds
            .iter()
            .filter(|f| !f.xfr_primaries().is_empty())
            .map(|f| {
                format!(
                    "{}{:?}{:?}{:?}{:?}",
                    f.name.get_ref(),
                    f.zone,
                    f.xfr_primaries(),
                    f.tsig_key.as_ref().map(|k| k.get_ref()),
                    f.refresh_seconds
                )
            })
            .collect()
    };
    if xfr(old) != xfr(new) {
        tracing::warn!("feeds taken by zone transfer (primaries, zones, keys) change at restart");
    }
}

/// What wakes the reload thread.
pub enum Trigger {
    /// SIGHUP: re-read the config and every feed.
    Reload,
    /// What a zone-transfer feed's thread brought.
    Xfr(parapet_feeds::xfr::Event),
    /// A URL feed's fetcher kept a new version: load what changed.
    Fetched,
    Stop,
}

/// Runs until told to stop: reloads on SIGHUP and when files change.
pub fn reload_loop(
    mut loader: Loader,
    resolver: Arc<Resolver>,
    triggers: crossbeam_channel::Receiver<Trigger>,
) {
    loader.prepare_deltas(&resolver);
    loop {
        let interval = loader.config().dns.watch_interval_ms;
        let wait = if interval == 0 {
            Duration::from_secs(3600)
        } else {
            Duration::from_millis(interval)
        };
        let (reread_config, force) = match triggers.recv_timeout(wait) {
            Ok(Trigger::Reload) => {
                tracing::info!("SIGHUP: reloading configuration and feeds");
                (true, true)
            }
            Ok(Trigger::Xfr(ev)) => {
                loader.take_xfr(ev, &resolver);
                continue;
            }
            Ok(Trigger::Fetched) => (false, false),
            Ok(Trigger::Stop) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if interval == 0 {
                    continue;
                }
                let c = loader.config_changed();
                if c {
                    tracing::info!("config file changed: reloading");
                }
                (c, false)
            }
        };
        let config_changed = reread_config && loader.reload_config();
        let feeds_changed = loader.refresh_feeds(force);
        if config_changed || feeds_changed {
            let started = std::time::Instant::now();
            let snap = loader.build();
            resolver.swap(snap);
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                "new policy in force"
            );
            loader.prepare_deltas(&resolver);
            // queries still holding the old snapshot finish within moments
            std::thread::sleep(Duration::from_millis(100));
            release_freed_memory();
        }
        if force {
            // a SIGHUP's reload is done (applied, or refused and logged)
            crate::sdnotify::notify("READY=1\nSTATUS=reloaded");
        }
    }
}

/// Fixes glibc's mmap threshold at 1 MiB for the life of the process, before
/// the first feed loads. By default glibc raises the threshold to the size
/// of each large block freed (up to 32 MiB), so from the second reload on a
/// policy's big tables live in the heap instead of their own mappings, and
/// every other reload of a million-name feed left the replaced copy
/// resident: 130 and 176 MB in turn against 128 MB after the first load.
/// With the threshold fixed, each reload frees its tables to the system
/// (134 MB after each of six reloads against 132 MB after the load;
/// bench/dns/RESULTS.md, optimisation log item 11).
pub fn fix_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets an allocator parameter; it is safe to call
    // at any time from any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Gives the memory of the replaced policy back to the system. glibc keeps
/// freed heap memory for reuse; the tables over 1 MiB have mappings of
/// their own ([`fix_mmap_threshold`]) and go back when freed, and this
/// returns the policy's smaller pieces left free in the heap.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it is
    // safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The folder of the zone-transfer feeds' copies: `<store path>/feeds`.
pub fn xfr_dir(config: &Config) -> PathBuf {
    config.resolve(&config.store.path).join("feeds")
}

/// Loads a zone-transfer feed's last good copy, so that a restart with
/// the primary down still protects. Returns whether rules were loaded.
fn load_xfr_copy(dir: &Path, name: &str, st: &mut FeedState) -> bool {
    let path = parapet_feeds::xfr::rpz_path(dir, name);
    if !path.exists() {
        tracing::info!(feed = %name, "no copy on disk yet: the feed blocks nothing until its first transfer");
        return false;
    }
    match feed::load_feed(&path, FeedFormat::Rpz) {
        Ok(pf) => {
            let saved = parapet_feeds::xfr::read_status(dir, name).unwrap_or_default();
            tracing::info!(feed = %name, entries = pf.rules.len(), serial = ?saved.serial, "loaded the last good copy {}", path.display());
            st.status.entries = pf.rules.len() as u64;
            st.status.last_load = now_unix();
            st.status.serial = saved.serial;
            st.status.last_transfer = saved.last_transfer;
            st.rules = Some(Arc::new(pf.rules));
            true
        }
        Err(errors) => {
            let first = errors.first().map(ToString::to_string).unwrap_or_default();
            tracing::error!(feed = %name, "the copy on disk does not load ({first}); waiting for a transfer");
            false
        }
    }
}

/// Starts a thread per feed taken by zone transfer; each sends what it
/// brings to the reload thread on `triggers`. Returns the zones whose
/// primaries may NOTIFY, for the resolver.
pub fn start_xfr_feeds(
    config: &Config,
    triggers: &crossbeam_channel::Sender<Trigger>,
) -> anyhow::Result<Vec<parapet_dns::NotifyZone>> {
    use parapet_feeds::xfr::{self, Wake, XfrFeed, XfrSpec};
    let mut zones = Vec::new();
    for f in config
        .feeds
        .iter()
        .filter(|f| !f.xfr_primaries().is_empty())
    {
        let name = f.name.get_ref().clone();
        let tsig = match &f.tsig_key {
            None => None,
            Some(k) => {
                let t = config
                    .tsig
                    .iter()
                    .find(|t| t.name.get_ref() == k.get_ref())
                    .ok_or_else(|| {
                        anyhow::anyhow!("feed `{name}`: no [[tsig]] key `{}`", k.get_ref())
                    })?;
                let algorithm = t
                    .algorithm
                    .get_ref()
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("feed `{name}`: {e}"))?;
                Some(
                    xfr::TsigKey::new(t.name.get_ref(), algorithm, t.secret_bytes()?)
                        .map_err(|e| anyhow::anyhow!("feed `{name}`: {e}"))?,
                )
            }
        };
        let zone_text = f.zone.clone().unwrap_or_default();
        let spec = XfrSpec {
            name: name.clone(),
            zone: zone_text.clone(),
            primaries: f.xfr_primaries(),
            tsig,
            refresh: f.refresh_seconds.map(Duration::from_secs),
            dir: xfr_dir(config),
            limits: xfr::Limits::default(),
        };
        let notify_key = spec.tsig.clone();
        let feed = XfrFeed::open(spec).map_err(|e| anyhow::anyhow!(e))?;
        let (wake_tx, wake_rx) = crossbeam_channel::bounded::<Wake>(16);
        let out = triggers.clone();
        std::thread::Builder::new()
            .name(format!("parapet-xfr-{name}"))
            .spawn(move || {
                xfr::run(feed, wake_rx, |ev| {
                    let _ = out.send(Trigger::Xfr(ev));
                });
            })?;
        let key =
            text_to_key(&zone_text).map_err(|e| anyhow::anyhow!("feed `{name}`: zone: {e}"))?;
        zones.push(parapet_dns::NotifyZone {
            zone: key,
            primaries: f.xfr_primaries().iter().map(|a| a.ip()).collect(),
            on_notify: Arc::new(move |notify: &[u8], answer: &mut Vec<u8>| {
                tracing::info!(feed = %name, "NOTIFY from a primary: transferring");
                // a full queue already holds a wake-up
                let _ = wake_tx.try_send(Wake::Notify(std::time::Instant::now()));
                // a signed NOTIFY wants a signed answer, or the primary repeats it
                if let Some(key) = &notify_key
                    && u16::from_be_bytes([notify[10], notify[11]]) > 0
                    && let Err(e) = key.sign_answer(notify, answer, now_unix())
                {
                    tracing::warn!(feed = %name, "NOTIFY answered unsigned: {e}");
                }
            }),
        });
    }
    Ok(zones)
}

impl Loader {
    /// Takes in what a zone-transfer feed's thread brought, and puts the
    /// change in force: in place when the policy can apply the IXFR's
    /// delta, by a full build otherwise.
    pub fn take_xfr(&mut self, ev: parapet_feeds::xfr::Event, resolver: &Resolver) {
        use parapet_feeds::xfr::{Outcome, Update};
        let Some(id) = self
            .defs
            .iter()
            .position(|d| d.source == Source::Xfr(ev.feed.clone()))
        else {
            return;
        };
        let key = (Source::Xfr(ev.feed.clone()), FeedFormat::Rpz);
        let name = ev.feed.clone();
        let started = std::time::Instant::now();
        let mut in_place = false;
        let mut rebuild = false;
        match ev.outcome {
            Outcome::Updated { serial, update } => {
                let Some(st) = self.states.get_mut(&key) else {
                    return;
                };
                let rules = match *update {
                    Update::Full { rules, warnings } => {
                        for w in warnings.iter().take(20) {
                            tracing::warn!(feed = %name, "serial {serial}:{}: skipped: {}", w.line, w.message);
                        }
                        rebuild = true;
                        rules
                    }
                    Update::Delta { delta } => {
                        let snap = resolver.snapshot();
                        if let Some(p) = snap.policy.apply_delta(id as u16, &delta) {
                            resolver.swap(snap.with_policy(p));
                            in_place = true;
                        } else {
                            rebuild = true;
                        }
                        tracing::info!(feed = %name, serial, added = delta.added.len(), removed = delta.removed.len(), in_place, "IXFR");
                        let empty = FeedRules::new();
                        parapet_feeds::xfr::delta::apply(
                            st.rules.as_deref().unwrap_or(&empty),
                            &delta,
                        )
                    }
                };
                st.status.entries = rules.triggers() as u64;
                st.status.last_load = now_unix();
                st.status.last_transfer = now_unix();
                st.status.serial = Some(serial);
                st.status.last_error = None;
                st.rules = Some(Arc::new(rules));
            }
            Outcome::UpToDate { serial } => {
                if let Some(st) = self.states.get_mut(&key) {
                    st.status.serial = Some(serial);
                    st.status.last_error = None;
                }
            }
            Outcome::Failed(message) => {
                tracing::error!(feed = %name, "zone transfer failed: {message}");
                let kept = match self.states.get_mut(&key) {
                    Some(st) => {
                        st.status.load_failures += 1;
                        st.status.last_error = Some(message.clone());
                        st.rules.is_some()
                    }
                    None => false,
                };
                let kept = if kept {
                    "the last good copy stays in force"
                } else {
                    "it has no good copy, so it blocks nothing until a transfer succeeds"
                };
                self.raise(
                    "feed.load_failed",
                    &name,
                    format!("feed `{name}`: zone transfer failed; {kept}"),
                    message,
                );
            }
            Outcome::Stale { serial, since } => {
                tracing::error!(feed = %name, ?serial, "the feed passed its SOA expire time without a successful refresh; still serving it");
                self.raise(
                    "feed.stale",
                    &name,
                    format!(
                        "feed `{name}` (serial {}) passed its SOA expire time without a successful refresh (last success at Unix time {since}); the last good copy stays in force",
                        serial.map_or("none".into(), |s| s.to_string())
                    ),
                    format!("last successful refresh: {since}"),
                );
            }
        }
        if rebuild {
            let snap = self.build();
            resolver.swap(snap);
        }
        if rebuild || in_place {
            let ms = started.elapsed().as_millis() as u64;
            match ev.notified {
                Some(at) => tracing::info!(
                    feed = %name,
                    ms,
                    notify_to_force_ms = at.elapsed().as_millis() as u64,
                    "new policy in force after the NOTIFY"
                ),
                None => tracing::info!(feed = %name, ms, "new policy in force"),
            }
        }
        self.publish_status();
        if rebuild {
            self.prepare_deltas(resolver);
        }
        if rebuild || in_place {
            // queries still holding the old snapshot finish within moments;
            // then the replaced policy, the old rules and the transfer's
            // buffers (freed on the transfer thread's own arena) go back
            std::thread::sleep(Duration::from_millis(100));
            release_freed_memory();
        }
    }
}
