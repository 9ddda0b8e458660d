//! The database as something several resolver nodes share: which node this
//! connection speaks for, leases so that a background job runs once across
//! the cluster, feeds published once for every node, a heartbeat per node
//! saying which feed versions it serves, and the schema every node migrates
//! to. On SQLite there is one node, and the same calls still hold.

use std::time::{Duration, SystemTime};

use crate::StoreError;

/// A feed as published in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedVersion {
    pub name: String,
    /// 1 for the first publication, one more for each change.
    pub version: i64,
    pub sha256: String,
    /// Unix milliseconds.
    pub published_at: i64,
}

/// A node's last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    /// Unix milliseconds.
    pub started_at: i64,
    pub seen_at: i64,
    /// `name=version` of each database feed it serves, space-separated.
    pub feeds: String,
}

/// Lower-case hex SHA-256: how a published feed's bytes are compared.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The database itself and the nodes sharing it.
pub trait ClusterStore: Send {
    /// Where the data lives, for logs (a path, or a URL without password).
    fn location(&self) -> String;

    /// The schema version in force.
    fn schema_version(&mut self) -> Result<u32, StoreError>;

    /// The node this process is: written with its events and alerts.
    fn set_node(&mut self, node: &str);

    /// Takes or renews the lease on `job` for this node until `now + ttl`.
    /// `true` when this node holds it (and so runs the job); `false` while
    /// another node holds an unexpired lease.
    fn try_lease(&mut self, job: &str, now: SystemTime, ttl: Duration) -> Result<bool, StoreError>;

    /// Stores a feed's bytes under `name` for every node; the version goes
    /// up by one unless the same bytes are already published.
    fn publish_feed(
        &mut self,
        name: &str,
        content: &[u8],
        now: SystemTime,
    ) -> Result<FeedVersion, StoreError>;

    /// The published version of a feed, without its bytes.
    fn feed_version(&mut self, name: &str) -> Result<Option<FeedVersion>, StoreError>;

    /// A published feed with its bytes.
    fn load_feed(&mut self, name: &str) -> Result<Option<(FeedVersion, Vec<u8>)>, StoreError>;

    /// Records that this node is alive and the feed versions it serves
    /// (`name=version`, space-separated).
    fn heartbeat(
        &mut self,
        started_at: i64,
        now: SystemTime,
        feeds: &str,
    ) -> Result<(), StoreError>;

    /// Every node that has reported, by name.
    fn nodes(&mut self) -> Result<Vec<NodeStatus>, StoreError>;
}
