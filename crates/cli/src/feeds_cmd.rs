//! `parapet feeds check` and `parapet config check`.

use std::path::Path;
use std::process::ExitCode;

use parapet_detect::feed::{self, FeedFormat};

use crate::BadInput;
use crate::config::Config;

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

pub fn check(path: &Path, format: Option<&str>) -> anyhow::Result<ExitCode> {
    let format = match format {
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
                parsed.rules.len(),
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

pub fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    let cfg = Config::load(path).map_err(|e| BadInput(format!("{e:#}")))?;
    let mut bad = Vec::new();
    for f in &cfg.feeds {
        let p = cfg.resolve(&f.path);
        match feed::load_feed(&p, f.format.into()) {
            Ok(parsed) => println!("feed {}: {} entries", f.name.get_ref(), parsed.rules.len()),
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
        cfg.resolve(&cfg.store.path).display()
    );
    Ok(ExitCode::SUCCESS)
}
