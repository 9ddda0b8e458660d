//! What sealing client addresses costs the event writer (bench/store/run):
//! the same batches stored as `parapet serve`'s writer stores them
//! (`insert_batch`, one transaction), without a key, and with one (each
//! batch's distinct clients sealed by the collector's `Sealer`, then
//! `insert_sealed`), into SQLite and PostgreSQL (a server started like the
//! tests'). Prints events per second for both, and the cost of one seal.
//!
//!   cargo run --release -p parapet-pipeline --example seal_ingest -- [--events N] [--batch B] [--clients C]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parapet_core::event::{EventAction, OwnedRun, PrivateEvent, fold_events};
use parapet_core::name::{EventName, text_to_key};
use parapet_core::pseudonym::Pseudonymiser;
use parapet_pipeline::seal::{SealKey, Sealer, keygen};
use parapet_store::{BatchId, Db, PgStore, SealedClient, SqliteStore, unix_millis};

fn arg(args: &[String], name: &str) -> Option<usize> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1)?.parse().ok())
}

/// `n` events over 20,000 names, 20 tenants and `clients` client
/// addresses, 0.1 ms apart, with each event's address.
fn events(n: usize, clients: usize) -> Vec<(PrivateEvent, IpAddr)> {
    let p = Pseudonymiser::new(b"bench-key-0123456789").unwrap();
    let tenants: Vec<Arc<str>> = (0..20).map(|i| Arc::from(format!("council-{i}"))).collect();
    let names: Vec<EventName> = (0..20_000)
        .map(|i| EventName::new(&text_to_key(&format!("host{i}.example{}.org", i % 97)).unwrap()))
        .collect();
    let t0 = SystemTime::now();
    let mut x: u64 = 1;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            let c = r % clients;
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + c as u32));
            let ev = PrivateEvent {
                time: t0 + Duration::from_micros(i as u64 * 100),
                // a client stays in one tenant
                tenant: tenants[c % tenants.len()].clone(),
                client: p.pseudonymise(ip),
                qname: names[(r / 7) % names.len()].clone(),
                qtype: 1,
                rcode: 0,
                action: EventAction::Resolved,
                feed: None,
            };
            (ev, ip)
        })
        .collect()
}

/// Stores `evs` in batches of `batch`; with `sealer`, each batch's
/// distinct clients sealed and stored beside it. Events per second.
fn run(
    db: &mut dyn Db,
    evs: &[(PrivateEvent, IpAddr)],
    batch: usize,
    mut sealer: Option<Sealer>,
) -> f64 {
    let started = Instant::now();
    for (seq, chunk) in evs.chunks(batch).enumerate() {
        let id = BatchId {
            run: 1,
            seq: seq as i64,
        };
        let plain: Vec<PrivateEvent> = chunk.iter().map(|(e, _)| e.clone()).collect();
        let runs = fold_events(&plain);
        let runs: Vec<_> = runs.iter().map(OwnedRun::as_run).collect();
        db.insert_batch(id, &runs).unwrap();
        if let Some(s) = &mut sealer {
            let mut seen: HashMap<_, (IpAddr, SystemTime, SystemTime)> = HashMap::new();
            for (e, ip) in chunk {
                let v = seen
                    .entry((e.tenant.clone(), e.client))
                    .or_insert((*ip, e.time, e.time));
                v.2 = v.2.max(e.time);
            }
            let sealed: Vec<SealedClient> = seen
                .into_iter()
                .map(|((tenant, client), (ip, first, last))| SealedClient {
                    sealed: s.seal(&tenant, client, ip).to_vec(),
                    tenant,
                    client,
                    first: unix_millis(first),
                    last: unix_millis(last),
                })
                .collect();
            db.insert_sealed(id, &sealed).unwrap();
        }
    }
    evs.len() as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--events").unwrap_or(400_000);
    let batch = arg(&args, "--batch").unwrap_or(20_000);
    let clients = arg(&args, "--clients").unwrap_or(500);
    let evs = events(n, clients);
    let key = SealKey::parse(&keygen().0).unwrap();
    let started = Instant::now();
    let seals = 2_000;
    for i in 0..seals {
        key.seal(
            "council-a",
            evs[i % evs.len()].0.client,
            evs[i % evs.len()].1,
        );
    }
    println!(
        "{n} events, {clients} clients, batches of {batch}; one seal (HPKE X25519): {:.1} µs",
        started.elapsed().as_secs_f64() * 1e6 / seals as f64
    );
    for backend in ["sqlite", "postgresql"] {
        for sealed in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut db: Box<dyn Db> = if backend == "sqlite" {
                Box::new(SqliteStore::open(dir.path()).unwrap())
            } else {
                Box::new(PgStore::open(&parapet_store::pgtest::fresh_database()).unwrap())
            };
            db.set_node("bench");
            let rate = run(
                &mut *db,
                &evs,
                batch,
                sealed.then(|| Sealer::new(key.clone())),
            );
            println!(
                "{backend:<10} {:<9}: {rate:>9.0} events/s",
                if sealed { "sealed" } else { "no key" }
            );
        }
    }
}
