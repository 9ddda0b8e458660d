//! [`AlertStore`] on SQLite: signals folded into alerts (one IMMEDIATE
//! transaction per batch), the status workflow with its history, and the
//! detector's seen domains.

use std::sync::Arc;
use std::time::SystemTime;

use parapet_core::alert::{Alert, AlertStatus, Signal};
use parapet_core::pseudonym::ClientPseudonym;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_err};
use crate::rules::alerts::{
    AlertRow, HistoryRow, REOPENED_BY, REOPENED_NOTE, StoredAlert, group_signals, pseudonyms,
};
use crate::{
    AlertFilter, AlertStore, AlertTally, Notification, OutboxCounts, SeenDomains, StoreError,
    unix_millis,
};

impl AlertStore for SqliteStore {
    fn record_signals(&mut self, signals: &[Signal]) -> Result<Vec<(i64, bool)>, StoreError> {
        let err = sql_err(&self.path);
        // IMMEDIATE: it reads then writes, and a deferred transaction that
        // must upgrade to a writer while another connection writes fails
        // with SQLITE_BUSY at once instead of waiting (busy_timeout)
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let touched = fold_signals(&tx, &self.path, &self.node, signals)?;
        tx.commit().map_err(err)?;
        Ok(touched)
    }

    fn pending_notifications(&mut self, limit: usize) -> Result<Vec<Notification>, StoreError> {
        self.notifications_where(
            "failed_at IS NULL ORDER BY next_at, id LIMIT ?1",
            limit as i64,
        )
    }

    fn route_notification(&mut self, id: i64, targets: &[(String, i64)]) -> Result<(), StoreError> {
        let err = sql_err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT alert_id, created_at FROM notify_outbox WHERE id = ?1 AND target IS NULL",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)?;
        let Some((alert_id, created_at)) = row else {
            return Ok(());
        };
        for (target, next_at) in targets {
            tx.execute(
                "INSERT INTO notify_outbox (alert_id, target, created_at, next_at) VALUES (?1, ?2, ?3, ?4)",
                params![alert_id, target, created_at, next_at],
            )
            .map_err(err)?;
        }
        tx.execute("DELETE FROM notify_outbox WHERE id = ?1", params![id])
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    fn notifications_delivered(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        for id in ids {
            tx.execute("DELETE FROM notify_outbox WHERE id = ?1", params![id])
                .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn notifications_failed(
        &mut self,
        ids: &[i64],
        error: &str,
        next_at: i64,
        failed_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        for id in ids {
            tx.execute(
                "UPDATE notify_outbox SET attempts = attempts + 1, last_error = ?2, next_at = ?3, failed_at = ?4
                 WHERE id = ?1",
                params![id, error, next_at, failed_at],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    fn alert_notifications(&mut self, alert_id: i64) -> Result<Vec<Notification>, StoreError> {
        self.notifications_where("alert_id = ?1 ORDER BY id", alert_id)
    }

    fn outbox_counts(&mut self) -> Result<OutboxCounts, StoreError> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FILTER (WHERE failed_at IS NULL),
                        COUNT(*) FILTER (WHERE failed_at IS NULL AND attempts > 0),
                        COUNT(*) FILTER (WHERE failed_at IS NOT NULL)
                 FROM notify_outbox",
                [],
                |r| {
                    Ok(OutboxCounts {
                        pending: r.get::<_, i64>(0)? as u64,
                        retrying: r.get::<_, i64>(1)? as u64,
                        failed: r.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .map_err(sql_err(&self.path))
    }

    fn alert_tally(&mut self, tenant: Option<&str>) -> Result<Vec<AlertTally>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT status, severity, COUNT(*) FROM alerts
                 WHERE ?1 IS NULL OR tenant = ?1 GROUP BY status, severity",
            )
            .map_err(sql_err(&self.path))?;
        stmt.query_map(params![tenant], |r| {
            Ok(AlertTally {
                status: r.get(0)?,
                severity: r.get(1)?,
                count: r.get::<_, i64>(2)? as u64,
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(sql_err(&self.path))
    }

    fn list_alerts(&mut self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        // two statements for the whole list, not two per alert: the
        // overview counts every alert, and 10,000 of them must render in
        // well under 100 ms (bench/web)
        let err = sql_err(&self.path);
        let rows: Vec<AlertRow> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id, tenant, rule, domain, severity, status, first_seen, last_seen, count, feeds, reason, evidence,
                            (SELECT COUNT(*) FROM alert_clients WHERE alert_id = alerts.id), nodes
                     FROM alerts
                     WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR rule = ?3) AND (?4 IS NULL OR last_seen >= ?4)
                     ORDER BY last_seen DESC, id DESC LIMIT ?5",
                )
                .map_err(err)?;
            let limit = filter.limit.map_or(-1, |l| l as i64);
            stmt.query_map(
                params![
                    filter.tenant,
                    filter.status.map(AlertStatus::as_str),
                    filter.rule,
                    filter.since,
                    limit
                ],
                |r| {
                    Ok(AlertRow {
                        id: r.get(0)?,
                        tenant: r.get(1)?,
                        rule: r.get(2)?,
                        domain: r.get(3)?,
                        severity: r.get(4)?,
                        status: r.get(5)?,
                        first_seen: r.get(6)?,
                        last_seen: r.get(7)?,
                        count: r.get(8)?,
                        feeds: r.get(9)?,
                        reason: r.get(10)?,
                        evidence: r.get(11)?,
                        clients: r.get(12)?,
                        nodes: r.get(13)?,
                    })
                },
            )
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(err)?
        };
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids = format!(
            "[{}]",
            rows.iter()
                .map(|r| r.id.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut histories: std::collections::HashMap<i64, Vec<HistoryRow>> =
            std::collections::HashMap::new();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT alert_id, time, from_status, to_status, by, note FROM alert_history
                     WHERE alert_id IN (SELECT value FROM json_each(?1)) ORDER BY id",
                )
                .map_err(err)?;
            let mut q = stmt.query(params![ids]).map_err(err)?;
            while let Some(r) = q.next().map_err(err)? {
                histories
                    .entry(r.get(0).map_err(err)?)
                    .or_default()
                    .push(HistoryRow {
                        time: r.get(1).map_err(err)?,
                        from: r.get(2).map_err(err)?,
                        to: r.get(3).map_err(err)?,
                        by: r.get(4).map_err(err)?,
                        note: r.get(5).map_err(err)?,
                    });
            }
        }
        let location = self.location_string();
        rows.into_iter()
            .map(|row| {
                let h = histories.remove(&row.id).unwrap_or_default();
                row.into_alert(h, &location)
            })
            .collect()
    }

    fn alert(&mut self, id: i64) -> Result<Alert, StoreError> {
        let err = sql_err(&self.path);
        let row = self
            .conn
            .query_row(
                "SELECT tenant, rule, domain, severity, status, first_seen, last_seen, count, feeds, reason, evidence,
                        (SELECT COUNT(*) FROM alert_clients WHERE alert_id = alerts.id), nodes
                 FROM alerts WHERE id = ?1",
                params![id],
                |r| {
                    Ok(AlertRow {
                        id,
                        tenant: r.get(0)?,
                        rule: r.get(1)?,
                        domain: r.get(2)?,
                        severity: r.get(3)?,
                        status: r.get(4)?,
                        first_seen: r.get(5)?,
                        last_seen: r.get(6)?,
                        count: r.get(7)?,
                        feeds: r.get(8)?,
                        reason: r.get(9)?,
                        evidence: r.get(10)?,
                        clients: r.get(11)?,
                        nodes: r.get(12)?,
                    })
                },
            )
            .optional()
            .map_err(err)?
            .ok_or(StoreError::NoSuchAlert(id))?;
        let history = self
            .conn
            .prepare_cached(
                "SELECT time, from_status, to_status, by, note FROM alert_history WHERE alert_id = ?1 ORDER BY id",
            )
            .map_err(err)?
            .query_map(params![id], |r| {
                Ok(HistoryRow {
                    time: r.get(0)?,
                    from: r.get(1)?,
                    to: r.get(2)?,
                    by: r.get(3)?,
                    note: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err)?;
        row.into_alert(history, &self.location_string())
    }

    fn set_alert_status(
        &mut self,
        id: i64,
        to: AlertStatus,
        by: &str,
        note: &str,
        now: SystemTime,
    ) -> Result<Alert, StoreError> {
        let from = self.alert(id)?.status;
        if !from.can_become(to) {
            return Err(StoreError::BadTransition { id, from, to });
        }
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "UPDATE alerts SET status = ?2 WHERE id = ?1",
            params![id, to.as_str()],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO alert_history (alert_id, time, from_status, to_status, by, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, unix_millis(now), from.as_str(), to.as_str(), by, note],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        self.alert(id)
    }

    fn alert_pseudonyms(
        &mut self,
        id: i64,
        limit: usize,
    ) -> Result<Vec<ClientPseudonym>, StoreError> {
        let err = sql_err(&self.path);
        let blobs: Vec<Vec<u8>> = self
            .conn
            .prepare_cached(
                "SELECT client FROM alert_clients WHERE alert_id = ?1 ORDER BY client LIMIT ?2",
            )
            .map_err(err)?
            .query_map(params![id, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                r.get(0)
            })
            .and_then(|rows| rows.collect())
            .map_err(err)?;
        pseudonyms(blobs, &self.location_string())
    }

    fn load_seen(&mut self) -> Result<Vec<SeenDomains>, StoreError> {
        let mut out: Vec<SeenDomains> = {
            let mut stmt = self
                .conn
                .prepare("SELECT tenant, since FROM tenant_learning ORDER BY tenant")
                .map_err(sql_err(&self.path))?;
            stmt.query_map([], |r| {
                Ok(SeenDomains {
                    tenant: r.get(0)?,
                    since: r.get(1)?,
                    domains: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(sql_err(&self.path))?
        };
        let mut stmt = self
            .conn
            .prepare("SELECT tenant, domain FROM tenant_domains ORDER BY tenant")
            .map_err(sql_err(&self.path))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sql_err(&self.path))?;
        for row in rows {
            let (tenant, domain) = row.map_err(sql_err(&self.path))?;
            if let Some(t) = out.iter_mut().find(|t| t.tenant == tenant) {
                t.domains.push(domain);
            }
        }
        Ok(out)
    }

    fn save_seen(
        &mut self,
        learning_started: &[(Arc<str>, SystemTime)],
        domains: &[(Arc<str>, String, SystemTime)],
    ) -> Result<(), StoreError> {
        if learning_started.is_empty() && domains.is_empty() {
            return Ok(());
        }
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        put_seen(&tx, &self.path, learning_started, domains)?;
        tx.commit().map_err(err)
    }
}

impl SqliteStore {
    /// Outbox rows matching `rest` (a WHERE clause with one parameter).
    fn notifications_where(&self, rest: &str, p: i64) -> Result<Vec<Notification>, StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .prepare_cached(&format!(
                "SELECT id, alert_id, target, created_at, attempts, next_at, last_error, failed_at
                 FROM notify_outbox WHERE {rest}"
            ))
            .map_err(err)?
            .query_map(params![p], |r| {
                Ok(Notification {
                    id: r.get(0)?,
                    alert_id: r.get(1)?,
                    target: r.get(2)?,
                    created_at: r.get(3)?,
                    attempts: r.get(4)?,
                    next_at: r.get(5)?,
                    last_error: r.get(6)?,
                    failed_at: r.get(7)?,
                })
            })
            .and_then(|rows| rows.collect())
            .map_err(err)
    }
}

/// Folds `signals` into alerts inside `tx` (see
/// [`AlertStore::record_signals`]), with an outbox row per alert raised.
pub(super) fn fold_signals(
    tx: &rusqlite::Connection,
    path: &std::path::Path,
    node: &str,
    signals: &[Signal],
) -> Result<Vec<(i64, bool)>, StoreError> {
    let err = sql_err(path);
    let groups = group_signals(signals);
    let mut touched: Vec<(i64, bool)> = Vec::with_capacity(groups.len());
    for g in &groups {
        let existing: Option<(i64, String, String, String, String, String)> = tx
            .query_row(
                "SELECT id, status, feeds, evidence, severity, nodes FROM alerts WHERE tenant = ?1 AND rule = ?2 AND domain = ?3",
                params![g.tenant, g.rule, g.domain],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()
            .map_err(err)?;
        let id = match existing {
            None => {
                tx.execute(
                    "INSERT INTO alerts (tenant, rule, domain, severity, first_seen, last_seen, count, feeds, reason, evidence, nodes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                    params![
                        g.tenant,
                        g.rule,
                        g.domain,
                        g.severity.as_str(),
                        g.first_seen,
                        g.last_seen,
                        g.count,
                        g.feeds_text(),
                        g.reason,
                        g.evidence_text(),
                        node
                    ],
                )
                .map_err(err)?;
                let id = tx.last_insert_rowid();
                touched.push((id, true));
                id
            }
            Some((id, status, feeds, evidence, severity, nodes)) => {
                let stored = StoredAlert {
                    status: &status,
                    feeds: &feeds,
                    evidence: &evidence,
                    severity: &severity,
                    nodes: &nodes,
                };
                let up = g.fold_into(&stored, node);
                tx.execute(
                    "UPDATE alerts SET count = count + ?8, last_seen = MAX(last_seen, ?3), first_seen = MIN(first_seen, ?2),
                     feeds = ?4, evidence = ?5, reason = ?6, severity = ?7, nodes = ?9, status = ?10 WHERE id = ?1",
                    params![
                        id,
                        g.first_seen,
                        g.last_seen,
                        up.feeds,
                        up.evidence,
                        g.reason,
                        up.severity,
                        g.count,
                        up.nodes,
                        up.status
                    ],
                )
                .map_err(err)?;
                if up.reopened {
                    tx.execute(
                        "INSERT INTO alert_history (alert_id, time, from_status, to_status, by, note)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            id,
                            g.time,
                            status,
                            up.status,
                            REOPENED_BY,
                            REOPENED_NOTE
                        ],
                    )
                    .map_err(err)?;
                }
                touched.push((id, up.reopened));
                id
            }
        };
        let mut add = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO alert_clients (alert_id, client) VALUES (?1, ?2)",
            )
            .map_err(err)?;
        for c in &g.clients {
            add.execute(params![id, c]).map_err(err)?;
        }
    }
    let now = unix_millis(SystemTime::now());
    for (id, _) in touched.iter().filter(|(_, raised)| *raised) {
        tx.execute(
            "INSERT INTO notify_outbox (alert_id, created_at, next_at) VALUES (?1, ?2, ?2)",
            params![id, now],
        )
        .map_err(err)?;
    }
    Ok(touched)
}

/// Stores the detector's learning starts and new domains inside `tx`.
pub(super) fn put_seen(
    tx: &rusqlite::Connection,
    path: &std::path::Path,
    learning_started: &[(Arc<str>, SystemTime)],
    domains: &[(Arc<str>, String, SystemTime)],
) -> Result<(), StoreError> {
    let err = sql_err(path);
    for (tenant, since) in learning_started {
        tx.execute(
            "INSERT OR IGNORE INTO tenant_learning (tenant, since) VALUES (?1, ?2)",
            params![&**tenant, unix_millis(*since)],
        )
        .map_err(err)?;
    }
    for (tenant, domain, first) in domains {
        tx.execute(
            "INSERT OR IGNORE INTO tenant_domains (tenant, domain, first_seen) VALUES (?1, ?2, ?3)",
            params![&**tenant, domain, unix_millis(*first)],
        )
        .map_err(err)?;
    }
    Ok(())
}
