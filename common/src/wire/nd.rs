//! Neighbor Discovery messages (RFC 4861 §4) and the options a node on an
//! Ethernet link needs (§4.6), with Mobile IPv6's additions (RFC 6275
//! §7): the Home Agent flag of a Router Advertisement, the Router Address
//! flag of a Prefix Information option and the Advertisement Interval
//! option. They travel as ICMPv6 bodies: [`NdRepr::parse`] reads an
//! [`Icmpv6Repr`], [`NdRepr::to_icmpv6`] makes one.
//!
//! ```text
//! RS:  | 133 | 0 | checksum | reserved (4)                               | options
//! RA:  | 134 | 0 | checksum | hop limit | M O H | router lifetime (2)  |
//!      | reachable time (4) | retrans timer (4)                          | options
//! NS:  | 135 | 0 | checksum | reserved (4) | target address (16)        | options
//! NA:  | 136 | 0 | checksum | R S O | reserved (3) | target (16)        | options
//! option: | type | length in units of 8 octets | data |
//! ```
//!
//! Checks that need the IP header (hop limit 255, the source and
//! destination rules of §6.1 and §7.1) are the receiver's; those that need
//! only the message are here.

use core::net::Ipv6Addr;

use super::icmpv6::Icmpv6Repr;
use super::mac::MacAddr;
use super::{addr6, be16, be32, WireError};

pub const ROUTER_SOLICITATION: u8 = 133;
pub const ROUTER_ADVERTISEMENT: u8 = 134;
pub const NEIGHBOR_SOLICITATION: u8 = 135;
pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;

/// Neighbor Discovery packets carry hop limit 255 (RFC 4861 §6.1, §7.1).
pub const ND_HOP_LIMIT: u8 = 255;

pub(crate) mod option {
    pub const SOURCE_LL: u8 = 1;
    pub const TARGET_LL: u8 = 2;
    pub const PREFIX_INFORMATION: u8 = 3;
    pub const MTU: u8 = 5;
    /// RFC 6275 §7.3.
    pub const ADVERTISEMENT_INTERVAL: u8 = 7;
}

/// Router Advertisement flags (RFC 4861 §4.2, RFC 6275 §7.1).
pub mod ra_flags {
    pub const MANAGED: u8 = 0x80;
    pub const OTHER: u8 = 0x40;
    /// The router is a home agent on this link.
    pub const HOME_AGENT: u8 = 0x20;
}

/// Neighbor Advertisement flags (RFC 4861 §4.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NaFlags {
    /// The sender is a router.
    pub router: bool,
    /// An answer to a Neighbor Solicitation.
    pub solicited: bool,
    /// Replace a cached link-layer address.
    pub override_: bool,
}

/// A Prefix Information option (RFC 4861 §4.6.2, RFC 6275 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixInfo {
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: usable for stateless autoconfiguration.
    pub autonomous: bool,
    /// R: `prefix` is the router's full address (RFC 6275 §7.2).
    pub router_address: bool,
    /// Seconds; `u32::MAX` is infinity.
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
}

impl PrefixInfo {
    /// An on-link, autonomous /64 with the lifetimes RFC 4861 §6.2.1
    /// suggests (30 days valid, 7 days preferred).
    pub fn slaac(prefix: Ipv6Addr) -> Self {
        PrefixInfo {
            prefix,
            prefix_len: 64,
            on_link: true,
            autonomous: true,
            router_address: false,
            valid_lifetime: 2_592_000,
            preferred_lifetime: 604_800,
        }
    }
}

/// A Router Advertisement's fields and the options we model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    pub hop_limit: u8,
    /// [`ra_flags`] bits.
    pub flags: u8,
    /// Seconds; 0: not a default router.
    pub router_lifetime: u16,
    /// Milliseconds; 0: unspecified.
    pub reachable_time: u32,
    pub retrans_timer: u32,
    pub source_ll: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub prefixes: Vec<PrefixInfo>,
    /// RFC 6275 §7.3: the longest time between unsolicited RAs, in ms.
    pub advertisement_interval: Option<u32>,
}

/// One Neighbor Discovery message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdRepr {
    RouterSolicit {
        source_ll: Option<MacAddr>,
    },
    RouterAdvert(RouterAdvert),
    NeighborSolicit {
        target: Ipv6Addr,
        source_ll: Option<MacAddr>,
    },
    NeighborAdvert {
        flags: NaFlags,
        target: Ipv6Addr,
        target_ll: Option<MacAddr>,
    },
}

/// The options of a message, read once.
#[derive(Default)]
struct Options {
    source_ll: Option<MacAddr>,
    target_ll: Option<MacAddr>,
    mtu: Option<u32>,
    prefixes: Vec<PrefixInfo>,
    advertisement_interval: Option<u32>,
}

fn mac(b: &[u8]) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&b[..6]);
    MacAddr(m)
}

/// RFC 4861 §4.6: every option is at least 8 octets; a length of 0 makes
/// the whole message invalid. Unknown options are skipped (§6.1, §7.1).
fn parse_options(mut b: &[u8]) -> Result<Options, WireError> {
    let mut o = Options::default();
    while !b.is_empty() {
        if b.len() < 2 {
            return Err(WireError::Truncated("nd option header"));
        }
        let len = usize::from(b[1]) * 8;
        if len == 0 {
            return Err(WireError::BadLength("nd option length 0"));
        }
        let Some(opt) = b.get(..len) else {
            return Err(WireError::Truncated("nd option"));
        };
        match opt[0] {
            option::SOURCE_LL if len == 8 => o.source_ll = Some(mac(&opt[2..])),
            option::TARGET_LL if len == 8 => o.target_ll = Some(mac(&opt[2..])),
            option::PREFIX_INFORMATION => {
                if len != 32 {
                    return Err(WireError::BadLength("prefix information option"));
                }
                o.prefixes.push(PrefixInfo {
                    prefix_len: opt[2],
                    on_link: opt[3] & 0x80 != 0,
                    autonomous: opt[3] & 0x40 != 0,
                    router_address: opt[3] & 0x20 != 0,
                    valid_lifetime: be32(opt, 4),
                    preferred_lifetime: be32(opt, 8),
                    prefix: addr6(opt, 16),
                });
            }
            option::MTU if len == 8 => o.mtu = Some(be32(opt, 4)),
            option::ADVERTISEMENT_INTERVAL if len == 8 => {
                o.advertisement_interval = Some(be32(opt, 4));
            }
            _ => {}
        }
        b = &b[len..];
    }
    Ok(o)
}

fn emit_ll(out: &mut Vec<u8>, kind: u8, m: Option<MacAddr>) {
    if let Some(m) = m {
        out.extend_from_slice(&[kind, 1]);
        out.extend_from_slice(&m.0);
    }
}

impl NdRepr {
    /// Reads a Neighbor Discovery message; `Ok(None)` for other ICMPv6
    /// types.
    pub fn parse(icmp: &Icmpv6Repr) -> Result<Option<NdRepr>, WireError> {
        let b = &icmp.body[..];
        let fixed = match icmp.msg_type {
            ROUTER_SOLICITATION => 4,
            ROUTER_ADVERTISEMENT => 12,
            NEIGHBOR_SOLICITATION | NEIGHBOR_ADVERTISEMENT => 20,
            _ => return Ok(None),
        };
        // RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2.
        if icmp.code != 0 {
            return Err(WireError::BadValue("nd code"));
        }
        if b.len() < fixed {
            return Err(WireError::Truncated("nd message"));
        }
        let o = parse_options(&b[fixed..])?;
        let repr = match icmp.msg_type {
            ROUTER_SOLICITATION => NdRepr::RouterSolicit {
                source_ll: o.source_ll,
            },
            ROUTER_ADVERTISEMENT => NdRepr::RouterAdvert(RouterAdvert {
                hop_limit: b[0],
                flags: b[1],
                router_lifetime: be16(b, 2),
                reachable_time: be32(b, 4),
                retrans_timer: be32(b, 8),
                source_ll: o.source_ll,
                mtu: o.mtu,
                prefixes: o.prefixes,
                advertisement_interval: o.advertisement_interval,
            }),
            NEIGHBOR_SOLICITATION => {
                let target = addr6(b, 4);
                if target.is_multicast() {
                    return Err(WireError::BadValue("ns target is multicast"));
                }
                NdRepr::NeighborSolicit {
                    target,
                    source_ll: o.source_ll,
                }
            }
            _ => {
                let target = addr6(b, 4);
                if target.is_multicast() {
                    return Err(WireError::BadValue("na target is multicast"));
                }
                NdRepr::NeighborAdvert {
                    flags: NaFlags {
                        router: b[0] & 0x80 != 0,
                        solicited: b[0] & 0x40 != 0,
                        override_: b[0] & 0x20 != 0,
                    },
                    target,
                    target_ll: o.target_ll,
                }
            }
        };
        Ok(Some(repr))
    }

    pub fn to_icmpv6(&self) -> Icmpv6Repr {
        let mut body = Vec::new();
        let msg_type = match self {
            NdRepr::RouterSolicit { source_ll } => {
                body.extend_from_slice(&[0; 4]);
                emit_ll(&mut body, option::SOURCE_LL, *source_ll);
                ROUTER_SOLICITATION
            }
            NdRepr::RouterAdvert(ra) => {
                body.extend_from_slice(&[ra.hop_limit, ra.flags]);
                body.extend_from_slice(&ra.router_lifetime.to_be_bytes());
                body.extend_from_slice(&ra.reachable_time.to_be_bytes());
                body.extend_from_slice(&ra.retrans_timer.to_be_bytes());
                emit_ll(&mut body, option::SOURCE_LL, ra.source_ll);
                if let Some(mtu) = ra.mtu {
                    body.extend_from_slice(&[option::MTU, 1, 0, 0]);
                    body.extend_from_slice(&mtu.to_be_bytes());
                }
                if let Some(ms) = ra.advertisement_interval {
                    body.extend_from_slice(&[option::ADVERTISEMENT_INTERVAL, 1, 0, 0]);
                    body.extend_from_slice(&ms.to_be_bytes());
                }
                for p in &ra.prefixes {
                    let flags = (u8::from(p.on_link) << 7)
                        | (u8::from(p.autonomous) << 6)
                        | (u8::from(p.router_address) << 5);
                    body.extend_from_slice(&[option::PREFIX_INFORMATION, 4, p.prefix_len, flags]);
                    body.extend_from_slice(&p.valid_lifetime.to_be_bytes());
                    body.extend_from_slice(&p.preferred_lifetime.to_be_bytes());
                    body.extend_from_slice(&[0; 4]);
                    body.extend_from_slice(&p.prefix.octets());
                }
                ROUTER_ADVERTISEMENT
            }
            NdRepr::NeighborSolicit { target, source_ll } => {
                body.extend_from_slice(&[0; 4]);
                body.extend_from_slice(&target.octets());
                emit_ll(&mut body, option::SOURCE_LL, *source_ll);
                NEIGHBOR_SOLICITATION
            }
            NdRepr::NeighborAdvert {
                flags,
                target,
                target_ll,
            } => {
                let f = (u8::from(flags.router) << 7)
                    | (u8::from(flags.solicited) << 6)
                    | (u8::from(flags.override_) << 5);
                body.extend_from_slice(&[f, 0, 0, 0]);
                body.extend_from_slice(&target.octets());
                emit_ll(&mut body, option::TARGET_LL, *target_ll);
                NEIGHBOR_ADVERTISEMENT
            }
        };
        Icmpv6Repr {
            msg_type,
            code: 0,
            body,
        }
    }

    /// The link-layer address option of the message, whichever it is.
    pub fn link_layer(&self) -> Option<MacAddr> {
        match self {
            NdRepr::RouterSolicit { source_ll } | NdRepr::NeighborSolicit { source_ll, .. } => {
                *source_ll
            }
            NdRepr::RouterAdvert(ra) => ra.source_ll,
            NdRepr::NeighborAdvert { target_ll, .. } => *target_ll,
        }
    }
}

/// RFC 4291 §2.7.1: ff02::1:ffXX:XXXX from the low 24 bits.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::PseudoHeader;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x11]);

    fn samples() -> Vec<NdRepr> {
        vec![
            NdRepr::RouterSolicit { source_ll: None },
            NdRepr::RouterSolicit {
                source_ll: Some(MAC),
            },
            NdRepr::RouterAdvert(RouterAdvert {
                hop_limit: 64,
                flags: ra_flags::HOME_AGENT,
                router_lifetime: 1800,
                reachable_time: 30_000,
                retrans_timer: 1000,
                source_ll: Some(MAC),
                mtu: Some(1500),
                prefixes: vec![PrefixInfo::slaac(a("2001:db8:2::"))],
                advertisement_interval: Some(1000),
            }),
            NdRepr::NeighborSolicit {
                target: a("2001:db8:2::1"),
                source_ll: Some(MAC),
            },
            NdRepr::NeighborAdvert {
                flags: NaFlags {
                    router: true,
                    solicited: true,
                    override_: false,
                },
                target: a("fe80::1"),
                target_ll: Some(MAC),
            },
        ]
    }

    #[test]
    fn messages_round_trip() {
        for s in samples() {
            assert_eq!(NdRepr::parse(&s.to_icmpv6()), Ok(Some(s.clone())), "{s:?}");
        }
    }

    /// Bodies (after the checksum) that scapy 2.5 builds for
    /// `ICMPv6ND_NS(tgt="2001:db8::1")/ICMPv6NDOptSrcLLAddr(lladdr=MAC)`,
    /// `ICMPv6ND_NA(R=0,S=1,O=1,tgt="2001:db8::1")/ICMPv6NDOptDstLLAddr(lladdr=MAC)` and
    /// `ICMPv6ND_RA(chlim=64,H=1,prf=0,routerlifetime=1800,reachabletime=30000,retranstimer=1000)
    /// /SrcLLAddr/MTU(1500)/AdvInterval(1000)/PrefixInfo(2001:db8:2::/64, L, A)`.
    const SCAPY_NS: &str = "0000000020010db80000000000000000000000010101020000000011";
    const SCAPY_NA: &str = "6000000020010db80000000000000000000000010201020000000011";
    const SCAPY_RA: &str = "4020070800007530000003e8010102000000001105010000000005dc0701000000\
                            0003e8030440c000278d0000093a800000000020010db800020000000000000000\
                            0000";

    #[test]
    fn bytes_match_scapy() {
        let ns = NdRepr::NeighborSolicit {
            target: a("2001:db8::1"),
            source_ll: Some(MAC),
        };
        let na = NdRepr::NeighborAdvert {
            flags: NaFlags {
                router: false,
                solicited: true,
                override_: true,
            },
            target: a("2001:db8::1"),
            target_ll: Some(MAC),
        };
        let ra = samples()[2].clone();
        for (repr, bytes) in [(ns, SCAPY_NS), (na, SCAPY_NA), (ra, SCAPY_RA)] {
            let bytes = hex::decode(bytes).unwrap();
            assert_eq!(repr.to_icmpv6().body, bytes, "{repr:?}");
            let icmp = Icmpv6Repr {
                msg_type: repr.to_icmpv6().msg_type,
                code: 0,
                body: bytes,
            };
            assert_eq!(NdRepr::parse(&icmp), Ok(Some(repr)));
        }
        // The checksum covers the pseudo-header like every ICMPv6 message.
        let ph = PseudoHeader::V6 {
            src: a("fe80::1"),
            dst: a("ff02::1"),
        };
        let mut out = vec![];
        samples()[4].to_icmpv6().emit(&ph, &mut out);
        assert!(Icmpv6Repr::verify_checksum(&out, &ph));
    }

    #[test]
    fn invalid_messages_are_refused() {
        let mut ns = samples()[3].to_icmpv6();
        ns.code = 1;
        assert_eq!(NdRepr::parse(&ns), Err(WireError::BadValue("nd code")));
        let mut zero = samples()[3].to_icmpv6();
        zero.body[21] = 0;
        assert_eq!(
            NdRepr::parse(&zero),
            Err(WireError::BadLength("nd option length 0"))
        );
        let mut multicast = samples()[3].to_icmpv6();
        multicast.body[4] = 0xff;
        assert!(NdRepr::parse(&multicast).is_err());
        for s in samples() {
            let full = s.to_icmpv6();
            for n in 0..full.body.len() {
                let cut = Icmpv6Repr {
                    body: full.body[..n].to_vec(),
                    ..full.clone()
                };
                // Every truncation is an error or a shorter valid message
                // (options end on 8-octet boundaries), never a panic.
                let _ = NdRepr::parse(&cut);
                if n < 4 {
                    assert!(NdRepr::parse(&cut).is_err());
                }
            }
        }
        let echo = Icmpv6Repr {
            msg_type: 128,
            code: 0,
            body: vec![],
        };
        assert_eq!(NdRepr::parse(&echo), Ok(None));
    }

    #[test]
    fn solicited_node_address() {
        assert_eq!(
            solicited_node(a("2001:db8:1::1:2345:6789")),
            a("ff02::1:ff45:6789")
        );
    }
}
