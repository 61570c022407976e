//! The IPv6 fixed header (RFC 8200 §3).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Traffic Class |           Flow Label                  |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Source Address (16)  Destination Address (16) |
//! ```
//!
//! Unlike smoltcp's `Ipv6Repr`, ours keeps the traffic class and flow label,
//! so that a packet we did not build re-encodes to the same bytes.

use core::fmt;
use core::net::Ipv6Addr;

use super::{addr6, be16, Field, WireError};

enum_with_unknown! {
    /// IP protocol numbers / IPv6 Next Header values (IANA).
    pub enum IpProtocol(u8) {
        HopByHop = 0,
        Icmp = 1,
        Ipv4 = 4,
        Tcp = 6,
        Udp = 17,
        Ipv6 = 41,
        Routing = 43,
        Fragment = 44,
        Esp = 50,
        Ah = 51,
        Icmpv6 = 58,
        NoNextHeader = 59,
        DestOpts = 60,
        /// RFC 6275 §6.1.
        Mobility = 135,
    }
}

mod field {
    use super::Field;
    pub const VER_TC_FLOW: Field = 0..4;
    pub const PAYLOAD_LEN: Field = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = field::DST.end;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// The buffer holds the fixed header and the payload length it announces.
    /// A longer buffer (link padding) is accepted; [`Self::payload`] ignores
    /// the excess.
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(WireError::Truncated("ipv6 header"));
        }
        if len < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(WireError::Truncated("ipv6 payload"));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }

    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (u32::from(b[1] & 0x0f) << 16) | u32::from(be16(b, 2))
    }

    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::PAYLOAD_LEN.start)
    }

    pub fn next_header(&self) -> IpProtocol {
        self.buffer.as_ref()[field::NEXT_HEADER].into()
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        addr6(self.buffer.as_ref(), field::SRC.start)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        addr6(self.buffer.as_ref(), field::DST.start)
    }

    /// The payload, as long as the header says.
    pub fn payload(&self) -> &[u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[HEADER_LEN..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    pub fn set_version_tc_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&v.to_be_bytes());
    }

    pub fn set_next_header(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = v.into();
    }

    pub fn set_hop_limit(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = v;
    }

    pub fn set_src_addr(&mut self, v: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&v.octets());
    }

    pub fn set_dst_addr(&mut self, v: Ipv6Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&v.octets());
    }
}

/// The fixed header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
    pub next_header: IpProtocol,
    pub payload_len: u16,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

impl Ipv6Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Ipv6Packet<T>) -> Result<Self, WireError> {
        p.check_len()?;
        if p.version() != 6 {
            return Err(WireError::BadValue("ipv6 version"));
        }
        Ok(Ipv6Repr {
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            src: p.src_addr(),
            dst: p.dst_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header; the payload is the caller's.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Ipv6Packet<T>) {
        p.set_version_tc_flow(self.traffic_class, self.flow_label);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

impl fmt::Display for Ipv6Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv6 {} > {} nxt={} len={} hlim={}",
            self.src, self.dst, self.next_header, self.payload_len, self.hop_limit
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // scapy 2.5: raw(IPv6(src="2001:db8::1", dst="2001:db8::2", tc=0xb8,
    // fl=0x12345, hlim=9, nh=59)/Raw(b"ab"))
    const BYTES: &str = "6b81234500023b0920010db8000000000000000000000001\
                         20010db80000000000000000000000026162";

    fn bytes() -> Vec<u8> {
        hex::decode(BYTES.replace(' ', "")).unwrap()
    }

    fn repr() -> Ipv6Repr {
        Ipv6Repr {
            traffic_class: 0xb8,
            flow_label: 0x12345,
            next_header: IpProtocol::NoNextHeader,
            payload_len: 2,
            hop_limit: 9,
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
        }
    }

    #[test]
    fn parse_and_emit() {
        let b = bytes();
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv6Repr::parse(&p).unwrap(), repr());
        assert_eq!(p.payload(), b"ab");
        let mut out = vec![0u8; 40];
        repr().emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b[..40]);
    }

    #[test]
    fn every_truncation_fails() {
        let b = bytes();
        for n in 0..b.len() {
            assert!(Ipv6Packet::new_checked(&b[..n]).is_err(), "len {n}");
        }
    }

    #[test]
    fn version_must_be_6() {
        let mut b = bytes();
        b[0] = 0x4b;
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            Ipv6Repr::parse(&p),
            Err(WireError::BadValue("ipv6 version"))
        );
    }
}
