//! `parapet dmarc import` and `parapet dmarc summary`: DMARC aggregate and
//! TLS-RPT reports into the store, and what they say per sending source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use parapet_mailcheck::report::{self, AuthResult, Parsed};
use parapet_store::{Db, DmarcRecordRow, DmarcReportRow, Imported, TlsReportRow, TlsResultRow};

use crate::BadInput;
use crate::config::Config;
use crate::dmarc_senders;

fn auth(results: &[AuthResult], with_selector: bool) -> String {
    results
        .iter()
        .map(|a| {
            let extra = if with_selector {
                a.selector.as_deref()
            } else {
                a.scope.as_deref()
            };
            match extra {
                Some(x) => format!("{}/{x}={}", a.domain, a.result),
                None => format!("{}={}", a.domain, a.result),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Import reports: XML, .xml.gz, .zip, .eml/MIME messages carrying them,
/// TLS-RPT .json/.json.gz. Duplicates are skipped; a corrupt file is
/// reported and skipped (exit 2) while the rest import.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// The TOML configuration file (for the store's location).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
    /// Report files.
    files: Vec<PathBuf>,
}

/// Imports every file; a file that fails is reported and skipped.
pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    if args.files.is_empty() {
        return Err(BadInput("give at least one report file".into()).into());
    }
    let config = Config::load_or_embedded(args.config.as_deref())?;
    let mut store = config.open_store_for_import()?;
    let (mut new, mut dup, mut failed) = (0u64, 0u64, 0u64);
    // domain → source IPs of the reports stored by this run
    let mut fresh: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let now = SystemTime::now();
    for path in &args.files {
        let name = path.display().to_string();
        // a report, even compressed, is far smaller than what it may
        // expand to
        let data = match crate::read_input(path, report::MAX_DECOMPRESSED) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{name}: {e}");
                failed += 1;
                continue;
            }
        };
        let parsed = match report::parse_bytes(&name, &data) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{e} (skipped)");
                failed += 1;
                continue;
            }
        };
        for p in parsed {
            if let Parsed::Dmarc(r) = &p {
                for w in &r.warnings {
                    eprintln!("warning: {name}: {w} (recovered)");
                }
            }
            let imported = store_report(store.as_mut(), p, &name, now, &mut fresh)?;
            match imported {
                Imported::New => new += 1,
                Imported::Duplicate => dup += 1,
            }
        }
    }
    println!("{new} reports imported, {dup} already stored, {failed} files skipped");
    let ips: BTreeSet<String> = fresh.values().flatten().cloned().collect();
    dmarc_senders::identify(&config, store.as_mut(), &ips)?;
    let raised = dmarc_senders::alert_unknown(&config, store.as_mut(), &fresh)?;
    if raised > 0 {
        println!(
            "{raised} unknown senders alerted ({})",
            dmarc_senders::UNKNOWN_SENDER_RULE
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Stores one parsed report as coming from `source` (a file name, or a
/// mailbox message); a report already stored is a duplicate, not an error.
/// A new DMARC report's domain and source IPs go into `fresh`, for sender
/// identification after the import.
pub(crate) fn store_report(
    store: &mut dyn Db,
    p: Parsed,
    source: &str,
    now: SystemTime,
    fresh: &mut BTreeMap<String, BTreeSet<String>>,
) -> Result<Imported, parapet_store::StoreError> {
    Ok(match p {
        Parsed::Dmarc(r) => {
            let domain = r.policy.domain.to_ascii_lowercase();
            let ips: Vec<String> = r.records.iter().map(|x| x.source_ip.to_string()).collect();
            let imported = store.import_dmarc(
                &DmarcReportRow {
                    org_name: r.org_name,
                    report_id: r.report_id,
                    domain: r.policy.domain.to_ascii_lowercase(),
                    begin: r.begin,
                    end: r.end,
                    policy: r.policy.p,
                    source: source.to_string(),
                    records: r
                        .records
                        .iter()
                        .map(|x| DmarcRecordRow {
                            source_ip: x.source_ip.to_string(),
                            count: x.count,
                            disposition: x.disposition.clone(),
                            dkim_aligned: x.dkim_aligned,
                            spf_aligned: x.spf_aligned,
                            header_from: x.header_from.clone(),
                            envelope_from: x.envelope_from.clone(),
                            dkim: auth(&x.dkim, true),
                            spf: auth(&x.spf, false),
                        })
                        .collect(),
                },
                now,
            )?;
            if imported == Imported::New {
                fresh.entry(domain).or_default().extend(ips);
            }
            imported
        }
        Parsed::TlsRpt(r) => store.import_tlsrpt(
            &TlsReportRow {
                org_name: r.org_name,
                report_id: r.report_id,
                begin: r.begin,
                end: r.end,
                source: source.to_string(),
                results: r
                    .policies
                    .iter()
                    .map(|p| TlsResultRow {
                        policy_type: p.policy_type.clone(),
                        policy_domain: p.policy_domain.to_ascii_lowercase(),
                        successful: p.successful,
                        failed: p.failed,
                        failures: p
                            .failures
                            .iter()
                            .map(|f| {
                                format!(
                                    "{} {} {} {}",
                                    f.result_type,
                                    f.sending_mta_ip.as_deref().unwrap_or("-"),
                                    f.receiving_mx_hostname.as_deref().unwrap_or("-"),
                                    f.count
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n"),
                    })
                    .collect(),
            },
            now,
        )?,
    })
}

/// Sources, volumes, alignment and pass rates for a domain.
#[derive(clap::Args)]
pub struct SummaryArgs {
    /// The TOML configuration file (for the store's location).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
    /// The domain the reports are about.
    #[arg(long)]
    domain: String,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

pub fn summary(args: SummaryArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load_or_embedded(args.config.as_deref())?;
    let threshold = config.dmarc.unknown_sender_threshold;
    let mut store = config.open_existing_store()?;
    let s = store.dmarc_summary(&args.domain.to_ascii_lowercase())?;
    let groups = s.by_service();
    let pct = |n: u64| {
        if s.messages == 0 {
            0.0
        } else {
            n as f64 * 100.0 / s.messages as f64
        }
    };
    if args.format == "json" {
        let source = |x: &parapet_store::SourceSummary| {
            let d = x.sender.as_ref();
            serde_json::json!({
                "source_ip": x.source_ip,
                "ptr": d.and_then(|d| d.ptr.clone()),
                "forward_confirmed": d.map(|d| d.confirmed),
                "base_domain": d.and_then(|d| d.base_domain.clone()),
                "service": x.service(),
                "messages": x.messages,
                "dmarc_pass": x.dmarc_pass,
                "dkim_aligned": x.dkim_aligned,
                "spf_aligned": x.spf_aligned,
                "quarantined": x.quarantined,
                "rejected": x.rejected,
                "unauthorised": x.dmarc_pass == 0,
                "unknown_sender": x.unknown_sender(threshold),
            })
        };
        let v = serde_json::json!({
            "domain": s.domain,
            "reports": s.reports,
            "messages": s.messages,
            "dmarc_pass": s.dmarc_pass,
            "dkim_aligned": s.dkim_aligned,
            "spf_aligned": s.spf_aligned,
            "first": s.first,
            "last": s.last,
            "sources": s.sources.iter().map(source).collect::<Vec<_>>(),
            "services": groups.iter().map(|g| serde_json::json!({
                "service": g.name,
                "type": g.service_type,
                "identified": g.identified,
                "messages": g.messages,
                "dmarc_pass": g.dmarc_pass,
                "sources": g.sources.iter().map(source).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if s.reports == 0 {
        println!("no DMARC reports stored for {}", s.domain);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} reports, {} messages; DMARC pass {:.1}%, DKIM aligned {:.1}%, SPF aligned {:.1}%",
        s.domain,
        s.reports,
        s.messages,
        pct(s.dmarc_pass),
        pct(s.dkim_aligned),
        pct(s.spf_aligned)
    );
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9}  ",
        "SERVICE / SOURCE", "MESSAGES", "PASS", "DKIM", "SPF"
    );
    for g in &groups {
        let kind = g
            .service_type
            .as_deref()
            .map(|k| format!(" ({k})"))
            .unwrap_or_default();
        println!(
            "{:<40} {:>9} {:>9}",
            format!("{}{kind}", g.name),
            g.messages,
            g.dmarc_pass
        );
        for x in &g.sources {
            let ptr = match &x.sender {
                Some(d) => match (&d.ptr, d.confirmed) {
                    (Some(p), true) => p.clone(),
                    (Some(p), false) => format!("{p}, not forward-confirmed"),
                    (None, _) => "no reverse DNS".into(),
                },
                None => "not looked up".into(),
            };
            let flag = if x.unknown_sender(threshold) {
                "unknown sender"
            } else if x.dmarc_pass == 0 {
                "unauthorised sender"
            } else {
                ""
            };
            println!(
                "  {:<38} {:>9} {:>9} {:>9} {:>9}  {ptr}{}{flag}",
                x.source_ip,
                x.messages,
                x.dmarc_pass,
                x.dkim_aligned,
                x.spf_aligned,
                if flag.is_empty() { "" } else { "; " },
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
