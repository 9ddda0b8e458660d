//! RPZ triggers on addresses: response-IP (`.rpz-ip`, the addresses in an
//! answer) and client-IP (`.rpz-client-ip`, the address a query came
//! from), compiled into prefix tries.
//!
//! The semantics are Unbound 1.17's (checked differentially), which differ
//! from the RPZ draft in places:
//! - Within a feed the longest matching prefix wins; across feeds the first
//!   feed with any match wins, as for QNAME triggers.
//! - A client-IP trigger beats a QNAME trigger of the same feed, except that
//!   a client-IP PASSTHRU lets the feed's QNAME trigger apply. A feed earlier
//!   in the configuration wins over a later one whichever kind matched.
//! - Response-IP triggers are consulted only when no QNAME or client-IP
//!   trigger of any feed matched: the draft ranks a response-IP trigger of
//!   an earlier feed above a QNAME trigger of a later one, Unbound does not.
//!   A QNAME or client-IP PASSTHRU (and Parapet's allowlist) also skips
//!   them.
//! - Response-IP triggers apply to A and AAAA queries only. The answer's
//!   address records are tried in order; the first that matches picks the
//!   rule, and the action replaces that record's RRset, keeping the CNAMEs
//!   before it.
//!
//! Where Unbound 1.17 treats an answer from its cache differently from one
//! fresh from upstream, Parapet does not follow it: Unbound's worker.c
//! applies response-IP triggers to a cached answer even after a QNAME or
//! client-IP PASSTHRU, and answers it rather than drop it for
//! `rpz-drop.`. Parapet gives a cached answer the treatment of a fresh one,
//! which is what Unbound does the first time a name is asked.

use std::net::IpAddr;

use ipnet::IpNet;
use prefix_trie::joint::JointPrefixMap;

use crate::policy::{Action, Decision, FeedId, FeedMode, FeedSpec, LocalRecord, Rule};
use crate::tenant::TenantId;

/// One feed's address triggers, as parsed, in file order. A later trigger
/// for the same prefix replaces an earlier one, as in Unbound.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpRules {
    /// Response-IP triggers (`.rpz-ip`).
    pub response: Vec<(IpNet, Action)>,
    /// Client-IP triggers (`.rpz-client-ip`).
    pub client: Vec<(IpNet, Action)>,
}

impl IpRules {
    pub fn len(&self) -> usize {
        self.response.len() + self.client.len()
    }

    pub fn is_empty(&self) -> bool {
        self.response.is_empty() && self.client.is_empty()
    }
}

/// One feed's triggers of one kind.
#[derive(Debug, Clone)]
struct FeedTrie {
    feed: FeedId,
    /// `None` for a shared feed; otherwise the tenants that added it.
    tenants: Option<Box<[TenantId]>>,
    trie: JointPrefixMap<IpNet, Action>,
}

impl FeedTrie {
    fn applies_to(&self, tenant: TenantId) -> bool {
        self.tenants.as_ref().is_none_or(|t| t.contains(&tenant))
    }

    /// The first of `addrs` this feed has a trigger for, with the action
    /// of its longest matching prefix.
    #[inline]
    fn first_match(&self, addrs: &[IpAddr]) -> Option<(usize, Action)> {
        addrs.iter().enumerate().find_map(|(i, a)| {
            self.trie
                .get_lpm(&IpNet::from(*a))
                .map(|(_, action)| (i, *action))
        })
    }
}

/// The triggers of one kind of every feed, in the order the policy
/// consults them (see [`crate::policy::PolicySet::decide`]): shared
/// blocking feeds, then tenants' blocking feeds, then monitor feeds, each
/// in configuration order.
#[derive(Debug, Default, Clone)]
pub struct IpTriggers {
    shared: Vec<FeedTrie>,
    tenant: Vec<FeedTrie>,
    monitor: Vec<FeedTrie>,
    /// Whether any feed has triggers of this kind: the resolver's one test
    /// per query when none has.
    any: bool,
}

/// What address triggers decided, and for which of the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpMatch {
    pub decision: Decision,
    /// Index in the addresses given of the one that matched.
    pub at: usize,
}

impl IpTriggers {
    #[inline]
    pub fn is_empty(&self) -> bool {
        !self.any
    }

    fn first(
        feeds: &[FeedTrie],
        tenant: TenantId,
        addrs: &[IpAddr],
    ) -> Option<(FeedId, usize, Action)> {
        feeds
            .iter()
            .filter(|f| f.applies_to(tenant))
            .find_map(|f| f.first_match(addrs).map(|(i, a)| (f.feed, i, a)))
    }

    /// Decides a set of addresses for a tenant, with the precedence of
    /// QNAME triggers: a shared block, then a tenant's block, then a
    /// PASSTHRU, then a monitor feed's match. A tenant's PASSTHRU never
    /// lifts a shared block.
    pub fn decide(&self, tenant: TenantId, addrs: &[IpAddr]) -> Option<IpMatch> {
        if self.is_empty() || addrs.is_empty() {
            return None;
        }
        let enforce = |(feed, at, action): (FeedId, usize, Action)| {
            let decision = match action {
                Action::Passthru => Decision::Passthru(feed),
                action => Decision::Enforce(Rule { feed, action }),
            };
            IpMatch { decision, at }
        };
        let shared = Self::first(&self.shared, tenant, addrs).map(enforce);
        if let Some(m) = shared
            && matches!(m.decision, Decision::Enforce(_))
        {
            return Some(m);
        }
        let own = Self::first(&self.tenant, tenant, addrs).map(enforce);
        if let Some(m) = own
            && matches!(m.decision, Decision::Enforce(_))
        {
            return Some(m);
        }
        if shared.is_some() {
            return shared;
        }
        if own.is_some() {
            return own;
        }
        Self::first(&self.monitor, tenant, addrs).map(|(feed, at, _)| IpMatch {
            decision: Decision::Monitor(feed),
            at,
        })
    }
}

/// Every feed's address triggers, compiled.
#[derive(Debug, Default, Clone)]
pub struct IpPolicy {
    pub response: IpTriggers,
    pub client: IpTriggers,
}

impl IpPolicy {
    /// Compiles the address triggers of `feeds`; local data moves into
    /// `local`, which [`Action::Local`] indexes afterwards.
    pub fn compile(feeds: &[FeedSpec<'_>], local: &mut Vec<std::sync::Arc<[LocalRecord]>>) -> Self {
        let mut feeds: Vec<_> = feeds.iter().filter(|f| !f.rules.ip.is_empty()).collect();
        feeds.sort_by_key(|f| f.id);
        let mut policy = IpPolicy::default();
        for f in feeds {
            let kinds = [
                (&f.rules.ip.response, &mut policy.response),
                (&f.rules.ip.client, &mut policy.client),
            ];
            for (rules, into) in kinds {
                if rules.is_empty() {
                    continue;
                }
                let mut trie = JointPrefixMap::new();
                for &(net, action) in rules {
                    let action = match action {
                        Action::Local(i) => {
                            local.push(f.rules.local[i as usize].clone().into());
                            Action::Local((local.len() - 1) as u32)
                        }
                        a => a,
                    };
                    trie.insert(net.trunc(), action);
                }
                let feed = FeedTrie {
                    feed: f.id,
                    tenants: f.tenants.map(Into::into),
                    trie,
                };
                into.any = true;
                match (f.mode, &feed.tenants) {
                    (FeedMode::Monitor, _) => into.monitor.push(feed),
                    (FeedMode::Block, None) => into.shared.push(feed),
                    (FeedMode::Block, Some(_)) => into.tenant.push(feed),
                }
            }
        }
        policy
    }

    pub fn is_empty(&self) -> bool {
        self.response.is_empty() && self.client.is_empty()
    }
}

/// The decision for a query given its QNAME decision and what client-IP
/// triggers said, as Unbound 1.17 combines them: the earlier feed wins;
/// in one feed the client-IP trigger wins unless it is a PASSTHRU, which
/// leaves the feed's QNAME trigger in force. Allowlisted names stay so.
pub fn with_client_ip(qname: Decision, client: Option<IpMatch>) -> Decision {
    let Some(client) = client.map(|m| m.decision) else {
        return qname;
    };
    let feed_of = |d: Decision| match d {
        Decision::Enforce(r) => Some(r.feed),
        Decision::Passthru(f) => Some(f),
        Decision::Resolve | Decision::Allowlisted | Decision::Monitor(_) => None,
    };
    if qname == Decision::Allowlisted {
        return qname;
    }
    match (feed_of(qname), feed_of(client)) {
        // a monitor-only client match reports, and never hides a QNAME one
        (_, None) => match qname {
            Decision::Resolve => client,
            _ => qname,
        },
        (Some(q), Some(c)) if q < c => qname,
        (Some(q), Some(c)) if q == c && matches!(client, Decision::Passthru(_)) => qname,
        _ => client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testkit::shared as spec;
    use crate::policy::{FeedRules, NameSet, PolicySet, Trigger};

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn feed(response: &[(&str, Action)], client: &[(&str, Action)]) -> FeedRules {
        let mut r = FeedRules::new();
        r.ip.response = response.iter().map(|(n, a)| (net(n), *a)).collect();
        r.ip.client = client.iter().map(|(n, a)| (net(n), *a)).collect();
        r
    }

    fn enforce(feed: FeedId, action: Action) -> Decision {
        Decision::Enforce(Rule { feed, action })
    }

    #[test]
    fn the_longest_prefix_of_a_feed_wins_for_v4_and_v6() {
        let f = feed(
            &[
                ("192.0.2.0/24", Action::Block),
                ("192.0.2.4/30", Action::Nodata),
                ("192.0.2.5/32", Action::Passthru),
                ("2001:db8::/32", Action::Drop),
                ("2001:db8:1::/48", Action::Block),
                // host bits set, as a feed may write them: the prefix counts
                ("198.51.100.77/24", Action::Block),
            ],
            &[],
        );
        let p = IpPolicy::compile(&[spec(0, &f)], &mut Vec::new());
        let d = |a: &str| p.response.decide(0, &[ip(a)]).map(|m| m.decision);
        assert_eq!(d("192.0.2.1"), Some(enforce(0, Action::Block)));
        assert_eq!(d("192.0.2.6"), Some(enforce(0, Action::Nodata)));
        assert_eq!(d("192.0.2.5"), Some(Decision::Passthru(0)));
        assert_eq!(d("192.0.3.5"), None);
        assert_eq!(d("2001:db8:2::1"), Some(enforce(0, Action::Drop)));
        assert_eq!(d("2001:db8:1::1"), Some(enforce(0, Action::Block)));
        assert_eq!(d("2001:db9::1"), None);
        assert_eq!(d("198.51.100.1"), Some(enforce(0, Action::Block)));
        // an IPv4 address never matches an IPv6 prefix, mapped or not
        assert_eq!(d("::ffff:192.0.2.1"), None);
        assert!(p.client.is_empty());
    }

    #[test]
    fn the_first_feed_with_a_match_wins_and_the_first_address_in_it() {
        let f0 = feed(&[("192.0.2.9/32", Action::Nodata)], &[]);
        let f1 = feed(&[("192.0.2.0/24", Action::Block)], &[]);
        let p = IpPolicy::compile(&[spec(1, &f1), spec(0, &f0)], &mut Vec::new());
        let addrs = [ip("10.0.0.1"), ip("192.0.2.1"), ip("192.0.2.9")];
        // feed 0 matches only the third address, and feed 0 comes first
        assert_eq!(
            p.response.decide(0, &addrs),
            Some(IpMatch {
                decision: enforce(0, Action::Nodata),
                at: 2
            })
        );
        assert_eq!(
            p.response.decide(0, &addrs[..2]),
            Some(IpMatch {
                decision: enforce(1, Action::Block),
                at: 1
            })
        );
        assert_eq!(p.response.decide(0, &addrs[..1]), None);
    }

    #[test]
    fn tenants_and_monitor_feeds_keep_their_places() {
        let shared_pass = feed(&[("192.0.2.0/24", Action::Passthru)], &[]);
        let tenant_block = feed(&[("192.0.2.0/24", Action::Block)], &[]);
        let watch = feed(&[("203.0.113.0/24", Action::Block)], &[]);
        let t1 = [1];
        let feeds = [
            spec(0, &shared_pass),
            FeedSpec {
                id: 1,
                rules: &tenant_block,
                mode: FeedMode::Block,
                tenants: Some(&t1),
            },
            FeedSpec {
                id: 2,
                rules: &watch,
                mode: FeedMode::Monitor,
                tenants: None,
            },
        ];
        let p = IpPolicy::compile(&feeds, &mut Vec::new());
        let d = |t, a: &str| p.response.decide(t, &[ip(a)]).map(|m| m.decision);
        assert_eq!(d(0, "192.0.2.1"), Some(Decision::Passthru(0)));
        // a shared passthru does not lift a tenant's block
        assert_eq!(d(1, "192.0.2.1"), Some(enforce(1, Action::Block)));
        assert_eq!(d(1, "203.0.113.1"), Some(Decision::Monitor(2)));
    }

    #[test]
    fn local_data_moves_into_the_policy_set() {
        let mut f = feed(&[], &[]);
        let act = f.push_local(vec![LocalRecord {
            rtype: crate::policy::rtype::A,
            ttl: 60,
            rdata: Box::new([10, 0, 0, 9]),
        }]);
        f.ip.client.push((net("127.0.0.3/32"), act));
        f.push(
            &crate::name::text_to_key("q.test").unwrap(),
            Trigger::Exact,
            Action::Block,
        );
        let set = PolicySet::compile(NameSet::default(), &[spec(0, &f)], 1);
        let m = set.ip().client.decide(0, &[ip("127.0.0.3")]).unwrap();
        let Decision::Enforce(Rule {
            action: Action::Local(i),
            ..
        }) = m.decision
        else {
            panic!("{m:?}");
        };
        assert_eq!(&*set.local_data(i)[0].rdata, &[10, 0, 0, 9]);
        assert!(set.ip().response.is_empty());
    }

    #[test]
    fn client_ip_and_qname_combine_as_in_unbound() {
        let client = |d| Some(IpMatch { decision: d, at: 0 });
        let block1 = enforce(1, Action::Block);
        let nodata1 = enforce(1, Action::Nodata);
        let block0 = enforce(0, Action::Block);
        // no client match: the QNAME decision
        assert_eq!(with_client_ip(block1, None), block1);
        // same feed: client-IP wins, unless it is a passthru
        assert_eq!(with_client_ip(block1, client(nodata1)), nodata1);
        assert_eq!(
            with_client_ip(block1, client(Decision::Passthru(1))),
            block1
        );
        // the earlier feed wins, whichever kind
        assert_eq!(with_client_ip(block1, client(block0)), block0);
        assert_eq!(with_client_ip(block0, client(nodata1)), block0);
        assert_eq!(
            with_client_ip(Decision::Resolve, client(Decision::Passthru(1))),
            Decision::Passthru(1)
        );
        // the allowlist wins over everything; monitor matches only report
        assert_eq!(
            with_client_ip(Decision::Allowlisted, client(block0)),
            Decision::Allowlisted
        );
        assert_eq!(with_client_ip(Decision::Monitor(3), client(block1)), block1);
        assert_eq!(with_client_ip(block1, client(Decision::Monitor(0))), block1);
        assert_eq!(
            with_client_ip(Decision::Resolve, client(Decision::Monitor(0))),
            Decision::Monitor(0)
        );
    }
}
