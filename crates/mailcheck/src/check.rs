//! Checking one domain: looks up its MX, SPF, DMARC and DKIM records
//! through one nameserver and collects findings. Raw records are always
//! kept in the report, even when they are invalid.

use std::time::SystemTime;

use crate::dns::{Dns, DnsError, Lookup};
use crate::finding::{Finding, Level};
use crate::{dkim, dmarc, spf};

/// What to check beyond the records found by name.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// DKIM selectors to look up (`<selector>._domainkey.<domain>`).
    pub dkim_selectors: Vec<String>,
    /// Probe STARTTLS on every MX host (`None`: skip).
    pub tls: Option<crate::tls::TlsOptions>,
    /// How MTA-STS policies are fetched.
    pub sts: crate::sts::StsOptions,
}

/// The raw records behind the findings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    /// Every TXT record at the domain that looks like SPF (`v=spf1`).
    pub spf: Vec<String>,
    /// Records reached through include/redirect, as (domain, record).
    pub spf_includes: Vec<(String, String)>,
    /// Every TXT string at `_dmarc.<domain>` (or the organisational domain).
    pub dmarc: Vec<String>,
    /// Where the DMARC record was found.
    pub dmarc_domain: Option<String>,
    pub mx: Vec<(u16, String)>,
    /// (selector, TXT record if any).
    pub dkim: Vec<(String, Option<String>)>,
    /// What STARTTLS probes of the MX hosts saw.
    pub tls: Vec<crate::tls::TlsResult>,
    /// MTA-STS and TLS-RPT records, and the policy file.
    pub sts: crate::sts::StsRecords,
}

/// Everything found about one domain.
#[derive(Debug, Clone)]
pub struct Report {
    pub domain: String,
    pub checked_at: SystemTime,
    pub records: Records,
    pub findings: Vec<Finding>,
}

impl Report {
    /// The worst severity among the findings.
    pub fn worst(&self) -> Option<Level> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Checks one domain.
pub async fn check_domain(dns: &Dns, domain: &str, opts: &Options) -> Report {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let mut r = Report {
        domain: domain.clone(),
        checked_at: SystemTime::now(),
        records: Records::default(),
        findings: Vec::new(),
    };
    let null_mx = check_mx(dns, &domain, opts, &mut r).await;
    let spf_raw = check_spf(dns, &domain, &mut r).await;
    let dmarc_rec = check_dmarc(dns, &domain, &mut r).await;
    if null_mx {
        check_no_mail(&domain, spf_raw.as_deref(), dmarc_rec.as_ref(), &mut r);
    } else {
        let hosts: Vec<String> = r
            .records
            .mx
            .iter()
            .map(|(_, h)| h.clone())
            .filter(|h| h != ".")
            .collect();
        let (sts, findings) = crate::sts::check(dns, &domain, &hosts, &opts.sts).await;
        r.records.sts = sts;
        r.findings.extend(findings);
    }
    for sel in &opts.dkim_selectors {
        check_dkim(dns, &domain, sel, &mut r).await;
    }
    r
}

fn dns_failed(code: &'static str, what: &str, e: &DnsError) -> Finding {
    Finding::warning(code, format!("{what} could not be looked up: {e}"))
}

/// Returns whether the domain publishes a null MX (it receives no mail).
async fn check_mx(dns: &Dns, domain: &str, opts: &Options, r: &mut Report) -> bool {
    let mx = match dns.mx(domain).await {
        Ok(Lookup::Found(mx)) => mx,
        Ok(Lookup::NxDomain) => {
            r.findings.push(Finding::error(
                "domain.missing",
                format!("{domain} does not exist in the DNS"),
            ));
            return false;
        }
        Ok(Lookup::NoData) => Vec::new(),
        Err(e) => {
            r.findings
                .push(dns_failed("mx.lookup_failed", "the MX records", &e));
            return false;
        }
    };
    r.records.mx = mx.clone();
    if mx.len() == 1 && (mx[0].1 == "." || mx[0].1.is_empty()) {
        r.findings.push(Finding::info(
            "mx.null",
            "a null MX (`0 .`, RFC 7505) says this domain receives no mail; it must then also refuse to be used as a sender (checked below)",
        ).on("0 ."));
        return true;
    }
    if mx.is_empty() {
        r.findings.push(Finding::warning(
            "mx.missing",
            format!("{domain} has no MX record: senders fall back to its address record. If it receives no mail, publish a null MX (`0 .`) and the no-mail SPF and DMARC records"),
        ));
        return false;
    }
    if mx.iter().any(|(_, h)| h == ".") {
        r.findings.push(Finding::error(
            "mx.null_mixed",
            "a null MX (`0 .`) must be the only MX record (RFC 7505); remove it or the others",
        ));
    }
    for (pref, host) in &mx {
        if host == "." {
            continue;
        }
        let v4 = dns.addrs(host, false).await;
        let v6 = dns.addrs(host, true).await;
        let first = |l: &Result<Lookup<std::net::IpAddr>, DnsError>| match l {
            Ok(Lookup::Found(a)) => a.first().copied(),
            _ => None,
        };
        if let (Some(tls), Some(addr)) = (&opts.tls, first(&v4).or_else(|| first(&v6))) {
            let (res, findings) = crate::tls::probe(host, addr, tls).await;
            r.records.tls.push(res);
            r.findings
                .extend(findings.into_iter().map(|f| f.on(format!("{pref} {host}"))));
        }
        match (v4, v6) {
            (Ok(a), Ok(b)) if a.is_void() && b.is_void() => r.findings.push(
                Finding::error(
                    "mx.host_no_address",
                    format!("mail server {host} (MX {pref}) has no A or AAAA record, so mail cannot be delivered to it"),
                )
                .on(format!("{pref} {host}")),
            ),
            (Err(e), _) | (_, Err(e)) => r
                .findings
                .push(dns_failed("mx.lookup_failed", &format!("the address of {host}"), &e)),
            _ => {}
        }
    }
    false
}

/// Returns the SPF record, if exactly one.
async fn check_spf(dns: &Dns, domain: &str, r: &mut Report) -> Option<String> {
    let txts = match dns.txt(domain).await {
        Ok(l) => l.records(),
        Err(e) => {
            r.findings
                .push(dns_failed("spf.lookup_failed", "the SPF record", &e));
            return None;
        }
    };
    r.records.spf = txts.iter().filter(|t| spf::is_spf(t)).cloned().collect();
    let raw = match spf::select(&txts) {
        Ok(Some(raw)) => raw,
        Ok(None) => {
            r.findings.push(Finding::error(
                "spf.missing",
                format!("{domain} has no SPF record, so anyone can send mail claiming to be from it. Publish one listing your senders and ending `-all` (or `v=spf1 -all` if it sends no mail)"),
            ));
            return None;
        }
        Err(f) => {
            r.findings.push(f);
            return None;
        }
    };
    let (rec, errors) = spf::parse(&raw);
    r.findings.extend(errors);
    let rec = rec?;
    r.findings.extend(spf::check_record(&rec));
    let ev = spf::evaluate(dns, domain, &rec).await;
    r.records.spf_includes = ev.records.iter().skip(1).cloned().collect();
    r.findings.extend(ev.findings);
    Some(raw)
}

/// Looks up DMARC at the domain, then at its organisational domain.
async fn check_dmarc(dns: &Dns, domain: &str, r: &mut Report) -> Option<dmarc::DmarcRecord> {
    let org = psl::domain_str(domain).unwrap_or(domain).to_string();
    let mut candidates = vec![domain.to_string()];
    if org != domain {
        candidates.push(org.clone());
    }
    let mut found: Option<(String, String)> = None;
    for at in &candidates {
        let name = format!("_dmarc.{at}");
        let txts = match dns.txt(&name).await {
            Ok(l) => l.records(),
            Err(e) => {
                r.findings.push(dns_failed(
                    "dmarc.lookup_failed",
                    &format!("the DMARC record at {name}"),
                    &e,
                ));
                return None;
            }
        };
        if txts.is_empty() {
            continue;
        }
        match dmarc::select(&txts) {
            Ok(Some(raw)) => {
                r.records.dmarc = txts;
                r.records.dmarc_domain = Some(at.clone());
                found = Some((at.clone(), raw));
                break;
            }
            Ok(None) => {
                // receivers ignore a record with v=DMARC1 out of place:
                // say so, then look further as they do
                r.findings.extend(dmarc::misplaced_version(&txts));
                r.records.dmarc = txts;
                continue;
            }
            Err(f) => {
                r.records.dmarc = txts;
                r.records.dmarc_domain = Some(at.clone());
                r.findings.push(f);
                return None;
            }
        }
    }
    let Some((at, raw)) = found else {
        r.findings.push(Finding::error(
            "dmarc.missing",
            format!("no DMARC record at _dmarc.{domain}{}: receivers get no policy for mail that fails SPF and DKIM, and you get no reports. Publish `v=DMARC1; p=none; rua=mailto:dmarc-rua@dmarc.service.gov.uk` to start, then move to quarantine or reject",
                if org != domain { format!(" or _dmarc.{org}") } else { String::new() }),
        ));
        return None;
    };
    if at != domain {
        r.findings.push(
            Finding::info(
                "dmarc.inherited",
                format!("{domain} has no DMARC record of its own; the organisational domain's record at _dmarc.{at} applies (its `sp=` policy, or `p=` when there is none)"),
            )
            .on(&raw),
        );
    }
    let (rec, errors) = dmarc::parse(&raw);
    r.findings.extend(errors);
    let rec = rec?;
    r.findings.extend(dmarc::check(&rec));
    for dest in dmarc::external_destinations(&rec, &at) {
        let name = format!("{at}._report._dmarc.{dest}");
        match dns.txt(&name).await {
            Ok(l) => {
                if !dmarc::authorises(&l.records()) {
                    r.findings.push(
                        Finding::warning(
                            "dmarc.external_rua_unauthorised",
                            format!("reports go to {dest}, another organisation's domain, but {dest} does not publish `{name}` TXT `v=DMARC1` to accept them (RFC 7489 §7.1); receivers will not send reports there. Ask them to publish it, or change the address"),
                        )
                        .on(&raw),
                    );
                }
            }
            Err(e) => r.findings.push(dns_failed(
                "dmarc.lookup_failed",
                &format!("the report authorisation {name}"),
                &e,
            )),
        }
    }
    Some(rec)
}

/// A domain that receives no mail (null MX) must not send any either.
fn check_no_mail(
    domain: &str,
    spf_raw: Option<&str>,
    dmarc: Option<&dmarc::DmarcRecord>,
    r: &mut Report,
) {
    let spf_ok = spf_raw.is_some_and(|s| {
        let words: Vec<String> = s.split_whitespace().map(str::to_ascii_lowercase).collect();
        words == ["v=spf1", "-all"]
    });
    if !spf_ok {
        r.findings.push(Finding::error(
            "parked.spf",
            format!("{domain} receives no mail (null MX), so its SPF record should be exactly `v=spf1 -all`: nothing may send as it"),
        ));
    }
    let dmarc_ok = dmarc.is_some_and(|d| {
        d.policy == dmarc::Policy::Reject
            && d.subdomain_policy
                .is_none_or(|sp| sp == dmarc::Policy::Reject)
    });
    if !dmarc_ok {
        r.findings.push(Finding::error(
            "parked.dmarc",
            format!("{domain} receives no mail (null MX), so its DMARC record should be `v=DMARC1; p=reject; sp=reject`"),
        ));
    }
}

async fn check_dkim(dns: &Dns, domain: &str, selector: &str, r: &mut Report) {
    let name = format!("{selector}._domainkey.{domain}");
    let txts = match dns.txt(&name).await {
        Ok(l) => l.records(),
        Err(e) => {
            r.findings.push(dns_failed(
                "dkim.lookup_failed",
                &format!("the DKIM key at {name}"),
                &e,
            ));
            return;
        }
    };
    let Some(raw) = txts.into_iter().next() else {
        r.records.dkim.push((selector.to_string(), None));
        r.findings.push(Finding::warning(
            "dkim.selector_missing",
            format!(
                "no DKIM key at {name}: mail signed with selector `{selector}` cannot be verified"
            ),
        ));
        return;
    };
    r.records
        .dkim
        .push((selector.to_string(), Some(raw.clone())));
    let (key, errors) = dkim::parse(&raw);
    r.findings.extend(errors.into_iter().map(|mut f| {
        f.message = format!("selector `{selector}`: {}", f.message);
        f
    }));
    if let Some(key) = key {
        r.findings
            .extend(dkim::check(&key).into_iter().map(|mut f| {
                f.message = format!("selector `{selector}`: {}", f.message);
                f
            }));
    }
}
