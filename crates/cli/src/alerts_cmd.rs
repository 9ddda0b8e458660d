//! `parapet alerts list` and `parapet alerts set`: the analysts' view of
//! detection, straight from the store.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parapet_core::alert::AlertStatus;
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
        let v: Vec<serde_json::Value> = alerts.iter().map(parapet_web::alert_json).collect();
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
            rfc3339(a.last_seen)
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
                rfc3339(now_ms())
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

/// Unix milliseconds as an RFC 3339 UTC timestamp, to the second.
pub fn rfc3339(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000_000), "2026-11-18T11:06:40Z");
    }
}
