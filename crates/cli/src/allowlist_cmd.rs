//! `parapet allowlist list|add|remove`: the database allowlist from the
//! command line. Entries reach every node's resolver within a watch
//! interval (`crate::loader`), like the ones the alert page adds, and each
//! change writes an audit row.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use parapet_core::calendar::{format_datetime_ms, parse_rfc3339};
use parapet_store::accounts::AuditEntry;
use parapet_store::{AllowEntry, NewAllow, unix_millis};

use crate::BadInput;
use crate::config::Config;

/// The longest an entry may apply, as on the alert page.
const MAX_DAYS: u32 = 365;

fn open(config: Option<&std::path::Path>) -> anyhow::Result<Box<dyn parapet_store::Db>> {
    Config::load_or_embedded(config)?.open_existing_store()
}

/// The database allowlist: entries in force (every one with --all).
#[derive(clap::Args)]
pub struct ListArgs {
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
    /// Also expired and removed entries, newest first.
    #[arg(long)]
    all: bool,
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

fn entry_json(e: &AllowEntry) -> serde_json::Value {
    serde_json::json!({
        "id": e.id, "name": e.name, "tenant": e.tenant, "alert_id": e.alert_id,
        "added_by": e.added_by, "reason": e.reason,
        "created_at": format_datetime_ms(e.created_at),
        "expires_at": format_datetime_ms(e.expires_at),
        "removed_at": e.removed_at.map(format_datetime_ms), "removed_by": e.removed_by,
    })
}

pub fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let mut db = open(a.config.as_deref())?;
    let entries = if a.all {
        db.allow_entries(10_000)?
    } else {
        db.active_allows(SystemTime::now())?
    };
    if a.format == "json" {
        let v: Vec<_> = entries.iter().map(entry_json).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        println!("no allowlist entries");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<32} {:<21} {:>6}  {:<12} REASON",
        "ID", "NAME", "EXPIRES (UTC)", "ALERT", "BY"
    );
    for e in &entries {
        let removed = e
            .removed_by
            .as_ref()
            .map(|b| format!(" [removed by {b}]"))
            .unwrap_or_default();
        println!(
            "{:>5}  {:<32} {:<21} {:>6}  {:<12} {}{removed}",
            e.id,
            e.name,
            format_datetime_ms(e.expires_at),
            e.alert_id.map(|i| i.to_string()).unwrap_or_default(),
            e.added_by,
            e.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Allow a name (and the names under it) on every node until an expiry.
#[derive(clap::Args)]
pub struct AddArgs {
    /// The name, e.g. `portal.example.gov.uk`.
    name: String,
    /// For this many days (1 to 365).
    #[arg(long, conflicts_with = "until")]
    days: Option<u32>,
    /// Until this time (RFC 3339, e.g. 2026-12-31T17:00:00Z).
    #[arg(long)]
    until: Option<String>,
    /// Why (kept with the entry and in the audit log).
    #[arg(long)]
    reason: String,
    /// Who allows it.
    #[arg(long, default_value = "cli")]
    by: String,
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
}

pub fn add(a: AddArgs) -> anyhow::Result<ExitCode> {
    let now = SystemTime::now();
    let name = a.name.trim().trim_end_matches('.').to_ascii_lowercase();
    parapet_core::name::text_to_key(&name).map_err(|e| BadInput(format!("name `{name}`: {e}")))?;
    if a.reason.trim().is_empty() {
        return Err(BadInput("--reason: say why the name is allowed".into()).into());
    }
    let expires_at = match (a.days, &a.until) {
        (Some(d), _) if (1..=MAX_DAYS).contains(&d) => {
            unix_millis(now + Duration::from_secs(u64::from(d) * 86_400))
        }
        (Some(d), _) => {
            return Err(BadInput(format!("--days {d}: between 1 and {MAX_DAYS}")).into());
        }
        (None, Some(u)) => {
            let t = parse_rfc3339(u)
                .ok_or_else(|| BadInput(format!("--until `{u}`: not an RFC 3339 time")))?;
            let max = unix_millis(now) / 1000 + i64::from(MAX_DAYS) * 86_400;
            if t * 1000 <= unix_millis(now) || t > max {
                return Err(BadInput(format!(
                    "--until `{u}`: must be in the future, and at most {MAX_DAYS} days ahead"
                ))
                .into());
            }
            t * 1000
        }
        (None, None) => return Err(BadInput("give --days N or --until TIME".into()).into()),
    };
    let mut db = open(a.config.as_deref())?;
    let e = db.add_allow(
        &NewAllow {
            name: name.clone(),
            tenant: None,
            alert_id: None,
            added_by: a.by.clone(),
            reason: a.reason.clone(),
            expires_at,
        },
        now,
    )?;
    db.audit(&AuditEntry {
        time: unix_millis(now) / 1000,
        actor: a.by,
        action: "allowlist.add".into(),
        tenant: None,
        detail: format!(
            "allowed {name} until {} (entry {}): {}",
            format_datetime_ms(expires_at),
            e.id,
            a.reason
        ),
        client: None,
    })?;
    println!(
        "allowlist entry {}: {name} until {}",
        e.id,
        format_datetime_ms(expires_at)
    );
    Ok(ExitCode::SUCCESS)
}

/// End an allowlist entry before its expiry.
#[derive(clap::Args)]
pub struct RemoveArgs {
    /// The entry's id (`parapet allowlist list`).
    id: i64,
    #[arg(long, default_value = "cli")]
    by: String,
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
}

pub fn remove(a: RemoveArgs) -> anyhow::Result<ExitCode> {
    let mut db = open(a.config.as_deref())?;
    let now = SystemTime::now();
    let e = match db.remove_allow(a.id, &a.by, now) {
        Err(parapet_store::StoreError::NoSuchAllow(id)) => {
            return Err(BadInput(format!("no allowlist entry {id}")).into());
        }
        r => r?,
    };
    db.audit(&AuditEntry {
        time: unix_millis(now) / 1000,
        actor: a.by,
        action: "allowlist.remove".into(),
        tenant: e.tenant.clone(),
        detail: format!("removed allowlist entry {} ({})", e.id, e.name),
        client: None,
    })?;
    println!("allowlist entry {} ({}) removed", e.id, e.name);
    Ok(ExitCode::SUCCESS)
}
