//! Storage: everything Parapet keeps, behind one trait per kind of data
//! ([`EventStore`], [`AlertStore`], [`MailStore`], [`AccountStore`],
//! [`ClusterStore`], and assurance's own traits), with an embedded SQLite
//! implementation ([`SqliteStore`], the default) and a PostgreSQL one
//! ([`PgStore`]) that several resolver nodes share, tested with the same
//! suite. [`Db`] is all of them at once: what a command or the server holds.
//!
//! The interface is synchronous and called from Parapet's own background
//! threads (the event writer, the retention job), never from the resolver's
//! hot path: query events reach it through a bounded channel and are written
//! in batches, one transaction each.

pub mod accounts;
pub mod alerts;
pub mod allowlist;
pub mod cluster;
pub mod events;
pub mod exports;
pub mod mail;
mod pg;
pub mod pgtest;
mod rules;
pub mod sealed;
mod sqlite;
#[cfg(test)]
mod tests;

use parapet_assurance::store::ReportSources;
use parapet_core::alert::AlertStatus;

pub use accounts::AccountStore;
pub use alerts::{AlertFilter, AlertStore, AlertTally, Notification, OutboxCounts, SeenDomains};
pub use allowlist::{AllowEntry, AllowlistStore, NewAllow};
pub use cluster::{ClusterStore, FeedVersion, NodeStatus, sha256_hex};
pub use events::{
    AGGREGATE_FIELDS, BatchId, BatchStored, EVENT_FIELDS, EventQuery, EventStore, Findings,
    HourlyTraffic, MAX_SEARCH_DEPTH, MAX_SEARCH_LIMIT, NameMatch, Purged, Retention, TenantTraffic,
};
pub use exports::{ExportCursor, ExportStore, StoredEvent};
pub use mail::{
    DmarcDay, DmarcRecordRow, DmarcReportRow, DmarcSenderRow, DmarcSummary, Imported,
    MailCheckDiff, MailCheckRow, MailFinding, MailStore, ServiceGroup, SourceSummary, TlsReportRow,
    TlsResultRow, UNIDENTIFIED,
};
pub use pg::{CONNECT_TIMEOUT, PgStore, redact};
pub use rules::{cutoff, unix_millis};
pub use sealed::{ClientActivity, SEALED_FIELDS, SealedClient, SealedStore};
pub use sqlite::{DB_FILE, SqliteStore, private_dir};

/// Everything a command or the server needs from storage, as one object:
/// the backend (SQLite or PostgreSQL) is chosen once, where the store is
/// opened, and nothing else names it. Any type with every data trait is a
/// `Db`.
pub trait Db:
    EventStore
    + AlertStore
    + MailStore
    + AccountStore
    + ClusterStore
    + ExportStore
    + AllowlistStore
    + SealedStore
    + ReportSources<Error = StoreError>
{
}

impl<T> Db for T where
    T: EventStore
        + AlertStore
        + MailStore
        + AccountStore
        + ClusterStore
        + ExportStore
        + AllowlistStore
        + SealedStore
        + ReportSources<Error = StoreError>
{
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no alert with id {0}")]
    NoSuchAlert(i64),
    #[error("an account named {0} already exists")]
    DuplicateUser(String),
    #[error("no incident with id {0}")]
    NoSuchIncident(i64),
    #[error("no allowlist entry with id {0}")]
    NoSuchAllow(i64),
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

impl StoreError {
    /// The database refused the data itself (a constraint, a value it
    /// cannot hold, a limit), so the same write will fail again however
    /// often it is tried; anything else (no connection, a lock, a full
    /// disk, a server shutting down) may pass. Unknown errors count as
    /// passing: a write is only given up on when the store says why.
    pub fn rejects_data(&self) -> bool {
        match self {
            StoreError::Postgres { source, .. } => source.code().is_some_and(|c| {
                // SQLSTATE classes 22 (data exception), 23 (integrity
                // constraint violation), 54 (program limit exceeded)
                matches!(&c.code()[..2], "22" | "23" | "54")
            }),
            StoreError::Sqlite { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::ConstraintViolation
                        | rusqlite::ErrorCode::TypeMismatch
                        | rusqlite::ErrorCode::TooBig
                )
            ),
            _ => false,
        }
    }
}
