//! Storage: one interface ([`Store`]) for everything Parapet keeps, with an
//! embedded SQLite implementation ([`SqliteStore`], the default) and, in a
//! later step, PostgreSQL for several nodes behind the same trait.
//!
//! The interface is synchronous and called from Parapet's own background
//! threads (the event writer, the retention job), never from the resolver's
//! hot path: query events reach it through a bounded channel and are written
//! in batches, one transaction each.

mod sqlite;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parapet_core::event::PrivateEvent;

pub use sqlite::SqliteStore;

/// What a query event keeps, field by field: the single source of
/// `parapet privacy` and of the schema's comments.
pub const EVENT_FIELDS: &[(&str, &str)] = &[
    ("time", "when the query arrived (milliseconds)"),
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
    pub events: u64,
    pub aggregates: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
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
    /// Writes a batch of query events and folds them into the hourly
    /// aggregates. Returns the number written.
    fn insert_events(&mut self, events: &[PrivateEvent]) -> Result<usize, StoreError>;

    /// Deletes events and aggregates older than `retention` allows at `now`.
    fn purge(&mut self, now: SystemTime, retention: Retention) -> Result<Purged, StoreError>;

    /// Number of raw events stored.
    fn event_count(&mut self) -> Result<u64, StoreError>;

    /// The schema version in force.
    fn schema_version(&mut self) -> Result<u32, StoreError>;
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The cut-off time for data kept `days` days.
pub fn cutoff(now: SystemTime, days: u32) -> i64 {
    unix_millis(
        now.checked_sub(Duration::from_secs(u64::from(days) * 86_400))
            .unwrap_or(UNIX_EPOCH),
    )
}
