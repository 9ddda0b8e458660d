//! [`MailStore`] on PostgreSQL: DMARC and TLS-RPT reports (de-duplicated by
//! organisation and report id), their summaries, and Mail Check results,
//! one writer per domain at a time so that "the previous check" is well
//! defined across nodes.

use std::time::SystemTime;

use super::{PgStore, pg_err};
use crate::rules::mail::{
    add_selectors, add_source, attach_senders, diff_findings, finding_lines, findings_from_lines,
};
use crate::{
    DmarcDay, DmarcReportRow, DmarcSenderRow, DmarcSummary, Imported, MailCheckDiff, MailCheckRow,
    MailStore, SourceSummary, StoreError, TlsReportRow, unix_millis,
};

impl MailStore for PgStore {
    fn import_dmarc(
        &mut self,
        report: &DmarcReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError> {
        self.ensure()?;
        let at = unix_millis(now);
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            let Some(row) = tx
                .query_opt(
                    "INSERT INTO dmarc_reports (org_name, report_id, domain, begin_time, end_time, policy, source, imported_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING RETURNING id",
                    &[
                        &report.org_name,
                        &report.report_id,
                        &report.domain,
                        &report.begin,
                        &report.end,
                        &report.policy,
                        &report.source,
                        &at,
                    ],
                )
                .map_err(&err)?
            else {
                return Ok(Imported::Duplicate);
            };
            let id: i64 = row.get(0);
            let ins = tx
                .prepare(
                    "INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .map_err(&err)?;
            for r in &report.records {
                tx.execute(
                    &ins,
                    &[
                        &id,
                        &r.source_ip,
                        &(r.count as i64),
                        &r.disposition,
                        &r.dkim_aligned,
                        &r.spf_aligned,
                        &r.header_from,
                        &r.envelope_from,
                        &r.dkim,
                        &r.spf,
                    ],
                )
                .map_err(&err)?;
            }
            Ok(Imported::New)
        })
    }

    fn import_tlsrpt(
        &mut self,
        report: &TlsReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError> {
        self.ensure()?;
        let at = unix_millis(now);
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            let Some(row) = tx
                .query_opt(
                    "INSERT INTO tls_reports (org_name, report_id, begin_time, end_time, source, imported_at)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING id",
                    &[
                        &report.org_name,
                        &report.report_id,
                        &report.begin,
                        &report.end,
                        &report.source,
                        &at,
                    ],
                )
                .map_err(&err)?
            else {
                return Ok(Imported::Duplicate);
            };
            let id: i64 = row.get(0);
            for r in &report.results {
                tx.execute(
                    "INSERT INTO tls_results (report, policy_type, policy_domain, successful, failed, failures)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                    &[
                        &id,
                        &r.policy_type,
                        &r.policy_domain,
                        &(r.successful as i64),
                        &(r.failed as i64),
                        &r.failures,
                    ],
                )
                .map_err(&err)?;
            }
            Ok(Imported::New)
        })
    }

    fn dmarc_daily(&mut self, domain: &str) -> Result<Vec<DmarcDay>, StoreError> {
        self.ensure()?;
        let err = pg_err(&self.location);
        let rows = self
            .client
            .query(
                "SELECT (begin_time / 86400) * 86400 AS day, SUM(count)::bigint,
                        SUM(CASE WHEN dkim_aligned OR spf_aligned THEN count ELSE 0 END)::bigint
                 FROM dmarc_records JOIN dmarc_reports ON dmarc_reports.id = dmarc_records.report
                 WHERE dmarc_reports.domain = $1
                 GROUP BY day ORDER BY day",
                &[&domain],
            )
            .map_err(&err)?;
        Ok(rows
            .iter()
            .map(|r| DmarcDay {
                day: r.get(0),
                messages: r.get::<_, i64>(1) as u64,
                dmarc_pass: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    fn dmarc_summary(&mut self, domain: &str) -> Result<DmarcSummary, StoreError> {
        self.ensure()?;
        let err = pg_err(&self.location);
        let mut sum = DmarcSummary {
            domain: domain.to_string(),
            ..DmarcSummary::default()
        };
        let r = self
            .client
            .query_one(
                "SELECT COUNT(*), MIN(begin_time), MAX(end_time) FROM dmarc_reports WHERE domain = $1",
                &[&domain],
            )
            .map_err(&err)?;
        sum.reports = r.get::<_, i64>(0) as u64;
        sum.first = r.get(1);
        sum.last = r.get(2);
        let rows = self
            .client
            .query(
                "SELECT source_ip, SUM(count)::bigint,
                        SUM(CASE WHEN dkim_aligned OR spf_aligned THEN count ELSE 0 END)::bigint,
                        SUM(CASE WHEN dkim_aligned THEN count ELSE 0 END)::bigint,
                        SUM(CASE WHEN spf_aligned THEN count ELSE 0 END)::bigint,
                        SUM(CASE WHEN disposition = 'quarantine' THEN count ELSE 0 END)::bigint,
                        SUM(CASE WHEN disposition = 'reject' THEN count ELSE 0 END)::bigint
                 FROM dmarc_records JOIN dmarc_reports ON dmarc_reports.id = dmarc_records.report
                 WHERE dmarc_reports.domain = $1
                 GROUP BY source_ip ORDER BY SUM(count) DESC, source_ip",
                &[&domain],
            )
            .map_err(&err)?;
        for r in rows {
            let s = SourceSummary {
                source_ip: r.get(0),
                messages: r.get::<_, i64>(1) as u64,
                dmarc_pass: r.get::<_, i64>(2) as u64,
                dkim_aligned: r.get::<_, i64>(3) as u64,
                spf_aligned: r.get::<_, i64>(4) as u64,
                quarantined: r.get::<_, i64>(5) as u64,
                rejected: r.get::<_, i64>(6) as u64,
                sender: None,
            };
            add_source(&mut sum, s);
        }
        drop(err);
        let ips: Vec<String> = sum.sources.iter().map(|s| s.source_ip.clone()).collect();
        attach_senders(&mut sum, self.dmarc_senders(&ips)?);
        Ok(sum)
    }

    fn dmarc_senders(&mut self, ips: &[String]) -> Result<Vec<DmarcSenderRow>, StoreError> {
        self.ensure()?;
        let rows = self
            .client
            .query(
                "SELECT source_ip, ptr, confirmed, base_domain, service, service_type, checked_at
                 FROM dmarc_senders WHERE source_ip = ANY($1)",
                &[&ips],
            )
            .map_err(pg_err(&self.location))?;
        Ok(rows
            .iter()
            .map(|r| DmarcSenderRow {
                source_ip: r.get(0),
                ptr: r.get(1),
                confirmed: r.get(2),
                base_domain: r.get(3),
                service: r.get(4),
                service_type: r.get(5),
                checked_at: r.get(6),
            })
            .collect())
    }

    fn save_dmarc_senders(&mut self, rows: &[DmarcSenderRow]) -> Result<(), StoreError> {
        self.ensure()?;
        let err = pg_err(&self.location);
        let mut tx = self.client.transaction().map_err(&err)?;
        for r in rows {
            tx.execute(
                "INSERT INTO dmarc_senders (source_ip, ptr, confirmed, base_domain, service, service_type, checked_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (source_ip) DO UPDATE SET ptr = EXCLUDED.ptr, confirmed = EXCLUDED.confirmed,
                   base_domain = EXCLUDED.base_domain, service = EXCLUDED.service,
                   service_type = EXCLUDED.service_type, checked_at = EXCLUDED.checked_at",
                &[&r.source_ip, &r.ptr, &r.confirmed, &r.base_domain, &r.service, &r.service_type, &r.checked_at],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    fn dkim_selectors(&mut self, domain: &str) -> Result<Vec<String>, StoreError> {
        self.ensure()?;
        let rows = self
            .client
            .query(
                "SELECT DISTINCT dkim FROM dmarc_records WHERE dkim LIKE $1",
                &[&format!("%{domain}/%")],
            )
            .map_err(pg_err(&self.location))?;
        let mut out: Vec<String> = Vec::new();
        for row in rows {
            add_selectors(&mut out, row.get(0), domain);
        }
        out.sort();
        Ok(out)
    }

    fn save_mailcheck(&mut self, check: &MailCheckRow) -> Result<MailCheckDiff, StoreError> {
        self.ensure()?;
        let now_lines = finding_lines(&check.findings);
        let previous: Option<(i64, String)> = self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            // one writer per domain at a time, so "previous" is well defined
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&check.domain])
                .map_err(&err)?;
            let previous = tx
                .query_opt(
                    "SELECT checked_at, findings FROM mailcheck_results WHERE domain = $1 ORDER BY checked_at DESC, id DESC LIMIT 1",
                    &[&check.domain],
                )
                .map_err(&err)?
                .map(|r| (r.get(0), r.get(1)));
            tx.execute(
                "INSERT INTO mailcheck_results (domain, checked_at, worst, findings, report) VALUES ($1, $2, $3, $4, $5)",
                &[&check.domain, &check.checked_at, &check.worst, &now_lines.join("\n"), &check.report],
            )
            .map_err(&err)?;
            Ok(previous)
        })?;
        Ok(diff_findings(previous, &now_lines))
    }

    fn mailcheck_history(
        &mut self,
        domain: &str,
        limit: usize,
    ) -> Result<Vec<MailCheckRow>, StoreError> {
        let rows = self.query_rows(
            "SELECT domain, checked_at, worst, findings, report FROM mailcheck_results
             WHERE domain = $1 ORDER BY checked_at DESC, id DESC LIMIT $2",
            &[&domain, &(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| MailCheckRow {
                domain: r.get(0),
                checked_at: r.get(1),
                worst: r.get(2),
                findings: findings_from_lines(r.get(3)),
                report: r.get(4),
            })
            .collect())
    }
}
