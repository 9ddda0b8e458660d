//! `parapet mailcheck`: the e-mail security posture of domains, as a table
//! or JSON, checked concurrently through one nameserver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use anyhow::Context;
use parapet_mailcheck::Level;
use parapet_mailcheck::check::{Options, Report, check_domain};
use parapet_mailcheck::dns::Dns;

use crate::BadInput;
use crate::alerts_cmd::rfc3339;

pub struct Args {
    pub domains: Vec<String>,
    pub from: Option<PathBuf>,
    pub nameserver: Option<String>,
    pub json: bool,
    pub dkim_selectors: Vec<String>,
    pub concurrency: usize,
    /// SMTP port for the STARTTLS probes; `None` skips them.
    pub smtp_port: Option<u16>,
    /// Extra trusted roots (PEM), e.g. a private CA.
    pub ca_file: Option<PathBuf>,
    /// HTTPS port of MTA-STS policy fetches.
    pub https_port: u16,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut domains = args.domains;
    if let Some(file) = &args.from {
        let text = std::fs::read_to_string(file)
            .map_err(|e| BadInput(format!("{}: {e}", file.display())))?;
        for (i, line) in text.lines().enumerate() {
            let d = line.split('#').next().unwrap_or("").trim();
            if d.is_empty() {
                continue;
            }
            if d.contains(char::is_whitespace) || !d.contains('.') {
                return Err(BadInput(format!(
                    "{}:{}: domain: `{d}` is not a domain name",
                    file.display(),
                    i + 1
                ))
                .into());
            }
            domains.push(d.to_string());
        }
    }
    if domains.is_empty() {
        return Err(BadInput("give at least one domain, or --from FILE".into()).into());
    }
    let dns = match &args.nameserver {
        Some(ns) => {
            let addr: SocketAddr = ns
                .parse()
                .or_else(|_| {
                    ns.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| BadInput(format!("--nameserver `{ns}` is not IP or IP:PORT")))?;
            Dns::new(addr)
        }
        None => Dns::system().ok_or_else(|| {
            BadInput("no nameserver in /etc/resolv.conf: give --nameserver IP:PORT".into())
        })?,
    };
    let mut extra_roots = Vec::new();
    if let Some(ca) = &args.ca_file {
        use rustls::pki_types::pem::PemObject;
        for c in rustls::pki_types::CertificateDer::pem_file_iter(ca)
            .map_err(|e| BadInput(format!("--ca-file {}: {e}", ca.display())))?
        {
            extra_roots.push(c.map_err(|e| BadInput(format!("--ca-file {}: {e}", ca.display())))?);
        }
    }
    let sts = parapet_mailcheck::sts::StsOptions {
        port: args.https_port,
        extra_roots: extra_roots.clone(),
        ..Default::default()
    };
    let tls = args
        .smtp_port
        .map(|port| parapet_mailcheck::tls::TlsOptions {
            port,
            extra_roots,
            ..Default::default()
        });
    let opts = Arc::new(Options {
        dkim_selectors: args.dkim_selectors,
        tls,
        sts,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let reports: Vec<Report> = rt.block_on(async {
        let sem = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
        let mut set = tokio::task::JoinSet::new();
        for (i, d) in domains.iter().enumerate() {
            let (dns, opts, sem, d) = (dns.clone(), opts.clone(), sem.clone(), d.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await;
                (i, check_domain(&dns, &d, &opts).await)
            });
        }
        let mut out: Vec<(usize, Report)> = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.expect("a check task panicked"));
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, r)| r).collect()
    });
    if args.json {
        let v: Vec<serde_json::Value> = reports.iter().map(to_json).collect();
        let v = if v.len() == 1 {
            v.into_iter().next().unwrap_or_default()
        } else {
            serde_json::Value::Array(v)
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for r in &reports {
            print_table(r);
        }
    }
    let failed = reports.iter().any(|r| r.worst() == Some(Level::Error));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print_table(r: &Report) {
    println!("{}  ({} findings)", r.domain, r.findings.len());
    for f in &r.findings {
        println!("  {:<8} {:<32} {}", f.severity.as_str(), f.code, f.message);
    }
    println!();
}

/// The JSON form: `{"domain", "checked_at", "records": {...}, "findings": [...]}`.
pub fn to_json(r: &Report) -> serde_json::Value {
    let ms = r
        .checked_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    serde_json::json!({
        "domain": r.domain,
        "checked_at": rfc3339(ms),
        "records": {
            "mx": r.records.mx.iter().map(|(p, h)| format!("{p} {h}")).collect::<Vec<_>>(),
            "spf": r.records.spf,
            "spf_includes": r.records.spf_includes.iter().map(|(d, rec)| serde_json::json!({"domain": d, "record": rec})).collect::<Vec<_>>(),
            "dmarc": r.records.dmarc,
            "dmarc_domain": r.records.dmarc_domain,
            "dkim": r.records.dkim.iter().map(|(s, rec)| serde_json::json!({"selector": s, "record": rec})).collect::<Vec<_>>(),
            "mta_sts": r.records.sts.mta_sts,
            "mta_sts_policy": r.records.sts.policy,
            "tlsrpt": r.records.sts.tlsrpt,
            "tls": r.records.tls.iter().map(|t| serde_json::json!({
                "host": t.host, "starttls": t.starttls, "version": t.version, "cipher": t.cipher, "days_left": t.days_left,
            })).collect::<Vec<_>>(),
        },
        "findings": r.findings.iter().map(|f| serde_json::json!({
            "code": f.code,
            "severity": f.severity.as_str(),
            "message": f.message,
            "record": f.record,
        })).collect::<Vec<_>>(),
    })
}
