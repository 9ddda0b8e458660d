//! Log lines on stderr: the filter from `PARAPET_LOG` (or `RUST_LOG`), the
//! format from `PARAPET_LOG_FORMAT` or `serve`'s `[log] format`, text or
//! JSON lines. Colour only when stderr is a terminal, so a journal or a
//! file never holds escape codes.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Overrides `[log] format`: `text` or `json`.
pub const ENV_LOG_FORMAT: &str = "PARAPET_LOG_FORMAT";

/// The format in force, for [`always`].
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Starts the subscriber. `config` is the file `serve` will load: its
/// `[log] format` is read here, before anything logs. Only a bad
/// `PARAPET_LOG_FORMAT` is an error; a config file that does not parse is
/// reported by the command that loads it.
pub fn init(config: Option<&Path>) -> Result<(), String> {
    let format = match std::env::var(ENV_LOG_FORMAT) {
        Ok(v) => match v.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(format!(
                    "{ENV_LOG_FORMAT}={other:?}: expected \"text\" or \"json\""
                ));
            }
        },
        Err(_) => config.map_or(LogFormat::Text, format_in),
    };
    let _ = FORMAT.set(format);
    let filter = EnvFilter::try_from_env("PARAPET_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // fields beside timestamp, level, target and message at the top
        // level: a SIEM indexes them without unwrapping a nested object
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
    Ok(())
}

/// Writes `message` to stderr whatever the filter says (the first
/// account's password, shown once), in the format of the other lines: a
/// JSON log stays parseable line by line.
pub fn always(target: &str, message: &str) {
    let line = match FORMAT.get() {
        Some(LogFormat::Json) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let seconds = parapet_core::calendar::format_datetime(now.as_secs() as i64);
            let timestamp = format!(
                "{}.{:06}Z",
                seconds.trim_end_matches('Z'),
                now.subsec_micros()
            );
            serde_json::json!({
                "timestamp": timestamp,
                "level": "WARN",
                "message": message,
                "target": target,
            })
            .to_string()
        }
        _ => message.to_string(),
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The `[log] format` of a config file; text when the file cannot be read
/// or parsed (the full load that follows says why).
fn format_in(path: &Path) -> LogFormat {
    // only `[log]`: every other table is left to `Config::load`
    #[derive(Deserialize)]
    struct LogOnly {
        #[serde(default)]
        log: LogConfig,
    }
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| toml::from_str::<LogOnly>(&text).ok())
        .map_or(LogFormat::Text, |c| c.log.format)
}
