//! What SIEM exports read: a cursor per destination, alerts by id and the
//! stored query events by id, so that a destination that was down gets
//! everything it missed from the store (`crates/pipeline/src/export`).

use parapet_core::alert::Alert;

use crate::StoreError;

/// How far a destination has been sent: the last alert id and the last
/// query-event id it accepted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCursor {
    pub alerts: i64,
    pub events: i64,
}

/// One stored query event as exported: pseudonymised as stored, never a
/// client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub id: i64,
    /// Unix milliseconds; for a row of repeats, the first.
    pub time: i64,
    pub tenant: String,
    /// The client's keyed pseudonym, lower-case hex.
    pub client: String,
    pub qname: String,
    pub qtype: u16,
    pub rcode: Option<u8>,
    pub action: String,
    pub feed: Option<String>,
    pub node: String,
    /// How many identical queries the row stands for.
    pub queries: u32,
    pub last_time: Option<i64>,
}

/// Export cursors and the reads behind them. Each call is one transaction.
pub trait ExportStore: Send {
    /// The cursor of destination `name`; a destination seen for the first
    /// time starts at the newest alert and event (it gets what happens
    /// from now on, not the history), and that start is stored.
    fn export_cursor(&mut self, name: &str) -> Result<ExportCursor, StoreError>;

    /// Records that `name` accepted everything up to `cursor`.
    fn set_export_cursor(&mut self, name: &str, cursor: ExportCursor) -> Result<(), StoreError>;

    /// Alerts with `after < id <= upto`, lowest id first, at most `limit`.
    fn alerts_after(
        &mut self,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Result<Vec<Alert>, StoreError>;

    /// The highest alert and query-event ids stored (0 when none).
    fn max_ids(&mut self) -> Result<ExportCursor, StoreError>;

    /// Query events with `after < id <= upto`, lowest id first, at most
    /// `limit`; only the policy actions (blocked, nodata, dropped, local
    /// data) when `blocked_only`.
    fn events_after(
        &mut self,
        after: i64,
        upto: i64,
        blocked_only: bool,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Whether ids become visible in id order. SQLite has one writer, so
    /// they do; on PostgreSQL several nodes take ids and commit in any
    /// order, so a reader waits until ids below what it saw have settled.
    fn ids_commit_in_order(&self) -> bool {
        true
    }

    /// Alerts counted by tenant, rule and status, for `/metrics`.
    fn alert_counts(&mut self) -> Result<Vec<(String, String, String, u64)>, StoreError>;
}
