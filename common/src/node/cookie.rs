//! Care-of address test cookies (draft-dupont-mipv6-cn-ipsec Annex A1): a
//! 16-bit timestamp, the tested care-of address and an HMAC-SHA-256 cut to
//! its high 96 bits, so the correspondent keeps no state per pending test.

use std::net::Ipv6Addr;

use hmac::digest::Key;
use hmac::{Hmac, Mac};
use rand_core::RngCore;
use sha2::Sha256;

use crate::time::{Duration, Instant};
use crate::wire::mh::CoaTestCookie;

/// Which Annex A1 method: 1 keys the HMAC with a per-binding secret over
/// (timestamp | CoA | correspondent); 2 keys it with a global secret over
/// (timestamp | CoA | home address | correspondent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieMethod {
    PerBinding,
    Global,
}

impl CookieMethod {
    /// The `home` argument of [`CookieSecrets::make`] and [`CookieSecrets::check`].
    pub fn home(self, home: Ipv6Addr) -> Option<Ipv6Addr> {
        match self {
            CookieMethod::PerBinding => None,
            CookieMethod::Global => Some(home),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    #[error("care-of test cookie is too old")]
    Stale,
    #[error("care-of test cookie does not match")]
    Forged,
}

#[derive(Clone)]
struct Secret {
    epoch: u64,
    key: [u8; 32],
}

impl Secret {
    fn draw(rng: &mut impl RngCore, epoch: u64) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Secret { epoch, key }
    }
}

/// Rotating random secrets, the current one and the one before. A cookie
/// is accepted while it was made in now's epoch or the previous one, i.e.
/// for one to two rotations; the rotation must stay well under 2^15 s so
/// the 16-bit timestamp does not wrap within that window.
#[derive(Clone)]
pub struct CookieSecrets {
    rotation_secs: u64,
    current: Secret,
    previous: Option<Secret>,
}

impl CookieSecrets {
    pub fn new(rng: &mut impl RngCore, now: Instant, rotation: Duration) -> Self {
        let rotation_secs = rotation.as_secs().max(1);
        CookieSecrets {
            rotation_secs,
            current: Secret::draw(rng, secs(now) / rotation_secs),
            previous: None,
        }
    }

    /// `home` is Some for the Global method, which MACs it, None for PerBinding.
    pub fn make(
        &mut self,
        rng: &mut impl RngCore,
        now: Instant,
        care_of: Ipv6Addr,
        home: Option<Ipv6Addr>,
        correspondent: Ipv6Addr,
    ) -> CoaTestCookie {
        let epoch = secs(now) / self.rotation_secs;
        if epoch != self.current.epoch {
            let old = std::mem::replace(&mut self.current, Secret::draw(rng, epoch));
            self.previous = Some(old);
        }
        let timestamp = secs(now) as u16;
        let out = cookie_mac(&self.current.key, timestamp, care_of, home, correspondent)
            .finalize()
            .into_bytes();
        let mut mac = [0u8; 12];
        mac.copy_from_slice(&out[..12]);
        CoaTestCookie {
            timestamp,
            care_of,
            mac,
        }
    }

    /// Checks a cookie the mobile node echoed for the tested `care_of`.
    pub fn check(
        &self,
        now: Instant,
        cookie: &CoaTestCookie,
        care_of: Ipv6Addr,
        home: Option<Ipv6Addr>,
        correspondent: Ipv6Addr,
    ) -> Result<(), CookieError> {
        if cookie.care_of != care_of {
            return Err(CookieError::Forged);
        }
        let now_secs = secs(now);
        let age = u64::from((now_secs as u16).wrapping_sub(cookie.timestamp));
        let created = now_secs.checked_sub(age).ok_or(CookieError::Stale)?;
        let epoch = created / self.rotation_secs;
        if epoch + 1 < now_secs / self.rotation_secs {
            return Err(CookieError::Stale);
        }
        let secret = [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|s| s.epoch == epoch)
            .ok_or(CookieError::Stale)?;
        cookie_mac(&secret.key, cookie.timestamp, care_of, home, correspondent)
            .verify_truncated_left(&cookie.mac)
            .map_err(|_| CookieError::Forged)
    }
}

fn secs(now: Instant) -> u64 {
    now.total_micros() / 1_000_000
}

/// HMAC zero-pads keys shorter than a block (RFC 2104), so padding here
/// gives the same MAC through the constructor that cannot fail.
fn cookie_mac(
    key: &[u8; 32],
    timestamp: u16,
    care_of: Ipv6Addr,
    home: Option<Ipv6Addr>,
    correspondent: Ipv6Addr,
) -> Hmac<Sha256> {
    let mut block = Key::<Hmac<Sha256>>::default();
    block[..key.len()].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as Mac>::new(&block);
    mac.update(&timestamp.to_be_bytes());
    mac.update(&care_of.octets());
    if let Some(home) = home {
        mac.update(&home.octets());
    }
    mac.update(&correspondent.octets());
    mac
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    const HOME: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
    const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10);
    const ALT: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x10);
    const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x1);
    const ROT: Duration = Duration::from_secs(60);

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(1)
    }

    /// The full HMAC-SHA-256 over `parts`, computed with hmac's own key handling.
    fn full_mac(key: &[u8; 32], parts: &[&[u8]]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().to_vec()
    }

    // REQ CN-A1.4
    // REQ CN-A1.6
    #[test]
    fn method1_mac_is_truncated_hmac_over_ts_coa_cn() {
        let mut rng = rng();
        let now = Instant::from_secs(70_000);
        let mut s = CookieSecrets::new(&mut rng, now, ROT);
        let c = s.make(&mut rng, now, COA, None, CN);
        assert_eq!(c.timestamp, (70_000 % 65_536) as u16);
        assert_eq!(c.care_of, COA);
        let full = full_mac(
            &s.current.key,
            &[&c.timestamp.to_be_bytes(), &COA.octets(), &CN.octets()],
        );
        assert_eq!(full.len(), 32);
        assert_eq!(c.mac[..], full[..12], "high 96 bits");
        assert_eq!(s.check(now, &c, COA, None, CN), Ok(()));
        assert_eq!(s.check(now, &c, COA, None, HOME), Err(CookieError::Forged));
    }

    // REQ CN-A1.4
    // REQ CN-A1.3
    #[test]
    fn method1_is_keyed_per_binding() {
        let mut rng = rng();
        let now = Instant::from_secs(10);
        let mut a = CookieSecrets::new(&mut rng, now, ROT);
        let mut b = CookieSecrets::new(&mut rng, now, ROT);
        let ca = a.make(&mut rng, now, COA, None, CN);
        let cb = b.make(&mut rng, now, COA, None, CN);
        assert_ne!(ca.mac, cb.mac);
        assert_eq!(b.check(now, &ca, COA, None, CN), Err(CookieError::Forged));
    }

    // REQ CN-A1.5
    // REQ CN-A1.6
    #[test]
    fn method2_covers_home_address() {
        let mut rng = rng();
        let now = Instant::from_secs(10);
        let mut s = CookieSecrets::new(&mut rng, now, ROT);
        let home = CookieMethod::Global.home(HOME);
        let c = s.make(&mut rng, now, COA, home, CN);
        let full = full_mac(
            &s.current.key,
            &[
                &c.timestamp.to_be_bytes(),
                &COA.octets(),
                &HOME.octets(),
                &CN.octets(),
            ],
        );
        assert_eq!(c.mac[..], full[..12]);
        assert_eq!(s.check(now, &c, COA, home, CN), Ok(()));
        assert_eq!(
            s.check(now, &c, COA, Some(ALT), CN),
            Err(CookieError::Forged)
        );
        assert_eq!(s.check(now, &c, COA, None, CN), Err(CookieError::Forged));
    }

    // REQ CN-A1.3
    #[test]
    fn cookie_reflects_tested_coa() {
        let mut rng = rng();
        let now = Instant::from_secs(10);
        let mut s = CookieSecrets::new(&mut rng, now, ROT);
        let c = s.make(&mut rng, now, COA, Some(HOME), CN);
        assert_eq!(
            s.check(now, &c, ALT, Some(HOME), CN),
            Err(CookieError::Forged)
        );
        let moved = CoaTestCookie { care_of: ALT, ..c };
        assert_eq!(
            s.check(now, &moved, ALT, Some(HOME), CN),
            Err(CookieError::Forged)
        );
    }

    // REQ CN-A1.6
    #[test]
    fn flipped_mac_bit_is_forged() {
        let mut rng = rng();
        let now = Instant::from_secs(10);
        let mut s = CookieSecrets::new(&mut rng, now, ROT);
        let c = s.make(&mut rng, now, COA, None, CN);
        for i in 0..12 {
            let mut bad = c;
            bad.mac[i] ^= 0x01;
            assert_eq!(s.check(now, &bad, COA, None, CN), Err(CookieError::Forged));
        }
    }

    // REQ CN-A1.6
    #[test]
    fn previous_epoch_accepted_older_stale() {
        let mut rng = rng();
        let t0 = Instant::from_secs(600);
        let mut s = CookieSecrets::new(&mut rng, t0, ROT);
        let c = s.make(&mut rng, t0, COA, None, CN);

        // Next epoch, after make rotated: the previous key still checks it.
        let t1 = t0 + ROT;
        s.make(&mut rng, t1, ALT, None, CN);
        assert_eq!(s.check(t1, &c, COA, None, CN), Ok(()));

        // Two rotations later the cookie is stale, whether or not make rotated.
        let t2 = t0 + 2 * ROT;
        assert_eq!(s.check(t2, &c, COA, None, CN), Err(CookieError::Stale));
        s.make(&mut rng, t2, ALT, None, CN);
        assert_eq!(s.check(t2, &c, COA, None, CN), Err(CookieError::Stale));

        // A timestamp from the future wraps to an old age.
        let future = CoaTestCookie {
            timestamp: c.timestamp.wrapping_add(500),
            ..c
        };
        assert_eq!(s.check(t2, &future, COA, None, CN), Err(CookieError::Stale));
    }

    // REQ CN-A1.6
    #[test]
    fn check_without_rotation_finds_current_key() {
        let mut rng = rng();
        let t0 = Instant::from_secs(600);
        let mut s = CookieSecrets::new(&mut rng, t0, ROT);
        let c = s.make(&mut rng, t0 + Duration::from_secs(59), COA, None, CN);
        // check never rotates, so the cookie's key is still current in the next epoch.
        assert_eq!(
            s.check(t0 + Duration::from_secs(100), &c, COA, None, CN),
            Ok(())
        );
    }

    // REQ CN-A1.3
    // REQ CN-A1.6
    #[test]
    fn rotation_draws_an_unpredictable_key() {
        let mut rng = rng();
        let t0 = Instant::from_secs(600);
        let mut s = CookieSecrets::new(&mut rng, t0, ROT);
        let c0 = s.make(&mut rng, t0, COA, None, CN);
        let k0 = s.current.key;
        let t1 = t0 + ROT;
        let c1 = s.make(&mut rng, t1, COA, None, CN);
        assert_ne!(s.current.key, k0);
        assert_eq!(s.previous.as_ref().unwrap().key, k0);
        // Replaying the earlier MAC under the new timestamp does not work.
        let replay = CoaTestCookie {
            timestamp: c1.timestamp,
            ..c0
        };
        assert_ne!(replay.mac, c1.mac);
        assert_eq!(
            s.check(t1, &replay, COA, None, CN),
            Err(CookieError::Forged)
        );
    }
}
