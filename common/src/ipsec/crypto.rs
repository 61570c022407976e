//! The ESP transforms we offer, keyed, behind one seal/open interface.
//! The cryptography is RustCrypto's (aes-gcm, chacha20poly1305, hmac, sha2);
//! this file only lays out nonces, associated data and ICVs as the RFCs say.
//!
//! - AES-GCM with a 16-octet ICV (RFC 4106) and ChaCha20-Poly1305
//!   (RFC 7634): nonce = 4-byte salt ‖ 8-byte explicit IV; AAD = SPI ‖
//!   sequence number, or SPI ‖ high 32 bits ‖ low 32 bits with ESN (RFC 4106
//!   §5, RFC 7634 §2.1).
//! - NULL encryption (RFC 2410) with HMAC-SHA-256-128 (RFC 4868): the ICV is
//!   the HMAC over header and payload, with the high 32 bits of an extended
//!   sequence number appended for the computation only (RFC 4303 §2.2.1).

use core::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Every transform has a 16-octet ICV.
pub const ICV_LEN: usize = 16;

/// An ESP transform, named by its strongSwan proposal keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `aes128gcm16`: key 16 bytes + 4-byte salt.
    Aes128Gcm16,
    /// `aes256gcm16`: key 32 bytes + 4-byte salt.
    Aes256Gcm16,
    /// `chacha20poly1305`: key 32 bytes + 4-byte salt.
    ChaCha20Poly1305,
    /// `null-sha256`: no confidentiality, HMAC-SHA-256-128 with a 32-byte key.
    NullSha256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 4] = [
        Algorithm::Aes128Gcm16,
        Algorithm::Aes256Gcm16,
        Algorithm::ChaCha20Poly1305,
        Algorithm::NullSha256,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            Algorithm::Aes128Gcm16 => "aes128gcm16",
            Algorithm::Aes256Gcm16 => "aes256gcm16",
            Algorithm::ChaCha20Poly1305 => "chacha20poly1305",
            Algorithm::NullSha256 => "null-sha256",
        }
    }

    pub fn from_keyword(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.keyword() == s)
    }

    /// Key material length: the AEAD key with its salt, or the HMAC key.
    pub fn key_len(self) -> usize {
        match self {
            Algorithm::Aes128Gcm16 => 20,
            Algorithm::Aes256Gcm16 | Algorithm::ChaCha20Poly1305 => 36,
            Algorithm::NullSha256 => 32,
        }
    }

    /// Length of the explicit IV carried in each packet.
    pub fn iv_len(self) -> usize {
        match self {
            Algorithm::NullSha256 => 0,
            _ => 8,
        }
    }

    /// Whether the payload is encrypted (all transforms give integrity).
    pub fn is_confidential(self) -> bool {
        self != Algorithm::NullSha256
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Key material of the wrong length for its algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{algorithm} needs a {expected}-byte key, got {got}")]
pub struct KeyLengthError {
    pub algorithm: Algorithm,
    pub expected: usize,
    pub got: usize,
}

/// The ICV did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcvMismatch;

#[derive(Clone)]
enum Keyed {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
    NullSha256(Box<Hmac<Sha256>>),
}

/// A keyed transform.
#[derive(Clone)]
pub struct EspCipher {
    algorithm: Algorithm,
    keyed: Keyed,
    salt: [u8; 4],
}

impl fmt::Debug for EspCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "EspCipher({})", self.algorithm)
    }
}

impl EspCipher {
    pub fn new(algorithm: Algorithm, key: &[u8]) -> Result<Self, KeyLengthError> {
        let err = KeyLengthError {
            algorithm,
            expected: algorithm.key_len(),
            got: key.len(),
        };
        if key.len() != algorithm.key_len() {
            return Err(err);
        }
        let (k, salt) = key.split_at(key.len() - if algorithm.is_confidential() { 4 } else { 0 });
        let keyed = match algorithm {
            Algorithm::Aes128Gcm16 => {
                Aes128Gcm::new_from_slice(k).map(|c| Keyed::Aes128(Box::new(c)))
            }
            Algorithm::Aes256Gcm16 => {
                Aes256Gcm::new_from_slice(k).map(|c| Keyed::Aes256(Box::new(c)))
            }
            Algorithm::ChaCha20Poly1305 => {
                ChaCha20Poly1305::new_from_slice(k).map(|c| Keyed::ChaCha(Box::new(c)))
            }
            Algorithm::NullSha256 => {
                <Hmac<Sha256> as Mac>::new_from_slice(k).map(|m| Keyed::NullSha256(Box::new(m)))
            }
        }
        .map_err(|_| err)?;
        let mut s = [0u8; 4];
        s[..salt.len()].copy_from_slice(salt);
        Ok(EspCipher {
            algorithm,
            keyed,
            salt: s,
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn nonce(&self, iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&self.salt);
        n[4..].copy_from_slice(&iv[..8]);
        n
    }

    /// Encrypts `payload` in place (payload ‖ padding ‖ trailer) and returns
    /// the ICV. `header` is the SPI and low sequence number as on the wire,
    /// `seq_hi` the high half of an extended sequence number.
    pub fn seal(
        &self,
        header: &[u8; 8],
        seq_hi: Option<u32>,
        iv: &[u8],
        payload: &mut [u8],
    ) -> [u8; ICV_LEN] {
        let mut icv = [0u8; ICV_LEN];
        let aad = Aad::new(header, seq_hi);
        let tag = match &self.keyed {
            Keyed::Aes128(c) => c.encrypt_in_place_detached(
                Nonce::from_slice(&self.nonce(iv)),
                aad.bytes(),
                payload,
            ),
            Keyed::Aes256(c) => c.encrypt_in_place_detached(
                Nonce::from_slice(&self.nonce(iv)),
                aad.bytes(),
                payload,
            ),
            Keyed::ChaCha(c) => c.encrypt_in_place_detached(
                Nonce::from_slice(&self.nonce(iv)),
                aad.bytes(),
                payload,
            ),
            Keyed::NullSha256(m) => {
                let out = hmac_input(m, header, payload, seq_hi)
                    .finalize()
                    .into_bytes();
                icv.copy_from_slice(&out[..ICV_LEN]);
                return icv;
            }
        };
        // Encryption only fails for payloads beyond 2^36 bytes.
        if let Ok(tag) = tag {
            icv.copy_from_slice(&tag);
        }
        icv
    }

    /// Verifies `icv` and decrypts `payload` in place; on a mismatch the
    /// payload is left unusable and must be dropped.
    pub fn open(
        &self,
        header: &[u8; 8],
        seq_hi: Option<u32>,
        iv: &[u8],
        payload: &mut [u8],
        icv: &[u8],
    ) -> Result<(), IcvMismatch> {
        if icv.len() != ICV_LEN {
            return Err(IcvMismatch);
        }
        let aad = Aad::new(header, seq_hi);
        let tag = aes_gcm::Tag::from_slice(icv);
        let r = match &self.keyed {
            Keyed::Aes128(c) => c.decrypt_in_place_detached(
                Nonce::from_slice(&self.nonce(iv)),
                aad.bytes(),
                payload,
                tag,
            ),
            Keyed::Aes256(c) => c.decrypt_in_place_detached(
                Nonce::from_slice(&self.nonce(iv)),
                aad.bytes(),
                payload,
                tag,
            ),
            Keyed::ChaCha(c) => c.decrypt_in_place_detached(
                Nonce::from_slice(&self.nonce(iv)),
                aad.bytes(),
                payload,
                tag,
            ),
            Keyed::NullSha256(m) => {
                return hmac_input(m, header, payload, seq_hi)
                    .verify_truncated_left(icv)
                    .map_err(|_| IcvMismatch)
            }
        };
        r.map_err(|_| IcvMismatch)
    }
}

fn hmac_input(
    m: &Hmac<Sha256>,
    header: &[u8; 8],
    payload: &[u8],
    seq_hi: Option<u32>,
) -> Hmac<Sha256> {
    let mut m = m.clone();
    m.update(header);
    m.update(payload);
    if let Some(hi) = seq_hi {
        m.update(&hi.to_be_bytes());
    }
    m
}

/// SPI ‖ [seq high ‖] seq low.
struct Aad {
    bytes: [u8; 12],
    len: usize,
}

impl Aad {
    fn new(header: &[u8; 8], seq_hi: Option<u32>) -> Self {
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&header[..4]);
        match seq_hi {
            Some(hi) => {
                bytes[4..8].copy_from_slice(&hi.to_be_bytes());
                bytes[8..].copy_from_slice(&header[4..]);
                Aad { bytes, len: 12 }
            }
            None => {
                bytes[4..8].copy_from_slice(&header[4..]);
                Aad { bytes, len: 8 }
            }
        }
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // RFC 4106 has no test vectors; the AES-GCM ones of the GCM spec
    // (McGrew & Viega, test case 3 with a 96-bit IV) exercise the same
    // primitive: check our nonce layout reproduces them with salt = IV[0..4].
    #[test]
    fn aes128gcm_nonce_layout_matches_gcm_test_case_4() {
        let key = hex::decode("feffe9928665731c6d6a8f9467308308cafebabe").unwrap();
        let c = EspCipher::new(Algorithm::Aes128Gcm16, &key).unwrap();
        let iv = hex::decode("facedbaddecaf888").unwrap();
        let mut pt = hex::decode(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        )
        .unwrap();
        // Test case 4's AAD is 20 bytes; ESP's is 8 or 12, so compare
        // the ciphertext (AAD-independent) and round-trip the tag.
        let header = [0xfe, 0xed, 0xfa, 0xce, 0xde, 0xad, 0xbe, 0xef];
        let icv = c.seal(&header, None, &iv, &mut pt);
        assert_eq!(
            hex::encode(&pt),
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
        );
        c.open(&header, None, &iv, &mut pt, &icv).unwrap();
        assert!(pt.starts_with(&[0xd9, 0x31, 0x32, 0x25]));
    }

    #[test]
    fn every_algorithm_round_trips_and_detects_tampering() {
        for alg in Algorithm::ALL {
            let key: Vec<u8> = (0..alg.key_len() as u8).collect();
            let c = EspCipher::new(alg, &key).unwrap();
            let header = [0, 0, 2, 1, 0, 0, 0, 9];
            let iv = [0, 0, 0, 0, 0, 0, 0, 9];
            for seq_hi in [None, Some(1)] {
                let mut buf = b"hello, esp\x01\x02\x02\x87".to_vec();
                let icv = c.seal(&header, seq_hi, &iv[..alg.iv_len()], &mut buf);
                assert_eq!(buf != b"hello, esp\x01\x02\x02\x87", alg.is_confidential());
                let mut copy = buf.clone();
                c.open(&header, seq_hi, &iv[..alg.iv_len()], &mut copy, &icv)
                    .unwrap();
                assert_eq!(copy, b"hello, esp\x01\x02\x02\x87");
                // The high sequence bits are authenticated though never sent.
                let other_hi = Some(seq_hi.map_or(7, |h| h + 1));
                let mut copy = buf.clone();
                assert_eq!(
                    c.open(&header, other_hi, &iv[..alg.iv_len()], &mut copy, &icv),
                    Err(IcvMismatch)
                );
                let mut flipped = buf.clone();
                flipped[3] ^= 1;
                assert_eq!(
                    c.open(&header, seq_hi, &iv[..alg.iv_len()], &mut flipped, &icv),
                    Err(IcvMismatch)
                );
            }
        }
    }

    #[test]
    fn wrong_key_length_is_refused() {
        let e = EspCipher::new(Algorithm::Aes256Gcm16, &[0; 32]).unwrap_err();
        assert_eq!((e.expected, e.got), (36, 32));
        assert_eq!(e.to_string(), "aes256gcm16 needs a 36-byte key, got 32");
        assert_eq!(
            Algorithm::from_keyword("null-sha256"),
            Some(Algorithm::NullSha256)
        );
        assert_eq!(Algorithm::from_keyword("aes"), None);
    }
}
