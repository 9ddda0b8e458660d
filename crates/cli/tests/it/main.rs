//! End-to-end tests of the `parapet` binary against real peers on loopback.
//! One integration-test binary for the crate (link time matters on 2 cores).

mod harness;

mod accounts;
mod acl;
mod assets;
mod browser;
mod cli;
mod cluster;
mod dashboard;
mod dmarc_senders;
mod dot;
mod export;
mod feed_garbage;
mod garbage;
mod imap;
mod ingest;
mod investigate;
mod mailcheck;
mod notify;
mod package;
mod queries;
mod reload;
mod report;
mod resolver;
mod rpz_diff;
mod service;
mod spool;
mod stale;
mod store;
mod tenants;
mod url_feeds;
mod workbench;
mod xfr;
