//! [`SealedStore`] on PostgreSQL: a batch's sealed clients in one
//! multi-row insert (arrays unnested), the reads as in SQLite.

use std::sync::Arc;

use parapet_core::pseudonym::ClientPseudonym;

use super::{PgStore, TENANT, pg_err};
use crate::sealed::{ClientActivity, SealedClient, SealedStore, under};
use crate::{BatchId, StoreError};

impl SealedStore for PgStore {
    fn insert_sealed(&mut self, id: BatchId, sealed: &[SealedClient]) -> Result<usize, StoreError> {
        if sealed.is_empty() {
            return Ok(0);
        }
        let tenants: Vec<&str> = sealed.iter().map(|s| &*s.tenant).collect();
        let clients: Vec<&[u8]> = sealed.iter().map(|s| &s.client.0[..]).collect();
        let firsts: Vec<i64> = sealed.iter().map(|s| s.first).collect();
        let lasts: Vec<i64> = sealed.iter().map(|s| s.last).collect();
        let blobs: Vec<&[u8]> = sealed.iter().map(|s| &s.sealed[..]).collect();
        self.tx(|tx, loc, node| {
            let n = tx
                .execute(
                    "INSERT INTO sealed_clients (node, run, seq, tenant, client, first_time, last_time, sealed)
                     SELECT $1, $2, $3, t, c, f, l, s
                     FROM unnest($4::text[], $5::bytea[], $6::bigint[], $7::bigint[], $8::bytea[]) AS u (t, c, f, l, s)
                     ON CONFLICT DO NOTHING",
                    &[&node, &id.run, &id.seq, &tenants, &clients, &firsts, &lasts, &blobs],
                )
                .map_err(pg_err(loc))?;
            Ok(n as usize)
        })
    }

    fn sealed_for(
        &mut self,
        tenant: Option<&str>,
        client: ClientPseudonym,
        limit: usize,
    ) -> Result<Vec<SealedClient>, StoreError> {
        let rows = self.query_rows(
            &format!(
                "SELECT tenant, sealed, MIN(first_time), MAX(last_time) FROM sealed_clients
                 WHERE client = $1 AND {TENANT} GROUP BY tenant, sealed ORDER BY 4 DESC LIMIT $3"
            ),
            &[&&client.0[..], &tenant, &(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| SealedClient {
                tenant: Arc::from(r.get::<_, String>(0)),
                client,
                sealed: r.get(1),
                first: r.get(2),
                last: r.get(3),
            })
            .collect())
    }

    fn client_activity(
        &mut self,
        tenant: &str,
        client: ClientPseudonym,
        domain: Option<&str>,
        names: usize,
    ) -> Result<Option<ClientActivity>, StoreError> {
        let suffix = domain.map(under);
        let filter = "tenant = $1 AND client = $2
             AND ($3::text IS NULL OR qname = $3 OR right(qname, length($4::text)) = $4)";
        let totals = self.query_rows(
            &format!(
                "SELECT MIN(time), MAX(COALESCE(last_time, time)), SUM(queries)::bigint
                 FROM query_events WHERE {filter} HAVING COUNT(*) > 0"
            ),
            &[&tenant, &&client.0[..], &domain, &suffix],
        )?;
        let Some(t) = totals.first() else {
            return Ok(None);
        };
        let (first, last, queries): (i64, i64, i64) = (t.get(0), t.get(1), t.get(2));
        let rows = self.query_rows(
            &format!(
                "SELECT qname, SUM(queries)::bigint AS n FROM query_events WHERE {filter}
                 GROUP BY qname ORDER BY n DESC, qname LIMIT $5"
            ),
            &[&tenant, &&client.0[..], &domain, &suffix, &(names as i64)],
        )?;
        Ok(Some(ClientActivity {
            first,
            last,
            queries: queries as u64,
            names: rows
                .iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
                .collect(),
        }))
    }
}
