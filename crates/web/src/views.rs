//! What each page shows, as JSON values: the API returns them as they are
//! and the pages render them through templates, so the two cannot differ.
//! Every function takes the tenant scope the [`Viewer`] allowed.

use std::collections::BTreeMap;

use parapet_assurance::quarter::Quarter;
use parapet_core::alert::Alert;
use parapet_core::alert::AlertStatus;
use parapet_core::calendar::{format_datetime, format_datetime_ms};
use parapet_store::accounts::AuditEntry;
use parapet_store::{AlertFilter, Db, HourlyTraffic};
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

/// The overview: the last 7 days.
pub fn overview(db: &mut dyn Db, scope: Option<&str>, now: i64) -> Result<Value, AppError> {
    let since = now - 7 * 86_400;
    let totals = db.traffic_totals(scope, since)?;
    let hourly = db.hourly_traffic(scope, since)?;
    let top = db.top_blocked(scope, since, 10)?;
    let alerts = db.list_alerts(&AlertFilter {
        tenant: scope.map(str::to_string),
        ..AlertFilter::default()
    })?;
    // in workflow order
    let by_status: Vec<Value> = STATUSES
        .iter()
        .map(|s| json!({"status": s.as_str(), "count": alerts.iter().filter(|a| a.status == *s).count()}))
        .collect();
    Ok(json!({
        "tenant": scope,
        "since": format_datetime(since),
        "queries": totals.iter().map(|t| t.queries).sum::<u64>(),
        "blocked": totals.iter().map(|t| t.blocked).sum::<u64>(),
        "tenants": totals.iter().map(|t| json!({"tenant": t.tenant, "queries": t.queries, "blocked": t.blocked})).collect::<Vec<_>>(),
        "alerts_by_status": by_status,
        "top_blocked": top.iter().map(|(t, q, n)| json!({"tenant": t, "name": q, "queries": n})).collect::<Vec<_>>(),
        "hourly": hourly.iter().map(|h| json!({"tenant": h.tenant, "hour": format_datetime(h.hour), "queries": h.queries, "blocked": h.blocked})).collect::<Vec<_>>(),
        "chart_svg": traffic_svg(&hourly),
    }))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Queries per hour, one line per tenant, as inline SVG (no JavaScript).
pub fn traffic_svg(hourly: &[HourlyTraffic]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 200.0;
    const COLOURS: [&str; 6] = [
        "#1b6ac9", "#d4351c", "#00703c", "#f47738", "#4c2c92", "#505a5f",
    ];
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
    let x = |hour: i64| 40.0 + (hour - min_h) as f64 / (max_h - min_h) as f64 * (W - 50.0);
    let y = |q: u64| H - 20.0 - q as f64 / max_q * (H - 40.0);
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-label="queries per hour by tenant" class="chart"><line x1="40" y1="{b}" x2="{W}" y2="{b}" stroke="#999"/><text x="0" y="24" font-size="11">{max_q}</text><text x="0" y="{b}" font-size="11">0</text><text x="40" y="{H}" font-size="11">{from}</text><text x="{r}" y="{H}" font-size="11" text-anchor="end">{to}</text>"##,
        b = H - 20.0,
        from = format_datetime(min_h),
        to = format_datetime(max_h),
        r = W - 10.0,
    );
    for (i, (tenant, points)) in per.iter().enumerate() {
        let c = COLOURS[i % COLOURS.len()];
        let pts: Vec<String> = points
            .iter()
            .map(|h| format!("{:.1},{:.1}", x(h.hour), y(h.queries)))
            .collect();
        svg.push_str(&format!(
            r##"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"><title>{}</title></polyline><text x="{}" y="{}" font-size="11" fill="{c}">{}</text>"##,
            pts.join(" "),
            esc(tenant),
            W - 150.0,
            14.0 + 14.0 * i as f64,
            esc(tenant)
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// Query parameters of the alert list.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AlertQuery {
    pub tenant: Option<String>,
    pub status: Option<String>,
    pub rule: Option<String>,
    /// A date (`2026-11-30`) or date and time.
    pub since: Option<String>,
    pub limit: Option<usize>,
}

pub fn alerts(db: &mut dyn Db, scope: Option<&str>, q: &AlertQuery) -> Result<Value, AppError> {
    check_filter("status", q.status.as_deref())?;
    check_filter("rule", q.rule.as_deref())?;
    check_filter("since", q.since.as_deref())?;
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
    let list = db.list_alerts(&AlertFilter {
        tenant: scope.map(str::to_string),
        status,
        rule: q.rule.clone().filter(|r| !r.is_empty()),
        since,
        limit: Some(q.limit.unwrap_or(500).min(5000)),
    })?;
    Ok(json!({
        "alerts": list.iter().map(Alert::to_json).collect::<Vec<_>>(),
        "filter": {"tenant": scope, "status": q.status, "rule": q.rule, "since": q.since},
        "statuses": STATUSES.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
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
    if note.trim().is_empty() {
        return Err(AppError::BadRequest("a note is required".into()));
    }
    if note.len() > MAX_NOTE {
        return Err(AppError::BadRequest(format!(
            "note: {} bytes, longer than {MAX_NOTE}",
            note.len()
        )));
    }
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
                    .map(|(dm, _, _)| dm),
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

pub fn mail(d: &Dashboard, db: &mut dyn Db, scope: Option<&str>) -> Result<Value, AppError> {
    let mut rows = Vec::new();
    for domain in mail_domains(d, db, scope)? {
        let latest = db.mailcheck_history(&domain, 1)?.into_iter().next();
        let dmarc = db.dmarc_summary(&domain)?;
        rows.push(json!({
            "domain": domain,
            "tenant": tenant_of_domain(d, &domain),
            "checked_at": latest.as_ref().map(|l| format_datetime_ms(l.checked_at)),
            "worst": latest.as_ref().and_then(|l| l.worst.clone()).unwrap_or_else(|| if latest.is_some() { "none".into() } else { "unchecked".into() }),
            "rank": worst_rank(latest.as_ref().and_then(|l| l.worst.as_deref())),
            "findings": latest.as_ref().map_or(0, |l| l.findings.len()),
            "dmarc_reports": dmarc.reports,
            "dmarc_messages": dmarc.messages,
            "dmarc_pass": dmarc.dmarc_pass,
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
        "findings": latest.map(|l| l.findings.iter().map(|f| json!({"severity": f.severity, "code": f.code, "message": f.message})).collect::<Vec<_>>()).unwrap_or_default(),
        "report": latest.and_then(|l| serde_json::from_str::<Value>(&l.report).ok()),
        "history": history.iter().map(|h| json!({"checked_at": format_datetime_ms(h.checked_at), "worst": h.worst, "findings": h.findings.len()})).collect::<Vec<_>>(),
        "changes": changes,
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
        v["key_source"] = json!("kept by your supplier");
        v["store"] = json!("your supplier's database");
    }
    v
}

/// The pseudonyms behind an alert (at most [`ALERT_PSEUDONYMS`]), each
/// marked when it is a configured forwarder, with the command that
/// reveals its address (run by whoever holds the investigation key: the
/// web never does).
pub fn alert_pseudonyms(
    db: &mut dyn Db,
    d: &Dashboard,
    tenant: &str,
    id: i64,
) -> Result<Value, AppError> {
    let list = db.alert_pseudonyms(id, ALERT_PSEUDONYMS)?;
    Ok(json!(
        list.iter()
            .map(|p| json!({
                "pseudonym": p.to_string(),
                "forwarder": d.forwarders.contains(&(tenant.to_string(), *p)),
                "reveal_command": format!(
                    "parapet investigate reveal --pseudonym {p} --tenant {tenant} --key investigation.key --reason \"...\""
                ),
            }))
            .collect::<Vec<_>>()
    ))
}

/// Pseudonyms listed per alert.
pub const ALERT_PSEUDONYMS: usize = 100;

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
    let feeds_for = |t: &str| -> Vec<Value> {
        d.feeds
            .iter()
            .filter(|f| f.tenants.as_ref().is_none_or(|ts| ts.iter().any(|x| x == t)))
            .map(|f| {
                let load = loads.iter().find(|l| l.name == f.name);
                json!({
                    "name": f.name, "category": f.category, "mode": f.mode, "shared": f.tenants.is_none(),
                    "entries": load.map(|l| l.entries),
                    "serial": load.and_then(|l| l.serial),
                    "last_transfer": load.filter(|l| l.last_transfer > 0).map(|l| format_datetime(l.last_transfer as i64)),
                    "last_error": load.and_then(|l| l.last_error.clone()),
                })
            })
            .collect()
    };
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
    Ok(json!({ "tenants": rows }))
}
