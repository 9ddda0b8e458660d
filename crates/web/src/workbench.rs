//! The alert page as an analyst's workbench: what the rule means and what
//! to do next, the pseudonyms behind the alert with a link to each one's
//! query timeline, the command that reveals their addresses (the web never
//! holds the investigation key), and two actions for supplier staff:
//! promote the alert to an incident, and mark it a false positive by
//! allowing its name for a while through the store's allowlist, which
//! every node's loader applies.

use axum::Json;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use parapet_assurance::model::Incident;
use parapet_core::alert::Alert;
use parapet_core::calendar::format_datetime;
use parapet_core::pseudonym::ClientPseudonym;
use parapet_core::rules_text::{rule_guidance, rule_title};
use parapet_store::accounts::AuditEntry;
use parapet_store::{AllowEntry, Db, NewAllow};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::app::{AppError, dashboard, with_db};
use crate::auth::{SupplierViewer, Viewer};
use crate::handlers::{ClientAddr, incident_json};
use crate::views::MAX_NOTE;

/// How far before the alert's first query and after its last one a
/// client's timeline link reaches.
pub const TIMELINE_MARGIN_S: i64 = 3600;
/// Pseudonyms listed on the page (the alert counts them all).
pub const PSEUDONYMS_SHOWN: usize = 50;
/// The expiries offered for an allowlist entry, in days, and the default.
pub const ALLOW_DAYS: [u32; 5] = [1, 7, 30, 90, 365];
pub const DEFAULT_ALLOW_DAYS: u32 = 30;
/// The tenant of alerts about Parapet itself: they have no DNS clients.
const SUPPLIER_TENANT: &str = "supplier";
/// Rules about a queried name, which an allowlist entry stops blocking.
const NAME_RULES: &[&str] = &[
    "feed.block",
    "feed.monitor",
    "dga",
    "tunnel",
    "beacon",
    "new_domain",
];

/// The link to one client's query timeline (the query search page) from
/// `since` to `until` (unix seconds).
pub fn timeline_link(tenant: &str, pseudonym: &str, since: i64, until: i64) -> String {
    let q = serde_urlencoded::to_string([
        ("tenant", tenant),
        ("pseudonym", pseudonym),
        ("since", &format_datetime(since)),
        ("until", &format_datetime(until)),
    ])
    .unwrap_or_default();
    format!("/queries?{q}")
}

/// Whether an allowlist entry can answer this alert.
fn allowable(a: &Alert) -> bool {
    a.tenant != SUPPLIER_TENANT && NAME_RULES.contains(&a.rule.as_str())
}

/// Adds the workbench to an alert's view: guidance, pseudonyms with their
/// timelines, forwarder labels and reveal commands, the alert's reveal
/// command, the incident it was promoted to, and what the actions need.
pub fn extend(
    db: &mut dyn Db,
    d: &crate::Dashboard,
    viewer: &Viewer,
    a: &Alert,
    v: &mut Value,
) -> Result<(), AppError> {
    let since = a.first_seen.div_euclid(1000) - TIMELINE_MARGIN_S;
    let until = a.last_seen.div_euclid(1000) + TIMELINE_MARGIN_S;
    let listed: Vec<Value> = db
        .alert_pseudonyms(a.id, PSEUDONYMS_SHOWN)?
        .into_iter()
        // Parapet's own alerts carry no client
        .filter(|p| *p != ClientPseudonym([0; 8]))
        .map(|p| {
            let forwarder = d.forwarders.contains(&(a.tenant.clone(), p));
            let p = p.to_string();
            json!({
                "pseudonym": p,
                "timeline": timeline_link(&a.tenant, &p, since, until),
                "forwarder": forwarder,
                "reveal_command": format!(
                    "parapet investigate reveal --pseudonym {p} --tenant {} --key investigation.key --reason \"...\"",
                    a.tenant
                ),
            })
        })
        .collect();
    let incident = db
        .incidents(Some(&a.tenant))?
        .into_iter()
        .find(|i| i.alert_id == Some(a.id));
    v["rule_title"] = json!(rule_title(&a.rule));
    v["rule_guidance"] = json!(rule_guidance(&a.rule));
    v["pseudonyms_more"] = json!(a.clients.saturating_sub(listed.len() as u64));
    v["pseudonyms"] = json!(listed);
    v["timeline"] = json!({"since": format_datetime(since), "until": format_datetime(until)});
    v["reveal_command"] = json!(format!(
        "parapet investigate reveal --alert {} --key investigation.key --reason \"...\"",
        a.id
    ));
    v["incident"] = incident.as_ref().map_or(Value::Null, incident_json);
    v["actions"] = json!({
        "allowed": crate::Access::Supplier.allows(viewer.user.role),
        "promote": incident.is_none(),
        "allow": allowable(a),
        "allow_name": a.domain,
        "allow_days": ALLOW_DAYS,
        "default_days": DEFAULT_ALLOW_DAYS,
    });
    Ok(())
}

/// Unix seconds as a time (the dashboard's clock).
fn at(secs: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64)
}

/// An analyst's note on an alert: required, at most [`MAX_NOTE`] bytes.
pub(crate) fn check_note(note: &str) -> Result<(), AppError> {
    if note.trim().is_empty() {
        return Err(AppError::BadRequest(
            "note: enter a note saying why (it goes in the alert's history and the audit log)"
                .into(),
        ));
    }
    if note.len() > MAX_NOTE {
        return Err(AppError::BadRequest(format!(
            "note: enter at most {MAX_NOTE} bytes (this one has {})",
            note.len()
        )));
    }
    Ok(())
}

/// The field of the alert page a refused form's message is about (each
/// message starts with the field's name), for the error summary's link.
fn alert_field(form: &str, message: &str) -> &'static str {
    match (form, message.split([':', ' ']).next().unwrap_or("")) {
        ("allow", "name") => "allow-name",
        ("allow", "days") => "allow-days",
        ("allow", "note") => "allow-note",
        ("allow", _) => "allow-button",
        (_, "note") => "note",
        _ => "new-status",
    }
}

/// The alert page again, with the problem a form was refused for (400):
/// the GOV.UK error summary, the message beside the field, what was typed.
pub(crate) async fn alert_form_problem(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    form: &'static str,
    message: String,
    typed: Value,
) -> Result<Response, AppError> {
    let field = alert_field(form, &message);
    let a = crate::handlers::alert_view(state, viewer, id).await?;
    let v = json!({ "alert": a, "form": typed });
    crate::handlers::refused_page(
        "alert.html",
        viewer,
        v,
        &[(field, message)],
        StatusCode::BAD_REQUEST,
    )
}

/// Promotes alert `id` to an open incident (once: a second promotion
/// returns the first incident), moves a new alert to investigating, and
/// writes an audit row.
pub fn promote(
    db: &mut dyn Db,
    viewer: &Viewer,
    id: i64,
    outcome: &str,
    client: &str,
    now: i64,
) -> Result<Incident, AppError> {
    if !matches!(outcome, "attempted" | "successful") {
        return Err(AppError::BadRequest(format!(
            "outcome `{outcome}`: attempted or successful"
        )));
    }
    let a = crate::views::alert(db, viewer, id)?;
    if let Some(i) = (db.incidents(Some(&a.tenant))?)
        .into_iter()
        .find(|i| i.alert_id == Some(id))
    {
        return Ok(i);
    }
    let mut inc = Incident::from_alert(&a, outcome);
    inc.id = db.add_incident(&inc, now)?;
    inc.created_at = now;
    let note = format!("promoted to incident {} ({})", inc.id, inc.reference);
    if a.status == parapet_core::alert::AlertStatus::New {
        db.set_alert_status(
            id,
            parapet_core::alert::AlertStatus::Investigating,
            &viewer.user.name,
            &note,
            at(now),
        )?;
    }
    db.audit(&AuditEntry {
        time: now,
        actor: viewer.user.name.clone(),
        action: "alert.promote".into(),
        tenant: Some(a.tenant.clone()),
        detail: format!("alert {id}: {note}, outcome {outcome}"),
        client: Some(client.to_string()),
    })?;
    Ok(inc)
}

/// A name an analyst may allow for alert `a`: its registrable domain or a
/// name under it, in text form, lower case, without the final dot.
fn allow_name(a: &Alert, given: Option<&str>) -> Result<String, AppError> {
    let name = given
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or(&a.domain)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    parapet_core::name::text_to_key(&name)
        .map_err(|e| AppError::BadRequest(format!("name `{name}`: {e}")))?;
    if name != a.domain && !name.ends_with(&format!(".{}", a.domain)) {
        return Err(AppError::BadRequest(format!(
            "name `{name}`: only `{}` or a name under it can be allowed from this alert",
            a.domain
        )));
    }
    Ok(name)
}

/// Marks alert `id` a false positive and allows its name (or one under
/// it) for `days` days through the store's allowlist, with an audit row.
#[allow(clippy::too_many_arguments)]
pub fn allow(
    db: &mut dyn Db,
    viewer: &Viewer,
    id: i64,
    name: Option<&str>,
    days: u32,
    note: &str,
    client: &str,
    now: i64,
) -> Result<AllowEntry, AppError> {
    check_note(note)?;
    let max = ALLOW_DAYS[ALLOW_DAYS.len() - 1];
    if !(1..=max).contains(&days) {
        return Err(AppError::BadRequest(format!(
            "days: choose from 1 to {max} days ({days} is not)"
        )));
    }
    let a = crate::views::alert(db, viewer, id)?;
    if !allowable(&a) {
        return Err(AppError::BadRequest(format!(
            "alert {id} ({}) is not about a queried name: nothing to allow",
            a.rule
        )));
    }
    let name = allow_name(&a, name)?;
    let expires_at = (now + i64::from(days) * 86_400) * 1000;
    let e = db.add_allow(
        &NewAllow {
            name: name.clone(),
            tenant: Some(a.tenant.clone()),
            alert_id: Some(id),
            added_by: viewer.user.name.clone(),
            reason: note.to_string(),
            expires_at,
        },
        at(now),
    )?;
    db.audit(&AuditEntry {
        time: now,
        actor: viewer.user.name.clone(),
        action: "allowlist.add".into(),
        tenant: Some(a.tenant.clone()),
        detail: format!(
            "alert {id}: false positive, allowed {name} until {} (entry {}): {note}",
            format_datetime(expires_at / 1000),
            e.id
        ),
        client: Some(client.to_string()),
    })?;
    Ok(e)
}

/// An allowlist entry as the API gives it.
pub fn allow_json(e: &AllowEntry) -> Value {
    use parapet_core::calendar::format_datetime_ms;
    json!({
        "id": e.id, "name": e.name, "tenant": e.tenant, "alert_id": e.alert_id,
        "added_by": e.added_by, "reason": e.reason,
        "created_at": format_datetime_ms(e.created_at),
        "expires_at": format_datetime_ms(e.expires_at),
        "removed_at": e.removed_at.map(format_datetime_ms), "removed_by": e.removed_by,
    })
}

#[derive(Debug, Deserialize)]
pub struct PromoteForm {
    #[serde(default = "attempted")]
    pub outcome: String,
    #[serde(default)]
    pub csrf: String,
}

fn attempted() -> String {
    "attempted".into()
}

pub async fn alert_promote_form(
    State(state): State<AppState>,
    SupplierViewer(viewer): SupplierViewer,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
    Form(f): Form<PromoteForm>,
) -> Result<Response, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    let d = dashboard(&state)?;
    let now = d.now();
    with_db(&state, move |db| {
        promote(db, &viewer, id, &f.outcome, &client, now)
    })
    .await?;
    // a new incident counts in the current quarter's KPI 1
    d.memo.clear();
    Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct PromoteBody {
    #[serde(default = "attempted")]
    pub outcome: String,
}

pub async fn alert_promote_api(
    State(state): State<AppState>,
    SupplierViewer(viewer): SupplierViewer,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(b): Json<PromoteBody>,
) -> Result<Json<Value>, AppError> {
    viewer.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    let d = dashboard(&state)?;
    let now = d.now();
    let i = with_db(&state, move |db| {
        promote(db, &viewer, id, &b.outcome, &client, now)
    })
    .await?;
    // a new incident counts in the current quarter's KPI 1
    d.memo.clear();
    Ok(Json(incident_json(&i)))
}

#[derive(Debug, Deserialize)]
pub struct AllowForm {
    pub name: Option<String>,
    #[serde(default = "default_days")]
    pub days: u32,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub csrf: String,
}

fn default_days() -> u32 {
    DEFAULT_ALLOW_DAYS
}

pub async fn alert_allow_form(
    State(state): State<AppState>,
    SupplierViewer(viewer): SupplierViewer,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
    Form(f): Form<AllowForm>,
) -> Result<Response, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    let now = dashboard(&state)?.now();
    let typed = json!({"allow-name": f.name, "allow-note": f.note});
    let vw = viewer.clone();
    let done = with_db(&state, move |db| {
        allow(
            db,
            &vw,
            id,
            f.name.as_deref(),
            f.days,
            &f.note,
            &client,
            now,
        )
    })
    .await;
    if let Err(AppError::BadRequest(m)) = done {
        return alert_form_problem(&state, &viewer, id, "allow", m, typed).await;
    }
    done?;
    Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
}

pub async fn alert_allow_api(
    State(state): State<AppState>,
    SupplierViewer(viewer): SupplierViewer,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(b): Json<AllowForm>,
) -> Result<Json<Value>, AppError> {
    viewer.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    let now = dashboard(&state)?.now();
    let e = with_db(&state, move |db| {
        allow(
            db,
            &viewer,
            id,
            b.name.as_deref(),
            b.days,
            &b.note,
            &client,
            now,
        )
    })
    .await?;
    Ok(Json(allow_json(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeline_link_names_the_client_and_the_window() {
        assert_eq!(
            timeline_link("north shire", "0909090909090909", 0, 7200),
            "/queries?tenant=north+shire&pseudonym=0909090909090909&since=1970-01-01T00%3A00%3A00Z&until=1970-01-01T02%3A00%3A00Z"
        );
    }

    #[test]
    fn only_the_alerts_domain_or_a_name_under_it_is_allowed() {
        let a = Alert {
            id: 1,
            tenant: "north".into(),
            rule: "feed.block".into(),
            domain: "evil.test".into(),
            severity: parapet_core::alert::Severity::High,
            status: parapet_core::alert::AlertStatus::New,
            first_seen: 0,
            last_seen: 0,
            count: 1,
            clients: 1,
            feeds: vec![],
            reason: String::new(),
            evidence: vec![],
            nodes: vec![],
            history: vec![],
        };
        assert_eq!(allow_name(&a, None).unwrap(), "evil.test");
        assert_eq!(
            allow_name(&a, Some(" WWW.Evil.Test. ")).unwrap(),
            "www.evil.test"
        );
        for bad in [
            "test",
            "notevil.test",
            "evil.test.example",
            "bad..evil.test",
        ] {
            assert!(allow_name(&a, Some(bad)).is_err(), "{bad}");
        }
        assert!(allowable(&a));
        let own = Alert {
            tenant: SUPPLIER_TENANT.into(),
            rule: "feed.load_failed".into(),
            ..a
        };
        assert!(!allowable(&own));
    }
}
