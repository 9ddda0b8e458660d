//! Storage: one interface ([`Store`]) for everything Parapet keeps, with an
//! embedded SQLite implementation ([`SqliteStore`], the default) and a
//! PostgreSQL one ([`PgStore`]) that several resolver nodes share, behind the
//! same traits and tested with the same suite.
//!
//! The interface is synchronous and called from Parapet's own background
//! threads (the event writer, the retention job), never from the resolver's
//! hot path: query events reach it through a bounded channel and are written
//! in batches, one transaction each.

pub mod accounts;
mod pg;
mod pg_accounts;
pub mod pgtest;
mod rules;
mod sqlite;
mod sqlite_accounts;
mod sqlite_assets;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

use parapet_assurance::store::ReportSources;
use parapet_core::alert::{Alert, AlertStatus, Signal};
use parapet_core::event::{EventRun, OwnedRun, PrivateEvent, fold_events};

pub use accounts::AccountStore;
pub use pg::{PgStore, redact};
pub use rules::{cutoff, unix_millis};
pub use sqlite::SqliteStore;

/// Everything a command or the server needs from storage, as one object:
/// the backend (SQLite or PostgreSQL) is chosen once, where the store is
/// opened, and nothing else names it.
///
/// The rest is what several nodes sharing one database need: a node name
/// stored with events and alerts, leases so a background job runs once
/// across the cluster, feeds published once for every node, and a heartbeat
/// per node saying which feed versions it serves.
pub trait Db: Store + ReportSources<Error = StoreError> + AccountStore {
    /// Where the data lives, for logs (a path, or a URL without password).
    fn location(&self) -> String;

    /// The node this process is: written with its events and alerts.
    fn set_node(&mut self, node: &str);

    /// Takes or renews the lease on `job` for this node until `now + ttl`.
    /// `true` when this node holds it (and so runs the job); `false` while
    /// another node holds an unexpired lease.
    fn try_lease(&mut self, job: &str, now: SystemTime, ttl: Duration) -> Result<bool, StoreError>;

    /// Stores a feed's bytes under `name` for every node; the version goes
    /// up by one unless the same bytes are already published.
    fn publish_feed(
        &mut self,
        name: &str,
        content: &[u8],
        now: SystemTime,
    ) -> Result<FeedVersion, StoreError>;

    /// The published version of a feed, without its bytes.
    fn feed_version(&mut self, name: &str) -> Result<Option<FeedVersion>, StoreError>;

    /// A published feed with its bytes.
    fn load_feed(&mut self, name: &str) -> Result<Option<(FeedVersion, Vec<u8>)>, StoreError>;

    /// Records that this node is alive and the feed versions it serves
    /// (`name=version`, space-separated).
    fn heartbeat(
        &mut self,
        started_at: i64,
        now: SystemTime,
        feeds: &str,
    ) -> Result<(), StoreError>;

    /// Every node that has reported, by name.
    fn nodes(&mut self) -> Result<Vec<NodeStatus>, StoreError>;
}

/// A feed as published in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedVersion {
    pub name: String,
    /// 1 for the first publication, one more for each change.
    pub version: i64,
    pub sha256: String,
    /// Unix milliseconds.
    pub published_at: i64,
}

/// A node's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub seen_at: i64,
    /// `name=version` of each database feed it serves, space-separated.
    pub feeds: String,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// What a query event keeps, field by field: the single source of
/// `parapet privacy` and of the schema's comments.
pub const EVENT_FIELDS: &[(&str, &str)] = &[
    (
        "time",
        "when the query arrived (milliseconds); for a row of repeats, the first of them",
    ),
    (
        "tenant",
        "the council (tenant) whose network the query came from",
    ),
    (
        "client",
        "a pseudonym of the client address: HMAC-SHA256 under the operator's key, first 64 bits",
    ),
    ("qname", "the name asked for (the Internet service visited)"),
    ("qtype", "the record type asked for (A, AAAA, MX...)"),
    (
        "rcode",
        "the answer's response code (none when no answer was sent)",
    ),
    (
        "action",
        "what Parapet did: resolved, blocked, nodata, dropped, local_data, passthru, allowlisted, monitored, rejected",
    ),
    ("feed", "the threat feed that matched, if any"),
    (
        "node",
        "the resolver node that answered (several nodes on one database)",
    ),
    (
        "queries",
        "how many identical queries (same tenant, client, name, type, answer, action, feed) of one storage batch (about flush_interval_ms) and UTC hour this row stands for",
    ),
    (
        "last_time",
        "when the last of those repeats arrived (milliseconds; none for a single query)",
    ),
];

/// What the hourly aggregates keep.
pub const AGGREGATE_FIELDS: &[(&str, &str)] = &[
    ("tenant", "the council"),
    ("qname", "the name asked for"),
    ("hour", "the hour (UTC) the queries fell in"),
    ("action", "what Parapet did"),
    ("queries", "how many queries"),
];

/// How long stored data is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Raw query events, in days.
    pub events_days: u32,
    /// Hourly aggregates, in days.
    pub aggregates_days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events_days: 30,
            aggregates_days: 400,
        }
    }
}

/// Rows removed by a retention run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Event rows (a row may stand for several queries: `queries`).
    pub events: u64,
    pub aggregates: u64,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub tenant: Option<String>,
    pub status: Option<AlertStatus>,
    pub rule: Option<String>,
    /// Only alerts last seen at or after this (unix milliseconds).
    pub since: Option<i64>,
    pub limit: Option<usize>,
}

/// What the detector must remember across restarts, per tenant: since when
/// it has been learning, and the registrable domains it has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenDomains {
    pub tenant: String,
    /// Unix milliseconds.
    pub since: i64,
    pub domains: Vec<String>,
}

/// A DMARC aggregate report as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcReportRow {
    pub org_name: String,
    pub report_id: String,
    /// The domain of `policy_published`.
    pub domain: String,
    /// Unix seconds.
    pub begin: i64,
    pub end: i64,
    pub policy: String,
    /// The file it came from.
    pub source: String,
    pub records: Vec<DmarcRecordRow>,
}

/// One row of an aggregate report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcRecordRow {
    pub source_ip: String,
    pub count: u64,
    pub disposition: String,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    pub header_from: String,
    pub envelope_from: Option<String>,
    /// `domain/selector=result ...`
    pub dkim: String,
    /// `domain/scope=result ...`
    pub spf: String,
}

/// A TLS-RPT report as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReportRow {
    pub org_name: String,
    pub report_id: String,
    pub begin: i64,
    pub end: i64,
    pub source: String,
    pub results: Vec<TlsResultRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsResultRow {
    pub policy_type: String,
    pub policy_domain: String,
    pub successful: u64,
    pub failed: u64,
    /// `result-type sending-ip receiving-mx count`, one per line.
    pub failures: String,
}

/// One Mail Check of one domain, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailCheckRow {
    pub domain: String,
    /// Unix milliseconds.
    pub checked_at: i64,
    pub worst: Option<String>,
    pub findings: Vec<MailFinding>,
    /// The JSON report, raw records included.
    pub report: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailFinding {
    pub severity: String,
    pub code: String,
    pub message: String,
}

/// What changed since the previous check of the same domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailCheckDiff {
    /// When the previous check ran (unix milliseconds); `None` for the first.
    pub previous_at: Option<i64>,
    pub new: Vec<MailFinding>,
    pub fixed: Vec<MailFinding>,
}

/// Whether an import added a report or found it already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    New,
    Duplicate,
}

/// What a domain's DMARC reports say, per sending source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DmarcSummary {
    pub domain: String,
    pub reports: u64,
    pub messages: u64,
    /// Messages that passed DMARC (DKIM or SPF aligned).
    pub dmarc_pass: u64,
    pub dkim_aligned: u64,
    pub spf_aligned: u64,
    /// Unix seconds: the span the reports cover.
    pub first: Option<i64>,
    pub last: Option<i64>,
    /// Busiest first.
    pub sources: Vec<SourceSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceSummary {
    pub source_ip: String,
    pub messages: u64,
    pub dmarc_pass: u64,
    pub dkim_aligned: u64,
    pub spf_aligned: u64,
    pub quarantined: u64,
    pub rejected: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no alert with id {0}")]
    NoSuchAlert(i64),
    #[error("an account named {0} already exists")]
    DuplicateUser(String),
    #[error("no incident with id {0}")]
    NoSuchIncident(i64),
    #[error("no asset import with id {0}")]
    NoSuchImport(i64),
    #[error("an incident with reference {0} already exists for this tenant")]
    DuplicateIncident(String),
    #[error(
        "alert {id} is {from}: it cannot become {to} (new → investigating → resolved | false_positive; closed alerts reopen as investigating)"
    )]
    BadTransition {
        id: i64,
        from: AlertStatus,
        to: AlertStatus,
    },
    #[error("database {path}: stored value `{value}` is not valid for {field}")]
    Corrupt {
        path: String,
        field: &'static str,
        value: String,
    },
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database {location}: {source}")]
    Postgres {
        location: String,
        #[source]
        source: postgres::Error,
    },
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this Parapet knows ({known}): upgrade Parapet"
    )]
    TooNew {
        path: String,
        found: u32,
        known: u32,
    },
}

/// Everything Parapet stores. Implementations write each call in one
/// transaction: a crash loses the call in progress, never half of it.
pub trait Store: Send {
    /// Writes a batch of query events and counts them into the hourly
    /// aggregates (at once, or as pending counts when the backend
    /// [`defers_aggregates`](Store::defers_aggregates)). The repeats of one
    /// query in the batch are one row (`queries` counts them). Returns the
    /// number of events (queries) written, not rows.
    fn insert_events(&mut self, events: &[PrivateEvent]) -> Result<usize, StoreError> {
        let runs = fold_events(events);
        self.insert_runs(&runs.iter().map(OwnedRun::as_run).collect::<Vec<_>>())
    }

    /// [`Store::insert_events`] for a batch already folded
    /// ([`fold_events`]): one row per run. Returns the number of queries
    /// the runs stand for.
    fn insert_runs(&mut self, runs: &[EventRun<'_>]) -> Result<usize, StoreError>;

    /// Whether [`Store::insert_events`] leaves hourly counts for
    /// [`Store::fold_aggregates`] to fold (PostgreSQL: many nodes write at
    /// once, and an in-place upsert per batch halves their write rate).
    fn defers_aggregates(&self) -> bool {
        false
    }

    /// Folds the hourly counts that batches appended into the hourly
    /// aggregates; returns the aggregate rows written. Readers never need
    /// it (they see folded and pending counts alike, through the view
    /// `query_hourly_all`); it keeps the pending rows few. SQLite updates
    /// the aggregates in place as it writes and has nothing to fold.
    fn fold_aggregates(&mut self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Deletes events and aggregates older than `retention` allows at `now`.
    fn purge(&mut self, now: SystemTime, retention: Retention) -> Result<Purged, StoreError>;

    /// Number of raw events stored.
    fn event_count(&mut self) -> Result<u64, StoreError>;

    /// The schema version in force.
    fn schema_version(&mut self) -> Result<u32, StoreError>;

    /// Folds detection signals into alerts (one per tenant, rule and
    /// domain). A resolved alert that fires again becomes `new` again; a
    /// false positive stays closed and only counts. Returns the alerts
    /// touched, marked `true` when this call raised them (created, or
    /// reopened from resolved): those are the ones to notify.
    fn record_signals(&mut self, signals: &[Signal]) -> Result<Vec<(i64, bool)>, StoreError>;

    /// Alerts matching `filter`, most recently seen first.
    fn list_alerts(&mut self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError>;

    /// One alert with its history.
    fn alert(&mut self, id: i64) -> Result<Alert, StoreError>;

    /// Moves an alert through the workflow, recording who, when and why.
    fn set_alert_status(
        &mut self,
        id: i64,
        to: AlertStatus,
        by: &str,
        note: &str,
        now: SystemTime,
    ) -> Result<Alert, StoreError>;

    /// Stores a DMARC aggregate report and its rows in one transaction,
    /// unless a report with the same organisation and id is already stored.
    fn import_dmarc(
        &mut self,
        report: &DmarcReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError>;

    /// Stores a TLS-RPT report, de-duplicated by organisation and id.
    fn import_tlsrpt(
        &mut self,
        report: &TlsReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError>;

    /// Sources, volumes and alignment from a domain's stored reports.
    fn dmarc_summary(&mut self, domain: &str) -> Result<DmarcSummary, StoreError>;

    /// DKIM selectors seen signing mail for `domain` in stored DMARC reports.
    fn dkim_selectors(&mut self, domain: &str) -> Result<Vec<String>, StoreError>;

    /// Stores a Mail Check result and says what changed since the last
    /// check of the same domain.
    fn save_mailcheck(&mut self, check: &MailCheckRow) -> Result<MailCheckDiff, StoreError>;

    /// What the detector learnt before, per tenant.
    fn load_seen(&mut self) -> Result<Vec<SeenDomains>, StoreError>;

    /// Remembers tenants' learning starts and newly seen domains.
    fn save_seen(
        &mut self,
        learning_started: &[(std::sync::Arc<str>, SystemTime)],
        domains: &[(std::sync::Arc<str>, String, SystemTime)],
    ) -> Result<(), StoreError>;
}
