//! Fills a store for the render benchmark (bench/web/run): query event rows
//! spread over the last `--days` days up to now, written in batches as
//! `parapet serve`'s writer does (so the hourly aggregates are what a
//! running node leaves), and `--alerts` alerts over the same tenants, names
//! and period. Tenants are `council-0` … `council-{N-1}`.
//!
//!   cargo run --release -p parapet-store --example fill -- (--sqlite DIR | --url URL) [--rows N] [--alerts N] [--days D] [--tenants N] [--names K]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parapet_core::alert::{Severity, Signal};
use parapet_core::event::{EventAction, PrivateEvent};
use parapet_core::name::{EventName, text_to_key};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_store::{Db, PgStore, SqliteStore};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name).map_or(default, |v| {
        v.replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}: `{v}` is not a number"))
    })
}

/// The same linear congruential stream as the ingest example's generator
/// (bench/store): reproducible without a random-number crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

/// Names drawn with a heavy head (index = names × u³), as real query
/// streams are, the generator of bench/store's skewed runs.
fn skewed(r: usize, n: usize) -> usize {
    let u = ((r / 7) % 1_000_000) as f64 / 1e6;
    ((u * u * u) * n as f64) as usize
}

const RULES: [(&str, Severity); 5] = [
    ("feed.block", Severity::High),
    ("dga", Severity::Medium),
    ("tunnel", Severity::High),
    ("beacon", Severity::Medium),
    ("new_domain", Severity::Low),
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows = num(&args, "--rows", 10_000_000);
    let alerts = num(&args, "--alerts", 10_000) as usize;
    let days = num(&args, "--days", 30);
    let tenants_n = num(&args, "--tenants", 20) as usize;
    let names_n = num(&args, "--names", 20_000) as usize;
    let batch = num(&args, "--batch", 20_000) as usize;
    let mut db: Box<dyn Db> = match (arg(&args, "--sqlite"), arg(&args, "--url")) {
        (Some(dir), None) => Box::new(SqliteStore::open(std::path::Path::new(&dir)).unwrap()),
        (None, Some(url)) => Box::new(PgStore::open(&url).unwrap()),
        _ => panic!("give --sqlite DIR or --url URL"),
    };
    db.set_node("fill");
    let tenants: Vec<Arc<str>> = (0..tenants_n)
        .map(|i| Arc::from(format!("council-{i}")))
        .collect();
    let feed: Arc<str> = Arc::from("malware");
    let names: Vec<String> = (0..names_n)
        .map(|i| format!("host{i}.example{}.org", i % 97))
        .collect();
    let qnames: Vec<EventName> = names
        .iter()
        .map(|n| EventName::new(&text_to_key(n).unwrap()))
        .collect();
    let now = SystemTime::now();
    let span = Duration::from_secs(days * 86_400);
    let t0 = now - span;
    let step = span.as_nanos() as f64 / rows.max(1) as f64;
    let mut x = Lcg(1);
    let started = Instant::now();
    let mut written = 0u64;
    let mut evs = Vec::with_capacity(batch);
    while written < rows {
        evs.clear();
        let n = batch.min((rows - written) as usize);
        for i in 0..n {
            let r = x.next();
            // 2% blocked, as in bench/store
            let blocked = r.is_multiple_of(50);
            evs.push(PrivateEvent {
                time: t0 + Duration::from_nanos(((written + i as u64) as f64 * step) as u64),
                tenant: tenants[r % tenants.len()].clone(),
                client: ClientPseudonym(((r % 500) as u64).to_be_bytes()),
                qname: qnames[skewed(r, qnames.len())].clone(),
                qtype: if r.is_multiple_of(3) { 28 } else { 1 },
                rcode: if blocked { 3 } else { 0 },
                action: if blocked {
                    EventAction::Blocked
                } else {
                    EventAction::Resolved
                },
                feed: blocked.then(|| feed.clone()),
            });
        }
        db.insert_events(&evs).expect("insert events");
        written += n as u64;
        if db.defers_aggregates() && (written / batch as u64).is_multiple_of(25) {
            db.fold_aggregates().expect("fold");
        }
        if (written / batch as u64).is_multiple_of(50) {
            eprintln!(
                "{written} rows, {:.0} rows/s",
                written as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    db.fold_aggregates().expect("fold");
    // alerts: one per (tenant, rule, domain), their last sighting spread
    // over the same period, in batches as the detector records them
    let mut signals = Vec::with_capacity(1000);
    let astep = span.as_nanos() as f64 / alerts.max(1) as f64;
    for i in 0..alerts {
        let (rule, severity) = RULES[i % RULES.len()];
        let domain = format!("alert{i}.example{}.org", i % 97);
        signals.push(Signal {
            time: t0 + Duration::from_nanos((i as f64 * astep) as u64),
            tenant: tenants[i % tenants.len()].clone(),
            rule,
            severity,
            domain: domain.clone(),
            client: ClientPseudonym(((i % 500) as u64).to_be_bytes()),
            feed: (rule == "feed.block").then(|| feed.clone()),
            reason: format!("{rule} fired on {domain} (benchmark data)"),
            evidence: format!("{domain} A blocked"),
            folded: None,
        });
        if signals.len() == 1000 || i + 1 == alerts {
            db.record_signals(&signals).expect("record alerts");
            signals.clear();
        }
    }
    println!(
        "filled {written} event rows over {days} days, {alerts} alerts, {tenants_n} tenants in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
