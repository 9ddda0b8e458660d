//! `parapet`: the one binary. Parses the command line, loads the config,
//! wires the crates together and maps errors to exit codes (0 success,
//! 1 findings or failure to act on, 2 bad usage or bad input).

mod alerts_cmd;
mod assurance_cmd;
mod config;
mod dashboard;
mod dmarc_cmd;
mod feeds_cmd;
mod loader;
mod mailcheck_cmd;
mod privacy;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "parapet",
    version,
    about = "Protective DNS and cyber assurance for councils and their hosting suppliers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the protective DNS resolver and the web dashboard with its JSON
    /// API (and /metrics).
    ///
    /// Without --config: DNS on 127.0.0.1:5353 (UDP and TCP), web on
    /// 127.0.0.1:8080, upstreams from /etc/resolv.conf, the bundled example
    /// feed. SIGHUP reloads the config and every feed; feed files are also
    /// watched for changes. With no account yet, an `admin` account is
    /// created and its password printed.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
        /// Load the bundled demo data (two councils' traffic and alerts,
        /// Mail Check results, the fixture estate) once, for a first look.
        #[arg(long)]
        demo: bool,
    },
    /// Dashboard accounts and API tokens.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// What is stored about DNS queries, for how long, and how clients are
    /// pseudonymised.
    Privacy {
        /// The TOML configuration file (defaults apply without one).
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Alerts raised by detection: list them, move them through the workflow.
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Check the e-mail security of domains: SPF, DMARC, DKIM, MX. Exit 1
    /// when any error-severity finding, 0 otherwise, 2 on bad usage.
    Mailcheck {
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
        /// Store the results and report what changed since the last check.
        #[arg(long)]
        store: bool,
        /// The TOML configuration file (for the store's location, with --store).
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// DMARC aggregate and TLS-RPT reports.
    Dmarc {
        #[command(subcommand)]
        command: DmarcCommand,
    },
    /// The asset register: import scanner, inventory and AV exports; record exceptions.
    Assets {
        #[command(subcommand)]
        command: AssetsCommand,
    },
    /// The incident register (KPI 1: successful attacks and breaches).
    Incidents {
        #[command(subcommand)]
        command: IncidentsCommand,
    },
    /// The five committee KPIs and the Cyber Essentials checks for a quarter.
    /// A quarter that has ended is frozen on first request: its figures
    /// never change when new data arrives.
    Kpi {
        /// e.g. 2021-22-Q2 (financial year April–March: July–September 2021),
        /// or 2021-Q3 (calendar).
        #[arg(long)]
        quarter: String,
        /// The council (tenant).
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        /// The TOML configuration file (store location, KPI settings).
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The quarterly committee report: public-report.{html,pdf},
    /// exempt-appendix.{html,pdf} and kpi.json in --out.
    Report {
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
        /// The committee the report goes to.
        #[arg(long, default_value = "Audit and Governance Committee")]
        committee: String,
        /// Why the appendix is exempt (default: Schedule 12A LGA 1972, paragraph 7).
        #[arg(long)]
        exemption: Option<String>,
        #[arg(long, default_value = "default")]
        tenant: String,
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Threat feeds.
    Feeds {
        #[command(subcommand)]
        command: FeedsCommand,
    },
    /// The configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add an account. The password comes from PARAPET_PASSWORD (at least
    /// 10 characters), or is generated and printed.
    Add {
        name: String,
        #[arg(long, value_parser = ["supplier-admin", "supplier-analyst", "council"])]
        role: String,
        /// The council of a `council` account (it sees this tenant only).
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Set a new password (PARAPET_PASSWORD, or generated and printed).
    Passwd {
        name: String,
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Create an API token for scripts (`Authorization: Bearer TOKEN`); printed once.
    Token {
        name: String,
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List accounts.
    List {
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum FeedsCommand {
    /// Validate a feed file: prints its entry count, or its first errors with
    /// line numbers (exit 2).
    Check {
        /// The feed file.
        file: PathBuf,
        /// Feed format; guessed from the file name when absent (.rpz/.zone:
        /// rpz, names containing "hosts": hosts, otherwise domains).
        #[arg(long, value_parser = ["rpz", "hosts", "domains"])]
        format: Option<String>,
    },
    /// Publish a feed file into the store for every node whose `[[feeds]]`
    /// entry has `source = "database"` (checked first; a bad feed is refused).
    Publish {
        /// The feed's name, as in `[[feeds]] name`.
        name: String,
        /// The feed file.
        file: PathBuf,
        #[arg(long, value_parser = ["rpz", "hosts", "domains"])]
        format: Option<String>,
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// The nodes sharing the store and the database feed versions each serves.
    Nodes {
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum AlertsCommand {
    /// List alerts, most recently seen first.
    List {
        /// The TOML configuration file (for the store's location).
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
        /// Only this tenant's alerts.
        #[arg(long)]
        tenant: Option<String>,
        /// Only alerts in this state.
        #[arg(long, value_parser = ["new", "investigating", "resolved", "false_positive"])]
        status: Option<String>,
        /// Only this rule (feed.block, feed.monitor, dga, tunnel, beacon, new_domain).
        #[arg(long)]
        rule: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
    /// Move an alert through the workflow: new → investigating → resolved |
    /// false_positive (closed alerts can be reopened as investigating).
    Set {
        /// The TOML configuration file (for the store's location).
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
        /// The alert's id.
        id: i64,
        /// The new status.
        #[arg(value_parser = ["investigating", "resolved", "false_positive"])]
        status: String,
        /// Why (kept in the alert's history).
        #[arg(long)]
        note: String,
        /// Who (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Subcommand)]
enum DmarcCommand {
    /// Import reports: XML, .xml.gz, .zip, .eml/MIME messages carrying them,
    /// TLS-RPT .json/.json.gz. Duplicates are skipped; a corrupt file is
    /// reported and skipped (exit 2) while the rest import.
    Import {
        /// The TOML configuration file (for the store's location).
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
        /// Report files.
        files: Vec<PathBuf>,
    },
    /// Sources, volumes, alignment and pass rates for a domain.
    Summary {
        /// The TOML configuration file (for the store's location).
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
        /// The domain the reports are about.
        #[arg(long)]
        domain: String,
        /// Output format.
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
    },
}

#[derive(Subcommand)]
enum AssetsCommand {
    /// Import exports into the register. Each file is one transaction: a
    /// bad row or element is reported with file, line/element and field,
    /// nothing of that file is imported, and the command exits 2.
    Import {
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
    },
    /// Record an exception (risk accepted / compensating control) for a
    /// device or one finding on it; shown beside the KPI, never inside it.
    Except {
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
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum IncidentsCommand {
    /// Record an incident, or promote a detection alert (--from-alert).
    Add {
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
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// List incidents, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value = "table", value_parser = ["table", "json"])]
        format: String,
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Close an incident (its outcome is kept).
    Close {
        id: i64,
        /// When it was closed (default: now).
        #[arg(long)]
        date: Option<String>,
        #[arg(long, short, env = "PARAPET_CONFIG")]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file and the feeds it names.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
    },
}

/// An error caused by the user's input (exit 2).
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve { config, demo } => serve::run(config.as_deref(), demo),
        Command::Users { command } => match command {
            UsersCommand::Add {
                name,
                role,
                tenant,
                config,
            } => dashboard::users_add(config.as_deref(), &name, &role, tenant),
            UsersCommand::Passwd { name, config } => {
                dashboard::users_passwd(config.as_deref(), &name)
            }
            UsersCommand::Token { name, config } => {
                dashboard::users_token(config.as_deref(), &name)
            }
            UsersCommand::List { config } => dashboard::users_list(config.as_deref()),
        },
        Command::Privacy { config } => privacy::run(config.as_deref()),
        Command::Dmarc {
            command: DmarcCommand::Import { config, files },
        } => dmarc_cmd::import(config.as_deref(), &files),
        Command::Dmarc {
            command:
                DmarcCommand::Summary {
                    config,
                    domain,
                    format,
                },
        } => dmarc_cmd::summary(config.as_deref(), &domain, format == "json"),
        Command::Mailcheck {
            domains,
            from,
            nameserver,
            format,
            dkim_selector,
            concurrency,
            smtp_port,
            no_tls,
            ca_file,
            https_port,
            store,
            config,
        } => mailcheck_cmd::run(mailcheck_cmd::Args {
            https_port,
            store: store.then_some(config),
            smtp_port: (!no_tls).then_some(smtp_port),
            ca_file,
            domains,
            from,
            nameserver,
            json: format == "json",
            dkim_selectors: dkim_selector,
            concurrency,
        }),
        Command::Alerts {
            command:
                AlertsCommand::List {
                    config,
                    tenant,
                    status,
                    rule,
                    limit,
                    format,
                },
        } => alerts_cmd::list(
            config.as_deref(),
            alerts_cmd::ListArgs {
                tenant,
                status: status.as_deref(),
                rule,
                limit,
                json: format == "json",
            },
        ),
        Command::Alerts {
            command:
                AlertsCommand::Set {
                    config,
                    id,
                    status,
                    note,
                    by,
                },
        } => alerts_cmd::set(config.as_deref(), id, &status, &note, by),
        Command::Assets {
            command:
                AssetsCommand::Import {
                    source,
                    files,
                    as_of,
                    tenant,
                    config,
                },
        } => assurance_cmd::import(
            config.as_deref(),
            &tenant,
            &source,
            &files,
            as_of.as_deref(),
        ),
        Command::Assets {
            command:
                AssetsCommand::Except {
                    device,
                    finding,
                    scope,
                    kind,
                    reason,
                    owner,
                    approver,
                    expires,
                    from,
                    tenant,
                    config,
                },
        } => assurance_cmd::except(
            config.as_deref(),
            assurance_cmd::ExceptArgs {
                tenant,
                device,
                finding,
                scope,
                kind,
                reason,
                owner,
                approver,
                expires,
                from,
            },
        ),
        Command::Incidents {
            command:
                IncidentsCommand::Add {
                    reference,
                    date,
                    category,
                    impact,
                    outcome,
                    status,
                    summary,
                    ico_reference,
                    from_alert,
                    tenant,
                    config,
                },
        } => assurance_cmd::incident_add(
            config.as_deref(),
            assurance_cmd::IncidentArgs {
                tenant,
                reference,
                date,
                category,
                impact,
                outcome,
                status,
                summary,
                ico_reference,
                from_alert,
            },
        ),
        Command::Incidents {
            command:
                IncidentsCommand::List {
                    tenant,
                    format,
                    config,
                },
        } => assurance_cmd::incident_list(config.as_deref(), tenant.as_deref(), format == "json"),
        Command::Incidents {
            command: IncidentsCommand::Close { id, date, config },
        } => assurance_cmd::incident_close(config.as_deref(), id, date.as_deref()),
        Command::Kpi {
            quarter,
            tenant,
            format,
            config,
        } => assurance_cmd::kpi(config.as_deref(), &tenant, &quarter, format == "json"),
        Command::Report {
            quarter,
            out,
            council,
            committee,
            exemption,
            tenant,
            config,
        } => assurance_cmd::report(
            config.as_deref(),
            assurance_cmd::ReportArgs {
                tenant,
                quarter,
                out,
                council,
                committee,
                exemption,
            },
        ),
        Command::Feeds {
            command: FeedsCommand::Check { file, format },
        } => feeds_cmd::check(&file, format.as_deref()),
        Command::Feeds {
            command:
                FeedsCommand::Publish {
                    name,
                    file,
                    format,
                    config,
                },
        } => feeds_cmd::publish(config.as_deref(), &name, &file, format.as_deref()),
        Command::Feeds {
            command: FeedsCommand::Nodes { config },
        } => feeds_cmd::nodes(config.as_deref()),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => feeds_cmd::check_config(&file),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PARAPET_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
