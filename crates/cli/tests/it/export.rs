//! SIEM exports to real receivers on loopback: rsyslog (started here with
//! its own config, over TCP and over TLS with a CA made by the `openssl`
//! command) taking alerts as JSON and as CEF across a stop and start of
//! rsyslog; an HTTP collector taking Splunk HEC batches with the
//! configured header; a JSON-lines file that rotates; webhook payload
//! templates; `/metrics` through `promtool check metrics`; and the Grafana
//! dashboard naming only metrics `/metrics` has.

use std::collections::BTreeSet;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, Peer, free_port, read_http_request, repo_root, wait_for};

/// A CA and a server certificate for 127.0.0.1 made with `openssl`.
fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Parapet test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
}

/// rsyslog with a plain TCP input writing each raw message to
/// `plain.log`, a TLS (gtls) input writing to `tls.log` and a UDP input
/// writing to `udp.log`, all in `dir`.
struct Rsyslog {
    dir: std::path::PathBuf,
    tcp: u16,
    tls: u16,
    udp: u16,
    peer: Option<Peer>,
}

impl Rsyslog {
    fn new(dir: &Path) -> Self {
        make_certs(dir);
        std::fs::create_dir_all(dir.join("work")).unwrap();
        let (tcp, tls) = (free_port(), free_port());
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let d = dir.display();
        std::fs::write(
            dir.join("rsyslog.conf"),
            format!(
                "global(workDirectory=\"{d}/work\" DefaultNetstreamDriverCAFile=\"{d}/ca.pem\" \
                 DefaultNetstreamDriverCertFile=\"{d}/cert.pem\" DefaultNetstreamDriverKeyFile=\"{d}/key.pem\")\n\
                 module(load=\"imtcp\")\nmodule(load=\"imudp\")\n\
                 input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\" ruleset=\"udp\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\" ruleset=\"plain\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tls}\" ruleset=\"tls\" \
                 streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n\
                 template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
                 ruleset(name=\"plain\") {{ action(type=\"omfile\" file=\"{d}/plain.log\" template=\"raw\") }}\n\
                 ruleset(name=\"tls\") {{ action(type=\"omfile\" file=\"{d}/tls.log\" template=\"raw\") }}\n\
                 ruleset(name=\"udp\") {{ action(type=\"omfile\" file=\"{d}/udp.log\" template=\"raw\") }}\n"
            ),
        )
        .unwrap();
        let mut r = Self {
            dir: dir.to_path_buf(),
            tcp,
            tls,
            udp,
            peer: None,
        };
        r.start();
        r
    }

    fn start(&mut self) {
        let conf = self.dir.join("rsyslog.conf");
        let pid = self.dir.join("rsyslog.pid");
        let addr: SocketAddr = ([127, 0, 0, 1], self.tcp).into();
        self.peer = Some(Peer::spawn(
            "rsyslogd",
            &[
                "-n",
                "-f",
                conf.to_str().unwrap(),
                "-i",
                pid.to_str().unwrap(),
            ],
            tempfile::tempdir().unwrap(),
            addr,
        ));
        let tls: SocketAddr = ([127, 0, 0, 1], self.tls).into();
        wait_for("rsyslog to listen", || {
            TcpStream::connect(addr).is_ok() && TcpStream::connect(tls).is_ok()
        });
    }

    /// SIGTERM (rsyslog writes out what it has), and waits for the exit.
    fn stop(&mut self) {
        self.peer = None;
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// The MSG part of an RFC 5424 line written by Parapet (no structured
/// data: MSG follows the seventh field, `-`).
fn msg(line: &str) -> &str {
    line.splitn(8, ' ').nth(7).unwrap_or("")
}

/// The alert domains in `lines`: JSON alerts' `domain`, CEF alerts' `dhost`.
fn alert_domains(lines: &[String], cef: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for l in lines {
        let m = msg(l);
        if cef {
            if m.starts_with("CEF:0|Parapet|Parapet|") && m.contains("|feed.block|") {
                let d = m
                    .split(" dhost=")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap();
                out.insert(d.to_string());
            }
        } else if m.starts_with('{') {
            let v: serde_json::Value =
                serde_json::from_str(m).unwrap_or_else(|e| panic!("{e}: {m}"));
            if v["type"] == "alert" {
                out.insert(v["domain"].as_str().unwrap().to_string());
            }
        }
    }
    out
}

fn feed_file(n: usize) -> String {
    (1..=n).map(|i| format!("bad{i}.test\n")).collect()
}

fn raise(p: &Parapet, range: std::ops::RangeInclusive<usize>) {
    for i in range {
        p.client()
            .from("127.0.0.2")
            .query(&format!("bad{i}.test."), RecordType::A)
            .unwrap();
    }
}

fn wanted(range: std::ops::RangeInclusive<usize>) -> BTreeSet<String> {
    range.map(|i| format!("bad{i}.test")).collect()
}

#[test]
fn syslog_over_tcp_and_tls_as_json_and_cef_loses_nothing_across_a_restart() {
    let rdir = tempfile::tempdir().unwrap();
    let mut rs = Rsyslog::new(rdir.path());
    let ca = rdir.path().join("ca.pem");
    let body = format!(
        "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
         [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
         [store]\nflush_interval_ms = 100\n\
         [[exports]]\nname = \"tcp-json\"\nkind = \"syslog\"\naddress = \"127.0.0.1:{tcp}\"\nprotocol = \"tcp\"\nformat = \"json\"\nwhat = [\"alerts\", \"blocked\"]\n\
         [[exports]]\nname = \"tcp-cef\"\nkind = \"syslog\"\naddress = \"127.0.0.1:{tcp}\"\nprotocol = \"tcp\"\nformat = \"cef\"\n\
         [[exports]]\nname = \"tls-json\"\nkind = \"syslog\"\naddress = \"127.0.0.1:{tls}\"\nprotocol = \"tls\"\nformat = \"json\"\nca_file = \"{ca}\"\ntenants = [\"council-a\"]\n\
         [[exports]]\nname = \"tls-cef\"\nkind = \"syslog\"\naddress = \"127.0.0.1:{tls}\"\nprotocol = \"tls\"\nformat = \"cef\"\nca_file = \"{ca}\"\n\
         [[exports]]\nname = \"udp-cef\"\nkind = \"syslog\"\naddress = \"127.0.0.1:{udp}\"\nprotocol = \"udp\"\nformat = \"cef\"\n",
        udp = rs.udp,
        tcp = rs.tcp,
        tls = rs.tls,
        ca = ca.display(),
    );
    let p = Parapet::start("", &body, &[("listed.txt", &feed_file(12))]);
    let all_arrived = |rs: &Rsyslog, want: &BTreeSet<String>| {
        let plain = rs.lines("plain.log");
        let tls = rs.lines("tls.log");
        alert_domains(&plain, false).is_superset(want)
            && alert_domains(&plain, true).is_superset(want)
            && alert_domains(&tls, false).is_superset(want)
            && alert_domains(&tls, true).is_superset(want)
    };

    raise(&p, 1..=4);
    wait_for("the first alerts in rsyslog", || {
        all_arrived(&rs, &wanted(1..=4))
    });

    // the SIEM goes away: alerts raised meanwhile wait in the store
    rs.stop();
    raise(&p, 5..=8);
    wait_for("a failed export attempt", || {
        p.metric("parapet_export_failures_total{destination=\"tls-cef\"") >= 1.0
            && p.metric("parapet_export_failures_total{destination=\"tcp-json\"") >= 1.0
    });
    rs.start();
    raise(&p, 9..=10);
    wait_for("every alert in rsyslog after its restart", || {
        all_arrived(&rs, &wanted(1..=10))
    });

    let plain = rs.lines("plain.log");
    let tls = rs.lines("tls.log");
    for l in plain.iter().chain(&tls) {
        assert!(l.starts_with("<1"), "an RFC 5424 PRI: {l}");
        assert!(l.contains(" parapet "), "APP-NAME: {l}");
        assert!(!l.contains("127.0.0.2"), "no client address leaves: {l}");
    }
    // CEF: the documented mapping
    let cef = plain
        .iter()
        .map(|l| msg(l))
        .find(|m| m.starts_with("CEF:") && m.contains("dhost=bad7.test"))
        .unwrap();
    assert!(
        cef.contains("|feed.block|feed.block alert for bad7.test|"),
        "{cef}"
    );
    assert!(cef.contains("cs1Label=tenant cs1=council-a"), "{cef}");
    assert!(cef.contains("cs3Label=feeds cs3=listed"), "{cef}");
    // blocked queries on tcp-json only, the client as its pseudonym
    let q: Vec<serde_json::Value> = plain
        .iter()
        .map(|l| msg(l))
        .filter(|m| m.contains("\"type\":\"query\""))
        .map(|m| serde_json::from_str(m).unwrap())
        .collect();
    let names: BTreeSet<&str> = q.iter().map(|v| v["qname"].as_str().unwrap()).collect();
    assert!(
        names.is_superset(
            &(1..=10)
                .map(|i| format!("bad{i}.test"))
                .collect::<BTreeSet<_>>()
                .iter()
                .map(String::as_str)
                .collect()
        ),
        "{names:?}"
    );
    for v in &q {
        assert_eq!(v["action"], "blocked");
        assert_eq!(
            v["client"].as_str().unwrap().len(),
            16,
            "a 64-bit pseudonym"
        );
    }
    assert!(
        !tls.iter().any(|l| l.contains("\"type\":\"query\"")),
        "only the destination that asks for queries gets them"
    );
}

/// One HTTP request as received: path, headers (lower-cased names), body.
type Request = (String, Vec<(String, String)>, Vec<u8>);

/// An HTTP/1.1 server recording every request; it answers 503 to the
/// first request to the HEC collector path, 200 to every other.
fn http_receiver() -> (SocketAddr, Arc<Mutex<Vec<Request>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let got2 = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let Some((line, headers, body)) = read_http_request(&mut reader) else {
                continue;
            };
            let path = line.split(' ').nth(1).unwrap_or("").to_string();
            let first_hec = {
                let mut g = got2.lock().unwrap();
                let hec = |p: &str| p.starts_with("/services/collector");
                let first = hec(&path) && !g.iter().any(|r: &Request| hec(&r.0));
                g.push((path, headers, body));
                first
            };
            let status = if first_hec {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (addr, got)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn http_gets_splunk_hec_batches_webhooks_their_templates_and_a_file_rotates() {
    let (addr, got) = http_receiver();
    let body = format!(
        "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
         [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
         [store]\nflush_interval_ms = 100\n\
         [[exports]]\nkind = \"http\"\naddress = \"http://{addr}/services/collector/event\"\nformat = \"splunk-hec\"\nwhat = [\"alerts\"]\n\
         headers = {{ Authorization = \"Splunk 0000-test-token\" }}\n\
         [[exports]]\nkind = \"file\"\npath = \"siem/parapet.jsonl\"\nwhat = [\"alerts\", \"queries\"]\nrotate_mb = 1\nkeep = 2\n\
         [[notify.routes]]\ntenant = \"*\"\nwebhook = \"http://{addr}/hook/hec\"\ntemplate = \"splunk-hec\"\nheaders = {{ Authorization = \"Splunk hook-token\" }}\n\
         [[notify.routes]]\ntenant = \"*\"\nwebhook = \"http://{addr}/hook/teams\"\ntemplate = \"teams\"\n\
         [[notify.routes]]\ntenant = \"*\"\nwebhook = \"http://{addr}/hook/slack\"\ntemplate = \"slack\"\n",
    );
    let p = Parapet::start("", &body, &[("listed.txt", &feed_file(3))]);
    raise(&p, 1..=3);

    let requests = |prefix: &str| -> Vec<Request> {
        got.lock()
            .unwrap()
            .iter()
            .filter(|r| r.0.starts_with(prefix))
            .cloned()
            .collect()
    };
    let hec_events = || -> Vec<serde_json::Value> {
        requests("/services/collector/event")
            .iter()
            .filter(|r| header(&r.1, "authorization") == Some("Splunk 0000-test-token"))
            .flat_map(|r| {
                serde_json::Deserializer::from_slice(&r.2)
                    .into_iter::<serde_json::Value>()
                    .map(Result::unwrap)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    wait_for("three alerts as HEC events", || {
        hec_events()
            .iter()
            .filter(|e| e["event"]["type"] == "alert")
            .map(|e| e["event"]["domain"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
            == wanted(1..=3)
    });
    for e in hec_events() {
        assert_eq!(e["source"], "parapet");
        assert_eq!(e["sourcetype"], "parapet:alert");
        assert!(e["time"].as_f64().unwrap() > 1.0e9, "{e}");
        assert!(e["host"].is_string());
        assert_eq!(e["event"]["tenant"], "council-a");
    }
    for r in requests("/services/collector/event") {
        assert_eq!(
            header(&r.1, "authorization"),
            Some("Splunk 0000-test-token")
        );
    }

    // the webhook templates, each to its own path
    wait_for("the three webhook templates", || {
        ["/hook/hec", "/hook/teams", "/hook/slack"]
            .iter()
            .all(|p| requests(p).len() >= 3)
    });
    for r in requests("/hook/hec") {
        assert_eq!(header(&r.1, "authorization"), Some("Splunk hook-token"));
        let v: serde_json::Value = serde_json::from_slice(&r.2).unwrap();
        assert_eq!(v["sourcetype"], "parapet:alert");
        assert_eq!(v["event"]["rule"], "feed.block");
    }
    for r in requests("/hook/teams") {
        let v: serde_json::Value = serde_json::from_slice(&r.2).unwrap();
        assert_eq!(v["type"], "message");
        let card = &v["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        let text = card["content"]["body"][0]["text"].as_str().unwrap();
        assert!(text.contains(" alert for council-a"), "{text}");
    }
    for r in requests("/hook/slack") {
        let v: serde_json::Value = serde_json::from_slice(&r.2).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(text.contains(" alert for council-a: bad"), "{text}");
    }

    // the file: every query as a JSON line, rotated past 1 MiB, 0600
    let mut c = p.client().from("127.0.0.2");
    c = c.timeout(std::time::Duration::from_secs(2));
    for i in 0..6000 {
        c.query(&format!("q{i}.bad1.test."), RecordType::A);
    }
    let file = p.path("siem/parapet.jsonl");
    let rotated = p.path("siem/parapet.jsonl.1");
    let names_in = |path: &Path| -> BTreeSet<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["type"] == "query")
            .map(|v| v["qname"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for("every query in the export files", || {
        let mut all = names_in(&file);
        all.extend(names_in(&rotated));
        all.extend(names_in(&p.path("siem/parapet.jsonl.2")));
        (0..6000).all(|i| all.contains(&format!("q{i}.bad1.test")))
    });
    assert!(rotated.exists(), "rotated at 1 MiB");
    for f in [&file, &rotated] {
        let meta = std::fs::metadata(f).unwrap();
        assert!(
            meta.len() <= 1 << 20,
            "{} is {} bytes",
            f.display(),
            meta.len()
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert!(!p.path("siem/parapet.jsonl.3").exists(), "keep = 2");
    assert!(
        p.metric("parapet_export_failures_total{destination=\"http:") >= 1.0,
        "the 503 was counted"
    );
}

/// Metric names a PromQL expression uses: identifiers starting with
/// `parapet_` or `process_`.
fn names_in_expr(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let start_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if start_ok && (expr[i..].starts_with("parapet_") || expr[i..].starts_with("process_")) {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(b.len(), |n| i + n);
            out.push(expr[i..end].to_string());
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if (k == "expr" || k == "query") && v.is_string() {
                    out.push(v.as_str().unwrap().to_string());
                } else {
                    exprs(v, out);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[test]
fn metrics_pass_promtool_and_the_dashboard_names_only_live_metrics() {
    let nsd = crate::harness::shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
         [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
         [store]\nflush_interval_ms = 100\n\
         [[exports]]\nkind = \"file\"\npath = \"alerts.jsonl\"\n\
         [[notify.routes]]\ntenant = \"*\"\nwebhook = \"http://127.0.0.1:9/hook?token=secret\"\n",
        &[("listed.txt", "bad1.test\n")],
    );
    raise(&p, 1..=1);
    p.client()
        .from("127.0.0.2")
        .query("ns1.test.", RecordType::A);
    wait_for("the alert counted", || {
        p.metric("parapet_alerts{tenant=\"council-a\",rule=\"feed.block\",status=\"new\"}") == 1.0
    });
    let text = p.metrics();
    for name in [
        "parapet_build_info{version=\"",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "parapet_event_queue_depth ",
        "parapet_storage_batch_duration_seconds_bucket{le=\"+Inf\"} ",
        "parapet_spool_bytes ",
        "parapet_export_failures_total{destination=\"file:alerts.jsonl\"} ",
        "parapet_notification_failures_total{destination=\"webhook:127.0.0.1:9\"} ",
    ] {
        assert!(
            text.contains(&format!("\n{name}")),
            "{name} missing:\n{text}"
        );
    }
    assert!(!text.contains("secret"), "no URL token in a label");
    assert!(!text.contains("bad1.test"), "no query name in a label");
    assert!(!text.contains("127.0.0.2"), "no client in a label");

    // promtool: the exposition parses and lints clean
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // the dashboard: every metric its queries use is served
    let live: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.strip_prefix("# TYPE ").unwrap_or(l);
            if l.starts_with('#') {
                return None;
            }
            l.split(['{', ' ']).next().map(str::to_string)
        })
        .collect();
    let dash: serde_json::Value = serde_json::from_slice(
        &std::fs::read(repo_root().join("etc/grafana/parapet.json")).unwrap(),
    )
    .unwrap();
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter()
            .any(|v| v["type"] == "datasource" && v["query"] == "prometheus"),
        "the Prometheus datasource is a variable"
    );
    let mut all = Vec::new();
    exprs(&dash["panels"], &mut all);
    assert!(all.len() >= 6, "{all:?}");
    let mut used = BTreeSet::new();
    for e in &all {
        used.extend(names_in_expr(e));
    }
    let missing: Vec<&String> = used.iter().filter(|n| !live.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics /metrics lacks: {missing:?}"
    );
    for family in [
        "parapet_dns_queries_total",
        "parapet_dns_cache_hits_total",
        "parapet_dns_upstream_duration_seconds_bucket",
        "parapet_feed_healthy",
        "parapet_alerts",
    ] {
        assert!(used.contains(family), "the dashboard shows {family}");
    }
}

/// Two nodes on one PostgreSQL, both configured with the same file
/// export: one node delivers it (the `export <name>` lease), so each
/// alert and blocked query of either node is in the file once.
#[test]
fn on_a_shared_database_one_node_exports_each_record_once() {
    let url = parapet_store::pgtest::fresh_database();
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("siem.jsonl");
    let node = |name: &str| {
        Parapet::start(
            "",
            &format!(
                "[node]\nname = \"{name}\"\n[store]\nurl = \"{url}\"\nflush_interval_ms = 100\n\
                 [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
                 [[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
                 [[exports]]\nname = \"shared\"\nkind = \"file\"\npath = \"{}\"\nwhat = [\"alerts\", \"blocked\"]\n",
                file.display()
            ),
            &[("listed.txt", &feed_file(6))],
        )
    };
    let a = node("node-a");
    let b = node("node-b");
    raise(&a, 1..=3);
    raise(&b, 4..=6);
    let records = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let of = |kind: &str, field: &str| -> Vec<String> {
        let mut v: Vec<String> = records()
            .iter()
            .filter(|r| r["type"] == kind)
            .map(|r| r[field].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let want: Vec<String> = wanted(1..=6).into_iter().collect();
    wait_for("both nodes' alerts and queries in the file", || {
        of("alert", "domain") == want && of("query", "qname") == want
    });
    let nodes: BTreeSet<String> = records()
        .iter()
        .filter(|r| r["type"] == "query")
        .map(|r| r["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes, ["node-a".to_string(), "node-b".to_string()].into());
}
