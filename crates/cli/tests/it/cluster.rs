//! Several nodes on one PostgreSQL (issue 9): two `parapet serve` processes
//! with their dashboards, and the CLI, share a database of a
//! real PostgreSQL server started by the harness. Queries to both nodes are
//! stored with the node's name; the same blocked domain seen on both nodes
//! is one alert; the retention job runs on one node only; a feed published
//! once reaches both nodes; killing one node loses none of the other's
//! events.

use std::process::Command;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, shared_nsd, wait_for};

fn parapet(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(args)
        .env("PARAPET_DATABASE_URL", url)
        .env_remove("PARAPET_CONFIG")
        .output()
        .expect("run parapet")
}

fn node(url: &str, name: &str) -> Parapet {
    let nsd = shared_nsd();
    Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        &format!(
            "[node]\nname = \"{name}\"\n\
             [store]\nurl = \"{url}\"\nflush_interval_ms = 100\n\
             [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\"]\n\
             [[feeds]]\nname = \"threats\"\nsource = \"database\"\nformat = \"domains\"\n"
        ),
        &[],
    )
}

/// Events stored per node.
fn events_by_node(db: &mut postgres::Client) -> Vec<(String, i64)> {
    db.query(
        "SELECT node, SUM(queries)::bigint FROM query_events GROUP BY node ORDER BY node",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn rcode(p: &Parapet, name: &str) -> ResponseCode {
    p.client()
        .from("127.0.0.2")
        .query(name, RecordType::A)
        .expect("an answer")
        .rcode
}

#[test]
fn two_nodes_share_one_postgresql() {
    let url = parapet_store::pgtest::fresh_database();
    let feed_dir = tempfile::tempdir().unwrap();
    let v1 = feed_dir.path().join("threats-v1.txt");
    std::fs::write(&v1, "evil.zone.test\n").unwrap();
    let out = parapet(&url, &["feeds", "publish", "threats", v1.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("version 1"));
    // a bad feed is refused and changes nothing
    let bad = feed_dir.path().join("bad.rpz");
    std::fs::write(&bad, "this is not a zone file\n").unwrap();
    let out = parapet(
        &url,
        &["feeds", "publish", "threats", bad.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let mut a = node(&url, "node-a");
    let b = node(&url, "node-b");
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();

    // both nodes serve the published feed, and both record what they did
    for p in [&a, &b] {
        for _ in 0..3 {
            assert_eq!(rcode(p, "evil.zone.test."), ResponseCode::NXDomain);
            assert_eq!(rcode(p, "www.zone.test."), ResponseCode::NoError);
        }
    }
    wait_for("6 events from each node", || {
        events_by_node(&mut db) == [("node-a".to_string(), 6), ("node-b".to_string(), 6)]
    });

    // one alert for the domain both nodes blocked, naming both
    let list = || {
        let out = parapet(
            &url,
            &["alerts", "list", "--rule", "feed.block", "--format", "json"],
        );
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    wait_for("both nodes' signals", || {
        list()
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["count"].as_u64().unwrap())
            .sum::<u64>()
            == 6
    });
    let alerts = list();
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "one alert, not one per node: {alerts:?}");
    let mut nodes: Vec<&str> = alerts[0]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);
    assert_eq!(alerts[0]["count"], 6);

    // the dashboard of either node shows that one shared alert
    let out = parapet(&url, &["users", "add", "ops", "--role", "supplier-analyst"]);
    assert!(out.status.success(), "{out:?}");
    let out = parapet(&url, &["users", "token", "ops"]);
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    for p in [&a, &b] {
        let (status, body) =
            crate::harness::http_get_bearer(p.web, "/api/v1/alerts?rule=feed.block", &token);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let shown = v["alerts"].as_array().unwrap();
        assert_eq!(shown.len(), 1, "{body}");
        assert_eq!(shown[0]["id"], alerts[0]["id"], "{body}");
    }

    // the retention job ran on exactly one node (the lease holder)
    let ran = |p: &Parapet| p.log().matches("retention: deleted old rows").count();
    assert_eq!(ran(&a) + ran(&b), 1, "{}\n{}", a.log(), b.log());
    let holder: String = db
        .query_one("SELECT holder FROM leases WHERE job = 'retention'", &[])
        .unwrap()
        .get(0);
    let skipped = if holder == "node-a" { &b } else { &a };
    assert!(
        skipped
            .log()
            .contains("retention: another node holds the lease"),
        "{}",
        skipped.log()
    );

    // an update published once reaches both nodes
    let v2 = feed_dir.path().join("threats-v2.txt");
    std::fs::write(&v2, "evil.zone.test\nwww.zone.test\n").unwrap();
    let out = parapet(&url, &["feeds", "publish", "threats", v2.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    for p in [&a, &b] {
        wait_for("the new feed version to be served", || {
            p.metric("parapet_feed_db_version{") == 2.0
        });
        assert_eq!(rcode(p, "www.zone.test."), ResponseCode::NXDomain);
        assert_eq!(p.metric("parapet_node_info{"), 1.0);
        // every sample names its node
        let name = if std::ptr::eq(p, &a) {
            "node-a"
        } else {
            "node-b"
        };
        let text = p.metrics();
        assert!(
            text.lines().any(|l| l
                .starts_with("parapet_dns_queries_total{tenant=\"council-a\",action=\"blocked\"")
                && l.contains(&format!(",node=\"{name}\"}} "))),
            "{text}"
        );
    }
    wait_for("both heartbeats to report version 2", || {
        let out = parapet(&url, &["feeds", "nodes"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        text.lines().filter(|l| l.ends_with("threats=2")).count() == 2
    });

    // node A dies; node B goes on and loses nothing
    let before = events_by_node(&mut db);
    a.kill9();
    for _ in 0..20 {
        assert_eq!(rcode(&b, "evil.zone.test."), ResponseCode::NXDomain);
    }
    let b_before = before.iter().find(|(n, _)| n == "node-b").unwrap().1;
    wait_for("node B's 20 new events", || {
        events_by_node(&mut db)
            .iter()
            .any(|(n, c)| n == "node-b" && *c == b_before + 20)
    });
    let after = events_by_node(&mut db);
    assert_eq!(
        after.iter().find(|(n, _)| n == "node-a"),
        before.iter().find(|(n, _)| n == "node-a"),
        "node A's stored events stay"
    );
    // every stored event is counted once in the hourly aggregates, folded
    // or still pending, and node B's fold (every 5 s) empties the pending
    let counted = |db: &mut postgres::Client| -> (i64, i64, i64) {
        let r = db
            .query_one(
                "SELECT (SELECT COALESCE(SUM(queries), 0)::bigint FROM query_events),
                        (SELECT COALESCE(SUM(queries), 0)::bigint FROM query_hourly_all),
                        (SELECT COUNT(*) FROM query_hourly_delta)",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    let (events, hourly, _) = counted(&mut db);
    assert_eq!(events, hourly);
    wait_for("the fold to take the pending hourly counts", || {
        counted(&mut db).2 == 0
    });
    let (events, hourly, _) = counted(&mut db);
    assert_eq!(events, hourly);
}

/// Scheduled Mail Checks run on the node holding the `mailcheck` lease, not
/// on every node.
#[test]
fn scheduled_mail_checks_run_on_one_node() {
    let url = parapet_store::pgtest::fresh_database();
    let nsd = crate::mailcheck::fixture_nsd();
    let start = |name: &str| {
        Parapet::start(
            &format!("upstreams = [\"{}\"]", nsd.addr),
            &format!(
                "[node]\nname = \"{name}\"\n[store]\nurl = \"{url}\"\n\
                 [mailcheck]\ndomains = [\"weak.test\", \"nomail.test\"]\nnameserver = \"{}\"\nsmtp_port = {}\n",
                nsd.addr,
                crate::harness::free_port()
            ),
            &[],
        )
    };
    let a = start("node-a");
    let b = start("node-b");
    let mut db = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut holder = String::new();
    wait_for("a node to take the mailcheck lease", || {
        match db
            .query_opt("SELECT holder FROM leases WHERE job = 'mailcheck'", &[])
            .unwrap()
        {
            Some(r) => {
                holder = r.get(0);
                true
            }
            None => false,
        }
    });
    wait_for("the lease holder's checks", || {
        db.query_one("SELECT COUNT(*) FROM mailcheck_results", &[])
            .unwrap()
            .get::<_, i64>(0)
            == 2
    });
    let other = if holder == "node-a" { &b } else { &a };
    wait_for("the other node to stand aside", || {
        other
            .log()
            .contains("mail check: another node holds the lease")
    });
    // each domain checked once, not once per node
    std::thread::sleep(Duration::from_millis(500));
    let rows: Vec<(String, i64)> = db
        .query(
            "SELECT domain, COUNT(*) FROM mailcheck_results GROUP BY domain ORDER BY domain",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        rows,
        [("nomail.test".to_string(), 1), ("weak.test".to_string(), 1)]
    );
}
