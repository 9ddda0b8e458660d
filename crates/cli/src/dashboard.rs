//! Wiring of the web dashboard: the KPI/report source it asks, the tenants
//! it knows, `parapet users`, and the bundled demo data (`serve --demo`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::Context;
use parapet_store::accounts::{AuditEntry, Role};
use parapet_web::{AssuranceSettings, Dashboard, FeedInfo, PrivacyFacts, TenantInfo};

use crate::BadInput;
use crate::config::{Config, ConfigArg, FeedModeConfig};

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
        for (name, display, domain) in crate::demo::DEMO_TENANTS {
            if !tenants.iter().any(|t| t.name == name) {
                tenants.push(TenantInfo {
                    name: name.into(),
                    display_name: Some(display.into()),
                    mail_domains: vec![domain.into()],
                    networks: Vec::new(),
                });
            }
        }
    }
    let demo_quarter = if demo {
        let loaded = crate::demo::load(&mut *db, now(), config.assurance.quarters)?;
        tracing::info!("{}", loaded.summary());
        Some(loaded.quarter.to_string())
    } else {
        None
    };
    let location = db.location();
    let assurance = AssuranceSettings {
        quarters: config.assurance.quarters,
        kpi: config.assurance.kpi.clone(),
        default_quarter: demo_quarter,
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
    // a few connections, so a long KPI computation does not hold up the
    // other pages; opened as requests need them, so a store that is down
    // when the node starts is reached once it is back
    let reopen = config.clone();
    let pool = parapet_web::DbPool::growing(
        db,
        config.store.pool_size,
        Box::new(move || reopen.connect_store()),
    );
    let mut d = Dashboard::with_pool(
        pool,
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
            source: "built in (test names only)".into(),
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
                source: feed_source(f),
            })
            .collect()
    };
    Ok(Arc::new(d))
}

/// A feed's source as the tenants page shows it to every viewer: no
/// server paths (a file's name only) and no URL query (it may carry a key).
fn feed_source(f: &crate::config::FeedConfig) -> String {
    if let Some(zone) = &f.zone {
        let primaries: Vec<String> = f
            .primary
            .iter()
            .chain(&f.primaries)
            .map(|p| p.to_string())
            .collect();
        return format!("zone transfer of {zone} from {}", primaries.join(", "));
    }
    if let Some(url) = &f.url {
        let u = url.get_ref();
        let bare = u.split(['?', '#']).next().unwrap_or(u);
        // user:password@ in a URL is a secret too
        let bare = match bare.split_once("://") {
            Some((scheme, rest)) => match rest.split_once('@') {
                Some((_, host)) if !host.contains('/') || rest.find('@') < rest.find('/') => {
                    format!("{scheme}://{host}")
                }
                _ => bare.to_string(),
            },
            None => bare.to_string(),
        };
        return format!("URL {bare}");
    }
    if matches!(f.source, crate::config::FeedSourceConfig::Database) {
        return "published to the store (parapet feeds publish)".into();
    }
    let name = f
        .path
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    format!("file {name}")
}

/// Add an account. The password comes from PARAPET_PASSWORD (at least
/// 10 characters), or is generated and printed.
#[derive(clap::Args)]
pub struct UsersAddArgs {
    name: String,
    #[arg(long, value_parser = ["supplier-admin", "supplier-analyst", "council", "council-officer"])]
    role: String,
    /// The council of a `council` or `council-officer` account (it sees
    /// this tenant only).
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
    if role.is_council() && tenant.is_none() {
        return Err(BadInput("a council account needs --tenant".into()).into());
    }
    if !role.is_council() && tenant.is_some() {
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
