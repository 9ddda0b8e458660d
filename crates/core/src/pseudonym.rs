//! Keyed pseudonyms for client addresses: HMAC-SHA256 under an operator
//! key, truncated to 64 bits. The same client gets the same pseudonym while
//! the key is unchanged, so beaconing and per-client counts still work, but
//! nobody without the key can test a guess of an address against it.

use std::fmt;
use std::net::IpAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the HMAC kept.
pub const PSEUDONYM_BYTES: usize = 8;
/// Shortest key accepted.
pub const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("pseudonymisation key is {0} bytes; at least {MIN_KEY_BYTES} are needed")]
    TooShort(usize),
}

/// A client's pseudonym.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientPseudonym(pub [u8; PSEUDONYM_BYTES]);

impl fmt::Display for ClientPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ClientPseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientPseudonym({self})")
    }
}

/// Computes pseudonyms under one key.
#[derive(Clone)]
pub struct Pseudonymiser {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Pseudonymiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymiser(HMAC-SHA256, key hidden)")
    }
}

impl Pseudonymiser {
    pub fn new(key: &[u8]) -> Result<Self, KeyError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(KeyError::TooShort(key.len()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
        Ok(Self { mac })
    }

    /// The pseudonym of an address. IPv4-mapped IPv6 addresses hash as IPv4.
    pub fn pseudonymise(&self, ip: IpAddr) -> ClientPseudonym {
        let mut mac = self.mac.clone();
        match ip {
            IpAddr::V4(a) => mac.update(&a.octets()),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => mac.update(&v4.octets()),
                None => mac.update(&a.octets()),
            },
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; PSEUDONYM_BYTES];
        out.copy_from_slice(&full[..PSEUDONYM_BYTES]);
        ClientPseudonym(out)
    }
}

/// Clients whose pseudonyms a [`PseudonymCache`] keeps before it starts
/// again (a supplier's clients are councils' resolvers and desktops: a few
/// thousand addresses).
const CACHE_CLIENTS: usize = 65_536;

/// How long a [`PseudonymCache`] keeps an address at most: raw addresses
/// stay in memory for no longer than this after their last query's event.
pub const CACHE_LIFETIME: std::time::Duration = std::time::Duration::from_secs(600);

/// A [`Pseudonymiser`] that remembers recent clients' pseudonyms: one hash
/// lookup per event instead of an HMAC (two SHA-256 blocks). Held in memory
/// only, by the thread that pseudonymises events, and emptied every
/// [`CACHE_LIFETIME`] (its owner calls [`PseudonymCache::expire`]) so that
/// it never keeps a client's address for long; its `Debug` shows no
/// address.
pub struct PseudonymCache {
    p: Pseudonymiser,
    known: hashbrown::HashMap<IpAddr, ClientPseudonym>,
    since: std::time::Instant,
}

impl fmt::Debug for PseudonymCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PseudonymCache({} clients, addresses hidden)",
            self.known.len()
        )
    }
}

impl PseudonymCache {
    pub fn new(p: Pseudonymiser) -> Self {
        Self {
            p,
            known: hashbrown::HashMap::new(),
            since: std::time::Instant::now(),
        }
    }

    /// Forgets every address once the cache is [`CACHE_LIFETIME`] old.
    pub fn expire(&mut self, now: std::time::Instant) {
        if now.saturating_duration_since(self.since) >= CACHE_LIFETIME {
            self.known = hashbrown::HashMap::new();
            self.since = now;
        }
    }

    /// The same as [`Pseudonymiser::pseudonymise`].
    pub fn pseudonymise(&mut self, ip: IpAddr) -> ClientPseudonym {
        if let Some(c) = self.known.get(&ip) {
            return *c;
        }
        if self.known.len() >= CACHE_CLIENTS {
            self.known.clear();
        }
        let c = self.p.pseudonymise(ip);
        self.known.insert(ip, c);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_gives_the_pseudonymisers_answer() {
        let p = Pseudonymiser::new(b"0123456789abcdef").unwrap();
        let mut cache = PseudonymCache::new(p.clone());
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        for _ in 0..2 {
            assert_eq!(cache.pseudonymise(v4), p.pseudonymise(v4));
            assert_eq!(cache.pseudonymise(mapped), p.pseudonymise(v4));
        }
        // past its bound it starts again and still answers the same
        for i in 0..(CACHE_CLIENTS as u32 + 10) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(i));
            assert_eq!(cache.pseudonymise(ip), p.pseudonymise(ip));
        }
        assert!(cache.known.len() <= CACHE_CLIENTS);
        assert_eq!(cache.pseudonymise(v4), p.pseudonymise(v4));
        // it forgets every address once it is CACHE_LIFETIME old, and its
        // Debug names none
        let start = cache.since;
        cache.expire(start + CACHE_LIFETIME / 2);
        assert!(!cache.known.is_empty());
        assert!(!format!("{cache:?}").contains("192.0.2.7"));
        cache.expire(start + CACHE_LIFETIME);
        assert!(cache.known.is_empty());
        assert_eq!(cache.pseudonymise(v4), p.pseudonymise(v4));
    }

    #[test]
    fn stable_keyed_and_truncated() {
        let a = Pseudonymiser::new(b"0123456789abcdef").unwrap();
        let b = Pseudonymiser::new(b"fedcba9876543210").unwrap();
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(a.pseudonymise(ip), a.pseudonymise(ip));
        assert_ne!(a.pseudonymise(ip), b.pseudonymise(ip));
        assert_eq!(
            a.pseudonymise(ip),
            a.pseudonymise("::ffff:10.1.2.3".parse().unwrap())
        );
        assert_eq!(a.pseudonymise(ip).to_string().len(), 16);
        // RFC 4231-style check that this is HMAC-SHA256: key "0123456789abcdef", msg 10.1.2.3
        let mut mac = Hmac::<Sha256>::new_from_slice(b"0123456789abcdef").unwrap();
        mac.update(&[10, 1, 2, 3]);
        assert_eq!(&mac.finalize().into_bytes()[..8], &a.pseudonymise(ip).0);
        assert!(Pseudonymiser::new(b"short").is_err());
    }
}
