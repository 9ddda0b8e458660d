//! Query search end to end: queries from two councils' clients through
//! `parapet serve` into its store, then found by `parapet queries search`
//! and by `/api/v1/queries` with a council user's token, each seeing only
//! what its filters and its tenant allow.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::harness::{Parapet, http_get_bearer, shared_nsd};

fn parapet(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(args)
        .env("PARAPET_CONFIG", config)
        .env("PARAPET_PASSWORD", "a-long-enough-password")
        .output()
        .unwrap()
}

/// The names `parapet queries search ARGS --format json` finds, newest first.
fn search(config: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["queries", "search", "--format", "json"];
    all.extend_from_slice(args);
    let o = parapet(config, &all);
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["tenant"].as_str().unwrap(),
                e["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn queries_are_found_by_the_command_and_the_api_within_their_tenant() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
         [[tenants]]\nname = \"north\"\nnetworks = [\"127.0.0.2/32\"]\n\
         [[tenants]]\nname = \"south\"\nnetworks = [\"127.0.0.3/32\"]\n\
         [store]\npath = \"data\"\nflush_interval_ms = 200\n",
        &[("listed.txt", "listed.zone.test\n")],
    );
    let north = p.client().from("127.0.0.2");
    let south = p.client().from("127.0.0.3");
    north.query("www.zone.test.", RecordType::A).unwrap();
    north.query("listed.zone.test.", RecordType::A).unwrap();
    south.query("mail.zone.test.", RecordType::A).unwrap();
    south.query("listed.zone.test.", RecordType::A).unwrap();
    let db = rusqlite::Connection::open(p.path("data/parapet.sqlite")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let rows = || {
        db.query_row("SELECT COUNT(*) FROM query_events", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    while rows() < 4 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rows(), 4, "{}", p.log());
    let cfg = p.config.as_path();

    let mut both = search(cfg, &["--domain", "www.zone.test"]);
    both.sort();
    assert_eq!(
        both,
        [
            "north listed.zone.test",
            "north www.zone.test",
            "south listed.zone.test",
            "south mail.zone.test"
        ]
    );
    assert_eq!(
        search(
            cfg,
            &[
                "--tenant",
                "north",
                "--name",
                "zone.test",
                "--match",
                "suffix"
            ]
        )
        .len(),
        2
    );
    assert_eq!(
        search(
            cfg,
            &[
                "--action", "blocked", "--rule", "listed", "--tenant", "south"
            ]
        ),
        ["south listed.zone.test"]
    );
    assert!(search(cfg, &["--name", "zone.test"]).is_empty());
    assert!(search(cfg, &["--until", "2000-01-01"]).is_empty());
    // the pseudonym of north's client finds north's two queries only
    let pseudonym: String = db
        .query_row(
            "SELECT lower(hex(client)) FROM query_events WHERE qname = 'www.zone.test'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut mine = search(cfg, &["--pseudonym", &pseudonym]);
    mine.sort();
    assert_eq!(mine, ["north listed.zone.test", "north www.zone.test"]);
    // the table names the columns; a bad field is refused with exit 2
    let table = parapet(cfg, &["queries", "search", "--tenant", "south"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("TIME "), "{text}");
    assert!(text.contains("mail.zone.test") && !text.contains("www.zone.test"));
    let bad = parapet(cfg, &["queries", "search", "--pseudonym", "nothex"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("pseudonym: "));

    // a council user's token: its own tenant only, whatever it asks
    let add = parapet(
        cfg,
        &[
            "users", "add", "ann", "--role", "council", "--tenant", "north",
        ],
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let token = String::from_utf8(parapet(cfg, &["users", "token", "ann"]).stdout).unwrap();
    let (status, body) = http_get_bearer(p.web, "/api/v1/queries?domain=zone.test", token.trim());
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let tenants: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["north", "north"]);
    let (status, _) = http_get_bearer(p.web, "/api/v1/queries?tenant=south", token.trim());
    assert_eq!(status, 403);
}
