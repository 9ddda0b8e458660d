//! `parapet queries search`: the stored query events, searched as the
//! dashboard's `/queries` page searches them (the same parameters, checked
//! by the same code), straight from the store.

use std::path::PathBuf;
use std::process::ExitCode;

use parapet_core::calendar::format_local_ms;
use parapet_web::{AppError, QUERIES_PAGE, QueriesQuery, event_json, event_query};

use crate::BadInput;
use crate::config::Config;

/// Search the stored query events, newest first, 50 a page.
#[derive(clap::Args)]
pub struct SearchArgs {
    /// The TOML configuration file (for the store's location).
    #[arg(long, short, env = "PARAPET_CONFIG")]
    config: Option<PathBuf>,
    /// Only this tenant's queries.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this client's: its pseudonym (16 hexadecimal digits).
    #[arg(long)]
    pseudonym: Option<String>,
    /// Only this name (see --match).
    #[arg(long)]
    name: Option<String>,
    /// How --name matches: the name itself, or it and every name under it.
    #[arg(long = "match", default_value = "exact", value_parser = ["exact", "suffix"])]
    name_match: String,
    /// Only names under this registrable domain (a longer name is cut to it).
    #[arg(long)]
    domain: Option<String>,
    /// Only this action (resolved, blocked, nodata, dropped, local_data, ...).
    #[arg(long)]
    action: Option<String>,
    /// Only queries this feed (rule) matched.
    #[arg(long)]
    rule: Option<String>,
    /// From this time (RFC 3339) or date on.
    #[arg(long)]
    since: Option<String>,
    /// Up to this time (RFC 3339) or to the end of this date.
    #[arg(long)]
    until: Option<String>,
    /// Which page of 50 (from 1).
    #[arg(long, default_value_t = 1)]
    page: usize,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
}

pub fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let q = QueriesQuery {
        tenant: args.tenant.clone(),
        pseudonym: args.pseudonym,
        name: args.name,
        name_match: Some(args.name_match),
        domain: args.domain,
        action: args.action,
        rule: args.rule,
        since: args.since,
        until: args.until,
        page: Some(args.page.to_string()),
    };
    let search = event_query(args.tenant.as_deref(), &q).map_err(|e| match e {
        AppError::BadRequest(m) => BadInput(m),
        e => BadInput(format!("{e:?}")),
    })?;
    let mut store = Config::load_or_embedded(args.config.as_deref())?.open_existing_store()?;
    let mut rows = store.search_events(&search)?;
    let more = rows.len() > QUERIES_PAGE;
    rows.truncate(QUERIES_PAGE);
    if args.format == "json" {
        let v = serde_json::json!({
            "page": args.page,
            "next_page": more.then_some(args.page + 1),
            "events": rows.iter().map(event_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no queries match");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<25} {:<14} {:<16} {:<40} {:>5} {:<11} {:<12} {:>7}",
        "TIME", "TENANT", "PSEUDONYM", "NAME", "TYPE", "ACTION", "RULE", "QUERIES"
    );
    for e in &rows {
        println!(
            "{:<25} {:<14} {:<16} {:<40} {:>5} {:<11} {:<12} {:>7}",
            format_local_ms(e.time),
            e.tenant,
            e.client,
            e.qname,
            e.qtype,
            e.action,
            e.feed.as_deref().unwrap_or("-"),
            e.queries
        );
    }
    if more {
        println!("more: --page {}", args.page + 1);
    }
    Ok(ExitCode::SUCCESS)
}
