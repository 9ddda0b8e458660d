//! Fuzzes the resolver's packet path: the query parser, the response
//! scanner and record copier, and the whole synchronous handler (tenant
//! attribution, policy, cache, answer building) on arbitrary bytes.
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use parapet_core::name::text_to_key;
use parapet_core::policy::{Action, FeedMode, FeedRules, FeedSpec, NameSet, PolicySet, Trigger};
use parapet_core::tenant::TenantMap;
use parapet_dns::{BlockMode, BlockResponse, Metrics, Resolver, Settings, Snapshot, wire};

fn resolver() -> &'static Resolver {
    static R: OnceLock<Resolver> = OnceLock::new();
    R.get_or_init(|| {
        let mut rules = FeedRules::new();
        rules.push(&text_to_key("evil.test").unwrap(), Trigger::Subtree, Action::Block);
        rules.push(&text_to_key("nodata.test").unwrap(), Trigger::Exact, Action::Nodata);
        let feeds = [FeedSpec { id: 0, rules: &rules, mode: FeedMode::Block, tenants: None }];
        let policy = PolicySet::compile(NameSet::default(), &feeds, 1);
        let metrics = Arc::new(Metrics::default());
        let snap = Snapshot::new(
            policy,
            TenantMap::default(),
            &["default".to_string()],
            &["fuzz".to_string()],
            BlockResponse { mode: BlockMode::Nxdomain, ttl: 60 },
            &metrics,
        );
        Resolver::new(Settings::new(vec![], vec![]), snap, metrics, None)
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = wire::parse_query(data);
    let _ = wire::scan_response(data);
    let _ = wire::copy_answers(data, &mut Vec::new());
    let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut out = Vec::new();
    let r = resolver();
    let _ = r.handle(&r.arrival(), data, client, true, parapet_dns::Transport::Udp, &mut out);
    if !out.is_empty() {
        assert!(out.len() >= wire::HEADER_LEN);
    }
});
