//! [`EventStore`] on SQLite: query events written in multi-row `INSERT`s,
//! the hourly aggregates updated in place in the same transaction, and the
//! dashboard's traffic reads from them.

use std::time::SystemTime;

use hashbrown::HashMap;
use parapet_core::event::{EventRun, RCODE_NO_RESPONSE};
use parapet_core::name::write_key_as_text;
use rusqlite::params;

use super::alerts::{fold_signals, put_seen};
use super::{SqliteStore, sql_err, tenant_clause};
use crate::rules::events::{BLOCKED_ACTIONS, hourly_counts, last_time, queries};
use crate::rules::search::{COLUMNS, Conditions, Param, page};
use crate::{
    BatchId, BatchStored, EventQuery, EventStore, Findings, HourlyTraffic, Purged, Retention,
    StoreError, StoredEvent, TenantTraffic, cutoff, unix_millis,
};

/// Rows per multi-row `INSERT` of query events.
const EVENT_ROWS: usize = 64;

/// One stored row's columns: a query, or the repeats of one
/// ([`crate::rules::events`]).
struct EventRow<'a> {
    time: i64,
    tenant: &'a str,
    client: &'a [u8],
    qname: &'a str,
    /// `qname` reversed, for suffix search ([`crate::rules::search`]).
    rname: &'a str,
    qtype: u16,
    rcode: Option<u8>,
    action: &'static str,
    feed: Option<&'a str>,
    node: &'a str,
    queries: i64,
    last_time: Option<i64>,
}

/// Columns of [`EventRow`].
const EVENT_COLUMNS: usize = 12;

/// A row selected with [`COLUMNS`] (the search, the SIEM export).
pub(super) fn stored_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        id: r.get(0)?,
        time: r.get(1)?,
        tenant: r.get(2)?,
        client: hex::encode(r.get::<_, Vec<u8>>(3)?),
        qname: r.get(4)?,
        qtype: r.get(5)?,
        rcode: r.get(6)?,
        action: r.get(7)?,
        feed: r.get(8)?,
        node: r.get(9)?,
        queries: r.get(10)?,
        last_time: r.get(11)?,
    })
}

impl EventRow<'_> {
    /// The row's parameters in column order.
    fn params(&self) -> [&dyn rusqlite::ToSql; EVENT_COLUMNS] {
        [
            &self.time,
            &self.tenant,
            &self.client,
            &self.qname,
            &self.qtype,
            &self.rcode,
            &self.action,
            &self.feed,
            &self.node,
            &self.queries,
            &self.last_time,
            &self.rname,
        ]
    }
}

/// `INSERT INTO query_events ... VALUES (...), ...` with `rows` rows of
/// numbered parameters (built once per batch; `prepare_cached` keys on it).
fn insert_events_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO query_events (time, tenant, client, qname, qtype, rcode, action, feed, node, queries, last_time, rname) VALUES ",
    );
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=EVENT_COLUMNS {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("?{}", r * EVENT_COLUMNS + c));
        }
        sql.push(')');
    }
    sql
}

impl EventStore for SqliteStore {
    fn insert_runs(&mut self, runs: &[EventRun<'_>]) -> Result<usize, StoreError> {
        Ok(self.write_runs(None, runs)?.map_or(0, |s| s.queries))
    }

    fn insert_batch_found(
        &mut self,
        id: BatchId,
        runs: &[EventRun<'_>],
        detect: &mut dyn FnMut() -> Findings,
    ) -> Result<Option<BatchStored>, StoreError> {
        self.write_runs(Some((id, detect)), runs)
    }

    fn purge(&mut self, now: SystemTime, retention: Retention) -> Result<Purged, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let events = tx
            .execute(
                "DELETE FROM query_events WHERE time < ?1",
                params![cutoff(now, retention.events_days)],
            )
            .map_err(err)?;
        // a batch older than the events it held cannot come back
        tx.execute(
            "DELETE FROM applied_batches WHERE applied_at < ?1",
            params![cutoff(now, retention.events_days)],
        )
        .map_err(err)?;
        // sealed addresses go with the events they stood beside
        tx.execute(
            "DELETE FROM sealed_clients WHERE first_time < ?1",
            params![cutoff(now, retention.events_days)],
        )
        .map_err(err)?;
        // an hour is kept while any of it is within retention
        let agg_cut = cutoff(now, retention.aggregates_days) / 1000;
        let aggregates = tx
            .execute(
                "DELETE FROM query_hourly WHERE hour + 3600 <= ?1",
                params![agg_cut],
            )
            .map_err(err)?;
        tx.execute(
            "DELETE FROM query_tenant_hourly WHERE hour + 3600 <= ?1",
            params![agg_cut],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Purged {
            events: events as u64,
            aggregates: aggregates as u64,
        })
    }

    fn search_events(&mut self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let (limit, offset) = page(q);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let c = Conditions::new(q, |i| format!("?{i}"));
        let n = c.params.len();
        let mut values: Vec<rusqlite::types::Value> = c
            .params
            .into_iter()
            .map(|p| match p {
                Param::Text(t) => t.into(),
                Param::Int(i) => i.into(),
                Param::Bytes(b) => b.into(),
            })
            .collect();
        let err = sql_err(&self.path);
        // Which index finds a page soonest depends on how many rows match,
        // which SQLite cannot tell without statistics: few, and the name's
        // or client's index (it holds every column the conditions name, so
        // entries are sorted, not rows) finds them all; many (a popular
        // domain), and the time index walked newest first meets a page of
        // them within a few thousand rows. The first index counts up to
        // DENSE matches to choose.
        const DENSE: i64 = 10_000;
        let by_time = if q.name.is_some() || q.domain.is_some() || q.client.is_some() {
            let matches: i64 = self
                .conn
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM (SELECT 1 FROM query_events WHERE {} LIMIT {DENSE})",
                        c.sql
                    ),
                    rusqlite::params_from_iter(values.iter()),
                    |r| r.get(0),
                )
                .map_err(err)?;
            matches >= DENSE
        } else {
            false
        };
        let hint = if by_time {
            "INDEXED BY query_events_time"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM query_events WHERE id IN (
                SELECT id FROM query_events {hint} WHERE {} ORDER BY time DESC, id DESC LIMIT ?{} OFFSET ?{})
             ORDER BY time DESC, id DESC",
            c.sql,
            n + 1,
            n + 2
        );
        values.push(limit.into());
        values.push(offset.into());
        let mut st = self.conn.prepare(&sql).map_err(err)?;
        st.query_map(rusqlite::params_from_iter(values), stored_event)
            .and_then(|rows| rows.collect())
            .map_err(err)
    }

    fn event_count(&mut self) -> Result<u64, StoreError> {
        self.conn
            .query_row(
                "SELECT COALESCE(SUM(queries), 0) FROM query_events",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(sql_err(&self.path))
    }

    fn traffic_totals(
        &mut self,
        tenant: Option<&str>,
        from: i64,
    ) -> Result<Vec<TenantTraffic>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT tenant, SUM(queries), SUM(CASE WHEN action IN {BLOCKED_ACTIONS} THEN queries ELSE 0 END)
                 FROM query_tenant_hourly WHERE hour >= ?1 AND {} GROUP BY tenant ORDER BY tenant",
                tenant_clause(tenant)
            ))
            .map_err(err)?;
        let rows = q
            .query_map(params![from, tenant], |r| {
                Ok(TenantTraffic {
                    tenant: r.get(0)?,
                    queries: r.get::<_, i64>(1)? as u64,
                    blocked: r.get::<_, i64>(2)? as u64,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn hourly_traffic(
        &mut self,
        tenant: Option<&str>,
        from: i64,
    ) -> Result<Vec<HourlyTraffic>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT tenant, hour, SUM(queries), SUM(CASE WHEN action IN {BLOCKED_ACTIONS} THEN queries ELSE 0 END)
                 FROM query_tenant_hourly WHERE hour >= ?1 AND {} GROUP BY tenant, hour ORDER BY hour, tenant",
                tenant_clause(tenant)
            ))
            .map_err(err)?;
        let rows = q
            .query_map(params![from, tenant], |r| {
                Ok(HourlyTraffic {
                    tenant: r.get(0)?,
                    hour: r.get(1)?,
                    queries: r.get::<_, i64>(2)? as u64,
                    blocked: r.get::<_, i64>(3)? as u64,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn top_blocked(
        &mut self,
        tenant: Option<&str>,
        from: i64,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                // the partial index holds the blocked rows only: without
                // statistics the planner may prefer the hour index
                "SELECT tenant, qname, SUM(queries) AS n FROM query_hourly INDEXED BY query_hourly_blocked
                 WHERE hour >= ?1 AND {} AND action IN {BLOCKED_ACTIONS}
                 GROUP BY tenant, qname ORDER BY n DESC, qname LIMIT ?3",
                tenant_clause(tenant)
            ))
            .map_err(err)?;
        let rows = q
            .query_map(params![from, tenant, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }
}

impl SqliteStore {
    /// Writes `runs` in one transaction, once per `id` when one is given
    /// (see [`EventStore::insert_batch`]).
    fn write_runs(
        &mut self,
        batch: Option<(BatchId, &mut dyn FnMut() -> Findings)>,
        runs: &[EventRun<'_>],
    ) -> Result<Option<BatchStored>, StoreError> {
        if runs.is_empty() && batch.is_none() {
            return Ok(Some(BatchStored::default()));
        }
        let err = sql_err(&self.path);
        // IMMEDIATE: the alerts folded below read then write (see
        // `record_signals`)
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        let mut alerts = Vec::new();
        if let Some((id, detect)) = batch {
            let new = tx
                .execute(
                    "INSERT INTO applied_batches (node, run, seq, applied_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                    params![self.node, id.run, id.seq, unix_millis(SystemTime::now())],
                )
                .map_err(err)?;
            if new == 0 {
                return Ok(None);
            }
            let found = detect();
            put_seen(&tx, &self.path, &found.learning_started, &found.new_domains)?;
            if !found.signals.is_empty() {
                alerts = fold_signals(&tx, &self.path, &self.node, &found.signals)?;
            }
        }
        {
            // full chunks go in one statement of EVENT_ROWS rows: SQLite's
            // cost per statement (step, reset, bind) is then paid once per
            // chunk rather than per event
            let mut many = tx
                .prepare_cached(&insert_events_sql(EVENT_ROWS))
                .map_err(err)?;
            let mut one = tx.prepare_cached(&insert_events_sql(1)).map_err(err)?;
            // one upsert per key and batch, not per event
            let hourly = hourly_counts(runs);
            let mut names: Vec<String> = vec![String::with_capacity(64); EVENT_ROWS];
            let mut rnames: Vec<String> = vec![String::with_capacity(64); EVENT_ROWS];
            let node = self.node.as_str();
            for chunk in runs.chunks(EVENT_ROWS) {
                for ((r, name), rname) in chunk.iter().zip(names.iter_mut()).zip(rnames.iter_mut())
                {
                    name.clear();
                    let _ = write_key_as_text(r.event.qname.as_key(), name);
                    rname.clear();
                    rname.extend(name.chars().rev());
                }
                let rows: Vec<EventRow<'_>> = chunk
                    .iter()
                    .zip(names.iter().zip(rnames.iter()))
                    .map(|(r, (name, rname))| {
                        let e = r.event;
                        EventRow {
                            time: unix_millis(r.first),
                            tenant: &e.tenant,
                            client: &e.client.0[..],
                            qname: name,
                            rname,
                            qtype: e.qtype,
                            rcode: (e.rcode != RCODE_NO_RESPONSE).then_some(e.rcode),
                            action: e.action.as_str(),
                            feed: e.feed.as_deref(),
                            node,
                            queries: i64::from(r.queries),
                            last_time: last_time(r),
                        }
                    })
                    .collect();
                if rows.len() == EVENT_ROWS {
                    let all: Vec<&dyn rusqlite::ToSql> =
                        rows.iter().flat_map(EventRow::params).collect();
                    many.execute(&*all).map_err(err)?;
                } else {
                    for r in &rows {
                        one.execute(r.params()).map_err(err)?;
                    }
                }
            }
            let mut agg = tx
                .prepare_cached(
                    "INSERT INTO query_hourly (tenant, qname, hour, action, queries) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (tenant, qname, hour, action) DO UPDATE SET queries = queries + excluded.queries",
                )
                .map_err(err)?;
            let mut qname = String::with_capacity(256);
            let mut per_tenant: HashMap<(&str, i64, &str), i64> = HashMap::new();
            for ((tenant, name, hour, action), n) in hourly {
                qname.clear();
                let _ = write_key_as_text(name, &mut qname);
                agg.execute(params![tenant, qname, hour, action, n])
                    .map_err(err)?;
                *per_tenant.entry((tenant, hour, action)).or_default() += n;
            }
            // the per-tenant totals the dashboard reads (schema step 18)
            let mut totals = tx
                .prepare_cached(
                    "INSERT INTO query_tenant_hourly (tenant, hour, action, queries) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, hour, action) DO UPDATE SET queries = queries + excluded.queries",
                )
                .map_err(err)?;
            for ((tenant, hour, action), n) in per_tenant {
                totals
                    .execute(params![tenant, hour, action, n])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(Some(BatchStored {
            queries: queries(runs),
            alerts,
        }))
    }
}
