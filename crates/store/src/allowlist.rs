//! Names allowed for a while through the database rather than the config
//! file: an analyst who finds an alert is a false positive allows its name
//! from the dashboard, and every node's loader polls the entries in force
//! (as it polls published feeds) and adds them to the `[dns] allowlist`.
//! Each entry expires; an expired or removed entry stops applying at the
//! next poll, and stays in the table as the record of who allowed what.

use std::time::SystemTime;

use crate::StoreError;

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowEntry {
    pub id: i64,
    /// The name in text form, lower case, without the final dot; it covers
    /// its subdomains, as the config's allowlist does.
    pub name: String,
    /// The tenant whose alert it came from (the entry applies to every
    /// tenant, as the config's allowlist does).
    pub tenant: Option<String>,
    pub alert_id: Option<i64>,
    pub added_by: String,
    pub reason: String,
    /// Unix milliseconds, as are the times below.
    pub created_at: i64,
    pub expires_at: i64,
    pub removed_at: Option<i64>,
    pub removed_by: Option<String>,
}

impl AllowEntry {
    /// Whether it applies at `now` (unix milliseconds).
    pub fn in_force(&self, now: i64) -> bool {
        self.removed_at.is_none() && self.expires_at > now
    }
}

/// An entry to add.
#[derive(Debug, Clone, Default)]
pub struct NewAllow {
    pub name: String,
    pub tenant: Option<String>,
    /// The alert it answers: the same transaction marks it a false
    /// positive (with a history row by `added_by`).
    pub alert_id: Option<i64>,
    pub added_by: String,
    pub reason: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// The database allowlist. Each call is one transaction.
pub trait AllowlistStore: Send {
    /// Adds an entry. With `alert_id`, the alert becomes `false_positive`
    /// in the same transaction (left as it is when it already is one); an
    /// alert whose workflow forbids that (a resolved one) is refused with
    /// [`StoreError::BadTransition`] and nothing is added.
    fn add_allow(&mut self, new: &NewAllow, now: SystemTime) -> Result<AllowEntry, StoreError>;

    /// The entries in force at `now` (neither expired nor removed), by name.
    fn active_allows(&mut self, now: SystemTime) -> Result<Vec<AllowEntry>, StoreError>;

    /// Every entry, in force or not, newest first, at most `limit`.
    fn allow_entries(&mut self, limit: usize) -> Result<Vec<AllowEntry>, StoreError>;

    /// Ends an entry before its expiry. Removing one already removed keeps
    /// the first removal.
    fn remove_allow(
        &mut self,
        id: i64,
        by: &str,
        now: SystemTime,
    ) -> Result<AllowEntry, StoreError>;
}

/// The history note of an alert marked a false positive by an allowlist
/// entry (both backends write the same).
pub(crate) fn false_positive_note(new: &NewAllow) -> String {
    format!(
        "false positive: allowed {} until {} ({})",
        new.name,
        parapet_core::calendar::format_datetime_ms(new.expires_at),
        new.reason
    )
}

/// Whether an allowlist entry for alert `id`, now `from`, moves it to
/// `false_positive` (`false`: it already is one).
pub(crate) fn marks_false_positive(
    id: i64,
    from: parapet_core::alert::AlertStatus,
) -> Result<bool, StoreError> {
    use parapet_core::alert::AlertStatus::FalsePositive;
    if from == FalsePositive {
        Ok(false)
    } else if from.can_become(FalsePositive) {
        Ok(true)
    } else {
        Err(StoreError::BadTransition {
            id,
            from,
            to: FalsePositive,
        })
    }
}
