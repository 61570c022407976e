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
use crate::wire::{CodePoints, ExtHeaderRepr, NdRepr, PacketRepr, UpperRepr};

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
    let mh = MhRepr {
        message: MhMessage::BindingUpdate {
            seq,
            flags: BuFlags(flags),
            lifetime: 100,
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
    let mut cfg = HaConfig::new(HA, vec![HOA], 1);
    cfg.home_prefix = HA;
    let mut ha = Ha::new(cfg, ipsec);
    let t0 = Instant::ZERO;
    ha.handle_command(
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
        prefixes: vec![PrefixInfo::slaac(HA)],
        advertisement_interval: None,
    };
    ra.prefixes[0].prefix = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0);
    let ra = nd_bytes(ROUTER_LL, crate::nd::ALL_NODES, &NdRepr::RouterAdvert(ra));
    ha.handle_packet(t0, Iface::Link(0), Some(ROUTER_MAC), &ra);
    let now = Instant::from_secs(2);
    ha.handle_timeout(now);
    assert_eq!(
        ha.interface(0).unwrap().state(HA),
        Some(AddrState::Preferred)
    );
    drain(&mut ha);
    (ha, now)
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
    // A retransmitted BU during DAD changes nothing but what is acked.
    let b2 = home_bu(&mut mn, HOA, 2, BuFlags::A | BuFlags::H);
    ha.handle_packet(t, Iface::Link(0), Some(ROUTER_MAC), &b2);
    assert!(statuses(&drain(&mut ha), &mut mn).is_empty());
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
