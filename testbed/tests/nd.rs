//! Neighbor Discovery end to end in the simulator: the home agent's proxy
//! for registered home addresses (RFC 6275 §10.4.1) and the mobile node
//! taking its home address back (§11.5.5), DAD of a home address before
//! the first registration (§10.3.1, BA 134), movement detection with two
//! access interfaces and from a router found unreachable (§11.5.1, RFC
//! 4861 §7.3), address resolution of an Optimistic care-of address (RFC
//! 4429 §3.3) and the validity checks of RFC 4861 §6.1 and §7.1. Every
//! assertion is on counters, state, the trace or the bytes on the wire;
//! all time is virtual.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeSet;
use std::net::Ipv6Addr;

use common::ipsec::Ipsec;
use common::nd::{
    link_local, nd_packet, AddrState, Dad, NeighborState, ALL_NODES, ALL_ROUTERS,
    DELAY_FIRST_PROBE_TIME, MAX_NEIGHBOR_ADVERTISEMENT, MAX_UNICAST_SOLICIT, RETRANS_TIMER,
};
use common::node::mn::Location;
use common::node::{Cn, CnConfig, NodeDrop, RouteOptimisation};
use common::time::{Duration, Instant};
use common::wire::mh::{MhMessage, MhOption, MhRepr};
use common::wire::nd::{solicited_node, NaFlags, PrefixInfo, RouterAdvert};
use common::wire::{CodePoints, IpRepr, MacAddr, NdRepr, PacketRepr, UpperRepr};
use testbed::sim::{Flow, LinkId, NodeId, Port, Role, INJECTOR_MAC};
use testbed::topology::{
    build, Setup, Topology, CN, HA, HOA, MN_ACCESS_A_IFACE, MN_ACCESS_B_IFACE, MN_HOME_IFACE,
};

const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x100);
/// The router's interfaces, in the order `build` gives its links.
const ROUTER_ACCESS_A: u8 = 2;
const ROUTER_ACCESS_B: u8 = 3;

fn secs(s: f64) -> Instant {
    Instant::from_micros((s * 1e6).round() as u64)
}

/// `d` before `at`.
fn before(at: Instant, d: Duration) -> Instant {
    Instant::from_micros(at.total_micros() - u64::try_from(d.as_micros()).unwrap())
}

fn cp() -> CodePoints {
    CodePoints::default()
}

/// The MAC of a host's interface in the simulator.
fn mac(node: NodeId, iface: u8) -> MacAddr {
    Port { node, iface }.mac()
}

/// A station of the test's own on a link: what [`testbed::sim::Sim::inject`]
/// sends from, and its link-local address.
fn station() -> (Ipv6Addr, MacAddr) {
    (link_local(INJECTOR_MAC), INJECTOR_MAC)
}

/// A Neighbor Solicitation for `target` from `src` with a source
/// link-layer option, to the target's solicited-node group, hop limit 255.
fn ns(target: Ipv6Addr, src: Ipv6Addr, sll: MacAddr) -> PacketRepr {
    let msg = NdRepr::NeighborSolicit {
        target,
        source_ll: Some(sll),
    };
    nd_packet(src, solicited_node(target), &msg)
}

fn with_hop_limit(mut p: PacketRepr, hop_limit: u8) -> PacketRepr {
    if let IpRepr::V6 { header, .. } = &mut p.ip {
        header.hop_limit = hop_limit;
    }
    p
}

/// One ND message seen on a link.
#[derive(Debug, Clone)]
struct Nd {
    at: Instant,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    msg: NdRepr,
}

impl Nd {
    /// Flags, target and target link-layer address of an NA.
    fn na(&self) -> Option<(NaFlags, Ipv6Addr, Option<MacAddr>)> {
        match self.msg {
            NdRepr::NeighborAdvert {
                flags,
                target,
                target_ll,
            } => Some((flags, target, target_ll)),
            _ => None,
        }
    }

    /// Target and source link-layer address of an NS.
    fn ns(&self) -> Option<(Ipv6Addr, Option<MacAddr>)> {
        match self.msg {
            NdRepr::NeighborSolicit { target, source_ll } => Some((target, source_ll)),
            _ => None,
        }
    }
}

/// The IPv6 header fields and, for ND, the message, of a captured packet.
fn parse(at: Instant, b: &[u8]) -> (Ipv6Addr, Ipv6Addr, Option<Nd>) {
    let p = PacketRepr::parse(b, &cp()).expect("captured packets parse");
    let IpRepr::V6 { header, .. } = &p.ip else {
        panic!("not IPv6")
    };
    let nd = match &p.upper {
        UpperRepr::Icmpv6(i) => NdRepr::parse(i).ok().flatten().map(|msg| Nd {
            at,
            src: header.src,
            dst: header.dst,
            hop_limit: header.hop_limit,
            msg,
        }),
        _ => None,
    };
    (header.src, header.dst, nd)
}

/// The ND messages captured on `link` from capture index `from` on.
fn nd_on(t: &Topology, link: LinkId, from: usize) -> Vec<Nd> {
    t.sim.captured(link)[from..]
        .iter()
        .filter_map(|(at, b)| parse(*at, b).2)
        .collect()
}

/// The NAs for `target` on `link` from capture index `from` on.
fn nas_for(t: &Topology, link: LinkId, from: usize, target: Ipv6Addr) -> Vec<Nd> {
    nd_on(t, link, from)
        .into_iter()
        .filter(|n| n.na().is_some_and(|(_, tg, _)| tg == target))
        .collect()
}

const fn flags(router: bool, solicited: bool, override_: bool) -> NaFlags {
    NaFlags {
        router,
        solicited,
        override_,
    }
}

/// When `node`'s trace said something containing `needle`.
fn trace_at(t: &Topology, node: &str, needle: &str) -> Vec<Instant> {
    t.sim
        .trace()
        .into_iter()
        .filter(|l| l.node == node && l.what.contains(needle))
        .map(|l| l.at)
        .collect()
}

/// The Mobility Header inside a captured ESP packet, opened with the run's
/// keys.
fn open_mh(t: &Topology, bytes: &[u8]) -> MhRepr {
    let d = common::wire::packet::decode_with(bytes, &cp(), false, Some(&t.keyring));
    match d.decrypted.last() {
        Some(UpperRepr::Mobility(m)) => m.clone(),
        other => panic!("no MH inside: {other:?} {:?}", d.errors),
    }
}

/// The Mobility Headers of the ESP packets from `src` to `dst` on `link`.
fn esp_mh(t: &Topology, link: LinkId, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<(Instant, MhRepr)> {
    t.sim
        .captured(link)
        .iter()
        .filter(|(at, b)| {
            let (s, d, _) = parse(*at, b);
            let esp = matches!(
                PacketRepr::parse(b, &cp()).map(|p| p.upper),
                Ok(UpperRepr::Esp(_))
            );
            s == src && d == dst && esp
        })
        .map(|(at, b)| (*at, open_mh(t, b)))
        .collect()
}

fn mn(t: &Topology) -> &common::node::Mn {
    t.sim.mn(t.mn).unwrap()
}

fn mn_iface(t: &Topology, iface: u8) -> &common::nd::NdIface {
    t.sim.engine(t.mn).unwrap().interface(iface).unwrap()
}

fn ha_care_of(t: &Topology) -> Option<Ipv6Addr> {
    t.sim.ha(t.ha).unwrap().binding(HOA).map(|b| b.care_of)
}

fn cn_care_of(t: &Topology) -> Option<Ipv6Addr> {
    t.sim.cn(t.cn).unwrap().binding(HOA).and_then(|b| b.care_of)
}

/// A UDP flow from the correspondent to the home address.
fn cn_flow(t: &mut Topology, start: Instant, interval: Duration, until: Instant) -> u32 {
    let flow = Flow {
        from: t.cn,
        src: CN,
        dst: HOA,
        interval,
        until,
    };
    t.sim.flow(start, flow)
}

/// The send times of the flow's packets that never arrived.
fn lost(t: &Topology, flow: u32, start: Instant, interval: Duration) -> Vec<Instant> {
    let got: BTreeSet<u64> = t
        .sim
        .arrivals
        .iter()
        .filter(|a| a.flow == flow)
        .map(|a| a.seq)
        .collect();
    (0..t.sim.flow_sent(flow))
        .filter(|s| !got.contains(s))
        .map(|s| start + interval * u32::try_from(s).unwrap())
        .collect()
}

// REQ MIP-BASE
#[test]
fn home_agent_answers_for_a_registered_home_address_and_stops_after_deregistration() {
    let mut t = build(&Setup::new(21, RouteOptimisation::None));
    let ha_mac = mac(t.ha, 0);
    let mn_home_mac = mac(t.mn, MN_HOME_IFACE);
    let (me, my_mac) = station();
    let solicit = ns(HOA, me, my_mac).to_bytes(&cp());
    t.move_mn(secs(1.0), Some(t.access_a));

    // The first registration waits for the home agent's DAD of the home
    // address (RFC 6275 §10.3.1); meanwhile it answers nobody for it.
    t.sim.run_until(secs(1.5));
    let ha = t.sim.ha(t.ha).unwrap();
    assert_eq!(ha.checking().collect::<Vec<_>>(), vec![HOA]);
    assert!(ha.binding(HOA).is_none());
    t.sim.inject(t.home, solicit.clone());
    t.sim.run_until(secs(5.0));
    let registered = trace_at(&t, "ha", "binding 2001:db8:1::100 -> 2001:db8:2::100");
    assert_eq!(registered.len(), 1);
    let registered = registered[0];
    assert!(registered > secs(1.5));
    assert_eq!(ha_care_of(&t), Some(COA_A));
    assert!(t
        .sim
        .engine(t.ha)
        .unwrap()
        .interface(0)
        .unwrap()
        .is_proxying(HOA));

    // §10.4.1: on registration, unsolicited NAs for the home address with
    // the home agent's MAC, R=0 S=0 O=1, one RetransTimer apart.
    let nas = nas_for(&t, t.home, 0, HOA);
    assert!(
        nas.iter().all(|n| n.dst != me),
        "answered during DAD: {nas:?}"
    );
    let announced: Vec<&Nd> = nas
        .iter()
        .filter(|n| n.na().unwrap().2 == Some(ha_mac))
        .collect();
    assert_eq!(
        announced.len(),
        usize::from(MAX_NEIGHBOR_ADVERTISEMENT),
        "{announced:?}"
    );
    for (k, n) in announced.iter().enumerate() {
        assert_eq!(n.na().unwrap().0, flags(false, false, true), "{n:?}");
        assert_eq!((n.src, n.dst, n.hop_limit), (HA, ALL_NODES, 255));
        assert_eq!(n.at, registered + RETRANS_TIMER * k as u32);
    }

    // A solicitation now is answered by the home agent, for the node:
    // solicited, not overriding (a proxy's answer, RFC 4861 §7.2.8).
    let from = t.sim.captured(t.home).len();
    t.sim.inject(t.home, solicit.clone());
    t.sim.run_until(secs(5.5));
    let answers: Vec<Nd> = nas_for(&t, t.home, from, HOA)
        .into_iter()
        .filter(|n| n.dst == me)
        .collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].na().unwrap().0, flags(false, true, false));
    assert_eq!(answers[0].na().unwrap().2, Some(ha_mac));
    assert_eq!((answers[0].src, answers[0].hop_limit), (HA, 255));

    // Home again: the home agent defends the address until the
    // deregistration, then the node announces it itself (§11.5.5).
    let back = t.sim.captured(t.home).len();
    t.move_mn(secs(6.0), Some(t.home));
    // Once the node is home (its first RA), the deregistration still takes
    // three crossings of the home link (its NS from ::, the agent's NA, the
    // BU): a solicitation meanwhile is the agent's to answer, and the
    // node, quiet, keeps out of it.
    t.sim.run_until(secs(6.0));
    while mn(&t).location() != Location::Home(MN_HOME_IFACE) {
        assert!(t.sim.now() < secs(6.2), "not home");
        t.sim.run_for(Duration::from_millis(1));
    }
    assert_eq!(
        mn_iface(&t, MN_HOME_IFACE).state(HOA),
        Some(AddrState::Quiet)
    );
    let injected = t.sim.now();
    let quiet = t.sim.captured(t.home).len();
    t.sim.inject(t.home, solicit.clone());
    t.sim.run_until(secs(9.5));
    let during: Vec<Nd> = nas_for(&t, t.home, quiet, HOA)
        .into_iter()
        .filter(|n| n.dst == me)
        .collect();
    assert_eq!(during.len(), 1, "{during:?}");
    assert_eq!(
        during[0].na().unwrap(),
        (flags(false, true, false), HOA, Some(ha_mac))
    );
    assert!(ha_care_of(&t).is_none());
    let removed = trace_at(&t, "ha", "removed (Deregistered)");
    assert_eq!(removed.len(), 1);
    assert!(injected + Duration::from_millis(30) < removed[0]);
    assert!(!t
        .sim
        .engine(t.ha)
        .unwrap()
        .interface(0)
        .unwrap()
        .is_proxying(HOA));
    assert_eq!(mn(&t).location(), Location::Home(MN_HOME_IFACE));
    let acked = trace_at(&t, "mn", "BA from 2001:db8:1::1: status 0, lifetime 0 s");
    assert_eq!(acked.len(), 1);
    let acked = acked[0];
    let home_nas = nas_for(&t, t.home, back, HOA);
    // The node, still quiet, asked for its home address from :: to find
    // the home agent's MAC; the agent answered that, for the last time.
    let by_ha: Vec<&Nd> = home_nas
        .iter()
        .filter(|n| n.na().unwrap().2 == Some(ha_mac) && n.dst != me)
        .collect();
    assert_eq!(by_ha.len(), 1, "{by_ha:?}");
    assert!(by_ha[0].at < acked);
    assert_eq!(by_ha[0].dst, ALL_NODES);
    let by_mn: Vec<&Nd> = home_nas
        .iter()
        .filter(|n| n.na().unwrap().2 == Some(mn_home_mac))
        .collect();
    assert_eq!(
        by_mn.len(),
        usize::from(MAX_NEIGHBOR_ADVERTISEMENT),
        "{by_mn:?}"
    );
    for (k, n) in by_mn.iter().enumerate() {
        assert_eq!(n.na().unwrap().0, flags(false, false, true), "{n:?}");
        assert_eq!((n.src, n.dst, n.hop_limit), (HOA, ALL_NODES, 255));
        assert_eq!(n.at, acked + RETRANS_TIMER * k as u32);
    }
    assert_eq!(
        mn_iface(&t, MN_HOME_IFACE).state(HOA),
        Some(AddrState::Preferred)
    );

    // The same solicitation: only the node answers now, overriding.
    let from = t.sim.captured(t.home).len();
    t.sim.inject(t.home, solicit);
    t.sim.run_until(secs(10.0));
    let answers = nas_for(&t, t.home, from, HOA);
    assert_eq!(answers.len(), 1, "{answers:?}");
    let (f, _, tll) = answers[0].na().unwrap();
    assert_eq!(tll, Some(mn_home_mac), "the home agent still answers");
    assert_eq!(f, flags(false, true, true));
    assert_eq!((answers[0].src, answers[0].dst), (HOA, me));
}

// REQ MIP-BASE
#[test]
fn duplicate_home_address_gets_ba_134() {
    let mut t = build(&Setup::new(22, RouteOptimisation::None));
    // Another node on the home link uses the home address, without DAD.
    let mut cfg = CnConfig::new(HOA, 99);
    cfg.dad = Dad::Off;
    let squatter = Cn::new(cfg, Ipsec::default(), Instant::ZERO);
    let squatter = t
        .sim
        .add_host("squatter", Role::Cn(Box::new(squatter)), &[Some(t.home)]);
    let squatter_mac = mac(squatter, 0);
    t.move_mn(secs(1.0), Some(t.access_a));
    t.sim.run_until(secs(3.0));

    // The node's own optimistic DAD at home had found it too (RFC 4862).
    assert_eq!(
        trace_at(&t, "mn", "2001:db8:1::100 is a duplicate on link 0").len(),
        1
    );
    // The home agent's probe after the BU: from ::, no link-layer option,
    // to the solicited-node group; the squatter's answer.
    let nd = nd_on(&t, t.home, 0);
    let probe = nd
        .iter()
        .find(|n| n.at > secs(1.0) && n.ns() == Some((HOA, None)))
        .expect("DAD probe for the home address");
    assert_eq!(
        (probe.src, probe.dst, probe.hop_limit),
        (Ipv6Addr::UNSPECIFIED, solicited_node(HOA), 255)
    );
    let defence = nd
        .iter()
        .find(|n| n.at > probe.at && n.na().is_some_and(|(_, tg, _)| tg == HOA))
        .expect("the squatter defends its address");
    assert_eq!(defence.na().unwrap().2, Some(squatter_mac));
    assert_eq!((defence.src, defence.dst), (HOA, ALL_NODES));
    assert!(
        nas_for(&t, t.home, 0, HOA)
            .iter()
            .all(|n| n.na().unwrap().2 != Some(mac(t.ha, 0))),
        "the home agent never announced the address"
    );

    // The BA, under ESP, says 134 (DAD failed) with no lifetime.
    let bas = esp_mh(&t, t.home, HA, COA_A);
    assert_eq!(bas.len(), 1, "{bas:?}");
    let MhMessage::BindingAck {
        status, lifetime, ..
    } = bas[0].1.message
    else {
        panic!("not a BA: {:?}", bas[0].1)
    };
    assert_eq!((u8::from(status), lifetime), (134, 0));
    assert!(bas[0].0 > defence.at);

    let ha = t.sim.ha(t.ha).unwrap();
    assert_eq!(
        t.sim
            .engine(t.ha)
            .unwrap()
            .stats()
            .dropped(NodeDrop::DuplicateHomeAddress),
        1
    );
    assert!(ha.binding(HOA).is_none());
    assert_eq!(ha.checking().count(), 0);
    assert_eq!(
        t.sim
            .engine(t.ha)
            .unwrap()
            .interface(0)
            .unwrap()
            .proxied()
            .count(),
        0
    );
    assert_eq!(
        trace_at(&t, "ha", "DAD of 2001:db8:1::100 found it in use").len(),
        1
    );
    assert_eq!(
        trace_at(&t, "mn", "BA from 2001:db8:1::1: status 134, lifetime 0 s").len(),
        1
    );
    // A refusal ends the registration attempt: no retransmission.
    let e = mn(&t).entry(HA).unwrap();
    assert!(!e.is_bound() && !e.is_waiting());
    assert_eq!(trace_at(&t, "mn", "to 2001:db8:1::1 under ESP").len(), 1);
}

/// Builds the demo topology, leaves home at 1 s and comes up on access A
/// (interface 1) at the same moment: bound via A by 2.2 s.
fn on_a() -> Topology {
    let mut t = build(&Setup::new(23, RouteOptimisation::Ipsec));
    t.sim.move_at(secs(1.0), t.mn, MN_HOME_IFACE, None);
    t.sim
        .move_at(secs(1.0), t.mn, MN_ACCESS_A_IFACE, Some(t.access_a));
    t.sim.run_until(secs(2.5));
    assert_eq!(
        mn(&t).location(),
        Location::Away {
            iface: MN_ACCESS_A_IFACE,
            care_of: COA_A
        }
    );
    assert_eq!((ha_care_of(&t), cn_care_of(&t)), (Some(COA_A), Some(COA_A)));
    t
}

// REQ MIP-BASE
#[test]
fn two_access_interfaces_make_before_break_loses_nothing() {
    let mut t = on_a();
    let interval = Duration::from_millis(1);
    let (start, until) = (secs(2.5), secs(7.0));
    let flow = cn_flow(&mut t, start, interval, until);
    // B comes up while A is still there: the newest attachment wins.
    t.sim
        .move_at(secs(3.0), t.mn, MN_ACCESS_B_IFACE, Some(t.access_b));
    t.sim.run_until(secs(3.5));
    assert_eq!(
        mn(&t).location(),
        Location::Away {
            iface: MN_ACCESS_B_IFACE,
            care_of: COA_B
        }
    );
    assert_eq!((ha_care_of(&t), cn_care_of(&t)), (Some(COA_B), Some(COA_B)));
    // The BUs left from B's care-of address, each with it as Alternate CoA.
    for peer in [HA, CN] {
        let bus = esp_mh(&t, t.access_b, COA_B, peer);
        assert_eq!(bus.len(), 1, "{peer}: {bus:?}");
        assert!(bus[0].0 >= secs(3.0));
        assert!(matches!(bus[0].1.message, MhMessage::BindingUpdate { .. }));
        assert_eq!(
            bus[0].1.options,
            vec![MhOption::AlternateCareOfAddress(COA_B)]
        );
    }
    // A still has its care-of address and router.
    assert_eq!(
        mn_iface(&t, MN_ACCESS_A_IFACE).state(COA_A),
        Some(AddrState::Preferred)
    );
    assert_eq!(mn(&t).attachments().count(), 2);

    // A goes away: nothing changes.
    let bus_before = trace_at(&t, "mn", "BU seq").len();
    t.sim.move_at(secs(5.0), t.mn, MN_ACCESS_A_IFACE, None);
    t.sim.run_until(secs(8.0));
    assert_eq!(
        mn(&t).location(),
        Location::Away {
            iface: MN_ACCESS_B_IFACE,
            care_of: COA_B
        }
    );
    assert_eq!((ha_care_of(&t), cn_care_of(&t)), (Some(COA_B), Some(COA_B)));
    assert_eq!(trace_at(&t, "mn", "BU seq").len(), bus_before, "no new BU");
    assert!(t
        .sim
        .engine(t.mn)
        .unwrap()
        .interface(MN_ACCESS_A_IFACE)
        .is_none());
    assert_eq!(mn(&t).attachments().count(), 1);

    // Not one packet lost, across B's arrival nor A's departure; the
    // correspondent stopped using A once B was bound.
    assert_eq!(t.sim.flow_sent(flow), 4500);
    assert_eq!(lost(&t, flow, start, interval), vec![]);
    let last_to_a = t
        .sim
        .captured(t.access_a)
        .iter()
        .filter(|(at, b)| {
            // Data: the router's unreachability probes of A come later.
            let (_, dst, nd) = parse(*at, b);
            dst == COA_A && nd.is_none()
        })
        .map(|(at, _)| *at)
        .max()
        .unwrap();
    assert!(last_to_a < secs(3.1), "{last_to_a}");
    assert_eq!(
        t.sim
            .engine(t.mn)
            .unwrap()
            .stats()
            .dropped(NodeDrop::Unresolved),
        0
    );
}

// REQ MIP-BASE
#[test]
fn two_access_interfaces_break_before_make_loses_only_the_gap() {
    let mut t = on_a();
    let interval = Duration::from_millis(1);
    let (start, until) = (secs(2.5), secs(6.0));
    let flow = cn_flow(&mut t, start, interval, until);
    // A goes first: the node has no link until B comes up.
    t.sim.move_at(secs(3.0), t.mn, MN_ACCESS_A_IFACE, None);
    t.sim.run_until(secs(3.4));
    assert_eq!(mn(&t).location(), Location::Detached);
    assert_eq!(trace_at(&t, "mn", "no link").last(), Some(&secs(3.0)));
    // Nobody is told: the bindings still point at A.
    assert_eq!((ha_care_of(&t), cn_care_of(&t)), (Some(COA_A), Some(COA_A)));
    t.sim
        .move_at(secs(3.5), t.mn, MN_ACCESS_B_IFACE, Some(t.access_b));
    t.sim.run_until(secs(6.5));
    assert_eq!(
        mn(&t).location(),
        Location::Away {
            iface: MN_ACCESS_B_IFACE,
            care_of: COA_B
        }
    );
    assert_eq!((ha_care_of(&t), cn_care_of(&t)), (Some(COA_B), Some(COA_B)));
    for peer in [HA, CN] {
        let bus = esp_mh(&t, t.access_b, COA_B, peer);
        assert_eq!(bus.len(), 1, "{peer}: {bus:?}");
    }
    // What was lost was sent between A's loss (less the 20.2 ms on the way)
    // and the correspondent's binding to B; then nothing.
    let lost = lost(&t, flow, start, interval);
    let bound_b = trace_at(&t, "cn", "-> 2001:db8:4::100")[0];
    assert!(!lost.is_empty());
    let (first, last) = (lost[0], *lost.last().unwrap());
    assert!(
        first >= before(secs(3.0), Duration::from_micros(20_200)),
        "{first}"
    );
    assert!(last < bound_b, "{last} >= {bound_b}");
    // Contiguous: one gap.
    let expected = (last - first).as_micros() / interval.as_micros() + 1;
    assert_eq!(lost.len() as u128, expected);
    assert!(
        lost.len() > 500 && lost.len() < 600,
        "{} lost (gap 3.0 s - {bound_b})",
        lost.len()
    );
}

// REQ MIP-BASE
#[test]
fn unreachable_router_without_carrier_loss_moves_the_node_to_its_other_interface() {
    /// A bound via A (interface 1) at 1 s, then via B (interface 2) at 2 s;
    /// a flow from the correspondent.
    fn setup() -> (Topology, u32) {
        let mut t = build(&Setup::new(24, RouteOptimisation::Ipsec));
        t.sim.move_at(secs(1.0), t.mn, MN_HOME_IFACE, None);
        t.sim
            .move_at(secs(1.0), t.mn, MN_ACCESS_A_IFACE, Some(t.access_a));
        t.sim
            .move_at(secs(2.0), t.mn, MN_ACCESS_B_IFACE, Some(t.access_b));
        let f = cn_flow(&mut t, secs(2.5), Duration::from_millis(50), secs(14.0));
        t.sim.run_until(secs(3.0));
        assert_eq!(
            mn(&t).location(),
            Location::Away {
                iface: MN_ACCESS_B_IFACE,
                care_of: COA_B
            }
        );
        (t, f)
    }
    let (mut t, flow) = setup();
    let (router_ll, router_mac) = t
        .sim
        .router(t.router)
        .unwrap()
        .port(ROUTER_ACCESS_B)
        .unwrap();
    let mn_b_ll = mn_iface(&t, MN_ACCESS_B_IFACE).link_local();
    // The BU at 2.0002 s was the first packet to the stale router entry:
    // NUD's first probe is due DELAY_FIRST_PROBE_TIME later.
    let bu_b = trace_at(&t, "mn", "BU seq 2 to 2001:db8:1::1")[0];
    let first_probe = bu_b + DELAY_FIRST_PROBE_TIME;
    assert_eq!(first_probe, secs(7.0002));

    // A link that is down captures nothing, so the probe's bytes are
    // shown by a control run of the same seed whose link stays up: the
    // first probe goes on the wire unicast to the router (delivered by its
    // MAC: the router answers it), and nothing moves.
    {
        let (mut c, _) = setup();
        let from = c.sim.captured(c.access_b).len();
        c.sim.run_until(secs(12.0));
        let nd = nd_on(&c, c.access_b, from);
        let probes: Vec<&Nd> = nd
            .iter()
            .filter(|n| n.src == mn_b_ll && n.ns().is_some())
            .collect();
        assert_eq!(probes.len(), 1, "{probes:?}");
        let p = probes[0];
        assert_eq!(p.at, first_probe);
        assert_eq!((p.dst, p.hop_limit), (router_ll, 255), "unicast");
        assert_eq!(
            p.ns(),
            Some((router_ll, Some(mac(c.mn, MN_ACCESS_B_IFACE))))
        );
        let answer = nd
            .iter()
            .find(|n| n.src == router_ll && n.dst == mn_b_ll)
            .expect("the router answers its probe");
        assert_eq!(
            answer.na(),
            Some((flags(true, true, true), router_ll, Some(router_mac)))
        );
        assert!(trace_at(&c, "mn", "lost").is_empty());
        assert_eq!(
            mn(&c).location(),
            Location::Away {
                iface: MN_ACCESS_B_IFACE,
                care_of: COA_B
            }
        );
    }

    // Now B's link dies under the node: no carrier event.
    t.sim.set_link_at(secs(3.0), t.access_b, false);
    let ns_before = mn_iface(&t, MN_ACCESS_B_IFACE).stats().ns_sent;
    let rs_before = mn_iface(&t, MN_ACCESS_B_IFACE).stats().rs_sent;
    t.sim
        .run_until(before(first_probe, Duration::from_millis(1)));
    let router = |t: &Topology| {
        mn_iface(t, MN_ACCESS_B_IFACE)
            .neighbor(router_ll)
            .map(|n| (n.state, n.mac))
    };
    assert_eq!(router(&t), Some((NeighborState::Delay, Some(router_mac))));
    assert_eq!(mn_iface(&t, MN_ACCESS_B_IFACE).stats().ns_sent, ns_before);
    // Three unicast probes to the router's MAC, one RetransTimer apart;
    // the link eats them (and counts them).
    for k in 1..=u32::from(MAX_UNICAST_SOLICIT) {
        let due = first_probe + RETRANS_TIMER * (k - 1);
        t.sim.run_until(before(due, Duration::from_micros(1)));
        let down = t.sim.link_stats(t.access_b).down;
        t.sim.run_until(due + Duration::from_micros(1));
        assert_eq!(router(&t), Some((NeighborState::Probe, Some(router_mac))));
        assert_eq!(
            mn_iface(&t, MN_ACCESS_B_IFACE).stats().ns_sent,
            ns_before + u64::from(k)
        );
        assert_eq!(t.sim.link_stats(t.access_b).down, down + 1, "probe {k}");
        assert_eq!(
            mn(&t).location(),
            Location::Away {
                iface: MN_ACCESS_B_IFACE,
                care_of: COA_B
            }
        );
    }
    let lost_at = first_probe + RETRANS_TIMER * u32::from(MAX_UNICAST_SOLICIT);
    t.sim.run_until(secs(14.5));
    assert_eq!(
        trace_at(&t, "mn", "router fe80::ff:fe00:3 lost on link 2"),
        vec![lost_at]
    );
    assert_eq!(
        trace_at(&t, "mn", "neighbour fe80::ff:fe00:3 unreachable"),
        vec![lost_at]
    );
    // The interface is still there (carrier), without router or care-of
    // address, soliciting again; the node went back to A.
    let b = mn_iface(&t, MN_ACCESS_B_IFACE);
    assert!(b.routers().is_empty());
    assert!(b.neighbor(router_ll).is_none());
    assert_eq!(b.state(COA_B), None);
    assert!(b.stats().rs_sent > rs_before);
    assert_eq!(
        mn(&t).location(),
        Location::Away {
            iface: MN_ACCESS_A_IFACE,
            care_of: COA_A
        }
    );
    assert_eq!(
        trace_at(&t, "mn", "care-of address 2001:db8:2::100 on link 1").last(),
        Some(&lost_at)
    );
    for peer in [HA, CN] {
        let bus: Vec<_> = esp_mh(&t, t.access_a, COA_A, peer)
            .into_iter()
            .filter(|(at, _)| *at >= lost_at)
            .collect();
        assert_eq!(bus.len(), 1, "{peer}: {bus:?}");
        assert_eq!(
            bus[0].1.options,
            vec![MhOption::AlternateCareOfAddress(COA_A)]
        );
    }
    assert_eq!((ha_care_of(&t), cn_care_of(&t)), (Some(COA_A), Some(COA_A)));
    // The flow was lost from B's death to the rebinding to A, not after.
    let lost = lost(&t, flow, secs(2.5), Duration::from_millis(50));
    assert!(!lost.is_empty());
    assert!(*lost.first().unwrap() >= before(secs(3.0), Duration::from_millis(50)));
    assert!(*lost.last().unwrap() < lost_at + Duration::from_millis(100));
}

// REQ MIP-BASE
#[test]
fn unreachable_router_with_no_other_interface_detaches_until_an_ra_comes_back() {
    let mut t = build(&Setup::new(26, RouteOptimisation::None));
    t.move_mn(secs(1.0), Some(t.access_a));
    t.sim.run_until(secs(2.5));
    assert_eq!(ha_care_of(&t), Some(COA_A));
    let (router_ll, _) = t
        .sim
        .router(t.router)
        .unwrap()
        .port(ROUTER_ACCESS_A)
        .unwrap();
    let bu = trace_at(&t, "mn", "BU seq 1 to 2001:db8:1::1")[0];
    let lost_at = bu + DELAY_FIRST_PROBE_TIME + RETRANS_TIMER * u32::from(MAX_UNICAST_SOLICIT);
    t.sim.set_link_at(secs(3.0), t.access_a, false);
    t.sim.run_until(lost_at + Duration::from_millis(1));
    assert_eq!(
        trace_at(&t, "mn", &format!("router {router_ll} lost on link 1")),
        vec![lost_at]
    );
    assert_eq!(mn(&t).location(), Location::Detached);
    assert_eq!(trace_at(&t, "mn", "no link").last(), Some(&lost_at));
    assert!(t
        .sim
        .engine(t.mn)
        .unwrap()
        .interface(MN_ACCESS_A_IFACE)
        .is_some());
    // The link heals: the next RA is a new attachment, and the node
    // registers again.
    t.sim.set_link_at(secs(12.0), t.access_a, true);
    t.sim.run_until(secs(13.5));
    assert_eq!(
        mn(&t).location(),
        Location::Away {
            iface: MN_ACCESS_A_IFACE,
            care_of: COA_A
        }
    );
    let b = t.sim.ha(t.ha).unwrap().binding(HOA).unwrap();
    assert_eq!((b.care_of, b.seq), (COA_A, 2));
}

#[test]
fn address_resolution_of_an_optimistic_care_of_address_is_on_the_wire() {
    let mut t = build(&Setup::new(25, RouteOptimisation::Ipsec));
    let (me, my_mac) = station();
    let mn_a_mac = mac(t.mn, MN_ACCESS_A_IFACE);
    t.move_mn(secs(1.0), Some(t.access_a));
    t.sim.run_until(secs(1.5));
    let (router_ll, _) = t
        .sim
        .router(t.router)
        .unwrap()
        .port(ROUTER_ACCESS_A)
        .unwrap();
    assert_eq!(
        mn_iface(&t, MN_ACCESS_A_IFACE).state(COA_A),
        Some(AddrState::Optimistic)
    );
    let cap = t.sim.captured(t.access_a);
    let parsed: Vec<(Ipv6Addr, Ipv6Addr, Option<Nd>)> =
        cap.iter().map(|(at, b)| parse(*at, b)).collect();
    // The first packet the router forwards to the care-of address...
    let first = parsed
        .iter()
        .position(|(s, d, nd)| *d == COA_A && nd.is_none() && *s != COA_A)
        .expect("a packet to the care-of address");
    // ...goes without resolving it: the node told the routers of its new
    // address at once (RFC 9131 §4.1), unsolicited and with O=0 while it
    // is optimistic (RFC 4429 §3.3), and the router keeps that (§4.2).
    let told = parsed
        .iter()
        .position(|(_, _, nd)| {
            nd.as_ref()
                .is_some_and(|n| n.na().is_some_and(|(_, tg, _)| tg == COA_A))
        })
        .expect("the node tells the routers");
    assert!(told < first, "{told} {first}");
    let na = parsed[told].2.clone().unwrap();
    assert_eq!(
        na.na(),
        Some((flags(false, false, false), COA_A, Some(mn_a_mac)))
    );
    assert_eq!((na.src, na.dst, na.hop_limit), (COA_A, ALL_ROUTERS, 255));
    let resolves = |(_, _, nd): &(Ipv6Addr, Ipv6Addr, Option<Nd>)| {
        nd.as_ref()
            .is_some_and(|n| n.src == router_ll && n.ns().is_some_and(|(tg, _)| tg == COA_A))
    };
    assert!(
        !parsed[..=first].iter().any(resolves),
        "the router solicited"
    );
    // Before it, only the node's own DAD probe: from ::, no option.
    let dad = parsed[..told]
        .iter()
        .filter_map(|(_, _, nd)| nd.as_ref())
        .find(|n| n.ns().is_some_and(|(tg, _)| tg == COA_A))
        .expect("the node's DAD probe");
    assert_eq!(
        (dad.src, dad.ns()),
        (Ipv6Addr::UNSPECIFIED, Some((COA_A, None)))
    );

    // A station asks while DAD runs: O=0 again.
    let from = t.sim.captured(t.access_a).len();
    t.sim
        .inject(t.access_a, ns(COA_A, me, my_mac).to_bytes(&cp()));
    t.sim.run_until(secs(1.6));
    let answers = nas_for(&t, t.access_a, from, COA_A);
    assert_eq!(answers.len(), 1);
    assert_eq!(
        answers[0].na(),
        Some((flags(false, true, false), COA_A, Some(mn_a_mac)))
    );
    // DAD over, the address is preferred and its answers override.
    t.sim.run_until(secs(2.5));
    assert_eq!(
        mn_iface(&t, MN_ACCESS_A_IFACE).state(COA_A),
        Some(AddrState::Preferred)
    );
    assert_eq!(
        trace_at(&t, "mn", "2001:db8:2::100 passed DAD on link 1"),
        vec![secs(1.0002) + RETRANS_TIMER]
    );
    let from = t.sim.captured(t.access_a).len();
    t.sim
        .inject(t.access_a, ns(COA_A, me, my_mac).to_bytes(&cp()));
    t.sim.run_until(secs(2.6));
    let answers = nas_for(&t, t.access_a, from, COA_A);
    assert_eq!(answers.len(), 1);
    assert_eq!(
        answers[0].na(),
        Some((flags(false, true, true), COA_A, Some(mn_a_mac)))
    );
    assert_eq!(answers[0].dst, me);
}

#[test]
fn invalid_neighbor_discovery_is_dropped_and_counted() {
    let mut t = build(&Setup::new(27, RouteOptimisation::Ipsec));
    let (me, my_mac) = station();
    t.move_mn(secs(1.0), Some(t.access_a));
    t.sim.run_until(secs(2.5));
    let (router_ll, _) = t
        .sim
        .router(t.router)
        .unwrap()
        .port(ROUTER_ACCESS_A)
        .unwrap();
    let before = t.sim.engine(t.mn).unwrap().stats().clone();
    let nd_before = *mn_iface(&t, MN_ACCESS_A_IFACE).stats();
    let location = mn(&t).location();
    let from = t.sim.captured(t.access_a).len();

    // RFC 4861 §7.1.1: an NS that crossed a router (hop limit 64).
    t.sim.inject(
        t.access_a,
        with_hop_limit(ns(COA_A, me, my_mac), 64).to_bytes(&cp()),
    );
    // §6.1.2: an RA from a global address, with a prefix that would
    // otherwise be a new attachment.
    let rogue = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x99);
    let ra = RouterAdvert {
        hop_limit: 64,
        flags: 0,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        source_ll: Some(my_mac),
        mtu: None,
        prefixes: vec![PrefixInfo::slaac(Ipv6Addr::new(
            0x2001, 0xdb8, 0x99, 0, 0, 0, 0, 0,
        ))],
        advertisement_interval: None,
    };
    t.sim.inject(
        t.access_a,
        nd_packet(rogue, ALL_NODES, &NdRepr::RouterAdvert(ra)).to_bytes(&cp()),
    );
    // §7.1.2: a solicited NA to a multicast group, claiming the care-of
    // address for another MAC.
    let na = NdRepr::NeighborAdvert {
        flags: flags(false, true, true),
        target: COA_A,
        target_ll: Some(my_mac),
    };
    t.sim
        .inject(t.access_a, nd_packet(me, ALL_NODES, &na).to_bytes(&cp()));
    // §7.1.1: a DAD probe (from ::) with a source link-layer option.
    let dad = NdRepr::NeighborSolicit {
        target: COA_A,
        source_ll: Some(my_mac),
    };
    t.sim.inject(
        t.access_a,
        nd_packet(Ipv6Addr::UNSPECIFIED, solicited_node(COA_A), &dad).to_bytes(&cp()),
    );
    t.sim.run_until(secs(3.0));

    let after = t.sim.engine(t.mn).unwrap().stats().clone();
    assert_eq!(
        after.dropped(NodeDrop::NdInvalid) - before.dropped(NodeDrop::NdInvalid),
        4
    );
    let nd = *mn_iface(&t, MN_ACCESS_A_IFACE).stats();
    assert_eq!(nd.invalid - nd_before.invalid, 4);
    assert_eq!(nd.na_sent, nd_before.na_sent, "nothing was answered");
    assert_eq!(nd.conflicts, nd_before.conflicts);
    // Nothing changed: the one router, the one attachment, the address.
    let a = mn_iface(&t, MN_ACCESS_A_IFACE);
    let routers: Vec<Ipv6Addr> = a.routers().iter().map(|r| r.address).collect();
    assert_eq!(routers, vec![router_ll]);
    assert!(a.neighbor(rogue).is_none() && a.neighbor(me).is_none());
    assert_eq!(a.state(COA_A), Some(AddrState::Preferred));
    assert_eq!(mn(&t).location(), location);
    let attachments: Vec<(u8, Ipv6Addr)> =
        mn(&t).attachments().map(|(i, at)| (i, at.router)).collect();
    assert_eq!(attachments, vec![(MN_ACCESS_A_IFACE, router_ll)]);
    assert!(nas_for(&t, t.access_a, from, COA_A)
        .iter()
        .all(|n| n.src != COA_A));
    assert!(trace_at(&t, "mn", "duplicate").is_empty());

    // The same NS with hop limit 255 is answered: it was the hop limit.
    let from = t.sim.captured(t.access_a).len();
    t.sim
        .inject(t.access_a, ns(COA_A, me, my_mac).to_bytes(&cp()));
    t.sim.run_until(secs(3.5));
    let answers: Vec<Nd> = nas_for(&t, t.access_a, from, COA_A)
        .into_iter()
        .filter(|n| n.src == COA_A && n.dst == me)
        .collect();
    assert_eq!(answers.len(), 1);
    assert_eq!(
        t.sim
            .engine(t.mn)
            .unwrap()
            .stats()
            .dropped(NodeDrop::NdInvalid),
        after.dropped(NodeDrop::NdInvalid)
    );
}

#[test]
fn duplicate_care_of_address_is_replaced_and_rebound() {
    let mut t = build(&Setup::new(28, RouteOptimisation::Ipsec));
    // Another node on access A already uses the address the mobile node
    // will form there.
    let mut cfg = CnConfig::new(COA_A, 98);
    cfg.dad = Dad::Off;
    let squatter = Cn::new(cfg, Ipsec::default(), Instant::ZERO);
    let squatter = t.sim.add_host(
        "squatter",
        Role::Cn(Box::new(squatter)),
        &[Some(t.access_a)],
    );
    let squatter_mac = mac(squatter, 0);
    t.move_mn(secs(1.0), Some(t.access_a));
    t.sim.run_until(secs(3.0));

    // The node's optimistic DAD probe (from ::, no option) and the
    // squatter's defence (RFC 4862 §5.4.3, §7.2.4: O=1 to all nodes).
    let nd = nd_on(&t, t.access_a, 0);
    let probe = nd
        .iter()
        .find(|n| n.ns() == Some((COA_A, None)))
        .expect("DAD probe for the care-of address");
    assert_eq!(
        (probe.src, probe.dst, probe.at),
        (Ipv6Addr::UNSPECIFIED, solicited_node(COA_A), secs(1.0002))
    );
    let defence = nd
        .iter()
        .find(|n| {
            n.na()
                .is_some_and(|(_, tg, tll)| tg == COA_A && tll == Some(squatter_mac))
        })
        .expect("the squatter defends its address");
    assert_eq!(defence.na().unwrap().0, flags(false, false, true));
    assert_eq!(defence.dst, ALL_NODES);
    let found = trace_at(&t, "mn", "2001:db8:2::100 is a duplicate on link 1");
    assert_eq!(found, vec![defence.at + Duration::from_micros(200)]);

    // RFC 4862 §5.4.5: not that address; another identifier on the same
    // prefix, and the node registers that one everywhere.
    let Location::Away { iface, care_of } = mn(&t).location() else {
        panic!("not away: {:?}", mn(&t).location())
    };
    assert_eq!(iface, MN_ACCESS_A_IFACE);
    assert_ne!(care_of, COA_A);
    assert!(common::node::same_prefix64(care_of, COA_A));
    assert_eq!(
        trace_at(&t, "mn", &format!("care-of address {care_of} on link 1")),
        found
    );
    let a = mn_iface(&t, MN_ACCESS_A_IFACE);
    assert_eq!(a.state(COA_A), Some(AddrState::Duplicate));
    assert_eq!(a.state(care_of), Some(AddrState::Preferred));
    for peer in [HA, CN] {
        let bus = esp_mh(&t, t.access_a, care_of, peer);
        assert_eq!(bus.len(), 1, "{peer}: {bus:?}");
        assert_eq!(
            bus[0].1.options,
            vec![MhOption::AlternateCareOfAddress(care_of)]
        );
    }
    assert_eq!(
        (ha_care_of(&t), cn_care_of(&t)),
        (Some(care_of), Some(care_of))
    );
}

/// A link delivers a solicited-node NS only to the interfaces that listen
/// to that group (an address of theirs maps to it: two hosts whose
/// addresses share the low 24 bits share the group), and an all-nodes RA
/// to every interface. Deliveries are counted by each receiver's ND.
#[test]
fn multicast_reaches_only_listeners_and_all_nodes_reaches_everybody() {
    use testbed::sim::{LinkParams, Sim};
    let prefix = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0);
    let a = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
    let b = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0xaa, 0, 0, 1);
    let c = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 2);
    assert_eq!(solicited_node(a), solicited_node(b));
    assert_ne!(solicited_node(a), solicited_node(c));
    let mut sim = Sim::new(7);
    let lan = sim.add_link("lan", prefix, LinkParams::delay(Duration::from_millis(1)));
    let hosts: Vec<NodeId> = [a, b, c]
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let cn = Cn::new(CnConfig::new(*addr, i as u64), Ipsec::default(), sim.now());
            sim.add_host(&format!("h{i}"), Role::Cn(Box::new(cn)), &[Some(lan)])
        })
        .collect();
    // DAD over.
    sim.run_for(Duration::from_secs(5));
    let received = |sim: &Sim| -> Vec<u64> {
        let nd = |h: &NodeId| {
            sim.engine(*h)
                .unwrap()
                .interface(0)
                .unwrap()
                .stats()
                .received
        };
        hosts.iter().map(nd).collect()
    };
    let (me, my_mac) = station();
    let start = received(&sim);
    let delta = |sim: &Sim| -> Vec<u64> {
        received(sim)
            .iter()
            .zip(&start)
            .map(|(n, s)| n - s)
            .collect()
    };

    sim.inject(lan, ns(c, me, my_mac).to_bytes(&cp()));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(delta(&sim), [0, 0, 1], "an NS for c reaches c alone");

    sim.inject(lan, ns(a, me, my_mac).to_bytes(&cp()));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(delta(&sim), [1, 1, 1], "an NS for a reaches a and b");

    let ra = RouterAdvert {
        hop_limit: 64,
        flags: 0,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
        source_ll: Some(my_mac),
        mtu: None,
        prefixes: vec![PrefixInfo::slaac(prefix)],
        advertisement_interval: None,
    };
    let ra = nd_packet(me, ALL_NODES, &NdRepr::RouterAdvert(ra));
    sim.inject(lan, ra.to_bytes(&cp()));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        delta(&sim),
        [2, 2, 2],
        "an RA to all nodes reaches everybody"
    );
}
