//! Query events and what is counted from them: the rows a batch writes, the
//! hourly aggregates, retention, and the totals the dashboard reads. One
//! trait for the data the resolver produces, whichever page or job reads it.

use std::sync::Arc;
use std::time::SystemTime;

use parapet_core::alert::Signal;
use parapet_core::event::{EventRun, OwnedRun, PrivateEvent, fold_events};

use crate::{StoreError, StoredEvent};

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

/// Protective DNS totals of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantTraffic {
    pub tenant: String,
    pub queries: u64,
    /// Every policy action (blocked, nodata, dropped, local data).
    pub blocked: u64,
}

/// One hour of one tenant's traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HourlyTraffic {
    pub tenant: String,
    /// Unix seconds at the start of the hour.
    pub hour: i64,
    pub queries: u64,
    pub blocked: u64,
}

/// Names one batch of query events for good, with the node that cut it
/// (the store's [`ClusterStore::set_node`](crate::ClusterStore::set_node)):
/// the run (when the writing process started, unix milliseconds) and the
/// batch's number in that run. A batch replayed from the spool after a
/// crash or an outage carries the id it was cut with, so the store can
/// tell it already holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId {
    pub run: i64,
    pub seq: i64,
}

/// What detection found in one batch of query events. It is stored in the
/// batch's own transaction ([`EventStore::insert_batch_found`]), so the
/// alerts of a batch are recorded exactly when its events are: a batch
/// replayed from the spool after an outage or a crash raises its alerts
/// then, and a batch already stored raises none again.
#[derive(Debug, Clone, Default)]
pub struct Findings {
    /// Folded into alerts, as [`AlertStore::record_signals`](crate::AlertStore::record_signals) does.
    pub signals: Vec<Signal>,
    /// As [`AlertStore::save_seen`](crate::AlertStore::save_seen) takes them.
    pub learning_started: Vec<(Arc<str>, SystemTime)>,
    pub new_domains: Vec<(Arc<str>, String, SystemTime)>,
}

impl Findings {
    pub fn is_empty(&self) -> bool {
        self.signals.is_empty() && self.learning_started.is_empty() && self.new_domains.is_empty()
    }

    /// Adds `other`'s findings to these.
    pub fn extend(&mut self, other: Findings) {
        self.signals.extend(other.signals);
        self.learning_started.extend(other.learning_started);
        self.new_domains.extend(other.new_domains);
    }
}

/// What [`EventStore::insert_batch_found`] stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchStored {
    /// Queries (not rows) written.
    pub queries: usize,
    /// The alerts the findings touched, `true` for those raised, as
    /// [`AlertStore::record_signals`](crate::AlertStore::record_signals)
    /// returns them.
    pub alerts: Vec<(i64, bool)>,
}

/// How [`EventQuery::name`] matches a stored name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum NameMatch {
    /// The name itself.
    #[default]
    Exact,
    /// The name and every name under it (`example.org` matches
    /// `example.org` and `www.example.org`, not `badexample.org`).
    Suffix,
}

/// The most rows one search returns.
pub const MAX_SEARCH_LIMIT: usize = 500;
/// How deep a search may page (offset plus limit): deeper pages cost a
/// sort of everything before them, and a narrower filter finds them faster.
pub const MAX_SEARCH_DEPTH: usize = 10_000;

/// A search over the stored query events (the page `/queries`, its API and
/// `parapet queries search`): every filter given must hold; newest first
/// (by time, then by id, so pages are stable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// `None`: every tenant (supplier views only).
    pub tenant: Option<String>,
    /// The client's pseudonym.
    pub client: Option<[u8; 8]>,
    /// A name in presentation form, matched as `name_match` says.
    pub name: Option<String>,
    pub name_match: NameMatch,
    /// A registrable domain: the domain and every name under it.
    pub domain: Option<String>,
    pub action: Option<String>,
    /// The feed (rule) that matched.
    pub feed: Option<String>,
    /// Unix milliseconds, inclusive.
    pub since: Option<i64>,
    /// Unix milliseconds, exclusive.
    pub until: Option<i64>,
    pub offset: usize,
    /// At most [`MAX_SEARCH_LIMIT`] (more is cut to it).
    pub limit: usize,
}

/// Query events and their hourly aggregates. Each call is one transaction:
/// a crash loses the call in progress, never half of it. In the reads,
/// `tenant: None` means every tenant (supplier views); callers derive it
/// from the signed-in user, never from the request alone.
pub trait EventStore: Send {
    /// Writes a batch of query events and counts them into the hourly
    /// aggregates (at once, or as pending counts when the backend
    /// [`defers_aggregates`](EventStore::defers_aggregates)). The repeats of
    /// one query in the batch are one row (`queries` counts them). Returns
    /// the number of events (queries) written, not rows.
    fn insert_events(&mut self, events: &[PrivateEvent]) -> Result<usize, StoreError> {
        let runs = fold_events(events);
        self.insert_runs(&runs.iter().map(OwnedRun::as_run).collect::<Vec<_>>())
    }

    /// [`EventStore::insert_events`] for a batch already folded
    /// ([`fold_events`]): one row per run. Returns the number of queries
    /// the runs stand for.
    fn insert_runs(&mut self, runs: &[EventRun<'_>]) -> Result<usize, StoreError>;

    /// [`EventStore::insert_runs`] exactly once per `id` and node: the id
    /// is recorded in the batch's own transaction, and a batch whose id is
    /// already recorded writes nothing and returns `None` (a replay after
    /// a crash, or after a commit whose answer the connection lost).
    fn insert_batch(
        &mut self,
        id: BatchId,
        runs: &[EventRun<'_>],
    ) -> Result<Option<usize>, StoreError> {
        Ok(self
            .insert_batch_found(id, runs, &mut Findings::default)?
            .map(|s| s.queries))
    }

    /// [`EventStore::insert_batch`] with what detection finds in the batch,
    /// in the same transaction: `detect` is called only once the store
    /// knows the batch is new (so a batch already stored is never run
    /// through detection again), and may be called again when the
    /// transaction is retried (it must return the same findings).
    fn insert_batch_found(
        &mut self,
        id: BatchId,
        runs: &[EventRun<'_>],
        detect: &mut dyn FnMut() -> Findings,
    ) -> Result<Option<BatchStored>, StoreError>;

    /// Whether [`EventStore::insert_events`] leaves hourly counts for
    /// [`EventStore::fold_aggregates`] to fold (PostgreSQL: many nodes
    /// write at once, and an in-place upsert per batch halves their write
    /// rate).
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

    /// The stored event rows `query` finds, newest first; at most
    /// [`MAX_SEARCH_LIMIT`], and nothing past [`MAX_SEARCH_DEPTH`].
    fn search_events(&mut self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;

    /// Number of raw events (queries) stored.
    fn event_count(&mut self) -> Result<u64, StoreError>;

    /// Per-tenant totals from the hourly aggregates since `from` (unix seconds).
    fn traffic_totals(
        &mut self,
        tenant: Option<&str>,
        from: i64,
    ) -> Result<Vec<TenantTraffic>, StoreError>;

    /// Per-tenant, per-hour totals since `from`, oldest first.
    fn hourly_traffic(
        &mut self,
        tenant: Option<&str>,
        from: i64,
    ) -> Result<Vec<HourlyTraffic>, StoreError>;

    /// The most blocked names since `from`: `(tenant, qname, queries)`.
    fn top_blocked(
        &mut self,
        tenant: Option<&str>,
        from: i64,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError>;
}
