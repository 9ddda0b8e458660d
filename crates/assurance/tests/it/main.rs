//! The assurance crate's integration tests, one binary (link time matters
//! on small machines): the Northshire fixture estate run through the
//! crate's public API against an in-memory store.

mod estate;
mod frozen;
