//! Tenants (the councils a supplier hosts) and the attribution of a client
//! address to one of them by longest-prefix match over their networks.

use std::collections::HashMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// Index of a tenant in the current configuration. [`DEFAULT_TENANT`] is
/// the tenant of every client no network matches.
pub type TenantId = u16;

/// The tenant unmatched clients belong to.
pub const DEFAULT_TENANT: TenantId = 0;
/// Its name.
pub const DEFAULT_TENANT_NAME: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantMapError {
    #[error("network {net} is claimed by two tenants ({first} and {second})")]
    Overlap {
        net: IpNet,
        first: TenantId,
        second: TenantId,
    },
}

/// Longest-prefix match from client address to tenant.
///
/// One hash map per prefix length present, longest first: a lookup costs one
/// mask and one probe per distinct prefix length (usually a handful), however
/// many networks are configured.
#[derive(Debug, Default, Clone)]
pub struct TenantMap {
    v4: Vec<(u8, HashMap<u32, TenantId>)>,
    v6: Vec<(u8, HashMap<u128, TenantId>)>,
}

impl TenantMap {
    /// Builds the map. The same network given to two tenants is an error;
    /// nested networks are fine (the longer prefix wins).
    pub fn new(networks: &[(IpNet, TenantId)]) -> Result<Self, TenantMapError> {
        let mut v4: HashMap<u8, HashMap<u32, TenantId>> = HashMap::new();
        let mut v6: HashMap<u8, HashMap<u128, TenantId>> = HashMap::new();
        for &(net, tenant) in networks {
            let net = net.trunc();
            let prev = match net {
                IpNet::V4(n) => v4
                    .entry(n.prefix_len())
                    .or_default()
                    .insert(u32::from(n.network()), tenant),
                IpNet::V6(n) => v6
                    .entry(n.prefix_len())
                    .or_default()
                    .insert(u128::from(n.network()), tenant),
            };
            if let Some(first) = prev.filter(|&p| p != tenant) {
                return Err(TenantMapError::Overlap {
                    net,
                    first,
                    second: tenant,
                });
            }
        }
        let mut v4: Vec<_> = v4.into_iter().collect();
        let mut v6: Vec<_> = v6.into_iter().collect();
        v4.sort_by_key(|e| std::cmp::Reverse(e.0));
        v6.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(Self { v4, v6 })
    }

    /// The tenant of a client address. IPv4-mapped IPv6 addresses (from a
    /// dual-stack socket) are matched as IPv4.
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> TenantId {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                for (len, map) in &self.v4 {
                    let mask = if *len == 0 { 0 } else { u32::MAX << (32 - len) };
                    if let Some(&t) = map.get(&(a & mask)) {
                        return t;
                    }
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for (len, map) in &self.v6 {
                    let mask = if *len == 0 {
                        0
                    } else {
                        u128::MAX << (128 - len)
                    };
                    if let Some(&t) = map.get(&(a & mask)) {
                        return t;
                    }
                }
            }
        }
        DEFAULT_TENANT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins() {
        let m = TenantMap::new(&[
            (net("10.0.0.0/8"), 1),
            (net("10.1.0.0/16"), 2),
            (net("10.1.2.3/32"), 3),
            (net("2001:db8::/32"), 4),
            (net("2001:db8:1::/48"), 5),
        ])
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(m.lookup(ip("10.9.9.9")), 1);
        assert_eq!(m.lookup(ip("10.1.9.9")), 2);
        assert_eq!(m.lookup(ip("10.1.2.3")), 3);
        assert_eq!(m.lookup(ip("::ffff:10.1.2.3")), 3);
        assert_eq!(m.lookup(ip("11.0.0.1")), DEFAULT_TENANT);
        assert_eq!(m.lookup(ip("2001:db8:2::1")), 4);
        assert_eq!(m.lookup(ip("2001:db8:1::1")), 5);
        assert_eq!(m.lookup(ip("2001:db9::1")), DEFAULT_TENANT);
    }

    #[test]
    fn host_bits_are_ignored_and_overlap_is_refused() {
        let m = TenantMap::new(&[(net("10.1.2.3/16"), 7)]).unwrap();
        assert_eq!(m.lookup("10.1.200.1".parse().unwrap()), 7);
        let err = TenantMap::new(&[(net("10.1.0.0/16"), 1), (net("10.1.5.0/16"), 2)]).unwrap_err();
        assert!(err.to_string().contains("10.1.0.0/16"), "{err}");
    }

    #[test]
    fn catch_all_prefix() {
        let m = TenantMap::new(&[(net("0.0.0.0/0"), 9), (net("::/0"), 8)]).unwrap();
        assert_eq!(m.lookup("1.2.3.4".parse().unwrap()), 9);
        assert_eq!(m.lookup("::1".parse().unwrap()), 8);
    }
}
