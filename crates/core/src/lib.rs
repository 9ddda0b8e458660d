//! Parapet's core vocabulary: domain names in wire form, tenants and their
//! networks, the compiled DNS policy that threat feeds turn into, and the
//! query events the resolver emits.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of
//! sockets, async runtimes, databases or the web. Everything here is a pure
//! function of its inputs, so the resolver's hot path and every other crate
//! can share it.

pub mod alert;
pub mod calendar;
pub mod event;
pub mod ippolicy;
pub mod name;
pub mod policy;
pub mod pseudonym;
pub mod rules_text;
pub mod tenant;
