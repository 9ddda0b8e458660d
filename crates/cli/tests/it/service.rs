//! `serve` as a systemd service sees it: notifications on a real Unix
//! datagram socket (READY once DNS answers, the watchdog's keep-alive,
//! RELOADING/READY around SIGHUP, STOPPING), and its log lines as a
//! journal or a file gets them: JSON that parses line by line, text
//! without escape codes.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Client, free_port, repo_root, wait_for};

const BLOCKED: &str = "malware.testing.google.test.";

/// `parapet serve` with the example RPZ, stderr into `dir/parapet.log`.
fn serve(dir: &Path, extra_config: &str, env: &[(&str, &str)]) -> (Child, SocketAddr) {
    let port = free_port();
    let config = dir.join("parapet.toml");
    std::fs::write(
        &config,
        format!(
            "[dns]\nlisten = [\"127.0.0.1:{port}\"]\nthreads = 1\n\n\
             [[feeds]]\nname = \"example\"\npath = \"{}\"\nformat = \"rpz\"\n\n\
             [web]\nlisten = \"127.0.0.1:{}\"\n\n{extra_config}\n",
            repo_root().join("etc/feeds/example.rpz").display(),
            free_port()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("parapet.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("PARAPET_PSEUDONYM_KEY", "test-key-0123456789")
        .env_remove("PARAPET_LOG_FORMAT")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start parapet");
    (child, ([127, 0, 0, 1], port).into())
}

fn signal(child: &Child, which: &str) {
    let ok = Command::new("kill")
        .args([which, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {which}");
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blocked(dns: SocketAddr) -> bool {
    Client::new(dns)
        .timeout(Duration::from_millis(500))
        .query(BLOCKED, RecordType::A)
        .is_some_and(|a| a.rcode == ResponseCode::NXDomain)
}

/// The notifications received, one datagram each.
struct Notifications {
    sock: UnixDatagram,
    seen: Vec<String>,
}

impl Notifications {
    /// Reads datagrams until `n` of them hold `line` (as a whole line);
    /// returns the index in `seen` of the `n`th.
    fn until_n(&mut self, line: &str, n: usize, log: &Path) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        loop {
            if let Some((i, _)) = self
                .seen
                .iter()
                .enumerate()
                .filter(|(_, m)| m.lines().any(|l| l == line))
                .nth(n - 1)
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no {line} ({n}) among {:?}; log:\n{}",
                self.seen,
                std::fs::read_to_string(log).unwrap_or_default()
            );
            if let Ok(len) = self.sock.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
        }
    }

    fn until(&mut self, line: &str, log: &Path) -> usize {
        self.until_n(line, 1, log)
    }

    /// Forgets what was received, keeping the socket.
    fn clear(&mut self) {
        self.seen.clear();
    }
}

#[test]
fn systemd_hears_ready_watchdog_reload_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&socket).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut notes = Notifications {
        sock,
        seen: Vec::new(),
    };
    let log = dir.path().join("parapet.log");
    // the config asks for JSON, the environment for text: the environment wins
    let (mut child, dns) = serve(
        dir.path(),
        "[log]\nformat = \"json\"\n",
        &[
            ("NOTIFY_SOCKET", socket.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
            ("PARAPET_LOG_FORMAT", "text"),
            ("PARAPET_LOG", "info"),
        ],
    );

    let ready = notes.until("READY=1", &log);
    assert!(
        notes.seen[ready]
            .lines()
            .any(|l| l.starts_with("STATUS=DNS on 127.0.0.1:")),
        "{:?}",
        notes.seen
    );
    // READY means the listeners are bound and served
    assert!(blocked(dns), "no answer after READY=1");

    // the keep-alive, every WATCHDOG_USEC / 2, while the runtime ticks
    notes.clear();
    notes.until_n("WATCHDOG=1", 3, &log);

    // SIGHUP: RELOADING=1, then READY=1 once the reload is done
    notes.clear();
    signal(&child, "-HUP");
    let reloading = notes.until("RELOADING=1", &log);
    let ready = notes.until("READY=1", &log);
    assert!(reloading < ready, "{:?}", notes.seen);
    assert!(blocked(dns));

    notes.clear();
    signal(&child, "-TERM");
    notes.until("STOPPING=1", &log);
    assert!(wait_exit(&mut child).success());

    // text to a file: no colour codes, and not JSON despite `[log]`
    let text = std::fs::read(&log).unwrap();
    assert!(!text.contains(&0x1b), "escape codes in a log file");
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("DNS listening on 127.0.0.1:"), "{text}");
    assert!(text.lines().all(|l| !l.starts_with('{')), "{text}");
}

#[test]
fn json_logs_parse_line_by_line_with_each_query_under_its_target() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("parapet.log");
    let (mut child, dns) = serve(
        dir.path(),
        "[log]\nformat = \"json\"\n",
        &[("PARAPET_LOG", "info,parapet::query=debug")],
    );
    wait_for("DNS answers", || blocked(dns));
    // the query log line is written by the collector, shortly after
    wait_for("the query's log line", || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"parapet::query\""))
    });
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child).success());

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\u{1b}'), "escape codes in JSON logs");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    for l in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(l[key].is_string(), "no {key} in {l}");
        }
    }
    // RFC 3339 UTC times
    let ts = lines[0]["timestamp"].as_str().unwrap();
    assert!(
        ts.len() > 20 && ts.as_bytes()[10] == b'T' && ts.ends_with('Z'),
        "{ts}"
    );
    // an event's fields beside its message
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "new policy in force"
                || l["message"] == "forwarding to upstreams"),
        "{text}"
    );
    let query = lines
        .iter()
        .find(|l| l["target"] == "parapet::query")
        .unwrap();
    assert_eq!(query["level"], "DEBUG");
    assert_eq!(query["name"], "malware.testing.google.test", "{query}");
    assert_eq!(query["action"], "blocked", "{query}");
    assert_eq!(query["qtype"], 1, "{query}");
    assert_eq!(query["feed"], "example", "{query}");
    // the client as a pseudonym, never its address
    let client = query["client"].as_str().unwrap();
    assert!(
        !client.contains("127.0.0.1") && !client.is_empty(),
        "{query}"
    );
}

#[test]
fn a_bad_log_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["privacy"])
        .env("PARAPET_LOG_FORMAT", "xml")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PARAPET_LOG_FORMAT"), "{err}");

    let config = dir.path().join("parapet.toml");
    std::fs::write(&config, "[log]\nformat = \"xml\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["config", "check"])
        .arg(&config)
        .env_remove("PARAPET_LOG_FORMAT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("xml") && err.contains("parapet.toml:2:"),
        "{err}"
    );
}
