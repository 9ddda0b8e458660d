//! `parapet privacy`: exactly what is stored about DNS queries, for how
//! long, and how clients are pseudonymised — read from the same constants
//! the store writes with, so the statement cannot drift from the schema.

use std::path::PathBuf;
use std::process::ExitCode;

use parapet_store::{AGGREGATE_FIELDS, EVENT_FIELDS};

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
    println!("Nothing else: no client IP address, port or query ID, no answer records,");
    println!("no other part of the packet. The client address is replaced by its");
    println!("pseudonym in memory, before an event is written anywhere.");
    println!();
    println!("Pseudonymisation: HMAC-SHA256 of the client address under the operator's key,");
    println!("first 64 bits, hex. The same client gets the same pseudonym while the key is");
    println!("unchanged; without the key the address cannot be recovered from it.");
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
