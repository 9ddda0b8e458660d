//! [`AlertStore`] on PostgreSQL. Several nodes fold signals into the same
//! alerts at once: an alert is inserted with `ON CONFLICT DO NOTHING` on
//! its unique key and otherwise updated under `SELECT ... FOR UPDATE`, and
//! groups come in key order so that two nodes never deadlock.

use std::sync::Arc;
use std::time::SystemTime;

use parapet_core::alert::{Alert, AlertStatus, Signal};
use parapet_core::pseudonym::ClientPseudonym;
use postgres::Transaction;

use super::{PgStore, pg_err};
use crate::rules::alerts::{
    AlertRow, HistoryRow, REOPENED_BY, REOPENED_NOTE, SignalGroup, StoredAlert, group_signals,
    parse_status, pseudonyms,
};
use crate::{
    AlertFilter, AlertStore, AlertTally, Notification, OutboxCounts, SeenDomains, StoreError,
    unix_millis,
};

impl AlertStore for PgStore {
    fn record_signals(&mut self, signals: &[Signal]) -> Result<Vec<(i64, bool)>, StoreError> {
        self.ensure()?;
        if signals.is_empty() {
            return Ok(Vec::new());
        }
        let groups = group_signals(signals);
        self.tx(|tx, loc, node| fold_signals(tx, loc, node, &groups))
    }

    fn pending_notifications(&mut self, limit: usize) -> Result<Vec<Notification>, StoreError> {
        self.notifications_where(
            "failed_at IS NULL ORDER BY next_at, id LIMIT $1",
            limit as i64,
        )
    }

    fn route_notification(&mut self, id: i64, targets: &[(String, i64)]) -> Result<(), StoreError> {
        let names: Vec<&str> = targets.iter().map(|t| t.0.as_str()).collect();
        let next: Vec<i64> = targets.iter().map(|t| t.1).collect();
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            // the DELETE claims the row: a node routing it at the same
            // moment waits, then finds nothing to route
            let row = tx
                .query_opt(
                    "DELETE FROM notify_outbox WHERE id = $1 AND target IS NULL
                     RETURNING alert_id, created_at",
                    &[&id],
                )
                .map_err(&err)?;
            if let Some(row) = row {
                let (alert_id, created_at): (i64, i64) = (row.get(0), row.get(1));
                tx.execute(
                    "INSERT INTO notify_outbox (alert_id, target, created_at, next_at)
                     SELECT $1, t, $2, n FROM unnest($3::text[], $4::bigint[]) AS x (t, n)",
                    &[&alert_id, &created_at, &names, &next],
                )
                .map_err(&err)?;
            }
            Ok(())
        })
    }

    fn notifications_delivered(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        self.ensure()?;
        self.client
            .execute("DELETE FROM notify_outbox WHERE id = ANY($1)", &[&ids])
            .map_err(pg_err(&self.location))
            .map(drop)
    }

    fn notifications_failed(
        &mut self,
        ids: &[i64],
        error: &str,
        next_at: i64,
        failed_at: Option<i64>,
    ) -> Result<(), StoreError> {
        self.ensure()?;
        self.client
            .execute(
                "UPDATE notify_outbox SET attempts = attempts + 1, last_error = $2, next_at = $3, failed_at = $4
                 WHERE id = ANY($1)",
                &[&ids, &error, &next_at, &failed_at],
            )
            .map_err(pg_err(&self.location))
            .map(drop)
    }

    fn alert_notifications(&mut self, alert_id: i64) -> Result<Vec<Notification>, StoreError> {
        self.notifications_where("alert_id = $1 ORDER BY id", alert_id)
    }

    fn outbox_counts(&mut self) -> Result<OutboxCounts, StoreError> {
        self.ensure()?;
        let row = self
            .client
            .query_one(
                "SELECT COUNT(*) FILTER (WHERE failed_at IS NULL),
                        COUNT(*) FILTER (WHERE failed_at IS NULL AND attempts > 0),
                        COUNT(*) FILTER (WHERE failed_at IS NOT NULL)
                 FROM notify_outbox",
                &[],
            )
            .map_err(pg_err(&self.location))?;
        Ok(OutboxCounts {
            pending: row.get::<_, i64>(0) as u64,
            retrying: row.get::<_, i64>(1) as u64,
            failed: row.get::<_, i64>(2) as u64,
        })
    }

    fn alert_tally(&mut self, tenant: Option<&str>) -> Result<Vec<AlertTally>, StoreError> {
        self.ensure()?;
        let rows = self
            .client
            .query(
                "SELECT status, severity, COUNT(*) FROM alerts
                 WHERE $1::text IS NULL OR tenant = $1 GROUP BY status, severity",
                &[&tenant],
            )
            .map_err(pg_err(&self.location))?;
        Ok(rows
            .iter()
            .map(|r| AlertTally {
                status: r.get(0),
                severity: r.get(1),
                count: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    fn list_alerts(&mut self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        // two round trips for the whole list, not two per alert: the
        // overview counts every alert, and 10,000 of them must render in
        // well under 100 ms (bench/web)
        self.ensure()?;
        let err = pg_err(&self.location);
        let limit = filter.limit.map(|l| l as i64);
        let rows: Vec<AlertRow> = self
            .client
            .query(
                "SELECT id, tenant, rule, domain, severity, status, first_seen, last_seen, count, feeds, reason, evidence,
                        (SELECT COUNT(*) FROM alert_clients WHERE alert_id = alerts.id), nodes
                 FROM alerts
                 WHERE ($1::text IS NULL OR tenant = $1) AND ($2::text IS NULL OR status = $2)
                   AND ($3::text IS NULL OR rule = $3) AND ($4::bigint IS NULL OR last_seen >= $4)
                 ORDER BY last_seen DESC, id DESC LIMIT $5",
                &[
                    &filter.tenant,
                    &filter.status.map(AlertStatus::as_str),
                    &filter.rule,
                    &filter.since,
                    &limit,
                ],
            )
            .map_err(&err)?
            .iter()
            .map(|r| AlertRow {
                id: r.get(0),
                tenant: r.get(1),
                rule: r.get(2),
                domain: r.get(3),
                severity: r.get(4),
                status: r.get(5),
                first_seen: r.get(6),
                last_seen: r.get(7),
                count: r.get(8),
                feeds: r.get(9),
                reason: r.get(10),
                evidence: r.get(11),
                clients: r.get(12),
                nodes: r.get(13),
            })
            .collect();
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut histories: std::collections::HashMap<i64, Vec<HistoryRow>> =
            std::collections::HashMap::new();
        for h in self
            .client
            .query(
                "SELECT alert_id, time, from_status, to_status, by, note FROM alert_history
                 WHERE alert_id = ANY($1) ORDER BY id",
                &[&ids],
            )
            .map_err(&err)?
        {
            histories.entry(h.get(0)).or_default().push(HistoryRow {
                time: h.get(1),
                from: h.get(2),
                to: h.get(3),
                by: h.get(4),
                note: h.get(5),
            });
        }
        rows.into_iter()
            .map(|row| {
                let h = histories.remove(&row.id).unwrap_or_default();
                row.into_alert(h, &self.location)
            })
            .collect()
    }

    fn alert(&mut self, id: i64) -> Result<Alert, StoreError> {
        self.ensure()?;
        let err = pg_err(&self.location);
        let Some(r) = self
            .client
            .query_opt(
                "SELECT tenant, rule, domain, severity, status, first_seen, last_seen, count, feeds, reason, evidence,
                        (SELECT COUNT(*) FROM alert_clients WHERE alert_id = alerts.id), nodes
                 FROM alerts WHERE id = $1",
                &[&id],
            )
            .map_err(&err)?
        else {
            return Err(StoreError::NoSuchAlert(id));
        };
        let row = AlertRow {
            id,
            tenant: r.get(0),
            rule: r.get(1),
            domain: r.get(2),
            severity: r.get(3),
            status: r.get(4),
            first_seen: r.get(5),
            last_seen: r.get(6),
            count: r.get(7),
            feeds: r.get(8),
            reason: r.get(9),
            evidence: r.get(10),
            clients: r.get(11),
            nodes: r.get(12),
        };
        let history = self
            .client
            .query(
                "SELECT time, from_status, to_status, by, note FROM alert_history WHERE alert_id = $1 ORDER BY id",
                &[&id],
            )
            .map_err(&err)?
            .iter()
            .map(|h| HistoryRow {
                time: h.get(0),
                from: h.get(1),
                to: h.get(2),
                by: h.get(3),
                note: h.get(4),
            })
            .collect();
        row.into_alert(history, &self.location)
    }

    fn set_alert_status(
        &mut self,
        id: i64,
        to: AlertStatus,
        by: &str,
        note: &str,
        now: SystemTime,
    ) -> Result<Alert, StoreError> {
        self.ensure()?;
        let at = unix_millis(now);
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            let Some(row) = tx
                .query_opt("SELECT status FROM alerts WHERE id = $1 FOR UPDATE", &[&id])
                .map_err(&err)?
            else {
                return Err(StoreError::NoSuchAlert(id));
            };
            let from = parse_status(row.get(0), loc)?;
            if !from.can_become(to) {
                return Err(StoreError::BadTransition { id, from, to });
            }
            tx.execute(
                "UPDATE alerts SET status = $2 WHERE id = $1",
                &[&id, &to.as_str()],
            )
            .map_err(&err)?;
            tx.execute(
                "INSERT INTO alert_history (alert_id, time, from_status, to_status, by, note) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&id, &at, &from.as_str(), &to.as_str(), &by, &note],
            )
            .map_err(&err)?;
            Ok(())
        })?;
        self.alert(id)
    }

    fn alert_pseudonyms(
        &mut self,
        id: i64,
        limit: usize,
    ) -> Result<Vec<ClientPseudonym>, StoreError> {
        let rows = self.query_rows(
            "SELECT client FROM alert_clients WHERE alert_id = $1 ORDER BY client LIMIT $2",
            &[&id, &i64::try_from(limit).unwrap_or(i64::MAX)],
        )?;
        pseudonyms(rows.iter().map(|r| r.get(0)).collect(), &self.location)
    }

    fn load_seen(&mut self) -> Result<Vec<SeenDomains>, StoreError> {
        self.ensure()?;
        let err = pg_err(&self.location);
        let mut out: Vec<SeenDomains> = self
            .client
            .query(
                "SELECT tenant, since FROM tenant_learning ORDER BY tenant",
                &[],
            )
            .map_err(&err)?
            .iter()
            .map(|r| SeenDomains {
                tenant: r.get(0),
                since: r.get(1),
                domains: Vec::new(),
            })
            .collect();
        for r in self
            .client
            .query(
                "SELECT tenant, domain FROM tenant_domains ORDER BY tenant",
                &[],
            )
            .map_err(&err)?
        {
            let tenant: &str = r.get(0);
            if let Some(t) = out.iter_mut().find(|t| t.tenant == tenant) {
                t.domains.push(r.get(1));
            }
        }
        Ok(out)
    }

    fn save_seen(
        &mut self,
        learning_started: &[(Arc<str>, SystemTime)],
        domains: &[(Arc<str>, String, SystemTime)],
    ) -> Result<(), StoreError> {
        self.ensure()?;
        if learning_started.is_empty() && domains.is_empty() {
            return Ok(());
        }
        self.tx(|tx, loc, _| put_seen(tx, loc, learning_started, domains))
    }
}

impl PgStore {
    /// Outbox rows matching `rest` (a WHERE clause with one parameter).
    fn notifications_where(&mut self, rest: &str, p: i64) -> Result<Vec<Notification>, StoreError> {
        self.ensure()?;
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT id, alert_id, target, created_at, attempts, next_at, last_error, failed_at
                     FROM notify_outbox WHERE {rest}"
                ),
                &[&p],
            )
            .map_err(pg_err(&self.location))?;
        Ok(rows
            .iter()
            .map(|r| Notification {
                id: r.get(0),
                alert_id: r.get(1),
                target: r.get(2),
                created_at: r.get(3),
                attempts: r.get::<_, i32>(4) as u32,
                next_at: r.get(5),
                last_error: r.get(6),
                failed_at: r.get(7),
            })
            .collect())
    }
}

/// Folds signal groups into alerts inside `tx` (see
/// [`AlertStore::record_signals`]), with an outbox row per alert raised.
pub(super) fn fold_signals(
    tx: &mut Transaction<'_>,
    loc: &str,
    node: &str,
    groups: &[SignalGroup<'_>],
) -> Result<Vec<(i64, bool)>, StoreError> {
    let err = pg_err(loc);
    let mut touched: Vec<(i64, bool)> = Vec::with_capacity(groups.len());
    let select = "SELECT id, status, feeds, evidence, severity, nodes FROM alerts
                  WHERE tenant = $1 AND rule = $2 AND domain = $3 FOR UPDATE";
    for g in groups {
        let key: [&(dyn postgres::types::ToSql + Sync); 3] = [&g.tenant, &g.rule, &g.domain];
        let mut existing = tx.query_opt(select, &key).map_err(&err)?;
        let mut id = None;
        if existing.is_none() {
            // another node may insert the same alert at this moment:
            // the unique key makes one of us wait and then find it
            let inserted = tx
                .query_opt(
                    "INSERT INTO alerts (tenant, rule, domain, severity, first_seen, last_seen, count, feeds, reason, evidence, nodes)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (tenant, rule, domain) DO NOTHING RETURNING id",
                    &[
                        &g.tenant,
                        &g.rule,
                        &g.domain,
                        &g.severity.as_str(),
                        &g.first_seen,
                        &g.last_seen,
                        &g.count,
                        &g.feeds_text(),
                        &g.reason,
                        &g.evidence_text(),
                        &node,
                    ],
                )
                .map_err(&err)?;
            match inserted {
                Some(row) => {
                    id = Some(row.get::<_, i64>(0));
                    touched.push((row.get(0), true));
                }
                None => existing = tx.query_opt(select, &key).map_err(&err)?,
            }
        }
        let id = match (id, existing) {
            (Some(id), _) => id,
            (None, None) => return Err(StoreError::NoSuchAlert(0)),
            (None, Some(row)) => {
                let id: i64 = row.get(0);
                let stored = StoredAlert {
                    status: row.get(1),
                    feeds: row.get(2),
                    evidence: row.get(3),
                    severity: row.get(4),
                    nodes: row.get(5),
                };
                let up = g.fold_into(&stored, node);
                tx.execute(
                    "UPDATE alerts SET count = count + $8, last_seen = GREATEST(last_seen, $3), first_seen = LEAST(first_seen, $2),
                     feeds = $4, evidence = $5, reason = $6, severity = $7, nodes = $9, status = $10 WHERE id = $1",
                    &[
                        &id,
                        &g.first_seen,
                        &g.last_seen,
                        &up.feeds,
                        &up.evidence,
                        &g.reason,
                        &up.severity,
                        &g.count,
                        &up.nodes,
                        &up.status,
                    ],
                )
                .map_err(&err)?;
                if up.reopened {
                    tx.execute(
                        "INSERT INTO alert_history (alert_id, time, from_status, to_status, by, note)
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        &[&id, &g.time, &stored.status, &up.status, &REOPENED_BY, &REOPENED_NOTE],
                    )
                    .map_err(&err)?;
                }
                touched.push((id, up.reopened));
                id
            }
        };
        tx.execute(
            "INSERT INTO alert_clients (alert_id, client) SELECT $1, c FROM unnest($2::bytea[]) AS c
             ON CONFLICT DO NOTHING",
            &[&id, &g.clients],
        )
        .map_err(&err)?;
    }
    let raised: Vec<i64> = touched.iter().filter(|t| t.1).map(|t| t.0).collect();
    tx.execute(
        "INSERT INTO notify_outbox (alert_id, created_at, next_at)
         SELECT a, $2, $2 FROM unnest($1::bigint[]) AS a",
        &[&raised, &unix_millis(SystemTime::now())],
    )
    .map_err(&err)?;
    Ok(touched)
}

/// Stores the detector's learning starts and new domains inside `tx`.
pub(super) fn put_seen(
    tx: &mut Transaction<'_>,
    loc: &str,
    learning_started: &[(Arc<str>, SystemTime)],
    domains: &[(Arc<str>, String, SystemTime)],
) -> Result<(), StoreError> {
    if learning_started.is_empty() && domains.is_empty() {
        return Ok(());
    }
    let err = pg_err(loc);
    let mut learn: Vec<(&str, i64)> = learning_started
        .iter()
        .map(|(t, s)| (&**t, unix_millis(*s)))
        .collect();
    learn.sort();
    let mut seen: Vec<(&str, &str, i64)> = domains
        .iter()
        .map(|(t, d, s)| (&**t, d.as_str(), unix_millis(*s)))
        .collect();
    seen.sort();
    let (lt, ls): (Vec<&str>, Vec<i64>) = learn.into_iter().unzip();
    let st: Vec<&str> = seen.iter().map(|s| s.0).collect();
    let sd: Vec<&str> = seen.iter().map(|s| s.1).collect();
    let sf: Vec<i64> = seen.iter().map(|s| s.2).collect();
    tx.execute(
        "INSERT INTO tenant_learning (tenant, since) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT DO NOTHING",
        &[&lt, &ls],
    )
    .map_err(&err)?;
    tx.execute(
        "INSERT INTO tenant_domains (tenant, domain, first_seen)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
        &[&st, &sd, &sf],
    )
    .map_err(&err)?;
    Ok(())
}
