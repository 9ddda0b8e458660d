//! DMARC sender identification end to end: NSD serves a reverse zone for
//! the fixture report's source IPs (127.0.0.11-16) and the forward zones
//! of the PTR names; `parapet dmarc import` names the senders, the summary
//! and the dashboard group by service, and an unknown sender is alerted
//! once.

use std::process::{Command, Output};

use crate::harness::{Parapet, http_get_bearer as get, output_text as text, repo_root, start_nsd};

const REVERSE: &str = "$ORIGIN 0.0.127.in-addr.arpa.
$TTL 300
@ IN SOA ns.test. admin.test. 1 3600 600 86400 300
@ IN NS ns.test.
11 IN PTR mail-db5eur03on2091.outbound.protection.outlook.com.
12 IN PTR mail135.atl21.mcdlv.net.
; claims to be Google, but mail-sor-f41.google.com does not point back
13 IN PTR mail-sor-f41.google.com.
; 14 has no PTR
15 IN PTR mx1.payroll.example.
16 IN PTR host16.isp.example.
";

fn forward(origin: &str, records: &str) -> String {
    format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns.test. admin.test. 1 3600 600 86400 300\n@ IN NS ns.test.\n{records}"
    )
}

fn parapet(p: &Parapet, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(args)
        .arg("--config")
        .arg(&p.config)
        .output()
        .unwrap()
}

#[test]
fn senders_are_named_from_forward_confirmed_reverse_dns() {
    let outlook = forward(
        "outlook.com",
        "mail-db5eur03on2091.outbound.protection IN A 127.0.0.11\n",
    );
    let mcdlv = forward("mcdlv.net", "mail135.atl21 IN A 127.0.0.12\n");
    let google = forward("google.com", "mail-sor-f41 IN A 127.0.0.99\n");
    let payroll = forward("payroll.example", "mx1 IN A 127.0.0.15\n");
    let isp = forward("isp.example", "host16 IN A 127.0.0.16\n");
    let nsd = start_nsd(&[
        ("0.0.127.in-addr.arpa", REVERSE),
        ("outlook.com", &outlook),
        ("mcdlv.net", &mcdlv),
        ("google.com", &google),
        ("payroll.example", &payroll),
        ("isp.example", &isp),
    ]);
    let p = Parapet::start(
        "",
        &format!(
            "[mailcheck]\nnameserver = \"{}\"\n\n\
             [dmarc]\nunknown_sender_threshold = 50\n\n\
             [[dmarc.senders]]\ndomain = \"payroll.example\"\nname = \"Payroll Ltd\"\ntype = \"transactional\"\n\n\
             [[tenants]]\nname = \"north\"\nnetworks = [\"127.0.0.2/32\"]\nmail_domains = [\"council.test\"]\n",
            nsd.addr
        ),
        &[],
    );
    let dir = repo_root().join("testdata/dmarc-senders");
    let first = dir.join("council.test!report-1.xml");
    let first = first.to_str().unwrap();
    let o = parapet(&p, &["dmarc", "import", first]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("1 reports imported"), "{out}");
    assert!(
        out.contains("6 senders identified (3 named), 0 lookups failed"),
        "{out}"
    );
    assert!(
        out.contains("2 unknown senders alerted (dmarc.unknown_sender)"),
        "{out}"
    );

    // the summary: by service, then by IP
    let o = parapet(
        &p,
        &[
            "dmarc",
            "summary",
            "--domain",
            "council.test",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let groups: Vec<(String, u64, Vec<String>)> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["service"].as_str().unwrap().to_string(),
                g["messages"].as_u64().unwrap(),
                g["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["source_ip"].as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect();
    let g = |name: &str, n: u64, ips: &[&str]| {
        (
            name.to_string(),
            n,
            ips.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        groups,
        [
            g("Microsoft 365", 100, &["127.0.0.11"]),
            g("Mailchimp", 30, &["127.0.0.12"]),
            g("isp.example", 9, &["127.0.0.16"]),
            g("Payroll Ltd", 5, &["127.0.0.15"]),
            g("Unidentified", 140, &["127.0.0.13", "127.0.0.14"]),
        ]
    );
    let services = v["services"].as_array().unwrap();
    assert_eq!(services[0]["type"], "mailbox");
    let unknown = &services[4]["sources"];
    // the PTR that does not point back is kept, flagged, and not trusted
    assert_eq!(unknown[0]["ptr"], "mail-sor-f41.google.com");
    assert_eq!(unknown[0]["forward_confirmed"], false);
    assert_eq!(unknown[0]["service"], serde_json::Value::Null);
    assert_eq!(unknown[0]["unknown_sender"], true);
    assert_eq!(unknown[1]["ptr"], serde_json::Value::Null);
    assert_eq!(unknown[1]["forward_confirmed"], false);
    assert_eq!(unknown[1]["unknown_sender"], true);
    // 9 failures from a confirmed host is under the threshold
    assert_eq!(services[2]["sources"][0]["unknown_sender"], false);
    let table = parapet(&p, &["dmarc", "summary", "--domain", "council.test"]);
    let table = text(&table);
    assert!(
        table.contains("mail-sor-f41.google.com, not forward-confirmed; unknown sender"),
        "{table}"
    );
    assert!(table.contains("Microsoft 365 (mailbox)"), "{table}");

    // the same report again, then a new one from the same spoofer: no
    // second alert, and nothing looked up twice
    let o = parapet(&p, &["dmarc", "import", first]);
    let out = text(&o);
    assert!(
        out.starts_with("0 reports imported, 1 already stored"),
        "{out}"
    );
    assert!(
        !out.contains("alerted") && !out.contains("identified"),
        "{out}"
    );
    let second = dir.join("council.test!report-2.xml");
    let o = parapet(&p, &["dmarc", "import", second.to_str().unwrap()]);
    let out = text(&o);
    assert!(out.starts_with("1 reports imported"), "{out}");
    assert!(!out.contains("alerted"), "{out}");
    let o = parapet(&p, &["alerts", "list", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let alerts: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut unknown: Vec<(String, String)> = alerts
        .as_array()
        .or_else(|| alerts["alerts"].as_array())
        .unwrap()
        .iter()
        .filter(|a| a["rule"] == "dmarc.unknown_sender")
        .map(|a| {
            (
                a["domain"].as_str().unwrap().to_string(),
                a["tenant"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    unknown.sort();
    assert_eq!(
        unknown,
        [
            ("127.0.0.13".to_string(), "north".to_string()),
            ("127.0.0.14".to_string(), "north".to_string())
        ]
    );

    // the dashboard's mail page groups the same way
    let o = parapet(&p, &["users", "token", "admin"]);
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let (status, body) = get(p.web, "/api/v1/mail/council.test", &token);
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["dmarc"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Microsoft 365",
            "Mailchimp",
            "isp.example",
            "Payroll Ltd",
            "Unidentified"
        ]
    );
    let (status, page) = get(p.web, "/mail/council.test", &token);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Microsoft 365 (mailbox)"), "{page}");
    assert!(
        page.contains("mail-sor-f41.google.com (not forward-confirmed)"),
        "{page}"
    );
    let row = page
        .split("<tr")
        .find(|r| r.contains("127.0.0.13"))
        .unwrap_or_else(|| panic!("no row for 127.0.0.13: {page}"));
    assert!(row.contains(">Unknown sender</strong>"), "{row}");
}
