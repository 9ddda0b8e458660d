//! How query events are counted, the same on both backends. A batch's rows
//! are its runs ([`parapet_core::event::RunFolder`]): the repeats of one
//! query within a batch are one row, with the first and last time and how
//! many there were. Besides its rows a batch writes hourly counts, and the
//! dashboard and the committee report count the same actions as blocked.

use hashbrown::HashMap;
use parapet_core::event::{EventRun, hour_of};

use crate::rules::unix_millis;

/// The actions counted as blocked, as an SQL list: every policy action
/// (blocked, nodata, dropped, local data), for the dashboard's totals and
/// the report's protective DNS figures alike.
pub(crate) const BLOCKED_ACTIONS: &str = "('blocked', 'nodata', 'dropped', 'local_data')";

/// The queries a batch's runs stand for: what `insert_runs` returns.
pub(crate) fn queries(runs: &[EventRun<'_>]) -> usize {
    runs.iter().map(|r| r.queries as usize).sum()
}

/// `last_time` as stored: none for a row of one query.
pub(crate) fn last_time(r: &EventRun<'_>) -> Option<i64> {
    (r.queries > 1).then(|| unix_millis(r.last))
}

/// A batch's queries per (tenant, name key, hour in unix seconds, action),
/// summed in memory so that each key costs one write. A run never
/// straddles an hour, so its queries all count in the hour of its first.
pub(crate) fn hourly_counts<'a>(
    runs: &[EventRun<'a>],
) -> HashMap<(&'a str, &'a [u8], i64, &'static str), i64> {
    let mut hourly = HashMap::new();
    for r in runs {
        let e = r.event;
        *hourly
            .entry((
                &*e.tenant,
                e.qname.as_key(),
                hour_of(r.first) as i64 * 3600,
                e.action.as_str(),
            ))
            .or_default() += i64::from(r.queries);
    }
    hourly
}

#[cfg(test)]
mod tests {
    use parapet_core::event::EventAction;

    use super::BLOCKED_ACTIONS;

    #[test]
    fn blocked_actions_name_policy_actions_only() {
        let named: Vec<&str> = EventAction::ALL
            .iter()
            .map(|a| a.as_str())
            .filter(|a| BLOCKED_ACTIONS.contains(&format!("'{a}'")))
            .collect();
        assert_eq!(named, ["blocked", "nodata", "local_data", "dropped"]);
    }
}
