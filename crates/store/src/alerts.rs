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

/// Alerts, their history, and the detector's seen domains. Each call is one
/// transaction.
pub trait AlertStore: Send {
    /// Folds detection signals into alerts (one per tenant, rule and
    /// domain). A resolved alert that fires again becomes `new` again; a
    /// false positive stays closed and only counts. Returns the alerts
    /// touched, marked `true` when this call raised them (created, or
    /// reopened from resolved): those are the ones to notify.
    fn record_signals(&mut self, signals: &[Signal]) -> Result<Vec<(i64, bool)>, StoreError>;

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

    /// What the detector learnt before, per tenant.
    fn load_seen(&mut self) -> Result<Vec<SeenDomains>, StoreError>;

    /// Remembers tenants' learning starts and newly seen domains.
    fn save_seen(
        &mut self,
        learning_started: &[(Arc<str>, SystemTime)],
        domains: &[(Arc<str>, String, SystemTime)],
    ) -> Result<(), StoreError>;
}
