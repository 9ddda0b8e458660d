//! Wiring of the web dashboard: the KPI/report source it asks, the tenants
//! it knows, `parapet users`, and the bundled demo data (`serve --demo`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use parapet_core::alert::{Severity, Signal};
use parapet_core::event::{EventAction, PrivateEvent};
use parapet_core::name::{EventName, text_to_key};
use parapet_core::pseudonym::ClientPseudonym;
use parapet_store::accounts::{AuditEntry, Role};
use parapet_store::{Db, DmarcRecordRow, DmarcReportRow, MailCheckRow, MailFinding};
use parapet_web::{AssuranceSettings, Dashboard, FeedInfo, PrivacyFacts, TenantInfo};

use crate::BadInput;
use crate::config::{Config, ConfigArg, FeedModeConfig};

/// The demo's councils, their mail domains, and the quarter of the bundled estate.
pub const DEMO_TENANTS: [(&str, &str, &str); 2] = [
    ("north", "Northshire Council", "northshire.test"),
    ("south", "South Vale District Council", "southvale.test"),
];
pub const DEMO_QUARTER: &str = "2021-22-Q2";
/// Store connections the dashboard keeps.
const DASHBOARD_CONNECTIONS: usize = 4;

fn now() -> i64 {
    parapet_store::unix_millis(SystemTime::now()) / 1000
}

/// Creates the first account, `admin`, when the store has none, and prints
/// its password once. `serve` calls it only once every listener is bound,
/// so a start that fails on a busy port leaves no account nobody saw made.
pub fn first_account(config: &Config) -> anyhow::Result<()> {
    let mut db = config
        .open_store()
        .context("cannot open the store for the first account")?;
    if db.users()?.is_empty() {
        let password = parapet_web::auth::new_token()[..20].to_string();
        match db.add_user(
            "admin",
            Role::SupplierAdmin,
            None,
            &parapet_web::auth::hash_password(&password),
            now(),
        ) {
            // stderr, not the log: this is the one time the password is shown
            Ok(_) => crate::logging::always(
                "parapet::dashboard",
                &format!(
                    "dashboard: created the first account: user `admin`, password `{password}` \
                     (change it with `parapet users passwd admin`)"
                ),
            ),
            // another node on the same database created it first
            Err(parapet_store::StoreError::DuplicateUser(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The dashboard `parapet serve` exposes, on its own store connection.
pub fn build(config: &Config, demo: bool) -> anyhow::Result<Arc<Dashboard>> {
    let mut db = config
        .open_store()
        .context("cannot open the store for the dashboard")?;
    let mut tenants: Vec<TenantInfo> = config
        .tenants
        .iter()
        .map(|t| TenantInfo {
            name: t.name.get_ref().clone(),
            display_name: t.display_name.clone(),
            mail_domains: t.mail_domains.clone(),
            networks: t.networks.iter().map(|n| n.to_string()).collect(),
        })
        .collect();
    if demo {
        for (name, display, domain) in DEMO_TENANTS {
            if !tenants.iter().any(|t| t.name == name) {
                tenants.push(TenantInfo {
                    name: name.into(),
                    display_name: Some(display.into()),
                    mail_domains: vec![domain.into()],
                    networks: Vec::new(),
                });
            }
        }
        load_demo(&mut *db)?;
    }
    let location = db.location();
    let assurance = AssuranceSettings {
        quarters: config.assurance.quarters,
        kpi: config.assurance.kpi.clone(),
        default_quarter: demo.then(|| DEMO_QUARTER.to_string()),
        councils: tenants
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    config.council(&t.name, t.display_name.clone()),
                )
            })
            .collect(),
        other_council: config.council("", None),
        committee: "Audit and Governance Committee".into(),
    };
    let r = config.store.retention();
    // a few connections, so a long KPI computation does not hold up the other pages
    let mut conns = vec![db];
    for _ in 1..DASHBOARD_CONNECTIONS {
        conns.push(
            config
                .open_store()
                .context("cannot open the store for the dashboard")?,
        );
    }
    let mut d = Dashboard::new(
        conns,
        tenants,
        assurance,
        PrivacyFacts {
            events_days: r.events_days,
            aggregates_days: r.aggregates_days,
            key_source: config.pseudonym_key_source(),
            store: location,
            flush_interval_ms: config.store.flush_interval_ms,
            sealed: config.seal_key()?.map(|k| k.fingerprint()),
        },
    );
    d.forwarders = forwarder_pseudonyms(config)?;
    d.secure_cookies = config.web.secure_cookies;
    d.unknown_sender_threshold = config.dmarc.unknown_sender_threshold;
    d.trusted_proxies = config.web.trusted_proxies.clone();
    d.require_totp = config.web.require_totp.clone();
    d.feeds = if config.source.is_none() && config.feeds.is_empty() {
        vec![FeedInfo {
            name: crate::config::EMBEDDED_FEED_NAME.into(),
            category: "malware".into(),
            mode: "block".into(),
            tenants: None,
        }]
    } else {
        config
            .feeds
            .iter()
            .map(|f| FeedInfo {
                name: f.name.get_ref().clone(),
                category: f.category.clone(),
                mode: match f.mode {
                    FeedModeConfig::Block => "block",
                    FeedModeConfig::Monitor => "monitor",
                }
                .into(),
                tenants: f
                    .tenants
                    .as_ref()
                    .map(|ts| ts.iter().map(|t| t.get_ref().clone()).collect()),
            })
            .collect()
    };
    Ok(Arc::new(d))
}

/// Loads the bundled demo data once (a store that already has the demo's
/// alerts is left alone): two councils' DNS traffic and alerts over the
/// last two days, Mail Check results and DMARC reports for their domains,
/// and the Northshire fixture estate for the assurance pages.
pub fn load_demo(db: &mut dyn Db) -> anyhow::Result<()> {
    let has_demo = !db
        .list_alerts(&parapet_store::AlertFilter {
            tenant: Some("north".into()),
            limit: Some(1),
            ..Default::default()
        })?
        .is_empty();
    if has_demo {
        return Ok(());
    }
    let now_s = now();
    demo_traffic(db, now_s)?;
    demo_alerts(db, now_s)?;
    demo_mail(db, now_s)?;
    demo_estate(db, now_s)?;
    db.audit(&AuditEntry {
        time: now_s,
        actor: "parapet".into(),
        action: "demo.loaded".into(),
        tenant: None,
        detail: "bundled demo data".into(),
        client: None,
    })?;
    Ok(())
}

/// Unix seconds as a time (the epoch for anything before it).
fn at(s: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s.max(0) as u64)
}

/// Two days of both councils' queries, busier in office hours, with a few
/// blocked names every third hour.
fn demo_traffic(db: &mut dyn Db, now_s: i64) -> anyhow::Result<()> {
    let start = now_s - 48 * 3600;
    let ok_names = [
        "www.gov.uk",
        "login.microsoftonline.com",
        "outlook.office365.com",
        "www.bbc.co.uk",
    ];
    let bad = [
        ("north", "malware.testing.google.test", "parapet-example"),
        ("north", "phish.example-login.test", "parapet-example"),
        ("south", "c2.badness.test", "parapet-example"),
    ];
    for h in 0..48 {
        // one batch per hour: the writer folds repeats within a batch only
        let mut events = Vec::new();
        let hour = start + h * 3600;
        for (ti, (tenant, _, _)) in DEMO_TENANTS.iter().enumerate() {
            let busy = if (8..18).contains(&((hour / 3600) % 24)) {
                12
            } else {
                3
            };
            for i in 0..busy * (ti as i64 + 1) {
                let name = ok_names[(i as usize) % ok_names.len()];
                events.push(event(
                    at(hour + i * 60),
                    tenant,
                    name,
                    EventAction::Resolved,
                    None,
                    i as u8,
                ));
            }
            for (t, name, feed) in bad.iter().filter(|b| b.0 == *tenant) {
                if h % 3 == 0 {
                    events.push(event(
                        at(hour + 120),
                        t,
                        name,
                        EventAction::Blocked,
                        Some(feed),
                        9,
                    ));
                }
            }
        }
        db.insert_events(&events)?;
    }
    Ok(())
}

/// One alert per council and rule, as the detector would raise them.
fn demo_alerts(db: &mut dyn Db, now_s: i64) -> anyhow::Result<()> {
    let signal =
        |tenant: &str, rule: &'static str, sev, domain: &str, reason: &str, ev: &str| Signal {
            time: at(now_s - 3600),
            tenant: Arc::from(tenant),
            rule,
            severity: sev,
            domain: domain.into(),
            client: ClientPseudonym([9; 8]),
            feed: (rule == "feed.block").then(|| Arc::from("parapet-example")),
            reason: reason.into(),
            evidence: ev.into(),
            folded: None,
        };
    db.record_signals(&[
        signal(
            "north",
            "feed.block",
            Severity::High,
            "testing.google.test",
            "blocked by feed parapet-example (malware)",
            "malware.testing.google.test A blocked",
        ),
        signal(
            "north",
            "dga",
            Severity::Medium,
            "xkqjzvbrt.test",
            "name looks machine-generated (score 0.93)",
            "xkqjzvbrtwpl.xkqjzvbrt.test A resolved",
        ),
        signal(
            "south",
            "feed.block",
            Severity::High,
            "badness.test",
            "blocked by feed parapet-example (c2)",
            "c2.badness.test A blocked",
        ),
        signal(
            "south",
            "tunnel",
            Severity::High,
            "exfil.test",
            "long high-entropy labels: 62 characters, entropy 4.9",
            "aGVsbG8gd29ybGQ.exfil.test TXT resolved",
        ),
    ])?;
    Ok(())
}

/// Mail Check results (Northshire's improving between two checks) and a
/// DMARC report per sending source.
fn demo_mail(db: &mut dyn Db, now_s: i64) -> anyhow::Result<()> {
    let f = |sev: &str, code: &str, msg: &str| MailFinding {
        severity: sev.into(),
        code: code.into(),
        message: msg.into(),
    };
    let checks = [
        (
            "northshire.test",
            now_s - 86_400,
            vec![
                f(
                    "error",
                    "dmarc.missing",
                    "No DMARC record at _dmarc.northshire.test: publish \"v=DMARC1; p=none; rua=mailto:dmarc@northshire.test\", then move to p=quarantine and p=reject.",
                ),
                f(
                    "warning",
                    "spf.soft_all",
                    "SPF ends in ~all: once every sender is listed, end it with -all.",
                ),
            ],
        ),
        (
            "northshire.test",
            now_s - 3600,
            vec![
                f(
                    "warning",
                    "spf.soft_all",
                    "SPF ends in ~all: once every sender is listed, end it with -all.",
                ),
                f(
                    "info",
                    "dmarc.policy_none",
                    "DMARC policy is p=none: monitor the reports, then move to p=quarantine.",
                ),
            ],
        ),
        (
            "southvale.test",
            now_s - 3600,
            vec![f(
                "error",
                "tls.certificate_expired",
                "The certificate of mx1.southvale.test expired: renew it.",
            )],
        ),
    ];
    for (domain, t, findings) in checks {
        let worst = ["error", "warning", "info"]
            .into_iter()
            .find(|s| findings.iter().any(|x| x.severity == *s))
            .map(str::to_string);
        db.save_mailcheck(&MailCheckRow {
            domain: domain.into(),
            checked_at: t * 1000,
            worst,
            findings,
            report: "{\"demo\": true}".into(),
        })?;
    }
    for (domain, ip, pass) in [
        ("northshire.test", "192.0.2.10", true),
        ("northshire.test", "198.51.100.7", false),
        ("southvale.test", "192.0.2.20", true),
    ] {
        db.import_dmarc(
            &DmarcReportRow {
                org_name: "demo-receiver.test".into(),
                report_id: format!("demo-{domain}-{ip}"),
                domain: domain.into(),
                begin: now_s - 2 * 86_400,
                end: now_s - 86_400,
                policy: "none".into(),
                source: "demo".into(),
                records: vec![DmarcRecordRow {
                    source_ip: ip.into(),
                    count: if pass { 120 } else { 7 },
                    disposition: "none".into(),
                    dkim_aligned: pass,
                    spf_aligned: pass,
                    header_from: domain.into(),
                    envelope_from: Some(domain.into()),
                    dkim: format!("{domain}/s1={}", if pass { "pass" } else { "fail" }),
                    spf: format!("{domain}/mfrom={}", if pass { "pass" } else { "fail" }),
                }],
            },
            SystemTime::now(),
        )?;
    }
    Ok(())
}

/// Northshire's fixture estate (the assurance pages' quarter) and one
/// closed incident.
fn demo_estate(db: &mut dyn Db, now_s: i64) -> anyhow::Result<()> {
    use parapet_assurance::parse::{Source, build_import};
    let estate: [(&str, Source, &[u8]); 6] = [
        (
            "inventory.csv",
            Source::InventoryCsv,
            include_bytes!("../../../testdata/assets/estate/inventory.csv"),
        ),
        (
            "defender.csv",
            Source::DefenderCsv,
            include_bytes!("../../../testdata/assets/estate/defender.csv"),
        ),
        (
            "osquery.json",
            Source::Osquery,
            include_bytes!("../../../testdata/assets/estate/osquery.json"),
        ),
        (
            "scan-2021-06.nessus",
            Source::Nessus,
            include_bytes!("../../../testdata/assets/estate/scan-2021-06.nessus"),
        ),
        (
            "scan-2021-09.nessus",
            Source::Nessus,
            include_bytes!("../../../testdata/assets/estate/scan-2021-09.nessus"),
        ),
        (
            "openvas-2021-09.xml",
            Source::Openvas,
            include_bytes!("../../../testdata/assets/estate/openvas-2021-09.xml"),
        ),
    ];
    for (name, source, bytes) in estate {
        let imp = build_import("north", source, &format!("demo/{name}"), bytes, None)
            .map_err(|e| anyhow::anyhow!("demo estate {name}: {e}"))?;
        db.import_assets(&imp, now_s)?;
    }
    db.add_incident(
        &parapet_assurance::model::Incident {
            tenant: "north".into(),
            reference: "INC-2021-014".into(),
            detected_at: parapet_core::calendar::parse_datetime("2021-08-12").unwrap_or(0),
            category: "phishing".into(),
            impact: "one mailbox".into(),
            outcome: "attempted".into(),
            status: "closed".into(),
            summary: "credential phishing e-mail reported by staff; no credentials entered".into(),
            ..Default::default()
        },
        now_s,
    )?;
    Ok(())
}

fn event(
    time: SystemTime,
    tenant: &str,
    name: &str,
    action: EventAction,
    feed: Option<&str>,
    client: u8,
) -> PrivateEvent {
    PrivateEvent {
        time,
        tenant: Arc::from(tenant),
        client: ClientPseudonym([client; 8]),
        qname: EventName::new(&text_to_key(name).unwrap_or_default()),
        qtype: 1,
        rcode: if action == EventAction::Blocked { 3 } else { 0 },
        action,
        feed: feed.map(Arc::from),
    }
}

/// Add an account. The password comes from PARAPET_PASSWORD (at least
/// 10 characters), or is generated and printed.
#[derive(clap::Args)]
pub struct UsersAddArgs {
    name: String,
    #[arg(long, value_parser = ["supplier-admin", "supplier-analyst", "council"])]
    role: String,
    /// The council of a `council` account (it sees this tenant only).
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet users add NAME --role R [--tenant T]`: the password comes from
/// `PARAPET_PASSWORD`, or is generated and printed.
pub fn users_add(args: UsersAddArgs) -> anyhow::Result<ExitCode> {
    let UsersAddArgs {
        name,
        role,
        tenant,
        config,
    } = args;
    let role: Role = role.parse().map_err(BadInput)?;
    if role == Role::Council && tenant.is_none() {
        return Err(BadInput("a council account needs --tenant".into()).into());
    }
    if role != Role::Council && tenant.is_some() {
        return Err(BadInput(
            "--tenant is for council accounts only (supplier roles see every tenant)".into(),
        )
        .into());
    }
    if name.is_empty() || name.len() > parapet_web::auth::MAX_USER_NAME {
        return Err(BadInput(format!(
            "NAME: 1 to {} bytes",
            parapet_web::auth::MAX_USER_NAME
        ))
        .into());
    }
    let config = config.load()?;
    let (password, generated) = match std::env::var("PARAPET_PASSWORD") {
        Ok(p) if p.len() >= 10 => (p, false),
        Ok(_) => return Err(BadInput("PARAPET_PASSWORD: at least 10 characters".into()).into()),
        Err(_) => (parapet_web::auth::new_token()[..20].to_string(), true),
    };
    let mut db = config.open_store()?;
    if let Some(t) = &tenant {
        // a configured tenant, or one whose traffic the store holds (the
        // demo's, or a tenant since removed from the config)
        let known = config.tenant_names();
        if !known.contains(t) && db.traffic_totals(Some(t), 0)?.is_empty() {
            return Err(BadInput(format!(
                "--tenant: `{t}` is not a configured tenant (configured: {})",
                known.join(", ")
            ))
            .into());
        }
    }
    db.add_user(
        &name,
        role,
        tenant.as_deref(),
        &parapet_web::auth::hash_password(&password),
        now(),
    )
    .map_err(|e| BadInput(e.to_string()))?;
    db.audit(&AuditEntry {
        time: now(),
        actor: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
        action: "user.added".into(),
        tenant: tenant.clone(),
        detail: format!("{name} ({})", role.as_str()),
        client: None,
    })?;
    if generated {
        println!("{name}: password {password}");
    } else {
        println!("{name}: added");
    }
    Ok(ExitCode::SUCCESS)
}

/// Set a new password (PARAPET_PASSWORD, or generated and printed).
#[derive(clap::Args)]
pub struct UsersPasswdArgs {
    name: String,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet users passwd NAME`: a new password (from `PARAPET_PASSWORD` or generated).
pub fn users_passwd(args: UsersPasswdArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let password = match std::env::var("PARAPET_PASSWORD") {
        Ok(p) if p.len() >= 10 => p,
        Ok(_) => return Err(BadInput("PARAPET_PASSWORD: at least 10 characters".into()).into()),
        Err(_) => parapet_web::auth::new_token()[..20].to_string(),
    };
    let mut db = args.config.open_existing_store()?;
    let user = db.user(name)?.ok_or_else(|| no_account(name))?;
    db.set_password(name, &parapet_web::auth::hash_password(&password))?;
    db.end_sessions(user.id)?;
    db.audit(&cli_audit(
        "user.password",
        user.tenant.clone(),
        format!("{name}: password reset, sessions ended"),
    ))?;
    println!("{name}: password {password}");
    Ok(ExitCode::SUCCESS)
}

/// Create an API token for scripts (`Authorization: Bearer TOKEN`); printed once.
#[derive(clap::Args)]
pub struct UsersTokenArgs {
    name: String,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet users token NAME`: a new API token, printed once.
pub fn users_token(args: UsersTokenArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let mut db = args.config.open_existing_store()?;
    let user = db.user(name)?.ok_or_else(|| no_account(name))?;
    let token = parapet_web::auth::new_token();
    db.add_api_token(user.id, &parapet_web::auth::token_digest(&token), now())?;
    db.audit(&cli_audit(
        "token.created",
        user.tenant.clone(),
        format!("API token for {name}"),
    ))?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// List accounts.
#[derive(clap::Args)]
pub struct UsersListArgs {
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet users list`.
pub fn users_list(args: UsersListArgs) -> anyhow::Result<ExitCode> {
    let mut db = args.config.open_existing_store()?;
    for u in db.users()? {
        println!(
            "{:<20} {:<17} {:<16} {}",
            u.name,
            u.role.as_str(),
            u.tenant.as_deref().unwrap_or("(all tenants)"),
            if u.totp_secret.is_some() { "totp" } else { "" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn no_account(name: &str) -> anyhow::Error {
    BadInput(format!("no account named {name}")).into()
}

/// An audit entry for a command run on the server, by the login user.
fn cli_audit(action: &str, tenant: Option<String>, detail: String) -> AuditEntry {
    AuditEntry {
        time: now(),
        actor: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
        action: action.into(),
        tenant,
        detail,
        client: None,
    }
}

/// Remove an account; its sessions and API tokens stop working at once.
#[derive(clap::Args)]
pub struct UsersRemoveArgs {
    name: String,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet users remove NAME`.
pub fn users_remove(args: UsersRemoveArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let mut db = args.config.open_existing_store()?;
    let user = db.user(name)?.ok_or_else(|| no_account(name))?;
    db.remove_user(name)?;
    db.audit(&cli_audit(
        "user.removed",
        user.tenant.clone(),
        format!("{name} ({})", user.role.as_str()),
    ))?;
    println!("{name}: removed, with its sessions and API tokens");
    Ok(ExitCode::SUCCESS)
}

/// List an account's API tokens: id, created, last used (never the token).
#[derive(clap::Args)]
pub struct UsersTokensArgs {
    name: String,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet users tokens NAME`.
pub fn users_tokens(args: UsersTokensArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let mut db = args.config.open_existing_store()?;
    let user = db.user(name)?.ok_or_else(|| no_account(name))?;
    let fmt = parapet_core::calendar::format_datetime;
    println!("{:<8} {:<22} last used", "id", "created");
    for t in db.api_tokens(user.id)? {
        println!(
            "{:<8} {:<22} {}",
            t.id,
            fmt(t.created_at),
            t.last_used_at.map_or_else(|| "never".to_string(), fmt)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Revoke an API token by its id (from `parapet users tokens NAME`).
#[derive(clap::Args)]
pub struct UsersRevokeTokenArgs {
    id: i64,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet users revoke-token ID`.
pub fn users_revoke_token(args: UsersRevokeTokenArgs) -> anyhow::Result<ExitCode> {
    let id = args.id;
    let mut db = args.config.open_existing_store()?;
    let user = db
        .revoke_api_token(id)?
        .ok_or_else(|| BadInput(format!("no API token with id {id}")))?;
    db.audit(&cli_audit(
        "token.revoked",
        user.tenant.clone(),
        format!("API token {id} of {}", user.name),
    ))?;
    println!("token {id} of {}: revoked", user.name);
    Ok(ExitCode::SUCCESS)
}

/// Enrol an account in TOTP (RFC 6238) and print the otpauth:// URI to add
/// to an authenticator app; enrolling again replaces the secret.
#[derive(clap::Args)]
pub struct UsersTotpArgs {
    name: String,
    /// Remove the second factor instead.
    #[arg(long)]
    disable: bool,
    #[command(flatten)]
    config: ConfigArg,
}

/// `parapet users totp NAME [--disable]`. The account's sessions end, so
/// the next sign-in uses the new factor.
pub fn users_totp(args: UsersTotpArgs) -> anyhow::Result<ExitCode> {
    let name = &args.name;
    let mut db = args.config.open_existing_store()?;
    let user = db.user(name)?.ok_or_else(|| no_account(name))?;
    if args.disable {
        db.set_totp(name, None)?;
        db.end_sessions(user.id)?;
        db.audit(&cli_audit(
            "user.totp",
            user.tenant,
            format!("{name}: second factor removed"),
        ))?;
        println!("{name}: second factor removed");
        return Ok(ExitCode::SUCCESS);
    }
    let secret = parapet_web::totp::new_secret();
    db.set_totp(name, Some(&hex::encode(&secret)))?;
    db.end_sessions(user.id)?;
    db.audit(&cli_audit(
        "user.totp",
        user.tenant,
        format!("{name}: second factor enrolled"),
    ))?;
    println!("{}", parapet_web::totp::uri("Parapet", name, &secret));
    eprintln!(
        "{name}: add this URI to an authenticator app (it holds the secret: do not keep it); \
         the dashboard now asks for its 6-digit code"
    );
    Ok(ExitCode::SUCCESS)
}

/// The pseudonym of every `[[tenants]] forwarders` address, by tenant: the
/// alert page labels those clients. The networks are small (the config
/// check bounds them), so each address is hashed once here.
fn forwarder_pseudonyms(
    config: &Config,
) -> anyhow::Result<std::collections::HashSet<(String, parapet_core::pseudonym::ClientPseudonym)>> {
    let mut out = std::collections::HashSet::new();
    if config.tenants.iter().all(|t| t.forwarders.is_empty()) {
        return Ok(out);
    }
    let (key, source) = config.pseudonym_key()?;
    let p = parapet_core::pseudonym::Pseudonymiser::new(&key)
        .map_err(|e| crate::BadInput(format!("{source}: {e}")))?;
    for t in &config.tenants {
        for net in &t.forwarders {
            for ip in net.hosts().chain([net.network(), net.broadcast()]) {
                out.insert((t.name.get_ref().clone(), p.pseudonymise(ip)));
            }
        }
    }
    Ok(out)
}
