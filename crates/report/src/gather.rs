//! What a council's report for a quarter is made from, read from storage:
//! the quarter's KPIs (its frozen version, or live and provisional) and up to seven earlier
//! quarters for the trend, the protective DNS figures, the alerts and the
//! latest Mail Checks of the council's domains.

use parapet_assurance::frozen::{QuarterError, has_data, quarter_kpis};
use std::collections::BTreeMap;

use parapet_assurance::kpi::{KpiReport, Settings};
use parapet_assurance::quarter::Quarter;
use parapet_assurance::store::{LatestCheck, ReportSources};
use parapet_core::calendar::format_local_date;

use crate::{AlertLine, DEFAULT_EXEMPTION, HistoryPoint, MailSummary, PdnsSummary, ReportInput};

/// Earlier quarters shown in the trend, at most.
const HISTORY_QUARTERS: usize = 7;

/// The council a report is for, as the installation names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Council {
    /// The name printed on the report.
    pub name: String,
    /// The mail domains whose Mail Checks the report summarises.
    pub mail_domains: Vec<String>,
    /// The council's report profile.
    pub profile: crate::ReportProfile,
}

impl Council {
    /// The committee the report goes to: the profile's, else `fallback`.
    pub fn committee(&self, fallback: &str) -> String {
        self.profile
            .committee
            .clone()
            .unwrap_or_else(|| fallback.to_string())
    }
}

/// The words on a report that are not computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportText {
    pub committee: String,
    /// The exemption paragraph; the profile's, else [`DEFAULT_EXEMPTION`],
    /// when `None`.
    pub exemption: Option<String>,
}

/// Everything the committee report of `tenant` for `quarter` shows (used
/// by `parapet report` and the dashboard's downloads): the frozen version
/// in force, or live figures marked provisional.
pub fn report_input<S: ReportSources + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    settings: &Settings,
    council: &Council,
    text: ReportText,
    now: i64,
) -> Result<ReportInput, QuarterError<S::Error>> {
    let kpi = quarter_kpis(store, tenant, quarter, settings, now)?;
    report_input_of(store, kpi, tenant, quarter, settings, council, text, now)
}

/// Why a report of `quarter` with these figures is provisional: `None`
/// once it is frozen, the only state a committee should be given.
pub fn provisional(quarter: Quarter, kpi: &KpiReport, now: i64) -> Option<String> {
    if kpi.frozen {
        None
    } else if quarter.end() >= now {
        Some(format!(
            "the quarter has not ended: figures as at {}, and they will change",
            kpi.snapshot_date
        ))
    } else {
        Some("the quarter has not been frozen, so the figures may still change".into())
    }
}

/// As [`report_input`], with the quarter's figures already had (e.g. one
/// frozen version, to reproduce a tabled report).
#[allow(clippy::too_many_arguments)]
pub fn report_input_of<S: ReportSources + ?Sized>(
    store: &mut S,
    kpi: KpiReport,
    tenant: &str,
    quarter: Quarter,
    settings: &Settings,
    council: &Council,
    text: ReportText,
    now: i64,
) -> Result<ReportInput, QuarterError<S::Error>> {
    let history = history(store, tenant, quarter, settings, now)?;
    let (start, end) = (quarter.start(), quarter.end());
    let (queries, blocked) = store
        .pdns_totals(tenant, start, end + 1)
        .map_err(QuarterError::Store)?;
    let alerts: Vec<AlertLine> = store
        .alerts_active(tenant, start * 1000, end * 1000 + 999)
        .map_err(QuarterError::Store)?
        .into_iter()
        .map(|al| AlertLine {
            id: al.id,
            rule: al.rule,
            domain: al.domain,
            severity: al.severity.as_str().to_string(),
            status: al.status.as_str().to_string(),
            first_seen: format_local_date(al.first_seen / 1000),
            count: al.count,
        })
        .collect();
    let pdns = (queries > 0 || !alerts.is_empty()).then_some(PdnsSummary {
        queries,
        blocked,
        alerts: alerts.len() as u64,
    });
    let latest: Vec<_> = store
        .mailcheck_latest(end)
        .map_err(QuarterError::Store)?
        .into_iter()
        .filter(|(d, _, _, _)| {
            council
                .mail_domains
                .iter()
                .any(|x| x.eq_ignore_ascii_case(d))
        })
        .collect();
    let officer = crate::commentary_in_force(store, tenant, &quarter.to_string())
        .map_err(QuarterError::Store)?
        .map(|(_, c)| c)
        .unwrap_or_default();
    Ok(ReportInput {
        provisional: provisional(quarter, &kpi, now),
        council: council.name.clone(),
        committee: text.committee,
        date: format_local_date(now),
        exemption: text
            .exemption
            .or_else(|| council.profile.exemption.clone())
            .unwrap_or_else(|| DEFAULT_EXEMPTION.to_string()),
        profile: council.profile.clone(),
        officer,
        kpi,
        history,
        pdns,
        mail: mail_summary(&latest),
        alerts,
    })
}

/// Up to [`HISTORY_QUARTERS`] quarters before `quarter` with data, oldest
/// first, for the trend.
fn history<S: ReportSources + ?Sized>(
    store: &mut S,
    tenant: &str,
    quarter: Quarter,
    settings: &Settings,
    now: i64,
) -> Result<Vec<HistoryPoint>, QuarterError<S::Error>> {
    let mut history = Vec::new();
    let mut q = quarter.previous();
    for _ in 0..HISTORY_QUARTERS {
        if !has_data(store, tenant, q.end())? {
            break;
        }
        let r = quarter_kpis(store, tenant, q, settings, now)?;
        let mut den = [0; 5];
        for k in &r.kpis {
            den[k.id as usize - 1] = k.denominator;
        }
        history.push(HistoryPoint {
            quarter: r.quarter.clone(),
            counts: r.counts(),
            denominators: den,
        });
        q = q.previous();
    }
    history.reverse();
    Ok(history)
}

/// The latest check of each domain as the report summarises it; `None`
/// when no domain has been checked. The standard is `parapet mailcheck`'s:
/// a domain meets it when no finding is an error (the command's exit 1).
fn mail_summary(latest: &[LatestCheck]) -> Option<MailSummary> {
    if latest.is_empty() {
        return None;
    }
    let has = |f: &[(String, String)], sev: &str| f.iter().any(|(s, _)| s == sev);
    let with_errors = latest.iter().filter(|l| has(&l.3, "error")).count() as u64;
    let with_warnings = latest
        .iter()
        .filter(|l| !has(&l.3, "error") && has(&l.3, "warning"))
        .count() as u64;
    // domains per finding, each domain once per code
    let mut by_code: BTreeMap<(u8, String, String), u64> = BTreeMap::new();
    for (_, _, _, findings) in latest {
        let mut seen: Vec<&(String, String)> = findings.iter().collect();
        seen.sort();
        seen.dedup();
        for (sev, code) in seen {
            let rank = match sev.as_str() {
                "error" => 0,
                "warning" => 1,
                _ => 2,
            };
            *by_code
                .entry((rank, sev.clone(), code.clone()))
                .or_insert(0) += 1;
        }
    }
    Some(MailSummary {
        domains: latest.len() as u64,
        compliant: latest.len() as u64 - with_errors,
        with_errors,
        with_warnings,
        findings: by_code
            .into_iter()
            .map(|((_, sev, code), n)| (sev, code, n))
            .collect(),
        detail: latest
            .iter()
            .map(|(d, at, w, _)| {
                (
                    d.clone(),
                    w.clone().unwrap_or_else(|| "none".into()),
                    format_local_date(*at),
                )
            })
            .collect(),
    })
}
