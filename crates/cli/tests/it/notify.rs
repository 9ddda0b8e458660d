//! Alert delivery to real receivers on loopback: a webhook (an HTTP server
//! in this test that fails the first delivery with 500, or is not there at
//! all across a restart) and e-mail through a real SMTP server (aiosmtpd).

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, free_port, read_http_request, shared_nsd, start_smtp};

/// One HTTP request as received: its headers (lower-cased names) and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// An HTTP/1.1 server answering 500 to the first request, 200 after.
fn webhook_receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/parapet", listener.local_addr().unwrap());
    (url, webhook_receiver_on(listener, true))
}

/// An HTTP/1.1 server on `listener` answering 200 (500 to the first
/// request when `fail_first`).
fn webhook_receiver_on(listener: TcpListener, fail_first: bool) -> Arc<Mutex<Vec<Received>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let got2 = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let Some((line, headers, body)) = read_http_request(&mut reader) else {
                continue;
            };
            if !line.starts_with("POST /hooks/parapet ") {
                continue;
            }
            let n = {
                let mut g = got2.lock().unwrap();
                g.push((headers, body));
                g.len()
            };
            let status = if fail_first && n == 1 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    got
}

#[test]
fn alerts_reach_a_webhook_with_retries_and_an_smtp_server() {
    let nsd = shared_nsd();
    let smtp = start_smtp();
    let (url, got) = webhook_receiver();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        &format!(
            "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
             [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
             [store]\nflush_interval_ms = 100\n\
             [notify]\nsmtp_server = \"{}\"\nsmtp_security = \"none\"\nfrom = \"parapet@supplier.test\"\n\
             [[notify.routes]]\ntenant = \"council-a\"\nwebhook = \"{url}\"\nwebhook_secret = \"s3cret\"\n\
             [[notify.routes]]\ntenant = \"*\"\nemail = [\"soc@supplier.test\"]\n",
            smtp.addr
        ),
        &[("listed.txt", "listed.zone.test\n")],
    );
    p.client()
        .from("127.0.0.2")
        .query("listed.zone.test.", RecordType::A)
        .unwrap();

    // the webhook: refused once (500), delivered on the retry, signed
    let deadline = Instant::now() + Duration::from_secs(20);
    while got.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 2, "{}", p.log());
    let (headers, body) = &got[1];
    assert_eq!(&got[0].1, body, "the retry sends the same alert");
    let sig = headers
        .iter()
        .find(|(k, _)| k == "x-parapet-signature")
        .map(|(_, v)| v.clone())
        .expect("signature header");
    assert_eq!(sig, parapet_signature(b"s3cret", body));
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(v["alerts"][0]["rule"], "feed.block");
    assert_eq!(v["alerts"][0]["tenant"], "council-a");
    assert_eq!(v["alerts"][0]["domain"], "zone.test");
    assert!(
        !String::from_utf8_lossy(body).contains("127.0.0.2"),
        "no client address in a notification"
    );

    // the e-mail: one message in the SMTP server's Maildir
    let new = smtp.dir().join("Maildir/new");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mail = loop {
        if let Some(f) = std::fs::read_dir(&new).ok().and_then(|mut d| d.next()) {
            break std::fs::read_to_string(f.unwrap().path()).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no e-mail arrived; log:\n{}",
            p.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(mail.contains("To: soc@supplier.test"), "{mail}");
    assert!(
        mail.contains("Subject: [Parapet] high feed.block alert for council-a: zone.test"),
        "{mail}"
    );
    assert!(
        mail.contains("Evidence:   listed.zone.test A blocked"),
        "{mail}"
    );
    assert!(!mail.contains("127.0.0.2"), "{mail}");
}

/// Waits (up to `secs`) until `done` holds.
fn wait_until(secs: u64, what: &str, p: &Parapet, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "{what}; log:\n{}", p.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The webhook receiver is down when the alert is raised and still down
/// when Parapet restarts: the notification waits in the outbox (not in
/// memory), is retried after the restart, and reaches the receiver once it
/// is back, once.
#[test]
fn a_webhook_down_across_a_restart_gets_the_alert_once_back() {
    let nsd = shared_nsd();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/parapet");
    let mut p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        &format!(
            "[[feeds]]\nname = \"listed\"\npath = \"listed.txt\"\nformat = \"domains\"\n\
             [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
             [store]\nflush_interval_ms = 100\n\
             [[notify.routes]]\ntenant = \"council-a\"\nwebhook = \"{url}\"\n"
        ),
        &[("listed.txt", "listed.zone.test\n")],
    );
    p.client()
        .from("127.0.0.2")
        .query("listed.zone.test.", RecordType::A)
        .unwrap();
    wait_until(20, "no failed delivery attempt", &p, || {
        p.metric("parapet_notification_failures_total") >= 1.0
    });
    assert!(p.log().contains("delivery to webhook"), "{}", p.log());
    assert_eq!(p.terminate().code(), Some(0), "{}", p.log());

    // after the restart the notification is still pending, and failing
    p.restart();
    wait_until(20, "the restarted node does not retry", &p, || {
        p.metric("parapet_notification_failures_total") >= 1.0
    });
    assert_eq!(p.metric("parapet_notifications_pending"), 1.0);

    // the receiver comes back: the alert arrives, and the outbox empties
    let got = webhook_receiver_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), false);
    wait_until(30, "the alert never reached the receiver", &p, || {
        !got.lock().unwrap().is_empty()
    });
    wait_until(20, "the outbox does not empty", &p, || {
        p.metric("parapet_notifications_pending") == 0.0
    });
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 1, "delivered once: {}", p.log());
    let v: serde_json::Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(v["event"], "alert");
    assert_eq!(v["alerts"][0]["rule"], "feed.block");
    assert_eq!(v["alerts"][0]["tenant"], "council-a");
    assert_eq!(v["alerts"][0]["domain"], "zone.test");
    assert_eq!(p.metric("parapet_notifications_failing"), 0.0);
}

/// `sha256=` + hex HMAC-SHA256, computed independently of Parapet's code.
fn parapet_signature(key: &[u8], body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
