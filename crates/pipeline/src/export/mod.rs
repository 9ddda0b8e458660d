//! SIEM exports (`[[exports]]`): alerts, blocked queries or all queries
//! sent to syslog (RFC 5424 over UDP, TCP or TLS), an HTTP collector (JSON
//! lines or Splunk HEC) or a rotated JSON-lines file.
//!
//! Delivered from the store, not from memory: each destination has a
//! cursor in the store (the last alert id and query-event id it accepted),
//! advanced only after the destination took a batch, so a SIEM outage or
//! a restart loses nothing and a backlog is worked through in bounded
//! batches. On a shared database one node delivers each destination, under
//! the lease `export <name>`. Delivery is at least once: a batch whose
//! acceptance was not confirmed is sent again.

mod format;
mod sink;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parapet_store::{Db, ExportCursor, StoreError};
use serde::Deserialize;

pub use format::{Record, hec};

/// `[[exports]] kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    Syslog,
    Http,
    File,
}

/// `[[exports]] protocol` (syslog only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogProtocol {
    Udp,
    #[default]
    Tcp,
    Tls,
}

/// `[[exports]] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    #[default]
    Json,
    Cef,
    SplunkHec,
}

/// `[[exports]] what`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportWhat {
    Alerts,
    /// Queries Parapet acted on (blocked, nodata, dropped, local data).
    Blocked,
    /// Every query, pseudonymised as stored.
    Queries,
}

/// One `[[exports]]` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Names the destination's cursor, lease and metrics; by default
    /// `kind:address` (the host only for http) or `file:path`.
    #[serde(default)]
    pub name: Option<String>,
    pub kind: ExportKind,
    /// syslog: `host:port`; http: the collector's URL.
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub protocol: SyslogProtocol,
    #[serde(default)]
    pub format: ExportFormat,
    #[serde(default = "default_what")]
    pub what: Vec<ExportWhat>,
    /// Only these tenants' records; every tenant when empty.
    #[serde(default)]
    pub tenants: Vec<String>,
    /// PEM CA certificates trusted for TLS (syslog over TLS, https).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// http: extra request headers (e.g. `Authorization = "Splunk TOKEN"`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// file: where the JSON lines go.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// file: rotate once the file would pass this many MiB.
    #[serde(default = "default_rotate_mb")]
    pub rotate_mb: u64,
    /// file: rotated files kept (`path.1` … `path.N`).
    #[serde(default = "default_keep")]
    pub keep: u32,
    /// Connect, write and confirm timeout of one batch, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_what() -> Vec<ExportWhat> {
    vec![ExportWhat::Alerts]
}
fn default_rotate_mb() -> u64 {
    100
}
fn default_keep() -> u32 {
    10
}
fn default_timeout() -> u64 {
    10
}

impl ExportConfig {
    /// The destination's name (see [`ExportConfig::name`]).
    pub fn name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match self.kind {
            ExportKind::Syslog => format!("syslog:{}", self.address.as_deref().unwrap_or("")),
            ExportKind::Http => {
                let url = self.address.as_deref().unwrap_or("");
                let rest = url.split_once("://").map_or(url, |(_, r)| r);
                let host = rest.split(['/', '?']).next().unwrap_or("");
                // credentials in the URL never reach a label or a log
                let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
                format!("http:{host}")
            }
            ExportKind::File => format!(
                "file:{}",
                self.path
                    .as_deref()
                    .unwrap_or(std::path::Path::new(""))
                    .display()
            ),
        }
    }

    /// What is wrong with this destination, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        let address = self.address.as_deref().unwrap_or("");
        match self.kind {
            ExportKind::Syslog => {
                if address
                    .rsplit_once(':')
                    .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                {
                    return Err(format!(
                        "address: syslog needs `host:port`, not `{address}`"
                    ));
                }
                if self.format == ExportFormat::SplunkHec {
                    return Err("format: syslog takes \"json\" or \"cef\"".into());
                }
                if self.ca_file.is_some() && self.protocol != SyslogProtocol::Tls {
                    return Err("ca_file: only with protocol = \"tls\"".into());
                }
            }
            ExportKind::Http => {
                if !(address.starts_with("http://") || address.starts_with("https://")) {
                    return Err(format!(
                        "address: http needs an http:// or https:// URL, not `{address}`"
                    ));
                }
                if self.format == ExportFormat::Cef {
                    return Err("format: http takes \"json\" or \"splunk-hec\"".into());
                }
            }
            ExportKind::File => {
                if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                    return Err("path: a file export needs a path".into());
                }
                if self.format == ExportFormat::SplunkHec {
                    return Err("format: file takes \"json\" or \"cef\"".into());
                }
            }
        }
        if self.kind != ExportKind::Http && !self.headers.is_empty() {
            return Err("headers: only for kind = \"http\"".into());
        }
        if self.what.is_empty() {
            return Err("what: name at least one of \"alerts\", \"blocked\", \"queries\"".into());
        }
        if self.rotate_mb == 0 {
            return Err("rotate_mb: must be at least 1".into());
        }
        Ok(())
    }

    fn wants(&self, w: ExportWhat) -> bool {
        self.what.contains(&w)
    }
}

/// Alerts read per batch: each carries its history and evidence.
const ALERT_BATCH: usize = 100;
/// Query events read per batch: a destination far behind catches up in
/// steps of this many rows, never holding more.
const EVENT_BATCH: usize = 1000;
/// How often a destination that is up to date looks for more.
const POLL: Duration = Duration::from_secs(1);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);
const LEASE: Duration = Duration::from_secs(30);
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// On a shared database, how long after an id is seen the rows below it
/// are taken as committed (nodes take ids and commit in any order; a batch
/// commits well within this).
const SETTLE: Duration = Duration::from_secs(10);
/// How often the alert counts for `/metrics` are read.
const COUNT_EVERY: Duration = Duration::from_secs(10);

/// One destination's figures, for `/metrics`.
#[derive(Debug, Default)]
pub struct DestStats {
    records: AtomicU64,
    failures: AtomicU64,
    /// Ids between the cursor and the newest stored, per stream.
    alerts_behind: AtomicI64,
    events_behind: AtomicI64,
    last_success: AtomicI64,
}

/// Every destination's figures, and the alert counts.
#[derive(Debug, Default)]
pub struct ExportStats {
    dests: Vec<(String, Arc<DestStats>)>,
}

fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl ExportStats {
    /// Appends the export metrics in the Prometheus text format (each
    /// family announced even with no destination, so a dashboard's
    /// queries always name a known metric).
    pub fn render(&self, text: &mut String) {
        use std::fmt::Write;
        let families: [(&str, &str, &str); 4] = [
            (
                "parapet_export_records_total",
                "counter",
                "Records (alerts, query events) each export destination accepted.",
            ),
            (
                "parapet_export_failures_total",
                "counter",
                "Failed batch deliveries to each export destination (retried).",
            ),
            (
                "parapet_export_backlog",
                "gauge",
                "Stored ids not yet sent to each export destination, by stream (an upper bound on records).",
            ),
            (
                "parapet_export_last_success_timestamp_seconds",
                "gauge",
                "When each export destination last accepted a batch or was found up to date.",
            ),
        ];
        for (i, (name, kind, help)) in families.iter().enumerate() {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (d, s) in &self.dests {
                let d = label(d);
                let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
                let _ = match i {
                    0 => writeln!(text, "{name}{{destination=\"{d}\"}} {}", ld(&s.records)),
                    1 => writeln!(text, "{name}{{destination=\"{d}\"}} {}", ld(&s.failures)),
                    2 => writeln!(
                        text,
                        "{name}{{destination=\"{d}\",stream=\"alerts\"}} {}\n{name}{{destination=\"{d}\",stream=\"events\"}} {}",
                        s.alerts_behind.load(Ordering::Relaxed).max(0),
                        s.events_behind.load(Ordering::Relaxed).max(0)
                    ),
                    _ => writeln!(
                        text,
                        "{name}{{destination=\"{d}\"}} {}",
                        s.last_success.load(Ordering::Relaxed)
                    ),
                };
            }
        }
    }
}

/// Alert counts by tenant, rule and status, read from the store every
/// [`COUNT_EVERY`] by the notifier's thread.
#[derive(Debug, Default)]
pub struct AlertCounts {
    counts: std::sync::Mutex<Vec<(String, String, String, u64)>>,
    last: std::sync::Mutex<Option<Instant>>,
}

impl AlertCounts {
    /// Re-reads the counts when they are older than [`COUNT_EVERY`].
    pub fn refresh(&self, store: &mut dyn Db) {
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < COUNT_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        match store.alert_counts() {
            Ok(c) => *self.counts.lock().unwrap_or_else(|e| e.into_inner()) = c,
            Err(e) => tracing::debug!("cannot count alerts: {e}"),
        }
    }

    pub fn render(&self, text: &mut String) {
        use std::fmt::Write;
        let _ = writeln!(
            text,
            "# HELP parapet_alerts Stored alerts by tenant, rule and status.\n# TYPE parapet_alerts gauge"
        );
        for (t, r, s, n) in self.counts.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(
                text,
                "parapet_alerts{{tenant=\"{}\",rule=\"{}\",status=\"{}\"}} {n}",
                label(t),
                label(r),
                label(s)
            );
        }
    }
}

/// Delivers one destination from the store, on its own thread and
/// connection.
pub struct Exporter {
    cfg: ExportConfig,
    name: String,
    store: Box<dyn Db>,
    sink: Box<dyn sink::Sink>,
    stats: Arc<DestStats>,
    /// Newest ids seen and when, for [`SETTLE`] on a shared database.
    seen: VecDeque<(Instant, ExportCursor)>,
    /// The stored cursor as this node last wrote it; read again after an
    /// error or when the lease was not held (another node may have moved it).
    cursor: Option<ExportCursor>,
}

/// Builds one exporter per destination (`base`: the folder relative paths
/// resolve against; `host`: the HOSTNAME of syslog messages and the
/// `host` of HEC events) and their shared figures.
pub fn exporters(
    cfgs: Vec<(ExportConfig, Box<dyn Db>)>,
    host: &str,
    base: &std::path::Path,
) -> Result<(Vec<Exporter>, Arc<ExportStats>), String> {
    let mut out = Vec::new();
    let mut stats = ExportStats::default();
    for (cfg, store) in cfgs {
        let name = cfg.name();
        let sink = sink::open(&cfg, host, base).map_err(|e| format!("[[exports]] {name}: {e}"))?;
        let s = Arc::new(DestStats::default());
        stats.dests.push((name.clone(), s.clone()));
        out.push(Exporter {
            cfg,
            name,
            store,
            sink,
            stats: s,
            seen: VecDeque::new(),
            cursor: None,
        });
    }
    Ok((out, Arc::new(stats)))
}

impl Exporter {
    /// Delivers until the process exits: while this node holds the
    /// destination's lease, batch after batch until up to date, then a
    /// look every [`POLL`]; after a failure, a retry with backoff.
    pub fn run(mut self) {
        let job = format!("export {}", self.name);
        let mut holder_until: Option<Instant> = None;
        let mut last_claim: Option<Instant> = None;
        let mut backoff = FIRST_RETRY;
        loop {
            if last_claim.is_none_or(|t| t.elapsed() >= LEASE_RENEW) {
                last_claim = Some(Instant::now());
                holder_until = match self.store.try_lease(&job, SystemTime::now(), LEASE) {
                    Ok(true) => Some(Instant::now() + LEASE),
                    Ok(false) => None,
                    Err(e) => {
                        tracing::warn!(target: "parapet::export", "cannot take the lease {job}: {e}");
                        holder_until
                    }
                };
            }
            if holder_until.is_some_and(|t| Instant::now() < t) {
                match self.pass() {
                    Ok(more) => {
                        backoff = FIRST_RETRY;
                        if more {
                            continue;
                        }
                    }
                    Err(e) => {
                        self.cursor = None;
                        self.stats.failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            target: "parapet::export",
                            "export {} failed, retrying in {} s: {e}",
                            self.name,
                            backoff.as_secs()
                        );
                        std::thread::sleep(backoff);
                        backoff = (backoff * 2).min(MAX_RETRY);
                        continue;
                    }
                }
            } else {
                self.cursor = None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// The ids up to which rows are readable in order: the newest now, or
    /// on a shared database the newest seen [`SETTLE`] ago.
    fn horizon(&mut self) -> Result<ExportCursor, StoreError> {
        let now = self.store.max_ids()?;
        if self.store.ids_commit_in_order() {
            return Ok(now);
        }
        if self.seen.back().is_none_or(|(_, c)| *c != now) {
            self.seen.push_back((Instant::now(), now));
        }
        let mut settled = None;
        while let Some((t, c)) = self.seen.front() {
            if t.elapsed() < SETTLE {
                break;
            }
            settled = Some(*c);
            if self.seen.len() == 1 {
                break;
            }
            self.seen.pop_front();
        }
        // nothing settled yet: wait, reading nothing
        Ok(settled.unwrap_or_default())
    }

    /// Sends the next batch of alerts and of query events; `Ok(true)` when
    /// more are waiting.
    fn pass(&mut self) -> Result<bool, String> {
        let e = |e: StoreError| e.to_string();
        let mut cur = match self.cursor {
            Some(c) => c,
            None => self.store.export_cursor(&self.name).map_err(e)?,
        };
        self.cursor = Some(cur);
        let top = self.store.max_ids().map_err(e)?;
        // ids start again at 1 when a table has been emptied (SQLite)
        if top.events < cur.events {
            cur.events = 0;
        }
        if top.alerts < cur.alerts {
            cur.alerts = 0;
        }
        let horizon = self.horizon().map_err(e)?;
        let mut more = false;
        if self.cfg.wants(ExportWhat::Alerts) && cur.alerts < horizon.alerts {
            let alerts = self
                .store
                .alerts_after(cur.alerts, horizon.alerts, ALERT_BATCH)
                .map_err(e)?;
            let full = alerts.len() == ALERT_BATCH;
            let next = match alerts.last() {
                Some(a) if full => a.id,
                _ => horizon.alerts,
            };
            let records: Vec<Record> = alerts
                .into_iter()
                .map(Record::Alert)
                .filter(|r| self.tenant_wanted(r))
                .collect();
            self.send(&records)?;
            cur.alerts = next;
            self.store.set_export_cursor(&self.name, cur).map_err(e)?;
            self.cursor = Some(cur);
            more |= full;
        }
        let all = self.cfg.wants(ExportWhat::Queries);
        if (all || self.cfg.wants(ExportWhat::Blocked)) && cur.events < horizon.events {
            let rows = self
                .store
                .events_after(cur.events, horizon.events, !all, EVENT_BATCH)
                .map_err(e)?;
            let full = rows.len() == EVENT_BATCH;
            let next = match rows.last() {
                Some(r) if full => r.id,
                _ => horizon.events,
            };
            let records: Vec<Record> = rows
                .into_iter()
                .map(Record::Query)
                .filter(|r| self.tenant_wanted(r))
                .collect();
            self.send(&records)?;
            cur.events = next;
            self.store.set_export_cursor(&self.name, cur).map_err(e)?;
            self.cursor = Some(cur);
            more |= full;
        }
        let behind = |top: i64, at: i64| top.saturating_sub(at);
        self.stats.alerts_behind.store(
            if self.cfg.wants(ExportWhat::Alerts) {
                behind(top.alerts, cur.alerts)
            } else {
                0
            },
            Ordering::Relaxed,
        );
        self.stats.events_behind.store(
            if all || self.cfg.wants(ExportWhat::Blocked) {
                behind(top.events, cur.events)
            } else {
                0
            },
            Ordering::Relaxed,
        );
        self.stats.last_success.store(
            parapet_store::unix_millis(SystemTime::now()) / 1000,
            Ordering::Relaxed,
        );
        Ok(more)
    }

    fn tenant_wanted(&self, r: &Record) -> bool {
        self.cfg.tenants.is_empty() || self.cfg.tenants.iter().any(|t| t == r.tenant())
    }

    fn send(&mut self, records: &[Record]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        self.sink.send(records)?;
        self.stats
            .records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        tracing::debug!(target: "parapet::export", records = records.len(), "sent to {}", self.name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ExportConfig {
        serde_json::from_value(serde_json::from_str(text).unwrap()).unwrap()
    }

    #[test]
    fn names_hide_url_credentials_and_validation_names_the_field() {
        let http = parse(
            r#"{"kind": "http", "address": "https://u:p@splunk.test:8088/services/collector?token=x"}"#,
        );
        assert_eq!(http.name(), "http:splunk.test:8088");
        assert_eq!(http.validate(), Ok(()));
        let cases = [
            (r#"{"kind": "syslog", "address": "siem.test"}"#, "address:"),
            (
                r#"{"kind": "syslog", "address": "siem.test:514", "format": "splunk-hec"}"#,
                "format:",
            ),
            (
                r#"{"kind": "syslog", "address": "siem.test:514", "ca_file": "ca.pem"}"#,
                "ca_file:",
            ),
            (r#"{"kind": "http", "address": "splunk.test"}"#, "address:"),
            (r#"{"kind": "file"}"#, "path:"),
            (
                r#"{"kind": "file", "path": "x", "headers": {"A": "b"}}"#,
                "headers:",
            ),
            (r#"{"kind": "file", "path": "x", "what": []}"#, "what:"),
        ];
        for (text, field) in cases {
            let err = parse(text).validate().unwrap_err();
            assert!(err.starts_with(field), "{text}: {err}");
        }
        let ok = parse(r#"{"kind": "syslog", "address": "[::1]:6514", "protocol": "tls"}"#);
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.what, [ExportWhat::Alerts], "alerts by default");
    }
}
