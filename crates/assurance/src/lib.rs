//! Assurance: what councils' asset, anti-virus and vulnerability tools
//! export ([`parse`]), reconciled into one asset register ([`register`]),
//! and the five committee KPIs with the Cyber Essentials checks the data
//! can decide ([`kpi`]), per financial-year [`quarter`].
//!
//! Pure computation: the store keeps the observations, this crate reads
//! them and never touches a database or the network.

pub mod eol;
pub mod kpi;
pub mod parse;
pub mod quarter;
pub mod register;
