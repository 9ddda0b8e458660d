//! [`ClusterStore`] on PostgreSQL: what lets several resolver nodes share
//! one database (leases, published feeds, heartbeats).

use std::time::{Duration, SystemTime};

use super::{PgStore, pg_err};
use crate::{ClusterStore, FeedVersion, NodeStatus, StoreError, sha256_hex, unix_millis};

impl ClusterStore for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn schema_version(&mut self) -> Result<u32, StoreError> {
        self.ensure()?;
        self.applied_version()
    }

    fn set_node(&mut self, node: &str) {
        self.node = node.to_string();
    }

    fn try_lease(&mut self, job: &str, now: SystemTime, ttl: Duration) -> Result<bool, StoreError> {
        self.ensure()?;
        let now = unix_millis(now);
        let until = now.saturating_add(ttl.as_millis() as i64);
        let row = self
            .client
            .query_opt(
                "INSERT INTO leases (job, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (job) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                   WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4
                 RETURNING holder",
                &[&job, &self.node, &until, &now],
            )
            .map_err(pg_err(&self.location))?;
        Ok(row.is_some())
    }

    fn publish_feed(
        &mut self,
        name: &str,
        content: &[u8],
        now: SystemTime,
    ) -> Result<FeedVersion, StoreError> {
        self.ensure()?;
        let sha = sha256_hex(content);
        let at = unix_millis(now);
        self.tx(|tx, loc, _| {
            let err = pg_err(loc);
            let r = match tx
                .query_opt(
                    "INSERT INTO feeds (name, version, sha256, content, published_at) VALUES ($1, 1, $2, $3, $4)
                     ON CONFLICT (name) DO UPDATE SET version = feeds.version + 1, sha256 = EXCLUDED.sha256,
                       content = EXCLUDED.content, published_at = EXCLUDED.published_at
                       WHERE feeds.sha256 <> EXCLUDED.sha256
                     RETURNING version, sha256, published_at",
                    &[&name, &sha, &content, &at],
                )
                .map_err(&err)?
            {
                Some(r) => r,
                // the same bytes are already published: nothing changes
                None => tx
                    .query_one(
                        "SELECT version, sha256, published_at FROM feeds WHERE name = $1",
                        &[&name],
                    )
                    .map_err(&err)?,
            };
            Ok(FeedVersion {
                name: name.to_string(),
                version: r.get(0),
                sha256: r.get(1),
                published_at: r.get(2),
            })
        })
    }

    fn feed_version(&mut self, name: &str) -> Result<Option<FeedVersion>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query_opt(
                "SELECT version, sha256, published_at FROM feeds WHERE name = $1",
                &[&name],
            )
            .map_err(pg_err(&self.location))?
            .map(|r| FeedVersion {
                name: name.to_string(),
                version: r.get(0),
                sha256: r.get(1),
                published_at: r.get(2),
            }))
    }

    fn load_feed(&mut self, name: &str) -> Result<Option<(FeedVersion, Vec<u8>)>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query_opt(
                "SELECT version, sha256, published_at, content FROM feeds WHERE name = $1",
                &[&name],
            )
            .map_err(pg_err(&self.location))?
            .map(|r| {
                (
                    FeedVersion {
                        name: name.to_string(),
                        version: r.get(0),
                        sha256: r.get(1),
                        published_at: r.get(2),
                    },
                    r.get(3),
                )
            }))
    }

    fn heartbeat(
        &mut self,
        started_at: i64,
        now: SystemTime,
        feeds: &str,
    ) -> Result<(), StoreError> {
        self.ensure()?;
        let now = unix_millis(now);
        self.client
            .execute(
                "INSERT INTO nodes (name, started_at, seen_at, feeds) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (name) DO UPDATE SET started_at = EXCLUDED.started_at, seen_at = EXCLUDED.seen_at,
                   feeds = EXCLUDED.feeds",
                &[&self.node, &started_at, &now, &feeds],
            )
            .map_err(pg_err(&self.location))?;
        Ok(())
    }

    fn nodes(&mut self) -> Result<Vec<NodeStatus>, StoreError> {
        self.ensure()?;
        Ok(self
            .client
            .query(
                "SELECT name, started_at, seen_at, feeds FROM nodes ORDER BY name",
                &[],
            )
            .map_err(pg_err(&self.location))?
            .iter()
            .map(|r| NodeStatus {
                name: r.get(0),
                started_at: r.get(1),
                seen_at: r.get(2),
                feeds: r.get(3),
            })
            .collect())
    }
}
