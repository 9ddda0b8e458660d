//! Turning outside data about threats into Parapet's policy, and (with the
//! detection issue) query events into alerts.
//!
//! [`feed`] parses threat feeds — RPZ zone files, hosts files and plain
//! domain lists — into [`parapet_core::policy::FeedRules`]. It knows nothing
//! of sockets or storage: the resolver's crate compiles the rules, the binary
//! decides when to load them.

pub mod dga;
pub mod feed;
pub mod rules;
