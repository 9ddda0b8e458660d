//! The alert workbench end to end: a blocked query raises an alert, a
//! supplier analyst marks it a false positive and allows the name through
//! the API, and the running resolver answers the name; when the entry is
//! removed, or another one expires, the name is blocked again. NSD
//! answers the names that are not blocked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, http_get_bearer, output_text, shared_nsd, wait_for};

fn parapet(p: &Parapet, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(args)
        .arg("--config")
        .arg(&p.config)
        .env("PARAPET_PASSWORD", "analyst-password-1")
        .output()
        .unwrap()
}

fn ok(p: &Parapet, args: &[&str]) -> String {
    let o = parapet(p, args);
    assert!(o.status.success(), "{args:?}: {}", output_text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// `(status, body)` of a JSON POST with a bearer token.
fn post_json(addr: SocketAddr, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_string(),
    )
}

#[test]
fn a_false_positive_allowed_from_the_alert_resolves_until_its_entry_ends() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "[[feeds]]\nname = \"wrong\"\npath = \"wrong.txt\"\nformat = \"domains\"\n",
        &[("wrong.txt", "target.zone.test\n")],
    );
    let rc = |name: &str| {
        p.client()
            .query(name, RecordType::A)
            .map(|a| a.rcode)
            .unwrap_or(ResponseCode::ServFail)
    };
    assert_eq!(rc("target.zone.test."), ResponseCode::NXDomain);

    ok(&p, &["users", "add", "ana", "--role", "supplier-analyst"]);
    let token = ok(&p, &["users", "token", "ana"]).trim().to_string();
    let mut alert = serde_json::Value::Null;
    wait_for("the feed.block alert", || {
        let (_, body) = http_get_bearer(p.web, "/api/v1/alerts?rule=feed.block", &token);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        alert = v["alerts"][0].clone();
        alert.is_object()
    });
    let id = alert["id"].as_i64().unwrap();
    let (status, body) = http_get_bearer(p.web, &format!("/api/v1/alerts/{id}"), &token);
    assert_eq!(status, 200, "{body}");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let pseudonym = view["pseudonyms"][0]["pseudonym"].as_str().unwrap();
    assert_eq!(pseudonym.len(), 16, "{body}");
    assert!(
        view["pseudonyms"][0]["timeline"]
            .as_str()
            .unwrap()
            .contains(&format!("pseudonym={pseudonym}")),
        "{body}"
    );

    // false positive: allow the exact name for a day
    let (status, body) = post_json(
        p.web,
        &format!("/api/v1/alerts/{id}/allow"),
        &token,
        r#"{"name": "target.zone.test", "days": 1, "note": "the council's own portal"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let entry: serde_json::Value = serde_json::from_str(&body).unwrap();
    wait_for("the allowed name to resolve", || {
        rc("target.zone.test.") == ResponseCode::NoError
    });
    let (_, body) = http_get_bearer(p.web, &format!("/api/v1/alerts/{id}"), &token);
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["status"], "false_positive", "{body}");
    let listed = ok(&p, &["allowlist", "list", "--format", "json"]);
    assert!(
        listed.contains("\"target.zone.test\"") && listed.contains("ana"),
        "{listed}"
    );
    let (_, audit) = http_get_bearer(p.web, "/api/v1/audit", &token);
    assert!(audit.contains("allowlist.add"), "{audit}");

    // the entry removed: blocked again
    let entry_id = entry["id"].to_string();
    ok(&p, &["allowlist", "remove", &entry_id, "--by", "ana"]);
    wait_for("the name to be blocked again", || {
        rc("target.zone.test.") == ResponseCode::NXDomain
    });

    // an entry that expires a few seconds from now: allowed, then blocked
    let until = parapet_core::calendar::format_datetime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + 10,
    );
    ok(
        &p,
        &[
            "allowlist",
            "add",
            "zone.test",
            "--until",
            &until,
            "--reason",
            "short trial",
        ],
    );
    wait_for("the short entry to apply", || {
        rc("target.zone.test.") == ResponseCode::NoError
    });
    wait_for("the short entry to expire", || {
        rc("target.zone.test.") == ResponseCode::NXDomain
    });
    assert!(
        ok(&p, &["allowlist", "list"]).contains("no allowlist entries"),
        "nothing in force after the expiry"
    );
    assert!(
        p.log().contains("database allowlist changed"),
        "{}",
        p.log()
    );
}
