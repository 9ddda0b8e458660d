//! Repeats of one query within a storage batch, stored as one row.
//!
//! A client that asks for one name again and again (a forwarder in front of
//! a council's network, an application polling, malware beaconing) sends
//! the same query many times a second. Each storage batch (about
//! `flush_interval_ms`, at most 20,000 events) keeps one row per distinct query —
//! tenant, client, name, type, response code, action and feed — with the
//! first query's time, the last one's and how many there were, as passive
//! DNS databases keep first seen / last seen / count. Nothing an
//! investigator reads is lost (who asked for what, when, how often, to the
//! batch's resolution) and every repeat costs a hash probe instead of a row.

use std::hash::{Hash, Hasher};

use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use parapet_core::event::PrivateEvent;

use crate::unix_millis;

/// One stored row: `queries` identical queries of one batch.
#[derive(Debug)]
pub(crate) struct EventRun<'a> {
    /// The first of them (its fields are every other one's).
    pub event: &'a PrivateEvent,
    /// Earliest and latest arrival, unix milliseconds (the resolver's
    /// threads stamp events independently, so the first in the batch need
    /// not be the earliest).
    pub first: i64,
    pub last: i64,
    pub queries: i64,
}

impl EventRun<'_> {
    /// `last_time` as stored: none for a row of one query.
    pub fn last_time(&self) -> Option<i64> {
        (self.queries > 1).then_some(self.last)
    }
}

/// The batch's distinct queries in the order each first appears.
pub(crate) fn fold_events(events: &[PrivateEvent]) -> Vec<EventRun<'_>> {
    let mut runs: Vec<EventRun<'_>> = Vec::with_capacity(events.len());
    let mut index: HashMap<Same<'_>, usize> = HashMap::with_capacity(events.len());
    for e in events {
        let t = unix_millis(e.time);
        match index.entry(Same(e)) {
            Entry::Occupied(o) => {
                let r = &mut runs[*o.get()];
                r.queries += 1;
                r.first = r.first.min(t);
                r.last = r.last.max(t);
            }
            Entry::Vacant(v) => {
                v.insert(runs.len());
                runs.push(EventRun {
                    event: e,
                    first: t,
                    last: t,
                    queries: 1,
                });
            }
        }
    }
    runs
}

/// A batch's queries per (tenant, name key, hour in unix seconds, action),
/// summed in memory so that each key costs one write. Counted from the
/// events themselves, not the rows, so that repeats that straddle an hour
/// count in each.
pub(crate) fn hourly_counts(
    events: &[PrivateEvent],
) -> HashMap<(&str, &[u8], i64, &'static str), i64> {
    let mut hourly = HashMap::new();
    for e in events {
        *hourly
            .entry((
                &*e.tenant,
                e.qname.as_key(),
                unix_millis(e.time) / 3_600_000 * 3600,
                e.action.as_str(),
            ))
            .or_default() += 1;
    }
    hourly
}

/// An event keyed by every stored field but its time.
struct Same<'a>(&'a PrivateEvent);

impl Hash for Same<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let e = self.0;
        e.qname.as_key().hash(h);
        e.client.0.hash(h);
        e.tenant.hash(h);
        e.qtype.hash(h);
        e.rcode.hash(h);
        e.action.hash(h);
        e.feed.hash(h);
    }
}

impl PartialEq for Same<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0, other.0);
        a.qname.as_key() == b.qname.as_key()
            && a.client == b.client
            && a.qtype == b.qtype
            && a.rcode == b.rcode
            && a.action == b.action
            && a.tenant == b.tenant
            && a.feed == b.feed
    }
}

impl Eq for Same<'_> {}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use parapet_core::event::EventAction;
    use parapet_core::name::{InlineName, text_to_key};
    use parapet_core::pseudonym::ClientPseudonym;

    use super::*;

    fn ev(ms: u64, name: &str, client: u8, rcode: u8) -> PrivateEvent {
        PrivateEvent {
            time: UNIX_EPOCH + Duration::from_millis(ms),
            tenant: "council-a".into(),
            client: ClientPseudonym([client; 8]),
            qname: InlineName::new(&text_to_key(name).unwrap()),
            qtype: 1,
            rcode,
            action: EventAction::Resolved,
            feed: None,
        }
    }

    #[test]
    fn every_stored_field_but_time_tells_queries_apart() {
        let base = ev(1000, "a.example", 1, 0);
        let mut tenant = base.clone();
        tenant.tenant = "council-b".into();
        let mut qtype = base.clone();
        qtype.qtype = 28;
        let mut feed = base.clone();
        feed.feed = Some("malware".into());
        let mut action = base.clone();
        action.action = EventAction::Monitored;
        let batch = [
            base.clone(),
            tenant,
            qtype,
            feed,
            action,
            ev(1000, "b.example", 1, 0),
            ev(1000, "a.example", 2, 0),
            ev(1000, "a.example", 1, 3),
            base,
        ];
        let runs = fold_events(&batch);
        assert_eq!(runs.len(), 8);
        assert_eq!(runs[0].queries, 2);
        assert!(runs[1..].iter().all(|r| r.queries == 1));
    }

    #[test]
    fn repeats_fold_and_any_difference_keeps_its_own_row() {
        let batch = [
            ev(1000, "a.example", 1, 0),
            ev(1005, "b.example", 1, 0),
            ev(990, "a.example", 1, 0),  // earlier, from another thread
            ev(1010, "a.example", 2, 0), // another client
            ev(1020, "a.example", 1, 2), // another answer
            ev(1030, "a.example", 1, 0),
        ];
        let runs = fold_events(&batch);
        let got: Vec<(String, u8, u8, i64, Option<i64>, i64)> = runs
            .iter()
            .map(|r| {
                (
                    r.event.qname.to_string(),
                    r.event.client.0[0],
                    r.event.rcode,
                    r.first,
                    r.last_time(),
                    r.queries,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a.example".to_string(), 1, 0, 990, Some(1030), 3),
                ("b.example".to_string(), 1, 0, 1005, None, 1),
                ("a.example".to_string(), 2, 0, 1010, None, 1),
                ("a.example".to_string(), 1, 2, 1020, None, 1),
            ]
        );
        assert_eq!(runs.iter().map(|r| r.queries).sum::<i64>(), 6);
    }
}
