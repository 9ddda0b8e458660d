//! The embedded store: one SQLite file in WAL mode.
//!
//! WAL with `synchronous = NORMAL` keeps the database consistent through a
//! crash or `kill -9` of Parapet (a committed batch survives a process
//! crash; only a power cut can lose the last one), and lets readers (the
//! CLI, the dashboard) work while the writer writes.
//!
//! This module holds the connection: opening it, its schema
//! ([`migrations`]) and how its errors are reported. Each other file
//! implements one kind of data's trait over it, as `pg/` does for
//! PostgreSQL; the rules both share are in `crate::rules`.

mod accounts;
mod alerts;
mod allowlist;
mod assurance;
mod cluster;
mod commentary;
mod events;
mod exports;
mod mail;
mod migrations;
mod sealed;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;

/// The file inside the store folder.
pub const DB_FILE: &str = "parapet.sqlite";

/// `tenant = ?2`, or no condition when `?2` is NULL (every tenant).
fn tenant_clause(tenant: Option<&str>) -> &'static str {
    if tenant.is_some() {
        "tenant = ?2"
    } else {
        "?2 IS NULL"
    }
}

/// A connection to one SQLite file; open one per thread that needs it.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    node: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path.display())
    }
}

/// Wraps a SQLite error with the database's path.
fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in folder `dir` and brings its
    /// schema up to date.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        private_dir(dir)?;
        Self::open_file(&dir.join(DB_FILE))
    }

    /// Opens a database file directly. Several processes (or connections)
    /// opening one new file at once can meet SQLITE_BUSY where the busy
    /// timeout does not apply (switching the file to WAL, upgrading a read
    /// to a write): such an open is retried for up to 5 s.
    pub fn open_file(path: &Path) -> Result<Self, StoreError> {
        let mut attempt = 0;
        loop {
            match Self::try_open_file(path) {
                Err(StoreError::Sqlite {
                    source: rusqlite::Error::SqliteFailure(e, _),
                    ..
                }) if e.code == rusqlite::ErrorCode::DatabaseBusy && attempt < 250 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn try_open_file(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        // before WAL mode creates the -wal and -shm files, which take the
        // database file's mode
        private_file(path)?;
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
            node: String::new(),
        };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn location_string(&self) -> String {
        self.path.display().to_string()
    }

    #[cfg(test)]
    pub(crate) fn texts(&mut self, sql: &str) -> Vec<String> {
        let mut q = self.conn.prepare(sql).unwrap();
        let n = q.column_count();
        q.query_map([], |r| {
            Ok((0..n)
                .map(|i| r.get::<_, Option<String>>(i).map(Option::unwrap_or_default))
                .collect::<Result<Vec<_>, _>>()?
                .join("|"))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[cfg(test)]
    pub(crate) fn exec(&mut self, sql: &str) {
        self.conn.execute_batch(sql).unwrap();
    }
}

/// Creates the store's folder readable by its owner only (0700), and makes
/// an existing one so: it holds client pseudonyms, alerts and the
/// pseudonym key.
pub fn private_dir(dir: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: dir.display().to_string(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).map_err(io)
}

/// Makes the database file (and any -wal and -shm files) mode 0600, by
/// path: opening and closing a descriptor of the file here would drop the
/// POSIX locks every SQLite connection of this process holds on it.
fn private_file(path: &Path) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        std::fs::set_permissions(path, private.clone()).map_err(io)?;
        // left by an older version, which did not set modes
        for suffix in ["-wal", "-shm"] {
            let mut side = path.as_os_str().to_owned();
            side.push(suffix);
            if std::path::Path::new(&side).exists() {
                std::fs::set_permissions(&side, private.clone()).map_err(io)?;
            }
        }
        Ok(())
    }
    #[cfg(not(unix))]
    {
        let _ = (path, io);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! The shared suite (crate::tests) runs on both backends; this one is
    //! about the SQLite file itself.
    use std::sync::Arc;
    use std::time::SystemTime;

    use parapet_core::event::EventAction;
    use parapet_core::name::{EventName, text_to_key};

    use super::*;
    use crate::EventStore;

    #[test]
    fn no_client_address_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path()).unwrap();
        let p = parapet_core::pseudonym::Pseudonymiser::new(b"0123456789abcdef").unwrap();
        let q = parapet_core::event::QueryEvent {
            time: SystemTime::now(),
            tenant: Arc::from("council-a"),
            client: "10.99.98.97".parse().unwrap(),
            qname: EventName::new(&text_to_key("x.test").unwrap()),
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
