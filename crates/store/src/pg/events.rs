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

use super::{PgStore, TENANT, pg_err};
use crate::rules::events::{BLOCKED_ACTIONS, hourly_counts, last_time, queries};
use crate::{
    BatchId, EventStore, HourlyTraffic, Purged, Retention, StoreError, TenantTraffic, cutoff,
    unix_millis,
};

/// The advisory lock key of the aggregate fold ("pfold"): one node folds at
/// a time, the others skip.
const FOLD_LOCK: i64 = 0x0070_666f_6c64;

impl EventStore for PgStore {
    fn insert_runs(&mut self, runs: &[EventRun<'_>]) -> Result<usize, StoreError> {
        Ok(self.write_runs(None, runs)?.unwrap_or(0))
    }

    fn insert_batch(
        &mut self,
        id: BatchId,
        runs: &[EventRun<'_>],
    ) -> Result<Option<usize>, StoreError> {
        self.write_runs(Some(id), runs)
    }

    fn purge(&mut self, now: SystemTime, retention: Retention) -> Result<Purged, StoreError> {
        self.ensure()?;
        let ev_cut = cutoff(now, retention.events_days);
        let agg_cut = cutoff(now, retention.aggregates_days) / 1000;
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            let events = tx
                .execute("DELETE FROM query_events WHERE time < $1", &[&ev_cut])
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
            Ok(Purged { events, aggregates })
        })
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
                "WITH d AS (DELETE FROM query_hourly_delta RETURNING tenant, qname, hour, action, queries)
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
                 FROM query_hourly_all WHERE hour >= $1 AND {TENANT} GROUP BY tenant ORDER BY tenant"
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
                 FROM query_hourly_all WHERE hour >= $1 AND {TENANT} GROUP BY tenant, hour ORDER BY hour, tenant"
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
        id: Option<BatchId>,
        runs: &[EventRun<'_>],
    ) -> Result<Option<usize>, StoreError> {
        self.ensure()?;
        if runs.is_empty() && id.is_none() {
            return Ok(Some(0));
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
            if let Some(id) = id {
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
            Ok(Some(n))
        })
    }
}
