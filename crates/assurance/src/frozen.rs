//! A quarter's KPIs as a committee sees them: live while the quarter runs,
//! computed once and frozen when it has ended, so a tabled report never
//! changes under a later import. What is frozen is stored in the versioned
//! form of [`crate::snapshot`], never as the working `KpiReport`.

use crate::kpi::{self, Inputs, KpiReport, Settings};
use crate::model::{AssetImport, ImportMeta};
use crate::quarter::Quarter;
use crate::snapshot::{CURRENT_VERSION, FrozenQuarter, SnapshotError};
use crate::store::AssuranceStore;

/// Why a quarter's KPIs could not be had.
#[derive(Debug, thiserror::Error)]
pub enum QuarterError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Store(E),
    #[error("the frozen KPIs of {tenant} for {quarter} cannot be read: {source}")]
    Snapshot {
        tenant: String,
        quarter: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "the frozen KPIs of {tenant} for {quarter} are stored as snapshot version {version}, \
         which this build cannot read (the newest it knows is {CURRENT_VERSION}; \
         were they frozen by a newer Parapet?)"
    )]
    UnknownVersion {
        tenant: String,
        quarter: String,
        version: u64,
    },
    #[error("{quarter} has not started yet: there is nothing to report")]
    Future { quarter: String },
}

/// Reads the frozen `quarter` of `tenant` from its stored body.
fn read_frozen<E: std::error::Error + 'static>(
    tenant: &str,
    quarter: &str,
    body: &str,
) -> Result<KpiReport, QuarterError<E>> {
    let (tenant, quarter) = (tenant.to_string(), quarter.to_string());
    match FrozenQuarter::parse(body) {
        Ok(f) => Ok(f.into()),
        Err(SnapshotError::Json(source)) => Err(QuarterError::Snapshot {
            tenant,
            quarter,
            source,
        }),
        Err(SnapshotError::UnknownVersion(version)) => Err(QuarterError::UnknownVersion {
            tenant,
            quarter,
            version,
        }),
    }
}

/// The KPIs of `tenant` for `quarter`: the frozen snapshot when the quarter
/// has ended (computed and frozen on first request), live figures
/// otherwise. The previous quarter's counts come from its snapshot, or are
/// computed (and frozen) when it has data.
pub fn quarter_kpis<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    settings: &Settings,
    now: i64,
) -> Result<KpiReport, QuarterError<S::Error>> {
    let key = quarter.to_string();
    if quarter.start() > now {
        return Err(QuarterError::Future { quarter: key });
    }
    if let Some((_, body)) = store
        .kpi_snapshot(tenant, &key)
        .map_err(QuarterError::Store)?
    {
        let mut r = read_frozen(tenant, &key, &body)?;
        r.frozen = true;
        return Ok(r);
    }
    let prev_q = quarter.previous();
    let previous = match store
        .kpi_snapshot(tenant, &prev_q.to_string())
        .map_err(QuarterError::Store)?
    {
        Some((_, body)) => Some(read_frozen(tenant, &prev_q.to_string(), &body)?.counts()),
        None => {
            if has_data(store, tenant, prev_q.end())? {
                Some(quarter_kpis(store, tenant, prev_q, settings, now)?.counts())
            } else {
                None
            }
        }
    };
    let imports = imports_until(store, tenant, quarter.end())?;
    let incidents = store.incidents(Some(tenant)).map_err(QuarterError::Store)?;
    let exceptions = store.exceptions(tenant).map_err(QuarterError::Store)?;
    let report = kpi::compute(&Inputs {
        tenant,
        quarter,
        imports: &imports,
        incidents: &incidents,
        exceptions: &exceptions,
        settings,
        previous,
        now,
    });
    // a quarter with no data is not frozen: its figures would hide data
    // imported for it later
    if quarter.end() < now && has_data(store, tenant, quarter.end())? {
        let body =
            FrozenQuarter::from(&report)
                .to_json()
                .map_err(|source| QuarterError::Snapshot {
                    tenant: tenant.to_string(),
                    quarter: key.clone(),
                    source,
                })?;
        store
            .freeze_kpi(tenant, &key, now, &body)
            .map_err(QuarterError::Store)?;
    }
    Ok(report)
}

/// Whether the tenant has any import or incident at or before `until`.
pub fn has_data<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    until: i64,
) -> Result<bool, QuarterError<S::Error>> {
    if !store
        .asset_imports(tenant, until)
        .map_err(QuarterError::Store)?
        .is_empty()
    {
        return Ok(true);
    }
    Ok(store
        .incidents(Some(tenant))
        .map_err(QuarterError::Store)?
        .iter()
        .any(|i| i.detected_at <= until))
}

/// The tenant's imports taken at or before `until`, with their rows.
fn imports_until<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    until: i64,
) -> Result<Vec<(ImportMeta, AssetImport)>, QuarterError<S::Error>> {
    let metas = store
        .asset_imports(tenant, until)
        .map_err(QuarterError::Store)?;
    let mut out = Vec::with_capacity(metas.len());
    for m in metas {
        let imp = store.load_import(m.id).map_err(QuarterError::Store)?;
        out.push((m, imp));
    }
    Ok(out)
}
