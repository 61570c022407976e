//! Engine-level checks that need a home agent SA wider than one home
//! address (the simulator's pairs are per home address, as they should
//! be), and the sequence-number arithmetic.

#![allow(clippy::unwrap_used, reason = "tests")]

use ::core::net::{IpAddr, Ipv6Addr};

use super::*;
use crate::ipsec::{
    Action, AddressPair, Algorithm, Mode, Outbound, Policy, Prefix, SaKeys, SaPairSpec, Selector,
};
use crate::wire::mh::{BuFlags, MhMessage, MhOption, MhRepr};
use crate::wire::{CodePoints, ExtHeaderRepr, PacketRepr, UpperRepr};

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
        let (_, out) = ipsec.sad.add_pair(Instant::ZERO, &spec).unwrap();
        ipsec.spd.push(Policy {
            selector: sel,
            action: Action::Protect(vec![out]),
        });
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

/// The status of the BA the home agent answered with.
fn status(ha: &mut Ha, mn: &mut Ipsec) -> u8 {
    let t = ha.poll_transmit().unwrap();
    let mut out = vec![];
    mn.inbound(Instant::ZERO, &t.bytes, &mut out).unwrap();
    match PacketRepr::parse(&out, &CodePoints::default())
        .unwrap()
        .upper
    {
        UpperRepr::Mobility(MhRepr {
            message: MhMessage::BindingAck { status, .. },
            ..
        }) => status.into(),
        u => panic!("not a BA: {u:?}"),
    }
}

// REQ MIP-BASE
#[test]
fn home_agent_refuses_with_132_133_135_139() {
    let (mut mn, ha_ipsec) = wide_pair();
    let mut cfg = HaConfig::new(HA, vec![HOA], 1);
    cfg.home_prefix = HA;
    let mut ha = Ha::new(cfg, ha_ipsec);
    let now = Instant::ZERO;
    let a_h = BuFlags::A | BuFlags::H;
    let cases = [
        (OFF_LINK, 1, a_h, 132, NodeDrop::NotHomeSubnet),
        (STRANGER, 2, a_h, 133, NodeDrop::NotOurMobileNode),
        (HOA, 10, a_h, 0, NodeDrop::Malformed),
        (HOA, 9, a_h, 135, NodeDrop::SequenceOutOfWindow),
        (HOA, 11, BuFlags::A, 139, NodeDrop::RegistrationTypeChange),
    ];
    for (home, seq, flags, want, drop) in cases {
        let b = home_bu(&mut mn, home, seq, flags);
        ha.handle_packet(now, Iface::Link(0), &b);
        assert_eq!(status(&mut ha, &mut mn), want, "{home} seq {seq}");
        if want != 0 {
            assert_eq!(ha.stats().dropped(drop), 1, "{drop:?}");
        }
    }
    assert_eq!(ha.binding(HOA).unwrap().seq, 10);
    let claims: Vec<Event> = std::iter::from_fn(|| ha.poll_event())
        .filter(|e| matches!(e, Event::Claim { .. }))
        .collect();
    assert_eq!(
        claims,
        vec![Event::Claim {
            iface: Iface::Link(0),
            address: HOA
        }]
    );
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
