//! Route handlers: each page and its API twin load the same view
//! ([`crate::views`]); pages render it through a template.

use std::sync::OnceLock;

use axum::Json;
use axum::extract::{Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::Environment;
use parapet_assurance::frozen::quarter_kpis;
use parapet_report::{ReportText, report_input};
use parapet_store::accounts::AuditEntry;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::app::{AppError, dashboard, now, with_db};
use crate::auth::{self, Viewer};
use crate::views::{self, AlertQuery, AssuranceQuery};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("overview.html", include_str!("../templates/overview.html")),
    ("alerts.html", include_str!("../templates/alerts.html")),
    ("alert.html", include_str!("../templates/alert.html")),
    ("mail.html", include_str!("../templates/mail.html")),
    (
        "mail_domain.html",
        include_str!("../templates/mail_domain.html"),
    ),
    (
        "assurance.html",
        include_str!("../templates/assurance.html"),
    ),
    ("privacy.html", include_str!("../templates/privacy.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("tenants.html", include_str!("../templates/tenants.html")),
    ("accounts.html", include_str!("../templates/accounts.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = Environment::new();
        // the API gives times as RFC 3339 UTC; a page shows them in UK local time
        e.add_filter("local", |t: String| {
            parapet_core::calendar::local_from_rfc3339(&t)
        });
        for (name, src) in TEMPLATES {
            e.add_template(name, src).expect("templates parse");
        }
        e
    })
}

pub(crate) fn render(name: &str, ctx: Value) -> Result<Html<String>, AppError> {
    let t = env()
        .get_template(name)
        .map_err(|e| AppError::Internal(format!("template {name}: {e}")))?;
    t.render(minijinja::Value::from_serialize(&ctx))
        .map(Html)
        .map_err(|e| AppError::Internal(format!("template {name}: {e:#}")))
}

/// A page: the view plus who is signed in.
pub(crate) fn page(name: &str, viewer: &Viewer, mut ctx: Value) -> Result<Html<String>, AppError> {
    ctx["me"] = json!({
        "name": viewer.user.name,
        "role": viewer.user.role.as_str(),
        "tenant": viewer.user.tenant,
        "supplier": viewer.is_supplier(),
    });
    ctx["csrf"] = json!(viewer.csrf());
    render(name, ctx)
}

pub async fn style() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../templates/style.css"),
    )
}

/// The client address, when the server recorded it.
pub struct ClientAddr(pub String);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let trusted = state
            .dashboard
            .as_ref()
            .map_or(&[][..], |d| d.trusted_proxies.as_slice());
        Ok(ClientAddr(auth::client_addr(parts, trusted)))
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    pub error: Option<String>,
}

pub async fn login_form(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
) -> Result<Response, AppError> {
    let d = dashboard(&state)?;
    let csrf = auth::new_token();
    let body = render(
        "login.html",
        json!({"csrf": csrf, "error": q.error.map(|_| "Wrong user name or password, or too many attempts.")}),
    )?;
    let mut r = body.into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(&d, auth::LOGIN_CSRF_COOKIE, &csrf, 3600))
            .map_err(|e| AppError::Internal(e.to_string()))?,
    );
    Ok(r)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub csrf: String,
    /// The TOTP code, for an account with a second factor.
    #[serde(default)]
    pub code: String,
}

/// The login form again, for the same login attempt (its CSRF cookie is
/// still set): the name kept, a message, and the code field when asked.
fn login_again(
    name: &str,
    csrf: &str,
    message: &str,
    ask_code: bool,
    status: StatusCode,
) -> Result<Response, AppError> {
    let body = render(
        "login.html",
        json!({"csrf": csrf, "error": message, "username": name, "ask_code": ask_code}),
    )?;
    Ok((status, body).into_response())
}

pub async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, AppError> {
    let d = dashboard(&state)?;
    let cookie_csrf = auth::cookie(&headers, auth::LOGIN_CSRF_COOKIE).unwrap_or("");
    if cookie_csrf.is_empty() || !auth::same_secret(cookie_csrf, &f.csrf) {
        return Err(AppError::Csrf);
    }
    let name = f.username.trim().to_string();
    if name.len() > auth::MAX_USER_NAME {
        // no account has such a name: count it against the client, and keep
        // it out of the throttle table and the audit log
        d.limiter.failed_client(&client);
        return Err(AppError::BadRequest(format!(
            "username: longer than {} bytes",
            auth::MAX_USER_NAME
        )));
    }
    let audit = |ok: &str, tenant: Option<String>| AuditEntry {
        time: d.now(),
        actor: name.clone(),
        action: ok.into(),
        tenant,
        detail: String::new(),
        client: Some(client.clone()),
    };
    if !d.limiter.allowed(&name, &client) {
        let e = audit("login.throttled", None);
        with_db(&state, move |db| Ok(db.audit(&e)?)).await?;
        return Err(AppError::TooManyAttempts);
    }
    let n2 = name.clone();
    let user = with_db(&state, move |db| Ok(db.user(&n2)?)).await?;
    let password = f.password;
    let user = tokio::task::spawn_blocking(move || match user {
        Some(u) => auth::verify_password(&password, &u.password_hash).then_some(u),
        // as slow as a real check, so timing does not tell which names exist
        None => {
            auth::verify_password(&password, auth::dummy_hash());
            None
        }
    })
    .await
    .map_err(|e| AppError::Internal(e.to_string()))?;
    let Some(user) = user else {
        d.limiter.failed(&name, &client);
        let e = audit("login.failed", None);
        with_db(&state, move |db| Ok(db.audit(&e)?)).await?;
        return Ok(Redirect::to("/login?error=1").into_response());
    };
    if let Some(r) = second_factor(&state, &d, &user, &f.code, &f.csrf, &client).await? {
        return Ok(r);
    }
    d.limiter.succeeded(&name);
    let token = auth::new_token();
    let digest = auth::token_digest(&token);
    let csrf = auth::new_token();
    let e = audit("login.ok", user.tenant.clone());
    let now = d.now();
    with_db(&state, move |db| {
        db.create_session(&digest, user.id, &csrf, now, now + auth::SESSION_SECONDS)?;
        Ok(db.audit(&e)?)
    })
    .await?;
    let mut r = Redirect::to("/").into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(
            &d,
            auth::SESSION_COOKIE,
            &token,
            auth::SESSION_SECONDS,
        ))
        .map_err(|e| AppError::Internal(e.to_string()))?,
    );
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(&d, auth::LOGIN_CSRF_COOKIE, "", 0))
            .map_err(|e| AppError::Internal(e.to_string()))?,
    );
    Ok(r)
}

/// The second factor of a login whose password was right: `None` when the
/// login may go on; otherwise the answer (the form again, asking for the
/// code, refusing a wrong or replayed one, or an account its role says
/// must enrol first).
async fn second_factor(
    state: &AppState,
    d: &crate::Dashboard,
    user: &parapet_store::accounts::User,
    code: &str,
    csrf: &str,
    client: &str,
) -> Result<Option<Response>, AppError> {
    let audit = |action: &str| AuditEntry {
        time: d.now(),
        actor: user.name.clone(),
        action: action.into(),
        tenant: user.tenant.clone(),
        detail: String::new(),
        client: Some(client.to_string()),
    };
    let Some(hex_secret) = &user.totp_secret else {
        if !d.require_totp.contains(&user.role) {
            return Ok(None);
        }
        let e = audit("login.totp_required");
        with_db(state, move |db| Ok(db.audit(&e)?)).await?;
        let msg = format!(
            "Accounts with the {} role must sign in with a second factor, and this one has none yet. \
             Ask an administrator to run `parapet users totp {}`, add the account to your \
             authenticator app, then sign in with its code.",
            user.role.as_str(),
            user.name
        );
        return login_again(&user.name, csrf, &msg, false, StatusCode::FORBIDDEN).map(Some);
    };
    if code.trim().is_empty() {
        let msg = "Enter the 6-digit code from your authenticator app, and your password again.";
        return login_again(&user.name, csrf, msg, true, StatusCode::OK).map(Some);
    }
    let secret = hex::decode(hex_secret).map_err(|_| {
        AppError::Internal(format!("{}: the stored TOTP secret is not hex", user.name))
    })?;
    let accepted = match crate::totp::verify(&secret, code, d.now()) {
        Some(step) => {
            let id = user.id;
            with_db(state, move |db| Ok(db.claim_totp_step(id, step)?)).await?
        }
        None => false,
    };
    if accepted {
        return Ok(None);
    }
    // a wrong code counts like a wrong password: 5 tries per 15 minutes
    d.limiter.failed(&user.name, client);
    let e = audit("login.totp_failed");
    with_db(state, move |db| Ok(db.audit(&e)?)).await?;
    let msg = "Wrong code, or a code already used: wait for the next one and try again.";
    login_again(&user.name, csrf, msg, true, StatusCode::UNAUTHORIZED).map(Some)
}

#[derive(Debug, Default, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientAddr(client): ClientAddr,
    Form(f): Form<CsrfForm>,
) -> Result<Response, AppError> {
    let d = dashboard(&state)?;
    viewer.check_csrf(Some(&f.csrf))?;
    if let auth::Via::Session { digest, .. } = viewer.via.clone() {
        let e = AuditEntry {
            time: now(),
            actor: viewer.user.name.clone(),
            action: "logout".into(),
            tenant: viewer.user.tenant.clone(),
            detail: String::new(),
            client: Some(client),
        };
        with_db(&state, move |db| {
            db.delete_session(&digest)?;
            Ok(db.audit(&e)?)
        })
        .await?;
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(&d, auth::SESSION_COOKIE, "", 0))
            .map_err(|e| AppError::Internal(e.to_string()))?,
    );
    Ok(r)
}

#[derive(Debug, Default, Deserialize)]
pub struct TenantQuery {
    pub tenant: Option<String>,
}

async fn overview_view(
    state: &AppState,
    viewer: &Viewer,
    q: &TenantQuery,
) -> Result<Value, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    let supplier = viewer.is_supplier();
    let mut v = with_db(state, move |db| {
        let mut v = views::overview(db, scope.as_deref(), now())?;
        if supplier {
            v["notifications"] = views::outbox(db)?;
        }
        Ok(v)
    })
    .await?;
    v["tenant_choices"] = tenant_choices(state, viewer)?;
    Ok(v)
}

fn tenant_choices(state: &AppState, viewer: &Viewer) -> Result<Value, AppError> {
    let d = dashboard(state)?;
    Ok(if viewer.is_supplier() {
        json!(d.tenants.iter().map(|t| &t.name).collect::<Vec<_>>())
    } else {
        json!([])
    })
}

pub async fn overview_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Html<String>, AppError> {
    let v = overview_view(&state, &viewer, &q).await?;
    page("overview.html", &viewer, v)
}

pub async fn overview_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, AppError> {
    let mut v = overview_view(&state, &viewer, &q).await?;
    if let Some(o) = v.as_object_mut() {
        o.remove("chart_svg");
        o.remove("tenant_choices");
    }
    Ok(Json(v))
}

async fn alerts_view(state: &AppState, viewer: &Viewer, q: AlertQuery) -> Result<Value, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    let mut v = with_db(state, move |db| views::alerts(db, scope.as_deref(), &q)).await?;
    v["tenant_choices"] = tenant_choices(state, viewer)?;
    Ok(v)
}

pub async fn alerts_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AlertQuery>,
) -> Result<Html<String>, AppError> {
    let v = alerts_view(&state, &viewer, q).await?;
    page("alerts.html", &viewer, v)
}

pub async fn alerts_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, AppError> {
    let v = alerts_view(&state, &viewer, q).await?;
    Ok(Json(json!({ "alerts": v["alerts"] })))
}

async fn alert_view(state: &AppState, viewer: &Viewer, id: i64) -> Result<Value, AppError> {
    let vw = viewer.clone();
    let d = dashboard(state)?;
    with_db(state, move |db| {
        let a = views::alert(db, &vw, id)?;
        let mut v = a.to_json();
        v["deliveries"] = views::deliveries(db, &vw, id)?;
        v["pseudonyms"] = views::alert_pseudonyms(db, &d, &a.tenant, id)?;
        v["reveal_command"] = json!(format!(
            "parapet investigate reveal --alert {id} --key investigation.key --reason \"...\""
        ));
        Ok(v)
    })
    .await
}

pub async fn alert_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Html<String>, AppError> {
    let a = alert_view(&state, &viewer, id).await?;
    page("alert.html", &viewer, json!({ "alert": a }))
}

pub async fn alert_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(alert_view(&state, &viewer, id).await?))
}

#[derive(Debug, Deserialize)]
pub struct StatusForm {
    pub status: String,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub csrf: String,
}

pub async fn alert_status_form(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
    Form(f): Form<StatusForm>,
) -> Result<Response, AppError> {
    viewer.check_csrf(Some(&f.csrf))?;
    let vw = viewer.clone();
    with_db(&state, move |db| {
        views::set_status(db, &vw, id, &f.status, &f.note, &client)
    })
    .await?;
    Ok(Redirect::to(&format!("/alerts/{id}")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct StatusBody {
    pub status: String,
    pub note: String,
}

pub async fn alert_status_api(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientAddr(client): ClientAddr,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Json(b): Json<StatusBody>,
) -> Result<Json<Value>, AppError> {
    viewer.check_csrf(headers.get("x-csrf-token").and_then(|v| v.to_str().ok()))?;
    let vw = viewer.clone();
    let a = with_db(&state, move |db| {
        views::set_status(db, &vw, id, &b.status, &b.note, &client)
    })
    .await?;
    Ok(Json(a.to_json()))
}

async fn mail_view(state: &AppState, viewer: &Viewer, q: &TenantQuery) -> Result<Value, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    let d = dashboard(state)?;
    with_db(state, move |db| views::mail(&d, db, scope.as_deref())).await
}

pub async fn mail_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Html<String>, AppError> {
    let v = mail_view(&state, &viewer, &q).await?;
    page("mail.html", &viewer, v)
}

pub async fn mail_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(mail_view(&state, &viewer, &q).await?))
}

async fn mail_domain_view(
    state: &AppState,
    viewer: &Viewer,
    domain: String,
) -> Result<Value, AppError> {
    let d = dashboard(state)?;
    let vw = viewer.clone();
    with_db(state, move |db| views::mail_domain(&d, db, &vw, &domain)).await
}

pub async fn mail_domain_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(domain): Path<String>,
) -> Result<Html<String>, AppError> {
    let v = mail_domain_view(&state, &viewer, domain).await?;
    page("mail_domain.html", &viewer, v)
}

pub async fn mail_domain_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(domain): Path<String>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(mail_domain_view(&state, &viewer, domain).await?))
}

async fn kpi_report(
    state: &AppState,
    viewer: &Viewer,
    q: &AssuranceQuery,
) -> Result<(String, String, parapet_assurance::kpi::KpiReport), AppError> {
    let d = dashboard(state)?;
    for (field, value) in [
        ("q", &q.q),
        ("class", &q.class),
        ("source", &q.source),
        ("status", &q.status),
        ("quarter", &q.quarter),
    ] {
        crate::app::check_filter(field, value.as_deref())?;
    }
    let tenant = views::assurance_tenant(&d, viewer, q.tenant.as_deref())?;
    let quarter = q
        .quarter
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| views::current_quarter(&d.assurance));
    let q = views::quarter(&d.assurance, &quarter)?;
    let t = tenant.clone();
    let r = with_db(state, move |db| {
        Ok(quarter_kpis(db, &t, q, &d.assurance.kpi, now())?)
    })
    .await?;
    Ok((tenant, quarter, r))
}

pub async fn assurance_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AssuranceQuery>,
) -> Result<Html<String>, AppError> {
    let (tenant, quarter, r) = kpi_report(&state, &viewer, &q).await?;
    let register = views::register(&r, &q);
    let files: Vec<&str> = parapet_report::files()
        .iter()
        .copied()
        .filter(|f| viewer.is_supplier() || !f.starts_with("exempt-appendix"))
        .collect();
    let v = json!({
        "tenant": tenant,
        "quarter": quarter,
        "report": r,
        "register": register,
        "filter": {"q": q.q, "class": q.class, "source": q.source, "status": q.status},
        "files": files,
        "tenant_choices": tenant_choices(&state, &viewer)?,
    });
    page("assurance.html", &viewer, v)
}

pub async fn kpis_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AssuranceQuery>,
) -> Result<Json<Value>, AppError> {
    let (tenant, quarter, r) = kpi_report(&state, &viewer, &q).await?;
    Ok(Json(json!({
        "tenant": tenant, "quarter": quarter, "period": r.period, "frozen": r.frozen,
        "kpis": r.kpis, "cyber_essentials": r.cyber_essentials, "evidence_files": r.evidence_files,
    })))
}

pub async fn assets_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AssuranceQuery>,
) -> Result<Json<Value>, AppError> {
    let (tenant, quarter, r) = kpi_report(&state, &viewer, &q).await?;
    Ok(Json(
        json!({"tenant": tenant, "quarter": quarter, "assets": views::register(&r, &q)}),
    ))
}

fn incident_json(i: &parapet_assurance::model::Incident) -> Value {
    use parapet_core::calendar::format_date;
    json!({
        "id": i.id, "tenant": i.tenant, "reference": i.reference, "detected": format_date(i.detected_at),
        "category": i.category, "impact": i.impact, "outcome": i.outcome, "status": i.status,
        "summary": i.summary, "ico_reference": i.ico_reference, "alert_id": i.alert_id,
        "closed": i.closed_at.map(format_date),
    })
}

pub async fn incidents_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    let list = with_db(&state, move |db| Ok(db.incidents(scope.as_deref())?)).await?;
    Ok(Json(
        json!({"incidents": list.iter().map(incident_json).collect::<Vec<_>>()}),
    ))
}

pub async fn incident_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Result<Json<Value>, AppError> {
    let list = with_db(&state, move |db| Ok(db.incidents(None)?)).await?;
    list.iter()
        .find(|i| i.id == id && viewer.may_see(&i.tenant))
        .map(|i| Json(incident_json(i)))
        .ok_or(AppError::NotFound)
}

pub async fn exceptions_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, AppError> {
    let d = dashboard(&state)?;
    let tenant = views::assurance_tenant(&d, &viewer, q.tenant.as_deref())?;
    let list = with_db(&state, move |db| Ok(db.exceptions(&tenant)?)).await?;
    use parapet_core::calendar::format_date;
    Ok(Json(json!({"exceptions": list.iter().map(|e| json!({
        "id": e.id, "tenant": e.tenant, "asset": e.asset, "finding": e.finding, "scope": e.scope,
        "kind": e.kind, "reason": e.reason, "owner": e.owner, "approver": e.approver,
        "from": format_date(e.created_at), "expires": format_date(e.expires_at),
    })).collect::<Vec<_>>()})))
}

pub async fn report_file(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientAddr(client): ClientAddr,
    Path((tenant, quarter, file)): Path<(String, String, String)>,
) -> Result<Response, AppError> {
    let d = dashboard(&state)?;
    // an unknown tenant has no reports: 404 before anything is computed or
    // frozen, and only known names reach the Content-Disposition header
    if !viewer.may_see(&tenant)
        || !d.knows_tenant(&tenant)
        || !parapet_report::files().contains(&file.as_str())
    {
        return Err(AppError::NotFound);
    }
    if file.starts_with("exempt-appendix") && !viewer.is_supplier() {
        return Err(AppError::Forbidden);
    }
    let quarter_arg = views::quarter(&d.assurance, &quarter)?;
    let (t, q, f) = (tenant.clone(), quarter.clone(), file.clone());
    let actor = viewer.user.name.clone();
    let bytes = with_db(&state, move |db| {
        let a = &d.assurance;
        let text = ReportText {
            committee: a.committee.clone(),
            exemption: None,
        };
        let input = report_input(db, &t, quarter_arg, &a.kpi, a.council(&t), text, now())?;
        let bytes = parapet_report::render(&input, &f)
            .map_err(|e| AppError::Internal(e.to_string()))?
            .ok_or(AppError::NotFound)?;
        db.audit(&AuditEntry {
            time: now(),
            actor,
            action: "report.download".into(),
            tenant: Some(t.clone()),
            detail: format!("{q} {f}"),
            client: Some(client),
        })?;
        Ok(bytes)
    })
    .await?;
    let ctype = match file.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/pdf",
    };
    let disposition = format!(
        "attachment; filename=\"{}\"",
        download_name(&format!("{tenant}-{quarter}-{file}"))
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ctype.to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// A download's file name with nothing a header could be broken by: only
/// ASCII letters, digits, `.`, `-` and `_` survive; anything else becomes `_`.
fn download_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub async fn privacy_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Html<String>, AppError> {
    let d = dashboard(&state)?;
    page(
        "privacy.html",
        &viewer,
        views::privacy(&d, viewer.is_supplier()),
    )
}

pub async fn privacy_api(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<Value>, AppError> {
    let d = dashboard(&state)?;
    Ok(Json(views::privacy(&d, viewer.is_supplier())))
}

pub async fn audit_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Html<String>, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    let v = with_db(&state, move |db| views::audit(db, scope.as_deref())).await?;
    page("audit.html", &viewer, v)
}

pub async fn audit_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    Ok(Json(
        with_db(&state, move |db| views::audit(db, scope.as_deref())).await?,
    ))
}

async fn tenants_view(
    state: &AppState,
    viewer: &Viewer,
    q: &TenantQuery,
) -> Result<Value, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    let d = dashboard(state)?;
    with_db(state, move |db| {
        views::tenants(&d, db, scope.as_deref(), now())
    })
    .await
}

pub async fn tenants_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Html<String>, AppError> {
    let v = tenants_view(&state, &viewer, &q).await?;
    page("tenants.html", &viewer, v)
}

pub async fn tenants_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, AppError> {
    Ok(Json(tenants_view(&state, &viewer, &q).await?))
}
