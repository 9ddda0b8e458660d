//! The embedded store: one SQLite file in WAL mode.
//!
//! WAL with `synchronous = NORMAL` keeps the database consistent through a
//! crash or `kill -9` of Parapet (a committed batch survives a process
//! crash; only a power cut can lose the last one), and lets readers (the
//! CLI, the dashboard) work while the writer writes.

mod accounts;
mod assurance;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use parapet_core::event::{EventRun, RCODE_NO_RESPONSE};
use parapet_core::name::write_key_as_text;
use rusqlite::{Connection, OptionalExtension, params};

use std::sync::Arc;

use parapet_core::alert::{Alert, AlertStatus, Signal};

use crate::rules::alerts::{
    AlertRow, HistoryRow, REOPENED_BY, REOPENED_NOTE, StoredAlert, group_signals,
};
use crate::rules::events::{BLOCKED_ACTIONS, hourly_counts, last_time, queries};
use crate::rules::mail::{
    add_selectors, add_source, diff_findings, finding_lines, findings_from_lines,
};
use crate::{
    AlertFilter, AlertStore, ClusterStore, DmarcReportRow, DmarcSummary, EventStore, FeedVersion,
    HourlyTraffic, Imported, MailCheckDiff, MailCheckRow, MailStore, NodeStatus, Purged, Retention,
    SeenDomains, SourceSummary, StoreError, TenantTraffic, TlsReportRow, cutoff, unix_millis,
};

/// The file inside the store folder.
pub const DB_FILE: &str = "parapet.sqlite";

/// Versioned schema steps, applied in order, each in its own transaction.
/// Never edit a released step: add a new one.
const MIGRATIONS: &[(u32, &str)] = &[
    (
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
    ),
    (
        2,
        "CREATE TABLE alerts (
        id         INTEGER PRIMARY KEY,
        tenant     TEXT    NOT NULL,
        rule       TEXT    NOT NULL,
        domain     TEXT    NOT NULL,
        severity   TEXT    NOT NULL,
        status     TEXT    NOT NULL DEFAULT 'new',
        first_seen INTEGER NOT NULL, -- unix milliseconds
        last_seen  INTEGER NOT NULL,
        count      INTEGER NOT NULL,
        feeds      TEXT    NOT NULL DEFAULT '', -- comma-separated
        reason     TEXT    NOT NULL,
        evidence   TEXT    NOT NULL DEFAULT '', -- sample queries, one per line
        UNIQUE (tenant, rule, domain)
    );
    CREATE INDEX alerts_last_seen ON alerts (last_seen);
    CREATE TABLE alert_clients (
        alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        client   BLOB    NOT NULL, -- pseudonym
        PRIMARY KEY (alert_id, client)
    ) WITHOUT ROWID;
    CREATE TABLE alert_history (
        id          INTEGER PRIMARY KEY,
        alert_id    INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        time        INTEGER NOT NULL,
        from_status TEXT    NOT NULL,
        to_status   TEXT    NOT NULL,
        by          TEXT    NOT NULL,
        note        TEXT    NOT NULL
    );
    CREATE INDEX alert_history_alert ON alert_history (alert_id);
    CREATE TABLE tenant_learning (
        tenant TEXT PRIMARY KEY,
        since  INTEGER NOT NULL -- unix milliseconds
    );
    CREATE TABLE tenant_domains (
        tenant     TEXT    NOT NULL,
        domain     TEXT    NOT NULL,
        first_seen INTEGER NOT NULL,
        PRIMARY KEY (tenant, domain)
    ) WITHOUT ROWID;",
    ),
    (
        3,
        "CREATE TABLE dmarc_reports (
        id          INTEGER PRIMARY KEY,
        org_name    TEXT    NOT NULL,
        report_id   TEXT    NOT NULL,
        domain      TEXT    NOT NULL, -- policy_published
        begin_time  INTEGER NOT NULL, -- unix seconds
        end_time    INTEGER NOT NULL,
        policy      TEXT    NOT NULL, -- p=, as published
        source      TEXT    NOT NULL, -- file it was imported from
        imported_at INTEGER NOT NULL,
        UNIQUE (org_name, report_id)
    );
    CREATE INDEX dmarc_reports_domain ON dmarc_reports (domain, begin_time);
    CREATE TABLE dmarc_records (
        report        INTEGER NOT NULL REFERENCES dmarc_reports (id) ON DELETE CASCADE,
        source_ip     TEXT    NOT NULL,
        count         INTEGER NOT NULL,
        disposition   TEXT    NOT NULL,
        dkim_aligned  INTEGER NOT NULL,
        spf_aligned   INTEGER NOT NULL,
        header_from   TEXT    NOT NULL,
        envelope_from TEXT,
        dkim          TEXT    NOT NULL, -- domain/selector=result, space-separated
        spf           TEXT    NOT NULL  -- domain/scope=result, space-separated
    );
    CREATE INDEX dmarc_records_report ON dmarc_records (report);
    CREATE TABLE tls_reports (
        id          INTEGER PRIMARY KEY,
        org_name    TEXT    NOT NULL,
        report_id   TEXT    NOT NULL,
        begin_time  INTEGER NOT NULL,
        end_time    INTEGER NOT NULL,
        source      TEXT    NOT NULL,
        imported_at INTEGER NOT NULL,
        UNIQUE (org_name, report_id)
    );
    CREATE TABLE tls_results (
        report        INTEGER NOT NULL REFERENCES tls_reports (id) ON DELETE CASCADE,
        policy_type   TEXT    NOT NULL,
        policy_domain TEXT    NOT NULL,
        successful    INTEGER NOT NULL,
        failed        INTEGER NOT NULL,
        failures      TEXT    NOT NULL -- result-type ip mx count, one per line
    );
    CREATE INDEX tls_results_domain ON tls_results (policy_domain);",
    ),
    (
        4,
        "CREATE TABLE mailcheck_results (
        id         INTEGER PRIMARY KEY,
        domain     TEXT    NOT NULL,
        checked_at INTEGER NOT NULL, -- unix milliseconds
        worst      TEXT,             -- error | warning | info, NULL when no finding
        findings   TEXT    NOT NULL, -- one per line: severity TAB code TAB message
        report     TEXT    NOT NULL  -- the JSON report, raw records included
    );
    CREATE INDEX mailcheck_results_domain ON mailcheck_results (domain, checked_at);",
    ),
    (
        5,
        "CREATE TABLE asset_imports (
        id          INTEGER PRIMARY KEY,
        tenant      TEXT    NOT NULL,
        source      TEXT    NOT NULL, -- inventory-csv, defender-csv, nessus, openvas, osquery
        path        TEXT    NOT NULL,
        sha256      TEXT    NOT NULL, -- of the file's bytes: the evidence chain
        as_of       INTEGER NOT NULL, -- unix seconds: when the extract was taken
        imported_at INTEGER NOT NULL,
        assets      INTEGER NOT NULL,
        findings    INTEGER NOT NULL,
        UNIQUE (tenant, sha256)
    );
    CREATE INDEX asset_imports_tenant ON asset_imports (tenant, as_of);
    CREATE TABLE asset_obs (
        import      INTEGER NOT NULL REFERENCES asset_imports (id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL, -- position in the import
        locator     TEXT    NOT NULL, -- line / element in the file
        hostname    TEXT, fqdn TEXT,
        ips         TEXT    NOT NULL, -- space-separated
        macs        TEXT    NOT NULL,
        serial      TEXT, device_id TEXT, os TEXT, device_type TEXT,
        owner       TEXT, location TEXT, lifecycle TEXT,
        last_seen   INTEGER,
        av          INTEGER NOT NULL, -- 1 when the av_ columns are reported
        av_product  TEXT, av_installed INTEGER, av_active INTEGER, av_mode TEXT,
        av_sig_at   INTEGER, av_sig_current INTEGER, av_reported_at INTEGER,
        scan_at     INTEGER, scan_credentialed INTEGER,
        PRIMARY KEY (import, seq)
    ) WITHOUT ROWID;
    CREATE TABLE vuln_defs (
        import         INTEGER NOT NULL REFERENCES asset_imports (id) ON DELETE CASCADE,
        seq            INTEGER NOT NULL,
        key            TEXT    NOT NULL,
        title          TEXT    NOT NULL,
        score          REAL,
        label          TEXT,
        cves           TEXT    NOT NULL, -- space-separated
        fix_available  INTEGER NOT NULL,
        fix_released   INTEGER,
        vuln_published INTEGER,
        unsupported    INTEGER NOT NULL,
        solution       TEXT,
        PRIMARY KEY (import, seq)
    ) WITHOUT ROWID;
    CREATE TABLE finding_obs (
        import INTEGER NOT NULL REFERENCES asset_imports (id) ON DELETE CASCADE,
        asset  INTEGER NOT NULL, -- asset_obs.seq
        vuln   INTEGER NOT NULL, -- vuln_defs.seq
        port   TEXT    NOT NULL
    );
    CREATE INDEX finding_obs_import ON finding_obs (import);
    CREATE TABLE incidents (
        id            INTEGER PRIMARY KEY,
        tenant        TEXT    NOT NULL,
        reference     TEXT    NOT NULL,
        detected_at   INTEGER NOT NULL, -- unix seconds
        category      TEXT    NOT NULL,
        impact        TEXT    NOT NULL,
        outcome       TEXT    NOT NULL, -- successful | attempted
        status        TEXT    NOT NULL, -- open | investigating | closed
        summary       TEXT    NOT NULL,
        ico_reference TEXT,
        alert_id      INTEGER,
        created_at    INTEGER NOT NULL,
        closed_at     INTEGER,
        UNIQUE (tenant, reference)
    );
    CREATE TABLE asset_exceptions (
        id         INTEGER PRIMARY KEY,
        tenant     TEXT    NOT NULL,
        asset      TEXT    NOT NULL, -- normalised host name
        finding    TEXT,             -- vulnerability key; NULL: the whole device
        scope      TEXT    NOT NULL, -- av | patching | all
        kind       TEXT    NOT NULL, -- risk-accepted | compensating-control
        reason     TEXT    NOT NULL,
        owner      TEXT    NOT NULL,
        approver   TEXT    NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE kpi_snapshots (
        tenant      TEXT    NOT NULL,
        quarter     TEXT    NOT NULL,
        computed_at INTEGER NOT NULL,
        body        TEXT    NOT NULL, -- the KPI report, JSON
        PRIMARY KEY (tenant, quarter)
    );",
    ),
    (
        6,
        "ALTER TABLE query_events ADD COLUMN node TEXT NOT NULL DEFAULT '';
    ALTER TABLE alerts ADD COLUMN nodes TEXT NOT NULL DEFAULT ''; -- comma-separated
    CREATE TABLE leases (
        job        TEXT    PRIMARY KEY,
        holder     TEXT    NOT NULL, -- node name
        expires_at INTEGER NOT NULL  -- unix milliseconds
    );
    CREATE TABLE feeds (
        name         TEXT    PRIMARY KEY,
        version      INTEGER NOT NULL,
        sha256       TEXT    NOT NULL,
        content      BLOB    NOT NULL,
        published_at INTEGER NOT NULL
    );
    CREATE TABLE nodes (
        name       TEXT    PRIMARY KEY,
        started_at INTEGER NOT NULL,
        seen_at    INTEGER NOT NULL,
        feeds      TEXT    NOT NULL DEFAULT '' -- name=version, space-separated
    );",
    ),
    (
        7,
        "CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        name          TEXT    NOT NULL UNIQUE,
        role          TEXT    NOT NULL, -- supplier-admin | supplier-analyst | council
        tenant        TEXT,             -- the council of a council user
        password_hash TEXT    NOT NULL, -- argon2id PHC string
        created_at    INTEGER NOT NULL  -- unix seconds
    );
    CREATE TABLE sessions (
        token_sha256 TEXT    PRIMARY KEY, -- SHA-256 of the cookie's random token
        user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        csrf         TEXT    NOT NULL,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER NOT NULL
    );
    CREATE TABLE api_tokens (
        token_sha256 TEXT    PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at   INTEGER NOT NULL
    );
    CREATE TABLE audit_log (
        id     INTEGER PRIMARY KEY,
        time   INTEGER NOT NULL, -- unix seconds
        actor  TEXT    NOT NULL,
        action TEXT    NOT NULL, -- login.ok, login.failed, alert.status...
        tenant TEXT,
        detail TEXT    NOT NULL,
        client TEXT              -- the web client's address (staff, not DNS clients)
    );
    CREATE INDEX audit_log_tenant ON audit_log (tenant, id);",
    ),
    (
        8,
        // PostgreSQL appends each batch's hourly counts to a delta table and
        // folds them later; SQLite updates query_hourly in place, so its
        // view of all counts is the table itself (same name on both).
        // No reader uses (tenant, time) on the raw events (pages and reports
        // read the aggregates), and each index is paid by every event.
        "CREATE VIEW query_hourly_all AS
        SELECT tenant, qname, hour, action, queries FROM query_hourly;
    DROP INDEX query_events_tenant_time;",
    ),
    (
        9,
        // repeats of one query within a batch are one row
        // (parapet_core::event::RunFolder);
        // 1 and NULL take no payload in a SQLite record (a header byte each)
        "ALTER TABLE query_events ADD COLUMN queries INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE query_events ADD COLUMN last_time INTEGER;",
    ),
];

/// `tenant = ?2`, or no condition when `?2` is NULL (every tenant).
pub(crate) fn tenant_clause(tenant: Option<&str>) -> &'static str {
    if tenant.is_some() {
        "tenant = ?2"
    } else {
        "?2 IS NULL"
    }
}

pub struct SqliteStore {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    pub(crate) node: String,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteStore({})", self.path.display())
    }
}

/// Wraps a SQLite error with the database's path.
pub(crate) fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + Copy + '_ {
    move |source| StoreError::Sqlite {
        path: path.display().to_string(),
        source,
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

/// Rows per multi-row `INSERT` of query events.
const EVENT_ROWS: usize = 64;

/// One stored row's columns: a query, or the repeats of one
/// ([`crate::rules::events`]).
struct EventRow<'a> {
    time: i64,
    tenant: &'a str,
    client: &'a [u8],
    qname: &'a str,
    qtype: u16,
    rcode: Option<u8>,
    action: &'static str,
    feed: Option<&'a str>,
    node: &'a str,
    queries: i64,
    last_time: Option<i64>,
}

/// Columns of [`EventRow`].
const EVENT_COLUMNS: usize = 11;

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
        ]
    }
}

/// `INSERT INTO query_events ... VALUES (...), ...` with `rows` rows of
/// numbered parameters (built once per batch; `prepare_cached` keys on it).
fn insert_events_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO query_events (time, tenant, client, qname, qtype, rcode, action, feed, node, queries, last_time) VALUES ",
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
        if runs.is_empty() {
            return Ok(0);
        }
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
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
            let node = self.node.as_str();
            for chunk in runs.chunks(EVENT_ROWS) {
                for (r, name) in chunk.iter().zip(names.iter_mut()) {
                    name.clear();
                    let _ = write_key_as_text(r.event.qname.as_key(), name);
                }
                let rows: Vec<EventRow<'_>> = chunk
                    .iter()
                    .zip(names.iter())
                    .map(|(r, name)| {
                        let e = r.event;
                        EventRow {
                            time: unix_millis(r.first),
                            tenant: &e.tenant,
                            client: &e.client.0[..],
                            qname: name,
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
            for ((tenant, name, hour, action), n) in hourly {
                qname.clear();
                let _ = write_key_as_text(name, &mut qname);
                agg.execute(params![tenant, qname, hour, action, n])
                    .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(queries(runs))
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
            .query_row(
                "SELECT COALESCE(SUM(queries), 0) FROM query_events",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
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
                 FROM query_hourly WHERE hour >= ?1 AND {} GROUP BY tenant ORDER BY tenant",
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
                 FROM query_hourly WHERE hour >= ?1 AND {} GROUP BY tenant, hour ORDER BY hour, tenant",
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
                "SELECT tenant, qname, SUM(queries) AS n FROM query_hourly
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

impl AlertStore for SqliteStore {
    fn record_signals(&mut self, signals: &[Signal]) -> Result<Vec<(i64, bool)>, StoreError> {
        let err = sql_err(&self.path);
        let groups = group_signals(signals);
        let mut touched: Vec<(i64, bool)> = Vec::with_capacity(groups.len());
        // IMMEDIATE: it reads then writes, and a deferred transaction that
        // must upgrade to a writer while another connection writes fails
        // with SQLITE_BUSY at once instead of waiting (busy_timeout)
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        for g in &groups {
            let existing: Option<(i64, String, String, String, String, String)> = tx
                .query_row(
                    "SELECT id, status, feeds, evidence, severity, nodes FROM alerts WHERE tenant = ?1 AND rule = ?2 AND domain = ?3",
                    params![g.tenant, g.rule, g.domain],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                )
                .optional()
                .map_err(err)?;
            let id = match existing {
                None => {
                    tx.execute(
                        "INSERT INTO alerts (tenant, rule, domain, severity, first_seen, last_seen, count, feeds, reason, evidence, nodes)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                        params![
                            g.tenant,
                            g.rule,
                            g.domain,
                            g.severity.as_str(),
                            g.first_seen,
                            g.last_seen,
                            g.count,
                            g.feeds_text(),
                            g.reason,
                            g.evidence_text(),
                            self.node
                        ],
                    )
                    .map_err(err)?;
                    let id = tx.last_insert_rowid();
                    touched.push((id, true));
                    id
                }
                Some((id, status, feeds, evidence, severity, nodes)) => {
                    let stored = StoredAlert {
                        status: &status,
                        feeds: &feeds,
                        evidence: &evidence,
                        severity: &severity,
                        nodes: &nodes,
                    };
                    let up = g.fold_into(&stored, &self.node);
                    tx.execute(
                        "UPDATE alerts SET count = count + ?8, last_seen = MAX(last_seen, ?3), first_seen = MIN(first_seen, ?2),
                         feeds = ?4, evidence = ?5, reason = ?6, severity = ?7, nodes = ?9, status = ?10 WHERE id = ?1",
                        params![
                            id,
                            g.first_seen,
                            g.last_seen,
                            up.feeds,
                            up.evidence,
                            g.reason,
                            up.severity,
                            g.count,
                            up.nodes,
                            up.status
                        ],
                    )
                    .map_err(err)?;
                    if up.reopened {
                        tx.execute(
                            "INSERT INTO alert_history (alert_id, time, from_status, to_status, by, note)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            params![
                                id,
                                g.time,
                                status,
                                up.status,
                                REOPENED_BY,
                                REOPENED_NOTE
                            ],
                        )
                        .map_err(err)?;
                    }
                    touched.push((id, up.reopened));
                    id
                }
            };
            let mut add = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO alert_clients (alert_id, client) VALUES (?1, ?2)",
                )
                .map_err(err)?;
            for c in &g.clients {
                add.execute(params![id, c]).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(touched)
    }

    fn list_alerts(&mut self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        let ids: Vec<i64> = {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT id FROM alerts
                     WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR status = ?2)
                       AND (?3 IS NULL OR rule = ?3) AND (?4 IS NULL OR last_seen >= ?4)
                     ORDER BY last_seen DESC, id DESC LIMIT ?5",
                )
                .map_err(|e| self.err(e))?;
            let limit = filter.limit.map_or(-1, |l| l as i64);
            stmt.query_map(
                params![
                    filter.tenant,
                    filter.status.map(AlertStatus::as_str),
                    filter.rule,
                    filter.since,
                    limit
                ],
                |r| r.get(0),
            )
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(|e| StoreError::Sqlite {
                path: self.path.display().to_string(),
                source: e,
            })?
        };
        ids.into_iter().map(|id| self.alert(id)).collect()
    }

    fn alert(&mut self, id: i64) -> Result<Alert, StoreError> {
        let err = sql_err(&self.path);
        let row = self
            .conn
            .query_row(
                "SELECT tenant, rule, domain, severity, status, first_seen, last_seen, count, feeds, reason, evidence,
                        (SELECT COUNT(*) FROM alert_clients WHERE alert_id = alerts.id), nodes
                 FROM alerts WHERE id = ?1",
                params![id],
                |r| {
                    Ok(AlertRow {
                        id,
                        tenant: r.get(0)?,
                        rule: r.get(1)?,
                        domain: r.get(2)?,
                        severity: r.get(3)?,
                        status: r.get(4)?,
                        first_seen: r.get(5)?,
                        last_seen: r.get(6)?,
                        count: r.get(7)?,
                        feeds: r.get(8)?,
                        reason: r.get(9)?,
                        evidence: r.get(10)?,
                        clients: r.get(11)?,
                        nodes: r.get(12)?,
                    })
                },
            )
            .optional()
            .map_err(err)?
            .ok_or(StoreError::NoSuchAlert(id))?;
        let history = self
            .conn
            .prepare_cached(
                "SELECT time, from_status, to_status, by, note FROM alert_history WHERE alert_id = ?1 ORDER BY id",
            )
            .map_err(err)?
            .query_map(params![id], |r| {
                Ok(HistoryRow {
                    time: r.get(0)?,
                    from: r.get(1)?,
                    to: r.get(2)?,
                    by: r.get(3)?,
                    note: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(err)?;
        row.into_alert(history, &self.location_string())
    }

    fn set_alert_status(
        &mut self,
        id: i64,
        to: AlertStatus,
        by: &str,
        note: &str,
        now: SystemTime,
    ) -> Result<Alert, StoreError> {
        let from = self.alert(id)?.status;
        if !from.can_become(to) {
            return Err(StoreError::BadTransition { id, from, to });
        }
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute(
            "UPDATE alerts SET status = ?2 WHERE id = ?1",
            params![id, to.as_str()],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO alert_history (alert_id, time, from_status, to_status, by, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, unix_millis(now), from.as_str(), to.as_str(), by, note],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        self.alert(id)
    }

    fn load_seen(&mut self) -> Result<Vec<SeenDomains>, StoreError> {
        let mut out: Vec<SeenDomains> = {
            let mut stmt = self
                .conn
                .prepare("SELECT tenant, since FROM tenant_learning ORDER BY tenant")
                .map_err(|e| self.err(e))?;
            stmt.query_map([], |r| {
                Ok(SeenDomains {
                    tenant: r.get(0)?,
                    since: r.get(1)?,
                    domains: Vec::new(),
                })
            })
            .and_then(|rows| rows.collect::<Result<_, _>>())
            .map_err(|e| StoreError::Sqlite {
                path: self.path.display().to_string(),
                source: e,
            })?
        };
        let mut stmt = self
            .conn
            .prepare("SELECT tenant, domain FROM tenant_domains ORDER BY tenant")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| StoreError::Sqlite {
                path: self.path.display().to_string(),
                source: e,
            })?;
        for row in rows {
            let (tenant, domain) = row.map_err(|e| StoreError::Sqlite {
                path: self.path.display().to_string(),
                source: e,
            })?;
            if let Some(t) = out.iter_mut().find(|t| t.tenant == tenant) {
                t.domains.push(domain);
            }
        }
        Ok(out)
    }

    fn save_seen(
        &mut self,
        learning_started: &[(Arc<str>, SystemTime)],
        domains: &[(Arc<str>, String, SystemTime)],
    ) -> Result<(), StoreError> {
        if learning_started.is_empty() && domains.is_empty() {
            return Ok(());
        }
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        for (tenant, since) in learning_started {
            tx.execute(
                "INSERT OR IGNORE INTO tenant_learning (tenant, since) VALUES (?1, ?2)",
                params![&**tenant, unix_millis(*since)],
            )
            .map_err(err)?;
        }
        for (tenant, domain, first) in domains {
            tx.execute(
                "INSERT OR IGNORE INTO tenant_domains (tenant, domain, first_seen) VALUES (?1, ?2, ?3)",
                params![&**tenant, domain, unix_millis(*first)],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

impl MailStore for SqliteStore {
    fn import_dmarc(
        &mut self,
        report: &DmarcReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let added = tx
            .execute(
                "INSERT OR IGNORE INTO dmarc_reports (org_name, report_id, domain, begin_time, end_time, policy, source, imported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    report.org_name,
                    report.report_id,
                    report.domain,
                    report.begin,
                    report.end,
                    report.policy,
                    report.source,
                    unix_millis(now)
                ],
            )
            .map_err(err)?;
        if added == 0 {
            return Ok(Imported::Duplicate);
        }
        let id = tx.last_insert_rowid();
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT INTO dmarc_records (report, source_ip, count, disposition, dkim_aligned, spf_aligned, header_from, envelope_from, dkim, spf)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(err)?;
            for r in &report.records {
                ins.execute(params![
                    id,
                    r.source_ip,
                    r.count as i64,
                    r.disposition,
                    r.dkim_aligned,
                    r.spf_aligned,
                    r.header_from,
                    r.envelope_from,
                    r.dkim,
                    r.spf
                ])
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(Imported::New)
    }

    fn import_tlsrpt(
        &mut self,
        report: &TlsReportRow,
        now: SystemTime,
    ) -> Result<Imported, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let added = tx
            .execute(
                "INSERT OR IGNORE INTO tls_reports (org_name, report_id, begin_time, end_time, source, imported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    report.org_name,
                    report.report_id,
                    report.begin,
                    report.end,
                    report.source,
                    unix_millis(now)
                ],
            )
            .map_err(err)?;
        if added == 0 {
            return Ok(Imported::Duplicate);
        }
        let id = tx.last_insert_rowid();
        for r in &report.results {
            tx.execute(
                "INSERT INTO tls_results (report, policy_type, policy_domain, successful, failed, failures)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, r.policy_type, r.policy_domain, r.successful as i64, r.failed as i64, r.failures],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Imported::New)
    }

    fn dmarc_summary(&mut self, domain: &str) -> Result<DmarcSummary, StoreError> {
        let err = sql_err(&self.path);
        let mut sum = DmarcSummary {
            domain: domain.to_string(),
            ..DmarcSummary::default()
        };
        let (reports, first, last): (i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COUNT(*), MIN(begin_time), MAX(end_time) FROM dmarc_reports WHERE domain = ?1",
                params![domain],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(err)?;
        sum.reports = reports as u64;
        sum.first = first;
        sum.last = last;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT source_ip, SUM(count),
                        SUM(CASE WHEN dkim_aligned OR spf_aligned THEN count ELSE 0 END),
                        SUM(CASE WHEN dkim_aligned THEN count ELSE 0 END),
                        SUM(CASE WHEN spf_aligned THEN count ELSE 0 END),
                        SUM(CASE WHEN disposition = 'quarantine' THEN count ELSE 0 END),
                        SUM(CASE WHEN disposition = 'reject' THEN count ELSE 0 END)
                 FROM dmarc_records JOIN dmarc_reports ON dmarc_reports.id = dmarc_records.report
                 WHERE dmarc_reports.domain = ?1
                 GROUP BY source_ip ORDER BY SUM(count) DESC, source_ip",
            )
            .map_err(err)?;
        let rows = stmt
            .query_map(params![domain], |r| {
                Ok(SourceSummary {
                    source_ip: r.get(0)?,
                    messages: r.get::<_, i64>(1)? as u64,
                    dmarc_pass: r.get::<_, i64>(2)? as u64,
                    dkim_aligned: r.get::<_, i64>(3)? as u64,
                    spf_aligned: r.get::<_, i64>(4)? as u64,
                    quarantined: r.get::<_, i64>(5)? as u64,
                    rejected: r.get::<_, i64>(6)? as u64,
                })
            })
            .map_err(err)?;
        for row in rows {
            add_source(&mut sum, row.map_err(err)?);
        }
        Ok(sum)
    }

    fn dkim_selectors(&mut self, domain: &str) -> Result<Vec<String>, StoreError> {
        let err = sql_err(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT dkim FROM dmarc_records WHERE dkim LIKE ?1")
            .map_err(err)?;
        let pattern = format!("%{domain}/%");
        let rows = stmt
            .query_map(params![pattern], |r| r.get::<_, String>(0))
            .map_err(err)?;
        let mut out: Vec<String> = Vec::new();
        for row in rows {
            add_selectors(&mut out, &row.map_err(err)?, domain);
        }
        out.sort();
        Ok(out)
    }

    fn save_mailcheck(&mut self, check: &MailCheckRow) -> Result<MailCheckDiff, StoreError> {
        let err = sql_err(&self.path);
        let tx = self.conn.transaction().map_err(err)?;
        let previous: Option<(i64, String)> = tx
            .query_row(
                "SELECT checked_at, findings FROM mailcheck_results WHERE domain = ?1 ORDER BY checked_at DESC, id DESC LIMIT 1",
                params![check.domain],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(err)?;
        let now_lines = finding_lines(&check.findings);
        tx.execute(
            "INSERT INTO mailcheck_results (domain, checked_at, worst, findings, report) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![check.domain, check.checked_at, check.worst, now_lines.join("\n"), check.report],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(diff_findings(previous, &now_lines))
    }

    fn mailcheck_history(
        &mut self,
        domain: &str,
        limit: usize,
    ) -> Result<Vec<MailCheckRow>, StoreError> {
        let err = sql_err(&self.path);
        let mut q = self
            .conn
            .prepare(
                "SELECT domain, checked_at, worst, findings, report FROM mailcheck_results
                 WHERE domain = ?1 ORDER BY checked_at DESC, id DESC LIMIT ?2",
            )
            .map_err(err)?;
        let rows = q
            .query_map(params![domain, limit as i64], |r| {
                let findings: String = r.get(3)?;
                Ok(MailCheckRow {
                    domain: r.get(0)?,
                    checked_at: r.get(1)?,
                    worst: r.get(2)?,
                    findings: findings_from_lines(&findings),
                    report: r.get(4)?,
                })
            })
            .map_err(err)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(rows)
    }
}

impl ClusterStore for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
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
            .map_err(|e| self.err(e))
    }

    fn publish_feed(
        &mut self,
        name: &str,
        content: &[u8],
        now: SystemTime,
    ) -> Result<FeedVersion, StoreError> {
        let err = sql_err(&self.path);
        let sha = crate::sha256_hex(content);
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
            .map_err(|e| self.err(e))
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
            .map_err(|e| self.err(e))
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
            .map_err(|e| self.err(e))
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

impl SqliteStore {
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

#[cfg(test)]
mod tests {
    //! The shared suite (crate::tests) runs on both backends; this one is
    //! about the SQLite file itself.
    use super::*;
    use parapet_core::event::EventAction;
    use parapet_core::name::{EventName, text_to_key};
    use std::sync::Arc;

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
