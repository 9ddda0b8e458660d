//! Alerts and what the detector remembers: detection signals folded into
//! alerts, the analysts' workflow over them, and the registrable domains
//! each tenant has been seen to use (so `new_domain` survives restarts).

use std::sync::Arc;
use std::time::SystemTime;

use parapet_core::alert::{Alert, AlertStatus, Signal};

use crate::StoreError;

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub tenant: Option<String>,
    pub status: Option<AlertStatus>,
    pub rule: Option<String>,
    /// Only alerts last seen at or after this (unix milliseconds).
    pub since: Option<i64>,
    pub limit: Option<usize>,
}

/// What the detector must remember across restarts, per tenant: since when
/// it has been learning, and the registrable domains it has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenDomains {
    pub tenant: String,
    /// Unix milliseconds.
    pub since: i64,
    pub domains: Vec<String>,
}

/// One notification in the outbox: written with the alert it announces,
/// deleted once delivered, kept (with `failed_at`) when given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: i64,
    pub alert_id: i64,
    /// Where it goes (the notifier's own key); `None` until routed.
    pub target: Option<String>,
    /// Unix milliseconds, as are the times below.
    pub created_at: i64,
    /// Failed delivery attempts so far.
    pub attempts: u32,
    /// Not to be tried before this.
    pub next_at: i64,
    pub last_error: Option<String>,
    /// When delivery was given up.
    pub failed_at: Option<i64>,
}

/// How the outbox stands, for metrics and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting for (another) delivery attempt.
    pub pending: u64,
    /// Of those, the ones whose last attempt failed.
    pub retrying: u64,
    /// Given up.
    pub failed: u64,
}

/// A count of alerts with one status and severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertTally {
    pub status: String,
    pub severity: String,
    pub count: u64,
}

/// Alerts, their history, the notification outbox and the detector's seen
/// domains. Each call is one transaction.
pub trait AlertStore: Send {
    /// Folds detection signals into alerts (one per tenant, rule and
    /// domain). A resolved alert that fires again becomes `new` again; a
    /// false positive stays closed and only counts. Returns the alerts
    /// touched, marked `true` when this call raised them (created, or
    /// reopened from resolved): those are the ones to notify, and each gets
    /// an unrouted row in the notification outbox in the same transaction.
    fn record_signals(&mut self, signals: &[Signal]) -> Result<Vec<(i64, bool)>, StoreError>;

    /// Notifications not given up, the soonest due first (new ones are due
    /// at once), at most `limit`.
    fn pending_notifications(&mut self, limit: usize) -> Result<Vec<Notification>, StoreError>;

    /// Replaces unrouted notification `id` by one row per `(target,
    /// next_at)`; none deletes it. Does nothing if `id` is gone or routed
    /// (another node got there first).
    fn route_notification(&mut self, id: i64, targets: &[(String, i64)]) -> Result<(), StoreError>;

    /// Deletes delivered notifications.
    fn notifications_delivered(&mut self, ids: &[i64]) -> Result<(), StoreError>;

    /// Records a failed attempt on `ids`: one more attempt, the error, the
    /// next try at `next_at`, or given up at `failed_at` when set.
    fn notifications_failed(
        &mut self,
        ids: &[i64],
        error: &str,
        next_at: i64,
        failed_at: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Every outbox row of one alert (pending or given up), oldest first.
    fn alert_notifications(&mut self, alert_id: i64) -> Result<Vec<Notification>, StoreError>;

    /// How many notifications wait, retry and were given up.
    fn outbox_counts(&mut self) -> Result<OutboxCounts, StoreError>;

    /// How many alerts there are by status and severity (strings as
    /// stored), in `tenant` or in all: the overview counts without
    /// loading every alert.
    fn alert_tally(&mut self, tenant: Option<&str>) -> Result<Vec<AlertTally>, StoreError>;

    /// Alerts matching `filter`, most recently seen first.
    fn list_alerts(&mut self, filter: &AlertFilter) -> Result<Vec<Alert>, StoreError>;

    /// One alert with its history.
    fn alert(&mut self, id: i64) -> Result<Alert, StoreError>;

    /// Moves an alert through the workflow, recording who, when and why.
    fn set_alert_status(
        &mut self,
        id: i64,
        to: AlertStatus,
        by: &str,
        note: &str,
        now: SystemTime,
    ) -> Result<Alert, StoreError>;

    /// The distinct client pseudonyms behind an alert, in byte order, at
    /// most `limit` (the alert's `clients` counts them all).
    fn alert_pseudonyms(
        &mut self,
        id: i64,
        limit: usize,
    ) -> Result<Vec<parapet_core::pseudonym::ClientPseudonym>, StoreError>;

    /// What the detector learnt before, per tenant.
    fn load_seen(&mut self) -> Result<Vec<SeenDomains>, StoreError>;

    /// Remembers tenants' learning starts and newly seen domains.
    fn save_seen(
        &mut self,
        learning_started: &[(Arc<str>, SystemTime)],
        domains: &[(Arc<str>, String, SystemTime)],
    ) -> Result<(), StoreError>;
}
