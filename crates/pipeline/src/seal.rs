//! Client addresses sealed to an investigation public key: HPKE (RFC 9180)
//! in base mode with DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and
//! ChaCha20-Poly1305, through the `hpke` crate. ring, the workspace's one
//! crypto provider, offers X25519 only with ephemeral keys and cannot
//! decrypt to a static key, so this uses RustCrypto's X25519 (the `hpke`
//! crate's own); nothing else in Parapet uses it.
//!
//! The pipeline holds only the public key ([`SealKey`]): a node, the
//! dashboard or a stolen database cannot open a blob. `parapet investigate
//! reveal` opens them with the private key ([`OpenKey`]), kept offline.
//!
//! A blob is `version (1) | encapsulated key (32) | ciphertext (17) | tag
//! (16)`: 66 bytes. The plaintext is a family byte (4 or 6) and 16 address
//! bytes (an IPv4 address padded with zeros), so every blob has one length
//! whatever the family. The associated data is the tenant and the
//! pseudonym the blob is stored beside: a blob copied to another row does
//! not open.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, Serializable};
use parapet_core::pseudonym::{CACHE_LIFETIME, ClientPseudonym};
use sha2::{Digest, Sha256};

type KemT = X25519HkdfSha256;

const INFO: &[u8] = b"parapet sealed client address v1";
const VERSION: u8 = 1;
/// Bytes of a sealed address.
pub const SEALED_LEN: usize = 1 + 32 + 17 + 16;
const PUBLIC_TAG: &str = "parapet-investigation-public-key-v1";
const PRIVATE_TAG: &str = "parapet-investigation-private-key-v1";

/// Why a key could not be read or a blob opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Key(String),
    #[error(
        "this investigation key does not open the sealed address (a different key pair sealed it, or the row was altered)"
    )]
    WrongKey,
    #[error("a sealed address is {0} bytes, not {SEALED_LEN}: not a blob this Parapet wrote")]
    BadBlob(usize),
}

/// The public half: what a node seals with.
#[derive(Clone)]
pub struct SealKey {
    pk: <KemT as Kem>::PublicKey,
}

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealKey({})", self.fingerprint())
    }
}

/// The private half: what an investigator opens with.
pub struct OpenKey {
    sk: <KemT as Kem>::PrivateKey,
}

impl fmt::Debug for OpenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenKey({}, private)", self.public().fingerprint())
    }
}

/// A new key pair: the public key's text, and the private key's.
pub fn keygen() -> (String, String) {
    let (sk, pk) = KemT::gen_keypair();
    (
        format!("{PUBLIC_TAG} {}\n", hex::encode(pk.to_bytes())),
        format!("{PRIVATE_TAG} {}\n", hex::encode(sk.to_bytes())),
    )
}

/// The 32 key bytes after `tag` in `text` (one line, hex).
fn key_bytes(text: &str, tag: &str, what: &str) -> Result<Vec<u8>, SealError> {
    let bad = |why: &str| SealError::Key(format!("not an investigation {what} key: {why}"));
    let rest = text
        .trim()
        .strip_prefix(tag)
        .ok_or_else(|| bad(&format!("it does not start with `{tag}`")))?;
    let bytes = hex::decode(rest.trim()).map_err(|_| bad("the key is not hex"))?;
    if bytes.len() != 32 {
        return Err(bad(&format!("{} key bytes, not 32", bytes.len())));
    }
    Ok(bytes)
}

impl SealKey {
    /// Whether `value` (a `[privacy] investigation_public_key`) is the
    /// key's text rather than a path to it.
    pub fn is_key_text(value: &str) -> bool {
        value.trim_start().starts_with(PUBLIC_TAG)
    }

    /// Reads the text `parapet investigate keygen` writes to
    /// `investigation.pub`.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        if text.trim_start().starts_with(PRIVATE_TAG) {
            return Err(SealError::Key(
                "this is the PRIVATE investigation key: configure the public one (investigation.pub); the private key stays offline".into(),
            ));
        }
        let b = key_bytes(text, PUBLIC_TAG, "public")?;
        let pk = <KemT as Kem>::PublicKey::from_bytes(&b)
            .map_err(|e| SealError::Key(format!("not an X25519 public key: {e}")))?;
        Ok(Self { pk })
    }

    /// A key's text, or the file at `value` (relative to `base`).
    pub fn load(value: &str, base: &Path) -> Result<Self, SealError> {
        if Self::is_key_text(value) {
            return Self::parse(value);
        }
        let path = base.join(value);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| SealError::Key(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| SealError::Key(format!("{}: {e}", path.display())))
    }

    /// `sha256:` and the first 16 hex digits of the SHA-256 of the key
    /// bytes: what `parapet privacy` and `/privacy` show.
    pub fn fingerprint(&self) -> String {
        let d = Sha256::digest(self.pk.to_bytes());
        format!("sha256:{}", hex::encode(&d[..8]))
    }

    /// Seals `ip`, bound to the tenant and pseudonym it is stored with.
    pub fn seal(&self, tenant: &str, client: ClientPseudonym, ip: IpAddr) -> Vec<u8> {
        let plain = plaintext(ip);
        let aad = aad(tenant, client);
        let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, KemT>(
            &OpModeS::Base,
            &self.pk,
            INFO,
            &plain,
            &aad,
        )
        .expect("sealing 17 bytes to a valid X25519 key cannot fail");
        let mut out = Vec::with_capacity(SEALED_LEN);
        out.push(VERSION);
        out.extend_from_slice(&enc.to_bytes());
        out.extend_from_slice(&ct);
        out
    }
}

impl OpenKey {
    /// Reads the text `parapet investigate keygen` writes to
    /// `investigation.key`.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let b = key_bytes(text, PRIVATE_TAG, "private")?;
        let sk = <KemT as Kem>::PrivateKey::from_bytes(&b)
            .map_err(|e| SealError::Key(format!("not an X25519 private key: {e}")))?;
        Ok(Self { sk })
    }

    /// Its public half.
    pub fn public(&self) -> SealKey {
        SealKey {
            pk: KemT::sk_to_pk(&self.sk),
        }
    }

    /// The address sealed in `blob`, stored with `tenant` and `client`.
    pub fn open(
        &self,
        blob: &[u8],
        tenant: &str,
        client: ClientPseudonym,
    ) -> Result<IpAddr, SealError> {
        if blob.len() != SEALED_LEN || blob[0] != VERSION {
            return Err(SealError::BadBlob(blob.len()));
        }
        let enc = <KemT as Kem>::EncappedKey::from_bytes(&blob[1..33])
            .map_err(|_| SealError::BadBlob(blob.len()))?;
        let plain = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, KemT>(
            &OpModeR::Base,
            &self.sk,
            &enc,
            INFO,
            &blob[33..],
            &aad(tenant, client),
        )
        .map_err(|_| SealError::WrongKey)?;
        address(&plain).ok_or(SealError::WrongKey)
    }
}

fn plaintext(ip: IpAddr) -> [u8; 17] {
    let mut p = [0u8; 17];
    match ip {
        IpAddr::V6(a) if a.to_ipv4_mapped().is_none() => {
            p[0] = 6;
            p[1..].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            p[0] = 4;
            p[1..5].copy_from_slice(&a.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
        }
        IpAddr::V4(a) => {
            p[0] = 4;
            p[1..5].copy_from_slice(&a.octets());
        }
    }
    p
}

fn address(p: &[u8]) -> Option<IpAddr> {
    match (p.len(), p.first()?) {
        (17, 4) => Some(IpAddr::V4(Ipv4Addr::new(p[1], p[2], p[3], p[4]))),
        (17, 6) => Some(IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(&p[1..]).ok()?,
        ))),
        _ => None,
    }
}

fn aad(tenant: &str, client: ClientPseudonym) -> Vec<u8> {
    let mut a = Vec::with_capacity(tenant.len() + 9);
    a.extend_from_slice(tenant.as_bytes());
    a.push(0);
    a.extend_from_slice(&client.0);
    a
}

/// Clients whose blobs a [`Sealer`] keeps before it starts again.
const CACHE_CLIENTS: usize = 65_536;

/// A [`SealKey`] that reuses a client's blob while the client keeps
/// asking: one HPKE seal (two X25519 operations) per client per
/// [`CACHE_LIFETIME`] instead of per batch. Reusing a blob reveals
/// nothing the pseudonym does not already say (that two rows are one
/// client). Held by the collector only; its `Debug` shows no address.
pub struct Sealer {
    key: SealKey,
    known: std::collections::HashMap<(IpAddr, Arc<str>), Arc<[u8]>>,
    since: Instant,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer({:?}, {} clients)", self.key, self.known.len())
    }
}

impl Sealer {
    pub fn new(key: SealKey) -> Self {
        Self {
            key,
            known: std::collections::HashMap::new(),
            since: Instant::now(),
        }
    }

    /// Forgets every address once the cache is [`CACHE_LIFETIME`] old.
    pub fn expire(&mut self, now: Instant) {
        if now.saturating_duration_since(self.since) >= CACHE_LIFETIME {
            self.known = std::collections::HashMap::new();
            self.since = now;
        }
    }

    /// [`SealKey::seal`], or the blob sealed for this client before.
    pub fn seal(&mut self, tenant: &Arc<str>, client: ClientPseudonym, ip: IpAddr) -> Arc<[u8]> {
        if let Some(b) = self.known.get(&(ip, tenant.clone())) {
            return b.clone();
        }
        if self.known.len() >= CACHE_CLIENTS {
            self.known.clear();
        }
        let b: Arc<[u8]> = Arc::from(self.key.seal(tenant, client, ip));
        self.known.insert((ip, tenant.clone()), b.clone());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_addresses_open_with_the_private_key_only() {
        let (public, private) = keygen();
        let seal = SealKey::parse(&public).unwrap();
        let open = OpenKey::parse(&private).unwrap();
        assert_eq!(open.public().fingerprint(), seal.fingerprint());
        let c = ClientPseudonym([7; 8]);
        for ip in ["127.0.0.7", "2001:db8::7", "::ffff:192.0.2.1"] {
            let ip: IpAddr = ip.parse().unwrap();
            let blob = seal.seal("council-a", c, ip);
            assert_eq!(blob.len(), SEALED_LEN);
            let want = match ip {
                IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                v4 => v4,
            };
            assert_eq!(open.open(&blob, "council-a", c).unwrap(), want);
            // randomised: the same address seals differently each time
            assert_ne!(seal.seal("council-a", c, ip), blob);
            // bound to its row
            assert!(matches!(
                open.open(&blob, "council-b", c),
                Err(SealError::WrongKey)
            ));
            assert!(
                open.open(&blob, "council-a", ClientPseudonym([8; 8]))
                    .is_err()
            );
            // and to its key pair
            let (_, other) = keygen();
            let other = OpenKey::parse(&other).unwrap();
            assert!(matches!(
                other.open(&blob, "council-a", c),
                Err(SealError::WrongKey)
            ));
            // the blob holds neither the text nor the bytes of the address
            assert!(!blob.windows(4).any(|w| w == [127, 0, 0, 7]));
        }
        assert!(matches!(
            open.open(&[1; 10], "council-a", c),
            Err(SealError::BadBlob(10))
        ));
    }

    #[test]
    fn keys_are_checked_and_the_private_one_is_refused_as_public() {
        let (public, private) = keygen();
        assert!(SealKey::is_key_text(&public));
        assert!(!SealKey::is_key_text("keys/investigation.pub"));
        let e = SealKey::parse(&private).unwrap_err().to_string();
        assert!(e.contains("PRIVATE"), "{e}");
        let e = SealKey::parse("parapet-investigation-public-key-v1 abcd").unwrap_err();
        assert!(e.to_string().contains("2 key bytes"), "{e}");
        assert!(OpenKey::parse(&public).is_err());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("k.pub"), &public).unwrap();
        let k = SealKey::load("k.pub", dir.path()).unwrap();
        assert_eq!(
            k.fingerprint(),
            SealKey::parse(&public).unwrap().fingerprint()
        );
        let e = SealKey::load("missing.pub", dir.path()).unwrap_err();
        assert!(e.to_string().contains("missing.pub"), "{e}");
    }

    #[test]
    fn the_sealer_reuses_a_clients_blob_until_it_expires() {
        let (public, _) = keygen();
        let mut s = Sealer::new(SealKey::parse(&public).unwrap());
        let t: Arc<str> = Arc::from("council-a");
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let c = ClientPseudonym([1; 8]);
        let a = s.seal(&t, c, ip);
        assert_eq!(s.seal(&t, c, ip), a);
        assert!(!format!("{s:?}").contains("10.0.0.1"));
        let start = s.since;
        s.expire(start + CACHE_LIFETIME);
        assert_ne!(s.seal(&t, c, ip), a);
    }
}
