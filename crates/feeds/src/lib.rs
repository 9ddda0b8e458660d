//! Where threat feeds come from when nobody copies them by hand: URLs
//! fetched on a schedule, and RPZ zones taken by zone transfer.
//!
//! Each source keeps the last good version of its feed on disk, so a
//! restart with the vendor unreachable still protects. It knows nothing of
//! the resolver: the binary's loader turns what a source brings into policy.

pub mod http;
pub mod xfr;
