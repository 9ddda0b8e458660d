//! The answer cache: upstream responses kept as bytes, keyed by name, type,
//! class and the EDNS variant of the query, served with TTLs aged in place.
//!
//! Sharded by key hash so that workers rarely contend on one lock; a lookup
//! builds its key on the stack and copies the stored bytes into the
//! caller's buffer under the shard lock (a few hundred bytes).
//!
//! Serve-stale (RFC 8767): an answer outlives its TTL by up to
//! [`CacheConfig::max_stale`] seconds, within the same entry bound, so that
//! it can still be sent when no upstream answers. [`Cache::get`] never
//! returns such an answer; [`Cache::get_stale`] does, with its TTLs set to
//! the stale-answer TTL. When a shard is full, entries past that window go
//! first, then expired ones, then live ones closest to expiry.

use std::sync::{Arc, Mutex};
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
    /// Seconds an answer is kept past its expiry to be served stale; 0
    /// drops it at expiry.
    pub max_stale: u32,
}

struct Entry {
    bytes: Box<[u8]>,
    ttl_offsets: Box<[u16]>,
    stored: u32,
    expires: u32,
    /// Until then (cache seconds), a refresh of this expired answer failed
    /// recently: it is served stale without asking upstream again.
    failed_until: u32,
}

struct Shard {
    map: HashMap<Box<[u8]>, Entry>,
}

/// Cheap to clone: clones share the entries (a refresh running after its
/// query was answered stores into the same cache).
#[derive(Clone)]
pub struct Cache {
    shards: Arc<[Mutex<Shard>]>,
    hasher: DefaultHashBuilder,
    per_shard: usize,
    config: CacheConfig,
    epoch: Instant,
    /// Seconds added to the clock, so that tests age entries without
    /// sleeping.
    #[cfg(test)]
    skew: Arc<std::sync::atomic::AtomicU32>,
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

/// What [`Cache::stale`] found for a key with no live answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// Nothing to serve stale.
    None,
    /// An expired answer that may be served if a refresh fails.
    Refreshable,
    /// An expired answer whose last refresh failed moments ago: serve it
    /// now without asking upstream.
    Failing,
}

/// The cache key of a query, on the stack.
#[derive(Clone)]
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
            #[cfg(test)]
            skew: Default::default(),
        }
    }

    fn now(&self) -> u32 {
        let now = self.epoch.elapsed().as_secs() as u32;
        #[cfg(test)]
        let now = now + self.skew.load(std::sync::atomic::Ordering::Relaxed);
        now
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

    /// Whether `key` has an expired answer still within the stale window,
    /// and whether its last refresh failed recently.
    pub fn stale(&self, key: &Key) -> Stale {
        let now = self.now();
        let shard = self.lock(key);
        match shard.map.get(key.as_bytes()) {
            Some(e) if e.expires <= now && now < self.stale_end(e) => {
                if now < e.failed_until {
                    Stale::Failing
                } else {
                    Stale::Refreshable
                }
            }
            _ => Stale::None,
        }
    }

    /// Copies the expired answer for `key` into `out`, adapted to `q`, with
    /// every TTL set to `ttl` (RFC 8767's stale-answer TTL). False when
    /// there is none (absent, live, or past the stale window).
    pub fn get_stale(&self, key: &Key, q: &Query<'_>, out: &mut Vec<u8>, ttl: u32) -> bool {
        let now = self.now();
        let shard = self.lock(key);
        let Some(e) = shard.map.get(key.as_bytes()) else {
            return false;
        };
        if e.expires > now || now >= self.stale_end(e) {
            return false;
        }
        out.clear();
        out.extend_from_slice(&e.bytes);
        wire::adapt_response(out, q, &[], 0);
        wire::set_ttls(out, &e.ttl_offsets, ttl);
        true
    }

    /// Marks the expired answer for `key` as failing to refresh for the
    /// next `secs` seconds.
    pub fn refresh_failed(&self, key: &Key, secs: u32) {
        let now = self.now();
        if let Some(e) = self.lock(key).map.get_mut(key.as_bytes()) {
            e.failed_until = now.saturating_add(secs);
        }
    }

    /// Drops the entry for `key`, if any.
    pub fn remove(&self, key: &Key) {
        self.lock(key).map.remove(key.as_bytes());
    }

    fn lock(&self, key: &Key) -> std::sync::MutexGuard<'_, Shard> {
        self.shard(key.as_bytes())
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// When an entry may no longer be served even stale.
    fn stale_end(&self, e: &Entry) -> u32 {
        e.expires.saturating_add(self.config.max_stale)
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
            failed_until: 0,
        };
        let mut shard = self
            .shard(key.as_bytes())
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut evicted = false;
        if shard.map.len() >= self.per_shard && !shard.map.contains_key(key.as_bytes()) {
            evicted = true;
            self.make_room(&mut shard.map, now);
        }
        shard.map.insert(key.as_bytes().into(), entry);
        Stored::Yes { evicted }
    }

    /// Frees at least one slot of a full shard: every entry past its stale
    /// window if there is one; else the expired entry that expired first
    /// (found in the same pass); else the live entry closest to expiry
    /// among a sample. Without serve-stale the first two are the same
    /// thing: every expired entry goes.
    fn make_room(&self, map: &mut HashMap<Box<[u8]>, Entry>, now: u32) {
        let before = map.len();
        let mut oldest: Option<(u32, Box<[u8]>)> = None;
        map.retain(|k, e| {
            if now >= self.stale_end(e) {
                return false;
            }
            if e.expires <= now && oldest.as_ref().is_none_or(|(x, _)| e.expires < *x) {
                oldest = Some((e.expires, k.clone()));
            }
            true
        });
        if map.len() < before {
            return;
        }
        let victim = oldest.map(|(_, k)| k).or_else(|| {
            map.iter()
                .take(16)
                .min_by_key(|(_, e)| e.expires)
                .map(|(k, _)| k.clone())
        });
        if let Some(v) = victim {
            map.remove(&v);
        }
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

    use super::*;
    use crate::wire::{flag, rcode};
    use parapet_core::policy::rtype;

    /// A query for `name` (dotted, no trailing dot) type A, with or without EDNS.
    fn query(name: &str, edns: bool) -> Vec<u8> {
        let mut q = Vec::new();
        wire::push_header(&mut q, 7, flag::RD, [1, 0, 0, edns as u16]);
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        if edns {
            q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        }
        q
    }

    /// An upstream answer to `packet`: one A record with `ttl`, and an OPT
    /// record when the query had one.
    fn answer(packet: &[u8], ttl: u32) -> Vec<u8> {
        let q = wire::parse_query(packet).unwrap();
        let mut out = Vec::new();
        wire::begin_response(&mut out, &q, rcode::NOERROR, 0);
        wire::push_answer(&mut out, rtype::A, ttl, &[192, 0, 2, 1]);
        if q.edns.is_some() {
            wire::push_opt(&mut out, 1232, 0, None);
        }
        out
    }

    fn cache(capacity: usize, max_stale: u32) -> Cache {
        Cache::new(CacheConfig {
            capacity,
            max_ttl: 86_400,
            max_negative_ttl: 3_600,
            max_stale,
        })
    }

    fn put(c: &Cache, name: &str, ttl: u32) -> Key {
        let p = query(name, false);
        let q = wire::parse_query(&p).unwrap();
        let key = Key::of(&q);
        let msg = answer(&p, ttl);
        let info = wire::scan_response(&msg).unwrap();
        assert!(matches!(c.insert(&key, &msg, &info), Stored::Yes { .. }));
        key
    }

    fn advance(c: &Cache, secs: u32) {
        c.skew.fetch_add(secs, Ordering::Relaxed);
    }

    #[test]
    fn an_expired_answer_is_served_only_stale_within_the_window() {
        let c = cache(1000, 100);
        let p = query("www.example.org", false);
        let q = wire::parse_query(&p).unwrap();
        let key = put(&c, "www.example.org", 10);
        let mut out = Vec::new();
        assert!(c.get(&key, &q, &mut out));
        assert_eq!(c.stale(&key), Stale::None, "a live answer is not stale");
        assert!(!c.get_stale(&key, &q, &mut out, 30));

        advance(&c, 10);
        assert!(!c.get(&key, &q, &mut out), "expired: no longer a hit");
        assert_eq!(c.stale(&key), Stale::Refreshable);
        assert!(c.get_stale(&key, &q, &mut out, 30));
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].ttl, 30, "TTL set to the stale-answer TTL");
        assert_eq!(m.metadata.id, 7);

        advance(&c, 99);
        assert!(
            c.get_stale(&key, &q, &mut out, 30),
            "last second of the window"
        );
        advance(&c, 1);
        assert_eq!(c.stale(&key), Stale::None);
        assert!(!c.get_stale(&key, &q, &mut out, 30), "past max_stale");
    }

    #[test]
    fn without_serve_stale_an_answer_goes_at_expiry() {
        let c = cache(1000, 0);
        let p = query("www.example.org", false);
        let q = wire::parse_query(&p).unwrap();
        let key = put(&c, "www.example.org", 10);
        advance(&c, 10);
        assert_eq!(c.stale(&key), Stale::None);
        assert!(!c.get_stale(&key, &q, &mut Vec::new(), 30));
    }

    #[test]
    fn a_failed_refresh_is_remembered_for_a_while() {
        let c = cache(1000, 100);
        let key = put(&c, "www.example.org", 10);
        advance(&c, 11);
        c.refresh_failed(&key, 5);
        assert_eq!(c.stale(&key), Stale::Failing);
        advance(&c, 5);
        assert_eq!(c.stale(&key), Stale::Refreshable);
        // a fresh answer clears it
        c.refresh_failed(&key, 5);
        put(&c, "www.example.org", 10);
        assert_eq!(c.stale(&key), Stale::None);
        c.remove(&key);
        assert!(c.is_empty());
    }

    /// Names whose keys share one shard of `c`.
    fn same_shard(c: &Cache, n: usize) -> Vec<String> {
        let mut groups: Vec<Vec<String>> = vec![Vec::new(); SHARDS];
        for i in 0.. {
            let name = format!("n{i}.example.org");
            let p = query(&name, false);
            let key = Key::of(&wire::parse_query(&p).unwrap());
            let shard = c.shard(key.as_bytes()) as *const _;
            let at = c
                .shards
                .iter()
                .position(|s| std::ptr::eq(s, shard))
                .unwrap();
            groups[at].push(name);
            if groups[at].len() == n {
                return groups.swap_remove(at);
            }
        }
        unreachable!()
    }

    #[test]
    fn a_full_shard_evicts_dead_then_expired_then_live_answers() {
        // three entries a shard
        let c = cache(3 * SHARDS, 100);
        let names = same_shard(&c, 6);
        let p = |n: &str| query(n, false);
        let live = |c: &Cache, n: &str| {
            let p = p(n);
            c.get(
                &Key::of(&wire::parse_query(&p).unwrap()),
                &wire::parse_query(&p).unwrap(),
                &mut Vec::new(),
            )
        };
        let stale = |c: &Cache, n: &str| {
            let p = p(n);
            c.stale(&Key::of(&wire::parse_query(&p).unwrap())) != Stale::None
        };
        put(&c, &names[0], 10);
        put(&c, &names[1], 20);
        put(&c, &names[2], 1000);
        advance(&c, 25);
        // 0 and 1 are expired, both within the stale window: the one that
        // expired first goes
        put(&c, &names[3], 1000);
        assert!(!stale(&c, &names[0]));
        assert!(stale(&c, &names[1]));
        assert!(live(&c, &names[2]) && live(&c, &names[3]));
        // 1 dies (past its window): it goes before anything else
        advance(&c, 100);
        put(&c, &names[4], 1000);
        assert!(!stale(&c, &names[1]));
        assert!(live(&c, &names[2]) && live(&c, &names[3]) && live(&c, &names[4]));
        // all live: one of them makes room
        put(&c, &names[5], 1000);
        assert_eq!(c.len(), 3);
        assert!(live(&c, &names[5]));
    }

    #[test]
    fn a_stale_answer_carries_extended_error_3_for_an_edns_client() {
        for with_opt in [true, false] {
            let p = query("www.example.org", true);
            let mut msg = answer(&p, 10);
            if !with_opt {
                // an upstream that dropped the OPT record
                msg = answer(&query("www.example.org", false), 10);
            }
            assert!(wire::add_ede(
                &mut msg,
                1232,
                wire::ede::STALE_ANSWER,
                "stale"
            ));
            let m = Message::from_vec(&msg).unwrap();
            let ede = m.edns.as_ref().and_then(|e| e.option(EdnsCode::from(15)));
            let want = [&[0u8, 3][..], b"stale"].concat();
            assert_eq!(ede, Some(&EdnsOption::Unknown(15, want)));
            assert_eq!(m.answers.len(), 1);
            assert_eq!(m.additionals.len(), 0, "the OPT record only");
        }
    }
}
