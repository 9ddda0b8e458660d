//! MTA-STS (RFC 8461) and TLS-RPT (RFC 8460).
//!
//! The policy is fetched from `https://mta-sts.<domain>/.well-known/mta-sts.txt`
//! with the host name resolved through the same nameserver as every other
//! lookup, trying each of its addresses, over a certificate-checked TLS
//! connection with hyper's HTTP/1.1 client, without following redirects
//! (RFC 8461 §3.3).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::dns::{Dns, Lookup};
use crate::finding::Finding;

/// The NCSC Mail Check TLS-RPT mailbox.
pub const NCSC_TLSRPT: &str = "mailto:tls-rua@mailcheck.service.ncsc.gov.uk";
/// Largest policy file read.
const MAX_POLICY: usize = 64 * 1024;

/// How to fetch policies.
#[derive(Debug, Clone)]
pub struct StsOptions {
    /// HTTPS port (443; tests use others).
    pub port: u16,
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub timeout: Duration,
}

impl Default for StsOptions {
    fn default() -> Self {
        Self {
            port: 443,
            extra_roots: Vec::new(),
            timeout: Duration::from_secs(15),
        }
    }
}

/// A parsed policy file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub mode: String,
    pub mx: Vec<String>,
    pub max_age: Option<u64>,
}

/// What MTA-STS and TLS-RPT records and policy were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StsRecords {
    pub mta_sts: Vec<String>,
    pub policy: Option<String>,
    pub tlsrpt: Vec<String>,
}

/// Checks MTA-STS against the domain's MX hosts, and TLS-RPT.
pub async fn check(
    dns: &Dns,
    domain: &str,
    mx_hosts: &[String],
    opts: &StsOptions,
) -> (StsRecords, Vec<Finding>) {
    let mut rec = StsRecords::default();
    let mut f = Vec::new();
    check_tlsrpt(dns, domain, &mut rec, &mut f).await;

    let name = format!("_mta-sts.{domain}");
    let txts = match dns.txt(&name).await {
        Ok(l) => l.records(),
        Err(e) => {
            f.push(Finding::warning(
                "mta_sts.lookup_failed",
                format!("{name} could not be looked up: {e}"),
            ));
            return (rec, f);
        }
    };
    let sts: Vec<String> = txts
        .into_iter()
        .filter(|t| t.starts_with("v=STSv1"))
        .collect();
    rec.mta_sts = sts.clone();
    let raw = match sts.as_slice() {
        [] => {
            if !mx_hosts.is_empty() {
                f.push(Finding::warning(
                    "mta_sts.missing",
                    format!("no MTA-STS record at {name}: senders cannot insist on TLS to your mail servers. Publish a `testing` policy first (with TLS-RPT), then `enforce`"),
                ));
            }
            return (rec, f);
        }
        [one] => one.clone(),
        many => {
            f.push(
                Finding::error(
                    "mta_sts.multiple_records",
                    format!("{} MTA-STS records at {name}; senders ignore MTA-STS when there is more than one (RFC 8461 §3.1)", many.len()),
                )
                .on(many.join(" | ")),
            );
            return (rec, f);
        }
    };
    let id = raw
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == "id")
        .map(|(_, v)| v.trim().to_string());
    match id {
        Some(id) if (1..=32).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric()) => {}
        _ => f.push(
            Finding::error(
                "mta_sts.bad_id",
                "the MTA-STS record needs `id=` of 1 to 32 letters and digits (change it whenever the policy changes)",
            )
            .on(&raw),
        ),
    }

    let host = format!("mta-sts.{domain}");
    let body = match fetch_policy(dns, &host, opts).await {
        Ok(b) => b,
        Err(why) => {
            f.push(Finding::error(
                "mta_sts.policy_fetch_failed",
                format!("the MTA-STS policy at https://{host}/.well-known/mta-sts.txt could not be fetched: {why}. Senders then ignore MTA-STS"),
            ));
            return (rec, f);
        }
    };
    rec.policy = Some(body.clone());
    let policy = match parse_policy(&body) {
        Ok(p) => p,
        Err(why) => {
            f.push(
                Finding::error(
                    "mta_sts.policy_invalid",
                    format!("the MTA-STS policy is invalid: {why}"),
                )
                .on(&body),
            );
            return (rec, f);
        }
    };
    match policy.mode.as_str() {
        "enforce" => {}
        "testing" => f.push(Finding::warning(
            "mta_sts.mode_testing",
            "the MTA-STS policy is in `testing` mode: failures are only reported. Once TLS-RPT reports are clean, change it to `enforce`",
        )),
        _ => f.push(Finding::warning(
            "mta_sts.mode_none",
            "the MTA-STS policy is `none`: it protects nothing",
        )),
    }
    let min_age = if policy.mode == "enforce" {
        1_209_600
    } else {
        86_400
    };
    if let Some(age) = policy.max_age
        && age < min_age
    {
        f.push(Finding::warning(
            "mta_sts.max_age_short",
            format!("max_age is {age} s; use at least {min_age} s ({} days) in {} mode so senders keep the policy", min_age / 86_400, policy.mode),
        ));
    }
    // a `none` policy applies to no host, so it needs no `mx:` lines
    let uncovered: Vec<&String> = mx_hosts
        .iter()
        .filter(|h| !policy.mx.iter().any(|p| mx_matches(p, h)))
        .collect();
    if !uncovered.is_empty() && policy.mode != "none" {
        f.push(Finding::error(
            "mta_sts.mx_not_covered",
            format!(
                "the MTA-STS policy's `mx:` lines ({}) do not cover MX host(s) {}: in enforce mode senders refuse to deliver to them",
                policy.mx.join(", "),
                uncovered.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    // RFC 8461 allows `*.` patterns, but UK guidance (GOV-STS-3) says not to
    // use them: any host under the name with a valid certificate would do
    let wild: Vec<&str> = policy
        .mx
        .iter()
        .filter(|p| p.starts_with("*."))
        .map(String::as_str)
        .collect();
    if !wild.is_empty() {
        f.push(Finding::warning(
            "mta_sts.mx_wildcard",
            format!(
                "the policy's `mx: {}` is a wildcard: senders would accept any host under it that has a valid certificate. UK guidance is to list each MX host by name",
                wild.join("`, `mx: ")
            ),
        ));
    }
    (rec, f)
}

async fn check_tlsrpt(dns: &Dns, domain: &str, rec: &mut StsRecords, f: &mut Vec<Finding>) {
    let name = format!("_smtp._tls.{domain}");
    let txts = match dns.txt(&name).await {
        Ok(Lookup::Found(t)) => t,
        Ok(_) => Vec::new(),
        Err(e) => {
            f.push(Finding::warning(
                "tlsrpt.lookup_failed",
                format!("{name} could not be looked up: {e}"),
            ));
            return;
        }
    };
    let recs: Vec<String> = txts
        .into_iter()
        .filter(|t| t.starts_with("v=TLSRPTv1"))
        .collect();
    rec.tlsrpt = recs.clone();
    let raw = match recs.as_slice() {
        [] => {
            f.push(Finding::warning(
                "tlsrpt.missing",
                format!("no TLS-RPT record at {name}: you get no reports of senders failing to reach you over TLS. Publish `v=TLSRPTv1; rua={NCSC_TLSRPT}`"),
            ));
            return;
        }
        [one] => one.clone(),
        many => {
            f.push(
                Finding::error(
                    "tlsrpt.multiple_records",
                    format!("{} TLS-RPT records at {name}; publish one", many.len()),
                )
                .on(many.join(" | ")),
            );
            return;
        }
    };
    let rua: Vec<String> = raw
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| k.trim() == "rua")
        .flat_map(|(_, v)| {
            v.split(',')
                .map(|u| u.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|u| !u.is_empty())
        .collect();
    if rua.is_empty() {
        f.push(
            Finding::error(
                "tlsrpt.rua_missing",
                "the TLS-RPT record has no `rua=`, so no reports can be sent",
            )
            .on(&raw),
        );
        return;
    }
    for u in &rua {
        if !(u.starts_with("mailto:") || u.starts_with("https://")) {
            f.push(
                Finding::error(
                    "tlsrpt.bad_uri",
                    format!("`{u}` is not a mailto: or https: URI"),
                )
                .on(&raw),
            );
        }
    }
    if !rua.iter().any(|u| u.eq_ignore_ascii_case(NCSC_TLSRPT)) {
        f.push(
            Finding::warning(
                "tlsrpt.ncsc_rua_missing",
                format!("add `{NCSC_TLSRPT}` to rua so NCSC Mail Check receives your TLS reports"),
            )
            .on(&raw),
        );
    }
}

/// RFC 8461 §4.1: a pattern matches the host exactly, or `*.x` matches one
/// label on the left of `x`.
pub fn mx_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    match p.strip_prefix("*.") {
        Some(rest) => h.split_once('.').is_some_and(|(_, tail)| tail == rest),
        None => p == h,
    }
}

/// Parses a policy file (RFC 8461 §3.2).
pub fn parse_policy(body: &str) -> Result<Policy, String> {
    let mut p = Policy::default();
    let mut version = None;
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| format!("`{line}` is not `key: value`"))?;
        let (k, v) = (k.trim(), v.trim());
        match k {
            "version" => version = Some(v.to_string()),
            "mode" => {
                if !matches!(v, "enforce" | "testing" | "none") {
                    return Err(format!("mode `{v}` must be enforce, testing or none"));
                }
                p.mode = v.to_string();
            }
            "mx" => p.mx.push(v.to_string()),
            "max_age" => {
                let age: u64 = v
                    .parse()
                    .map_err(|_| format!("max_age `{v}` is not a number of seconds"))?;
                if age > 31_557_600 {
                    return Err(format!("max_age {age} is more than a year (31557600)"));
                }
                p.max_age = Some(age);
            }
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("the first line must be `version: STSv1`".into());
    }
    if p.mode.is_empty() {
        return Err("no `mode:`".into());
    }
    if p.max_age.is_none() {
        return Err("no `max_age:`".into());
    }
    if p.mx.is_empty() && p.mode != "none" {
        return Err("no `mx:` lines".into());
    }
    Ok(p)
}

/// Most addresses of the policy host tried before giving up.
const MAX_ADDRS: usize = 8;

/// GET the policy (RFC 8461 §3.3): the host resolved through `dns`, each
/// of its addresses (A, then AAAA) tried in turn until one gives an HTTP
/// answer, TLS with certificate checks, HTTP/1.1 through hyper (so chunked
/// and close-delimited bodies are read as any client would), status 200
/// only (a redirect is not followed), `text/plain`, at most 64 KiB, and
/// `opts.timeout` for each address.
async fn fetch_policy(dns: &Dns, host: &str, opts: &StsOptions) -> Result<String, String> {
    let mut addrs = Vec::new();
    let mut dns_errors = Vec::new();
    for v6 in [false, true] {
        match dns.addrs(host, v6).await {
            Ok(l) => addrs.extend(l.records()),
            Err(e) => dns_errors.push(e.to_string()),
        }
    }
    if addrs.is_empty() {
        return Err(if dns_errors.is_empty() {
            format!("{host} has no address")
        } else {
            dns_errors.join("; ")
        });
    }
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in &opts.extra_roots {
        let _ = roots.add(c.clone());
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    let mut failed = Vec::new();
    for addr in addrs.into_iter().take(MAX_ADDRS) {
        let sock = SocketAddr::new(addr, opts.port);
        match timeout(opts.timeout, get_policy(config.clone(), host, sock)).await {
            Ok(Ok(answer)) => return answer,
            Ok(Err(e)) => failed.push(format!("{sock}: {e}")),
            Err(_) => failed.push(format!(
                "{sock}: no answer within {} s",
                opts.timeout.as_secs()
            )),
        }
    }
    Err(failed.join("; "))
}

/// One address: `Err` when it gave no HTTP answer (the next address is
/// tried), `Ok` with the verdict on the answer it gave.
async fn get_policy(
    config: Arc<ClientConfig>,
    host: &str,
    sock: SocketAddr,
) -> Result<Result<String, String>, String> {
    let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(sock)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host} failed: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        // headers beyond this are not a policy server's
        .max_buf_size(MAX_POLICY)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    let req = hyper::Request::get("/.well-known/mta-sts.txt")
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "parapet-mailcheck")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let exchange = async move {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("no HTTP answer: {e}"))?;
        Ok(read_policy(resp).await)
    };
    tokio::pin!(exchange, conn);
    // the connection future does the I/O; once it ends (the server closed),
    // whatever it delivered is still read by the exchange
    tokio::select! {
        r = &mut exchange => r,
        _ = &mut conn => exchange.await,
    }
}

/// The verdict on an HTTP answer (RFC 8461 §3.3).
async fn read_policy(resp: hyper::Response<hyper::body::Incoming>) -> Result<String, String> {
    let status = resp.status();
    let header = |h: hyper::header::HeaderName| {
        resp.headers()
            .get(h)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if status.is_redirection() {
        return Err(format!(
            "the server answered `{status}`{}: policy fetches must not be redirected (RFC 8461 §3.3); serve the policy at this address",
            header(hyper::header::LOCATION)
                .map(|l| format!(" to `{l}`"))
                .unwrap_or_default()
        ));
    }
    if status != hyper::StatusCode::OK {
        return Err(format!("the server answered `{status}`"));
    }
    let ctype = header(hyper::header::CONTENT_TYPE).unwrap_or_default();
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("text/plain") {
        return Err(format!("Content-Type is `{ctype}`, not text/plain"));
    }
    let too_big = || format!("the policy is larger than {MAX_POLICY} bytes");
    if let Some(len) = header(hyper::header::CONTENT_LENGTH)
        && len
            .trim()
            .parse::<u64>()
            .is_ok_and(|n| n > MAX_POLICY as u64)
    {
        return Err(too_big());
    }
    let body = Limited::new(resp.into_body(), MAX_POLICY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<LengthLimitError>() {
                too_big()
            } else {
                format!("the policy could not be read: {e}")
            }
        })?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        let p = parse_policy("version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 1209600\r\n").unwrap();
        assert_eq!(p.mode, "enforce");
        assert_eq!(p.mx.len(), 2);
        assert!(parse_policy("mode: enforce\nmx: a\nmax_age: 1").is_err());
        assert!(parse_policy("version: STSv1\nmode: strict\nmx: a\nmax_age: 1").is_err());
        assert!(
            parse_policy("version: STSv1\nmode: enforce\nmx: a\nmax_age: 99999999999").is_err()
        );
    }

    #[test]
    fn mx_patterns() {
        assert!(mx_matches("mx1.example.com", "MX1.example.com."));
        assert!(mx_matches("*.example.net", "a.example.net"));
        assert!(!mx_matches("*.example.net", "a.b.example.net"));
        assert!(!mx_matches("*.example.net", "example.net"));
    }
}
