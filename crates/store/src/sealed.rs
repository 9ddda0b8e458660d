//! Sealed client addresses and what an investigator reads beside them: a
//! batch's clients, each address sealed to the investigation public key
//! (`[privacy] investigation_public_key`) by the pipeline, kept once per
//! client per batch; a client's activity; the pseudonyms behind an alert.
//! The store never sees a key and cannot open a blob: only `parapet
//! investigate reveal`, holding the private key, can.

use std::sync::Arc;

use parapet_core::pseudonym::ClientPseudonym;

use crate::{BatchId, StoreError};

/// What a sealed-address row keeps, field by field (`parapet privacy`).
pub const SEALED_FIELDS: &[(&str, &str)] = &[
    ("tenant", "the council whose network the client is in"),
    (
        "client",
        "the client's pseudonym (the same HMAC as the query events')",
    ),
    (
        "first_time, last_time",
        "the first and last query of the client in one storage batch (milliseconds)",
    ),
    (
        "sealed",
        "the client address encrypted to the investigation public key (HPKE, RFC 9180: X25519, HKDF-SHA256, ChaCha20-Poly1305): only the offline private key opens it",
    ),
    (
        "node, run, seq",
        "the storage batch it came with (each batch once)",
    ),
];

/// One client of one batch, its address sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedClient {
    pub tenant: Arc<str>,
    pub client: ClientPseudonym,
    /// Unix milliseconds: the client's first and last query in the batch
    /// (or, read back, over every batch with this blob).
    pub first: i64,
    pub last: i64,
    /// The sealed address (opaque here).
    pub sealed: Vec<u8>,
}

/// A client's stored queries, for a reveal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientActivity {
    /// Unix milliseconds.
    pub first: i64,
    pub last: i64,
    pub queries: u64,
    /// The names asked for and how often, most asked first.
    pub names: Vec<(String, u64)>,
}

/// Sealed addresses and the reads a reveal needs. Each call is one
/// transaction.
pub trait SealedStore: Send {
    /// Keeps a batch's sealed clients, once per batch id and node: a batch
    /// replayed from the spool writes nothing twice. Returns the rows
    /// written.
    fn insert_sealed(&mut self, id: BatchId, sealed: &[SealedClient]) -> Result<usize, StoreError>;

    /// The distinct sealed blobs of one client (in one tenant, or any),
    /// each with the first and last time it was stored, newest first, at
    /// most `limit`.
    fn sealed_for(
        &mut self,
        tenant: Option<&str>,
        client: ClientPseudonym,
        limit: usize,
    ) -> Result<Vec<SealedClient>, StoreError>;

    /// What one client of `tenant` asked for, over the stored query events;
    /// with `domain`, only that registrable domain and the names under it.
    /// `None` when no stored event matches.
    fn client_activity(
        &mut self,
        tenant: &str,
        client: ClientPseudonym,
        domain: Option<&str>,
        names: usize,
    ) -> Result<Option<ClientActivity>, StoreError>;
}

/// `qname` is `domain` or a name under it (a suffix test, not `LIKE`,
/// whose `_` would match any character).
pub(crate) fn under(domain: &str) -> String {
    format!(".{domain}")
}

/// The sealing mode in force, and what it means, given the investigation
/// public key's fingerprint (`None`: no key): `parapet privacy` and
/// `/privacy` both say it in these words.
pub fn privacy_mode(fingerprint: Option<&str>) -> (&'static str, String) {
    match fingerprint {
        Some(f) => (
            "sealed",
            format!(
                "Client addresses are sealed to the investigation public key {f}: each storage batch keeps, per client, its address encrypted to that key beside the pseudonym. Nodes, the dashboard and the database cannot open it; only the holder of the offline private key can, with `parapet investigate reveal`, and every reveal is written to the audit log with who, when, why and how many addresses."
            ),
        ),
        None => (
            "not sealed",
            "No investigation public key is configured: client addresses are not kept in any form, only their pseudonyms, and no reveal is possible. A council's machine is found from the pseudonym only by whoever can recompute it (see docs/privacy.md).".to_string(),
        ),
    }
}
