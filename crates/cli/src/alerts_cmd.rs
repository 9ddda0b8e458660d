//! `parapet alerts list` and `parapet alerts set`: the analysts' view of
//! detection, straight from the store.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use parapet_core::alert::AlertStatus;
use parapet_core::calendar::format_local_ms;
use parapet_store::{AlertFilter, Db, StoreError};

use crate::BadInput;
use crate::config::Config;

fn open(config_path: Option<&Path>) -> anyhow::Result<Box<dyn Db>> {
    Config::load_or_embedded(config_path)?.open_store()
}

pub struct ListArgs<'a> {
    pub tenant: Option<String>,
    pub status: Option<&'a str>,
    pub rule: Option<String>,
    pub limit: usize,
    pub json: bool,
}

pub fn list(config_path: Option<&Path>, args: ListArgs<'_>) -> anyhow::Result<ExitCode> {
    let status = args
        .status
        .map(|s| s.parse::<AlertStatus>().map_err(BadInput))
        .transpose()?;
    let mut store = open(config_path)?;
    let alerts = store.list_alerts(&AlertFilter {
        tenant: args.tenant,
        status,
        rule: args.rule,
        since: None,
        limit: Some(args.limit),
    })?;
    if args.json {
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

pub fn set(
    config_path: Option<&Path>,
    id: i64,
    status: &str,
    note: &str,
    by: Option<String>,
) -> anyhow::Result<ExitCode> {
    let to = status.parse::<AlertStatus>().map_err(BadInput)?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into());
    let mut store = open(config_path)?;
    match store.set_alert_status(id, to, &by, note, SystemTime::now()) {
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
