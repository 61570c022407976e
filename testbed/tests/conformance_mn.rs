//! RFC 6275 §11 (Mobile Node Operation), the rules on what a mobile node
//! receives, one by one, in the simulator: crafted packets go to the
//! mobile node on access A and what it puts on the wire, counts and holds
//! in its binding update list is asserted. Cases after the TAHI / IPv6
//! Ready Mobile IPv6 mobile node self-tests (ReceivingBA132 and the
//! like). The checklist in README.md maps each rule to its test here or
//! elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod tools;

use tools::crafted::{bus, cp, mn_drops, seal_as, sent_since, udp, Sent};

use std::net::Ipv6Addr;

use common::node::mn::{BulEntry, RETRY_REFUSED};
use common::node::{rr, NodeDrop, NodeStats, RouteOptimisation};
use common::time::{Duration, Instant};
use common::wire::checksum::PseudoHeader;
use common::wire::icmpv6::{ECHO_REPLY, ECHO_REQUEST};
use common::wire::mh::{BaFlags, BaStatus, MhMessage, MhOption, MhRepr};
use common::wire::{ExtHeaderRepr, Icmpv6Repr, PacketRepr, RoutingRepr, UpperRepr};
use testbed::topology::{build, Setup, Topology, CN, HA, HOA, MN_ACCESS_A_IFACE};

const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);
const COA_B: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x100);
/// A node the mobile node never sent anything to, on the correspondent's
/// prefix.
const STRANGER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 0x99);
/// A home address on the home prefix that is not ours.
const OTHER_HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x200);

fn secs(s: f64) -> Instant {
    Instant::from_micros((s * 1e6) as u64)
}

/// The mobile node moved to access A at 1 s and registered with the home
/// agent and the correspondent (`mode`), at 3 s.
fn away(seed: u64, mode: RouteOptimisation) -> Topology {
    let mut t = build(&Setup::new(seed, mode));
    t.move_mn(secs(1.0), Some(t.access_a));
    t.sim.run_until(secs(3.0));
    assert!(entry(&t, HA).is_bound());
    assert_eq!(entry(&t, CN).is_bound(), mode != RouteOptimisation::None);
    t
}

/// The home link and the correspondent's link are down from 0.5 s: the
/// node moved to access A at 1 s, and at 1.2 s its BUs to the home agent
/// and (under IPsec) to the correspondent are out, unanswered. The test's
/// BAs are the only ones.
fn unanswered(seed: u64) -> Topology {
    let mut t = build(&Setup::new(seed, RouteOptimisation::Ipsec));
    t.sim.set_link_at(secs(0.5), t.home, false);
    t.sim.set_link_at(secs(0.5), t.cn_link, false);
    t.move_mn(secs(1.0), Some(t.access_a));
    t.sim.run_until(secs(1.2));
    assert!(entry(&t, HA).is_waiting() && entry(&t, CN).is_waiting());
    t
}

/// Return routability with the correspondent's link down from 0.5 s:
/// registered with the home agent, the node has sent its HoTI (through
/// the home agent) and CoTI, at 2.5 s, whose cookies are returned. The
/// test's HoT and CoT are the only ones.
fn testing(seed: u64) -> (Topology, u64, u64) {
    let mut t = build(&Setup::new(seed, RouteOptimisation::ReturnRoutability));
    t.sim.set_link_at(secs(0.5), t.cn_link, false);
    t.move_mn(secs(1.0), Some(t.access_a));
    t.sim.run_until(secs(2.5));
    assert!(entry(&t, HA).is_bound());
    let (home, care_of) = cookies(&sent(&t, 0));
    (t, home.unwrap(), care_of.unwrap())
}

/// The cookies of the last HoTI and CoTI among `sent`.
fn cookies(sent: &[Sent]) -> (Option<u64>, Option<u64>) {
    let mut c = (None, None);
    for s in sent {
        match s.mh.as_ref().map(|m| &m.message) {
            Some(MhMessage::HomeTestInit { cookie }) => c.0 = Some(*cookie),
            Some(MhMessage::CareOfTestInit { cookie }) => c.1 = Some(*cookie),
            _ => {}
        }
    }
    c
}

fn entry(t: &Topology, peer: Ipv6Addr) -> BulEntry {
    t.sim.mn(t.mn).unwrap().entry(peer).unwrap().clone()
}

fn stats(t: &Topology) -> NodeStats {
    t.sim.engine(t.mn).unwrap().stats().clone()
}

/// How many frames access A carried so far.
fn frames(t: &Topology) -> usize {
    t.sim.captured(t.access_a).len()
}

/// What the mobile node sent from its care-of address on access A from
/// frame `from` on.
fn sent(t: &Topology, from: usize) -> Vec<Sent> {
    sent_since(t, t.access_a, from, COA_A)
}

/// The BUs to `peer` among `sent`: (sequence number, lifetime).
fn bus_to(sent: &[Sent], peer: Ipv6Addr) -> Vec<(u16, u16)> {
    bus(sent)
        .into_iter()
        .filter(|b| b.0 == peer)
        .map(|b| (b.1, b.2))
        .collect()
}

/// Puts `bytes` on access A (sealed as `from` first if `seal`) and lets
/// 10 ms pass; returns what the node sent meanwhile.
fn inject(t: &mut Topology, seal: Option<Ipv6Addr>, bytes: Vec<u8>) -> Vec<Sent> {
    let bytes = match seal {
        Some(a) => {
            let node = if a == HA { t.ha } else { t.cn };
            seal_as(t, node, &bytes)
        }
        None => bytes,
    };
    let from = frames(t);
    t.sim.inject(t.access_a, bytes);
    t.sim.run_for(Duration::from_millis(10));
    sent(t, from)
}

/// A packet from `src` to the care-of address on access A, through a type
/// 2 routing header for `type2` if there is one.
fn to_coa(src: Ipv6Addr, type2: Option<Ipv6Addr>, upper: UpperRepr) -> PacketRepr {
    let ext = type2.map(ExtHeaderRepr::type2).into_iter().collect();
    PacketRepr::ipv6(src, COA_A, ext, upper)
}

fn mh(message: MhMessage, options: Vec<MhOption>) -> UpperRepr {
    UpperRepr::Mobility(MhRepr { message, options })
}

/// A BA as it comes to a BU sent from access A.
fn ba(status: u8, seq: u16, lifetime: u16, options: Vec<MhOption>) -> MhRepr {
    MhRepr {
        message: MhMessage::BindingAck {
            status: BaStatus::from(status),
            flags: BaFlags(0),
            seq,
            lifetime,
        },
        options,
    }
}

/// [`ba`] from `src` to the care-of address, through a type 2 routing
/// header for the home address.
fn ba_bytes(src: Ipv6Addr, status: u8, seq: u16, lifetime: u16) -> Vec<u8> {
    let m = ba(status, seq, lifetime, vec![]);
    to_coa(src, Some(HOA), UpperRepr::Mobility(m)).to_bytes(&cp())
}

/// A datagram from the home address to the correspondent, from the
/// node's stack: whether it left route optimised (else tunnelled).
fn route_optimised(t: &mut Topology) -> bool {
    let before = stats(t);
    t.sim.send_from_stack(t.mn, &udp(HOA, CN, vec![]));
    let after = stats(t);
    assert_eq!(
        after.sent_route_optimised + after.sent_tunnelled,
        before.sent_route_optimised + before.sent_tunnelled + 1
    );
    after.sent_route_optimised > before.sent_route_optimised
}

// RFC 6275 §11.7.3: a BA counts only if its sequence number is the one of
// the outstanding BU to its source; then the entry is acknowledged and the
// BU no longer retransmitted. One with another number, or a second one
// once nothing is outstanding, is silently ignored (TAHI MN
// "ReceivingBA, sequence number mismatch").
// REQ MIP-BASE
#[test]
fn a_ba_counts_only_for_the_outstanding_bu_and_stops_its_retransmission() {
    let mut t = unanswered(301);
    let from = frames(&t);
    let seq = entry(&t, CN).seq;
    inject(&mut t, Some(CN), ba_bytes(CN, 0, seq.wrapping_add(1), 100));
    assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), 1);
    assert!(entry(&t, CN).is_waiting() && !entry(&t, CN).is_bound());
    inject(&mut t, Some(CN), ba_bytes(CN, 0, seq, 100));
    assert!(!entry(&t, CN).is_waiting() && entry(&t, CN).is_bound());
    assert!(route_optimised(&mut t));
    inject(&mut t, Some(CN), ba_bytes(CN, 0, seq, 100));
    assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), 2);
    // A minute on: the home BU is retransmitted all along, the one to the
    // correspondent never again.
    t.sim.run_for(Duration::from_secs(60));
    let sent = sent(&t, from);
    assert!(bus_to(&sent, CN).is_empty());
    let home: Vec<(u16, u16)> = (2..=6).map(|seq| (seq, 150)).collect();
    assert_eq!(
        bus_to(&sent, HA),
        home,
        "at 2.5, 5.5, 11.5, 23.5 and 47.5 s"
    );
}

// RFC 6275 §11.7.3, §6.1.8: a BA to a home registration (or to a BU under
// a suitable SA) must come under ESP (the SPD drops a clear one before
// the Mobility Header is read); a BA from a node the mobile node sent no
// BU to matches no entry. Both are silently ignored.
// REQ MIP-BASE
// REQ MIP-HA-IPSEC
#[test]
fn a_ba_without_the_bus_protection_or_from_elsewhere_is_ignored() {
    let mut t = unanswered(302);
    let seq = entry(&t, HA).seq;
    inject(&mut t, None, ba_bytes(HA, 0, seq, 100));
    assert_eq!(mn_drops(&t, NodeDrop::Ipsec), 1);
    inject(&mut t, None, ba_bytes(STRANGER, 0, seq, 100));
    assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), 1);
    assert!(entry(&t, HA).is_waiting() && !entry(&t, HA).is_bound());
    inject(&mut t, Some(HA), ba_bytes(HA, 0, seq, 100));
    assert!(entry(&t, HA).is_bound());
}

// RFC 6275 §11.7.3, §9.5.1: status 135 carries the last sequence number
// the peer accepted, whatever the BU's: the node takes it up and sends a
// BU numbered after it at once. Nothing outstanding, a 135 is ignored.
// REQ MIP-BASE
#[test]
fn status_135_takes_up_the_peers_sequence_number_and_sends_again() {
    for (i, peer) in [HA, CN].into_iter().enumerate() {
        let mut t = unanswered(303 + i as u64);
        let sent = inject(&mut t, Some(peer), ba_bytes(peer, 135, 1000, 0));
        let lifetime = if peer == HA { 150 } else { 105 };
        assert_eq!(bus_to(&sent, peer), vec![(1001, lifetime)], "{peer}");
        assert_eq!(entry(&t, peer).seq, 1001);
        assert!(entry(&t, peer).is_waiting());
        inject(&mut t, Some(peer), ba_bytes(peer, 0, 1001, lifetime));
        assert!(entry(&t, peer).is_bound());
        let sent = inject(&mut t, Some(peer), ba_bytes(peer, 135, 2000, 0));
        assert!(bus_to(&sent, peer).is_empty());
        assert_eq!(entry(&t, peer).seq, 1001);
        assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), 1);
    }
}

// RFC 6275 §11.7.3: a refusal (status 128 or more, here 129 prohibited,
// 130 no resources, 131 not a home agent, 132 not the home subnet, 133
// not our home agent, 134 DAD failed, 139 registration type change) binds
// nothing and stops the retransmissions; the node does not try again on
// its own (TAHI MN ReceivingBA129-139), and traffic to the correspondent
// stays in the tunnel.
// REQ MIP-BASE
#[test]
fn a_refusal_binds_nothing_and_stops_the_retransmissions() {
    let cases = [129, 130, 131, 132, 133, 134, 139]
        .map(|s| (HA, s))
        .into_iter()
        .chain([129, 130, 131, 139].map(|s| (CN, s)));
    for (i, (peer, status)) in cases.enumerate() {
        let mut t = unanswered(310 + i as u64);
        let seq = entry(&t, peer).seq;
        let from = frames(&t);
        inject(&mut t, Some(peer), ba_bytes(peer, status, seq, 0));
        let e = entry(&t, peer);
        assert!(!e.is_waiting() && !e.is_bound(), "{peer} {status}");
        assert!(!route_optimised(&mut t));
        t.sim.run_for(Duration::from_secs(100));
        assert_eq!(bus_to(&sent(&t, from), peer), vec![], "{peer} {status}");
    }
}

// RFC 6275 §11.7.3: a lifetime granted shorter than the one asked for
// shortens the entry: the node refreshes at 90 % of what was granted
// (40 s of the 600 s asked for: 36 s on), not of what it asked for.
// REQ MIP-BASE
#[test]
fn a_shorter_granted_lifetime_brings_the_refresh_forward() {
    let mut t = unanswered(320);
    let seq = entry(&t, HA).seq;
    // The BA arrives after the access link's 200 µs.
    let acked = t.sim.now() + Duration::from_micros(200);
    inject(&mut t, Some(HA), ba_bytes(HA, 0, seq, 10));
    assert!(entry(&t, HA).is_bound());
    let from = frames(&t);
    t.sim.run_until(acked + Duration::from_millis(36_500));
    let refresh: Vec<Instant> = sent(&t, from)
        .iter()
        .filter(|s| s.dst == HA && s.mh.is_some())
        .map(|s| s.at)
        .collect();
    assert_eq!(refresh, vec![acked + Duration::from_secs(36)]);
    assert_eq!(bus_to(&sent(&t, from), HA), vec![(seq + 1, 150)]);
}

// RFC 6275 §11.1, §11.7.3: an entry's binding ends with the lifetime
// granted, counted from the BU: refreshed in vain (the correspondent is
// gone), the node stops route optimising when the correspondent no longer
// holds the binding, and sends through the home agent.
// REQ MIP-BASE
#[test]
fn a_binding_whose_lifetime_ran_out_is_no_longer_used() {
    let mut t = unanswered(321);
    let seq = entry(&t, CN).seq;
    let bu_sent = sent(&t, 0)
        .iter()
        .find(|s| s.dst == CN && s.mh.is_some())
        .unwrap()
        .at;
    // 2 units: 8 s from the BU.
    inject(&mut t, Some(CN), ba_bytes(CN, 0, seq, 2));
    assert!(route_optimised(&mut t));
    let end = bu_sent + Duration::from_secs(8);
    t.sim.run_until(bu_sent + Duration::from_micros(7_999_999));
    assert!(entry(&t, CN).is_waiting(), "the refresh at 7.2 s is out");
    assert!(route_optimised(&mut t));
    t.sim.run_until(end);
    assert!(!entry(&t, CN).is_bound());
    assert!(!route_optimised(&mut t));
}

/// A HoT (`home`) or CoT as the correspondent sends it.
fn test_reply(home: bool, cookie: u64, index: u16, token: u64) -> MhMessage {
    if home {
        MhMessage::HomeTest {
            nonce_index: index,
            cookie,
            token,
        }
    } else {
        MhMessage::CareOfTest {
            nonce_index: index,
            cookie,
            token,
        }
    }
}

/// A HoT to the home address in the tunnel from `outer`.
fn tunnelled_hot(outer: Ipv6Addr, message: MhMessage) -> Vec<u8> {
    let inner = PacketRepr::ipv6(CN, HOA, vec![], mh(message, vec![]));
    PacketRepr::ipv6(outer, COA_A, vec![], UpperRepr::Tunnel(Box::new(inner))).to_bytes(&cp())
}

const HOME_TOKEN: u64 = 0x1111_2222_3333_4444;
const CARE_OF_TOKEN: u64 = 0x5555_6666_7777_8888;

/// Answers the node's tests as the correspondent would, with nonce
/// indices 3 and 4; returns what it sent on and Kbm.
fn answer_tests(t: &mut Topology, home: u64, care_of: u64) -> (Vec<Sent>, [u8; 20]) {
    let mut sent = inject(
        t,
        None,
        tunnelled_hot(HA, test_reply(true, home, 3, HOME_TOKEN)),
    );
    let cot = to_coa(
        CN,
        None,
        mh(test_reply(false, care_of, 4, CARE_OF_TOKEN), vec![]),
    );
    sent.extend(inject(t, None, cot.to_bytes(&cp())));
    (sent, rr::binding_key(HOME_TOKEN, Some(CARE_OF_TOKEN)))
}

/// `m` with a Binding Authorization Data option that Kbm verifies (RFC
/// 6275 §6.2.7): over the care-of address, the correspondent and the
/// message with a zero checksum.
fn authorised(mut m: MhRepr, kbm: &[u8; 20]) -> MhRepr {
    m.options.push(MhOption::BindingAuthData([0; 12]));
    let zero = PseudoHeader::V6 {
        src: Ipv6Addr::UNSPECIFIED,
        dst: Ipv6Addr::UNSPECIFIED,
    };
    let mut bytes = vec![];
    m.emit_vec(&mut bytes, &zero, &cp());
    bytes[4..6].fill(0);
    let auth = rr::authenticator(kbm, COA_A, CN, &bytes[..bytes.len() - 12]);
    m.options.pop();
    m.options.push(MhOption::BindingAuthData(auth));
    m
}

// RFC 6275 §11.6.2 (§5.2.5): a HoT counts only if it answers the cookie
// of our HoTI, to the home address through the tunnel from the home
// agent; a CoT only if it answers our CoTI's cookie, directly to the
// current care-of address (**fixed**: one to the link-local address was
// taken); both only from a correspondent we test. Anything else
// is silently ignored (the second answer to one test:
// scenarios::a_second_care_of_test_is_counted_and_keeps_the_token). With
// both tokens the BU goes, with their nonce indices.
// REQ MIP-BASE
#[test]
fn home_and_care_of_tests_count_only_for_our_cookies_on_their_paths() {
    let (mut t, home, care_of) = testing(330);
    let from = frames(&t);
    let before = mn_drops(&t, NodeDrop::Unsolicited);
    let cot = |src, cookie| to_coa(src, None, mh(test_reply(false, cookie, 4, 9), vec![]));
    let mut link_local = cot(CN, care_of);
    if let common::wire::IpRepr::V6 { header, .. } = &mut link_local.ip {
        header.dst = t
            .sim
            .engine(t.mn)
            .unwrap()
            .interface(MN_ACCESS_A_IFACE)
            .unwrap()
            .link_local();
    }
    let wrong = [
        // Another cookie.
        tunnelled_hot(HA, test_reply(true, home ^ 1, 3, 9)),
        // Not through the tunnel.
        to_coa(CN, Some(HOA), mh(test_reply(true, home, 3, 9), vec![])).to_bytes(&cp()),
        // A CoT through the tunnel.
        tunnelled_hot(HA, test_reply(false, care_of, 4, 9)),
        // From a node we test nothing with.
        cot(STRANGER, care_of).to_bytes(&cp()),
        cot(CN, care_of ^ 1).to_bytes(&cp()),
        // To another address of ours.
        link_local.to_bytes(&cp()),
    ];
    for w in wrong {
        inject(&mut t, None, w);
    }
    assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), before + 6);
    // A tunnel from anywhere but the home agent.
    inject(
        &mut t,
        None,
        tunnelled_hot(STRANGER, test_reply(true, home, 3, 9)),
    );
    assert_eq!(mn_drops(&t, NodeDrop::TunnelSourceMismatch), 1);
    assert_eq!(bus_to(&sent(&t, from), CN), vec![]);
    let taken = |t: &Topology| t.sim.engine(t.mn).unwrap().stats().rr_tokens_taken;
    assert_eq!(taken(&t), 0);
    // Each answer taken is counted, the first before the BU can go (found
    // by `engine_mn`: a HoT taken left no trace).
    inject(
        &mut t,
        None,
        tunnelled_hot(HA, test_reply(true, home, 3, HOME_TOKEN)),
    );
    assert_eq!(taken(&t), 1);
    assert_eq!(bus_to(&sent(&t, from), CN), vec![]);
    let (sent, _) = answer_tests(&mut t, home, care_of);
    assert_eq!(taken(&t), 2, "the second HoT is not taken, the CoT is");
    let bu: Vec<_> = sent
        .iter()
        .filter_map(|s| match s.mh.as_ref()?.message {
            MhMessage::BindingUpdate { .. } => Some(s.mh.clone()?.options),
            _ => None,
        })
        .collect();
    assert_eq!(bu.len(), 1);
    assert!(bu[0].contains(&MhOption::NonceIndices {
        home: 3,
        care_of: 4
    }));
    // The test is answered: a second HoT for it is no answer either.
    let before = mn_drops(&t, NodeDrop::Unsolicited);
    let sent = inject(
        &mut t,
        None,
        tunnelled_hot(HA, test_reply(true, home, 5, 9)),
    );
    assert_eq!(bus_to(&sent, CN), vec![]);
    assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), before + 1);
}

// RFC 6275 §11.7.3: a BA to a return-routability BU must carry a Binding
// Authorization Data option that Kbm verifies, last; without one, with a
// wrong one or with an option after it, it is silently ignored. A valid
// one binds.
// REQ MIP-BASE
#[test]
fn a_return_routability_ba_needs_an_authenticator_that_kbm_verifies() {
    let (mut t, home, care_of) = testing(331);
    let (_, kbm) = answer_tests(&mut t, home, care_of);
    let seq = entry(&t, CN).seq;
    let plain = ba(0, seq, 105, vec![]);
    let forged = ba(0, seq, 105, vec![MhOption::BindingAuthData([0xab; 12])]);
    let other_key = authorised(plain.clone(), &rr::binding_key(HOME_TOKEN, None));
    let mut not_last = authorised(plain.clone(), &kbm);
    not_last.options.push(MhOption::NonceIndices {
        home: 3,
        care_of: 4,
    });
    for m in [plain.clone(), forged, other_key, not_last] {
        inject(
            &mut t,
            None,
            to_coa(CN, Some(HOA), UpperRepr::Mobility(m)).to_bytes(&cp()),
        );
    }
    assert_eq!(mn_drops(&t, NodeDrop::Unprotected), 4);
    assert!(entry(&t, CN).is_waiting() && !entry(&t, CN).is_bound());
    let good = authorised(plain, &kbm);
    inject(
        &mut t,
        None,
        to_coa(CN, Some(HOA), UpperRepr::Mobility(good)).to_bytes(&cp()),
    );
    assert!(entry(&t, CN).is_bound() && !entry(&t, CN).is_waiting());
    assert!(route_optimised(&mut t));
}

// RFC 6275 §11.7.3, §9.5.4: statuses 136, 137 and 138 (nonce indices no
// longer valid) come without authorisation, as the correspondent lost the
// nonces Kbm needs: they are taken, and the node tests again, home and
// care-of, with new cookies.
// REQ MIP-BASE
#[test]
fn expired_nonces_136_to_138_start_return_routability_again() {
    for (i, status) in [136, 137, 138].into_iter().enumerate() {
        let (mut t, home, care_of) = testing(332 + i as u64);
        answer_tests(&mut t, home, care_of);
        let seq = entry(&t, CN).seq;
        let sent = inject(&mut t, None, ba_bytes(CN, status, seq, 0));
        let (h, c) = cookies(&sent);
        assert!(h.is_some_and(|h| h != home), "{status}: a new HoTI");
        assert!(c.is_some_and(|c| c != care_of), "{status}: a new CoTI");
        assert!(!entry(&t, CN).is_bound());
    }
}

fn echo_request() -> UpperRepr {
    UpperRepr::Icmpv6(Icmpv6Repr {
        msg_type: ECHO_REQUEST,
        code: 0,
        body: vec![0, 1, 0, 1],
    })
}

// RFC 6275 §11.3.3, §6.4: a route-optimised packet comes to the care-of
// address with a type 2 routing header whose one segment left is our home
// address; one for another home address, or whose segment was already
// visited (Segments Left 0), is silently discarded, whatever it carries:
// data, an echo request (no reply from the care-of address) or a
// Mobility Header (a BRR brings no BU).
// REQ MIP-BASE
#[test]
fn a_type_2_routing_header_must_hold_our_home_address_with_one_segment_left() {
    let mut t = away(340, RouteOptimisation::Ipsec);
    let before = stats(&t);
    let data = || {
        UpperRepr::Udp(
            common::wire::UdpRepr {
                src_port: 7,
                dst_port: 7,
            },
            common::wire::packet::UdpPayload::Raw(b"hi".to_vec()),
        )
    };
    inject(&mut t, None, to_coa(CN, Some(HOA), data()).to_bytes(&cp()));
    assert_eq!(
        stats(&t).delivered_route_optimised,
        before.delivered_route_optimised + 1
    );
    let visited = ExtHeaderRepr::Routing(RoutingRepr::Type2 {
        segments_left: 0,
        home_address: HOA,
    });
    let brr = mh(MhMessage::BindingRefreshRequest, vec![]);
    let bad = [
        to_coa(CN, Some(OTHER_HOA), data()),
        to_coa(CN, Some(OTHER_HOA), echo_request()),
        to_coa(CN, Some(OTHER_HOA), brr),
        PacketRepr::ipv6(CN, COA_A, vec![visited], data()),
    ];
    let mut sent = vec![];
    for b in bad {
        sent.extend(inject(&mut t, None, b.to_bytes(&cp())));
    }
    assert!(sent.iter().all(|s| s.mh.is_none()), "no BU");
    assert!(
        !sent.iter().any(|s| matches!(&s.packet.upper,
            UpperRepr::Icmpv6(i) if i.msg_type == ECHO_REPLY)),
        "no echo reply"
    );
    let after = stats(&t);
    assert_eq!(
        after.delivered_route_optimised,
        before.delivered_route_optimised + 1
    );
    assert_eq!(
        after.dropped(NodeDrop::NotForUs),
        before.dropped(NodeDrop::NotForUs) + 4
    );
}

// RFC 6275 §11.3.3: a tunnelled packet is taken only from the home agent
// (outer source) and only for the home address (inner destination).
// REQ MIP-BASE
#[test]
fn tunnelled_packets_count_only_from_the_home_agent_for_the_home_address() {
    let mut t = away(341, RouteOptimisation::None);
    let before = stats(&t);
    let tunnel = |outer: Ipv6Addr, inner_dst: Ipv6Addr| {
        let inner = PacketRepr::parse(&udp(CN, inner_dst, vec![]), &cp()).unwrap();
        PacketRepr::ipv6(outer, COA_A, vec![], UpperRepr::Tunnel(Box::new(inner))).to_bytes(&cp())
    };
    inject(&mut t, None, tunnel(HA, HOA));
    inject(&mut t, None, tunnel(STRANGER, HOA));
    inject(&mut t, None, tunnel(HA, OTHER_HOA));
    let after = stats(&t);
    assert_eq!(after.delivered_tunnelled, before.delivered_tunnelled + 1);
    assert_eq!(after.dropped(NodeDrop::TunnelSourceMismatch), 1);
    assert_eq!(
        after.dropped(NodeDrop::NotForUs),
        before.dropped(NodeDrop::NotForUs) + 1
    );
}

/// How many lines of the mobile node's trace say `what`.
fn traced(t: &Topology, what: &str) -> usize {
    t.sim
        .trace()
        .into_iter()
        .filter(|l| l.node == "mn" && l.what.contains(what))
        .count()
}

fn binding_error(src: Ipv6Addr, status: u8, home_address: Ipv6Addr) -> Vec<u8> {
    let m = MhMessage::BindingError {
        status,
        home_address,
    };
    to_coa(src, None, mh(m, vec![])).to_bytes(&cp())
}

// RFC 6275 §11.3.6: a Binding Error from a node without a binding update
// list entry, or about another home address, is ignored; status 1 from a
// correspondent we are bound with means it has no binding: the node sends
// through the home agent and registers again — one BU, however many
// errors come while it is out (§11.8: a forged burst costs no burst).
// REQ MIP-BASE
#[test]
fn binding_error_1_sends_through_the_home_agent_and_registers_once_again() {
    let mut t = away(350, RouteOptimisation::Ipsec);
    let seq = entry(&t, CN).seq;
    let mut sent = inject(&mut t, None, binding_error(STRANGER, 1, HOA));
    sent.extend(inject(&mut t, None, binding_error(CN, 1, OTHER_HOA)));
    assert!(sent.iter().all(|s| s.mh.is_none()));
    assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), 2);
    assert!(entry(&t, CN).is_bound());
    let from = frames(&t);
    for _ in 0..6 {
        t.sim.inject(t.access_a, binding_error(CN, 1, HOA));
    }
    t.sim.run_for(Duration::from_millis(10));
    assert!(!entry(&t, CN).is_bound());
    assert_eq!(traced(&t, "binding with 2001:db8:3::1 lost"), 6);
    assert!(!route_optimised(&mut t));
    assert_eq!(
        bus_to(&sent_since(&t, t.access_a, from, COA_A), CN),
        vec![(seq + 1, 105)]
    );
    // The correspondent's BA binds again.
    t.sim.run_for(Duration::from_millis(100));
    assert!(entry(&t, CN).is_bound());
    assert!(route_optimised(&mut t));
}

// RFC 6275 §11.3.6: status 2 says the correspondent does not know a
// Mobility Header type we sent: the node stops the signalling with it —
// no BU now, none at the next move — and sends through the home agent,
// for RETRY_REFUSED (10 minutes), then tries again (§11.3.5's SHOULD).
// REQ MIP-BASE
#[test]
fn binding_error_2_ends_route_optimisation_with_that_correspondent_for_a_while() {
    let mut t = away(351, RouteOptimisation::Ipsec);
    let from = frames(&t);
    let refused = t.sim.now() + Duration::from_micros(200);
    inject(&mut t, None, binding_error(CN, 2, HOA));
    assert_eq!(traced(&t, "2001:db8:3::1 refuses mobility signalling"), 1);
    t.sim.run_for(Duration::from_secs(2));
    assert!(!entry(&t, CN).is_bound() && !entry(&t, CN).is_waiting());
    assert!(!route_optimised(&mut t));
    assert_eq!(bus_to(&sent(&t, from), CN), vec![]);
    let b = t.sim.captured(t.access_b).len();
    t.move_mn(t.sim.now(), Some(t.access_b));
    t.sim.run_for(Duration::from_secs(3));
    let sent = sent_since(&t, t.access_b, b, COA_B);
    assert_eq!(
        bus_to(&sent, HA).len(),
        1,
        "the home agent hears of the move"
    );
    assert_eq!(bus_to(&sent, CN), vec![]);
    assert!(!route_optimised(&mut t));
    let retry = refused + RETRY_REFUSED;
    t.sim
        .run_until(refused + (RETRY_REFUSED - Duration::from_micros(1)));
    assert_eq!(bus_to(&sent_since(&t, t.access_b, b, COA_B), CN), vec![]);
    t.sim.run_until(retry + Duration::from_millis(100));
    let sent = sent_since(&t, t.access_b, b, COA_B);
    let again: Vec<Instant> = sent
        .iter()
        .filter(|s| s.dst == CN && s.mh.is_some())
        .map(|s| s.at)
        .collect();
    assert_eq!(again, vec![retry]);
    assert!(entry(&t, CN).is_bound());
    assert!(route_optimised(&mut t));
}

// RFC 6275 §11.7.4: a Binding Refresh Request from a correspondent we
// are bound with gets a BU (under IPsec) or a new return routability run
// (HoTI and CoTI); one from a node without an entry is ignored, and so
// is one while the refresh is out (**fixed**, §11.8: each brought a BU, a
// burst of them a burst of BUs).
// REQ MIP-BASE
#[test]
fn a_binding_refresh_request_is_answered_only_for_a_binding_we_hold() {
    let brr = |src| to_coa(src, Some(HOA), mh(MhMessage::BindingRefreshRequest, vec![]));
    let mut t = away(360, RouteOptimisation::Ipsec);
    let seq = entry(&t, CN).seq;
    let ignored = inject(&mut t, None, brr(STRANGER).to_bytes(&cp()));
    assert!(ignored.iter().all(|s| s.mh.is_none()));
    assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), 1);
    let from = frames(&t);
    for _ in 0..5 {
        t.sim.inject(t.access_a, brr(CN).to_bytes(&cp()));
    }
    t.sim.run_for(Duration::from_millis(10));
    let burst = sent(&t, from);
    assert_eq!(bus_to(&burst, CN), vec![(seq + 1, 105)]);
    assert_eq!(mn_drops(&t, NodeDrop::Unsolicited), 5);
    t.sim.run_for(Duration::from_millis(100));
    assert!(entry(&t, CN).is_bound() && entry(&t, CN).seq == seq + 1);

    let mut t = away(361, RouteOptimisation::ReturnRoutability);
    let sent = inject(&mut t, None, brr(CN).to_bytes(&cp()));
    let (h, c) = cookies(&sent);
    assert!(h.is_some() && c.is_some(), "HoTI and CoTI");
}

/// The gaps between the instants of `sent` matching `pick`, in ms.
fn gaps(sent: &[Sent], pick: impl Fn(&Sent) -> bool) -> Vec<u64> {
    let at: Vec<Instant> = sent.iter().filter(|s| pick(s)).map(|s| s.at).collect();
    at.windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]).as_millis() as u64)
        .collect()
}

// RFC 6275 §11.8: an unanswered BU to a correspondent, and an unanswered
// return routability test, go again after INITIAL_BINDACK_TIMEOUT (1 s),
// the wait doubling each time up to MAX_BINDACK_TIMEOUT (32 s), then on
// at that rate (the home registration's 1.5 s first wait:
// scenarios::binding_update_back_off_doubles_to_32_seconds).
// REQ MIP-BASE
#[test]
fn bus_and_tests_back_off_from_1_to_32_seconds() {
    let want = [1000, 2000, 4000, 8000, 16000, 32000, 32000];
    let mut t = unanswered(370);
    t.sim.run_until(secs(150.0));
    let bu_to_cn = |s: &Sent| {
        s.dst == CN
            && matches!(
                s.mh.as_ref().map(|m| &m.message),
                Some(MhMessage::BindingUpdate { .. })
            )
    };
    assert_eq!(gaps(&sent(&t, 0), bu_to_cn)[..7], want);
    let (mut t, _, _) = testing(371);
    t.sim.run_until(secs(150.0));
    let coti = |s: &Sent| {
        matches!(
            s.mh.as_ref().map(|m| &m.message),
            Some(MhMessage::CareOfTestInit { .. })
        )
    };
    assert_eq!(gaps(&sent(&t, 0), coti)[..7], want);
    let hoti = |s: &Sent| {
        matches!(
            s.mh.as_ref().map(|m| &m.message),
            Some(MhMessage::HomeTestInit { .. })
        )
    };
    assert_eq!(gaps(&sent(&t, 0), hoti)[..7], want);
}

/// An ICMPv6 Parameter Problem, code 1, from the correspondent to the
/// care-of address about `invoking`, pointing at byte `pointer`.
fn unknown_next_header(invoking: &[u8], pointer: u32) -> Vec<u8> {
    let mut body = pointer.to_be_bytes().to_vec();
    body.extend_from_slice(invoking);
    let icmp = Icmpv6Repr {
        msg_type: common::wire::icmpv6::PARAMETER_PROBLEM,
        code: 1,
        body,
    };
    to_coa(CN, None, UpperRepr::Icmpv6(icmp)).to_bytes(&cp())
}

// RFC 6275 §11.3.5: an ICMPv6 Parameter Problem, code 1, pointing at the
// Next Header that named the Mobility Header of our BU says the
// correspondent does not do Mobile IPv6: the node sends it no more BUs,
// not even at the next move, and tunnels (**fixed**: it was dropped as
// not for us). One about anything else changes nothing.
// REQ MIP-BASE
#[test]
fn a_parameter_problem_about_our_mobility_header_ends_the_signalling_with_that_node() {
    let mut t = away(380, RouteOptimisation::Ipsec);
    let bu = MhMessage::BindingUpdate {
        seq: 1,
        flags: common::wire::mh::BuFlags(common::wire::mh::BuFlags::A),
        lifetime: 105,
    };
    let hao = vec![ExtHeaderRepr::home_address(HOA)];
    let invoking = PacketRepr::ipv6(COA_A, CN, hao, mh(bu, vec![])).to_bytes(&cp());
    // The Destination Options header's Next Header, after the IPv6 header.
    assert_eq!(invoking[40], 135);
    let data = udp(COA_A, CN, vec![]);
    inject(&mut t, None, unknown_next_header(&data, 6));
    assert!(entry(&t, CN).is_bound());
    assert!(route_optimised(&mut t));
    let from = frames(&t);
    inject(&mut t, None, unknown_next_header(&invoking, 40));
    assert_eq!(traced(&t, "2001:db8:3::1 refuses mobility signalling"), 1);
    assert!(!entry(&t, CN).is_bound() && !entry(&t, CN).is_waiting());
    assert!(!route_optimised(&mut t));
    t.sim.run_for(Duration::from_secs(2));
    assert_eq!(bus_to(&sent(&t, from), CN), vec![]);
    let b = t.sim.captured(t.access_b).len();
    t.move_mn(t.sim.now(), Some(t.access_b));
    t.sim.run_for(Duration::from_secs(3));
    let sent = sent_since(&t, t.access_b, b, COA_B);
    assert_eq!(bus_to(&sent, HA).len(), 1);
    assert_eq!(bus_to(&sent, CN), vec![]);
}

// RFC 6275 §11.7.3: a status below 128 is an acceptance (1: accepted,
// prefix discovery necessary, whose Mobile Prefix Solicitation we do not
// send): it binds like 0.
// REQ MIP-BASE
#[test]
fn any_status_below_128_is_an_acceptance() {
    for (i, status) in [1, 127].into_iter().enumerate() {
        let mut t = unanswered(390 + i as u64);
        let seq = entry(&t, HA).seq;
        inject(&mut t, Some(HA), ba_bytes(HA, status, seq, 100));
        let e = entry(&t, HA);
        assert!(e.is_bound() && !e.is_waiting(), "{status}");
    }
}
