//! The Internet checksum (RFC 1071) and the pseudo-headers of RFC 8200 §8.1
//! and RFC 768/793 for IPv4. Mobile IPv6 changes which addresses go in the
//! IPv6 pseudo-header (RFC 6275 §6.1.1, §6.3, §6.4): see
//! [`crate::wire::packet`], which picks them.

use core::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` folded into 16 bits, not inverted.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    fold(acc)
}

fn fold(mut acc: u32) -> u32 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// The sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc += len >> 16;
    acc += len & 0xffff;
    acc += u32::from(next_header);
    fold(acc)
}

/// The sum of the IPv4 pseudo-header (RFC 768).
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    fold(acc + u32::from(protocol) + u32::from(len))
}

/// Final checksum value to write: the inverted sum.
pub fn finish(acc: u32) -> u16 {
    !(fold(acc) as u16)
}

/// Source and destination addresses that an upper-layer checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PseudoHeader {
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
}

impl PseudoHeader {
    /// The checksum of `data` (checksum field zeroed or included) under this
    /// pseudo-header for protocol `proto`. Over a packet that already carries
    /// a correct checksum the result is 0.
    pub fn checksum(&self, proto: u8, data: &[u8]) -> u16 {
        let acc = match self {
            PseudoHeader::V6 { src, dst } => pseudo_header_v6(
                src,
                dst,
                proto,
                u32::try_from(data.len()).unwrap_or(u32::MAX),
            ),
            PseudoHeader::V4 { src, dst } => pseudo_header_v4(
                src,
                dst,
                proto,
                u16::try_from(data.len()).unwrap_or(u16::MAX),
            ),
        };
        finish(sum(acc, data))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        assert_eq!(
            sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(sum(0, &[0x12]), 0x1200);
    }
}
