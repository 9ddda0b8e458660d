//! Who sent the mail a DMARC report counts: each source IP's reverse DNS
//! name (PTR), checked forward-confirmed (the name's A/AAAA records hold
//! the IP, so the name is not just what the IP's owner chose to claim), its
//! registrable domain, and the service that name belongs to from a bundled
//! map (`senders.txt`) that configuration extends.
//!
//! Lookups go through the Mail Check [`Dns`] client (Parapet's resolver or
//! the `[mailcheck]` nameserver); the caller keeps the answers (the store
//! persists them), so each IP is looked up once, not once per report.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::dns::{Dns, Lookup};

/// The bundled map: one `DOMAIN TYPE NAME...` a line (see the file).
const BUNDLED: &str = include_str!("senders.txt");

/// PTR names tried for forward confirmation, when an IP has several.
const MAX_PTR_NAMES: usize = 4;

/// A sending service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// `mailbox`, `marketing`, `transactional`, `gateway`, `crm`,
    /// `helpdesk` (or what the configuration says).
    pub kind: String,
}

/// Domain → service, the bundled entries overridden by configured ones.
#[derive(Debug, Clone)]
pub struct ServiceMap {
    by_domain: HashMap<String, Service>,
}

impl Default for ServiceMap {
    fn default() -> Self {
        Self::bundled()
    }
}

impl ServiceMap {
    /// The map shipped in `senders.txt`.
    pub fn bundled() -> Self {
        let mut by_domain = HashMap::new();
        for line in BUNDLED.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((domain, rest)) = line.split_once(char::is_whitespace) else {
                continue;
            };
            let rest = rest.trim();
            let (kind, name) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            by_domain.insert(
                domain.to_ascii_lowercase(),
                Service {
                    name: name.trim().to_string(),
                    kind: kind.to_string(),
                },
            );
        }
        Self { by_domain }
    }

    /// Adds (or replaces) the service of `domain`.
    pub fn insert(&mut self, domain: &str, name: &str, kind: &str) {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        self.by_domain.insert(
            domain,
            Service {
                name: name.to_string(),
                kind: kind.to_string(),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.by_domain.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// The service of a host name: the longest map domain that is the name
    /// or a parent of it.
    pub fn service_of(&self, host: &str) -> Option<&Service> {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let mut rest = host.as_str();
        loop {
            if let Some(s) = self.by_domain.get(rest) {
                return Some(s);
            }
            rest = rest.split_once('.')?.1;
        }
    }
}

/// The registrable domain of a host name per the public suffix list
/// (`mail-x.outbound.protection.outlook.com` → `outlook.com`); `None` for
/// a public suffix itself.
pub fn base_domain(host: &str) -> Option<String> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    psl::domain_str(&host).map(str::to_string)
}

/// What reverse DNS says about one source IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub ip: IpAddr,
    /// The PTR name (the confirmed one if any is), without the final dot;
    /// `None` when the IP has none.
    pub ptr: Option<String>,
    /// The PTR name's A/AAAA records hold the IP.
    pub confirmed: bool,
    /// The registrable domain of `ptr`.
    pub base_domain: Option<String>,
    /// The service, named only from a confirmed PTR: an unconfirmed name
    /// is whatever the IP's owner wrote and proves nothing.
    pub service: Option<Service>,
}

/// Limits of one identification run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// IPs looked up at most per run; the rest wait for a later run.
    pub max_ips: usize,
    /// Lookups in flight at once.
    pub concurrency: usize,
    /// Time allowed for one IP (its PTR and forward lookups together).
    pub per_ip: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_ips: 500,
            concurrency: 16,
            per_ip: Duration::from_secs(5),
        }
    }
}

/// Identifies one IP. `Err` is a failed lookup (timeout, SERVFAIL): the
/// answer is unknown, not "no PTR", so the caller should try again later.
pub async fn identify(dns: &Dns, map: &ServiceMap, ip: IpAddr) -> Result<Identity, String> {
    let names = match dns.ptr(ip).await.map_err(|e| e.to_string())? {
        Lookup::Found(n) => n,
        Lookup::NoData | Lookup::NxDomain => Vec::new(),
    };
    let mut confirmed = None;
    for name in names.iter().take(MAX_PTR_NAMES) {
        let addrs = dns
            .addrs(name, ip.is_ipv6())
            .await
            .map_err(|e| e.to_string())?;
        if addrs.records().contains(&ip) {
            confirmed = Some(name.clone());
            break;
        }
    }
    let is_confirmed = confirmed.is_some();
    let ptr = confirmed.or_else(|| names.first().cloned());
    let service = match (&ptr, is_confirmed) {
        (Some(p), true) => map.service_of(p).cloned(),
        _ => None,
    };
    Ok(Identity {
        ip,
        base_domain: ptr.as_deref().and_then(base_domain),
        ptr,
        confirmed: is_confirmed,
        service,
    })
}

/// Identifies up to `limits.max_ips` of `ips`, `limits.concurrency` at a
/// time. Returns the identities found and, for the IPs whose lookups
/// failed or timed out, why; IPs over the bound are in neither.
pub async fn identify_all(
    dns: &Dns,
    map: &ServiceMap,
    ips: &[IpAddr],
    limits: Limits,
) -> (Vec<Identity>, Vec<(IpAddr, String)>) {
    let sem = Arc::new(tokio::sync::Semaphore::new(limits.concurrency.max(1)));
    let map = Arc::new(map.clone());
    let mut tasks = tokio::task::JoinSet::new();
    for &ip in ips.iter().take(limits.max_ips) {
        let (dns, map, sem) = (dns.clone(), map.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = tokio::time::timeout(limits.per_ip, identify(&dns, &map, ip)).await;
            (ip, r.unwrap_or_else(|_| Err("timed out".into())))
        });
    }
    let (mut found, mut failed) = (Vec::new(), Vec::new());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(id))) => found.push(id),
            Ok((ip, Err(e))) => failed.push((ip, e)),
            // a task that panicked: its IP is looked up again next run
            Err(_) => {}
        }
    }
    found.sort_by_key(|i| i.ip);
    (found, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_map_names_the_big_services() {
        let m = ServiceMap::bundled();
        assert!(m.len() >= 25, "{}", m.len());
        let name = |h: &str| m.service_of(h).map(|s| s.name.clone());
        assert_eq!(
            name("mail-db5eur03on2091.outbound.protection.outlook.com").as_deref(),
            Some("Microsoft 365")
        );
        assert_eq!(
            name("mail-sor-f41.google.com.").as_deref(),
            Some("Google Workspace")
        );
        assert_eq!(
            name("mail135.atl21.mcdlv.net").as_deref(),
            Some("Mailchimp")
        );
        assert_eq!(
            name("a8-51.smtp-out.amazonses.com").as_deref(),
            Some("Amazon SES")
        );
        assert_eq!(
            name("ses-1.notifications.service.gov.uk").as_deref(),
            Some("GOV.UK Notify")
        );
        assert_eq!(
            m.service_of("o1.ptr1234.sendgrid.net").unwrap().kind,
            "transactional"
        );
        // a name that only ends in the same letters is not the service
        assert_eq!(name("notgoogle.com"), None);
        assert_eq!(name("mail.council.gov.uk"), None);
    }

    #[test]
    fn configured_entries_extend_and_override() {
        let mut m = ServiceMap::bundled();
        m.insert("payroll.example.", "Payroll Ltd", "transactional");
        m.insert("google.com", "Google (council tenant)", "mailbox");
        assert_eq!(
            m.service_of("out1.payroll.example").unwrap().name,
            "Payroll Ltd"
        );
        assert_eq!(
            m.service_of("mail-x.google.com").unwrap().name,
            "Google (council tenant)"
        );
        // the longer, more specific domain still wins
        m.insert("outlook.com", "Outlook.com", "mailbox");
        assert_eq!(
            m.service_of("x.outbound.protection.outlook.com")
                .unwrap()
                .name,
            "Microsoft 365"
        );
    }

    #[test]
    fn base_domains_and_reverse_names() {
        assert_eq!(
            base_domain("ses-1.notifications.service.gov.uk").as_deref(),
            // service.gov.uk is a (private) public suffix: each service
            // under it is its own registrable domain
            Some("notifications.service.gov.uk")
        );
        assert_eq!(
            base_domain("X.Outbound.Protection.Outlook.com.").as_deref(),
            Some("outlook.com")
        );
        assert_eq!(base_domain("co.uk"), None);
        assert_eq!(
            crate::dns::reverse_name("192.0.2.7".parse().unwrap()),
            "7.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            crate::dns::reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }
}
