//! `[[dmarc.mailboxes]]`: an IMAP mailbox reports arrive in, as
//! configured, and its checks. The fetching is `crate::mailbox`'s.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// How the connection to the IMAP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (port 993).
    #[default]
    Implicit,
    /// Plain IMAP upgraded with STARTTLS (port 143).
    Starttls,
    /// No TLS: loopback only.
    None,
}

/// One `[[dmarc.mailboxes]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxConfig {
    pub name: Spanned<String>,
    pub host: Spanned<String>,
    /// 993 for implicit TLS, 143 otherwise.
    pub port: Option<u16>,
    #[serde(default = "default_tls")]
    pub tls: Spanned<TlsMode>,
    pub user: String,
    /// The environment variable that holds the password.
    pub password_env: Spanned<String>,
    #[serde(default = "default_folder")]
    pub folder: Spanned<String>,
    #[serde(default = "default_archive")]
    pub archive_folder: Spanned<String>,
    #[serde(default = "default_invalid")]
    pub invalid_folder: Spanned<String>,
    /// The council these reports are about: a report for a domain that is
    /// not one of its `mail_domains` is imported with a warning.
    pub tenant: Option<Spanned<String>>,
    /// PEM CA certificates trusted in addition to the public roots.
    pub ca_file: Option<PathBuf>,
    /// Seconds between passes without IDLE (and between IDLE renewals,
    /// at most 25 minutes).
    #[serde(default = "default_poll")]
    pub poll_interval_secs: u64,
    /// Larger messages are moved to the invalid folder unread.
    #[serde(default = "default_max_message_mb")]
    pub max_message_mb: u64,
    /// Messages read per pass; the rest wait for the next pass.
    #[serde(default = "default_per_pass")]
    pub max_messages_per_pass: usize,
}

fn default_tls() -> Spanned<TlsMode> {
    Spanned::new(0..0, TlsMode::Implicit)
}
fn default_folder() -> Spanned<String> {
    Spanned::new(0..0, "INBOX".into())
}
fn default_archive() -> Spanned<String> {
    Spanned::new(0..0, "Archive".into())
}
fn default_invalid() -> Spanned<String> {
    Spanned::new(0..0, "Invalid".into())
}
fn default_poll() -> u64 {
    300
}
fn default_max_message_mb() -> u64 {
    25
}
fn default_per_pass() -> usize {
    200
}

impl MailboxConfig {
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    pub(crate) fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls.get_ref() {
            TlsMode::Implicit => 993,
            _ => 143,
        })
    }

    pub(crate) fn poll(&self) -> Duration {
        Duration::from_secs(self.poll_interval_secs)
    }

    pub(crate) fn max_message_bytes(&self) -> u64 {
        self.max_message_mb.saturating_mul(1 << 20)
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A folder name as it goes into a quoted IMAP string.
fn check_folder(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 200 {
        return Err("must be 1 to 200 characters".into());
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\\' | '*' | '%'))
    {
        return Err(format!(
            "`{name}` holds a quote, backslash, wildcard or control character"
        ));
    }
    Ok(())
}

/// Checks one mailbox entry against the rest of the config: a span, the
/// key at fault and why, for the caller to place in the file.
pub fn validate(
    m: &MailboxConfig,
    seen: &[&str],
    tenants: &[String],
) -> Result<(), (std::ops::Range<usize>, &'static str, String)> {
    let bad = |s: std::ops::Range<usize>, key, msg: String| Err((s, key, msg));
    if m.name().is_empty() || seen.contains(&m.name()) {
        return bad(
            m.name.span(),
            "name",
            format!("`{}` is empty or used twice", m.name()),
        );
    }
    if m.host.get_ref().is_empty() {
        return bad(m.host.span(), "host", "is empty".into());
    }
    if *m.tls.get_ref() == TlsMode::None && !is_loopback(m.host.get_ref()) {
        return bad(
            m.tls.span(),
            "tls",
            format!(
                "\"none\" sends the password in clear: only for a loopback host, not `{}`",
                m.host.get_ref()
            ),
        );
    }
    if m.password_env.get_ref().is_empty() {
        return bad(m.password_env.span(), "password_env", "is empty".into());
    }
    for (f, key) in [
        (&m.folder, "folder"),
        (&m.archive_folder, "archive_folder"),
        (&m.invalid_folder, "invalid_folder"),
    ] {
        check_folder(f.get_ref()).or_else(|e| bad(f.span(), key, e))?;
    }
    if m.archive_folder.get_ref() == m.folder.get_ref()
        || m.invalid_folder.get_ref() == m.folder.get_ref()
    {
        return bad(
            m.archive_folder.span(),
            "archive_folder",
            "the archive and invalid folders must differ from `folder`".into(),
        );
    }
    if let Some(t) = &m.tenant
        && !tenants.iter().any(|n| n == t.get_ref())
    {
        return bad(
            t.span(),
            "tenant",
            format!("no tenant is named `{}`", t.get_ref()),
        );
    }
    if m.poll_interval_secs == 0 || m.max_message_mb == 0 || m.max_messages_per_pass == 0 {
        return bad(
            m.name.span(),
            "poll_interval_secs",
            "poll_interval_secs, max_message_mb and max_messages_per_pass must be above 0".into(),
        );
    }
    Ok(())
}
