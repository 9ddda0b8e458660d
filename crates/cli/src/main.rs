//! `parapet`: the one binary. Parses the command line, loads the config,
//! wires the crates together and maps errors to exit codes (0 success,
//! 1 findings or failure to act on, 2 bad usage or bad input).
//!
//! Each command's flags are a `clap::Args` struct in the module that runs
//! it; the enums here only name the commands and group them.

mod alerts_cmd;
mod allowlist_cmd;
mod assurance_cmd;
mod config;
mod dashboard;
mod demo;
mod dmarc_cmd;
mod dmarc_senders;
mod encrypted;
mod feeds_cmd;
mod generate_cmd;
mod investigate_cmd;
mod loader;
mod logging;
mod mailbox;
mod mailcheck_cmd;
mod privacy;
mod process_metrics;
mod queries_cmd;
mod sdnotify;
mod serve;
mod url_feeds;

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
    Serve(serve::Args),
    /// Dashboard accounts and API tokens.
    #[command(subcommand)]
    Users(UsersCommand),
    Privacy(privacy::Args),
    /// Alerts raised by detection: list them, move them through the workflow.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Names allowed on every node until an expiry (the alert page's false positives).
    #[command(subcommand)]
    Allowlist(AllowlistCommand),
    /// Stored query events: search them by name, domain, pseudonym, time...
    #[command(subcommand)]
    Queries(QueriesCommand),
    Mailcheck(mailcheck_cmd::Args),
    /// DMARC aggregate and TLS-RPT reports.
    #[command(subcommand)]
    Dmarc(DmarcCommand),
    /// The asset register: import scanner, inventory and AV exports; record exceptions.
    #[command(subcommand)]
    Assets(AssetsCommand),
    /// The incident register (KPI 1: successful attacks and breaches).
    #[command(subcommand)]
    Incidents(IncidentsCommand),
    Kpi(assurance_cmd::KpiArgs),
    Report(assurance_cmd::ReportArgs),
    /// Threat feeds.
    #[command(subcommand)]
    Feeds(FeedsCommand),
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Sealed client addresses: the investigation key pair, audited reveals.
    #[command(subcommand)]
    Investigate(InvestigateCommand),
    /// Man pages and shell completions (for packaging).
    #[command(hide = true)]
    Generate(generate_cmd::Args),
}

#[derive(Subcommand)]
enum UsersCommand {
    Add(dashboard::UsersAddArgs),
    Passwd(dashboard::UsersPasswdArgs),
    Token(dashboard::UsersTokenArgs),
    List(dashboard::UsersListArgs),
    Remove(dashboard::UsersRemoveArgs),
    Tokens(dashboard::UsersTokensArgs),
    RevokeToken(dashboard::UsersRevokeTokenArgs),
    Totp(dashboard::UsersTotpArgs),
}

#[derive(Subcommand)]
enum FeedsCommand {
    Check(feeds_cmd::CheckArgs),
    Publish(feeds_cmd::PublishArgs),
    Nodes(feeds_cmd::NodesArgs),
    Status(feeds_cmd::StatusArgs),
}

#[derive(Subcommand)]
enum AlertsCommand {
    List(alerts_cmd::ListArgs),
    Set(alerts_cmd::SetArgs),
}

#[derive(Subcommand)]
enum AllowlistCommand {
    List(allowlist_cmd::ListArgs),
    Add(allowlist_cmd::AddArgs),
    Remove(allowlist_cmd::RemoveArgs),
}

#[derive(Subcommand)]
enum QueriesCommand {
    Search(queries_cmd::SearchArgs),
}

#[derive(Subcommand)]
enum DmarcCommand {
    Import(dmarc_cmd::ImportArgs),
    Summary(dmarc_cmd::SummaryArgs),
    /// One pass over the `[[dmarc.mailboxes]]`: import the reports, move the messages.
    Fetch(mailbox::FetchArgs),
}

#[derive(Subcommand)]
enum AssetsCommand {
    Import(assurance_cmd::ImportArgs),
    Except(assurance_cmd::ExceptArgs),
}

#[derive(Subcommand)]
enum IncidentsCommand {
    Add(assurance_cmd::IncidentAddArgs),
    List(assurance_cmd::IncidentListArgs),
    Close(assurance_cmd::IncidentCloseArgs),
}

#[derive(Subcommand)]
enum InvestigateCommand {
    Keygen(investigate_cmd::KeygenArgs),
    Reveal(investigate_cmd::RevealArgs),
}

#[derive(Subcommand)]
enum ConfigCommand {
    Check(feeds_cmd::ConfigCheckArgs),
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

/// Reads an input file of at most `limit` bytes, refusing a larger one
/// before loading it (by its size, and by reading at most `limit + 1`
/// bytes, for pipes and files that grow).
pub fn read_input(path: &std::path::Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let too_big = |n: u64| {
        format!(
            "{n} bytes, more than the {} MB an import may be: refused",
            limit / 1_000_000
        )
    };
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    if len > limit {
        return Err(too_big(len));
    }
    let mut data = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read: {e}"))?;
    if data.len() as u64 > limit {
        return Err(too_big(data.len() as u64));
    }
    Ok(data)
}

fn main() -> ExitCode {
    quiet_broken_pipe();
    let cli = Cli::parse();
    // `serve` takes its log format from its config file, read before it logs
    let serve_config = match &cli.command {
        Command::Serve(a) => a.config.as_deref(),
        _ => None,
    };
    if let Err(e) = logging::init(serve_config) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Serve(a) => serve::run(a),
        Command::Users(UsersCommand::Add(a)) => dashboard::users_add(a),
        Command::Users(UsersCommand::Passwd(a)) => dashboard::users_passwd(a),
        Command::Users(UsersCommand::Token(a)) => dashboard::users_token(a),
        Command::Users(UsersCommand::List(a)) => dashboard::users_list(a),
        Command::Users(UsersCommand::Remove(a)) => dashboard::users_remove(a),
        Command::Users(UsersCommand::Tokens(a)) => dashboard::users_tokens(a),
        Command::Users(UsersCommand::RevokeToken(a)) => dashboard::users_revoke_token(a),
        Command::Users(UsersCommand::Totp(a)) => dashboard::users_totp(a),
        Command::Privacy(a) => privacy::run(a),
        Command::Alerts(AlertsCommand::List(a)) => alerts_cmd::list(a),
        Command::Alerts(AlertsCommand::Set(a)) => alerts_cmd::set(a),
        Command::Allowlist(AllowlistCommand::List(a)) => allowlist_cmd::list(a),
        Command::Allowlist(AllowlistCommand::Add(a)) => allowlist_cmd::add(a),
        Command::Allowlist(AllowlistCommand::Remove(a)) => allowlist_cmd::remove(a),
        Command::Queries(QueriesCommand::Search(a)) => queries_cmd::search(a),
        Command::Mailcheck(a) => mailcheck_cmd::run(a),
        Command::Dmarc(DmarcCommand::Import(a)) => dmarc_cmd::import(a),
        Command::Dmarc(DmarcCommand::Summary(a)) => dmarc_cmd::summary(a),
        Command::Dmarc(DmarcCommand::Fetch(a)) => mailbox::fetch(a),
        Command::Assets(AssetsCommand::Import(a)) => assurance_cmd::import(a),
        Command::Assets(AssetsCommand::Except(a)) => assurance_cmd::except(a),
        Command::Incidents(IncidentsCommand::Add(a)) => assurance_cmd::incident_add(a),
        Command::Incidents(IncidentsCommand::List(a)) => assurance_cmd::incident_list(a),
        Command::Incidents(IncidentsCommand::Close(a)) => assurance_cmd::incident_close(a),
        Command::Kpi(a) => assurance_cmd::kpi(a),
        Command::Report(a) => assurance_cmd::report(a),
        Command::Feeds(FeedsCommand::Check(a)) => feeds_cmd::check(a),
        Command::Feeds(FeedsCommand::Publish(a)) => feeds_cmd::publish(a),
        Command::Feeds(FeedsCommand::Nodes(a)) => feeds_cmd::nodes(a),
        Command::Feeds(FeedsCommand::Status(a)) => feeds_cmd::status(a),
        Command::Config(ConfigCommand::Check(a)) => feeds_cmd::check_config(a),
        Command::Generate(a) => generate_cmd::run(a),
        Command::Investigate(InvestigateCommand::Keygen(a)) => investigate_cmd::keygen(a),
        Command::Investigate(InvestigateCommand::Reveal(a)) => investigate_cmd::reveal(a),
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

/// `parapet kpi | head` closes the pipe early, and `println!` then panics
/// with "failed printing to stdout: Broken pipe". Such a panic ends the
/// process quietly with 141 (128 + SIGPIPE), as a C tool killed by SIGPIPE
/// would; any other panic reports as usual. (Rust ignores SIGPIPE, which
/// `serve` needs for its sockets.)
fn quiet_broken_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let msg = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        report(info)
    }));
}
