//! The assurance crate's storage traits on PostgreSQL: [`AssuranceStore`]
//! (asset imports, incidents, exceptions, frozen KPI snapshots) and
//! [`ReportSources`] (what the committee report reads from the DNS, alert
//! and Mail Check data kept beside them).

use parapet_assurance::model::{
    AssetException, AssetImport, AssetImported, AssetObs, AvObs, FindingObs, ImportMeta, Incident,
    ScanObs, VulnDef,
};
use parapet_assurance::store::{AssuranceStore, LatestCheck, ReportSources, SnapshotVersion};
use parapet_core::alert::Alert;
use postgres::Row;

use super::{PgStore, pg_err};
use crate::StoreError;
use crate::rules::alerts::alerts_active;
use crate::rules::assets::{join_words, words};
use crate::rules::events::BLOCKED_ACTIONS;
use crate::rules::mail::latest_findings;

fn incident(r: &Row) -> Incident {
    Incident {
        id: r.get(0),
        tenant: r.get(1),
        reference: r.get(2),
        detected_at: r.get(3),
        category: r.get(4),
        impact: r.get(5),
        outcome: r.get(6),
        status: r.get(7),
        summary: r.get(8),
        ico_reference: r.get(9),
        alert_id: r.get(10),
        created_at: r.get(11),
        closed_at: r.get(12),
    }
}

const INCIDENT_COLUMNS: &str = "id, tenant, reference, detected_at, category, impact, outcome, status, summary, ico_reference, alert_id, created_at, closed_at";
const IMPORT_COLUMNS: &str =
    "id, tenant, source, path, sha256, as_of, imported_at, assets, findings";

fn import_meta(r: &Row) -> ImportMeta {
    ImportMeta {
        id: r.get(0),
        tenant: r.get(1),
        source: r.get(2),
        path: r.get(3),
        sha256: r.get(4),
        as_of: r.get(5),
        imported_at: r.get(6),
        assets: r.get::<_, i64>(7) as u64,
        findings: r.get::<_, i64>(8) as u64,
    }
}

impl AssuranceStore for PgStore {
    type Error = StoreError;

    fn import_assets(
        &mut self,
        import: &AssetImport,
        now: i64,
    ) -> Result<AssetImported, StoreError> {
        self.ensure()?;
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            let Some(row) = tx
                .query_opt(
                    "INSERT INTO asset_imports (tenant, source, path, sha256, as_of, imported_at, assets, findings)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (tenant, sha256) DO NOTHING RETURNING id",
                    &[
                        &import.tenant,
                        &import.source,
                        &import.path,
                        &import.sha256,
                        &import.as_of,
                        &now,
                        &(import.assets.len() as i64),
                        &(import.findings.len() as i64),
                    ],
                )
                .map_err(&err)?
            else {
                let id: i64 = tx
                    .query_one(
                        "SELECT id FROM asset_imports WHERE tenant = $1 AND sha256 = $2",
                        &[&import.tenant, &import.sha256],
                    )
                    .map_err(&err)?
                    .get(0);
                return Ok(AssetImported::Duplicate(id));
            };
            let id: i64 = row.get(0);
            let ins = tx
                .prepare(
                    "INSERT INTO asset_obs (import, seq, locator, hostname, fqdn, ips, macs, serial, device_id, os,
                     device_type, owner, location, lifecycle, last_seen, av, av_product, av_installed, av_active,
                     av_mode, av_sig_at, av_sig_current, av_reported_at, scan_at, scan_credentialed)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                     $19, $20, $21, $22, $23, $24, $25)",
                )
                .map_err(&err)?;
            for (seq, a) in import.assets.iter().enumerate() {
                let av = a.av.as_ref();
                tx.execute(
                    &ins,
                    &[
                        &id,
                        &(seq as i64),
                        &a.locator,
                        &a.hostname,
                        &a.fqdn,
                        &join_words(&a.ips),
                        &join_words(&a.macs),
                        &a.serial,
                        &a.device_id,
                        &a.os,
                        &a.device_type,
                        &a.owner,
                        &a.location,
                        &a.lifecycle,
                        &a.last_seen,
                        &av.is_some(),
                        &av.and_then(|v| v.product.clone()),
                        &av.map(|v| v.installed),
                        &av.and_then(|v| v.active),
                        &av.and_then(|v| v.mode.clone()),
                        &av.and_then(|v| v.signatures_at),
                        &av.and_then(|v| v.signatures_current),
                        &av.and_then(|v| v.reported_at),
                        &a.scan.map(|s| s.at),
                        &a.scan.map(|s| s.credentialed),
                    ],
                )
                .map_err(&err)?;
            }
            let ins = tx
                .prepare(
                    "INSERT INTO vuln_defs (import, seq, key, title, score, label, cves, fix_available,
                     fix_released, vuln_published, unsupported, solution)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .map_err(&err)?;
            for (seq, v) in import.vulns.iter().enumerate() {
                tx.execute(
                    &ins,
                    &[
                        &id,
                        &(seq as i64),
                        &v.key,
                        &v.title,
                        &v.score.map(f64::from),
                        &v.label,
                        &join_words(&v.cves),
                        &v.fix_available,
                        &v.fix_released,
                        &v.vuln_published,
                        &v.unsupported,
                        &v.solution,
                    ],
                )
                .map_err(&err)?;
            }
            let assets: Vec<i64> = import.findings.iter().map(|f| i64::from(f.asset)).collect();
            let vulns: Vec<i64> = import.findings.iter().map(|f| i64::from(f.vuln)).collect();
            let ports: Vec<&str> = import.findings.iter().map(|f| f.port.as_str()).collect();
            tx.execute(
                "INSERT INTO finding_obs (import, asset, vuln, port)
                 SELECT $1, a, v, p FROM unnest($2::bigint[], $3::bigint[], $4::text[]) WITH ORDINALITY AS u(a, v, p, n) ORDER BY n",
                &[&id, &assets, &vulns, &ports],
            )
            .map_err(&err)?;
            Ok(AssetImported::New(id))
        })
    }

    fn asset_imports(&mut self, tenant: &str, until: i64) -> Result<Vec<ImportMeta>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query(
                &format!(
                    "SELECT {IMPORT_COLUMNS} FROM asset_imports WHERE tenant = $1 AND as_of <= $2 ORDER BY as_of, id"
                ),
                &[&tenant, &until],
            )
            .map_err(pg_err(&self.location))?
            .iter()
            .map(import_meta)
            .collect())
    }

    fn load_import(&mut self, id: i64) -> Result<AssetImport, StoreError> {
        self.ensure()?;
        let err = pg_err(&self.location);
        let meta = self
            .client
            .query_opt(
                &format!("SELECT {IMPORT_COLUMNS} FROM asset_imports WHERE id = $1"),
                &[&id],
            )
            .map_err(&err)?
            .map(|r| import_meta(&r))
            .ok_or(StoreError::NoSuchImport(id))?;
        let assets = self
            .client
            .query(
                "SELECT locator, hostname, fqdn, ips, macs, serial, device_id, os, device_type, owner, location,
                 lifecycle, last_seen, av, av_product, av_installed, av_active, av_mode, av_sig_at, av_sig_current,
                 av_reported_at, scan_at, scan_credentialed FROM asset_obs WHERE import = $1 ORDER BY seq",
                &[&id],
            )
            .map_err(&err)?
            .iter()
            .map(|r| AssetObs {
                locator: r.get(0),
                hostname: r.get(1),
                fqdn: r.get(2),
                ips: words(r.get(3)),
                macs: words(r.get(4)),
                serial: r.get(5),
                device_id: r.get(6),
                os: r.get(7),
                device_type: r.get(8),
                owner: r.get(9),
                location: r.get(10),
                lifecycle: r.get(11),
                last_seen: r.get(12),
                av: r.get::<_, bool>(13).then(|| AvObs {
                    product: r.get(14),
                    installed: r.get::<_, Option<bool>>(15).unwrap_or(false),
                    active: r.get(16),
                    mode: r.get(17),
                    signatures_at: r.get(18),
                    signatures_current: r.get(19),
                    reported_at: r.get(20),
                }),
                scan: r.get::<_, Option<i64>>(21).map(|at| ScanObs {
                    at,
                    credentialed: r.get::<_, Option<bool>>(22).unwrap_or(false),
                }),
            })
            .collect();
        let vulns = self
            .client
            .query(
                "SELECT key, title, score, label, cves, fix_available, fix_released, vuln_published, unsupported,
                 solution FROM vuln_defs WHERE import = $1 ORDER BY seq",
                &[&id],
            )
            .map_err(&err)?
            .iter()
            .map(|r| VulnDef {
                key: r.get(0),
                title: r.get(1),
                score: r.get::<_, Option<f64>>(2).map(|s| s as f32),
                label: r.get(3),
                cves: words(r.get(4)),
                fix_available: r.get(5),
                fix_released: r.get(6),
                vuln_published: r.get(7),
                unsupported: r.get(8),
                solution: r.get(9),
            })
            .collect();
        let findings = self
            .client
            .query(
                "SELECT asset, vuln, port FROM finding_obs WHERE import = $1 ORDER BY id",
                &[&id],
            )
            .map_err(&err)?
            .iter()
            .map(|r| FindingObs {
                asset: r.get::<_, i64>(0) as u32,
                vuln: r.get::<_, i64>(1) as u32,
                port: r.get(2),
            })
            .collect();
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
        self.ensure()?;
        self.tx(|tx, loc, _| {
            let row = tx
                .query_opt(
                    "INSERT INTO incidents (tenant, reference, detected_at, category, impact, outcome, status,
                     summary, ico_reference, alert_id, created_at, closed_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                     ON CONFLICT (tenant, reference) DO NOTHING RETURNING id",
                    &[
                        &i.tenant,
                        &i.reference,
                        &i.detected_at,
                        &i.category,
                        &i.impact,
                        &i.outcome,
                        &i.status,
                        &i.summary,
                        &i.ico_reference,
                        &i.alert_id,
                        &now,
                        &i.closed_at,
                    ],
                )
                .map_err(pg_err(loc))?;
            row.map(|r| r.get(0))
                .ok_or_else(|| StoreError::DuplicateIncident(i.reference.clone()))
        })
    }

    fn incidents(&mut self, tenant: Option<&str>) -> Result<Vec<Incident>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query(
                &format!(
                    "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE $1::text IS NULL OR tenant = $1
                     ORDER BY detected_at DESC, id DESC"
                ),
                &[&tenant],
            )
            .map_err(pg_err(&self.location))?
            .iter()
            .map(incident)
            .collect())
    }

    fn close_incident(&mut self, id: i64, at: i64) -> Result<Incident, StoreError> {
        self.ensure()?;
        self.client
            .query_opt(
                &format!(
                    "UPDATE incidents SET status = 'closed', closed_at = COALESCE(closed_at, $2) WHERE id = $1
                     RETURNING {INCIDENT_COLUMNS}"
                ),
                &[&id, &at],
            )
            .map_err(pg_err(&self.location))?
            .map(|r| incident(&r))
            .ok_or(StoreError::NoSuchIncident(id))
    }

    fn add_exception(&mut self, e: &AssetException, now: i64) -> Result<i64, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query_one(
                "INSERT INTO asset_exceptions (tenant, asset, finding, scope, kind, reason, owner, approver,
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[
                    &e.tenant,
                    &e.asset,
                    &e.finding,
                    &e.scope,
                    &e.kind,
                    &e.reason,
                    &e.owner,
                    &e.approver,
                    &now,
                    &e.expires_at,
                ],
            )
            .map_err(pg_err(&self.location))?
            .get(0))
    }

    fn exceptions(&mut self, tenant: &str) -> Result<Vec<AssetException>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query(
                "SELECT id, tenant, asset, finding, scope, kind, reason, owner, approver, created_at, expires_at
                 FROM asset_exceptions WHERE tenant = $1 ORDER BY id",
                &[&tenant],
            )
            .map_err(pg_err(&self.location))?
            .iter()
            .map(|r| AssetException {
                id: r.get(0),
                tenant: r.get(1),
                asset: r.get(2),
                finding: r.get(3),
                scope: r.get(4),
                kind: r.get(5),
                reason: r.get(6),
                owner: r.get(7),
                approver: r.get(8),
                created_at: r.get(9),
                expires_at: r.get(10),
            })
            .collect())
    }

    fn kpi_snapshot(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Option<(SnapshotVersion, String)>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query_opt(
                &format!(
                    "{SNAPSHOT_COLUMNS} WHERE tenant = $1 AND quarter = $2 AND reopened_at IS NULL
                     ORDER BY version DESC LIMIT 1"
                ),
                &[&tenant, &quarter],
            )
            .map_err(pg_err(&self.location))?
            .map(|r| snapshot_row(&r)))
    }

    fn kpi_snapshot_version(
        &mut self,
        tenant: &str,
        quarter: &str,
        version: u32,
    ) -> Result<Option<(SnapshotVersion, String)>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query_opt(
                &format!("{SNAPSHOT_COLUMNS} WHERE tenant = $1 AND quarter = $2 AND version = $3"),
                &[&tenant, &quarter, &(version as i32)],
            )
            .map_err(pg_err(&self.location))?
            .map(|r| snapshot_row(&r)))
    }

    fn kpi_versions(
        &mut self,
        tenant: &str,
        quarter: &str,
    ) -> Result<Vec<SnapshotVersion>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query(
                &format!("{SNAPSHOT_COLUMNS} WHERE tenant = $1 AND quarter = $2 ORDER BY version"),
                &[&tenant, &quarter],
            )
            .map_err(pg_err(&self.location))?
            .iter()
            .map(|r| snapshot_row(r).0)
            .collect())
    }

    fn freeze_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        frozen_at: i64,
        frozen_by: &str,
        body: &str,
    ) -> Result<Option<u32>, StoreError> {
        self.ensure()?;
        // one statement: the next version, only while none is in force (two
        // at once: one gets the version, the other a key conflict, ignored)
        Ok(self
            .client
            .query_opt(
                "INSERT INTO kpi_snapshots (tenant, quarter, version, computed_at, frozen_by, body)
                 SELECT $1, $2, COALESCE(MAX(version), 0) + 1, $3, $4, $5
                 FROM kpi_snapshots WHERE tenant = $1 AND quarter = $2
                 HAVING COUNT(*) FILTER (WHERE reopened_at IS NULL) = 0
                 ON CONFLICT DO NOTHING
                 RETURNING version",
                &[&tenant, &quarter, &frozen_at, &frozen_by, &body],
            )
            .map_err(pg_err(&self.location))?
            .map(|r| r.get::<_, i32>(0) as u32))
    }

    fn reopen_kpi(
        &mut self,
        tenant: &str,
        quarter: &str,
        at: i64,
        by: &str,
        reason: &str,
    ) -> Result<Option<u32>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query_opt(
                "UPDATE kpi_snapshots SET reopened_at = $3, reopened_by = $4, reopen_reason = $5
                 WHERE tenant = $1 AND quarter = $2 AND reopened_at IS NULL
                 RETURNING version",
                &[&tenant, &quarter, &at, &by, &reason],
            )
            .map_err(pg_err(&self.location))?
            .map(|r| r.get::<_, i32>(0) as u32))
    }

    fn detection_covered(&mut self, tenant: &str, from: i64, to: i64) -> Result<bool, StoreError> {
        Ok(self.pdns_totals(tenant, from, to)?.0 > 0
            || !self
                .alerts_active(tenant, from * 1000, to * 1000 - 1)?
                .is_empty())
    }
}

impl ReportSources for PgStore {
    fn pdns_totals(&mut self, tenant: &str, from: i64, to: i64) -> Result<(u64, u64), StoreError> {
        self.ensure()?;
        let r = self
            .client
            .query_one(
                &format!(
                    "SELECT COALESCE(SUM(queries), 0)::bigint,
                            COALESCE(SUM(CASE WHEN action IN {BLOCKED_ACTIONS} THEN queries ELSE 0 END), 0)::bigint
                     FROM query_tenant_hourly_all WHERE tenant = $1 AND hour >= $2 AND hour < $3"
                ),
                &[&tenant, &from, &to],
            )
            .map_err(pg_err(&self.location))?;
        Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
    }

    fn mailcheck_latest(&mut self, until: i64) -> Result<Vec<LatestCheck>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query(
                "SELECT m.domain, m.checked_at / 1000, m.worst, m.findings FROM mailcheck_results m
                 JOIN (SELECT domain, MAX(checked_at) AS at FROM mailcheck_results WHERE checked_at <= $1 GROUP BY domain) l
                   ON l.domain = m.domain AND l.at = m.checked_at
                 ORDER BY m.domain",
                &[&until.saturating_mul(1000)],
            )
            .map_err(pg_err(&self.location))?
            .iter()
            .map(|r| {
                let findings: String = r.get(3);
                (r.get(0), r.get(1), r.get(2), latest_findings(&findings))
            })
            .collect())
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

fn snapshot_row(r: &Row) -> (SnapshotVersion, String) {
    (
        SnapshotVersion {
            version: r.get::<_, i32>(0) as u32,
            frozen_at: r.get(1),
            frozen_by: r.get(2),
            reopened_at: r.get(3),
            reopened_by: r.get(4),
            reopen_reason: r.get(5),
        },
        r.get(6),
    )
}
