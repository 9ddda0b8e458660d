//! `parapet feeds check|publish|nodes` and `parapet config check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use parapet_detect::feed::{self, FeedFormat};

use crate::BadInput;
use crate::config::{Config, ConfigArg};

/// Guesses a feed's format from its file name.
fn guess_format(path: &Path) -> FeedFormat {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".rpz") || name.ends_with(".zone") || name.contains("rpz") {
        FeedFormat::Rpz
    } else if name.contains("hosts") {
        FeedFormat::Hosts
    } else {
        FeedFormat::Domains
    }
}

/// Validate a feed file: prints its entry count, or its first errors with
/// line numbers (exit 2).
#[derive(clap::Args)]
pub struct CheckArgs {
    /// The feed file.
    file: PathBuf,
    /// Feed format; guessed from the file name when absent (.rpz/.zone:
    /// rpz, names containing "hosts": hosts, otherwise domains).
    #[arg(long, value_parser = ["rpz", "hosts", "domains"])]
    format: Option<String>,
}

pub fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.as_path();
    let format = match args.format.as_deref() {
        Some(f) => f
            .parse::<FeedFormat>()
            .map_err(|e| BadInput(e.to_string()))?,
        None => guess_format(path),
    };
    let started = std::time::Instant::now();
    match feed::load_feed(path, format) {
        Ok(parsed) => {
            for w in &parsed.warnings {
                println!(
                    "{}:{}: warning: skipped: {}",
                    path.display(),
                    w.line,
                    w.message
                );
            }
            println!(
                "{}: {} entries ({} format, {} skipped) in {} ms",
                path.display(),
                parsed.rules.triggers(),
                format.as_str(),
                parsed.warnings.len(),
                started.elapsed().as_millis()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            let mut msg = String::new();
            for e in &errors {
                msg.push_str(&format!("\n  {e}"));
            }
            Err(BadInput(format!(
                "{} is not a valid {} feed ({} error{} shown):{msg}",
                path.display(),
                format.as_str(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            ))
            .into())
        }
    }
}

/// Publish a feed file into the store for every node whose `[[feeds]]`
/// entry has `source = "database"` (checked first; a bad feed is refused).
#[derive(clap::Args)]
pub struct PublishArgs {
    /// The feed's name, as in `[[feeds]] name`.
    name: String,
    /// The feed file.
    file: PathBuf,
    #[arg(long, value_parser = ["rpz", "hosts", "domains"])]
    format: Option<String>,
    #[command(flatten)]
    config: ConfigArg,
}

/// Stores a feed in the database for every node: the bytes are parsed first
/// (the format named or guessed from the file name) and refused when bad, so
/// a broken feed never reaches the nodes.
pub fn publish(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let (name, path) = (args.name.as_str(), args.file.as_path());
    let cfg = args.config.load()?;
    let format = match args.format.as_deref() {
        Some(f) => f
            .parse::<FeedFormat>()
            .map_err(|e| BadInput(e.to_string()))?,
        None => cfg
            .feeds
            .iter()
            .find(|f| f.name.get_ref() == name)
            .map_or_else(|| guess_format(path), |f| f.format.into()),
    };
    let bytes = std::fs::read(path)
        .map_err(|e| BadInput(format!("cannot read {}: {e}", path.display())))?;
    let parsed =
        feed::parse_feed(&bytes, format, &path.display().to_string()).map_err(|errors| {
            BadInput(format!(
                "{} is not a valid {} feed; not published:\n  {}",
                path.display(),
                format.as_str(),
                errors
                    .iter()
                    .take(5)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ))
        })?;
    let mut store = cfg.open_store()?;
    let v = store.publish_feed(name, &bytes, std::time::SystemTime::now())?;
    println!(
        "feed {name}: version {} ({} entries, sha256 {}) in {}",
        v.version,
        parsed.rules.triggers(),
        v.sha256,
        store.location()
    );
    Ok(ExitCode::SUCCESS)
}

/// The nodes sharing the store and the database feed versions each serves.
#[derive(clap::Args)]
pub struct NodesArgs {
    #[command(flatten)]
    config: ConfigArg,
}

/// Lists the nodes that share the store, with the feed versions they serve.
pub fn nodes(args: NodesArgs) -> anyhow::Result<ExitCode> {
    let mut store = args.config.open_existing_store()?;
    for n in store.nodes()? {
        println!(
            "{}\tstarted {}\tseen {}\t{}",
            n.name,
            n.started_at / 1000,
            n.seen_at / 1000,
            n.feeds
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Validate a configuration file and the feeds it names.
#[derive(clap::Args)]
pub struct ConfigCheckArgs {
    /// The TOML configuration file.
    file: PathBuf,
}

pub fn check_config(args: ConfigCheckArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.as_path();
    let cfg = Config::load(path).map_err(|e| BadInput(format!("{e:#}")))?;
    let mut bad = Vec::new();
    for f in &cfg.feeds {
        if f.source == crate::config::FeedSourceConfig::Database {
            println!(
                "feed {}: from the database (parapet feeds publish)",
                f.name.get_ref()
            );
            continue;
        }
        if !f.xfr_primaries().is_empty() {
            println!(
                "feed {}: zone {} by transfer from {:?}",
                f.name.get_ref(),
                f.zone.as_deref().unwrap_or_default(),
                f.xfr_primaries()
            );
            let key = f.tsig_key.as_ref().map(|k| k.get_ref());
            if let Some(t) = cfg.tsig.iter().find(|t| Some(t.name.get_ref()) == key)
                && let Err(e) = t.secret_bytes()
            {
                bad.push(format!("feed {}: {e}", f.name.get_ref()));
            }
            continue;
        }
        if let Some(url) = &f.url {
            println!(
                "feed {}: fetched from {} (parapet feeds status)",
                f.name.get_ref(),
                url.get_ref()
            );
            continue;
        }
        let p = cfg.resolve(&f.path);
        match feed::load_feed(&p, f.format.into()) {
            Ok(parsed) => println!(
                "feed {}: {} entries",
                f.name.get_ref(),
                parsed.rules.triggers()
            ),
            Err(errors) => bad.extend(errors.into_iter().take(5).map(|e| e.to_string())),
        }
    }
    if !bad.is_empty() {
        return Err(BadInput(format!("feeds with errors:\n  {}", bad.join("\n  "))).into());
    }
    println!(
        "{}: OK ({} feeds, {} tenants, store at {})",
        path.display(),
        cfg.feeds.len(),
        cfg.tenants.len(),
        match cfg.store.database_url() {
            Some(url) => parapet_store::redact(&url),
            None => cfg.resolve(&cfg.store.path).display().to_string(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Each feed's source and state: for feeds taken by zone transfer the
/// serial, last transfer, last error and entries their thread recorded; for
/// URL feeds the last fetch, last error and entries. Exit 1 when a URL
/// feed's last fetch or a zone's last transfer failed.
#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    config: ConfigArg,
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = args.config.load()?;
    let dir = crate::loader::xfr_dir(&cfg);
    let when = |t: u64| {
        if t == 0 {
            "never".to_string()
        } else {
            parapet_core::calendar::format_local(t as i64)
        }
    };
    let mut healthy = true;
    for f in &cfg.feeds {
        let name = f.name.get_ref();
        if f.url.is_some() {
            // printed below, with their fetch state
            continue;
        }
        if f.xfr_primaries().is_empty() {
            match f.source {
                crate::config::FeedSourceConfig::Database => println!("{name}\tdatabase"),
                crate::config::FeedSourceConfig::File => {
                    println!("{name}\tfile {}", cfg.resolve(&f.path).display())
                }
            }
            continue;
        }
        let zone = f.zone.as_deref().unwrap_or_default();
        match parapet_feeds::xfr::read_status(&dir, name) {
            None => {
                healthy = false;
                println!("{name}\tzone {zone}\tno transfer yet")
            }
            Some(s) => {
                healthy &= s.last_error.is_none();
                println!(
                    "{name}\tzone {zone}\tserial {}\tentries {}\tlast transfer {}\tlast success {}\tlast error {}",
                    s.serial.map_or("-".into(), |v| v.to_string()),
                    s.entries,
                    when(s.last_transfer),
                    when(s.last_success),
                    s.last_error.as_deref().unwrap_or("none")
                )
            }
        }
    }
    healthy &= crate::url_feeds::print_status(&cfg)?;
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
