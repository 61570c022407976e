//! RFC 6275 §10 (Home Agent Operation), rule by rule, in the simulator:
//! crafted packets go to the home agent and what it puts on the home
//! link, counts and caches is asserted. Cases after the TAHI / IPv6
//! Ready Mobile IPv6 home agent self-test ("TAHI HA n.m" is the section
//! and subsection of its list, e.g. 2.4 "Proxy DAD Failed"). The mobile
//! node registers once and then leaves every link, so the test's packets
//! are the only ones the agent gets from it. The checklist in README.md
//! maps each rule to its test here or elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod tools;

use tools::crafted::{
    bad_mobility_headers, bas, bas_with_k, bes, cp, ha_drops, mh_packet, parameter_problems,
    seal_as_mn, udp, Sent,
};

use std::net::Ipv6Addr;

use common::ike::Mobility;
use common::ipsec::IpsecDrop;
use common::node::RouteOptimisation;
use common::node::{Engine, NodeDrop};
use common::time::{Duration, Instant};
use common::wire::mh::{BaFlags, BuFlags, MhMessage, MhOption, MhRepr};
use common::wire::nd::{solicited_node, NaFlags};
use common::wire::{ExtHeaderRepr, IpRepr, NdRepr, PacketRepr, UpperRepr};
use testbed::sim::{Role, INJECTOR_MAC};
use testbed::topology::{build, Keying, Setup, Topology, CN, HA, HOA};

use helpers::*;

mod helpers {
    use crate::tools::crafted::{self, bu_message, mh_packet, seal_as_mn, Sent};
    use std::net::Ipv6Addr;

    use common::node::RouteOptimisation;
    use common::time::{Duration, Instant};
    use common::wire::mh::{BuFlags, MhOption};
    use common::wire::nd::NaFlags;
    use common::wire::{NdRepr, PacketRepr, UpperRepr};
    use testbed::sim::LinkId;
    use testbed::topology::{build, Setup, Topology, HA, HOA};

    pub const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
    pub const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x100);
    /// A and H, as a mobile node sets them for a home registration.
    pub const AH: u16 = BuFlags::A | BuFlags::H;
    /// What a first registration waits: the DAD of the home address
    /// (RetransTimer) and a round trip.
    pub const DAD: Duration = Duration::from_millis(1200);
    pub const RTT: Duration = Duration::from_millis(300);

    /// The mobile node registered at access A (2.2 s), then off every
    /// link; returns its registration's sequence number.
    pub fn registered(seed: u64) -> (Topology, u16) {
        let mut t = build(&Setup::new(seed, RouteOptimisation::None));
        t.move_mn(Instant::from_secs(1), Some(t.access_a));
        t.sim.run_until(Instant::from_micros(2_200_000));
        let (care_of, seq) = binding(&t).expect("registered");
        assert_eq!(care_of, COA_A);
        t.move_mn(t.sim.now(), None);
        t.sim.run_for(RTT);
        (t, seq)
    }

    /// A home agent past its own DAD that holds nothing: the mobile node
    /// left the home link at 0.5 s, before it ever registered.
    pub fn unregistered(seed: u64) -> Topology {
        let mut t = build(&Setup::new(seed, RouteOptimisation::None));
        t.move_mn(Instant::from_millis(500), None);
        t.sim.run_until(Instant::from_secs(2));
        assert!(binding(&t).is_none());
        t
    }

    /// A home registration for `HOA` from `src` with `coa` in an
    /// Alternate Care-of Address option, in the clear.
    pub fn home_bu(src: Ipv6Addr, coa: Ipv6Addr, seq: u16, flags: u16, lifetime: u16) -> Vec<u8> {
        let options = vec![MhOption::AlternateCareOfAddress(coa)];
        let mh = bu_message(seq, flags, lifetime, options);
        mh_packet(src, HA, Some(HOA), mh)
    }

    /// [`home_bu`] from `COA_A` for itself, as the mobile node seals it.
    pub fn sealed(t: &mut Topology, seq: u16, flags: u16, lifetime: u16) -> Vec<u8> {
        seal_as_mn(t, &home_bu(COA_A, COA_A, seq, flags, lifetime))
    }

    /// Injects `packets` on `link`, `gap` apart, and returns what the home
    /// agent sent from its address on the home link meanwhile.
    pub fn to_ha(
        t: &mut Topology,
        link: LinkId,
        packets: Vec<Vec<u8>>,
        gap: Duration,
    ) -> Vec<Sent> {
        let ends = (link, t.home, HA);
        crafted::exchange(t, ends, packets, gap)
    }

    /// [`to_ha`] from access A, a round trip apart.
    pub fn from_a(t: &mut Topology, packets: Vec<Vec<u8>>) -> Vec<Sent> {
        let link = t.access_a;
        to_ha(t, link, packets, RTT)
    }

    pub fn binding(t: &Topology) -> Option<(Ipv6Addr, u16)> {
        let b = t.sim.ha(t.ha).unwrap().binding(HOA)?;
        Some((b.care_of, b.seq))
    }

    /// Whether the home agent defends `HOA` on the home link.
    pub fn proxying(t: &Topology) -> bool {
        proxying_for(t, HOA)
    }

    /// Whether the home agent defends `a` on the home link.
    pub fn proxying_for(t: &Topology, a: Ipv6Addr) -> bool {
        let ha = t.sim.ha(t.ha).unwrap();
        common::node::Engine::interface(ha, 0).is_some_and(|l| l.is_proxying(a))
    }

    /// The Neighbor Advertisements for `HOA` the home agent's node put on
    /// the home link from its `from`th frame on: (flags, target link-layer
    /// address).
    pub fn advertisements(t: &Topology, from: usize) -> Vec<(NaFlags, Option<[u8; 6]>)> {
        advertisements_for(t, from, HOA)
    }

    /// [`advertisements`] for `of`.
    pub fn advertisements_for(
        t: &Topology,
        from: usize,
        of: Ipv6Addr,
    ) -> Vec<(NaFlags, Option<[u8; 6]>)> {
        let frames = t.sim.captured(t.home).iter().zip(t.sim.hops(t.home));
        frames
            .skip(from)
            .filter(|(_, hop)| hop.from == Some(t.ha))
            .filter_map(|((_, b), _)| {
                let p = PacketRepr::parse(b, &crafted::cp()).ok()?;
                let UpperRepr::Icmpv6(i) = p.upper else {
                    return None;
                };
                match NdRepr::parse(&i).ok()?? {
                    NdRepr::NeighborAdvert {
                        flags,
                        target,
                        target_ll,
                    } if target == of => Some((flags, target_ll.map(|m| m.0))),
                    _ => None,
                }
            })
            .collect()
    }
}

/// The tunnelled packets among `sent`: (outer destination, inner bytes).
fn tunnelled(sent: &[Sent]) -> Vec<(Ipv6Addr, Vec<u8>)> {
    sent.iter()
        .filter_map(|s| match &s.packet.upper {
            UpperRepr::Tunnel(inner) => Some((s.dst, inner.to_bytes(&cp()))),
            _ => None,
        })
        .collect()
}

// RFC 6275 §10.3.1: a first home registration is accepted only after the
// DAD of the home address (a probe from :: for it, no BA before
// RetransTimer), then the binding is cached with the H flag's meaning
// (a home registration), and the BA (status 0, the BU's number, the
// lifetime granted) goes under ESP (RFC 3776) to the care-of address
// with a type 2 routing header holding the home address; K is clear
// since no IKE SA follows the node (static keys). A BA is returned
// whatever the A bit says (TAHI HA 2.1, 2.3).
// REQ MIP-BASE
// REQ MIP-HA-IPSEC
#[test]
fn a_first_registration_waits_for_dad_and_is_acknowledged_under_esp() {
    let mut t = unregistered(201);
    let from = t.sim.captured(t.home).len();
    let b = sealed(&mut t, 7, AH | BuFlags::K, 100);
    let early = from_a(&mut t, vec![b]);
    assert!(bas(&early).is_empty(), "no BA during DAD");
    assert_eq!(binding(&t), None);
    assert!(t.sim.ha(t.ha).unwrap().checking().any(|h| h == HOA));
    let probe = t.sim.captured(t.home)[from..].iter().any(|(_, b)| {
        let p = PacketRepr::parse(b, &cp()).unwrap();
        let IpRepr::V6 { header, .. } = &p.ip else {
            return false;
        };
        let UpperRepr::Icmpv6(i) = &p.upper else {
            return false;
        };
        header.src == Ipv6Addr::UNSPECIFIED
            && header.dst == solicited_node(HOA)
            && matches!(NdRepr::parse(i), Ok(Some(NdRepr::NeighborSolicit { target, .. })) if target == HOA)
    });
    assert!(probe, "a DAD probe for the home address");
    let sent = sent_after(&mut t, from, DAD);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 7, 100)]);
    assert_eq!(bas_with_k(&sent), 0, "K clear without IKE");
    let ba = sent.iter().find(|s| s.mh.is_some()).unwrap();
    assert!(matches!(ba.packet.upper, UpperRepr::Esp(_)), "BA under ESP");
    assert_eq!(binding(&t), Some((COA_A, 7)));
    // Registered: a BU with A clear (a new care-of address) is still
    // acknowledged, at once.
    let b = seal_as_mn(&mut t, &home_bu(COA_A, COA_B, 8, BuFlags::H, 100));
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_B, Some(HOA), 0, 8, 100)]);
    assert_eq!(binding(&t), Some((COA_B, 8)));
}

// RFC 6275 §10.3.1: the BA of a first registration waits for DAD of the
// home address; a home link lost meanwhile checks again when it is back,
// and the BA follows (found by engine_ha: the check went with the link,
// and the registration waited for ever, retransmissions and all).
// REQ MIP-BASE
#[test]
fn a_home_link_lost_during_dad_checks_again_when_it_is_back() {
    let mut t = unregistered(224);
    let b = sealed(&mut t, 1, AH, 100);
    from_a(&mut t, vec![b.clone()]);
    assert!(t.sim.ha(t.ha).unwrap().checking().any(|h| h == HOA));
    let now = t.sim.now();
    t.sim.move_at(now, t.ha, 0, None);
    t.sim.move_at(now + RTT, t.ha, 0, Some(t.home));
    t.sim.run_for(RTT * 2);
    let from = t.sim.captured(t.home).len();
    // The node's retransmission, once the agent is back.
    let again = from_a(&mut t, vec![b]);
    assert!(bas(&again).is_empty(), "still checking");
    let sent = sent_after(&mut t, from, DAD);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 1, 100)]);
    assert_eq!(binding(&t), Some((COA_A, 1)));
    assert!(proxying(&t));
}

/// Another node on the home link answers DAD for `addr`: an unsolicited
/// NA (O=1) to all nodes.
fn defended(t: &mut Topology, addr: Ipv6Addr) {
    let na = NdRepr::NeighborAdvert {
        flags: NaFlags {
            router: false,
            solicited: false,
            override_: true,
        },
        target: addr,
        target_ll: Some(INJECTOR_MAC),
    };
    let na = common::nd::nd_packet(addr, common::nd::ALL_NODES, &na).to_bytes(&cp());
    t.sim.inject(t.home, na);
}

/// What the home agent sent on the home link from frame `from` on, after
/// `wait` more.
fn sent_after(t: &mut Topology, from: usize, wait: Duration) -> Vec<Sent> {
    t.sim.run_for(wait);
    tools::crafted::sent_since(t, t.home, from, HA)
}

// RFC 6275 §10.3.1: if another node answers the DAD for the home address,
// the registration is refused with 134 and nothing is cached or proxied
// (TAHI HA 2.4).
// REQ MIP-BASE
#[test]
fn a_home_address_in_use_gets_134() {
    let mut t = unregistered(202);
    let from = t.sim.captured(t.home).len();
    let b = sealed(&mut t, 1, AH, 100);
    from_a(&mut t, vec![b]);
    // The address's owner defends it on the home link.
    defended(&mut t, HOA);
    let sent = sent_after(&mut t, from, DAD);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 134, 1, 0)]);
    assert_eq!(ha_drops(&t, NodeDrop::DuplicateHomeAddress), 1);
    assert_eq!(binding(&t), None);
    assert!(!proxying(&t));
}

// RFC 6275 §10.3.1 (§9.5.1's rule): sequence numbers compare modulo 2^16;
// with no entry any number is taken; equal, or 2^15 ahead, or behind is
// refused with 135 carrying the last accepted number, and the binding
// stays (TAHI HA 2.5, 2.6).
// REQ MIP-BASE
#[test]
fn sequence_numbers_compare_modulo_2_16() {
    let mut t = unregistered(203);
    let b = sealed(&mut t, 65535, AH, 100);
    let link = t.access_a;
    let first = to_ha(&mut t, link, vec![b], DAD);
    assert_eq!(bas(&first), vec![(COA_A, Some(HOA), 0, 65535, 100)]);
    let run = |t: &mut Topology, seq: u16| {
        let b = sealed(t, seq, AH, 100);
        let sent = from_a(t, vec![b]);
        (bas(&sent), binding(t).map(|b| b.1))
    };
    let ok = |seq| vec![(COA_A, Some(HOA), 0, seq, 100)];
    let stale = |last| vec![(COA_A, Some(HOA), 135, last, 0)];
    assert_eq!(run(&mut t, 0), (ok(0), Some(0)), "65535 -> 0 wraps");
    assert_eq!(run(&mut t, 0), (stale(0), Some(0)), "equal");
    assert_eq!(run(&mut t, 0x8000), (stale(0), Some(0)), "2^15 ahead");
    assert_eq!(run(&mut t, 0x7fff), (ok(0x7fff), Some(0x7fff)));
    assert_eq!(run(&mut t, 0x7ffe), (stale(0x7fff), Some(0x7fff)), "behind");
    assert_eq!(ha_drops(&t, NodeDrop::SequenceOutOfWindow), 3);
}

// RFC 6275 §10.3.1, §9.5.1: a BU with H clear is no home registration: a
// node registered here cannot change the kind of its registration (139),
// one that is not gets 129 (we are no correspondent); 132 and 133 need
// home addresses the simulator's SA does not cover: node tests
// `home_agent_refuses_with_132_133_135_139` (TAHI HA 2.2).
// REQ MIP-BASE
#[test]
fn a_bu_with_h_clear_gets_139_or_129() {
    let (mut t, seq) = registered(204);
    let b = sealed(&mut t, seq.wrapping_add(1), BuFlags::A, 100);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 139, seq + 1, 0)]);
    assert_eq!(ha_drops(&t, NodeDrop::RegistrationTypeChange), 1);
    assert_eq!(binding(&t), Some((COA_A, seq)));
    let mut t = unregistered(205);
    let b = sealed(&mut t, 1, BuFlags::A, 100);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 129, 1, 0)]);
    assert_eq!(ha_drops(&t, NodeDrop::NotOurMobileNode), 1);
    assert_eq!(binding(&t), None);
}

// RFC 6275 §10.3.1: the lifetime granted is at most the one asked for and
// at most the agent's own (3600 s: 900 units), and the BA says what was
// granted; when it runs out the entry goes, the home address is no longer
// defended and packets for it are no longer tunnelled.
// REQ MIP-BASE
#[test]
fn granted_lifetime_is_at_most_the_requested_and_the_entry_expires() {
    let (mut t, seq) = registered(206);
    let b = sealed(&mut t, seq + 1, AH, u16::MAX);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, seq + 1, 900)]);
    let b = sealed(&mut t, seq + 2, AH, 10);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, seq + 2, 10)]);
    t.sim.run_for(Duration::from_secs(39));
    assert!(binding(&t).is_some() && proxying(&t));
    t.sim.run_for(Duration::from_secs(1));
    assert_eq!(binding(&t), None);
    assert!(!proxying(&t));
    let from = t.sim.captured(t.home).len();
    let forwarded = t.sim.engine(t.ha).unwrap().stats().forwarded;
    t.sim.send_from_stack(t.cn, &udp(CN, HOA, vec![]));
    let sent = sent_after(&mut t, from, RTT);
    assert!(tunnelled(&sent).is_empty());
    assert_eq!(t.sim.engine(t.ha).unwrap().stats().forwarded, forwarded);
}

// RFC 6275 §10.3.2: lifetime 0, or the home address as care-of address,
// deletes the home registration: BA 0 with lifetime 0, the entry and the
// proxy gone. From the care-of address the BA has a type 2 routing
// header; from the home link (source the home address, no HAO) it goes
// to the home address itself, at the MAC the BU came from (the agent
// still answers for the address until then). With nothing registered a
// deregistration is refused with 133 (TAHI HA 3.1, 3.2).
// REQ MIP-BASE
#[test]
fn deregistration_forms_delete_the_binding_or_get_133() {
    let (mut t, seq) = registered(207);
    let b = sealed(&mut t, seq + 1, AH, 0);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, seq + 1, 0)]);
    assert_eq!(binding(&t), None);
    assert!(!proxying(&t));
    // Nothing registered now: 133.
    let b = sealed(&mut t, seq + 2, AH, 0);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 133, seq + 2, 0)]);
    assert_eq!(ha_drops(&t, NodeDrop::NotRegistered), 1);
    // Registered again, then the home address as Alternate CoA with a
    // nonzero lifetime, from the home link.
    let b = sealed(&mut t, seq + 3, AH, 100);
    let link = t.access_a;
    let sent = to_ha(&mut t, link, vec![b], DAD);
    assert_eq!(bas(&sent)[0].2, 0);
    assert!(proxying(&t));
    let mh = tools::crafted::bu_message(
        seq + 4,
        AH,
        100,
        vec![MhOption::AlternateCareOfAddress(HOA)],
    );
    let b = seal_as_mn(&mut t, &mh_packet(HOA, HA, None, mh));
    let link = t.home;
    let sent = to_ha(&mut t, link, vec![b], RTT);
    assert_eq!(bas(&sent), vec![(HOA, None, 0, seq + 4, 0)]);
    assert_eq!(binding(&t), None);
    assert!(!proxying(&t));
    let ha = t.sim.ha(t.ha).unwrap();
    let n = ha.interface(0).unwrap().neighbor(HOA).unwrap();
    assert_eq!(n.mac, Some(INJECTOR_MAC), "answered at the BU's MAC");
}

// RFC 6275 §10.3.1 (§9.5.1): the care-of address to register must be
// unicast routable: an Alternate CoA that is multicast, link-local,
// loopback or unspecified makes the BU silently discarded.
// REQ MIP-BASE
#[test]
fn a_care_of_address_that_is_not_unicast_routable_is_silently_discarded() {
    let (mut t, seq) = registered(208);
    let bad = [
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x100),
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::UNSPECIFIED,
    ];
    let mut sent = vec![];
    for (i, coa) in bad.iter().enumerate() {
        let b = seal_as_mn(&mut t, &home_bu(COA_A, *coa, seq + 1 + i as u16, AH, 100));
        sent.extend(from_a(&mut t, vec![b]));
    }
    assert!(sent.iter().all(|s| s.mh.is_none()), "nothing answered");
    assert_eq!(ha_drops(&t, NodeDrop::AlternateCoaRefused), 4);
    assert_eq!(binding(&t), Some((COA_A, seq)));
}

// RFC 3776 §3.1, RFC 6275 §10.3.1: home registrations only under ESP, by
// the SA of that home address: a clear BU is dropped (scenarios
// `home_registration_only_under_esp`), and so is a sealed one whose Home
// Address option (outside ESP) was rewritten to another home address
// this agent serves or not: the SA's selectors do not cover it.
// REQ MIP-HA-IPSEC
#[test]
fn a_bu_sealed_for_another_home_address_is_dropped() {
    let (mut t, seq) = registered(209);
    let other = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x200);
    let mut b = sealed(&mut t, seq + 1, AH, 100);
    // The HAO is the first copy of the home address after the header.
    let at = b[40..].windows(16).position(|w| w == HOA.octets()).unwrap() + 40;
    b[at..at + 16].copy_from_slice(&other.octets());
    let mismatches = |t: &Topology| {
        let ha = t.sim.engine(t.ha).unwrap();
        ha.ipsec().stats().dropped(IpsecDrop::SelectorMismatch)
    };
    let before = mismatches(&t);
    let sent = from_a(&mut t, vec![b]);
    assert!(bas(&sent).is_empty(), "no BA");
    assert_eq!(mismatches(&t), before + 1);
    assert_eq!(ha_drops(&t, NodeDrop::Ipsec), 1);
    assert_eq!(binding(&t), Some((COA_A, seq)));
    assert!(t.sim.ha(t.ha).unwrap().binding(other).is_none());
}

// RFC 6275 §10.4.1: once registered the agent defends the home address:
// unsolicited NAs (R=0, S=0, O=1, its own MAC as target link-layer
// address), three in all, and an answer to every NS for it (S=1, O=0);
// §10.4.2: what it intercepts for the home address goes, unchanged but
// for its Hop Limit, through IPv6-in-IPv6 from its address to the primary care-of address,
// the new one after a re-registration (TAHI HA 4.1, 4.2, 5.1).
// REQ MIP-BASE
#[test]
fn the_agent_defends_and_intercepts_the_home_address_and_tunnels_to_the_care_of_address() {
    let mut t = unregistered(210);
    let from = t.sim.captured(t.home).len();
    let b = sealed(&mut t, 1, AH, 100);
    let link = t.access_a;
    to_ha(&mut t, link, vec![b], DAD + Duration::from_secs(3));
    let mac = t.sim.ha(t.ha).unwrap().interface(0).unwrap().mac().0;
    let announce = (
        NaFlags {
            router: false,
            solicited: false,
            override_: true,
        },
        Some(mac),
    );
    assert_eq!(advertisements(&t, from), vec![announce; 3]);
    // An NS for the home address, from a station on the home link.
    let from = t.sim.captured(t.home).len();
    let station = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x300);
    let ns = NdRepr::NeighborSolicit {
        target: HOA,
        source_ll: Some(INJECTOR_MAC),
    };
    let ns = common::nd::nd_packet(station, solicited_node(HOA), &ns).to_bytes(&cp());
    t.sim.inject(t.home, ns);
    t.sim.run_for(RTT);
    let answer = (
        NaFlags {
            router: false,
            solicited: true,
            override_: false,
        },
        Some(mac),
    );
    assert_eq!(advertisements(&t, from), vec![answer]);
    // Intercepted and tunnelled, the inner packet unchanged.
    let data = udp(CN, HOA, vec![]);
    let from = t.sim.captured(t.home).len();
    t.sim.send_from_stack(t.cn, &data);
    let sent = sent_after(&mut t, from, RTT);
    let mut hop = PacketRepr::parse(&data, &cp()).unwrap();
    // The router forwarded it on the way, and the agent into the tunnel:
    // two hops less.
    if let IpRepr::V6 { header, .. } = &mut hop.ip {
        header.hop_limit -= 2;
    }
    assert_eq!(tunnelled(&sent), vec![(COA_A, hop.to_bytes(&cp()))]);
    // Registered at B: the tunnel follows.
    let b = seal_as_mn(&mut t, &home_bu(COA_A, COA_B, 2, AH, 100));
    from_a(&mut t, vec![b]);
    let from = t.sim.captured(t.home).len();
    t.sim.send_from_stack(t.cn, &data);
    let sent = sent_after(&mut t, from, RTT);
    assert_eq!(tunnelled(&sent), vec![(COA_B, hop.to_bytes(&cp()))]);
}

/// `inner_src` → the correspondent, reverse-tunnelled from `outer_src`.
fn reverse(outer_src: Ipv6Addr, inner_src: Ipv6Addr) -> Vec<u8> {
    let inner = PacketRepr::parse(&udp(inner_src, CN, vec![]), &cp()).unwrap();
    PacketRepr::ipv6(outer_src, HA, vec![], UpperRepr::Tunnel(Box::new(inner))).to_bytes(&cp())
}

// RFC 6275 §10.4.5: a reverse-tunnelled packet is decapsulated and
// forwarded only if its outer source is the primary care-of address of
// its inner source; otherwise it is silently discarded. With no binding
// for a home address the agent serves, a Binding Error status 1 goes
// back (our addition, so that a node whose binding was lost registers
// again; the RFC only drops); for an inner source it does not serve,
// nothing (TAHI HA 6.1, 6.2).
// REQ MIP-BASE
#[test]
fn the_reverse_tunnel_is_only_from_the_primary_care_of_address() {
    let (mut t, seq) = registered(211);
    let delivered = |t: &Topology| t.sim.engine(t.cn).unwrap().stats().delivered_direct;
    let before = delivered(&t);
    let from_cn = t.sim.captured(t.cn_link).len();
    let sent = from_a(&mut t, vec![reverse(COA_A, HOA)]);
    assert!(sent.iter().all(|s| s.mh.is_none()));
    assert_eq!(delivered(&t), before + 1, "forwarded to the correspondent");
    let out = &t.sim.captured(t.cn_link)[from_cn..];
    assert!(out.iter().any(|(_, b)| {
        let p = PacketRepr::parse(b, &cp()).unwrap();
        matches!(p.ip, IpRepr::V6 { header, .. } if header.src == HOA && header.dst == CN)
            && matches!(p.upper, UpperRepr::Udp(..))
    }));
    // From another care-of address, or for a node not served: dropped,
    // no word.
    let stranger = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x200);
    let link = t.access_b;
    let sent = to_ha(&mut t, link, vec![reverse(COA_B, HOA)], RTT);
    let sent2 = from_a(&mut t, vec![reverse(COA_A, stranger)]);
    assert!(sent.iter().chain(&sent2).all(|s| s.mh.is_none()));
    assert_eq!(ha_drops(&t, NodeDrop::TunnelSourceMismatch), 2);
    assert_eq!(delivered(&t), before + 1);
    // Deregistered: a Binding Error status 1 to the care-of address.
    let b = sealed(&mut t, seq + 1, AH, 0);
    let sent = from_a(&mut t, vec![b, reverse(COA_A, HOA)]);
    assert_eq!(bes(&sent), vec![(COA_A, 1, HOA)]);
    assert_eq!(ha_drops(&t, NodeDrop::TunnelSourceMismatch), 3);
}

// RFC 6275 §9.3.1 (every node that receives a Home Address option, the
// home agent too): a packet to the agent with a HAO for which no binding
// has that care-of address is dropped with a Binding Error status 1 to
// its source, unless the home address is not unicast routable (then
// silently); with the registered care-of address it is delivered, the
// home address as its source.
// REQ MIP-BASE
#[test]
fn a_home_address_option_needs_the_registered_care_of_address() {
    let (mut t, _) = registered(212);
    let group = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 1);
    let link = t.access_b;
    let sent = to_ha(
        &mut t,
        link,
        vec![
            udp(COA_B, HA, vec![ExtHeaderRepr::home_address(HOA)]),
            udp(COA_B, HA, vec![ExtHeaderRepr::home_address(group)]),
        ],
        RTT,
    );
    assert_eq!(bes(&sent), vec![(COA_B, 1, HOA)]);
    assert_eq!(ha_drops(&t, NodeDrop::HaoUnverified), 2);
    let stats = |t: &Topology| t.sim.engine(t.ha).unwrap().stats().clone();
    assert_eq!(stats(&t).delivered_route_optimised, 0);
    let sent = from_a(
        &mut t,
        vec![udp(COA_A, HA, vec![ExtHeaderRepr::home_address(HOA)])],
    );
    assert!(bes(&sent).is_empty());
    assert_eq!(stats(&t).delivered_route_optimised, 1);
    assert_eq!(ha_drops(&t, NodeDrop::HaoUnverified), 2);
}

// RFC 6275 §10.2 (§9.2's rules at the home agent): a Mobility Header
// whose checksum fails is silently discarded; Payload Proto other than
// 59 or a Header Len too short for the type gets an ICMPv6 Parameter
// Problem, code 0, pointing at the field; an unknown MH type gets a
// Binding Error status 2 with the packet's HAO.
// REQ MIP-BASE
#[test]
fn mobility_headers_are_checked_as_at_any_node() {
    let (mut t, seq) = registered(213);
    // A sealed BU whose checksum is wrong: no BA, the binding unchanged.
    let mut b = home_bu(COA_A, COA_A, seq + 1, AH, 100);
    let mh_at = 40 + 24;
    b[mh_at + 4] ^= 0xff;
    let b = seal_as_mn(&mut t, &b);
    let before = ha_drops(&t, NodeDrop::Malformed);
    let sent = from_a(&mut t, vec![b]);
    assert!(sent.iter().all(|s| s.mh.is_none()));
    assert_eq!(ha_drops(&t, NodeDrop::Malformed), before + 1);
    assert_eq!(binding(&t), Some((COA_A, seq)));
    // A HoTI with Payload Proto 6, then one in 8 bytes (Header Len 0).
    let sent = from_a(&mut t, bad_mobility_headers(COA_A, HA));
    let problems = parameter_problems(&sent);
    assert_eq!(problems, vec![(COA_A, 0, 40), (COA_A, 0, 41)]);
    assert_eq!(ha_drops(&t, NodeDrop::BadMobilityHeader), 2);
    // An unknown type, with the registered care-of address and HAO.
    let mh = MhRepr {
        message: MhMessage::Unknown {
            mh_type: 99,
            data: vec![0; 10],
        },
        options: vec![],
    };
    let sent = from_a(&mut t, vec![mh_packet(COA_A, HA, Some(HOA), mh)]);
    assert_eq!(bes(&sent), vec![(COA_A, 2, HOA)]);
    assert_eq!(ha_drops(&t, NodeDrop::UnknownMhType), 1);
}

/// Opens `bytes` (ESP to the mobile node) with the node's own SAs and
/// returns its Mobility Header: for the SAs IKE made, whose keys the
/// run's keyring does not hold. The node, off every link, never saw it.
fn open_as_mn(t: &mut Topology, bytes: &[u8]) -> Option<MhRepr> {
    let now = t.sim.now();
    let Some(Role::Mn(m)) = t.sim.role_mut(t.mn) else {
        panic!("no mn")
    };
    let mut plain = vec![];
    let r = m.ipsec_mut().inbound(now, bytes, &mut plain).ok()?;
    if !matches!(r, common::ipsec::Inbound::Decrypted { .. }) {
        return None;
    }
    match PacketRepr::parse(&plain, &cp()).ok()?.upper {
        UpperRepr::Mobility(mh) => Some(mh),
        _ => None,
    }
}

// RFC 6275 §10.3.1, RFC 4877 §4.5: the BA has K set only when the BU
// asked for it and the IKE SA that made the BU's SA moves with the care-of
// address (MOBIKE, or draft-dupont-ikev2-addrmgmt); keyed by IKE without
// either, K is clear (and with static keys, see
// `a_first_registration_waits_for_dad_and_is_acknowledged_under_esp`).
// REQ MIP-HA-IPSEC
#[test]
fn k_is_acknowledged_only_when_the_ike_sa_follows_the_node() {
    let cases = [
        (Mobility::Mobike { r_mobike: false }, true),
        (Mobility::AddrMgmt, true),
        (Mobility::Off, false),
    ];
    for (i, (mobility, k)) in cases.into_iter().enumerate() {
        let mut setup = Setup::new(214 + i as u64, RouteOptimisation::None);
        setup.keying = Keying::Ike {
            mobility,
            payload: false,
        };
        let mut t = build(&setup);
        t.move_mn(Instant::from_secs(1), Some(t.access_a));
        t.sim.run_until(Instant::from_secs(4));
        let (_, seq) = binding(&t).expect("registered");
        t.move_mn(t.sim.now(), None);
        t.sim.run_for(RTT);
        let from = t.sim.captured(t.home).len();
        let b = sealed(&mut t, seq + 1, AH | BuFlags::K, 100);
        t.sim.inject(t.access_a, b);
        t.sim.run_for(RTT);
        let frames: Vec<Vec<u8>> = t.sim.captured(t.home)[from..]
            .iter()
            .map(|(_, b)| b.clone())
            .collect();
        let acks: Vec<(u8, bool)> = frames
            .iter()
            .filter_map(|b| match open_as_mn(&mut t, b)?.message {
                MhMessage::BindingAck { status, flags, .. } => {
                    Some((u8::from(status), flags.has(BaFlags::K)))
                }
                _ => None,
            })
            .collect();
        assert_eq!(acks, vec![(0, k)], "{mobility:?}");
    }
}

// RFC 6275 §10.4.1, §10.4.2: the agent intercepts unicast packets for the
// home addresses it defends; multicast on the home link (a link-local
// scope group the node may have joined) is not tunnelled to it, and is
// counted (`Multicast`): the engines join no group but Neighbor
// Discovery's.
// REQ MIP-BASE
#[test]
fn multicast_on_the_home_link_is_not_tunnelled() {
    let (mut t, _) = registered(217);
    let from = t.sim.captured(t.home).len();
    let forwarded = t.sim.engine(t.ha).unwrap().stats().forwarded;
    let station = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x300);
    t.sim
        .inject(t.home, udp(station, common::nd::ALL_NODES, vec![]));
    let sent = sent_after(&mut t, from, RTT);
    assert!(tunnelled(&sent).is_empty());
    assert_eq!(t.sim.engine(t.ha).unwrap().stats().forwarded, forwarded);
    assert_eq!(ha_drops(&t, NodeDrop::Multicast), 1);
}

// RFC 6275 §10.3.2 with §10.3.1's DAD: a deregistration while the first
// registration still waits for the DAD of its home address withdraws it:
// BA 0 with lifetime 0 at once, and no BA, binding or proxy when the DAD
// ends.
// REQ MIP-BASE
#[test]
fn a_deregistration_during_dad_withdraws_the_registration() {
    let mut t = unregistered(218);
    let register = sealed(&mut t, 1, AH, 100);
    let deregister = sealed(&mut t, 2, AH, 0);
    let link = t.access_a;
    let sent = to_ha(&mut t, link, vec![register, deregister], RTT);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 2, 0)]);
    let from = t.sim.captured(t.home).len();
    let sent = sent_after(&mut t, from, DAD);
    assert!(bas(&sent).is_empty());
    assert_eq!(binding(&t), None);
    assert!(t.sim.ha(t.ha).unwrap().checking().next().is_none());
    assert!(!proxying(&t));
}

/// The ICMPv6 Time Exceeded messages among `sent`, tunnelled or not:
/// (outer destination, destination, code).
fn time_exceeded(sent: &[Sent]) -> Vec<(Ipv6Addr, Ipv6Addr, u8)> {
    sent.iter()
        .filter_map(|s| {
            let p = match &s.packet.upper {
                UpperRepr::Tunnel(inner) => inner,
                _ => &s.packet,
            };
            match (&p.ip, &p.upper) {
                (IpRepr::V6 { header, .. }, UpperRepr::Icmpv6(i)) if i.msg_type == 3 => {
                    Some((s.dst, header.dst, i.code))
                }
                _ => None,
            }
        })
        .collect()
}

// RFC 6275 §10.4.2 with RFC 2473 §3.1 and RFC 8200 §3: the agent forwards
// what it tunnels, both ways, so the Hop Limit of the packet it carries
// goes down by one; one that would reach 0 is dropped with an ICMPv6
// Time Exceeded, code 0, to its source (RFC 4443 §3.3), through the
// tunnel if that source is a registered home address.
// REQ MIP-BASE
#[test]
fn forwarding_through_the_tunnel_lowers_the_hop_limit() {
    let (mut t, _) = registered(220);
    // For the home address with Hop Limit 2: 1 after the router.
    let mut data = udp(CN, HOA, vec![]);
    data[7] = 2;
    let from = t.sim.captured(t.home).len();
    t.sim.inject(t.cn_link, data);
    let sent = sent_after(&mut t, from, RTT);
    assert!(tunnelled(&sent).is_empty());
    assert_eq!(time_exceeded(&sent), vec![(CN, CN, 0)]);
    assert_eq!(ha_drops(&t, NodeDrop::HopLimit), 1);
    // Reverse-tunnelled with Hop Limit 1: the error goes back through
    // the tunnel to the home address.
    let mut last = reverse(COA_A, HOA);
    last[40 + 7] = 1;
    let sent = from_a(&mut t, vec![last]);
    assert_eq!(time_exceeded(&sent), vec![(COA_A, HOA, 0)]);
    assert_eq!(ha_drops(&t, NodeDrop::HopLimit), 2);
    // With 64 it leaves the agent with 63.
    let from = t.sim.captured(t.home).len();
    t.sim.inject(t.access_a, reverse(COA_A, HOA));
    t.sim.run_for(RTT);
    let out = tools::crafted::sent_since(&t, t.home, from, HOA);
    let limits: Vec<u8> = out
        .iter()
        .filter_map(|s| match &s.packet.ip {
            IpRepr::V6 { header, .. } if header.dst == CN => Some(header.hop_limit),
            _ => None,
        })
        .collect();
    assert_eq!(limits, vec![63]);
}

// RFC 6275 §10.4.1, §10.4.2: what the agent itself sends to a home
// address registered with it goes through the tunnel to the care-of
// address, as what it intercepts does (it was sent on the home link and
// never resolved, since only the agent answers there for that address).
// REQ MIP-BASE
#[test]
fn the_agents_own_packets_to_a_registered_home_address_go_through_the_tunnel() {
    let (mut t, _) = registered(221);
    let data = udp(HA, HOA, vec![]);
    let from = t.sim.captured(t.home).len();
    t.sim.send_from_stack(t.ha, &data);
    let sent = sent_after(&mut t, from, RTT);
    assert_eq!(tunnelled(&sent), vec![(COA_A, data)]);
    let ha = t.sim.engine(t.ha).unwrap().stats();
    assert_eq!((ha.sent_tunnelled, ha.sent_direct), (1, 0));
    assert_eq!(ha_drops(&t, NodeDrop::Unresolved), 0);
}

/// The targets of the DAD probes (NS from `::`) on the home link from
/// frame `from` on.
fn dad_probes(t: &Topology, from: usize) -> Vec<Ipv6Addr> {
    t.sim.captured(t.home)[from..]
        .iter()
        .filter_map(|(_, b)| {
            let p = PacketRepr::parse(b, &cp()).ok()?;
            let (IpRepr::V6 { header, .. }, UpperRepr::Icmpv6(i)) = (&p.ip, &p.upper) else {
                return None;
            };
            match NdRepr::parse(i).ok()?? {
                NdRepr::NeighborSolicit { target, .. } if header.src.is_unspecified() => {
                    Some(target)
                }
                _ => None,
            }
        })
        .collect()
}

/// The ICMPv6 Destination Unreachable messages among `sent`:
/// (destination, code).
fn unreachables(sent: &[Sent]) -> Vec<(Ipv6Addr, u8)> {
    sent.iter()
        .filter_map(|s| match &s.packet.upper {
            UpperRepr::Icmpv6(i) if i.msg_type == 1 => Some((s.dst, i.code)),
            _ => None,
        })
        .collect()
}

// RFC 6275 §10.3.1: with L set the agent checks and defends the node's
// link-local address too (the home address's interface identifier): a
// DAD probe for each before the BA, unsolicited NAs for both; §10.4.2:
// what it intercepts for the link-local address is not tunnelled but
// dropped with a Destination Unreachable, code 3, to its source; both go
// at deregistration, and without L the link-local address is left alone.
// REQ MIP-BASE
#[test]
fn with_l_the_link_local_address_is_defended_and_never_tunnelled() {
    let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x100);
    let mut t = unregistered(222);
    let from = t.sim.captured(t.home).len();
    let b = sealed(&mut t, 1, AH | BuFlags::L, 100);
    let link = t.access_a;
    let sent = to_ha(&mut t, link, vec![b], DAD + Duration::from_secs(3));
    let mut probed = dad_probes(&t, from);
    probed.sort();
    assert_eq!(probed, vec![HOA, ll]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 1, 100)]);
    assert!(proxying_for(&t, ll));
    assert_eq!(advertisements_for(&t, from, ll).len(), 3);
    // A packet for the link-local address, on the home link.
    let to_ll = udp(CN, ll, vec![]);
    let home = t.home;
    let sent = to_ha(&mut t, home, vec![to_ll.clone()], RTT);
    assert!(tunnelled(&sent).is_empty());
    assert_eq!(unreachables(&sent), vec![(CN, 3)]);
    // Deregistered: neither is defended; registered again without L, the
    // link-local address stays alone.
    let b = sealed(&mut t, 2, AH, 0);
    from_a(&mut t, vec![b]);
    assert!(!proxying(&t) && !proxying_for(&t, ll));
    let from = t.sim.captured(t.home).len();
    let b = sealed(&mut t, 3, AH, 100);
    let sent = to_ha(&mut t, link, vec![b], DAD);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 3, 100)]);
    assert_eq!(dad_probes(&t, from), vec![HOA]);
    assert!(!proxying_for(&t, ll));
    let sent = to_ha(&mut t, home, vec![to_ll], RTT);
    assert!(unreachables(&sent).is_empty() && tunnelled(&sent).is_empty());
}

// RFC 6275 §10.3.1: with L, a duplicate link-local address refuses the
// registration as a duplicate home address does: 134, nothing cached,
// neither address defended.
// REQ MIP-BASE
#[test]
fn with_l_a_link_local_address_in_use_gets_134() {
    let ll = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x100);
    let mut t = unregistered(223);
    let from = t.sim.captured(t.home).len();
    let b = sealed(&mut t, 1, AH | BuFlags::L, 100);
    from_a(&mut t, vec![b]);
    defended(&mut t, ll);
    let sent = sent_after(&mut t, from, DAD);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 134, 1, 0)]);
    assert_eq!(ha_drops(&t, NodeDrop::DuplicateHomeAddress), 1);
    assert_eq!(binding(&t), None);
    assert!(!proxying(&t) && !proxying_for(&t, ll));
    assert!(t.sim.ha(t.ha).unwrap().checking().next().is_none());
}
