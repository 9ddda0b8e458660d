//! Alert delivery: a JSON webhook (signed with HMAC-SHA256, retried with
//! backoff) and e-mail over SMTP (lettre, rustls), routed per tenant, each
//! route either immediate or as a digest.
//!
//! Runs on its own thread, fed by the event writer with every alert that is
//! new (or reopened). Delivery never blocks detection: a slow receiver only
//! delays its own queue.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use parapet_core::alert::{Alert, Severity};
use serde::Deserialize;
use sha2::Sha256;

/// How to talk to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on the same host or a test server only).
    None,
    /// STARTTLS on the submission port (587), certificate verified.
    #[default]
    Starttls,
    /// Implicit TLS (465), certificate verified.
    Tls,
}

/// `[notify]`: where alerts are delivered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// `host:port` of the SMTP server for e-mail routes.
    pub smtp_server: Option<String>,
    pub smtp_security: SmtpSecurity,
    pub smtp_username: Option<String>,
    /// Prefer the PARAPET_SMTP_PASSWORD environment variable.
    pub smtp_password: Option<String>,
    /// The From: address of alert e-mails.
    pub from: String,
    /// Alerts below this severity are not delivered (they stay listed).
    #[serde(deserialize_with = "severity")]
    pub min_severity: parapet_core::alert::Severity,
    pub routes: Vec<RouteConfig>,
}

fn severity<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<parapet_core::alert::Severity, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            smtp_server: None,
            smtp_security: SmtpSecurity::default(),
            smtp_username: None,
            smtp_password: None,
            from: "parapet@localhost".into(),
            min_severity: DEFAULT_MIN_SEVERITY,
            routes: Vec::new(),
        }
    }
}

impl NotifyConfig {
    pub fn smtp_password(&self) -> Option<String> {
        std::env::var("PARAPET_SMTP_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty())
            .or_else(|| self.smtp_password.clone())
    }
}

/// `[[notify.routes]]`: one tenant's (or, with `tenant = "*"`, every
/// tenant's) alerts to a webhook and/or e-mail addresses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub tenant: String,
    #[serde(default)]
    pub webhook: Option<String>,
    /// Key of the `X-Parapet-Signature: sha256=...` HMAC header.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub email: Vec<String>,
    /// 0: deliver each alert at once; otherwise one message per this many minutes.
    #[serde(default)]
    pub digest_minutes: u32,
}

/// Delivery attempts per message before it is given up (and logged).
const MAX_ATTEMPTS: u32 = 8;
/// First retry delay; doubled per attempt (1 s, 2 s, 4 s … 64 s).
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// The HMAC-SHA256 signature header of a webhook body: `sha256=<hex>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Webhook { url: String, secret: Option<String> },
    Email { to: Vec<String> },
}

#[derive(Debug)]
struct Job {
    target: Target,
    alerts: Vec<Alert>,
    attempt: u32,
    due: Instant,
}

pub struct Notifier {
    cfg: NotifyConfig,
    http: ureq::Agent,
    queue: Vec<Job>,
    /// Alerts waiting for their route's digest, by target.
    digests: HashMap<Target, (Instant, Vec<Alert>)>,
}

impl Notifier {
    pub fn new(cfg: NotifyConfig) -> Self {
        let http: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .user_agent(concat!("parapet/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self {
            cfg,
            http,
            queue: Vec::new(),
            digests: HashMap::new(),
        }
    }

    pub fn is_configured(&self) -> bool {
        !self.cfg.routes.is_empty()
    }

    /// Delivers alerts from `rx` until it closes.
    pub fn run(mut self, rx: Receiver<Alert>) {
        loop {
            let wait = self
                .next_due()
                .map_or(Duration::from_secs(1), |d| {
                    d.saturating_duration_since(Instant::now())
                })
                .min(Duration::from_secs(1));
            match rx.recv_timeout(wait) {
                Ok(alert) => self.route(alert),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush_digests(true);
                    self.deliver_due(true);
                    return;
                }
            }
            self.flush_digests(false);
            self.deliver_due(false);
        }
    }

    fn next_due(&self) -> Option<Instant> {
        let jobs = self.queue.iter().map(|j| j.due);
        let digests = self.digests.values().map(|(t, _)| *t);
        jobs.chain(digests).min()
    }

    /// Queues an alert for every route that wants it.
    fn route(&mut self, alert: Alert) {
        let min = self.cfg.min_severity;
        if alert.severity < min {
            return;
        }
        let now = Instant::now();
        for r in &self.cfg.routes {
            if r.tenant != "*" && r.tenant != alert.tenant {
                continue;
            }
            let mut targets = Vec::new();
            if let Some(url) = &r.webhook {
                targets.push(Target::Webhook {
                    url: url.clone(),
                    secret: r.webhook_secret.clone(),
                });
            }
            if !r.email.is_empty() {
                targets.push(Target::Email {
                    to: r.email.clone(),
                });
            }
            for target in targets {
                if r.digest_minutes > 0 {
                    let due = now + Duration::from_secs(u64::from(r.digest_minutes) * 60);
                    self.digests
                        .entry(target)
                        .or_insert_with(|| (due, Vec::new()))
                        .1
                        .push(alert.clone());
                } else {
                    self.queue.push(Job {
                        target,
                        alerts: vec![alert.clone()],
                        attempt: 0,
                        due: now,
                    });
                }
            }
        }
    }

    fn flush_digests(&mut self, all: bool) {
        let now = Instant::now();
        let due: Vec<Target> = self
            .digests
            .iter()
            .filter(|(_, (t, _))| all || *t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for target in due {
            if let Some((_, alerts)) = self.digests.remove(&target) {
                self.queue.push(Job {
                    target,
                    alerts,
                    attempt: 0,
                    due: now,
                });
            }
        }
    }

    /// Sends every job that is due; failures are retried with backoff.
    /// `last` (shutdown) makes one final attempt of everything queued.
    fn deliver_due(&mut self, last: bool) {
        let now = Instant::now();
        let jobs = std::mem::take(&mut self.queue);
        for mut job in jobs {
            if !last && job.due > now {
                self.queue.push(job);
                continue;
            }
            job.attempt += 1;
            match self.send(&job) {
                Ok(()) => tracing::info!(
                    target: "parapet::notify",
                    alerts = job.alerts.len(),
                    attempt = job.attempt,
                    "delivered to {}",
                    describe(&job.target)
                ),
                Err(e) if job.attempt < MAX_ATTEMPTS && !last => {
                    let delay = FIRST_RETRY * 2u32.pow(job.attempt - 1);
                    tracing::warn!(
                        target: "parapet::notify",
                        attempt = job.attempt,
                        "delivery to {} failed, retrying in {} s: {e}",
                        describe(&job.target),
                        delay.as_secs()
                    );
                    job.due = Instant::now() + delay;
                    self.queue.push(job);
                }
                Err(e) => tracing::error!(
                    target: "parapet::notify",
                    attempt = job.attempt,
                    "giving up delivery to {}: {e}",
                    describe(&job.target)
                ),
            }
        }
    }

    fn send(&self, job: &Job) -> Result<(), String> {
        match &job.target {
            Target::Webhook { url, secret } => {
                let body = serde_json::to_vec(&serde_json::json!({
                    "event": if job.alerts.len() == 1 { "alert" } else { "alert.digest" },
                    "alerts": job.alerts.iter().map(Alert::to_json).collect::<Vec<_>>(),
                }))
                .map_err(|e| e.to_string())?;
                let mut req = self
                    .http
                    .post(url)
                    .header("Content-Type", "application/json");
                if let Some(s) = secret {
                    req = req.header("X-Parapet-Signature", &signature(s.as_bytes(), &body));
                }
                let resp = req.send(&body[..]).map_err(|e| e.to_string())?;
                let status = resp.status().as_u16();
                if (200..300).contains(&status) {
                    Ok(())
                } else {
                    Err(format!("HTTP {status}"))
                }
            }
            Target::Email { to } => self.send_mail(to, &job.alerts),
        }
    }

    fn send_mail(&self, to: &[String], alerts: &[Alert]) -> Result<(), String> {
        let smtp = self
            .cfg
            .smtp_server
            .as_deref()
            .ok_or("no [notify] smtp_server configured")?;
        let (host, port) = match smtp.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("bad SMTP port in `{smtp}`"))?,
            ),
            None => (smtp, 25),
        };
        let subject = match alerts {
            [a] => format!(
                "[Parapet] {} {} alert for {}: {}",
                a.severity, a.rule, a.tenant, a.domain
            ),
            many => format!("[Parapet] {} alerts", many.len()),
        };
        let mut body = String::new();
        for a in alerts {
            body.push_str(&mail_text(a));
            body.push('\n');
        }
        let mut msg = Message::builder()
            .from(
                self.cfg
                    .from
                    .parse()
                    .map_err(|e| format!("[notify] from: {e}"))?,
            )
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for t in to {
            msg = msg.to(t
                .parse()
                .map_err(|e| format!("e-mail address `{t}`: {e}"))?);
        }
        let msg = msg.body(body).map_err(|e| e.to_string())?;
        let builder = match self.cfg.smtp_security {
            SmtpSecurity::None => SmtpTransport::builder_dangerous(host),
            SmtpSecurity::Starttls => {
                SmtpTransport::starttls_relay(host).map_err(|e| e.to_string())?
            }
            SmtpSecurity::Tls => SmtpTransport::relay(host).map_err(|e| e.to_string())?,
        };
        let mut builder = builder.port(port).timeout(Some(Duration::from_secs(20)));
        if let (Some(u), Some(p)) = (&self.cfg.smtp_username, self.cfg.smtp_password()) {
            builder = builder.credentials(Credentials::new(u.clone(), p));
        }
        builder
            .build()
            .send(&msg)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn describe(t: &Target) -> String {
    match t {
        Target::Webhook { url, .. } => format!("webhook {url}"),
        Target::Email { to } => format!("e-mail {}", to.join(", ")),
    }
}

/// The plain-text form of an alert in an e-mail.
fn mail_text(a: &Alert) -> String {
    let mut s = format!(
        "Alert {id} ({severity}, {status}): {rule} for {tenant}\n\
         Domain:     {domain}\n\
         Why:        {reason}\n\
         Seen:       {count} quer{ies} from {clients} client{cs}, {first} to {last}\n",
        id = a.id,
        severity = a.severity,
        status = a.status,
        rule = a.rule,
        tenant = a.tenant,
        domain = a.domain,
        reason = a.reason,
        count = a.count,
        ies = if a.count == 1 { "y" } else { "ies" },
        clients = a.clients,
        cs = if a.clients == 1 { "" } else { "s" },
        first = parapet_core::calendar::format_local_ms(a.first_seen),
        last = parapet_core::calendar::format_local_ms(a.last_seen),
    );
    if !a.feeds.is_empty() {
        s.push_str(&format!("Feeds:      {}\n", a.feeds.join(", ")));
    }
    for e in &a.evidence {
        s.push_str(&format!("Evidence:   {e}\n"));
    }
    s.push_str(&format!(
        "Work it:    parapet alerts set {} investigating --note \"...\"\n",
        a.id
    ));
    s
}

/// Lowest severity delivered when the config does not say.
pub const DEFAULT_MIN_SEVERITY: Severity = Severity::Low;

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: i64, tenant: &str, severity: Severity) -> Alert {
        Alert {
            id,
            tenant: tenant.into(),
            rule: "feed.block".into(),
            domain: "evil.test".into(),
            severity,
            status: parapet_core::alert::AlertStatus::New,
            first_seen: 0,
            last_seen: 0,
            count: 1,
            clients: 1,
            feeds: vec![],
            reason: "r".into(),
            evidence: vec![],
            nodes: vec![],
            history: vec![],
        }
    }

    fn route(tenant: &str, digest_minutes: u32) -> RouteConfig {
        RouteConfig {
            tenant: tenant.into(),
            webhook: Some(format!("http://127.0.0.1:9/{tenant}")),
            webhook_secret: None,
            email: vec![],
            digest_minutes,
        }
    }

    #[test]
    fn routes_by_tenant_severity_and_digest() {
        let mut n = Notifier::new(NotifyConfig {
            routes: vec![route("council-a", 0), route("*", 60)],
            ..NotifyConfig::default()
        });
        n.route(alert(1, "council-a", Severity::High));
        n.route(alert(2, "council-b", Severity::Medium));
        n.route(alert(3, "council-b", Severity::Info)); // below min_severity
        // council-a's route sends at once; the supplier's digest waits
        assert_eq!(n.queue.len(), 1);
        assert_eq!(n.queue[0].alerts[0].id, 1);
        n.flush_digests(false);
        assert_eq!(n.queue.len(), 1, "the digest is not due for an hour");
        n.flush_digests(true);
        assert_eq!(n.queue.len(), 2);
        let digest: Vec<i64> = n.queue[1].alerts.iter().map(|a| a.id).collect();
        assert_eq!(digest, [1, 2]);
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
