//! `parapet users` account management against a running `parapet serve`,
//! run from another folder: the store found through `PARAPET_CONFIG`, API
//! tokens listed and revoked, an account removed, TOTP enrolment, and no
//! empty store made when no configuration is given.

use std::path::Path;
use std::process::{Command, Output};

use crate::harness::{Parapet, http_get_bearer as get};

/// `parapet ARGS` run in `dir`, with `PARAPET_CONFIG` set to `config` (or unset).
fn parapet(dir: &Path, config: Option<&Path>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parapet"));
    c.current_dir(dir)
        .args(args)
        .env("PARAPET_PASSWORD", "a-long-enough-password");
    match config {
        Some(p) => c.env("PARAPET_CONFIG", p),
        None => c.env_remove("PARAPET_CONFIG"),
    };
    c.output().unwrap()
}

fn ok(dir: &Path, config: &Path, args: &[&str]) -> String {
    let o = parapet(dir, Some(config), args);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn users_commands_find_the_store_and_end_access_at_once() {
    let p = Parapet::start("", "", &[]);
    let elsewhere = tempfile::tempdir().unwrap();
    let here = elsewhere.path();
    let cfg = p.config.as_path();

    // without the configuration: a clear error, and no store left behind
    let o = parapet(here, None, &["users", "token", "admin"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no store at") && err.contains("PARAPET_CONFIG"),
        "{err}"
    );
    assert!(
        !here.join("parapet-data").exists(),
        "an empty store was made"
    );
    for args in [
        &["users", "list"][..],
        &["users", "tokens", "admin"],
        &["alerts", "list"],
    ] {
        let o = parapet(here, None, args);
        assert_ne!(o.status.code(), Some(0), "{args:?}");
    }
    assert_eq!(
        std::fs::read_dir(here).unwrap().count(),
        0,
        "nothing created"
    );

    // with PARAPET_CONFIG, from another folder: the server's store
    ok(
        here,
        cfg,
        &["users", "add", "sam", "--role", "supplier-analyst"],
    );
    let token = ok(here, cfg, &["users", "token", "sam"]).trim().to_string();
    let second = ok(here, cfg, &["users", "token", "sam"]).trim().to_string();
    let (status, _) = get(p.web, "/api/v1/alerts", &token);
    assert_eq!(status, 200);
    let listed = ok(here, cfg, &["users", "tokens", "sam"]);
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(!rows[0].ends_with("never"), "its use is recorded: {listed}");
    assert!(rows[1].ends_with("never"), "{listed}");
    assert!(!listed.contains(&token), "the token itself is never shown");
    let id = rows[0].split_whitespace().next().unwrap();
    let out = ok(here, cfg, &["users", "revoke-token", id]);
    assert!(out.contains("revoked"), "{out}");
    let (status, _) = get(p.web, "/api/v1/alerts", &token);
    assert_eq!(status, 401, "a revoked token is refused at once");
    let (status, _) = get(p.web, "/api/v1/alerts", &second);
    assert_eq!(status, 200, "the other token still works");
    let o = parapet(here, Some(cfg), &["users", "revoke-token", id]);
    assert_eq!(o.status.code(), Some(2));

    // TOTP enrolment prints the URI an app takes
    let uri = ok(here, cfg, &["users", "totp", "sam"]);
    assert!(
        uri.starts_with("otpauth://totp/Parapet:sam?secret=") && uri.contains("&period=30"),
        "{uri}"
    );
    let list = ok(here, cfg, &["users", "list"]);
    let sam = list.lines().find(|l| l.starts_with("sam ")).unwrap();
    assert!(sam.ends_with("totp"), "{list}");

    // removal: the account's remaining token stops working at once
    ok(here, cfg, &["users", "remove", "sam"]);
    let (status, _) = get(p.web, "/api/v1/alerts", &second);
    assert_eq!(status, 401);
    let o = parapet(here, Some(cfg), &["users", "remove", "sam"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no account named sam"));
    assert_eq!(
        std::fs::read_dir(here).unwrap().count(),
        0,
        "nothing created here"
    );
}

/// `(status, head, body)` of one HTTP/1.1 request.
fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    form: &str,
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nCookie: {cookie}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

/// The value of cookie `name` set in a response head.
fn set_cookie(head: &str, name: &str) -> String {
    head.lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {head}"))
        .to_string()
}

/// Signs in over HTTP; the session cookie header value.
fn sign_in(addr: std::net::SocketAddr, user: &str, password: &str) -> String {
    let (_, head, _) = http(addr, "GET", "/login", "", "");
    let csrf = set_cookie(&head, "parapet_login_csrf");
    let (status, head, body) = http(
        addr,
        "POST",
        "/login",
        &format!("parapet_login_csrf={csrf}"),
        &format!("username={user}&password={password}&csrf={csrf}"),
    );
    assert_eq!(status, 303, "{body}");
    format!("parapet_session={}", set_cookie(&head, "parapet_session"))
}

/// The per-session CSRF token a page's forms carry.
fn page_csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").unwrap() + 19;
    body[at..at + 64].to_string()
}

#[test]
fn the_accounts_page_creates_and_removes_over_http_and_old_cookies_fail() {
    let p = Parapet::start("", "", &[]);
    let dir = p.dir.path();
    let cfg = p.config.as_path();
    ok(
        dir,
        cfg,
        &["users", "add", "boss", "--role", "supplier-admin"],
    );
    ok(
        dir,
        cfg,
        &["users", "add", "ana", "--role", "supplier-analyst"],
    );
    let pw = "a-long-enough-password";
    let boss = sign_in(p.web, "boss", pw);
    let ana = sign_in(p.web, "ana", pw);
    let (status, _, _) = http(p.web, "GET", "/accounts", &ana, "");
    assert_eq!(status, 403, "an analyst manages no accounts");
    let (status, _, page) = http(p.web, "GET", "/accounts", &boss, "");
    assert_eq!(status, 200);
    let csrf = page_csrf(&page);
    // a form without the session's CSRF token is refused
    let (status, _, _) = http(
        p.web,
        "POST",
        "/accounts",
        &boss,
        "csrf=guess&name=kit&role=supplier-analyst&password=kit-password-1",
    );
    assert_eq!(status, 403);
    let (status, _, page) = http(
        p.web,
        "POST",
        "/accounts",
        &boss,
        &format!("csrf={csrf}&name=kit&role=supplier-analyst&password=kit-password-1"),
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("id=\"account-kit\""), "{page}");
    let kit = sign_in(p.web, "kit", "kit-password-1");
    let (status, _, _) = http(p.web, "GET", "/api/v1/alerts", &kit, "");
    assert_eq!(status, 200);
    let (status, _, page) = http(
        p.web,
        "POST",
        "/accounts/kit/remove",
        &boss,
        &format!("csrf={csrf}"),
    );
    assert_eq!(status, 200, "{page}");
    let (status, _, _) = http(p.web, "GET", "/api/v1/alerts", &kit, "");
    assert_eq!(status, 401, "the removed account's cookie, at once");
    // removal on the command line: the same for the analyst's cookie
    ok(dir, cfg, &["users", "remove", "ana"]);
    let (status, _, _) = http(p.web, "GET", "/api/v1/alerts", &ana, "");
    assert_eq!(status, 401);
    let (_, _, audit) = http(p.web, "GET", "/api/v1/audit", &boss, "");
    for action in ["user.added", "user.removed"] {
        assert!(audit.contains(action), "{audit}");
    }
}

/// `kpi`, `report`, the importers and `incidents add` run from another
/// folder: without a configuration they say where they looked and make no
/// store; with `PARAPET_CONFIG` an import creates the configured store and
/// the others use it.
#[test]
fn assurance_commands_find_the_store_or_say_where_they_looked() {
    let server = tempfile::tempdir().unwrap();
    let cfg = server.path().join("parapet.toml");
    std::fs::write(&cfg, "[store]\npath = \"data\"\n").unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let here = elsewhere.path();
    let inventory = crate::harness::repo_root().join("testdata/assets/estate/inventory.csv");
    let inventory = inventory.to_str().unwrap();
    let dmarc =
        crate::harness::repo_root().join("testdata/dmarc-senders/council.test!report-1.xml");
    let dmarc = dmarc.to_str().unwrap();
    let out = server.path().join("report");
    let out = out.to_str().unwrap();
    let commands: [&[&str]; 6] = [
        &["kpi", "--quarter", "2021-22-Q2"],
        &[
            "report",
            "--quarter",
            "2021-22-Q2",
            "--out",
            out,
            "--freeze",
        ],
        &[
            "incidents",
            "add",
            "--reference",
            "INC-1",
            "--date",
            "2021-08-12",
            "--category",
            "phishing",
        ],
        &["assets", "import", "--source", "inventory-csv", inventory],
        &["dmarc", "import", dmarc],
        &[
            "assets",
            "except",
            "--device",
            "pc-1",
            "--scope",
            "av",
            "--reason",
            "kiosk",
            "--owner",
            "it",
            "--approver",
            "ciso",
            "--from",
            "2030-01-01",
            "--expires",
            "2030-03-01",
        ],
    ];
    for args in commands {
        let o = parapet(here, None, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("no store at") && err.contains("PARAPET_CONFIG"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(here).unwrap().count(),
        0,
        "nothing created"
    );
    assert!(!server.path().join("data").exists());
    // the configured store: the import creates it, the others use it
    ok(here, &cfg, commands[3]);
    ok(here, &cfg, commands[2]);
    let listed = ok(here, &cfg, &["incidents", "list"]);
    assert!(listed.contains("INC-1"), "{listed}");
    ok(here, &cfg, commands[0]);
    ok(here, &cfg, commands[1]);
    assert_eq!(std::fs::read_dir(here).unwrap().count(), 0);
    assert!(server.path().join("data/parapet.sqlite").is_file());
}
