//! Hot reload: under continuous load every query is answered, a new feed
//! version takes effect, and a broken one leaves the last good policy in
//! force (and says so in logs and metrics).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Parapet, shared_nsd, wait_for};

/// A large feed, so that each reload takes long enough to overlap queries.
fn big_feed(extra: &[&str]) -> String {
    let mut s = String::with_capacity(3_000_000);
    for i in 0..100_000 {
        s.push_str(&format!("filler{i}.bad.invalid\n"));
    }
    for e in extra {
        s.push_str(e);
        s.push('\n');
    }
    s
}

#[test]
fn reload_under_load_loses_no_query_and_broken_feeds_keep_the_last_good_policy() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "[[feeds]]\nname = \"live\"\npath = \"live.txt\"\nformat = \"domains\"\n",
        &[("live.txt", &big_feed(&["listed.zone.test"]))],
    );
    let rc = |name: &str| p.client().query(name, RecordType::A).expect("answer").rcode;
    assert_eq!(rc("listed.zone.test."), ResponseCode::NXDomain);
    assert_eq!(rc("hosted.zone.test."), ResponseCode::NoError);

    // continuous load from 4 clients while the feed changes and SIGHUPs land
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (stop, sent, unanswered) = (stop.clone(), sent.clone(), unanswered.clone());
            let client = p.client().timeout(Duration::from_secs(3));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let name = if i.is_multiple_of(3) {
                        "listed.zone.test.".to_string()
                    } else {
                        format!("q{w}-{}.load.zone.test.", i % 500)
                    };
                    sent.fetch_add(1, Ordering::Relaxed);
                    if client.query(&name, RecordType::A).is_none() {
                        unanswered.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let reloads_before = p.metric("parapet_policy_reloads_total");
    for round in 0..3 {
        std::fs::write(
            p.path("live.txt"),
            big_feed(&["listed.zone.test", "hosted.zone.test"]),
        )
        .unwrap();
        wait_for("the changed feed to be in force", || {
            p.client()
                .query("hosted.zone.test.", RecordType::A)
                .unwrap()
                .rcode
                == ResponseCode::NXDomain
        });
        std::fs::write(p.path("live.txt"), big_feed(&["listed.zone.test"])).unwrap();
        wait_for("the reverted feed to be in force", || {
            p.client()
                .query("hosted.zone.test.", RecordType::A)
                .unwrap()
                .rcode
                == ResponseCode::NoError
        });
        // a SIGHUP reloads even though nothing changed
        let before_hup = p.metric("parapet_policy_reloads_total");
        p.sighup();
        wait_for("a SIGHUP reload", || {
            p.metric("parapet_policy_reloads_total") > before_hup
        });
        std::thread::sleep(Duration::from_millis(100 * round));
    }
    assert!(p.metric("parapet_policy_reloads_total") >= reloads_before + 9.0);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent > 100, "load generator sent only {sent} queries");
    assert_eq!(
        unanswered.load(Ordering::Relaxed),
        0,
        "queries unanswered during reloads (of {sent})"
    );

    // a broken feed: the last good version stays in force
    let mut broken = big_feed(&["listed.zone.test", "hosted.zone.test"]);
    broken.push_str("this is not a domain\n");
    std::fs::write(p.path("live.txt"), &broken).unwrap();
    wait_for("the failure to be counted", || {
        p.metric("parapet_feed_reload_failures_total{feed=\"live\"}") >= 1.0
    });
    assert_eq!(p.metric("parapet_feed_healthy{feed=\"live\"}"), 0.0);
    assert_eq!(rc("listed.zone.test."), ResponseCode::NXDomain);
    assert_eq!(
        rc("hosted.zone.test."),
        ResponseCode::NoError,
        "half of the broken file must not apply"
    );
    let log = p.log();
    assert!(
        log.contains("live.txt:100003"),
        "error names file and line:\n{log}"
    );
    assert!(log.contains("keeping the last good version"), "{log}");
    // never fail open silently: the failure is an alert for the supplier
    let db = rusqlite::Connection::open(p.path("parapet-data/parapet.sqlite")).unwrap();
    wait_for("the feed.load_failed alert", || {
        db.query_row(
            "SELECT COUNT(*) FROM alerts WHERE rule = 'feed.load_failed' AND domain = 'live' AND tenant = 'supplier'
             AND severity = 'high' AND evidence LIKE '%live.txt:100003%'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            == 1
    });
    // SIGHUP with the broken file still there: still the old policy
    p.sighup();
    wait_for("the second failure", || {
        p.metric("parapet_feed_reload_failures_total{feed=\"live\"}") >= 2.0
    });
    assert_eq!(rc("listed.zone.test."), ResponseCode::NXDomain);

    // fixed: healthy again and in force
    std::fs::write(p.path("live.txt"), big_feed(&["hosted.zone.test"])).unwrap();
    wait_for("the fixed feed", || {
        rc("hosted.zone.test.") == ResponseCode::NXDomain
    });
    assert_eq!(rc("listed.zone.test."), ResponseCode::NoError);
    assert_eq!(p.metric("parapet_feed_healthy{feed=\"live\"}"), 1.0);
}

#[test]
fn sighup_rereads_the_config_and_a_broken_config_keeps_the_running_one() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]"),
        "",
        &[("d.txt", "listed.zone.test\n")],
    );
    let rc = |name: &str| p.client().query(name, RecordType::A).expect("answer").rcode;
    assert_eq!(rc("listed.zone.test."), ResponseCode::NoError);
    let original = std::fs::read_to_string(&p.config).unwrap();
    let with_feed =
        format!("{original}\n[[feeds]]\nname = \"d\"\npath = \"d.txt\"\nformat = \"domains\"\n");
    std::fs::write(&p.config, &with_feed).unwrap();
    p.sighup();
    wait_for("the new feed", || {
        rc("listed.zone.test.") == ResponseCode::NXDomain
    });
    std::fs::write(&p.config, format!("{with_feed}\nbogus_key = 1\n")).unwrap();
    p.sighup();
    wait_for("the config failure to be counted", || {
        p.metric("parapet_config_reload_failures_total") >= 1.0
    });
    assert_eq!(rc("listed.zone.test."), ResponseCode::NXDomain);
    assert!(p.log().contains("bogus_key"), "{}", p.log());
}
