//! After a DMARC import: who sent the mail (forward-confirmed reverse DNS
//! of each new source IP, named from the service map, kept in the store),
//! and a `dmarc.unknown_sender` alert for each source no service vouches
//! for that fails DMARC at volume.
//!
//! Identification runs at import and is persisted, so the dashboard and
//! `dmarc summary` only read. An IP is looked up once; one that no service
//! was named for is looked up again after `[dmarc] recheck_days`, and one
//! whose lookup failed at the next import.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parapet_core::alert::{Severity, Signal};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_mailcheck::dns::Dns;
use parapet_mailcheck::senders::{self, Limits, ServiceMap};
use parapet_store::{Db, DmarcSenderRow, unix_millis};

use crate::config::Config;

/// The alert rule raised for an unknown sender.
pub const UNKNOWN_SENDER_RULE: &str = "dmarc.unknown_sender";

/// The bundled service map with `[[dmarc.senders]]` added.
pub fn service_map(config: &Config) -> ServiceMap {
    let mut map = ServiceMap::bundled();
    for s in &config.dmarc.senders {
        map.insert(&s.domain, &s.name, &s.kind);
    }
    map
}

/// The nameserver Mail Check asks: `[mailcheck] nameserver`, else the
/// first plain (not `tls://`) `[dns] upstreams`, else the system's.
fn dns_client(config: &Config) -> Option<Dns> {
    let configured = config.mailcheck.nameserver.as_deref().and_then(|ns| {
        ns.parse::<SocketAddr>()
            .ok()
            .or_else(|| ns.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
    });
    // Mail Check's stub resolver speaks plain DNS: the first plain upstream
    let plain = || {
        config
            .dns
            .upstreams
            .iter()
            .find(|u| u.tls_name.is_none())
            .map(|u| u.addr)
    };
    match configured.or_else(plain) {
        Some(server) => Some(Dns::new(server)),
        None => Dns::system(),
    }
    .map(|d| d.with_timeout(Duration::from_secs(2)))
}

/// Identifies the source IPs not yet (or no longer) known, within the
/// run's bound. Prints a line saying what it did.
pub fn identify(config: &Config, store: &mut dyn Db, ips: &BTreeSet<String>) -> anyhow::Result<()> {
    let d = &config.dmarc;
    if !d.identify_senders || d.lookups_per_run == 0 || ips.is_empty() {
        return Ok(());
    }
    let Some(dns) = dns_client(config) else {
        eprintln!("warning: no nameserver to identify DMARC senders with");
        return Ok(());
    };
    let list: Vec<String> = ips.iter().cloned().collect();
    let known: BTreeMap<String, DmarcSenderRow> = store
        .dmarc_senders(&list)?
        .into_iter()
        .map(|r| (r.source_ip.clone(), r))
        .collect();
    let now = unix_millis(SystemTime::now());
    let recheck = i64::from(d.recheck_days) * 86_400_000;
    let due: Vec<IpAddr> = list
        .iter()
        .filter(|ip| match known.get(*ip) {
            None => true,
            Some(k) => k.service.is_none() && now - k.checked_at >= recheck,
        })
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if due.is_empty() {
        return Ok(());
    }
    let limits = Limits {
        max_ips: d.lookups_per_run,
        concurrency: 16,
        per_ip: Duration::from_secs(d.lookup_timeout_secs.max(1)),
    };
    let map = service_map(config);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (found, failed) = rt.block_on(senders::identify_all(&dns, &map, &due, limits));
    for (ip, e) in &failed {
        eprintln!("warning: reverse DNS of {ip}: {e} (tried again at the next import)");
    }
    let rows: Vec<DmarcSenderRow> = found
        .iter()
        .map(|i| DmarcSenderRow {
            source_ip: i.ip.to_string(),
            ptr: i.ptr.clone(),
            confirmed: i.confirmed,
            base_domain: i.base_domain.clone(),
            service: i.service.as_ref().map(|s| s.name.clone()),
            service_type: i.service.as_ref().map(|s| s.kind.clone()),
            checked_at: now,
        })
        .collect();
    store.save_dmarc_senders(&rows)?;
    let named = rows.iter().filter(|r| r.service.is_some()).count();
    let left = due.len().saturating_sub(limits.max_ips);
    println!(
        "{} senders identified ({named} named), {} lookups failed, {left} left for the next import",
        rows.len(),
        failed.len()
    );
    Ok(())
}

/// The tenant whose `mail_domains` hold `domain`, else the supplier's.
fn tenant_of(config: &Config, domain: &str) -> String {
    config
        .tenants
        .iter()
        .find(|t| {
            t.mail_domains
                .iter()
                .any(|m| m.eq_ignore_ascii_case(domain))
        })
        .map_or_else(
            || crate::loader::SUPPLIER_TENANT.to_string(),
            |t| t.name.get_ref().clone(),
        )
}

/// Raises `dmarc.unknown_sender` for each source of `imported` (domain →
/// source IPs of the reports just stored) that is an unknown sender. The
/// alert is one per tenant and source IP: a later report naming the same
/// sender folds into it and notifies nobody again. Returns how many were
/// raised.
pub fn alert_unknown(
    config: &Config,
    store: &mut dyn Db,
    imported: &BTreeMap<String, BTreeSet<String>>,
) -> anyhow::Result<usize> {
    let threshold = config.dmarc.unknown_sender_threshold;
    let mut signals = Vec::new();
    for (domain, ips) in imported {
        let sum = store.dmarc_summary(domain)?;
        for s in sum.sources.iter().filter(|s| ips.contains(&s.source_ip)) {
            if !s.unknown_sender(threshold) {
                continue;
            }
            let who = match &s.sender {
                Some(d) if d.confirmed => {
                    format!("reverse DNS {}", d.ptr.as_deref().unwrap_or("-"))
                }
                Some(d) if d.ptr.is_some() => format!(
                    "reverse DNS {} (not forward-confirmed)",
                    d.ptr.as_deref().unwrap_or("-")
                ),
                Some(_) => "no reverse DNS".to_string(),
                None => "not identified yet".to_string(),
            };
            signals.push(Signal {
                time: SystemTime::now(),
                tenant: Arc::from(tenant_of(config, domain)),
                rule: UNKNOWN_SENDER_RULE,
                severity: Severity::Medium,
                domain: s.source_ip.clone(),
                client: ClientPseudonym([0; 8]),
                feed: None,
                reason: format!(
                    "{} ({who}) sent {} messages as {domain} that failed DMARC, and no known service sends from it",
                    s.source_ip,
                    s.failed()
                ),
                evidence: format!(
                    "{domain} {} messages={} failed={}",
                    s.source_ip,
                    s.messages,
                    s.failed()
                ),
                folded: None,
            });
        }
    }
    if signals.is_empty() {
        return Ok(0);
    }
    let raised = store
        .record_signals(&signals)?
        .iter()
        .filter(|(_, raised)| *raised)
        .count();
    Ok(raised)
}
