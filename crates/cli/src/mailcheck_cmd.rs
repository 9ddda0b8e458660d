//! `parapet mailcheck`: the e-mail security posture of domains, as a table
//! or JSON, checked concurrently through one nameserver.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use parapet_mailcheck::Level;
use parapet_mailcheck::check::{Options, Report, check_domain};
use parapet_mailcheck::dns::Dns;

use crate::BadInput;
use parapet_core::calendar::{format_datetime_ms, format_local_ms};

/// Check the e-mail security of domains: SPF, DMARC, DKIM, MX. Exit 1
/// when any error-severity finding, 0 otherwise, 2 on bad usage.
#[derive(clap::Args)]
pub struct Args {
    /// Domains to check.
    domains: Vec<String>,
    /// Also check the domains listed in FILE (one per line, # comments).
    #[arg(long)]
    from: Option<PathBuf>,
    /// The nameserver to ask (IP or IP:PORT); default: /etc/resolv.conf.
    #[arg(long)]
    nameserver: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// DKIM selector to check (repeatable).
    #[arg(long = "dkim-selector")]
    dkim_selector: Vec<String>,
    /// Domains checked at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// SMTP port of the STARTTLS probe of every MX host.
    #[arg(long, default_value_t = 25)]
    smtp_port: u16,
    /// Skip the STARTTLS probes (DNS checks only).
    #[arg(long)]
    no_tls: bool,
    /// Also trust the CA certificates in this PEM file (e.g. a private CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// HTTPS port of MTA-STS policy fetches.
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// Print the run's DNS lookups and queries sent on standard error.
    #[arg(long)]
    stats: bool,
    /// Ask every lookup anew instead of once per run (for comparison).
    #[arg(long)]
    no_dns_cache: bool,
    /// Store the results and report what changed since the last check.
    #[arg(long)]
    store: bool,
    /// The TOML configuration file (for the store's location, with --store).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
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
    let dns = if args.no_dns_cache {
        dns.without_cache()
    } else {
        dns
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
    let tls = (!args.no_tls).then(|| parapet_mailcheck::tls::TlsOptions {
        port: args.smtp_port,
        extra_roots,
        ..Default::default()
    });
    let mut selectors = args.dkim_selector;
    // --config only matters with --store: a plain check reads no config file
    let mut store = if args.store {
        Some(
            crate::config::Config::load_or_embedded(args.config.as_deref())?
                .open_store_for_import()?,
        )
    } else {
        None
    };
    if let Some(store) = &mut store {
        // selectors learned from imported DMARC reports
        for d in &domains {
            for sel in store.dkim_selectors(&d.to_ascii_lowercase())? {
                if !selectors.contains(&sel) {
                    selectors.push(sel);
                }
            }
        }
    }
    let opts = Arc::new(Options {
        dkim_selectors: selectors,
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
    let mut diffs: Vec<Option<parapet_store::MailCheckDiff>> = vec![None; reports.len()];
    if let Some(store) = &mut store {
        for (r, d) in reports.iter().zip(diffs.iter_mut()) {
            *d = Some(store.save_mailcheck(&to_row(r))?);
        }
    }
    if args.format == "json" {
        let v: Vec<serde_json::Value> = reports
            .iter()
            .zip(&diffs)
            .map(|(r, d)| {
                let mut v = to_json(r);
                if let Some(d) = d {
                    v["changes"] = changes_json(d);
                }
                v
            })
            .collect();
        // always an array, one element per domain, so scripts read one shape
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        for (r, d) in reports.iter().zip(&diffs) {
            println!("{}", table(r));
            if let Some(d) = d {
                print_changes(d);
            }
        }
    }
    let stats = dns.stats();
    tracing::debug!(
        lookups = stats.lookups,
        cached = stats.cached,
        queries = stats.queries,
        "mail check DNS"
    );
    if args.stats {
        eprintln!(
            "dns: {} lookups, {} answered from this run's cache, {} queries sent to {}",
            stats.lookups,
            stats.cached,
            stats.queries,
            dns.server()
        );
    }
    let failed = reports.iter().any(|r| r.worst() == Some(Level::Error));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One domain: a count line, then its findings worst first (in the order
/// found within a severity).
fn table(r: &Report) -> String {
    let mut out = count_line(r) + "\n";
    let mut findings: Vec<_> = r.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in findings {
        out += &format!(
            "  {:<8} {:<32} {}\n",
            f.severity.as_str(),
            f.code,
            f.message
        );
    }
    out
}

/// `example.gov.uk: 1 error, 2 warnings, 3 info`.
fn count_line(r: &Report) -> String {
    let n = |l: Level| r.findings.iter().filter(|f| f.severity == l).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}: {}, {}, {} info",
        r.domain,
        plural(n(Level::Error), "error"),
        plural(n(Level::Warning), "warning"),
        n(Level::Info)
    )
}

/// The JSON form: `{"domain", "checked_at", "records": {...}, "findings": [...]}`.
pub fn to_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "domain": r.domain,
        "checked_at": format_datetime_ms(parapet_store::unix_millis(r.checked_at)),
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

fn changes_json(d: &parapet_store::MailCheckDiff) -> serde_json::Value {
    let list = |v: &[parapet_store::MailFinding]| {
        v.iter()
            .map(|f| serde_json::json!({"code": f.code, "severity": f.severity, "message": f.message}))
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "since": d.previous_at.map(format_datetime_ms),
        "new": list(&d.new),
        "fixed": list(&d.fixed),
    })
}

fn print_changes(d: &parapet_store::MailCheckDiff) {
    match d.previous_at {
        None => println!("  (first check stored)"),
        Some(at) if d.new.is_empty() && d.fixed.is_empty() => {
            println!("  no change since {}", format_local_ms(at))
        }
        Some(at) => {
            println!("  since {}:", format_local_ms(at));
            for f in &d.new {
                println!("    new    {:<8} {}", f.severity, f.code);
            }
            for f in &d.fixed {
                println!("    fixed  {:<8} {}", f.severity, f.code);
            }
        }
    }
    println!();
}

/// Re-checks the configured domains every `interval_hours` for as long as
/// `parapet serve` runs: each result is stored, and a new error-severity
/// finding raises a `mailcheck.regression` alert for the supplier.
pub async fn schedule(
    config: crate::config::Config,
    upstream: Option<SocketAddr>,
    alerts: crossbeam_channel::Sender<parapet_core::alert::Signal>,
) {
    let m = &config.mailcheck;
    if m.domains.is_empty() {
        return;
    }
    let server = m
        .nameserver
        .as_deref()
        .and_then(|ns| {
            ns.parse().ok().or_else(|| {
                ns.parse::<std::net::IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
        })
        .or(upstream);
    let Some(server) = server else {
        tracing::error!("[mailcheck] has domains but no nameserver to ask");
        return;
    };
    let opts = Options {
        dkim_selectors: m.dkim_selectors.clone(),
        tls: Some(parapet_mailcheck::tls::TlsOptions {
            port: m.smtp_port,
            ..Default::default()
        }),
        sts: parapet_mailcheck::sts::StsOptions {
            port: m.https_port,
            ..Default::default()
        },
    };
    let every = std::time::Duration::from_secs(u64::from(m.interval_hours.max(1)) * 3600);
    loop {
        // the store's clients block (PostgreSQL's runs its own runtime):
        // every store call here goes through spawn_blocking
        let opened = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || {
                let mut store = config.open_store()?;
                // on several nodes, the one holding the lease checks
                let mine = store.try_lease("mailcheck", std::time::SystemTime::now(), every * 2)?;
                anyhow::Ok((store, mine))
            })
            .await
        };
        let mut store = match opened {
            Ok(Ok((store, true))) => store,
            Ok(Ok((_, false))) => {
                tracing::info!("mail check: another node holds the lease; not run here");
                tokio::time::sleep(every).await;
                continue;
            }
            Ok(Err(e)) => {
                tracing::error!("mail check: cannot open the store: {e:#}");
                tokio::time::sleep(every).await;
                continue;
            }
            Err(e) => {
                tracing::error!("mail check: {e}");
                tokio::time::sleep(every).await;
                continue;
            }
        };
        // a fresh client per run: its cache lives as long as the run
        let dns = Dns::new(server);
        for d in &m.domains {
            let r = check_domain(&dns, d, &opts).await;
            let row = to_row(&r);
            let (back, saved) = tokio::task::spawn_blocking(move || {
                let saved = store.save_mailcheck(&row);
                (store, saved)
            })
            .await
            .expect("the store call panicked");
            store = back;
            match saved {
                Ok(diff) => {
                    tracing::info!(domain = %r.domain, findings = r.findings.len(), new = diff.new.len(), fixed = diff.fixed.len(), "mail check");
                    let new_errors: Vec<&str> = diff
                        .new
                        .iter()
                        .filter(|f| f.severity == "error")
                        .map(|f| f.code.as_str())
                        .collect();
                    if diff.previous_at.is_some() && !new_errors.is_empty() {
                        let _ = alerts.send(parapet_core::alert::Signal {
                            time: std::time::SystemTime::now(),
                            tenant: std::sync::Arc::from(crate::loader::SUPPLIER_TENANT),
                            rule: "mailcheck.regression",
                            severity: parapet_core::alert::Severity::High,
                            domain: r.domain.clone(),
                            client: parapet_core::pseudonym::ClientPseudonym([0; 8]),
                            feed: None,
                            reason: format!(
                                "the mail security of {} got worse: {}",
                                r.domain,
                                new_errors.join(", ")
                            ),
                            evidence: diff
                                .new
                                .iter()
                                .map(|f| format!("{} {}", f.code, f.message))
                                .collect::<Vec<_>>()
                                .join("; "),
                            folded: None,
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(domain = %r.domain, "could not store the mail check: {e}")
                }
            }
        }
        let stats = dns.stats();
        tracing::debug!(
            lookups = stats.lookups,
            cached = stats.cached,
            queries = stats.queries,
            "mail check DNS"
        );
        let _ = tokio::task::spawn_blocking(move || drop(store)).await;
        tokio::time::sleep(every).await;
    }
}

/// A report as the store keeps it.
fn to_row(r: &Report) -> parapet_store::MailCheckRow {
    parapet_store::MailCheckRow {
        domain: r.domain.clone(),
        checked_at: parapet_store::unix_millis(r.checked_at),
        worst: r.worst().map(|w| w.as_str().to_string()),
        findings: r
            .findings
            .iter()
            .map(|f| parapet_store::MailFinding {
                severity: f.severity.as_str().into(),
                code: f.code.into(),
                message: f.message.clone(),
            })
            .collect(),
        report: to_json(r).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parapet_mailcheck::Finding;

    #[test]
    fn table_is_worst_first_with_counts() {
        let r = Report {
            domain: "example.gov.uk".into(),
            checked_at: std::time::SystemTime::UNIX_EPOCH,
            records: Default::default(),
            findings: vec![
                Finding::info("a.info", "first info"),
                Finding::warning("b.warn", "first warning"),
                Finding::error("c.err", "the error"),
                Finding::info("d.info", "second info"),
                Finding::warning("e.warn", "second warning"),
                Finding::info("f.info", "third info"),
            ],
        };
        let t = table(&r);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "example.gov.uk: 1 error, 2 warnings, 3 info");
        let codes: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(
            codes,
            ["c.err", "b.warn", "e.warn", "a.info", "d.info", "f.info"]
        );
        let empty = Report {
            findings: vec![],
            ..r
        };
        assert_eq!(
            table(&empty),
            "example.gov.uk: 0 errors, 0 warnings, 0 info\n"
        );
    }
}
