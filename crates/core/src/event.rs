//! Query events: one per query the resolver receives, sent off the hot path
//! for detection and storage.
//!
//! The resolver emits [`QueryEvent`] carrying the client's address, because
//! hashing it there would cost every query an HMAC. The first consumer turns
//! each event into a [`PrivateEvent`] with [`crate::pseudonym::Pseudonymiser`]
//! before anything else sees it: the raw address lives only in the bounded
//! in-memory channel between the two and is never stored or logged.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use crate::name::InlineName;
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
    pub qname: InlineName,
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
    pub qname: InlineName,
    pub qtype: u16,
    pub rcode: u8,
    pub action: EventAction,
    pub feed: Option<Arc<str>>,
}

impl QueryEvent {
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
