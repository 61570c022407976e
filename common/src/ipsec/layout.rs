//! Where things are in a packet, for IPsec: the selector values (RFC 4301
//! §4.4.1.1, with the Mobility Header type) and where ESP goes in transport
//! mode.
//!
//! Addresses follow Mobile IPv6: a Home Address option makes the home
//! address the source, and a type 2 routing header with segments left makes
//! its home address the destination (RFC 6275 §6.3, §6.4). So a BU sent from
//! a care-of address matches selectors written for the home address, as
//! RFC 3776 §4 and draft-dupont-mipv6-cn-ipsec §2 require.

use core::net::IpAddr;

use crate::wire::ipv6::{self, IpProtocol};
use crate::wire::{addr6, ExtHeader, ExtHeaderRepr, WireError};

/// The selector values of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketSelectors {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The upper-layer protocol after every extension header (ESP if the
    /// packet is protected).
    pub protocol: IpProtocol,
    /// TCP/UDP ports; `None` for other protocols and non-first fragments
    /// ("OPAQUE", RFC 4301 §4.4.1.1).
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// ICMPv6 type and code.
    pub icmp: Option<(u8, u8)>,
    /// Mobility Header type.
    pub mh_type: Option<u8>,
}

/// The layout of an IP packet.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub selectors: PacketSelectors,
    /// The addresses in the IP header.
    pub wire_src: IpAddr,
    pub wire_dst: IpAddr,
    /// Offset of the upper-layer header.
    pub upper_offset: usize,
    /// Offset of the Next Header byte that names the upper layer.
    pub upper_next_header_at: usize,
    /// End of the packet as its IP header gives it (link padding excluded).
    pub end: usize,
    /// Where a transport-mode ESP header goes: after the headers that
    /// routers or the Mobile IPv6 layer process (hop-by-hop, routing,
    /// fragment, a Destination Options header with a HAO or ahead of a
    /// routing header).
    pub esp_offset: usize,
    /// Offset of the Next Header byte that names what is at `esp_offset`.
    pub esp_next_header_at: usize,
    /// The protocol at `esp_offset`.
    pub esp_next_header: IpProtocol,
}

/// How many IPv6 extension headers we walk before giving up.
const MAX_EXT: usize = 16;

impl Layout {
    pub fn parse(b: &[u8]) -> Result<Layout, WireError> {
        match b.first().map(|v| v >> 4) {
            Some(6) => Self::ipv6(b),
            Some(4) => Self::ipv4(b),
            Some(_) => Err(WireError::BadValue("ip version")),
            None => Err(WireError::Truncated("ip header")),
        }
    }

    fn ipv6(b: &[u8]) -> Result<Layout, WireError> {
        let p = ipv6::Ipv6Packet::new_checked(b)?;
        let (wire_src, wire_dst) = (p.src_addr(), p.dst_addr());
        let (mut src, mut dst) = (wire_src, wire_dst);
        let end = ipv6::HEADER_LEN + usize::from(p.payload_len());
        let b = &b[..end];
        let mut next = p.next_header();
        let mut at = ipv6::HEADER_LEN;
        // (offset, next-header byte offset, protocol) after the last header
        // that must stay ahead of ESP.
        let mut split = (at, 6, next);
        let mut nh_at = 6;
        let mut first_fragment = true;
        for _ in 0..=MAX_EXT {
            if !ExtHeaderRepr::is_ext(next) {
                break;
            }
            let (h, following, len) = ExtHeader::parse(next, &b[at..])?;
            let keep = match h {
                ExtHeader::HopByHop(o) => {
                    // Walked only to check its options.
                    o.home_address()?;
                    true
                }
                ExtHeader::Fragment(f) => {
                    first_fragment = f.offset == 0;
                    true
                }
                ExtHeader::Routing {
                    routing_type,
                    segments_left,
                    data,
                } => {
                    if routing_type == 2 && segments_left > 0 {
                        dst = addr6(data, 4);
                    }
                    true
                }
                // A Destination Options header ahead of a routing header is
                // also kept, since the routing header after it is.
                ExtHeader::DestOpts(o) => o.home_address()?.inspect(|hoa| src = *hoa).is_some(),
            };
            if keep {
                split = (at + len, at, following);
            }
            nh_at = at;
            at += len;
            next = following;
        }
        if ExtHeaderRepr::is_ext(next) {
            return Err(WireError::BadValue("too many extension headers"));
        }
        let upper = &b[at..];
        let selectors = upper_selectors(src.into(), dst.into(), next, upper, first_fragment);
        Ok(Layout {
            selectors,
            wire_src: wire_src.into(),
            wire_dst: wire_dst.into(),
            upper_offset: at,
            upper_next_header_at: nh_at,
            end,
            esp_offset: split.0,
            esp_next_header_at: split.1,
            esp_next_header: split.2,
        })
    }

    fn ipv4(b: &[u8]) -> Result<Layout, WireError> {
        let p = crate::wire::Ipv4Packet::new_checked(b)?;
        // A corrupt header must not come out of IPsec with a fresh checksum.
        if !p.header_checksum_ok() {
            return Err(WireError::BadChecksum("ipv4 header"));
        }
        let hl = p.header_len();
        let proto = IpProtocol::from(b[9]);
        let fragment = u16::from_be_bytes([b[6], b[7]]) & 0x1fff;
        let src = IpAddr::from([b[12], b[13], b[14], b[15]]);
        let dst = IpAddr::from([b[16], b[17], b[18], b[19]]);
        let end = usize::from(p.total_len());
        let upper = &b[hl..end];
        Ok(Layout {
            selectors: upper_selectors(src, dst, proto, upper, fragment == 0),
            wire_src: src,
            wire_dst: dst,
            upper_offset: hl,
            upper_next_header_at: 9,
            end,
            esp_offset: hl,
            esp_next_header_at: 9,
            esp_next_header: proto,
        })
    }
}

fn upper_selectors(
    src: IpAddr,
    dst: IpAddr,
    protocol: IpProtocol,
    upper: &[u8],
    first_fragment: bool,
) -> PacketSelectors {
    let mut s = PacketSelectors {
        src,
        dst,
        protocol,
        src_port: None,
        dst_port: None,
        icmp: None,
        mh_type: None,
    };
    if !first_fragment {
        return s;
    }
    match protocol {
        IpProtocol::Tcp | IpProtocol::Udp if upper.len() >= 4 => {
            s.src_port = Some(u16::from_be_bytes([upper[0], upper[1]]));
            s.dst_port = Some(u16::from_be_bytes([upper[2], upper[3]]));
        }
        IpProtocol::Icmpv6 if upper.len() >= 2 => s.icmp = Some((upper[0], upper[1])),
        IpProtocol::Mobility if upper.len() >= 3 => s.mh_type = Some(upper[2]),
        _ => {}
    }
    s
}
