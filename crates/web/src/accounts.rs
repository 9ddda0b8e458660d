//! The accounts page (`/accounts`, supplier-admin only): every account
//! with its role, tenant, second factor and API tokens; create, remove,
//! reset a password, revoke a token. Each action is CSRF-checked and
//! audited, and a removal, reset or revocation refuses the account's old
//! cookies or token on the very next request (they are looked up in the
//! store on every request).

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use parapet_store::accounts::{AuditEntry, Role};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::app::{AppError, dashboard, with_db};
use crate::auth::{self, AdminViewer, Viewer};
use crate::handlers::{ClientAddr, CsrfForm};

/// Every account with its tokens, for the page.
async fn view(state: &AppState) -> Result<Value, AppError> {
    let d = dashboard(state)?;
    let mut v = with_db(state, |db| {
        let fmt = parapet_core::calendar::format_datetime;
        let mut users = Vec::new();
        for u in db.users()? {
            let tokens: Vec<Value> = db
                .api_tokens(u.id)?
                .iter()
                .map(|t| {
                    json!({"id": t.id, "created": fmt(t.created_at), "last_used": t.last_used_at.map(fmt)})
                })
                .collect();
            users.push(json!({
                "name": u.name, "path": crate::totp::component(&u.name), "role": u.role.as_str(),
                "tenant": u.tenant, "totp": u.totp_secret.is_some(), "tokens": tokens,
            }));
        }
        Ok(json!({ "users": users }))
    })
    .await?;
    v["roles"] = json!([
        "council",
        "council-officer",
        "supplier-analyst",
        "supplier-admin"
    ]);
    v["tenant_choices"] = json!(d.tenants.iter().map(|t| &t.name).collect::<Vec<_>>());
    Ok(v)
}

/// The page, with a one-time notice (a generated password) when given.
async fn show(
    state: &AppState,
    viewer: &Viewer,
    notice: Option<String>,
) -> Result<Response, AppError> {
    let mut v = view(state).await?;
    v["notice"] = json!(notice);
    Ok(crate::handlers::page("accounts.html", viewer, v)?.into_response())
}

pub async fn page(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
) -> Result<Response, AppError> {
    show(&state, &viewer, None).await
}

/// The audit entry of an account action.
fn audit(
    viewer: &Viewer,
    client: &str,
    now: i64,
    action: &str,
    tenant: Option<String>,
    detail: String,
) -> AuditEntry {
    AuditEntry {
        time: now,
        actor: viewer.user.name.clone(),
        action: action.into(),
        tenant,
        detail,
        client: Some(client.to_string()),
    }
}

/// A password from the form (at least 10 characters), or a generated one
/// and `true`.
fn password_or_generated(given: &str) -> Result<(String, bool), String> {
    match given {
        "" => Ok((auth::new_token()[..20].to_string(), true)),
        p if p.chars().count() < 10 => Err(
            "Enter a password of at least 10 characters, or leave it empty to generate one".into(),
        ),
        p if p.len() > 1024 => Err("Enter a password of at most 1024 bytes".into()),
        p => Ok((p.to_string(), false)),
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    pub csrf: String,
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub tenant: String,
    #[serde(default)]
    pub password: String,
}

/// A form problem: the id of its field (the error summary links to it)
/// and what to do, in the GOV.UK pattern.
type Problem = (&'static str, String);

/// An account the create form asks for, checked.
struct NewAccount {
    name: String,
    role: Role,
    tenant: Option<String>,
    password: String,
    generated: bool,
}

/// Every problem with the create form at once, or the account it asks for.
fn check_create(d: &crate::Dashboard, f: &CreateForm) -> Result<NewAccount, Vec<Problem>> {
    let mut problems = Vec::new();
    let name = f.name.trim().to_string();
    if name.is_empty()
        || name.len() > auth::MAX_USER_NAME
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
    {
        problems.push((
            "new-name",
            format!(
                "Enter a name of 1 to {} letters, digits, dots, hyphens, underscores or @",
                auth::MAX_USER_NAME
            ),
        ));
    }
    let role: Option<Role> = f.role.parse().ok();
    if role.is_none() {
        problems.push((
            "new-role",
            "Choose a role: council, council-officer, supplier-analyst or supplier-admin".into(),
        ));
    }
    let tenant = Some(f.tenant.trim().to_string()).filter(|t| !t.is_empty());
    match (role, &tenant) {
        (Some(Role::Council | Role::CouncilOfficer), None) => problems.push((
            "new-tenant",
            "Choose a tenant: a council account sees one council".into(),
        )),
        (Some(Role::Council | Role::CouncilOfficer), Some(t)) if !d.knows_tenant(t) => problems
            .push((
                "new-tenant",
                format!("Choose a configured tenant: `{t}` is not one"),
            )),
        (Some(Role::SupplierAdmin | Role::SupplierAnalyst), Some(_)) => problems.push((
            "new-tenant",
            "Leave the tenant as None for a supplier role: it sees every tenant".into(),
        )),
        _ => {}
    }
    let password = password_or_generated(&f.password)
        .map_err(|e| problems.push(("new-password", e)))
        .ok();
    match (role, password) {
        (Some(role), Some((password, generated))) if problems.is_empty() => Ok(NewAccount {
            name,
            role,
            tenant,
            password,
            generated,
        }),
        _ => Err(problems),
    }
}

/// The page again with the create form's problems: an error summary
/// linking to each field, the message beside it, and what was typed
/// (never the password).
async fn form_problems(
    state: &AppState,
    viewer: &Viewer,
    f: &CreateForm,
    problems: &[Problem],
    status: StatusCode,
) -> Result<Response, AppError> {
    let mut v = view(state).await?;
    v["form"] = json!({"name": f.name, "role": f.role, "tenant": f.tenant});
    crate::handlers::refused_page("accounts.html", viewer, v, problems, status)
}

pub async fn create(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
    ClientAddr(client): ClientAddr,
    Form(f): Form<CreateForm>,
) -> Result<Response, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    let d = dashboard(&state)?;
    let a = match check_create(&d, &f) {
        Ok(a) => a,
        Err(p) => return form_problems(&state, &viewer, &f, &p, StatusCode::BAD_REQUEST).await,
    };
    let hash = hash(a.password.clone()).await?;
    let now = d.now();
    let e = audit(
        &viewer,
        &client,
        now,
        "user.added",
        a.tenant.clone(),
        format!("{} ({})", a.name, a.role.as_str()),
    );
    let (n2, role, tenant) = (a.name.clone(), a.role, a.tenant.clone());
    let added = with_db(&state, move |db| {
        db.add_user(&n2, role, tenant.as_deref(), &hash, now)?;
        Ok(db.audit(&e)?)
    })
    .await;
    if let Err(AppError::Conflict(_)) = added {
        let taken = [(
            "new-name",
            format!("Choose another name: `{}` is taken", a.name),
        )];
        return form_problems(&state, &viewer, &f, &taken, StatusCode::CONFLICT).await;
    }
    added?;
    let notice = if a.generated {
        format!(
            "{} added, with password {} (shown once: pass it on safely).",
            a.name, a.password
        )
    } else {
        format!("{} added.", a.name)
    };
    show(&state, &viewer, Some(notice)).await
}

/// An argon2 hash, off the async threads (it takes tens of milliseconds).
async fn hash(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// Refuses an action on the signed-in admin's own account (removing it, or
/// resetting its password here, could lock the last admin out).
fn not_self(viewer: &Viewer, name: &str) -> Result<(), AppError> {
    if viewer.user.name == name {
        return Err(AppError::Conflict(
            "not on your own account here: use `parapet users` on the server".into(),
        ));
    }
    Ok(())
}

pub async fn remove(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
    ClientAddr(client): ClientAddr,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    not_self(&viewer, &name)?;
    let d = dashboard(&state)?;
    let now = d.now();
    let (v2, n2) = (viewer.clone(), name.clone());
    with_db(&state, move |db| {
        let user = db.user(&n2)?.ok_or(AppError::NotFound)?;
        db.remove_user(&n2)?;
        let e = audit(
            &v2,
            &client,
            now,
            "user.removed",
            user.tenant.clone(),
            format!("{n2} ({})", user.role.as_str()),
        );
        Ok(db.audit(&e)?)
    })
    .await?;
    show(
        &state,
        &viewer,
        Some(format!(
            "{name} removed: its sessions and API tokens no longer work."
        )),
    )
    .await
}

pub async fn reset_password(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
    ClientAddr(client): ClientAddr,
    Path(name): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    not_self(&viewer, &name)?;
    let d = dashboard(&state)?;
    let (password, _) = password_or_generated("").map_err(AppError::BadRequest)?;
    let hash = hash(password.clone()).await?;
    let now = d.now();
    let (v2, n2) = (viewer.clone(), name.clone());
    with_db(&state, move |db| {
        let user = db.user(&n2)?.ok_or(AppError::NotFound)?;
        db.set_password(&n2, &hash)?;
        db.end_sessions(user.id)?;
        let e = audit(
            &v2,
            &client,
            now,
            "user.password",
            user.tenant.clone(),
            format!("{n2}: password reset, sessions ended"),
        );
        Ok(db.audit(&e)?)
    })
    .await?;
    let notice = format!(
        "{name}: new password {password} (shown once: pass it on safely). Its sessions have ended."
    );
    show(&state, &viewer, Some(notice)).await
}

pub async fn revoke_token(
    State(state): State<AppState>,
    AdminViewer(viewer): AdminViewer,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    let d = dashboard(&state)?;
    let now = d.now();
    let v2 = viewer.clone();
    let owner = with_db(&state, move |db| {
        let user = db.revoke_api_token(id)?.ok_or(AppError::NotFound)?;
        let e = audit(
            &v2,
            &client,
            now,
            "token.revoked",
            user.tenant.clone(),
            format!("API token {id} of {}", user.name),
        );
        db.audit(&e)?;
        Ok(user.name)
    })
    .await?;
    show(
        &state,
        &viewer,
        Some(format!("Token {id} of {owner} revoked.")),
    )
    .await
}
