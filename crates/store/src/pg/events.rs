//! [`EventStore`] on PostgreSQL. Query events go in with one `COPY ... FROM
//! STDIN BINARY` stream per batch (no statement, no round trip per event),
//! and the batch's hourly counts, summed in memory first, are appended to
//! `query_hourly_delta` with a second COPY in the same transaction: no
//! index lookup and no conflict on the write path, so two nodes writing the
//! same hour never wait for each other. A background fold
//! ([`EventStore::fold_aggregates`], one node at a time under an advisory
//! lock) moves them into `query_hourly`; readers use the view
//! `query_hourly_all`, which adds what is not folded yet, so every count is
//! exact at any time.

use std::time::SystemTime;

use parapet_core::event::{EventRun, RCODE_NO_RESPONSE};
use parapet_core::name::write_key_as_text;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;

use super::alerts::{fold_signals, put_seen};
use super::partitions::DAY_MS;
use super::{PgStore, TENANT, pg_err};
use crate::rules::alerts::group_signals;
use crate::rules::events::{BLOCKED_ACTIONS, hourly_counts, last_time, queries};
use crate::rules::search::{COLUMNS, Conditions, Param, page};
use crate::{
    BatchId, BatchStored, EventQuery, EventStore, Findings, HourlyTraffic, Purged, Retention,
    StoreError, StoredEvent, TenantTraffic, cutoff, unix_millis,
};

/// The advisory lock key of the aggregate fold ("pfold"): one node folds at
/// a time, the others skip.
const FOLD_LOCK: i64 = 0x0070_666f_6c64;

/// A row selected with [`COLUMNS`] (the search, the SIEM export).
pub(super) fn stored_event(r: &postgres::Row) -> StoredEvent {
    StoredEvent {
        id: r.get(0),
        time: r.get(1),
        tenant: r.get(2),
        client: hex::encode(r.get::<_, Vec<u8>>(3)),
        qname: r.get(4),
        qtype: r.get::<_, i32>(5) as u16,
        rcode: r.get::<_, Option<i32>>(6).map(|v| v as u8),
        action: r.get(7),
        feed: r.get(8),
        node: r.get(9),
        queries: r.get::<_, i64>(10) as u32,
        last_time: r.get(11),
    }
}

impl EventStore for PgStore {
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

    /// Raw events go by whole days: a day's partition is dropped once all
    /// of it is past retention (so events are kept up to a day longer than
    /// `events_days`); only stray rows in the default partition are
    /// deleted one by one.
    fn purge(&mut self, now: SystemTime, retention: Retention) -> Result<Purged, StoreError> {
        self.ensure_partitions(now)?;
        let ev_cut = cutoff(now, retention.events_days);
        let agg_cut = cutoff(now, retention.aggregates_days) / 1000;
        let past: Vec<String> = self
            .day_partitions()?
            .into_iter()
            .filter(|(_, day)| (day + 1) * DAY_MS <= ev_cut)
            .map(|(name, _)| name)
            .collect();
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            let mut events = 0;
            for name in &past {
                let n: i64 = tx
                    .query_one(&format!("SELECT COUNT(*) FROM {name}"), &[])
                    .map_err(&err)?
                    .get(0);
                tx.batch_execute(&format!("DROP TABLE {name}"))
                    .map_err(&err)?;
                events += n as u64;
            }
            events += tx
                .execute(
                    "DELETE FROM query_events_default WHERE time < $1",
                    &[&ev_cut],
                )
                .map_err(&err)?;
            // a batch older than the events it held cannot come back
            tx.execute(
                "DELETE FROM applied_batches WHERE applied_at < $1",
                &[&ev_cut],
            )
            .map_err(&err)?;
            // sealed addresses go with the events they stood beside
            tx.execute(
                "DELETE FROM sealed_clients WHERE first_time < $1",
                &[&ev_cut],
            )
            .map_err(&err)?;
            let aggregates = tx
                .execute(
                    "DELETE FROM query_hourly WHERE hour + 3600 <= $1",
                    &[&agg_cut],
                )
                .map_err(&err)?
                + tx.execute(
                    "DELETE FROM query_hourly_delta WHERE hour + 3600 <= $1",
                    &[&agg_cut],
                )
                .map_err(&err)?;
            tx.execute(
                "DELETE FROM query_tenant_hourly WHERE hour + 3600 <= $1",
                &[&agg_cut],
            )
            .map_err(&err)?;
            Ok(Purged { events, aggregates })
        })
    }

    fn search_events(&mut self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let (limit, offset) = page(q);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let c = Conditions::new(q, |i| format!("${i}"));
        let n = c.params.len();
        let mut values: Vec<Box<dyn postgres::types::ToSql + Sync>> = c
            .params
            .into_iter()
            .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
                match p {
                    Param::Text(t) => Box::new(t),
                    Param::Int(i) => Box::new(i),
                    Param::Bytes(b) => Box::new(b),
                }
            })
            .collect();
        values.push(Box::new(limit));
        values.push(Box::new(offset));
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values.iter().map(|v| &**v).collect();
        // the ids and times first, from an index that holds every column
        // the conditions name (an index-only scan of each day's partition
        // the time range leaves), then those rows, pruned to their days
        let keys = self.query_rows(
            &format!(
                "SELECT id, time FROM query_events WHERE {} ORDER BY time DESC, id DESC LIMIT ${} OFFSET ${}",
                c.sql,
                n + 1,
                n + 2
            ),
            &refs,
        )?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = keys.iter().map(|r| r.get(0)).collect();
        let times = keys.iter().map(|r| r.get::<_, i64>(1));
        let (lo, hi) = (times.clone().min(), times.max());
        let rows = self.query_rows(
            &format!(
                "SELECT {COLUMNS} FROM query_events WHERE id = ANY($1) AND time >= $2 AND time <= $3
                 ORDER BY time DESC, id DESC"
            ),
            &[&ids, &lo, &hi],
        )?;
        Ok(rows.iter().map(stored_event).collect())
    }

    fn defers_aggregates(&self) -> bool {
        true
    }

    fn fold_aggregates(&mut self) -> Result<u64, StoreError> {
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            let mine: bool = tx
                .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&FOLD_LOCK])
                .map_err(&err)?
                .get(0);
            if !mine {
                return Ok(0);
            }
            // rows a batch commits meanwhile are not in this snapshot: they
            // stay for the next fold, so every count is folded exactly once
            tx.execute(
                // the per-tenant totals are folded from the same rows
                // (schema step 18): a CTE that modifies data always runs
                "WITH d AS (DELETE FROM query_hourly_delta RETURNING tenant, qname, hour, action, queries),
                 t AS (INSERT INTO query_tenant_hourly (tenant, hour, action, queries)
                       SELECT tenant, hour, action, SUM(queries)::bigint FROM d
                       GROUP BY tenant, hour, action ORDER BY tenant, hour, action
                       ON CONFLICT (tenant, hour, action) DO UPDATE SET queries = query_tenant_hourly.queries + EXCLUDED.queries)
                 INSERT INTO query_hourly (tenant, qname, hour, action, queries)
                 SELECT tenant, qname, hour, action, SUM(queries)::bigint FROM d
                 GROUP BY tenant, qname, hour, action ORDER BY tenant, qname, hour, action
                 ON CONFLICT (tenant, qname, hour, action) DO UPDATE SET queries = query_hourly.queries + EXCLUDED.queries",
                &[],
            )
            .map_err(&err)
        })
    }

    fn event_count(&mut self) -> Result<u64, StoreError> {
        self.ensure()?;
        let row = self
            .client
            .query_one(
                "SELECT COALESCE(SUM(queries), 0)::BIGINT FROM query_events",
                &[],
            )
            .map_err(pg_err(&self.location))?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    fn traffic_totals(
        &mut self,
        tenant: Option<&str>,
        from: i64,
    ) -> Result<Vec<TenantTraffic>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "SELECT tenant, SUM(queries)::bigint, SUM(CASE WHEN action IN {BLOCKED_ACTIONS} THEN queries ELSE 0 END)::bigint
                 FROM query_tenant_hourly_all WHERE hour >= $1 AND {TENANT} GROUP BY tenant ORDER BY tenant"
            ),
            &[&from, &tenant],
        )?;
        Ok(rows
            .iter()
            .map(|r| TenantTraffic {
                tenant: r.get(0),
                queries: r.get::<_, i64>(1) as u64,
                blocked: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    fn hourly_traffic(
        &mut self,
        tenant: Option<&str>,
        from: i64,
    ) -> Result<Vec<HourlyTraffic>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "SELECT tenant, hour, SUM(queries)::bigint, SUM(CASE WHEN action IN {BLOCKED_ACTIONS} THEN queries ELSE 0 END)::bigint
                 FROM query_tenant_hourly_all WHERE hour >= $1 AND {TENANT} GROUP BY tenant, hour ORDER BY hour, tenant"
            ),
            &[&from, &tenant],
        )?;
        Ok(rows
            .iter()
            .map(|r| HourlyTraffic {
                tenant: r.get(0),
                hour: r.get(1),
                queries: r.get::<_, i64>(2) as u64,
                blocked: r.get::<_, i64>(3) as u64,
            })
            .collect())
    }

    fn top_blocked(
        &mut self,
        tenant: Option<&str>,
        from: i64,
        limit: usize,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "SELECT tenant, qname, SUM(queries)::bigint AS n FROM query_hourly_all
                 WHERE hour >= $1 AND {TENANT} AND action IN {BLOCKED_ACTIONS}
                 GROUP BY tenant, qname ORDER BY n DESC, qname LIMIT $3"
            ),
            &[&from, &tenant, &(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
            .collect())
    }
}

impl PgStore {
    /// Writes `runs` in one transaction, once per `id` when one is given
    /// (see [`EventStore::insert_batch`]).
    fn write_runs(
        &mut self,
        mut batch: Option<(BatchId, &mut dyn FnMut() -> Findings)>,
        runs: &[EventRun<'_>],
    ) -> Result<Option<BatchStored>, StoreError> {
        self.ensure()?;
        if runs.is_empty() && batch.is_none() {
            return Ok(Some(BatchStored::default()));
        }
        let n = queries(runs);
        // one delta row per key and batch
        let hourly = hourly_counts(runs);
        let qnames: Vec<String> = runs
            .iter()
            .map(|r| {
                let mut qname = String::with_capacity(64);
                let _ = write_key_as_text(r.event.qname.as_key(), &mut qname);
                qname
            })
            .collect();
        self.tx(|tx, loc, node| {
            let err = pg_err(loc);
            let mut alerts = Vec::new();
            if let Some((id, detect)) = &mut batch {
                let new = tx
                    .execute(
                        "INSERT INTO applied_batches (node, run, seq, applied_at) VALUES ($1, $2, $3, $4)
                         ON CONFLICT DO NOTHING",
                        &[&node, &id.run, &id.seq, &unix_millis(SystemTime::now())],
                    )
                    .map_err(&err)?;
                if new == 0 {
                    return Ok(None);
                }
                let found = detect();
                put_seen(tx, loc, &found.learning_started, &found.new_domains)?;
                if !found.signals.is_empty() {
                    alerts = fold_signals(tx, loc, node, &group_signals(&found.signals))?;
                }
            }
            // COPY BINARY: the fastest way into PostgreSQL, one stream per batch
            let sink = tx
                .copy_in(
                    "COPY query_events (time, tenant, client, qname, qtype, rcode, action, feed, node, queries, last_time) FROM STDIN BINARY",
                )
                .map_err(&err)?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[
                    Type::INT8,
                    Type::TEXT,
                    Type::BYTEA,
                    Type::TEXT,
                    Type::INT4,
                    Type::INT4,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::INT8,
                    Type::INT8,
                ],
            );
            for (r, qname) in runs.iter().zip(&qnames) {
                let e = r.event;
                w.write(&[
                    &unix_millis(r.first),
                    &&*e.tenant,
                    &&e.client.0[..],
                    qname,
                    &i32::from(e.qtype),
                    &(e.rcode != RCODE_NO_RESPONSE).then_some(i32::from(e.rcode)),
                    &e.action.as_str(),
                    &e.feed.as_deref(),
                    &node,
                    &i64::from(r.queries),
                    &last_time(r),
                ])
                .map_err(&err)?;
            }
            w.finish().map_err(&err)?;
            // the batch's hourly counts: appended, folded later (fold_aggregates)
            let sink = tx
                .copy_in(
                    "COPY query_hourly_delta (tenant, qname, hour, action, queries) FROM STDIN BINARY",
                )
                .map_err(&err)?;
            let mut w = BinaryCopyInWriter::new(
                sink,
                &[Type::TEXT, Type::TEXT, Type::INT8, Type::TEXT, Type::INT8],
            );
            let mut q = String::with_capacity(64);
            for ((t, name, h, a), c) in &hourly {
                q.clear();
                let _ = write_key_as_text(name, &mut q);
                w.write(&[t, &q, h, a, c]).map_err(&err)?;
            }
            w.finish().map_err(&err)?;
            Ok(Some(BatchStored { queries: n, alerts }))
        })
    }
}
