//! One batch's detection signals, folded per alert before they reach the
//! database: a flood of blocked queries is thousands of signals for a handful
//! of alerts, and each backend then does one round of work per alert
//! (select, insert or update, clients) instead of one per query. Both
//! backends use it, so they fold the same way.

use hashbrown::{HashMap, HashSet};
use std::str::FromStr;

use parapet_core::alert::{EVIDENCE_SAMPLES, Severity, Signal};

use crate::unix_millis;

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
    /// The alert's stored feeds (comma-separated) with this group's added.
    pub(crate) fn merged_feeds(&self, stored: &str) -> String {
        merge(stored, ',', &self.feeds, usize::MAX)
    }

    /// The alert's stored samples (one per line) with this group's added,
    /// at most [`EVIDENCE_SAMPLES`].
    pub(crate) fn merged_evidence(&self, stored: &str) -> String {
        merge(stored, '\n', &self.evidence, EVIDENCE_SAMPLES)
    }

    /// The higher of the stored severity and this group's.
    pub(crate) fn merged_severity(&self, stored: &str) -> Severity {
        Severity::from_str(stored)
            .unwrap_or(self.severity)
            .max(self.severity)
    }
}

/// `stored` (items separated by `sep`) with the items of `add` it lacks
/// appended, up to `limit` items.
pub(crate) fn merge(stored: &str, sep: char, add: &[&str], limit: usize) -> String {
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
