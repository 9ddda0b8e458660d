//! Query search benchmark (bench/store/search): loads ROWS query events
//! once into a kept SQLite database and a kept PostgreSQL database, then
//! times searches of each kind through `EventStore::search_events`, the
//! call behind `/queries`, its API and `parapet queries search`, and
//! prints p50/p95/max per kind and backend.
//!
//!   cargo run --release -p parapet-store --example search -- --rows N --sqlite DIR --url URL [--searches K] [--load-only] [--fast-sqlite-load]
//!
//! The events: 20 tenants, 2,000 clients, 200,000 names under 20,000
//! registrable domains drawn with a heavy head (index = names × u³, as
//! real query streams are), 2 % blocked, spread evenly over the 7 days
//! before the load (7 daily partitions on PostgreSQL).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parapet_core::event::{EventAction, PrivateEvent};
use parapet_core::name::{EventName, text_to_key};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_store::{Db, EventQuery, EventStore, NameMatch, PgStore, Retention, SqliteStore};

const TENANTS: usize = 20;
const CLIENTS: u64 = 2_000;
const NAMES: usize = 200_000;
const DOMAINS: usize = 20_000;
const SPAN: Duration = Duration::from_secs(7 * 86_400);
const BATCH: usize = 20_000;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// A small deterministic generator (the same stream on every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1e6
    }
}

fn domain(k: usize) -> String {
    format!("dom{k}.org")
}

/// Name `i`: `host<i>.dom<i mod DOMAINS>.org`.
fn name(i: usize) -> String {
    format!("host{i}.{}", domain(i % DOMAINS))
}

/// The index of a name drawn like traffic.
fn draw_name(rng: &mut Lcg) -> usize {
    let u = rng.unit();
    ((u * u * u) * NAMES as f64) as usize
}

/// Events `from..to` of `total`, their times spread over [`SPAN`] before
/// `end`.
fn events(
    qnames: &[EventName],
    tenants: &[Arc<str>],
    rng: &mut Lcg,
    from: usize,
    to: usize,
    total: usize,
    end: SystemTime,
) -> Vec<PrivateEvent> {
    let feed: Arc<str> = Arc::from("malware");
    let start = end - SPAN;
    let step = SPAN.as_nanos() as f64 / total as f64;
    (from..to)
        .map(|i| {
            let c = rng.next() % CLIENTS;
            let blocked = rng.next().is_multiple_of(50);
            PrivateEvent {
                time: start + Duration::from_nanos((i as f64 * step) as u64),
                tenant: tenants[c as usize % TENANTS].clone(),
                client: ClientPseudonym(c.to_be_bytes()),
                qname: qnames[draw_name(rng)].clone(),
                qtype: if c.is_multiple_of(3) { 28 } else { 1 },
                rcode: if blocked { 3 } else { 0 },
                action: if blocked {
                    EventAction::Blocked
                } else {
                    EventAction::Resolved
                },
                feed: blocked.then(|| feed.clone()),
            }
        })
        .collect()
}

/// Loads `total` events into `db` unless it holds them already; returns
/// events per second of the load, `None` when it was kept.
fn load(db: &mut dyn Db, total: usize, end: SystemTime) -> Option<f64> {
    let have = db.event_count().expect("count") as usize;
    if have >= total {
        return None;
    }
    // a load cut short resumes: each batch is one transaction
    assert!(
        have.is_multiple_of(BATCH),
        "the database holds {have} of {total} events: delete it and run again"
    );
    let qnames: Vec<EventName> = (0..NAMES)
        .map(|i| EventName::new(&text_to_key(&name(i)).unwrap()))
        .collect();
    let tenants: Vec<Arc<str>> = (0..TENANTS)
        .map(|i| Arc::from(format!("council-{i}")))
        .collect();
    let mut rng = Lcg(7);
    let started = Instant::now();
    let mut done = 0;
    let mut day = None;
    let loaded = total - have;
    // the retention job, run as each day starts as `parapet serve` runs it
    // hourly: on PostgreSQL it makes the day's partition ahead (it deletes
    // nothing here, the events being younger than retention)
    let keep = Retention {
        events_days: 3650,
        aggregates_days: 3650,
    };
    while done < total {
        let to = (done + BATCH).min(total);
        let batch = events(&qnames, &tenants, &mut rng, done, to, total, end);
        if to <= have {
            done = to;
            continue;
        }
        let today = parapet_store::unix_millis(batch[0].time) / 86_400_000;
        if day != Some(today) {
            db.purge(batch[0].time, keep).expect("retention");
            day = Some(today);
        }
        db.insert_events(&batch).expect("insert");
        if db.defers_aggregates() && (to / BATCH).is_multiple_of(50) {
            db.fold_aggregates().expect("fold");
        }
        done = to;
        if done.is_multiple_of(1_000_000) {
            eprintln!("  {done} events loaded");
        }
    }
    db.fold_aggregates().expect("fold");
    Some(loaded as f64 / started.elapsed().as_secs_f64())
}

/// [`load`] for SQLite on a busy machine: the same rows (the same events
/// folded the same way), written with one prepared statement and the
/// search indexes made after the rows, as `CREATE INDEX` on a database
/// that already holds events (schema step 16) does. The hourly aggregates,
/// which no search reads, are left out. `insert_events` is what `parapet
/// serve` runs; this only makes the 10-million-row database quicker to
/// build.
fn load_sqlite_fast(dir: &std::path::Path, total: usize, end: SystemTime) -> Option<f64> {
    use parapet_core::event::fold_events;
    let mut db = SqliteStore::open(dir).unwrap();
    if db.event_count().unwrap() as usize >= total {
        return None;
    }
    drop(db);
    let mut conn = rusqlite::Connection::open(dir.join(parapet_store::DB_FILE)).unwrap();
    conn.execute_batch(
        "PRAGMA synchronous = OFF;
         DROP INDEX IF EXISTS query_events_time;
         DROP INDEX IF EXISTS query_events_rname;
         DROP INDEX IF EXISTS query_events_client;
         DELETE FROM query_events;",
    )
    .unwrap();
    let qnames: Vec<EventName> = (0..NAMES)
        .map(|i| EventName::new(&text_to_key(&name(i)).unwrap()))
        .collect();
    let texts: Vec<String> = (0..NAMES).map(name).collect();
    let by_key: std::collections::HashMap<&[u8], usize> = qnames
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_key(), i))
        .collect();
    let tenants: Vec<Arc<str>> = (0..TENANTS)
        .map(|i| Arc::from(format!("council-{i}")))
        .collect();
    let mut rng = Lcg(7);
    let started = Instant::now();
    let ms = parapet_store::unix_millis;
    let mut done = 0;
    while done < total {
        let to = (done + BATCH).min(total);
        let batch = events(&qnames, &tenants, &mut rng, done, to, total, end);
        let tx = conn.transaction().unwrap();
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO query_events (time, tenant, client, qname, qtype, rcode, action, feed, node, queries, last_time, rname)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '', ?9, ?10, ?11)",
                )
                .unwrap();
            for r in fold_events(&batch) {
                let e = &r.event;
                let text = &texts[by_key[e.qname.as_key()]];
                let rname: String = text.chars().rev().collect();
                st.execute(rusqlite::params![
                    ms(r.first),
                    &*e.tenant,
                    &e.client.0[..],
                    text,
                    e.qtype,
                    e.rcode,
                    e.action.as_str(),
                    e.feed.as_deref(),
                    r.queries,
                    (r.queries > 1).then(|| ms(r.last)),
                    rname,
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
        done = to;
        if done.is_multiple_of(1_000_000) {
            eprintln!("  sqlite: {done} events loaded");
        }
    }
    // the indexes of schema steps 1 and 17, as they define them
    conn.execute_batch(
        "CREATE INDEX query_events_time ON query_events (time);
         CREATE INDEX query_events_rname ON query_events (rname, tenant, time);
         CREATE INDEX query_events_client ON query_events (client, tenant, time);",
    )
    .unwrap();
    Some(total as f64 / started.elapsed().as_secs_f64())
}

/// One kind of search, `k` of them drawn from a seeded generator.
struct Kind {
    label: &'static str,
    make: fn(&mut Lcg, SystemTime) -> EventQuery,
}

fn page(q: EventQuery) -> EventQuery {
    EventQuery { limit: 50, ..q }
}

const KINDS: &[Kind] = &[
    Kind {
        label: "suffix: a registrable domain drawn uniformly",
        make: |r, _| {
            page(EventQuery {
                name: Some(domain(r.next() as usize % DOMAINS)),
                name_match: NameMatch::Suffix,
                ..EventQuery::default()
            })
        },
    },
    Kind {
        label: "suffix: a registrable domain drawn like traffic",
        make: |r, _| {
            page(EventQuery {
                name: Some(domain(draw_name(r) % DOMAINS)),
                name_match: NameMatch::Suffix,
                ..EventQuery::default()
            })
        },
    },
    Kind {
        label: "suffix, one council's (tenant set)",
        make: |r, _| {
            let k = draw_name(r) % DOMAINS;
            page(EventQuery {
                tenant: Some(format!("council-{}", r.next() as usize % TENANTS)),
                name: Some(domain(k)),
                name_match: NameMatch::Suffix,
                ..EventQuery::default()
            })
        },
    },
    Kind {
        label: "exact name drawn like traffic",
        make: |r, _| {
            page(EventQuery {
                name: Some(name(draw_name(r))),
                ..EventQuery::default()
            })
        },
    },
    Kind {
        label: "pseudonym",
        make: |r, _| {
            page(EventQuery {
                client: Some((r.next() % CLIENTS).to_be_bytes()),
                ..EventQuery::default()
            })
        },
    },
    Kind {
        label: "pseudonym, 2 h around a time (alert timeline)",
        make: |r, end| {
            let c = r.next() % CLIENTS;
            let at = parapet_store::unix_millis(end) - (r.next() % (7 * 86_400)) as i64 * 1000;
            page(EventQuery {
                tenant: Some(format!("council-{}", c as usize % TENANTS)),
                client: Some(c.to_be_bytes()),
                since: Some(at - 3_600_000),
                until: Some(at + 3_600_000),
                ..EventQuery::default()
            })
        },
    },
    Kind {
        label: "pseudonym, page 10 (offset 450)",
        make: |r, _| EventQuery {
            client: Some((r.next() % CLIENTS).to_be_bytes()),
            offset: 450,
            limit: 50,
            ..EventQuery::default()
        },
    },
];

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn measure(label: &str, db: &mut dyn Db, searches: usize, end: SystemTime) {
    for kind in KINDS {
        let mut rng = Lcg(42);
        let queries: Vec<EventQuery> = (0..searches).map(|_| (kind.make)(&mut rng, end)).collect();
        // one untimed pass over a few, as a dashboard that has served a
        // search before would have its pages cached
        for q in queries.iter().take(5) {
            db.search_events(q).expect("search");
        }
        let mut times = Vec::with_capacity(searches);
        let mut rows = 0;
        for q in &queries {
            let t = Instant::now();
            rows += db.search_events(q).expect("search").len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{label:<10} {:<48} p50 {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms  ({:.1} rows/search)",
            kind.label,
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
            times.last().unwrap().as_secs_f64() * 1e3,
            rows as f64 / searches as f64
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = arg(&args, "--rows").map_or(10_000_000, |v| v.parse().unwrap());
    let searches: usize = arg(&args, "--searches").map_or(200, |v| v.parse().unwrap());
    let sqlite_dir = arg(&args, "--sqlite");
    let url = arg(&args, "--url");
    // the load's end, kept beside the SQLite database so that a kept
    // database is searched around the times it holds
    let end = SystemTime::now();
    let mut backends: Vec<(&str, Box<dyn Db>)> = Vec::new();
    if let Some(dir) = &sqlite_dir {
        std::fs::create_dir_all(dir).unwrap();
        backends.push(("sqlite", Box::new(SqliteStore::open(dir.as_ref()).unwrap())));
    }
    if let Some(url) = &url {
        backends.push(("postgresql", Box::new(PgStore::open(url).unwrap())));
    }
    let marker = sqlite_dir
        .as_ref()
        .map(|d| std::path::Path::new(d).join("search-bench-end"));
    let end = match marker
        .as_ref()
        .and_then(|m| std::fs::read_to_string(m).ok())
    {
        Some(ms) => SystemTime::UNIX_EPOCH + Duration::from_millis(ms.trim().parse().unwrap()),
        None => {
            if let Some(m) = &marker {
                std::fs::write(m, parapet_store::unix_millis(end).to_string()).unwrap();
            }
            end
        }
    };
    let fast = args.iter().any(|a| a == "--fast-sqlite-load");
    // both loads at once, one thread each
    std::thread::scope(|s| {
        if fast && let Some(dir) = &sqlite_dir {
            s.spawn(move || match load_sqlite_fast(dir.as_ref(), rows, end) {
                Some(rate) => println!("sqlite     loaded {rows} events at {rate:.0} events/s (bulk, indexes made after)"),
                None => println!("sqlite     kept database with {rows} events"),
            });
        }
        for (label, db) in backends.iter_mut() {
            let label = *label;
            if fast && label == "sqlite" {
                continue;
            }
            s.spawn(move || {
                eprintln!("{label}: loading {rows} events (skipped when kept)");
                match load(&mut **db, rows, end) {
                    Some(rate) => println!("{label:<10} loaded {rows} events at {rate:.0} events/s (search indexes included)"),
                    None => println!("{label:<10} kept database with {rows} events"),
                }
            });
        }
    });
    if args.iter().any(|a| a == "--load-only") {
        return;
    }
    for (label, db) in backends.iter_mut() {
        measure(label, &mut **db, searches, end);
    }
}
