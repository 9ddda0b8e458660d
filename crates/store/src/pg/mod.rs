//! The shared store: one PostgreSQL database for several resolver nodes and
//! the dashboard.
//!
//! Same interface, same semantics as [`crate::SqliteStore`]: every call is
//! one transaction, retried on a deadlock or serialisation failure (which
//! concurrent nodes can cause) and run again on a new connection when the
//! server closed the old one. This module holds the connection; each other
//! file implements one kind of data's trait over it, as `sqlite/` does.
//!
//! The client is the synchronous `postgres` crate: it runs its own small
//! runtime and must not be called from inside a tokio task (callers there
//! use `spawn_blocking`).

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
pub(crate) mod partitions;
mod sealed;

use std::time::Duration;

use postgres::{Client, NoTls, Row, Transaction};

use crate::StoreError;

/// `$2` is the tenant, or NULL for every tenant.
const TENANT: &str = "($2::text IS NULL OR tenant = $2)";

/// A `postgres::Client` that can be dropped anywhere. The client closes
/// its connection with `block_on`, which panics on a tokio worker thread,
/// where runtime shutdown drops the dashboard's connections (SIGTERM used
/// to abort the process); there it is closed on a thread of its own.
struct OwnedClient(Option<Client>);

impl OwnedClient {
    fn connect(config: &postgres::Config, location: &str) -> Result<Self, StoreError> {
        Ok(Self(Some(config.connect(NoTls).map_err(pg_err(location))?)))
    }
}

/// How long connecting to the server may take when neither the URL
/// (`connect_timeout`) nor `[store] connect_timeout_ms` says: without a
/// limit, a server that drops packets holds the caller for the kernel's
/// TCP timeout (minutes), and with it the writer and every page.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl std::ops::Deref for OwnedClient {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0.as_ref().expect("the client lives until dropped")
    }
}

impl std::ops::DerefMut for OwnedClient {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("the client lives until dropped")
    }
}

impl Drop for OwnedClient {
    fn drop(&mut self) {
        if let Some(client) = self.0.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("parapet-pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

/// A connection to the shared database.
pub struct PgStore {
    client: OwnedClient,
    /// To reconnect after the server closed the connection (a restart, a
    /// fail-over); holds the password, never printed.
    config: postgres::Config,
    /// The URL without its password, for messages.
    location: String,
    node: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgStore({})", self.location)
    }
}

/// `url` with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((cred, host)) = rest.split_once('@')
        && let Some((user, _)) = cred.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    // the key=value form: `host=db user=parapet password=secret`
    url.split_whitespace()
        .map(|kv| {
            if kv.to_ascii_lowercase().starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
#[test]
fn passwords_never_reach_messages() {
    assert_eq!(
        redact("postgres://parapet:s3cret@db:5432/parapet"),
        "postgres://parapet:***@db:5432/parapet"
    );
    assert_eq!(
        redact("postgres://parapet@db/parapet"),
        "postgres://parapet@db/parapet"
    );
    assert_eq!(
        redact("host=db user=parapet password=s3cret dbname=p"),
        "host=db user=parapet password=*** dbname=p"
    );
}

/// Wraps a PostgreSQL error with the database's location (no password).
fn pg_err(location: &str) -> impl Fn(postgres::Error) -> StoreError + '_ {
    move |source| StoreError::Postgres {
        location: location.to_string(),
        source,
    }
}

/// A deadlock or serialisation failure: the transaction can simply be run
/// again.
fn retryable(e: &StoreError) -> bool {
    use postgres::error::SqlState;
    match e {
        StoreError::Postgres { source, .. } => source.code().is_some_and(|c| {
            *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
        }),
        _ => false,
    }
}

/// The server ended this connection (shut down, restarted, or terminated
/// the backend): a new one may well work.
fn connection_lost(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.is_closed()
        || e.code().is_some_and(|c| {
            *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        })
}

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) and brings the
    /// schema up to date.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_timeout(url, CONNECT_TIMEOUT)
    }

    /// [`PgStore::open`], giving up on each connection attempt after
    /// `timeout` unless the URL sets its own `connect_timeout`.
    pub fn open_with_timeout(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let location = redact(url);
        let mut config: postgres::Config = url.parse().map_err(pg_err(&location))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(timeout);
        }
        let client = OwnedClient::connect(&config, &location)?;
        let mut store = Self {
            client,
            config,
            location,
            node: String::new(),
        };
        store.migrate()?;
        store.ensure_partitions(std::time::SystemTime::now())?;
        Ok(store)
    }

    /// Connects again when the server has closed the connection, so a
    /// database restart costs the calls made while it was down, not the
    /// node.
    fn ensure(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            self.client = OwnedClient::connect(&self.config, &self.location)?;
        }
        Ok(())
    }

    /// Runs `f` in one transaction, again (up to 8 times) when PostgreSQL
    /// aborts it for a deadlock or a serialisation failure, or once more on
    /// a new connection when the old one was closed.
    fn tx<T>(
        &mut self,
        mut f: impl FnMut(&mut Transaction<'_>, &str, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 0u32;
        let mut reconnected = false;
        loop {
            self.ensure()?;
            let result = (|| {
                let err = pg_err(&self.location);
                let mut tx = self.client.transaction().map_err(&err)?;
                let v = f(&mut tx, &self.location, &self.node)?;
                tx.commit().map_err(&err)?;
                Ok(v)
            })();
            match result {
                Err(e) if retryable(&e) && attempt < 8 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5 * u64::from(attempt)));
                }
                Err(StoreError::Postgres { source, .. })
                    if !reconnected && (self.client.is_closed() || connection_lost(&source)) =>
                {
                    reconnected = true;
                    self.client = OwnedClient::connect(&self.config, &self.location)?;
                }
                other => return other,
            }
        }
    }

    /// `sql` on the connection, opened again first if the server closed it.
    fn query_rows(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.ensure()?;
        self.client
            .query(sql, params)
            .map_err(pg_err(&self.location))
    }

    /// [`PgStore::query_rows`] for a statement without rows.
    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.ensure()?;
        self.client
            .execute(sql, params)
            .map_err(pg_err(&self.location))
    }

    fn corrupt(&self, field: &'static str, value: &str) -> StoreError {
        StoreError::Corrupt {
            path: self.location.clone(),
            field,
            value: value.to_string(),
        }
    }

    #[cfg(test)]
    pub(crate) fn texts(&mut self, sql: &str) -> Vec<String> {
        self.client
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    #[cfg(test)]
    pub(crate) fn exec(&mut self, sql: &str) {
        self.client.batch_execute(sql).unwrap();
    }
}

/// A server that never completes the TCP handshake (its accept queue is
/// full, so the kernel drops our SYNs, as a firewall or a dead host would)
/// fails the open after the connect timeout instead of holding the caller
/// for the kernel's retries (minutes).
#[cfg(test)]
#[test]
fn connecting_gives_up_after_the_connect_timeout() {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // never accepted: fill the accept queue until a handshake stalls
    let mut held = Vec::new();
    while let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
        held.push(s);
        assert!(held.len() < 10_000, "the accept queue never filled");
    }
    let url = format!("postgres://parapet@{addr}/parapet");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(PgStore::open_with_timeout(&url, Duration::from_millis(200)).map(|_| ()));
    });
    // the kernel alone would retry the SYN for about two minutes
    let got = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the open did not give up");
    let err = got.expect_err("nothing answers");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    drop(listener);
}
