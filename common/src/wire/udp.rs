//! UDP (RFC 768), the carrier of IKEv2 (ports 500 and 4500) and of
//! UDP-encapsulated ESP (RFC 3948).
//!
//! ```text
//! |          Source Port          |       Destination Port        |
//! |            Length             |           Checksum            |
//! ```

use core::fmt;

use super::checksum::PseudoHeader;
use super::ipv6::IpProtocol;
use super::{be16, WireError};

pub const HEADER_LEN: usize = 8;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The Length field equals the buffer (the IP payload) and is at least 8.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated("udp header"));
        }
        if usize::from(self.len()) != b.len() {
            return Err(WireError::BadLength("udp length"));
        }
        Ok(())
    }

    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }

    pub fn is_empty(&self) -> bool {
        self.len() as usize <= HEADER_LEN
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Over IPv6 a zero checksum is invalid (RFC 8200 §8.1); over IPv4 it
    /// means "none".
    pub fn verify_checksum(&self, ph: &PseudoHeader) -> bool {
        if self.checksum() == 0 {
            return matches!(ph, PseudoHeader::V4 { .. });
        }
        ph.checksum(IpProtocol::Udp.into(), self.buffer.as_ref()) == 0
    }
}

/// The UDP ports; length and checksum are derived on emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &UdpPacket<T>) -> Result<Self, WireError> {
        p.check_len()?;
        Ok(UdpRepr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Appends the header and `payload`, with the checksum under `ph`.
    pub fn emit(&self, payload: &[u8], ph: &PseudoHeader, out: &mut Vec<u8>) {
        let start = out.len();
        let len = u16::try_from(HEADER_LEN + payload.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&self.src_port.to_be_bytes());
        out.extend_from_slice(&self.dst_port.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(payload);
        let mut c = ph.checksum(IpProtocol::Udp.into(), &out[start..]);
        if c == 0 {
            c = 0xffff;
        }
        out[start + 6..start + 8].copy_from_slice(&c.to_be_bytes());
    }
}

impl fmt::Display for UdpRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UDP {} > {}", self.src_port, self.dst_port)
    }
}
