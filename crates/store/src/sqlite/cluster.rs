//! [`ClusterStore`] on SQLite. One file has one node, but the calls behave
//! as on PostgreSQL (a lease is taken, a feed published and versioned), so
//! commands and tests need not ask which backend they have.

use std::time::{Duration, SystemTime};

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_err};
use crate::{ClusterStore, FeedVersion, NodeStatus, StoreError, sha256_hex, unix_millis};

impl ClusterStore for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn schema_version(&mut self) -> Result<u32, StoreError> {
        self.applied_version()
    }

    fn set_node(&mut self, node: &str) {
        self.node = node.to_string();
    }

    fn try_lease(&mut self, job: &str, now: SystemTime, ttl: Duration) -> Result<bool, StoreError> {
        let now = unix_millis(now);
        let until = now.saturating_add(ttl.as_millis() as i64);
        self.conn
            .query_row(
                "INSERT INTO leases (job, holder, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (job) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                   WHERE leases.holder = excluded.holder OR leases.expires_at <= ?4
                 RETURNING holder",
                params![job, self.node, until, now],
                |_| Ok(()),
            )
            .optional()
            .map(|r| r.is_some())
            .map_err(sql_err(&self.path))
    }

    fn publish_feed(
        &mut self,
        name: &str,
        content: &[u8],
        now: SystemTime,
    ) -> Result<FeedVersion, StoreError> {
        let err = sql_err(&self.path);
        let sha = sha256_hex(content);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "INSERT INTO feeds (name, version, sha256, content, published_at) VALUES (?1, 1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET version = feeds.version + 1, sha256 = excluded.sha256,
               content = excluded.content, published_at = excluded.published_at
               WHERE feeds.sha256 <> excluded.sha256",
            params![name, sha, content, unix_millis(now)],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        self.feed_version(name)?.ok_or_else(|| StoreError::Corrupt {
            path: self.location_string(),
            field: "feeds",
            value: name.to_string(),
        })
    }

    fn feed_version(&mut self, name: &str) -> Result<Option<FeedVersion>, StoreError> {
        self.conn
            .query_row(
                "SELECT version, sha256, published_at FROM feeds WHERE name = ?1",
                params![name],
                |r| {
                    Ok(FeedVersion {
                        name: name.to_string(),
                        version: r.get(0)?,
                        sha256: r.get(1)?,
                        published_at: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(sql_err(&self.path))
    }

    fn load_feed(&mut self, name: &str) -> Result<Option<(FeedVersion, Vec<u8>)>, StoreError> {
        self.conn
            .query_row(
                "SELECT version, sha256, published_at, content FROM feeds WHERE name = ?1",
                params![name],
                |r| {
                    Ok((
                        FeedVersion {
                            name: name.to_string(),
                            version: r.get(0)?,
                            sha256: r.get(1)?,
                            published_at: r.get(2)?,
                        },
                        r.get(3)?,
                    ))
                },
            )
            .optional()
            .map_err(sql_err(&self.path))
    }

    fn heartbeat(
        &mut self,
        started_at: i64,
        now: SystemTime,
        feeds: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO nodes (name, started_at, seen_at, feeds) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, seen_at = excluded.seen_at,
                   feeds = excluded.feeds",
                params![self.node, started_at, unix_millis(now), feeds],
            )
            .map(|_| ())
            .map_err(sql_err(&self.path))
    }

    fn nodes(&mut self) -> Result<Vec<NodeStatus>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare("SELECT name, started_at, seen_at, feeds FROM nodes ORDER BY name")
            .map_err(err)?;
        let rows = q
            .query_map([], |r| {
                Ok(NodeStatus {
                    name: r.get(0)?,
                    started_at: r.get(1)?,
                    seen_at: r.get(2)?,
                    feeds: r.get(3)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }
}
