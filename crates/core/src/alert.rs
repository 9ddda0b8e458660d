//! Detection output: a [`Signal`] is one event that a detection rule found
//! suspicious; the store folds signals into alerts (one per tenant, rule and
//! registrable domain) that analysts work through [`AlertStatus`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::pseudonym::ClientPseudonym;

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "info" => Ok(Self::Info),
            "low" => Ok(Self::Low),
            "medium" => Ok(Self::Medium),
            "high" => Ok(Self::High),
            _ => Err(format!("unknown severity `{s}` (info, low, medium, high)")),
        }
    }
}

/// Where an alert is in the analysts' workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertStatus {
    New,
    Investigating,
    Resolved,
    FalsePositive,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 4] = [
        Self::New,
        Self::Investigating,
        Self::Resolved,
        Self::FalsePositive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Investigating => "investigating",
            Self::Resolved => "resolved",
            Self::FalsePositive => "false_positive",
        }
    }

    /// Whether an analyst may move an alert from `self` to `to`:
    /// new → investigating → resolved | false_positive, and a closed alert
    /// may be reopened for investigation.
    pub fn can_become(self, to: AlertStatus) -> bool {
        use AlertStatus::*;
        matches!(
            (self, to),
            (New, Investigating)
                | (New, Resolved)
                | (New, FalsePositive)
                | (Investigating, Resolved)
                | (Investigating, FalsePositive)
                | (Resolved, Investigating)
                | (FalsePositive, Investigating)
        )
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AlertStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!("unknown alert status `{s}` (new, investigating, resolved, false_positive)")
            })
    }
}

/// One suspicious query, as a detection rule saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub time: SystemTime,
    pub tenant: Arc<str>,
    /// The rule's stable code: `feed.block`, `feed.monitor`, `dga`,
    /// `tunnel`, `beacon`, `new_domain`.
    pub rule: &'static str,
    pub severity: Severity,
    /// The registrable domain the alert is about (e.g. `example.co.uk`).
    pub domain: String,
    pub client: ClientPseudonym,
    pub feed: Option<Arc<str>>,
    /// Why the rule fired, in plain English, with the figures.
    pub reason: String,
    /// The query that fired it: `qname qtype action`.
    pub evidence: String,
    /// Identical queries after this one, in the same batch, folded into
    /// this signal (`None`: it stands for one query).
    pub folded: Option<Folded>,
}

/// Repeats of one signal's query folded into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folded {
    /// Queries the signal stands for, the first included.
    pub count: u32,
    /// Time of the last of them (the signal's `time` is the first's).
    pub last: SystemTime,
}

impl Signal {
    /// Queries this signal stands for.
    pub fn count(&self) -> u32 {
        self.folded.map_or(1, |f| f.count)
    }

    /// Time of the last query it stands for.
    pub fn last_time(&self) -> SystemTime {
        self.folded.map_or(self.time, |f| f.last)
    }

    /// Folds one more identical query, seen at `time`, into this signal.
    /// `time` may be earlier than the signal's own (the resolver's threads
    /// stamp events independently): the signal then starts at it.
    pub fn fold(&mut self, time: SystemTime) {
        self.fold_run(time, time, 1);
    }

    /// Folds `queries` more identical queries, seen from `first` to `last`,
    /// into this signal (see [`Signal::fold`]).
    pub fn fold_run(&mut self, first: SystemTime, last: SystemTime, queries: u32) {
        let f = self.folded.get_or_insert(Folded {
            count: 1,
            last: self.time,
        });
        f.count = f.count.saturating_add(queries);
        f.last = f.last.max(last);
        self.time = self.time.min(first);
    }
}

/// An alert: the signals of one rule about one registrable domain for one
/// tenant, folded together.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: i64,
    pub tenant: String,
    pub rule: String,
    pub domain: String,
    pub severity: Severity,
    pub status: AlertStatus,
    /// Unix milliseconds.
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: u64,
    /// Distinct (pseudonymised) clients.
    pub clients: u64,
    pub feeds: Vec<String>,
    /// The latest reason the rule gave.
    pub reason: String,
    /// Up to [`EVIDENCE_SAMPLES`] sample queries.
    pub evidence: Vec<String>,
    /// The resolver nodes that saw it (empty for a single node).
    pub nodes: Vec<String>,
    pub history: Vec<StatusChange>,
}

/// Sample queries kept per alert.
pub const EVIDENCE_SAMPLES: usize = 5;

/// One step of an alert's workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// Unix milliseconds.
    pub time: i64,
    pub from: AlertStatus,
    pub to: AlertStatus,
    pub by: String,
    pub note: String,
}

impl Alert {
    /// The one JSON form of an alert: the API, `parapet alerts list
    /// --format json` and the webhook body share it, so a receiver parses
    /// one shape whichever way the alert reached it.
    pub fn to_json(&self) -> serde_json::Value {
        use crate::calendar::format_datetime_ms;
        serde_json::json!({
            "id": self.id,
            "tenant": self.tenant,
            "rule": self.rule,
            "domain": self.domain,
            "severity": self.severity.as_str(),
            "status": self.status.as_str(),
            "first_seen": format_datetime_ms(self.first_seen),
            "last_seen": format_datetime_ms(self.last_seen),
            "count": self.count,
            "clients": self.clients,
            "feeds": self.feeds,
            "nodes": self.nodes,
            "reason": self.reason,
            "evidence": self.evidence,
            "history": self.history.iter().map(|h| serde_json::json!({
                "time": format_datetime_ms(h.time),
                "from": h.from.as_str(),
                "to": h.to.as_str(),
                "by": h.by,
                "note": h.note,
            })).collect::<Vec<_>>(),
        })
    }
}
