//! What a council's report for a quarter is made from, read from storage:
//! the quarter's KPIs (frozen once it has ended) and up to seven earlier
//! quarters for the trend, the protective DNS figures, the alerts and the
//! latest Mail Checks of the council's domains.

use parapet_assurance::frozen::{QuarterError, has_data, quarter_kpis};
use parapet_assurance::kpi::Settings;
use parapet_assurance::quarter::Quarter;
use parapet_assurance::store::ReportSources;
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
/// by `parapet report` and the dashboard's downloads).
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
        .filter(|(d, _, _)| {
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

/// The latest check of each domain, `(domain, checked_at, worst)`, as the
/// report summarises it; `None` when no domain has been checked.
fn mail_summary(latest: &[(String, i64, Option<String>)]) -> Option<MailSummary> {
    if latest.is_empty() {
        return None;
    }
    let worst_is = |w: &str| {
        latest
            .iter()
            .filter(|(_, _, x)| x.as_deref() == Some(w))
            .count() as u64
    };
    Some(MailSummary {
        domains: latest.len() as u64,
        compliant: latest.len() as u64 - worst_is("error"),
        with_errors: worst_is("error"),
        with_warnings: worst_is("warning"),
        detail: latest
            .iter()
            .map(|(d, at, w)| {
                (
                    d.clone(),
                    w.clone().unwrap_or_else(|| "none".into()),
                    format_local_date(*at),
                )
            })
            .collect(),
    })
}
