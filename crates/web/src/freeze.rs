//! Freezing and reopening a council's quarter from the assurance page
//! (supplier-admin only, CSRF-checked, audited): the same
//! [`parapet_assurance::frozen`] calls as `parapet kpi freeze` and
//! `parapet kpi reopen`. The page is shown again with what happened; a
//! refusal the admin can act on (quarter not ended, already frozen, not
//! frozen, no reason) is a message on it, not an error page.

use axum::extract::{Form, Path, State};
use axum::response::Html;
use parapet_assurance::frozen::{QuarterError, freeze_quarter, reopen_quarter};
use parapet_store::accounts::AuditEntry;
use serde::Deserialize;

use crate::AppState;
use crate::app::{AppError, dashboard, now, with_db};
use crate::auth::AdminViewer;
use crate::handlers::{ClientAddr, assurance_html};
use crate::views::{self, AssuranceQuery};

/// The freeze and reopen forms' fields.
#[derive(Deserialize)]
pub struct QuarterForm {
    #[serde(default)]
    csrf: String,
    /// Why a quarter is reopened (required there).
    #[serde(default)]
    reason: String,
}

/// Which action a form asks for.
#[derive(Clone, Copy)]
enum Action {
    Freeze,
    Reopen,
}

/// `POST /reports/{tenant}/{quarter}/freeze`.
pub async fn freeze(
    state: State<AppState>,
    viewer: AdminViewer,
    client: ClientAddr,
    path: Path<(String, String)>,
    form: Form<QuarterForm>,
) -> Result<Html<String>, AppError> {
    act(state, viewer, client, path, form, Action::Freeze).await
}

/// `POST /reports/{tenant}/{quarter}/reopen`.
pub async fn reopen(
    state: State<AppState>,
    viewer: AdminViewer,
    client: ClientAddr,
    path: Path<(String, String)>,
    form: Form<QuarterForm>,
) -> Result<Html<String>, AppError> {
    act(state, viewer, client, path, form, Action::Reopen).await
}

async fn act(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
    ClientAddr(client): ClientAddr,
    Path((tenant, quarter)): Path<(String, String)>,
    Form(f): Form<QuarterForm>,
    action: Action,
) -> Result<Html<String>, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    let d = dashboard(&state)?;
    if !d.knows_tenant(&tenant) {
        return Err(AppError::NotFound);
    }
    let q = views::quarter(&d.assurance, &quarter)?;
    let (t, by) = (tenant.clone(), viewer.user.name.clone());
    let message = with_db(&state, move |db| {
        let now = now();
        let done = match action {
            Action::Freeze => freeze_quarter(db, &t, q, &d.assurance.kpi, now, &by).map(|r| {
                let v = r.freeze.map_or(0, |f| f.version);
                (
                    "kpi.freeze",
                    format!("{q} version {v}"),
                    format!("{q} frozen as version {v}."),
                )
            }),
            Action::Reopen if f.reason.trim().is_empty() => {
                return Ok("Give a reason to reopen the quarter: it is kept with the version.".into());
            }
            Action::Reopen => reopen_quarter(db, &t, q, now, &by, f.reason.trim()).map(|v| {
                (
                    "kpi.reopen",
                    format!("{q} version {v}: {}", f.reason.trim()),
                    format!("{q} reopened: version {v} is kept; the page shows live figures until the quarter is frozen again."),
                )
            }),
        };
        match done {
            Ok((what, detail, message)) => {
                db.audit(&AuditEntry {
                    time: now,
                    actor: by,
                    action: what.into(),
                    tenant: Some(t),
                    detail,
                    client: Some(client),
                })?;
                Ok(message)
            }
            Err(
                e @ (QuarterError::NotEnded { .. }
                | QuarterError::AlreadyFrozen { .. }
                | QuarterError::NotFrozen { .. }
                | QuarterError::Future { .. }),
            ) => Ok(e.to_string()),
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let query = AssuranceQuery {
        tenant: Some(tenant),
        quarter: Some(quarter),
        ..AssuranceQuery::default()
    };
    assurance_html(&state, &viewer, query, Some(message), None).await
}
