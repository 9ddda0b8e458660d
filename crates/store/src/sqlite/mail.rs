//! [`MailStore`] on SQLite: DMARC and TLS-RPT reports (de-duplicated by
//! organisation and report id), their summaries, and Mail Check results.

use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_err};
use crate::rules::mail::{
    add_selectors, add_source, attach_senders, diff_findings, finding_lines, findings_from_lines,
};
use crate::{
    DmarcDay, DmarcReportRow, DmarcSenderRow, DmarcSummary, Imported, MailCheckDiff, MailCheckRow,
    MailStore, SourceSummary, StoreError, TlsReportRow, unix_millis,
};

impl MailStore for SqliteStore {
    fn import_dmarc(
        &mut self,
        report: &DmarcReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let added = tx
            .execute(
                "INSERT OR IGNORE INTO dmarc_reports (org_name, report_id, domain, begin_time, end_time, policy, source, imported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    report.org_name,
                    report.report_id,
                    report.domain,
                    report.begin,
                    report.end,
                    report.policy,
                    report.source,
                    unix_millis(now)
                ],
            )
            .map_err(err)?;
        if added == 0 {
            return Ok(Imported::Duplicate);
        }
        let id = tx.last_insert_rowid();
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(err)?;
            for r in &report.records {
                ins.execute(params![
                    id,
                    r.source_ip,
                    r.count as i64,
                    r.disposition,
                    r.dkim_aligned,
                    r.spf_aligned,
                    r.header_from,
                    r.envelope_from,
                    r.dkim,
                    r.spf
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(Imported::New)
    }

    fn import_tlsrpt(
        &mut self,
        report: &TlsReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let added = tx
            .execute(
                "INSERT OR IGNORE INTO tls_reports (org_name, report_id, begin_time, end_time, source, imported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    report.org_name,
                    report.report_id,
                    report.begin,
                    report.end,
                    report.source,
                    unix_millis(now)
                ],
            )
            .map_err(err)?;
        if added == 0 {
            return Ok(Imported::Duplicate);
        }
        let id = tx.last_insert_rowid();
        for r in &report.results {
            tx.execute(
                "INSERT INTO tls_results (report, policy_type, policy_domain, successful, failed, failures)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, r.policy_type, r.policy_domain, r.successful as i64, r.failed as i64, r.failures],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Imported::New)
    }

    fn dmarc_daily(&mut self, domain: &str) -> Result<Vec<DmarcDay>, StoreError> {
        let err = sql_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT (begin_time / 86400) * 86400 AS day, SUM(count),
                        SUM(CASE WHEN dkim_aligned OR spf_aligned THEN count ELSE 0 END)
                 FROM dmarc_records JOIN dmarc_reports ON dmarc_reports.id = dmarc_records.report
                 WHERE dmarc_reports.domain = ?1
                 GROUP BY day ORDER BY day",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![domain], |r| {
                Ok(DmarcDay {
                    day: r.get(0)?,
                    messages: r.get::<_, i64>(1)? as u64,
                    dmarc_pass: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(sql_err(&self.path))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(sql_err(&self.path))
    }

    fn dmarc_summary(&mut self, domain: &str) -> Result<DmarcSummary, StoreError> {
        let err = sql_err(&self.path);
        let mut sum = DmarcSummary {
            domain: domain.to_string(),
            ..DmarcSummary::default()
        };
        let (reports, first, last): (i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COUNT(*), MIN(begin_time), MAX(end_time) FROM dmarc_reports WHERE domain = ?1",
                params![domain],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(err)?;
        sum.reports = reports as u64;
        sum.first = first;
        sum.last = last;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_ip, SUM(count),
                        SUM(CASE WHEN dkim_aligned OR spf_aligned THEN count ELSE 0 END),
                        SUM(CASE WHEN dkim_aligned THEN count ELSE 0 END),
                        SUM(CASE WHEN spf_aligned THEN count ELSE 0 END),
                        SUM(CASE WHEN disposition = 'quarantine' THEN count ELSE 0 END),
                        SUM(CASE WHEN disposition = 'reject' THEN count ELSE 0 END)
                 FROM dmarc_records JOIN dmarc_reports ON dmarc_reports.id = dmarc_records.report
                 WHERE dmarc_reports.domain = ?1
                 GROUP BY source_ip ORDER BY SUM(count) DESC, source_ip",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![domain], |r| {
                Ok(SourceSummary {
                    source_ip: r.get(0)?,
                    messages: r.get::<_, i64>(1)? as u64,
                    dmarc_pass: r.get::<_, i64>(2)? as u64,
                    dkim_aligned: r.get::<_, i64>(3)? as u64,
                    spf_aligned: r.get::<_, i64>(4)? as u64,
                    quarantined: r.get::<_, i64>(5)? as u64,
                    rejected: r.get::<_, i64>(6)? as u64,
                    sender: None,
                })
            })
            .map_err(err)?;
        for row in rows {
            add_source(&mut sum, row.map_err(err)?);
        }
        drop(stmt);
        let ips: Vec<String> = sum.sources.iter().map(|s| s.source_ip.clone()).collect();
        attach_senders(&mut sum, self.dmarc_senders(&ips)?);
        Ok(sum)
    }

    fn dmarc_senders(&mut self, ips: &[String]) -> Result<Vec<DmarcSenderRow>, StoreError> {
        let err = sql_err(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT source_ip, ptr, confirmed, base_domain, service, service_type, checked_at
                 FROM dmarc_senders WHERE source_ip = ?1",
            )
            .map_err(err)?;
        let mut out = Vec::new();
        for ip in ips {
            let row = stmt
                .query_row(params![ip], |r| {
                    Ok(DmarcSenderRow {
                        source_ip: r.get(0)?,
                        ptr: r.get(1)?,
                        confirmed: r.get(2)?,
                        base_domain: r.get(3)?,
                        service: r.get(4)?,
                        service_type: r.get(5)?,
                        checked_at: r.get(6)?,
                    })
                })
                .optional()
                .map_err(err)?;
            out.extend(row);
        }
        Ok(out)
    }

    fn save_dmarc_senders(&mut self, rows: &[DmarcSenderRow]) -> Result<(), StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        for r in rows {
            tx.execute(
                "INSERT OR REPLACE INTO dmarc_senders (source_ip, ptr, confirmed, base_domain, service, service_type, checked_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![r.source_ip, r.ptr, r.confirmed, r.base_domain, r.service, r.service_type, r.checked_at],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn dkim_selectors(&mut self, domain: &str) -> Result<Vec<String>, StoreError> {
        let err = sql_err(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT dkim FROM dmarc_records WHERE dkim LIKE ?1")
            .map_err(err)?;
        let pattern = format!("%{domain}/%");
        let rows = stmt
            .query_map(params![pattern], |r| r.get::<_, String>(0))
            .map_err(err)?;
        let mut out: Vec<String> = Vec::new();
        for row in rows {
            add_selectors(&mut out, &row.map_err(err)?, domain);
        }
        out.sort();
        Ok(out)
    }

    fn save_mailcheck(&mut self, check: &MailCheckRow) -> Result<MailCheckDiff, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let previous: Option<(i64, String)> = tx
            .query_row(
                "SELECT checked_at, findings FROM mailcheck_results WHERE domain = ?1 ORDER BY checked_at DESC, id DESC LIMIT 1",
                params![check.domain],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)?;
        let now_lines = finding_lines(&check.findings);
        tx.execute(
            "INSERT INTO mailcheck_results (domain, checked_at, worst, findings, report) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![check.domain, check.checked_at, check.worst, now_lines.join("\n"), check.report],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(diff_findings(previous, &now_lines))
    }

    fn mailcheck_history(
        &mut self,
        domain: &str,
        limit: usize,
    ) -> Result<Vec<MailCheckRow>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(
                "SELECT domain, checked_at, worst, findings, report FROM mailcheck_results
                 WHERE domain = ?1 ORDER BY checked_at DESC, id DESC LIMIT ?2",
            )
            .map_err(err)?;
        let rows = q
            .query_map(params![domain, limit as i64], |r| {
                let findings: String = r.get(3)?;
                Ok(MailCheckRow {
                    domain: r.get(0)?,
                    checked_at: r.get(1)?,
                    worst: r.get(2)?,
                    findings: findings_from_lines(&findings),
                    report: r.get(4)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }
}
