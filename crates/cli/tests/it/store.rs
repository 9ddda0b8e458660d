//! Query events reach the embedded SQLite store: one row per query with its
//! tenant and a pseudonymised client, and no client address anywhere in the
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
        db.query_row("SELECT COUNT(*) FROM query_events", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    while count() < 65 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(count(), 65, "{}", p.log());
    let rows: Vec<(String, String, Option<String>, i64, i64)> = db
        .prepare(
            "SELECT tenant, action, feed, COUNT(*), COUNT(DISTINCT client) FROM query_events
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
    for f in std::fs::read_dir(p.path("data")).unwrap() {
        let f = f.unwrap().path();
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
