//! Assurance: what councils' asset, anti-virus and vulnerability tools
//! export ([`parse`]), reconciled into one asset register ([`register`]),
//! and the five committee KPIs with the Cyber Essentials checks the data
//! can decide ([`kpi`]), per financial-year [`quarter`], frozen once a
//! quarter has ended ([`frozen`]) in a versioned stored form ([`snapshot`]).
//!
//! The crate owns its model ([`model`]) and the storage it needs
//! ([`store`]: traits the store crate implements), so it links no database
//! driver and does no I/O of its own.

pub mod eol;
pub mod frozen;
pub mod kpi;
pub mod model;
pub mod parse;
pub mod quarter;
pub mod register;
pub mod snapshot;
pub mod store;
