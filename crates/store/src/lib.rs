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
pub use alerts::{AlertFilter, AlertStore, Notification, OutboxCounts, SeenDomains};
pub use cluster::{ClusterStore, FeedVersion, NodeStatus, sha256_hex};
pub use events::{
    AGGREGATE_FIELDS, BatchId, EVENT_FIELDS, EventStore, HourlyTraffic, Purged, Retention,
    TenantTraffic,
};
pub use exports::{ExportCursor, ExportStore, StoredEvent};
pub use mail::{
    DmarcRecordRow, DmarcReportRow, DmarcSenderRow, DmarcSummary, Imported, MailCheckDiff,
    MailCheckRow, MailFinding, MailStore, ServiceGroup, SourceSummary, TlsReportRow, TlsResultRow,
    UNIDENTIFIED,
};
pub use pg::{PgStore, redact};
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
