//! Event ingestion benchmark (bench/store/run): writes query events in
//! batches, as `parapet serve`'s event writer does, into SQLite and into
//! PostgreSQL (a server started like the tests', or `--url`), with one or
//! more writers (nodes) at once, and prints events per second.
//!
//!   cargo run --release -p parapet-store --example ingest -- [--events N] [--batch B] [--names K] [--skewed] [--fold-ms MS] [--url URL]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parapet_core::event::{EventAction, PrivateEvent};
use parapet_core::name::{EventName, text_to_key};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_store::{Db, PgStore, SqliteStore};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// `n` events over `names` distinct names, 20 tenants and 500 clients, the
/// time advancing 0.1 ms per event (so the hourly aggregates see new hours).
/// `skewed`: names drawn with a heavy head (index = names × u³), as real
/// query streams are; otherwise uniformly (the worst case for the hourly
/// aggregates: nearly every event its own row).
fn events(n: usize, names: usize, seed: u64, skewed: bool) -> Vec<PrivateEvent> {
    let tenants: Vec<Arc<str>> = (0..20).map(|i| Arc::from(format!("council-{i}"))).collect();
    let feed: Arc<str> = Arc::from("malware");
    let qnames: Vec<EventName> = (0..names)
        .map(|i| EventName::new(&text_to_key(&format!("host{i}.example{}.org", i % 97)).unwrap()))
        .collect();
    let t0 = SystemTime::now();
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            let blocked = r.is_multiple_of(50);
            PrivateEvent {
                time: t0 + Duration::from_micros(i as u64 * 100),
                tenant: tenants[r % tenants.len()].clone(),
                client: ClientPseudonym(((r % 500) as u64).to_be_bytes()),
                qname: qnames[if skewed {
                    let u = ((r / 7) % 1_000_000) as f64 / 1e6;
                    ((u * u * u) * qnames.len() as f64) as usize
                } else {
                    (r / 7) % qnames.len()
                }]
                .clone(),
                qtype: if r.is_multiple_of(3) { 28 } else { 1 },
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

/// Writes `events` in `batch`-sized calls with `writers` stores at once,
/// while (on a backend that defers its aggregates) a folder folds the
/// pending hourly counts every `fold_every`, as `parapet serve` does; the
/// time includes a last fold, so nothing is left pending at the end.
/// Returns events per second over all writers.
fn run(
    open: &(dyn Fn() -> Box<dyn Db> + Sync),
    writers: usize,
    evs: &[PrivateEvent],
    batch: usize,
    fold_every: Duration,
) -> f64 {
    let per = evs.len() / writers;
    let mut folder = open();
    let defers = folder.defers_aggregates();
    let done = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let part = &evs[w * per..(w + 1) * per];
                s.spawn(move || {
                    let mut db = open();
                    db.set_node(&format!("node-{w}"));
                    for chunk in part.chunks(batch) {
                        db.insert_events(chunk).expect("insert");
                    }
                })
            })
            .collect();
        if defers {
            let done = &done;
            let folder = &mut folder;
            s.spawn(move || {
                let mut last = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                    if last.elapsed() >= fold_every {
                        folder.fold_aggregates().expect("fold");
                        last = Instant::now();
                    }
                }
            });
        }
        for h in handles {
            h.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    folder.fold_aggregates().expect("fold");
    (per * writers) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = arg(&args, "--events").map_or(400_000, |v| v.parse().unwrap());
    let batch: usize = arg(&args, "--batch").map_or(20_000, |v| v.parse().unwrap());
    let names: usize = arg(&args, "--names").map_or(20_000, |v| v.parse().unwrap());
    let url = arg(&args, "--url");
    let skewed = args.iter().any(|a| a == "--skewed");
    let fold_every =
        Duration::from_millis(arg(&args, "--fold-ms").map_or(5_000, |v| v.parse().unwrap()));
    let evs = events(n, names, 1, skewed);
    println!(
        "{n} events, {names} names drawn {}, batches of {batch}",
        if skewed { "skewed (u^3)" } else { "uniformly" }
    );

    let dir = tempfile::tempdir().unwrap();
    let sqlite_dir = dir.path().to_path_buf();
    let sqlite = move || -> Box<dyn Db> { Box::new(SqliteStore::open(&sqlite_dir).unwrap()) };
    // SQLite has one writer at a time: one node only
    println!(
        "sqlite     1 writer : {:>9.0} events/s",
        run(&sqlite, 1, &evs, batch, fold_every)
    );

    if args.iter().any(|a| a == "--sqlite-only") {
        return;
    }
    for writers in [1usize, 2] {
        // a fresh database per run on a server started here, unless --url
        let db_url = url
            .clone()
            .unwrap_or_else(parapet_store::pgtest::fresh_database);
        let pg = move || -> Box<dyn Db> { Box::new(PgStore::open(&db_url).unwrap()) };
        println!(
            "postgresql {writers} writer{}: {:>9.0} events/s",
            if writers == 1 { " " } else { "s" },
            run(&pg, writers, &evs, batch, fold_every)
        );
    }
}
