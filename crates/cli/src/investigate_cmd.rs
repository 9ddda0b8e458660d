//! `parapet investigate keygen` and `parapet investigate reveal`: the
//! investigation key pair, and the audited reveal of the client addresses
//! the pipeline sealed to its public half (`crate::config::PrivacyConfig`,
//! `parapet_pipeline::seal`). The private key never reaches a node or the
//! dashboard: it is read here, from a file the investigator names.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use parapet_core::calendar::format_local_ms;
use parapet_core::pseudonym::ClientPseudonym;
use parapet_pipeline::seal::{OpenKey, SealError, keygen as new_key_pair};
use parapet_store::accounts::AuditEntry;
use parapet_store::{Db, StoreError};

use crate::BadInput;
use crate::config::Config;

/// The public key's file name.
pub const PUBLIC_FILE: &str = "investigation.pub";
/// The private key's file name.
pub const PRIVATE_FILE: &str = "investigation.key";
/// Largest key file read.
const KEY_FILE_MAX: u64 = 4096;
/// Sealed blobs opened per client: every blob of a client holds the same
/// address, so a few newest ones answer (and catch a mixed-up row).
const BLOBS_PER_CLIENT: usize = 16;
/// Names listed per client.
const NAMES_PER_CLIENT: usize = 20;
/// Pseudonyms revealed per alert at most (the alert page lists as many).
const ALERT_PSEUDONYMS: usize = 100;

/// Make an investigation key pair: investigation.pub (for `[privacy]
/// investigation_public_key`) and investigation.key (mode 0600; keep it
/// offline: it reveals every sealed client address).
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// The folder to write the two files to (created if missing).
    #[arg(long)]
    out: PathBuf,
}

pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let pub_path = args.out.join(PUBLIC_FILE);
    let key_path = args.out.join(PRIVATE_FILE);
    for p in [&pub_path, &key_path] {
        if p.exists() {
            return Err(BadInput(format!(
                "{} exists: refusing to overwrite a key (addresses sealed to it would be lost for good)",
                p.display()
            ))
            .into());
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let (public, private) = new_key_pair();
    write_new(&key_path, private.as_bytes(), 0o600)?;
    write_new(&pub_path, public.as_bytes(), 0o644)?;
    let fp = parapet_pipeline::seal::SealKey::parse(&public)?.fingerprint();
    println!("wrote {} (fingerprint {fp})", pub_path.display());
    println!("wrote {} (mode 0600)", key_path.display());
    println!();
    println!("Configure the public key on every node:");
    println!("  [privacy]");
    println!("  investigation_public_key = \"{}\"", pub_path.display());
    println!("Keep {PRIVATE_FILE} offline, away from the nodes and the database:");
    println!("whoever holds it can reveal every sealed client address.");
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (never over an existing file) with `mode`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode);
    let mut f = o
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Reveal the client addresses behind an alert, or behind one pseudonym,
/// with the investigation private key. Every reveal is written to the
/// audit log (who, when, why, what, how many addresses).
#[derive(clap::Args)]
pub struct RevealArgs {
    /// The TOML configuration file (for the store's location).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
    /// Every client behind this alert.
    #[arg(
        long,
        conflicts_with = "pseudonym",
        required_unless_present = "pseudonym"
    )]
    alert: Option<i64>,
    /// One client, by its pseudonym (16 hex digits).
    #[arg(long)]
    pseudonym: Option<String>,
    /// The pseudonym's tenant (default: every tenant it was seen in).
    #[arg(long, requires = "pseudonym")]
    tenant: Option<String>,
    /// The investigation private key (investigation.key).
    #[arg(long)]
    key: PathBuf,
    /// Why the address is needed (kept in the audit log). Required.
    #[arg(long)]
    reason: Option<String>,
    /// Who reveals (default: $USER).
    #[arg(long)]
    by: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

/// One client revealed.
struct Revealed {
    pseudonym: ClientPseudonym,
    tenant: String,
    addresses: Vec<IpAddr>,
    forwarder: bool,
    first: Option<i64>,
    last: Option<i64>,
    queries: u64,
    names: Vec<(String, u64)>,
}

pub fn reveal(args: RevealArgs) -> anyhow::Result<ExitCode> {
    let reason = args.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.is_empty() {
        return Err(BadInput(
            "a reveal needs --reason: why this address is needed (it goes to the audit log)".into(),
        )
        .into());
    }
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let key = read_key(&args.key)?;
    let config = Config::load_or_embedded(args.config.as_deref())?;
    let mut store = config.open_existing_store()?;
    // what to reveal: (tenant or any, pseudonym), and the alert's domain
    let (targets, domain, what, audit_tenant) = match (args.alert, &args.pseudonym) {
        (Some(id), _) => {
            let a = store.alert(id).map_err(|e| match e {
                StoreError::NoSuchAlert(_) => anyhow::Error::from(BadInput(e.to_string())),
                e => e.into(),
            })?;
            let ps = store.alert_pseudonyms(id, ALERT_PSEUDONYMS)?;
            let t: Vec<_> = ps
                .into_iter()
                .map(|p| (Some(a.tenant.clone()), p))
                .collect();
            (
                t,
                Some(a.domain.clone()),
                format!("alert {id}"),
                Some(a.tenant),
            )
        }
        (None, Some(p)) => {
            let p = parse_pseudonym(p)?;
            (
                vec![(args.tenant.clone(), p)],
                None,
                format!("pseudonym {p}"),
                args.tenant.clone(),
            )
        }
        (None, None) => return Err(BadInput("name --alert ID or --pseudonym P".into()).into()),
    };
    let mut out = Vec::new();
    let mut wrong_key = false;
    for (tenant, p) in targets {
        let (rows, wrong) = open_client(&mut *store, &key, tenant.as_deref(), p, &config)?;
        wrong_key |= wrong;
        out.extend(rows);
    }
    for r in &mut out {
        if let Some(a) =
            store.client_activity(&r.tenant, r.pseudonym, domain.as_deref(), NAMES_PER_CLIENT)?
        {
            (r.first, r.last, r.queries, r.names) =
                (Some(a.first), Some(a.last), a.queries, a.names);
        }
    }
    let addresses: usize = out.iter().map(|r| r.addresses.len()).sum();
    // the audit row is written before anything is shown: a reveal that
    // cannot be recorded shows nothing
    store
        .audit(&AuditEntry {
            time: parapet_store::unix_millis(SystemTime::now()) / 1000,
            actor: by.clone(),
            action: "investigate.reveal".into(),
            tenant: audit_tenant,
            detail: format!(
                "{what}: {addresses} address(es) revealed{}; reason: {reason}",
                if wrong_key {
                    " (key did not open some)"
                } else {
                    ""
                }
            ),
            client: None,
        })
        .context("cannot write the audit row: nothing revealed")?;
    if wrong_key && addresses == 0 {
        anyhow::bail!("{}: {}", args.key.display(), SealError::WrongKey);
    }
    if args.format == "json" {
        print_json(&out)?;
    } else {
        print_table(&what, &out);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads the private key file (bounded), or says what is wrong with it.
fn read_key(path: &Path) -> anyhow::Result<OpenKey> {
    let data = crate::read_input(path, KEY_FILE_MAX)
        .map_err(|e| BadInput(format!("{}: {e}", path.display())))?;
    let text = String::from_utf8(data)
        .map_err(|_| BadInput(format!("{}: not a key file (not text)", path.display())))?;
    OpenKey::parse(&text).map_err(|e| BadInput(format!("{}: {e}", path.display())).into())
}

fn parse_pseudonym(p: &str) -> anyhow::Result<ClientPseudonym> {
    let b = hex::decode(p.trim())
        .ok()
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .ok_or_else(|| BadInput(format!("--pseudonym {p}: not a pseudonym (16 hex digits)")))?;
    Ok(ClientPseudonym(b))
}

/// Opens one client's sealed addresses, per tenant it was seen in; and
/// whether some blob did not open with this key.
fn open_client(
    store: &mut dyn Db,
    key: &OpenKey,
    tenant: Option<&str>,
    p: ClientPseudonym,
    config: &Config,
) -> anyhow::Result<(Vec<Revealed>, bool)> {
    let blobs = store.sealed_for(tenant, p, BLOBS_PER_CLIENT)?;
    let mut by_tenant: Vec<(String, BTreeSet<IpAddr>)> = Vec::new();
    let mut wrong = false;
    for b in &blobs {
        let i = match by_tenant.iter().position(|(t, _)| **t == *b.tenant) {
            Some(i) => i,
            None => {
                by_tenant.push((b.tenant.to_string(), BTreeSet::new()));
                by_tenant.len() - 1
            }
        };
        match key.open(&b.sealed, &b.tenant, p) {
            Ok(ip) => {
                by_tenant[i].1.insert(ip);
            }
            Err(_) => wrong = true,
        }
    }
    if by_tenant.is_empty()
        && let Some(t) = tenant
    {
        // seen, but never sealed (no key then, or past retention)
        by_tenant.push((t.to_string(), BTreeSet::new()));
    }
    let rows = by_tenant
        .into_iter()
        .map(|(tenant, addrs)| {
            let forwarder = config
                .tenants
                .iter()
                .filter(|t| *t.name.get_ref() == tenant)
                .any(|t| {
                    addrs
                        .iter()
                        .any(|a| t.forwarders.iter().any(|n| n.contains(a)))
                });
            Revealed {
                pseudonym: p,
                tenant,
                addresses: addrs.into_iter().collect(),
                forwarder,
                first: None,
                last: None,
                queries: 0,
                names: Vec::new(),
            }
        })
        .collect();
    Ok((rows, wrong))
}

fn print_json(out: &[Revealed]) -> anyhow::Result<()> {
    let v: Vec<serde_json::Value> = out
        .iter()
        .map(|r| {
            serde_json::json!({
                "pseudonym": r.pseudonym.to_string(),
                "tenant": r.tenant,
                "addresses": r.addresses.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "forwarder": r.forwarder,
                "first_seen": r.first.map(parapet_core::calendar::format_datetime_ms),
                "last_seen": r.last.map(parapet_core::calendar::format_datetime_ms),
                "queries": r.queries,
                "names": r.names.iter().map(|(n, q)| serde_json::json!({"name": n, "queries": q})).collect::<Vec<_>>(),
            })
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn print_table(what: &str, out: &[Revealed]) {
    if out.is_empty() {
        println!("{what}: no clients");
        return;
    }
    for r in out {
        let addr = if r.addresses.is_empty() {
            "not sealed (no investigation key was configured then, or retention removed it)"
                .to_string()
        } else {
            r.addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("pseudonym  {}", r.pseudonym);
        println!(
            "address    {addr}{}",
            if r.forwarder {
                "  (forwarder: find the machine in its DNS debug log)"
            } else {
                ""
            }
        );
        println!("tenant     {}", r.tenant);
        println!(
            "seen       {} .. {}",
            r.first.map(format_local_ms).unwrap_or_else(|| "-".into()),
            r.last.map(format_local_ms).unwrap_or_else(|| "-".into())
        );
        println!("queries    {}", r.queries);
        for (n, q) in &r.names {
            println!("  {q:>8}  {n}");
        }
        println!();
    }
}
