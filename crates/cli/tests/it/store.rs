//! Query events reach the embedded SQLite store: one row per distinct query
//! of a batch with its tenant and a pseudonymised client, and no client address anywhere in the
//! database files.

use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, shared_nsd};

#[test]
fn every_query_is_stored_pseudonymised() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
         [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
         [store]\npath = \"data\"\nflush_interval_ms = 200\n",
        &[("listed.txt", "listed.zone.test\n")],
    );
    let a = p.client().from("127.0.0.2");
    for _ in 0..50 {
        assert_eq!(
            a.query("www.zone.test.", RecordType::A).unwrap().rcode,
            ResponseCode::NoError
        );
    }
    for _ in 0..10 {
        assert_eq!(
            a.query("listed.zone.test.", RecordType::A).unwrap().rcode,
            ResponseCode::NXDomain
        );
    }
    for _ in 0..5 {
        p.client()
            .query("www.zone.test.", RecordType::AAAA)
            .unwrap();
    }

    let db = rusqlite::Connection::open(p.path("data/parapet.sqlite")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let count = || {
        db.query_row(
            "SELECT COALESCE(SUM(queries), 0) FROM query_events",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
    };
    while count() < 65 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(), 65, "{}", p.log());
    let rows: Vec<(String, String, Option<String>, i64, i64)> = db
        .prepare(
            "SELECT tenant, action, feed, SUM(queries), COUNT(DISTINCT client) FROM query_events
             GROUP BY tenant, action, feed ORDER BY tenant, action",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                "council-a".into(),
                "blocked".into(),
                Some("listed".into()),
                10,
                1
            ),
            ("council-a".into(), "resolved".into(), None, 50, 1),
            ("default".into(), "resolved".into(), None, 5, 1),
        ]
    );
    let hourly: i64 = db
        .query_row("SELECT SUM(queries) FROM query_hourly", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hourly, 65);
    let pseudonym_len: i64 = db
        .query_row("SELECT MAX(LENGTH(client)) FROM query_events", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(pseudonym_len, 8);
    drop(db);
    // the database files and the spool's segments
    let mut files: Vec<_> = std::fs::read_dir(p.path("data"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .collect();
    files.extend(
        std::fs::read_dir(p.path("data/spool"))
            .unwrap()
            .map(|f| f.unwrap().path()),
    );
    for f in files.into_iter().filter(|f| f.is_file()) {
        let bytes = std::fs::read(&f).unwrap();
        for ip in [&b"127.0.0.2"[..], b"127.0.0.1"] {
            assert!(
                !bytes.windows(ip.len()).any(|w| w == ip),
                "{} holds a client address",
                f.display()
            );
        }
    }
}

/// A blocked query from a tenant's clients becomes one aggregated alert for
/// that tenant, visible and workable from the CLI.
#[test]
fn blocked_queries_become_one_alert_per_tenant() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
         [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/31\"]\n\
         [store]\npath = \"data\"\nflush_interval_ms = 100\n",
        &[("listed.txt", "listed.zone.test\n")],
    );
    for client in ["127.0.0.2", "127.0.0.3", "127.0.0.2"] {
        let r = p
            .client()
            .from(client)
            .query("www.listed.zone.test.", RecordType::A)
            .unwrap();
        assert_eq!(r.rcode, ResponseCode::NXDomain);
    }
    let config = p.config.to_str().unwrap().to_string();
    let list = || {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
            .args([
                "alerts",
                "list",
                "--config",
                &config,
                "--format",
                "json",
                "--rule",
                "feed.block",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while list()[0]["count"] != 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let alerts = list();
    assert_eq!(alerts.as_array().unwrap().len(), 1, "{alerts:#}");
    let a = &alerts[0];
    assert_eq!(a["tenant"], "council-a");
    assert_eq!(a["domain"], "zone.test");
    assert_eq!(a["severity"], "high");
    assert_eq!(a["status"], "new");
    assert_eq!(
        (a["count"].as_u64(), a["clients"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(a["feeds"], serde_json::json!(["listed"]));
    assert!(
        a["evidence"][0]
            .as_str()
            .unwrap()
            .starts_with("www.listed.zone.test A blocked"),
        "{a:#}"
    );

    let set = |status: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
            .args([
                "alerts",
                "set",
                "--config",
                &config,
                &a["id"].to_string(),
                status,
            ])
            .args(["--note", "checking the laptop", "--by", "analyst"])
            .output()
            .unwrap()
    };
    assert!(set("investigating").status.success());
    let o = set("investigating");
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let h = &list()[0]["history"][0];
    assert_eq!(
        (h["to"].as_str(), h["by"].as_str()),
        (Some("investigating"), Some("analyst"))
    );
}

/// SIGTERM stores every answered query before exit, and exits 0, on both
/// backends: on PostgreSQL the dashboard's connections used to be dropped
/// on a runtime thread at shutdown, which aborted the process.
#[test]
fn sigterm_stores_every_answered_query_and_exits_0() {
    let nsd = shared_nsd();
    let url = parapet_store::pgtest::fresh_database();
    for store in [
        "[store]\npath = \"data\"\nflush_interval_ms = 5000\n".to_string(),
        format!("[store]\nurl = \"{url}\"\nflush_interval_ms = 5000\n"),
    ] {
        let mut p = Parapet::start(&format!("upstreams = [\"{nsd}\"]"), &store, &[]);
        for _ in 0..40 {
            assert_eq!(
                p.client()
                    .query("www.zone.test.", RecordType::A)
                    .unwrap()
                    .rcode,
                ResponseCode::NoError
            );
        }
        let status = p.terminate();
        let log = p.log();
        assert!(status.success(), "{status:?}\n{log}");
        assert!(!log.contains("panicked"), "{log}");
        let stored: i64 = if store.contains("url") {
            let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            db.query_one(
                "SELECT COALESCE(SUM(queries), 0)::bigint FROM query_events",
                &[],
            )
            .unwrap()
            .get(0)
        } else {
            let db = rusqlite::Connection::open(p.path("data/parapet.sqlite")).unwrap();
            db.query_row(
                "SELECT COALESCE(SUM(queries), 0) FROM query_events",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(stored, 40, "{store}");
    }
}
