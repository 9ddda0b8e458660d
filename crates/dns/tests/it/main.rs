//! In-process tests of the resolver library: the query events it emits and
//! what happens when nobody drains them. (End-to-end behaviour against real
//! peers is tested through the binary in `crates/cli/tests/it`.)

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use parapet_core::event::{EventAction, QueryEvent, RCODE_NO_RESPONSE};
use parapet_core::name::text_to_key;
use parapet_core::policy::{
    Action, FeedDelta, FeedMode, FeedRules, FeedSpec, NameSet, PolicySet, Trigger,
};
use parapet_core::tenant::TenantMap;
use parapet_dns::resolver::Outcome;
use parapet_dns::{
    BlockMode, BlockResponse, Metrics, Resolver, Settings, Snapshot, Transport, server,
};

struct Running {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    _rt: tokio::runtime::Runtime,
}

/// The test policy: `evil.test` and below blocked (unless `lifted`),
/// `drop.test` dropped, 127.0.0.7 in tenant `council-a`.
fn snapshot(metrics: &Metrics, lifted: bool) -> Snapshot {
    let mut rules = FeedRules::new();
    if !lifted {
        rules.push(
            &text_to_key("evil.test").unwrap(),
            Trigger::Subtree,
            Action::Block,
        );
    }
    rules.push(
        &text_to_key("drop.test").unwrap(),
        Trigger::Exact,
        Action::Drop,
    );
    let feeds = [FeedSpec {
        id: 0,
        rules: &rules,
        mode: FeedMode::Block,
        tenants: None,
    }];
    let policy = PolicySet::compile(NameSet::default(), &feeds, 2);
    let tenants = TenantMap::new(&[("127.0.0.7/32".parse().unwrap(), 1)]).unwrap();
    Snapshot::new(
        policy,
        tenants,
        &["default".into(), "council-a".into()],
        &["threats".into()],
        BlockResponse {
            mode: BlockMode::Nxdomain,
            ttl: 60,
        },
        metrics,
    )
}

fn start(events: Option<crossbeam_channel::Sender<QueryEvent>>) -> Running {
    let metrics = Arc::new(Metrics::default());
    let snap = snapshot(&metrics, false);
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    // no upstreams: every forwarded query is answered SERVFAIL at once
    let resolver = Arc::new(Resolver::new(
        Settings::new(vec![listen], vec![]),
        snap,
        metrics.clone(),
        events,
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let bound = server::bind(&[listen], 1).unwrap();
    let addr = bound[0].addr;
    let _guard = rt.enter();
    let tasks = server::spawn(resolver, bound).unwrap();
    std::mem::forget(tasks);
    Running {
        addr,
        metrics,
        _rt: rt,
    }
}

/// An AAAA query for `name`, in wire form.
fn query(name: &str) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii(name).unwrap(),
        RecordType::AAAA,
    ));
    m.to_vec().unwrap()
}

fn ask(addr: SocketAddr, from: &str, name: &str) -> Option<Message> {
    let sock = UdpSocket::bind((from, 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    sock.send_to(&query(name), addr).unwrap();
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).ok()?;
    Some(Message::from_vec(&buf[..n]).unwrap())
}

#[test]
fn every_query_produces_one_event_with_its_facts() {
    let (tx, rx) = crossbeam_channel::bounded(100);
    let r = start(Some(tx));
    let blocked = ask(r.addr, "127.0.0.7", "WWW.Evil.Test.").unwrap();
    assert_eq!(blocked.metadata.response_code, ResponseCode::NXDomain);
    let sf = ask(r.addr, "127.0.0.1", "fine.test.").unwrap();
    assert_eq!(sf.metadata.response_code, ResponseCode::ServFail);
    assert!(ask(r.addr, "127.0.0.1", "drop.test.").is_none());

    let evs: Vec<QueryEvent> = (0..3)
        .map(|_| rx.recv_timeout(Duration::from_secs(2)).unwrap())
        .collect();
    let find = |n: &str| {
        evs.iter()
            .find(|e| e.qname.to_string() == n)
            .unwrap_or_else(|| panic!("no event for {n}: {evs:?}"))
    };
    let b = find("www.evil.test");
    assert_eq!(
        (&*b.tenant, b.action, b.rcode, b.qtype),
        ("council-a", EventAction::Blocked, 3, 28)
    );
    assert_eq!(b.feed.as_deref(), Some("threats"));
    assert_eq!(b.client, "127.0.0.7".parse::<std::net::IpAddr>().unwrap());
    let f = find("fine.test");
    assert_eq!(
        (&*f.tenant, f.action, f.rcode, f.feed.as_deref()),
        ("default", EventAction::Resolved, 2, None)
    );
    let d = find("drop.test");
    assert_eq!(
        (d.action, d.rcode),
        (EventAction::Dropped, RCODE_NO_RESPONSE)
    );
    assert!(rx.try_recv().is_err(), "one event per query");
}

#[test]
fn a_full_event_queue_drops_and_counts_but_never_blocks_answers() {
    let (tx, rx) = crossbeam_channel::bounded(2);
    let r = start(Some(tx));
    for i in 0..20 {
        let a = ask(r.addr, "127.0.0.1", &format!("x{i}.evil.test."))
            .expect("answered although nobody drains events");
        assert_eq!(a.metadata.response_code, ResponseCode::NXDomain);
    }
    assert_eq!(rx.len(), 2);
    let text = r.metrics.render(&[], 0);
    assert!(text.contains("parapet_events_dropped_total 18"), "{text}");
}

#[test]
fn the_queries_of_one_arrival_share_its_snapshot_and_time() {
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = crossbeam_channel::bounded(100);
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let resolver = Resolver::new(
        Settings::new(vec![listen], vec![]),
        snapshot(&metrics, false),
        metrics.clone(),
        Some(tx),
    );
    let client: SocketAddr = "127.0.0.7:5300".parse().unwrap();
    let mut out = Vec::new();
    let at = resolver.arrival();
    // a reload lands while the batch is being answered
    resolver.swap(snapshot(&metrics, true));
    for name in ["evil.test.", "www.evil.test."] {
        let outcome = resolver.handle(&at, &query(name), client, true, Transport::Udp, &mut out);
        assert!(matches!(outcome, Outcome::Reply), "{name}");
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
    }
    let first = rx.try_recv().unwrap();
    let second = rx.try_recv().unwrap();
    assert_eq!(first.time, second.time, "one clock read per arrival");
    assert_eq!(
        (first.action, second.action),
        (EventAction::Blocked, EventAction::Blocked)
    );
    // the next arrival sees the reload: nothing blocks evil.test, so it
    // goes upstream
    let next = resolver.arrival();
    let outcome = resolver.handle(
        &next,
        &query("evil.test."),
        client,
        true,
        Transport::Udp,
        &mut out,
    );
    assert!(matches!(outcome, Outcome::Forward(_)));
    assert!(
        rx.try_recv().is_err(),
        "a forwarded query's event comes on completion"
    );
}

#[test]
fn a_delta_put_in_force_with_the_same_tenants_and_names() {
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = crossbeam_channel::bounded(100);
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let resolver = Resolver::new(
        Settings::new(vec![listen], vec![]),
        snapshot(&metrics, true),
        metrics.clone(),
        Some(tx),
    );
    let client: SocketAddr = "127.0.0.7:5300".parse().unwrap();
    let mut out = Vec::new();
    // the feed loses drop.test and gains new.test and its subdomains
    let mut delta = FeedDelta::default();
    let key = |n: &str| text_to_key(n).unwrap();
    delta
        .removed
        .push(&key("drop.test"), Trigger::Exact, Action::Drop);
    for t in [Trigger::Exact, Trigger::Wildcard] {
        delta.added.push(&key("new.test"), t, Action::Block);
    }
    let old = resolver.snapshot();
    let policy = old
        .policy
        .apply_delta(0, &delta)
        .expect("an RPZ delta patches");
    resolver.swap(old.with_policy(policy));
    let at = resolver.arrival();
    let outcome = resolver.handle(
        &at,
        &query("www.new.test."),
        client,
        true,
        Transport::Udp,
        &mut out,
    );
    assert!(matches!(outcome, Outcome::Reply));
    let m = Message::from_vec(&out).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let ev = rx.try_recv().unwrap();
    assert_eq!(ev.action, EventAction::Blocked);
    assert_eq!(&*ev.tenant, "council-a", "tenants carried over");
    let outcome = resolver.handle(
        &at,
        &query("drop.test."),
        client,
        true,
        Transport::Udp,
        &mut out,
    );
    assert!(
        matches!(outcome, Outcome::Forward(_)),
        "drop.test no longer dropped"
    );
}

#[test]
fn the_access_lists_refuse_strangers_but_not_a_feeds_primary_notify() {
    let metrics = Arc::new(Metrics::default());
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let access = parapet_dns::Access::new(&["127.0.0.1/32".parse().unwrap()], &[]);
    let resolver = Resolver::new(
        Settings::new(vec![listen], vec![]),
        snapshot(&metrics, false).with_access(access),
        metrics.clone(),
        None,
    );
    let notified = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = notified.clone();
    resolver.set_notify(vec![parapet_dns::NotifyZone {
        zone: text_to_key("feed.test").unwrap(),
        primaries: vec!["192.0.2.53".parse().unwrap()],
        on_notify: Arc::new(move |_, _| {
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }),
    }]);
    let mut notify = Message::new(9, MessageType::Query, OpCode::Notify);
    notify.add_query(Query::query(
        Name::from_ascii("feed.test.").unwrap(),
        RecordType::SOA,
    ));
    let notify = notify.to_vec().unwrap();
    let rcode = |packet: &[u8], from: &str| {
        let mut out = Vec::new();
        let at = resolver.arrival();
        let client: SocketAddr = format!("{from}:5300").parse().unwrap();
        match resolver.handle(&at, packet, client, true, Transport::Udp, &mut out) {
            Outcome::Reply => Message::from_vec(&out).unwrap().metadata.response_code,
            _ => panic!("answered at once"),
        }
    };
    // the primary is outside allow: its NOTIFY is still taken
    assert_eq!(rcode(&notify, "192.0.2.53"), ResponseCode::NoError);
    assert_eq!(notified.load(std::sync::atomic::Ordering::Relaxed), 1);
    // anyone else outside allow is refused, NOTIFY or query
    assert_eq!(rcode(&notify, "198.51.100.1"), ResponseCode::Refused);
    assert_eq!(
        rcode(&query("evil.test."), "198.51.100.1"),
        ResponseCode::Refused
    );
    assert_eq!(
        rcode(&query("evil.test."), "192.0.2.53"),
        ResponseCode::Refused
    );
    assert_eq!(notified.load(std::sync::atomic::Ordering::Relaxed), 1);
    // the tenant's client and allowed loopback are answered
    assert_eq!(
        rcode(&query("evil.test."), "127.0.0.7"),
        ResponseCode::NXDomain
    );
    assert_eq!(
        rcode(&query("evil.test."), "127.0.0.1"),
        ResponseCode::NXDomain
    );
    assert_eq!(
        rcode(&query("evil.test."), "127.0.0.2"),
        ResponseCode::Refused
    );
    let text = metrics.render(&[], 0);
    assert!(
        text.contains("parapet_dns_refused_total{reason=\"acl\"} 4"),
        "{text}"
    );
    // a delta put in force keeps the lists
    let old = resolver.snapshot();
    resolver.swap(old.with_policy(old.policy.clone()));
    assert_eq!(
        rcode(&query("evil.test."), "127.0.0.2"),
        ResponseCode::Refused
    );
}
