//! The SQLite schema: versioned steps applied in order when a store is
//! opened. PostgreSQL has the same steps, numbered alike, in its own
//! dialect (`pg/migrations.rs`); a step changed in one changes in the other.

use std::time::SystemTime;

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, sql_err};
use crate::{StoreError, unix_millis};

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
    (
        10,
        // each batch of query events is stored once: a batch replayed from
        // the spool after a crash or an outage finds its id here and is
        // skipped (written in the batch's own transaction)
        "CREATE TABLE applied_batches (
        node       TEXT    NOT NULL,
        run        INTEGER NOT NULL, -- the writing process's start, unix milliseconds
        seq        INTEGER NOT NULL, -- the batch's number within that run
        applied_at INTEGER NOT NULL, -- unix milliseconds, for retention
        PRIMARY KEY (node, run, seq)
    ) WITHOUT ROWID;",
    ),
    (
        11,
        // notifications wait here from the transaction that raised their
        // alert until delivered (crates/pipeline/src/notify.rs), so a
        // restart loses none; a row with no target is not yet routed
        "CREATE TABLE notify_outbox (
        id         INTEGER PRIMARY KEY,
        alert_id   INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        target     TEXT,              -- NULL until routed
        created_at INTEGER NOT NULL,  -- unix milliseconds
        attempts   INTEGER NOT NULL DEFAULT 0,
        next_at    INTEGER NOT NULL,  -- unix milliseconds
        last_error TEXT,
        failed_at  INTEGER            -- set when delivery is given up
    );
    CREATE INDEX notify_outbox_alert ON notify_outbox (alert_id);",
    ),
    (
        12,
        // how far each SIEM export destination has been sent
        // (crates/pipeline/src/export): advanced only once the destination
        // accepted a batch, so an outage loses nothing
        "CREATE TABLE export_cursors (
        name       TEXT   PRIMARY KEY, -- the [[exports]] destination's name
        alerts     BIGINT NOT NULL,    -- last alert id sent
        events     BIGINT NOT NULL,    -- last query_events id sent
        updated_at BIGINT NOT NULL     -- unix milliseconds
    );",
    ),
    (
        13,
        // who each DMARC source IP is, from forward-confirmed reverse DNS
        // (parapet_mailcheck::senders): looked up once per IP, not per report
        "CREATE TABLE dmarc_senders (
        source_ip    TEXT    PRIMARY KEY,
        ptr          TEXT,              -- NULL: no PTR
        confirmed    INTEGER NOT NULL,  -- the PTR name's A/AAAA holds the IP
        base_domain  TEXT,
        service      TEXT,              -- named only from a confirmed PTR
        service_type TEXT,
        checked_at   INTEGER NOT NULL   -- unix milliseconds
    ) WITHOUT ROWID;",
    ),
    (
        14,
        // account management: a TOTP secret and the last time step used
        // (replay guard); API tokens get an id to list and revoke them by,
        // and their last use (a new table: SQLite cannot add a key column)
        "ALTER TABLE users ADD COLUMN totp_secret TEXT;
    ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
    CREATE TABLE api_tokens_v14 (
        id           INTEGER PRIMARY KEY,
        token_sha256 TEXT    NOT NULL UNIQUE,
        user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER
    );
    INSERT INTO api_tokens_v14 (token_sha256, user_id, created_at)
        SELECT token_sha256, user_id, created_at FROM api_tokens ORDER BY created_at;
    DROP TABLE api_tokens;
    ALTER TABLE api_tokens_v14 RENAME TO api_tokens;
    CREATE INDEX api_tokens_user ON api_tokens (user_id);",
    ),
    (
        15,
        // client addresses sealed to the investigation public key
        // (crates/store/src/sealed.rs): one row per client per batch, never
        // the address in clear; retention deletes them with the events
        "CREATE TABLE sealed_clients (
        node       TEXT    NOT NULL,
        run        INTEGER NOT NULL, -- the batch (applied_batches)
        seq        INTEGER NOT NULL,
        tenant     TEXT    NOT NULL,
        client     BLOB    NOT NULL, -- the pseudonym of query_events.client
        first_time INTEGER NOT NULL, -- unix milliseconds
        last_time  INTEGER NOT NULL,
        sealed     BLOB    NOT NULL, -- HPKE to the investigation public key
        PRIMARY KEY (node, run, seq, tenant, client)
    ) WITHOUT ROWID;
    CREATE INDEX sealed_clients_client ON sealed_clients (client, tenant);
    CREATE INDEX sealed_clients_time ON sealed_clients (first_time);",
    ),
    (
        16,
        // query search (EventStore::search_events): each name also kept
        // reversed, so that a suffix is one index range; the ids of a
        // client's or a name's rows come from the index alone, newest first
        "ALTER TABLE query_events ADD COLUMN rname TEXT;
    UPDATE query_events SET rname = parapet_reverse(qname);
    CREATE INDEX query_events_rname ON query_events (rname, tenant, time);
    CREATE INDEX query_events_client ON query_events (client, tenant, time);",
    ),
    (
        17,
        // names allowed for a while from the dashboard (an alert found to be
        // a false positive): every node's loader adds the entries in force
        // to the allowlist; expired and removed ones stay as the record
        "CREATE TABLE allowlist (
        id         INTEGER PRIMARY KEY,
        name       TEXT    NOT NULL, -- text form, lower case, no final dot
        tenant     TEXT,             -- the tenant of the alert it came from
        alert_id   INTEGER,          -- the alert it answers
        added_by   TEXT    NOT NULL,
        reason     TEXT    NOT NULL,
        created_at INTEGER NOT NULL, -- unix milliseconds
        expires_at INTEGER NOT NULL, -- unix milliseconds
        removed_at INTEGER,
        removed_by TEXT
    );
    CREATE INDEX allowlist_expires ON allowlist (expires_at);",
    ),
    (
        18,
        // the dashboard's traffic figures in under 100 ms with millions of
        // aggregate rows (bench/web): per-tenant hourly totals, kept with
        // the aggregates in the same transaction, and the blocked rows
        // (about 2%) indexed apart for the most-blocked names; the action
        // list is crate::rules::events::BLOCKED_ACTIONS
        "CREATE TABLE query_tenant_hourly (
        tenant  TEXT    NOT NULL,
        hour    INTEGER NOT NULL, -- unix seconds at the start of the hour
        action  TEXT    NOT NULL,
        queries INTEGER NOT NULL,
        PRIMARY KEY (tenant, hour, action)
    ) WITHOUT ROWID;
    CREATE INDEX query_tenant_hourly_hour ON query_tenant_hourly (hour);
    INSERT INTO query_tenant_hourly (tenant, hour, action, queries)
        SELECT tenant, hour, action, SUM(queries) FROM query_hourly GROUP BY tenant, hour, action;
    CREATE INDEX query_hourly_blocked ON query_hourly (hour, tenant, qname, queries)
        WHERE action IN ('blocked', 'nodata', 'dropped', 'local_data');",
    ),
    (
        19,
        // versioned frozen quarters (parapet_assurance::frozen): a reopened
        // version is kept with who reopened it, when and why, so a tabled
        // report can be reproduced; computed_at is when it was frozen
        "CREATE TABLE kpi_snapshots_v19 (
        tenant        TEXT    NOT NULL,
        quarter       TEXT    NOT NULL,
        version       INTEGER NOT NULL,
        computed_at   INTEGER NOT NULL,
        frozen_by     TEXT    NOT NULL,
        reopened_at   INTEGER,
        reopened_by   TEXT,
        reopen_reason TEXT,
        body          TEXT    NOT NULL, -- the frozen quarter, JSON
        PRIMARY KEY (tenant, quarter, version)
    );
    INSERT INTO kpi_snapshots_v19 (tenant, quarter, version, computed_at, frozen_by, body)
        SELECT tenant, quarter, 1, computed_at, '', body FROM kpi_snapshots;
    DROP TABLE kpi_snapshots;
    ALTER TABLE kpi_snapshots_v19 RENAME TO kpi_snapshots;",
    ),
    (
        20,
        // officer commentary of a council's committee report, append-only
        // per (tenant, quarter): a frozen quarter's is the latest saved at
        // or before its freeze, so what was tabled is never rewritten
        "CREATE TABLE report_commentary (
        id       INTEGER PRIMARY KEY,
        tenant   TEXT    NOT NULL,
        quarter  TEXT    NOT NULL,
        saved_at INTEGER NOT NULL, -- unix seconds
        author   TEXT    NOT NULL,
        body     TEXT    NOT NULL  -- JSON (parapet_report::OfficerCommentary)
    );
    CREATE INDEX report_commentary_quarter ON report_commentary (tenant, quarter, saved_at);",
    ),
];

impl SqliteStore {
    /// Applies the migrations this database lacks. Safe when several
    /// processes start at once: each step runs in an IMMEDIATE transaction
    /// that re-reads the version first.
    pub(super) fn migrate(&mut self) -> Result<(), StoreError> {
        let err = sql_err(&self.path);
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    INTEGER PRIMARY KEY,
                    applied_at INTEGER NOT NULL
                )",
            )
            .map_err(err)?;
        // a step that fills a column from others needs what SQL lacks
        self.conn
            .create_scalar_function(
                "parapet_reverse",
                1,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8
                    | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
                |ctx| {
                    let s: Option<String> = ctx.get(0)?;
                    Ok(s.map(|s| crate::rules::search::reversed(&s)))
                },
            )
            .map_err(err)?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        for &(version, sql) in MIGRATIONS {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(err)?;
            let current: u32 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
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
            apply.and_then(|_| tx.commit()).map_err(err)?;
        }
        Ok(())
    }

    /// The newest step applied (0 on an empty database).
    pub(super) fn applied_version(&self) -> Result<u32, StoreError> {
        self.conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get::<_, Option<u32>>(0)
            })
            .optional()
            .map(|v| v.flatten().unwrap_or(0))
            .map_err(sql_err(&self.path))
    }
}
