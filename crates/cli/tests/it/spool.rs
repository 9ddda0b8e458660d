//! Losing nothing when the store blinks: a node under load whose PostgreSQL
//! server stops, restarts, or whose own process is killed during a replay
//! stores every query it answered exactly once; a spool that reaches its
//! limit drops, counts and alerts. Each test runs its own PostgreSQL server
//! ([`OwnServer`]) so that it can stop it.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use parapet_store::pgtest::OwnServer;

use crate::harness::{Client, Parapet, shared_nsd};

/// Queries sent from a few threads, each paced to about 1,000 a second,
/// cycling over `names` distinct names; counts the ones answered.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(dns: SocketAddr, names: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let threads = (0..3u32)
            .map(|w| {
                let (stop, answered) = (stop.clone(), answered.clone());
                std::thread::spawn(move || {
                    let client = Client::new(dns);
                    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let started = Instant::now();
                    let mut buf = [0u8; 4096];
                    let mut sent = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let i = (sent as u32 * 3 + w) % names;
                        let m = client.build(&format!("n{i}.zone.test."), RecordType::A);
                        sock.send_to(&m.to_vec().unwrap(), dns).unwrap();
                        sent += 1;
                        // the answer to this query, skipping late ones
                        while let Ok(n) = sock.recv(&mut buf) {
                            if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == m.metadata.id {
                                answered.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                        let due = started + Duration::from_micros(sent * 1000);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            answered,
            threads,
        }
    }

    /// Stops sending; returns how many queries were answered.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.answered.load(Ordering::Relaxed)
    }
}

/// A node on `pg`, once it has finished starting (it needs the store until
/// then).
fn start_node(pg: &OwnServer, extra: &str) -> Parapet {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]\nevent_queue = 65536"),
        &format!(
            "[store]\npath = \"data\"\nurl = \"{}\"\nflush_interval_ms = 100\n{extra}\n",
            pg.url()
        ),
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.log().contains("retention") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    p
}

/// Queries stored, counting each row's repeats; `None` while the server
/// is down.
fn stored(pg: &OwnServer) -> Option<i64> {
    let mut db = postgres::Client::connect(&pg.url(), postgres::NoTls).ok()?;
    let row = db
        .query_one(
            "SELECT COALESCE(SUM(queries), 0)::bigint FROM query_events",
            &[],
        )
        .ok()?;
    Some(row.get(0))
}

/// Waits (up to 90 s: a store that was down is retried with a backoff of
/// up to 10 s) until `want` queries are stored, and a little longer in
/// case more come (a double count); returns what is stored.
fn stored_when_settled(pg: &OwnServer, want: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    while stored(pg).unwrap_or(0) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    stored(pg).unwrap_or(-1)
}

/// Queries the event queue dropped (it must be none, or the count of
/// answered queries is not the count that reached the pipeline).
fn queue_drops(p: &Parapet) -> f64 {
    p.metric("parapet_events_dropped_total ")
}

#[test]
fn every_query_answered_while_postgres_is_stopped_is_stored_once_when_it_returns() {
    let mut pg = OwnServer::start();
    let p = start_node(&pg, "");
    let load = Load::start(p.dns, 5_000);
    std::thread::sleep(Duration::from_secs(1));
    pg.stop();
    std::thread::sleep(Duration::from_secs(10));
    pg.resume();
    std::thread::sleep(Duration::from_secs(1));
    let answered = load.finish() as i64;
    assert!(answered > 5_000, "the load did not run: {answered}");
    assert_eq!(stored_when_settled(&pg, answered), answered, "{}", p.log());
    assert_eq!(queue_drops(&p), 0.0);
    let log = p.log();
    assert!(log.contains("keeping them in the spool"), "{log}");
    assert!(log.contains("the spool is replayed"), "{log}");
}

#[test]
fn postgres_restarting_twice_during_a_replay_still_stores_each_query_once() {
    let mut pg = OwnServer::start();
    let p = start_node(&pg, "");
    pg.stop();
    let load = Load::start(p.dns, 20_000);
    std::thread::sleep(Duration::from_secs(4));
    let answered = load.finish() as i64;
    // the replay starts at the writer's next try, within its backoff
    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(&pg).unwrap_or(0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..2 {
        pg.stop();
        pg.resume();
    }
    assert_eq!(stored_when_settled(&pg, answered), answered, "{}", p.log());
    assert_eq!(queue_drops(&p), 0.0);
}

#[test]
fn kill_9_during_a_replay_still_stores_each_query_once_after_the_restart() {
    let mut pg = OwnServer::start();
    let mut p = start_node(&pg, "");
    pg.stop();
    let load = Load::start(p.dns, 20_000);
    std::thread::sleep(Duration::from_secs(4));
    let answered = load.finish() as i64;
    assert_eq!(queue_drops(&p), 0.0);
    // every batch is cut within the flush interval (100 ms) and spooled
    // before it is handed over: after a second, nothing answered is only
    // in memory
    std::thread::sleep(Duration::from_secs(1));
    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stored(&pg).unwrap_or(0) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    p.kill9();
    let at_kill = stored(&pg).unwrap_or(0);
    p.restart();
    let after = stored_when_settled(&pg, answered);
    assert_eq!(after, answered, "stored {at_kill} at the kill\n{}", p.log());
}

#[test]
fn a_full_spool_drops_counts_and_raises_store_unavailable() {
    let mut pg = OwnServer::start();
    // the smallest limit: 1 MiB holds about 15,000 distinct queries
    let p = start_node(&pg, "spool_max_mb = 1");
    pg.stop();
    let load = Load::start(p.dns, 1_000_000);
    let deadline = Instant::now() + Duration::from_secs(60);
    let drops = || p.metric("parapet_events_dropped_total{reason=\"spool_full\"");
    while drops() == 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let answered = load.finish() as i64;
    std::thread::sleep(Duration::from_secs(1));
    let dropped = drops() as i64;
    assert!(dropped > 0, "{}", p.log());
    assert_eq!(queue_drops(&p), 0.0);
    let spool: u64 = std::fs::read_dir(p.path("data/spool"))
        .unwrap()
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    assert!(spool <= 1 << 20, "{spool} bytes spooled");
    pg.resume();
    // what was not dropped is stored, once
    assert_eq!(
        stored_when_settled(&pg, answered - dropped),
        answered - dropped,
        "{}",
        p.log()
    );
    let mut db = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let alerts = loop {
        let rows: Vec<(String, String)> = db
            .query(
                "SELECT tenant, reason FROM alerts WHERE rule = 'store.unavailable'",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if !rows.is_empty() || Instant::now() > deadline {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(alerts.len(), 1, "{alerts:?}\n{}", p.log());
    assert_eq!(alerts[0].0, "supplier");
    assert!(alerts[0].1.contains("spool_max_mb"), "{alerts:?}");
}

/// SQLite spools too: a database another process holds locked for longer
/// than the store's busy timeout (10 s) fails the writes, and every query
/// answered meanwhile is stored once when the lock goes.
#[test]
fn every_query_answered_while_sqlite_is_locked_is_stored_once_when_it_frees() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]\nevent_queue = 65536"),
        "[store]\npath = \"data\"\nflush_interval_ms = 100\n",
        &[],
    );
    let db_path = p.path("data/parapet.sqlite");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.log().contains("retention") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let load = Load::start(p.dns, 5_000);
    std::thread::sleep(Duration::from_millis(500));
    let lock = rusqlite::Connection::open(&db_path).unwrap();
    lock.execute_batch("BEGIN EXCLUSIVE").unwrap();
    std::thread::sleep(Duration::from_secs(13));
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    std::thread::sleep(Duration::from_millis(500));
    let answered = load.finish() as i64;
    let db = rusqlite::Connection::open(&db_path).unwrap();
    let stored = || {
        db.query_row(
            "SELECT COALESCE(SUM(queries), 0) FROM query_events",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while stored() < answered && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stored(), answered, "{}", p.log());
    assert_eq!(queue_drops(&p), 0.0);
    assert!(p.log().contains("keeping them in the spool"), "{}", p.log());
}

/// A node on `pg` with a blocking feed listing `*.zone.test` names, whose
/// clients at 127.0.0.2 are council-a.
fn start_blocking_node(pg: &OwnServer) -> Parapet {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        &format!(
            "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
             [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
             [store]\npath = \"data\"\nurl = \"{}\"\nflush_interval_ms = 100\n",
            pg.url()
        ),
        &[("listed.txt", "listed.zone.test\nlisted.other.test\n")],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.log().contains("retention") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    p
}

/// `(domain, count)` of every feed.block alert, `None` while the server
/// is down.
fn block_alerts(pg: &OwnServer) -> Option<Vec<(String, i64)>> {
    let mut db = postgres::Client::connect(&pg.url(), postgres::NoTls).ok()?;
    let rows = db
        .query(
            "SELECT domain, count::bigint FROM alerts WHERE rule = 'feed.block' ORDER BY domain",
            &[],
        )
        .ok()?;
    Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Waits (up to 90 s, the writer's backoff included) until `want` alerts
/// exist, then a little longer in case one is recorded twice.
fn block_alerts_when_settled(pg: &OwnServer, want: usize) -> Vec<(String, i64)> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while block_alerts(pg).unwrap_or_default().len() < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    block_alerts(pg).unwrap_or_default()
}

/// Alerts are stored with the batch they come from: a blocked query
/// answered while PostgreSQL is stopped raises its alert once the server
/// is back, and one answered before a `kill -9` (the store down, the batch
/// only in the spool) raises it when the restarted node replays the
/// spool; each exactly once.
#[test]
fn alerts_raised_while_postgres_is_down_are_stored_once_across_an_outage_and_a_kill_9() {
    let mut pg = OwnServer::start();
    let mut p = start_blocking_node(&pg);
    let client = p.client().from("127.0.0.2");

    // an outage: the alert waits with its batch in the spool
    pg.stop();
    for _ in 0..3 {
        client.query("listed.zone.test.", RecordType::A).unwrap();
    }
    std::thread::sleep(Duration::from_secs(2));
    pg.resume();
    let alerts = block_alerts_when_settled(&pg, 1);
    assert_eq!(alerts.len(), 1, "{alerts:?}\n{}", p.log());
    assert_eq!(alerts[0].0, "zone.test");
    let zone_count = alerts[0].1;
    assert!((1..=3).contains(&zone_count), "{alerts:?}");

    // a crash while the store is down: the batch is in the spool only
    pg.stop();
    client.query("listed.other.test.", RecordType::A).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    p.kill9();
    pg.resume();
    p.restart();
    let alerts = block_alerts_when_settled(&pg, 2);
    assert_eq!(
        alerts,
        [
            ("other.test".to_string(), 1),
            ("zone.test".to_string(), zone_count)
        ],
        "{}",
        p.log()
    );
    // the replayed batches of the first run raise nothing twice
    assert_eq!(stored(&pg), Some(4), "{}", p.log());
}

/// A batch the store refuses for good (here a trigger the operator added
/// raises a check violation on one name) is set aside in the spool's
/// quarantine, counted and logged; the batches behind it are stored.
#[test]
fn a_batch_postgres_refuses_is_quarantined_and_the_next_ones_are_stored() {
    let pg = OwnServer::start();
    let p = start_node(&pg, "");
    let mut db = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    db.batch_execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.qname LIKE 'poison.%' THEN
             RAISE EXCEPTION 'poisoned name' USING ERRCODE = 'check_violation';
           END IF;
           RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON query_events
           FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .unwrap();
    let client = p.client();
    client.query("poison.zone.test.", RecordType::A);
    let quarantined = || p.metric("parapet_spool_quarantined_total");
    let deadline = Instant::now() + Duration::from_secs(30);
    while quarantined() < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(quarantined(), 1.0, "{}", p.log());
    let before = stored(&pg).unwrap();
    for i in 0..10 {
        client.query(&format!("n{i}.zone.test."), RecordType::A);
    }
    assert_eq!(
        stored_when_settled(&pg, before + 10),
        before + 10,
        "{}",
        p.log()
    );
    let files: Vec<_> = std::fs::read_dir(p.path("data/spool/quarantine"))
        .unwrap()
        .map(|f| f.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(".spool"), "{files:?}");
    let log = p.log();
    assert!(log.contains("set aside in the spool's quarantine"), "{log}");
    assert!(log.contains("poisoned name"), "{log}");
    assert_eq!(quarantined(), 1.0);
}

/// Two processes must not share a spool: the second stops at once with an
/// error that names the folder, and the first goes on.
#[test]
fn a_second_node_on_the_same_store_path_stops_with_a_clear_error() {
    let nsd = shared_nsd();
    let mut p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "[store]\npath = \"data\"\n",
        &[],
    );
    // fully started (SIGTERM is handled from then on)
    crate::harness::wait_for("the first node's writer", || p.log().contains("retention"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["serve", "--config"])
        .arg(p.path("parapet.toml"))
        .current_dir(p.path(""))
        .output()
        .unwrap();
    let text = crate::harness::output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("in use by another process"), "{text}");
    assert!(text.contains("spool"), "{text}");
    assert!(p.is_running());
    assert_eq!(p.terminate().code(), Some(0), "{}", p.log());
}

/// The dashboard's store calls run off the async workers, from a bounded
/// pool: with PostgreSQL holding every account table locked (a store that
/// does not answer), requests that need it wait, and `/healthz` and
/// `/metrics` still answer; with the server stopped, a store request gets
/// an error instead of hanging, and `/healthz` still answers.
#[test]
fn the_web_answers_while_postgres_is_stuck_or_stopped() {
    let mut pg = OwnServer::start();
    let p = start_node(&pg, "pool_size = 2");
    let web = p.web;
    let api = move || {
        crate::harness::http_get_with(
            web,
            "/api/v1/alerts",
            "Authorization: Bearer not-a-token\r\n",
            Duration::from_secs(60),
        )
    };
    assert_eq!(api().0, 401, "the store answers: an unknown token");

    let mut lock = postgres::Client::connect(&pg.url(), postgres::NoTls).unwrap();
    let mut tx = lock.transaction().unwrap();
    tx.batch_execute("LOCK TABLE api_tokens, users, sessions IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    // more store requests than the pool and the runtime's workers
    let stuck: Vec<_> = (0..6).map(|_| std::thread::spawn(api)).collect();
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..5 {
        assert!(crate::harness::http_get(web, "/healthz").contains("ok"));
        assert!(crate::harness::http_get(web, "/metrics").contains("parapet_"));
    }
    assert!(
        stuck.iter().all(|t| !t.is_finished()),
        "the store requests wait for the lock"
    );
    tx.rollback().unwrap();
    for t in stuck {
        // the first two get the pool's connections; the rest waited their
        // turn (401) or, past the pool's wait, were told to come back (503)
        let (status, body) = t.join().unwrap();
        assert!(status == 401 || status == 503, "{status} {body}");
    }

    pg.stop();
    assert!(crate::harness::http_get(web, "/healthz").contains("ok"));
    let (status, body) = api();
    assert!(status == 500 || status == 503, "{status} {body}");
    pg.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while api().0 != 401 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(api().0, 401, "the dashboard reconnects: {}", p.log());
}
