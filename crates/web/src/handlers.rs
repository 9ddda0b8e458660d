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
use parapet_core::calendar::format_datetime;
use parapet_report::{ReportText, report_input};
use parapet_store::accounts::AuditEntry;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::app::{AppError, dashboard, now, with_db};
use crate::auth::{self, Viewer};
use crate::views::{self, AlertQuery, AssuranceQuery, QueriesQuery};

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
    (
        "assurance_commentary.html",
        include_str!("../templates/assurance_commentary.html"),
    ),
    ("privacy.html", include_str!("../templates/privacy.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("tenants.html", include_str!("../templates/tenants.html")),
    ("accounts.html", include_str!("../templates/accounts.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("macros.html", include_str!("../templates/macros.html")),
    ("queries.html", include_str!("../templates/queries.html")),
];

/// The GOV.UK Frontend stylesheet's path: versioned, so it can be cached
/// for a year and a new release is a new address.
pub const GOVUK_CSS: &str = "/static/govuk-frontend-5.14.0.min.css";

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut e = Environment::new();
        // the API gives times as RFC 3339 UTC; a page shows them in UK local
        // time, with how long ago when that helps (the one time helper)
        e.add_filter("local", local_time);
        e.add_filter("rule_title", |code: String| {
            // empty for a code without a title: the page then shows the code alone
            let known = parapet_core::rules_text::known_rules().any(|c| c == code);
            if known {
                parapet_core::rules_text::rule_title(&code).to_string()
            } else {
                String::new()
            }
        });
        e.add_filter("code_spans", code_spans);
        e.add_filter("yesno", |b: bool| if b { "Yes" } else { "No" });
        e.add_filter("urlencode", |s: String| views::urlencode(&s));
        for (name, src) in TEMPLATES {
            e.add_template(name, src).expect("templates parse");
        }
        e
    })
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A time from a view as a page shows it: `<time>` in UK local time, and
/// "(3 hours ago)" within a month of the page's `now`. Anything that is
/// not an RFC 3339 time is shown as it is.
fn local_time(state: &minijinja::State, t: String) -> minijinja::Value {
    use parapet_core::calendar::{format_datetime, format_local, parse_rfc3339, relative};
    let Some(secs) = parse_rfc3339(&t) else {
        return minijinja::Value::from(t);
    };
    let now = state
        .lookup("now")
        .and_then(|v| i64::try_from(v).ok())
        .and_then(|n| relative(secs, n));
    let ago = now.map_or_else(String::new, |a| {
        format!(r#" <span class="parapet-ago">({a})</span>"#)
    });
    minijinja::Value::from_safe_string(format!(
        r#"<time datetime="{}">{}</time>{ago}"#,
        esc(&format_datetime(secs)),
        esc(&format_local(secs))
    ))
}

/// Text whose `backticked` parts are code (Mail Check's advice): escaped,
/// with each pair of backticks turned into a `<code>` span.
fn code_spans(text: String) -> minijinja::Value {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("<code>");
            out.push_str(&esc(part));
            out.push_str("</code>");
        } else {
            out.push_str(&esc(part));
        }
    }
    // an odd backtick left a code span open: close it
    if text.split('`').count().is_multiple_of(2) {
        out.push_str("</code>");
    }
    minijinja::Value::from_safe_string(out)
}

pub(crate) fn render(name: &str, mut ctx: Value) -> Result<Html<String>, AppError> {
    ctx["govuk_css"] = json!(GOVUK_CSS);
    ctx["version"] = json!(env!("CARGO_PKG_VERSION"));
    if ctx.get("now").is_none() {
        ctx["now"] = json!(now());
    }
    let t = env()
        .get_template(name)
        .map_err(|e| AppError::Internal(format!("template {name}: {e}")))?;
    t.render(minijinja::Value::from_serialize(&ctx))
        .map(Html)
        .map_err(|e| AppError::Internal(format!("template {name}: {e:#}")))
}

/// Adds a refused form's problems to a page's view: `errors` for the
/// GOV.UK error summary (each `(field id, message)`, linking to its field)
/// and `field_errors`, the messages by field id.
pub(crate) fn with_problems(v: &mut Value, problems: &[(&str, String)]) {
    v["errors"] = json!(
        problems
            .iter()
            .map(|(field, m)| json!({"field": field, "message": m}))
            .collect::<Vec<_>>()
    );
    v["field_errors"] = Value::Object(
        problems
            .iter()
            .map(|(field, m)| (field.to_string(), json!(m)))
            .collect(),
    );
}

/// The page a refused form answers: its view with the problems
/// ([`with_problems`]), under `status` (400, or 409 for a conflict).
pub(crate) fn refused_page(
    name: &str,
    viewer: &Viewer,
    mut v: Value,
    problems: &[(&str, String)],
    status: StatusCode,
) -> Result<Response, AppError> {
    with_problems(&mut v, problems);
    let mut r = page(name, viewer, v)?.into_response();
    *r.status_mut() = status;
    Ok(r)
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
    ctx["section"] = json!(section(name));
    render(name, ctx)
}

/// The navigation entry a page belongs to: `/` for the overview, the
/// list's path for a detail page, else `/` and the template's stem (so a
/// new page `queries.html` lights up a `/queries` entry).
fn section(template: &str) -> String {
    let stem = template.trim_end_matches(".html");
    match stem {
        "overview" => "/".into(),
        "alert" => "/alerts".into(),
        "mail_domain" => "/mail".into(),
        s => format!("/{s}"),
    }
}

/// An error as a page in the dashboard's design (the API keeps JSON).
pub(crate) fn error_page(status: StatusCode, message: &str) -> Html<String> {
    let heading = match status.as_u16() {
        404 => "Page not found",
        401 | 403 => "You cannot see this page",
        409 => "That change could not be made",
        429 => "Too many attempts",
        400..=499 => "There is a problem with your request",
        _ => "Sorry, there is a problem with the service",
    };
    let ctx = json!({"status": status.as_u16(), "heading": heading, "message": message});
    render("error.html", ctx).unwrap_or_else(|_| Html(esc(message)))
}

/// The vendored GOV.UK Frontend stylesheet, cached for a year: its path
/// names its version.
pub async fn govuk_css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        include_str!("../assets/govuk/govuk-frontend-5.14.0.min.css"),
    )
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
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub csrf: String,
    /// The TOTP code, for an account with a second factor.
    #[serde(default)]
    pub code: String,
    /// The code step's pending-login token
    /// ([`auth::pending_login_token`]): the password was right.
    #[serde(default)]
    pub pending: String,
}

/// The login form again, for the same login attempt (its CSRF cookie is
/// still set): the name kept and a message; with a pending-login token,
/// the code step, which asks for the code only.
fn login_again(
    name: &str,
    csrf: &str,
    message: &str,
    pending: Option<&str>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let body = render(
        "login.html",
        json!({"csrf": csrf, "error": message, "username": name,
               "ask_code": pending.is_some(), "pending": pending}),
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
    if !f.pending.is_empty() {
        return login_code_step(&state, &d, &client, &name, cookie_csrf, &f).await;
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
    let e = audit("login.ok", user.tenant.clone());
    start_session(&state, &d, user, e).await
}

/// The code step of a two-factor login: the pending-login token stands for
/// the password given a moment ago, so only the code is asked for. A token
/// that is expired, forged, for another browser, or outdated by a new
/// password sends the user back to the start.
async fn login_code_step(
    state: &AppState,
    d: &crate::Dashboard,
    client: &str,
    name: &str,
    login_csrf: &str,
    f: &LoginForm,
) -> Result<Response, AppError> {
    let who = auth::pending_login_name(&f.pending).unwrap_or_default();
    let user = if who.is_empty() || (!name.is_empty() && name != who) {
        None
    } else {
        with_db(state, move |db| Ok(db.user(&who)?)).await?
    };
    let Some(user) = user.filter(|u| auth::pending_login_valid(&f.pending, u, login_csrf, d.now()))
    else {
        let msg = "Your sign-in timed out or is no longer valid: enter your user name and password again.";
        return login_again("", &f.csrf, msg, None, StatusCode::UNAUTHORIZED);
    };
    if !d.limiter.allowed(&user.name, client) {
        return Err(AppError::TooManyAttempts);
    }
    if let Some(r) = second_factor(state, d, &user, &f.code, &f.csrf, client).await? {
        return Ok(r);
    }
    let e = AuditEntry {
        time: d.now(),
        actor: user.name.clone(),
        action: "login.ok".into(),
        tenant: user.tenant.clone(),
        detail: String::new(),
        client: Some(client.to_string()),
    };
    start_session(state, d, user, e).await
}

/// A new session for `user`, whose login passed every check: the session
/// cookie set, the login CSRF cookie cleared, `ok` audited.
async fn start_session(
    state: &AppState,
    d: &crate::Dashboard,
    user: parapet_store::accounts::User,
    ok: AuditEntry,
) -> Result<Response, AppError> {
    d.limiter.succeeded(&user.name);
    let token = auth::new_token();
    let digest = auth::token_digest(&token);
    let csrf = auth::new_token();
    let now = d.now();
    with_db(state, move |db| {
        db.create_session(&digest, user.id, &csrf, now, now + auth::SESSION_SECONDS)?;
        Ok(db.audit(&ok)?)
    })
    .await?;
    let mut r = Redirect::to("/").into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(
            d,
            auth::SESSION_COOKIE,
            &token,
            auth::SESSION_SECONDS,
        ))
        .map_err(|e| AppError::Internal(e.to_string()))?,
    );
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_str(&auth::set_cookie(d, auth::LOGIN_CSRF_COOKIE, "", 0))
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
        return login_again(&user.name, csrf, &msg, None, StatusCode::FORBIDDEN).map(Some);
    };
    // the code step carries this instead of the password
    let pending = auth::pending_login_token(user, csrf, d.now());
    if code.trim().is_empty() {
        let msg = "Enter the 6-digit code from your authenticator app.";
        return login_again(&user.name, csrf, msg, Some(&pending), StatusCode::OK).map(Some);
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
    login_again(
        &user.name,
        csrf,
        msg,
        Some(&pending),
        StatusCode::UNAUTHORIZED,
    )
    .map(Some)
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
    series: bool,
) -> Result<Value, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    let supplier = viewer.is_supplier();
    let d = dashboard(state)?;
    let now = d.now();
    // the two slow summaries, kept a while (memo.rs)
    let top = top_blocked_summary(state, &d, scope.clone(), now).await?;
    let kpis = kpi_summary(state, &d, now).await?;
    let mut v = with_db(state, move |db| {
        let tally = db.alert_tally(scope.as_deref())?;
        let mut v = views::overview(db, scope.as_deref(), now, series, &tally)?;
        v["attention"] = views::attention(&d, db, scope.as_deref(), &tally, &kpis.value)?;
        v["attention"]["kpis_as_of"] = json!(format_datetime(kpis.computed_at));
        if supplier {
            v["notifications"] = views::outbox(db)?;
        }
        Ok(v)
    })
    .await?;
    v["top_blocked"] = (*top.value).clone();
    v["top_blocked_as_of"] = json!(format_datetime(top.computed_at));
    v["tenant_choices"] = tenant_choices(state, viewer)?;
    Ok(v)
}

/// The week's most-blocked names in `scope`, kept a minute.
async fn top_blocked_summary(
    state: &AppState,
    d: &crate::Dashboard,
    scope: Option<String>,
    now: i64,
) -> Result<crate::memo::Stamped, AppError> {
    let known = scope.as_deref().is_none_or(|t| d.knows_tenant(t));
    let key = format!("top-blocked {}", scope.as_deref().unwrap_or(""));
    let state = state.clone();
    let read = move || async move {
        with_db(&state, move |db| {
            views::top_blocked(db, scope.as_deref(), now)
        })
        .await
    };
    if !known {
        // a tenant the installation does not serve (removed, or mistyped
        // in the URL): read, but not kept, so the memo stays a handful
        return Ok(crate::memo::Stamped {
            value: std::sync::Arc::new(read().await?),
            computed_at: now,
        });
    }
    d.memo
        .get(&key, crate::memo::TOP_BLOCKED_AGE, now, read)
        .await
}

/// Every tenant's KPIs needing attention, kept 5 minutes.
async fn kpi_summary(
    state: &AppState,
    d: &crate::Dashboard,
    now: i64,
) -> Result<crate::memo::Stamped, AppError> {
    d.memo
        .get("kpis", crate::memo::KPI_AGE, now, || {
            let state = state.clone();
            async move {
                let d = dashboard(&state)?;
                with_db(&state, move |db| {
                    Ok(views::kpis_needing_attention(&d, db, now))
                })
                .await
            }
        })
        .await
}

/// Computes the overview's kept summaries for all tenants in the
/// background, so the first visit after a start does not wait for them
/// (every tenant's KPIs take seconds with 100,000 devices: bench/assurance).
pub(crate) fn warm_summaries(state: &AppState) {
    let Ok(d) = dashboard(state) else { return };
    let state = state.clone();
    tokio::spawn(async move {
        let now = d.now();
        let warmed = async {
            kpi_summary(&state, &d, now).await?;
            top_blocked_summary(&state, &d, None, now).await
        };
        if let Err(e) = warmed.await {
            tracing::warn!(error = ?e, "computing the overview's summaries at start failed; the first visit computes them");
        }
    });
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
    let v = overview_view(&state, &viewer, &q, false).await?;
    page("overview.html", &viewer, v)
}

pub async fn overview_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Json<Value>, AppError> {
    let mut v = overview_view(&state, &viewer, &q, true).await?;
    if let Some(o) = v.as_object_mut() {
        o.remove("chart_svg");
        o.remove("legend");
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

/// What a bulk status change did, shown above the list it returns to.
#[derive(Debug, Default, Deserialize)]
pub struct BulkNotice {
    pub done: Option<usize>,
    pub skipped: Option<usize>,
}

pub async fn alerts_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(mut q): Query<AlertQuery>,
    Query(n): Query<BulkNotice>,
) -> Result<Html<String>, AppError> {
    // a screenful at a time; the pagination links carry the filters
    q.limit = Some(q.limit.unwrap_or(ALERTS_PER_PAGE));
    let mut v = alerts_view(&state, &viewer, q).await?;
    v["done"] = json!(n.done);
    v["skipped"] = json!(n.skipped.unwrap_or(0));
    page("alerts.html", &viewer, v)
}

/// Alerts per page of the alert list.
const ALERTS_PER_PAGE: usize = 100;

/// The most alerts one bulk change may name.
pub const MAX_BULK: usize = 500;

/// Moves every selected alert to one status with one note. Each change is
/// checked and audited as a single one would be; an alert the viewer may
/// not see is refused (404) before anything changes, and one whose
/// workflow forbids the move keeps its status and is counted as skipped.
pub async fn alerts_bulk_status(
    State(state): State<AppState>,
    viewer: Viewer,
    ClientAddr(client): ClientAddr,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    viewer.check_csrf(Some(&field("csrf")))?;
    let ids: Vec<i64> = fields
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| {
            v.parse()
                .map_err(|_| AppError::BadRequest(format!("id: `{v}` is not an alert number")))
        })
        .collect::<Result<_, _>>()?;
    let (status, note) = (field("status"), field("note"));
    // the form's own problems, all at once, on the list again
    let mut problems: Vec<(&str, String)> = Vec::new();
    if ids.is_empty() {
        problems.push(("alerts", "Select at least one alert".into()));
    }
    if ids.len() > MAX_BULK {
        problems.push((
            "alerts",
            format!(
                "Select at most {MAX_BULK} alerts ({} are selected)",
                ids.len()
            ),
        ));
    }
    if let Err(AppError::BadRequest(m)) = crate::workbench::check_note(&note) {
        problems.push(("bulk-note", m));
    }
    if !problems.is_empty() {
        let q = AlertQuery {
            limit: Some(ALERTS_PER_PAGE),
            ..AlertQuery::default()
        };
        let mut v = alerts_view(&state, &viewer, q).await?;
        v["form"] = json!({"note": note, "selected": ids});
        return refused_page(
            "alerts.html",
            &viewer,
            v,
            &problems,
            StatusCode::BAD_REQUEST,
        );
    }
    let vw = viewer.clone();
    let (done, skipped) = with_db(&state, move |db| {
        for id in &ids {
            views::alert(db, &vw, *id)?;
        }
        let (mut done, mut skipped) = (0, 0);
        for id in ids {
            match views::set_status(db, &vw, id, &status, &note, &client) {
                Ok(_) => done += 1,
                Err(AppError::Conflict(_)) => skipped += 1,
                Err(e) => return Err(e),
            }
        }
        Ok((done, skipped))
    })
    .await?;
    Ok(Redirect::to(&format!("/alerts?done={done}&skipped={skipped}")).into_response())
}

pub async fn alerts_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AlertQuery>,
) -> Result<Json<Value>, AppError> {
    let v = alerts_view(&state, &viewer, q).await?;
    Ok(Json(json!({ "alerts": v["alerts"] })))
}

async fn queries_view(
    state: &AppState,
    viewer: &Viewer,
    q: QueriesQuery,
) -> Result<Value, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    let mut v = with_db(state, move |db| views::queries(db, scope.as_deref(), &q)).await?;
    v["tenant_choices"] = tenant_choices(state, viewer)?;
    Ok(v)
}

pub async fn queries_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<QueriesQuery>,
) -> Result<Html<String>, AppError> {
    let v = queries_view(&state, &viewer, q).await?;
    page("queries.html", &viewer, v)
}

pub async fn queries_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<QueriesQuery>,
) -> Result<Json<Value>, AppError> {
    let mut v = queries_view(&state, &viewer, q).await?;
    if let Some(o) = v.as_object_mut() {
        o.remove("tenant_choices");
        o.remove("actions");
        // the API pages through the same search under its own path
        for k in ["next", "previous"] {
            if let Some(Value::String(link)) = o.get_mut(k) {
                *link = link.replacen("/queries?", "/api/v1/queries?", 1);
            }
        }
    }
    Ok(Json(v))
}

pub(crate) async fn alert_view(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
) -> Result<Value, AppError> {
    let vw = viewer.clone();
    let d = dashboard(state)?;
    with_db(state, move |db| {
        let a = views::alert(db, &vw, id)?;
        let mut v = a.to_json();
        v["deliveries"] = views::deliveries(db, &vw, id)?;
        crate::workbench::extend(db, &d, &vw, &a, &mut v)?;
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
    let typed = json!({"note": f.note});
    let done = with_db(&state, move |db| {
        views::set_status(db, &vw, id, &f.status, &f.note, &client)
    })
    .await;
    if let Err(AppError::BadRequest(m)) = done {
        return crate::workbench::alert_form_problem(&state, &viewer, id, "status", m, typed).await;
    }
    done?;
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

/// Query parameters of the mail list.
#[derive(Debug, Default, Deserialize)]
pub struct MailQuery {
    pub tenant: Option<String>,
    /// `regressed`: only domains whose latest check is worse than the one
    /// before (the overview's count links here).
    pub show: Option<String>,
}

async fn mail_view(state: &AppState, viewer: &Viewer, q: &MailQuery) -> Result<Value, AppError> {
    let scope = viewer.scope(q.tenant.as_deref())?;
    crate::app::check_filter("show", q.show.as_deref())?;
    let regressed_only = match q.show.as_deref().unwrap_or("") {
        "" | "all" => false,
        "regressed" => true,
        other => {
            return Err(AppError::BadRequest(format!(
                "show: `{other}` is not `all` or `regressed`"
            )));
        }
    };
    let d = dashboard(state)?;
    let mut v = with_db(state, move |db| views::mail(&d, db, scope.as_deref())).await?;
    if regressed_only && let Some(rows) = v["domains"].as_array_mut() {
        rows.retain(|r| r["regressed"] == json!(true));
    }
    v["show"] = json!(if regressed_only { "regressed" } else { "all" });
    Ok(v)
}

pub async fn mail_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<MailQuery>,
) -> Result<Html<String>, AppError> {
    let v = mail_view(&state, &viewer, &q).await?;
    page("mail.html", &viewer, v)
}

pub async fn mail_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<MailQuery>,
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
    let mut v = mail_domain_view(&state, &viewer, domain).await?;
    if let Some(o) = v.as_object_mut() {
        o.remove("dmarc_chart");
    }
    Ok(Json(v))
}

async fn kpi_report(
    state: &AppState,
    viewer: &Viewer,
    q: &AssuranceQuery,
) -> Result<(String, String, parapet_assurance::kpi::KpiReport), AppError> {
    let d = dashboard(state)?;
    let (tenant, quarter, q) = assurance_args(&d, viewer, q)?;
    let t = tenant.clone();
    let r = with_db(state, move |db| {
        Ok(quarter_kpis(db, &t, q, &d.assurance.kpi, now())?)
    })
    .await?;
    Ok((tenant, quarter, r))
}

/// The tenant and quarter an assurance request is about, its search
/// fields checked.
fn assurance_args(
    d: &crate::Dashboard,
    viewer: &Viewer,
    q: &AssuranceQuery,
) -> Result<(String, String, parapet_assurance::quarter::Quarter), AppError> {
    for (field, value) in [
        ("q", &q.q),
        ("class", &q.class),
        ("source", &q.source),
        ("status", &q.status),
        ("quarter", &q.quarter),
    ] {
        crate::app::check_filter(field, value.as_deref())?;
    }
    let tenant = views::assurance_tenant(d, viewer, q.tenant.as_deref())?;
    let quarter = q
        .quarter
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| views::current_quarter(&d.assurance));
    let parsed = views::quarter(&d.assurance, &quarter)?;
    Ok((tenant, quarter, parsed))
}

pub async fn assurance_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AssuranceQuery>,
) -> Result<Html<String>, AppError> {
    assurance_html(&state, &viewer, q, None, None).await
}

/// The assurance page, with what a freeze or reopen form did, or the
/// commentary form refused with what was typed.
pub(crate) async fn assurance_html(
    state: &AppState,
    viewer: &Viewer,
    q: AssuranceQuery,
    message: Option<String>,
    refused: Option<crate::commentary::Refused>,
) -> Result<Html<String>, AppError> {
    let d = dashboard(state)?;
    // the tenant and quarter checks of the API twin, then the report's own
    // inputs: the KPIs and the trend the committee report draws
    let (tenant, quarter, quarter_arg) = assurance_args(&d, viewer, &q)?;
    let t = tenant.clone();
    let (input, incidents) = with_db(state, move |db| {
        let a = &d.assurance;
        let text = ReportText {
            committee: a.committee.clone(),
            exemption: None,
        };
        let input = report_input(db, &t, quarter_arg, &a.kpi, a.council(&t), text, now())?;
        Ok((input, db.incidents(Some(&t))?))
    })
    .await?;
    let trend = parapet_report::trend_chart(&input);
    let r = input.kpi;
    let register = views::register(&r, &q);
    let exempt = viewer.may_see_exempt(&tenant);
    let files: Vec<&str> = parapet_report::files()
        .iter()
        .copied()
        .filter(|f| exempt || !f.starts_with("exempt-appendix"))
        .collect();
    // the register's status now, beside the status at the quarter's end
    let status_now: serde_json::Map<String, Value> = incidents
        .iter()
        .map(|i| (i.reference.clone(), json!(i.status)))
        .collect();
    let editable = viewer.may_edit_commentary(&tenant) && !r.frozen;
    let (t, qs) = (tenant.clone(), quarter.clone());
    let commentary = with_db(state, move |db| {
        crate::commentary::view(db, &t, &qs, editable)
    })
    .await?;
    let mut v = json!({
        "tenant": tenant,
        "quarter": quarter,
        "report": r,
        "trend_svg": trend,
        "status_now": status_now,
        "register": register,
        "filter": {"q": q.q, "class": q.class, "source": q.source, "status": q.status},
        "files": files,
        "tenant_choices": tenant_choices(state, viewer)?,
        "message": message,
        "may_freeze": viewer.user.role == parapet_store::accounts::Role::SupplierAdmin,
        "ended": views::quarter(&dashboard(state)?.assurance, &quarter)?.end() < now(),
        "commentary": commentary,
    });
    if let Some(r) = refused {
        crate::commentary::show_refused(&mut v, r);
    }
    page("assurance.html", viewer, v)
}

pub async fn kpis_api(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<AssuranceQuery>,
) -> Result<Json<Value>, AppError> {
    let (tenant, quarter, r) = kpi_report(&state, &viewer, &q).await?;
    Ok(Json(json!({
        "tenant": tenant, "quarter": quarter, "period": r.period, "frozen": r.frozen,
        "freeze": r.freeze, "snapshot_date": r.snapshot_date, "kpis": r.kpis, "cyber_essentials": r.cyber_essentials, "evidence_files": r.evidence_files,
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

pub(crate) fn incident_json(i: &parapet_assurance::model::Incident) -> Value {
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
    if file.starts_with("exempt-appendix") && !viewer.may_see_exempt(&tenant) {
        return Err(AppError::Forbidden);
    }
    let quarter_arg = views::quarter(&d.assurance, &quarter)?;
    let (t, q, f) = (tenant.clone(), quarter.clone(), file.clone());
    let actor = viewer.user.name.clone();
    let bytes = with_db(&state, move |db| {
        let a = &d.assurance;
        let text = ReportText {
            committee: a.council(&t).committee(&a.committee),
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
