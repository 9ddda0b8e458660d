//! The rules both backends follow, written once so that SQLite and
//! PostgreSQL cannot drift apart: how a batch of events is counted
//! ([`events`]), how signals fold into alerts and a stored row becomes an
//! alert ([`alerts`]), how Mail Check findings and DMARC rows are read
//! ([`mail`]), and how the asset register's lists are stored ([`assets`]).
//! Each backend only says how to read and write its rows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) mod alerts;
pub(crate) mod assets;
pub(crate) mod events;
pub(crate) mod mail;
pub(crate) mod search;

/// Milliseconds since the Unix epoch (0 before it): how both schemas store
/// an instant.
pub fn unix_millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The cut-off time (unix milliseconds) for data kept `days` days.
pub fn cutoff(now: SystemTime, days: u32) -> i64 {
    unix_millis(
        now.checked_sub(Duration::from_secs(u64::from(days) * 86_400))
            .unwrap_or(UNIX_EPOCH),
    )
}
