//! Mail Check: the e-mail security posture of council mail domains.
//!
//! Parsers are strict and pure (no I/O): [`spf`], [`dmarc`], [`dkim`]. The
//! checker ([`check`]) looks records up through [`dns::Dns`] — a small stub
//! client that asks one configured nameserver — and turns what it finds
//! into [`Finding`]s.

pub mod check;
pub mod dkim;
pub mod dmarc;
pub mod dns;
pub mod finding;
pub mod report;
pub mod senders;
pub mod spf;
pub mod sts;
pub mod tls;

pub use finding::{Finding, Level};
