//! `parapet dmarc import` and `parapet dmarc summary`: DMARC aggregate and
//! TLS-RPT reports into the store, and what they say per sending source.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use parapet_mailcheck::report::{self, AuthResult, Parsed};
use parapet_store::{Db, DmarcRecordRow, DmarcReportRow, Imported, TlsReportRow, TlsResultRow};

use crate::BadInput;
use crate::config::Config;

fn open(config_path: Option<&Path>) -> anyhow::Result<Box<dyn Db>> {
    Config::load_or_embedded(config_path)?.open_store()
}

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
    let mut store = open(args.config.as_deref())?;
    let (mut new, mut dup, mut failed) = (0u64, 0u64, 0u64);
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
            let imported = match p {
                Parsed::Dmarc(r) => store.import_dmarc(
                    &DmarcReportRow {
                        org_name: r.org_name,
                        report_id: r.report_id,
                        domain: r.policy.domain.to_ascii_lowercase(),
                        begin: r.begin,
                        end: r.end,
                        policy: r.policy.p,
                        source: name.clone(),
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
                )?,
                Parsed::TlsRpt(r) => store.import_tlsrpt(
                    &TlsReportRow {
                        org_name: r.org_name,
                        report_id: r.report_id,
                        begin: r.begin,
                        end: r.end,
                        source: name.clone(),
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
            };
            match imported {
                Imported::New => new += 1,
                Imported::Duplicate => dup += 1,
            }
        }
    }
    println!("{new} reports imported, {dup} already stored, {failed} files skipped");
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
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
    let mut store = Config::load_or_embedded(args.config.as_deref())?.open_existing_store()?;
    let s = store.dmarc_summary(&args.domain.to_ascii_lowercase())?;
    let pct = |n: u64| {
        if s.messages == 0 {
            0.0
        } else {
            n as f64 * 100.0 / s.messages as f64
        }
    };
    if args.format == "json" {
        let v = serde_json::json!({
            "domain": s.domain,
            "reports": s.reports,
            "messages": s.messages,
            "dmarc_pass": s.dmarc_pass,
            "dkim_aligned": s.dkim_aligned,
            "spf_aligned": s.spf_aligned,
            "first": s.first,
            "last": s.last,
            "sources": s.sources.iter().map(|x| serde_json::json!({
                "source_ip": x.source_ip,
                "messages": x.messages,
                "dmarc_pass": x.dmarc_pass,
                "dkim_aligned": x.dkim_aligned,
                "spf_aligned": x.spf_aligned,
                "quarantined": x.quarantined,
                "rejected": x.rejected,
                "unauthorised": x.dmarc_pass == 0,
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
        "SOURCE", "MESSAGES", "PASS", "DKIM", "SPF"
    );
    for x in &s.sources {
        println!(
            "{:<40} {:>9} {:>9} {:>9} {:>9}  {}",
            x.source_ip,
            x.messages,
            x.dmarc_pass,
            x.dkim_aligned,
            x.spf_aligned,
            if x.dmarc_pass == 0 {
                "unauthorised sender"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
