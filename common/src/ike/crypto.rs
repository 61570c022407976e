//! The IKEv2 cryptography we negotiate, laid out as the RFCs say; the
//! primitives are RustCrypto's and dalek's.
//!
//! One suite, the one strongSwan and our ESP speak: an AEAD for the SK
//! payload (AES-GCM-16, RFC 5282, or ChaCha20-Poly1305, RFC 7634),
//! PRF_HMAC_SHA2_256 and X25519 (group 31, RFC 8031). Authentication is a
//! pre-shared key or Ed25519 through RFC 7427 digital signatures (RFC 8420).

use core::fmt;
use core::net::IpAddr;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag};
use chacha20poly1305::ChaCha20Poly1305;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// IKE SK and ESP AEAD transforms we negotiate (RFC 7296 transform type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encr {
    Aes128Gcm16,
    Aes256Gcm16,
    ChaCha20Poly1305,
}

impl Encr {
    pub const ALL: [Encr; 3] = [Encr::Aes128Gcm16, Encr::Aes256Gcm16, Encr::ChaCha20Poly1305];

    /// Transform ID: ENCR_AES_GCM_16 = 20 (with a Key Length attribute),
    /// ENCR_CHACHA20_POLY1305 = 28.
    pub fn transform_id(self) -> u16 {
        match self {
            Encr::Aes128Gcm16 | Encr::Aes256Gcm16 => 20,
            Encr::ChaCha20Poly1305 => 28,
        }
    }

    /// The Key Length attribute in bits; RFC 7634 §3 forbids one for ChaCha20.
    pub fn key_length_attr(self) -> Option<u16> {
        match self {
            Encr::Aes128Gcm16 => Some(128),
            Encr::Aes256Gcm16 => Some(256),
            Encr::ChaCha20Poly1305 => None,
        }
    }

    pub fn from_transform(id: u16, key_length: Option<u16>) -> Option<Encr> {
        Self::ALL
            .into_iter()
            .find(|e| e.transform_id() == id && e.key_length_attr() == key_length)
    }

    /// Octets of keying material per direction: key + 4-byte salt
    /// (RFC 5282 §7.1, RFC 7634 §2).
    pub fn keymat_len(self) -> usize {
        match self {
            Encr::Aes128Gcm16 => 20,
            Encr::Aes256Gcm16 | Encr::ChaCha20Poly1305 => 36,
        }
    }

    /// strongSwan/swanctl proposal keyword.
    pub fn keyword(self) -> &'static str {
        match self {
            Encr::Aes128Gcm16 => "aes128gcm16",
            Encr::Aes256Gcm16 => "aes256gcm16",
            Encr::ChaCha20Poly1305 => "chacha20poly1305",
        }
    }

    pub fn from_keyword(s: &str) -> Option<Encr> {
        Self::ALL.into_iter().find(|e| e.keyword() == s)
    }
}

/// PRF_HMAC_SHA2_256 (transform type 2).
pub const PRF_HMAC_SHA2_256: u16 = 5;
/// Curve25519 (transform type 4, RFC 8031).
pub const DH_CURVE25519: u16 = 31;

/// Octets of PRF output, and so of SK_d, SK_pi and SK_pr (RFC 7296 §2.14).
const PRF_LEN: usize = 32;
const IV_LEN: usize = 8;
const ICV_LEN: usize = 16;
const SALT_LEN: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IkeCryptoError {
    #[error("key material of the wrong length for the transform")]
    BadKeyLength,
    #[error("SK payload too short for IV, pad length and ICV")]
    TooShort,
    #[error("SK payload ICV mismatch")]
    IcvMismatch,
    #[error("pad length exceeds the decrypted SK payload")]
    BadPadding,
    #[error("invalid X25519 public value")]
    BadPublicKey,
    #[error("AUTH data names a signature algorithm other than Ed25519")]
    SignatureAlgorithm,
    #[error("signature does not verify")]
    BadSignature,
    #[error("not an Ed25519 key in PEM (PKCS#8 or SPKI)")]
    BadKeyFile,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this never fails.
    let Ok(m) = <HmacSha256 as Mac>::new_from_slice(key) else {
        unreachable!("HMAC accepts any key length")
    };
    m
}

/// HMAC-SHA-256 (the only PRF we negotiate) over the concatenated `data`.
pub fn prf(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    let mut m = hmac(key);
    for d in data {
        m.update(d);
    }
    m.finalize().into_bytes().into()
}

/// RFC 7296 §2.13 prf+: T1 | T2 | ... with Tn = prf(K, Tn-1 | S | n).
/// Defined for at most 255 blocks; every caller asks for a few hundred octets.
pub fn prf_plus(key: &[u8], seed: &[&[u8]], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + PRF_LEN);
    for n in 1..=255u8 {
        if out.len() >= len {
            break;
        }
        // Tn-1 is the last block out holds (none before T1).
        let mut m = hmac(key);
        m.update(&out[out.len().saturating_sub(PRF_LEN)..]);
        for s in seed {
            m.update(s);
        }
        m.update(&[n]);
        out.extend_from_slice(&m.finalize().into_bytes());
    }
    out.truncate(len);
    out
}

/// IKE SA keys (RFC 7296 §2.14); AEAD, so no SK_ai/SK_ar. SK_ei/SK_er
/// include the salt.
#[derive(Clone, PartialEq, Eq)]
pub struct IkeKeys {
    pub sk_d: Vec<u8>,
    pub sk_ei: Vec<u8>,
    pub sk_er: Vec<u8>,
    pub sk_pi: Vec<u8>,
    pub sk_pr: Vec<u8>,
}

impl fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(
            f,
            "IkeKeys {{ sk_d: {}, sk_e: {}/{}, sk_p: {}/{} octets }}",
            self.sk_d.len(),
            self.sk_ei.len(),
            self.sk_er.len(),
            self.sk_pi.len(),
            self.sk_pr.len()
        )
    }
}

impl IkeKeys {
    /// SKEYSEED = prf(Ni | Nr, g^ir);
    /// {SK_d | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
    pub fn derive(
        encr: Encr,
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> IkeKeys {
        let nonces = [ni, nr].concat();
        let skeyseed = prf(&nonces, &[shared]);
        Self::split(encr, &skeyseed, ni, nr, spi_i, spi_r)
    }

    /// Rekeyed IKE SA (§2.18): SKEYSEED = prf(SK_d(old), g^ir(new) | Ni | Nr),
    /// then prf+ as for a new SA with the new SPIs.
    pub fn rekey(
        encr: Encr,
        old_sk_d: &[u8],
        shared: &[u8],
        ni: &[u8],
        nr: &[u8],
        spi_i: u64,
        spi_r: u64,
    ) -> IkeKeys {
        let skeyseed = prf(old_sk_d, &[shared, ni, nr]);
        Self::split(encr, &skeyseed, ni, nr, spi_i, spi_r)
    }

    fn split(encr: Encr, skeyseed: &[u8], ni: &[u8], nr: &[u8], spi_i: u64, spi_r: u64) -> IkeKeys {
        let e = encr.keymat_len();
        let km = prf_plus(
            skeyseed,
            &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
            3 * PRF_LEN + 2 * e,
        );
        let (sk_d, rest) = km.split_at(PRF_LEN);
        let (sk_ei, rest) = rest.split_at(e);
        let (sk_er, rest) = rest.split_at(e);
        let (sk_pi, sk_pr) = rest.split_at(PRF_LEN);
        IkeKeys {
            sk_d: sk_d.to_vec(),
            sk_ei: sk_ei.to_vec(),
            sk_er: sk_er.to_vec(),
            sk_pi: sk_pi.to_vec(),
            sk_pr: sk_pr.to_vec(),
        }
    }
}

/// Child SA keying material (§2.17): prf+(SK_d, [g^ir(new)] | Ni | Nr),
/// `len` octets; the caller splits it, initiator→responder first.
pub fn child_keymat(
    sk_d: &[u8],
    shared: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Vec<u8> {
    prf_plus(sk_d, &[shared.unwrap_or_default(), ni, nr], len)
}

#[derive(Clone)]
enum Keyed {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// The SK payload's AEAD: 8-octet explicit IV, nonce = salt(4) | IV(8),
/// 16-octet ICV (RFC 5282 §3-5, RFC 7634 §3).
#[derive(Clone)]
pub struct SkCipher {
    encr: Encr,
    keyed: Keyed,
    salt: [u8; SALT_LEN],
}

impl fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "SkCipher({})", self.encr.keyword())
    }
}

impl SkCipher {
    pub fn new(encr: Encr, key_and_salt: &[u8]) -> Result<SkCipher, IkeCryptoError> {
        if key_and_salt.len() != encr.keymat_len() {
            return Err(IkeCryptoError::BadKeyLength);
        }
        let (key, salt) = key_and_salt.split_at(key_and_salt.len() - SALT_LEN);
        let keyed = match encr {
            Encr::Aes128Gcm16 => Aes128Gcm::new_from_slice(key).map(|c| Keyed::Aes128(Box::new(c))),
            Encr::Aes256Gcm16 => Aes256Gcm::new_from_slice(key).map(|c| Keyed::Aes256(Box::new(c))),
            Encr::ChaCha20Poly1305 => {
                ChaCha20Poly1305::new_from_slice(key).map(|c| Keyed::ChaCha(Box::new(c)))
            }
        }
        .map_err(|_| IkeCryptoError::BadKeyLength)?;
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(salt);
        Ok(SkCipher {
            encr,
            keyed,
            salt: s,
        })
    }

    /// Octets of the SK payload body (IV | ciphertext | ICV) for `inner_len`
    /// octets of inner payloads: an AEAD needs no block padding, so we send
    /// only the Pad Length octet (0).
    pub fn sealed_len(&self, inner_len: usize) -> usize {
        IV_LEN + inner_len + 1 + ICV_LEN
    }

    fn nonce(&self, iv: &[u8]) -> [u8; 12] {
        let mut n = [0u8; 12];
        n[..SALT_LEN].copy_from_slice(&self.salt);
        n[SALT_LEN..].copy_from_slice(iv);
        n
    }

    /// Seals the inner payload chain. `aad` is the IKE header plus the SK
    /// payload's generic header with the final lengths in them (RFC 5282
    /// §5.1); `iv` must never repeat under this key (the engine passes a
    /// per-SA counter). Returns IV | ciphertext | ICV.
    pub fn seal(&self, iv: u64, aad: &[u8], inner: &[u8]) -> Vec<u8> {
        let iv = iv.to_be_bytes();
        let nonce = self.nonce(&iv);
        let nonce = Nonce::from_slice(&nonce);
        let mut out = Vec::with_capacity(self.sealed_len(inner.len()));
        out.extend_from_slice(&iv);
        out.extend_from_slice(inner);
        out.push(0); // Pad Length
        let pt = &mut out[IV_LEN..];
        let tag = match &self.keyed {
            Keyed::Aes128(c) => c.encrypt_in_place_detached(nonce, aad, pt),
            Keyed::Aes256(c) => c.encrypt_in_place_detached(nonce, aad, pt),
            Keyed::ChaCha(c) => c.encrypt_in_place_detached(nonce, aad, pt),
        };
        // Encryption only fails beyond 2^36 octets, far above any IKE message;
        // a zero ICV would then just be rejected by the peer.
        out.extend_from_slice(&tag.unwrap_or_default());
        out
    }

    /// Opens an SK payload body: checks the ICV, then strips the padding the
    /// Pad Length octet announces.
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Result<Vec<u8>, IkeCryptoError> {
        if body.len() < IV_LEN + 1 + ICV_LEN {
            return Err(IkeCryptoError::TooShort);
        }
        let (iv, rest) = body.split_at(IV_LEN);
        let (ct, icv) = rest.split_at(rest.len() - ICV_LEN);
        let nonce = self.nonce(iv);
        let nonce = Nonce::from_slice(&nonce);
        let tag = Tag::from_slice(icv);
        let mut pt = ct.to_vec();
        match &self.keyed {
            Keyed::Aes128(c) => c.decrypt_in_place_detached(nonce, aad, &mut pt, tag),
            Keyed::Aes256(c) => c.decrypt_in_place_detached(nonce, aad, &mut pt, tag),
            Keyed::ChaCha(c) => c.decrypt_in_place_detached(nonce, aad, &mut pt, tag),
        }
        .map_err(|_| IkeCryptoError::IcvMismatch)?;
        let pad = pt.pop().ok_or(IkeCryptoError::TooShort)?;
        let inner_len = pt
            .len()
            .checked_sub(usize::from(pad))
            .ok_or(IkeCryptoError::BadPadding)?;
        pt.truncate(inner_len);
        Ok(pt)
    }
}

/// X25519 ephemeral (group 31): the public value is the 32-octet KE data.
#[derive(Clone)]
pub struct Dh {
    secret: x25519_dalek::StaticSecret,
}

impl fmt::Debug for Dh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dh").finish_non_exhaustive()
    }
}

impl Dh {
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Dh {
        Dh {
            secret: x25519_dalek::StaticSecret::random_from_rng(rng),
        }
    }

    pub fn public(&self) -> [u8; 32] {
        x25519_dalek::PublicKey::from(&self.secret).to_bytes()
    }

    /// Rejects a peer value of the wrong length and an all-zero shared
    /// secret, i.e. a low-order peer point (RFC 7748 §6.1, RFC 8031 §2.3).
    pub fn shared(&self, peer: &[u8]) -> Result<[u8; 32], IkeCryptoError> {
        let peer: [u8; 32] = peer.try_into().map_err(|_| IkeCryptoError::BadPublicKey)?;
        let ss = self.secret.diffie_hellman(&peer.into());
        if !ss.was_contributory() {
            return Err(IkeCryptoError::BadPublicKey);
        }
        Ok(ss.to_bytes())
    }
}

/// NAT_DETECTION_*_IP data (RFC 7296 §2.23): SHA-1(SPIi | SPIr | IP | Port).
pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: IpAddr, port: u16) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(spi_i.to_be_bytes());
    h.update(spi_r.to_be_bytes());
    match addr {
        IpAddr::V4(a) => h.update(a.octets()),
        IpAddr::V6(a) => h.update(a.octets()),
    }
    h.update(port.to_be_bytes());
    h.finalize().into()
}

/// The octets an AUTH payload covers (RFC 7296 §2.15):
/// RealMessage | Nonce(peer) | prf(SK_p, ID'), where ID' is the ID payload
/// body (ID type, reserved octets, identification data).
pub fn signed_octets(
    message: &[u8],
    peer_nonce: &[u8],
    sk_p: &[u8],
    id_payload_body: &[u8],
) -> Vec<u8> {
    [message, peer_nonce, &prf(sk_p, &[id_payload_body])].concat()
}

pub const AUTH_SHARED_KEY: u8 = 2;
/// RFC 7427 Digital Signature.
pub const AUTH_DIGITAL_SIGNATURE: u8 = 14;

const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// PSK AUTH data: prf(prf(secret, "Key Pad for IKEv2"), signed_octets).
pub fn psk_auth(secret: &[u8], signed_octets: &[u8]) -> [u8; 32] {
    prf(&prf(secret, &[KEY_PAD]), &[signed_octets])
}

/// Checks a received PSK AUTH in constant time.
pub fn psk_verify(secret: &[u8], signed_octets: &[u8], received: &[u8]) -> bool {
    let mut m = hmac(&prf(secret, &[KEY_PAD]));
    m.update(signed_octets);
    m.verify_slice(received).is_ok()
}

/// Length-prefixed AlgorithmIdentifier of Ed25519 (OID 1.3.101.112, no
/// parameters), as RFC 7427 §3 and RFC 8420 §2 put it before the signature.
const ED25519_ALG_ID: [u8; 8] = [0x07, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// AUTH data for method 14 with Ed25519: the AlgorithmIdentifier and a pure
/// Ed25519 signature over the signed octets (no pre-hash, "Identity").
pub fn ed25519_auth(key: &SigningKey, signed_octets: &[u8]) -> Vec<u8> {
    [&ED25519_ALG_ID[..], &key.sign(signed_octets).to_bytes()].concat()
}

pub fn ed25519_verify(
    key: &VerifyingKey,
    signed_octets: &[u8],
    auth_data: &[u8],
) -> Result<(), IkeCryptoError> {
    let sig = auth_data
        .strip_prefix(&ED25519_ALG_ID)
        .ok_or(IkeCryptoError::SignatureAlgorithm)?;
    let sig = Signature::from_slice(sig).map_err(|_| IkeCryptoError::BadSignature)?;
    // Strict: also refuses small-order keys and R values that a legitimate
    // signer never produces.
    key.verify_strict(signed_octets, &sig)
        .map_err(|_| IkeCryptoError::BadSignature)
}

/// SIGNATURE_HASH_ALGORITHMS data (RFC 7427 §4) we send: SHA2-256, SHA2-384,
/// SHA2-512 and Identity, as strongSwan does; Identity (5) is what Ed25519 needs.
pub const SIGNATURE_HASH_ALGORITHMS: [u8; 8] = [0, 2, 0, 3, 0, 4, 0, 5];

/// Loads a PKCS#8 private key as `openssl genpkey -algorithm ed25519` writes it.
pub fn ed25519_private_from_pem(pem: &str) -> Result<SigningKey, IkeCryptoError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|_| IkeCryptoError::BadKeyFile)
}

/// Loads an SPKI public key as `openssl pkey -pubout` writes it.
pub fn ed25519_public_from_pem(pem: &str) -> Result<VerifyingKey, IkeCryptoError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|_| IkeCryptoError::BadKeyFile)
}

// ---------------------------------------------------------------------------
// Link to the ESP side: the CHILD SA transform this negotiated Encr installs.

impl Encr {
    /// The SAD's algorithm; its key length, like `keymat_len`, includes the salt.
    pub fn esp_algorithm(self) -> crate::ipsec::Algorithm {
        match self {
            Encr::Aes128Gcm16 => crate::ipsec::Algorithm::Aes128Gcm16,
            Encr::Aes256Gcm16 => crate::ipsec::Algorithm::Aes256Gcm16,
            Encr::ChaCha20Poly1305 => crate::ipsec::Algorithm::ChaCha20Poly1305,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

    use super::*;
    use aes_gcm::aead::{Aead, Payload};
    use core::net::{Ipv4Addr, Ipv6Addr};
    use rand_core::SeedableRng;

    /// HMAC-SHA-256 straight from the hmac crate, for independent checks.
    fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }

    /// prf+ by the RFC's definition, T(n) = prf(K, T(n-1) | S | n).
    fn prf_plus_by_hand(key: &[u8], s: &[u8], len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut t = Vec::new();
        let mut n = 1u8;
        while out.len() < len {
            t = hmac_sha256(key, &[&t, s, &[n]]);
            out.extend_from_slice(&t);
            n += 1;
        }
        out.truncate(len);
        out
    }

    #[test]
    fn prf_is_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            hex::encode(prf(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn prf_plus_chains_blocks_as_rfc_7296_says() {
        let k = b"prf+ key";
        let (s1, s2) = (&b"seed one "[..], &b"and two"[..]);
        let s = [s1, s2].concat();
        let t1 = hmac_sha256(k, &[&s, &[1]]);
        let t2 = hmac_sha256(k, &[&t1, &s, &[2]]);
        let t3 = hmac_sha256(k, &[&t2, &s, &[3]]);
        let expected = [t1, t2, t3].concat();
        assert_eq!(prf_plus(k, &[s1, s2], 70), expected[..70]);
        assert_eq!(prf_plus(k, &[&s], 96), expected);
        assert_eq!(prf_plus(k, &[&s], 5), expected[..5]);
    }

    #[test]
    fn ike_keys_follow_skeyseed_and_prf_plus_layout() {
        let (shared, ni, nr) = ([7u8; 32], [1u8; 32], [2u8; 24]);
        let (spi_i, spi_r) = (0x0102030405060708, 0x1112131415161718);
        let spis = hex::decode("01020304050607081112131415161718").unwrap();
        for encr in Encr::ALL {
            let e = encr.keymat_len();
            let k = IkeKeys::derive(encr, &shared, &ni, &nr, spi_i, spi_r);
            let skeyseed = hmac_sha256(&[&ni[..], &nr].concat(), &[&shared]);
            let km = prf_plus_by_hand(&skeyseed, &[&ni[..], &nr, &spis].concat(), 96 + 2 * e);
            assert_eq!(k.sk_d, km[..32]);
            assert_eq!(k.sk_ei, km[32..32 + e]);
            assert_eq!(k.sk_er, km[32 + e..32 + 2 * e]);
            assert_eq!(k.sk_pi, km[32 + 2 * e..64 + 2 * e]);
            assert_eq!(k.sk_pr, km[64 + 2 * e..]);
            assert_eq!(k.sk_pr.len(), 32);

            // The rekeyed SA's SKEYSEED is keyed with the old SK_d.
            let (ni2, nr2, shared2) = ([3u8; 32], [4u8; 32], [9u8; 32]);
            let r = IkeKeys::rekey(encr, &k.sk_d, &shared2, &ni2, &nr2, 5, 6);
            let skeyseed = hmac_sha256(&k.sk_d, &[&shared2, &ni2, &nr2]);
            let seed = [&ni2[..], &nr2, &5u64.to_be_bytes(), &6u64.to_be_bytes()].concat();
            let km = prf_plus_by_hand(&skeyseed, &seed, 96 + 2 * e);
            assert_eq!(r.sk_d, km[..32]);
            assert_eq!(r.sk_pr, km[64 + 2 * e..]);
        }
        let k = IkeKeys::derive(Encr::Aes128Gcm16, &shared, &ni, &nr, 1, 2);
        assert_eq!(
            format!("{k:?}"),
            "IkeKeys { sk_d: 32, sk_e: 20/20, sk_p: 32/32 octets }"
        );
    }

    #[test]
    fn child_keymat_seed_is_optional_dh_then_nonces() {
        let (sk_d, g, ni, nr) = ([5u8; 32], [6u8; 32], [1u8; 16], [2u8; 16]);
        assert_eq!(
            child_keymat(&sk_d, Some(&g), &ni, &nr, 72),
            prf_plus_by_hand(&sk_d, &[&g[..], &ni, &nr].concat(), 72)
        );
        assert_eq!(
            child_keymat(&sk_d, None, &ni, &nr, 40),
            prf_plus_by_hand(&sk_d, &[&ni[..], &nr].concat(), 40)
        );
    }

    fn cipher(encr: Encr) -> (Vec<u8>, SkCipher) {
        let key: Vec<u8> = (0..encr.keymat_len() as u8).map(|b| b ^ 0x5a).collect();
        let c = SkCipher::new(encr, &key).unwrap();
        (key, c)
    }

    const AAD: &[u8] = b"IKE header 28 octets.......SKhd";
    const INNER: &[u8] = b"IDi | AUTH | SA | TSi | TSr inner payloads";

    #[test]
    fn sk_round_trips_and_any_tampering_fails() {
        for encr in Encr::ALL {
            let (_, c) = cipher(encr);
            let body = c.seal(0x0102030405060708, AAD, INNER);
            assert_eq!(body.len(), c.sealed_len(INNER.len()));
            assert_eq!(body[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
            assert_eq!(c.open(AAD, &body).unwrap(), INNER);
            assert_eq!(c.open(AAD, &c.seal(0, AAD, &[])).unwrap(), b"");

            let mut aad = AAD.to_vec();
            aad[3] ^= 1;
            assert_eq!(c.open(&aad, &body), Err(IkeCryptoError::IcvMismatch));
            // IV, ciphertext (first and pad-length octet), ICV.
            for i in [0, 7, 8, body.len() - 17, body.len() - 16, body.len() - 1] {
                let mut b = body.clone();
                b[i] ^= 0x80;
                assert_eq!(
                    c.open(AAD, &b),
                    Err(IkeCryptoError::IcvMismatch),
                    "{encr:?} octet {i}"
                );
            }
            assert_eq!(c.open(AAD, &body[..24]), Err(IkeCryptoError::TooShort));
        }
        assert_eq!(
            SkCipher::new(Encr::Aes256Gcm16, &[0; 32]).err(),
            Some(IkeCryptoError::BadKeyLength)
        );
        assert_eq!(
            SkCipher::new(Encr::Aes128Gcm16, &[0; 36]).err(),
            Some(IkeCryptoError::BadKeyLength)
        );
    }

    /// AES-128-GCM over `pt` as RFC 5282 lays it out, with aes_gcm directly.
    fn aes128_body(key: &[u8], iv: [u8; 8], pt: &[u8]) -> Vec<u8> {
        let aead = Aes128Gcm::new_from_slice(&key[..16]).unwrap();
        let nonce = [&key[16..], &iv].concat();
        let ct = aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: pt, aad: AAD })
            .unwrap();
        [&iv[..], &ct].concat()
    }

    #[test]
    fn sk_matches_aes_gcm_with_salt_iv_nonce_and_honours_pad_length() {
        let (key, c) = cipher(Encr::Aes128Gcm16);
        let iv = 0x1122334455667788u64;
        let expected = aes128_body(&key, iv.to_be_bytes(), &[INNER, &[0]].concat());
        assert_eq!(c.seal(iv, AAD, INNER), expected);

        // A peer that pads: 3 padding octets, Pad Length 3.
        let padded = aes128_body(&key, [9; 8], &[INNER, &[0xee, 0xee, 0xee, 3]].concat());
        assert_eq!(c.open(AAD, &padded).unwrap(), INNER);
        // Pad Length covering the whole plaintext is fine, beyond it is not.
        let all_pad = aes128_body(&key, [9; 8], &[1, 2, 3, 3]);
        assert_eq!(c.open(AAD, &all_pad).unwrap(), b"");
        let over = aes128_body(&key, [9; 8], &[1, 2, 3, 4]);
        assert_eq!(c.open(AAD, &over), Err(IkeCryptoError::BadPadding));
    }

    #[test]
    fn sk_matches_python_cryptography() {
        let have = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import cryptography"])
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "python3-cryptography missing under CI"
            );
            eprintln!("skipped: /usr/bin/python3 with cryptography not found");
            return;
        }
        const PY: &str = "import sys\n\
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305\n\
            alg, key, nonce, aad, pt = sys.argv[1:]\n\
            c = (AESGCM if alg == 'aes' else ChaCha20Poly1305)(bytes.fromhex(key))\n\
            print(c.encrypt(bytes.fromhex(nonce), bytes.fromhex(pt), bytes.fromhex(aad)).hex())";
        for (encr, alg) in [
            (Encr::Aes256Gcm16, "aes"),
            (Encr::ChaCha20Poly1305, "chacha"),
        ] {
            let (key, c) = cipher(encr);
            let iv = 0x0000000000000102u64;
            let (k, salt) = key.split_at(32);
            let nonce = [salt, &iv.to_be_bytes()].concat();
            let out = std::process::Command::new("/usr/bin/python3")
                .args(["-c", PY, alg, &hex::encode(k), &hex::encode(nonce)])
                .args([hex::encode(AAD), hex::encode([INNER, &[0]].concat())])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let body = c.seal(iv, AAD, INNER);
            assert_eq!(
                hex::encode(&body[8..]),
                String::from_utf8(out.stdout).unwrap().trim(),
                "{encr:?}"
            );
        }
    }

    #[test]
    fn x25519_matches_rfc_7748_and_rejects_low_order_points() {
        let hex32 = |s: &str| -> [u8; 32] { hex::decode(s).unwrap().try_into().unwrap() };
        let alice = Dh {
            secret: hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .into(),
        };
        let bob = Dh {
            secret: hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
                .into(),
        };
        assert_eq!(
            hex::encode(alice.public()),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        assert_eq!(
            hex::encode(bob.public()),
            "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"
        );
        let k = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
        assert_eq!(hex::encode(alice.shared(&bob.public()).unwrap()), k);
        assert_eq!(hex::encode(bob.shared(&alice.public()).unwrap()), k);

        assert_eq!(alice.shared(&[0; 32]), Err(IkeCryptoError::BadPublicKey));
        assert_eq!(alice.shared(&[1; 31]), Err(IkeCryptoError::BadPublicKey));

        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        let (a, b) = (Dh::generate(&mut rng), Dh::generate(&mut rng));
        assert_ne!(a.public(), b.public());
        assert_eq!(a.shared(&b.public()), b.shared(&a.public()));
    }

    #[test]
    fn nat_detection_hashes_spis_address_and_port() {
        let v4 = nat_detection_hash(1, 0, Ipv4Addr::new(192, 0, 2, 1).into(), 500);
        let input = hex::decode("00000000000000010000000000000000c000020101f4").unwrap();
        assert_eq!(v4, <[u8; 20]>::from(Sha1::digest(&input)));

        let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0xa);
        let v6 = nat_detection_hash(0x0a0b0c0d0e0f1011, 0x2122232425262728, addr.into(), 4500);
        let input =
            hex::decode("0a0b0c0d0e0f1011212223242526272820010db800010000000000000000000a1194")
                .unwrap();
        assert_eq!(v6, <[u8; 20]>::from(Sha1::digest(&input)));
    }

    #[test]
    fn psk_auth_is_keyed_by_the_key_pad() {
        let so = signed_octets(b"message", b"peer nonce", b"SK_p", b"\x02\0\0\0a.example");
        let id_mac = hmac_sha256(b"SK_p", &[b"\x02\0\0\0a.example"]);
        assert_eq!(so, [&b"messagepeer nonce"[..], &id_mac].concat());

        let expected = hmac_sha256(&hmac_sha256(b"secret", &[b"Key Pad for IKEv2"]), &[&so]);
        let auth = psk_auth(b"secret", &so);
        assert_eq!(auth[..], expected);
        assert!(psk_verify(b"secret", &so, &auth));
        assert!(!psk_verify(b"secret", &so, &auth[..31]));
        assert!(!psk_verify(b"Secret", &so, &auth));
        let mut bad = auth;
        bad[31] ^= 1;
        assert!(!psk_verify(b"secret", &so, &bad));
    }

    // `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`.
    const PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIBiVqCn/svfRsMGoSVZ158oQGxQy/VumlBmaNUKAmcxj\n\
        -----END PRIVATE KEY-----\n";
    const PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAMKcJtn4WiNcKIRFoCLK6XVnQYHtpeeSQ++FrrglSmlY=\n\
        -----END PUBLIC KEY-----\n";
    const MESSAGE: &[u8] = b"IKE_SA_INIT|Nr|prf(SK_pi,IDi)";
    // `openssl pkeyutl -sign -rawin` over MESSAGE with PRIVATE_PEM.
    const OPENSSL_SIGNATURE: &str =
        "4ddac9daa4d883fdb48553afcf600d0136f242c49fd18b90c9ca0343e3f5c517\
        737f51673d207d73cd4861887a7733de0f3e69445b2a46ba2417b24352ecb609";

    #[test]
    fn ed25519_keys_load_from_openssl_pem() {
        let sk = ed25519_private_from_pem(PRIVATE_PEM).unwrap();
        let pk = ed25519_public_from_pem(PUBLIC_PEM).unwrap();
        assert_eq!(sk.verifying_key(), pk);
        assert_eq!(
            hex::encode(pk.as_bytes()),
            "30a709b67e1688d70a21116808b2ba5d59d0607b6979e490fbe16bae09529a56"
        );
        assert_eq!(
            ed25519_private_from_pem(PUBLIC_PEM).err(),
            Some(IkeCryptoError::BadKeyFile)
        );
        assert_eq!(
            ed25519_public_from_pem(PRIVATE_PEM).err(),
            Some(IkeCryptoError::BadKeyFile)
        );
        assert_eq!(
            ed25519_public_from_pem("junk").err(),
            Some(IkeCryptoError::BadKeyFile)
        );
    }

    #[test]
    fn ed25519_auth_is_rfc_7427_and_matches_openssl() {
        let sk = ed25519_private_from_pem(PRIVATE_PEM).unwrap();
        let pk = sk.verifying_key();
        let auth = ed25519_auth(&sk, MESSAGE);
        assert_eq!(
            hex::encode(&auth),
            format!("07300506032b6570{OPENSSL_SIGNATURE}")
        );
        assert_eq!(ed25519_verify(&pk, MESSAGE, &auth), Ok(()));

        assert_eq!(
            ed25519_verify(&pk, b"other octets", &auth),
            Err(IkeCryptoError::BadSignature)
        );
        let mut bad = auth.clone();
        bad[20] ^= 1;
        assert_eq!(
            ed25519_verify(&pk, MESSAGE, &bad),
            Err(IkeCryptoError::BadSignature)
        );
        assert_eq!(
            ed25519_verify(&pk, MESSAGE, &auth[..71]),
            Err(IkeCryptoError::BadSignature)
        );
        let other = SigningKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
        assert_eq!(
            ed25519_verify(&other.verifying_key(), MESSAGE, &auth),
            Err(IkeCryptoError::BadSignature)
        );
        // Ed448 (1.3.101.113) instead of Ed25519.
        let mut ed448 = auth.clone();
        ed448[7] = 0x71;
        assert_eq!(
            ed25519_verify(&pk, MESSAGE, &ed448),
            Err(IkeCryptoError::SignatureAlgorithm)
        );
        // sha256WithRSAEncryption with NULL parameters.
        let rsa = [
            &hex::decode("0f300d06092a864886f70d01010b0500").unwrap()[..],
            &auth[8..],
        ]
        .concat();
        assert_eq!(
            ed25519_verify(&pk, MESSAGE, &rsa),
            Err(IkeCryptoError::SignatureAlgorithm)
        );
        assert_eq!(SIGNATURE_HASH_ALGORITHMS, [0, 2, 0, 3, 0, 4, 0, 5]);
    }

    #[test]
    fn encr_transform_ids_and_keywords_round_trip() {
        assert_eq!(Encr::from_transform(20, Some(128)), Some(Encr::Aes128Gcm16));
        assert_eq!(Encr::from_transform(20, Some(256)), Some(Encr::Aes256Gcm16));
        assert_eq!(Encr::from_transform(28, None), Some(Encr::ChaCha20Poly1305));
        assert_eq!(Encr::from_transform(20, Some(192)), None);
        assert_eq!(Encr::from_transform(20, None), None);
        assert_eq!(Encr::from_transform(28, Some(256)), None);
        for e in Encr::ALL {
            assert_eq!(
                Encr::from_transform(e.transform_id(), e.key_length_attr()),
                Some(e)
            );
            assert_eq!(Encr::from_keyword(e.keyword()), Some(e));
            // The ESP side names and sizes the transform the same way.
            assert_eq!(e.esp_algorithm().keyword(), e.keyword());
            assert_eq!(e.esp_algorithm().key_len(), e.keymat_len());
        }
        assert_eq!(Encr::from_keyword("aes128"), None);
    }
}
