//! RPZ feeds by zone transfer against real primaries on loopback: Knot
//! (IXFR from zone differences, TSIG, NOTIFY) and NSD (AXFR, NOTIFY).

use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Client, Parapet, Peer, free_port, http_get_bearer, shared_nsd, wait_for_dns};

const ZONE: &str = "rpz.vendor.test";
const SECRET: &str = "cGFyYXBldC14ZnItdGVzdC1zZWNyZXQtMDEyMzQ1Ng==";
const OTHER_SECRET: &str = "c29tZS1vdGhlci1zZWNyZXQtZW50aXJlbHktOTg3Ng==";

/// The policy zone at `serial` blocking `names`. Refresh is an hour, so
/// only a NOTIFY makes Parapet look again within a test.
fn zone_text(serial: u32, names: &[&str]) -> String {
    let mut z = format!(
        "$ORIGIN {ZONE}.\n$TTL 60\n@ SOA ns.vendor.test. hostmaster.vendor.test. {serial} 3600 1 86400 60\n\
         @ NS ns.vendor.test.\n"
    );
    for n in names {
        z.push_str(&format!("{n} CNAME .\n"));
    }
    z
}

/// Knot serving the policy zone with TSIG (key `vendor`, `secret`) and
/// sending NOTIFY to `notify_port`.
fn start_knot(secret: &str, notify_port: u16, zone: &str) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    for sub in ["zones", "db", "run"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    std::fs::write(dir.path().join(format!("zones/{ZONE}.zone")), zone).unwrap();
    let conf = format!(
        "server:\n    rundir: \"{d}/run\"\n    listen: 127.0.0.1@{port}\n    user: root:root\n\
         log:\n  - target: {d}/knot.log\n    any: info\n\
         database:\n    storage: \"{d}/db\"\n\
         key:\n  - id: vendor\n    algorithm: hmac-sha256\n    secret: {secret}\n\
         remote:\n  - id: parapet\n    address: 127.0.0.1@{notify_port}\n    key: vendor\n\
         acl:\n  - id: xfr\n    address: 127.0.0.1\n    key: vendor\n    action: transfer\n\
         template:\n  - id: default\n    storage: \"{d}/zones\"\n    zonefile-sync: -1\n    \
         zonefile-load: difference\n    journal-content: changes\n    semantic-checks: off\n\
         zone:\n  - domain: {ZONE}\n    file: \"{ZONE}.zone\"\n    acl: xfr\n    notify: parapet\n"
    );
    let conf_path = dir.path().join("knot.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let peer = Peer::spawn("knotd", &["-c", conf_path.to_str().unwrap()], dir, addr);
    wait_for_dns(addr, "Knot");
    peer
}

/// Replaces Knot's zone file and has it reload (IXFR from the difference,
/// and a NOTIFY).
fn knot_update(knot: &Peer, zone: &str) {
    std::fs::write(knot.dir().join(format!("zones/{ZONE}.zone")), zone).unwrap();
    let conf = knot.dir().join("knot.conf");
    let ok = Command::new("knotc")
        .args(["-c", conf.to_str().unwrap(), "zone-reload", ZONE])
        .status()
        .unwrap()
        .success();
    assert!(ok, "knotc zone-reload failed");
}

/// NSD serving the policy zone by AXFR without a key, sending NOTIFY to
/// `notify_port`.
fn start_nsd_primary(notify_port: u16, zone: &str) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    std::fs::write(dir.path().join(format!("{ZONE}.zone")), zone).unwrap();
    let conf = format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  server-count: 1\n  username: \"\"\n  \
         zonesdir: \"{d}\"\n  database: \"\"\n  zonelistfile: \"{d}/nsd.zonelist\"\n  xfrdfile: \"{d}/nsd.xfrd\"\n  \
         pidfile: \"{d}/nsd.pid\"\n  logfile: \"{d}/nsd.log\"\n  verbosity: 1\n  rrl-ratelimit: 0\n  \
         rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: no\n\
         zone:\n  name: \"{ZONE}\"\n  zonefile: \"{ZONE}.zone\"\n  provide-xfr: 127.0.0.1 NOKEY\n  \
         notify: 127.0.0.1@{notify_port} NOKEY\n"
    );
    let conf_path = dir.path().join("nsd.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let peer = Peer::spawn("nsd", &["-d", "-c", conf_path.to_str().unwrap()], dir, addr);
    wait_for_dns(addr, "NSD");
    peer
}

/// Replaces NSD's zone file and has it reload (and NOTIFY).
fn nsd_update(nsd: &Peer, zone: &str) {
    std::fs::write(nsd.dir().join(format!("{ZONE}.zone")), zone).unwrap();
    let pid = std::fs::read_to_string(nsd.dir().join("nsd.pid")).unwrap();
    let ok = Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -HUP nsd failed");
}

/// Parapet with the feed `vendor` from `primary`, also listening on
/// `notify_port` (where the primary sends NOTIFY), forwarding other names
/// to the shared NSD (which refuses them: not NXDOMAIN).
fn start_parapet(primary: SocketAddr, notify_port: u16, tsig: Option<&str>) -> Parapet {
    let key = match tsig {
        Some(secret) => format!(
            "tsig_key = \"vendor\"\n\n[[tsig]]\nname = \"vendor\"\nalgorithm = \"hmac-sha256\"\nsecret = \"{secret}\"\n"
        ),
        None => String::new(),
    };
    Parapet::start_on(
        &[format!("127.0.0.1:{notify_port}")],
        &format!("upstreams = [\"{}\"]", shared_nsd()),
        &format!(
            "[[tenants]]\nname = \"council\"\nnetworks = [\"127.0.0.0/8\"]\n\n\
             [[feeds]]\nname = \"vendor\"\nformat = \"rpz\"\nprimary = \"{primary}\"\nzone = \"{ZONE}\"\n{key}"
        ),
        &[],
    )
}

fn blocked(p: &Parapet, name: &str) -> bool {
    p.client()
        .query(name, RecordType::A)
        .is_some_and(|a| a.rcode == ResponseCode::NXDomain)
}

/// Polls `check` for up to 30 s (transfers are quick; the bound is for
/// loaded CI machines).
fn eventually(p: &Parapet, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within 30 s; log:\n{}", p.log());
}

/// `text` without ANSI colour sequences (the log colours field names).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An API token of a new supplier account.
fn api_token(p: &Parapet) -> String {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
            .args(args)
            .arg("--config")
            .arg(&p.config)
            .env("PARAPET_PASSWORD", "xfr-test-password-1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["users", "add", "ops", "--role", "supplier-analyst"]);
    run(&["users", "token", "ops"]).trim().to_string()
}

/// `parapet feeds status`: whether it exited 0 (every feed healthy), and
/// what it printed.
fn feeds_status(p: &Parapet) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["feeds", "status", "--config"])
        .arg(&p.config)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), String::from_utf8(out.stdout).unwrap())
}

/// A NOTIFY message for `zone`, ID 0xabcd.
fn notify_message(zone: &str) -> Vec<u8> {
    let mut m = vec![0xab, 0xcd, 4 << 3, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in zone.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 6, 0, 1]);
    m
}

/// A NOTIFY for `zone` from `source`, over UDP (or TCP); returns the raw
/// answer after checking its form.
fn send_notify(to: SocketAddr, source: &str, zone: &str, tcp: bool) -> Vec<u8> {
    let m = notify_message(zone);
    let answer = if tcp {
        Client::new(to)
            .tcp()
            .exchange(&m, 0xabcd)
            .expect("an answer to the NOTIFY")
    } else {
        let sock = UdpSocket::bind((source, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        sock.send_to(&m, to).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = sock.recv_from(&mut buf).expect("an answer to the NOTIFY");
        buf[..n].to_vec()
    };
    assert_eq!(&answer[..2], &m[..2]);
    assert_eq!(answer[2] & 0x80, 0x80, "QR");
    assert_eq!((answer[2] >> 3) & 0xf, 4, "opcode NOTIFY");
    assert_eq!(&answer[12..], &m[12..], "question echoed");
    answer
}

#[test]
fn knot_axfr_then_ixfr_on_notify_with_tsig() {
    let notify_port = free_port();
    let knot = start_knot(SECRET, notify_port, &zone_text(1, &["evil-one.example"]));
    let p = start_parapet(knot.addr, notify_port, Some(SECRET));
    eventually(&p, "the AXFR blocks evil-one", || {
        blocked(&p, "evil-one.example.")
    });
    assert!(!blocked(&p, "evil-two.example."));

    knot_update(
        &knot,
        &zone_text(2, &["evil-two.example", "*.evil-three.example"]),
    );
    eventually(&p, "the IXFR after the NOTIFY blocks evil-two", || {
        blocked(&p, "evil-two.example.")
    });
    assert!(blocked(&p, "www.evil-three.example."));
    assert!(!blocked(&p, "evil-one.example."), "removed by the IXFR");
    let log = plain(&p.log());
    // the change came as an IXFR delta, not a full zone
    assert!(log.contains("added=2 removed=1"), "{log}");
    assert!(!log.contains("trying AXFR"), "{log}");
    assert!(
        log.contains("new policy in force after the NOTIFY"),
        "{log}"
    );
    assert_eq!(p.metric("parapet_feed_serial{feed=\"vendor\"}"), 2.0);
    assert_eq!(p.metric("parapet_feed_entries{feed=\"vendor\""), 2.0);
    eventually(&p, "feeds status shows serial 2", || {
        let (healthy, s) = feeds_status(&p);
        healthy
            && s.contains("serial 2")
            && s.contains("entries 2")
            && s.contains("last error none")
    });
    // the copy on disk is RPZ text with the new serial
    let copy = std::fs::read_to_string(p.path("parapet-data/feeds/vendor.rpz")).unwrap();
    assert!(
        copy.contains("evil-two.example.rpz.vendor.test. 60 IN CNAME ."),
        "{copy}"
    );

    // the dashboard's tenants view shows the feed's serial and entries
    let token = api_token(&p);
    let (status, body) = http_get_bearer(p.web, "/api/v1/tenants", &token);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let feed = &v["tenants"][0]["feeds"][0];
    assert_eq!(feed["name"], "vendor", "{body}");
    assert_eq!(feed["serial"], 2, "{body}");
    assert_eq!(feed["entries"], 2, "{body}");
    assert!(
        feed["last_transfer"].is_string() && feed["last_error"].is_null(),
        "{body}"
    );

    // a restart continues by IXFR from the saved serial
    let mut p = p;
    p.kill9();
    knot_update(
        &knot,
        &zone_text(
            3,
            &[
                "evil-two.example",
                "*.evil-three.example",
                "evil-four.example",
            ],
        ),
    );
    p.restart();
    eventually(&p, "the IXFR after the restart blocks evil-four", || {
        blocked(&p, "evil-four.example.")
    });
    let log = plain(&p.log());
    assert!(log.contains("serial=3 added=1 removed=0"), "{log}");
    assert!(!log.contains("trying AXFR"), "{log}");
}

#[test]
fn knot_with_a_wrong_tsig_key_is_refused_and_reported() {
    let notify_port = free_port();
    let knot = start_knot(SECRET, notify_port, &zone_text(1, &["evil-one.example"]));
    let p = start_parapet(knot.addr, notify_port, Some(OTHER_SECRET));
    eventually(&p, "the failure is logged", || {
        p.log().contains("zone transfer failed")
    });
    let log = p.log();
    let primary = knot.addr.to_string();
    assert!(
        log.contains("feed `vendor`") && log.contains(&primary) && log.contains("TSIG"),
        "{log}"
    );
    assert!(!blocked(&p, "evil-one.example."));
    assert_eq!(p.metric("parapet_feed_healthy{feed=\"vendor\"}"), 0.0);
    eventually(&p, "feeds status shows the error", || {
        let (healthy, s) = feeds_status(&p);
        !healthy && s.contains(&format!("primary {primary}"))
    });
}

#[test]
fn a_restart_with_the_primary_down_uses_the_copy_on_disk() {
    let notify_port = free_port();
    let knot = start_knot(SECRET, notify_port, &zone_text(7, &["evil-one.example"]));
    let mut p = start_parapet(knot.addr, notify_port, Some(SECRET));
    eventually(&p, "the AXFR blocks evil-one", || {
        blocked(&p, "evil-one.example.")
    });
    eventually(&p, "the copy is saved", || {
        feeds_status(&p).1.contains("serial 7")
    });
    p.kill9();
    drop(knot);
    p.restart();
    assert!(blocked(&p, "evil-one.example."), "{}", p.log());
    assert!(p.log().contains("loaded the last good copy"));
    eventually(&p, "the down primary is reported", || {
        p.log().matches("zone transfer failed").count() >= 1
    });
    assert!(blocked(&p, "evil-one.example."));
}

#[test]
fn nsd_axfr_refuses_a_serial_going_backwards_and_strangers_notify() {
    let notify_port = free_port();
    let nsd = start_nsd_primary(notify_port, &zone_text(5, &["evil-one.example"]));
    let p = start_parapet(nsd.addr, notify_port, None);
    eventually(&p, "the AXFR blocks evil-one", || {
        blocked(&p, "evil-one.example.")
    });

    // a NOTIFY from an address that is not the primary's, or for another zone
    let a = send_notify(p.dns, "127.0.0.2", ZONE, false);
    assert_eq!(a[3] & 0xf, 5, "REFUSED from a stranger");
    let a = send_notify(p.dns, "127.0.0.1", "other.test", false);
    assert_eq!(a[3] & 0xf, 5, "REFUSED for a zone not configured");

    // a newer serial by NOTIFY (NSD answers the IXFR with the whole zone)
    nsd_update(
        &nsd,
        &zone_text(6, &["evil-one.example", "evil-two.example"]),
    );
    eventually(&p, "the NOTIFY brings evil-two", || {
        blocked(&p, "evil-two.example.")
    });

    // then an older one: refused, the last good copy stays
    nsd_update(&nsd, &zone_text(4, &["evil-three.example"]));
    eventually(&p, "the older serial is refused", || {
        p.log().contains("older than ours")
    });
    assert!(!blocked(&p, "evil-three.example."));
    assert!(blocked(&p, "evil-one.example.") && blocked(&p, "evil-two.example."));
    assert_eq!(p.metric("parapet_feed_serial{feed=\"vendor\"}"), 6.0);

    // a NOTIFY from the primary's address is answered, over TCP too
    for tcp in [false, true] {
        let a = send_notify(p.dns, "127.0.0.1", ZONE, tcp);
        assert_eq!(a[3] & 0xf, 0, "NOERROR from the primary");
        assert_eq!(a[2] & 0x04, 0x04, "AA");
    }
}
