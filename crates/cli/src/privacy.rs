//! `parapet privacy`: exactly what is stored about DNS queries, for how
//! long, and how clients are pseudonymised — read from the same constants
//! the store writes with, so the statement cannot drift from the schema.

use std::path::PathBuf;
use std::process::ExitCode;

use parapet_store::{AGGREGATE_FIELDS, EVENT_FIELDS, SEALED_FIELDS};

use crate::config::Config;

/// What is stored about DNS queries, for how long, and how clients are
/// pseudonymised.
#[derive(clap::Args)]
pub struct Args {
    /// The TOML configuration file (defaults apply without one).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::load_or_embedded(args.config.as_deref())?;
    let r = config.store.retention();
    let store = config.resolve(&config.store.path);
    println!(
        "Parapet stores, for each DNS query, or each run of identical queries in one storage batch (kept {} days):",
        r.events_days
    );
    for (name, what) in EVENT_FIELDS {
        println!("  {name:<9} {what}");
    }
    println!();
    println!("and hourly totals (kept {} days):", r.aggregates_days);
    for (name, what) in AGGREGATE_FIELDS {
        println!("  {name:<9} {what}");
    }
    println!();
    let fingerprint = config.seal_key()?.map(|k| k.fingerprint());
    if fingerprint.is_some() {
        println!("Nothing else: no client IP address in clear (only sealed, below), no port or");
        println!("query ID, no answer records,");
    } else {
        println!("Nothing else: no client IP address, port or query ID, no answer records,");
    }
    println!("no other part of the packet. The client address is replaced by its");
    println!("pseudonym in memory, before an event is written anywhere.");
    println!();
    let (mode, meaning) = parapet_store::sealed::privacy_mode(fingerprint.as_deref());
    println!("Client addresses: {mode}.");
    println!("{meaning}");
    if fingerprint.is_some() {
        println!("Each sealed-address row keeps (kept as long as the events):");
        for (name, what) in SEALED_FIELDS {
            println!("  {name:<21} {what}");
        }
    }
    println!();
    println!("Pseudonymisation: HMAC-SHA256 of the client address under the operator's key,");
    println!("first 64 bits, hex. The same client gets the same pseudonym while the key is");
    println!("unchanged. Whoever holds this key can test every IPv4 address against a");
    println!("pseudonym (2^32 guesses) and so recover it: protect the key like the database.");
    println!("A reveal never needs it: sealed addresses open with the investigation key only.");
    println!("Key: {}", config.pseudonym_key_source());
    println!();
    println!(
        "Store: {} (SQLite, WAL); events are written at least every {} ms.",
        store.display(),
        config.store.flush_interval_ms
    );
    println!(
        "Spool: {} holds the same fields for batches the store has not taken yet \
         (at most {} MB); each file is deleted once its batches are stored.",
        store.join("spool").display(),
        config.store.spool_max_mb
    );
    println!("Retention is enforced at start and every hour.");
    Ok(ExitCode::SUCCESS)
}
