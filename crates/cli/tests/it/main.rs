//! End-to-end tests of the `parapet` binary against real peers on loopback.
//! One integration-test binary for the crate (link time matters on 2 cores).

mod harness;

mod accounts;
mod assets;
mod browser;
mod cli;
mod cluster;
mod dashboard;
mod feed_garbage;
mod garbage;
mod ingest;
mod mailcheck;
mod notify;
mod reload;
mod report;
mod resolver;
mod rpz_diff;
mod spool;
mod store;
mod tenants;
mod url_feeds;
mod xfr;
