//! Alert delivery: a JSON webhook (signed with HMAC-SHA256, retried with
//! backoff) and e-mail over SMTP (lettre, rustls), routed per tenant, each
//! route either immediate or as a digest.
//!
//! Runs on its own thread, fed by the event writer with every alert that is
//! new (or reopened). Delivery never blocks detection: a slow receiver only
//! delays its own queue.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use hmac::{Hmac, Mac};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};
use parapet_core::alert::{Alert, Severity};
use parapet_store::{Db, Notification, StoreError, unix_millis};
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
    /// Extra request headers of the webhook (e.g. `Authorization`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// The webhook's payload shape.
    #[serde(default)]
    pub template: WebhookTemplate,
}

/// `[[notify.routes]] template`: what a webhook body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookTemplate {
    /// `{"event": "alert" | "alert.digest", "alerts": [...]}`.
    #[default]
    Parapet,
    /// Splunk HTTP Event Collector: one event per alert, concatenated.
    SplunkHec,
    /// A Microsoft Teams (Workflows) message with an Adaptive Card.
    Teams,
    /// A Slack incoming-webhook message.
    Slack,
}

/// First retry delay; doubled per failed attempt (1 s, 2 s, 4 s …).
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts, so a receiver back after an
/// outage gets its backlog within this.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// A notification still failing this long after its alert was raised is
/// given up (kept in the outbox, marked failed, shown on the dashboard):
/// long enough for a receiver down over a restart or a night.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often the outbox is read.
const POLL: Duration = Duration::from_secs(1);
/// How long this node's claim on delivery lasts; renewed every
/// [`LEASE_RENEW`], so another node takes over only once this one stopped.
const LEASE: Duration = Duration::from_secs(30);
const LEASE_RENEW: Duration = Duration::from_secs(10);
/// Outbox rows handled per pass, and alerts per digest message: a backlog
/// after an outage is worked through in bounded steps.
const BATCH: usize = 500;

/// The HMAC-SHA256 signature header of a webhook body: `sha256=<hex>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Where a notification goes. Its key in the outbox (`webhook <url>`,
/// `email <a>,<b>`) holds no secret: the secret and the digest period are
/// looked up in the routes when it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    Webhook {
        url: String,
        secret: Option<String>,
        headers: std::collections::BTreeMap<String, String>,
        template: WebhookTemplate,
    },
    Email {
        to: Vec<String>,
    },
}

impl Target {
    fn key(&self) -> String {
        match self {
            Target::Webhook { url, .. } => format!("webhook {url}"),
            Target::Email { to } => format!("email {}", to.join(",")),
        }
    }
}

impl RouteConfig {
    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        if let Some(url) = &self.webhook {
            targets.push(Target::Webhook {
                url: url.clone(),
                secret: self.webhook_secret.clone(),
                headers: self.headers.clone(),
                template: self.template,
            });
        }
        if !self.email.is_empty() {
            targets.push(Target::Email {
                to: self.email.clone(),
            });
        }
        targets
    }
}

/// The outbox as this node last saw it, and its failed attempts, for
/// `/metrics`.
#[derive(Debug, Default)]
pub struct NotifyStats {
    pending: AtomicU64,
    failing: AtomicU64,
    given_up: AtomicU64,
    failures: AtomicU64,
    /// Failed attempts by destination label (see [`destination`]).
    by_destination: std::sync::Mutex<Vec<(String, u64)>>,
}

/// A target as a metric label: the webhook's host (a URL's path or query
/// can hold a token, as Slack's and Teams' do), or `email`.
fn destination(t: &Target) -> String {
    match t {
        Target::Webhook { url, .. } => {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            format!("webhook:{host}")
        }
        Target::Email { .. } => "email".into(),
    }
}

impl NotifyStats {
    fn failed(&self, t: &Target) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let d = destination(t);
        let mut by = self
            .by_destination
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match by.iter_mut().find(|(k, _)| *k == d) {
            Some((_, n)) => *n += 1,
            None => by.push((d, 1)),
        }
    }
}

impl NotifyStats {
    /// Appends the notification metrics in the Prometheus text format.
    pub fn render(&self, text: &mut String) {
        use std::fmt::Write;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = write!(
            text,
            "# HELP parapet_notifications_pending Alert notifications waiting for delivery (in the shared outbox).\n\
             # TYPE parapet_notifications_pending gauge\nparapet_notifications_pending {}\n\
             # HELP parapet_notifications_failing Pending notifications whose last delivery attempt failed.\n\
             # TYPE parapet_notifications_failing gauge\nparapet_notifications_failing {}\n\
             # HELP parapet_notifications_given_up Notifications given up after failing for a day (listed on their alert).\n\
             # TYPE parapet_notifications_given_up gauge\nparapet_notifications_given_up {}\n\
             # HELP parapet_notification_failures_total Failed delivery attempts by this node, by destination (webhook host or email).\n\
             # TYPE parapet_notification_failures_total counter\n",
            get(&self.pending),
            get(&self.failing),
            get(&self.given_up),
        );
        for (d, n) in self
            .by_destination
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let d = d.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                text,
                "parapet_notification_failures_total{{destination=\"{d}\"}} {n}"
            );
        }
    }
}

/// Delivers the notification outbox: on the node holding the `notify`
/// lease, routes each new row to its targets, sends what is due, deletes
/// what was delivered and reschedules what failed. Every node keeps the
/// outbox counts for its metrics.
pub struct Notifier {
    cfg: NotifyConfig,
    http: ureq::Agent,
    store: Box<dyn Db>,
    stats: Arc<NotifyStats>,
    /// Alert counts for `/metrics`, refreshed on this thread.
    counts: Option<Arc<crate::export::AlertCounts>>,
    /// The HOSTNAME of Splunk HEC payloads.
    host: String,
}

impl Notifier {
    pub fn new(cfg: NotifyConfig, store: Box<dyn Db>) -> Self {
        let http: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .user_agent(concat!("parapet/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let stats = NotifyStats::default();
        {
            // every configured destination has its series from the start
            let mut by = stats
                .by_destination
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for t in cfg.routes.iter().flat_map(RouteConfig::targets) {
                let d = destination(&t);
                if !by.iter().any(|(k, _)| *k == d) {
                    by.push((d, 0));
                }
            }
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        Self {
            cfg,
            http,
            store,
            stats: Arc::new(stats),
            counts: None,
            host,
        }
    }

    /// Also keeps `counts` (alerts by tenant, rule and status) fresh.
    pub fn counting(mut self, counts: Arc<crate::export::AlertCounts>) -> Self {
        self.counts = Some(counts);
        self
    }

    pub fn stats(&self) -> Arc<NotifyStats> {
        self.stats.clone()
    }

    /// Works the outbox until the process exits.
    pub fn run(mut self) {
        let mut holder_until: Option<Instant> = None;
        let mut last_claim: Option<Instant> = None;
        loop {
            if last_claim.is_none_or(|t| t.elapsed() >= LEASE_RENEW) {
                last_claim = Some(Instant::now());
                holder_until = match self.store.try_lease("notify", SystemTime::now(), LEASE) {
                    Ok(true) => Some(Instant::now() + LEASE),
                    Ok(false) => None,
                    Err(e) => {
                        tracing::warn!(target: "parapet::notify", "cannot take the notify lease: {e}");
                        holder_until
                    }
                };
            }
            if holder_until.is_some_and(|t| Instant::now() < t)
                && let Err(e) = self.pass(unix_millis(SystemTime::now()))
            {
                tracing::warn!(target: "parapet::notify", "cannot work the notification outbox: {e}");
            }
            match self.store.outbox_counts() {
                Ok(c) => {
                    self.stats.pending.store(c.pending, Ordering::Relaxed);
                    self.stats.failing.store(c.retrying, Ordering::Relaxed);
                    self.stats.given_up.store(c.failed, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!("cannot count the notification outbox: {e}"),
            }
            if let Some(c) = &self.counts {
                c.refresh(&mut *self.store);
            }
            std::thread::sleep(POLL);
        }
    }

    /// One pass over the outbox at `now` (unix milliseconds): routes new
    /// rows, then sends every target that is due.
    fn pass(&mut self, now: i64) -> Result<(), StoreError> {
        let rows = self.store.pending_notifications(BATCH)?;
        let mut routed = false;
        for n in rows.iter().filter(|n| n.target.is_none()) {
            let targets = match self.store.alert(n.alert_id) {
                Ok(a) => self.route(&a, n.created_at),
                Err(StoreError::NoSuchAlert(_)) => Vec::new(),
                Err(e) => return Err(e),
            };
            self.store.route_notification(n.id, &targets)?;
            routed = true;
        }
        let rows = if routed {
            self.store.pending_notifications(BATCH)?
        } else {
            rows
        };
        let mut by_target: Vec<(String, Vec<Notification>)> = Vec::new();
        for n in rows {
            let Some(key) = n.target.clone() else {
                continue;
            };
            match by_target.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(n),
                None => by_target.push((key, vec![n])),
            }
        }
        for (key, rows) in by_target {
            self.deliver(&key, rows, now)?;
        }
        Ok(())
    }

    /// The `(target key, first try)` pairs an alert raised at `created_at`
    /// goes to: each target once, however many routes name it; a digest
    /// target first at `created_at` plus its period.
    fn route(&self, alert: &Alert, created_at: i64) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = Vec::new();
        if alert.severity < self.cfg.min_severity {
            return out;
        }
        for r in &self.cfg.routes {
            if r.tenant != "*" && r.tenant != alert.tenant {
                continue;
            }
            let due = created_at + i64::from(r.digest_minutes) * 60_000;
            for t in r.targets() {
                let key = t.key();
                if !out.iter().any(|(k, _)| *k == key) {
                    out.push((key, due));
                }
            }
        }
        out
    }

    /// The target a key names in today's routes, and its digest period.
    fn target(&self, key: &str) -> Option<(Target, u32)> {
        self.cfg.routes.iter().find_map(|r| {
            r.targets()
                .into_iter()
                .find(|t| t.key() == key)
                .map(|t| (t, r.digest_minutes))
        })
    }

    /// Sends a target's due rows: each alone, or as a digest all together
    /// once the oldest is due. Deletes what was delivered; a failure moves
    /// the rows' next try back, or gives them up after [`GIVE_UP_AFTER`].
    fn deliver(&mut self, key: &str, rows: Vec<Notification>, now: i64) -> Result<(), StoreError> {
        let Some((target, digest)) = self.target(key) else {
            // the routes changed since it was routed: nowhere to send it
            let ids: Vec<i64> = rows.iter().map(|n| n.id).collect();
            return self.store.notifications_failed(
                &ids,
                "no [notify] route has this target any more",
                now,
                Some(now),
            );
        };
        let messages: Vec<Vec<Notification>> = if digest > 0 {
            if rows.iter().all(|n| n.next_at > now) {
                return Ok(());
            }
            vec![rows]
        } else {
            rows.into_iter()
                .filter(|n| n.next_at <= now)
                .map(|n| vec![n])
                .collect()
        };
        // the error of this pass's failed attempt at this target: its other
        // due messages wait as if they had failed too, so a receiver that
        // hangs costs one timeout per pass, not one per notification
        let mut down: Option<String> = None;
        for rows in messages {
            let attempt = rows.iter().map(|n| n.attempts).max().unwrap_or(0) + 1;
            if let Some(e) = &down {
                self.failed(&rows, attempt, e, now)?;
                continue;
            }
            let mut alerts: Vec<Alert> = Vec::new();
            for n in &rows {
                if alerts.iter().any(|a| a.id == n.alert_id) {
                    continue;
                }
                match self.store.alert(n.alert_id) {
                    Ok(a) => alerts.push(a),
                    Err(StoreError::NoSuchAlert(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let result = if alerts.is_empty() {
                Ok(())
            } else {
                self.send(&target, &alerts)
            };
            match result {
                Ok(()) => {
                    tracing::info!(
                        target: "parapet::notify",
                        alerts = alerts.len(),
                        attempt,
                        "delivered to {}",
                        describe(&target)
                    );
                    let ids: Vec<i64> = rows.iter().map(|n| n.id).collect();
                    self.store.notifications_delivered(&ids)?;
                }
                Err(e) => {
                    self.stats.failed(&target);
                    let (gave_up, delay) = self.failed(&rows, attempt, &e, now)?;
                    if gave_up {
                        tracing::error!(
                            target: "parapet::notify",
                            attempt,
                            "giving up delivery to {}: {e}",
                            describe(&target)
                        );
                    } else {
                        tracing::warn!(
                            target: "parapet::notify",
                            attempt,
                            "delivery to {} failed, retrying in {} s: {e}",
                            describe(&target),
                            delay.as_secs()
                        );
                    }
                    down = Some(e);
                }
            }
        }
        Ok(())
    }

    /// Records failed attempt `attempt` of one message's rows: the next try
    /// after [`retry_delay`], or given up once the oldest row is
    /// [`GIVE_UP_AFTER`] old. Returns whether it was given up, and the delay.
    fn failed(
        &mut self,
        rows: &[Notification],
        attempt: u32,
        error: &str,
        now: i64,
    ) -> Result<(bool, Duration), StoreError> {
        let ids: Vec<i64> = rows.iter().map(|n| n.id).collect();
        let oldest = rows.iter().map(|n| n.created_at).min().unwrap_or(now);
        let give_up = now.saturating_sub(oldest) >= GIVE_UP_AFTER.as_millis() as i64;
        let delay = retry_delay(attempt);
        let next = now + delay.as_millis() as i64;
        self.store
            .notifications_failed(&ids, error, next, give_up.then_some(now))?;
        Ok((give_up, delay))
    }

    fn send(&self, target: &Target, alerts: &[Alert]) -> Result<(), String> {
        match target {
            Target::Webhook {
                url,
                secret,
                headers,
                template,
            } => {
                let body = webhook_body(*template, alerts, &self.host);
                let mut req = self
                    .http
                    .post(url)
                    .header("Content-Type", "application/json");
                for (k, v) in headers {
                    req = req.header(k, v);
                }
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
            Target::Email { to } => self.send_mail(to, alerts),
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

/// The wait after failed attempt `attempt` (1-based): doubling from
/// [`FIRST_RETRY`], capped at [`MAX_RETRY`].
fn retry_delay(attempt: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)))
        .min(MAX_RETRY)
}

/// The webhook body of `alerts` in `template`'s shape.
fn webhook_body(template: WebhookTemplate, alerts: &[Alert], host: &str) -> Vec<u8> {
    use serde_json::json;
    let summary = |a: &Alert| {
        format!(
            "[{}] {} alert for {}: {} ({})",
            a.severity, a.rule, a.tenant, a.domain, a.reason
        )
    };
    let body = match template {
        WebhookTemplate::Parapet => json!({
            "event": if alerts.len() == 1 { "alert" } else { "alert.digest" },
            "alerts": alerts.iter().map(Alert::to_json).collect::<Vec<_>>(),
        }),
        WebhookTemplate::SplunkHec => {
            // HEC takes several events as concatenated JSON objects
            let mut out = Vec::new();
            for a in alerts {
                let e = crate::export::hec(a.to_json(), "alert", a.first_seen, host);
                out.extend_from_slice(e.to_string().as_bytes());
                out.push(b'\n');
            }
            return out;
        }
        WebhookTemplate::Slack => json!({
            "text": alerts.iter().map(summary).collect::<Vec<_>>().join("\n"),
        }),
        WebhookTemplate::Teams => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": alerts.iter().map(|a| json!({
                        "type": "TextBlock",
                        "wrap": true,
                        "text": summary(a),
                    })).collect::<Vec<_>>(),
                },
            }],
        }),
    };
    body.to_string().into_bytes()
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
            headers: Default::default(),
            template: WebhookTemplate::Parapet,
        }
    }

    fn notifier(routes: Vec<RouteConfig>) -> (Notifier, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = parapet_store::SqliteStore::open(dir.path()).unwrap();
        let n = Notifier::new(
            NotifyConfig {
                routes,
                ..NotifyConfig::default()
            },
            Box::new(store),
        );
        (n, dir)
    }

    #[test]
    fn routes_by_tenant_severity_and_digest() {
        let (n, _dir) = notifier(vec![route("council-a", 0), route("*", 60)]);
        let a = n.route(&alert(1, "council-a", Severity::High), 1_000);
        assert_eq!(
            a,
            [
                ("webhook http://127.0.0.1:9/council-a".to_string(), 1_000),
                ("webhook http://127.0.0.1:9/*".to_string(), 3_601_000),
            ]
        );
        let b = n.route(&alert(2, "council-b", Severity::Medium), 1_000);
        assert_eq!(b, [("webhook http://127.0.0.1:9/*".to_string(), 3_601_000)]);
        // below min_severity: routed nowhere
        assert!(
            n.route(&alert(3, "council-b", Severity::Info), 1_000)
                .is_empty()
        );
        // two routes naming one target send it once
        let (n, _dir) = notifier(vec![route("council-a", 0), route("council-a", 5)]);
        assert_eq!(n.route(&alert(1, "council-a", Severity::High), 0).len(), 1);
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        let secs: Vec<u64> = [1, 2, 3, 9, 10, 100]
            .map(|a| retry_delay(a).as_secs())
            .to_vec();
        assert_eq!(secs, [1, 2, 4, 256, 300, 300]);
    }

    /// A receiver that refuses connections: each pass makes one attempt
    /// at it and records the failure and the next try on every due row;
    /// after a day the rows are given up and stay.
    #[test]
    fn a_failing_target_is_retried_then_given_up() {
        let (mut n, _dir) = notifier(vec![route("council-a", 0)]);
        let signal = |domain: &str| parapet_core::alert::Signal {
            time: SystemTime::now(),
            tenant: Arc::from("council-a"),
            rule: "feed.block",
            severity: Severity::High,
            domain: domain.into(),
            client: parapet_core::pseudonym::ClientPseudonym([1; 8]),
            feed: None,
            reason: "listed".into(),
            evidence: format!("{domain} A"),
            folded: None,
        };
        n.store
            .record_signals(&[signal("evil.test"), signal("worse.test")])
            .unwrap();
        let created = n.store.pending_notifications(10).unwrap()[0].created_at;
        let state = |n: &mut Notifier| -> Vec<(u32, i64)> {
            let rows = n.store.pending_notifications(10).unwrap();
            assert!(rows.iter().all(|r| r.target.as_deref()
                == Some("webhook http://127.0.0.1:9/council-a")
                && r.last_error.is_some()));
            rows.iter().map(|r| (r.attempts, r.next_at)).collect()
        };
        n.pass(created).unwrap();
        assert_eq!(state(&mut n), [(1, created + 1_000); 2]);
        assert_eq!(
            n.stats.failures.load(Ordering::Relaxed),
            1,
            "one attempt per pass"
        );
        // not due yet: no attempt
        n.pass(created + 500).unwrap();
        assert_eq!(state(&mut n), [(1, created + 1_000); 2]);
        n.pass(created + 1_000).unwrap();
        assert_eq!(state(&mut n), [(2, created + 3_000); 2]);
        assert_eq!(n.stats.failures.load(Ordering::Relaxed), 2);

        let day = GIVE_UP_AFTER.as_millis() as i64;
        n.pass(created + day).unwrap();
        assert!(n.store.pending_notifications(10).unwrap().is_empty());
        let kept = n.store.alert_notifications(1).unwrap();
        assert_eq!(
            (kept[0].attempts, kept[0].failed_at),
            (3, Some(created + day))
        );
        assert_eq!(n.store.outbox_counts().unwrap().failed, 2);
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
