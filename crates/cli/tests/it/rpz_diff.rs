//! RPZ semantics, checked differentially: Parapet and Unbound 1.17 get the
//! same policy zone and the same upstream (NSD), and must give the same
//! rcode and answer section for every name.

use hickory_proto::rr::RecordType;

use crate::harness::{Client, Parapet, shared_nsd, start_unbound};

const POLICY: &str = include_str!("../../../../testdata/dns/policy.rpz");

/// Unbound has no allowlist: a first policy zone of PASSTHRU rules is its
/// equivalent of Parapet's `[dns] allowlist = ["safe.zone.test"]`.
const ALLOW_RPZ: &str = "$TTL 60\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\n@ NS localhost.\n\
                         safe.zone.test CNAME rpz-passthru.\n*.safe.zone.test CNAME rpz-passthru.\n";

#[test]
fn rpz_answers_match_unbound() {
    let nsd = shared_nsd();
    let unbound = start_unbound(nsd, Some(ALLOW_RPZ), POLICY);
    let parapet = Parapet::start(
        &format!("upstreams = [\"{nsd}\"]\nallowlist = [\"safe.zone.test\"]"),
        "[[feeds]]\nname = \"policy\"\npath = \"policy.rpz\"\nformat = \"rpz\"\n",
        &[("policy.rpz", POLICY)],
    );
    let cases: &[(&str, RecordType)] = &[
        ("www.zone.test.", RecordType::A),    // no rule: forwarded
        ("WwW.ZoNe.TeSt.", RecordType::AAAA), // case does not matter
        ("nx.zone.test.", RecordType::A),     // exact NXDOMAIN
        ("NX.ZONE.TEST.", RecordType::A),
        ("a.wild.zone.test.", RecordType::A),   // wildcard
        ("b.a.wild.zone.test.", RecordType::A), // wildcard, deeper
        ("wild.zone.test.", RecordType::A),     // wildcard does not match its parent
        ("nodata.zone.test.", RecordType::A),   // NODATA
        ("nodata.zone.test.", RecordType::TXT),
        ("pass.zone.test.", RecordType::A), // PASSTHRU, exact beats wildcard
        ("x.pass.zone.test.", RecordType::A), // the wildcard beside it
        ("local.zone.test.", RecordType::A), // local data
        ("local.zone.test.", RecordType::AAAA), // local data of another type: NODATA
        ("local.zone.test.", RecordType::TXT),
        ("cn.zone.test.", RecordType::A), // local CNAME, followed
        ("cn.zone.test.", RecordType::AAAA),
        ("x.wcn.zone.test.", RecordType::A), // wildcard local CNAME
        ("exact.zone.test.", RecordType::A), // exact trigger...
        ("sub.exact.zone.test.", RecordType::A), // ...does not cover children
        ("safe.zone.test.", RecordType::A),  // allowlisted, though the feed blocks it
        ("w.safe.zone.test.", RecordType::A),
        ("b.over.zone.test.", RecordType::A), // *.over wildcard
        ("a.b.over.zone.test.", RecordType::A), // exact passthru beats the wildcard
        // Unbound applies `*.over` only when the trigger before the query in
        // canonical order shares no label below `over` with it
        ("deep.a.b.over.zone.test.", RecordType::A), // shadowed by a.b.over
        ("x.b.over.zone.test.", RecordType::A),      // shadowed by a.b.over
        ("0.b.over.zone.test.", RecordType::A),      // sorts before a.b.over: blocked
        ("c.over.zone.test.", RecordType::A),
        // the wildcard's own name hides it from names below that name
        ("*.over.zone.test.", RecordType::A),
        ("x.*.over.zone.test.", RecordType::A),
        ("alias.zone.test.", RecordType::A), // a real CNAME chain upstream
        ("missing.zone.test.", RecordType::A), // upstream NXDOMAIN
        // response-IP triggers: the addresses in the answer decide
        ("ip-nx.zone.test.", RecordType::A),       // /32 NXDOMAIN
        ("ip-nodata.zone.test.", RecordType::A),   // /32 NODATA
        ("ip-net.zone.test.", RecordType::A),      // in a /24: NXDOMAIN
        ("ip-pass.zone.test.", RecordType::A),     // a /32 PASSTHRU beats the /24
        ("ip-local.zone.test.", RecordType::A),    // local data replaces the address
        ("ip-cname.zone.test.", RecordType::A),    // a CNAME redirect, followed
        ("ip-chain.zone.test.", RecordType::A),    // the CNAME before the address is kept
        ("ip-two.zone.test.", RecordType::A),      // the second record of the RRset matches
        ("ip-qpass.zone.test.", RecordType::A),    // a QNAME PASSTHRU skips response-IP
        ("ip-nx.zone.test.", RecordType::TXT),     // only A and AAAA queries are checked
        ("ip-v6.zone.test.", RecordType::AAAA),    // IPv6, with zz
        ("ip-v6net.zone.test.", RecordType::AAAA), // an IPv6 /48
        ("ip-v6local.zone.test.", RecordType::AAAA),
        ("www.zone.test.", RecordType::A), // and asked again: from the cache, still checked
        ("ip-nx.zone.test.", RecordType::A),
        ("ip-local.zone.test.", RecordType::A),
    ];
    let mut diffs = Vec::new();
    for &(name, rtype) in cases {
        let u = Client::new(unbound.addr)
            .query(name, rtype)
            .expect("unbound answers");
        let p = parapet
            .client()
            .query(name, rtype)
            .expect("parapet answers");
        if (u.rcode, &u.records) != (p.rcode, &p.records) {
            diffs.push(format!(
                "{name} {rtype}: unbound {:?} {:?} / parapet {:?} {:?}",
                u.rcode, u.records, p.rcode, p.records
            ));
        }
    }
    // DROP: neither answers
    let quick = std::time::Duration::from_millis(700);
    assert!(
        Client::new(unbound.addr)
            .timeout(quick)
            .query("drop.zone.test.", RecordType::A)
            .is_none()
    );
    assert!(
        parapet
            .client()
            .timeout(quick)
            .query("drop.zone.test.", RecordType::A)
            .is_none()
    );
    // a response-IP DROP. Unbound 1.17 drops it only as it comes from
    // upstream: from its cache it answers (worker.c drops cached answers
    // for `deny` actions, not RPZ's `always_deny`), so it is asked once.
    // Parapet drops it from upstream and from its cache alike.
    let drop = |server| {
        Client::new(server)
            .timeout(quick)
            .query("ip-drop.zone.test.", RecordType::A)
    };
    assert!(drop(unbound.addr).is_none());
    for round in 0..2 {
        let answer = drop(parapet.dns);
        assert!(answer.is_none(), "round {round}: {answer:?}");
    }
    // client-IP triggers: the same names asked from other loopback addresses
    let from: &[(&str, &str, RecordType)] = &[
        ("127.0.0.2", "www.zone.test.", RecordType::A), // client NXDOMAIN beats no rule
        ("127.0.0.2", "local.zone.test.", RecordType::A), // ...and a QNAME trigger of its feed
        ("127.0.0.2", "safe.zone.test.", RecordType::A), // the allowlist (first zone) wins
        ("127.0.0.3", "www.zone.test.", RecordType::A), // client local data
        ("127.0.0.3", "www.zone.test.", RecordType::AAAA), // of another type: NODATA
        ("127.0.0.3", "www.zone.test.", RecordType::TXT),
        ("127.0.0.4", "www.zone.test.", RecordType::A), // client PASSTHRU...
        ("127.0.0.4", "nx.zone.test.", RecordType::A),  // ...leaves the QNAME trigger in force
        // ...and skips response-IP. Unbound skips it only for an answer
        // from upstream (from its cache it applies it), so this name is
        // asked once, here
        ("127.0.0.4", "ip-client.zone.test.", RecordType::A),
        ("127.0.0.6", "www.zone.test.", RecordType::A), // in the /30: NODATA
        ("127.0.0.6", "ip-nx.zone.test.", RecordType::A),
        ("127.0.0.8", "www.zone.test.", RecordType::A), // outside every trigger
    ];
    for &(source, name, rtype) in from {
        let u = Client::new(unbound.addr)
            .from(source)
            .query(name, rtype)
            .expect("unbound answers");
        let p = Client::new(parapet.dns)
            .from(source)
            .query(name, rtype)
            .expect("parapet answers");
        if (u.rcode, &u.records) != (p.rcode, &p.records) {
            diffs.push(format!(
                "from {source}: {name} {rtype}: unbound {:?} {:?} / parapet {:?} {:?}",
                u.rcode, u.records, p.rcode, p.records
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "differences from Unbound:\n{}",
        diffs.join("\n")
    );
    // and the policy did apply (not a pair of identical pass-throughs)
    let nx = parapet
        .client()
        .query("nx.zone.test.", RecordType::A)
        .unwrap();
    assert_eq!(nx.rcode, hickory_proto::op::ResponseCode::NXDomain);
    let ip = parapet
        .client()
        .query("ip-local.zone.test.", RecordType::A)
        .unwrap();
    assert_eq!(
        ip.records,
        [
            "ip-local.zone.test. A 10.0.0.5",
            "ip-local.zone.test. A 10.0.0.6"
        ]
    );
    let client = Client::new(parapet.dns)
        .from("127.0.0.2")
        .query("www.zone.test.", RecordType::A)
        .unwrap();
    assert_eq!(client.rcode, hickory_proto::op::ResponseCode::NXDomain);
    // an address trigger's match is a feed match in the stored events, for
    // detection and the dashboard, as a QNAME one
    let db = rusqlite::Connection::open(parapet.path("parapet-data/parapet.sqlite")).unwrap();
    let stored = |qname: &str, action: &str| {
        db.query_row(
            "SELECT COUNT(*) FROM query_events WHERE qname = ?1 AND action = ?2 AND feed = 'policy'",
            [qname, action],
            |r| r.get::<_, i64>(0),
        )
        .unwrap()
            > 0
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let want = [
        ("ip-nx.zone.test", "blocked"),
        ("ip-drop.zone.test", "dropped"),
        ("ip-local.zone.test", "local_data"),
        ("www.zone.test", "nodata"),
    ];
    while !want.iter().all(|(q, a)| stored(q, a)) {
        assert!(
            std::time::Instant::now() < deadline,
            "events not stored: {:?}",
            want.iter()
                .filter(|(q, a)| !stored(q, a))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
