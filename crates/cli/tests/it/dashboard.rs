//! `parapet users` and the JSON API of a running `parapet serve --demo`:
//! an account made on the command line, its API token, and the tenant it
//! is confined to, over a real socket.

use std::process::{Command, Output};

use crate::harness::{Parapet, demo_quarter, http_get_bearer as get};

fn parapet(p: &Parapet, args: &[&str], password: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_parapet"));
    c.args(args).arg("--config").arg(&p.config);
    match password {
        Some(pw) => c.env("PARAPET_PASSWORD", pw),
        None => c.env_remove("PARAPET_PASSWORD"),
    };
    c.output().unwrap()
}

#[test]
fn a_council_account_made_on_the_command_line_sees_its_tenant_only() {
    let p = Parapet::start_demo();
    let out = parapet(
        &p,
        &[
            "users", "add", "sam", "--role", "council", "--tenant", "south",
        ],
        Some("south-password-1"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = parapet(
        &p,
        &[
            "users",
            "add",
            "kim",
            "--role",
            "council",
            "--tenant",
            "nosuchtenant",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "the tenant must be configured");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`nosuchtenant` is not a configured tenant"),
        "{err}"
    );
    let out = parapet(&p, &["users", "add", "nobody", "--role", "council"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a council account needs a tenant"
    );
    let out = parapet(
        &p,
        &["users", "add", "sam", "--role", "supplier-analyst"],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "the name is taken");
    let list = parapet(&p, &["users", "list"], None);
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("admin") && list.contains("sam"), "{list}");

    let out = parapet(&p, &["users", "token", "sam"], None);
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(token.len(), 64);

    let (status, body) = get(p.web, "/api/v1/alerts", &token);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let alerts = v["alerts"].as_array().unwrap();
    assert!(!alerts.is_empty(), "the demo has alerts for south");
    assert!(alerts.iter().all(|a| a["tenant"] == "south"), "{body}");

    let (status, _) = get(p.web, "/api/v1/alerts?tenant=north", &token);
    assert_eq!(status, 403);
    let (status, body) = get(p.web, "/api/v1/mail", &token);
    assert_eq!(status, 200);
    assert!(
        body.contains("southvale.test") && !body.contains("northshire.test"),
        "{body}"
    );
    let (status, _) = get(p.web, "/api/v1/mail/northshire.test", &token);
    assert_eq!(status, 404);
    let (status, _) = get(
        p.web,
        &format!("/reports/south/{}/exempt-appendix.html", demo_quarter()),
        &token,
    );
    assert_eq!(status, 403, "no exempt appendix for a council");
    let (status, _) = get(
        p.web,
        &format!("/reports/north/{}/public-report.html", demo_quarter()),
        &token,
    );
    assert_eq!(status, 404);
    let (status, _) = get(p.web, "/api/v1/alerts", "not-a-token");
    assert_eq!(status, 401);

    // the council's own officer downloads its appendix, and no other's
    let out = parapet(
        &p,
        &[
            "users",
            "add",
            "olga",
            "--role",
            "council-officer",
            "--tenant",
            "south",
        ],
        Some("south-password-2"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = parapet(&p, &["users", "token", "olga"], None);
    let officer = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, body) = get(
        p.web,
        "/reports/south/2021-22-Q2/exempt-appendix.html",
        &officer,
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("NOT FOR PUBLICATION"), "{body}");
    let (status, _) = get(
        p.web,
        "/reports/north/2021-22-Q2/exempt-appendix.html",
        &officer,
    );
    assert_eq!(status, 404);
    let out = parapet(
        &p,
        &["users", "add", "olive", "--role", "council-officer"],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "an officer account needs a tenant"
    );

    // the supplier's token sees both councils and the appendix
    let out = parapet(&p, &["users", "token", "admin"], None);
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (status, body) = get(p.web, "/api/v1/alerts", &admin);
    assert_eq!(status, 200);
    assert!(
        body.contains("\"north\"") && body.contains("\"south\""),
        "{body}"
    );
    let (status, body) = get(
        p.web,
        &format!("/reports/north/{}/exempt-appendix.html", demo_quarter()),
        &admin,
    );
    assert_eq!(status, 200);
    assert!(body.contains("NOT FOR PUBLICATION"), "{body}");
}
