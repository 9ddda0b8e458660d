//! [`SealedStore`] on SQLite.

use std::sync::Arc;

use parapet_core::pseudonym::ClientPseudonym;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_err, tenant_clause};
use crate::sealed::{ClientActivity, SealedClient, SealedStore, under};
use crate::{BatchId, StoreError};

impl SealedStore for SqliteStore {
    fn insert_sealed(&mut self, id: BatchId, sealed: &[SealedClient]) -> Result<usize, StoreError> {
        if sealed.is_empty() {
            return Ok(0);
        }
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let mut n = 0;
        {
            let mut q = tx
                .prepare_cached(
                    "INSERT INTO sealed_clients (node, run, seq, tenant, client, first_time, last_time, sealed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING",
                )
                .map_err(err)?;
            for s in sealed {
                n += q
                    .execute(params![
                        self.node,
                        id.run,
                        id.seq,
                        &*s.tenant,
                        &s.client.0[..],
                        s.first,
                        s.last,
                        s.sealed
                    ])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(n)
    }

    fn sealed_for(
        &mut self,
        tenant: Option<&str>,
        client: ClientPseudonym,
        limit: usize,
    ) -> Result<Vec<SealedClient>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT tenant, sealed, MIN(first_time), MAX(last_time) FROM sealed_clients
                 WHERE client = ?1 AND {} GROUP BY tenant, sealed ORDER BY 4 DESC LIMIT ?3",
                tenant_clause(tenant)
            ))
            .map_err(err)?;
        let rows = q
            .query_map(params![&client.0[..], tenant, limit as i64], |r| {
                Ok(SealedClient {
                    tenant: Arc::from(r.get::<_, String>(0)?),
                    client,
                    sealed: r.get(1)?,
                    first: r.get(2)?,
                    last: r.get(3)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }

    fn client_activity(
        &mut self,
        tenant: &str,
        client: ClientPseudonym,
        domain: Option<&str>,
        names: usize,
    ) -> Result<Option<ClientActivity>, StoreError> {
        let err = sql_err(&self.path);
        let suffix = domain.map(under);
        let filter = "tenant = ?1 AND client = ?2
             AND (?3 IS NULL OR qname = ?3 OR substr(qname, -length(?4)) = ?4)";
        let totals = self
            .conn
            .query_row(
                &format!(
                    "SELECT MIN(time), MAX(COALESCE(last_time, time)), SUM(queries)
                     FROM query_events WHERE {filter} HAVING COUNT(*) > 0"
                ),
                params![tenant, &client.0[..], domain, suffix],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(err)?;
        let Some((first, last, queries)) = totals else {
            return Ok(None);
        };
        let mut q = self
            .conn
            .prepare(&format!(
                "SELECT qname, SUM(queries) AS n FROM query_events WHERE {filter}
                 GROUP BY qname ORDER BY n DESC, qname LIMIT ?5"
            ))
            .map_err(err)?;
        let names = q
            .query_map(
                params![tenant, &client.0[..], domain, suffix, names as i64],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(Some(ClientActivity {
            first,
            last,
            queries: queries as u64,
            names,
        }))
    }
}
