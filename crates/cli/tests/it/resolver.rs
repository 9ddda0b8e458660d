//! Forwarding, caching, failover, SERVFAIL, truncation, EDNS, feed formats,
//! allowlist and sinkhole, against NSD.

use std::net::UdpSocket;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::harness::{Parapet, ZONE_TEST, free_port, shared_nsd, start_nsd};

#[test]
fn forwards_caches_and_serves_from_cache_when_upstream_dies() {
    let nsd = start_nsd(&[("zone.test", ZONE_TEST)]);
    let p = Parapet::start(
        &format!("upstreams = [\"{}\"]\nupstream_timeout_ms = 500", nsd.addr),
        "",
        &[],
    );
    let c = p.client();
    let a = c.query("www.zone.test.", RecordType::A).unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(a.records, ["www.zone.test. A 192.0.2.10"]);
    assert!(a.message.metadata.recursion_available);
    assert!(
        !a.message.metadata.authoritative,
        "a forwarder is not authoritative"
    );
    let neg = c.query("missing.zone.test.", RecordType::A).unwrap();
    assert_eq!(neg.rcode, ResponseCode::NXDomain);
    let hits = p.metric("parapet_dns_cache_hits_total");
    // the upstream goes away: cached answers (positive and negative) remain
    let upstream = nsd.addr;
    drop(nsd);
    // NSD's server process may outlive its parent for a moment
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while crate::harness::Client::new(upstream)
        .timeout(Duration::from_millis(200))
        .query("ns.zone.test.", RecordType::A)
        .is_some()
    {
        assert!(std::time::Instant::now() < deadline, "NSD did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let again = c.query("www.zone.test.", RecordType::A).unwrap();
    assert_eq!(again.records, a.records);
    assert!(again.ttls[0] <= a.ttls[0]);
    assert_eq!(
        c.query("missing.zone.test.", RecordType::A).unwrap().rcode,
        ResponseCode::NXDomain
    );
    assert_eq!(p.metric("parapet_dns_cache_hits_total"), hits + 2.0);
    // a name never cached: SERVFAIL, well before the client gives up (3 s)
    let sf = c
        .query("target.zone.test.", RecordType::A)
        .expect("an answer, not a timeout");
    assert_eq!(sf.rcode, ResponseCode::ServFail);
    assert!(p.metric("parapet_dns_servfail_upstream_total") >= 1.0);
}

#[test]
fn ttl_counts_down_in_cache() {
    let nsd = shared_nsd();
    let p = Parapet::start(&format!("upstreams = [\"{nsd}\"]"), "", &[]);
    let first = p.client().query("short.zone.test.", RecordType::A).unwrap();
    assert_eq!(first.ttls, [5]);
    std::thread::sleep(Duration::from_millis(2100));
    let later = p.client().query("short.zone.test.", RecordType::A).unwrap();
    assert!(later.ttls[0] <= 3, "TTL not aged: {:?}", later.ttls);
    assert!(p.metric("parapet_dns_cache_hits_total") >= 1.0);
}

#[test]
fn fails_over_to_the_next_upstream() {
    let nsd = shared_nsd();
    // one upstream refuses (nothing listening), one swallows queries
    let refused = free_port();
    let blackhole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let hole = blackhole.local_addr().unwrap();
    let p = Parapet::start(
        &format!(
            "upstreams = [\"127.0.0.1:{refused}\", \"{hole}\", \"{nsd}\"]\nattempt_timeout_ms = 300\nupstream_timeout_ms = 2000"
        ),
        "",
        &[],
    );
    for name in ["www.zone.test.", "target.zone.test.", "ns.zone.test."] {
        let a = p.client().query(name, RecordType::A).unwrap();
        assert_eq!(a.rcode, ResponseCode::NoError, "{name}");
        assert_eq!(a.records.len(), 1, "{name}");
    }
    let m = p.metrics();
    assert!(m.contains(&format!(
        "parapet_dns_upstream_failures_total{{upstream=\"127.0.0.1:{refused}\"}}"
    )));
}

#[test]
fn servfail_when_every_upstream_is_down() {
    let blackhole = UdpSocket::bind("127.0.0.1:0").unwrap();
    let p = Parapet::start(
        &format!(
            "upstreams = [\"127.0.0.1:{}\", \"{}\"]\nupstream_timeout_ms = 400\nattempt_timeout_ms = 200",
            free_port(),
            blackhole.local_addr().unwrap()
        ),
        "",
        &[],
    );
    let a = p
        .client()
        .query("www.zone.test.", RecordType::A)
        .expect("SERVFAIL, not silence");
    assert_eq!(a.rcode, ResponseCode::ServFail);
    // the extended error says why
    assert!(a.edns);
}

#[test]
fn large_answers_truncate_over_udp_and_work_over_tcp() {
    let nsd = shared_nsd();
    let p = Parapet::start(&format!("upstreams = [\"{nsd}\"]"), "", &[]);
    let classic = p
        .client()
        .edns(None)
        .query("big.zone.test.", RecordType::TXT)
        .unwrap();
    assert!(classic.truncated);
    assert!(classic.records.is_empty());
    assert!(!classic.edns, "no OPT for a client that sent none");
    let edns = p
        .client()
        .edns(Some(4096))
        .query("big.zone.test.", RecordType::TXT)
        .unwrap();
    assert!(
        edns.truncated,
        "1232-byte limit applies even when the client offers more"
    );
    assert!(edns.edns);
    let tcp = p
        .client()
        .tcp()
        .query("big.zone.test.", RecordType::TXT)
        .unwrap();
    assert!(!tcp.truncated);
    assert_eq!(tcp.records.len(), 8);
    let tcp_classic = p
        .client()
        .tcp()
        .edns(None)
        .query("big.zone.test.", RecordType::TXT)
        .unwrap();
    assert_eq!(tcp_classic.records.len(), 8);
    assert!(p.metric("parapet_dns_truncated_total") >= 2.0);
    // small answers still fit
    let small = p
        .client()
        .edns(None)
        .query("www.zone.test.", RecordType::A)
        .unwrap();
    assert!(!small.truncated);
}

const HOSTS: &str = "# test hosts feed\n127.0.0.1 localhost\n0.0.0.0 hosted.zone.test\n";
const DOMAINS: &str = "listed.zone.test\n";

#[test]
fn hosts_and_domain_lists_block_subdomains_and_allowlist_wins() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]\nallowlist = [\"y.listed.zone.test\"]"),
        "[[feeds]]\nname = \"h\"\npath = \"feeds/h.hosts\"\nformat = \"hosts\"\ncategory = \"malware\"\n\
         [[feeds]]\nname = \"d\"\npath = \"feeds/d.txt\"\nformat = \"domains\"\ncategory = \"phishing\"\n",
        &[("feeds/h.hosts", HOSTS), ("feeds/d.txt", DOMAINS)],
    );
    let c = p.client();
    for name in [
        "hosted.zone.test.",
        "x.hosted.zone.test.",
        "listed.zone.test.",
    ] {
        let a = c.query(name, RecordType::A).unwrap();
        assert_eq!(a.rcode, ResponseCode::NXDomain, "{name}");
        // the Extended DNS Error (RFC 8914): code 15, Blocked, naming the feed
        let ede = a
            .message
            .edns
            .as_ref()
            .and_then(|e| e.option(EdnsCode::from(15)));
        let feed = if name.contains("hosted") { "h" } else { "d" };
        let want = [
            &[0u8, 15][..],
            format!("blocked by Parapet feed {feed}").as_bytes(),
        ]
        .concat();
        assert_eq!(ede, Some(&EdnsOption::Unknown(15, want)), "{name}");
    }
    let allowed = c.query("y.listed.zone.test.", RecordType::A).unwrap();
    assert_eq!(allowed.records, ["y.listed.zone.test. A 192.0.2.51"]);
    let m = p.metrics();
    assert!(
        m.contains("parapet_feed_entries{feed=\"h\",category=\"malware\",format=\"hosts\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("parapet_feed_entries{feed=\"d\",category=\"phishing\",format=\"domains\"} 1"),
        "{m}"
    );
    assert!(
        p.metric(
            "parapet_dns_queries_total{tenant=\"default\",action=\"blocked\",rcode=\"NXDOMAIN\"}"
        ) >= 3.0
    );
    assert!(p.metric("parapet_dns_queries_total{tenant=\"default\",action=\"allowlisted\"") >= 1.0);
}

#[test]
fn sinkhole_answers_and_monitor_feeds() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!(
            "upstreams = [\"{nsd}\"]\nblock_response = \"sinkhole\"\nsinkhole_ipv4 = \"192.0.2.1\"\nsinkhole_ipv6 = \"2001:db8::1\"\nsinkhole_ttl = 30"
        ),
        "[[feeds]]\nname = \"d\"\npath = \"d.txt\"\nformat = \"domains\"\n\
         [[feeds]]\nname = \"watch\"\npath = \"w.txt\"\nformat = \"domains\"\nmode = \"monitor\"\n",
        &[("d.txt", DOMAINS), ("w.txt", "www.zone.test\n")],
    );
    let c = p.client();
    let a = c.query("listed.zone.test.", RecordType::A).unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(a.records, ["listed.zone.test. A 192.0.2.1"]);
    assert_eq!(a.ttls, [30]);
    let aaaa = c.query("listed.zone.test.", RecordType::AAAA).unwrap();
    assert_eq!(aaaa.records, ["listed.zone.test. AAAA 2001:db8::1"]);
    let txt = c.query("listed.zone.test.", RecordType::TXT).unwrap();
    assert_eq!((txt.rcode, txt.records.len()), (ResponseCode::NoError, 0));
    // monitor-only: resolved, and counted as monitored
    let w = c.query("www.zone.test.", RecordType::A).unwrap();
    assert_eq!(w.records, ["www.zone.test. A 192.0.2.10"]);
    assert!(p.metric("parapet_dns_queries_total{tenant=\"default\",action=\"monitored\"") >= 1.0);
}
