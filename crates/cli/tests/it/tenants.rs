//! Tenant attribution by client address, IPv4 and IPv6, longest prefix
//! first, and tenant-scoped feeds that add to (never weaken) shared ones.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use crate::harness::{Client, Parapet, free_port, shared_nsd};

#[test]
fn clients_are_attributed_to_tenants() {
    let nsd = shared_nsd();
    let v6_port = free_port();
    let p = Parapet::start_on(
        &[format!("[::1]:{v6_port}")],
        &format!("upstreams = [\"{nsd}\"]"),
        "[[feeds]]\nname = \"shared\"\npath = \"shared.txt\"\nformat = \"domains\"\n\
         [[feeds]]\nname = \"a-only\"\npath = \"a.txt\"\nformat = \"domains\"\ntenants = [\"council-a\"]\n\
         [[feeds]]\nname = \"a-pass\"\npath = \"a-pass.rpz\"\nformat = \"rpz\"\ntenants = [\"council-a\"]\n\
         [[tenants]]\nname = \"council-a\"\nnetworks = [\"127.0.0.2/32\", \"::1/128\"]\n\
         [[tenants]]\nname = \"council-b\"\nnetworks = [\"127.0.0.0/29\"]\n",
        &[
            ("shared.txt", "listed.zone.test\n"),
            ("a.txt", "tenant-only.zone.test\n"),
            // a tenant cannot lift a shared block
            ("a-pass.rpz", "listed.zone.test CNAME rpz-passthru.\n"),
        ],
    );
    let v6: std::net::SocketAddr = format!("[::1]:{v6_port}").parse().unwrap();
    let from = |src: &str| {
        if src.contains(':') {
            Client::new(v6).from(src)
        } else {
            p.client().from(src)
        }
    };
    let rc = |src: &str, name: &str| from(src).query(name, RecordType::A).unwrap().rcode;
    // council-a (a /32 inside council-b's /29: the longer prefix wins) and IPv6
    assert_eq!(
        rc("127.0.0.2", "tenant-only.zone.test."),
        ResponseCode::NXDomain
    );
    assert_eq!(rc("::1", "tenant-only.zone.test."), ResponseCode::NXDomain);
    // council-b and the default tenant do not have council-a's feed
    assert_eq!(
        rc("127.0.0.3", "tenant-only.zone.test."),
        ResponseCode::NoError
    );
    assert_eq!(
        rc("127.0.0.9", "tenant-only.zone.test."),
        ResponseCode::NoError
    );
    // everyone gets the shared feed, council-a's passthru notwithstanding
    for src in ["127.0.0.2", "::1", "127.0.0.3", "127.0.0.9"] {
        assert_eq!(
            rc(src, "listed.zone.test."),
            ResponseCode::NXDomain,
            "{src}"
        );
    }
    let q = |t: &str, action: &str| {
        p.metric(&format!(
            "parapet_dns_queries_total{{tenant=\"{t}\",action=\"{action}\""
        ))
    };
    assert_eq!(q("council-a", "blocked"), 4.0);
    assert_eq!(q("council-b", "blocked"), 1.0);
    // (the harness's readiness probes come from 127.0.0.1, also council-b,
    // and are answered REFUSED by NSD: count NOERROR only)
    assert_eq!(
        p.metric(
            "parapet_dns_queries_total{tenant=\"council-b\",action=\"resolved\",rcode=\"NOERROR\"}"
        ),
        1.0
    );
    assert!(q("default", "resolved") >= 1.0);
    assert_eq!(q("default", "blocked"), 1.0);
}
