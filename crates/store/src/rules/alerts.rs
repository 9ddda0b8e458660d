//! How alerts are kept, the same on both backends: one batch's detection
//! signals folded per alert before they reach the database, how a group
//! folds into an alert already stored (merged lists, the higher severity, a
//! resolved alert raised again), and how a stored row becomes an [`Alert`].
//!
//! Folding first matters because a flood of blocked queries is thousands of
//! signals for a handful of alerts: each backend then does one round of work
//! per alert (select, insert or update, clients) instead of one per query.

use hashbrown::{HashMap, HashSet};
use std::str::FromStr;

use parapet_core::alert::{Alert, AlertStatus, EVIDENCE_SAMPLES, Severity, Signal, StatusChange};
use parapet_core::pseudonym::{ClientPseudonym, PSEUDONYM_BYTES};

use crate::rules::unix_millis;
use crate::{AlertFilter, AlertStore, StoreError};

/// Separates an alert's feeds, and the nodes that saw it, in one column.
pub(crate) const LIST_SEP: char = ',';
/// Separates an alert's evidence samples in one column.
pub(crate) const SAMPLE_SEP: char = '\n';

/// Who the history says moved an alert that fired again after it was
/// resolved, and why.
pub(crate) const REOPENED_BY: &str = "parapet";
pub(crate) const REOPENED_NOTE: &str = "fired again after it was resolved";

/// The signals of one batch for one alert key (tenant, rule, domain).
pub(crate) struct SignalGroup<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) rule: &'static str,
    pub(crate) domain: &'a str,
    pub(crate) count: i64,
    /// Time of the group's first signal in batch order (unix ms).
    pub(crate) time: i64,
    pub(crate) first_seen: i64,
    pub(crate) last_seen: i64,
    pub(crate) severity: Severity,
    /// Feeds named, in order of first appearance.
    pub(crate) feeds: Vec<&'a str>,
    /// Distinct sample queries, at most [`EVIDENCE_SAMPLES`].
    pub(crate) evidence: Vec<&'a str>,
    /// The last signal's reason (its figures are the newest).
    pub(crate) reason: &'a str,
    /// Distinct client pseudonyms.
    pub(crate) clients: Vec<&'a [u8]>,
}

/// Folds `signals` into one group per alert key, ordered by key (so two
/// nodes lock the same alerts in the same order and never deadlock).
pub(crate) fn group_signals(signals: &[Signal]) -> Vec<SignalGroup<'_>> {
    let mut index: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut groups: Vec<SignalGroup<'_>> = Vec::new();
    let mut clients: Vec<HashSet<&[u8]>> = Vec::new();
    for sig in signals {
        let t = unix_millis(sig.time);
        let i = *index
            .entry((&*sig.tenant, sig.rule, sig.domain.as_str()))
            .or_insert_with(|| {
                groups.push(SignalGroup {
                    tenant: &sig.tenant,
                    rule: sig.rule,
                    domain: &sig.domain,
                    count: 0,
                    time: t,
                    first_seen: t,
                    last_seen: t,
                    severity: sig.severity,
                    feeds: Vec::new(),
                    evidence: Vec::new(),
                    reason: &sig.reason,
                    clients: Vec::new(),
                });
                clients.push(HashSet::new());
                groups.len() - 1
            });
        let g = &mut groups[i];
        g.count += i64::from(sig.count());
        g.first_seen = g.first_seen.min(t);
        g.last_seen = g.last_seen.max(unix_millis(sig.last_time()));
        g.severity = g.severity.max(sig.severity);
        g.reason = &sig.reason;
        if let Some(f) = sig.feed.as_deref()
            && !g.feeds.contains(&f)
        {
            g.feeds.push(f);
        }
        if g.evidence.len() < EVIDENCE_SAMPLES && !g.evidence.contains(&sig.evidence.as_str()) {
            g.evidence.push(&sig.evidence);
        }
        if clients[i].insert(&sig.client.0[..]) {
            g.clients.push(&sig.client.0[..]);
        }
    }
    groups.sort_by(|a, b| (a.tenant, a.rule, a.domain).cmp(&(b.tenant, b.rule, b.domain)));
    groups
}

impl SignalGroup<'_> {
    /// The feeds column of a new alert.
    pub(crate) fn feeds_text(&self) -> String {
        self.feeds.join(&LIST_SEP.to_string())
    }

    /// The evidence column of a new alert.
    pub(crate) fn evidence_text(&self) -> String {
        self.evidence.join(&SAMPLE_SEP.to_string())
    }

    /// The alert's stored feeds (comma-separated) with this group's added.
    pub(crate) fn merged_feeds(&self, stored: &str) -> String {
        merge(stored, LIST_SEP, &self.feeds, usize::MAX)
    }

    /// The alert's stored samples (one per line) with this group's added,
    /// at most [`EVIDENCE_SAMPLES`].
    pub(crate) fn merged_evidence(&self, stored: &str) -> String {
        merge(stored, SAMPLE_SEP, &self.evidence, EVIDENCE_SAMPLES)
    }

    /// The higher of the stored severity and this group's.
    pub(crate) fn merged_severity(&self, stored: &str) -> Severity {
        Severity::from_str(stored)
            .unwrap_or(self.severity)
            .max(self.severity)
    }

    /// What an alert already stored becomes when this group folds into it
    /// on `node`. A resolved alert that fires again is `new` again (and so
    /// raised); a false positive stays closed and only counts.
    pub(crate) fn fold_into(&self, stored: &StoredAlert<'_>, node: &str) -> AlertUpdate {
        let reopened = stored.status == AlertStatus::Resolved.as_str();
        AlertUpdate {
            status: if reopened {
                AlertStatus::New.as_str().to_string()
            } else {
                stored.status.to_string()
            },
            reopened,
            feeds: self.merged_feeds(stored.feeds),
            evidence: self.merged_evidence(stored.evidence),
            severity: self.merged_severity(stored.severity).as_str(),
            nodes: merge(stored.nodes, LIST_SEP, &[node], usize::MAX),
        }
    }
}

/// The columns of a stored alert that a new group merges with.
pub(crate) struct StoredAlert<'a> {
    pub(crate) status: &'a str,
    pub(crate) feeds: &'a str,
    pub(crate) evidence: &'a str,
    pub(crate) severity: &'a str,
    pub(crate) nodes: &'a str,
}

/// The merged columns written back by [`SignalGroup::fold_into`]; the
/// counts and times are added in SQL, where the row is.
pub(crate) struct AlertUpdate {
    pub(crate) status: String,
    /// Resolved before and `new` again: the history records it and the
    /// caller notifies.
    pub(crate) reopened: bool,
    pub(crate) feeds: String,
    pub(crate) evidence: String,
    pub(crate) severity: &'static str,
    pub(crate) nodes: String,
}

/// `stored` (items separated by `sep`) with the items of `add` it lacks
/// appended, up to `limit` items.
fn merge(stored: &str, sep: char, add: &[&str], limit: usize) -> String {
    let mut items: Vec<&str> = stored.split(sep).filter(|s| !s.is_empty()).collect();
    for a in add {
        if items.len() >= limit {
            break;
        }
        if !a.is_empty() && !items.contains(a) {
            items.push(a);
        }
    }
    items.join(&sep.to_string())
}

/// An alert's row as both schemas store it: lists as text, severity and
/// status by name, and the number of distinct clients counted beside it.
pub(crate) struct AlertRow {
    pub(crate) id: i64,
    pub(crate) tenant: String,
    pub(crate) rule: String,
    pub(crate) domain: String,
    pub(crate) severity: String,
    pub(crate) status: String,
    pub(crate) first_seen: i64,
    pub(crate) last_seen: i64,
    pub(crate) count: i64,
    pub(crate) clients: i64,
    pub(crate) feeds: String,
    pub(crate) reason: String,
    pub(crate) evidence: String,
    pub(crate) nodes: String,
}

/// One row of `alert_history`, as stored.
pub(crate) struct HistoryRow {
    pub(crate) time: i64,
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) by: String,
    pub(crate) note: String,
}

impl AlertRow {
    /// The alert with its history; a severity or status this Parapet does
    /// not know is reported as corrupt data in the database at `location`.
    pub(crate) fn into_alert(
        self,
        history: Vec<HistoryRow>,
        location: &str,
    ) -> Result<Alert, StoreError> {
        let history = history
            .into_iter()
            .map(|h| {
                Ok(StatusChange {
                    time: h.time,
                    from: parse_status(&h.from, location)?,
                    to: parse_status(&h.to, location)?,
                    by: h.by,
                    note: h.note,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Alert {
            id: self.id,
            severity: Severity::from_str(&self.severity).map_err(|_| StoreError::Corrupt {
                path: location.to_string(),
                field: "alerts.severity",
                value: self.severity.clone(),
            })?,
            status: parse_status(&self.status, location)?,
            tenant: self.tenant,
            rule: self.rule,
            domain: self.domain,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            count: self.count as u64,
            clients: self.clients as u64,
            feeds: split_list(&self.feeds, LIST_SEP),
            reason: self.reason,
            evidence: self.evidence.lines().map(String::from).collect(),
            nodes: split_list(&self.nodes, LIST_SEP),
            history,
        })
    }
}

/// A stored status, or [`StoreError::Corrupt`] naming the database.
/// Stored pseudonyms (8 bytes each) as pseudonyms; another length is a
/// corrupt row.
pub(crate) fn pseudonyms(
    blobs: Vec<Vec<u8>>,
    location: &str,
) -> Result<Vec<ClientPseudonym>, StoreError> {
    blobs
        .into_iter()
        .map(|b| {
            <[u8; PSEUDONYM_BYTES]>::try_from(b.as_slice())
                .map(ClientPseudonym)
                .map_err(|_| StoreError::Corrupt {
                    path: location.to_string(),
                    field: "alert_clients.client",
                    value: hex::encode(&b),
                })
        })
        .collect()
}

pub(crate) fn parse_status(s: &str, location: &str) -> Result<AlertStatus, StoreError> {
    AlertStatus::from_str(s).map_err(|_| StoreError::Corrupt {
        path: location.to_string(),
        field: "alert status",
        value: s.to_string(),
    })
}

fn split_list(s: &str, sep: char) -> Vec<String> {
    s.split(sep)
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect()
}

/// [`parapet_assurance::store::ReportSources::alerts_active`], the same on
/// both backends: the tenant's alerts last seen at or after `from` and first
/// seen at or before `to`.
pub(crate) fn alerts_active(
    store: &mut (impl AlertStore + ?Sized),
    tenant: &str,
    from: i64,
    to: i64,
) -> Result<Vec<Alert>, StoreError> {
    let seen = store.list_alerts(&AlertFilter {
        tenant: Some(tenant.to_string()),
        since: Some(from),
        ..AlertFilter::default()
    })?;
    Ok(seen.into_iter().filter(|a| a.first_seen <= to).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use parapet_core::pseudonym::ClientPseudonym;

    use super::*;

    fn sig(secs: u64, tenant: &str, domain: &str, client: u8, severity: Severity) -> Signal {
        Signal {
            time: UNIX_EPOCH + Duration::from_secs(secs),
            tenant: Arc::from(tenant),
            rule: "feed.block",
            severity,
            domain: domain.into(),
            client: ClientPseudonym([client; 8]),
            feed: Some(Arc::from(if secs.is_multiple_of(2) { "a" } else { "b" })),
            reason: format!("reason {secs}"),
            evidence: format!("q{} A blocked", secs % 7),
            folded: None,
        }
    }

    #[test]
    fn a_flood_folds_into_one_group_per_alert_key() {
        let mut signals: Vec<Signal> = (0..1000)
            .map(|i| sig(100 + i, "t1", "evil.test", (i % 3) as u8, Severity::Medium))
            .collect();
        signals.push(sig(50, "t1", "evil.test", 9, Severity::High));
        signals.push(sig(60, "t0", "evil.test", 1, Severity::Low));
        let groups = group_signals(&signals);
        assert_eq!(groups.len(), 2);
        // ordered by key, whatever the batch order
        assert_eq!((groups[0].tenant, groups[1].tenant), ("t0", "t1"));
        let g = &groups[1];
        assert_eq!(g.count, 1001);
        assert_eq!(
            (g.time, g.first_seen, g.last_seen),
            (100_000, 50_000, 1_099_000)
        );
        assert_eq!(g.severity, Severity::High);
        assert_eq!(g.feeds, ["a", "b"]);
        assert_eq!(g.evidence.len(), EVIDENCE_SAMPLES);
        assert_eq!(g.reason, "reason 50");
        assert_eq!(g.clients.len(), 4);
    }

    #[test]
    fn a_folded_signal_counts_every_query_it_stands_for() {
        let mut one = sig(100, "t1", "evil.test", 1, Severity::High);
        for secs in [101, 105, 99, 103] {
            one.fold(UNIX_EPOCH + Duration::from_secs(secs));
        }
        assert_eq!(one.count(), 5);
        let other = sig(102, "t1", "evil.test", 2, Severity::High);
        let signals = [one, other];
        let groups = group_signals(&signals);
        assert_eq!(groups.len(), 1);
        let g = &groups[0];
        assert_eq!(g.count, 6);
        // an earlier repeat (threads stamp events independently) moves first-seen
        assert_eq!((g.first_seen, g.last_seen), (99_000, 105_000));
        assert_eq!(g.clients.len(), 2);
    }

    #[test]
    fn merging_keeps_what_is_stored_first_and_caps_samples() {
        let one = [sig(2, "t", "d", 1, Severity::Low)];
        let g = &group_signals(&one)[0];
        assert_eq!(g.merged_feeds(""), "a");
        assert_eq!(g.merged_feeds("b,a"), "b,a");
        assert_eq!(g.merged_evidence("x\ny"), "x\ny\nq2 A blocked");
        assert_eq!(g.merged_evidence("1\n2\n3\n4\n5"), "1\n2\n3\n4\n5");
        assert_eq!(g.merged_severity("high"), Severity::High);
        assert_eq!(g.merged_severity("nonsense"), Severity::Low);
        assert_eq!(merge("n1", ',', &["n2", "n1"], usize::MAX), "n1,n2");
    }
}
