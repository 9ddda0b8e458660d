//! Sealed client addresses end to end (issue 27 §1, §2, §5), on both
//! backends: `parapet investigate keygen`, a node with the public key, a
//! blocked query from 127.0.0.7 that raises an alert, a forwarder
//! (127.0.0.8) sending EDNS Client Subnet for 127.0.0.9 with kdig, then
//! `parapet investigate reveal` with the private key. Neither the
//! database files (SQLite db, -wal, the spool) nor a PostgreSQL dump hold
//! 127.0.0.7 as text or as its 4 bytes; a wrong key fails clearly; no
//! `--reason` is refused; the reveal is in the audit log.

use std::path::Path;
use std::process::{Command, Output};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, http_get_bearer, output_text, shared_nsd, wait_for};

/// `parapet ARGS` with `PARAPET_CONFIG` set to `config`.
fn parapet(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(args)
        .env("PARAPET_CONFIG", config)
        .env("PARAPET_PSEUDONYM_KEY", "test-key-0123456789")
        .env("PARAPET_PASSWORD", "a-long-enough-password")
        .env_remove("PARAPET_DATABASE_URL")
        .output()
        .expect("run parapet")
}

fn ok(config: &Path, args: &[&str]) -> String {
    let o = parapet(config, args);
    assert!(o.status.success(), "{args:?}: {}", output_text(&o));
    String::from_utf8(o.stdout).unwrap()
}

/// Makes a key pair in a folder of its own; checks the files.
fn keygen() -> tempfile::TempDir {
    let keys = tempfile::tempdir().unwrap();
    let out = keys.path().join("k");
    let run = || {
        Command::new(env!("CARGO_BIN_EXE_parapet"))
            .args(["investigate", "keygen", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("fingerprint sha256:"),
        "{}",
        output_text(&o)
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("investigation.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // never over an existing key
    let again = run();
    assert_eq!(again.status.code(), Some(2), "{}", output_text(&again));
    assert!(output_text(&again).contains("refusing to overwrite"));
    keys
}

/// kdig from `source`, with an ECS option for `subnet`.
fn kdig_ecs(p: &Parapet, source: &str, subnet: &str, name: &str) {
    let o = Command::new("kdig")
        .args([
            "-b",
            source,
            &format!("+subnet={subnet}"),
            "+retry=0",
            "+time=3",
        ])
        .arg(format!("@{}", p.dns.ip()))
        .args(["-p", &p.dns.port().to_string(), name])
        .output()
        .expect("run kdig");
    let text = output_text(&o);
    assert!(o.status.success() && text.contains("NXDOMAIN"), "{text}");
}

fn start(store: &str, pubkey: &Path) -> Parapet {
    let nsd = shared_nsd();
    Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        &format!(
            "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
             [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.7/32\", \"127.0.0.8/32\"]\n\
             forwarders = [\"127.0.0.8/32\"]\ntrusted_ecs = [\"127.0.0.8/32\"]\n\
             [store]\n{store}\nflush_interval_ms = 100\n\
             [privacy]\ninvestigation_public_key = \"{}\"\n",
            pubkey.display()
        ),
        &[("listed.txt", "listed.zone.test\n")],
    )
}

/// The whole scenario on one store; returns the node (still running) so
/// the caller can look at its files.
fn scenario(store: &str) -> (Parapet, tempfile::TempDir) {
    let keys = keygen();
    let pubkey = keys.path().join("k/investigation.pub");
    let key = keys.path().join("k/investigation.key");
    let p = start(store, &pubkey);
    let cfg = p.config.clone();

    // the client, a forwarder with ECS, the forwarder itself without
    let client = p.client().from("127.0.0.7");
    for _ in 0..3 {
        let a = client.query("listed.zone.test.", RecordType::A).unwrap();
        assert_eq!(a.rcode, ResponseCode::NXDomain);
    }
    assert_eq!(
        client.query("www.zone.test.", RecordType::A).unwrap().rcode,
        ResponseCode::NoError
    );
    kdig_ecs(&p, "127.0.0.8", "127.0.0.9/32", "listed.zone.test");
    let fwd = p.client().from("127.0.0.8");
    assert_eq!(
        fwd.query("listed.zone.test.", RecordType::A).unwrap().rcode,
        ResponseCode::NXDomain
    );
    let alerts = || -> serde_json::Value {
        serde_json::from_str(&ok(&cfg, &["alerts", "list", "--format", "json"])).unwrap()
    };
    wait_for("the alert from three clients", || {
        alerts()
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "feed.block" && a["clients"] == 3)
    });
    let id = alerts()
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "feed.block")
        .unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();

    // reveal: the client and the ECS address, never the forwarder behind ECS
    let out = ok(
        &cfg,
        &[
            "investigate",
            "reveal",
            "--alert",
            &id,
            "--key",
            key.to_str().unwrap(),
            "--reason",
            "ticket INC-1: C2 contact",
            "--by",
            "dana",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut addrs: Vec<(String, bool)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["tenant"], "council-a");
            assert!(c["queries"].as_u64().unwrap() >= 1, "{c}");
            assert_eq!(c["names"][0]["name"], "listed.zone.test", "{c}");
            (
                c["addresses"][0].as_str().unwrap().to_string(),
                c["forwarder"].as_bool().unwrap(),
            )
        })
        .collect();
    addrs.sort();
    assert_eq!(
        addrs,
        [
            ("127.0.0.7".to_string(), false),
            ("127.0.0.8".to_string(), true),
            ("127.0.0.9".to_string(), false)
        ],
        "{out}"
    );
    let table = ok(
        &cfg,
        &[
            "investigate",
            "reveal",
            "--alert",
            &id,
            "--key",
            key.to_str().unwrap(),
            "--reason",
            "the table too",
        ],
    );
    assert!(
        table.contains("127.0.0.7") && table.contains("forwarder"),
        "{table}"
    );
    let pseudonym = v[0]["pseudonym"].as_str().unwrap().to_string();
    let one = ok(
        &cfg,
        &[
            "investigate",
            "reveal",
            "--pseudonym",
            &pseudonym,
            "--tenant",
            "council-a",
            "--key",
            key.to_str().unwrap(),
            "--reason",
            "one client",
        ],
    );
    assert!(
        one.contains(v[0]["addresses"][0].as_str().unwrap()),
        "{one}"
    );

    // no reason: refused, nothing shown
    let o = parapet(
        &cfg,
        &[
            "investigate",
            "reveal",
            "--alert",
            &id,
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(output_text(&o).contains("--reason") && !output_text(&o).contains("127.0.0.7"));
    // another key pair: a clear error, nothing shown
    let other = keygen();
    let o = parapet(
        &cfg,
        &[
            "investigate",
            "reveal",
            "--alert",
            &id,
            "--reason",
            "wrong key",
            "--key",
            other.path().join("k/investigation.key").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", output_text(&o));
    assert!(
        output_text(&o).contains("does not open"),
        "{}",
        output_text(&o)
    );
    assert!(!output_text(&o).contains("127.0.0.7"));
    // the public key is not a private one
    let o = parapet(
        &cfg,
        &[
            "investigate",
            "reveal",
            "--alert",
            &id,
            "--reason",
            "x",
            "--key",
            pubkey.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));

    // every reveal is in the audit log: who, why, what, how many
    ok(&cfg, &["users", "add", "sam", "--role", "supplier-admin"]);
    let token = ok(&cfg, &["users", "token", "sam"]).trim().to_string();
    let (status, body) = http_get_bearer(p.web, "/api/v1/audit", &token);
    assert_eq!(status, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reveals: Vec<&serde_json::Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "investigate.reveal")
        .collect();
    assert_eq!(reveals.len(), 4, "{body}");
    assert!(
        reveals.iter().any(|e| e["actor"] == "dana"
            && e["detail"]
                == format!("alert {id}: 3 address(es) revealed; reason: ticket INC-1: C2 contact")
            && e["tenant"] == "council-a"),
        "{body}"
    );
    assert!(
        !body.contains("127.0.0.7"),
        "the audit log names no address: {body}"
    );

    // the alert's JSON view: pseudonyms, the forwarder flag, the command
    let (status, body) = http_get_bearer(p.web, &format!("/api/v1/alerts/{id}"), &token);
    assert_eq!(status, 200, "{body}");
    let a: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ps = a["pseudonyms"].as_array().unwrap();
    assert_eq!(ps.len(), 3, "{body}");
    assert_eq!(
        ps.iter().filter(|p| p["forwarder"] == true).count(),
        1,
        "{body}"
    );
    assert!(
        ps[0]["reveal_command"]
            .as_str()
            .unwrap()
            .starts_with("parapet investigate reveal --pseudonym ")
    );

    // privacy: the mode and fingerprint; a council's copy names no path
    let privacy = ok(&cfg, &["privacy"]);
    assert!(
        privacy.contains("Client addresses: sealed.") && privacy.contains("sha256:"),
        "{privacy}"
    );
    ok(
        &cfg,
        &[
            "users",
            "add",
            "cora",
            "--role",
            "council",
            "--tenant",
            "council-a",
        ],
    );
    let council = ok(&cfg, &["users", "token", "cora"]).trim().to_string();
    let (status, body) = http_get_bearer(p.web, "/api/v1/privacy", &council);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["sealing"]["mode"], "sealed", "{body}");
    let dir = p.dir.path().to_str().unwrap();
    assert!(
        !body.contains(dir) && !body.contains("pseudonym.key"),
        "{body}"
    );
    (p, keys)
}

/// Every file under `dir` (the store folder: db, -wal, -shm, spool).
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(b) = std::fs::read(&path) {
            out.push((path.display().to_string(), b));
        }
    }
    out
}

fn holds_address(bytes: &[u8]) -> bool {
    bytes.windows(9).any(|w| w == b"127.0.0.7") || bytes.windows(4).any(|w| w == [127, 0, 0, 7])
}

#[test]
fn sqlite_sealed_addresses_reveal_audited_and_never_stored_in_clear() {
    let (mut p, _keys) = scenario("path = \"data\"");
    let data = p.path("data");
    let check = |when: &str| {
        let files = files_under(&data);
        assert!(files.iter().any(|(n, _)| n.ends_with("parapet.sqlite")));
        for (name, bytes) in &files {
            assert!(!holds_address(bytes), "{when}: {name} holds 127.0.0.7");
        }
        files.iter().any(|(n, _)| n.ends_with("-wal"))
    };
    assert!(check("running"), "the -wal file is checked while it exists");
    assert!(p.terminate().success());
    check("stopped");
}

#[test]
fn postgresql_sealed_addresses_reveal_audited_and_never_stored_in_clear() {
    let url = parapet_store::pgtest::fresh_database();
    let (mut p, _keys) = scenario(&format!("url = \"{url}\""));
    assert!(p.terminate().success());
    let pg_dump = parapet_store::pgtest::bin_dir()
        .map(|d| d.join("pg_dump"))
        .unwrap_or_else(|| "pg_dump".into());
    let o = Command::new(pg_dump)
        .args(["--data-only", "--dbname", &url])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    let dump = String::from_utf8(o.stdout).unwrap();
    assert!(dump.contains("sealed_clients") && dump.contains("query_events"));
    // bytea is dumped as hex: the 4 address bytes would read 7f000007
    assert!(
        !dump.contains("127.0.0.7") && !dump.contains("7f000007"),
        "{dump}"
    );
}
