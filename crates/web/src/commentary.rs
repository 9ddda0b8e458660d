//! Officer commentary on the dashboard: the form on the assurance page
//! where a council's officer (or a supplier-admin) writes the commentary,
//! actions, options, implications and background papers of the quarter's
//! committee report. Each save is a new, audited version; a frozen
//! quarter's commentary is what was tabled, and is refused.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use parapet_report::{KpiNote, OfficerCommentary, SaveError, save_officer_commentary};
use parapet_store::accounts::AuditEntry;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::app::{AppError, dashboard, now, with_db};
use crate::auth::OfficerViewer;
use crate::handlers::ClientAddr;
use crate::views;

/// The form's fields: a text per KPI and its actions (one a line), the
/// options, the four implications and the background papers (one a line).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CommentaryForm {
    pub csrf: String,
    pub kpi1: String,
    pub kpi2: String,
    pub kpi3: String,
    pub kpi4: String,
    pub kpi5: String,
    pub actions1: String,
    pub actions2: String,
    pub actions3: String,
    pub actions4: String,
    pub actions5: String,
    pub options: String,
    pub financial: String,
    pub legal: String,
    pub risk: String,
    pub equalities: String,
    pub papers: String,
}

/// Text as the form posts it: CRLF made LF, outer space trimmed.
fn text(s: &str) -> String {
    s.replace("\r\n", "\n").trim().to_string()
}

/// One item a line, blank lines dropped.
fn lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

impl CommentaryForm {
    fn commentary(&self) -> OfficerCommentary {
        let kpis = [
            (&self.kpi1, &self.actions1),
            (&self.kpi2, &self.actions2),
            (&self.kpi3, &self.actions3),
            (&self.kpi4, &self.actions4),
            (&self.kpi5, &self.actions5),
        ]
        .map(|(c, a)| KpiNote {
            commentary: text(c),
            actions: lines(a),
        });
        OfficerCommentary {
            kpis,
            options: text(&self.options),
            implications: parapet_report::Implications {
                financial: text(&self.financial),
                legal: text(&self.legal),
                risk: text(&self.risk),
                equalities: text(&self.equalities),
            },
            background_papers: lines(&self.papers),
        }
    }
}

/// `POST /assurance/{tenant}/{quarter}/commentary`.
pub async fn save(
    State(state): State<AppState>,
    OfficerViewer(viewer): OfficerViewer,
    ClientAddr(client): ClientAddr,
    Path((tenant, quarter)): Path<(String, String)>,
    Form(f): Form<CommentaryForm>,
) -> Result<Response, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    let d = dashboard(&state)?;
    // another council's quarter does not exist for this officer
    if !viewer.may_edit_commentary(&tenant) || !d.knows_tenant(&tenant) {
        return Err(AppError::NotFound);
    }
    let q = views::quarter(&d.assurance, &quarter)?;
    let c = f.commentary();
    let typed = words(&c);
    let actor = viewer.user.name.clone();
    let (t, qs) = (tenant.clone(), quarter.clone());
    let saved = with_db(&state, move |db| {
        save_officer_commentary(db, &t, q, &actor, &c, now()).map_err(|e| match e {
            e @ SaveError::Frozen { .. } => AppError::Conflict(e.to_string()),
            SaveError::Invalid(m) => AppError::BadRequest(m),
            SaveError::Store(e) => e.into(),
        })?;
        db.audit(&AuditEntry {
            time: now(),
            actor,
            action: "report.commentary".into(),
            tenant: Some(t),
            detail: qs,
            client: Some(client),
        })?;
        Ok(())
    })
    .await;
    if let Err(AppError::BadRequest(message)) = saved {
        // the page again, with what the officer wrote: nothing is lost
        let query = views::AssuranceQuery {
            tenant: Some(tenant),
            quarter: Some(quarter),
            ..views::AssuranceQuery::default()
        };
        let refused = Refused {
            field: field_of(&message),
            message,
            typed,
        };
        let page =
            crate::handlers::assurance_html(&state, &viewer, query, None, Some(refused)).await?;
        return Ok((StatusCode::BAD_REQUEST, page).into_response());
    }
    saved?;
    Ok(Redirect::to(&format!(
        "/assurance?tenant={}&quarter={}#commentary",
        enc(&tenant),
        enc(&quarter)
    ))
    .into_response())
}

/// A query-string value percent-encoded (tenant names are configured,
/// quarters parsed; this keeps the redirect well formed whatever they hold).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A commentary form refused: the field its message is about, the
/// message, and the words as typed (in [`view`]'s shape).
#[derive(Debug)]
pub struct Refused {
    field: &'static str,
    message: String,
    typed: Value,
}

/// The form field a refusal is about: each message starts with the
/// commentary's own field name (`kpi.2.commentary`, `implications.risk`).
fn field_of(message: &str) -> &'static str {
    const KPI: [(&str, &str); 5] = [
        ("kpi1", "actions1"),
        ("kpi2", "actions2"),
        ("kpi3", "actions3"),
        ("kpi4", "actions4"),
        ("kpi5", "actions5"),
    ];
    let name = message.split(':').next().unwrap_or("");
    let mut parts = name.split('.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("kpi"), Some(n), Some(what)) => n
            .parse::<usize>()
            .ok()
            .and_then(|n| KPI.get(n.wrapping_sub(1)))
            .map_or(
                "commentary-form",
                |(c, a)| if what == "actions" { a } else { c },
            ),
        (Some("options"), None, None) => "options",
        (Some("implications"), Some("financial"), None) => "financial",
        (Some("implications"), Some("legal"), None) => "legal",
        (Some("implications"), Some("risk"), None) => "risk",
        (Some("implications"), Some("equalities"), None) => "equalities",
        (Some("background_papers"), None, None) => "papers",
        _ => "commentary-form",
    }
}

/// Puts a refusal on the assurance page's view: the typed words in the
/// form, and the GOV.UK error summary linking to the field.
pub fn show_refused(v: &mut Value, r: Refused) {
    if let (Some(c), Some(typed)) = (v["commentary"].as_object_mut(), r.typed.as_object()) {
        for (k, x) in typed {
            c.insert(k.clone(), x.clone());
        }
    }
    crate::handlers::with_problems(v, &[(r.field, r.message)]);
}

/// The words of a commentary as the form shows them.
fn words(c: &OfficerCommentary) -> Value {
    json!({
        "kpis": c.kpis.iter().map(|k| json!({
            "commentary": k.commentary, "actions": k.actions.join("\n"),
        })).collect::<Vec<_>>(),
        "options": c.options,
        "implications": c.implications,
        "papers": c.background_papers.join("\n"),
    })
}

/// What the assurance page shows of the commentary: the version in force
/// (its words, when and by whom it was saved), and whether this viewer may
/// edit it.
pub fn view(
    db: &mut dyn parapet_store::Db,
    tenant: &str,
    quarter: &str,
    editable: bool,
) -> Result<Value, AppError> {
    let saved = parapet_report::commentary_in_force(db, tenant, quarter)?;
    let (meta, c) = match saved {
        Some((s, c)) => (
            json!({"saved": parapet_core::calendar::format_local(s.saved_at), "author": s.author}),
            c,
        ),
        None => (Value::Null, OfficerCommentary::default()),
    };
    let mut v = words(&c);
    v["editable"] = json!(editable);
    v["saved"] = meta;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_names_the_form_field_it_is_about() {
        for (message, field) in [
            ("kpi.2.commentary: longer than 16384 bytes", "kpi2"),
            ("kpi.5.actions: more than 50", "actions5"),
            ("kpi.9.actions: more than 50", "commentary-form"),
            ("options: longer than 16384 bytes", "options"),
            (
                "implications.equalities: longer than 16384 bytes",
                "equalities",
            ),
            ("background_papers: more than 50", "papers"),
            ("2026-27-Q4 has not started yet", "commentary-form"),
        ] {
            assert_eq!(field_of(message), field, "{message}");
        }
    }
}
