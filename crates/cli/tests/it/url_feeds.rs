//! Feeds fetched from URLs (issue 24, part 1): a real HTTP(S) server on
//! loopback serves feed files that the tests change, fail, slow down,
//! compress and redirect, and `parapet serve` fetches them on a schedule.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, shared_nsd, wait_for};

/// How the server answers one path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with the body, ETag and Last-Modified; 304 when the request's
    /// validators match.
    File(Vec<u8>),
    /// As `File`, the body sent with `Content-Encoding: gzip`.
    GzipEncoded(Vec<u8>),
    Status(u16),
    /// Reads the request and never answers.
    Hang,
    /// 302 to this location.
    Redirect(String),
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub status: u16,
}

#[derive(Default)]
struct State {
    replies: HashMap<String, (Reply, u64)>,
    seen: Vec<Seen>,
}

/// A small real HTTP/1.1 server on a loopback port (TLS with `tls`).
pub struct FeedServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    tls: bool,
}

impl FeedServer {
    pub fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let is_tls = tls.is_some();
        {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (state, stop, tls) = (state.clone(), stop.clone(), tls.clone());
                    std::thread::spawn(move || serve_one(conn, tls, &state, &stop));
                }
            });
        }
        Self {
            addr,
            state,
            stop,
            tls: is_tls,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Sets the reply for `path`; a new file gets a new ETag.
    pub fn set(&self, path: &str, reply: Reply) {
        let mut s = self.state.lock().unwrap();
        let version = s.replies.get(path).map_or(1, |(_, v)| v + 1);
        s.replies.insert(path.to_string(), (reply, version));
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        let s = self.state.lock().unwrap();
        s.seen.iter().filter(|r| r.path == path).cloned().collect()
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the accept loop so that it sees `stop` and closes the port
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve_one(
    conn: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: &Mutex<State>,
    stop: &AtomicBool,
) {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    match tls {
        Some(cfg) => {
            let Ok(server) = rustls::ServerConnection::new(cfg) else {
                return;
            };
            answer(rustls::StreamOwned::new(server, conn), state, stop);
        }
        None => answer(conn, state, stop),
    }
}

fn answer<S: Read + Write>(stream: S, state: &Mutex<State>, stop: &AtomicBool) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let reply = state.lock().unwrap().replies.get(&path).cloned();
    let (status, extra, body): (u16, String, Vec<u8>) = match reply {
        None => (404, String::new(), Vec::new()),
        Some((Reply::Status(s), _)) => (s, String::new(), b"failed\n".to_vec()),
        Some((Reply::Redirect(to), _)) => (302, format!("Location: {to}\r\n"), Vec::new()),
        Some((Reply::Hang, _)) => {
            record(state, &path, &headers, 0);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        Some((Reply::File(_) | Reply::GzipEncoded(_), v))
            if headers.get("if-none-match") == Some(&etag(v)) =>
        {
            (304, format!("ETag: {}\r\n", etag(v)), Vec::new())
        }
        Some((Reply::File(body), v)) => (200, validators(v), body),
        Some((Reply::GzipEncoded(body), v)) => (
            200,
            format!("{}Content-Encoding: gzip\r\n", validators(v)),
            gzip(&body),
        ),
    };
    record(state, &path, &headers, status);
    let mut out = reader.into_inner();
    let head = format!(
        "HTTP/1.1 {status} X\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&body);
    let _ = out.flush();
}

fn etag(version: u64) -> String {
    format!("\"v{version}\"")
}

fn validators(version: u64) -> String {
    format!(
        "ETag: {}\r\nLast-Modified: Sat, 05 Dec 2026 06:00:{:02} GMT\r\n",
        etag(version),
        version % 60
    )
}

fn record(state: &Mutex<State>, path: &str, headers: &HashMap<String, String>, status: u16) {
    state.lock().unwrap().seen.push(Seen {
        path: path.to_string(),
        if_none_match: headers.get("if-none-match").cloned(),
        if_modified_since: headers.get("if-modified-since").cloned(),
        status,
    });
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn rcode(p: &Parapet, name: &str) -> ResponseCode {
    p.client()
        .query(name, RecordType::A)
        .expect("an answer")
        .rcode
}

/// A `[[feeds]]` entry for a URL feed fetched every second.
fn url_feed(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[feeds]]\nname = \"{name}\"\nurl = \"{url}\"\nformat = \"domains\"\nrefresh_seconds = 1\n{extra}\n"
    )
}

fn start(feeds: &str) -> Parapet {
    Parapet::start(&format!("upstreams = [\"{}\"]", shared_nsd()), feeds, &[])
}

/// `parapet feeds status` for `p`'s config: (exit code, stdout).
fn feeds_status(p: &Parapet) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["feeds", "status", "--config"])
        .arg(&p.config)
        .env_remove("PARAPET_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Fetches of `feed` so far, failed ones included.
fn fetches(p: &Parapet, feed: &str) -> f64 {
    p.metric(&format!("parapet_feed_fetches_total{{feed=\"{feed}\""))
}

fn failures(p: &Parapet, feed: &str) -> f64 {
    p.metric(&format!(
        "parapet_feed_fetch_failures_total{{feed=\"{feed}\""
    ))
}

/// Waits until `feed` fails once more than `before` and returns the log.
fn wait_failure(p: &Parapet, feed: &str, before: f64) {
    wait_for(&format!("a failed fetch of {feed}"), || {
        failures(p, feed) > before
    });
}

#[test]
fn a_url_feed_follows_changes_and_keeps_its_last_good_version() {
    let server = FeedServer::start(None);
    server.set("/list.txt", Reply::File(b"evil.load.zone.test\n".to_vec()));
    let mut p = start(&url_feed(
        "vendor",
        &server.url("/list.txt"),
        "read_timeout_seconds = 1",
    ));
    wait_for("the first fetch in force", || {
        rcode(&p, "evil.load.zone.test.") == ResponseCode::NXDomain
    });
    assert_eq!(rcode(&p, "www.zone.test."), ResponseCode::NoError);

    // unchanged: a conditional GET answered 304, and no reload
    let reloads = p.metric("parapet_policy_reloads_total");
    wait_for("two 304s", || {
        server
            .seen("/list.txt")
            .iter()
            .filter(|r| r.status == 304)
            .count()
            >= 2
    });
    let first = &server.seen("/list.txt")[1];
    assert_eq!(first.if_none_match.as_deref(), Some("\"v1\""), "{first:?}");
    assert!(first.if_modified_since.is_some(), "{first:?}");
    let seen = fetches(&p, "vendor");
    wait_for("the fetch after the 304s", || fetches(&p, "vendor") > seen);
    assert_eq!(p.metric("parapet_policy_reloads_total"), reloads);

    // a change is in force within a refresh (and the watch interval)
    let changed_at = Instant::now();
    server.set(
        "/list.txt",
        Reply::File(b"evil.load.zone.test\nnew.load.zone.test\n".to_vec()),
    );
    wait_for("the new version in force", || {
        rcode(&p, "new.load.zone.test.") == ResponseCode::NXDomain
    });
    eprintln!(
        "url feed change in force after {} ms (refresh 1 s)",
        changed_at.elapsed().as_millis()
    );
    assert_eq!(p.metric("parapet_feed_entries{feed=\"vendor\""), 2.0);

    // a 500, a timeout and a body that does not parse each keep it in force
    let copy = p.path("parapet-data/feeds/vendor");
    let good = std::fs::read(&copy).unwrap();
    for (reply, says) in [
        (Reply::Status(500), "HTTP status 500"),
        (Reply::Hang, "timed out"),
        (
            Reply::File(b"fine.load.zone.test\nnot a domain\n".to_vec()),
            "not a valid domains feed",
        ),
    ] {
        server.set("/list.txt", reply);
        // a fetch already under way may still end the previous way
        let mut text = String::new();
        wait_for(&format!("a fetch failing with {says}"), || {
            let (code, t) = feeds_status(&p);
            text = t;
            code == Some(1) && text.contains(&format!("{}: {says}", server.url("/list.txt")))
        });
        wait_for("the failure in metrics", || {
            p.metric("parapet_feed_fetch_healthy{feed=\"vendor\"") == 0.0
        });
        assert_eq!(rcode(&p, "new.load.zone.test."), ResponseCode::NXDomain);
        assert_eq!(rcode(&p, "fine.load.zone.test."), ResponseCode::NoError);
        assert_eq!(std::fs::read(&copy).unwrap(), good, "the copy is kept");
        assert!(text.contains("entries 2"), "{text}");
    }
    assert!(
        p.log().contains("the last good version stays in force"),
        "{}",
        p.log()
    );
    // a failed fetch is an alert for the supplier
    let db = rusqlite::Connection::open(p.path("parapet-data/parapet.sqlite")).unwrap();
    wait_for("the feed.fetch_failed alert", || {
        db.query_row(
            "SELECT COUNT(*) FROM alerts WHERE rule = 'feed.fetch_failed' AND domain = 'vendor'
             AND tenant = 'supplier' AND evidence LIKE '%HTTP status 500%'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    });

    // fixed again: healthy
    server.set("/list.txt", Reply::File(b"evil.load.zone.test\n".to_vec()));
    wait_for("the fixed feed", || {
        rcode(&p, "new.load.zone.test.") == ResponseCode::NoError
    });
    wait_for("a healthy fetch", || {
        p.metric("parapet_feed_fetch_healthy{feed=\"vendor\"") == 1.0
    });
    let (code, text) = feeds_status(&p);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("last error: none"), "{text}");

    // a restart with the vendor down still protects, from the copy on disk
    p.kill9();
    drop(server);
    p.restart();
    assert_eq!(rcode(&p, "evil.load.zone.test."), ResponseCode::NXDomain);
    wait_failure(&p, "vendor", 0.0);
    assert_eq!(rcode(&p, "evil.load.zone.test."), ResponseCode::NXDomain);
}

#[test]
fn url_feeds_take_gzip_enforce_their_limits_and_follow_the_config() {
    let server = FeedServer::start(None);
    server.set("/a.txt.gz", Reply::File(gzip(b"a.load.zone.test\n")));
    server.set("/b.txt", Reply::GzipEncoded(b"b.load.zone.test\n".to_vec()));
    // five redirects are followed, a sixth is one too many
    for i in 1..=6 {
        server.set(&format!("/r{i}"), Reply::Redirect(format!("/r{}", i - 1)));
    }
    server.set("/r0", Reply::File(b"c.load.zone.test\n".to_vec()));
    server.set("/big.txt", Reply::File(b"big.load.zone.test\n".repeat(100)));
    let mut bomb = b"bomb.load.zone.test\n".repeat(1000);
    bomb.extend_from_slice(b"x.load.zone.test\n");
    server.set("/bomb.gz", Reply::File(gzip(&bomb)));
    let feeds = [
        url_feed("a", &server.url("/a.txt.gz"), ""),
        url_feed("b", &server.url("/b.txt"), ""),
        url_feed("c", &server.url("/r5"), ""),
        url_feed("d", &server.url("/r6"), ""),
        url_feed("e", &server.url("/big.txt"), "max_bytes = 1000"),
        url_feed("f", &server.url("/bomb.gz"), "max_bytes = 10000"),
    ]
    .concat();
    let p = start(&feeds);
    for name in ["a", "b", "c"] {
        wait_for(&format!("feed {name}"), || {
            rcode(&p, &format!("{name}.load.zone.test.")) == ResponseCode::NXDomain
        });
    }
    for f in ["d", "e", "f"] {
        wait_failure(&p, f, 0.0);
    }
    let (code, text) = feeds_status(&p);
    assert_eq!(code, Some(1), "{text}");
    for says in [
        "/r1: more than 5 redirects",
        "/big.txt: the body is over the 1000 byte limit",
        "/bomb.gz: the body is over the 10000 byte limit once decompressed",
    ] {
        assert!(text.contains(says), "{says}: {text}");
    }
    assert_eq!(rcode(&p, "bomb.load.zone.test."), ResponseCode::NoError);
    assert_eq!(rcode(&p, "big.load.zone.test."), ResponseCode::NoError);
    // the log names the feed and the URL
    assert!(
        p.log().contains(&format!(
            "feed `d`: {}: more than 5 redirects",
            server.url("/r1")
        )),
        "{}",
        p.log()
    );
    // a URL feed added to the config is fetched from the next SIGHUP on
    server.set("/late.txt", Reply::File(b"late.load.zone.test\n".to_vec()));
    let config = std::fs::read_to_string(&p.config).unwrap();
    let late = url_feed("late", &server.url("/late.txt"), "");
    std::fs::write(&p.config, format!("{config}\n{late}")).unwrap();
    p.sighup();
    wait_for("the feed added by the new config", || {
        rcode(&p, "late.load.zone.test.") == ResponseCode::NXDomain
    });
}

/// A test CA and a server certificate for 127.0.0.1 it issued: the CA's
/// PEM file, and the server's TLS configuration.
fn test_pki(dir: &std::path::Path) -> (std::path::PathBuf, Arc<rustls::ServerConfig>) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Parapet feed test CA");
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("vendor-ca.pem");
    std::fs::write(&ca_path, ca_cert.pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    (ca_path, Arc::new(cfg))
}

#[test]
fn https_url_feeds_trust_their_ca_file_and_never_step_down_to_http() {
    let pki = tempfile::tempdir().unwrap();
    let (ca, tls) = test_pki(pki.path());
    let https = FeedServer::start(Some(tls));
    let http = FeedServer::start(None);
    https.set(
        "/hosts.txt",
        Reply::File(b"0.0.0.0 tls.load.zone.test\n".to_vec()),
    );
    https.set("/down", Reply::Redirect(http.url("/hosts.txt")));
    http.set(
        "/hosts.txt",
        Reply::File(b"0.0.0.0 plain.load.zone.test\n".to_vec()),
    );
    let hosts = |name: &str, path: &str, extra: &str| {
        url_feed(name, &https.url(path), extra).replace("\"domains\"", "\"hosts\"")
    };
    let feeds = [
        hosts(
            "trusted",
            "/hosts.txt",
            &format!("ca_file = \"{}\"", ca.display()),
        ),
        hosts("untrusted", "/hosts.txt", ""),
        hosts(
            "stepdown",
            "/down",
            &format!("ca_file = \"{}\"", ca.display()),
        ),
    ]
    .concat();
    let p = start(&feeds);
    wait_for("the feed fetched over https", || {
        rcode(&p, "tls.load.zone.test.") == ResponseCode::NXDomain
    });
    wait_failure(&p, "untrusted", 0.0);
    wait_failure(&p, "stepdown", 0.0);
    assert_eq!(rcode(&p, "plain.load.zone.test."), ResponseCode::NoError);
    assert!(
        http.seen("/hosts.txt").is_empty(),
        "never fetched over http"
    );
    let (_, text) = feeds_status(&p);
    assert!(
        text.contains(&format!(
            "{}: refused a redirect from https to {}",
            https.url("/down"),
            http.url("/hosts.txt")
        )),
        "{text}"
    );
    let untrusted = text
        .split("\nuntrusted\t")
        .nth(1)
        .expect("the untrusted feed's status");
    assert!(
        untrusted.contains("UnknownIssuer") || untrusted.contains("certificate"),
        "{text}"
    );
}

/// On a shared PostgreSQL one node fetches (the holder of the feed's
/// lease) and publishes; both nodes serve what it fetched.
#[test]
fn on_a_shared_database_one_node_fetches_for_all() {
    let url = parapet_store::pgtest::fresh_database();
    let server = FeedServer::start(None);
    server.set("/list.txt", Reply::File(b"evil.load.zone.test\n".to_vec()));
    let node = |name: &str| {
        Parapet::start(
            &format!("upstreams = [\"{}\"]", shared_nsd()),
            &format!(
                "[node]\nname = \"{name}\"\n[store]\nurl = \"{url}\"\n{}",
                url_feed("vendor", &server.url("/list.txt"), "")
            ),
            &[],
        )
    };
    let a = node("node-a");
    let b = node("node-b");
    for p in [&a, &b] {
        wait_for("the feed on both nodes", || {
            rcode(p, "evil.load.zone.test.") == ResponseCode::NXDomain
        });
    }
    server.set(
        "/list.txt",
        Reply::File(b"evil.load.zone.test\nnew.load.zone.test\n".to_vec()),
    );
    for p in [&a, &b] {
        wait_for("the new version on both nodes", || {
            rcode(p, "new.load.zone.test.") == ResponseCode::NXDomain
        });
    }
    // a few more refreshes: still only the lease holder fetches
    let seen = server.seen("/list.txt").len();
    wait_for("three more fetches", || {
        server.seen("/list.txt").len() >= seen + 3
    });
    let (fa, fb) = (fetches(&a, "vendor"), fetches(&b, "vendor"));
    assert!(
        (fa > 0.0) != (fb > 0.0),
        "exactly one node fetches: node-a {fa}, node-b {fb}"
    );
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let holder: String = db
        .query_one(
            "SELECT holder FROM leases WHERE job = 'feed-fetch:vendor'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(holder, if fa > 0.0 { "node-a" } else { "node-b" });
    let version: i64 = db
        .query_one("SELECT MAX(version) FROM feeds WHERE name = 'vendor'", &[])
        .unwrap()
        .get(0);
    assert_eq!(version, 2, "each new version published once");
    for p in [&a, &b] {
        assert_eq!(p.metric("parapet_feed_db_version{"), 2.0);
    }
}
