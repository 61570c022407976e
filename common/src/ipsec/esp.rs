//! ESP processing for one SA (RFC 4303 §3): sequence numbers, framing,
//! the transform, anti-replay and lifetimes. Whole-packet work (where the
//! ESP header goes, tunnelling) is in [`super::Ipsec`].

use super::config::parse_hex;
use super::crypto::{Algorithm, EspCipher, IcvMismatch, ICV_LEN};
use super::sad::Sa;
use super::spd::Direction;
use super::IpsecDrop;
use crate::time::Instant;
use crate::wire::esp::{EspOpener, EspPacket, EspTrailer, HEADER_LEN};
use crate::wire::{IpProtocol, WireError};

/// ESP aligns the trailer to 4 bytes; none of our transforms has a block.
const ALIGN: usize = 4;

impl Sa {
    /// Whether a hard limit has been reached (RFC 4301 §4.4.2.1).
    pub(crate) fn is_hard_expired(&self, now: Instant) -> bool {
        self.lifetime
            .hard_time
            .is_some_and(|d| now >= self.installed + d)
            || self.lifetime.hard_bytes.is_some_and(|b| self.bytes >= b)
    }

    /// Whether a soft limit has been reached and not yet reported.
    pub(crate) fn is_soft_due(&self, now: Instant) -> bool {
        !self.soft_expired
            && (self
                .lifetime
                .soft_time
                .is_some_and(|d| now >= self.installed + d)
                || self.lifetime.soft_bytes.is_some_and(|b| self.bytes >= b))
    }

    /// Appends the ESP header, IV, encrypted `payload` with its trailer, and
    /// the ICV to `out`. The IV is the 64-bit sequence number, unique per
    /// key as RFC 4106 §3.1 and RFC 7634 §2 require.
    pub fn seal(
        &mut self,
        now: Instant,
        next_header: IpProtocol,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), IpsecDrop> {
        debug_assert_eq!(self.direction, Direction::Outbound);
        if self.is_hard_expired(now) {
            return Err(IpsecDrop::SaExpired);
        }
        // Without ESN the counter must not cycle (RFC 4303 §3.3.3).
        let limit = if self.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if self.seq >= limit {
            return Err(IpsecDrop::SequenceExhausted);
        }
        self.seq += 1;
        let seq = self.seq;
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&self.spi.to_be_bytes());
        header[4..].copy_from_slice(&(seq as u32).to_be_bytes());
        let iv = seq.to_be_bytes();
        let iv = &iv[..self.cipher.algorithm().iv_len()];
        out.extend_from_slice(&header);
        out.extend_from_slice(iv);
        let body = out.len();
        EspTrailer::frame(payload, next_header, ALIGN, out);
        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        let icv = self.cipher.seal(&header, seq_hi, iv, &mut out[body..]);
        out.extend_from_slice(&icv);
        self.bytes += payload.len() as u64;
        self.packets += 1;
        Ok(())
    }

    /// Checks, verifies and decrypts the ESP packet `esp` (header first),
    /// appending the payload to `out`; returns the trailer's next header.
    /// Replay state only moves once the ICV has verified (RFC 4303 §3.4.3).
    pub fn open(
        &mut self,
        now: Instant,
        esp: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<IpProtocol, IpsecDrop> {
        debug_assert_eq!(self.direction, Direction::Inbound);
        if self.is_hard_expired(now) {
            return Err(IpsecDrop::SaExpired);
        }
        let low = EspPacket::new_checked(esp)
            .map_err(|_| IpsecDrop::Malformed)?
            .sequence();
        let seq = match (&self.replay, self.esn) {
            (Some(w), true) => (u64::from(w.esn_high(low)) << 32) | u64::from(low),
            _ => u64::from(low),
        };
        if let (Some(w), true) = (&self.replay, self.anti_replay) {
            w.check(seq).map_err(IpsecDrop::from)?;
        }
        let seq_hi = self.esn.then_some((seq >> 32) as u32);
        let start = out.len();
        let trailer =
            open_into(&self.cipher, esp, seq_hi, out).inspect_err(|_| out.truncate(start))?;
        if let Some(w) = &mut self.replay {
            w.accept(seq);
        }
        self.bytes += (out.len() - start) as u64;
        self.packets += 1;
        Ok(trailer.next_header)
    }
}

/// Verifies and decrypts into `out`, leaving only the payload there.
fn open_into(
    cipher: &EspCipher,
    esp: &[u8],
    seq_hi: Option<u32>,
    out: &mut Vec<u8>,
) -> Result<EspTrailer, IpsecDrop> {
    let p = EspPacket::new_checked(esp).map_err(|_| IpsecDrop::Malformed)?;
    let parts = p
        .split(cipher.algorithm().iv_len(), ICV_LEN)
        .map_err(|_| IpsecDrop::Malformed)?;
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&esp[..HEADER_LEN]);
    let start = out.len();
    out.extend_from_slice(parts.ciphertext);
    cipher
        .open(&header, seq_hi, parts.iv, &mut out[start..], parts.icv)
        .map_err(|IcvMismatch| IpsecDrop::IcvFailure)?;
    let (payload, trailer) =
        EspTrailer::unframe(&out[start..]).map_err(|_| IpsecDrop::BadTrailer)?;
    let len = payload.len();
    out.truncate(start + len);
    Ok(trailer)
}

/// Keys for reading captures: opens ESP by SPI with no sequence or replay
/// state, as Wireshark's `esp_sa` table does. Extended sequence numbers are
/// taken to have zero high bits.
#[derive(Debug, Default, Clone)]
pub struct EspKeyring {
    keys: Vec<(u32, EspCipher)>,
}

impl EspKeyring {
    pub fn add(&mut self, spi: u32, cipher: EspCipher) {
        self.keys.push((spi, cipher));
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Adds an SA given as Wireshark-like text with strongSwan's algorithm
    /// keywords: `spi=0x201,enc=null,integ=sha256,integ-key=HEX`, or
    /// `spi=0x202,enc=aes128gcm16|aes256gcm16|chacha20poly1305,enc-key=HEX`
    /// (the key followed by its 4-byte salt).
    pub fn add_spec(&mut self, spec: &str) -> Result<(), String> {
        let mut spi = None;
        let (mut enc, mut integ, mut enc_key, mut integ_key) = (None, None, None, None);
        for item in spec.split(',') {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not key=value"))?;
            let v = v.trim();
            match k.trim() {
                "spi" => {
                    let n = match v.strip_prefix("0x") {
                        Some(h) => u32::from_str_radix(h, 16),
                        None => v.parse(),
                    };
                    spi = Some(n.map_err(|_| format!("bad spi {v:?}"))?);
                }
                "enc" => enc = Some(v),
                "integ" => integ = Some(v),
                "enc-key" => enc_key = Some(parse_hex(v).map_err(|e| format!("enc-key: {e}"))?),
                "integ-key" => {
                    integ_key = Some(parse_hex(v).map_err(|e| format!("integ-key: {e}"))?)
                }
                other => {
                    return Err(format!(
                        "unknown field {other:?} (spi, enc, integ, enc-key, integ-key)"
                    ))
                }
            }
        }
        let spi = spi.ok_or("spi= is missing")?;
        let (algorithm, key) = match (enc, integ) {
            (Some("null"), Some("sha256")) => (
                Algorithm::NullSha256,
                integ_key.ok_or("integ-key= is missing")?,
            ),
            (Some("null"), None) => return Err("enc=null needs integ=sha256".to_owned()),
            (Some(e), None) => {
                let a = Algorithm::from_keyword(e)
                    .filter(|a| a.is_confidential())
                    .ok_or_else(|| {
                        format!(
                            "unknown enc {e:?} (null, aes128gcm16, aes256gcm16, chacha20poly1305)"
                        )
                    })?;
                (a, enc_key.ok_or("enc-key= is missing")?)
            }
            (Some(_), Some(i)) => {
                return Err(format!(
                    "integ={i} only goes with enc=null (the AEADs authenticate)"
                ))
            }
            (None, _) => return Err("enc= is missing".to_owned()),
        };
        let cipher = EspCipher::new(algorithm, &key).map_err(|e| e.to_string())?;
        self.add(spi, cipher);
        Ok(())
    }
}

impl EspOpener for EspKeyring {
    fn open(&self, esp: &[u8]) -> Option<Result<(Vec<u8>, EspTrailer), WireError>> {
        let spi = EspPacket::new_checked(esp).ok()?.spi();
        let (_, cipher) = self.keys.iter().find(|(s, _)| *s == spi)?;
        let mut out = Vec::new();
        Some(
            open_into(cipher, esp, None, &mut out)
                .map(|t| (out, t))
                .map_err(|e| match e {
                    IpsecDrop::IcvFailure => WireError::BadChecksum("esp icv"),
                    IpsecDrop::BadTrailer => WireError::BadValue("esp padding"),
                    _ => WireError::Truncated("esp body"),
                }),
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn sa_specs_use_strongswan_keywords() {
        let mut k = EspKeyring::default();
        k.add_spec(&format!(
            "spi=0x201,enc=null,integ=sha256,integ-key=0x{}",
            "ab".repeat(32)
        ))
        .unwrap();
        k.add_spec(&format!(
            "spi=514,enc=aes128gcm16,enc-key={}",
            "01".repeat(20)
        ))
        .unwrap();
        k.add_spec(&format!(
            "spi=0x203,enc=chacha20poly1305,enc-key={}",
            "01".repeat(36)
        ))
        .unwrap();
        assert_eq!(
            k.keys
                .iter()
                .map(|(s, c)| (*s, c.algorithm()))
                .collect::<Vec<_>>(),
            vec![
                (0x201, Algorithm::NullSha256),
                (0x202, Algorithm::Aes128Gcm16),
                (0x203, Algorithm::ChaCha20Poly1305)
            ]
        );
        for (spec, why) in [
            (
                "spi=1,enc=aes128gcm16,enc-key=0011",
                "aes128gcm16 needs a 20-byte key, got 2",
            ),
            ("spi=1,enc=null", "enc=null needs integ=sha256"),
            (
                "spi=1,enc=aes,enc-key=00",
                "unknown enc \"aes\" (null, aes128gcm16, aes256gcm16, chacha20poly1305)",
            ),
            (
                "spi=1,enc=aes128gcm16,integ=sha256",
                "integ=sha256 only goes with enc=null (the AEADs authenticate)",
            ),
            ("enc=null,integ=sha256", "spi= is missing"),
            ("spi=x", "bad spi \"x\""),
            (
                "spi=1,key=00",
                "unknown field \"key\" (spi, enc, integ, enc-key, integ-key)",
            ),
            (
                "spi=1,enc=null,integ=sha256,integ-key=0g",
                "integ-key: not hex: \"0g\"",
            ),
        ] {
            assert_eq!(k.add_spec(spec), Err(why.to_owned()), "{spec}");
        }
    }
}
