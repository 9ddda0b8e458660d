//! `parapet assets`, `parapet incidents` and `parapet kpi`: the data half
//! of the committee assurance report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use parapet_assurance::frozen::{
    QuarterError, freeze_quarter, quarter_kpis, quarter_version, quarter_versions, reopen_quarter,
};
use parapet_assurance::kpi::{KpiReport, Rag};
use parapet_assurance::model::{AssetException, AssetImported, Incident};
use parapet_assurance::parse::{Source, build_import};
use parapet_assurance::quarter::Quarter;
use parapet_core::calendar::{format_date, format_local, parse_datetime};
use parapet_report::{ReportText, report_input, report_input_of};
use parapet_store::StoreError;

use crate::BadInput;
use crate::config::{Config, ConfigArg};

fn now() -> i64 {
    parapet_store::unix_millis(SystemTime::now()) / 1000
}

fn date_arg(what: &str, v: &str) -> anyhow::Result<i64> {
    Ok(parse_datetime(v)
        .ok_or_else(|| BadInput(format!("{what}: `{v}` is not a date (write 2021-09-30)")))?)
}

/// The largest asset, AV or vulnerability export imported (a large
/// estate's Nessus export is a few hundred MB).
const MAX_IMPORT: u64 = 1 << 30;

/// Import exports into the register. Each file is one transaction: a
/// bad row or element is reported with file, line/element and field,
/// nothing of that file is imported, and the command exits 2.
#[derive(clap::Args)]
pub struct ImportArgs {
    /// inventory-csv, defender-csv, nessus, openvas or osquery.
    #[arg(long)]
    source: String,
    /// Files of that kind.
    files: Vec<PathBuf>,
    /// When the extract was taken (default: the date in the file).
    #[arg(long)]
    as_of: Option<String>,
    /// The council (tenant) the files belong to.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// The TOML configuration file (for the store's location).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
}

/// `parapet assets import`: each file in one transaction; a bad file is
/// reported with file, place and field, nothing of it is stored, and the
/// command exits 2 after importing the others.
pub fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let source: Source = args.source.parse().map_err(BadInput)?;
    if args.files.is_empty() {
        return Err(BadInput("give at least one file".into()).into());
    }
    let as_of = args
        .as_of
        .as_deref()
        .map(|v| date_arg("--as-of", v))
        .transpose()?;
    let cfg = Config::load_or_embedded(args.config.as_deref())?;
    let mut store = cfg.open_store_for_import()?;
    let mut failed = 0;
    for path in &args.files {
        let name = path.display().to_string();
        let bytes = match crate::read_input(path, MAX_IMPORT) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{name}: {e}");
                failed += 1;
                continue;
            }
        };
        let bar = indicatif::ProgressBar::new_spinner()
            .with_message(format!("parsing {name} ({} MB)", bytes.len() / 1_000_000));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        let parsed = build_import(&args.tenant, source, &name, &bytes, as_of);
        bar.set_message(format!("storing {name}"));
        let imp = match parsed {
            Ok(i) => i,
            Err(e) => {
                bar.finish_and_clear();
                eprintln!("error: {e} (nothing of this file was imported)");
                failed += 1;
                continue;
            }
        };
        let outcome = store.import_assets(&imp, now())?;
        bar.finish_and_clear();
        match outcome {
            AssetImported::New(id) => println!(
                "{name}: imported as {id}: {} assets, {} findings, as of {}, sha256 {}",
                imp.assets.len(),
                imp.findings.len(),
                format_date(imp.as_of),
                imp.sha256
            ),
            AssetImported::Duplicate(id) => {
                println!("{name}: already imported as {id} (same sha256), skipped")
            }
        }
    }
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Record an exception (risk accepted / compensating control) for a
/// device or one finding on it; shown beside the KPI, never inside it.
#[derive(clap::Args)]
pub struct ExceptArgs {
    /// The device's host name.
    #[arg(long)]
    device: String,
    /// One finding (e.g. nessus:97833); without it, the whole device.
    #[arg(long)]
    finding: Option<String>,
    /// Which KPIs a whole-device exception covers.
    #[arg(long, default_value = "patching", value_parser = ["av", "patching", "all"])]
    scope: String,
    #[arg(long, default_value = "risk-accepted", value_parser = ["risk-accepted", "compensating-control"])]
    kind: String,
    #[arg(long)]
    reason: String,
    #[arg(long)]
    owner: String,
    #[arg(long)]
    approver: String,
    /// When it lapses: at most 6 months after --from.
    #[arg(long)]
    expires: String,
    /// When it takes effect (default: today).
    #[arg(long)]
    from: Option<String>,
    #[arg(long, default_value = "default")]
    tenant: String,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet assets except`: an entry in the exceptions register.
pub fn except(a: ExceptArgs) -> anyhow::Result<ExitCode> {
    let expires = date_arg("--expires", &a.expires)?;
    let from = a
        .from
        .as_deref()
        .map(|f| date_arg("--from", f))
        .transpose()?
        .unwrap_or_else(now);
    if expires <= from {
        return Err(BadInput("--expires must be after --from".into()).into());
    }
    if expires - from > 184 * 86_400 {
        return Err(BadInput(
            "--expires: an exception lasts at most 6 months; renew it when it runs out".into(),
        )
        .into());
    }
    let mut store = a.config.open_existing_store()?;
    let id = store.add_exception(
        &AssetException {
            tenant: a.tenant,
            asset: a.device,
            finding: a.finding,
            scope: a.scope,
            kind: a.kind,
            reason: a.reason,
            owner: a.owner,
            approver: a.approver,
            expires_at: expires,
            ..AssetException::default()
        },
        from,
    )?;
    println!(
        "exception {id} recorded, in force {} to {}",
        format_date(from),
        format_date(expires)
    );
    Ok(ExitCode::SUCCESS)
}

/// Record an incident, or promote a detection alert (--from-alert).
#[derive(clap::Args)]
pub struct IncidentAddArgs {
    #[arg(long)]
    reference: Option<String>,
    /// Detection date.
    #[arg(long)]
    date: Option<String>,
    /// phishing, malware, ransomware, unauthorised-access, ddos, data-breach, other.
    #[arg(long)]
    category: Option<String>,
    #[arg(long, default_value = "")]
    impact: String,
    /// successful (a breach: counts in KPI 1) or attempted.
    #[arg(long, default_value = "successful", value_parser = ["successful", "attempted"])]
    outcome: String,
    #[arg(long, default_value = "open", value_parser = ["open", "investigating", "closed"])]
    status: String,
    #[arg(long, default_value = "")]
    summary: String,
    /// The ICO's reference, when reported.
    #[arg(long)]
    ico_reference: Option<String>,
    /// Promote this detection alert.
    #[arg(long)]
    from_alert: Option<i64>,
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet incidents add`, optionally promoting a detection alert.
pub fn incident_add(a: IncidentAddArgs) -> anyhow::Result<ExitCode> {
    let mut store = a.config.open_existing_store()?;
    let mut inc = Incident {
        tenant: a.tenant.clone().unwrap_or_else(|| "default".into()),
        impact: a.impact,
        outcome: a.outcome,
        status: a.status,
        summary: a.summary,
        ico_reference: a.ico_reference,
        ..Incident::default()
    };
    if let Some(id) = a.from_alert {
        let promoted = Incident::from_alert(&store.alert(id)?, &inc.outcome);
        inc = Incident {
            tenant: a.tenant.unwrap_or(promoted.tenant),
            impact: inc.impact,
            ico_reference: inc.ico_reference,
            status: inc.status,
            summary: if inc.summary.is_empty() {
                promoted.summary
            } else {
                inc.summary
            },
            ..promoted
        };
    }
    if let Some(r) = a.reference {
        inc.reference = r;
    }
    if let Some(d) = a.date {
        inc.detected_at = date_arg("--date", &d)?;
    }
    if let Some(c) = a.category {
        inc.category = c;
    }
    if inc.reference.is_empty() || inc.detected_at == 0 || inc.category.is_empty() {
        return Err(BadInput(
            "give --reference, --date and --category (or --from-alert ID)".into(),
        )
        .into());
    }
    if inc.status == "closed" {
        inc.closed_at = Some(now());
    }
    let id = store.add_incident(&inc, now())?;
    println!("incident {id} ({}) recorded", inc.reference);
    Ok(ExitCode::SUCCESS)
}

/// List incidents, newest first.
#[derive(clap::Args)]
pub struct IncidentListArgs {
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn incident_list(args: IncidentListArgs) -> anyhow::Result<ExitCode> {
    let mut store = args.config.open_existing_store()?;
    let list = store.incidents(args.tenant.as_deref())?;
    if args.format == "json" {
        let rows: Vec<serde_json::Value> = list
            .iter()
            .map(|i| {
                serde_json::json!({
                    "id": i.id, "tenant": i.tenant, "reference": i.reference,
                    "detected": format_date(i.detected_at), "category": i.category,
                    "impact": i.impact, "outcome": i.outcome, "status": i.status,
                    "summary": i.summary, "ico_reference": i.ico_reference,
                    "alert_id": i.alert_id, "closed": i.closed_at.map(format_date),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:>4}  {:<10} {:<14} {:<10} {:<22} {:<11} {:<13} impact",
            "id", "detected", "reference", "tenant", "category", "outcome", "status"
        );
        for i in &list {
            println!(
                "{:>4}  {:<10} {:<14} {:<10} {:<22} {:<11} {:<13} {}",
                i.id,
                format_date(i.detected_at),
                i.reference,
                i.tenant,
                i.category,
                i.outcome,
                i.status,
                i.impact
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Close an incident (its outcome is kept).
#[derive(clap::Args)]
pub struct IncidentCloseArgs {
    id: i64,
    /// When it was closed (default: now).
    #[arg(long)]
    date: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

pub fn incident_close(args: IncidentCloseArgs) -> anyhow::Result<ExitCode> {
    let at = args
        .date
        .as_deref()
        .map(|d| date_arg("--date", d))
        .transpose()?
        .unwrap_or_else(now);
    let mut store = args.config.open_existing_store()?;
    let inc = store.close_incident(args.id, at).map_err(|e| match e {
        parapet_store::StoreError::NoSuchIncident(_) => {
            anyhow::Error::from(BadInput(e.to_string()))
        }
        e => e.into(),
    })?;
    println!(
        "incident {} ({}) closed {}",
        inc.id,
        inc.reference,
        inc.closed_at.map(format_date).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// A quarter in the style this installation counts (`[assurance] quarters`).
pub fn parse_quarter(cfg: &Config, q: &str) -> anyhow::Result<Quarter> {
    Ok(Quarter::parse_in(q, cfg.assurance.quarters).map_err(|e| BadInput(e.to_string()))?)
}

/// The tenant a KPI or report command is about. With tenants configured it
/// must be named, and be one of them or have data in the store (a tenant
/// since removed from the config): reporting on a tenant by mistake would
/// freeze its empty quarter. Without, names are free (as `assets import
/// --tenant` takes them) and the default is `default`.
pub fn report_tenant(
    cfg: &Config,
    store: &mut dyn parapet_store::Db,
    named: Option<&str>,
) -> anyhow::Result<String> {
    let configured: Vec<String> = cfg
        .tenants
        .iter()
        .map(|t| t.name.get_ref().clone())
        .collect();
    let list = || format!("configured: {}", configured.join(", "));
    let Some(t) = named else {
        if configured.is_empty() {
            return Ok(parapet_core::tenant::DEFAULT_TENANT_NAME.to_string());
        }
        return Err(BadInput(format!("--tenant is required ({})", list())).into());
    };
    let known = configured.is_empty()
        || configured.iter().any(|c| c == t)
        || parapet_assurance::frozen::has_data(store, t, i64::MAX)
            .map_err(|e| anyhow::anyhow!("{e}"))?
        || !store.traffic_totals(Some(t), 0)?.is_empty();
    if !known {
        return Err(BadInput(format!(
            "--tenant: `{t}` is not a configured tenant and has no data ({})",
            list()
        ))
        .into());
    }
    Ok(t.to_string())
}

/// The five committee KPIs and the Cyber Essentials checks for a quarter:
/// the frozen version when the quarter is frozen, live figures otherwise.
/// Reading never freezes: `parapet kpi freeze` does, deliberately.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct KpiArgs {
    #[command(subcommand)]
    action: Option<KpiAction>,
    /// e.g. 2021-22-Q2 (financial year April–March: July–September 2021),
    /// or 2021-Q3 (calendar).
    #[arg(long, required = true)]
    quarter: Option<String>,
    /// The council (tenant); required when tenants are configured.
    #[arg(long)]
    tenant: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    /// The TOML configuration file (store location, KPI settings).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
}

/// What `parapet kpi` does besides showing a quarter.
#[derive(clap::Subcommand)]
pub enum KpiAction {
    Freeze(FreezeArgs),
    Reopen(ReopenArgs),
    Versions(VersionsArgs),
}

/// The quarter and tenant a freeze, reopen or versions command is about.
#[derive(clap::Args)]
pub struct QuarterTenant {
    /// e.g. 2021-22-Q2.
    #[arg(long)]
    quarter: String,
    /// The council (tenant); required when tenants are configured.
    #[arg(long)]
    tenant: Option<String>,
    /// The TOML configuration file (store location, KPI settings).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
}

/// Freeze an ended quarter: its figures become the version a committee is
/// given, kept however later imports change the data.
#[derive(clap::Args)]
pub struct FreezeArgs {
    #[command(flatten)]
    at: QuarterTenant,
    /// Who freezes it (recorded with the version; default: $USER).
    #[arg(long)]
    by: Option<String>,
}

/// Reopen a frozen quarter to correct it (a supplier-admin's decision):
/// the frozen version is kept, with who reopened it, when and why, and
/// the next freeze makes a new version.
#[derive(clap::Args)]
pub struct ReopenArgs {
    #[command(flatten)]
    at: QuarterTenant,
    /// Why it is reopened (recorded with the version and in the audit log).
    #[arg(long)]
    reason: String,
    /// Who reopens it (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

/// List a quarter's frozen versions, reopened ones included.
#[derive(clap::Args)]
pub struct VersionsArgs {
    #[command(flatten)]
    at: QuarterTenant,
}

/// A quarter error as the command line reports it: the user's mistakes
/// (a future or running quarter, already frozen, no such version) exit 2.
fn quarter_error(e: QuarterError<StoreError>) -> anyhow::Error {
    match e {
        QuarterError::Store(e) => e.into(),
        e @ (QuarterError::Snapshot { .. } | QuarterError::UnknownVersion { .. }) => e.into(),
        e => BadInput(e.to_string()).into(),
    }
}

/// Who is acting: `--by`, else the login name.
fn actor(by: Option<String>) -> String {
    by.filter(|b| !b.trim().is_empty())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into())
}

/// `parapet kpi --quarter Q`, or one of its actions.
pub fn kpi(args: KpiArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        Some(KpiAction::Freeze(a)) => return freeze(a),
        Some(KpiAction::Reopen(a)) => return reopen(a),
        Some(KpiAction::Versions(a)) => return versions(a),
        None => {}
    }
    let cfg = Config::load_or_embedded(args.config.as_deref())?;
    let quarter = parse_quarter(&cfg, args.quarter.as_deref().unwrap_or_default())?;
    let mut store = cfg.open_existing_store()?;
    let tenant = report_tenant(&cfg, &mut *store, args.tenant.as_deref())?;
    let r = quarter_kpis(&mut *store, &tenant, quarter, &cfg.assurance.kpi, now())
        .map_err(quarter_error)?;
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_kpis(&r, quarter.end() >= now());
    Ok(ExitCode::SUCCESS)
}

/// `parapet kpi freeze`.
fn freeze(a: FreezeArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load_or_embedded(a.at.config.as_deref())?;
    let quarter = parse_quarter(&cfg, &a.at.quarter)?;
    let mut store = cfg.open_store()?;
    let tenant = report_tenant(&cfg, &mut *store, a.at.tenant.as_deref())?;
    let by = actor(a.by);
    let r = freeze_quarter(
        &mut *store,
        &tenant,
        quarter,
        &cfg.assurance.kpi,
        now(),
        &by,
    )
    .map_err(quarter_error)?;
    let version = r.freeze.as_ref().map_or(0, |f| f.version);
    store.audit(&parapet_store::accounts::AuditEntry {
        time: now(),
        actor: by.clone(),
        action: "kpi.freeze".into(),
        tenant: Some(tenant.clone()),
        detail: format!("{quarter} version {version}"),
        client: None,
    })?;
    println!("{tenant} {quarter} frozen as version {version} by {by}");
    Ok(ExitCode::SUCCESS)
}

/// `parapet kpi reopen`.
fn reopen(a: ReopenArgs) -> anyhow::Result<ExitCode> {
    if a.reason.trim().is_empty() {
        return Err(BadInput("--reason: say why the quarter is reopened".into()).into());
    }
    let cfg = Config::load_or_embedded(a.at.config.as_deref())?;
    let quarter = parse_quarter(&cfg, &a.at.quarter)?;
    let mut store = cfg.open_store()?;
    let tenant = report_tenant(&cfg, &mut *store, a.at.tenant.as_deref())?;
    let by = actor(a.by);
    let version = reopen_quarter(&mut *store, &tenant, quarter, now(), &by, &a.reason)
        .map_err(quarter_error)?;
    store.audit(&parapet_store::accounts::AuditEntry {
        time: now(),
        actor: by.clone(),
        action: "kpi.reopen".into(),
        tenant: Some(tenant.clone()),
        detail: format!("{quarter} version {version}: {}", a.reason),
        client: None,
    })?;
    println!(
        "{tenant} {quarter} reopened (version {version} kept); freeze it again with: parapet kpi freeze --quarter {quarter} --tenant {tenant}"
    );
    Ok(ExitCode::SUCCESS)
}

/// `parapet kpi versions`.
fn versions(a: VersionsArgs) -> anyhow::Result<ExitCode> {
    let cfg = Config::load_or_embedded(a.at.config.as_deref())?;
    let quarter = parse_quarter(&cfg, &a.at.quarter)?;
    let mut store = cfg.open_store()?;
    let tenant = report_tenant(&cfg, &mut *store, a.at.tenant.as_deref())?;
    let list = quarter_versions(&mut *store, &tenant, quarter).map_err(quarter_error)?;
    if list.is_empty() {
        println!("{tenant} {quarter} has never been frozen");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:>7}  {:<25} {:<16} status", "version", "frozen", "by");
    for v in &list {
        let status = match (&v.reopened_at, &v.reopened_by, &v.reopen_reason) {
            (Some(at), by, why) => format!(
                "reopened {} by {}: {}",
                format_local(*at),
                by.as_deref().unwrap_or("?"),
                why.as_deref().unwrap_or("")
            ),
            (None, _, _) => "in force".to_string(),
        };
        println!(
            "{:>7}  {:<25} {:<16} {status}",
            v.version,
            format_local(v.frozen_at),
            v.frozen_by
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The KPI table, evidence, checks and evidence files, as text.
fn print_kpis(r: &KpiReport, running: bool) {
    let state = match &r.freeze {
        Some(f) => format!(
            ", frozen (version {}, {}{})",
            f.version,
            f.frozen_at,
            if f.frozen_by.is_empty() {
                String::new()
            } else {
                format!(" by {}", f.frozen_by)
            }
        ),
        None if running => ", provisional: the quarter has not ended".into(),
        None => ", not frozen (parapet kpi freeze)".into(),
    };
    println!(
        "{} — {} ({}), snapshot date {}{state}",
        r.tenant, r.quarter, r.period, r.snapshot_date,
    );
    println!();
    println!(
        "{:<2} {:<44} {:>6} {:>6} {:>7} {:>9} {:<7} {:<5} {:>9}",
        "#", "KPI", "count", "of", "%", "excepted", "RAG", "CE", "previous"
    );
    for k in &r.kpis {
        if k.rag == Rag::NoData {
            // no "0 of 0" beside a status: there is no figure
            println!(
                "{:<2} {:<44} {:>6} {:>6} {:>7} {:>9} {:<7} {:<5} {:>9}",
                k.id,
                k.name,
                "—",
                "—",
                "—",
                "—",
                k.rag.words(),
                "—",
                k.previous
                    .map_or_else(|| "—".to_string(), |p| p.to_string()),
            );
            continue;
        }
        println!(
            "{:<2} {:<44} {:>6} {:>6} {:>6.1}% {:>9} {:<7} {:<5} {:>9}",
            k.id,
            k.name,
            k.count,
            k.denominator,
            k.percent,
            k.excepted,
            k.rag.words(),
            if k.ce_compliant { "yes" } else { "no" },
            k.previous
                .map_or_else(|| "—".to_string(), |p| format!("{p} ({})", k.direction)),
        );
    }
    for k in r.kpis.iter().filter(|k| k.rag == Rag::NoData) {
        println!(
            "KPI {}: no data: {}",
            k.id,
            k.missing.as_deref().unwrap_or("")
        );
    }
    println!();
    for k in &r.kpis {
        for e in &k.evidence {
            println!(
                "KPI {}: {} [{}] {}",
                k.id,
                e.device,
                e.reasons.join(","),
                e.details.join("; ")
            );
            for f in &e.findings {
                println!(
                    "         {} {} — {} days past fix ({} {})",
                    f.key, f.title, f.days_past_fix, f.fix_basis, f.fix_released
                );
            }
        }
        for e in &k.excepted_evidence {
            println!(
                "KPI {} (excepted): {} {}",
                k.id,
                e.device,
                e.details.join("; ")
            );
        }
        if !k.not_assessed.is_empty() {
            println!("KPI {}: not assessed: {}", k.id, k.not_assessed.join(", "));
        }
    }
    println!();
    println!("Cyber Essentials checks:");
    for c in &r.cyber_essentials {
        println!(
            "  {:<10} {:<17} {}{}",
            c.id,
            if c.decided && !c.pass {
                "FAIL"
            } else {
                c.result()
            },
            c.rule,
            if c.devices.is_empty() {
                String::new()
            } else {
                format!(": {}", c.devices.join(", "))
            }
        );
    }
    println!();
    println!("Evidence files:");
    for f in &r.evidence_files {
        println!(
            "  {} {} as of {} sha256 {}{}",
            f.source,
            f.file,
            f.as_of,
            f.sha256,
            if f.stale {
                " (older than the evidence window)"
            } else {
                ""
            }
        );
    }
}

/// The quarterly committee report: public-report.{html,pdf},
/// exempt-appendix.{html,pdf} and kpi.json in --out.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// e.g. 2021-22-Q2.
    #[arg(long)]
    quarter: String,
    /// Folder to write into (created if needed).
    #[arg(long)]
    out: PathBuf,
    /// The council's name on the report (default: the tenant's
    /// display_name, then [assurance] council).
    #[arg(long)]
    council: Option<String>,
    /// The committee the report goes to (default: the tenant's report
    /// profile, then "Audit and Governance Committee").
    #[arg(long)]
    committee: Option<String>,
    /// Why the appendix is exempt (default: the report profile's, then
    /// paragraph 3 of Part 1 of Schedule 12A to the LGA 1972).
    #[arg(long)]
    exemption: Option<String>,
    /// Officer commentary, actions, options, implications and background
    /// papers (.toml or .md), saved as a new version for the quarter
    /// before the report is made; refused when the quarter is frozen.
    #[arg(long, value_name = "FILE")]
    commentary: Option<PathBuf>,
    /// Who the commentary is saved as (default: $USER).
    #[arg(long, value_name = "NAME", requires = "commentary")]
    commentary_by: Option<String>,
    /// The council (tenant); required when tenants are configured.
    #[arg(long)]
    tenant: Option<String>,
    /// Freeze the ended quarter first (as `parapet kpi freeze`), when it is
    /// not frozen yet.
    #[arg(long, conflicts_with = "version")]
    freeze: bool,
    /// Who freezes it, with --freeze (default: $USER).
    #[arg(long, requires = "freeze")]
    by: Option<String>,
    /// Reproduce this frozen version (`parapet kpi versions` lists them),
    /// reopened or not: the report as it was tabled.
    #[arg(long)]
    version: Option<u32>,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet report`: the public report and the exempt appendix (HTML, and
/// PDF when built with the `pdf` feature) and `kpi.json`.
pub fn report(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.config.load()?;
    let quarter = parse_quarter(&cfg, &a.quarter)?;
    let mut store = cfg.open_existing_store()?;
    let tenant = report_tenant(&cfg, &mut *store, a.tenant.as_deref())?;
    let council = cfg.council(&tenant, a.council);
    if let Some(path) = &a.commentary {
        save_commentary(&mut *store, &tenant, quarter, path, a.commentary_by)?;
    }
    let text = ReportText {
        committee: a
            .committee
            .unwrap_or_else(|| council.committee("Audit and Governance Committee")),
        exemption: a.exemption,
    };
    let settings = &cfg.assurance.kpi;
    if a.freeze && quarter.end() >= now() {
        return Err(BadInput(format!(
            "--freeze: {quarter} has not ended, so it cannot be frozen (its report is PROVISIONAL)"
        ))
        .into());
    }
    let frozen = store.kpi_snapshot(&tenant, &quarter.to_string())?.is_some();
    let input = if let Some(n) = a.version {
        let kpi = quarter_version(&mut *store, &tenant, quarter, n).map_err(quarter_error)?;
        report_input_of(
            &mut *store,
            kpi,
            &tenant,
            quarter,
            settings,
            &council,
            text,
            now(),
        )
    } else if quarter.end() < now() && !frozen {
        // a report of an ended quarter goes to a committee: freeze first,
        // deliberately, so what is tabled can always be reproduced
        if !a.freeze {
            return Err(BadInput(format!(
                "{quarter} has ended but {tenant}'s figures for it are not frozen: a committee report must be of frozen figures. \
                 Check them with `parapet kpi --quarter {quarter} --tenant {tenant}`, then freeze with \
                 `parapet kpi freeze --quarter {quarter} --tenant {tenant} --by NAME`, or run this again with --freeze"
            ))
            .into());
        }
        let by = actor(a.by);
        let kpi = freeze_quarter(&mut *store, &tenant, quarter, settings, now(), &by)
            .map_err(quarter_error)?;
        store.audit(&parapet_store::accounts::AuditEntry {
            time: now(),
            actor: by,
            action: "kpi.freeze".into(),
            tenant: Some(tenant.clone()),
            detail: format!(
                "{quarter} version {}",
                kpi.freeze.as_ref().map_or(0, |f| f.version)
            ),
            client: None,
        })?;
        report_input_of(
            &mut *store,
            kpi,
            &tenant,
            quarter,
            settings,
            &council,
            text,
            now(),
        )
    } else {
        report_input(&mut *store, &tenant, quarter, settings, &council, text, now())
    }
    .map_err(quarter_error)?;
    let written = parapet_report::write_all(&input, &a.out)?;
    for f in &written.files {
        println!("{}", a.out.join(f).display());
    }
    if !parapet_report::PDF {
        eprintln!("note: this parapet was built without the `pdf` feature: HTML and kpi.json only");
    }
    if let Some(why) = &input.provisional {
        eprintln!("note: PROVISIONAL report: {why}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `parapet report --commentary FILE`: the file read and checked, then
/// saved (and audited) as the quarter's newest commentary version.
fn save_commentary(
    store: &mut dyn parapet_store::Db,
    tenant: &str,
    quarter: Quarter,
    path: &std::path::Path,
    by: Option<String>,
) -> anyhow::Result<()> {
    let c = parapet_report::read_commentary(path).map_err(|e| BadInput(e.to_string()))?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into());
    parapet_report::save_officer_commentary(store, tenant, quarter, &by, &c, now()).map_err(
        |e| match e {
            parapet_report::SaveError::Store(e) => anyhow::Error::from(e),
            e => BadInput(format!("--commentary {}: {e}", path.display())).into(),
        },
    )?;
    store.audit(&parapet_store::accounts::AuditEntry {
        time: now(),
        actor: by,
        action: "report.commentary".into(),
        tenant: Some(tenant.to_string()),
        detail: format!("{quarter} from {}", path.display()),
        client: None,
    })?;
    Ok(())
}
