//! The embedded store: one SQLite file in WAL mode.
//!
//! WAL with `synchronous = NORMAL` keeps the database consistent through a
//! crash or `kill -9` of Parapet (a committed batch survives a process
//! crash; only a power cut can lose the last one), and lets readers (the
//! CLI, the dashboard) work while the writer writes.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parapet_core::event::{PrivateEvent, RCODE_NO_RESPONSE};
use parapet_core::name::write_key_as_text;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Purged, Retention, Store, StoreError, cutoff, unix_millis};

/// The file inside the store folder.
pub const DB_FILE: &str = "parapet.sqlite";

/// Versioned schema steps, applied in order, each in its own transaction.
/// Never edit a released step: add a new one.
const MIGRATIONS: &[(u32, &str)] = &[(
    1,
    "CREATE TABLE query_events (
        id     INTEGER PRIMARY KEY,
        time   INTEGER NOT NULL,  -- unix milliseconds
        tenant TEXT    NOT NULL,
        client BLOB    NOT NULL,  -- 8-byte keyed pseudonym, never the address
        qname  TEXT    NOT NULL,
        qtype  INTEGER NOT NULL,
        rcode  INTEGER,           -- NULL when no answer was sent
        action TEXT    NOT NULL,
        feed   TEXT
    );
    CREATE INDEX query_events_time ON query_events (time);
    CREATE INDEX query_events_tenant_time ON query_events (tenant, time);
    CREATE TABLE query_hourly (
        tenant  TEXT    NOT NULL,
        qname   TEXT    NOT NULL,
        hour    INTEGER NOT NULL, -- unix seconds at the start of the hour
        action  TEXT    NOT NULL,
        queries INTEGER NOT NULL,
        PRIMARY KEY (tenant, qname, hour, action)
    ) WITHOUT ROWID;
    CREATE INDEX query_hourly_hour ON query_hourly (hour);",
)];

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path.display())
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in folder `dir` and brings its
    /// schema up to date.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Self::open_file(&dir.join(DB_FILE))
    }

    /// Opens a database file directly.
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let mut store = Self {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Applies the migrations this database lacks. Safe when several
    /// processes start at once: each step runs in an IMMEDIATE transaction
    /// that re-reads the version first.
    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    INTEGER PRIMARY KEY,
                    applied_at INTEGER NOT NULL
                )",
            )
            .map_err(|e| self.err(e))?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        for &(version, sql) in MIGRATIONS {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.display().to_string(),
                    source: e,
                })?;
            let current: u32 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.display().to_string(),
                    source: e,
                })?;
            if current > known {
                return Err(StoreError::TooNew {
                    path: self.path.display().to_string(),
                    found: current,
                    known,
                });
            }
            if current >= version {
                continue;
            }
            let apply = tx.execute_batch(sql).and_then(|()| {
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                    params![version, unix_millis(SystemTime::now())],
                )
            });
            apply
                .and_then(|_| tx.commit())
                .map_err(|e| StoreError::Sqlite {
                    path: self.path.display().to_string(),
                    source: e,
                })?;
        }
        Ok(())
    }
}

impl Store for SqliteStore {
    fn insert_events(&mut self, events: &[PrivateEvent]) -> Result<usize, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO query_events (time, tenant, client, qname, qtype, rcode, action, feed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(err)?;
            let mut agg = tx
                .prepare_cached(
                    "INSERT INTO query_hourly (tenant, qname, hour, action, queries) VALUES (?1, ?2, ?3, ?4, 1)
                     ON CONFLICT (tenant, qname, hour, action) DO UPDATE SET queries = queries + 1",
                )
                .map_err(err)?;
            let mut qname = String::with_capacity(256);
            for e in events {
                qname.clear();
                let _ = write_key_as_text(e.qname.as_key(), &mut qname);
                let ms = unix_millis(e.time);
                let rcode = (e.rcode != RCODE_NO_RESPONSE).then_some(e.rcode);
                let action = e.action.as_str();
                ins.execute(params![
                    ms,
                    &*e.tenant,
                    &e.client.0[..],
                    qname,
                    e.qtype,
                    rcode,
                    action,
                    e.feed.as_deref()
                ])
                .map_err(err)?;
                agg.execute(params![&*e.tenant, qname, ms / 3_600_000 * 3600, action])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(events.len())
    }

    fn purge(&mut self, now: SystemTime, retention: Retention) -> Result<Purged, StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let events = tx
            .execute(
                "DELETE FROM query_events WHERE time < ?1",
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
        tx.commit().map_err(err)?;
        Ok(Purged {
            events: events as u64,
            aggregates: aggregates as u64,
        })
    }

    fn event_count(&mut self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM query_events", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    fn schema_version(&mut self) -> Result<u32, StoreError> {
        self.conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get::<_, Option<u32>>(0)
            })
            .optional()
            .map(|v| v.flatten().unwrap_or(0))
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_core::event::EventAction;
    use parapet_core::name::{InlineName, text_to_key};
    use parapet_core::pseudonym::ClientPseudonym;
    use std::sync::Arc;
    use std::time::UNIX_EPOCH;

    fn event(secs: u64, name: &str, action: EventAction) -> PrivateEvent {
        PrivateEvent {
            time: UNIX_EPOCH + Duration::from_secs(secs),
            tenant: Arc::from("council-a"),
            client: ClientPseudonym([7; 8]),
            qname: InlineName::new(&text_to_key(name).unwrap()),
            qtype: 1,
            rcode: if action == EventAction::Dropped {
                RCODE_NO_RESPONSE
            } else {
                0
            },
            action,
            feed: (action == EventAction::Blocked).then(|| Arc::from("malware")),
        }
    }

    #[test]
    fn events_and_hourly_aggregates() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(s.schema_version().unwrap(), 1);
        let batch = [
            event(7200, "www.example.org", EventAction::Resolved),
            event(7300, "www.example.org", EventAction::Resolved),
            event(10_900, "www.example.org", EventAction::Resolved),
            event(7400, "evil.test", EventAction::Blocked),
            event(7500, "drop.test", EventAction::Dropped),
        ];
        assert_eq!(s.insert_events(&batch).unwrap(), 5);
        assert_eq!(s.event_count().unwrap(), 5);
        let hourly: Vec<(String, i64, String, i64)> = s
            .conn
            .prepare("SELECT qname, hour, action, queries FROM query_hourly ORDER BY qname, hour")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            hourly,
            vec![
                ("drop.test".into(), 7200, "dropped".into(), 1),
                ("evil.test".into(), 7200, "blocked".into(), 1),
                ("www.example.org".into(), 7200, "resolved".into(), 2),
                ("www.example.org".into(), 10_800, "resolved".into(), 1),
            ]
        );
        let (rcode, feed): (Option<u8>, Option<String>) = s
            .conn
            .query_row(
                "SELECT (SELECT rcode FROM query_events WHERE qname = 'drop.test'),
                        (SELECT feed FROM query_events WHERE qname = 'evil.test')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rcode, feed.as_deref()), (None, Some("malware")));
    }

    #[test]
    fn purge_removes_exactly_what_is_past_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let day = 86_400;
        let now = UNIX_EPOCH + Duration::from_secs(100 * day);
        let r = Retention {
            events_days: 30,
            aggregates_days: 60,
        };
        let edge = 70 * day; // exactly 30 days before now
        s.insert_events(&[
            event(edge - 1, "old.test", EventAction::Resolved),
            event(edge, "edge.test", EventAction::Resolved),
            event(99 * day, "new.test", EventAction::Resolved),
            event(40 * day - 3600, "ancient.test", EventAction::Resolved),
            event(40 * day, "kept-hour.test", EventAction::Resolved),
        ])
        .unwrap();
        let purged = s.purge(now, r).unwrap();
        // raw: old and ancient and kept-hour (both > 30 days) go
        assert_eq!(purged.events, 3);
        // aggregates: only the hour that ended before the 60-day cut-off
        assert_eq!(purged.aggregates, 1);
        let left: Vec<String> = s
            .conn
            .prepare("SELECT qname FROM query_events ORDER BY time")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(left, ["edge.test", "new.test"]);
        assert_eq!(s.purge(now, r).unwrap(), Purged::default());
    }

    #[test]
    fn reopening_migrates_once_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let s = SqliteStore::open(dir.path()).unwrap();
        let steps: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(steps, 1);
        s.conn
            .execute("INSERT INTO schema_migrations VALUES (999, 0)", [])
            .unwrap();
        drop(s);
        let e = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::TooNew { found: 999, .. }), "{e}");
    }

    #[test]
    fn no_client_address_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let p = parapet_core::pseudonym::Pseudonymiser::new(b"0123456789abcdef").unwrap();
        let q = parapet_core::event::QueryEvent {
            time: SystemTime::now(),
            tenant: Arc::from("council-a"),
            client: "10.99.98.97".parse().unwrap(),
            qname: InlineName::new(&text_to_key("x.test").unwrap()),
            qtype: 1,
            rcode: 0,
            action: EventAction::Resolved,
            feed: None,
        };
        s.insert_events(&[q.into_private(&p)]).unwrap();
        drop(s);
        for f in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            assert!(!bytes.windows(11).any(|w| w == b"10.99.98.97"));
            assert!(!bytes.windows(4).any(|w| w == [10, 99, 98, 97]));
        }
    }
}
