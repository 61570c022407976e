//! Engine-level checks that need a home agent SA wider than one home
//! address (the simulator's pairs are per home address, as they should
//! be), and the sequence-number arithmetic.

#![allow(clippy::unwrap_used, reason = "tests")]

use ::core::net::{IpAddr, Ipv6Addr};

use super::*;
use crate::ipsec::{
    AddressPair, Algorithm, Inbound, Mode, Outbound, Prefix, SaKeys, SaPairSpec, Selector,
};
use crate::nd::AddrState;
use crate::wire::mh::{BuFlags, MhMessage, MhOption, MhRepr};
use crate::wire::nd::{NaFlags, PrefixInfo, RouterAdvert};
use crate::wire::{
    CodePoints, ExtHeaderRepr, IpProtocol, IpRepr, MhType, NdRepr, PacketRepr, UpperRepr,
};

const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const STRANGER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x200);
const OFF_LINK: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 7, 0, 0, 0, 0, 0x100);
const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);

/// An SA pair between any address and the home agent, both ends.
fn wide_pair() -> (Ipsec, Ipsec) {
    let (mut mn, mut ha) = (Ipsec::default(), Ipsec::default());
    let k1 = vec![1u8; 20];
    let k2 = vec![2u8; 20];
    let any = Prefix::ANY;
    let ha_host = Prefix::host(IpAddr::V6(HA));
    for (ipsec, local, peer, sel, inb, outb) in [
        (
            &mut mn,
            any,
            ha_host,
            Selector::between(any, ha_host),
            (2, &k2),
            (1, &k1),
        ),
        (
            &mut ha,
            ha_host,
            any,
            Selector::between(ha_host, any),
            (1, &k1),
            (2, &k2),
        ),
    ] {
        let spec = SaPairSpec::new(
            AddressPair {
                local: local.addr,
                peer: peer.addr,
            },
            Mode::Transport,
            Algorithm::Aes128Gcm16,
            sel.clone(),
            SaKeys {
                spi: inb.0,
                key: inb.1.clone(),
            },
            SaKeys {
                spi: outb.0,
                key: outb.1.clone(),
            },
        );
        ipsec.add_protected_pair(Instant::ZERO, &spec).unwrap();
    }
    (mn, ha)
}

fn home_bu(mn: &mut Ipsec, home: Ipv6Addr, seq: u16, flags: u16) -> Vec<u8> {
    home_bu_for(mn, home, seq, flags, 100)
}

/// A home registration from `COA` for `home`, sealed with `mn`'s SA,
/// lifetime in 4 s units (0: a deregistration).
fn home_bu_for(mn: &mut Ipsec, home: Ipv6Addr, seq: u16, flags: u16, lifetime: u16) -> Vec<u8> {
    let mh = MhRepr {
        message: MhMessage::BindingUpdate {
            seq,
            flags: BuFlags(flags),
            lifetime,
        },
        options: vec![MhOption::AlternateCareOfAddress(COA)],
    };
    let p = PacketRepr::ipv6(
        COA,
        HA,
        vec![ExtHeaderRepr::home_address(home)],
        UpperRepr::Mobility(mh),
    )
    .to_bytes(&CodePoints::default());
    let mut out = vec![];
    let r = mn.outbound(Instant::ZERO, &p, &mut out).unwrap();
    assert!(matches!(r, Outbound::Protected { .. }));
    out
}

const ROUTER_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const ROUTER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const HA_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
const OWNER_MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 3]);

fn nd_bytes(src: Ipv6Addr, dst: Ipv6Addr, msg: &NdRepr) -> Vec<u8> {
    crate::nd::nd_packet(src, dst, msg).to_bytes(&CodePoints::default())
}

/// A home agent on its link, with a router there, past the DAD of its
/// own address.
fn home_agent(ipsec: Ipsec) -> (Ha, Instant) {
    start(new_home_agent(ipsec))
}

fn new_home_agent(ipsec: Ipsec) -> Ha {
    let mut cfg = HaConfig::new(HA, vec![HOA], 1);
    cfg.home_prefix = HA;
    Ha::new(cfg, ipsec)
}

/// `ha` on its link, as [`home_agent`].
fn start(mut ha: Ha) -> (Ha, Instant) {
    let now = on_link(&mut ha, HA);
    assert_eq!(
        ha.interface(0).unwrap().state(HA),
        Some(AddrState::Preferred)
    );
    drain(&mut ha);
    (ha, now)
}

/// Puts `e`, whose address is `address` (on a /64 of 2001:db8:x::),
/// on its link with a router advertising that prefix, and lets its DAD
/// pass; returns the time then.
fn on_link(e: &mut impl Engine, address: Ipv6Addr) -> Instant {
    let t0 = Instant::ZERO;
    e.handle_command(
        t0,
        Command::LinkUp {
            iface: 0,
            mac: HA_MAC,
        },
    )
    .unwrap();
    let mut ra = RouterAdvert {
        hop_limit: 64,
        flags: 0,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        source_ll: Some(ROUTER_MAC),
        mtu: None,
        prefixes: vec![PrefixInfo::slaac(address)],
        advertisement_interval: None,
    };
    let s = address.segments();
    ra.prefixes[0].prefix = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
    let ra = nd_bytes(ROUTER_LL, crate::nd::ALL_NODES, &NdRepr::RouterAdvert(ra));
    e.handle_packet(t0, Iface::Link(0), Some(ROUTER_MAC), &ra);
    let now = Instant::from_secs(2);
    e.handle_timeout(now);
    now
}

/// What the home agent sent since the last call.
fn drain(ha: &mut Ha) -> Vec<Transmit> {
    std::iter::from_fn(|| ha.poll_transmit()).collect()
}

/// The statuses of the BAs among `sent`, and where they went.
fn statuses(sent: &[Transmit], mn: &mut Ipsec) -> Vec<(u8, Option<MacAddr>)> {
    let mut out = vec![];
    for t in sent {
        let mut plain = vec![];
        if !matches!(
            mn.inbound(Instant::ZERO, &t.bytes, &mut plain),
            Ok(Inbound::Decrypted { .. })
        ) {
            continue;
        }
        if let UpperRepr::Mobility(MhRepr {
            message: MhMessage::BindingAck { status, .. },
            ..
        }) = PacketRepr::parse(&plain, &CodePoints::default())
            .unwrap()
            .upper
        {
            out.push((status.into(), t.dst_mac));
        }
    }
    out
}

/// Neighbor Advertisements among `sent`, for `target`.
fn advertisements(sent: &[Transmit], target: Ipv6Addr) -> Vec<NaFlags> {
    sent.iter()
        .filter_map(|t| {
            match PacketRepr::parse(&t.bytes, &CodePoints::default())
                .ok()?
                .upper
            {
                UpperRepr::Icmpv6(i) => match NdRepr::parse(&i).ok()?? {
                    NdRepr::NeighborAdvert {
                        flags, target: x, ..
                    } if x == target => Some(flags),
                    _ => None,
                },
                _ => None,
            }
        })
        .collect()
}

// REQ MIP-BASE
#[test]
fn home_agent_refuses_with_132_133_135_139() {
    let (mut mn, ha_ipsec) = wide_pair();
    let (mut ha, now) = home_agent(ha_ipsec);
    let a_h = BuFlags::A | BuFlags::H;
    let cases = [
        (OFF_LINK, 1, a_h, 132, NodeDrop::NotHomeSubnet),
        (STRANGER, 2, a_h, 133, NodeDrop::NotOurMobileNode),
        (HOA, 10, a_h, 0, NodeDrop::Malformed),
        (HOA, 9, a_h, 135, NodeDrop::SequenceOutOfWindow),
        (HOA, 11, BuFlags::A, 139, NodeDrop::RegistrationTypeChange),
    ];
    let mut now = now;
    for (home, seq, flags, want, drop) in cases {
        let b = home_bu(&mut mn, home, seq, flags);
        ha.handle_packet(now, Iface::Link(0), Some(ROUTER_MAC), &b);
        // The first registration waits for the DAD of the home address.
        now += crate::nd::RETRANS_TIMER;
        ha.handle_timeout(now);
        let sent = drain(&mut ha);
        assert_eq!(
            statuses(&sent, &mut mn),
            vec![(want, Some(ROUTER_MAC))],
            "{home} seq {seq}"
        );
        if want != 0 {
            assert_eq!(ha.stats().dropped(drop), 1, "{drop:?}");
        }
    }
    assert_eq!(ha.binding(HOA).unwrap().seq, 10);
}

// REQ MIP-BASE
#[test]
fn first_registration_waits_for_dad_then_the_agent_proxies_and_announces() {
    let (mut mn, ha_ipsec) = wide_pair();
    let (mut ha, t) = home_agent(ha_ipsec);
    let b = home_bu(&mut mn, HOA, 1, BuFlags::A | BuFlags::H);
    ha.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &b);
    let sent = drain(&mut ha);
    // RFC 6275 §10.3.1: no BA yet; a DAD probe for the home address.
    assert!(statuses(&sent, &mut mn).is_empty());
    let probe = sent.iter().any(|t| {
        t.bytes
            == nd_bytes(
                Ipv6Addr::UNSPECIFIED,
                crate::wire::nd::solicited_node(HOA),
                &NdRepr::NeighborSolicit {
                    target: HOA,
                    source_ll: None,
                },
            )
    });
    assert!(probe, "DAD NS from :: for the home address");
    assert!(ha.binding(HOA).is_none());
    assert_eq!(ha.checking().collect::<Vec<_>>(), vec![HOA]);
    // A retransmitted BU during DAD changes nothing but what is acked,
    // and is counted (found by engine_ha: it left no trace).
    let b2 = home_bu(&mut mn, HOA, 2, BuFlags::A | BuFlags::H);
    ha.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &b2);
    assert!(statuses(&drain(&mut ha), &mut mn).is_empty());
    assert_eq!(ha.stats().held_for_dad, 1);
    let t = t + crate::nd::RETRANS_TIMER;
    ha.handle_timeout(t);
    let sent = drain(&mut ha);
    assert_eq!(statuses(&sent, &mut mn), vec![(0, Some(ROUTER_MAC))]);
    assert_eq!(ha.binding(HOA).unwrap().seq, 2);
    // §10.4.1: an unsolicited NA for the home address with O=1, R=0, S=0.
    let na = advertisements(&sent, HOA);
    assert_eq!(
        na,
        vec![NaFlags {
            router: false,
            solicited: false,
            override_: true
        }]
    );
    // Two more, one RetransTimer apart.
    let mut more = 0;
    for k in 1..=3u32 {
        ha.handle_timeout(t + crate::nd::RETRANS_TIMER * k);
        more += advertisements(&drain(&mut ha), HOA).len();
    }
    assert_eq!(more, 2);
    // It answers an NS for the home address with its own MAC, O=0.
    let ns = NdRepr::NeighborSolicit {
        target: HOA,
        source_ll: Some(ROUTER_MAC),
    };
    let ns = nd_bytes(ROUTER_LL, crate::wire::nd::solicited_node(HOA), &ns);
    let t = t + Duration::from_secs(5);
    ha.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &ns);
    let answer = advertisements(&drain(&mut ha), HOA);
    assert_eq!(
        answer,
        vec![NaFlags {
            router: false,
            solicited: true,
            override_: false
        }]
    );
    // Deregistered from home: no more answers; the BA went to the MAC of
    // the BU's frame (RFC 6275 §10.3.2).
    let mh = MhRepr {
        message: MhMessage::BindingUpdate {
            seq: 3,
            flags: BuFlags(BuFlags::A | BuFlags::H),
            lifetime: 0,
        },
        options: vec![],
    };
    let p =
        PacketRepr::ipv6(HOA, HA, vec![], UpperRepr::Mobility(mh)).to_bytes(&CodePoints::default());
    let mut dereg = vec![];
    mn.outbound(t, &p, &mut dereg).unwrap();
    ha.handle_packet(t, Iface::Link(0), Some(OWNER_MAC), &dereg);
    assert_eq!(
        statuses(&drain(&mut ha), &mut mn),
        vec![(0, Some(OWNER_MAC))]
    );
    ha.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &ns);
    assert!(advertisements(&drain(&mut ha), HOA).is_empty());
}

// REQ MIP-BASE
#[test]
fn home_address_in_use_gets_134() {
    let (mut mn, ha_ipsec) = wide_pair();
    let (mut ha, t) = home_agent(ha_ipsec);
    let b = home_bu(&mut mn, HOA, 1, BuFlags::A | BuFlags::H);
    ha.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &b);
    drain(&mut ha);
    // The node using the address defends it against the probe.
    let na = NdRepr::NeighborAdvert {
        flags: NaFlags {
            router: false,
            solicited: false,
            override_: true,
        },
        target: HOA,
        target_ll: Some(OWNER_MAC),
    };
    let na = nd_bytes(HOA, crate::nd::ALL_NODES, &na);
    ha.handle_packet(t, Iface::Link(0), Some(OWNER_MAC), &na);
    let sent = drain(&mut ha);
    assert_eq!(statuses(&sent, &mut mn), vec![(134, Some(ROUTER_MAC))]);
    assert_eq!(ha.stats().dropped(NodeDrop::DuplicateHomeAddress), 1);
    assert!(ha.binding(HOA).is_none());
    assert!(ha.checking().next().is_none());
}

// REQ MIP-BASE
#[test]
fn sequence_numbers_compare_modulo_2_16() {
    assert!(seq_newer(1, 0));
    assert!(seq_newer(0, 65535));
    assert!(seq_newer(0x7fff, 0));
    assert!(!seq_newer(0x8000, 0));
    assert!(!seq_newer(5, 5));
    assert!(!seq_newer(4, 5));
}

/// IPsec that lets everything through in the clear.
fn open_ipsec() -> Ipsec {
    let mut ipsec = Ipsec::default();
    ipsec.spd.fallback = crate::ipsec::Action::Bypass;
    ipsec
}

/// A packet from `COA` to `dst` holding `mh` as its Mobility Header,
/// the checksum made right (`good`) or wrong, after `ext`.
fn mh_to(dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>, mut mh: Vec<u8>, good: bool) -> Vec<u8> {
    let mut repr = PacketRepr::ipv6(
        COA,
        dst,
        ext,
        UpperRepr::Raw {
            protocol: IpProtocol::Mobility,
            data: vec![],
        },
    );
    crate::wire::mh::MhPacket::new_unchecked(&mut mh[..]).fill_checksum(&repr.pseudo_header());
    if !good {
        mh[4] ^= 0xff;
    }
    repr.upper = UpperRepr::Raw {
        protocol: IpProtocol::Mobility,
        data: mh,
    };
    repr.to_bytes(&CodePoints::default())
}

/// [`mh_to`] the home agent.
fn mh_packet(ext: Vec<ExtHeaderRepr>, mh: Vec<u8>, good: bool) -> Vec<u8> {
    mh_to(HA, ext, mh, good)
}

/// A BU's Mobility Header, 16 bytes: seq 1, A and H, lifetime 100, a
/// PadN; `proto` as its Payload Proto.
fn bu_mh(proto: u8) -> Vec<u8> {
    vec![proto, 1, 5, 0, 0, 0, 0, 1, 0xc0, 0, 0, 100, 1, 2, 0, 0]
}

/// The ICMPv6 Parameter Problems among `sent`: (code, pointer, the start
/// of the invoking packet they quote), each checked to come from the
/// agent to the care-of address.
fn parameter_problems(sent: &[Transmit]) -> Vec<(u8, u32, Vec<u8>)> {
    sent.iter()
        .filter_map(|t| {
            let p = PacketRepr::parse(&t.bytes, &CodePoints::default()).ok()?;
            let IpRepr::V6 { header, .. } = &p.ip else {
                return None;
            };
            match p.upper {
                UpperRepr::Icmpv6(i) if i.msg_type == crate::wire::icmpv6::PARAMETER_PROBLEM => {
                    assert_eq!((header.src, header.dst), (HA, COA));
                    assert!(t.bytes.len() <= 1280);
                    let pointer = u32::from_be_bytes(i.body[..4].try_into().unwrap());
                    Some((i.code, pointer, i.body[4..].to_vec()))
                }
                _ => None,
            }
        })
        .collect()
}

// REQ MIP-BASE
#[test]
fn a_bad_payload_proto_or_header_len_gets_a_parameter_problem_pointing_at_it() {
    let (mut ha, now) = home_agent(open_ipsec());
    let hao = || vec![ExtHeaderRepr::home_address(HOA)];
    // (packet, the field's offset from the IPv6 header's first byte)
    let cases = [
        // Payload Proto 6 (TCP), no extension header: byte 40.
        (mh_packet(vec![], bu_mh(6), true), 40),
        // Behind a Destination Options header with the HAO (24 bytes).
        (mh_packet(hao(), bu_mh(6), true), 64),
        // A BU in 8 bytes (Header Len 0) where it needs 12: Header Len.
        (mh_packet(hao(), vec![59, 0, 5, 0, 0, 0, 0, 1], true), 65),
    ];
    for (i, (bytes, pointer)) in cases.iter().enumerate() {
        ha.handle_packet(now, Iface::Link(0), Some(ROUTER_MAC), bytes);
        let sent = drain(&mut ha);
        assert_eq!(
            parameter_problems(&sent),
            vec![(0, *pointer, bytes.clone())],
            "case {i}"
        );
        assert_eq!(
            ha.stats().dropped(NodeDrop::BadMobilityHeader),
            i as u64 + 1
        );
    }
    // A bad checksum is discarded without a word (RFC 6275 §9.2), and a
    // well-formed MH of an unknown type is a Binding Error's business.
    let bad_sum = mh_packet(vec![], bu_mh(6), false);
    ha.handle_packet(now, Iface::Link(0), Some(ROUTER_MAC), &bad_sum);
    assert!(drain(&mut ha).is_empty());
    assert_eq!(ha.stats().dropped(NodeDrop::Malformed), 1);
    assert_eq!(ha.stats().dropped(NodeDrop::BadMobilityHeader), 3);
}

// REQ MIP-BASE
#[test]
fn errors_are_rate_limited_and_never_sent_about_multicast() {
    let (mut ha, now) = home_agent(open_ipsec());
    let bad = mh_packet(vec![], bu_mh(6), true);
    for _ in 0..50 {
        ha.handle_packet(now, Iface::Link(0), Some(ROUTER_MAC), &bad);
    }
    let burst = parameter_problems(&drain(&mut ha)).len();
    assert_eq!(burst, 10, "the bucket holds 10");
    // The bucket refills at 10 a second: 5 more after half a second.
    let later = now + crate::time::Duration::from_millis(500);
    for _ in 0..50 {
        ha.handle_packet(later, Iface::Link(0), Some(ROUTER_MAC), &bad);
    }
    assert_eq!(parameter_problems(&drain(&mut ha)).len(), 5);
    assert_eq!(ha.stats().dropped(NodeDrop::BadMobilityHeader), 100);
    assert_eq!(ha.stats().errors_suppressed, 85);
    // To all nodes: dropped and counted, never answered (RFC 4443 §2.4(e)).
    let to_group = mh_to(crate::nd::ALL_NODES, vec![], bu_mh(6), true);
    let far = later + crate::time::Duration::from_secs(10);
    ha.handle_packet(far, Iface::Link(0), Some(ROUTER_MAC), &to_group);
    assert!(parameter_problems(&drain(&mut ha)).is_empty());
    assert_eq!(ha.stats().dropped(NodeDrop::BadMobilityHeader), 101);
    assert_eq!(ha.stats().errors_suppressed, 86);
}

/// The Binding Errors among `sent`: (status, Home Address field).
fn binding_errors(sent: &[Transmit]) -> Vec<(u8, Ipv6Addr)> {
    sent.iter()
        .filter_map(|t| {
            match PacketRepr::parse(&t.bytes, &CodePoints::default())
                .ok()?
                .upper
            {
                UpperRepr::Mobility(MhRepr {
                    message:
                        MhMessage::BindingError {
                            status,
                            home_address,
                        },
                    ..
                }) => Some((status, home_address)),
                _ => None,
            }
        })
        .collect()
}

// REQ MIP-BASE
#[test]
fn a_binding_errors_home_address_is_the_packets_hao_or_unspecified() {
    let (mut ha, now) = home_agent(open_ipsec());
    // An unknown MH type (status 2), RFC 6275 §9.3.3: with no HAO the
    // field is unspecified, never the packet's source.
    let unknown = vec![59, 1, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    ha.handle_packet(
        now,
        Iface::Link(0),
        Some(ROUTER_MAC),
        &mh_packet(vec![], unknown.clone(), true),
    );
    assert_eq!(
        binding_errors(&drain(&mut ha)),
        vec![(2, Ipv6Addr::UNSPECIFIED)]
    );
}

// REQ MIP-BASE
#[test]
fn a_deregistration_with_nothing_registered_gets_133() {
    let (mut mn, ha_ipsec) = wide_pair();
    let (mut ha, now) = home_agent(ha_ipsec);
    // RFC 6275 §10.3.2: a BU with lifetime 0 for a home address this agent
    // serves but holds no registration for.
    let bu = home_bu_for(&mut mn, HOA, 3, BuFlags::A | BuFlags::H, 0);
    ha.handle_packet(now, Iface::Link(0), Some(ROUTER_MAC), &bu);
    let sent = drain(&mut ha);
    assert_eq!(statuses(&sent, &mut mn), vec![(133, Some(ROUTER_MAC))]);
    assert_eq!(ha.stats().dropped(NodeDrop::NotRegistered), 1);
    assert!(ha.binding(HOA).is_none());
}

#[test]
fn multicast_other_than_nd_is_counted_not_ignored() {
    let (mut ha, now) = home_agent(open_ipsec());
    let udp = crate::wire::UdpRepr {
        src_port: 9,
        dst_port: 9,
    };
    let data = crate::wire::packet::UdpPayload::Raw(vec![1, 2, 3]);
    let p = PacketRepr::ipv6(
        STRANGER,
        crate::nd::ALL_NODES,
        vec![],
        UpperRepr::Udp(udp, data),
    );
    let before = ha.stats().clone();
    ha.handle_packet(
        now,
        Iface::Link(0),
        Some(ROUTER_MAC),
        &p.to_bytes(&CodePoints::default()),
    );
    assert!(drain(&mut ha).is_empty());
    assert_eq!(
        ha.stats().dropped(NodeDrop::Multicast),
        before.dropped(NodeDrop::Multicast) + 1
    );
}

/// What a store holds after `records`: the latest of each binding and the
/// highest mark of each SPI, as `common::io::store` keeps them.
fn stored(held: &mut Vec<Persist>, records: impl IntoIterator<Item = Persist>) {
    for r in records {
        match r {
            Persist::Bound { home, .. } | Persist::Unbound { home } => {
                held.retain(|h| !matches!(h, Persist::Bound { home: x, .. } if *x == home));
                if matches!(r, Persist::Bound { .. }) {
                    held.push(r);
                }
            }
            Persist::SequenceMark { spi, mark } => {
                let old = held.iter_mut().find_map(|h| match h {
                    Persist::SequenceMark { spi: s, mark: m } if *s == spi => Some(m),
                    _ => None,
                });
                match old {
                    Some(m) => *m = (*m).max(mark),
                    None => held.push(r),
                }
            }
        }
    }
}

// issue 14.4: the acknowledged binding and the BA counter come back, so
// the restarted agent tunnels at once and its ESP passes the node's
// anti-replay window.
#[test]
fn an_acknowledged_binding_and_the_esp_counter_survive_a_restart() {
    let (mut mn, ha_ipsec) = wide_pair();
    let mut ha = new_home_agent(ha_ipsec);
    ha.restore(Instant::ZERO, &[]).unwrap();
    let (mut ha, t) = start(ha);
    let mut store = vec![];
    ha.handle_packet(
        t,
        Iface::Link(0),
        Some(ROUTER_MAC),
        &home_bu(&mut mn, HOA, 1, BuFlags::A | BuFlags::H),
    );
    let t = t + crate::nd::RETRANS_TIMER;
    ha.handle_timeout(t);
    // What is to be stored is there before the BA is taken.
    let kept: Vec<Persist> = std::iter::from_fn(|| ha.poll_persist()).collect();
    assert_eq!(
        statuses(&drain(&mut ha), &mut mn),
        vec![(0, Some(ROUTER_MAC))]
    );
    let bound = ha.binding(HOA).copied().unwrap();
    assert!(kept.contains(&Persist::Bound {
        home: HOA,
        care_of: COA,
        seq: 1,
        expires: bound.expires,
    }));
    let ba_spi = 2;
    let sent = ha
        .ipsec()
        .sad
        .iter()
        .find(|(_, s)| s.spi() == ba_spi)
        .unwrap()
        .1
        .sequence();
    assert!(kept.contains(&Persist::SequenceMark {
        spi: ba_spi,
        mark: sent + crate::ipsec::SEQUENCE_SKIP,
    }));
    stored(&mut store, kept);
    // kill -9: a new agent with the same keys, before any packet.
    let mut ha = new_home_agent(wide_pair().1);
    ha.restore(t, &store).unwrap();
    assert_eq!(ha.binding(HOA), Some(&bound));
    let (mut ha, t) = start(ha);
    assert_eq!(ha.binding(HOA), Some(&bound));
    // The home address is defended again, and the old BU is old.
    let old = home_bu(&mut mn, HOA, 1, BuFlags::A | BuFlags::H);
    ha.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &old);
    assert_eq!(
        statuses(&drain(&mut ha), &mut mn),
        vec![(135, Some(ROUTER_MAC))]
    );
    assert_eq!(ha.stats().dropped(NodeDrop::SequenceOutOfWindow), 1);
    // That BA went out past the stored mark, which the node's window took.
    assert_eq!(mn.stats().dropped(crate::ipsec::IpsecDrop::Replayed), 0);
    let next: Vec<Persist> = std::iter::from_fn(|| ha.poll_persist()).collect();
    assert_eq!(
        next,
        vec![Persist::SequenceMark {
            spi: ba_spi,
            mark: sent + 2 * crate::ipsec::SEQUENCE_SKIP + 1,
        }]
    );
}

// issue 14.4: a binding that expired while the agent was down, or whose
// node it no longer serves, is not restored and is reported gone.
#[test]
fn a_binding_expired_or_no_longer_served_is_dropped_from_the_store() {
    let t = Instant::from_secs(100);
    let gone = [
        Persist::Bound {
            home: HOA,
            care_of: COA,
            seq: 4,
            expires: t,
        },
        Persist::Bound {
            home: STRANGER,
            care_of: COA,
            seq: 4,
            expires: t + Duration::from_secs(60),
        },
    ];
    let mut ha = new_home_agent(wide_pair().1);
    ha.restore(t, &gone).unwrap();
    assert_eq!(ha.bindings(), 0);
    let reported: Vec<Persist> = std::iter::from_fn(|| ha.poll_persist()).collect();
    assert_eq!(
        reported,
        vec![
            Persist::Unbound { home: HOA },
            Persist::Unbound { home: STRANGER }
        ]
    );
}

const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
/// The correspondent's outbound SA: its BAs.
const CN_BA_SPI: u32 = 0x202;

/// The mobile node's and the correspondent's suitable pair (BU/BA
/// between the home address and the correspondent, draft §2).
fn cn_pair() -> (Ipsec, Ipsec) {
    let make = |local: Ipv6Addr, peer: Ipv6Addr, spis: (u32, u32)| {
        let sel = Selector::mobility(
            Prefix::host(local.into()),
            Prefix::host(peer.into()),
            &[MhType::BindingUpdate.into(), MhType::BindingAck.into()],
        );
        let keys = |spi: u32| SaKeys {
            spi,
            key: vec![spi as u8; 20],
        };
        let spec = SaPairSpec::new(
            AddressPair {
                local: local.into(),
                peer: peer.into(),
            },
            Mode::Transport,
            Algorithm::Aes128Gcm16,
            sel,
            keys(spis.0),
            keys(spis.1),
        );
        let mut ipsec = Ipsec::default();
        ipsec.spd.fallback = crate::ipsec::Action::Bypass;
        ipsec.add_protected_pair(Instant::ZERO, &spec).unwrap();
        ipsec
    };
    (
        make(HOA, CN, (CN_BA_SPI, 0x201)),
        make(CN, HOA, (0x201, CN_BA_SPI)),
    )
}

/// A correspondent restored from `saved`, on its link with a router,
/// past its DAD.
fn correspondent(ipsec: Ipsec, saved: &[Persist]) -> (Cn, Instant) {
    let mut cn = Cn::new(CnConfig::new(CN, 3), ipsec, Instant::ZERO);
    cn.restore(Instant::ZERO, saved).unwrap();
    let now = on_link(&mut cn, CN);
    std::iter::from_fn(|| cn.poll_transmit()).for_each(drop);
    (cn, now)
}

/// A correspondent BU from `COA` for `HOA`, under the suitable SA.
fn cn_bu(mn: &mut Ipsec, seq: u16) -> Vec<u8> {
    let mh = MhRepr {
        message: MhMessage::BindingUpdate {
            seq,
            flags: BuFlags(BuFlags::A),
            lifetime: 100,
        },
        options: vec![],
    };
    let p = PacketRepr::ipv6(
        COA,
        CN,
        vec![ExtHeaderRepr::home_address(HOA)],
        UpperRepr::Mobility(mh),
    )
    .to_bytes(&CodePoints::default());
    let mut out = vec![];
    mn.outbound(Instant::ZERO, &p, &mut out).unwrap();
    out
}

/// The correspondent's BA statuses the mobile node's IPsec lets through.
fn cn_statuses(cn: &mut Cn, mn: &mut Ipsec) -> Vec<(u8, Option<MacAddr>)> {
    let sent: Vec<Transmit> = std::iter::from_fn(|| cn.poll_transmit()).collect();
    statuses(&sent, mn)
}

// issue 14.4: the correspondent's IPsec binding and BA counter come back;
// without the counter the node's anti-replay window drops its next BA.
#[test]
fn a_correspondents_ipsec_binding_and_ba_counter_survive_a_restart() {
    let (mut mn, cn_ipsec) = cn_pair();
    let (mut cn, t) = correspondent(cn_ipsec, &[]);
    cn.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &cn_bu(&mut mn, 1));
    let kept: Vec<Persist> = std::iter::from_fn(|| cn.poll_persist()).collect();
    assert_eq!(cn_statuses(&mut cn, &mut mn), vec![(0, Some(ROUTER_MAC))]);
    let expires = cn.binding(HOA).unwrap().expires;
    let mark = 1 + crate::ipsec::SEQUENCE_SKIP;
    assert_eq!(
        kept,
        vec![
            Persist::Bound {
                home: HOA,
                care_of: COA,
                seq: 1,
                expires,
            },
            Persist::SequenceMark {
                spi: CN_BA_SPI,
                mark,
            },
        ]
    );
    // Restarted without the marks, as before the store: its next BA
    // reuses number 1, and the node drops it as a replay.
    let bindings_only = &kept[..1];
    let (mut cn, t) = correspondent(cn_pair().1, bindings_only);
    cn.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &cn_bu(&mut mn, 2));
    assert_eq!(cn_statuses(&mut cn, &mut mn), vec![]);
    assert_eq!(mn.stats().dropped(crate::ipsec::IpsecDrop::Replayed), 1);
    // Restarted from the store: the binding, authorised by IPsec, and a BA
    // past the mark, which the node takes.
    let (mut cn, t) = correspondent(cn_pair().1, &kept);
    let restored = cn.binding(HOA).unwrap();
    assert_eq!((restored.care_of, restored.seq), (Some(COA), Some(1)));
    assert!(restored.ipsec);
    cn.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &cn_bu(&mut mn, 3));
    assert_eq!(cn_statuses(&mut cn, &mut mn), vec![(0, Some(ROUTER_MAC))]);
    assert_eq!(mn.stats().dropped(crate::ipsec::IpsecDrop::Replayed), 1);
}

/// `inner_src` → the correspondent, reverse-tunnelled from `COA`.
fn reverse_tunnelled(inner_src: Ipv6Addr) -> Vec<u8> {
    let inner = PacketRepr::ipv6(inner_src, OFF_LINK, vec![], UpperRepr::NoNextHeader);
    PacketRepr::ipv6(COA, HA, vec![], UpperRepr::Tunnel(Box::new(inner)))
        .to_bytes(&CodePoints::default())
}

// issue 14.4
// REQ MIP-BASE
#[test]
fn reverse_tunnelled_traffic_for_a_lost_binding_gets_binding_error_1() {
    let (mut ha, now) = home_agent(open_ipsec());
    // A home address we serve and hold nothing for (as after a restart):
    // dropped, and a Binding Error status 1 for it to the care-of address.
    ha.handle_packet(
        now,
        Iface::Link(0),
        Some(ROUTER_MAC),
        &reverse_tunnelled(HOA),
    );
    let sent = drain(&mut ha);
    assert_eq!(binding_errors(&sent), vec![(1, HOA)]);
    let to = PacketRepr::parse(&sent[0].bytes, &CodePoints::default()).unwrap();
    assert!(matches!(to.ip, IpRepr::V6 { header, .. } if header.dst == COA));
    // One we do not serve: dropped, no word.
    ha.handle_packet(
        now,
        Iface::Link(0),
        Some(ROUTER_MAC),
        &reverse_tunnelled(STRANGER),
    );
    assert_eq!(binding_errors(&drain(&mut ha)), vec![]);
    assert_eq!(ha.stats().dropped(NodeDrop::TunnelSourceMismatch), 2);
}
