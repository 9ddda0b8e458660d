//! Response rate limiting (RRL) for UDP, in the manner of Knot DNS and
//! NSD: a token bucket per client prefix (/24 and /56 by default) refilled
//! each second with `responses_per_second` tokens; a client out of tokens
//! has every `slip`-th answer sent truncated (TC=1, so that a real client
//! retries over TCP, which is never limited) and the others dropped.
//!
//! The buckets live in one fixed array indexed by a seeded hash of the
//! prefix, each bucket one `AtomicU64` updated by compare-and-swap: no lock,
//! no allocation, and memory that cannot grow however many (spoofed)
//! sources there are. As in Knot, a prefix that hashes to a bucket held by
//! another takes it over with a full bucket (the tag tells them apart).
//! Hand-written rather than a rate-limiting crate: those keep a growing map
//! of keys, which spoofed sources would fill.
//!
//! The limit is taken when a query arrives rather than when its answer is
//! built, so that a limited client costs no policy, cache or upstream work.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// `[dns.rate_limit]` as the resolver uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Answers per second per prefix; 0 disables the limit.
    pub responses_per_second: u32,
    /// Every `slip`-th limited answer goes out truncated, the others are
    /// dropped; 0 drops them all, 1 truncates them all.
    pub slip: u8,
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl RateLimit {
    /// No limit.
    pub const OFF: RateLimit = RateLimit {
        responses_per_second: 0,
        slip: 2,
        ipv4_prefix: 24,
        ipv6_prefix: 56,
    };
    /// The largest `responses_per_second` a bucket holds.
    pub const MAX_RATE: u32 = (1 << 24) - 1;
}

/// What to do with the answer to a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: answer.
    Pass,
    /// Limited: answer truncated (TC=1), without records.
    Slip,
    /// Limited: send nothing.
    Drop,
}

/// Buckets in the table: 512 KiB, room for tens of thousands of active
/// prefixes before two share a bucket.
pub const TABLE_SIZE: usize = 1 << 16;

// A bucket: tokens (24 bits), the second it was last refilled (16 bits,
// wrapping), the slip counter (8 bits) and a tag from the prefix's hash
// (16 bits) that tells the prefix holding the bucket from another hashing
// to it.
const TOKENS: u64 = (1 << 24) - 1;
const TIME_SHIFT: u32 = 24;
const SLIP_SHIFT: u32 = 40;
const TAG_SHIFT: u32 = 48;

/// The buckets of one resolver.
pub struct RateLimiter {
    config: RateLimit,
    buckets: Box<[AtomicU64]>,
    seed: u64,
    v4_mask: u32,
    v6_mask: u128,
}

impl RateLimiter {
    /// `None` when `config` disables the limit. `size` is rounded up to a
    /// power of two.
    pub fn new(config: RateLimit, size: usize) -> Option<Self> {
        if config.responses_per_second == 0 {
            return None;
        }
        let size = size.max(1).next_power_of_two();
        let v4 = u32::from(config.ipv4_prefix.min(32));
        let v6 = u32::from(config.ipv6_prefix.min(128));
        Some(Self {
            config: RateLimit {
                responses_per_second: config.responses_per_second.min(RateLimit::MAX_RATE),
                ..config
            },
            buckets: (0..size).map(|_| AtomicU64::new(0)).collect(),
            seed: rand::random(),
            v4_mask: u32::MAX.checked_shl(32 - v4).unwrap_or(0),
            v6_mask: u128::MAX.checked_shl(128 - v6).unwrap_or(0),
        })
    }

    /// Takes a token for an answer to `ip` at `now` (seconds, any epoch
    /// that moves forward).
    #[inline]
    pub fn check(&self, ip: IpAddr, now: u64) -> Verdict {
        let h = self.hash(ip);
        let bucket = &self.buckets[(h as usize) & (self.buckets.len() - 1)];
        let tag = h >> TAG_SHIFT;
        let now = now & 0xffff;
        let rate = u64::from(self.config.responses_per_second);
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let (mut tokens, mut slip) = if cur == 0 || cur >> TAG_SHIFT != tag {
                (rate, 0)
            } else {
                let elapsed = now.wrapping_sub(cur >> TIME_SHIFT & 0xffff) & 0xffff;
                let tokens = (cur & TOKENS) + rate * elapsed;
                (tokens.min(rate), cur >> SLIP_SHIFT & 0xff)
            };
            let verdict = if tokens > 0 {
                tokens -= 1;
                Verdict::Pass
            } else if self.config.slip == 0 {
                Verdict::Drop
            } else {
                slip = (slip + 1) % u64::from(self.config.slip);
                if slip == 0 {
                    Verdict::Slip
                } else {
                    Verdict::Drop
                }
            };
            let new = tokens | now << TIME_SHIFT | slip << SLIP_SHIFT | tag << TAG_SHIFT;
            if new == cur {
                return verdict;
            }
            match bucket.compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return verdict,
                Err(seen) => cur = seen,
            }
        }
    }

    /// A seeded hash of the client's prefix (seeded so that nobody can pick
    /// sources that share a bucket with a victim's).
    #[inline]
    fn hash(&self, ip: IpAddr) -> u64 {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let key = match ip {
            IpAddr::V4(a) => u64::from(u32::from(a) & self.v4_mask),
            IpAddr::V6(a) => {
                let p = u128::from(a) & self.v6_mask;
                // the family bit keeps ::/96-style prefixes apart from IPv4
                ((p >> 64) as u64 ^ (p as u64).rotate_left(29)) | 1 << 63
            }
        };
        mix(key ^ self.seed)
    }
}

/// The splitmix64 finaliser: every input bit moves every output bit.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(rate: u32, slip: u8) -> RateLimiter {
        let config = RateLimit {
            responses_per_second: rate,
            slip,
            ..RateLimit::OFF
        };
        RateLimiter::new(config, 1024).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn verdicts(l: &RateLimiter, client: &str, now: u64, n: usize) -> Vec<Verdict> {
        (0..n).map(|_| l.check(ip(client), now)).collect()
    }

    #[test]
    fn off_is_no_table() {
        assert!(RateLimiter::new(RateLimit::OFF, 1024).is_none());
    }

    #[test]
    fn a_burst_is_limited_with_every_second_answer_slipped() {
        use Verdict::*;
        let l = limiter(3, 2);
        let v = verdicts(&l, "192.0.2.1", 100, 8);
        assert_eq!(v, [Pass, Pass, Pass, Drop, Slip, Drop, Slip, Drop]);
        // the same /24 shares the bucket; another /24 has its own
        assert_eq!(l.check(ip("192.0.2.200"), 100), Slip);
        assert_eq!(verdicts(&l, "192.0.3.1", 100, 3), [Pass, Pass, Pass]);
        // a second later the bucket is full again, and no fuller
        assert_eq!(verdicts(&l, "192.0.2.1", 101, 4), [Pass, Pass, Pass, Drop]);
        assert_eq!(verdicts(&l, "192.0.2.1", 200, 4), [Pass, Pass, Pass, Slip]);
    }

    #[test]
    fn slip_zero_drops_all_and_one_truncates_all() {
        let l = limiter(1, 0);
        assert_eq!(l.check(ip("10.0.0.1"), 5), Verdict::Pass);
        assert!(
            verdicts(&l, "10.0.0.1", 5, 5)
                .iter()
                .all(|&v| v == Verdict::Drop)
        );
        let l = limiter(1, 1);
        assert_eq!(l.check(ip("10.0.0.1"), 5), Verdict::Pass);
        assert!(
            verdicts(&l, "10.0.0.1", 5, 5)
                .iter()
                .all(|&v| v == Verdict::Slip)
        );
    }

    #[test]
    fn ipv6_prefixes_and_mapped_addresses() {
        let l = limiter(1, 0);
        assert_eq!(l.check(ip("2001:db8:0:100::1"), 0), Verdict::Pass);
        // same /56
        assert_eq!(l.check(ip("2001:db8:0:1ff::9"), 0), Verdict::Drop);
        // another /56
        assert_eq!(l.check(ip("2001:db8:0:200::1"), 0), Verdict::Pass);
        assert_eq!(l.check(ip("198.51.100.1"), 0), Verdict::Pass);
        assert_eq!(l.check(ip("::ffff:198.51.100.2"), 0), Verdict::Drop);
    }

    #[test]
    fn the_clock_wrapping_or_going_back_refills() {
        let l = limiter(2, 0);
        assert_eq!(verdicts(&l, "10.0.0.1", 0xffff, 3)[2], Verdict::Drop);
        assert_eq!(l.check(ip("10.0.0.1"), 0x1_0000), Verdict::Pass);
        assert_eq!(l.check(ip("10.0.0.1"), 0x1_0000), Verdict::Pass);
        assert_eq!(l.check(ip("10.0.0.1"), 0x1_0000), Verdict::Drop);
        assert_eq!(l.check(ip("10.0.0.1"), 10), Verdict::Pass);
    }

    #[test]
    fn memory_is_fixed_however_many_sources() {
        let l = limiter(5, 2);
        for i in 0..100_000u32 {
            l.check(IpAddr::from((0x0a00_0000 + (i << 8)).to_be_bytes()), 1);
        }
        assert_eq!(l.buckets.len(), 1024);
        // each source took one of five tokens: whichever bucket a new
        // prefix lands in, it is answered
        assert_eq!(l.check(ip("192.0.2.1"), 1), Verdict::Pass);
    }

    #[test]
    fn concurrent_takers_share_one_budget() {
        let l = std::sync::Arc::new(limiter(1000, 0));
        let passed: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let l = l.clone();
                    s.spawn(move || {
                        (0..1000)
                            .filter(|_| l.check(ip("10.1.1.1"), 7) == Verdict::Pass)
                            .count()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(passed, 1000);
    }
}
