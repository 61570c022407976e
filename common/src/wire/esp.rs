//! ESP framing (RFC 4303 §2), without any cryptography: the cleartext
//! header, the opaque body (IV, ciphertext, ICV), and the trailer found
//! inside the plaintext once a cipher has opened it.
//!
//! ```text
//! +---------------------------------------------------------------+
//! |               Security Parameters Index (SPI)                 |
//! +---------------------------------------------------------------+
//! |                      Sequence Number                          |
//! +---------------------------------------------------------------+ --
//! |                IV (optional) + Payload Data                   |  ^ encrypted
//! +               +-----------------------------------------------+  |
//! |               |     Padding (0-255 bytes)                     |  |
//! +---------------+---------------+---------------+---------------+  |
//! |                               |  Pad Length   | Next Header   |  v
//! +---------------------------------------------------------------+ --
//! |         Integrity Check Value (ICV, variable)                 |
//! +---------------------------------------------------------------+
//! ```

use core::fmt;

use super::ipv6::IpProtocol;
use super::{be32, WireError};

/// SPI and sequence number.
pub const HEADER_LEN: usize = 8;

/// A read/write view of an ESP packet.
#[derive(Debug, Clone)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        EspPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<(), WireError> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated("esp header"));
        }
        Ok(())
    }

    pub fn spi(&self) -> u32 {
        be32(self.buffer.as_ref(), 0)
    }

    pub fn sequence(&self) -> u32 {
        be32(self.buffer.as_ref(), 4)
    }

    /// IV, ciphertext and ICV.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Splits the body into IV, ciphertext and ICV for a transform with
    /// those IV and ICV lengths.
    pub fn split(&self, iv_len: usize, icv_len: usize) -> Result<EspParts<'_>, WireError> {
        let body = self.body();
        if body.len() < iv_len + icv_len + 2 {
            return Err(WireError::Truncated("esp body"));
        }
        let (iv, rest) = body.split_at(iv_len);
        let (ciphertext, icv) = rest.split_at(rest.len() - icv_len);
        Ok(EspParts {
            iv,
            ciphertext,
            icv,
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    pub fn set_spi(&mut self, v: u32) {
        self.buffer.as_mut()[0..4].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_sequence(&mut self, v: u32) {
        self.buffer.as_mut()[4..8].copy_from_slice(&v.to_be_bytes());
    }

    pub fn body_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The body of an ESP packet cut for a given transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspParts<'a> {
    pub iv: &'a [u8],
    /// Payload, padding, pad length and next header, encrypted.
    pub ciphertext: &'a [u8],
    pub icv: &'a [u8],
}

/// An ESP packet as values; the body is opaque without the SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspRepr {
    pub spi: u32,
    pub sequence: u32,
    pub body: Vec<u8>,
}

impl EspRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &EspPacket<T>) -> Result<Self, WireError> {
        p.check_len()?;
        if p.spi() == 0 {
            // SPI 0 is reserved for local use and never on the wire (§2.1).
            return Err(WireError::BadValue("esp spi"));
        }
        Ok(EspRepr {
            spi: p.spi(),
            sequence: p.sequence(),
            body: p.body().to_vec(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body.len()
    }

    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut EspPacket<T>) {
        p.set_spi(self.spi);
        p.set_sequence(self.sequence);
        p.body_mut()[..self.body.len()].copy_from_slice(&self.body);
    }
}

impl fmt::Display for EspRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ESP spi={:#010x} seq={} ({} bytes)",
            self.spi,
            self.sequence,
            self.body.len()
        )
    }
}

/// The trailer at the end of the plaintext (§2.4 – §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspTrailer {
    pub pad_len: u8,
    pub next_header: IpProtocol,
}

impl EspTrailer {
    /// Appends `payload`, the default padding (1, 2, 3, …) and the trailer
    /// so that the result is a multiple of `align` (the cipher block size,
    /// at least 4: §2.4).
    pub fn frame(payload: &[u8], next_header: IpProtocol, align: usize, out: &mut Vec<u8>) {
        let align = align.max(4);
        let pad = (align - (payload.len() + 2) % align) % align;
        out.extend_from_slice(payload);
        out.extend((1..=pad).map(|i| i as u8));
        out.push(pad as u8);
        out.push(next_header.into());
    }

    /// Splits a plaintext into payload and trailer, checking the default
    /// padding bytes (§2.4: 1, 2, 3, …).
    pub fn unframe(plain: &[u8]) -> Result<(&[u8], EspTrailer), WireError> {
        let n = plain.len();
        if n < 2 {
            return Err(WireError::Truncated("esp trailer"));
        }
        let pad_len = plain[n - 2];
        let pad_start = n
            .checked_sub(2 + usize::from(pad_len))
            .ok_or(WireError::BadLength("esp pad length"))?;
        if !plain[pad_start..n - 2]
            .iter()
            .enumerate()
            .all(|(i, &b)| usize::from(b) == i + 1)
        {
            return Err(WireError::BadValue("esp padding"));
        }
        let trailer = EspTrailer {
            pad_len,
            next_header: plain[n - 1].into(),
        };
        Ok((&plain[..pad_start], trailer))
    }
}

/// Decrypts ESP for a decoder: the wire layer holds no keys, so whoever
/// does (see `ipsec::EspKeyring`) implements this.
pub trait EspOpener {
    /// `None` when `esp` (header first) is not for one of our SPIs;
    /// otherwise the payload and trailer, or why they could not be had.
    fn open(&self, esp: &[u8]) -> Option<Result<(Vec<u8>, EspTrailer), WireError>>;
}

#[cfg(test)]
mod test {
    use super::*;

    // RFC 4303 §2.4: 5 payload bytes + 2 trailer bytes pad to 8 with one
    // padding byte of value 1; with an 8-byte block, 5 + 2 → 8 also.
    #[test]
    fn frame_and_unframe() {
        let mut out = Vec::new();
        EspTrailer::frame(b"hello", IpProtocol::Mobility, 4, &mut out);
        assert_eq!(out, b"hello\x01\x01\x87");
        let (payload, t) = EspTrailer::unframe(&out).unwrap();
        assert_eq!(payload, b"hello");
        assert_eq!(
            t,
            EspTrailer {
                pad_len: 1,
                next_header: IpProtocol::Mobility
            }
        );
        out.clear();
        EspTrailer::frame(b"hello!", IpProtocol::Udp, 16, &mut out);
        assert_eq!(out.len(), 16);
        assert_eq!(&out[6..], b"\x01\x02\x03\x04\x05\x06\x07\x08\x08\x11");
    }

    #[test]
    fn bad_padding_and_length() {
        assert_eq!(
            EspTrailer::unframe(b"ab\x02\x01\x02\x3b"),
            Err(WireError::BadValue("esp padding"))
        );
        assert_eq!(
            EspTrailer::unframe(b"\x09\x3b"),
            Err(WireError::BadLength("esp pad length"))
        );
        assert_eq!(
            EspTrailer::unframe(b"\x00"),
            Err(WireError::Truncated("esp trailer"))
        );
    }

    #[test]
    fn header_and_split() {
        let b = [0, 0, 2, 1, 0, 0, 0, 7, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
        let p = EspPacket::new_checked(&b[..]).unwrap();
        let r = EspRepr::parse(&p).unwrap();
        assert_eq!((r.spi, r.sequence), (0x201, 7));
        assert_eq!(
            p.split(1, 2).unwrap(),
            EspParts {
                iv: &b[8..9],
                ciphertext: &b[9..12],
                icv: &b[12..14]
            }
        );
        assert!(p.split(4, 4).is_err());
        for n in 0..8 {
            assert!(EspPacket::new_checked(&b[..n]).is_err());
        }
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut EspPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
    }
}
