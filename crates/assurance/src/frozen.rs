//! A quarter's KPIs as a committee sees them: live until someone freezes
//! the ended quarter ([`freeze_quarter`]), then the frozen version, so a
//! tabled report never changes under a later import. Reading never
//! freezes. A frozen quarter can be reopened ([`reopen_quarter`]) and
//! frozen again; every version is kept, so a tabled report can always be
//! reproduced ([`quarter_version`]). What is frozen is stored in the
//! versioned form of [`crate::snapshot`], never as the working `KpiReport`.

use parapet_core::calendar::{format_date, format_datetime};

use crate::kpi::{self, FreezeInfo, Inputs, KpiReport, Settings};
use crate::model::{AssetImport, ImportMeta};
use crate::quarter::Quarter;
use crate::snapshot::{CURRENT_VERSION, FrozenQuarter, SnapshotError};
use crate::store::{AssuranceStore, SnapshotVersion};

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
    #[error("{quarter} has not ended yet (it ends {ends}): only an ended quarter can be frozen")]
    NotEnded { quarter: String, ends: String },
    #[error(
        "{quarter} of {tenant} is already frozen (version {version}); to correct it, reopen it \
         first: parapet kpi reopen --quarter {quarter} --tenant {tenant} --reason TEXT"
    )]
    AlreadyFrozen {
        tenant: String,
        quarter: String,
        version: u32,
    },
    #[error("{quarter} of {tenant} is not frozen")]
    NotFrozen { tenant: String, quarter: String },
    #[error(
        "{quarter} of {tenant} has no frozen version {version} (parapet kpi versions lists them)"
    )]
    NoSuchVersion {
        tenant: String,
        quarter: String,
        version: u32,
    },
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

/// The KPIs of `tenant` for `quarter`: the frozen version in force when
/// there is one, live figures otherwise. Reading never freezes: a quarter
/// is frozen only by [`freeze_quarter`], deliberately.
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
    if let Some((v, body)) = store
        .kpi_snapshot(tenant, &key)
        .map_err(QuarterError::Store)?
    {
        return frozen_report(tenant, &key, &v, &body);
    }
    compute_live(store, tenant, quarter, settings, now, true)
}

/// A stored version as a report marked frozen, with its freeze record.
fn frozen_report<E: std::error::Error + 'static>(
    tenant: &str,
    quarter: &str,
    v: &SnapshotVersion,
    body: &str,
) -> Result<KpiReport, QuarterError<E>> {
    let mut r = read_frozen(tenant, quarter, body)?;
    r.frozen = true;
    r.freeze = Some(freeze_info(v));
    Ok(r)
}

/// A stored version's record as reports show it (times in RFC 3339).
pub fn freeze_info(v: &SnapshotVersion) -> FreezeInfo {
    FreezeInfo {
        version: v.version,
        frozen_at: format_datetime(v.frozen_at),
        frozen_by: v.frozen_by.clone(),
        reopened_at: v.reopened_at.map(format_datetime),
        reopened_by: v.reopened_by.clone(),
        reopen_reason: v.reopen_reason.clone(),
    }
}

/// Live figures; with `with_previous`, compared with the previous
/// quarter's frozen counts, or its live ones when it has data (computed
/// without its own comparison: only its counts are needed).
fn compute_live<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    settings: &Settings,
    now: i64,
    with_previous: bool,
) -> Result<KpiReport, QuarterError<S::Error>> {
    let previous = if with_previous {
        let prev_q = quarter.previous();
        let prev_key = prev_q.to_string();
        match store
            .kpi_snapshot(tenant, &prev_key)
            .map_err(QuarterError::Store)?
        {
            Some((_, body)) => Some(read_frozen(tenant, &prev_key, &body)?.counts()),
            None if has_data(store, tenant, prev_q.end())? => {
                Some(compute_live(store, tenant, prev_q, settings, now, false)?.counts())
            }
            None => None,
        }
    } else {
        None
    };
    let imports = imports_until(store, tenant, quarter.end())?;
    let incidents = store.incidents(Some(tenant)).map_err(QuarterError::Store)?;
    let exceptions = store.exceptions(tenant).map_err(QuarterError::Store)?;
    let inputs = Inputs {
        tenant,
        quarter,
        imports: &imports,
        incidents: &incidents,
        exceptions: &exceptions,
        settings,
        previous,
        detection_covered: false,
        now,
    };
    let detection_covered = store
        .detection_covered(tenant, quarter.start(), inputs.t() + 1)
        .map_err(QuarterError::Store)?;
    Ok(kpi::compute(&Inputs {
        detection_covered,
        ..inputs
    }))
}

/// Freezes an ended quarter of `tenant` as a new version, by `by`: the
/// figures a committee is given, kept however later imports change the
/// data. Refused for a quarter that has not ended or is frozen already.
pub fn freeze_quarter<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    settings: &Settings,
    now: i64,
    by: &str,
) -> Result<KpiReport, QuarterError<S::Error>> {
    let key = quarter.to_string();
    if quarter.start() > now {
        return Err(QuarterError::Future { quarter: key });
    }
    if quarter.end() >= now {
        return Err(QuarterError::NotEnded {
            quarter: key,
            ends: format_date(quarter.end()),
        });
    }
    let already = |version| QuarterError::AlreadyFrozen {
        tenant: tenant.to_string(),
        quarter: key.clone(),
        version,
    };
    if let Some((v, _)) = store
        .kpi_snapshot(tenant, &key)
        .map_err(QuarterError::Store)?
    {
        return Err(already(v.version));
    }
    let report = compute_live(store, tenant, quarter, settings, now, true)?;
    let body = FrozenQuarter::from(&report)
        .to_json()
        .map_err(|source| QuarterError::Snapshot {
            tenant: tenant.to_string(),
            quarter: key.clone(),
            source,
        })?;
    store
        .freeze_kpi(tenant, &key, now, by, &body)
        .map_err(QuarterError::Store)?
        .ok_or_else(|| already(0))?;
    // read back what was stored: the report is what any later read gives
    let (v, body) = store
        .kpi_snapshot(tenant, &key)
        .map_err(QuarterError::Store)?
        .ok_or_else(|| QuarterError::NotFrozen {
            tenant: tenant.to_string(),
            quarter: key.clone(),
        })?;
    frozen_report(tenant, &key, &v, &body)
}

/// Reopens the frozen version in force, keeping it: reads show live
/// figures again until the quarter is frozen anew (as the next version).
pub fn reopen_quarter<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    now: i64,
    by: &str,
    reason: &str,
) -> Result<u32, QuarterError<S::Error>> {
    store
        .reopen_kpi(tenant, &quarter.to_string(), now, by, reason)
        .map_err(QuarterError::Store)?
        .ok_or_else(|| QuarterError::NotFrozen {
            tenant: tenant.to_string(),
            quarter: quarter.to_string(),
        })
}

/// Every frozen version of a quarter, oldest first.
pub fn quarter_versions<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
) -> Result<Vec<SnapshotVersion>, QuarterError<S::Error>> {
    store
        .kpi_versions(tenant, &quarter.to_string())
        .map_err(QuarterError::Store)
}

/// The figures of one frozen version, reopened or not: a tabled report
/// reproduced.
pub fn quarter_version<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    version: u32,
) -> Result<KpiReport, QuarterError<S::Error>> {
    let key = quarter.to_string();
    let (v, body) = store
        .kpi_snapshot_version(tenant, &key, version)
        .map_err(QuarterError::Store)?
        .ok_or_else(|| QuarterError::NoSuchVersion {
            tenant: tenant.to_string(),
            quarter: key.clone(),
            version,
        })?;
    frozen_report(tenant, &key, &v, &body)
}

/// When a version was frozen (unix seconds): what was in force for the
/// quarter then (e.g. the officer commentary) belongs to that version.
/// `None` picks the version in force; `Ok(None)` when there is none.
pub fn version_frozen_at<S: AssuranceStore + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    version: Option<u32>,
) -> Result<Option<i64>, QuarterError<S::Error>> {
    let key = quarter.to_string();
    let found = match version {
        Some(n) => store.kpi_snapshot_version(tenant, &key, n),
        None => store.kpi_snapshot(tenant, &key),
    }
    .map_err(QuarterError::Store)?;
    Ok(found.map(|(v, _)| v.frozen_at))
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
