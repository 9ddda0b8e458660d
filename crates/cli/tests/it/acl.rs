//! Resolver security: who is answered (`[dns] allow`/`deny`), response rate
//! limiting of UDP answers, TCP connections that cannot lock new clients
//! out, and datagrams too long to be queries.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::harness::{Client, Parapet, shared_nsd};

fn rc(p: &Parapet, src: &str, name: &str) -> ResponseCode {
    p.client()
        .from(src)
        .query(name, RecordType::A)
        .unwrap_or_else(|| panic!("no answer for {src}"))
        .rcode
}

#[test]
fn clients_outside_allow_and_the_tenants_are_refused() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]\nallow = [\"127.0.0.1/32\"]"),
        "[[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.4/32\"]\n",
        &[],
    );
    assert_eq!(rc(&p, "127.0.0.1", "www.zone.test."), ResponseCode::NoError);
    // a tenant's network needs no allow entry
    assert_eq!(rc(&p, "127.0.0.4", "www.zone.test."), ResponseCode::NoError);
    for _ in 0..3 {
        let a = p
            .client()
            .from("127.0.0.2")
            .query("www.zone.test.", RecordType::A)
            .unwrap();
        assert_eq!(a.rcode, ResponseCode::Refused);
        assert!(a.records.is_empty());
        // the question is echoed, as for any error
        assert_eq!(a.message.queries.len(), 1);
    }
    assert_eq!(p.metric("parapet_dns_refused_total{reason=\"acl\"}"), 3.0);
    // refused queries are no tenant's traffic
    assert_eq!(
        p.metric("parapet_dns_queries_total{tenant=\"default\""),
        1.0,
        "{}",
        p.metrics()
    );
    // logged once for the three (at most one line a minute)
    let log = p.log();
    assert_eq!(log.matches("refused queries").count(), 1, "{log}");
    assert!(log.contains("127.0.0.2"), "{log}");
}

#[test]
fn deny_excepts_clients_from_allow_on_udp_and_tcp() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!(
            "upstreams = [\"{nsd}\"]\nallow = [\"127.0.0.0/8\"]\ndeny = [\"127.0.0.1/32\", \"127.0.0.8/29\"]"
        ),
        // deny wins over a tenant's network too
        "[[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.9/32\"]\n",
        &[],
    );
    assert_eq!(rc(&p, "127.0.0.2", "www.zone.test."), ResponseCode::NoError);
    assert_eq!(rc(&p, "127.0.0.1", "www.zone.test."), ResponseCode::Refused);
    assert_eq!(rc(&p, "127.0.0.9", "www.zone.test."), ResponseCode::Refused);
    // TCP from 127.0.0.1: the same verdict on the other transport
    let tcp = p
        .client()
        .tcp()
        .query("www.zone.test.", RecordType::A)
        .unwrap();
    assert_eq!(tcp.rcode, ResponseCode::Refused);
}

/// Sends `n` queries for `name` from `src` without waiting, then collects
/// answers until none has come for a while: (answers, truncated answers).
fn burst(p: &Parapet, src: &str, name: &str, n: u16) -> (usize, usize) {
    let sock = UdpSocket::bind((src, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let client = Client::new(p.dns);
    for id in 0..n {
        let mut m = client.build(name, RecordType::A);
        m.metadata.id = id;
        sock.send_to(&m.to_vec().unwrap(), p.dns).unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = [0u8; 4096];
    while let Ok((len, _)) = sock.recv_from(&mut buf) {
        let m = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        if m.metadata.truncation {
            assert!(m.answers.is_empty());
            truncated += 1;
        } else {
            assert_eq!(m.answers.len(), 1);
            full += 1;
        }
    }
    (full, truncated)
}

#[test]
fn a_burst_is_rate_limited_with_slip_and_other_clients_are_not() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!(
            "upstreams = [\"{nsd}\"]\n\
             [dns.rate_limit]\nresponses_per_second = 10\nslip = 2\nipv4_prefix = 32\n"
        ),
        "[[tenants]]\nname = \"trusted\"\nnetworks = [\"127.0.0.5/32\"]\nrate_limit = false\n",
        &[],
    );
    // warm the cache so that every answer of the burst is alike
    assert_eq!(rc(&p, "127.0.0.1", "www.zone.test."), ResponseCode::NoError);

    let sent = 200;
    let (full, truncated) = burst(&p, "127.0.0.2", "www.zone.test.", sent);
    let limited = sent as usize - full;
    assert!(full >= 10, "the bucket's worth is answered: {full}");
    assert!(
        limited >= 100,
        "most of the burst is limited: {full} answered"
    );
    // slip = 2: every second limited answer goes out truncated
    assert!(
        truncated.abs_diff(limited / 2) <= 1,
        "{truncated} truncated of {limited} limited"
    );
    let m = p.metrics();
    let metric = |action: &str| {
        crate::harness::metric_sum(
            &m,
            &format!("parapet_rrl_responses_total{{tenant=\"default\",action=\"{action}\"}}"),
        ) as usize
    };
    assert_eq!(metric("slipped"), truncated, "{m}");
    assert_eq!(metric("dropped") + metric("slipped"), limited, "{m}");

    // another client keeps its own budget (prefix /32 here)
    for _ in 0..5 {
        assert_eq!(rc(&p, "127.0.0.3", "www.zone.test."), ResponseCode::NoError);
    }
    // TCP is never limited, even for the client that exhausted its bucket
    let tcp = Client::new(p.dns)
        .tcp()
        .query("www.zone.test.", RecordType::A)
        .unwrap();
    assert!(!tcp.truncated);
    // a tenant with rate_limit = false is exempt
    assert_eq!(burst(&p, "127.0.0.5", "www.zone.test.", sent), (200, 0));
}

#[test]
fn an_idle_tcp_connection_makes_room_for_a_new_client() {
    let nsd = shared_nsd();
    let p = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]\ntcp_max_connections = 3\ntcp_idle_timeout_ms = 60000"),
        "",
        &[],
    );
    let query = Client::new(p.dns)
        .build("www.zone.test.", RecordType::A)
        .to_vec()
        .unwrap();
    let ask = |s: &mut TcpStream| -> Option<Message> {
        let mut out = (query.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&query);
        s.write_all(&out).ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).ok()?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).ok()?;
        Message::from_vec(&buf).ok()
    };
    let open = || {
        let s = TcpStream::connect(p.dns).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    };
    // three connections, each answered once and then idle; the first is
    // idle longest
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        let mut s = open();
        assert!(ask(&mut s).is_some());
        idle.push(s);
        std::thread::sleep(Duration::from_millis(20));
    }
    // a fourth client is answered at once...
    let mut fresh = open();
    let a = ask(&mut fresh).expect("the new client is answered");
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    // ...because the oldest idle connection was closed for it
    let mut byte = [0u8; 1];
    assert_eq!(idle[0].read(&mut byte).unwrap(), 0, "evicted: EOF");
    assert!(ask(&mut idle[2]).is_some(), "the others stay open");
    assert_eq!(p.metric("parapet_dns_tcp_evicted_total"), 1.0);
}

#[test]
fn an_oversize_datagram_gets_formerr() {
    let nsd = shared_nsd();
    let p = Parapet::start(&format!("upstreams = [\"{nsd}\"]"), "", &[]);
    let mut query = Client::new(p.dns)
        .build("www.zone.test.", RecordType::A)
        .to_vec()
        .unwrap();
    query[0..2].copy_from_slice(&0x4242u16.to_be_bytes());
    // past the 4 KB receive buffer: padding after the query's records
    query.resize(5000, 0);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send_to(&query, p.dns).unwrap();
    let mut buf = [0u8; 512];
    let (len, _) = sock.recv_from(&mut buf).expect("an answer, not silence");
    let m = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(m.metadata.id, 0x4242);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(len < 100, "the answer is far smaller than the datagram");
    // the server carries on
    assert_eq!(rc(&p, "127.0.0.1", "www.zone.test."), ResponseCode::NoError);
}
