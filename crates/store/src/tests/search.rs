//! Query search ([`EventStore::search_events`]) on both backends: every
//! filter within a tenant, paging, the upgrade of a database that holds
//! events, and (PostgreSQL) retention by whole day partitions.

use super::*;
use crate::{EventQuery, NameMatch, StoredEvent};

on_both_backends!(
    every_filter_finds_only_its_rows_and_only_in_the_tenant_asked,
    pages_are_newest_first_and_stable,
    a_domain_with_many_rows_pages_like_one_with_few,
    a_version_16_database_with_events_upgrades_and_is_searchable,
);

#[test]
fn pg_retention_drops_whole_day_partitions() {
    retention_drops_whole_day_partitions(&crate::pgtest::fresh_database());
}

/// One event of `tenant` from client `c` at `secs` past the epoch.
fn ev(tenant: &str, c: u8, secs: u64, name: &str, action: EventAction) -> PrivateEvent {
    PrivateEvent {
        tenant: Arc::from(tenant),
        client: ClientPseudonym([c; 8]),
        ..event(secs, name, action)
    }
}

/// What a search finds, as `tenant|name|client's first byte` lines.
fn found(s: &mut dyn TestDb, q: &EventQuery) -> Vec<String> {
    s.search_events(&EventQuery {
        limit: 100,
        ..q.clone()
    })
    .unwrap()
    .iter()
    .map(|e: &StoredEvent| format!("{}|{}|{}", e.tenant, e.qname, &e.client[..2]))
    .collect()
}

/// Both tenants hold the same names, clients and actions; each filter,
/// asked for one tenant, finds exactly that tenant's matching rows, and
/// asked for every tenant finds both tenants' (newest first).
fn every_filter_finds_only_its_rows_and_only_in_the_tenant_asked(fx: &Fx) {
    let mut s = fx.open();
    let mut batch = Vec::new();
    for (i, t) in ["north", "south"].iter().enumerate() {
        let o = i as u64; // south's rows one second after north's
        batch.extend([
            ev(t, 1, 1000 + o, "www.example.org", EventAction::Resolved),
            ev(t, 2, 2000 + o, "example.org", EventAction::Resolved),
            ev(t, 1, 3000 + o, "bad-example.org", EventAction::Blocked),
            ev(
                t,
                2,
                4000 + o,
                "deep.cdn.example.org",
                EventAction::Resolved,
            ),
            ev(t, 1, 5000 + o, "evil.test", EventAction::Blocked),
        ]);
    }
    s.insert_events(&batch).unwrap();
    let q = |f: &dyn Fn(&mut EventQuery)| {
        let mut q = EventQuery::default();
        f(&mut q);
        q
    };
    let cases: Vec<(EventQuery, Vec<&str>)> = vec![
        (
            q(&|q| q.name = Some("WWW.Example.org.".into())),
            vec!["www.example.org|01"],
        ),
        (
            q(&|q| {
                q.name = Some("example.org".into());
                q.name_match = NameMatch::Suffix;
            }),
            vec![
                "deep.cdn.example.org|02",
                "example.org|02",
                "www.example.org|01",
            ],
        ),
        (
            q(&|q| q.domain = Some("cdn.example.org".into())),
            vec!["deep.cdn.example.org|02"],
        ),
        (
            q(&|q| q.client = Some([2; 8])),
            vec!["deep.cdn.example.org|02", "example.org|02"],
        ),
        (
            q(&|q| q.action = Some("blocked".into())),
            vec!["evil.test|01", "bad-example.org|01"],
        ),
        (
            q(&|q| q.feed = Some("malware".into())),
            vec!["evil.test|01", "bad-example.org|01"],
        ),
        (
            q(&|q| {
                q.since = Some(2_000_000);
                q.until = Some(4_000_000);
            }),
            vec!["bad-example.org|01", "example.org|02"],
        ),
    ];
    for (query, want) in &cases {
        for tenant in ["north", "south"] {
            let asked = EventQuery {
                tenant: Some(tenant.into()),
                ..query.clone()
            };
            let expect: Vec<String> = want.iter().map(|w| format!("{tenant}|{w}")).collect();
            assert_eq!(found(&mut *s, &asked), expect, "{asked:?}");
        }
        // every tenant: south's row of each pair is the newer
        let all: Vec<String> = want
            .iter()
            .flat_map(|w| [format!("south|{w}"), format!("north|{w}")])
            .collect();
        assert_eq!(found(&mut *s, query), all, "{query:?}");
    }
    // filters combine, and a tenant with nothing finds nothing
    let both = EventQuery {
        tenant: Some("north".into()),
        client: Some([1; 8]),
        domain: Some("example.org".into()),
        ..EventQuery::default()
    };
    assert_eq!(found(&mut *s, &both), ["north|www.example.org|01"]);
    let none = EventQuery {
        tenant: Some("west".into()),
        ..EventQuery::default()
    };
    assert!(found(&mut *s, &none).is_empty());
}

/// 25 rows, 5 of them at the same millisecond: pages of 10 are newest
/// first, ties by id, and together hold every row once; a page past the
/// end is empty.
fn pages_are_newest_first_and_stable(fx: &Fx) {
    let mut s = fx.open();
    let batch: Vec<PrivateEvent> = (0..25u64)
        .map(|i| {
            let ms = 10_000_000 + if i < 5 { 0 } else { i * 1000 };
            PrivateEvent {
                time: UNIX_EPOCH + Duration::from_millis(ms),
                ..ev(
                    "north",
                    1,
                    0,
                    &format!("h{i}.example.org"),
                    EventAction::Resolved,
                )
            }
        })
        .collect();
    s.insert_events(&batch).unwrap();
    let page = |s: &mut dyn TestDb, k: usize| -> Vec<StoredEvent> {
        s.search_events(&EventQuery {
            tenant: Some("north".into()),
            domain: Some("example.org".into()),
            offset: k * 10,
            limit: 10,
            ..EventQuery::default()
        })
        .unwrap()
    };
    let pages: Vec<Vec<StoredEvent>> = (0..4).map(|k| page(&mut *s, k)).collect();
    assert_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        [10, 10, 5, 0]
    );
    let all: Vec<&StoredEvent> = pages.iter().flatten().collect();
    for w in all.windows(2) {
        assert!(
            (w[0].time, w[0].id) > (w[1].time, w[1].id),
            "{:?} then {:?}",
            w[0],
            w[1]
        );
    }
    let mut names: Vec<&str> = all.iter().map(|e| e.qname.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 25);
    assert_eq!(all[0].qname, "h24.example.org");
    // the same page again is the same rows
    assert_eq!(page(&mut *s, 1), pages[1]);
}

/// A domain with more matching rows than SQLite's name index counts
/// before it walks the time index instead: the same page, newest first,
/// of the right tenant only.
fn a_domain_with_many_rows_pages_like_one_with_few(fx: &Fx) {
    let mut s = fx.open();
    // distinct names: repeats within a batch would fold into one row
    let batch: Vec<PrivateEvent> = (0..16_000u64)
        .map(|i| {
            let tenant = if i % 4 == 0 { "south" } else { "north" };
            let name = format!("h{i}.popular.test");
            PrivateEvent {
                time: UNIX_EPOCH + Duration::from_millis(1_000_000 + i),
                ..ev(tenant, 1, 0, &name, EventAction::Resolved)
            }
        })
        .collect();
    s.insert_events(&batch).unwrap();
    let q = EventQuery {
        tenant: Some("north".into()),
        domain: Some("popular.test".into()),
        offset: 50,
        limit: 50,
        ..EventQuery::default()
    };
    let page = s.search_events(&q).unwrap();
    let want: Vec<i64> = (0..16_000i64)
        .rev()
        .filter(|i| i % 4 != 0)
        .skip(50)
        .take(50)
        .map(|i| 1_000_000 + i)
        .collect();
    assert_eq!(page.iter().map(|e| e.time).collect::<Vec<_>>(), want);
    assert!(page.iter().all(|e| e.tenant == "north"));
}

/// Takes the schema back to before step 16: SQLite without `rname` and its
/// indexes, PostgreSQL with one plain `query_events` table as step 15 had.
pub(super) fn undo_step_16(s: &mut dyn TestDb, fx: &Fx) {
    match fx {
        Fx::Sqlite(_) => s.exec(
            "DROP INDEX query_events_rname;
             DROP INDEX query_events_client;
             ALTER TABLE query_events DROP COLUMN rname;",
        ),
        Fx::Pg(_) => s.exec(
            "CREATE TABLE query_events_plain (
                id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                time BIGINT NOT NULL, tenant TEXT NOT NULL, client BYTEA NOT NULL,
                qname TEXT NOT NULL, qtype INTEGER NOT NULL, rcode INTEGER,
                action TEXT NOT NULL, feed TEXT, node TEXT NOT NULL DEFAULT '',
                queries BIGINT NOT NULL DEFAULT 1, last_time BIGINT);
             DROP TABLE query_events;
             ALTER TABLE query_events_plain RENAME TO query_events;
             CREATE INDEX query_events_time ON query_events USING brin (time);",
        ),
    }
    s.exec("DELETE FROM schema_migrations WHERE version >= 16");
}

/// Schema step 16 on a database that holds events: on PostgreSQL the rows
/// move into a partition per day (ids kept, new ids after them), on both
/// the old rows are found by suffix and by pseudonym after the upgrade.
fn a_version_16_database_with_events_upgrades_and_is_searchable(fx: &Fx) {
    let mut s = fx.open();
    super::undo_steps_after_16(&mut *s, fx);
    undo_step_16(&mut *s, fx);
    let day = 86_400_000u64;
    for (t, name) in [
        (3 * day + 5, "old.example.org"),
        (4 * day + 5, "www.old.example.org"),
        (4 * day + 9, "other.test"),
    ] {
        s.exec(&format!(
            "INSERT INTO query_events (time, tenant, client, qname, qtype, rcode, action, feed, node)
             VALUES ({t}, 'council-a', {client}, '{name}', 1, 0, 'resolved', NULL, 'n1')",
            client = match fx {
                Fx::Sqlite(_) => "x'0909090909090909'",
                Fx::Pg(_) => "decode('0909090909090909', 'hex')",
            }
        ));
    }
    let old_ids = s.texts("SELECT CAST(MAX(id) AS TEXT) FROM query_events");
    drop(s);
    let mut s = fx.open();
    assert_eq!(s.schema_version().unwrap(), KNOWN_VERSION);
    let q = EventQuery {
        tenant: Some("council-a".into()),
        domain: Some("old.example.org".into()),
        ..EventQuery::default()
    };
    assert_eq!(
        found(&mut *s, &q),
        [
            "council-a|www.old.example.org|09",
            "council-a|old.example.org|09"
        ]
    );
    let by_client = EventQuery {
        client: Some([9; 8]),
        ..EventQuery::default()
    };
    assert_eq!(found(&mut *s, &by_client).len(), 3);
    s.insert_events(&[event(5 * 86_400, "new.example.org", EventAction::Resolved)])
        .unwrap();
    assert_eq!(
        s.texts("SELECT CAST(MAX(id) AS TEXT) FROM query_events WHERE qname = 'new.example.org'"),
        [(old_ids[0].parse::<i64>().unwrap() + 1).to_string()]
    );
    if let Fx::Pg(_) = fx {
        // the two days the old rows fell in are partitions of their own
        assert_eq!(
            s.texts(
                "SELECT c.relname::text || '=' || CAST((SELECT COUNT(*) FROM query_events e
                     WHERE e.tableoid = c.oid) AS TEXT)
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'query_events'::regclass
                   AND c.relname IN ('query_events_19700104', 'query_events_19700105')
                 ORDER BY 1"
            ),
            ["query_events_19700104=1", "query_events_19700105=2"]
        );
    }
}

/// Retention drops the partition of a day wholly past it, keeps the day
/// the cut-off falls in, and deletes only the default partition's rows.
fn retention_drops_whole_day_partitions(url: &str) {
    let mut s = PgStore::open(url).unwrap();
    let day = 86_400u64;
    let now = UNIX_EPOCH + Duration::from_secs(20_000 * day + 3600);
    let old = now - Duration::from_secs(40 * day);
    for t in [old, now - Duration::from_secs(30 * day), now] {
        s.ensure_partitions(t).unwrap();
    }
    let at = |t: SystemTime, name: &str| PrivateEvent {
        time: t,
        ..event(0, name, EventAction::Resolved)
    };
    s.insert_events(&[
        at(old, "gone.test"),
        at(old + Duration::from_secs(60), "gone-too.test"),
        // the day the cut-off falls in: kept until all of it is past
        at(now - Duration::from_secs(30 * day + 60), "edge.test"),
        at(now, "new.test"),
        // before any day partition made: the default partition
        at(UNIX_EPOCH + Duration::from_secs(day), "stray.test"),
    ])
    .unwrap();
    let r = Retention {
        events_days: 30,
        aggregates_days: 400,
    };
    let purged = s.purge(now, r).unwrap();
    assert_eq!(purged.events, 3);
    assert_eq!(
        s.texts("SELECT qname FROM query_events ORDER BY time"),
        ["edge.test", "new.test"]
    );
    let gone = crate::pg::partitions::partition_name(
        crate::unix_millis(old).div_euclid(crate::pg::partitions::DAY_MS),
    );
    assert_eq!(
        s.texts(&format!(
            "SELECT CAST(to_regclass('{gone}') IS NULL AS TEXT)"
        )),
        ["true"]
    );
    assert_eq!(s.purge(now, r).unwrap(), Purged::default());
}
