//! The two Neighbor Discovery messages a mobile node needs to find its
//! link's prefix (RFC 4861 §4.1, §4.2, §4.6.2): Router Solicitation and
//! Router Advertisement with one Prefix Information option.

use core::net::Ipv6Addr;

use crate::wire::icmpv6::Icmpv6Repr;
use crate::wire::{PacketRepr, UpperRepr};

pub const ROUTER_SOLICITATION: u8 = 133;
pub const ROUTER_ADVERTISEMENT: u8 = 134;
const PREFIX_INFORMATION: u8 = 3;
/// ff02::1 and ff02::2.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// Neighbor Discovery packets carry hop limit 255 (RFC 4861 §6.1).
const ND_HOP_LIMIT: u8 = 255;

fn nd_packet(src: Ipv6Addr, dst: Ipv6Addr, msg_type: u8, body: Vec<u8>) -> PacketRepr {
    let mut p = PacketRepr::ipv6(
        src,
        dst,
        vec![],
        UpperRepr::Icmpv6(Icmpv6Repr {
            msg_type,
            code: 0,
            body,
        }),
    );
    if let crate::wire::IpRepr::V6 { header, .. } = &mut p.ip {
        header.hop_limit = ND_HOP_LIMIT;
    }
    p
}

/// A Router Solicitation from the unspecified address (we have none yet).
pub fn router_solicitation() -> PacketRepr {
    nd_packet(
        Ipv6Addr::UNSPECIFIED,
        ALL_ROUTERS,
        ROUTER_SOLICITATION,
        vec![0; 4],
    )
}

/// A Router Advertisement of an autoconfiguration /64 `prefix`, router
/// lifetime 1800 s.
pub fn router_advertisement(src: Ipv6Addr, dst: Ipv6Addr, prefix: Ipv6Addr) -> PacketRepr {
    let mut body = vec![64, 0];
    body.extend_from_slice(&1800u16.to_be_bytes());
    body.extend_from_slice(&[0; 8]);
    body.extend_from_slice(&[PREFIX_INFORMATION, 4, 64, 0xc0]);
    body.extend_from_slice(&86400u32.to_be_bytes());
    body.extend_from_slice(&14400u32.to_be_bytes());
    body.extend_from_slice(&[0; 4]);
    body.extend_from_slice(&prefix.octets());
    nd_packet(src, dst, ROUTER_ADVERTISEMENT, body)
}

/// The first /64 prefix for autonomous configuration in an RA.
pub fn advertised_prefix(icmp: &Icmpv6Repr) -> Option<Ipv6Addr> {
    if icmp.msg_type != ROUTER_ADVERTISEMENT || icmp.code != 0 {
        return None;
    }
    let mut opts = icmp.body.get(12..)?;
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            return None;
        }
        let autonomous = opts.get(3).is_some_and(|f| f & 0x40 != 0);
        if opts[0] == PREFIX_INFORMATION && len == 32 && opts[2] == 64 && autonomous {
            let mut a = [0u8; 16];
            a.copy_from_slice(&opts[16..32]);
            return Some(Ipv6Addr::from(a));
        }
        opts = &opts[len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_prefix_round_trips_and_refuses_bad_lengths() {
        let p: Ipv6Addr = "2001:db8:2::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED);
        let ra = router_advertisement(Ipv6Addr::LOCALHOST, ALL_NODES, p);
        let UpperRepr::Icmpv6(icmp) = &ra.upper else {
            panic!("not icmp")
        };
        assert_eq!(advertised_prefix(icmp), Some(p));
        let mut bad = icmp.clone();
        bad.body[13] = 0;
        assert_eq!(advertised_prefix(&bad), None);
        bad.body[13] = 9;
        assert_eq!(advertised_prefix(&bad), None);
    }
}
