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
use common::wire::{CodePoints, PacketRepr};
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

/// [`start`], run to `until`.
fn run(setup: &Setup, moves: &[(f64, u8)], until: f64) -> (Topology, [u32; 2]) {
    let (mut t, flows) = start(setup, moves, until);
    t.sim.run_until(secs(until));
    (t, flows)
}

/// A flow each way every 10 ms from 0.5 s to half a second before
/// `until`, and the moves; the node starts at home.
fn start(setup: &Setup, moves: &[(f64, u8)], until: f64) -> (Topology, [u32; 2]) {
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

/// The MH types of each of a node's transport-mode SAs.
fn transport_mh_types(t: &Topology, node: NodeId) -> Vec<Vec<u8>> {
    let ipsec = t.sim.engine(node).unwrap().ipsec();
    ipsec
        .sad
        .iter()
        .filter(|(_, s)| s.mode() == Mode::Transport)
        .map(|(_, s)| s.selector().mh_types.clone())
        .collect()
}

fn spis(t: &Topology, node: NodeId) -> BTreeSet<u32> {
    sad(t, node).into_iter().map(|x| x.0).collect()
}

/// The IKE events of `node` in the trace, as the engine printed them.
fn ike_lines(sim: &Sim, node: &str, what: &str) -> Vec<(Instant, String)> {
    sim.trace()
        .into_iter()
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
    // RFC 4877: the signalling SA is for BU and BA only.
    assert_eq!(transport_mh_types(&t, t.ha), [[5, 6]; 2]);
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
    sim.trace()
        .into_iter()
        .filter(|l| !l.what.contains("RA from") && !l.what.contains("key log"))
        .map(|l| format!("{:>9} {:>3} {}\n", l.at.total_micros(), l.node, l.what))
        .collect()
}

// REQ CN-5.1
// REQ CN-5.3
// REQ CN-5.5
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
    // For BU and BA only, the default with a pre-shared key.
    assert_eq!(transport_mh_types(&t, t.cn), [[5, 6]; 2]);
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

/// A node's status as its control socket sends it, with IKE's SAs.
fn status_reply(t: &Topology, node: NodeId) -> serde_json::Value {
    let e = t.sim.engine(node).unwrap();
    let status = e.status(t.sim.now()).with_ike(e.ike());
    serde_json::json!({ "status": status, "driver": {}, "links": ["x"], "stack": "mip6" })
}

// REQ MIP-HA-IPSEC
// REQ CN-5.1
#[test]
fn status_shows_each_ike_sa_with_its_peer_addresses_and_children() {
    let (t, _) = run(&optimised(), &[(2.0, 1), (5.0, 2)], 7.5);
    let ha = status_reply(&t, t.ha);
    let sas = ha["status"]["ike"].as_array().unwrap();
    assert_eq!(sas.len(), 1, "{ha}");
    let sa = &sas[0];
    assert_eq!(sa["peer"], "mn.example.org");
    assert_eq!(sa["peer_name"], "mn");
    // MOBIKE floated IKE to the NAT-T port (RFC 4555 §3.2).
    assert_eq!(sa["local"], format!("[{HA}]:4500"));
    assert_eq!(
        sa["remote"],
        format!("[{COA_B}]:4500"),
        "followed the care-of address"
    );
    assert_eq!(
        (
            sa["state"].as_str(),
            sa["initiator"].as_bool(),
            sa["mobike"].as_bool()
        ),
        (Some("established"), Some(false), Some(true))
    );
    let children: Vec<(String, String, String, String)> = sa["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("name"), s("mode"), s("local"), s("remote"))
        })
        .collect();
    let child = |n: &str, m: &str, l: Ipv6Addr, r: Ipv6Addr| {
        (n.to_string(), m.to_string(), l.to_string(), r.to_string())
    };
    assert_eq!(
        children,
        [
            child("home-signalling", "transport", HA, HOA),
            child("home-payload", "tunnel", HA, COA_B),
        ]
    );
    // The correspondent's IKE SA is with the home address.
    let cn = status_reply(&t, t.cn);
    let sa = &cn["status"]["ike"][0];
    let remote: std::net::SocketAddr = sa["remote"].as_str().unwrap().parse().unwrap();
    assert_eq!(remote.ip(), IpAddr::V6(HOA), "{cn}");
    assert_eq!(sa["children"][0]["name"], "cn-signalling");
    // For people: a line per SA and per child, in `bindings` too.
    let text = common::io::daemon::render(&ha, common::io::daemon::View::Bindings);
    let spi = sa_spi(&ha);
    assert!(
        text.contains(&format!(
            "IKE SAs (1):\n  {spi} mn.example.org [{HA}]:4500 <-> [{COA_B}]:4500  established, MOBIKE\n    home-signalling  0x"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("out tunnel    {HA} <-> {COA_B}\n")),
        "{text}"
    );
}

fn sa_spi(reply: &serde_json::Value) -> String {
    reply["status"]["ike"][0]["spi"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The home agent's data-plane address, beside its IKE address.
const HA_TUNNEL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);

// REQ TA-3b
// REQ TA-5
#[test]
fn the_payload_sa_ends_at_the_home_agents_tunnel_address_and_follows_the_node() {
    let mut s = setup(MOBIKE);
    let (mut mn, mut ha) = ike_configs(s.seed, MOBIKE, true);
    mn.tunnel_addresses = true;
    ha.tunnel_addresses = true;
    ha.peers[0].children[1].tunnel_address = Some(IpAddr::V6(HA_TUNNEL));
    s.mn.ike = Some(mn);
    s.ha.ike = Some(ha);
    s.ha.tunnel_address = Some(HA_TUNNEL);
    let (t, [down, up]) = run(&s, &[(2.0, 1), (5.0, 2)], 7.5);
    let log = trace(&t.sim);
    // IKE on the home agent's address, the tunnel on its other one; the
    // node's side of both followed it to access B.
    for (node, ours, theirs) in [(t.mn, COA_B, HA_TUNNEL), (t.ha, HA_TUNNEL, COA_B)] {
        let (transport, tunnel) = addresses(&t, node);
        assert_eq!(tunnel, BTreeSet::from([pair(ours, theirs)]), "{log}");
        let home = if node == t.mn {
            pair(HOA, HA)
        } else {
            pair(HA, HOA)
        };
        assert_eq!(transport, BTreeSet::from([home]));
        let ike = t.sim.engine(node).unwrap().ike().unwrap();
        let sa = ike.sa(ike.sa_ids().next().unwrap()).unwrap();
        let ike_ends = if node == t.mn {
            (COA_B, HA)
        } else {
            (HA, COA_B)
        };
        assert_eq!(
            (sa.local.ip(), sa.remote.ip()),
            (IpAddr::V6(ike_ends.0), IpAddr::V6(ike_ends.1))
        );
    }
    // On the wire: ESP to and from the tunnel address on access B.
    let b = t.sim.captured(t.access_b);
    let esp_with_tunnel = b
        .iter()
        .filter(|(_, f)| {
            let p = PacketRepr::parse(f, &CodePoints::default());
            p.is_ok_and(|p| {
                let s = p.to_string();
                s.contains(" ESP ") && s.contains(&HA_TUNNEL.to_string())
            })
        })
        .count();
    assert!(
        esp_with_tunnel > 200,
        "{esp_with_tunnel} ESP frames with {HA_TUNNEL}"
    );
    for f in [down, up] {
        let (n, _) = arrived(&t, f, 5.5);
        assert!(n > 140, "flow {f}: {n}\n{log}");
    }
}

/// Away on access A from 2 s, with R-MOBIKE ('R' from the node), the
/// home agent's second address announced; at 3.5 s the home agent asks
/// its mobile nodes to switch to `to`.
fn switched(to: Ipv6Addr) -> (Topology, [u32; 2], usize) {
    let r_mobike = Mobility::Mobike { r_mobike: true };
    let mut s = setup(r_mobike);
    let (mn, ha) = ike_configs(s.seed, r_mobike, true);
    s.mn.ike = Some(mn);
    s.ha.ike = Some(ha);
    s.ha.tunnel_address = Some(HA_TUNNEL);
    let (mut t, flows) = start(&s, &[(2.0, 1)], 5.5);
    t.sim.run_until(secs(3.5));
    let mut asked = 0;
    t.sim.act(t.ha, |role, now| {
        if let testbed::sim::Role::Ha(ha) = role {
            asked = ha.switch_mobile_nodes(now, to);
        }
    });
    t.sim.run_until(secs(5.5));
    (t, flows, asked)
}

// REQ RM-4.2c
// REQ RM-4.2d
// REQ RM-4.2e
#[test]
fn the_node_follows_its_home_agent_to_an_announced_address_then_sends_a_bu() {
    let (t, [down, up], asked) = switched(HA_TUNNEL);
    let log = trace(&t.sim);
    assert_eq!(asked, 1);
    let ike = t.sim.engine(t.mn).unwrap().ike().unwrap();
    let sa = ike.sa(ike.sa_ids().next().unwrap()).unwrap();
    assert_eq!(sa.remote.ip(), IpAddr::V6(HA_TUNNEL), "{log}");
    // The payload SA followed; the signalling SA, on the home agent's
    // Mobile IPv6 address, did not.
    let (transport, tunnel) = addresses(&t, t.mn);
    assert_eq!(transport, BTreeSet::from([pair(HOA, HA)]));
    assert_eq!(tunnel, BTreeSet::from([pair(COA_A, HA_TUNNEL)]), "{log}");
    let (_, tunnel) = addresses(&t, t.ha);
    assert_eq!(tunnel, BTreeSet::from([pair(HA_TUNNEL, COA_A)]), "{log}");
    // Then a BU over the new path, acknowledged.
    let after: Vec<_> = ike_lines(&t.sim, "mn", "BU seq")
        .into_iter()
        .filter(|(at, _)| *at > secs(3.5))
        .collect();
    assert_eq!(after.len(), 1, "{log}");
    let acked = ike_lines(&t.sim, "mn", "BA from")
        .into_iter()
        .any(|(at, l)| at > after[0].0 && l.contains("status 0"));
    assert!(acked, "{log}");
    // The tunnel carries on through the new address.
    for f in [down, up] {
        let (n, _) = arrived(&t, f, 4.0);
        assert!(n > 90, "flow {f}: {n}\n{log}");
    }
}

// REQ RM-4.2d
#[test]
fn the_node_refuses_a_switch_to_an_address_nobody_announced() {
    let elsewhere = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3);
    let (t, [down, _], asked) = switched(elsewhere);
    let log = trace(&t.sim);
    assert_eq!(asked, 1);
    assert_eq!(ike_lines(&t.sim, "mn", "switch to").len(), 1, "{log}");
    let ike = t.sim.engine(t.mn).unwrap().ike().unwrap();
    let sa = ike.sa(ike.sa_ids().next().unwrap()).unwrap();
    assert_eq!(sa.remote.ip(), IpAddr::V6(HA));
    assert!(ike_lines(&t.sim, "mn", "BU seq")
        .iter()
        .all(|(at, _)| *at < secs(3.5)));
    // Nothing changed for the traffic.
    let (n, _) = arrived(&t, down, 3.6);
    assert!(n > 80, "{n}\n{log}");
}

/// The demo's setups in `mode`, keyed statically and by IKE with each
/// mobility protocol (and alternate tunnel addresses).
fn keyings(mode: RouteOptimisation) -> Vec<(&'static str, Setup)> {
    let ike = |mobility, tunnel: bool| {
        let mut s = Setup::new(1, mode);
        s.keying = Keying::Ike {
            mobility,
            payload: true,
        };
        if tunnel {
            let (mut mn, mut ha) = ike_configs(s.seed, mobility, true);
            mn.tunnel_addresses = true;
            ha.tunnel_addresses = true;
            ha.peers[0].children[1].tunnel_address = Some(IpAddr::V6(HA_TUNNEL));
            s.mn.ike = Some(mn);
            s.ha.ike = Some(ha);
            s.ha.tunnel_address = Some(HA_TUNNEL);
        }
        s
    };
    vec![
        ("static keys", Setup::new(1, mode)),
        ("IKE, MOBIKE", ike(MOBIKE, false)),
        ("IKE, addrmgmt", ike(Mobility::AddrMgmt, false)),
        ("IKE, MOBIKE, tunnel address", ike(MOBIKE, true)),
    ]
}

/// Link up to the first correspondent packet over the path the node ends
/// on (route optimised, or through the home agent's tunnel), for the move
/// from access A to B — the first move pays the home agent's DAD — with
/// each keying, against static keys in the same seed. IKE's updates run
/// beside the BUs and add nothing to either path.
#[test]
fn ike_adds_no_round_trip_to_a_handoff() {
    let (mn_cn, mn_ha, _) = Setup::new(1, RouteOptimisation::Ipsec).rtts();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut table = String::from(
        "| keying | route optimised, A→B | × RTT(MN,CN) | tunnel via HA, A→B | × RTT(MN,HA) | IKE messages (RO run) |\n|---|---|---|---|---|---|\n",
    );
    let ro = keyings(RouteOptimisation::Ipsec);
    let tunnel = keyings(RouteOptimisation::None);
    let mut baseline = None;
    for ((name, ro), (_, tunnel)) in ro.iter().zip(&tunnel) {
        let (r, _) = testbed::demo::run(ro);
        let (u, _) = testbed::demo::run(tunnel);
        let at_b = |run: &testbed::demo::Run| run.handoffs[1].latency.map(ms).unwrap();
        let (ro_ms, tunnel_ms) = (at_b(&r), at_b(&u));
        let optimised: Vec<_> = r.handoffs.iter().map(|h| h.latency).collect();
        match &baseline {
            None => baseline = Some((optimised, tunnel_ms)),
            Some((o, t)) => {
                assert_eq!(&optimised, o, "{name}: route-optimised handoffs");
                assert!(
                    (tunnel_ms - t).abs() < 1e-6,
                    "{name}: tunnel {tunnel_ms} ms, static {t} ms"
                );
            }
        }
        assert_eq!(r.ike_messages > 0, *name != "static keys");
        table += &format!(
            "| {name} | {ro_ms:.1} ms | {:.2} | {tunnel_ms:.1} ms | {:.2} | {} |\n",
            ro_ms / ms(mn_cn),
            tunnel_ms / ms(mn_ha),
            r.ike_messages
        );
    }
    eprintln!("{table}");
}

/// The data plane's lifetimes reach IKE through the engine: at the soft
/// lifetime the mobile node rekeys its CHILD_SAs (RFC 7296 §2.8), the old
/// ones go, and traffic goes on.
// REQ MIP-HA-IPSEC
#[test]
fn a_soft_lifetime_rekeys_the_node_s_sas_through_ike() {
    let mut s = setup(MOBIKE);
    let (mut mn, ha) = ike_configs(s.seed, MOBIKE, true);
    for c in &mut mn.peers[0].children {
        c.lifetime = common::ipsec::Lifetime {
            soft_time: Some(Duration::from_secs(3)),
            hard_time: Some(Duration::from_secs(5)),
            ..Default::default()
        };
    }
    s.mn.ike = Some(mn);
    s.ha.ike = Some(ha);
    // Up at 1.3 s: rekeyed from 4.3 s, before the new SAs' own soft limit.
    let (t, [down, up]) = run(&s, &[(2.0, 1)], 7.0);
    let log = trace(&t.sim);
    let keyed = {
        let mut t0 = build(&s);
        t0.sim.run_until(secs(1.9));
        spis(&t0, t0.mn)
    };
    // Two new children with new SPIs at each end; the old ones are gone.
    let now = spis(&t, t.mn);
    assert_eq!(now.len(), 4, "{log}");
    assert!(now.is_disjoint(&keyed), "{now:?} {keyed:?}\n{log}");
    assert_eq!(spis(&t, t.ha), now);
    let downs = ike_lines(&t.sim, "mn", "CHILD_SA 0x");
    assert_eq!(downs.len(), 2, "the old children went: {log}");
    // Nothing was lost to the rekey after the handoff settled.
    for f in [down, up] {
        let (n, _) = arrived(&t, f, 3.5);
        assert_eq!(n, 300, "flow {f}\n{log}");
    }
}
