//! Who may use the resolver: `[dns] allow` and `deny`, compiled once per
//! snapshot into one prefix trie so that a query pays a single
//! longest-prefix lookup.
//!
//! A client is answered when no `deny` network holds it and an `allow`
//! network or a tenant's network does; everyone else gets REFUSED. Deny
//! wins whatever the prefix lengths: an `allow` network inside a `deny`
//! one is dropped when compiling, so that the longest match in the trie is
//! the verdict. Tenant networks are not in the trie: a client the tenant
//! map attributed to a tenant is allowed unless a deny network matches.

use std::net::IpAddr;

use ipnet::IpNet;
use parapet_core::tenant::{DEFAULT_TENANT, TenantId};
use prefix_trie::joint::JointPrefixMap;

/// The compiled allow and deny lists.
#[derive(Clone)]
pub struct Access {
    /// `true`: allowed, `false`: denied.
    trie: JointPrefixMap<IpNet, bool>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").finish_non_exhaustive()
    }
}

/// The networks allowed when `[dns] allow` is not given: loopback only.
pub const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

impl Default for Access {
    /// Loopback allowed, nothing denied.
    fn default() -> Self {
        let nets: Vec<IpNet> = LOOPBACK.iter().map(|n| n.parse().expect("valid")).collect();
        Self::new(&nets, &[])
    }
}

impl Access {
    /// Compiles `allow` and `deny` (tenant networks are allowed without
    /// being listed: see the module comment).
    pub fn new(allow: &[IpNet], deny: &[IpNet]) -> Self {
        let mut trie = JointPrefixMap::new();
        for a in allow {
            let a = a.trunc();
            if !deny.iter().any(|d| d.contains(&a)) {
                trie.insert(a, true);
            }
        }
        for d in deny {
            trie.insert(d.trunc(), false);
        }
        Self { trie }
    }

    /// Whether `ip`, attributed to `tenant`, may be answered. IPv4-mapped
    /// IPv6 addresses (a dual-stack socket) are matched as IPv4, as the
    /// tenant map does.
    #[inline]
    pub fn allows(&self, ip: IpAddr, tenant: TenantId) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match self.trie.get_lpm(&IpNet::from(ip)) {
            Some((_, &verdict)) => verdict,
            None => tenant != DEFAULT_TENANT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_only_by_default() {
        let a = Access::default();
        assert!(a.allows(ip("127.0.0.1"), DEFAULT_TENANT));
        assert!(a.allows(ip("127.9.9.9"), DEFAULT_TENANT));
        assert!(a.allows(ip("::1"), DEFAULT_TENANT));
        assert!(a.allows(ip("::ffff:127.0.0.1"), DEFAULT_TENANT));
        assert!(!a.allows(ip("192.0.2.1"), DEFAULT_TENANT));
        assert!(!a.allows(ip("2001:db8::1"), DEFAULT_TENANT));
    }

    #[test]
    fn tenant_clients_are_allowed_unless_denied() {
        let a = Access::new(&nets(&LOOPBACK), &nets(&["10.9.0.0/16"]));
        assert!(a.allows(ip("10.1.2.3"), 3));
        assert!(!a.allows(ip("10.1.2.3"), DEFAULT_TENANT));
        assert!(!a.allows(ip("10.9.1.1"), 3), "deny beats a tenant network");
    }

    #[test]
    fn deny_wins_whatever_the_prefix_lengths() {
        let a = Access::new(
            &nets(&["10.0.0.0/8", "10.1.2.0/24", "2001:db8::/32"]),
            &nets(&["10.1.0.0/16", "10.200.0.7/32", "2001:db8:bad::/48"]),
        );
        assert!(a.allows(ip("10.9.9.9"), DEFAULT_TENANT));
        // the /24 allowed inside the denied /16 stays denied
        assert!(!a.allows(ip("10.1.2.3"), DEFAULT_TENANT));
        assert!(!a.allows(ip("10.1.200.1"), DEFAULT_TENANT));
        assert!(!a.allows(ip("10.200.0.7"), DEFAULT_TENANT));
        assert!(a.allows(ip("10.200.0.8"), DEFAULT_TENANT));
        assert!(a.allows(ip("2001:db8:1::1"), DEFAULT_TENANT));
        assert!(!a.allows(ip("2001:db8:bad::1"), DEFAULT_TENANT));
        // the same network in both lists: denied
        let same = Access::new(&nets(&["192.0.2.0/24"]), &nets(&["192.0.2.0/24"]));
        assert!(!same.allows(ip("192.0.2.1"), DEFAULT_TENANT));
    }

    #[test]
    fn host_bits_and_catch_all() {
        let a = Access::new(&nets(&["192.0.2.77/24", "0.0.0.0/0"]), &nets(&["::/0"]));
        assert!(a.allows(ip("198.51.100.1"), DEFAULT_TENANT));
        assert!(!a.allows(ip("::1"), DEFAULT_TENANT));
        assert!(!a.allows(ip("2001:db8::1"), 2));
    }
}
