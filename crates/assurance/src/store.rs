//! What assurance needs from storage, as traits the store implements: the
//! assurance data itself ([`AssuranceStore`]) and what the committee report
//! reads from the data the rest of Parapet keeps ([`ReportSources`]).
//!
//! Architecture invariant: this crate names no storage backend; the store
//! crate depends on it, never the other way.

use parapet_core::alert::Alert;

use crate::model::{AssetException, AssetImport, AssetImported, ImportMeta, Incident};

/// A domain's latest Mail Check: `(domain, checked_at, worst severity)`,
/// the time in unix seconds.
pub type LatestCheck = (String, i64, Option<String>);

/// Storage of the assurance data. Each call is one transaction: an import
/// that fails leaves nothing of its file behind.
pub trait AssuranceStore: Send {
    /// The backend's error.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Stores one file's observations, unless the same bytes were already
    /// imported for the tenant.
    fn import_assets(
        &mut self,
        import: &AssetImport,
        now: i64,
    ) -> Result<AssetImported, Self::Error>;

    /// The tenant's imports whose extracts were taken at or before `until`,
    /// oldest first.
    fn asset_imports(&mut self, tenant: &str, until: i64) -> Result<Vec<ImportMeta>, Self::Error>;

    /// One import's rows.
    fn load_import(&mut self, id: i64) -> Result<AssetImport, Self::Error>;

    /// Adds an incident; its `id` and `created_at` are set here.
    fn add_incident(&mut self, incident: &Incident, now: i64) -> Result<i64, Self::Error>;

    /// The tenant's incidents (every tenant's with `None`), newest first.
    fn incidents(&mut self, tenant: Option<&str>) -> Result<Vec<Incident>, Self::Error>;

    /// Closes an incident (a breach stays a breach: the outcome is kept).
    fn close_incident(&mut self, id: i64, at: i64) -> Result<Incident, Self::Error>;

    /// Records an exception in force from `from` until its expiry.
    fn add_exception(&mut self, exception: &AssetException, from: i64) -> Result<i64, Self::Error>;

    /// The tenant's exceptions, expired ones included (callers decide).
    fn exceptions(&mut self, tenant: &str) -> Result<Vec<AssetException>, Self::Error>;

    /// A frozen KPI snapshot: `(computed_at, json)`.
    fn kpi_snapshot(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Option<(i64, String)>, Self::Error>;

    /// Freezes a quarter's figures. Returns `false`, changing nothing, when
    /// the quarter is already frozen.
    fn freeze_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        computed_at: i64,
        body: &str,
    ) -> Result<bool, Self::Error>;
}

/// What the committee report shows besides the KPIs: the council's
/// protective DNS figures, its alerts and its latest Mail Checks.
pub trait ReportSources: AssuranceStore + CommentaryStore {
    /// Protective DNS over `[from, to)` (unix seconds) for a tenant, from
    /// the hourly aggregates: `(queries, blocked)`, where blocked counts
    /// every policy action (blocked, nodata, dropped, local data).
    fn pdns_totals(&mut self, tenant: &str, from: i64, to: i64) -> Result<(u64, u64), Self::Error>;

    /// The latest Mail Check of each domain made at or before `until`
    /// (unix seconds): `(domain, checked_at seconds, worst severity)`.
    fn mailcheck_latest(&mut self, until: i64) -> Result<Vec<LatestCheck>, Self::Error>;

    /// The tenant's alerts seen during `[from, to]` (unix milliseconds:
    /// last seen at or after `from`, first seen at or before `to`), most
    /// recently seen first.
    fn alerts_active(
        &mut self,
        tenant: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Alert>, Self::Error>;
}

/// One saved version of a council's officer commentary for a quarter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedCommentary {
    /// Unix seconds.
    pub saved_at: i64,
    /// The account (or `--by` name) that saved it.
    pub author: String,
    /// The commentary as the report crate writes it (JSON).
    pub body: String,
}

/// Officer commentary, kept append-only per (tenant, quarter): a saved
/// version is never changed, so the words of a tabled report can always
/// be found again (the latest saved at or before the quarter's freeze).
pub trait CommentaryStore: AssuranceStore {
    /// Appends a version.
    fn save_commentary(
        &mut self,
        tenant: &str,
        quarter: &str,
        saved_at: i64,
        author: &str,
        body: &str,
    ) -> Result<(), Self::Error>;

    /// The latest version saved at or before `until` (unix seconds).
    fn commentary(
        &mut self,
        tenant: &str,
        quarter: &str,
        until: i64,
    ) -> Result<Option<SavedCommentary>, Self::Error>;
}
