//! Query events under real load (dnsperf) reach SQLite: every answered
//! query is stored, or counted as dropped when the event queue is full; a
//! `kill -9` mid-write leaves a consistent database that the next start
//! carries on with.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{Parapet, shared_nsd};

/// Runs dnsperf over `n` queries (one pass) and returns the completed count.
fn dnsperf(p: &Parapet, n: usize, rate: u32) -> u64 {
    let file = p.path("queries.txt");
    let mut q = String::new();
    for i in 0..n {
        if i % 10 == 0 {
            q.push_str("listed.zone.test A\n");
        } else {
            q.push_str(&format!("h{}.load.zone.test A\n", i % 200));
        }
    }
    std::fs::write(&file, q).unwrap();
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &p.dns.port().to_string(), "-d"])
        .arg(&file)
        .args(["-n", "1", "-c", "4", "-Q", &rate.to_string(), "-t", "2"])
        .output()
        .expect("dnsperf (apt-get install dnsperf)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("Queries completed:"))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no dnsperf summary:\n{text}"))
}

fn stored(p: &Parapet) -> u64 {
    let db = rusqlite::Connection::open(p.path("parapet-data/parapet.sqlite")).unwrap();
    db.query_row(
        "SELECT COALESCE(SUM(queries), 0) FROM query_events",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

fn wait_stored(p: &Parapet, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = stored(p);
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const FEED: &str = "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n";

#[test]
fn every_query_under_load_is_stored() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        FEED,
        &[("listed.txt", "listed.zone.test\n")],
    );
    let completed = dnsperf(&p, 20_000, 5_000);
    assert_eq!(completed, 20_000);
    assert_eq!(wait_stored(&p, completed), completed);
    assert_eq!(p.metric("parapet_events_dropped_total"), 0.0);
}

#[test]
fn a_full_event_queue_drops_and_counts() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]\nevent_queue = 8"),
        FEED,
        &[("listed.txt", "listed.zone.test\n")],
    );
    let completed = dnsperf(&p, 20_000, 20_000);
    assert_eq!(
        completed, 20_000,
        "answering never waits for the event queue"
    );
    // what is not stored was counted as dropped
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let dropped = p.metric("parapet_events_dropped_total") as u64;
        let n = stored(&p);
        if n + dropped == completed {
            assert!(dropped > 0, "a queue of 8 at 20k QPS must overflow");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stored {n} + dropped {dropped} != {completed}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn kill_9_mid_write_leaves_a_consistent_database() {
    let nsd = shared_nsd();
    let mut p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        FEED,
        &[("listed.txt", "listed.zone.test\n")],
    );
    // load in the background, kill -9 while batches are being written
    let port = p.dns.port();
    let file = p.path("kill.txt");
    // many distinct names: repeats within a batch share a row, and the
    // kill must land in large write transactions
    let mut names: String = (0..5000)
        .map(|i| format!("k{i}.load.zone.test A\n"))
        .collect();
    names.push_str("listed.zone.test A\n");
    std::fs::write(&file, names).unwrap();
    let load = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-d"])
        .arg(&file)
        .args(["-l", "4", "-c", "2", "-Q", "10000"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_stored(&p, 5_000);
    p.kill9();
    let mut load = load;
    let _ = load.kill();
    let _ = load.wait();

    let db = rusqlite::Connection::open(p.path("parapet-data/parapet.sqlite")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (events, hourly): (i64, i64) = db
        .query_row(
            "SELECT (SELECT SUM(queries) FROM query_events), (SELECT SUM(queries) FROM query_hourly)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(events >= 5_000);
    // events and aggregates are written in one transaction: never half
    assert_eq!(events, hourly);
    drop(db);

    // the next start carries on with the same database
    p.restart();
    let before = stored(&p);
    p.client()
        .query("after.restart.zone.test.", hickory_proto::rr::RecordType::A)
        .unwrap();
    assert_eq!(wait_stored(&p, before + 1), before + 1);
}
