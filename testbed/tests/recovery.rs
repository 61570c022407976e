//! Recovery without an operator (issue 14, item 4): the home agent or the
//! correspondent disappears, with or without its state, and comes back;
//! the mobile node gets its bindings and traffic back on its own, by
//! retransmission, Binding Errors, IKE liveness and keying again, within
//! a bound that each test derives from the protocol's timers. Virtual
//! time, seed 1.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::net::Ipv6Addr;

use common::ike::{IkeDrop, Mobility};
use common::ipsec::IpsecDrop;
use common::node::{NodeDrop, RouteOptimisation};
use common::time::{Duration, Instant};
use common::wire::mh::{MhMessage, MhRepr};
use common::wire::{CodePoints, PacketRepr, UpperRepr};
use testbed::sim::{Flow, NodeId, Path, Role, Sim};
use testbed::topology::{
    build, restarted_correspondent, restarted_home_agent, Keying, Setup, Topology, CN, HA, HOA,
};

const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x100);

fn secs(s: f64) -> Instant {
    Instant::from_micros((s * 1e6) as u64)
}

/// A flow each way between the correspondent and the home address,
/// every 100 ms from 1 s until `until`: [down, up].
fn both_ways(t: &mut Topology, until: Instant) -> [u32; 2] {
    [(t.cn, CN, HOA), (t.mn, HOA, CN)].map(|(from, src, dst)| {
        let f = Flow {
            from,
            src,
            dst,
            interval: Duration::from_millis(100),
            until,
        };
        t.sim.flow(secs(1.0), f)
    })
}

/// When `node` put `what` in the trace, from `from` on.
fn traced(sim: &Sim, node: &str, what: &str, from: Instant) -> Vec<Instant> {
    sim.trace()
        .into_iter()
        .filter(|l| l.node == node && l.at >= from && l.what.contains(what))
        .map(|l| l.at)
        .collect()
}

/// The mobile node's BUs to the home agent and the accepting BAs from it.
fn home_bus(sim: &Sim, from: Instant) -> Vec<Instant> {
    traced(sim, "mn", &format!("to {HA} under ESP"), from)
}

fn home_bas(sim: &Sim, from: Instant) -> Vec<Instant> {
    traced(sim, "mn", &format!("BA from {HA}: status 0"), from)
}

/// The first datagram of `flow` that arrived after `from`, and how.
fn first_arrival(t: &Topology, flow: u32, from: Instant) -> Option<(Instant, Path)> {
    t.sim
        .arrivals
        .iter()
        .find(|a| a.flow == flow && a.at >= from)
        .map(|a| (a.at, a.path))
}

/// Tunnelled through the home agent with static keys; the node moves to
/// access A at 2 s (registered at about 3.1 s, after the agent's DAD of
/// the home address); a flow from the correspondent to the home address
/// every 100 ms from 1 s.
fn tunnelled(until: f64) -> (Topology, u32) {
    let setup = Setup::new(1, RouteOptimisation::None);
    let mut t = build(&setup);
    let down = t.sim.flow(
        secs(1.0),
        Flow {
            from: t.cn,
            src: CN,
            dst: HOA,
            interval: Duration::from_millis(100),
            until: secs(until),
        },
    );
    t.move_mn(secs(2.0), Some(t.access_a));
    (t, down)
}

/// Keyed by IKE with MOBIKE (a payload CHILD_SA with the home agent or
/// not), route optimisation `mode`, flows both ways until `until`; the
/// node moves to access A at 2 s; run to R = 10 s.
fn keyed_by_ike(mode: RouteOptimisation, payload: bool, until: f64) -> (Topology, Setup, [u32; 2]) {
    let mut setup = Setup::new(1, mode);
    setup.keying = Keying::Ike {
        mobility: MOBIKE,
        payload,
    };
    let mut t = build(&setup);
    let flows = both_ways(&mut t, secs(until));
    t.move_mn(secs(2.0), Some(t.access_a));
    t.sim.run_until(secs(10.0));
    (t, setup, flows)
}

const MOBIKE: Mobility = Mobility::Mobike { r_mobike: false };

/// How long IKE waits for an answer before the peer is dead: the first
/// timeout, doubled at each of its retransmissions.
fn dead_after(cfg: &common::ike::IkeConfig) -> Duration {
    cfg.retransmit_timeout * ((1 << (cfg.retransmit_tries + 1)) - 1)
}

// issue 14.4
// REQ MIP-BASE
#[test]
fn home_agent_back_after_40_s_is_registered_by_the_next_backed_off_bu() {
    // The home link goes down at 10 s with the home agent's state intact;
    // the node moves to access B at 11 s and its BU goes unanswered; the
    // link is back at 51 s.
    let (mut t, down) = tunnelled(90.0);
    t.sim.set_link_at(secs(10.0), t.home, false);
    t.move_mn(secs(11.0), Some(t.access_b));
    t.sim.set_link_at(secs(51.0), t.home, true);
    t.sim.run_until(secs(90.0));

    // RFC 6275 §11.8: the first BU after the move, then retransmissions
    // each waiting twice as long as the last, 1 s (INITIAL_BINDACK_TIMEOUT)
    // up to 32 s (MAX_BINDACK_TIMEOUT).
    let bus = home_bus(&t.sim, secs(11.0));
    let gaps: Vec<Duration> = bus.windows(2).map(|w| w[1] - w[0]).collect();
    let want: Vec<Duration> = [1, 2, 4, 8, 16, 32].map(Duration::from_secs).to_vec();
    assert_eq!(gaps, want, "BUs at {bus:?}");
    let (first, last) = (bus[0], bus[bus.len() - 1]);
    // Sent at 11 s + 63 s: the first after the link came back, at 51 s.
    assert_eq!(last - first, Duration::from_secs(63));
    assert!(last > secs(51.0) && last < secs(51.0 + 32.0));

    // The bound: back at R = 51 s, the next retransmission comes at most
    // MAX_BINDACK_TIMEOUT later, and its BA one MN–HA round trip after it
    // (2 × (0.2 + 30) ms), plus a round trip of the home link for Neighbor
    // Discovery: the router resolves the agent, whose neighbour entry died
    // in the outage (RFC 4861 §7.3.3); the new care-of address it knows
    // from the node's announcement (RFC 9131): at most R + 32 s + 2 ×
    // 60.4 ms. Measured: the BU at 74 s, 23 s after R, its BA 120.4 ms
    // later.
    let setup = Setup::new(1, RouteOptimisation::None);
    let (_, mn_ha, via_ha) = setup.rtts();
    let bound = Duration::from_secs(32) + mn_ha * 2;
    let back = secs(51.0);
    let bas = home_bas(&t.sim, back);
    assert_eq!(bas.len(), 1, "one BA after the return: {bas:?}");
    let registered = bas[0];
    assert_eq!(registered - last, mn_ha + Duration::from_millis(2 * 30));
    assert!(registered - back <= bound, "{registered:?}");
    // Nothing got through the outage: the BUs before the return are lost
    // on the link that was down, and the home agent kept the binding and
    // sequence number, so the BU it finally gets is accepted at once.
    assert!(t.sim.link_stats(t.home).down > 0);
    let ha = t.sim.ha(t.ha).unwrap();
    let b = ha.binding(HOA).unwrap();
    assert_eq!(b.care_of, COA_B);
    assert_eq!(b.seq, t.sim.mn(t.mn).unwrap().entry(HA).unwrap().seq);

    // Traffic to the home address follows the binding: until the BA the
    // agent tunnels it to access A, which the node left; the first
    // datagram that arrives is one the correspondent sent at most an
    // interval (100 ms) after the BA, on its way CN → HA → MN (less than
    // the via-HA round trip).
    let (at, path) = first_arrival(&t, down, back).unwrap();
    assert_eq!(path, Path::Tunnelled);
    assert!(at > registered && at - registered <= Duration::from_millis(100) + via_ha);
    println!(
        "home agent away 40 s, state kept: registered {:?} after its return, traffic {:?}",
        registered - back,
        at - back
    );
}

/// Drops by `reason` at `node`.
fn dropped(t: &Topology, node: NodeId, reason: NodeDrop) -> u64 {
    t.sim.engine(node).unwrap().stats().dropped(reason)
}

// issue 14.4
// REQ MIP-BASE
// REQ MIP-HA-IPSEC
#[test]
fn home_agent_restarted_without_state_gets_the_node_back_by_binding_error() {
    // Tunnelled, static keys, a flow each way every 100 ms; at R = 10 s
    // the home agent restarts with its configuration and static SAs (fresh
    // sequence numbers and replay windows) but no binding.
    let (mut t, down) = tunnelled(20.0);
    t.sim.flow(
        secs(1.0),
        Flow {
            from: t.mn,
            src: HOA,
            dst: CN,
            interval: Duration::from_millis(100),
            until: secs(20.0),
        },
    );
    t.sim.run_until(secs(10.0));
    let restart = t.sim.now();
    assert_eq!(home_bas(&t.sim, Instant::ZERO).len(), 1, "registered once");
    t.sim.restart(
        t.ha,
        Role::Ha(Box::new(restarted_home_agent(&t.network, 1))),
    );
    assert_eq!(t.sim.ha(t.ha).unwrap().bindings(), 0);
    t.sim.run_until(secs(20.0));

    // The agent drops what the node reverse-tunnels, for a home address
    // it serves and has no binding for, and answers the first with Binding
    // Error status 1 (none once the node's BU is in); the node registers
    // again at once. The agent sent three Mobility Headers: that error and
    // two BAs.
    assert!(dropped(&t, t.ha, NodeDrop::TunnelSourceMismatch) > 1);
    assert_eq!(t.sim.engine(t.ha).unwrap().stats().signalling_messages, 3);
    let bus = home_bus(&t.sim, restart);
    let bas = home_bas(&t.sim, restart);
    assert_eq!(bus.len(), 2, "the BU and one retransmission: {bus:?}");
    assert_eq!(bas.len(), 1, "{bas:?}");
    // RFC 6275 §11.8: a first registration waits 1.5 s for its BA.
    assert_eq!(bus[1] - bus[0], Duration::from_millis(1500));
    // The agent's first BA went out under ESP sequence number 1, which the
    // node's replay window saw before the restart (RFC 4303 §3.4.3): with
    // static keys that costs one retransmission per BA the node had.
    let mn_ipsec = t.sim.engine(t.mn).unwrap().ipsec().stats();
    assert_eq!(mn_ipsec.dropped(IpsecDrop::Replayed), 1);
    let b = t.sim.ha(t.ha).unwrap().binding(HOA).copied().unwrap();
    assert_eq!(b.care_of, COA_A);
    assert_eq!(b.seq, t.sim.mn(t.mn).unwrap().entry(HA).unwrap().seq);

    // The bound, from R: the agent's DAD of its own address (1 s, RFC 4862
    // with one transmission), before which it answers nothing; the next
    // reverse-tunnelled datagram (≤ 100 ms); its Binding Error and the BU
    // (one MN–HA round trip); the retransmission after 1.5 s
    // (INITIAL_BINDACK_TIMEOUT_FIRST_REG, which covers the agent's 1 s DAD
    // of the home address and the replayed BA) and its BA (a round trip):
    // R + 1 + 0.1 + 1.5 s + 2 × 60.4 ms = R + 2.7208 s. Measured: 2.6208 s.
    let setup = Setup::new(1, RouteOptimisation::None);
    let (_, mn_ha, _) = setup.rtts();
    let bound = Duration::from_millis(2600) + mn_ha * 2;
    let registered = bas[0] - restart;
    assert!(registered <= bound, "{registered:?}");
    // Traffic to the home address resumes once the agent has the binding
    // again and defends the address, before its BA reaches the node.
    let (at, path) = first_arrival(&t, down, restart + Duration::from_millis(200)).unwrap();
    assert_eq!(path, Path::Tunnelled);
    assert!(at - restart <= bound && at < bas[0], "{at:?}");
    println!(
        "home agent restarted without state: registered {registered:?} after, traffic {:?}",
        at - restart
    );
}

// issue 14.4
// REQ IKE-BASE
// REQ MIP-BASE
#[test]
fn home_agent_restarted_without_ike_state_is_found_dead_and_keyed_again() {
    // IKE (RFC 4877, MOBIKE) keys BU and BA; the payload goes in plain
    // IPv6-in-IPv6 (under a payload SA, the next test). At R = 10 s the
    // agent restarts with no IKE SA, no CHILD_SA, no binding.
    let (mut t, setup, flows) = keyed_by_ike(RouteOptimisation::None, false, 60.0);
    let restart = t.sim.now();
    let ike_sas = |t: &Topology| -> Vec<_> {
        let ike = t.sim.engine(t.mn).unwrap().ike().unwrap();
        ike.sa_ids().collect()
    };
    let before = ike_sas(&t);
    assert_eq!(before.len(), 1);
    let mn_ike = t.sim.engine(t.mn).unwrap().ike().unwrap().stats().clone();
    let fresh = restarted_home_agent(&t.network, 1);
    t.sim.restart(t.ha, Role::Ha(Box::new(fresh)));
    t.sim.run_until(secs(60.0));

    // The Binding Error brings a BU under the old CHILD_SA, which the
    // agent drops (no SA has its SPI); the first retransmission asks IKE
    // whether the agent is alive (RFC 7296 §2.4), and the empty
    // INFORMATIONAL goes unanswered (the agent knows no IKE SA with that
    // SPI) through its retransmissions, 0.5 s doubling, five of them: the
    // SA closes 0.5 × (1 + 2 + 4 + 8 + 16 + 32) = 31.5 s after the check.
    let (mn_cfg, _) = testbed::topology::ike_configs(1, MOBIKE, false);
    let dead_after = dead_after(&mn_cfg);
    assert_eq!(dead_after, Duration::from_millis(31_500));
    let bus = home_bus(&t.sim, restart);
    let closed = traced(&t.sim, "mn", "closed: Timeout", restart);
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0] - bus[1], dead_after, "BUs {bus:?}");
    let ha_ipsec = t.sim.engine(t.ha).unwrap().ipsec().stats();
    let stale_bus = bus.iter().filter(|b| **b < closed[0]).count() as u64;
    assert_eq!(ha_ipsec.dropped(IpsecDrop::UnknownSpi), stale_bus);
    let ha_ike = t.sim.engine(t.ha).unwrap().ike().unwrap().stats();
    let tries = u64::from(mn_cfg.retransmit_tries);
    assert_eq!(ha_ike.dropped(IkeDrop::UnknownSpi), 1 + tries);
    let mn_ike_now = t.sim.engine(t.mn).unwrap().ike().unwrap().stats();
    assert_eq!(mn_ike_now.retransmits - mn_ike.retransmits, tries);
    // Then at once a new IKE SA (IKE_SA_INIT, IKE_AUTH with INITIAL_CONTACT,
    // as no other SA with the agent is left) and the BU under its child.
    let after = ike_sas(&t);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before);
    let up = traced(&t.sim, "mn", "with ha.example.org up", restart);
    assert_eq!(up.len(), 1);
    let (_, mn_ha, via_ha) = setup.rtts();
    assert_eq!(up[0] - closed[0], mn_ha * 2);
    let bas = home_bas(&t.sim, restart);
    assert_eq!(bas.len(), 1, "{bas:?}");
    assert!(t.sim.ha(t.ha).unwrap().binding(HOA).is_some());

    // The bound, from R: the agent's DAD of its address (1 s); the next
    // reverse-tunnelled datagram (≤ 100 ms) and its Binding Error (a round
    // trip); the first retransmission, 1.5 s later, with the liveness
    // check; 31.5 s to the dead peer; IKE_SA_INIT and IKE_AUTH (two round
    // trips); the BU, the agent's DAD of the home address (1 s) and the BA
    // (a round trip): R + 1 + 0.1 + 1.5 + 31.5 + 1 s + 4 × 60.4 ms =
    // R + 35.3416 s. Measured: 35.2416 s.
    let bound = Duration::from_millis(35_100) + mn_ha * 4;
    let registered = bas[0] - restart;
    assert!(registered <= bound, "{registered:?}");
    // Traffic to the home address: the first datagram sent once the agent
    // defends it again (≤ 100 ms after its BA), CN → HA → MN.
    let (at, path) = first_arrival(&t, flows[0], restart + Duration::from_millis(200)).unwrap();
    assert_eq!(path, Path::Tunnelled);
    assert!(at <= bas[0] + Duration::from_millis(100) + via_ha, "{at:?}");
    println!(
        "home agent restarted without IKE state: registered {registered:?} after, traffic {:?}",
        at - restart
    );
}

// issue 14.4
// REQ IKE-BASE
// REQ MIP-HA-IPSEC
#[test]
fn home_agent_restarted_under_a_payload_sa_is_found_dead_by_one_way_traffic() {
    // As above, but the payload goes under a tunnel-mode CHILD_SA: the
    // restarted agent cannot read the reverse tunnel, so no Binding Error
    // comes and no BU goes. What the node sees is its own ESP going out
    // and nothing coming in; IKE looks at each SA's children every 5 s
    // and asks the peer once packets went out during a span and nothing
    // came in by the end of the next (RFC 7296 §2.4).
    let (mut t, setup, flows) = keyed_by_ike(RouteOptimisation::None, true, 80.0);
    let restart = t.sim.now();
    let mn_stats = |t: &Topology| t.sim.engine(t.mn).unwrap().ike().unwrap().stats().clone();
    // Traffic both ways asks nothing.
    assert_eq!(mn_stats(&t).one_way_checks, 0);
    let fresh = restarted_home_agent(&t.network, 1);
    t.sim.restart(t.ha, Role::Ha(Box::new(fresh)));
    t.sim.run_until(secs(80.0));

    let (mn_cfg, _) = testbed::topology::ike_configs(1, MOBIKE, true);
    let span = mn_cfg.liveness_interval;
    let dead_after = dead_after(&mn_cfg);
    assert_eq!(mn_stats(&t).one_way_checks, 1);
    assert!(
        home_bus(&t.sim, restart)[0] > restart + span * 2,
        "no BU before"
    );
    let closed = traced(&t.sim, "mn", "closed: Timeout", restart);
    assert_eq!(closed.len(), 1, "{closed:?}");
    // The check starts at a look between two and three spans after the
    // last packet in.
    let asked = closed[0] - restart - dead_after;
    assert!(asked >= span * 2 && asked <= span * 3, "{asked:?}");
    let up = traced(&t.sim, "mn", "with ha.example.org up", restart);
    let (_, mn_ha, via_ha) = setup.rtts();
    assert_eq!(up[0] - closed[0], mn_ha * 2);
    let bas = home_bas(&t.sim, restart);
    assert_eq!(bas.len(), 1, "{bas:?}");
    // The bound, from R: three spans; 31.5 s to the dead peer; IKE_SA_INIT
    // and IKE_AUTH; the BU, the agent's DAD of the home address (1 s) and
    // the BA: R + 15 + 31.5 + 1 s + 4 × 60.4 ms = R + 47.7416 s.
    // Measured: 43.9812 s.
    let bound = span * 3 + dead_after + Duration::from_secs(1) + mn_ha * 4;
    let registered = bas[0] - restart;
    assert!(registered <= bound, "{registered:?}");
    // Traffic to the home address through the new tunnel SA, from the
    // first datagram sent once the agent defends the address again.
    let (at, path) = first_arrival(&t, flows[0], bas[0]).unwrap();
    assert_eq!(path, Path::Tunnelled);
    assert!(at <= bas[0] + Duration::from_millis(100) + via_ha, "{at:?}");
    println!(
        "home agent restarted under a payload SA: registered {registered:?} after, traffic {:?}",
        at - restart
    );
}

// issue 14.4
// REQ MIP-BASE
// REQ CN-3.2
#[test]
fn correspondent_restarted_without_state_falls_back_to_the_tunnel_then_route_optimises() {
    // Route optimisation by a BU under a static signalling SA, a flow each
    // way every 100 ms; at R = 10 s the correspondent restarts with its SA
    // (fresh replay windows) and no binding.
    let setup = Setup::new(1, RouteOptimisation::Ipsec);
    let mut t = build(&setup);
    let [down, up] = both_ways(&mut t, secs(20.0));
    t.move_mn(secs(2.0), Some(t.access_a));
    t.sim.run_until(secs(10.0));
    let restart = t.sim.now();
    let cn_bas = |t: &Topology| traced(&t.sim, "mn", &format!("BA from {CN}: status 0"), restart);
    let fresh = restarted_correspondent(&t.network, 0, 1, restart).unwrap();
    t.sim.restart(t.cn, Role::Cn(Box::new(fresh)));
    t.sim.run_until(secs(20.0));

    // Its own DAD over (1 s), the correspondent drops the node's first
    // route-optimised datagram (a HAO nothing vouches for) with a Binding
    // Error (RFC 6275 §9.3.3); the node unbinds, sends through the home
    // agent (§11.3.6) and sends a BU. Its first BA is a replay to the node
    // (ESP sequence number 1 again), so the retransmission 1 s later
    // completes.
    assert_eq!(dropped(&t, t.cn, NodeDrop::HaoUnverified), 1);
    let bus = traced(&t.sim, "mn", &format!("to {CN} under ESP"), restart);
    assert_eq!(bus.len(), 2, "{bus:?}");
    assert_eq!(bus[1] - bus[0], Duration::from_secs(1));
    let mn_ipsec = t.sim.engine(t.mn).unwrap().ipsec().stats();
    assert_eq!(mn_ipsec.dropped(IpsecDrop::Replayed), 1);
    let bas = cn_bas(&t);
    assert_eq!(bas.len(), 1);

    // The bound, from R: the correspondent's DAD (1 s); the next datagram
    // (≤ 100 ms) and its Binding Error (one MN–CN round trip); the
    // retransmission 1 s (INITIAL_BINDACK_TIMEOUT) after the BU and its
    // BA (a round trip): R + 2.1 s + 2 × 40.4 ms = R + 2.1808 s.
    // Measured: 2.0808 s.
    let (mn_cn, _, _) = setup.rtts();
    let bound = Duration::from_millis(2100) + mn_cn * 2;
    let bound_at = restart + bound;
    assert!(bas[0] <= bound_at, "{:?}", bas[0]);
    let ro_again = t
        .sim
        .arrivals
        .iter()
        .find(|a| a.flow == up && a.sent >= bas[0] && a.path == Path::RouteOptimised)
        .map(|a| a.at)
        .unwrap();
    assert!(ro_again <= bas[0] + Duration::from_millis(100) + mn_cn);

    // Meanwhile nothing sent after the Binding Error is lost: from the
    // node through the home agent's tunnel until the BA, and to it through
    // the tunnel until the correspondent has the binding again, route
    // optimised after.
    let sent_between = |flow: u32, from: Instant, to: Instant| -> Vec<Path> {
        t.sim
            .arrivals
            .iter()
            .filter(|a| a.flow == flow && a.sent >= from && a.sent < to)
            .map(|a| a.path)
            .collect()
    };
    let via_tunnel = sent_between(up, bus[0], bas[0]);
    assert_eq!(via_tunnel.len(), 10, "every 100 ms from the BU to the BA");
    assert!(
        via_tunnel.iter().all(|p| *p == Path::Direct),
        "{via_tunnel:?}"
    );
    let to_node = sent_between(down, restart, secs(19.0));
    assert_eq!(to_node.len(), 90, "none lost");
    assert!(to_node[1..11].iter().all(|p| *p == Path::Tunnelled));
    assert!(to_node[11..].iter().all(|p| *p == Path::RouteOptimised));
    println!(
        "correspondent restarted without state: route optimised again {:?} after",
        ro_again - restart
    );
}

// issue 14.4
// REQ IKE-BASE
// REQ CN-3.2
#[test]
fn correspondent_restarted_without_ike_state_is_found_dead_and_keyed_again() {
    // Route optimisation by BUs under a CHILD_SA that IKE negotiated with
    // the home address; a flow each way every 100 ms. At R = 10 s the
    // correspondent restarts with no IKE SA, no CHILD_SA, no binding.
    let (mut t, setup, [down, up]) = keyed_by_ike(RouteOptimisation::Ipsec, false, 60.0);
    let restart = t.sim.now();
    let mn_ike = t.sim.engine(t.mn).unwrap().ike().unwrap().stats().clone();
    let fresh = restarted_correspondent(&t.network, 0, 1, restart).unwrap();
    t.sim.restart(t.cn, Role::Cn(Box::new(fresh)));
    t.sim.run_until(secs(60.0));

    // The first route-optimised datagram after the correspondent's DAD
    // gets a Binding Error; the node's BU goes under the old CHILD_SA,
    // dropped for its SPI, and its first retransmission starts the
    // liveness check, unanswered (no IKE SA with that SPI) through its
    // retransmissions: the SA closes 31.5 s after it, as with the agent.
    assert_eq!(dropped(&t, t.cn, NodeDrop::HaoUnverified), 1);
    let bus = traced(&t.sim, "mn", &format!("to {CN} under ESP"), restart);
    let closed = traced(&t.sim, "mn", "closed: Timeout", restart);
    assert_eq!(closed.len(), 1, "{closed:?}");
    let (mn_cfg, _) = testbed::topology::ike_configs(1, MOBIKE, false);
    let dead_after = dead_after(&mn_cfg);
    assert_eq!(closed[0] - bus[1], dead_after, "BUs {bus:?}");
    let stale_bus = bus.iter().filter(|b| **b < closed[0]).count() as u64;
    let cn_ipsec = t.sim.engine(t.cn).unwrap().ipsec().stats();
    assert_eq!(cn_ipsec.dropped(IpsecDrop::UnknownSpi), stale_bus);
    let tries = u64::from(mn_cfg.retransmit_tries);
    let cn_ike = t.sim.engine(t.cn).unwrap().ike().unwrap().stats();
    assert_eq!(cn_ike.dropped(IkeDrop::UnknownSpi), 1 + tries);
    let mn_ike_now = t.sim.engine(t.mn).unwrap().ike().unwrap().stats();
    assert_eq!(mn_ike_now.retransmits - mn_ike.retransmits, tries);
    // Then a new IKE SA from the home address, through the home agent (two
    // round trips that way), and the BU under its child, answered.
    let (mn_cn, _, via_ha) = setup.rtts();
    let up_again = traced(&t.sim, "mn", "with cn.example.org up", restart);
    assert_eq!(up_again.len(), 1);
    assert_eq!(up_again[0] - closed[0], via_ha * 2);
    let bas = traced(&t.sim, "mn", &format!("BA from {CN}: status 0"), restart);
    assert_eq!(bas.len(), 1, "{bas:?}");
    assert_eq!(bas[0] - up_again[0], mn_cn);

    // The bound, from R: the correspondent's DAD (1 s); the next datagram
    // (≤ 100 ms) and its Binding Error (a round trip); the retransmission
    // 1 s after the BU; 31.5 s to the dead peer; IKE_SA_INIT and IKE_AUTH
    // through the agent; the BU and its BA: R + 33.6 s + 2 × 40.4 ms +
    // 2 × 160.4 ms = R + 34.0016 s. Measured: 33.9016 s.
    let bound = Duration::from_millis(33_600) + mn_cn * 2 + via_ha * 2;
    let registered = bas[0] - restart;
    assert!(registered <= bound, "{registered:?}");
    // Nothing sent after the Binding Error is lost: through the home
    // agent both ways until the new IKE SA, route optimised again once the
    // BA is in.
    let sent_between = |flow: u32, from: Instant, to: Instant| -> Vec<Path> {
        t.sim
            .arrivals
            .iter()
            .filter(|a| a.flow == flow && a.sent >= from && a.sent < to)
            .map(|a| a.path)
            .collect()
    };
    // Each flow sends every 100 ms from 1 s.
    let sent = |from: Instant, to: Instant| {
        (0..)
            .map(|k| secs(1.0) + Duration::from_millis(100 * k))
            .take_while(|at| *at < to)
            .filter(|at| *at >= from)
            .count()
    };
    let end = secs(59.0);
    for (flow, ways) in [
        (up, [Path::Direct, Path::RouteOptimised]),
        (down, [Path::Tunnelled, Path::RouteOptimised]),
    ] {
        assert_eq!(sent_between(flow, bus[0], end).len(), sent(bus[0], end));
        let spans = [(bus[0], up_again[0]), (bas[0] + mn_cn, end)];
        for ((from, to), want) in spans.into_iter().zip(ways) {
            let got = sent_between(flow, from, to);
            assert!(got.iter().all(|p| *p == want), "flow {flow}: {got:?}");
        }
    }
    println!("correspondent restarted without IKE state: registered {registered:?} after");
}

// issue 14.4
// REQ MIP-BASE
// REQ CN-3.2
#[test]
fn correspondent_unreachable_40_s_with_its_state_is_route_optimised_again_when_back() {
    // IPsec route optimisation with static keys, a flow each way every
    // 100 ms; the correspondent's link is down from R = 10 s to 50 s, the
    // correspondent and its binding intact.
    let setup = Setup::new(1, RouteOptimisation::Ipsec);
    let mut t = build(&setup);
    let [down, up] = both_ways(&mut t, secs(70.0));
    t.move_mn(secs(2.0), Some(t.access_a));
    t.sim.set_link_at(secs(10.0), t.cn_link, false);
    t.sim.set_link_at(secs(50.0), t.cn_link, true);
    t.sim.run_until(secs(70.0));

    // Nothing to recover: no BU, no Binding Error, no BA; the binding was
    // never lost, so datagrams go route optimised both ways as soon as
    // the router has resolved the correspondent again (its neighbour
    // entry died in the outage): one round trip on that link (2 × 20 ms)
    // more. Bound: back + the next datagram (≤ 100 ms) + MN–CN one way +
    // 40 ms. Measured: equal to it, 160.2 ms.
    let cn_bus = traced(&t.sim, "mn", &format!("to {CN} under ESP"), secs(10.0));
    assert_eq!(cn_bus, vec![], "no BU to the correspondent");
    assert_eq!(dropped(&t, t.cn, NodeDrop::HaoUnverified), 0);
    let back = secs(50.0);
    let (mn_cn, _, _) = setup.rtts();
    let bound = back + Duration::from_millis(100 + 40) + mn_cn / 2;
    for flow in [down, up] {
        let (at, path) = first_arrival(&t, flow, back).unwrap();
        assert_eq!(path, Path::RouteOptimised, "flow {flow}");
        assert!(at <= bound, "flow {flow} at {at:?}");
        let after: Vec<Path> = t
            .sim
            .arrivals
            .iter()
            .filter(|a| a.flow == flow && a.sent >= at && a.sent < secs(69.0))
            .map(|a| a.path)
            .collect();
        assert!(after.iter().all(|p| *p == Path::RouteOptimised));
    }
    println!(
        "correspondent unreachable 40 s: route optimised again {:?} after",
        first_arrival(&t, up, back).unwrap().0 - back
    );
}

/// A Binding Error status 1 for the home address from `src` to the node
/// on access A.
fn binding_error(src: Ipv6Addr) -> Vec<u8> {
    let mh = MhRepr {
        message: MhMessage::BindingError {
            status: 1,
            home_address: HOA,
        },
        options: vec![],
    };
    PacketRepr::ipv6(src, COA_A, vec![], UpperRepr::Mobility(mh)).to_bytes(&CodePoints::default())
}

// issue 14.4
// REQ MIP-BASE
#[test]
fn a_binding_error_the_nodes_state_does_not_explain_is_counted_not_acted_on() {
    let (mut t, _) = tunnelled(10.0);
    // Injected on access A, unprotected as Binding Errors are: from the
    // home agent's address while the first registration is out, and from
    // another address once registered, neither brings a BU.
    t.sim.run_until(secs(2.5));
    assert!(t.sim.mn(t.mn).unwrap().entry(HA).unwrap().is_waiting());
    t.sim.inject(t.access_a, binding_error(HA));
    t.sim.run_until(secs(5.0));
    t.sim.inject(t.access_a, binding_error(CN));
    t.sim.run_until(secs(6.0));
    assert_eq!(dropped(&t, t.mn, NodeDrop::Unsolicited), 2);
    assert_eq!(home_bus(&t.sim, Instant::ZERO).len(), 1);
    // From the home agent's address once registered: one BU under ESP,
    // which the agent, that still has the binding, accepts at once; all a
    // forged one costs.
    t.sim.inject(t.access_a, binding_error(HA));
    t.sim.run_until(secs(7.0));
    assert_eq!(home_bus(&t.sim, secs(6.0)).len(), 1);
    assert_eq!(home_bas(&t.sim, secs(6.0)).len(), 1);
    assert!(t.sim.mn(t.mn).unwrap().entry(HA).unwrap().is_bound());
}
