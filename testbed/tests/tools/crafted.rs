//! Crafted packets for the simulator's engines, as the scenario and
//! conformance tests send them, and what the engines sent back.

use std::net::Ipv6Addr;

use common::ipsec::{Ipsec, Outbound};
use common::node::{Engine, NodeDrop};
use common::time::{Duration, Instant};
use common::wire::mh::{BuFlags, MhMessage, MhOption, MhRepr};
use common::wire::packet::UdpPayload;
use common::wire::{
    CodePoints, ExtHeaderRepr, IpRepr, PacketRepr, RoutingRepr, UdpRepr, UpperRepr,
};
use testbed::sim::{LinkId, NodeId, Role};
use testbed::topology::Topology;

pub fn cp() -> CodePoints {
    CodePoints::default()
}

/// How often the correspondent dropped a packet for `r`.
pub fn cn_drops(t: &Topology, r: NodeDrop) -> u64 {
    t.sim.engine(t.cn).unwrap().stats().dropped(r)
}

/// How often the home agent dropped a packet for `r`.
pub fn ha_drops(t: &Topology, r: NodeDrop) -> u64 {
    t.sim.engine(t.ha).unwrap().stats().dropped(r)
}

/// How often the mobile node dropped a packet for `r`.
pub fn mn_drops(t: &Topology, r: NodeDrop) -> u64 {
    t.sim.engine(t.mn).unwrap().stats().dropped(r)
}

/// A two-byte UDP datagram (port 7) with `ext` headers.
pub fn udp(src: Ipv6Addr, dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>) -> Vec<u8> {
    let u = UdpRepr {
        src_port: 7,
        dst_port: 7,
    };
    let data = UdpPayload::Raw(b"hi".to_vec());
    PacketRepr::ipv6(src, dst, ext, UpperRepr::Udp(u, data)).to_bytes(&cp())
}

/// A Mobility Header message from `src` to `dst`, with `hao` in a Home
/// Address option.
pub fn mh_packet(src: Ipv6Addr, dst: Ipv6Addr, hao: Option<Ipv6Addr>, mh: MhRepr) -> Vec<u8> {
    let ext = hao.map(ExtHeaderRepr::home_address).into_iter().collect();
    PacketRepr::ipv6(src, dst, ext, UpperRepr::Mobility(mh)).to_bytes(&cp())
}

/// A Binding Update message; `flags` are [`BuFlags`] bits.
pub fn bu_message(seq: u16, flags: u16, lifetime: u16, options: Vec<MhOption>) -> MhRepr {
    MhRepr {
        message: MhMessage::BindingUpdate {
            seq,
            flags: BuFlags(flags),
            lifetime,
        },
        options,
    }
}

/// Two HoTIs from `src` to `dst` a Mobility Header check refuses: one with
/// Payload Proto 6 (a piggybacked payload), one in 8 bytes (Header Len 0
/// is too short for the type); checksums right, so the check is the one.
pub fn bad_mobility_headers(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<Vec<u8>> {
    let ph = common::wire::checksum::PseudoHeader::V6 { src, dst };
    let hoti = vec![6, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
    let short = vec![59, 0, 1, 0, 0, 0, 0, 0];
    [hoti, short]
        .into_iter()
        .map(|mut mh| {
            common::wire::mh::MhPacket::new_unchecked(&mut mh[..]).fill_checksum(&ph);
            let mut p = udp(src, dst, vec![]);
            p.truncate(40);
            p[6] = 135;
            p.extend_from_slice(&mh);
            p[4..6].copy_from_slice(&(mh.len() as u16).to_be_bytes());
            p
        })
        .collect()
}

/// The ICMPv6 Parameter Problems among `sent`: (destination, code,
/// pointer).
pub fn parameter_problems(sent: &[Sent]) -> Vec<(Ipv6Addr, u8, u32)> {
    sent.iter()
        .filter_map(|s| match &s.packet.upper {
            UpperRepr::Icmpv6(i) if i.msg_type == common::wire::icmpv6::PARAMETER_PROBLEM => {
                Some((
                    s.dst,
                    i.code,
                    u32::from_be_bytes(i.body.get(..4)?.try_into().ok()?),
                ))
            }
            _ => None,
        })
        .collect()
}

/// Seals `bytes` with `node`'s own SAs, as a forger holding them (or a
/// buggy node) would.
pub fn seal_as(t: &mut Topology, node: NodeId, bytes: &[u8]) -> Vec<u8> {
    let now = t.sim.now();
    let ipsec: &mut Ipsec = match t.sim.role_mut(node) {
        Some(Role::Mn(m)) => m.ipsec_mut(),
        Some(Role::Ha(h)) => h.ipsec_mut(),
        Some(Role::Cn(c)) => c.ipsec_mut(),
        None => panic!("no such host"),
    };
    let mut out = vec![];
    let r = ipsec.outbound(now, bytes, &mut out).unwrap();
    assert!(matches!(r, Outbound::Protected { .. }), "not sealed");
    out
}

/// [`seal_as`] the mobile node.
pub fn seal_as_mn(t: &mut Topology, bytes: &[u8]) -> Vec<u8> {
    let mn = t.mn;
    seal_as(t, mn, bytes)
}

/// One packet a node sent: its destination, the home address of its type
/// 2 routing header, and its Mobility Header (opened from ESP with the
/// run's keys, or out of an IPv6-in-IPv6 tunnel) or its parse.
pub struct Sent {
    pub at: Instant,
    pub dst: Ipv6Addr,
    pub type2: Option<Ipv6Addr>,
    pub mh: Option<MhRepr>,
    pub packet: PacketRepr,
}

/// What `src` put on `link` from its `from`th frame on.
pub fn sent_since(t: &Topology, link: LinkId, from: usize, src: Ipv6Addr) -> Vec<Sent> {
    t.sim.captured(link)[from..]
        .iter()
        .filter_map(|(at, b)| {
            let packet = PacketRepr::parse(b, &cp()).ok()?;
            let IpRepr::V6 { header, ext } = &packet.ip else {
                return None;
            };
            if header.src != src {
                return None;
            }
            let type2 = ext.iter().find_map(|e| match e {
                ExtHeaderRepr::Routing(RoutingRepr::Type2 { home_address, .. }) => {
                    Some(*home_address)
                }
                _ => None,
            });
            let mh = match &packet.upper {
                UpperRepr::Mobility(m) => Some(m.clone()),
                UpperRepr::Tunnel(inner) => match &inner.upper {
                    UpperRepr::Mobility(m) => Some(m.clone()),
                    _ => None,
                },
                UpperRepr::Esp(_) => {
                    let d = common::wire::packet::decode_with(b, &cp(), false, Some(&t.keyring));
                    match d.decrypted.last() {
                        Some(UpperRepr::Mobility(m)) => Some(m.clone()),
                        _ => None,
                    }
                }
                _ => None,
            };
            Some(Sent {
                at: *at,
                dst: header.dst,
                type2,
                mh,
                packet,
            })
        })
        .collect()
}

/// Injects each of `packets` on `link`, `gap` apart (each answered before
/// the next), and returns what `src` sent on `watch` meanwhile.
pub fn exchange(
    t: &mut Topology,
    (link, watch, src): (LinkId, LinkId, Ipv6Addr),
    packets: Vec<Vec<u8>>,
    gap: Duration,
) -> Vec<Sent> {
    let from = t.sim.captured(watch).len();
    for p in packets {
        t.sim.inject(link, p);
        t.sim.run_for(gap);
    }
    sent_since(t, watch, from, src)
}

/// The BAs among `sent`: (destination, type 2 home address, status,
/// sequence number, lifetime).
pub fn bas(sent: &[Sent]) -> Vec<(Ipv6Addr, Option<Ipv6Addr>, u8, u16, u16)> {
    sent.iter()
        .filter_map(|s| match s.mh.as_ref()?.message {
            MhMessage::BindingAck {
                status,
                seq,
                lifetime,
                ..
            } => Some((s.dst, s.type2, u8::from(status), seq, lifetime)),
            _ => None,
        })
        .collect()
}

/// The BAs among `sent` that carry the K flag.
pub fn bas_with_k(sent: &[Sent]) -> usize {
    sent.iter()
        .filter(|s| {
            matches!(s.mh.as_ref().map(|m| &m.message),
                Some(MhMessage::BindingAck { flags, .. }) if flags.has(common::wire::mh::BaFlags::K))
        })
        .count()
}

/// The BUs among `sent`: (destination, sequence number, lifetime).
pub fn bus(sent: &[Sent]) -> Vec<(Ipv6Addr, u16, u16)> {
    sent.iter()
        .filter_map(|s| match s.mh.as_ref()?.message {
            MhMessage::BindingUpdate { seq, lifetime, .. } => Some((s.dst, seq, lifetime)),
            _ => None,
        })
        .collect()
}

/// The Binding Errors among `sent`: (destination, status, Home Address).
pub fn bes(sent: &[Sent]) -> Vec<(Ipv6Addr, u8, Ipv6Addr)> {
    sent.iter()
        .filter_map(|s| match s.mh.as_ref()?.message {
            MhMessage::BindingError {
                status,
                home_address,
            } => Some((s.dst, status, home_address)),
            _ => None,
        })
        .collect()
}
