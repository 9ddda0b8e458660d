//! The answer cache: upstream responses kept as bytes, keyed by name, type,
//! class and the EDNS variant of the query, served with TTLs aged in place.
//!
//! Sharded by key hash so that workers rarely contend on one lock; a lookup
//! builds its key on the stack and copies the stored bytes into the
//! caller's buffer under the shard lock (a few hundred bytes).

use std::sync::Mutex;
use std::time::Instant;

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap};

use crate::wire::{self, Query, ResponseInfo};

const SHARDS: usize = 32;
/// Longest key: name (254) + type + class + variant.
const MAX_KEY: usize = 254 + 5;

/// Cache limits.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Entries kept at most.
    pub capacity: usize,
    /// TTLs above this are cut to it.
    pub max_ttl: u32,
    /// Negative answers (NXDOMAIN, NODATA) are kept at most this long.
    pub max_negative_ttl: u32,
}

struct Entry {
    bytes: Box<[u8]>,
    ttl_offsets: Box<[u16]>,
    stored: u32,
    expires: u32,
}

struct Shard {
    map: HashMap<Box<[u8]>, Entry>,
}

pub struct Cache {
    shards: Box<[Mutex<Shard>]>,
    hasher: DefaultHashBuilder,
    per_shard: usize,
    config: CacheConfig,
    epoch: Instant,
}

/// Result of [`Cache::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Yes {
        evicted: bool,
    },
    /// Not cacheable (error rcode, truncated, zero TTL, negative without SOA).
    No,
}

/// The cache key of a query, on the stack.
pub struct Key {
    buf: [u8; MAX_KEY],
    len: usize,
}

impl Key {
    pub fn of(q: &Query<'_>) -> Self {
        let name = q.qname.as_key();
        let mut buf = [0u8; MAX_KEY];
        buf[..name.len()].copy_from_slice(name);
        let mut len = name.len();
        buf[len..len + 2].copy_from_slice(&q.qtype.to_be_bytes());
        buf[len + 2..len + 4].copy_from_slice(&q.qclass.to_be_bytes());
        // the answer depends on whether the client speaks EDNS (OPT in the
        // answer), asked for DNSSEC records (DO), or disabled validation (CD)
        let variant = match q.edns {
            None => 0,
            Some(e) => 1 | ((e.do_bit as u8) << 1),
        } | ((q.cd() as u8) << 2);
        buf[len + 4] = variant;
        len += 5;
        Self { buf, len }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Cache {
    pub fn new(config: CacheConfig) -> Self {
        let per_shard = (config.capacity / SHARDS).max(1);
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                    })
                })
                .collect(),
            hasher: DefaultHashBuilder::default(),
            per_shard,
            config,
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u32 {
        self.epoch.elapsed().as_secs() as u32
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(key);
        &self.shards[(h as usize) % SHARDS]
    }

    /// Copies the live answer for `key` into `out`, adapted to `q` (ID,
    /// flags, question case, aged TTLs). False when absent or expired.
    pub fn get(&self, key: &Key, q: &Query<'_>, out: &mut Vec<u8>) -> bool {
        let now = self.now();
        let shard = self
            .shard(key.as_bytes())
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let Some(e) = shard.map.get(key.as_bytes()) else {
            return false;
        };
        if e.expires <= now {
            return false;
        }
        out.clear();
        out.extend_from_slice(&e.bytes);
        wire::adapt_response(out, q, &e.ttl_offsets, now - e.stored);
        true
    }

    /// Stores an upstream response if it may be cached. Returns whether it
    /// was, and whether that evicted another entry.
    pub fn insert(&self, key: &Key, msg: &[u8], info: &ResponseInfo) -> Stored {
        let Some(ttl) = self.cache_ttl(info) else {
            return Stored::No;
        };
        let now = self.now();
        let entry = Entry {
            bytes: msg.into(),
            ttl_offsets: info.ttl_offsets.clone().into_boxed_slice(),
            stored: now,
            expires: now.saturating_add(ttl),
        };
        let mut shard = self
            .shard(key.as_bytes())
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut evicted = false;
        if shard.map.len() >= self.per_shard && !shard.map.contains_key(key.as_bytes()) {
            evicted = true;
            // drop expired entries first; if none, the entry closest to expiry
            // among a sample
            let before = shard.map.len();
            shard.map.retain(|_, e| e.expires > now);
            if shard.map.len() == before {
                let victim = shard
                    .map
                    .iter()
                    .take(16)
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| k.clone());
                if let Some(v) = victim {
                    shard.map.remove(&v);
                }
            }
        }
        shard.map.insert(key.as_bytes().into(), entry);
        Stored::Yes { evicted }
    }

    /// How long a response may be cached, if at all.
    fn cache_ttl(&self, info: &ResponseInfo) -> Option<u32> {
        if info.truncated {
            return None;
        }
        let ttl = match info.rcode {
            wire::rcode::NOERROR if info.answers > 0 => info.min_ttl?.min(self.config.max_ttl),
            wire::rcode::NOERROR | wire::rcode::NXDOMAIN => {
                info.negative_ttl?.min(self.config.max_negative_ttl)
            }
            _ => return None,
        };
        (ttl > 0).then_some(ttl)
    }

    /// Entries currently held (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
