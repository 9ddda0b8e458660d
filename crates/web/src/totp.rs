//! The TOTP second factor (RFC 6238): HMAC-SHA-1, 6 digits, 30-second
//! steps, one step either side accepted for clock drift.
//!
//! Hand-written over ring's HMAC rather than the `totp-rs` crate: ring is
//! already the workspace's one crypto provider, and the algorithm is a
//! dozen lines, where the crate would bring its own SHA-1, HMAC and base32
//! crates. The tests check it against RFC 6238's appendix B vectors.

use rand::RngCore;

/// Seconds per time step.
pub const STEP: i64 = 30;
/// Digits in a code.
pub const DIGITS: usize = 6;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// A new random secret.
pub fn new_secret() -> Vec<u8> {
    let mut b = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut b);
    b
}

/// The time step of Unix time `now`.
pub fn step_at(now: i64) -> i64 {
    now.div_euclid(STEP)
}

/// The HOTP value (RFC 4226 §5.3) of `counter`, `digits` long.
fn hotp(secret: &[u8], counter: u64, digits: usize) -> u32 {
    // SHA-1 is what every authenticator app uses for TOTP; as an HMAC it
    // is not affected by SHA-1's collision weaknesses
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = ring::hmac::sign(&key, &counter.to_be_bytes());
    let h = mac.as_ref();
    let off = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 10u32.pow(digits as u32)
}

/// The code for time step `step`, zero-padded.
pub fn code(secret: &[u8], step: i64) -> String {
    format!(
        "{:0width$}",
        hotp(secret, step.max(0) as u64, DIGITS),
        width = DIGITS
    )
}

/// The time step `given` is the code of at `now` (this step, the one
/// before or the one after), or `None`. Spaces in the code are ignored,
/// as apps show it in two groups.
pub fn verify(secret: &[u8], given: &str, now: i64) -> Option<i64> {
    let given: String = given.chars().filter(|c| !c.is_whitespace()).collect();
    if given.len() != DIGITS || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let here = step_at(now);
    [here - 1, here, here + 1].into_iter().find(|&s| {
        let want = code(secret, s);
        crate::auth::same_secret(&want, &given)
    })
}

/// RFC 4648 base32 without padding, as `otpauth://` URIs carry secrets.
/// Hand-written: encoding only, a few lines, no crate needed.
pub fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buf >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Percent-encodes a URI component (unreserved characters kept).
pub(crate) fn component(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The `otpauth://` URI an authenticator app enrols from (as a QR code or
/// pasted): issuer `issuer`, account `account`.
pub fn uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP}",
        component(issuer),
        component(account),
        base32(secret),
        component(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 (8 digits there; the last 6 here are the
    /// same value modulo 10^6).
    #[test]
    fn matches_the_rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(
                format!("{:08}", hotp(secret, step_at(t) as u64, 8)),
                eight,
                "t={t}"
            );
            assert_eq!(code(secret, step_at(t)), eight[2..], "t={t}");
        }
    }

    #[test]
    fn accepts_one_step_of_drift_and_no_more() {
        let secret = b"12345678901234567890";
        let now = 1_234_567_890;
        let s = step_at(now);
        assert_eq!(verify(secret, &code(secret, s), now), Some(s));
        assert_eq!(verify(secret, &code(secret, s - 1), now), Some(s - 1));
        assert_eq!(verify(secret, &code(secret, s + 1), now), Some(s + 1));
        assert_eq!(verify(secret, &code(secret, s - 2), now), None);
        assert_eq!(verify(secret, &code(secret, s + 2), now), None);
        let spaced = format!("{} {}", &code(secret, s)[..3], &code(secret, s)[3..]);
        assert_eq!(verify(secret, &spaced, now), Some(s));
        assert_eq!(verify(secret, "12345", now), None);
        assert_eq!(verify(secret, "abcdef", now), None);
    }

    #[test]
    fn base32_and_uri_follow_rfc_4648() {
        // RFC 4648 §10
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), enc);
        }
        let u = uri("Parapet", "ann smith", b"12345678901234567890");
        assert_eq!(
            u,
            "otpauth://totp/Parapet:ann%20smith?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Parapet&algorithm=SHA1&digits=6&period=30"
        );
    }
}
