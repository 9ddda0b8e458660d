//! TSIG (RFC 8945) for zone transfers: the query is signed, and every
//! message of the answer must carry a MAC that verifies. The first
//! message's MAC covers the query's MAC, the message and the full TSIG
//! variables; each later one covers the previous message's MAC, the message
//! and only the timers (§5.3.1), so that no message can be dropped,
//! replayed or reordered unnoticed.

use hickory_proto::dnssec::DnsSecError;
use hickory_proto::rr::rdata::TSIG;
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, make_tsig_record};
use hickory_proto::rr::{Name, TSigResponseContext, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

/// How far the primary's clock may be from ours (RFC 8945 recommends 300 s).
pub const FUDGE: u16 = 300;

/// The MAC algorithms Parapet accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    HmacSha512,
}

impl std::str::FromStr for Algorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "hmac-sha256" => Ok(Self::HmacSha256),
            "hmac-sha512" => Ok(Self::HmacSha512),
            _ => Err(format!(
                "unknown TSIG algorithm `{s}` (expected hmac-sha256 or hmac-sha512)"
            )),
        }
    }
}

/// A TSIG key shared with a primary.
#[derive(Clone)]
pub struct TsigKey {
    name: String,
    signer: TSigner,
}

impl std::fmt::Debug for TsigKey {
    // never print the secret
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TsigKey({})", self.name)
    }
}

impl TsigKey {
    pub fn new(name: &str, algorithm: Algorithm, secret: Vec<u8>) -> Result<Self, String> {
        if secret.is_empty() {
            return Err(format!("TSIG key `{name}`: the secret is empty"));
        }
        let key_name = Name::from_ascii(name)
            .map_err(|e| format!("TSIG key `{name}`: not a valid key name: {e}"))?;
        let alg = match algorithm {
            Algorithm::HmacSha256 => TsigAlgorithm::HmacSha256,
            Algorithm::HmacSha512 => TsigAlgorithm::HmacSha512,
        };
        let signer = TSigner::new(secret, alg, key_name, FUDGE)
            .map_err(|e| format!("TSIG key `{name}`: {e}"))?;
        Ok(Self {
            name: name.to_string(),
            signer,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Appends a TSIG record to `query` (and counts it in ARCOUNT); returns
    /// the verifier of the answer's messages.
    pub fn sign(&self, query: &mut Vec<u8>, now: u64) -> Result<Chain, String> {
        let id = u16::from_be_bytes([query[0], query[1]]);
        let pre = TSIG::new(
            self.signer.algorithm().clone(),
            now,
            FUDGE,
            Vec::new(),
            id,
            None,
            Vec::new(),
        );
        let mut tbs = query.clone();
        let mut vars = Vec::new();
        pre.emit_tsig_for_mac(&mut BinEncoder::new(&mut vars), self.signer.signer_name())
            .map_err(|e| e.to_string())?;
        tbs.extend_from_slice(&vars);
        let mac = self.signer.sign(&tbs).map_err(|e| e.to_string())?;
        let record = make_tsig_record(self.signer.signer_name().clone(), pre.set_mac(mac.clone()));
        query.extend_from_slice(&record.to_bytes().map_err(|e| e.to_string())?);
        let ar = u16::from_be_bytes([query[10], query[11]]) + 1;
        query[10..12].copy_from_slice(&ar.to_be_bytes());
        Ok(Chain {
            signer: self.signer.clone(),
            prev_mac: mac,
            first: true,
            last_time: 0,
        })
    }
}

impl TsigKey {
    /// Signs the answer to a NOTIFY signed with this key (RFC 8945 §5.3:
    /// over the request's MAC, the answer and the TSIG variables), so the
    /// primary accepts it instead of sending the NOTIFY again. Errors when
    /// the NOTIFY's own TSIG does not verify.
    pub fn sign_answer(
        &self,
        request: &[u8],
        answer: &mut Vec<u8>,
        now: u64,
    ) -> Result<(), String> {
        let (request_mac, _, window) = self
            .signer
            .verify_message_byte(request, None, true)
            .map_err(|e| format!("the NOTIFY's TSIG does not verify: {e}"))?;
        if !window.contains(&now) {
            return Err(format!(
                "the NOTIFY's TSIG time is more than {FUDGE} s from our clock"
            ));
        }
        let id = u16::from_be_bytes([answer[0], answer[1]]);
        let ctx = TSigResponseContext::new(id, now, self.signer.clone(), request_mac, None);
        let record = ctx.sign(answer).map_err(|e| e.to_string())?;
        answer.extend_from_slice(&record.to_bytes().map_err(|e| e.to_string())?);
        let ar = u16::from_be_bytes([answer[10], answer[11]]) + 1;
        answer[10..12].copy_from_slice(&ar.to_be_bytes());
        Ok(())
    }
}

/// Verifies the messages of one answer in order.
pub struct Chain {
    signer: TSigner,
    prev_mac: Vec<u8>,
    first: bool,
    last_time: u64,
}

impl Chain {
    /// Checks the TSIG of the next message; `now` is Unix seconds.
    pub fn verify(&mut self, msg: &[u8], now: u64) -> Result<(), String> {
        if msg.len() < 12 || u16::from_be_bytes([msg[10], msg[11]]) == 0 {
            return Err("a message carries no TSIG record".into());
        }
        let (mac, time, window) = self
            .signer
            .verify_message_byte(msg, Some(&self.prev_mac), self.first)
            .map_err(|e| match e {
                DnsSecError::TsigWrongKey => {
                    "the answer is signed with another TSIG key or algorithm".to_string()
                }
                e => format!("the TSIG MAC does not verify ({e}): is the secret the primary's?"),
            })?;
        if !window.contains(&now) {
            return Err(format!(
                "the TSIG time {time} is more than {FUDGE} s from our clock ({now})"
            ));
        }
        if time < self.last_time {
            return Err("a TSIG time goes backwards within the transfer".into());
        }
        self.prev_mac = mac;
        self.last_time = time;
        self.first = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signs `response` as a primary would, continuing from `prev_mac`.
    fn sign_response(key: &TsigKey, response: &[u8], prev_mac: &[u8], now: u64) -> Vec<u8> {
        let id = u16::from_be_bytes([response[0], response[1]]);
        let ctx = TSigResponseContext::new(id, now, key.signer.clone(), prev_mac.to_vec(), None);
        let rec = ctx.sign(response).unwrap();
        let mut out = response.to_vec();
        out.extend_from_slice(&rec.to_bytes().unwrap());
        let ar = u16::from_be_bytes([out[10], out[11]]) + 1;
        out[10..12].copy_from_slice(&ar.to_be_bytes());
        out
    }

    fn mac_of(msg: &[u8]) -> Vec<u8> {
        // the MAC is the record's last field before the original ID
        let m = hickory_proto::op::Message::from_vec(msg).unwrap();
        m.signature().unwrap().data.mac.clone()
    }

    #[test]
    fn a_signed_notify_gets_a_signed_answer() {
        let now = 1_700_000_000;
        let key = TsigKey::new("k", Algorithm::HmacSha256, b"secret".to_vec()).unwrap();
        // a NOTIFY signed as a primary would sign it
        let mut notify = super::super::msg::transfer_query(3, b"\x03rpz", None);
        notify[2] = super::super::msg::OPCODE_NOTIFY << 3;
        let mut chain = key.sign(&mut notify, now).unwrap();
        let mut answer = notify[..notify.len()].to_vec();
        answer.truncate(12 + 5 + 4);
        answer[2] |= 0x80;
        answer[10..12].copy_from_slice(&[0, 0]);
        key.sign_answer(&notify, &mut answer, now).unwrap();
        // the primary checks the answer over its NOTIFY's MAC
        chain.verify(&answer, now).unwrap();
        let other = TsigKey::new("k", Algorithm::HmacSha256, b"other".to_vec()).unwrap();
        assert!(
            other
                .sign_answer(&notify, &mut answer.clone(), now)
                .is_err()
        );
    }

    #[test]
    fn signed_query_verifies_on_the_primary_side() {
        let key = TsigKey::new("k", Algorithm::HmacSha256, b"secret".to_vec()).unwrap();
        let mut q = super::super::msg::transfer_query(9, b"\x03rpz", None);
        key.sign(&mut q, 1_000_000).unwrap();
        let (_, _, window) = key.signer.verify_message_byte(&q, None, true).unwrap();
        assert!(window.contains(&1_000_000));
    }

    #[test]
    fn a_chain_of_answers_verifies_and_a_wrong_key_does_not() {
        let now = 1_700_000_000;
        let key = TsigKey::new("k", Algorithm::HmacSha512, b"secret".to_vec()).unwrap();
        let mut q = super::super::msg::transfer_query(9, b"\x03rpz", None);
        let mut chain = key.sign(&mut q, now).unwrap();
        let query_mac = mac_of(&q);
        let mut r1 = super::super::msg::transfer_query(9, b"\x03rpz", None);
        r1[2] |= 0x80;
        let s1 = sign_response(&key, &r1, &query_mac, now);
        chain.verify(&s1, now + 1).unwrap();

        // a later message is signed over the previous MAC and the timers only
        let mut r2 = r1.clone();
        r2[4..6].copy_from_slice(&[0, 0]);
        r2.truncate(12);
        let prev = mac_of(&s1);
        let mut tbs = Vec::new();
        tbs.extend_from_slice(&(prev.len() as u16).to_be_bytes());
        tbs.extend_from_slice(&prev);
        tbs.extend_from_slice(&r2);
        tbs.extend_from_slice(&[0, 0]);
        tbs.extend_from_slice(&(now as u32).to_be_bytes());
        tbs.extend_from_slice(&FUDGE.to_be_bytes());
        let mac = key.signer.sign(&tbs).unwrap();
        let rec = make_tsig_record(
            key.signer.signer_name().clone(),
            TSIG::new(
                TsigAlgorithm::HmacSha512,
                now,
                FUDGE,
                mac,
                9,
                None,
                Vec::new(),
            ),
        );
        let mut s2 = r2.clone();
        s2.extend_from_slice(&rec.to_bytes().unwrap());
        s2[11] = 1;
        chain.verify(&s2, now + 1).unwrap();
        // the same message again does not verify: the chain moved on
        assert!(chain.verify(&s2, now + 1).is_err());

        // another secret under the same name
        let wrong = TsigKey::new("k", Algorithm::HmacSha512, b"other".to_vec()).unwrap();
        let mut q = super::super::msg::transfer_query(9, b"\x03rpz", None);
        let mut chain = wrong.sign(&mut q, now).unwrap();
        let err = chain.verify(&s1, now).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");

        // a message without TSIG, and one outside the time window
        let mut q = super::super::msg::transfer_query(9, b"\x03rpz", None);
        let mut chain = key.sign(&mut q, now).unwrap();
        assert!(chain.verify(&r1, now).unwrap_err().contains("no TSIG"));
        let err = chain.verify(&s1, now + 3600).unwrap_err();
        assert!(err.contains("from our clock"), "{err}");
    }
}
