//! The IPv4 header (RFC 791 §3.1), for IPv4 inner packets and for IKE over
//! IPv4.
//!
//! ```text
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options (IHL > 5)                          |
//! ```

use core::fmt;
use core::net::Ipv4Addr;

use super::checksum;
use super::ipv6::IpProtocol;
use super::{be16, WireError};

/// A read view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Header and announced total length fit the buffer; IHL ≥ 5.
    pub fn check_len(&self) -> Result<(), WireError> {
        let b = self.buffer.as_ref();
        if b.len() < 20 {
            return Err(WireError::Truncated("ipv4 header"));
        }
        if self.header_len() < 20 {
            return Err(WireError::BadLength("ipv4 ihl"));
        }
        if usize::from(self.total_len()) < self.header_len() {
            return Err(WireError::BadLength("ipv4 total length"));
        }
        if b.len() < usize::from(self.total_len()) {
            return Err(WireError::Truncated("ipv4 payload"));
        }
        Ok(())
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }

    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }

    pub fn header_checksum_ok(&self) -> bool {
        checksum::finish(checksum::sum(0, &self.buffer.as_ref()[..self.header_len()])) == 0
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

/// An IPv4 header as values (total length and checksum are derived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub tos: u8,
    pub ident: u16,
    /// Flags (3 bits) and fragment offset (13 bits) as on the wire.
    pub flags_fragment: u16,
    pub ttl: u8,
    pub protocol: IpProtocol,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Raw options, a multiple of 4 bytes.
    pub options: Vec<u8>,
}

impl Ipv4Repr {
    /// Parses the header; the header checksum is not checked here
    /// ([`Ipv4Packet::header_checksum_ok`]).
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv4Packet<T>) -> Result<Self, WireError> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(WireError::BadValue("ipv4 version"));
        }
        let b = p.buffer.as_ref();
        Ok(Ipv4Repr {
            tos: b[1],
            ident: be16(b, 4),
            flags_fragment: be16(b, 6),
            ttl: b[8],
            protocol: b[9].into(),
            src: Ipv4Addr::new(b[12], b[13], b[14], b[15]),
            dst: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
            options: b[20..p.header_len()].to_vec(),
        })
    }

    pub fn buffer_len(&self) -> usize {
        20 + self.options.len()
    }

    /// Appends the header for a payload of `payload_len` bytes.
    pub fn emit(&self, payload_len: usize, out: &mut Vec<u8>) {
        let start = out.len();
        let hl = self.buffer_len();
        let total = u16::try_from(hl + payload_len).unwrap_or(u16::MAX);
        out.push(0x40 | (hl / 4) as u8);
        out.push(self.tos);
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&self.ident.to_be_bytes());
        out.extend_from_slice(&self.flags_fragment.to_be_bytes());
        out.extend_from_slice(&[self.ttl, self.protocol.into(), 0, 0]);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
        out.extend_from_slice(&self.options);
        let c = checksum::finish(checksum::sum(0, &out[start..]));
        out[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
    }
}

impl fmt::Display for Ipv4Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv4 {} > {} proto={} ttl={}",
            self.src, self.dst, self.protocol, self.ttl
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // scapy 2.5: raw(IP(src="192.0.2.1", dst="192.0.2.2", id=1, ttl=64, proto=17)/Raw(b"xy"))
    const BYTES: &str = "45000016000100004011f6d2c0000201c00002027879";

    #[test]
    fn parse_and_emit() {
        let b = hex::decode(BYTES).unwrap();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.header_checksum_ok());
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.protocol, IpProtocol::Udp);
        assert_eq!(r.src, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.payload(), b"xy");
        let mut out = Vec::new();
        r.emit(2, &mut out);
        assert_eq!(out, b[..20]);
        for n in 0..b.len() {
            assert!(Ipv4Packet::new_checked(&b[..n]).is_err());
        }
    }
}
