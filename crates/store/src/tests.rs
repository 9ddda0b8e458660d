//! The storage test suite, run against both backends: every test below runs
//! once on a fresh SQLite file (`sqlite::NAME`) and once on a fresh database
//! of a real PostgreSQL server (`pg::NAME`, see [`crate::pgtest`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parapet_core::alert::{AlertStatus, Severity, Signal};
use parapet_core::event::{EventAction, PrivateEvent, RCODE_NO_RESPONSE};
use parapet_core::name::{EventName, text_to_key};
use parapet_core::pseudonym::ClientPseudonym;

use crate::accounts::{AuditEntry, Role};
use crate::{
    AlertFilter, AlertTally, Db, DmarcDay, DmarcReportRow, DmarcSenderRow, EventStore, Imported,
    MailCheckDiff, MailCheckRow, MailFinding, PgStore, Purged, Retention, SqliteStore, StoreError,
    TlsReportRow,
};
use parapet_assurance::model::{
    AssetException, AssetImport, AssetImported, AssetObs, AvObs, FindingObs, Incident, ScanObs,
    VulnDef,
};

/// Raw SQL for assertions the interface does not expose.
trait TestDb: Db {
    /// Each row's columns as text joined by `|`.
    fn texts(&mut self, sql: &str) -> Vec<String>;
    fn exec(&mut self, sql: &str);
}

impl TestDb for SqliteStore {
    fn texts(&mut self, sql: &str) -> Vec<String> {
        SqliteStore::texts(self, sql)
    }
    fn exec(&mut self, sql: &str) {
        SqliteStore::exec(self, sql)
    }
}

impl TestDb for PgStore {
    fn texts(&mut self, sql: &str) -> Vec<String> {
        PgStore::texts(self, sql)
    }
    fn exec(&mut self, sql: &str) {
        PgStore::exec(self, sql)
    }
}

/// Where one test's database lives; `open` may be called again to reopen.
enum Fx {
    Sqlite(tempfile::TempDir),
    Pg(String),
}

impl Fx {
    fn sqlite() -> Self {
        Fx::Sqlite(tempfile::tempdir().unwrap())
    }
    fn pg() -> Self {
        Fx::Pg(crate::pgtest::fresh_database())
    }
    fn try_open(&self) -> Result<Box<dyn TestDb>, StoreError> {
        Ok(match self {
            Fx::Sqlite(dir) => Box::new(SqliteStore::open(dir.path())?),
            Fx::Pg(url) => Box::new(PgStore::open(url)?),
        })
    }
    fn open(&self) -> Box<dyn TestDb> {
        self.try_open().unwrap()
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::Fx::sqlite()) } )*
        }
        mod pg {
            $( #[test] fn $name() { super::$name(&super::Fx::pg()) } )*
        }
    };
}

on_both_backends!(
    events_and_hourly_aggregates,
    a_batch_is_stored_once_however_often_it_is_replayed,
    a_batch_raises_its_alerts_once_in_its_own_transaction,
    every_event_of_a_large_batch_is_stored_as_it_was,
    repeats_of_a_query_in_one_batch_are_one_row_that_counts_them,
    purge_removes_exactly_what_is_past_retention,
    reopening_migrates_once_and_a_newer_schema_is_refused,
    a_version_8_database_with_events_upgrades_in_place,
    signals_fold_into_one_alert_per_tenant_rule_and_domain,
    status_workflow_with_who_when_why,
    seen_domains_survive_reopening,
    dmarc_reports_deduplicate_and_summarise,
    dmarc_senders_are_kept_and_group_the_summary,
    mailcheck_results_report_what_changed,
    imports_round_trip_and_deduplicate_by_content,
    incidents_exceptions_and_frozen_snapshots,
    a_bad_row_stores_nothing_of_its_import,
    two_nodes_fold_the_same_domain_into_one_alert,
    a_lease_runs_a_job_on_one_node_until_it_expires,
    feeds_published_once_reach_every_node,
    concurrent_opens_migrate_once,
    users_sessions_tokens_and_audit,
    traffic_per_tenant_and_hour,
    aggregates_stay_exact_while_nodes_write_and_fold,
    raised_alerts_wait_in_the_outbox_until_delivered,
    export_cursors_start_at_the_newest_and_read_by_id,
    officer_commentary_is_append_only_and_read_as_of_a_time,
    sealed_clients_are_kept_once_per_batch_and_read_back_for_a_reveal,
);

/// Every save is a new version; a read as of a time (a freeze) gets the
/// latest saved at or before it, and tenants and quarters stay apart.
fn officer_commentary_is_append_only_and_read_as_of_a_time(fx: &Fx) {
    let mut s = fx.open();
    assert_eq!(s.commentary("north", "2021-22-Q2", i64::MAX).unwrap(), None);
    s.save_commentary("north", "2021-22-Q2", 100, "ann", "{\"v\":1}")
        .unwrap();
    s.save_commentary("north", "2021-22-Q2", 200, "ann", "{\"v\":2}")
        .unwrap();
    s.save_commentary("south", "2021-22-Q2", 150, "bob", "{\"v\":9}")
        .unwrap();
    let at = |s: &mut Box<dyn TestDb>, until| {
        s.commentary("north", "2021-22-Q2", until)
            .unwrap()
            .map(|c| (c.saved_at, c.author, c.body))
    };
    assert_eq!(at(&mut s, 99), None);
    assert_eq!(
        at(&mut s, 150),
        Some((100, "ann".into(), "{\"v\":1}".into()))
    );
    assert_eq!(at(&mut s, 200).unwrap().0, 200);
    assert_eq!(at(&mut s, i64::MAX).unwrap().2, "{\"v\":2}");
    assert_eq!(s.commentary("north", "2021-22-Q3", i64::MAX).unwrap(), None);
    // reopened, the versions are all still there
    drop(s);
    let mut s = fx.open();
    assert_eq!(at(&mut s, 150).unwrap().0, 100);
}

const KNOWN_VERSION: u32 = 20;

/// Two nodes write batches while two folders fold at the same time: every
/// event is counted in its hour exactly once, before and after the last
/// fold (a fold that races a batch must neither miss nor double it).
fn aggregates_stay_exact_while_nodes_write_and_fold(fx: &Fx) {
    // writer w's batch b: 200 events over 200 s, 23 names repeated (so
    // rows fold repeats), some batches straddling an hour
    let batch = |w: u64, b: u64| -> Vec<PrivateEvent> {
        (0..200u64)
            .map(|i| {
                let name = format!("h{}.example.org", (i * 7 + b) % 23);
                let action = if i % 5 == 0 {
                    EventAction::Blocked
                } else {
                    EventAction::Resolved
                };
                event(3000 + b * 240 + i + w, &name, action)
            })
            .collect()
    };
    // what the hourly counts must say, from the events themselves
    let mut expected: std::collections::BTreeMap<(String, String, String), u64> =
        Default::default();
    for w in 0..2 {
        for b in 0..30 {
            for e in batch(w, b) {
                let secs = e.time.duration_since(UNIX_EPOCH).unwrap().as_secs();
                *expected
                    .entry((
                        e.qname.to_string(),
                        (secs / 3600 * 3600).to_string(),
                        e.action.as_str().to_string(),
                    ))
                    .or_default() += 1;
            }
        }
    }
    let from_events: Vec<String> = expected
        .iter()
        .map(|((q, h, a), n)| format!("{q}|{h}|{a}|{n}"))
        .collect();
    let batch = &batch;
    fx.open(); // migrate before the threads start
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        let writers: Vec<_> = ["node-a", "node-b"]
            .into_iter()
            .enumerate()
            .map(|(w, node)| {
                let mut db = fx.open();
                db.set_node(node);
                sc.spawn(move || {
                    for b in 0..30u64 {
                        db.insert_events(&batch(w as u64, b)).unwrap();
                    }
                })
            })
            .collect();
        for _ in 0..2 {
            let mut db = fx.open();
            let stop = &stop;
            sc.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    db.fold_aggregates().unwrap();
                }
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let mut s = fx.open();
    assert_eq!(s.event_count().unwrap(), 2 * 30 * 200);
    assert!(from_events.len() > 23 * 2, "{from_events:?}");
    let rows = s.texts("SELECT CAST(COUNT(*) AS TEXT) FROM query_events");
    assert!(rows[0].parse::<u64>().unwrap() < 2 * 30 * 200, "{rows:?}");
    let all = "SELECT qname, CAST(hour AS TEXT), action, CAST(SUM(queries) AS TEXT)
               FROM query_hourly_all GROUP BY qname, hour, action ORDER BY 1, 2, 3";
    assert_eq!(s.texts(all), from_events);
    s.fold_aggregates().unwrap();
    assert_eq!(s.texts(all), from_events);
    assert_eq!(
        s.texts(
            "SELECT qname, CAST(hour AS TEXT), action, CAST(queries AS TEXT)
             FROM query_hourly ORDER BY 1, 2, 3"
        ),
        from_events
    );
}

fn event(secs: u64, name: &str, action: EventAction) -> PrivateEvent {
    PrivateEvent {
        time: UNIX_EPOCH + Duration::from_secs(secs),
        tenant: Arc::from("council-a"),
        client: ClientPseudonym([7; 8]),
        qname: EventName::new(&text_to_key(name).unwrap()),
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

/// [`event`] at `ms` unix milliseconds.
fn event_at_ms(ms: u64, name: &str, action: EventAction) -> PrivateEvent {
    PrivateEvent {
        time: UNIX_EPOCH + Duration::from_millis(ms),
        ..event(0, name, action)
    }
}

/// A batch replayed from the spool (after a crash, or a commit whose answer
/// was lost) is recognised by its id and node, and writes nothing twice:
/// neither rows nor hourly counts. Another batch number, run or node is
/// another batch.
fn a_batch_is_stored_once_however_often_it_is_replayed(fx: &Fx) {
    use crate::BatchId;
    use parapet_core::event::{OwnedRun, fold_events};
    let mut s = fx.open();
    s.set_node("node-a");
    let events = [
        event(7200, "www.example.org", EventAction::Resolved),
        event(7201, "www.example.org", EventAction::Resolved),
        event(7202, "bad.example", EventAction::Blocked),
    ];
    let runs = fold_events(&events);
    let runs: Vec<_> = runs.iter().map(OwnedRun::as_run).collect();
    let id = BatchId { run: 1_000, seq: 1 };
    assert_eq!(s.insert_batch(id, &runs).unwrap(), Some(3));
    assert_eq!(s.insert_batch(id, &runs).unwrap(), None);
    assert_eq!(s.event_count().unwrap(), 3);
    let totals = |s: &mut Box<dyn TestDb>| {
        s.fold_aggregates().unwrap();
        s.traffic_totals(None, 0)
            .unwrap()
            .iter()
            .map(|t| (t.queries, t.blocked))
            .collect::<Vec<_>>()
    };
    assert_eq!(totals(&mut s), [(3, 1)]);
    // after a reopen (a restart) the id is still known
    drop(s);
    let mut s = fx.open();
    s.set_node("node-a");
    assert_eq!(s.insert_batch(id, &runs).unwrap(), None);
    assert_eq!(s.event_count().unwrap(), 3);
    for other in [
        BatchId { run: 1_000, seq: 2 },
        BatchId { run: 2_000, seq: 1 },
    ] {
        assert_eq!(s.insert_batch(other, &runs).unwrap(), Some(3));
    }
    s.set_node("node-b");
    assert_eq!(s.insert_batch(id, &runs).unwrap(), Some(3));
    assert_eq!(s.event_count().unwrap(), 12);
    assert_eq!(totals(&mut s), [(12, 4)]);
}

/// What detection finds in a batch is stored with it: its alerts (with
/// their outbox rows) and seen domains commit with the events, and a batch
/// already stored is not run through detection again, so a replay raises
/// nothing twice.
fn a_batch_raises_its_alerts_once_in_its_own_transaction(fx: &Fx) {
    use crate::{BatchId, Findings};
    use parapet_core::event::{OwnedRun, fold_events};
    let mut s = fx.open();
    s.set_node("node-a");
    let events = [event(7202, "bad.example", EventAction::Blocked)];
    let runs = fold_events(&events);
    let runs: Vec<_> = runs.iter().map(OwnedRun::as_run).collect();
    let id = BatchId { run: 1_000, seq: 1 };
    let mut calls = 0;
    let mut detect = || {
        calls += 1;
        Findings {
            signals: vec![signal(
                7202,
                "feed.block",
                "bad.example",
                1,
                Some("malware"),
            )],
            learning_started: vec![(
                Arc::from("council-a"),
                UNIX_EPOCH + Duration::from_secs(7200),
            )],
            new_domains: vec![(
                Arc::from("council-a"),
                "bad.example".into(),
                UNIX_EPOCH + Duration::from_secs(7202),
            )],
        }
    };
    let stored = s
        .insert_batch_found(id, &runs, &mut detect)
        .unwrap()
        .unwrap();
    assert_eq!(stored.queries, 1);
    assert_eq!(stored.alerts, [(1, true)]);
    assert_eq!(s.insert_batch_found(id, &runs, &mut detect).unwrap(), None);
    assert_eq!(calls, 1, "a stored batch is not detected again");
    let alerts = s.list_alerts(&AlertFilter::default()).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].count, 1);
    assert_eq!(s.outbox_counts().unwrap().pending, 1);
    let seen = s.load_seen().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].domains, ["bad.example"]);
}

fn events_and_hourly_aggregates(fx: &Fx) {
    let mut s = fx.open();
    s.set_node("node-a");
    assert_eq!(s.schema_version().unwrap(), KNOWN_VERSION);
    let batch = [
        event(7200, "www.example.org", EventAction::Resolved),
        event(7300, "www.example.org", EventAction::Resolved),
        event(10_900, "www.example.org", EventAction::Resolved),
        event(7400, "evil.test", EventAction::Blocked),
        event(7500, "drop.test", EventAction::Dropped),
    ];
    assert_eq!(s.insert_events(&batch).unwrap(), 5);
    assert_eq!(s.event_count().unwrap(), 5);
    // a second batch adds to the same hours
    s.insert_events(&batch[..1]).unwrap();
    let expected = [
        "drop.test|7200|dropped|1",
        "evil.test|7200|blocked|1",
        "www.example.org|7200|resolved|3",
        "www.example.org|10800|resolved|1",
    ];
    // exact before any fold (PostgreSQL: pending counts are in the view)...
    assert_eq!(
        s.texts(
            "SELECT qname, CAST(hour AS TEXT), action, CAST(SUM(queries) AS TEXT) FROM query_hourly_all
             GROUP BY qname, hour, action ORDER BY qname, query_hourly_all.hour"
        ),
        expected
    );
    // ...and after it, in the aggregate table itself
    let folded = s.fold_aggregates().unwrap();
    assert_eq!(folded, if s.defers_aggregates() { 4 } else { 0 });
    assert_eq!(s.fold_aggregates().unwrap(), 0, "nothing is folded twice");
    assert_eq!(
        s.texts(
            "SELECT qname, CAST(hour AS TEXT), action, CAST(queries AS TEXT) FROM query_hourly ORDER BY qname, query_hourly.hour"
        ),
        expected
    );
    assert_eq!(
        s.texts(
            "SELECT CAST(rcode AS TEXT), feed, node FROM query_events WHERE qname IN ('drop.test', 'evil.test') ORDER BY qname"
        ),
        ["||node-a", "0|malware|node-a"]
    );
}

/// A batch longer than one multi-row statement, with a remainder: every
/// event is one row with its own columns, in order.
fn every_event_of_a_large_batch_is_stored_as_it_was(fx: &Fx) {
    let mut s = fx.open();
    s.set_node("node-b");
    let actions = [
        EventAction::Resolved,
        EventAction::Blocked,
        EventAction::Dropped,
    ];
    let batch: Vec<PrivateEvent> = (0..150u64)
        .map(|i| {
            let mut e = event(
                5000 + i,
                &format!("n{i}.example.org"),
                actions[i as usize % 3],
            );
            e.qtype = 1 + (i % 40) as u16;
            e.client = ClientPseudonym([i as u8; 8]);
            e
        })
        .collect();
    assert_eq!(s.insert_events(&batch).unwrap(), 150);
    let expected: Vec<String> = batch
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let rcode = if i % 3 == 2 { "" } else { "0" };
            let feed = if i % 3 == 1 { "malware" } else { "" };
            format!(
                "{}|council-a|n{i}.example.org|{}|{rcode}|{}|{feed}|node-b|1|",
                (5000 + i) * 1000,
                e.qtype,
                e.action.as_str()
            )
        })
        .collect();
    assert_eq!(
        s.texts(
            "SELECT CAST(time AS TEXT), tenant, qname, CAST(qtype AS TEXT), CAST(rcode AS TEXT), action, feed, node,
                CAST(queries AS TEXT), CAST(last_time AS TEXT)
             FROM query_events ORDER BY time"
        ),
        expected
    );
    // each event's own client (150 distinct pseudonyms, one per row)
    assert_eq!(
        s.texts("SELECT CAST(COUNT(DISTINCT client) AS TEXT) FROM query_events"),
        ["150"]
    );
}

fn repeats_of_a_query_in_one_batch_are_one_row_that_counts_them(fx: &Fx) {
    let mut s = fx.open();
    let at = event_at_ms;
    let hour = 3_600_000;
    let mut other_client = at(7_000, "poll.example.org", EventAction::Resolved);
    other_client.client = ClientPseudonym([9; 8]);
    let batch = vec![
        at(7_000, "poll.example.org", EventAction::Resolved),
        at(7_200, "evil.test", EventAction::Blocked),
        at(6_900, "poll.example.org", EventAction::Resolved), // stamped earlier
        other_client,
        at(7_500, "poll.example.org", EventAction::Resolved),
        at(7_600, "evil.test", EventAction::Blocked),
        at(7_700, "poll.example.org", EventAction::Dropped), // another action
        // repeats in two hours: a row in each, counted in each hour
        at(hour - 100, "late.example.org", EventAction::Resolved),
        at(hour + 100, "late.example.org", EventAction::Resolved),
    ];
    assert_eq!(s.insert_events(&batch).unwrap(), 9);
    assert_eq!(
        s.texts(
            "SELECT qname || '|' || action || '|' || CAST(time AS TEXT) || '|' || COALESCE(CAST(last_time AS TEXT), '-')
                || '|' || CAST(queries AS TEXT) || '|' || CAST(LENGTH(client) AS TEXT)
             FROM query_events ORDER BY time, qname, action"
        ),
        [
            "poll.example.org|resolved|6900|7500|3|8",
            "poll.example.org|resolved|7000|-|1|8",
            "evil.test|blocked|7200|7600|2|8",
            "poll.example.org|dropped|7700|-|1|8",
            "late.example.org|resolved|3599900|-|1|8",
            "late.example.org|resolved|3600100|-|1|8",
        ]
    );
    assert_eq!(s.event_count().unwrap(), 9);
    // the hourly counts count every query, in the hour it arrived
    let _ = s.fold_aggregates().unwrap();
    assert_eq!(
        s.texts(
            "SELECT qname || '|' || CAST(hour AS TEXT) || '|' || action || '|' || CAST(SUM(queries) AS TEXT)
             FROM query_hourly_all GROUP BY qname, hour, action ORDER BY qname, hour, action"
        ),
        [
            "evil.test|0|blocked|2",
            "late.example.org|0|resolved|1",
            "late.example.org|3600|resolved|1",
            "poll.example.org|0|dropped|1",
            "poll.example.org|0|resolved|4",
        ]
    );
}

fn purge_removes_exactly_what_is_past_retention(fx: &Fx) {
    let mut s = fx.open();
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
    assert_eq!(purged.events, 3);
    assert_eq!(purged.aggregates, 1);
    assert_eq!(
        s.texts("SELECT qname FROM query_events ORDER BY time"),
        ["edge.test", "new.test"]
    );
    assert_eq!(s.purge(now, r).unwrap(), Purged::default());
}

fn reopening_migrates_once_and_a_newer_schema_is_refused(fx: &Fx) {
    drop(fx.open());
    let mut s = fx.open();
    // step numbers may have gaps while branches are merged: each applied
    // once, the newest the known one
    assert_eq!(
        s.texts("SELECT CAST(COUNT(*) - COUNT(DISTINCT version) AS TEXT) FROM schema_migrations"),
        ["0"]
    );
    assert_eq!(
        s.texts("SELECT CAST(MAX(version) AS TEXT) FROM schema_migrations"),
        [KNOWN_VERSION.to_string()]
    );
    s.exec("INSERT INTO schema_migrations VALUES (999, 0)");
    drop(s);
    let e = fx.try_open().err().expect("a newer schema is refused");
    assert!(matches!(e, StoreError::TooNew { found: 999, .. }), "{e}");
}

/// Takes the schema back to step 16: without steps 17 to 20 (the
/// allowlist, the per-tenant hourly totals, versioned KPI snapshots, now
/// step 5's table again, and officer commentary).
fn undo_steps_after_16(s: &mut dyn TestDb, fx: &Fx) {
    s.exec("DROP TABLE allowlist");
    if let Fx::Pg(_) = fx {
        s.exec("DROP VIEW query_tenant_hourly_all");
    }
    s.exec("DROP TABLE query_tenant_hourly");
    s.exec("DROP INDEX query_hourly_blocked");
    s.exec("DROP TABLE kpi_snapshots");
    s.exec(
        "CREATE TABLE kpi_snapshots (tenant TEXT NOT NULL, quarter TEXT NOT NULL,
         computed_at BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (tenant, quarter))",
    );
    s.exec("DROP TABLE report_commentary");
    s.exec("DELETE FROM schema_migrations WHERE version >= 17");
}

/// Schema step 9 (`queries`, `last_time`) on a database that already holds
/// events: the database is taken back to version 8 (the two columns and
/// the tables of steps 10 and 11 dropped, the steps' records removed), given rows as
/// version 8 wrote them, and reopened. Every old row reads as one query with no last time, and new
/// batches fold beside them.
fn a_version_8_database_with_events_upgrades_in_place(fx: &Fx) {
    let mut s = fx.open();
    undo_steps_after_16(&mut *s, fx);
    search::undo_step_16(&mut *s, fx);
    s.exec("ALTER TABLE query_events DROP COLUMN last_time");
    s.exec("ALTER TABLE query_events DROP COLUMN queries");
    // and the steps after 9
    s.exec("DROP TABLE applied_batches");
    s.exec("DROP TABLE notify_outbox");
    s.exec("DROP TABLE dmarc_senders");
    s.exec("DROP TABLE export_cursors");
    s.exec("DROP TABLE sealed_clients"); // step 15
    // step 14's account columns (SQLite rebuilds api_tokens in that step,
    // and cannot drop its key column)
    s.exec("ALTER TABLE users DROP COLUMN totp_secret");
    s.exec("ALTER TABLE users DROP COLUMN totp_last_step");
    s.exec("DROP INDEX api_tokens_user");
    s.exec("ALTER TABLE api_tokens DROP COLUMN last_used_at");
    if let Fx::Pg(_) = fx {
        s.exec("ALTER TABLE api_tokens DROP COLUMN id");
    }
    s.exec("INSERT INTO kpi_snapshots VALUES ('council-a', '2021-22-Q2', 7, '{}')");
    s.exec("DELETE FROM schema_migrations WHERE version >= 9");
    for (t, name) in [
        (1_000, "old-a.test"),
        (2_000, "old-b.test"),
        (2_500, "old-a.test"),
    ] {
        s.exec(&format!(
            "INSERT INTO query_events (time, tenant, client, qname, qtype, rcode, action, feed, node)
             VALUES ({t}, 'council-a', {client}, '{name}', 1, 0, 'resolved', NULL, 'n1')",
            client = match fx {
                Fx::Sqlite(_) => "x'0101010101010101'",
                Fx::Pg(_) => "decode('0101010101010101', 'hex')",
            }
        ));
    }
    drop(s);
    let mut s = fx.open();
    assert_eq!(s.schema_version().unwrap(), KNOWN_VERSION);
    // a quarter frozen before versions is version 1, in force
    let (v, body) = s.kpi_snapshot("council-a", "2021-22-Q2").unwrap().unwrap();
    assert_eq!((v.version, v.frozen_at, body.as_str()), (1, 7, "{}"));
    assert_eq!(
        s.texts(
            "SELECT qname || '|' || CAST(time AS TEXT) || '|' || CAST(queries AS TEXT) || '|'
                || COALESCE(CAST(last_time AS TEXT), '-')
             FROM query_events ORDER BY time"
        ),
        [
            "old-a.test|1000|1|-",
            "old-b.test|2000|1|-",
            "old-a.test|2500|1|-"
        ]
    );
    assert_eq!(s.event_count().unwrap(), 3);
    let repeat = |ms| event_at_ms(ms, "new.test", EventAction::Resolved);
    assert_eq!(s.insert_events(&[repeat(3_000), repeat(3_100)]).unwrap(), 2);
    assert_eq!(s.event_count().unwrap(), 5);
    assert_eq!(
        s.texts(
            "SELECT CAST(COUNT(*) AS TEXT) || '|' || CAST(SUM(queries) AS TEXT) FROM query_events"
        ),
        ["4|5"]
    );
    // the new row carries the columns step 9 added
    assert_eq!(
        s.texts(
            "SELECT CAST(time AS TEXT) || '|' || CAST(queries AS TEXT) || '|' || CAST(last_time AS TEXT)
             FROM query_events WHERE qname = 'new.test'"
        ),
        ["3000|2|3100"]
    );
}

fn concurrent_opens_migrate_once(fx: &Fx) {
    // several nodes starting at once: every one opens, the steps run once
    let opened: Vec<bool> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..4)
            .map(|_| sc.spawn(|| fx.try_open().map(drop).is_ok()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(opened, [true; 4]);
    // each step once (numbers may have gaps while branches are merged)
    assert_eq!(
        fx.open().texts(
            "SELECT CAST(COUNT(*) - COUNT(DISTINCT version) AS TEXT) || '|' || CAST(MAX(version) AS TEXT) FROM schema_migrations"
        ),
        [format!("0|{KNOWN_VERSION}")]
    );
}

fn signal(secs: u64, rule: &'static str, domain: &str, client: u8, feed: Option<&str>) -> Signal {
    Signal {
        time: UNIX_EPOCH + Duration::from_secs(secs),
        tenant: Arc::from("council-a"),
        rule,
        severity: Severity::High,
        domain: domain.into(),
        client: ClientPseudonym([client; 8]),
        feed: feed.map(Arc::from),
        reason: format!("{domain} is bad"),
        evidence: format!("www.{domain} A blocked #{client}"),
        folded: None,
    }
}

fn signals_fold_into_one_alert_per_tenant_rule_and_domain(fx: &Fx) {
    let mut s = fx.open();
    let touched = s
        .record_signals(&[
            signal(100, "feed.block", "evil.test", 1, Some("malware")),
            signal(50, "feed.block", "evil.test", 2, Some("phishing")),
            signal(200, "feed.block", "evil.test", 1, Some("malware")),
            signal(150, "dga", "evil.test", 1, None),
        ])
        .unwrap();
    // one alert per key, created in key order (dga < feed.block): nodes
    // lock alerts in the same order
    assert_eq!(touched, [(1, true), (2, true)]);
    let a = s.alert(2).unwrap();
    assert_eq!(a.rule, "feed.block");
    assert_eq!(
        (a.count, a.clients, a.first_seen, a.last_seen),
        (3, 2, 50_000, 200_000)
    );
    assert_eq!(a.feeds, ["malware", "phishing"]);
    assert_eq!(a.evidence.len(), 2);
    assert_eq!(a.status, AlertStatus::New);
    let all = s.list_alerts(&AlertFilter::default()).unwrap();
    assert_eq!(all.iter().map(|a| a.id).collect::<Vec<_>>(), [2, 1]);
    let dga = s
        .list_alerts(&AlertFilter {
            rule: Some("dga".into()),
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(dga.len(), 1);
    let limited = s
        .list_alerts(&AlertFilter {
            limit: Some(1),
            since: Some(150_000),
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(limited.iter().map(|a| a.id).collect::<Vec<_>>(), [2]);
    assert!(
        s.list_alerts(&AlertFilter {
            tenant: Some("council-b".into()),
            ..AlertFilter::default()
        })
        .unwrap()
        .is_empty()
    );
    // the overview's tally agrees with the list, by status and severity
    s.set_alert_status(
        1,
        AlertStatus::Investigating,
        "ana",
        "looking",
        SystemTime::now(),
    )
    .unwrap();
    let mut tally = s.alert_tally(None).unwrap();
    tally.sort_by(|a, b| (&a.status, &a.severity).cmp(&(&b.status, &b.severity)));
    let mut expected: Vec<AlertTally> = s
        .list_alerts(&AlertFilter::default())
        .unwrap()
        .iter()
        .map(|a| AlertTally {
            status: a.status.as_str().into(),
            severity: a.severity.as_str().into(),
            count: 1,
        })
        .collect();
    expected.sort_by(|a, b| (&a.status, &a.severity).cmp(&(&b.status, &b.severity)));
    assert_eq!(tally, expected);
    assert_eq!(s.alert_tally(Some("council-a")).unwrap().len(), 2);
    assert!(s.alert_tally(Some("council-b")).unwrap().is_empty());
}

/// Raised alerts (new, reopened) get an outbox row in the transaction that
/// raised them; routing fans a row out per target; delivered rows go, failed
/// ones count attempts and, once given up, stay listed with the alert.
fn raised_alerts_wait_in_the_outbox_until_delivered(fx: &Fx) {
    let mut s = fx.open();
    s.record_signals(&[
        signal(100, "feed.block", "evil.test", 1, None),
        signal(100, "dga", "x.test", 1, None),
    ])
    .unwrap();
    // a repeat of a raised alert is not raised again
    s.record_signals(&[signal(200, "feed.block", "evil.test", 2, None)])
        .unwrap();
    let pending = s.pending_notifications(10).unwrap();
    let mut alerts: Vec<i64> = pending.iter().map(|n| n.alert_id).collect();
    alerts.sort();
    assert_eq!(alerts, [1, 2]);
    assert!(
        pending
            .iter()
            .all(|n| n.target.is_none() && n.attempts == 0)
    );
    assert_eq!(s.pending_notifications(1).unwrap().len(), 1);

    // alert 2 goes to two targets, alert 1 to none (no route wants it)
    let (n1, n2) = match pending[0].alert_id {
        1 => (pending[0].id, pending[1].id),
        _ => (pending[1].id, pending[0].id),
    };
    s.route_notification(n2, &[("webhook a".into(), 5), ("email b".into(), 7)])
        .unwrap();
    s.route_notification(n1, &[]).unwrap();
    // routing twice (a second node) changes nothing
    s.route_notification(n2, &[("webhook a".into(), 5)])
        .unwrap();
    let routed = s.pending_notifications(10).unwrap();
    let targets: Vec<(&str, i64, i64)> = routed
        .iter()
        .map(|n| (n.target.as_deref().unwrap(), n.alert_id, n.next_at))
        .collect();
    assert_eq!(targets, [("webhook a", 2, 5), ("email b", 2, 7)]);

    s.notifications_failed(&[routed[0].id], "HTTP 503", 50, None)
        .unwrap();
    s.notifications_failed(&[routed[0].id], "refused", 90, None)
        .unwrap();
    s.notifications_delivered(&[routed[1].id]).unwrap();
    let c = s.outbox_counts().unwrap();
    assert_eq!((c.pending, c.retrying, c.failed), (1, 1, 0));
    let left = s.pending_notifications(10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(
        (
            left[0].attempts,
            left[0].next_at,
            left[0].last_error.as_deref()
        ),
        (2, 90, Some("refused"))
    );

    // given up: no longer pending, still listed with its alert
    s.notifications_failed(&[left[0].id], "refused", 90, Some(1_000))
        .unwrap();
    assert!(s.pending_notifications(10).unwrap().is_empty());
    let c = s.outbox_counts().unwrap();
    assert_eq!((c.pending, c.retrying, c.failed), (0, 0, 1));
    let shown = s.alert_notifications(2).unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!((shown[0].attempts, shown[0].failed_at), (3, Some(1_000)));
    assert!(s.alert_notifications(1).unwrap().is_empty());

    // a resolved alert that fires again is raised again
    s.set_alert_status(1, AlertStatus::Resolved, "alice", "fixed", UNIX_EPOCH)
        .unwrap();
    s.record_signals(&[signal(300, "dga", "x.test", 1, None)])
        .unwrap();
    let again = s.pending_notifications(10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].alert_id, again[0].target.as_deref()), (1, None));
}

fn status_workflow_with_who_when_why(fx: &Fx) {
    let mut s = fx.open();
    s.record_signals(&[signal(100, "feed.block", "evil.test", 1, None)])
        .unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    let a = s
        .set_alert_status(1, AlertStatus::Investigating, "alice", "looking", now)
        .unwrap();
    assert_eq!(a.status, AlertStatus::Investigating);
    let e = s
        .set_alert_status(1, AlertStatus::New, "alice", "", now)
        .unwrap_err();
    assert!(matches!(e, StoreError::BadTransition { .. }), "{e}");
    s.set_alert_status(1, AlertStatus::Resolved, "bob", "host reimaged", now)
        .unwrap();
    let touched = s
        .record_signals(&[signal(2000, "feed.block", "evil.test", 1, None)])
        .unwrap();
    assert_eq!(
        touched,
        [(1, true)],
        "a resolved alert that fires is raised again"
    );
    let a = s.alert(1).unwrap();
    assert_eq!(a.status, AlertStatus::New);
    let steps: Vec<_> = a.history.iter().map(|h| (h.to, h.by.as_str())).collect();
    assert_eq!(
        steps,
        [
            (AlertStatus::Investigating, "alice"),
            (AlertStatus::Resolved, "bob"),
            (AlertStatus::New, "parapet")
        ]
    );
    assert_eq!(a.history[1].note, "host reimaged");
    s.set_alert_status(1, AlertStatus::FalsePositive, "bob", "test host", now)
        .unwrap();
    s.record_signals(&[signal(3000, "feed.block", "evil.test", 1, None)])
        .unwrap();
    assert_eq!(s.alert(1).unwrap().status, AlertStatus::FalsePositive);
    assert!(matches!(s.alert(99), Err(StoreError::NoSuchAlert(99))));
    assert!(matches!(
        s.set_alert_status(99, AlertStatus::Resolved, "bob", "", now),
        Err(StoreError::NoSuchAlert(99))
    ));
}

fn seen_domains_survive_reopening(fx: &Fx) {
    let mut s = fx.open();
    let t: Arc<str> = Arc::from("council-a");
    let at = UNIX_EPOCH + Duration::from_secs(10);
    s.save_seen(
        &[(t.clone(), at)],
        &[
            (t.clone(), "example.org".into(), at),
            (t.clone(), "bbc.co.uk".into(), at),
        ],
    )
    .unwrap();
    s.save_seen(&[(t.clone(), UNIX_EPOCH + Duration::from_secs(99))], &[])
        .unwrap();
    drop(s);
    let mut s = fx.open();
    let seen = s.load_seen().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].since, 10_000);
    let mut d = seen[0].domains.clone();
    d.sort();
    assert_eq!(d, ["bbc.co.uk", "example.org"]);
}

fn record(ip: &str, count: u64, dkim: bool, spf: bool, disposition: &str) -> crate::DmarcRecordRow {
    crate::DmarcRecordRow {
        source_ip: ip.into(),
        count,
        disposition: disposition.into(),
        dkim_aligned: dkim,
        spf_aligned: spf,
        header_from: "example.gov.uk".into(),
        envelope_from: None,
        dkim: String::new(),
        spf: String::new(),
    }
}

fn dmarc_senders_are_kept_and_group_the_summary(fx: &Fx) {
    let mut s = fx.open();
    let report = DmarcReportRow {
        org_name: "google.com".into(),
        report_id: "1".into(),
        domain: "example.gov.uk".into(),
        begin: 100,
        end: 200,
        policy: "reject".into(),
        source: "r.xml".into(),
        records: vec![
            record("192.0.2.1", 10, true, true, "none"),
            record("192.0.2.2", 4, true, false, "none"),
            record("198.51.100.9", 60, false, false, "reject"),
            record("198.51.100.10", 7, false, false, "reject"),
        ],
    };
    s.import_dmarc(&report, SystemTime::now()).unwrap();
    let m365 = |ip: &str| DmarcSenderRow {
        source_ip: ip.into(),
        ptr: Some(format!("{ip}.outbound.protection.outlook.com")),
        confirmed: true,
        base_domain: Some("outlook.com".into()),
        service: Some("Microsoft 365".into()),
        service_type: Some("mailbox".into()),
        checked_at: 1_000,
    };
    let spoof = DmarcSenderRow {
        source_ip: "198.51.100.9".into(),
        ptr: Some("mail.google.com".into()),
        confirmed: false,
        base_domain: Some("google.com".into()),
        checked_at: 1_000,
        ..DmarcSenderRow::default()
    };
    s.save_dmarc_senders(&[m365("192.0.2.1"), spoof.clone()])
        .unwrap();
    // saving again replaces
    let mut second = m365("192.0.2.2");
    second.checked_at = 5;
    s.save_dmarc_senders(&[second.clone()]).unwrap();
    second.checked_at = 2_000;
    s.save_dmarc_senders(&[second.clone()]).unwrap();
    let got = s
        .dmarc_senders(&["192.0.2.2".into(), "203.0.113.1".into()])
        .unwrap();
    assert_eq!(got, [second]);

    let sum = s.dmarc_summary("example.gov.uk").unwrap();
    let groups = sum.by_service();
    let names: Vec<(&str, u64, usize)> = groups
        .iter()
        .map(|g| (g.name.as_str(), g.messages, g.sources.len()))
        .collect();
    assert_eq!(
        names,
        [("Microsoft 365", 14, 2), (crate::UNIDENTIFIED, 67, 2)]
    );
    assert_eq!(groups[0].service_type.as_deref(), Some("mailbox"));
    // unidentified sources stay in volume order, the unconfirmed PTR kept
    let unknown = &groups[1].sources;
    assert_eq!(unknown[0].sender.as_ref(), Some(&spoof));
    assert!(unknown[0].unknown_sender(50));
    assert!(!unknown[1].unknown_sender(50), "7 failures is under 50");
    assert!(!groups[0].sources[0].unknown_sender(0), "a known service");
}

fn dmarc_reports_deduplicate_and_summarise(fx: &Fx) {
    let mut s = fx.open();
    let report = |id: &str, records| DmarcReportRow {
        org_name: "google.com".into(),
        report_id: id.into(),
        domain: "example.gov.uk".into(),
        begin: 100,
        end: 200,
        policy: "reject".into(),
        source: "r.xml".into(),
        records,
    };
    let now = SystemTime::now();
    let a = report(
        "1",
        vec![
            record("192.0.2.1", 10, true, true, "none"),
            record("198.51.100.9", 3, false, false, "reject"),
        ],
    );
    assert_eq!(s.import_dmarc(&a, now).unwrap(), Imported::New);
    assert_eq!(s.import_dmarc(&a, now).unwrap(), Imported::Duplicate);
    let b = report("2", vec![record("192.0.2.1", 5, false, true, "none")]);
    assert_eq!(s.import_dmarc(&b, now).unwrap(), Imported::New);
    let mut signed = record("192.0.2.7", 1, true, true, "none");
    signed.dkim = "example.gov.uk/sel2=pass other.example/x=fail example.gov.uk/sel1=pass".into();
    s.import_dmarc(&report("3", vec![signed]), now).unwrap();
    assert_eq!(
        s.dkim_selectors("example.gov.uk").unwrap(),
        ["sel1", "sel2"]
    );
    let sum = s.dmarc_summary("example.gov.uk").unwrap();
    assert_eq!(
        (sum.reports, sum.messages, sum.dmarc_pass, sum.dkim_aligned),
        (3, 19, 16, 11)
    );
    assert_eq!((sum.first, sum.last), (Some(100), Some(200)));
    let day = |day, messages, dmarc_pass| DmarcDay {
        day,
        messages,
        dmarc_pass,
    };
    let late = report("4", vec![record("192.0.2.1", 4, true, false, "none")]);
    s.import_dmarc(
        &DmarcReportRow {
            begin: 2 * 86_400 + 5,
            end: 3 * 86_400,
            ..late
        },
        now,
    )
    .unwrap();
    assert_eq!(
        s.dmarc_daily("example.gov.uk").unwrap(),
        [day(0, 19, 16), day(2 * 86_400, 4, 4)]
    );
    assert_eq!(sum.sources[0].source_ip, "192.0.2.1");
    assert_eq!(sum.sources[1].rejected, 3);
    assert_eq!(sum.sources[1].dmarc_pass, 0);
    // not identified yet: every source is unidentified
    assert!(sum.sources.iter().all(|x| x.sender.is_none()));
    let tls = TlsReportRow {
        org_name: "google.com".into(),
        report_id: "t1".into(),
        begin: 0,
        end: 1,
        source: "t.json".into(),
        results: vec![crate::TlsResultRow {
            policy_type: "sts".into(),
            policy_domain: "example.gov.uk".into(),
            successful: 5,
            failed: 1,
            failures: "certificate-expired 192.0.2.1 mx.example.gov.uk 1".into(),
        }],
    };
    assert_eq!(s.import_tlsrpt(&tls, now).unwrap(), Imported::New);
    assert_eq!(s.import_tlsrpt(&tls, now).unwrap(), Imported::Duplicate);
}

fn mailcheck_results_report_what_changed(fx: &Fx) {
    let mut s = fx.open();
    let f = |code: &str, sev: &str| MailFinding {
        severity: sev.into(),
        code: code.into(),
        message: format!("{code} explained"),
    };
    let row = |at: i64, findings: Vec<MailFinding>| MailCheckRow {
        domain: "example.gov.uk".into(),
        checked_at: at,
        worst: findings.first().map(|f| f.severity.clone()),
        findings,
        report: "{}".into(),
    };
    let d = s
        .save_mailcheck(&row(
            1,
            vec![
                f("spf.all_pass", "error"),
                f("dmarc.policy_none", "warning"),
            ],
        ))
        .unwrap();
    assert_eq!(d, MailCheckDiff::default());
    let d = s
        .save_mailcheck(&row(
            2000,
            vec![
                f("dmarc.policy_none", "warning"),
                f("tls.cert_expiring", "warning"),
            ],
        ))
        .unwrap();
    assert_eq!(d.previous_at, Some(1));
    assert_eq!(d.new, [f("tls.cert_expiring", "warning")]);
    assert_eq!(d.fixed, [f("spf.all_pass", "error")]);
    let d = s
        .save_mailcheck(&row(
            3000,
            vec![
                f("dmarc.policy_none", "warning"),
                f("tls.cert_expiring", "warning"),
            ],
        ))
        .unwrap();
    assert!(d.new.is_empty() && d.fixed.is_empty());
    assert_eq!(
        s.mailcheck_latest(2).unwrap(),
        [(
            "example.gov.uk".to_string(),
            2,
            Some("warning".to_string()),
            vec![
                ("warning".to_string(), "dmarc.policy_none".to_string()),
                ("warning".to_string(), "tls.cert_expiring".to_string())
            ]
        )]
    );
}

fn sample_import() -> AssetImport {
    AssetImport {
        tenant: "north".into(),
        source: "nessus".into(),
        path: "scan.nessus".into(),
        sha256: "ab".repeat(32),
        as_of: 1_625_000_000,
        assets: vec![
            AssetObs {
                locator: "ReportHost 1".into(),
                hostname: Some("srv01".into()),
                ips: vec!["10.0.0.5".into(), "fe80::1".into()],
                macs: vec!["00:50:56:81:01:e3".into()],
                av: Some(AvObs {
                    installed: true,
                    active: Some(false),
                    mode: Some("Passive".into()),
                    ..AvObs::default()
                }),
                scan: Some(ScanObs {
                    at: 1_625_000_000,
                    credentialed: true,
                }),
                ..AssetObs::default()
            },
            AssetObs {
                locator: "ReportHost 2".into(),
                hostname: Some("ws02".into()),
                ..AssetObs::default()
            },
        ],
        vulns: vec![VulnDef {
            key: "nessus:19506".into(),
            title: "Nessus Scan Information".into(),
            score: Some(7.5),
            cves: vec!["CVE-2021-1".into()],
            fix_available: true,
            fix_released: Some(1_600_000_000),
            ..VulnDef::default()
        }],
        findings: vec![
            FindingObs {
                asset: 1,
                vuln: 0,
                port: "445/tcp".into(),
            },
            FindingObs {
                asset: 0,
                vuln: 0,
                port: "443/tcp".into(),
            },
        ],
    }
}

fn imports_round_trip_and_deduplicate_by_content(fx: &Fx) {
    let mut s = fx.open();
    let imp = sample_import();
    let AssetImported::New(id) = s.import_assets(&imp, 5).unwrap() else {
        panic!("first import must be new")
    };
    assert_eq!(
        s.import_assets(&imp, 6).unwrap(),
        AssetImported::Duplicate(id)
    );
    assert_eq!(s.load_import(id).unwrap(), imp);
    let metas = s.asset_imports("north", 1_625_000_000).unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!((metas[0].assets, metas[0].findings), (2, 2));
    assert!(s.asset_imports("north", 1_624_999_999).unwrap().is_empty());
    assert!(s.asset_imports("south", i64::MAX).unwrap().is_empty());
    assert!(matches!(
        s.load_import(id + 100),
        Err(StoreError::NoSuchImport(_))
    ));
}

fn a_bad_row_stores_nothing_of_its_import(fx: &Fx) {
    let mut s = fx.open();
    let mut imp = sample_import();
    // a NUL byte cannot be stored in a PostgreSQL text column; SQLite
    // takes it, so there a trigger refuses the second asset row instead
    imp.assets[1].locator = "line 2\0".into();
    let first = s.import_assets(&imp, 5);
    if first.is_ok() {
        // SQLite accepts NUL bytes: make the second asset row fail instead
        s.exec(
            "CREATE TRIGGER no_ws02 BEFORE INSERT ON asset_obs WHEN NEW.hostname = 'ws02'
             BEGIN SELECT RAISE(ABORT, 'refused'); END",
        );
        imp.sha256 = "cd".repeat(32);
        assert!(s.import_assets(&imp, 6).is_err());
        assert_eq!(
            s.texts("SELECT CAST(COUNT(*) AS TEXT) FROM asset_imports"),
            ["1"]
        );
        return;
    }
    assert_eq!(
        s.texts("SELECT CAST(COUNT(*) AS TEXT) FROM asset_imports"),
        ["0"]
    );
    assert_eq!(
        s.texts("SELECT CAST(COUNT(*) AS TEXT) FROM asset_obs"),
        ["0"]
    );
}

fn incidents_exceptions_and_frozen_snapshots(fx: &Fx) {
    let mut s = fx.open();
    let inc = Incident {
        tenant: "north".into(),
        reference: "INC-1".into(),
        detected_at: 100,
        category: "phishing".into(),
        outcome: "successful".into(),
        status: "open".into(),
        ..Incident::default()
    };
    let id = s.add_incident(&inc, 200).unwrap();
    assert!(matches!(
        s.add_incident(&inc, 201),
        Err(StoreError::DuplicateIncident(_))
    ));
    let closed = s.close_incident(id, 300).unwrap();
    assert_eq!(
        (closed.status.as_str(), closed.closed_at),
        ("closed", Some(300))
    );
    assert_eq!(closed.outcome, "successful");
    assert!(matches!(
        s.close_incident(99, 1),
        Err(StoreError::NoSuchIncident(99))
    ));
    assert_eq!(s.incidents(Some("south")).unwrap().len(), 0);
    assert_eq!(s.incidents(None).unwrap().len(), 1);

    let e = AssetException {
        tenant: "north".into(),
        asset: "srv01".into(),
        scope: "patching".into(),
        kind: "risk-accepted".into(),
        expires_at: 1000,
        ..AssetException::default()
    };
    let eid = s.add_exception(&e, 10).unwrap();
    let got = s.exceptions("north").unwrap();
    assert_eq!((got[0].id, got[0].created_at), (eid, 10));

    // versioned freezing: one version in force; a reopened one is kept
    let q = "2021-22-Q2";
    assert_eq!(s.reopen_kpi("north", q, 1, "admin", "why").unwrap(), None);
    assert_eq!(
        s.freeze_kpi("north", q, 1, "clerk", "{\"a\":1}").unwrap(),
        Some(1)
    );
    assert_eq!(
        s.freeze_kpi("north", q, 2, "clerk", "{\"a\":2}").unwrap(),
        None
    );
    let (v, body) = s.kpi_snapshot("north", q).unwrap().unwrap();
    assert_eq!(
        (v.version, v.frozen_at, v.frozen_by.as_str()),
        (1, 1, "clerk")
    );
    assert_eq!(body, "{\"a\":1}");
    assert_eq!(
        s.reopen_kpi("north", q, 5, "admin", "late export").unwrap(),
        Some(1)
    );
    assert_eq!(s.kpi_snapshot("north", q).unwrap(), None);
    assert_eq!(
        s.freeze_kpi("north", q, 6, "clerk", "{\"a\":2}").unwrap(),
        Some(2)
    );
    let versions = s.kpi_versions("north", q).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(
        (
            versions[0].reopened_at,
            versions[0].reopened_by.as_deref(),
            versions[0].reopen_reason.as_deref()
        ),
        (Some(5), Some("admin"), Some("late export"))
    );
    assert_eq!(versions[1].reopened_at, None);
    assert_eq!(s.kpi_snapshot("north", q).unwrap().unwrap().1, "{\"a\":2}");
    assert_eq!(
        s.kpi_snapshot_version("north", q, 1).unwrap().unwrap().1,
        "{\"a\":1}"
    );
    assert_eq!(s.kpi_snapshot_version("north", q, 3).unwrap(), None);
    assert!(s.kpi_versions("south", q).unwrap().is_empty());
    assert!(!s.detection_covered("council-a", 0, 10_000).unwrap());
    s.insert_events(&[
        event(7200, "a.test", EventAction::Resolved),
        event(7300, "b.test", EventAction::Blocked),
    ])
    .unwrap();
    assert_eq!(s.pdns_totals("council-a", 0, 10_000).unwrap(), (2, 1));
    assert_eq!(s.pdns_totals("council-a", 7201, 10_000).unwrap(), (0, 0));
    assert!(s.detection_covered("council-a", 0, 10_000).unwrap());
    assert!(!s.detection_covered("council-a", 7201, 10_000).unwrap());
}

fn two_nodes_fold_the_same_domain_into_one_alert(fx: &Fx) {
    // two connections, as two nodes, record signals about the same domain
    // at the same moment, many times over
    let rounds = 20;
    std::thread::scope(|sc| {
        for (node, client) in [("node-a", 1u8), ("node-b", 2u8)] {
            sc.spawn(move || {
                let mut s = fx.open();
                s.set_node(node);
                for i in 0..rounds {
                    let sigs = [
                        signal(100 + i, "feed.block", "evil.test", client, Some("malware")),
                        signal(100 + i, "dga", &format!("d{i}.test"), client, None),
                    ];
                    s.record_signals(&sigs).unwrap();
                }
            });
        }
    });
    let mut s = fx.open();
    let alerts = s
        .list_alerts(&AlertFilter {
            rule: Some("feed.block".into()),
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(alerts.len(), 1, "one alert, not one per node");
    let a = &alerts[0];
    assert_eq!((a.count, a.clients), (2 * rounds, 2));
    let mut nodes = a.nodes.clone();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);
    let dga = s
        .list_alerts(&AlertFilter {
            rule: Some("dga".into()),
            ..AlertFilter::default()
        })
        .unwrap();
    assert_eq!(dga.len(), rounds as usize);
    assert!(dga.iter().all(|a| a.count == 2));
}

fn a_lease_runs_a_job_on_one_node_until_it_expires(fx: &Fx) {
    let mut a = fx.open();
    a.set_node("node-a");
    let mut b = fx.open();
    b.set_node("node-b");
    let t0 = UNIX_EPOCH + Duration::from_secs(1_000_000);
    let ttl = Duration::from_secs(3600);
    assert!(a.try_lease("retention", t0, ttl).unwrap());
    assert!(!b.try_lease("retention", t0, ttl).unwrap());
    // the holder renews; the other still waits
    let t1 = t0 + Duration::from_secs(1800);
    assert!(a.try_lease("retention", t1, ttl).unwrap());
    assert!(!b.try_lease("retention", t1 + ttl / 2, ttl).unwrap());
    // another job is independent
    assert!(b.try_lease("mailcheck", t1, ttl).unwrap());
    // the holder dies: once the lease expires another node takes over
    let t2 = t1 + ttl;
    assert!(b.try_lease("retention", t2, ttl).unwrap());
    assert!(!a.try_lease("retention", t2, ttl).unwrap());
}

fn feeds_published_once_reach_every_node(fx: &Fx) {
    let mut a = fx.open();
    a.set_node("node-a");
    let mut b = fx.open();
    b.set_node("node-b");
    assert_eq!(b.feed_version("threats").unwrap(), None);
    let t = UNIX_EPOCH + Duration::from_secs(100);
    let v1 = a.publish_feed("threats", b"evil.test\n", t).unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(v1.sha256, crate::sha256_hex(b"evil.test\n"));
    // the same bytes again change nothing
    assert_eq!(a.publish_feed("threats", b"evil.test\n", t).unwrap(), v1);
    let v2 = a
        .publish_feed("threats", b"evil.test\nworse.test\n", t)
        .unwrap();
    assert_eq!(v2.version, 2);
    let (v, bytes) = b.load_feed("threats").unwrap().unwrap();
    assert_eq!((v, bytes.as_slice()), (v2, &b"evil.test\nworse.test\n"[..]));
    b.heartbeat(5, t, "threats=2").unwrap();
    a.heartbeat(6, t, "threats=1").unwrap();
    let nodes = a.nodes().unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n| (n.name.as_str(), n.feeds.as_str()))
            .collect::<Vec<_>>(),
        [("node-a", "threats=1"), ("node-b", "threats=2")]
    );
}

#[test]
fn pg_a_closed_connection_is_opened_again() {
    // a database restart or fail-over closes every node's connection: the
    // next call reconnects instead of failing for as long as the node runs
    let url = crate::pgtest::fresh_database();
    let mut s = PgStore::open(&url).unwrap();
    s.insert_events(&[event(7200, "a.test", EventAction::Resolved)])
        .unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let killed = admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert_eq!(killed, 1);
    s.insert_events(&[event(7300, "b.test", EventAction::Resolved)])
        .unwrap();
    assert_eq!(s.event_count().unwrap(), 2);
}

fn users_sessions_tokens_and_audit(fx: &Fx) {
    let mut s = fx.open();
    let id = s
        .add_user("ann", Role::Council, Some("north"), "$argon2id$x", 10)
        .unwrap();
    assert!(matches!(
        s.add_user("ann", Role::SupplierAdmin, None, "h", 10),
        Err(StoreError::DuplicateUser(_))
    ));
    let u = s.user("ann").unwrap().unwrap();
    assert_eq!(
        (u.role, u.tenant.as_deref()),
        (Role::Council, Some("north"))
    );
    s.create_session("abc", id, "csrf1", 100, 200).unwrap();
    assert_eq!(s.session("abc", 150).unwrap().unwrap().csrf, "csrf1");
    assert!(s.session("abc", 200).unwrap().is_none(), "expired");
    s.delete_session("abc").unwrap();
    assert!(s.session("abc", 150).unwrap().is_none());
    s.add_api_token(id, "tok", 100).unwrap();
    s.add_api_token(id, "tok2", 110).unwrap();
    let (u, t) = s.api_token_user("tok").unwrap().unwrap();
    assert_eq!(
        (u.name.as_str(), t.created_at, t.last_used_at),
        ("ann", 100, None)
    );
    assert!(s.api_token_user("other").unwrap().is_none());
    s.touch_api_token(t.id, 150).unwrap();
    let listed = s.api_tokens(id).unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|t| (t.created_at, t.last_used_at))
            .collect::<Vec<_>>(),
        [(100, Some(150)), (110, None)]
    );
    assert_eq!(s.revoke_api_token(t.id).unwrap().unwrap().name, "ann");
    assert!(
        s.api_token_user("tok").unwrap().is_none(),
        "revoked at once"
    );
    assert!(s.revoke_api_token(t.id).unwrap().is_none());

    // TOTP: a secret, and each time step claimed once, in order
    assert_eq!(u.totp_secret, None);
    assert!(s.set_totp("ann", Some("00ff")).unwrap());
    assert!(!s.set_totp("nobody", Some("00ff")).unwrap());
    assert_eq!(
        s.user("ann").unwrap().unwrap().totp_secret.as_deref(),
        Some("00ff")
    );
    assert!(s.claim_totp_step(id, 1000).unwrap());
    assert!(!s.claim_totp_step(id, 1000).unwrap(), "replayed");
    assert!(!s.claim_totp_step(id, 999).unwrap(), "older");
    assert!(s.claim_totp_step(id, 1001).unwrap());

    // a session ends with end_sessions, and everything with the account
    s.create_session("s1", id, "c", 100, 200).unwrap();
    s.end_sessions(id).unwrap();
    assert!(s.session("s1", 150).unwrap().is_none());
    s.create_session("s2", id, "c", 100, 200).unwrap();
    assert!(s.remove_user("ann").unwrap());
    assert!(!s.remove_user("ann").unwrap());
    assert!(s.session("s2", 150).unwrap().is_none());
    assert!(s.api_token_user("tok2").unwrap().is_none());
    assert!(s.user("ann").unwrap().is_none());
    for (t, tenant) in [(1, Some("north")), (2, None), (3, Some("south"))] {
        s.audit(&AuditEntry {
            time: t,
            actor: "ann".into(),
            action: "login.ok".into(),
            tenant: tenant.map(str::to_string),
            detail: String::new(),
            client: None,
        })
        .unwrap();
    }
    assert_eq!(s.audit_log(None, 10).unwrap().len(), 3);
    let north = s.audit_log(Some("north"), 10).unwrap();
    assert_eq!(north.len(), 1);
    assert_eq!(north[0].time, 1);
}

fn traffic_per_tenant_and_hour(fx: &Fx) {
    let mut s = fx.open();
    let ev = |secs: u64, tenant: &str, name: &str, action| PrivateEvent {
        time: UNIX_EPOCH + Duration::from_secs(secs),
        tenant: tenant.into(),
        client: ClientPseudonym([1; 8]),
        qname: EventName::new(&text_to_key(name).unwrap()),
        qtype: 1,
        rcode: 0,
        action,
        feed: None,
    };
    s.insert_events(&[
        ev(7200, "north", "bad.example", EventAction::Blocked),
        ev(7201, "north", "bad.example", EventAction::Blocked),
        ev(7300, "north", "ok.example", EventAction::Resolved),
        ev(10800, "south", "evil.example", EventAction::Blocked),
    ])
    .unwrap();
    let all = s.traffic_totals(None, 0).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].queries, all[0].blocked), (3, 2));
    let south = s.traffic_totals(Some("south"), 0).unwrap();
    assert_eq!(south.len(), 1);
    assert_eq!(south[0].tenant, "south");
    let hourly = s.hourly_traffic(None, 0).unwrap();
    assert_eq!(
        hourly
            .iter()
            .map(|h| (h.hour, h.queries))
            .collect::<Vec<_>>(),
        [(7200, 3), (10800, 1)]
    );
    let top = s.top_blocked(Some("north"), 0, 5).unwrap();
    assert_eq!(top, [("north".into(), "bad.example".into(), 2)]);
}

/// The store holds pseudonyms, alerts and the pseudonym key: its folder is
/// 0700 and the database with its -wal and -shm files 0600, also when an
/// older version left them readable by everyone.
#[cfg(unix)]
#[test]
fn store_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("parapet-data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    {
        let mut db = SqliteStore::open(&dir).unwrap();
        db.insert_events(&[event(1, "a.test", EventAction::Resolved)])
            .unwrap();
        assert_eq!(mode(&dir), 0o700);
        for f in ["parapet.sqlite", "parapet.sqlite-wal", "parapet.sqlite-shm"] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
    }
    // closing the last connection removed the -wal file: leave an empty one,
    // as a crash would
    std::fs::write(dir.join("parapet.sqlite-wal"), b"").unwrap();
    for p in [
        &dir,
        &dir.join("parapet.sqlite"),
        &dir.join("parapet.sqlite-wal"),
    ] {
        let open = if p == &dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(open)).unwrap();
    }
    let _db = SqliteStore::open(&dir).unwrap();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("parapet.sqlite")), 0o600);
    assert_eq!(mode(&dir.join("parapet.sqlite-wal")), 0o600);
}

/// A destination's cursor starts at the newest alert and event, is
/// stored per name, and the reads after it return rows by id, bounded,
/// the policy actions alone when asked, with the client as its pseudonym.
fn export_cursors_start_at_the_newest_and_read_by_id(fx: &Fx) {
    let mut s = fx.open();
    s.record_signals(&[signal(1, "feed.block", "old.test", 1, None)])
        .unwrap();
    s.insert_events(&[event(1, "old.test", EventAction::Blocked)])
        .unwrap();
    let start = s.export_cursor("siem").unwrap();
    assert_eq!(start, s.max_ids().unwrap(), "starts at the newest");
    assert!(start.alerts > 0 && start.events > 0);
    s.record_signals(&[
        signal(2, "feed.block", "a.test", 1, None),
        signal(2, "feed.block", "b.test", 1, None),
    ])
    .unwrap();
    s.insert_events(&[
        event(2, "x.test", EventAction::Resolved),
        event(2, "y.test", EventAction::Blocked),
        event(2, "z.test", EventAction::Nodata),
    ])
    .unwrap();
    let top = s.max_ids().unwrap();
    let alerts = s.alerts_after(start.alerts, top.alerts, 10).unwrap();
    let domains: Vec<&str> = alerts.iter().map(|a| a.domain.as_str()).collect();
    assert_eq!(domains, ["a.test", "b.test"]);
    assert_eq!(
        s.alerts_after(start.alerts, top.alerts, 1).unwrap().len(),
        1
    );
    let all = s.events_after(start.events, top.events, false, 10).unwrap();
    let names: Vec<&str> = all.iter().map(|e| e.qname.as_str()).collect();
    assert_eq!(names, ["x.test", "y.test", "z.test"]);
    assert_eq!(all[1].client, "0707070707070707");
    assert_eq!(all[1].feed.as_deref(), Some("malware"));
    let blocked = s.events_after(start.events, top.events, true, 10).unwrap();
    let names: Vec<&str> = blocked.iter().map(|e| e.qname.as_str()).collect();
    assert_eq!(names, ["y.test", "z.test"]);
    assert!(
        s.events_after(start.events, all[0].id, true, 10)
            .unwrap()
            .is_empty()
    );

    s.set_export_cursor("siem", top).unwrap();
    let mut again = fx.open();
    assert_eq!(again.export_cursor("siem").unwrap(), top, "kept");
    let counts = again.alert_counts().unwrap();
    assert_eq!(
        counts,
        [("council-a".into(), "feed.block".into(), "new".into(), 3)]
    );
}

/// A batch's sealed clients are written once per batch id (a replay adds
/// nothing), read back per distinct blob with their times, and purged
/// with the events; a reveal also reads the client's activity under the
/// alert's domain and the pseudonyms behind the alert.
fn sealed_clients_are_kept_once_per_batch_and_read_back_for_a_reveal(fx: &Fx) {
    use crate::{BatchId, SealedClient};
    let mut s = fx.open();
    s.set_node("node-a");
    let sealed = |client: u8, first: i64, blob: u8| SealedClient {
        tenant: Arc::from("council-a"),
        client: ClientPseudonym([client; 8]),
        first,
        last: first + 500,
        sealed: vec![blob; 66],
    };
    let id = BatchId { run: 1, seq: 1 };
    let batch = [sealed(7, 7_200_000, 1), sealed(8, 7_200_100, 2)];
    assert_eq!(s.insert_sealed(id, &batch).unwrap(), 2);
    assert_eq!(s.insert_sealed(id, &batch).unwrap(), 0);
    // the same blob in a later batch is one distinct blob, spanning both
    let later = BatchId { run: 1, seq: 2 };
    assert_eq!(
        s.insert_sealed(later, &[sealed(7, 7_300_000, 1)]).unwrap(),
        1
    );
    let got = s
        .sealed_for(Some("council-a"), ClientPseudonym([7; 8]), 10)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].first, got[0].last), (7_200_000, 7_300_500));
    assert_eq!(got[0].sealed, vec![1; 66]);
    assert!(
        s.sealed_for(Some("council-b"), ClientPseudonym([7; 8]), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.sealed_for(None, ClientPseudonym([8; 8]), 10)
            .unwrap()
            .len(),
        1
    );

    // activity: every name, or the alert's domain and the names under it
    s.insert_events(&[
        event(7200, "www.evil.test", EventAction::Blocked),
        event(7201, "www.evil.test", EventAction::Blocked),
        event(7300, "evil.test", EventAction::Blocked),
        event(7400, "notevil.test", EventAction::Resolved),
    ])
    .unwrap();
    let all = s
        .client_activity("council-a", ClientPseudonym([7; 8]), None, 10)
        .unwrap()
        .unwrap();
    assert_eq!(
        (all.first, all.last, all.queries),
        (7_200_000, 7_400_000, 4)
    );
    let evil = s
        .client_activity("council-a", ClientPseudonym([7; 8]), Some("evil.test"), 10)
        .unwrap()
        .unwrap();
    assert_eq!(evil.queries, 3);
    assert_eq!(
        evil.names,
        [
            ("www.evil.test".to_string(), 2),
            ("evil.test".to_string(), 1)
        ]
    );
    assert!(
        s.client_activity("council-a", ClientPseudonym([9; 8]), None, 10)
            .unwrap()
            .is_none()
    );

    // the pseudonyms behind an alert, bounded
    s.record_signals(&[
        signal(100, "feed.block", "evil.test", 3, Some("malware")),
        signal(101, "feed.block", "evil.test", 1, Some("malware")),
        signal(102, "feed.block", "evil.test", 2, Some("malware")),
    ])
    .unwrap();
    assert_eq!(
        s.alert_pseudonyms(1, 2).unwrap(),
        [ClientPseudonym([1; 8]), ClientPseudonym([2; 8])]
    );

    // retention takes them with the events
    let now = UNIX_EPOCH + Duration::from_secs(7_250 + 86_400);
    s.purge(
        now,
        Retention {
            events_days: 1,
            aggregates_days: 400,
        },
    )
    .unwrap();
    let left = s.sealed_for(None, ClientPseudonym([7; 8]), 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].first, 7_300_000);
    assert!(
        s.sealed_for(None, ClientPseudonym([8; 8]), 10)
            .unwrap()
            .is_empty()
    );
}

mod search;
mod workbench;
