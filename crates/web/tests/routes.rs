//! Router-level tests of every route in `ROUTES`: authentication, CSRF,
//! login throttling and tenant isolation, without a socket (`oneshot`).
//! The isolation test walks the route table, so a new route is covered
//! the day it is added.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use parapet_assurance::model::Incident;
use parapet_assurance::store::AssuranceStore;
use parapet_core::alert::{Severity, Signal};
use parapet_core::event::{EventAction, PrivateEvent};
use parapet_core::name::{EventName, text_to_key};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_report::Council;
use parapet_store::accounts::Role;
use parapet_store::{
    AccountStore, AlertStore, Db, EventStore, MailCheckRow, MailFinding, MailStore, SqliteStore,
};
use parapet_web::auth::{hash_password, token_digest};
use parapet_web::{
    Access, AppState, AssuranceSettings, Dashboard, FeedInfo, Method, PrivacyFacts, ROUTES, Target,
    TenantInfo,
};
use tower::ServiceExt;

/// The assurance pages as an installation with default settings counts
/// them; each council's name carries its tenant, so a leak shows.
fn assurance() -> AssuranceSettings {
    let council = |t: &str| Council {
        name: format!("{t} council"),
        mail_domains: vec![format!("{t}-mail.test")],
        ..Council::default()
    };
    AssuranceSettings {
        default_quarter: Some("2021-22-Q2".into()),
        councils: vec![
            ("north".into(), council("north")),
            ("south".into(), council("south")),
        ],
        committee: "Audit Committee".into(),
        ..AssuranceSettings::default()
    }
}

/// Two councils with one of everything each; names carry the tenant so a
/// leak shows in a response body.
struct World {
    app: Router,
    dash: Arc<Dashboard>,
    /// (north, south) alert ids, incident ids.
    alerts: (i64, i64),
    /// The API token of `dave`, the account the account routes act on.
    dave_token: i64,
    incidents: (i64, i64),
    _dir: tempfile::TempDir,
}

const PASSWORD: &str = "correct horse battery";

fn session(db: &mut SqliteStore, user: i64, token: &str) {
    db.create_session(
        &token_digest(token),
        user,
        &format!("csrf-{token}"),
        0,
        i64::MAX,
    )
    .unwrap();
}

fn world_with(configure: impl FnOnce(&mut Dashboard)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut db = SqliteStore::open(dir.path()).unwrap();
    let h = hash_password(PASSWORD);
    let admin = db
        .add_user("admin", Role::SupplierAdmin, None, &h, 0)
        .unwrap();
    let ann = db
        .add_user("ann", Role::Council, Some("north"), &h, 0)
        .unwrap();
    let bob = db
        .add_user("bob", Role::Council, Some("south"), &h, 0)
        .unwrap();
    let carol = db
        .add_user("carol", Role::SupplierAnalyst, None, &h, 0)
        .unwrap();
    let dave = db
        .add_user("dave", Role::Council, Some("north"), &h, 0)
        .unwrap();
    let olive = db
        .add_user("olive", Role::CouncilOfficer, Some("north"), &h, 0)
        .unwrap();
    session(&mut db, olive, "olive-session");
    db.add_api_token(olive, &token_digest("olive-token"), 0)
        .unwrap();
    session(&mut db, admin, "admin-session");
    session(&mut db, ann, "ann-session");
    session(&mut db, bob, "bob-session");
    session(&mut db, carol, "carol-session");
    session(&mut db, dave, "dave-session");
    db.add_api_token(carol, &token_digest("carol-token"), 0)
        .unwrap();
    db.add_api_token(dave, &token_digest("dave-token"), 0)
        .unwrap();
    let dave_token = db.api_tokens(dave).unwrap()[0].id;
    db.add_api_token(ann, &token_digest("ann-token"), 0)
        .unwrap();
    db.add_api_token(admin, &token_digest("admin-token"), 0)
        .unwrap();
    let now = SystemTime::now();
    let ev = |tenant: &str, name: &str| PrivateEvent {
        time: now - Duration::from_secs(600),
        tenant: Arc::from(tenant),
        client: ClientPseudonym([1; 8]),
        qname: EventName::new(&text_to_key(name).unwrap()),
        qtype: 1,
        rcode: 3,
        action: EventAction::Blocked,
        feed: Some(Arc::from("f")),
    };
    db.insert_events(&[
        ev("north", "north-secret.test"),
        ev("south", "south-secret.test"),
    ])
    .unwrap();
    let sig = |tenant: &str, domain: &str| Signal {
        time: now,
        tenant: Arc::from(tenant),
        rule: "feed.block",
        severity: Severity::High,
        domain: domain.into(),
        client: ClientPseudonym([1; 8]),
        feed: Some(Arc::from("f")),
        reason: format!("blocked {domain}"),
        evidence: format!("{domain} A blocked"),
        folded: None,
    };
    let ids = db
        .record_signals(&[
            sig("north", "north-secret.test"),
            sig("south", "south-secret.test"),
        ])
        .unwrap();
    for d in ["north-mail.test", "south-mail.test"] {
        db.save_mailcheck(&MailCheckRow {
            domain: d.into(),
            checked_at: 1_000,
            worst: Some("error".into()),
            findings: vec![MailFinding {
                severity: "error".into(),
                code: "dmarc.missing".into(),
                message: format!("{d}: publish a DMARC record"),
            }],
            report: "{}".into(),
        })
        .unwrap();
    }
    let inc = |tenant: &str| Incident {
        tenant: tenant.into(),
        reference: format!("{tenant}-secret-incident"),
        detected_at: 1_630_000_000,
        category: "phishing".into(),
        outcome: "attempted".into(),
        status: "open".into(),
        ..Default::default()
    };
    let i_north = db.add_incident(&inc("north"), 0).unwrap();
    let i_south = db.add_incident(&inc("south"), 0).unwrap();
    let mut d = Dashboard::new(
        vec![Box::new(db)],
        vec![
            TenantInfo {
                name: "north".into(),
                display_name: None,
                mail_domains: vec!["north-mail.test".into()],
                networks: vec!["10.1.0.0/16".into()],
            },
            TenantInfo {
                name: "south".into(),
                display_name: None,
                mail_domains: vec!["south-mail.test".into()],
                networks: vec!["10.2.0.0/16".into()],
            },
        ],
        assurance(),
        PrivacyFacts::default(),
    );
    d.feeds = vec![
        FeedInfo {
            name: "shared-feed".into(),
            category: "malware".into(),
            mode: "block".into(),
            tenants: None,
            source: "file shared.rpz".into(),
        },
        FeedInfo {
            name: "south-only-feed".into(),
            category: "phishing".into(),
            mode: "block".into(),
            tenants: Some(vec!["south".into()]),
            source: "file south.txt".into(),
        },
    ];
    configure(&mut d);
    let dash = Arc::new(d);
    let app = parapet_web::router(AppState {
        metrics: Arc::new(|| "parapet_up 1\n".into()),
        dashboard: Some(dash.clone()),
    });
    World {
        app,
        dash,
        alerts: (ids[0].0, ids[1].0),
        dave_token,
        incidents: (i_north, i_south),
        _dir: dir,
    }
}

fn world() -> World {
    world_with(|_| {})
}

/// How a request authenticates.
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    /// A browser session token (the CSRF token is `csrf-TOKEN`).
    Session(&'a str),
    Token(&'a str),
}

struct Resp {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

async fn call(app: &Router, method: Method, uri: &str, who: As<'_>) -> Resp {
    let mut b = Request::builder()
        .method(if method == Method::Get { "GET" } else { "POST" })
        .uri(uri);
    let body = match who {
        As::Nobody => String::new(),
        As::Session(t) => {
            b = b.header(header::COOKIE, format!("parapet_session={t}"));
            // the alert status form's fields and the account form's
            format!(
                "csrf=csrf-{t}&status=investigating&note=checked&name=erin&role=supplier-analyst"
            )
        }
        As::Token(t) => {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
            String::new()
        }
    };
    let body = if method == Method::Post {
        if uri.starts_with("/api/") {
            b = b.header(header::CONTENT_TYPE, "application/json");
            if let As::Session(t) = who {
                b = b.header("x-csrf-token", format!("csrf-{t}"));
            }
            r#"{"status":"investigating","note":"checked"}"#.to_string()
        } else {
            b = b.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            body
        }
    } else {
        String::new()
    };
    let resp = app
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The URI of `route` aimed at one tenant's objects.
fn aim(w: &World, path: &str, target: Target, south: bool) -> String {
    let pick = |(n, s): (i64, i64)| if south { s } else { n };
    let tenant = if south { "south" } else { "north" };
    match target {
        Target::Alert => path.replace("{id}", &pick(w.alerts).to_string()),
        Target::Incident => path.replace("{id}", &pick(w.incidents).to_string()),
        Target::Domain => path.replace("{domain}", &format!("{tenant}-mail.test")),
        Target::Tenant => path
            .replace("{tenant}", tenant)
            .replace("{quarter}", "2021-22-Q2")
            .replace("{file}", "public-report.html"),
        Target::List => format!("{path}?tenant={tenant}"),
        Target::Account => path
            .replace("{name}", "dave")
            .replace("{id}", &w.dave_token.to_string()),
        Target::None => path.to_string(),
    }
}

fn who(route_is_api: bool, session: &'static str, token: &'static str) -> As<'static> {
    if route_is_api {
        As::Token(token)
    } else {
        As::Session(session)
    }
}

#[tokio::test]
async fn every_user_route_requires_a_login_or_token() {
    let w = world();
    let mut checked = 0;
    for r in ROUTES.iter().filter(|r| r.access != Access::Public) {
        let uri = aim(&w, r.path, r.target, false);
        let resp = call(&w.app, r.method, &uri, As::Nobody).await;
        if r.is_api() {
            assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{uri}");
        } else {
            assert_eq!(resp.status, StatusCode::SEE_OTHER, "{uri}");
            assert_eq!(resp.headers[header::LOCATION], "/login", "{uri}");
        }
        let bad = call(&w.app, r.method, &uri, As::Token("not-a-token")).await;
        assert_eq!(
            bad.status,
            StatusCode::UNAUTHORIZED,
            "{uri} with a wrong token"
        );
        checked += 1;
    }
    assert!(
        checked >= 20,
        "the route table lists the dashboard ({checked})"
    );
}

#[tokio::test]
async fn a_council_user_never_sees_another_tenants_data_on_any_route() {
    let w = world();
    let mut aimed = 0;
    for r in ROUTES.iter().filter(|r| r.access == Access::User) {
        let me = who(r.is_api(), "ann-session", "ann-token");
        if r.target == Target::None {
            continue;
        }
        // ann (north) aiming at south's objects, or naming south in a list
        let theirs = aim(&w, r.path, r.target, true);
        let resp = call(&w.app, r.method, &theirs, me).await;
        assert!(
            resp.status == StatusCode::NOT_FOUND || resp.status == StatusCode::FORBIDDEN,
            "{:?} {theirs} gave {} to a north user",
            r.method,
            resp.status
        );
        assert!(
            !resp.body.contains("south-"),
            "{theirs} leaked: {}",
            resp.body
        );
        // the same route on ann's own objects works (the 404 above is not
        // vacuous); a second status change may meet the workflow's 409
        let mine = aim(&w, r.path, r.target, false);
        let resp = call(&w.app, r.method, &mine, me).await;
        assert!(
            resp.status.is_success()
                || resp.status.is_redirection()
                || (r.method == Method::Post && resp.status == StatusCode::CONFLICT),
            "{:?} {mine} gave {} to a north user: {}",
            r.method,
            resp.status,
            resp.body
        );
        assert!(
            !resp.body.contains("south-"),
            "{mine} leaked: {}",
            resp.body
        );
        // a list without a tenant shows ann's own tenant only
        if r.target == Target::List && r.method == Method::Get {
            let resp = call(&w.app, r.method, r.path, me).await;
            assert_eq!(resp.status, StatusCode::OK, "{}", r.path);
            assert!(
                !resp.body.contains("south-"),
                "{} leaked: {}",
                r.path,
                resp.body
            );
        }
        aimed += 1;
    }
    assert!(aimed >= 15, "routes aimed at: {aimed}");
}

#[tokio::test]
async fn suppliers_see_every_tenant() {
    let w = world();
    for (uri, needle) in [
        ("/api/v1/alerts", "south-secret.test"),
        ("/api/v1/overview", "south-secret.test"),
        ("/api/v1/mail", "south-mail.test"),
        ("/api/v1/incidents", "south-secret-incident"),
        ("/api/v1/tenants", "10.2.0.0/16"),
        ("/api/v1/queries", "south-secret.test"),
    ] {
        let r = call(&w.app, Method::Get, uri, As::Token("admin-token")).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        assert!(r.body.contains(needle), "{uri}: {}", r.body);
        let north = needle.replace("south", "north").replace("10.2.", "10.1.");
        assert!(r.body.contains(&north), "{uri}");
    }
}

#[tokio::test]
async fn the_exempt_appendix_is_for_supplier_roles_only() {
    let w = world();
    let uri = "/reports/north/2021-22-Q2/exempt-appendix.html";
    let r = call(&w.app, Method::Get, uri, As::Session("ann-session")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(&w.app, Method::Get, uri, As::Session("admin-session")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let r = call(
        &w.app,
        Method::Get,
        "/reports/north/2021-22-Q2/kpi.json",
        As::Session("ann-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["kpis"].as_array().map(Vec::len), Some(5));
    let r = call(
        &w.app,
        Method::Get,
        "/reports/north/2021-22-Q2/secrets.txt",
        As::Session("admin-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/kpis?quarter=nonsense",
        As::Token("admin-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// A council officer downloads its own council's exempt appendix, not
/// another's, and writes its commentary (CSRF, audited) into the public
/// report until the quarter is frozen; a plain council account does
/// neither.
#[tokio::test]
async fn a_council_officer_gets_its_own_appendix_and_writes_its_commentary() {
    let w = world();
    // the form is on the assurance page of a quarter still open (no data
    // before its end, so reading it froze nothing), for the officer only
    let form = "action=\"/assurance/north/2021-22-Q1/commentary\"";
    let page = call(
        &w.app,
        Method::Get,
        "/assurance?quarter=2021-22-Q1",
        As::Session("olive-session"),
    )
    .await;
    assert!(page.body.contains(form), "{}", page.body);
    assert!(
        page.body.contains("for=\"kpi2\">Commentary"),
        "{}",
        page.body
    );
    let page = call(
        &w.app,
        Method::Get,
        "/assurance?quarter=2021-22-Q1",
        As::Session("ann-session"),
    )
    .await;
    assert!(!page.body.contains("/commentary\""), "{}", page.body);

    let uri = |t: &str| format!("/assurance/{t}/2021-22-Q2/commentary");
    let fields = "kpi2=Two+servers+are+being+rebuilt.&actions2=Replace+the+agent%0D%0AReview+in+March&options=None+other.&legal=No+legal+implications.&papers=Cyber+strategy+2021";
    let r = post_form(&w.app, &uri("north"), "ann-session", None, fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "a council account");
    let r = post_form(
        &w.app,
        &uri("north"),
        "olive-session",
        Some("forged"),
        fields,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no CSRF token");
    let r = post_form(&w.app, &uri("south"), "olive-session", None, fields).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another council");
    let r = post_form(&w.app, &uri("north"), "olive-session", None, fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(audit_actions(&w).contains(&(
        "olive".into(),
        "report.commentary".into(),
        "2021-22-Q2".into()
    )));
    // a field too long: the page again with what was written, the error
    // summary linking to the field, and nothing saved
    let long = format!(
        "kpi2=Words+worth+keeping.&legal={}",
        "x".repeat(parapet_report::MAX_FIELD + 1)
    );
    let r = post_form(&w.app, &uri("north"), "olive-session", None, &long).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_problems(&r, "Assurance", &["legal"]);
    assert!(r.body.contains("Words worth keeping."), "{}", r.body);
    let saves = audit_actions(&w)
        .iter()
        .filter(|a| a.1 == "report.commentary")
        .count();
    assert_eq!(saves, 1, "the refused form saved nothing");
    // public text: every account of the council reads it in the report
    let r = call(
        &w.app,
        Method::Get,
        "/reports/north/2021-22-Q2/public-report.html",
        As::Session("ann-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    for want in [
        "Two servers are being rebuilt.",
        "<li>Replace the agent</li>",
        "<li>Review in March</li>",
        "None other.",
        "No legal implications.",
        "Cyber strategy 2021",
    ] {
        assert!(r.body.contains(want), "{want}: {}", r.body);
    }
    let south = call(
        &w.app,
        Method::Get,
        "/reports/south/2021-22-Q2/public-report.html",
        As::Session("admin-session"),
    )
    .await;
    assert!(!south.body.contains("Two servers are being rebuilt."));
    let appendix = |t: &str| format!("/reports/{t}/2021-22-Q2/exempt-appendix.html");
    let r = call(
        &w.app,
        Method::Get,
        &appendix("north"),
        As::Session("olive-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("NOT FOR PUBLICATION"), "{}", r.body);
    let r = call(
        &w.app,
        Method::Get,
        &appendix("south"),
        As::Token("olive-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &w.app,
        Method::Get,
        &appendix("north"),
        As::Token("ann-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let page = call(
        &w.app,
        Method::Get,
        "/assurance?tenant=north&quarter=2021-22-Q3",
        As::Session("ann-session"),
    )
    .await;
    assert!(!page.body.contains("exempt-appendix"), "{}", page.body);

    // once the ended quarter is frozen, its commentary is what was tabled
    let r = post_form(
        &w.app,
        "/reports/north/2021-22-Q2/freeze",
        "admin-session",
        None,
        "",
    )
    .await;
    assert!(
        r.status.is_success() || r.status.is_redirection(),
        "{}",
        r.body
    );
    let r = post_form(
        &w.app,
        &uri("north"),
        "olive-session",
        None,
        "options=Changed.",
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let page = call(
        &w.app,
        Method::Get,
        "/assurance?quarter=2021-22-Q2",
        As::Session("olive-session"),
    )
    .await;
    assert!(
        page.body.contains("Two servers are being rebuilt."),
        "{}",
        page.body
    );
    assert!(page.body.contains("is frozen"), "{}", page.body);
    assert!(page.body.contains("exempt-appendix.html"), "{}", page.body);
}

#[tokio::test]
async fn status_changes_need_the_csrf_token_and_are_audited() {
    let w = world();
    let id = w.alerts.0;
    let uri = format!("/alerts/{id}/status");
    let forged = Request::builder()
        .method("POST")
        .uri(&uri)
        .header(header::COOKIE, "parapet_session=ann-session")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("status=resolved&note=forged&csrf=guess"))
        .unwrap();
    let r = w.app.clone().oneshot(forged).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // without a note: the alert page again, the summary linking to the note
    let r = post_form(&w.app, &uri, "ann-session", None, "status=resolved&note=").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_problems(&r, &format!("Alert {id}"), &["note"]);
    let r = call(&w.app, Method::Post, &uri, As::Session("ann-session")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let page = call(
        &w.app,
        Method::Get,
        &format!("/alerts/{id}"),
        As::Session("ann-session"),
    )
    .await;
    assert!(
        page.body.contains(
            r#"id="status"><strong class="govuk-tag govuk-tag--light-blue">Investigating</strong>"#
        ),
        "{}",
        page.body
    );
    // the API: a cookie needs the header, a token does not
    let r = call(
        &w.app,
        Method::Post,
        &format!("/api/v1/alerts/{id}/status"),
        As::Token("ann-token"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::CONFLICT,
        "investigating → investigating is not a move"
    );
    let mut db = w.dash.db.get().unwrap();
    let log = db.audit_log(Some("north"), 10).unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].action, "alert.status");
    assert_eq!(log[0].actor, "ann");
    assert!(
        log[0].detail.contains("new → investigating: checked"),
        "{}",
        log[0].detail
    );
}

async fn login(app: &Router, user: &str, password: &str) -> Resp {
    login_from(app, user, password, None, None).await
}

/// A login from TCP peer `peer`, through proxies that say `forwarded_for`.
async fn login_from(
    app: &Router,
    user: &str,
    password: &str,
    peer: Option<&str>,
    forwarded_for: Option<&str>,
) -> Resp {
    let form = call(app, Method::Get, "/login", As::Nobody).await;
    let cookie = form.headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    let csrf = cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    assert!(
        form.body.contains(&csrf),
        "the form carries the login CSRF token"
    );
    let mut req = Request::builder()
        .method("POST")
        .uri("/login")
        .header(header::COOKIE, format!("parapet_login_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let mut req = req
        .body(Body::from(format!(
            "username={user}&password={password}&csrf={csrf}"
        )))
        .unwrap();
    if let Some(peer) = peer {
        req.extensions_mut().insert(axum::extract::ConnectInfo(
            peer.parse::<std::net::SocketAddr>().unwrap(),
        ));
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

#[tokio::test]
async fn login_sets_a_strict_http_only_cookie_and_failures_are_throttled() {
    let w = world();
    let ok = login(&w.app, "ann", &PASSWORD.replace(' ', "+")).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.headers[header::LOCATION], "/");
    let cookie = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("parapet_session="))
        .unwrap();
    assert!(
        cookie.contains("; HttpOnly; SameSite=Strict; Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"));
    assert_eq!(ok.headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(
        ok.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'none'")
    );
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(token.len(), 64, "256-bit token");
    let home = call(&w.app, Method::Get, "/", As::Session(token)).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("ann (council, north)"));

    for _ in 0..parapet_web::auth::MAX_FAILURES_PER_USER {
        let r = login(&w.app, "ann", "wrong").await;
        assert_eq!(r.headers[header::LOCATION], "/login?error=1");
    }
    let r = login(&w.app, "ann", &PASSWORD.replace(' ', "+")).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let r = login(&w.app, "bob", &PASSWORD.replace(' ', "+")).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "other accounts are unaffected"
    );
    let mut db = w.dash.db.get().unwrap();
    let actions: Vec<String> = db
        .audit_log(None, 50)
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions.iter().filter(|a| *a == "login.failed").count(), 5);
    assert_eq!(actions.iter().filter(|a| *a == "login.ok").count(), 2);
    assert_eq!(
        actions.iter().filter(|a| *a == "login.throttled").count(),
        1
    );
}

#[tokio::test]
async fn cookies_are_secure_behind_tls() {
    let w = world_with(|d| d.secure_cookies = true);
    let ok = login(&w.app, "bob", &PASSWORD.replace(' ', "+")).await;
    let secure = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .all(|v| v.to_str().unwrap().ends_with("; Secure"));
    assert!(secure);
}

#[tokio::test]
async fn the_openapi_document_lists_every_api_route() {
    let w = world();
    let r = call(&w.app, Method::Get, "/api/v1/openapi.json", As::Nobody).await;
    assert_eq!(r.status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    for route in ROUTES.iter().filter(|r| r.is_api()) {
        let m = if route.method == Method::Get {
            "get"
        } else {
            "post"
        };
        let op = &doc["paths"][route.path][m];
        assert!(op.is_object(), "{} {} missing", m, route.path);
        let declared = op["parameters"].as_array().unwrap().len();
        let expected = route.path.matches('{').count() + route.query.len();
        assert_eq!(declared, expected, "{}", route.path);
    }
}

#[tokio::test]
async fn logout_ends_the_session() {
    let w = world();
    let r = call(&w.app, Method::Post, "/logout", As::Session("bob-session")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = call(&w.app, Method::Get, "/", As::Session("bob-session")).await;
    assert_eq!(r.headers[header::LOCATION], "/login");
}

#[tokio::test]
async fn pages_render_the_seeded_data() {
    let w = world();
    let r = call(&w.app, Method::Get, "/", As::Session("admin-session")).await;
    assert!(r.body.contains("<svg"), "the traffic chart");
    assert!(
        r.body.contains(r#"id="alerts-new">2<"#),
        "both councils' new alerts"
    );
    assert!(r.body.contains("north-secret.test") && r.body.contains("south-secret.test"));
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/overview",
        As::Token("ann-token"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        v["alerts_by_status"][0],
        serde_json::json!({"status": "new", "count": 1})
    );
    assert_eq!(
        (v["queries"].as_u64(), v["blocked"].as_u64()),
        (Some(1), Some(1))
    );
    let r = call(
        &w.app,
        Method::Get,
        "/mail/north-mail.test",
        As::Session("ann-session"),
    )
    .await;
    assert!(r.body.contains("dmarc.missing") && r.body.contains("publish a DMARC record"));
    let r = call(
        &w.app,
        Method::Get,
        "/assurance",
        As::Session("ann-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("north-secret-incident"), "{}", r.body);
    assert!(
        !r.body.contains("exempt-appendix"),
        "no appendix link for a council"
    );
    let r = call(&w.app, Method::Get, "/tenants", As::Session("ann-session")).await;
    assert!(
        r.body.contains("shared-feed") && r.body.contains("10.1.0.0"),
        "{}",
        r.body
    );
    assert!(!r.body.contains("10.2.0.0"), "south's networks");
    let r = call(&w.app, Method::Get, "/privacy", As::Session("ann-session")).await;
    assert!(r.body.contains("HMAC-SHA256"));
}

#[test]
fn a_busy_connection_does_not_block_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let conns: Vec<Box<dyn Db>> = (0..2)
        .map(|_| Box::new(SqliteStore::open(dir.path()).unwrap()) as Box<dyn Db>)
        .collect();
    let pool = parapet_web::DbPool::new(conns);
    let mut held = pool.get().unwrap();
    // with the first connection held, the second is handed out at once
    let mut other = pool.get().unwrap();
    other
        .add_user("carol", Role::SupplierAnalyst, None, "h", 0)
        .unwrap();
    drop(other);
    assert_eq!(
        held.user("carol").unwrap().unwrap().role,
        Role::SupplierAnalyst
    );
}

/// A pool at its size lends nothing more: a request waits its turn for
/// the pool's wait, then is refused (503) instead of queueing for ever;
/// a connection given back is lent again, and a growing pool opens its
/// connections only as requests need them.
#[test]
fn a_full_pool_refuses_after_its_wait_and_grows_only_to_its_size() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = opened.clone();
    let pool = parapet_web::DbPool::growing(
        Box::new(SqliteStore::open(&path).unwrap()),
        2,
        Box::new(move || {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(Box::new(SqliteStore::open(&path)?) as Box<dyn Db>)
        }),
    )
    .wait(std::time::Duration::from_millis(50));
    let first = pool.get().unwrap();
    assert_eq!(opened.load(Ordering::Relaxed), 0, "the idle one first");
    let second = pool.get().unwrap();
    assert_eq!(opened.load(Ordering::Relaxed), 1);
    let err = pool.get().err().expect("the pool is at its size");
    assert!(
        matches!(err, parapet_web::PoolError::Busy { size: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("pool_size"), "{err}");
    drop(first);
    let mut again = pool.get().unwrap();
    assert!(again.user("nobody").unwrap().is_none());
    drop(second);
    drop(again);
    assert_eq!(
        opened.load(Ordering::Relaxed),
        1,
        "never more than it needs"
    );
}

#[tokio::test]
async fn long_user_names_are_refused_without_a_trace() {
    let w = world();
    let name = "a".repeat(1500);
    let r = login(&w.app, &name, "wrong").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("username"), "{}", r.body);
    let mut db = w.dash.db.get().unwrap();
    assert!(
        db.audit_log(None, 10).unwrap().is_empty(),
        "nothing stored for a name no account can have"
    );
}

#[tokio::test]
async fn status_notes_over_4_kb_are_refused() {
    let w = world();
    let id = w.alerts.0;
    let note = "n".repeat(parapet_web::MAX_NOTE + 1);
    let req = Request::builder()
        .method("POST")
        .uri(format!("/api/v1/alerts/{id}/status"))
        .header(header::AUTHORIZATION, "Bearer ann-token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(
            r#"{{"status":"investigating","note":"{note}"}}"#
        )))
        .unwrap();
    let r = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let mut db = w.dash.db.get().unwrap();
    assert_eq!(db.alert(id).unwrap().status.as_str(), "new");
    assert!(db.audit_log(Some("north"), 10).unwrap().is_empty());
}

#[tokio::test]
async fn report_downloads_for_unknown_tenants_are_404_and_freeze_nothing() {
    let w = world();
    let evil = "x%22%3B%20filename%2A%3DUTF-8%27%27evil.exe%3B%20a%3D%22";
    let r = call(
        &w.app,
        Method::Get,
        &format!("/api/v1/reports/{evil}/2021-22-Q2/kpi.json"),
        As::Token("admin-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.headers.get(header::CONTENT_DISPOSITION).is_none());
    {
        let mut db = w.dash.db.get().unwrap();
        let tenant = "x\"; filename*=UTF-8''evil.exe; a=\"";
        assert_eq!(db.kpi_snapshot(tenant, "2021-22-Q2").unwrap(), None);
    }
    // the assurance view of an unknown tenant is not computed either
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/kpis?tenant=nosuch&quarter=2021-22-Q2",
        As::Token("admin-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    {
        let mut db = w.dash.db.get().unwrap();
        assert_eq!(db.kpi_snapshot("nosuch", "2021-22-Q2").unwrap(), None);
    }
    let ok = call(
        &w.app,
        Method::Get,
        "/api/v1/reports/north/2021-22-Q2/kpi.json",
        As::Token("admin-token"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(
        ok.headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"north-2021-22-Q2-kpi.json\""
    );
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let w = world_with(|d| d.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]);
    let proxy = Some("127.0.0.1:40000");
    // one client behind the proxy fails until it is throttled...
    for i in 0..parapet_web::auth::MAX_FAILURES_PER_CLIENT {
        let r = login_from(
            &w.app,
            &format!("u{i}"),
            "wrong",
            proxy,
            Some("203.0.113.9"),
        )
        .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }
    let r = login_from(&w.app, "ann", "wrong", proxy, Some("203.0.113.9")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // ...and another client through the same proxy is not locked out
    let ok = login_from(
        &w.app,
        "ann",
        &PASSWORD.replace(' ', "+"),
        proxy,
        Some("198.51.100.4"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.headers[header::LOCATION], "/");
    // a peer that is not a proxy cannot choose its address
    login_from(
        &w.app,
        "bob",
        "wrong",
        Some("192.0.2.50:1234"),
        Some("203.0.113.77"),
    )
    .await;
    let mut db = w.dash.db.get().unwrap();
    let log = db.audit_log(None, 100).unwrap();
    let client_of = |action: &str, actor: &str| {
        log.iter()
            .find(|e| e.action == action && e.actor == actor)
            .and_then(|e| e.client.clone())
    };
    assert_eq!(
        client_of("login.failed", "u0").as_deref(),
        Some("203.0.113.9")
    );
    assert_eq!(
        client_of("login.ok", "ann").as_deref(),
        Some("198.51.100.4")
    );
    assert_eq!(
        client_of("login.failed", "bob").as_deref(),
        Some("192.0.2.50")
    );
}

#[tokio::test]
async fn oversized_requests_and_search_fields_are_refused() {
    let w = world();
    let long = "r".repeat(parapet_web::MAX_URI);
    let r = call(
        &w.app,
        Method::Get,
        &format!("/api/v1/alerts?rule={long}"),
        As::Token("ann-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::URI_TOO_LONG);
    let r = call(
        &w.app,
        Method::Get,
        &format!("/api/v1/alerts?rule={}", "r".repeat(200)),
        As::Token("ann-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("rule"), "{}", r.body);
    let r = call(
        &w.app,
        Method::Get,
        &format!("/api/v1/assets?q={}", "q".repeat(200)),
        As::Token("ann-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let req = Request::builder()
        .method("POST")
        .uri(format!("/api/v1/alerts/{}/status", w.alerts.0))
        .header(header::AUTHORIZATION, "Bearer ann-token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(format!(
            r#"{{"status":"investigating","note":"{}"}}"#,
            "n".repeat(parapet_web::MAX_BODY)
        )))
        .unwrap();
    let r = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A failing notification shows on its alert (the supplier sees where it
/// goes, the council only the kind) and, for supplier staff, on the
/// overview.
#[tokio::test]
async fn failing_notifications_show_on_the_alert_and_the_overview() {
    let w = world();
    let north = w.alerts.0;
    {
        let mut db = w.dash.db.get().unwrap();
        let n = db
            .pending_notifications(10)
            .unwrap()
            .into_iter()
            .find(|n| n.alert_id == north)
            .unwrap();
        db.route_notification(n.id, &[("email soc@supplier.test".into(), 0)])
            .unwrap();
        let routed = db.alert_notifications(north).unwrap();
        db.notifications_failed(&[routed[0].id], "connection refused", 1_000, None)
            .unwrap();
    }
    let uri = format!("/api/v1/alerts/{north}");
    let admin = call(&w.app, Method::Get, &uri, As::Token("admin-token")).await;
    let v: serde_json::Value = serde_json::from_str(&admin.body).unwrap();
    let d = &v["deliveries"][0];
    assert_eq!(d["target"], "email soc@supplier.test", "{}", admin.body);
    assert_eq!(d["state"], "retrying");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_error"], "connection refused");
    let ann = call(&w.app, Method::Get, &uri, As::Token("ann-token")).await;
    let v: serde_json::Value = serde_json::from_str(&ann.body).unwrap();
    assert_eq!(v["deliveries"][0]["target"], "email", "{}", ann.body);
    assert_eq!(v["deliveries"][0]["state"], "retrying");
    assert!(!ann.body.contains("supplier.test"), "{}", ann.body);
    assert!(!ann.body.contains("connection refused"), "{}", ann.body);
    let page = call(
        &w.app,
        Method::Get,
        &format!("/alerts/{north}"),
        As::Session("admin-session"),
    )
    .await;
    assert!(page.body.contains("connection refused"), "{}", page.body);

    // the overview: supplier staff see the outbox (south's row still waits)
    let o = call(
        &w.app,
        Method::Get,
        "/api/v1/overview",
        As::Token("admin-token"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&o.body).unwrap();
    assert_eq!(
        v["notifications"],
        serde_json::json!({"pending": 2, "failing": 1, "given_up": 0}),
        "{}",
        o.body
    );
    let page = call(&w.app, Method::Get, "/", As::Session("admin-session")).await;
    assert!(
        page.body
            .contains("Alert notifications failing: 1 retrying"),
        "{}",
        page.body
    );
    let o = call(
        &w.app,
        Method::Get,
        "/api/v1/overview",
        As::Token("ann-token"),
    )
    .await;
    assert!(!o.body.contains("notifications"), "{}", o.body);
}

/// The role matrix (README, "Roles"), generated over the route table: each
/// route × role gets the status its `access` says: a refused role exactly
/// 403, an allowed one anything but 401/403 or the login page. Each route
/// starts from a fresh world, and the admin goes last, so an account
/// action cannot change what the other roles meet.
#[tokio::test]
async fn the_role_matrix_holds_on_every_route() {
    let roles = [
        (Role::Council, "ann-session", "ann-token"),
        (Role::CouncilOfficer, "olive-session", "olive-token"),
        (Role::SupplierAnalyst, "carol-session", "carol-token"),
        (Role::SupplierAdmin, "admin-session", "admin-token"),
    ];
    let mut refused = 0;
    for r in ROUTES {
        // the login form's POST checks its own CSRF cookie, which no
        // signed-in role carries here; the login tests cover it
        if r.method == Method::Post && r.path == "/login" {
            continue;
        }
        let w = world();
        let uri = aim(&w, r.path, r.target, false);
        for (role, session, token) in roles {
            let resp = call(&w.app, r.method, &uri, who(r.is_api(), session, token)).await;
            let to_login = resp
                .headers
                .get(header::LOCATION)
                .is_some_and(|l| l == "/login");
            if r.access.allows(role) {
                assert!(
                    resp.status != StatusCode::UNAUTHORIZED
                        && resp.status != StatusCode::FORBIDDEN
                        && (!to_login || r.path == "/logout"),
                    "{:?} {uri} as {}: {} {}",
                    r.method,
                    role.as_str(),
                    resp.status,
                    resp.body
                );
                if r.access == Access::Admin {
                    assert_eq!(resp.status, StatusCode::OK, "{uri}: {}", resp.body);
                }
            } else {
                assert_eq!(
                    resp.status,
                    StatusCode::FORBIDDEN,
                    "{:?} {uri} as {}",
                    r.method,
                    role.as_str()
                );
                refused += 1;
            }
        }
        // account management is admin-only wherever it is routed
        if r.path.starts_with("/accounts") {
            assert_eq!(r.access, Access::Admin, "{}", r.path);
        }
    }
    assert!(refused >= 10, "refusals checked: {refused}");
}

/// Asserts the GOV.UK error pattern on the page a refused form answers:
/// the title marked, and for each field the error summary's link to it
/// and its message beside it.
fn assert_problems(r: &Resp, title: &str, fields: &[&str]) {
    assert!(
        r.body.contains("govuk-error-summary")
            && r.body.contains(&format!("<title>Error: {title}")),
        "{title}: {}",
        r.body
    );
    for f in fields {
        assert!(
            r.body.contains(&format!("href=\"#{f}\""))
                && r.body.contains(&format!("id=\"{f}-error\"")),
            "{title}, field {f}: {}",
            r.body
        );
    }
}

/// `POST` a form as a signed-in session (the CSRF token is `csrf-TOKEN`
/// unless `csrf` overrides it).
async fn post_form(
    app: &Router,
    uri: &str,
    session: &str,
    csrf: Option<&str>,
    fields: &str,
) -> Resp {
    let csrf = csrf.map_or_else(|| format!("csrf-{session}"), str::to_string);
    let req = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::COOKIE, format!("parapet_session={session}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("csrf={csrf}&{fields}")))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn audit_actions(w: &World) -> Vec<(String, String, String)> {
    let mut db = w.dash.db.get().unwrap();
    db.audit_log(None, 100)
        .unwrap()
        .into_iter()
        .map(|e| (e.actor, e.action, e.detail))
        .collect()
}

#[tokio::test]
async fn removing_an_account_refuses_its_old_cookie_and_token_at_once() {
    let w = world();
    let ok = call(
        &w.app,
        Method::Get,
        "/api/v1/alerts",
        As::Token("dave-token"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    let ok = call(
        &w.app,
        Method::Get,
        "/api/v1/alerts",
        As::Session("dave-session"),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
    // a forged form is refused and removes nothing
    let r = post_form(
        &w.app,
        "/accounts/dave/remove",
        "admin-session",
        Some("guess"),
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(&w.app, "/accounts/dave/remove", "admin-session", None, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("dave removed"), "{}", r.body);
    assert!(!r.body.contains("id=\"account-dave\""), "{}", r.body);
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/alerts",
        As::Token("dave-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/alerts",
        As::Session("dave-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(&w.app, Method::Get, "/", As::Session("dave-session")).await;
    assert_eq!(r.headers[header::LOCATION], "/login");
    // the admin cannot remove itself here
    let r = post_form(&w.app, "/accounts/admin/remove", "admin-session", None, "").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = post_form(&w.app, "/accounts/nobody/remove", "admin-session", None, "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(audit_actions(&w).contains(&(
        "admin".into(),
        "user.removed".into(),
        "dave (council)".into()
    )));
}

#[tokio::test]
async fn a_revoked_token_and_a_reset_password_work_no_more() {
    let w = world();
    let page = call(
        &w.app,
        Method::Get,
        "/accounts",
        As::Session("admin-session"),
    )
    .await;
    let form = format!("/accounts/tokens/{}/revoke", w.dave_token);
    assert!(page.body.contains(&form), "{}", page.body);
    assert!(page.body.contains("last used never"), "{}", page.body);
    // a use is recorded, and shows
    call(
        &w.app,
        Method::Get,
        "/api/v1/alerts",
        As::Token("dave-token"),
    )
    .await;
    let page = call(
        &w.app,
        Method::Get,
        "/accounts",
        As::Session("admin-session"),
    )
    .await;
    assert_eq!(
        page.body.matches("last used never").count(),
        4,
        "ann's, olive's, admin's and carol's tokens"
    );
    let r = post_form(&w.app, &form, "admin-session", None, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/alerts",
        As::Token("dave-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/alerts",
        As::Session("dave-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "the session is not the token");
    let r = post_form(&w.app, "/accounts/dave/password", "admin-session", None, "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("dave: new password "), "{}", r.body);
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/alerts",
        As::Session("dave-session"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a reset ends the sessions"
    );
    let old = login(&w.app, "dave", &PASSWORD.replace(' ', "+")).await;
    assert_eq!(old.headers[header::LOCATION], "/login?error=1");
    let actions: Vec<String> = audit_actions(&w).into_iter().map(|a| a.1).collect();
    assert!(
        actions.contains(&"token.revoked".to_string())
            && actions.contains(&"user.password".to_string())
    );
}

#[tokio::test]
async fn the_accounts_page_creates_accounts_with_the_csrf_token() {
    let w = world();
    let fields = "name=erin&role=council&tenant=south&password=erin-password-1";
    let r = post_form(&w.app, "/accounts", "admin-session", Some("guess"), fields).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(&w.app, "/accounts", "carol-session", None, fields).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "an analyst manages no accounts"
    );
    let r = post_form(&w.app, "/accounts", "admin-session", None, fields).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("id=\"account-erin\""), "{}", r.body);
    let ok = login(&w.app, "erin", "erin-password-1").await;
    assert_eq!(ok.headers[header::LOCATION], "/");
    // a generated password is shown once
    let r = post_form(
        &w.app,
        "/accounts",
        "admin-session",
        None,
        "name=fay&role=supplier-analyst",
    )
    .await;
    assert!(r.body.contains("fay added, with password "), "{}", r.body);
    for (bad, why) in [
        ("name=gus&role=council", "tenant"),
        ("name=gus&role=council&tenant=nowhere", "tenant"),
        ("name=gus&role=supplier-admin&tenant=north", "tenant"),
        ("name=gus&role=root", "role"),
        ("name=g%20s&role=supplier-admin", "name"),
        ("name=gus&role=supplier-admin&password=short", "password"),
    ] {
        let r = post_form(&w.app, "/accounts", "admin-session", None, bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body.contains(why), "{bad}: {}", r.body);
        // the GOV.UK error pattern: a summary linking to the field, the
        // message beside it, the title marked
        assert_problems(&r, "Accounts", &[&format!("new-{why}")]);
    }
    // every problem at once, and what was typed is kept
    let r = post_form(
        &w.app,
        "/accounts",
        "admin-session",
        None,
        "name=hal&role=council&password=short",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_problems(&r, "Accounts", &["new-tenant", "new-password"]);
    assert!(
        r.body.contains("value=\"hal\"")
            && r.body.contains("<option value=\"council\" selected>")
            && !r.body.contains("value=\"short\""),
        "{}",
        r.body
    );
    let r = post_form(&w.app, "/accounts", "admin-session", None, fields).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "the name is taken");
    assert!(
        r.body.contains("`erin` is taken") || r.body.contains("<code>erin</code> is taken"),
        "{}",
        r.body
    );
    let added: Vec<String> = audit_actions(&w)
        .into_iter()
        .filter(|a| a.1 == "user.added")
        .map(|a| a.2)
        .collect();
    assert_eq!(added, ["fay (supplier-analyst)", "erin (council)"]);
}

/// A clock the test moves.
fn test_clock(start: i64) -> (Arc<std::sync::atomic::AtomicI64>, parapet_web::Clock) {
    let t = Arc::new(std::sync::atomic::AtomicI64::new(start));
    let t2 = t.clone();
    (
        t,
        Arc::new(move || t2.load(std::sync::atomic::Ordering::SeqCst)),
    )
}

/// The test world on a test clock (RFC 6238's time 1234567890), with
/// ann enrolled in TOTP under RFC 6238's SHA-1 test secret.
fn ann_with_totp() -> (Arc<std::sync::atomic::AtomicI64>, World, &'static [u8; 20]) {
    let (clock, c) = test_clock(1_234_567_890);
    let w = world_with(|d| d.clock = c);
    let secret = b"12345678901234567890";
    w.dash
        .db
        .get()
        .unwrap()
        .set_totp("ann", Some(&hex::encode(secret)))
        .unwrap();
    (clock, w, secret)
}

#[tokio::test]
async fn totp_codes_are_checked_against_the_clock_and_used_once() {
    use parapet_web::totp;
    let (clock, w, secret) = ann_with_totp();
    let pw = PASSWORD.replace(' ', "+");
    // the password alone: the form asks for the code
    let r = login(&w.app, "ann", &pw).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("name=\"code\""), "{}", r.body);
    assert!(r.body.contains("id=\"pending-user\">ann<"), "{}", r.body);
    let now = clock.load(std::sync::atomic::Ordering::SeqCst);
    let step = totp::step_at(now);
    // a wrong code, and a code two steps old, are refused
    for wrong in ["000000".to_string(), totp::code(secret, step - 2)] {
        let r = login(&w.app, "ann", &format!("{pw}&code={wrong}")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{wrong}");
        assert!(r.headers.get(header::SET_COOKIE).is_none());
    }
    // the right one signs in, and the session works at the test clock's time
    let right = totp::code(secret, step);
    let r = login(&w.app, "ann", &format!("{pw}&code={right}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/");
    // the same code again in the same step is a replay
    let r = login(&w.app, "ann", &format!("{pw}&code={right}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // 30 s later the next code works; the previous step's is still refused
    clock.fetch_add(30, std::sync::atomic::Ordering::SeqCst);
    let next = totp::code(secret, step + 1);
    let r = login(&w.app, "ann", &format!("{pw}&code={next}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let actions: Vec<String> = audit_actions(&w).into_iter().map(|a| a.1).collect();
    assert_eq!(
        actions.iter().filter(|a| *a == "login.totp_failed").count(),
        3
    );
    assert_eq!(actions.iter().filter(|a| *a == "login.ok").count(), 2);
}

/// A login form's CSRF token: from `GET /login`'s cookie.
async fn login_csrf(app: &Router) -> String {
    let form = call(app, Method::Get, "/login", As::Nobody).await;
    let cookie = form.headers[header::SET_COOKIE].to_str().unwrap();
    let kv = cookie.split(';').next().unwrap();
    kv.split_once('=').unwrap().1.to_string()
}

/// `POST /login` with `body` (the CSRF field added) from the browser
/// holding login CSRF cookie `csrf`.
async fn post_login(app: &Router, csrf: &str, body: &str) -> Resp {
    let req = Request::builder()
        .method("POST")
        .uri("/login")
        .header(header::COOKIE, format!("parapet_login_csrf={csrf}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("{body}&csrf={csrf}")))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// The pending-login token of a code-step form.
fn pending_of(body: &str) -> String {
    let field = "name=\"pending\" value=\"";
    let at = body
        .find(field)
        .unwrap_or_else(|| panic!("no pending token in {body}"))
        + field.len();
    body[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn the_code_step_asks_for_the_code_only() {
    use parapet_web::totp;
    let (clock, w, secret) = ann_with_totp();
    let pw = PASSWORD.replace(' ', "+");
    let csrf = login_csrf(&w.app).await;
    let r = post_login(&w.app, &csrf, &format!("username=ann&password={pw}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("name=\"code\""), "{}", r.body);
    assert!(!r.body.contains("name=\"password\""), "{}", r.body);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    let pending = pending_of(&r.body);
    let step = totp::step_at(clock.load(std::sync::atomic::Ordering::SeqCst));
    // a wrong code: the code step again, still without the password
    let r = post_login(&w.app, &csrf, &format!("pending={pending}&code=000000")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.body.contains("name=\"password\""), "{}", r.body);
    let pending = pending_of(&r.body);
    // the token is bound to the browser's login cookie
    let other = login_csrf(&w.app).await;
    let code = totp::code(secret, step);
    let r = post_login(&w.app, &other, &format!("pending={pending}&code={code}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body.contains("name=\"password\""),
        "back to the start: {}",
        r.body
    );
    // a forged token for another account is refused
    let forged = pending.replacen(&hex::encode("ann"), &hex::encode("admin"), 1);
    let r = post_login(&w.app, &csrf, &format!("pending={forged}&code={code}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // the code alone, with the token, signs in
    let r = post_login(&w.app, &csrf, &format!("pending={pending}&code={code}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.headers[header::LOCATION], "/");
    // a token outlives neither its 5 minutes nor a new password
    let r = post_login(&w.app, &csrf, &format!("username=ann&password={pw}")).await;
    let pending = pending_of(&r.body);
    clock.fetch_add(
        parapet_web::auth::PENDING_LOGIN_SECONDS + 1,
        std::sync::atomic::Ordering::SeqCst,
    );
    let code = totp::code(secret, totp::step_at(w.dash.now()));
    let r = post_login(&w.app, &csrf, &format!("pending={pending}&code={code}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("timed out"), "{}", r.body);
    let r = post_login(&w.app, &csrf, &format!("username=ann&password={pw}")).await;
    let pending = pending_of(&r.body);
    w.dash
        .db
        .get()
        .unwrap()
        .set_password("ann", &parapet_web::auth::hash_password("another password"))
        .unwrap();
    let r = post_login(&w.app, &csrf, &format!("pending={pending}&code={code}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_role_that_requires_totp_cannot_sign_in_without_it() {
    let w = world_with(|d| d.require_totp = vec![Role::SupplierAdmin]);
    let pw = PASSWORD.replace(' ', "+");
    let r = login(&w.app, "admin", &pw).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("parapet users totp admin"), "{}", r.body);
    assert!(r.headers.get(header::SET_COOKIE).is_none());
    // other roles are not asked
    let r = login(&w.app, "carol", &pw).await;
    assert_eq!(r.headers[header::LOCATION], "/");
    // once enrolled, the admin signs in with a code
    let secret = parapet_web::totp::new_secret();
    w.dash
        .db
        .get()
        .unwrap()
        .set_totp("admin", Some(&hex::encode(&secret)))
        .unwrap();
    let code = parapet_web::totp::code(&secret, parapet_web::totp::step_at(w.dash.now()));
    let r = login(&w.app, "admin", &format!("{pw}&code={code}")).await;
    assert_eq!(r.headers[header::LOCATION], "/");
}

/// The alert page as a workbench: guidance, the pseudonyms with their
/// timeline links and the reveal command for everyone who may see the
/// alert; the promote and allow actions for supplier staff only, each
/// audited, the allow one marking the alert and adding a store entry that
/// expires by the dashboard's clock.
#[tokio::test]
async fn the_alert_workbench_promotes_and_allows_for_supplier_staff_only() {
    const NOW: i64 = 1_700_000_000;
    let w = world_with(|d| d.clock = Arc::new(|| NOW));
    let id = w.alerts.0;
    let page = call(
        &w.app,
        Method::Get,
        &format!("/alerts/{id}"),
        As::Session("carol-session"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for want in [
        "Blocked by a threat feed",
        "what to do next",
        "<code>0101010101010101</code>",
        // minijinja escapes the slash too
        "&#x2f;queries?tenant=north&amp;pseudonym=0101010101010101&amp;since=",
        &format!("parapet investigate reveal --alert {id} --key investigation.key --reason"),
        "id=\"promote-button\"",
        "id=\"allow-button\"",
        "value=\"north-secret.test\"",
    ] {
        assert!(page.body.contains(want), "{want} missing: {}", page.body);
    }
    let council = call(
        &w.app,
        Method::Get,
        &format!("/alerts/{id}"),
        As::Session("ann-session"),
    )
    .await;
    assert!(council.body.contains("<code>0101010101010101</code>"));
    assert!(!council.body.contains("promote-button") && !council.body.contains("allow-button"));
    let api = call(
        &w.app,
        Method::Get,
        &format!("/api/v1/alerts/{id}"),
        As::Token("ann-token"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
    assert_eq!(v["pseudonyms"][0]["pseudonym"], "0101010101010101");
    assert_eq!(v["rule_title"], "Blocked by a threat feed");

    // a council user may do neither
    let fields = "name=north-secret.test&days=7&note=ours";
    let r = post_form(
        &w.app,
        &format!("/alerts/{id}/allow"),
        "ann-session",
        None,
        fields,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = post_form(
        &w.app,
        &format!("/alerts/{id}/incident"),
        "ann-session",
        None,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // nor a name outside the alert's domain, nor a year and a day: the
    // alert page again, its error summary linking to the field, what was
    // typed kept
    for (bad, field) in [
        ("name=other.test&days=7&note=x", "allow-name"),
        ("days=366&note=x", "allow-days"),
        ("days=7&note=", "allow-note"),
    ] {
        let r = post_form(
            &w.app,
            &format!("/alerts/{id}/allow"),
            "carol-session",
            None,
            bad,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_problems(&r, &format!("Alert {id}"), &[field]);
    }
    let r = post_form(
        &w.app,
        &format!("/alerts/{id}/allow"),
        "carol-session",
        None,
        "name=other.test&days=7&note=kept+note",
    )
    .await;
    assert!(
        r.body.contains(r#"value="other.test""#) && r.body.contains(r#"value="kept note""#),
        "{}",
        r.body
    );

    let r = post_form(
        &w.app,
        &format!("/alerts/{id}/allow"),
        "carol-session",
        None,
        "name=www.north-secret.test&days=7&note=the+council%27s+own+portal",
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    {
        let mut db = w.dash.db.get().unwrap();
        let in_force = db
            .active_allows(SystemTime::UNIX_EPOCH + Duration::from_secs(NOW as u64))
            .unwrap();
        assert_eq!(in_force.len(), 1);
        let e = &in_force[0];
        assert_eq!(
            (e.name.as_str(), e.alert_id, e.added_by.as_str()),
            ("www.north-secret.test", Some(id), "carol")
        );
        assert_eq!(e.expires_at, (NOW + 7 * 86_400) * 1000);
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs((NOW + 7 * 86_400) as u64);
        assert!(db.active_allows(later).unwrap().is_empty(), "expired");
        assert_eq!(
            db.alert(id).unwrap().status,
            parapet_core::alert::AlertStatus::FalsePositive
        );
    }

    let r = post_form(
        &w.app,
        &format!("/alerts/{id}/incident"),
        "carol-session",
        None,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = call(
        &w.app,
        Method::Get,
        &format!("/alerts/{id}"),
        As::Session("carol-session"),
    )
    .await;
    assert!(page.body.contains(&format!("ALERT-{id}")), "{}", page.body);
    assert!(!page.body.contains("promote-button"), "promoted once");
    // the API twin gives the same incident again rather than a second one
    let req = Request::builder()
        .method("POST")
        .uri(format!("/api/v1/alerts/{id}/incident"))
        .header(header::AUTHORIZATION, "Bearer carol-token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let resp = w.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let inc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(inc["reference"], format!("ALERT-{id}"));
    assert_eq!(inc["outcome"], "attempted");
    let incidents = w.dash.db.get().unwrap().incidents(Some("north")).unwrap();
    assert_eq!(
        incidents.iter().filter(|i| i.alert_id == Some(id)).count(),
        1
    );

    let audit = audit_actions(&w);
    let actions: Vec<&str> = audit.iter().map(|(_, a, _)| a.as_str()).collect();
    assert!(
        actions.contains(&"allowlist.add") && actions.contains(&"alert.promote"),
        "{audit:?}"
    );
    assert!(audit.iter().all(|(who, _, _)| who == "carol"), "{audit:?}");
}

#[tokio::test]
async fn pages_answer_errors_in_the_design_and_the_api_keeps_json() {
    let w = world();
    let r = call(
        &w.app,
        Method::Get,
        "/no-such-page",
        As::Session("ann-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        r.body.contains("Page not found") && r.body.contains("govuk-header"),
        "{}",
        r.body
    );
    // another tenant's alert does not exist for a council
    let r = call(
        &w.app,
        Method::Get,
        &format!("/alerts/{}", w.alerts.1),
        As::Session("ann-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("Page not found"));
    let r = call(&w.app, Method::Get, "/accounts", As::Session("ann-session")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("You cannot see this page"), "{}", r.body);
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/no-such",
        As::Token("ann-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body, r#"{"error":"not found"}"#);
}

#[tokio::test]
async fn the_govuk_stylesheet_is_served_for_a_year_without_the_restricted_font() {
    let w = world();
    let r = call(&w.app, Method::Get, "/login", As::Nobody).await;
    assert!(
        r.body.contains("govuk-frontend-5.14.0.min.css"),
        "{}",
        r.body
    );
    let css = call(
        &w.app,
        Method::Get,
        "/static/govuk-frontend-5.14.0.min.css",
        As::Nobody,
    )
    .await;
    assert_eq!(css.status, StatusCode::OK);
    assert_eq!(
        css.headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(css.body.contains(".govuk-header") && css.body.contains("arial,sans-serif"));
    assert!(!css.body.contains("GDS Transport") && !css.body.contains("@font-face"));
}

#[tokio::test]
async fn bulk_status_changes_check_csrf_and_tenant_and_audit_each_alert() {
    let w = world();
    let (north, south) = w.alerts;
    let forged = post_form(
        &w.app,
        "/alerts/status",
        "ann-session",
        Some("guess"),
        &format!("id={north}&status=investigating&note=x"),
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // nothing selected and no note: the list again with both problems,
    // the ticked alerts still ticked
    let r = post_form(
        &w.app,
        "/alerts/status",
        "admin-session",
        None,
        "status=resolved",
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_problems(&r, "Alerts", &["alerts", "bulk-note"]);
    let r = post_form(
        &w.app,
        "/alerts/status",
        "admin-session",
        None,
        &format!("id={north}&status=resolved&note="),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_problems(&r, "Alerts", &["bulk-note"]);
    assert!(
        r.body.contains(&format!(r#"id="select-{north}" checked>"#)),
        "{}",
        r.body
    );
    // a council cannot reach another tenant's alert, and nothing changes
    let r = post_form(
        &w.app,
        "/alerts/status",
        "ann-session",
        None,
        &format!("id={north}&id={south}&status=investigating&note=x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        audit_actions(&w)
            .iter()
            .all(|(_, a, _)| a != "alert.status")
    );
    let r = post_form(
        &w.app,
        "/alerts/status",
        "admin-session",
        None,
        &format!("id={north}&id={south}&status=investigating&note=triaged+together"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers[header::LOCATION], "/alerts?done=2&skipped=0");
    let changed: Vec<_> = audit_actions(&w)
        .into_iter()
        .filter(|(who, a, d)| {
            who == "admin" && a == "alert.status" && d.contains("triaged together")
        })
        .collect();
    assert_eq!(changed.len(), 2, "{changed:?}");
    let page = call(
        &w.app,
        Method::Get,
        "/alerts?done=2&skipped=0",
        As::Session("admin-session"),
    )
    .await;
    assert!(page.body.contains("2 alerts changed"), "{}", page.body);
}

#[tokio::test]
async fn the_overview_says_what_needs_attention_with_links_to_the_lists() {
    let w = world();
    let r = call(&w.app, Method::Get, "/", As::Session("ann-session")).await;
    // the seeded north alert is new and high; each figure links to its list
    assert!(
        r.body.contains(r#"id="new-high" href="&#x2f;alerts?status=new&amp;severity=high&amp;tenant=north"><span class="parapet-card__figure">1<"#),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains(r#"href="/alerts?status=new&amp;tenant=north""#)
    );
    let v: serde_json::Value = serde_json::from_str(
        &call(
            &w.app,
            Method::Get,
            "/api/v1/overview",
            As::Token("ann-token"),
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(v["attention"]["new_alerts"], 1);
    assert_eq!(v["attention"]["new_by_severity"][0]["count"], 1);
    let list = call(
        &w.app,
        Method::Get,
        "/alerts?status=new&severity=low",
        As::Session("ann-session"),
    )
    .await;
    assert!(list.body.contains("No alerts match"), "{}", list.body);
    let list = call(
        &w.app,
        Method::Get,
        "/alerts?status=new&severity=high",
        As::Session("ann-session"),
    )
    .await;
    assert!(
        list.body.contains("Blocked by a threat feed")
            && list.body.contains("blocked north-secret.test"),
        "rule title and reason"
    );
}

#[tokio::test]
async fn mail_names_the_worst_finding_and_lists_regressions_only_when_asked() {
    let w = world();
    {
        let mut db = w.dash.db.get().unwrap();
        db.save_mailcheck(&MailCheckRow {
            domain: "north-mail.test".into(),
            checked_at: 2_000,
            worst: Some("error".into()),
            findings: vec![
                MailFinding {
                    severity: "info".into(),
                    code: "dmarc.testing".into(),
                    message: "a note".into(),
                },
                MailFinding {
                    severity: "error".into(),
                    code: "dmarc.missing".into(),
                    message: "north-mail.test: publish a DMARC record".into(),
                },
                MailFinding {
                    severity: "warning".into(),
                    code: "spf.softfail".into(),
                    message: "end `~all` with `-all`".into(),
                },
            ],
            report: "{}".into(),
        })
        .unwrap();
    }
    let r = call(
        &w.app,
        Method::Get,
        "/mail?show=regressed",
        As::Session("admin-session"),
    )
    .await;
    assert!(
        r.body.contains("north-mail.test") && !r.body.contains("south-mail.test"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("publish a DMARC record"),
        "the worst finding named"
    );
    let r = call(
        &w.app,
        Method::Get,
        "/mail/north-mail.test",
        As::Session("admin-session"),
    )
    .await;
    let (e, wn, i) = (
        r.body.find("dmarc.missing").unwrap(),
        r.body.find("spf.softfail").unwrap(),
        r.body.find("dmarc.testing").unwrap(),
    );
    assert!(e < wn && wn < i, "worst first");
    assert!(
        r.body
            .contains("end <code>~all</code> with <code>-all</code>")
            && !r.body.contains('`')
    );
    let r = call(
        &w.app,
        Method::Get,
        "/mail?show=nonsense",
        As::Session("admin-session"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_council_sees_no_server_paths_on_the_privacy_page() {
    let w = world_with(|d| {
        d.privacy.key_source = "key file /var/lib/parapet/pseudonym.key".into();
        d.privacy.store = "/var/lib/parapet/events.db".into();
    });
    let ann = call(&w.app, Method::Get, "/privacy", As::Session("ann-session")).await;
    assert!(
        !ann.body.contains("pseudonym.key") && !ann.body.contains("events.db"),
        "{}",
        ann.body
    );
    let api = call(
        &w.app,
        Method::Get,
        "/api/v1/privacy",
        As::Token("ann-token"),
    )
    .await;
    assert!(!api.body.contains("/var/lib"), "{}", api.body);
    let admin = call(
        &w.app,
        Method::Get,
        "/privacy",
        As::Session("admin-session"),
    )
    .await;
    assert!(admin.body.contains("pseudonym.key") && admin.body.contains("events.db"));
}

#[tokio::test]
async fn the_feeds_page_lists_shared_and_own_feeds_with_their_source() {
    let w = world();
    let bob = call(&w.app, Method::Get, "/tenants", As::Session("bob-session")).await;
    assert!(bob.body.contains(r#"id="feed-shared-feed""#) && bob.body.contains("file shared.rpz"));
    assert!(bob.body.contains(r#"id="feed-south-only-feed""#) && bob.body.contains("south only"));
    let ann = call(&w.app, Method::Get, "/tenants", As::Session("ann-session")).await;
    assert!(
        ann.body.contains("shared-feed") && !ann.body.contains("south-only-feed"),
        "{}",
        ann.body
    );
}

#[tokio::test]
async fn the_alert_list_pages_through_the_matches_keeping_the_filters() {
    let w = world();
    let first = call(
        &w.app,
        Method::Get,
        "/alerts?limit=1&status=new",
        As::Session("admin-session"),
    )
    .await;
    assert!(
        first.body.contains(r#"rel="next""#) && !first.body.contains(r#"rel="prev""#),
        "{}",
        first.body
    );
    assert!(
        first
            .body
            .contains("status=new&amp;severity=&amp;rule=&amp;since=&amp;limit=1&amp;page=2"),
        "{}",
        first.body
    );
    let v: serde_json::Value = serde_json::from_str(
        &call(
            &w.app,
            Method::Get,
            "/api/v1/alerts?limit=1&page=2",
            As::Token("admin-token"),
        )
        .await
        .body,
    )
    .unwrap();
    assert_eq!(v["alerts"].as_array().unwrap().len(), 1);
    let second = call(
        &w.app,
        Method::Get,
        "/alerts?limit=1&status=new&page=2",
        As::Session("admin-session"),
    )
    .await;
    assert!(second.body.contains(r#"rel="prev""#) && !second.body.contains(r#"rel="next""#));
}

/// The query search: each filter within the viewer's tenant, pages of 50
/// newest first with links to the next and previous, and every malformed
/// field refused with a 400 that names it.
#[tokio::test]
async fn query_search_filters_pages_and_refuses_bad_fields() {
    let w = world();
    let get = |uri: String, who: As<'static>| {
        let app = w.app.clone();
        async move {
            let r = call(&app, Method::Get, &uri, who).await;
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            (r.status, v, r.body)
        }
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let admin = As::Token("admin-token");
    let ann = As::Token("ann-token");
    for (query, who, want) in [
        ("name=south-secret.test", admin, vec!["south-secret.test"]),
        (
            "name=SOUTH-secret.test.&match=exact",
            admin,
            vec!["south-secret.test"],
        ),
        ("name=secret.test&match=suffix", admin, vec![]),
        (
            "domain=www.north-secret.test",
            admin,
            vec!["north-secret.test"],
        ),
        (
            "pseudonym=0101010101010101&tenant=south",
            admin,
            vec!["south-secret.test"],
        ),
        ("action=blocked&rule=f", ann, vec!["north-secret.test"]),
        ("pseudonym=0101010101010101", ann, vec!["north-secret.test"]),
        ("name=south-secret.test", ann, vec![]),
        ("domain=south-secret.test", ann, vec![]),
        ("action=resolved", ann, vec![]),
        ("until=2000-01-01", ann, vec![]),
        ("since=2000-01-01T00:00:00Z", ann, vec!["north-secret.test"]),
    ] {
        let (status, v, body) = get(format!("/api/v1/queries?{query}"), who).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert_eq!(names(&v), want, "{query}");
    }
    for (query, field) in [
        ("pseudonym=xyz", "pseudonym"),
        (&*format!("name={}", "a".repeat(129)), "name"),
        ("match=fuzzy", "match"),
        ("since=yesterday", "since"),
        ("until=2026-13-45", "until"),
        ("action=exploded", "action"),
        ("page=0", "page"),
        ("page=201", "page"),
    ] {
        let (status, v, body) = get(format!("/api/v1/queries?{query}"), ann).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let msg = v["error"].as_str().unwrap_or_default();
        assert!(msg.starts_with(&format!("{field}: ")), "{query}: {msg}");
    }
    // 60 more rows for north: pages of 50, newest first, linked
    let mut db = SqliteStore::open(w._dir.path()).unwrap();
    let base = SystemTime::now() - Duration::from_secs(3600);
    let more: Vec<PrivateEvent> = (0..60u64)
        .map(|i| PrivateEvent {
            time: base + Duration::from_secs(i),
            tenant: Arc::from("north"),
            client: ClientPseudonym([2; 8]),
            qname: EventName::new(&text_to_key(&format!("h{i}.north-paged.test")).unwrap()),
            qtype: 1,
            rcode: 0,
            action: EventAction::Resolved,
            feed: None,
        })
        .collect();
    db.insert_events(&more).unwrap();
    let (_, first, _) = get("/api/v1/queries?domain=north-paged.test".into(), ann).await;
    assert_eq!(names(&first).len(), 50);
    assert_eq!(names(&first)[0], "h59.north-paged.test");
    assert_eq!(first["previous"], serde_json::Value::Null);
    let next = first["next"].as_str().unwrap().to_string();
    assert_eq!(next, "/api/v1/queries?domain=north-paged.test&page=2");
    let (_, second, _) = get(next, ann).await;
    assert_eq!(
        names(&second),
        (0..10)
            .rev()
            .map(|i| format!("h{i}.north-paged.test"))
            .collect::<Vec<_>>()
    );
    assert_eq!(second["next"], serde_json::Value::Null);
    assert_eq!(
        second["previous"],
        "/api/v1/queries?domain=north-paged.test&page=1"
    );
    // the page: a labelled form, the rows, the link to the next page
    let page = call(
        &w.app,
        Method::Get,
        "/queries?pseudonym=0202020202020202",
        As::Session("ann-session"),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    for needle in [
        "<label class=\"govuk-label\" for=\"q-pseudonym\">",
        "h59.north-paged.test",
        // minijinja writes the link's `/` as `&#x2f;`
        "queries?pseudonym=0202020202020202&amp;page=2\">Next page",
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    assert!(!page.body.contains("south-"));
}

/// Every frozen version of `tenant` over the quarters a test visits.
fn frozen_versions(w: &World, tenant: &str, quarters: &[&str]) -> usize {
    let mut db = w.dash.db.get().unwrap();
    quarters
        .iter()
        .map(|q| db.kpi_versions(tenant, q).unwrap().len())
        .sum()
}

const QUARTERS: [&str; 6] = [
    "2020-21-Q4",
    "2021-22-Q1",
    "2021-22-Q2",
    "2021-22-Q3",
    "2021-22-Q4",
    "2099-00-Q2",
];

#[tokio::test]
async fn reading_any_quarter_as_a_council_freezes_nothing() {
    let w = world();
    for q in QUARTERS {
        for uri in [
            format!("/assurance?quarter={q}"),
            format!("/api/v1/kpis?quarter={q}"),
            format!("/api/v1/assets?quarter={q}"),
            format!("/reports/north/{q}/public-report.html"),
            format!("/reports/north/{q}/kpi.json"),
            format!("/api/v1/reports/north/{q}/kpi.json"),
        ] {
            let me = who(uri.starts_with("/api/"), "ann-session", "ann-token");
            let r = call(&w.app, Method::Get, &uri, me).await;
            let want = if q == "2099-00-Q2" {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            assert_eq!(r.status, want, "{uri}: {}", r.body);
        }
    }
    assert_eq!(frozen_versions(&w, "north", &QUARTERS), 0);
    // nor does a supplier's read
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/reports/north/2021-22-Q2/public-report.html",
        As::Token("admin-token"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body
            .contains("PROVISIONAL: the quarter has not been frozen")
    );
    assert!(!r.body.contains("For publication"));
    assert_eq!(frozen_versions(&w, "north", &QUARTERS), 0);
}

#[tokio::test]
async fn an_empty_tenant_shows_no_data_in_grey_never_green() {
    let w = world();
    let r = call(
        &w.app,
        Method::Get,
        "/api/v1/kpis?quarter=2021-22-Q2",
        As::Token("ann-token"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let rags: Vec<&str> = v["kpis"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["rag"].as_str().unwrap())
        .collect();
    // KPI 1: the register is in use (an open incident under investigation)
    assert_eq!(rags, ["amber", "no_data", "no_data", "no_data", "no_data"]);
    assert!(
        v["cyber_essentials"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["decided"] == false && c["pass"] == false)
    );
    let page = call(
        &w.app,
        Method::Get,
        "/assurance?quarter=2021-22-Q2",
        As::Session("ann-session"),
    )
    .await;
    assert_eq!(page.body.matches("rag-no_data\"").count(), 4 + 9);
    assert!(!page.body.contains("rag-green"), "{}", page.body);
    assert!(page.body.contains("Cannot be decided"));
    for file in ["public-report.html", "kpi.json"] {
        let r = call(
            &w.app,
            Method::Get,
            &format!("/reports/north/2021-22-Q2/{file}"),
            As::Session("ann-session"),
        )
        .await;
        assert!(!r.body.contains("class=\"rag-green\""), "{file}");
        assert!(!r.body.contains(">Pass<"), "{file}");
    }
}

#[tokio::test]
async fn a_supplier_admin_freezes_and_reopens_with_a_reason_and_an_analyst_cannot() {
    let w = world();
    let base = "/reports/north/2021-22-Q2";
    // a council account and a supplier analyst are refused both
    for session in ["ann-session", "carol-session"] {
        for action in ["freeze", "reopen"] {
            let r = post_form(
                &w.app,
                &format!("{base}/{action}"),
                session,
                None,
                "reason=x",
            )
            .await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{session} {action}");
        }
    }
    let r = post_form(
        &w.app,
        &format!("{base}/freeze"),
        "admin-session",
        Some("wrong"),
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "CSRF");
    assert_eq!(frozen_versions(&w, "north", &QUARTERS), 0);

    let r = post_form(&w.app, &format!("{base}/freeze"), "admin-session", None, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("2021-22-Q2 frozen as version 1."),
        "{}",
        r.body
    );
    assert!(r.body.contains("id=\"reopen\""));
    let again = post_form(&w.app, &format!("{base}/freeze"), "admin-session", None, "").await;
    assert!(
        again.body.contains("already frozen (version 1)"),
        "{}",
        again.body
    );
    let no_reason = post_form(
        &w.app,
        &format!("{base}/reopen"),
        "admin-session",
        None,
        "reason=+",
    )
    .await;
    assert!(no_reason.body.contains("Give a reason"));
    let r = post_form(
        &w.app,
        &format!("{base}/reopen"),
        "admin-session",
        None,
        "reason=late+AV+export",
    )
    .await;
    assert!(r.body.contains("version 1 is kept"), "{}", r.body);
    post_form(&w.app, &format!("{base}/freeze"), "admin-session", None, "").await;
    let versions = w
        .dash
        .db
        .get()
        .unwrap()
        .kpi_versions("north", "2021-22-Q2")
        .unwrap();
    assert_eq!(versions.len(), 2, "reopen then re-freeze keeps both");
    assert_eq!(versions[0].reopen_reason.as_deref(), Some("late AV export"));
    assert_eq!(versions[0].reopened_by.as_deref(), Some("admin"));
    assert_eq!(versions[1].frozen_by, "admin");
    let actions: Vec<(String, String)> = audit_actions(&w)
        .into_iter()
        .filter(|(_, a, _)| a.starts_with("kpi."))
        .map(|(_, a, d)| (a, d))
        .collect();
    assert_eq!(
        actions,
        [
            ("kpi.freeze".into(), "2021-22-Q2 version 2".into()),
            (
                "kpi.reopen".into(),
                "2021-22-Q2 version 1: late AV export".into()
            ),
            ("kpi.freeze".into(), "2021-22-Q2 version 1".into()),
        ]
    );
    // a council now reads the frozen version, marked as such
    let r = call(
        &w.app,
        Method::Get,
        &format!("{base}/public-report.html"),
        As::Session("ann-session"),
    )
    .await;
    assert!(r.body.contains("For publication"));
    assert!(r.body.contains("version 2"), "{}", r.body);
    assert!(!r.body.contains("PROVISIONAL"));
}
