//! Serve-stale (RFC 8767): NSD dies, expired answers are still served,
//! marked stale; NSD comes back and answers are fresh again; policy never
//! goes stale.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

use crate::harness::{Answer, Client, Parapet, Peer, start_nsd, start_nsd_on, wait_for};

/// A zone whose records live one second.
fn zone(www: &str) -> String {
    format!(
        "$TTL 1\n@ IN SOA ns.stale.test. hostmaster.stale.test. 1 3600 600 86400 1\n\
         @ IN NS ns.stale.test.\nns IN A 127.0.0.1\nwww IN A {www}\nbad IN A 192.0.2.66\n"
    )
}

/// Stops NSD and waits until its port no longer answers.
fn stop(nsd: Peer) -> SocketAddr {
    let addr = nsd.addr;
    drop(nsd);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Client::new(addr)
        .timeout(Duration::from_millis(200))
        .query("ns.stale.test.", RecordType::A)
        .is_some()
    {
        assert!(Instant::now() < deadline, "NSD did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    addr
}

/// The Extended DNS Error info code of an answer, if any.
fn ede(a: &Answer) -> Option<u16> {
    match a.message.edns.as_ref()?.option(EdnsCode::from(15))? {
        EdnsOption::Unknown(15, data) if data.len() >= 2 => {
            Some(u16::from_be_bytes([data[0], data[1]]))
        }
        other => panic!("not an EDE option: {other:?}"),
    }
}

fn start(nsd: SocketAddr, serve_stale: bool) -> Parapet {
    Parapet::start(
        &format!(
            "upstreams = [\"{nsd}\"]\nupstream_timeout_ms = 1000\nserve_stale = {serve_stale}\n\
             stale_answer_ttl = 7\nstale_answer_client_timeout_ms = 400"
        ),
        "[[feeds]]\nname = \"late\"\npath = \"late.txt\"\nformat = \"domains\"\n",
        &[("late.txt", "other.invalid\n")],
    )
}

#[test]
fn expired_answers_are_served_stale_while_the_upstream_is_down() {
    let nsd = start_nsd(&[("stale.test", &zone("192.0.2.1"))]);
    let on = start(nsd.addr, true);
    let off = start(nsd.addr, false);
    for p in [&on, &off] {
        for name in ["www.stale.test.", "bad.stale.test."] {
            let a = p.client().query(name, RecordType::A).unwrap();
            assert_eq!(a.rcode, ResponseCode::NoError);
            assert_eq!(a.ttls, [1]);
        }
    }
    // a client without EDNS has an answer of its own in the cache
    let classic = on.client().edns(None);
    assert_eq!(
        classic
            .query("www.stale.test.", RecordType::A)
            .unwrap()
            .ttls,
        [1]
    );
    let port = stop(nsd).port();
    // a feed lists a name whose answer is cached
    std::fs::write(on.path("late.txt"), "bad.stale.test\n").unwrap();
    wait_for("the feed to block bad.stale.test", || {
        on.client()
            .query("bad.stale.test.", RecordType::A)
            .is_some_and(|a| a.rcode == ResponseCode::NXDomain)
    });
    // past the TTL
    std::thread::sleep(Duration::from_millis(2100));

    let a = on.client().query("www.stale.test.", RecordType::A).unwrap();
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(a.records, ["www.stale.test. A 192.0.2.1"]);
    assert_eq!(a.ttls, [7], "TTL set to stale_answer_ttl");
    assert_eq!(ede(&a), Some(3), "EDE 3, Stale Answer");
    // a client without EDNS gets the answer, without an OPT record
    let classic = classic.query("www.stale.test.", RecordType::A).unwrap();
    assert_eq!(classic.records, a.records);
    assert_eq!(classic.ttls, [7]);
    assert!(!classic.edns);
    // TCP too
    let tcp = on.client().tcp().query("www.stale.test.", RecordType::A);
    assert_eq!(tcp.map(|a| a.ttls), Some(vec![7]));
    // the block is policy, not cache: it holds with the upstream down
    let blocked = on.client().query("bad.stale.test.", RecordType::A).unwrap();
    assert_eq!(blocked.rcode, ResponseCode::NXDomain);
    assert_eq!(ede(&blocked), Some(15), "Blocked, not Stale Answer");
    assert!(on.metric("parapet_dns_stale_answers_total{tenant=\"default\"}") >= 3.0);

    // serve_stale = false: SERVFAIL as before
    let sf = off
        .client()
        .query("www.stale.test.", RecordType::A)
        .unwrap();
    assert_eq!(sf.rcode, ResponseCode::ServFail);
    assert_eq!(off.metric("parapet_dns_stale_answers_total"), 0.0);

    // NSD is back, where it was, with a changed record: fresh answers again
    let _nsd = start_nsd_on(port, &[("stale.test", &zone("192.0.2.2"))]);
    wait_for("a fresh answer", || {
        let a = on.client().query("www.stale.test.", RecordType::A).unwrap();
        a.records == ["www.stale.test. A 192.0.2.2"] && ede(&a).is_none()
    });
    let fresh = on.client().query("www.stale.test.", RecordType::A).unwrap();
    assert_eq!(fresh.ttls.len(), 1);
    assert!(fresh.ttls[0] <= 1, "the upstream's TTL: {:?}", fresh.ttls);
}

#[test]
fn many_clients_of_one_expired_name_share_one_refresh() {
    let nsd = start_nsd(&[("stale.test", &zone("192.0.2.1"))]);
    let p = Parapet::start(
        &format!(
            "upstreams = [\"{}\"]\nupstream_timeout_ms = 1000\nattempt_timeout_ms = 500\n\
             stale_answer_client_timeout_ms = 400",
            nsd.addr
        ),
        "",
        &[],
    );
    let first = p.client().query("www.stale.test.", RecordType::A).unwrap();
    assert_eq!(first.ttls, [1]);
    let addr = stop(nsd);
    // the upstream's port now swallows queries: neither answer nor refusal
    let mut hole = None;
    wait_for("NSD's port to be free", || {
        hole = UdpSocket::bind(addr).ok();
        hole.is_some()
    });
    let hole = hole.unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let c = p.client();
            std::thread::spawn(move || c.query("www.stale.test.", RecordType::A))
        })
        .collect();
    for c in clients {
        let a = c.join().unwrap().expect("an answer");
        assert_eq!(a.records, ["www.stale.test. A 192.0.2.1"]);
        assert_eq!(a.ttls, [30], "the default stale_answer_ttl");
        assert_eq!(ede(&a), Some(3));
    }
    // one refresh, whose two tries (one per round) reach the silent port
    hole.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut buf = [0u8; 512];
    let mut seen = 0;
    while hole.recv(&mut buf).is_ok() {
        seen += 1;
    }
    assert!(
        (1..=2).contains(&seen),
        "{seen} upstream queries for 16 clients of one name"
    );
    assert_eq!(
        p.metric("parapet_dns_stale_answers_total{tenant=\"default\"}"),
        16.0
    );
}
