//! The assurance crate's storage traits on SQLite: [`AssuranceStore`] (asset
//! imports, incidents, exceptions, frozen KPI snapshots) and
//! [`ReportSources`] (what the committee report reads from the DNS, alert
//! and Mail Check data kept beside them).

use parapet_assurance::model::{
    AssetException, AssetImport, AssetImported, AssetObs, AvObs, FindingObs, ImportMeta, Incident,
    ScanObs, VulnDef,
};
use parapet_assurance::store::{AssuranceStore, LatestCheck, ReportSources, SnapshotVersion};
use parapet_core::alert::Alert;
use rusqlite::{OptionalExtension, Row, params};

use super::{SqliteStore, sql_err};
use crate::StoreError;
use crate::rules::alerts::alerts_active;
use crate::rules::assets::{join_words, words};
use crate::rules::events::BLOCKED_ACTIONS;
use crate::rules::mail::latest_findings;

fn incident_row(r: &Row<'_>) -> rusqlite::Result<Incident> {
    Ok(Incident {
        id: r.get(0)?,
        tenant: r.get(1)?,
        reference: r.get(2)?,
        detected_at: r.get(3)?,
        category: r.get(4)?,
        impact: r.get(5)?,
        outcome: r.get(6)?,
        status: r.get(7)?,
        summary: r.get(8)?,
        ico_reference: r.get(9)?,
        alert_id: r.get(10)?,
        created_at: r.get(11)?,
        closed_at: r.get(12)?,
    })
}

const INCIDENT_COLUMNS: &str = "id, tenant, reference, detected_at, category, impact, outcome, status, summary, ico_reference, alert_id, created_at, closed_at";

fn import_meta(r: &Row<'_>) -> rusqlite::Result<ImportMeta> {
    Ok(ImportMeta {
        id: r.get(0)?,
        tenant: r.get(1)?,
        source: r.get(2)?,
        path: r.get(3)?,
        sha256: r.get(4)?,
        as_of: r.get(5)?,
        imported_at: r.get(6)?,
        assets: r.get::<_, i64>(7)? as u64,
        findings: r.get::<_, i64>(8)? as u64,
    })
}

const IMPORT_COLUMNS: &str =
    "id, tenant, source, path, sha256, as_of, imported_at, assets, findings";

impl AssuranceStore for SqliteStore {
    type Error = StoreError;

    fn import_assets(
        &mut self,
        import: &AssetImport,
        now: i64,
    ) -> Result<AssetImported, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM asset_imports WHERE tenant = ?1 AND sha256 = ?2",
                params![import.tenant, import.sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        if let Some(id) = existing {
            return Ok(AssetImported::Duplicate(id));
        }
        tx.execute(
            "INSERT INTO asset_imports (tenant, source, path, sha256, as_of, imported_at, assets, findings)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                import.tenant,
                import.source,
                import.path,
                import.sha256,
                import.as_of,
                now,
                import.assets.len() as i64,
                import.findings.len() as i64
            ],
        )
        .map_err(err)?;
        let id = tx.last_insert_rowid();
        {
            let mut ins = tx
                .prepare(
                    "INSERT INTO asset_obs (import, seq, locator, hostname, fqdn, ips, macs, serial, device_id, os,
                     device_type, owner, location, lifecycle, last_seen, av, av_product, av_installed, av_active,
                     av_mode, av_sig_at, av_sig_current, av_reported_at, scan_at, scan_credentialed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                     ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
                )
                .map_err(err)?;
            for (seq, a) in import.assets.iter().enumerate() {
                let av = a.av.as_ref();
                ins.execute(params![
                    id,
                    seq as i64,
                    a.locator,
                    a.hostname,
                    a.fqdn,
                    join_words(&a.ips),
                    join_words(&a.macs),
                    a.serial,
                    a.device_id,
                    a.os,
                    a.device_type,
                    a.owner,
                    a.location,
                    a.lifecycle,
                    a.last_seen,
                    av.is_some(),
                    av.and_then(|v| v.product.clone()),
                    av.map(|v| v.installed),
                    av.and_then(|v| v.active),
                    av.and_then(|v| v.mode.clone()),
                    av.and_then(|v| v.signatures_at),
                    av.and_then(|v| v.signatures_current),
                    av.and_then(|v| v.reported_at),
                    a.scan.map(|s| s.at),
                    a.scan.map(|s| s.credentialed),
                ])
                .map_err(err)?;
            }
            let mut ins = tx
                .prepare(
                    "INSERT INTO vuln_defs (import, seq, key, title, score, label, cves, fix_available,
                     fix_released, vuln_published, unsupported, solution)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .map_err(err)?;
            for (seq, v) in import.vulns.iter().enumerate() {
                ins.execute(params![
                    id,
                    seq as i64,
                    v.key,
                    v.title,
                    v.score.map(f64::from),
                    v.label,
                    join_words(&v.cves),
                    v.fix_available,
                    v.fix_released,
                    v.vuln_published,
                    v.unsupported,
                    v.solution
                ])
                .map_err(err)?;
            }
            let mut ins = tx
                .prepare(
                    "INSERT INTO finding_obs (import, asset, vuln, port) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(err)?;
            for f in &import.findings {
                ins.execute(params![id, f.asset, f.vuln, f.port])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(AssetImported::New(id))
    }

    fn asset_imports(&mut self, tenant: &str, until: i64) -> Result<Vec<ImportMeta>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT {IMPORT_COLUMNS} FROM asset_imports WHERE tenant = ?1 AND as_of <= ?2 ORDER BY as_of, id"
            ))
            .map_err(err)?;
        let rows = q
            .query_map(params![tenant, until], import_meta)
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn load_import(&mut self, id: i64) -> Result<AssetImport, StoreError> {
        let err = sql_err(&self.path);
        let meta = self
            .conn
            .query_row(
                &format!("SELECT {IMPORT_COLUMNS} FROM asset_imports WHERE id = ?1"),
                [id],
                import_meta,
            )
            .optional()
            .map_err(err)?
            .ok_or(StoreError::NoSuchImport(id))?;
        let mut q = self
            .conn
            .prepare(
                "SELECT locator, hostname, fqdn, ips, macs, serial, device_id, os, device_type, owner, location,
                 lifecycle, last_seen, av, av_product, av_installed, av_active, av_mode, av_sig_at, av_sig_current,
                 av_reported_at, scan_at, scan_credentialed FROM asset_obs WHERE import = ?1 ORDER BY seq",
            )
            .map_err(err)?;
        let assets = q
            .query_map([id], |r| {
                let av = if r.get::<_, bool>(13)? {
                    Some(AvObs {
                        product: r.get(14)?,
                        installed: r.get::<_, Option<bool>>(15)?.unwrap_or(false),
                        active: r.get(16)?,
                        mode: r.get(17)?,
                        signatures_at: r.get(18)?,
                        signatures_current: r.get(19)?,
                        reported_at: r.get(20)?,
                    })
                } else {
                    None
                };
                let scan = match (r.get::<_, Option<i64>>(21)?, r.get::<_, Option<bool>>(22)?) {
                    (Some(at), credentialed) => Some(ScanObs {
                        at,
                        credentialed: credentialed.unwrap_or(false),
                    }),
                    _ => None,
                };
                Ok(AssetObs {
                    locator: r.get(0)?,
                    hostname: r.get(1)?,
                    fqdn: r.get(2)?,
                    ips: words(&r.get::<_, String>(3)?),
                    macs: words(&r.get::<_, String>(4)?),
                    serial: r.get(5)?,
                    device_id: r.get(6)?,
                    os: r.get(7)?,
                    device_type: r.get(8)?,
                    owner: r.get(9)?,
                    location: r.get(10)?,
                    lifecycle: r.get(11)?,
                    last_seen: r.get(12)?,
                    av,
                    scan,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let mut q = self
            .conn
            .prepare(
                "SELECT key, title, score, label, cves, fix_available, fix_released, vuln_published, unsupported,
                 solution FROM vuln_defs WHERE import = ?1 ORDER BY seq",
            )
            .map_err(err)?;
        let vulns = q
            .query_map([id], |r| {
                Ok(VulnDef {
                    key: r.get(0)?,
                    title: r.get(1)?,
                    score: r.get::<_, Option<f64>>(2)?.map(|s| s as f32),
                    label: r.get(3)?,
                    cves: words(&r.get::<_, String>(4)?),
                    fix_available: r.get(5)?,
                    fix_released: r.get(6)?,
                    vuln_published: r.get(7)?,
                    unsupported: r.get(8)?,
                    solution: r.get(9)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let mut q = self
            .conn
            .prepare("SELECT asset, vuln, port FROM finding_obs WHERE import = ?1 ORDER BY rowid")
            .map_err(err)?;
        let findings = q
            .query_map([id], |r| {
                Ok(FindingObs {
                    asset: r.get(0)?,
                    vuln: r.get(1)?,
                    port: r.get(2)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(AssetImport {
            tenant: meta.tenant,
            source: meta.source,
            path: meta.path,
            sha256: meta.sha256,
            as_of: meta.as_of,
            assets,
            vulns,
            findings,
        })
    }

    fn add_incident(&mut self, i: &Incident, now: i64) -> Result<i64, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let added = tx
            .execute(
                "INSERT OR IGNORE INTO incidents (tenant, reference, detected_at, category, impact, outcome, status,
                 summary, ico_reference, alert_id, created_at, closed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    i.tenant,
                    i.reference,
                    i.detected_at,
                    i.category,
                    i.impact,
                    i.outcome,
                    i.status,
                    i.summary,
                    i.ico_reference,
                    i.alert_id,
                    now,
                    i.closed_at
                ],
            )
            .map_err(err)?;
        if added == 0 {
            return Err(StoreError::DuplicateIncident(i.reference.clone()));
        }
        let id = tx.last_insert_rowid();
        tx.commit().map_err(err)?;
        Ok(id)
    }

    fn incidents(&mut self, tenant: Option<&str>) -> Result<Vec<Incident>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE ?1 IS NULL OR tenant = ?1
                 ORDER BY detected_at DESC, id DESC"
            ))
            .map_err(err)?;
        let rows = q
            .query_map([tenant], incident_row)
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn close_incident(&mut self, id: i64, at: i64) -> Result<Incident, StoreError> {
        let err = sql_err(&self.path);
        let n = self
            .conn
            .execute(
                "UPDATE incidents SET status = 'closed', closed_at = COALESCE(closed_at, ?2) WHERE id = ?1",
                params![id, at],
            )
            .map_err(err)?;
        if n == 0 {
            return Err(StoreError::NoSuchIncident(id));
        }
        self.conn
            .query_row(
                &format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = ?1"),
                [id],
                incident_row,
            )
            .map_err(err)
    }

    fn add_exception(&mut self, e: &AssetException, now: i64) -> Result<i64, StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .execute(
                "INSERT INTO asset_exceptions (tenant, asset, finding, scope, kind, reason, owner, approver,
                 created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    e.tenant,
                    e.asset,
                    e.finding,
                    e.scope,
                    e.kind,
                    e.reason,
                    e.owner,
                    e.approver,
                    now,
                    e.expires_at
                ],
            )
            .map_err(err)?;
        Ok(self.conn.last_insert_rowid())
    }

    fn exceptions(&mut self, tenant: &str) -> Result<Vec<AssetException>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(
                "SELECT id, tenant, asset, finding, scope, kind, reason, owner, approver, created_at, expires_at
                 FROM asset_exceptions WHERE tenant = ?1 ORDER BY id",
            )
            .map_err(err)?;
        let rows = q
            .query_map([tenant], |r| {
                Ok(AssetException {
                    id: r.get(0)?,
                    tenant: r.get(1)?,
                    asset: r.get(2)?,
                    finding: r.get(3)?,
                    scope: r.get(4)?,
                    kind: r.get(5)?,
                    reason: r.get(6)?,
                    owner: r.get(7)?,
                    approver: r.get(8)?,
                    created_at: r.get(9)?,
                    expires_at: r.get(10)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn kpi_snapshot(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Option<(SnapshotVersion, String)>, StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .query_row(
                &format!(
                    "{SNAPSHOT_COLUMNS} WHERE tenant = ?1 AND quarter = ?2 AND reopened_at IS NULL
                     ORDER BY version DESC LIMIT 1"
                ),
                params![tenant, quarter],
                snapshot_row,
            )
            .optional()
            .map_err(err)
    }

    fn kpi_snapshot_version(
        &mut self,
        tenant: &str,
        quarter: &str,
        version: u32,
    ) -> Result<Option<(SnapshotVersion, String)>, StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .query_row(
                &format!("{SNAPSHOT_COLUMNS} WHERE tenant = ?1 AND quarter = ?2 AND version = ?3"),
                params![tenant, quarter, version],
                snapshot_row,
            )
            .optional()
            .map_err(err)
    }

    fn kpi_versions(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Vec<SnapshotVersion>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                "{SNAPSHOT_COLUMNS} WHERE tenant = ?1 AND quarter = ?2 ORDER BY version"
            ))
            .map_err(err)?;
        let rows = q
            .query_map(params![tenant, quarter], |r| Ok(snapshot_row(r)?.0))
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn freeze_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        frozen_at: i64,
        frozen_by: &str,
        body: &str,
    ) -> Result<Option<u32>, StoreError> {
        let err = sql_err(&self.path);
        // one statement: the next version, only while none is in force
        self.conn
            .query_row(
                "INSERT OR IGNORE INTO kpi_snapshots (tenant, quarter, version, computed_at, frozen_by, body)
                 SELECT ?1, ?2, COALESCE(MAX(version), 0) + 1, ?3, ?4, ?5
                 FROM kpi_snapshots WHERE tenant = ?1 AND quarter = ?2
                 HAVING COUNT(*) FILTER (WHERE reopened_at IS NULL) = 0
                 RETURNING version",
                params![tenant, quarter, frozen_at, frozen_by, body],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)
    }

    fn reopen_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        at: i64,
        by: &str,
        reason: &str,
    ) -> Result<Option<u32>, StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .query_row(
                "UPDATE kpi_snapshots SET reopened_at = ?3, reopened_by = ?4, reopen_reason = ?5
                 WHERE tenant = ?1 AND quarter = ?2 AND reopened_at IS NULL
                 RETURNING version",
                params![tenant, quarter, at, by, reason],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)
    }

    fn detection_covered(&mut self, tenant: &str, from: i64, to: i64) -> Result<bool, StoreError> {
        Ok(self.pdns_totals(tenant, from, to)?.0 > 0
            || !self
                .alerts_active(tenant, from * 1000, to * 1000 - 1)?
                .is_empty())
    }
}

impl ReportSources for SqliteStore {
    fn pdns_totals(&mut self, tenant: &str, from: i64, to: i64) -> Result<(u64, u64), StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .query_row(
                &format!(
                    "SELECT COALESCE(SUM(queries), 0),
                            COALESCE(SUM(CASE WHEN action IN {BLOCKED_ACTIONS} THEN queries ELSE 0 END), 0)
                     FROM query_tenant_hourly WHERE tenant = ?1 AND hour >= ?2 AND hour < ?3"
                ),
                params![tenant, from, to],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(err)
    }

    fn mailcheck_latest(&mut self, until: i64) -> Result<Vec<LatestCheck>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(
                "SELECT m.domain, m.checked_at / 1000, m.worst, m.findings FROM mailcheck_results m
                 JOIN (SELECT domain, MAX(checked_at) AS at FROM mailcheck_results WHERE checked_at <= ?1 GROUP BY domain) l
                   ON l.domain = m.domain AND l.at = m.checked_at
                 ORDER BY m.domain",
            )
            .map_err(err)?;
        let rows = q
            .query_map([until.saturating_mul(1000)], |r| {
                let findings: String = r.get(3)?;
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, latest_findings(&findings)))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn alerts_active(
        &mut self,
        tenant: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<Alert>, StoreError> {
        alerts_active(self, tenant, from, to)
    }
}

/// The columns of a frozen version, then its body ([`snapshot_row`]).
const SNAPSHOT_COLUMNS: &str = "SELECT version, computed_at, frozen_by, reopened_at, reopened_by, reopen_reason, body FROM kpi_snapshots";

fn snapshot_row(r: &Row<'_>) -> rusqlite::Result<(SnapshotVersion, String)> {
    Ok((
        SnapshotVersion {
            version: r.get(0)?,
            frozen_at: r.get(1)?,
            frozen_by: r.get(2)?,
            reopened_at: r.get(3)?,
            reopened_by: r.get(4)?,
            reopen_reason: r.get(5)?,
        },
        r.get(6)?,
    ))
}
