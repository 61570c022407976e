//! IKEv2 keys the mobility in the simulator: the mobile node and the home
//! agent key their SAs by IKE (RFC 4877) and every handoff moves the IKE SA
//! and the tunnel-mode payload SA to the new care-of address in place, by
//! MOBIKE (RFC 4555) or address management (draft-dupont-ikev2-addrmgmt),
//! while the transport SA for BU and BA keeps its home-address selectors.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use common::ike::{IkeDrop, Mobility};
use common::ipsec::{Direction, Mode};
use common::node::{NodeDrop, RouteOptimisation};
use common::time::{Duration, Instant};
use testbed::sim::{Flow, NodeId, Sim};
use testbed::topology::{build, cn_ike, host, ike_configs, Keying, Setup, Topology, CN, HA, HOA};

const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x100);

fn secs(s: f64) -> Instant {
    Instant::from_micros((s * 1e6) as u64)
}

const MOBIKE: Mobility = Mobility::Mobike { r_mobike: false };

/// Tunnelled through the home agent, keyed by IKE with `mobility`.
fn setup(mobility: Mobility) -> Setup {
    let mut s = Setup::new(1, RouteOptimisation::None);
    s.keying = Keying::Ike {
        mobility,
        payload: true,
    };
    s
}

/// A flow each way every 10 ms from 0.5 s; the node starts at home.
fn run(setup: &Setup, moves: &[(f64, u8)], until: f64) -> (Topology, [u32; 2]) {
    let mut t = build(setup);
    let ms = Duration::from_millis(10);
    let flow = |from: NodeId, src, dst| Flow {
        from,
        src,
        dst,
        interval: ms,
        until: secs(until - 0.5),
    };
    let down = t.sim.flow(secs(0.5), flow(t.cn, CN, HOA));
    let up = t.sim.flow(secs(0.5), flow(t.mn, HOA, CN));
    for &(at, to) in moves {
        let link = [t.home, t.access_a, t.access_b][usize::from(to)];
        t.move_mn(secs(at), Some(link));
    }
    t.sim.run_until(secs(until));
    (t, [down, up])
}

/// Every SA of a node: (SPI, direction, mode, addresses).
fn sad(t: &Topology, node: NodeId) -> BTreeSet<(u32, bool, bool, Pair)> {
    t.sim
        .engine(node)
        .unwrap()
        .ipsec()
        .sad
        .iter()
        .map(|(_, s)| {
            let inbound = s.direction() == Direction::Inbound;
            let a = s.addresses();
            (
                s.spi(),
                inbound,
                s.mode() == Mode::Tunnel,
                (a.local, a.peer),
            )
        })
        .collect()
}

/// An SA's (local, peer) addresses.
type Pair = (IpAddr, IpAddr);

fn pair(local: Ipv6Addr, peer: Ipv6Addr) -> Pair {
    (IpAddr::V6(local), IpAddr::V6(peer))
}

/// The addresses of a node's transport and tunnel SAs.
fn addresses(t: &Topology, node: NodeId) -> (BTreeSet<Pair>, BTreeSet<Pair>) {
    let s = sad(t, node);
    let of = |tunnel: bool| {
        s.iter()
            .filter(|x| x.2 == tunnel)
            .map(|x| x.3)
            .collect::<BTreeSet<_>>()
    };
    (of(false), of(true))
}

fn spis(t: &Topology, node: NodeId) -> BTreeSet<u32> {
    sad(t, node).into_iter().map(|x| x.0).collect()
}

/// The IKE events of `node` in the trace, as the engine printed them.
fn ike_lines(sim: &Sim, node: &str, what: &str) -> Vec<(Instant, String)> {
    sim.trace
        .iter()
        .filter(|l| l.node == node && l.what.contains(what))
        .map(|l| (l.at, l.what.clone()))
        .collect()
}

/// How many of `flow`'s datagrams arrived after `from`, and how.
fn arrived(t: &Topology, flow: u32, from: f64) -> (usize, BTreeSet<String>) {
    let a: Vec<_> = t
        .sim
        .arrivals
        .iter()
        .filter(|a| a.flow == flow && a.sent >= secs(from))
        .collect();
    let paths = a.iter().map(|a| format!("{:?}", a.path)).collect();
    (a.len(), paths)
}

/// The handoff moved the IKE SA and the payload SA in place, and left
/// the signalling SA alone, on both sides.
fn assert_moved_in_place(t: &Topology, before: &BTreeSet<u32>, coa: Ipv6Addr) {
    for (node, ours, theirs) in [(t.mn, coa, HA), (t.ha, HA, coa)] {
        assert_eq!(&spis(t, node), before, "same SPIs, no rekey");
        let (transport, tunnel) = addresses(t, node);
        let home = if node == t.mn {
            pair(HOA, HA)
        } else {
            pair(HA, HOA)
        };
        assert_eq!(transport, BTreeSet::from([home]), "signalling SA untouched");
        assert_eq!(
            tunnel,
            BTreeSet::from([pair(ours, theirs)]),
            "payload SA moved"
        );
        let ike = t.sim.engine(node).unwrap().ike().unwrap();
        let ids: Vec<_> = ike.sa_ids().collect();
        assert_eq!(ids.len(), 1, "one IKE SA");
        let sa = ike.sa(ids[0]).unwrap();
        let local = if node == t.mn { coa } else { HA };
        assert_eq!(sa.local.ip(), IpAddr::V6(local));
    }
}

fn handoffs_move_the_sas_in_place(mobility: Mobility) {
    let s = setup(mobility);
    let (t, [down, up]) = run(&s, &[(2.0, 1), (5.0, 2)], 7.5);
    let keyed = {
        // The SPIs the run ends with are the ones IKE made at home.
        let mut t0 = build(&s);
        t0.sim.run_until(secs(1.9));
        spis(&t0, t0.mn)
    };
    assert_eq!(keyed.len(), 4, "two CHILD_SAs, both ways: {keyed:?}");
    assert_moved_in_place(&t, &keyed, COA_B);
    // Each handoff moved the IKE SA once on each side.
    for node in ["mn", "ha"] {
        let moved = ike_lines(&t.sim, node, " moved to ");
        assert_eq!(moved.len(), 2, "{node}: {moved:?}");
        assert!(moved[1].1.contains(&COA_B.to_string()), "{moved:?}");
    }
    // RFC 4877 §4.5: K in the BU, K in the BA.
    let acks = ike_lines(&t.sim, "mn", "BA from");
    assert!(
        acks.len() >= 2 && acks.iter().all(|a| a.1.ends_with(", K")),
        "{acks:?}"
    );
    // Both ways through the payload SA after the last handoff.
    for f in [down, up] {
        let (n, paths) = arrived(&t, f, 5.5);
        assert!(n > 140, "flow {f}: {n} after the last handoff");
        assert_eq!(
            paths,
            BTreeSet::from([if f == down { "Tunnelled" } else { "Direct" }.to_string()])
        );
    }
    for node in [t.mn, t.ha] {
        let e = t.sim.engine(node).unwrap();
        assert_eq!(e.ipsec().stats().drops().count(), 0, "IPsec drops");
        assert_eq!(e.stats().dropped(NodeDrop::Ipsec), 0);
        // A retransmission's second answer is the only IKE drop: the
        // node starts IKE before the home agent's address passed DAD.
        let ike = e.ike().unwrap().stats();
        let drops: Vec<_> = ike
            .drops()
            .filter(|(r, _)| *r != IkeDrop::MessageId)
            .collect();
        assert!(drops.is_empty(), "IKE drops {ike:?}");
        assert!(
            ike.dropped(IkeDrop::MessageId) <= ike.retransmits,
            "{ike:?}"
        );
    }
    // Tunnelled with ESP: the home agent's payload SA carried the flow.
    let ha = t.sim.engine(t.ha).unwrap();
    let carried: u64 = ha
        .ipsec()
        .sad
        .iter()
        .filter(|(_, s)| s.mode() == Mode::Tunnel)
        .map(|(_, s)| s.packets())
        .sum();
    assert!(carried > 700, "payload SA packets: {carried}");
}

// REQ AM-2.3b
// REQ MIP-HA-IPSEC
#[test]
fn mobike_moves_the_ike_and_payload_sas_and_keeps_the_signalling_sa() {
    handoffs_move_the_sas_in_place(MOBIKE);
}

// REQ AM-2.3b
#[test]
fn addrmgmt_moves_the_ike_and_payload_sas_and_keeps_the_signalling_sa() {
    handoffs_move_the_sas_in_place(Mobility::AddrMgmt);
}

// REQ AM-2.3a
#[test]
fn a_newer_handoff_cancels_the_pending_update() {
    for mobility in [MOBIKE, Mobility::AddrMgmt] {
        let s = setup(mobility);
        // Away first, then two handoffs 15 ms apart: the second comes
        // before the first update is done.
        let (t, [down, _]) = run(&s, &[(2.0, 1), (4.0, 2), (4.015, 1)], 6.5);
        let keyed = {
            let mut t0 = build(&s);
            t0.sim.run_until(secs(1.9));
            spis(&t0, t0.mn)
        };
        assert_moved_in_place(&t, &keyed, COA_A);
        // Nothing moved the SAs to access B's address after the node left.
        for node in ["mn", "ha"] {
            let late: Vec<_> = ike_lines(&t.sim, node, &format!("moved to [{COA_B}]"))
                .into_iter()
                .chain(ike_lines(&t.sim, node, &format!("<-> [{COA_B}]")))
                .filter(|(at, _)| *at > secs(4.015))
                .collect();
            assert!(late.is_empty(), "{mobility:?} {node}: {late:?}");
        }
        let (n, _) = arrived(&t, down, 4.5);
        assert!(n > 140, "{mobility:?}: {n} down after the last handoff");
    }
}

// REQ MIP-HA-IPSEC
#[test]
fn without_mobike_the_node_keys_again_from_its_new_address() {
    let mut s = setup(MOBIKE);
    let (_, mut ha) = ike_configs(s.seed, Mobility::Off, true);
    ha.mobility = Mobility::Off;
    s.ha.ike = Some(ha);
    let (t, [down, _]) = run(&s, &[(2.0, 1)], 4.5);
    let ike = t.sim.engine(t.mn).unwrap().ike().unwrap();
    let ids: Vec<_> = ike.sa_ids().collect();
    assert_eq!(ids.len(), 1, "the old IKE SA is gone");
    let sa = ike.sa(ids[0]).unwrap();
    assert_eq!(sa.local.ip(), IpAddr::V6(COA_A));
    assert!(!sa.mobike);
    let ups = ike_lines(&t.sim, "mn", " with ha.example.org up");
    assert_eq!(
        ups.len(),
        2,
        "keyed at home, then again from access A: {ups:?}"
    );
    // RFC 6275 §10.3.1: no K from a home agent whose SA cannot follow.
    let acks = ike_lines(&t.sim, "mn", "BA from");
    assert!(
        !acks.is_empty() && acks.iter().all(|a| !a.1.ends_with(", K")),
        "{acks:?}"
    );
    let (transport, tunnel) = addresses(&t, t.mn);
    assert_eq!(transport, BTreeSet::from([pair(HOA, HA)]));
    assert_eq!(tunnel, BTreeSet::from([pair(COA_A, HA)]));
    // Every datagram of the last half second (the flows stop at 4 s).
    let (n, _) = arrived(&t, down, 3.5);
    assert_eq!(n, 50, "down after keying again");
}

/// The BU waits for its SA: a node keyed by IKE that first moves away
/// sends no BU in the clear.
// REQ MIP-HA-IPSEC
#[test]
fn the_first_bu_waits_for_ike() {
    let s = setup(MOBIKE);
    let mut t = build(&s);
    // Away at once: IKE starts from the care-of address.
    t.move_mn(secs(0.1), Some(t.access_a));
    t.sim.run_until(secs(2.5));
    let sent = ike_lines(&t.sim, "mn", "BU seq 1");
    let up = ike_lines(&t.sim, "mn", "CHILD_SA home-signalling up");
    assert_eq!((sent.len(), up.len()), (1, 1), "{sent:?} {up:?}");
    assert!(sent[0].0 >= up[0].0, "the BU after the SA: {sent:?} {up:?}");
    assert!(sent[0].1.ends_with("under ESP"), "{sent:?}");
    let mn = t.sim.mn(t.mn).unwrap();
    assert!(mn.entry(HA).unwrap().is_bound());
    let ha = t.sim.ha(t.ha).unwrap();
    assert_eq!(ha.binding(HOA).unwrap().care_of, COA_A);
    assert_eq!(
        t.sim
            .engine(t.ha)
            .unwrap()
            .stats()
            .dropped(NodeDrop::Unprotected),
        0
    );
}

/// Route optimisation keyed by IKE: the correspondent's SA is negotiated
/// over the home address, through the home agent's tunnel.
fn optimised() -> Setup {
    let mut s = Setup::new(1, RouteOptimisation::Ipsec);
    s.keying = Keying::Ike {
        mobility: MOBIKE,
        payload: true,
    };
    s
}

fn trace(sim: &Sim) -> String {
    sim.trace
        .iter()
        .filter(|l| !l.what.contains("RA from") && !l.what.contains("key log"))
        .map(|l| format!("{:>9} {:>3} {}\n", l.at.total_micros(), l.node, l.what))
        .collect()
}

// REQ CN-5.1
// REQ CN-5.3
#[test]
fn ike_with_the_correspondent_runs_over_the_home_address() {
    let (t, [down, up]) = run(&optimised(), &[(2.0, 1), (5.0, 2)], 7.5);
    let log = trace(&t.sim);
    // The correspondent's IKE SA: with the home address, a name identity.
    let cn = t.sim.engine(t.cn).unwrap().ike().unwrap();
    let ids: Vec<_> = cn.sa_ids().collect();
    assert_eq!(ids.len(), 1, "{log}");
    let sa = cn.sa(ids[0]).unwrap();
    assert_eq!(
        (sa.local.ip(), sa.remote.ip()),
        (IpAddr::V6(CN), IpAddr::V6(HOA)),
        "{log}"
    );
    let up_line = ike_lines(&t.sim, "cn", " up, ");
    assert!(!up_line.is_empty(), "{log}");
    assert!(
        up_line[0].1.contains("with mn.example.org up"),
        "{up_line:?}"
    );
    // Keyed once, by the first packet to it (an ACQUIRE, at home); the
    // handoffs need no IKE with it at all.
    assert_eq!(
        up_line.len(),
        2,
        "IKE SA and its CHILD_SA once: {up_line:?}"
    );
    assert!(up_line.iter().all(|(at, _)| *at < secs(2.0)), "{up_line:?}");
    assert!(ike_lines(&t.sim, "cn", " moved to ").is_empty(), "{log}");
    // The SA is suitable, and BUs under it bind without return routability.
    let (transport, _) = addresses(&t, t.cn);
    assert!(transport.contains(&pair(CN, HOA)), "{transport:?}");
    let binding = t.sim.cn(t.cn).unwrap().binding(HOA).unwrap();
    assert_eq!(binding.care_of, Some(COA_B));
    assert!(binding.ipsec);
    assert!(
        ike_lines(&t.sim, "mn", "HoTI").is_empty(),
        "no return routability"
    );
    let bus = ike_lines(&t.sim, "mn", &format!("to {CN} under ESP"));
    assert_eq!(bus.len(), 2, "{bus:?}");
    // Route optimised both ways after the last handoff.
    for f in [down, up] {
        let (n, paths) = arrived(&t, f, 5.5);
        assert!(n > 140, "flow {f}: {n}\n{log}");
        assert_eq!(
            paths,
            BTreeSet::from(["RouteOptimised".to_string()]),
            "{log}"
        );
    }
}

/// The mobile node keys its correspondent over its care-of address, with
/// the correspondent's policy for the home-address selector or without.
fn over_care_of(policy: bool) -> Setup {
    let mut s = optimised();
    let (mut mn, _) = ike_configs(s.seed, MOBIKE, true);
    let (mut peer, mut cn) = cn_ike(s.seed, true);
    peer.local = None;
    mn.peers.push(peer);
    s.mn.ike = Some(mn);
    if policy {
        cn.proxy_policy.push(host(HOA));
    }
    s.cn.ike = Some(cn);
    s
}

// REQ CN-5.2
#[test]
fn a_home_address_selector_over_a_care_of_address_needs_policy() {
    let (t, _) = run(&over_care_of(false), &[(2.0, 1)], 5.0);
    let log = trace(&t.sim);
    // IKE itself comes up, the CHILD_SA for the home address does not.
    let cn = t.sim.engine(t.cn).unwrap();
    let ike = cn.ike().unwrap();
    let sas: Vec<_> = ike.sa_ids().filter_map(|id| ike.sa(id)).collect();
    assert_eq!(sas.len(), 1, "{log}");
    assert_eq!(
        sas[0].remote.ip(),
        IpAddr::V6(COA_A),
        "IKE over the care-of address"
    );
    assert!(sas[0].children.is_empty(), "{log}");
    assert!(
        cn.ipsec().sad.iter().next().is_none(),
        "no SA at the correspondent"
    );
    assert!(t.sim.cn(t.cn).unwrap().binding(HOA).is_none());
    // The node does not send its BU unprotected: it keeps waiting.
    assert!(
        ike_lines(&t.sim, "mn", &format!("to {CN}")).is_empty(),
        "{log}"
    );
}

// REQ CN-5.2
#[test]
fn sas_keyed_over_a_care_of_address_do_not_survive_the_handoff() {
    let (t, [down, _]) = run(&over_care_of(true), &[(2.0, 1), (5.0, 2)], 7.5);
    let log = trace(&t.sim);
    // Keyed at home by the first packet, then again from each care-of
    // address.
    let ups = ike_lines(&t.sim, "cn", "with mn.example.org up");
    let from: Vec<bool> = [HOA, COA_A, COA_B]
        .iter()
        .zip(&ups)
        .map(|(a, u)| u.1.contains(&format!("[{a}]")))
        .collect();
    assert_eq!((ups.len(), from), (3, vec![true; 3]), "{log}");
    assert!(ups[2].0 > secs(5.0));
    // The old SAs went by INITIAL_CONTACT; one IKE SA, on access B.
    let closed = ike_lines(&t.sim, "cn", "closed: InitialContact");
    assert_eq!(closed.len(), 2, "{log}");
    let ike = t.sim.engine(t.cn).unwrap().ike().unwrap();
    let sas: Vec<_> = ike.sa_ids().filter_map(|id| ike.sa(id)).collect();
    assert_eq!(sas.len(), 1);
    assert_eq!(sas[0].remote.ip(), IpAddr::V6(COA_B));
    // Nothing moved an SA: each handoff dropped them.
    assert!(ike_lines(&t.sim, "cn", " moved to ").is_empty(), "{log}");
    let binding = t.sim.cn(t.cn).unwrap().binding(HOA).unwrap();
    assert_eq!(binding.care_of, Some(COA_B));
    let (n, paths) = arrived(&t, down, 6.0);
    assert!(n > 90, "{n}\n{log}");
    assert_eq!(paths, BTreeSet::from(["RouteOptimised".to_string()]));
}
