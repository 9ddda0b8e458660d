//! Query events: one per query the resolver receives, sent off the hot path
//! for detection and storage.
//!
//! The resolver emits [`QueryEvent`] carrying the client's address, because
//! hashing it there would cost every query an HMAC. The first consumer turns
//! each event into a [`PrivateEvent`] with [`crate::pseudonym::Pseudonymiser`]
//! before anything else sees it: the raw address lives only in the bounded
//! in-memory channel between the two and is never stored or logged.

use std::hash::{BuildHasher, Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::name::EventName;
use crate::pseudonym::{ClientPseudonym, Pseudonymiser};

/// What the resolver did with a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventAction {
    /// No feed matched; answered from cache or upstream.
    Resolved,
    /// The allowlist covered a name (whatever the feeds said).
    Allowlisted,
    /// A feed said PASSTHRU.
    Passthru,
    /// A monitor-only feed matched; resolved normally.
    Monitored,
    /// Answered with the block response (NXDOMAIN or sinkhole).
    Blocked,
    /// Answered NODATA by policy.
    Nodata,
    /// Answered from a feed's local data.
    LocalData,
    /// Not answered, by policy.
    Dropped,
    /// Refused or answered with an error before policy (malformed query,
    /// unsupported opcode).
    Rejected,
}

impl EventAction {
    pub const ALL: [EventAction; 9] = [
        EventAction::Resolved,
        EventAction::Allowlisted,
        EventAction::Passthru,
        EventAction::Monitored,
        EventAction::Blocked,
        EventAction::Nodata,
        EventAction::LocalData,
        EventAction::Dropped,
        EventAction::Rejected,
    ];

    /// Stable lower-case name, used in metrics, storage and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventAction::Resolved => "resolved",
            EventAction::Allowlisted => "allowlisted",
            EventAction::Passthru => "passthru",
            EventAction::Monitored => "monitored",
            EventAction::Blocked => "blocked",
            EventAction::Nodata => "nodata",
            EventAction::LocalData => "local_data",
            EventAction::Dropped => "dropped",
            EventAction::Rejected => "rejected",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Response code recorded for a query that got no response at all.
pub const RCODE_NO_RESPONSE: u8 = 255;

/// A query as the resolver saw it. Holds the raw client address: see the
/// module docs for why and where it is pseudonymised.
#[derive(Debug, Clone)]
pub struct QueryEvent {
    pub time: SystemTime,
    pub tenant: Arc<str>,
    pub client: IpAddr,
    pub qname: EventName,
    pub qtype: u16,
    /// DNS response code sent, or [`RCODE_NO_RESPONSE`].
    pub rcode: u8,
    pub action: EventAction,
    /// The feed whose rule decided the action, if one did.
    pub feed: Option<Arc<str>>,
}

/// A query event fit for storage: exactly the fields Parapet records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateEvent {
    pub time: SystemTime,
    pub tenant: Arc<str>,
    pub client: ClientPseudonym,
    pub qname: EventName,
    pub qtype: u16,
    pub rcode: u8,
    pub action: EventAction,
    pub feed: Option<Arc<str>>,
}

impl QueryEvent {
    /// The event of a query answered with `rcode`, or not answered at all
    /// (`None`). The resolver builds every event here, those of answers
    /// given at once and of answers from upstream alike.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn new(
        time: SystemTime,
        tenant: Arc<str>,
        client: IpAddr,
        qname: EventName,
        qtype: u16,
        rcode: Option<u8>,
        action: EventAction,
        feed: Option<Arc<str>>,
    ) -> Self {
        Self {
            time,
            tenant,
            client,
            qname,
            qtype,
            rcode: rcode.unwrap_or(RCODE_NO_RESPONSE),
            action,
            feed,
        }
    }

    /// Replaces the client address by its keyed pseudonym.
    pub fn into_private(self, p: &Pseudonymiser) -> PrivateEvent {
        let client = p.pseudonymise(self.client);
        self.with_pseudonym(client)
    }

    /// Replaces the client address by `client`, its pseudonym.
    pub fn with_pseudonym(self, client: ClientPseudonym) -> PrivateEvent {
        PrivateEvent {
            time: self.time,
            tenant: self.tenant,
            client,
            qname: self.qname,
            qtype: self.qtype,
            rcode: self.rcode,
            action: self.action,
            feed: self.feed,
        }
    }
}

/// `queries` identical queries of one batch of events: one stored row and
/// one step of detection.
///
/// A client that asks for one name again and again (a forwarder in front
/// of a council's network, an application polling, malware beaconing) sends
/// the same query many times a second. Storage keeps one row per distinct
/// query of a batch, with the first query's time, the last one's and how
/// many there were, as passive DNS databases keep first seen / last seen /
/// count, and detection looks at each distinct query once. Nothing an
/// investigator reads is lost (who asked for what, when, how often, to the
/// batch's resolution) and every repeat costs a hash probe.
#[derive(Debug, Clone, Copy)]
pub struct EventRun<'a> {
    /// The first of them (its fields are every other one's).
    pub event: &'a PrivateEvent,
    /// Earliest and latest arrival (the resolver's threads stamp events
    /// independently, so the first in the batch need not be the earliest).
    pub first: SystemTime,
    pub last: SystemTime,
    pub queries: u32,
}

/// A run that holds its first event: what [`RunFolder`] builds as events
/// arrive, lent out as an [`EventRun`] by [`OwnedRun::as_run`].
#[derive(Debug, Clone)]
pub struct OwnedRun {
    pub event: PrivateEvent,
    pub first: SystemTime,
    pub last: SystemTime,
    pub queries: u32,
}

impl OwnedRun {
    /// Its stored fields and hour: what tells it from another run (the
    /// hour is its first query's, which all its queries share).
    fn same(&self) -> Same<'_> {
        Same(&self.event, hour_of(self.first))
    }

    pub fn as_run(&self) -> EventRun<'_> {
        EventRun {
            event: &self.event,
            first: self.first,
            last: self.last,
            queries: self.queries,
        }
    }
}

/// Folds events into runs one at a time, as a consumer drains them from
/// the resolver: a repeat costs a hash probe and is never copied into a
/// batch. Queries differing in any stored field (tenant, client, name,
/// type, response code, action, feed) or in the UTC hour they fall in are
/// distinct, so a run never straddles an hour of the hourly counts. Runs
/// come in the order each one's first query arrived.
#[derive(Default)]
pub struct RunFolder {
    runs: Vec<OwnedRun>,
    /// Index into `runs`, by the hash of a run's stored fields and hour.
    index: HashTable<usize>,
    hasher: DefaultHashBuilder,
    queries: usize,
}

impl RunFolder {
    pub fn push(&mut self, e: PrivateEvent) {
        let key = Same(&e, hour_of(e.time));
        let hash = self.hasher.hash_one(&key);
        let Self {
            runs,
            index,
            hasher,
            queries,
        } = self;
        *queries += 1;
        if let Some(&i) = index.find(hash, |&i| runs[i].same() == key) {
            let r = &mut runs[i];
            r.queries = r.queries.saturating_add(1);
            r.first = r.first.min(e.time);
            r.last = r.last.max(e.time);
            return;
        }
        index.insert_unique(hash, runs.len(), |&i| hasher.hash_one(runs[i].same()));
        runs.push(OwnedRun {
            first: e.time,
            last: e.time,
            queries: 1,
            event: e,
        });
    }

    /// Distinct queries so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Queries pushed so far.
    pub fn queries(&self) -> usize {
        self.queries
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The runs so far; the folder starts again empty, with room for as
    /// many.
    pub fn take(&mut self) -> Vec<OwnedRun> {
        self.index.clear();
        self.queries = 0;
        let room = Vec::with_capacity(self.runs.len());
        std::mem::replace(&mut self.runs, room)
    }
}

/// A batch's distinct queries, as [`RunFolder`] folds them.
pub fn fold_events(events: &[PrivateEvent]) -> Vec<OwnedRun> {
    let mut f = RunFolder::default();
    for e in events {
        f.push(e.clone());
    }
    f.take()
}

/// Hours since the Unix epoch (0 before it): the hour a run belongs to.
pub fn hour_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 3600)
}

/// An event keyed by every stored field but its time, and its hour.
struct Same<'a>(&'a PrivateEvent, u64);

impl Hash for Same<'_> {
    /// A part of what `eq` compares (so equal keys hash alike): the name,
    /// the client, the type and the hour tell nearly every run of a batch
    /// from every other, in two writes to the hasher instead of nine.
    fn hash<H: Hasher>(&self, h: &mut H) {
        let e = self.0;
        h.write(e.qname.as_key());
        h.write_u64(u64::from_le_bytes(e.client.0) ^ (self.1 << 16) ^ u64::from(e.qtype));
    }
}

impl PartialEq for Same<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0, other.0);
        self.1 == other.1
            && a.qname.as_key() == b.qname.as_key()
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
    use std::time::Duration;

    use super::*;
    use crate::name::text_to_key;

    fn ev(ms: u64, name: &str, client: u8, rcode: u8) -> PrivateEvent {
        PrivateEvent {
            time: UNIX_EPOCH + Duration::from_millis(ms),
            tenant: "council-a".into(),
            client: ClientPseudonym([client; 8]),
            qname: EventName::new(&text_to_key(name).unwrap()),
            qtype: 1,
            rcode,
            action: EventAction::Resolved,
            feed: None,
        }
    }

    fn ms(t: SystemTime) -> u128 {
        t.duration_since(UNIX_EPOCH).unwrap().as_millis()
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
    fn repeats_fold_and_any_difference_keeps_its_own_run() {
        let batch = [
            ev(1000, "a.example", 1, 0),
            ev(1005, "b.example", 1, 0),
            ev(990, "a.example", 1, 0),  // earlier, from another thread
            ev(1010, "a.example", 2, 0), // another client
            ev(1020, "a.example", 1, 2), // another answer
            ev(1030, "a.example", 1, 0),
        ];
        let runs = fold_events(&batch);
        let got: Vec<(String, u8, u8, u128, u128, u32)> = runs
            .iter()
            .map(|r| {
                (
                    r.event.qname.to_string(),
                    r.event.client.0[0],
                    r.event.rcode,
                    ms(r.first),
                    ms(r.last),
                    r.queries,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("a.example".to_string(), 1, 0, 990, 1030, 3),
                ("b.example".to_string(), 1, 0, 1005, 1005, 1),
                ("a.example".to_string(), 2, 0, 1010, 1010, 1),
                ("a.example".to_string(), 1, 2, 1020, 1020, 1),
            ]
        );
        assert_eq!(runs.iter().map(|r| r.queries).sum::<u32>(), 6);
    }

    #[test]
    fn a_run_never_straddles_an_hour() {
        let hour = 3_600_000;
        let batch = [
            ev(hour - 10, "a.example", 1, 0),
            ev(hour - 5, "a.example", 1, 0),
            ev(hour, "a.example", 1, 0),
            ev(hour - 1, "a.example", 1, 0), // stamped late by another thread
            ev(hour + 7, "a.example", 1, 0),
        ];
        let runs: Vec<(u128, u128, u32)> = fold_events(&batch)
            .iter()
            .map(|r| (ms(r.first), ms(r.last), r.queries))
            .collect();
        assert_eq!(
            runs,
            [
                (hour as u128 - 10, hour as u128 - 1, 3),
                (hour as u128, hour as u128 + 7, 2)
            ]
        );
    }

    #[test]
    fn a_folder_starts_again_after_each_take() {
        let mut f = RunFolder::default();
        for e in [ev(1000, "a.example", 1, 0), ev(1001, "a.example", 1, 0)] {
            f.push(e);
        }
        assert_eq!((f.runs(), f.queries()), (1, 2));
        let first = f.take();
        assert!(f.is_empty());
        assert_eq!(f.queries(), 0);
        f.push(ev(1002, "a.example", 1, 0));
        let second = f.take();
        assert_eq!(
            (first.len(), first[0].queries, ms(first[0].last)),
            (1, 2, 1001)
        );
        assert_eq!(
            (second.len(), second[0].queries, ms(second[0].first)),
            (1, 1, 1002)
        );
        // a run lends itself out with every figure
        let r = second[0].as_run();
        assert_eq!((r.queries, ms(r.first), ms(r.last)), (1, 1002, 1002));
        assert_eq!(r.event.qname.to_string(), "a.example");
    }

    #[test]
    fn many_distinct_queries_keep_their_counts_as_the_index_grows() {
        let names: Vec<String> = (0..3000).map(|i| format!("n{i}.example")).collect();
        let mut f = RunFolder::default();
        for round in 0..3u64 {
            for (i, n) in names.iter().enumerate() {
                // every third name is asked once more each round
                let times = if i % 3 == 0 { 2 } else { 1 };
                for _ in 0..times {
                    f.push(ev(1000 + round, n, 1, 0));
                }
            }
        }
        assert_eq!(f.queries(), 3 * (3000 + 1000));
        let runs = f.take();
        assert_eq!(runs.len(), 3000);
        for (i, r) in runs.iter().enumerate() {
            assert_eq!(r.event.qname.to_string(), names[i]);
            assert_eq!(r.queries, if i % 3 == 0 { 6 } else { 3 });
            assert_eq!((ms(r.first), ms(r.last)), (1000, 1002));
        }
    }

    #[test]
    fn an_event_is_a_few_cache_lines() {
        // the resolver writes each one into the queue and the collector
        // reads it back out of cache: every byte counts twice
        assert!(
            std::mem::size_of::<QueryEvent>() <= 136,
            "{}",
            std::mem::size_of::<QueryEvent>()
        );
        assert!(std::mem::size_of::<PrivateEvent>() <= 136);
    }
}
