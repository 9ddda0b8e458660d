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
