//! `parapet alerts list` and `parapet alerts set`: the analysts' view of
//! detection, straight from the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use parapet_core::alert::AlertStatus;
use parapet_core::calendar::format_local_ms;
use parapet_store::{AlertFilter, Db, StoreError};

use crate::BadInput;
use crate::config::Config;

fn open(config_path: Option<&Path>) -> anyhow::Result<Box<dyn Db>> {
    Config::load_or_embedded(config_path)?.open_existing_store()
}

/// List alerts, most recently seen first.
#[derive(clap::Args)]
pub struct ListArgs {
    /// The TOML configuration file (for the store's location).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
    /// Only this tenant's alerts.
    #[arg(long)]
    tenant: Option<String>,
    /// Only alerts in this state.
    #[arg(long, value_parser = ["new", "investigating", "resolved", "false_positive"])]
    status: Option<String>,
    /// Only this rule (feed.block, feed.monitor, dga, tunnel, beacon, new_domain).
    #[arg(long)]
    rule: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

pub fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let status = args
        .status
        .map(|s| s.parse::<AlertStatus>().map_err(BadInput))
        .transpose()?;
    let mut store = open(args.config.as_deref())?;
    let alerts = store.list_alerts(&AlertFilter {
        tenant: args.tenant,
        status,
        rule: args.rule,
        since: None,
        limit: Some(args.limit),
    })?;
    if args.format == "json" {
        let v: Vec<serde_json::Value> = alerts
            .iter()
            .map(parapet_core::alert::Alert::to_json)
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if alerts.is_empty() {
        println!("no alerts");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>5}  {:<14} {:<12} {:<8} {:<14} {:<32} {:>6} {:>7}  LAST SEEN",
        "ID", "STATUS", "RULE", "SEVERITY", "TENANT", "DOMAIN", "COUNT", "CLIENTS"
    );
    for a in &alerts {
        println!(
            "{:>5}  {:<14} {:<12} {:<8} {:<14} {:<32} {:>6} {:>7}  {}",
            a.id,
            a.status.as_str(),
            a.rule,
            a.severity.as_str(),
            a.tenant,
            a.domain,
            a.count,
            a.clients,
            format_local_ms(a.last_seen)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Move an alert through the workflow: new → investigating → resolved |
/// false_positive (closed alerts can be reopened as investigating).
#[derive(clap::Args)]
pub struct SetArgs {
    /// The TOML configuration file (for the store's location).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
    /// The alert's id.
    id: i64,
    /// The new status.
    #[arg(value_parser = ["investigating", "resolved", "false_positive"])]
    status: String,
    /// Why (kept in the alert's history).
    #[arg(long)]
    note: String,
    /// Who (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

pub fn set(args: SetArgs) -> anyhow::Result<ExitCode> {
    let to = args.status.parse::<AlertStatus>().map_err(BadInput)?;
    let by = args
        .by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let mut store = open(args.config.as_deref())?;
    match store.set_alert_status(args.id, to, &by, &args.note, SystemTime::now()) {
        Ok(a) => {
            println!(
                "alert {} is now {} ({} by {by})",
                a.id,
                a.status,
                format_local_ms(now_ms())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (StoreError::NoSuchAlert(_) | StoreError::BadTransition { .. })) => {
            Err(BadInput(e.to_string()).into())
        }
        Err(e) => Err(e.into()),
    }
}

fn now_ms() -> i64 {
    parapet_store::unix_millis(SystemTime::now())
}
