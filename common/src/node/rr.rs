//! Return routability crypto (RFC 6275 §5.2.1–§5.2.6, §6.2.7): the
//! correspondent's nonces and keygen tokens, the binding management key and
//! the Binding Update authenticator.

use std::collections::VecDeque;
use std::net::Ipv6Addr;

use hmac::digest::Key;
use hmac::{Hmac, Mac};
use rand_core::RngCore;
use sha1::{Digest, Sha1};

use crate::time::{Duration, Instant};

/// How often a correspondent makes a new nonce.
pub const NONCE_REGENERATION: Duration = Duration::from_secs(30);
/// RFC 6275 §12.
pub const MAX_NONCE_LIFETIME: Duration = Duration::from_secs(240);
/// RFC 6275 §12: how long the mobile node may use a token it received.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(210);
/// RFC 6275 §12.
pub const MAX_RR_BINDING_LIFETIME: Duration = Duration::from_secs(420);

/// HMAC zero-pads keys shorter than a block (RFC 2104), so padding here
/// gives the same MAC through the constructor that cannot fail.
fn hmac_sha1(key: &[u8; 20]) -> Hmac<Sha1> {
    let mut block = Key::<Hmac<Sha1>>::default();
    block[..key.len()].copy_from_slice(key);
    <Hmac<Sha1> as Mac>::new(&block)
}

#[derive(Clone)]
struct Nonce {
    index: u16,
    value: [u8; 8],
    created: Instant,
}

/// A correspondent's RR secrets: Kcn and the nonces still valid, oldest first.
#[derive(Clone)]
pub struct RrResponder {
    kcn: [u8; 20],
    nonces: VecDeque<Nonce>,
}

impl RrResponder {
    pub fn new(rng: &mut impl RngCore, now: Instant) -> Self {
        let mut kcn = [0u8; 20];
        rng.fill_bytes(&mut kcn);
        let mut value = [0u8; 8];
        rng.fill_bytes(&mut value);
        let first = Nonce {
            index: 0,
            value,
            created: now,
        };
        RrResponder {
            kcn,
            nonces: VecDeque::from([first]),
        }
    }

    /// The index to hand out now. Rotation is lazy: a nonce made at `t` is
    /// handed out until `t + NONCE_REGENERATION` and honoured until
    /// `t + MAX_NONCE_LIFETIME`, which covers the mobile node's
    /// `MAX_TOKEN_LIFETIME` after the last hand-out.
    pub fn current_index(&mut self, rng: &mut impl RngCore, now: Instant) -> u16 {
        self.nonces
            .retain(|n| now.saturating_duration_since(n.created) < MAX_NONCE_LIFETIME);
        match self.nonces.back() {
            Some(n) if now.saturating_duration_since(n.created) < NONCE_REGENERATION => n.index,
            last => {
                let index = last.map_or(0, |n| n.index.wrapping_add(1));
                let mut value = [0u8; 8];
                rng.fill_bytes(&mut value);
                self.nonces.push_back(Nonce {
                    index,
                    value,
                    created: now,
                });
                index
            }
        }
    }

    /// First(64, HMAC_SHA1(Kcn, home address | nonce | 0)).
    pub fn home_token(&self, now: Instant, home: Ipv6Addr, index: u16) -> Option<u64> {
        self.token(now, home, index, 0)
    }

    /// First(64, HMAC_SHA1(Kcn, care-of address | nonce | 1)).
    pub fn care_of_token(&self, now: Instant, care_of: Ipv6Addr, index: u16) -> Option<u64> {
        self.token(now, care_of, index, 1)
    }

    fn token(&self, now: Instant, addr: Ipv6Addr, index: u16, kind: u8) -> Option<u64> {
        let nonce = self.nonces.iter().find(|n| {
            n.index == index && now.saturating_duration_since(n.created) < MAX_NONCE_LIFETIME
        })?;
        let mut mac = hmac_sha1(&self.kcn);
        mac.update(&addr.octets());
        mac.update(&nonce.value);
        mac.update(&[kind]);
        let out = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&out[..8]);
        Some(u64::from_be_bytes(first))
    }
}

/// Kbm = SHA1(home keygen token | care-of keygen token), or SHA1(home keygen
/// token) for a deregistration (`care_of_token` None).
pub fn binding_key(home_token: u64, care_of_token: Option<u64>) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(home_token.to_be_bytes());
    if let Some(c) = care_of_token {
        h.update(c.to_be_bytes());
    }
    h.finalize().into()
}

fn auth_mac(kbm: &[u8; 20], care_of: Ipv6Addr, correspondent: Ipv6Addr, data: &[u8]) -> Hmac<Sha1> {
    let mut mac = hmac_sha1(kbm);
    mac.update(&care_of.octets());
    mac.update(&correspondent.octets());
    mac.update(data);
    mac
}

/// First(96, HMAC_SHA1(Kbm, care-of address | correspondent | mobility
/// data)); `mobility_data` is the Mobility Header with a zero checksum and
/// without the authenticator itself.
pub fn authenticator(
    kbm: &[u8; 20],
    care_of: Ipv6Addr,
    correspondent: Ipv6Addr,
    mobility_data: &[u8],
) -> [u8; 12] {
    let out = auth_mac(kbm, care_of, correspondent, mobility_data)
        .finalize()
        .into_bytes();
    let mut auth = [0u8; 12];
    auth.copy_from_slice(&out[..12]);
    auth
}

/// Constant-time comparison with the recomputed authenticator.
pub fn verify_authenticator(
    kbm: &[u8; 20],
    care_of: Ipv6Addr,
    correspondent: Ipv6Addr,
    mobility_data: &[u8],
    auth: &[u8; 12],
) -> bool {
    auth_mac(kbm, care_of, correspondent, mobility_data)
        .verify_truncated_left(auth)
        .is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const HOME: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
    const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10);
    const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x1);

    /// The token recomputed with hmac's own key handling.
    fn expected_token(r: &RrResponder, addr: Ipv6Addr, index: u16, kind: u8) -> u64 {
        let nonce = r.nonces.iter().find(|n| n.index == index).unwrap();
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&r.kcn).unwrap();
        mac.update(&addr.octets());
        mac.update(&nonce.value);
        mac.update(&[kind]);
        let out = mac.finalize().into_bytes();
        u64::from_be_bytes(out[..8].try_into().unwrap())
    }

    // REQ MIP-BASE
    #[test]
    fn tokens_follow_rfc_formula() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let now = Instant::from_secs(5);
        let mut r = RrResponder::new(&mut rng, now);
        let i = r.current_index(&mut rng, now);
        let home = r.home_token(now, HOME, i).unwrap();
        let coa = r.care_of_token(now, COA, i).unwrap();
        assert_eq!(home, expected_token(&r, HOME, i, 0));
        assert_eq!(coa, expected_token(&r, COA, i, 1));
        // The trailing octet separates the two tokens for one address.
        assert_ne!(r.home_token(now, COA, i), Some(coa));
    }

    // REQ MIP-BASE
    #[test]
    fn nonce_rotates_and_expires() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let t0 = Instant::from_secs(100);
        let mut r = RrResponder::new(&mut rng, t0);
        let i0 = r.current_index(&mut rng, t0);
        let old = r.home_token(t0, HOME, i0).unwrap();
        let almost = t0 + (NONCE_REGENERATION - Duration::from_micros(1));
        assert_eq!(r.current_index(&mut rng, almost), i0);

        let t1 = t0 + NONCE_REGENERATION;
        let i1 = r.current_index(&mut rng, t1);
        assert_eq!(i1, i0.wrapping_add(1));
        assert_ne!(r.home_token(t1, HOME, i1), Some(old), "fresh nonce");
        // The previous nonce is still honoured, with the same token.
        assert_eq!(r.home_token(t1, HOME, i0), Some(old));
        assert_eq!(r.home_token(t1, HOME, i1.wrapping_add(1)), None);

        let last = t0 + (MAX_NONCE_LIFETIME - Duration::from_micros(1));
        assert_eq!(r.home_token(last, HOME, i0), Some(old));
        let expired = t0 + MAX_NONCE_LIFETIME;
        assert_eq!(r.home_token(expired, HOME, i0), None);
        assert_eq!(r.care_of_token(expired, COA, i0), None);
        assert!(r.home_token(expired, HOME, i1).is_some());
        r.current_index(&mut rng, expired);
        assert!(r.nonces.iter().all(|n| n.index != i0), "forgotten");
    }

    // REQ MIP-BASE
    #[test]
    fn binding_key_both_forms() {
        let (h, c) = (0x0102_0304_0506_0708u64, 0x1112_1314_1516_1718u64);
        let mut both = h.to_be_bytes().to_vec();
        both.extend_from_slice(&c.to_be_bytes());
        let expect: [u8; 20] = Sha1::digest(&both).into();
        assert_eq!(binding_key(h, Some(c)), expect);
        let expect: [u8; 20] = Sha1::digest(h.to_be_bytes()).into();
        assert_eq!(binding_key(h, None), expect);
    }

    // REQ MIP-BASE
    #[test]
    fn authenticator_verifies_and_rejects_flips() {
        let kbm = binding_key(1, Some(2));
        let data = [0x3b, 0x03, 5, 0, 0, 0, 0, 1, 0, 0, 0, 100];
        let auth = authenticator(&kbm, COA, CN, &data);

        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&kbm).unwrap();
        mac.update(&COA.octets());
        mac.update(&CN.octets());
        mac.update(&data);
        assert_eq!(auth[..], mac.finalize().into_bytes()[..12]);

        assert!(verify_authenticator(&kbm, COA, CN, &data, &auth));
        let mut bad = auth;
        bad[11] ^= 1;
        assert!(!verify_authenticator(&kbm, COA, CN, &data, &bad));
        let mut flipped = data;
        flipped[7] ^= 0x80;
        assert!(!verify_authenticator(&kbm, COA, CN, &flipped, &auth));
        assert!(!verify_authenticator(&kbm, HOME, CN, &data, &auth));
        assert!(!verify_authenticator(
            &binding_key(1, None),
            COA,
            CN,
            &data,
            &auth
        ));
    }
}
