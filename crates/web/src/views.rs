//! What each page shows, as JSON values: the API returns them as they are
//! and the pages render them through templates, so the two cannot differ.
//! Every function takes the tenant scope the [`Viewer`] allowed.

use std::collections::BTreeMap;

use parapet_assurance::quarter::Quarter;
use parapet_core::alert::Alert;
use parapet_core::alert::AlertStatus;
use parapet_core::calendar::{format_date, format_datetime, format_datetime_ms, parse_datetime};
use parapet_core::event::EventAction;
use parapet_store::accounts::AuditEntry;
use parapet_store::{
    AlertFilter, Db, EventQuery, HourlyTraffic, MAX_SEARCH_DEPTH, NameMatch, StoredEvent,
};
use serde_json::{Value, json};

use crate::app::{AppError, check_filter, now};

/// The longest alert-status note kept (it is stored with the alert and in
/// the audit log).
pub const MAX_NOTE: usize = 4096;
use crate::auth::Viewer;
use crate::{AssuranceSettings, Dashboard};

/// The quarter the assurance pages show when a request names none.
pub fn current_quarter(a: &AssuranceSettings) -> String {
    a.default_quarter
        .clone()
        .unwrap_or_else(|| Quarter::containing(now(), a.quarters).to_string())
}

/// A quarter from a request, in the installation's style.
pub fn quarter(a: &AssuranceSettings, q: &str) -> Result<Quarter, AppError> {
    Quarter::parse_in(q, a.quarters).map_err(|e| AppError::BadRequest(e.to_string()))
}

const STATUSES: [AlertStatus; 4] = [
    AlertStatus::New,
    AlertStatus::Investigating,
    AlertStatus::Resolved,
    AlertStatus::FalsePositive,
];

/// The overview's window: the last 7 days.
pub const OVERVIEW_DAYS: i64 = 7;

/// The overview: the last 7 days. `series`: with the hourly figures as
/// data (the API's; the page draws them as a chart only). `tally`: the
/// alerts counted by status and severity.
pub fn overview(
    db: &mut dyn Db,
    scope: Option<&str>,
    now: i64,
    series: bool,
    tally: &[parapet_store::AlertTally],
) -> Result<Value, AppError> {
    let since = now - OVERVIEW_DAYS * 86_400;
    let totals = db.traffic_totals(scope, since)?;
    let hourly = db.hourly_traffic(scope, since)?;
    // in workflow order
    let by_status: Vec<Value> = STATUSES
        .iter()
        .map(|s| json!({"status": s.as_str(), "count": tally_count(tally, *s, None)}))
        .collect();
    let mut v = json!({
        "tenant": scope,
        "since": format_datetime(since),
        "queries": totals.iter().map(|t| t.queries).sum::<u64>(),
        "blocked": totals.iter().map(|t| t.blocked).sum::<u64>(),
        "tenants": totals.iter().map(|t| json!({"tenant": t.tenant, "queries": t.queries, "blocked": t.blocked})).collect::<Vec<_>>(),
        "alerts_by_status": by_status,
        "chart_svg": traffic_svg(&hourly),
        "legend": traffic_legend(&hourly, &totals),
    });
    if series {
        v["hourly"] = json!(hourly.iter().map(|h| json!({"tenant": h.tenant, "hour": format_datetime(h.hour), "queries": h.queries, "blocked": h.blocked})).collect::<Vec<_>>());
    }
    Ok(v)
}

/// The most-blocked names of the overview's window (the handler keeps
/// them a minute: they group every blocked aggregate row of the week).
pub fn top_blocked(db: &mut dyn Db, scope: Option<&str>, now: i64) -> Result<Value, AppError> {
    let top = db.top_blocked(scope, now - OVERVIEW_DAYS * 86_400, 10)?;
    Ok(json!(
        top.iter()
            .map(|(t, q, n)| json!({"tenant": t, "name": q, "queries": n}))
            .collect::<Vec<_>>()
    ))
}

/// The alerts of the store's tally with `status` (and `severity`).
fn tally_count(
    tally: &[parapet_store::AlertTally],
    status: AlertStatus,
    severity: Option<&str>,
) -> u64 {
    tally
        .iter()
        .filter(|t| t.status == status.as_str() && severity.is_none_or(|s| t.severity == s))
        .map(|t| t.count)
        .sum()
}

/// New alerts by severity, each with the link to its list, from the
/// store's tally.
fn new_by_severity(tally: &[parapet_store::AlertTally], scope: Option<&str>) -> Value {
    json!(
        SEVERITIES
            .iter()
            .map(|s| {
                json!({
                    "severity": s,
                    "count": tally_count(tally, AlertStatus::New, Some(s)),
                    "link": alerts_link(scope, "new", Some(s)),
                })
            })
            .collect::<Vec<_>>()
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [&str; 6] = [
    "#1d70b8", "#d4351c", "#00703c", "#f47738", "#4c2c92", "#505a5f",
];
const DASHES: [&str; 3] = ["", "8 4", "2 3"];

/// The line style of the `i`th tenant: colour and dash together, so the
/// 7th tenant is not drawn like the 1st.
fn line_style(i: usize) -> (&'static str, &'static str) {
    (
        COLOURS[i % COLOURS.len()],
        DASHES[(i / COLOURS.len()) % DASHES.len()],
    )
}

/// The chart's legend: one row per tenant in the chart's order, with its
/// line style and totals, shown as a table beside the chart (labels drawn
/// inside the chart overlapped the lines and ran out of room).
pub fn traffic_legend(
    hourly: &[HourlyTraffic],
    totals: &[parapet_store::TenantTraffic],
) -> Vec<Value> {
    let names: std::collections::BTreeSet<&str> =
        hourly.iter().map(|h| h.tenant.as_str()).collect();
    names
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (colour, dash) = line_style(i);
            let tot = totals.iter().find(|x| x.tenant == *t);
            json!({
                "tenant": t, "colour": colour, "dash": dash,
                "queries": tot.map_or(0, |x| x.queries), "blocked": tot.map_or(0, |x| x.blocked),
            })
        })
        .collect()
}

/// Queries per hour, one line per tenant, as inline SVG (no JavaScript).
pub fn traffic_svg(hourly: &[HourlyTraffic]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 220.0;
    if hourly.is_empty() {
        return "<p>No traffic recorded in this period.</p>".to_string();
    }
    let min_h = hourly.iter().map(|h| h.hour).min().unwrap_or(0);
    let max_h = hourly
        .iter()
        .map(|h| h.hour)
        .max()
        .unwrap_or(0)
        .max(min_h + 3600);
    let max_q = hourly.iter().map(|h| h.queries).max().unwrap_or(1).max(1) as f64;
    let mut per: BTreeMap<&str, Vec<&HourlyTraffic>> = BTreeMap::new();
    for h in hourly {
        per.entry(&h.tenant).or_default().push(h);
    }
    let x = |hour: i64| 50.0 + (hour - min_h) as f64 / (max_h - min_h) as f64 * (W - 60.0);
    let y = |q: u64| H - 24.0 - q as f64 / max_q * (H - 44.0);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-labelledby="traffic-title" class="chart" font-family="arial, sans-serif"><title id="traffic-title">Queries per hour by tenant; the table beside it gives each tenant's totals</title><line x1="50" y1="{b}" x2="{W}" y2="{b}" stroke="#505a5f"/><text x="44" y="24" font-size="12" text-anchor="end">{max_q}</text><text x="44" y="{b}" font-size="12" text-anchor="end">0</text><text x="50" y="{bt}" font-size="12">{from}</text><text x="{r}" y="{bt}" font-size="12" text-anchor="end">{to}</text>"##,
        b = H - 24.0,
        bt = H - 6.0,
        from = esc(&parapet_core::calendar::format_local(min_h)),
        to = esc(&parapet_core::calendar::format_local(max_h)),
        r = W - 10.0,
    );
    for (i, (tenant, points)) in per.iter().enumerate() {
        let (c, dash) = line_style(i);
        let pts: Vec<String> = points
            .iter()
            .map(|h| format!("{:.1},{:.1}", x(h.hour), y(h.queries)))
            .collect();
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        svg.push_str(&format!(
            r##"<polyline fill="none" stroke="{c}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"##,
            pts.join(" "),
            esc(tenant),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// A link to the alert list filtered to `status` (and `severity`), in
/// `scope`.
fn alerts_link(scope: Option<&str>, status: &str, severity: Option<&str>) -> String {
    let mut l = format!("/alerts?status={status}");
    if let Some(s) = severity {
        l.push_str(&format!("&severity={s}"));
    }
    if let Some(t) = scope {
        l.push_str(&format!("&tenant={}", urlencode(t)));
    }
    l
}

/// Percent-encodes a query value (tenant names are plain, but a link must
/// not break on one that is not).
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What needs attention now, for the top of the overview: new alerts by
/// severity, feeds failing, Mail Check regressions and KPIs red or without
/// data; each with the link to the list it counts. `tally`: the alerts
/// counted by status and severity; `kpis`: every tenant's from
/// [`kpis_needing_attention`].
pub fn attention(
    d: &Dashboard,
    db: &mut dyn Db,
    scope: Option<&str>,
    tally: &[parapet_store::AlertTally],
    kpis: &Value,
) -> Result<Value, AppError> {
    let loads = d.feed_load.get().map(|f| f()).unwrap_or_default();
    let failing: Vec<Value> = d
        .feeds
        .iter()
        .filter(|f| {
            scope.is_none_or(|t| {
                f.tenants
                    .as_ref()
                    .is_none_or(|ts| ts.iter().any(|x| x == t))
            })
        })
        .filter_map(|f| {
            let l = loads.iter().find(|l| l.name == f.name)?;
            l.last_error
                .as_ref()
                .map(|e| json!({"name": f.name, "error": e}))
        })
        .collect();
    let regressed: Vec<Value> = mail(d, db, scope)?["domains"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|r| r["regressed"] == json!(true))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let kpis: Vec<&Value> = kpis
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|k| scope.is_none_or(|t| k["tenant"] == t))
                .collect()
        })
        .unwrap_or_default();
    Ok(json!({
        "new_alerts": tally_count(tally, AlertStatus::New, None),
        "new_alerts_link": alerts_link(scope, "new", None),
        "new_by_severity": new_by_severity(tally, scope),
        "feeds_failing": failing,
        "mail_regressed": regressed,
        "mail_regressed_link": "/mail?show=regressed",
        "kpis": kpis,
    }))
}

/// Each tenant whose current-quarter KPIs have a red figure or no data
/// (no devices to count), with a link to its assurance page. A tenant
/// whose KPIs cannot be computed is listed with the reason.
pub fn kpis_needing_attention(d: &Dashboard, db: &mut dyn Db, now: i64) -> Value {
    let quarter = current_quarter(&d.assurance);
    let Ok(q) = Quarter::parse_in(&quarter, d.assurance.quarters) else {
        return json!([]);
    };
    let tenants: Vec<String> = if d.tenants.is_empty() {
        vec!["default".to_string()]
    } else {
        d.tenants.iter().map(|t| t.name.clone()).collect()
    };
    let mut out = Vec::new();
    for t in tenants {
        let link = format!(
            "/assurance?tenant={}&quarter={}",
            urlencode(&t),
            urlencode(&quarter)
        );
        match parapet_assurance::frozen::quarter_kpis(db, &t, q, &d.assurance.kpi, now) {
            Ok(r) => {
                let red: Vec<Value> = r
                    .kpis
                    .iter()
                    .filter(|k| k.rag.as_str() == "red")
                    .map(|k| json!({"id": k.id, "name": k.name}))
                    .collect();
                let no_data: Vec<Value> = r
                    .kpis
                    .iter()
                    .filter(|k| k.id != 1 && k.denominator == 0)
                    .map(|k| json!({"id": k.id, "name": k.name}))
                    .collect();
                if !red.is_empty() || !no_data.is_empty() {
                    out.push(json!({"tenant": t, "quarter": quarter, "red": red, "no_data": no_data, "link": link}));
                }
            }
            Err(e) => out.push(
                json!({"tenant": t, "quarter": quarter, "error": e.to_string(), "link": link}),
            ),
        }
    }
    json!(out)
}

/// The share of a domain's mail passing DMARC per day, as inline SVG: a
/// line with a dot per day (each dot's title gives the day's figures).
/// `None` with no reports.
pub fn dmarc_svg(days: &[parapet_store::DmarcDay]) -> Option<String> {
    const W: f64 = 720.0;
    const H: f64 = 220.0;
    let (first, last) = (days.first()?.day, days.last()?.day);
    let span = (last - first).max(86_400) as f64;
    let x = |d: i64| 60.0 + (d - first) as f64 / span * (W - 80.0);
    let pct = |d: &parapet_store::DmarcDay| {
        if d.messages == 0 {
            0.0
        } else {
            100.0 * d.dmarc_pass as f64 / d.messages as f64
        }
    };
    let y = |p: f64| 16.0 + (100.0 - p) / 100.0 * (H - 50.0);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-labelledby="dmarc-title" class="chart" font-family="arial, sans-serif" font-size="12"><title id="dmarc-title">Share of messages passing DMARC per day, from {} to {}</title>"##,
        format_date(first),
        format_date(last)
    );
    for p in [0.0, 50.0, 100.0] {
        let yy = y(p);
        svg.push_str(&format!(
            r##"<line x1="60" y1="{yy:.1}" x2="{W}" y2="{yy:.1}" stroke="#b1b4b6"/><text x="52" y="{:.1}" text-anchor="end">{p}%</text>"##,
            yy + 4.0,
        ));
    }
    svg.push_str(&format!(
        r##"<text x="60" y="{b}">{}</text><text x="{r}" y="{b}" text-anchor="end">{}</text>"##,
        format_date(first),
        format_date(last),
        b = H - 8.0,
        r = W - 20.0
    ));
    let pts: Vec<String> = days
        .iter()
        .map(|d| format!("{:.1},{:.1}", x(d.day), y(pct(d))))
        .collect();
    svg.push_str(&format!(
        r##"<polyline fill="none" stroke="#1d70b8" stroke-width="2" points="{}"/>"##,
        pts.join(" ")
    ));
    for d in days {
        svg.push_str(&format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"><title>{}: {:.0}% of {} messages passed</title></circle>"##,
            x(d.day),
            y(pct(d)),
            if d.dmarc_pass == 0 { "#d4351c" } else { "#1d70b8" },
            format_date(d.day),
            pct(d),
            d.messages
        ));
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// Query parameters of the alert list.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AlertQuery {
    pub tenant: Option<String>,
    pub status: Option<String>,
    pub rule: Option<String>,
    /// `info`, `low`, `medium` or `high`.
    pub severity: Option<String>,
    /// A date (`2026-11-30`) or date and time.
    pub since: Option<String>,
    /// Alerts per page (500 unless given; the page asks for 100).
    pub limit: Option<usize>,
    /// Which page of `limit` alerts, from 1.
    pub page: Option<usize>,
}

const SEVERITIES: [&str; 4] = ["high", "medium", "low", "info"];

pub fn alerts(db: &mut dyn Db, scope: Option<&str>, q: &AlertQuery) -> Result<Value, AppError> {
    check_filter("status", q.status.as_deref())?;
    check_filter("rule", q.rule.as_deref())?;
    check_filter("since", q.since.as_deref())?;
    check_filter("severity", q.severity.as_deref())?;
    let severity = q.severity.as_deref().filter(|s| !s.is_empty());
    if let Some(s) = severity
        && !SEVERITIES.contains(&s)
    {
        return Err(AppError::BadRequest(format!(
            "severity: `{s}` is not one of {}",
            SEVERITIES.join(", ")
        )));
    }
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<AlertStatus>().map_err(AppError::BadRequest)?),
        None => None,
    };
    let since = match q.since.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            parapet_core::calendar::parse_datetime(s)
                .ok_or_else(|| AppError::BadRequest(format!("since: `{s}` is not a date")))?
                .saturating_mul(1000),
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(500).min(5000);
    // page K (from 1) shows alerts (K-1)*limit.. of the matches; one more
    // is read to know whether a next page exists
    let page = q.page.unwrap_or(1).clamp(1, 5000 / limit.max(1));
    let skip = (page - 1) * limit;
    let mut list = db.list_alerts(&AlertFilter {
        tenant: scope.map(str::to_string),
        status,
        rule: q.rule.clone().filter(|r| !r.is_empty()),
        since,
        // the store does not filter by severity: take every match, then cut
        limit: if severity.is_some() {
            None
        } else {
            Some(skip + limit + 1)
        },
    })?;
    if let Some(sev) = severity {
        list.retain(|a| a.severity.as_str() == sev);
    }
    let has_next = list.len() > skip + limit;
    list.truncate(skip + limit);
    list.drain(..skip.min(list.len()));
    let rules: Vec<Value> = parapet_core::rules_text::known_rules()
        .map(|c| json!({"code": c, "title": parapet_core::rules_text::rule_title(c)}))
        .collect();
    Ok(json!({
        "alerts": list.iter().map(Alert::to_json).collect::<Vec<_>>(),
        "filter": {"tenant": scope, "status": q.status, "rule": q.rule, "severity": q.severity, "since": q.since, "limit": limit},
        "page": page,
        "has_next": has_next,
        "statuses": STATUSES.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "severities": SEVERITIES,
        "rules": rules,
    }))
}

/// One alert the viewer may see (404 otherwise: another tenant's alert
/// does not exist for this viewer).
pub fn alert(db: &mut dyn Db, viewer: &Viewer, id: i64) -> Result<Alert, AppError> {
    let a = db.alert(id)?;
    if !viewer.may_see(&a.tenant) {
        return Err(AppError::NotFound);
    }
    Ok(a)
}

/// An alert's notifications still in the outbox: waiting, retrying or
/// given up (delivered ones are gone). A council sees how delivery stands,
/// not the supplier's addresses or errors (which may name its servers).
pub fn deliveries(db: &mut dyn Db, viewer: &Viewer, id: i64) -> Result<Value, AppError> {
    let rows = db.alert_notifications(id)?;
    Ok(json!(
        rows.iter()
            .map(|n| {
                let target = match &n.target {
                    None => "not routed yet".to_string(),
                    Some(t) if viewer.is_supplier() => t.clone(),
                    Some(t) => t.split(' ').next().unwrap_or_default().to_string(),
                };
                let state = match (n.failed_at, n.attempts) {
                    (Some(_), _) => "given up",
                    (None, 0) => "waiting",
                    (None, _) => "retrying",
                };
                json!({
                    "target": target,
                    "state": state,
                    "attempts": n.attempts,
                    "created_at": format_datetime_ms(n.created_at),
                    "next_at": n.failed_at.is_none().then(|| format_datetime_ms(n.next_at)),
                    "last_error": if viewer.is_supplier() { n.last_error.clone() } else { None },
                    "failed_at": n.failed_at.map(format_datetime_ms),
                })
            })
            .collect::<Vec<_>>()
    ))
}

/// The notification outbox across every tenant (for supplier staff).
pub fn outbox(db: &mut dyn Db) -> Result<Value, AppError> {
    let c = db.outbox_counts()?;
    Ok(json!({"pending": c.pending, "failing": c.retrying, "given_up": c.failed}))
}

pub fn set_status(
    db: &mut dyn Db,
    viewer: &Viewer,
    id: i64,
    status: &str,
    note: &str,
    client: &str,
) -> Result<Alert, AppError> {
    let before = alert(db, viewer, id)?;
    let to: AlertStatus = status.parse().map_err(AppError::BadRequest)?;
    crate::workbench::check_note(note)?;
    let a = db.set_alert_status(
        id,
        to,
        &viewer.user.name,
        note,
        std::time::SystemTime::now(),
    )?;
    db.audit(&AuditEntry {
        time: now(),
        actor: viewer.user.name.clone(),
        action: "alert.status".into(),
        tenant: Some(a.tenant.clone()),
        detail: format!("alert {id}: {} → {}: {note}", before.status, a.status),
        client: Some(client.to_string()),
    })?;
    Ok(a)
}

/// The mail domains a viewer may see: a council's configured domains; for
/// suppliers every checked or configured domain (or one tenant's).
pub fn mail_domains(
    d: &Dashboard,
    db: &mut dyn Db,
    scope: Option<&str>,
) -> Result<Vec<String>, AppError> {
    let mut out: Vec<String> = match scope {
        Some(t) => d
            .tenants
            .iter()
            .filter(|x| x.name == t)
            .flat_map(|x| x.mail_domains.iter().map(|m| m.to_ascii_lowercase()))
            .collect(),
        None => {
            let mut v: Vec<String> = d
                .tenants
                .iter()
                .flat_map(|x| x.mail_domains.iter().map(|m| m.to_ascii_lowercase()))
                .collect();
            v.extend(
                db.mailcheck_latest(i64::MAX / 1000)?
                    .into_iter()
                    .map(|(dm, _, _, _)| dm),
            );
            v
        }
    };
    out.sort();
    out.dedup();
    Ok(out)
}

fn tenant_of_domain(d: &Dashboard, domain: &str) -> Option<String> {
    d.tenants
        .iter()
        .find(|t| {
            t.mail_domains
                .iter()
                .any(|m| m.eq_ignore_ascii_case(domain))
        })
        .map(|t| t.name.clone())
}

fn worst_rank(w: Option<&str>) -> u8 {
    match w {
        Some("error") => 3,
        Some("warning") => 2,
        Some("info") => 1,
        _ => 0,
    }
}

fn finding_json(f: &parapet_store::MailFinding) -> Value {
    json!({"severity": f.severity, "code": f.code, "message": f.message})
}

/// A check's findings, worst first (error, warning, info), in the order
/// found within a severity.
fn worst_first(findings: &[parapet_store::MailFinding]) -> Vec<&parapet_store::MailFinding> {
    let mut v: Vec<_> = findings.iter().collect();
    v.sort_by_key(|f| std::cmp::Reverse(worst_rank(Some(&f.severity))));
    v
}

/// Whether the newer of two checks is worse: a worse top severity, or an
/// error or warning the older check did not have.
fn regressed(newer: &parapet_store::MailCheckRow, older: &parapet_store::MailCheckRow) -> bool {
    worst_rank(newer.worst.as_deref()) > worst_rank(older.worst.as_deref())
        || newer
            .findings
            .iter()
            .any(|f| worst_rank(Some(&f.severity)) >= 2 && !older.findings.contains(f))
}

pub fn mail(d: &Dashboard, db: &mut dyn Db, scope: Option<&str>) -> Result<Value, AppError> {
    let mut rows = Vec::new();
    for domain in mail_domains(d, db, scope)? {
        let last_two = db.mailcheck_history(&domain, 2)?;
        let latest = last_two.first();
        let dmarc = db.dmarc_summary(&domain)?;
        let worst_finding =
            latest.and_then(|l| worst_first(&l.findings).first().map(|f| finding_json(f)));
        let failing_sources = dmarc
            .sources
            .iter()
            .filter(|s| s.messages > 0 && s.dmarc_pass == 0)
            .count();
        rows.push(json!({
            "domain": domain,
            "tenant": tenant_of_domain(d, &domain),
            "checked_at": latest.map(|l| format_datetime_ms(l.checked_at)),
            "worst": latest.and_then(|l| l.worst.clone()).unwrap_or_else(|| if latest.is_some() { "none".into() } else { "unchecked".into() }),
            "worst_finding": worst_finding,
            "rank": worst_rank(latest.and_then(|l| l.worst.as_deref())),
            "findings": latest.map_or(0, |l| l.findings.len()),
            "regressed": matches!(&last_two[..], [n, o] if regressed(n, o)),
            "dmarc_reports": dmarc.reports,
            "dmarc_messages": dmarc.messages,
            "dmarc_pass": dmarc.dmarc_pass,
            "dmarc_failing_sources": failing_sources,
        }));
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r["rank"].as_u64().unwrap_or(0)));
    Ok(json!({ "domains": rows }))
}

pub fn mail_domain(
    d: &Dashboard,
    db: &mut dyn Db,
    viewer: &Viewer,
    domain: &str,
) -> Result<Value, AppError> {
    let domain = domain.to_ascii_lowercase();
    let scope = viewer.scope(None)?;
    if !mail_domains(d, db, scope.as_deref())?.contains(&domain) {
        return Err(AppError::NotFound);
    }
    let history = db.mailcheck_history(&domain, 20)?;
    let mut changes = Vec::new();
    for pair in history.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        let new: Vec<_> = newer
            .findings
            .iter()
            .filter(|f| !older.findings.contains(f))
            .collect();
        let fixed: Vec<_> = older
            .findings
            .iter()
            .filter(|f| !newer.findings.contains(f))
            .collect();
        changes.push(json!({
            "checked_at": format_datetime_ms(newer.checked_at),
            "previous_at": format_datetime_ms(older.checked_at),
            "new": new.iter().map(|f| json!({"severity": f.severity, "code": f.code, "message": f.message})).collect::<Vec<_>>(),
            "fixed": fixed.iter().map(|f| json!({"severity": f.severity, "code": f.code, "message": f.message})).collect::<Vec<_>>(),
        }));
    }
    let latest = history.first();
    let dmarc = db.dmarc_summary(&domain)?;
    let daily = db.dmarc_daily(&domain)?;
    let threshold = d.unknown_sender_threshold;
    let source = |s: &parapet_store::SourceSummary| {
        let who = s.sender.as_ref();
        json!({
            "source_ip": s.source_ip, "messages": s.messages, "dmarc_pass": s.dmarc_pass,
            "dkim_aligned": s.dkim_aligned, "spf_aligned": s.spf_aligned,
            "quarantined": s.quarantined, "rejected": s.rejected,
            "ptr": who.and_then(|w| w.ptr.clone()),
            "forward_confirmed": who.map(|w| w.confirmed),
            "base_domain": who.and_then(|w| w.base_domain.clone()),
            "service": s.service(),
            "unknown_sender": s.unknown_sender(threshold),
            // every message from this source failed DMARC
            "failing": s.messages > 0 && s.dmarc_pass == 0,
        })
    };
    let services: Vec<Value> = dmarc
        .by_service()
        .iter()
        .map(|g| {
            json!({
                "service": g.name, "type": g.service_type, "identified": g.identified,
                "messages": g.messages, "dmarc_pass": g.dmarc_pass,
                "sources": g.sources.iter().map(source).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({
        "domain": domain,
        "tenant": tenant_of_domain(d, &domain),
        "checked_at": latest.map(|l| format_datetime_ms(l.checked_at)),
        "worst": latest.and_then(|l| l.worst.clone()),
        "findings": latest.map(|l| worst_first(&l.findings).into_iter().map(finding_json).collect::<Vec<_>>()).unwrap_or_default(),
        "report": latest.and_then(|l| serde_json::from_str::<Value>(&l.report).ok()),
        "history": history.iter().map(|h| json!({"checked_at": format_datetime_ms(h.checked_at), "worst": h.worst, "findings": h.findings.len()})).collect::<Vec<_>>(),
        "changes": changes,
        "dmarc_daily": daily.iter().map(|d| json!({"day": format_date(d.day), "messages": d.messages, "dmarc_pass": d.dmarc_pass})).collect::<Vec<_>>(),
        "dmarc_chart": dmarc_svg(&daily),
        "dmarc": {
            "reports": dmarc.reports, "messages": dmarc.messages, "dmarc_pass": dmarc.dmarc_pass,
            "dkim_aligned": dmarc.dkim_aligned, "spf_aligned": dmarc.spf_aligned,
            "first": dmarc.first.map(format_datetime), "last": dmarc.last.map(format_datetime),
            "sources": dmarc.sources.iter().map(source).collect::<Vec<_>>(),
            "services": services,
            "unknown_sender_threshold": threshold,
        },
    }))
}

/// The tenant an assurance view is about: a council's own; for suppliers
/// the one asked for, else the first configured, else `default`.
pub fn assurance_tenant(
    d: &Dashboard,
    viewer: &Viewer,
    requested: Option<&str>,
) -> Result<String, AppError> {
    let tenant = viewer.scope(requested)?.unwrap_or_else(|| {
        d.tenants
            .first()
            .map_or_else(|| "default".to_string(), |t| t.name.clone())
    });
    // a tenant nobody configured has no quarters to compute or freeze
    if !d.knows_tenant(&tenant) {
        return Err(AppError::NotFound);
    }
    Ok(tenant)
}

/// Query parameters of the assurance views.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AssuranceQuery {
    pub tenant: Option<String>,
    pub quarter: Option<String>,
    /// Free-text search in the register.
    pub q: Option<String>,
    pub class: Option<String>,
    pub source: Option<String>,
    /// `in-scope`, `out-of-scope`, `managed`, `unmanaged`.
    pub status: Option<String>,
}

/// The register filtered as asked.
pub fn register(report: &parapet_assurance::kpi::KpiReport, q: &AssuranceQuery) -> Vec<Value> {
    let text = q.q.as_deref().unwrap_or("").to_ascii_lowercase();
    let nonempty = |o: &Option<String>| o.clone().filter(|s| !s.is_empty());
    let (class, source, status) = (nonempty(&q.class), nonempty(&q.source), nonempty(&q.status));
    report
        .register
        .iter()
        .filter(|r| {
            text.is_empty()
                || r.device.to_ascii_lowercase().contains(&text)
                || r.os
                    .as_deref()
                    .unwrap_or("")
                    .to_ascii_lowercase()
                    .contains(&text)
                || r.identifiers
                    .iter()
                    .any(|i| i.to_ascii_lowercase().contains(&text))
        })
        .filter(|r| {
            class
                .as_ref()
                .is_none_or(|c| r.class.eq_ignore_ascii_case(c))
        })
        .filter(|r| {
            source
                .as_ref()
                .is_none_or(|s| r.sources.iter().any(|x| x.contains(s.as_str())))
        })
        .filter(|r| match status.as_deref() {
            Some("in-scope") => r.in_scope,
            Some("out-of-scope") => !r.in_scope,
            Some("managed") => r.managed,
            Some("unmanaged") => !r.managed,
            _ => true,
        })
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect()
}

pub fn audit(db: &mut dyn Db, scope: Option<&str>) -> Result<Value, AppError> {
    let log = db.audit_log(scope, 200)?;
    Ok(json!({ "entries": log.iter().map(|e| json!({
        "time": format_datetime(e.time), "actor": e.actor, "action": e.action,
        "tenant": e.tenant, "detail": e.detail, "client": e.client,
    })).collect::<Vec<_>>() }))
}

/// The privacy statement. A council's copy names no server path (the key
/// file, the store): those are the supplier's.
pub fn privacy(d: &Dashboard, supplier: bool) -> Value {
    let p = &d.privacy;
    let (mode, meaning) = parapet_store::sealed::privacy_mode(p.sealed.as_deref());
    let mut v = json!({
        "events_days": p.events_days,
        "aggregates_days": p.aggregates_days,
        "event_fields": parapet_store::EVENT_FIELDS.iter().map(|(n, w)| json!({"name": n, "what": w})).collect::<Vec<_>>(),
        "aggregate_fields": parapet_store::AGGREGATE_FIELDS.iter().map(|(n, w)| json!({"name": n, "what": w})).collect::<Vec<_>>(),
        "not_stored": if p.sealed.is_some() {
            "No client IP address in clear (only sealed, see below), no port or query ID, no answer records, no other part of the packet. The client address is replaced by its pseudonym in memory, before an event is written anywhere."
        } else {
            "No client IP address, port or query ID, no answer records, no other part of the packet. The client address is replaced by its pseudonym in memory, before an event is written anywhere."
        },
        "pseudonymisation": "HMAC-SHA256 of the client address under the operator's key, first 64 bits, hex. The same client gets the same pseudonym while the key is unchanged. Whoever holds that key can test every IPv4 address against a pseudonym and so recover it: the supplier protects it like the database. A reveal never uses it: sealed addresses open with the investigation key only.",
        "key_source": p.key_source,
        "store": p.store,
        "flush_interval_ms": p.flush_interval_ms,
        "retention_enforced": "at start and every hour",
        "sealing": {
            "mode": mode,
            "fingerprint": p.sealed,
            "meaning": meaning,
            "fields": if p.sealed.is_some() {
                parapet_store::SEALED_FIELDS.iter().map(|(n, w)| json!({"name": n, "what": w})).collect::<Vec<_>>()
            } else {
                Vec::new()
            },
        },
    });
    if !supplier {
        v["key_source"] = json!("held by the supplier on the server, never shown on the dashboard");
        v["store"] = json!(if p.store.starts_with("postgres") {
            "a PostgreSQL database run by the supplier"
        } else {
            "a SQLite database on the supplier's server"
        });
    }
    v
}

/// The tenants a viewer may see, with their networks, mail domains, the
/// last 7 days' traffic and the feeds that protect them.
pub fn tenants(
    d: &Dashboard,
    db: &mut dyn Db,
    scope: Option<&str>,
    now: i64,
) -> Result<Value, AppError> {
    let traffic = db.traffic_totals(scope, now - 7 * 86_400)?;
    let mut names: Vec<String> = d
        .tenants
        .iter()
        .map(|t| t.name.clone())
        .chain(traffic.iter().map(|t| t.tenant.clone()))
        .filter(|t| scope.is_none_or(|s| s == t))
        .collect();
    names.sort();
    names.dedup();
    let loads = d.feed_load.get().map(|f| f()).unwrap_or_default();
    let feed_json = |f: &crate::FeedInfo| {
        let load = loads.iter().find(|l| l.name == f.name);
        json!({
            "name": f.name, "category": f.category, "mode": f.mode, "shared": f.tenants.is_none(),
            "tenants": f.tenants, "source": f.source,
            "entries": load.map(|l| l.entries),
            "serial": load.and_then(|l| l.serial),
            "last_transfer": load.filter(|l| l.last_transfer > 0).map(|l| format_datetime(l.last_transfer as i64)),
            "last_load": load.filter(|l| l.last_load > 0).map(|l| format_datetime(l.last_load as i64)),
            "last_error": load.and_then(|l| l.last_error.clone()),
        })
    };
    let feeds_for = |t: &str| -> Vec<Value> {
        d.feeds
            .iter()
            .filter(|f| {
                f.tenants
                    .as_ref()
                    .is_none_or(|ts| ts.iter().any(|x| x == t))
            })
            .map(feed_json)
            .collect()
    };
    // every feed the viewer's tenants get: the shared ones and each
    // tenant's own (a council sees only its own besides the shared)
    let feeds: Vec<Value> = d
        .feeds
        .iter()
        .filter(|f| {
            f.tenants
                .as_ref()
                .is_none_or(|ts| scope.is_none_or(|s| ts.iter().any(|x| x == s)))
        })
        .map(|f| {
            let mut v = feed_json(f);
            if let (Some(s), Some(ts)) = (scope, &f.tenants) {
                v["tenants"] = json!(ts.iter().filter(|t| *t == s).collect::<Vec<_>>());
            }
            v
        })
        .collect();
    let rows: Vec<Value> = names
        .iter()
        .map(|n| {
            let info = d.tenants.iter().find(|t| &t.name == n);
            let tr = traffic.iter().find(|t| &t.tenant == n);
            json!({
                "name": n,
                "display_name": info.and_then(|i| i.display_name.clone()),
                "networks": info.map(|i| i.networks.clone()).unwrap_or_default(),
                "mail_domains": info.map(|i| i.mail_domains.clone()).unwrap_or_default(),
                "queries": tr.map_or(0, |t| t.queries),
                "blocked": tr.map_or(0, |t| t.blocked),
                "feeds": feeds_for(n),
            })
        })
        .collect();
    Ok(json!({ "tenants": rows, "feeds": feeds }))
}

/// Query parameters of the query search (`/queries`, `/api/v1/queries`).
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
pub struct QueriesQuery {
    pub tenant: Option<String>,
    /// A client's pseudonym: 16 hexadecimal digits.
    pub pseudonym: Option<String>,
    pub name: Option<String>,
    /// `exact` (the default) or `suffix`.
    #[serde(rename = "match")]
    pub name_match: Option<String>,
    /// A registrable domain (a longer name is cut to its registrable domain).
    pub domain: Option<String>,
    pub action: Option<String>,
    /// The feed (rule) that matched.
    pub rule: Option<String>,
    /// RFC 3339, or a date (from its start).
    pub since: Option<String>,
    /// RFC 3339, or a date (to its end).
    pub until: Option<String>,
    /// From 1.
    pub page: Option<String>,
}

/// Rows per page of the query search.
pub const QUERIES_PAGE: usize = 50;

/// A non-empty, length-checked field.
fn field<'a>(name: &str, v: &'a Option<String>) -> Result<Option<&'a str>, AppError> {
    check_filter(name, v.as_deref())?;
    Ok(v.as_deref().map(str::trim).filter(|s| !s.is_empty()))
}

/// A search filter from the request's parameters, each refused with its
/// name when malformed; `scope` is the tenant the viewer may see.
pub fn event_query(scope: Option<&str>, q: &QueriesQuery) -> Result<EventQuery, AppError> {
    let bad = |m: String| AppError::BadRequest(m);
    let client = match field("pseudonym", &q.pseudonym)? {
        Some(p) => {
            let mut b = [0u8; 8];
            hex::decode_to_slice(p, &mut b)
                .map_err(|_| bad(format!("pseudonym: `{p}` is not 16 hexadecimal digits")))?;
            Some(b)
        }
        None => None,
    };
    let name_match = match field("match", &q.name_match)? {
        None | Some("exact") => NameMatch::Exact,
        Some("suffix") => NameMatch::Suffix,
        Some(m) => return Err(bad(format!("match: `{m}` is not exact or suffix"))),
    };
    let action = match field("action", &q.action)? {
        Some(a) if !EventAction::ALL.iter().any(|x| x.as_str() == a) => {
            return Err(bad(format!("action: `{a}` is not an action")));
        }
        a => a.map(str::to_string),
    };
    let time =
        |name: &str, v: &Option<String>, end_of_day: bool| -> Result<Option<i64>, AppError> {
            let Some(s) = field(name, v)? else {
                return Ok(None);
            };
            let t = parse_datetime(s)
                .ok_or_else(|| bad(format!("{name}: `{s}` is not an RFC 3339 time or a date")))?;
            // a bare date names the whole day
            let whole_day = end_of_day && s.len() == 10;
            Ok(Some(
                (t + if whole_day { 86_400 } else { 0 }).saturating_mul(1000),
            ))
        };
    let page = match field("page", &q.page)? {
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|&p| p >= 1)
            .ok_or_else(|| bad(format!("page: `{p}` is not a page number")))?,
        None => 1,
    };
    let offset = (page - 1).saturating_mul(QUERIES_PAGE);
    if offset >= MAX_SEARCH_DEPTH {
        return Err(bad(format!(
            "page: past the first {MAX_SEARCH_DEPTH} rows; narrow the search"
        )));
    }
    Ok(EventQuery {
        tenant: scope.map(str::to_string),
        client,
        name: field("name", &q.name)?.map(str::to_string),
        name_match,
        domain: field("domain", &q.domain)?.map(|d| {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            psl::domain_str(&d).unwrap_or(&d).to_string()
        }),
        action,
        feed: field("rule", &q.rule)?.map(str::to_string),
        since: time("since", &q.since, false)?,
        until: time("until", &q.until, true)?,
        offset,
        // one more than a page: whether there is a next one
        limit: QUERIES_PAGE + 1,
    })
}

/// One stored query event as the search shows it.
pub fn event_json(e: &StoredEvent) -> Value {
    json!({
        "id": e.id,
        "time": format_datetime_ms(e.time),
        "tenant": e.tenant,
        "pseudonym": e.client,
        "name": e.qname,
        "qtype": e.qtype,
        "rcode": e.rcode,
        "action": e.action,
        "rule": e.feed,
        "node": e.node,
        "queries": e.queries,
        "last_time": e.last_time.map(format_datetime_ms),
    })
}

/// The query search: one page of stored query events, newest first.
pub fn queries(db: &mut dyn Db, scope: Option<&str>, q: &QueriesQuery) -> Result<Value, AppError> {
    let search = event_query(scope, q)?;
    let mut rows = db.search_events(&search)?;
    let more = rows.len() > QUERIES_PAGE;
    rows.truncate(QUERIES_PAGE);
    let page = search.offset / QUERIES_PAGE + 1;
    let link = |page: usize| -> Option<String> {
        let mut filter = q.clone();
        filter.page = Some(page.to_string());
        let pairs: Vec<(&str, &str)> = [
            ("tenant", &filter.tenant),
            ("pseudonym", &filter.pseudonym),
            ("name", &filter.name),
            ("match", &filter.name_match),
            ("domain", &filter.domain),
            ("action", &filter.action),
            ("rule", &filter.rule),
            ("since", &filter.since),
            ("until", &filter.until),
            ("page", &filter.page),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v.as_deref().filter(|v| !v.is_empty())?)))
        .collect();
        serde_urlencoded::to_string(pairs)
            .ok()
            .map(|s| format!("/queries?{s}"))
    };
    let events: Vec<Value> = rows.iter().map(event_json).collect();
    Ok(json!({
        "events": events,
        "page": page,
        "page_size": QUERIES_PAGE,
        "next": if more { link(page + 1) } else { None },
        "previous": if page > 1 { link(page - 1) } else { None },
        "filter": {
            "tenant": scope,
            "pseudonym": q.pseudonym,
            "name": q.name,
            "match": if search.name_match == NameMatch::Suffix { "suffix" } else { "exact" },
            "domain": search.domain,
            "action": q.action,
            "rule": q.rule,
            "since": q.since,
            "until": q.until,
        },
        "actions": EventAction::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
    }))
}
