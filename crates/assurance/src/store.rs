//! What assurance needs from storage, as traits the store implements: the
//! assurance data itself ([`AssuranceStore`]) and what the committee report
//! reads from the data the rest of Parapet keeps ([`ReportSources`]).
//!
//! Architecture invariant: this crate names no storage backend; the store
//! crate depends on it, never the other way.

use parapet_core::alert::Alert;

use crate::model::{AssetException, AssetImport, AssetImported, ImportMeta, Incident};

/// A domain's latest Mail Check: `(domain, checked_at, worst severity,
/// findings)`, the time in unix seconds, each finding as `(severity, code)`.
pub type LatestCheck = (String, i64, Option<String>, Vec<(String, String)>);

/// A frozen version of a quarter as stored (times in unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotVersion {
    pub version: u32,
    pub frozen_at: i64,
    pub frozen_by: String,
    pub reopened_at: Option<i64>,
    pub reopened_by: Option<String>,
    pub reopen_reason: Option<String>,
}

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

    /// The quarter's frozen version in force (the latest, unless it was
    /// reopened): its record and stored body.
    fn kpi_snapshot(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Option<(SnapshotVersion, String)>, Self::Error>;

    /// One frozen version, reopened or not.
    fn kpi_snapshot_version(
        &mut self,
        tenant: &str,
        quarter: &str,
        version: u32,
    ) -> Result<Option<(SnapshotVersion, String)>, Self::Error>;

    /// Every frozen version of a quarter, oldest first.
    fn kpi_versions(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Vec<SnapshotVersion>, Self::Error>;

    /// Freezes a quarter's figures as a new version (one more than the
    /// last, reopened ones included). Returns `None`, changing nothing, when
    /// a version is in force already.
    fn freeze_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        frozen_at: i64,
        frozen_by: &str,
        body: &str,
    ) -> Result<Option<u32>, Self::Error>;

    /// Reopens the version in force, keeping it (marked reopened, with who,
    /// when and why). Returns the version reopened, `None` when the quarter
    /// was not frozen.
    fn reopen_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        at: i64,
        by: &str,
        reason: &str,
    ) -> Result<Option<u32>, Self::Error>;

    /// Whether protective DNS figures or detection alerts of the tenant
    /// cover any of `[from, to)` (unix seconds): then an empty incident
    /// register means "no breach", not "not watched".
    fn detection_covered(&mut self, tenant: &str, from: i64, to: i64) -> Result<bool, Self::Error>;
}

/// What the committee report shows besides the KPIs: the council's
/// protective DNS figures, its alerts and its latest Mail Checks.
pub trait ReportSources: AssuranceStore + CommentaryStore {
    /// Protective DNS over `[from, to)` (unix seconds) for a tenant, from
    /// the hourly aggregates: `(queries, blocked)`, where blocked counts
    /// every policy action (blocked, nodata, dropped, local data).
    fn pdns_totals(&mut self, tenant: &str, from: i64, to: i64) -> Result<(u64, u64), Self::Error>;

    /// The latest Mail Check of each domain made at or before `until`
    /// (unix seconds), with its findings.
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
