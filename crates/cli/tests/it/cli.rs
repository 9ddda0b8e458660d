//! The command line: help everywhere, `feeds check`, `config check`, exit
//! codes, and `parapet serve` on its embedded defaults.

use std::process::{Command, Output};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Client, output_text as text, repo_root};

fn parapet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["feeds", "--help"],
        &["feeds", "check", "--help"],
        &["config", "--help"],
        &["config", "check", "--help"],
        &["privacy", "--help"],
        &["users", "remove", "--help"],
        &["users", "tokens", "--help"],
        &["users", "revoke-token", "--help"],
        &["users", "totp", "--help"],
        &["alerts", "--help"],
        &["alerts", "list", "--help"],
        &["alerts", "set", "--help"],
        &["allowlist", "--help"],
        &["allowlist", "list", "--help"],
        &["allowlist", "add", "--help"],
        &["allowlist", "remove", "--help"],
        &["mailcheck", "--help"],
        &["assets", "--help"],
        &["assets", "import", "--help"],
        &["assets", "except", "--help"],
        &["incidents", "--help"],
        &["incidents", "add", "--help"],
        &["incidents", "list", "--help"],
        &["incidents", "close", "--help"],
        &["kpi", "--help"],
        &["kpi", "freeze", "--help"],
        &["kpi", "reopen", "--help"],
        &["kpi", "versions", "--help"],
        &["report", "--help"],
        &["dmarc", "--help"],
        &["dmarc", "import", "--help"],
        &["dmarc", "summary", "--help"],
    ] {
        let o = parapet(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        assert!(text(&o).contains("Usage"), "{args:?}");
    }
    assert_eq!(parapet(&["no-such-command"]).status.code(), Some(2));
}

#[test]
fn feeds_check_counts_or_names_file_and_line() {
    let example = repo_root().join("etc/feeds/example.rpz");
    let o = parapet(&["feeds", "check", example.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains(": 8 entries (rpz format"), "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.txt");
    std::fs::write(&bad, "good.example\nbad..example\nalso good.example\n").unwrap();
    let o = parapet(&["feeds", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("bad.txt:2: domain"), "{t}");
    assert!(t.contains("bad.txt:3: domain"), "{t}");

    // RPZ address triggers count as entries
    let ip = dir.path().join("ip.rpz");
    std::fs::write(
        &ip,
        "$ORIGIN rpz.\n32.1.2.0.192.rpz-ip CNAME .\n24.0.2.0.192.rpz-client-ip CNAME rpz-drop.\n",
    )
    .unwrap();
    let o = parapet(&["feeds", "check", ip.to_str().unwrap()]);
    assert!(text(&o).contains(": 2 entries (rpz format"), "{}", text(&o));

    let hosts = dir.path().join("blocklist.hosts");
    std::fs::write(&hosts, "0.0.0.0 a.example b.example\n").unwrap();
    let o = parapet(&[
        "feeds",
        "check",
        "--format",
        "hosts",
        hosts.to_str().unwrap(),
    ]);
    assert!(
        text(&o).contains(": 2 entries (hosts format"),
        "{}",
        text(&o)
    );
}

#[test]
fn config_check_accepts_the_example_and_refuses_unknown_keys() {
    let example = repo_root().join("etc/parapet.example.toml");
    let o = parapet(&["config", "check", example.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("p.toml");
    std::fs::write(
        &bad,
        "[dns]\nlisten = [\"127.0.0.1:5353\"]\n\n[web]\nlisen = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let o = parapet(&["config", "check", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(t.contains("p.toml:5") && t.contains("lisen"), "{t}");
    let o = parapet(&["serve", "--config", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// `parapet serve` with no config: 127.0.0.1:5353, the bundled example feed.
#[test]
fn serve_runs_on_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .arg("serve")
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = "127.0.0.1:5353".parse().unwrap();
    let mut answer = None;
    for _ in 0..100 {
        answer = Client::new(server)
            .timeout(std::time::Duration::from_millis(200))
            .query("malware.testing.google.test.", RecordType::A);
        if answer.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let a = answer.expect("parapet serve answers on 127.0.0.1:5353 (is the port taken?)");
    assert_eq!(a.rcode, ResponseCode::NXDomain);
}

/// `parapet … | head` closing the pipe before the output is written ends
/// the command quietly (141, as SIGPIPE would), not with a panic.
#[test]
fn a_closed_stdout_pipe_ends_quietly_without_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    // closed before the command starts, so its first write fails for sure
    drop(reader);
    let example = repo_root().join("etc/feeds/example.rpz");
    let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["feeds", "check", example.to_str().unwrap()])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A first start that cannot bind its web port fails before it makes the
/// first account, so the account a later start makes is the one whose
/// password is shown.
#[test]
fn a_start_on_a_busy_port_makes_no_account() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = busy.local_addr().unwrap();
    let config = dir.path().join("parapet.toml");
    std::fs::write(
        &config,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:{}\"]\nupstreams = [\"127.0.0.1:9\"]\n[web]\nlisten = \"{web}\"\n",
            crate::harness::free_port()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .env(
            "PARAPET_PSEUDONYM_KEY",
            "a test key of sixteen bytes or more",
        )
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot listen on"), "{err}");
    assert!(!err.contains("created the first account"), "{err}");
    let users = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["users", "list", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(users.status.success(), "{}", text(&users));
    assert_eq!(String::from_utf8_lossy(&users.stdout).trim(), "");
}
