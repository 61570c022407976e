//! RFC 6275 §9 (Correspondent Node Operation), rule by rule, in the
//! simulator: crafted packets go to the correspondent and what it puts on
//! the wire, counts and caches is asserted. Cases after the TAHI / IPv6
//! Ready Mobile IPv6 correspondent tests: "TAHI CN n" is the number in
//! the TAHI CN conformance list (KAME, 2003), "CN-x-y-z" an IPv6 Ready
//! Phase-2 CN self-test. The checklist in README.md maps each rule to
//! its test here or elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod tools;

use tools::crafted::{
    bad_mobility_headers, bas, bes, cn_drops, cp, parameter_problems, seal_as_mn, udp,
};

use std::net::Ipv6Addr;

use common::node::{NodeDrop, RouteOptimisation};
use common::time::Duration;
use common::wire::checksum::PseudoHeader;
use common::wire::mh::{BuFlags, MhMessage, MhOption, MhPacket, MhRepr};
use common::wire::{ExtHeaderRepr, UpperRepr};
use testbed::topology::{CnSa, Topology, CN, HOA};

use helpers::*;

/// The correspondent's side of the shared helpers (`tools::crafted`).
mod helpers {
    use crate::tools::crafted::{self, bu_message, seal_as_mn};
    use std::net::Ipv6Addr;

    use common::node::RouteOptimisation;
    use common::time::{Duration, Instant};
    use common::wire::mh::{MhOption, MhRepr};
    use testbed::sim::LinkId;
    use testbed::topology::{build, CnSa, Setup, Topology, CN, HOA};

    pub use crate::tools::crafted::Sent;

    pub const COA_A: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x100);

    /// The mobile node registered at access A (2.2 s) in `mode`, sharing
    /// the `sa` pair with the correspondent.
    pub fn away(seed: u64, mode: RouteOptimisation, sa: CnSa) -> Topology {
        let mut setup = Setup::new(seed, mode);
        setup.cn_sa = sa;
        let mut t = build(&setup);
        t.move_mn(Instant::from_secs(1), Some(t.access_a));
        t.sim.run_until(Instant::from_micros(2_200_000));
        t
    }

    /// The BU-and-BA pair with the correspondent, but a mobile node that
    /// sends it no BU: the test's BUs are the only ones.
    pub fn signalling_only(seed: u64) -> Topology {
        away(seed, RouteOptimisation::None, CnSa::Signalling)
    }

    pub fn mh_packet(src: Ipv6Addr, hao: Option<Ipv6Addr>, mh: MhRepr) -> Vec<u8> {
        crafted::mh_packet(src, CN, hao, mh)
    }

    /// A BU from access A with `HOA` in a Home Address option.
    pub fn bu(seq: u16, flags: u16, lifetime: u16, options: Vec<MhOption>) -> Vec<u8> {
        mh_packet(COA_A, Some(HOA), bu_message(seq, flags, lifetime, options))
    }

    /// [`bu`] as the mobile node sends it under IPsec: the Alternate CoA
    /// is its source, sealed with the node's SA.
    pub fn sealed_bu(t: &mut Topology, seq: u16, flags: u16, lifetime: u16) -> Vec<u8> {
        let b = bu(
            seq,
            flags,
            lifetime,
            vec![MhOption::AlternateCareOfAddress(COA_A)],
        );
        seal_as_mn(t, &b)
    }

    /// Injects each of `packets` on `link` 100 ms apart (each answered
    /// before the next), and returns what the correspondent sent meanwhile.
    fn exchange(t: &mut Topology, link: LinkId, packets: Vec<Vec<u8>>) -> Vec<Sent> {
        let ends = (link, t.cn_link, CN);
        crafted::exchange(t, ends, packets, Duration::from_millis(100))
    }

    /// [`exchange`] from access A, where the care-of address is.
    pub fn from_a(t: &mut Topology, packets: Vec<Vec<u8>>) -> Vec<Sent> {
        let link = t.access_a;
        exchange(t, link, packets)
    }

    /// [`exchange`] on the correspondent's own link: packets from the
    /// home address, as if they came out of the home agent's tunnel.
    pub fn on_cn_link(t: &mut Topology, packets: Vec<Vec<u8>>) -> Vec<Sent> {
        let link = t.cn_link;
        exchange(t, link, packets)
    }

    /// What the correspondent sent on its link from frame `from` on.
    pub fn sent_since(t: &Topology, from: usize) -> Vec<Sent> {
        crafted::sent_since(t, t.cn_link, from, CN)
    }

    pub fn binding(t: &Topology) -> Option<(Option<Ipv6Addr>, Option<u16>)> {
        let b = t.sim.cn(t.cn).unwrap().binding(HOA)?;
        Some((b.care_of, b.seq))
    }
}

const A: u16 = BuFlags::A;

/// The Mobility Header of a packet from [`mh_packet`] with a HAO starts
/// after the IPv6 header (40) and the Destination Options header (24).
const MH_AFTER_HAO: usize = 64;

// RFC 6275 §9.5.1, §9.5.4: a valid BU with A clear binds and gets no BA;
// with A set the BA goes to the care-of address with a type 2 routing
// header holding the home address, echoing the sequence number; §9.3.1:
// a BU with a HAO and no binding earns no Binding Error (TAHI CN 11, 12).
// REQ MIP-BASE
#[test]
fn a_valid_bu_binds_and_is_acknowledged_only_when_asked() {
    let mut t = signalling_only(101);
    let b = sealed_bu(&mut t, 7, 0, 100);
    let sent = from_a(&mut t, vec![b]);
    assert!(sent.iter().all(|s| s.mh.is_none()), "no BA, no BE");
    assert_eq!(binding(&t), Some((Some(COA_A), Some(7))));
    let b = sealed_bu(&mut t, 8, A, 100);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 8, 100)]);
    assert!(bes(&sent).is_empty());
}

// RFC 6275 §9.5.1: sequence numbers compare modulo 2^16; a number within
// the last accepted one and the 32768 before it is "less than or equal":
// refused with 135 and the last accepted number in the BA, A bit or not
// (§9.5.4 SHOULD). With no entry any number is taken (TAHI CN 23-30,
// CN-5-1-1).
// REQ MIP-BASE
#[test]
fn sequence_numbers_compare_modulo_2_16() {
    let mut t = signalling_only(102);
    let run = |t: &mut Topology, seq: u16, flags: u16| {
        let b = sealed_bu(t, seq, flags, 100);
        let sent = from_a(t, vec![b]);
        (bas(&sent), binding(t).and_then(|b| b.1))
    };
    let ok = |seq| vec![(COA_A, Some(HOA), 0, seq, 100)];
    let stale = |last| vec![(COA_A, Some(HOA), 135, last, 0)];
    // No entry: the highest number is as good as any.
    assert_eq!(run(&mut t, 65535, A), (ok(65535), Some(65535)));
    // 65535 -> 0 wraps forward.
    assert_eq!(run(&mut t, 0, A), (ok(0), Some(0)));
    // Equal, then exactly 2^15 ahead: both "less than or equal"; A clear
    // still gets the 135.
    assert_eq!(run(&mut t, 0, A), (stale(0), Some(0)));
    assert_eq!(run(&mut t, 0x8000, 0), (stale(0), Some(0)));
    // 2^15 - 1 ahead is newer.
    assert_eq!(run(&mut t, 0x7fff, A), (ok(0x7fff), Some(0x7fff)));
    // Behind by one, across the wrap from the other side.
    assert_eq!(run(&mut t, 0x7ffe, A), (stale(0x7fff), Some(0x7fff)));
    assert_eq!(cn_drops(&t, NodeDrop::SequenceOutOfWindow), 3);
}

// RFC 6275 §9.5.1, §9.5.3: lifetime 0, or a care-of address equal to the
// home address, deletes the binding; a deletion for a home address with
// no entry is acknowledged and caches nothing; after a deletion there is
// no entry, so any sequence number is accepted again (TAHI CN 31-33).
// REQ MIP-BASE
#[test]
fn lifetime_zero_or_care_of_home_address_deletes_the_binding() {
    let mut t = signalling_only(103);
    // Nothing cached yet: status 0, lifetime 0, still nothing cached.
    let b = sealed_bu(&mut t, 10, A, 0);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 10, 0)]);
    assert!(bes(&sent).is_empty());
    assert_eq!(binding(&t), None);
    // Bound, then lifetime 0 with another care-of address.
    let bind = sealed_bu(&mut t, 11, A, 100);
    let delete = sealed_bu(&mut t, 12, A, 0);
    let sent = from_a(&mut t, vec![bind, delete]);
    assert_eq!(bas(&sent)[1], (COA_A, Some(HOA), 0, 12, 0));
    assert_eq!(binding(&t), None);
    // Bound again with a lower number (no entry, no window), then a
    // nonzero lifetime with the home address as care-of address.
    let bind = sealed_bu(&mut t, 3, A, 100);
    let mh = MhRepr {
        message: MhMessage::BindingUpdate {
            seq: 4,
            flags: BuFlags(A),
            lifetime: 100,
        },
        options: vec![MhOption::AlternateCareOfAddress(HOA)],
    };
    let home = seal_as_mn(&mut t, &mh_packet(COA_A, Some(HOA), mh));
    let first = from_a(&mut t, vec![bind]);
    assert_eq!(bas(&first), vec![(COA_A, Some(HOA), 0, 3, 100)]);
    let sent = from_a(&mut t, vec![home]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 4, 0)]);
    assert_eq!(binding(&t), None);
}

// RFC 6275 §9.5.2, §9.5.4, §9.6: the lifetime granted is at most the one
// asked for (here also capped by the SA's), the BA says what was granted,
// and the entry goes when it runs out: packets then go to the home
// address, no longer with a type 2 routing header (§9.3.2).
// REQ MIP-BASE
#[test]
fn granted_lifetime_is_at_most_the_requested_and_the_entry_expires() {
    let mut t = signalling_only(104);
    let b = sealed_bu(&mut t, 1, A, u16::MAX);
    let sent = from_a(&mut t, vec![b]);
    let granted = bas(&sent)[0].4;
    // The SA's hard lifetime is 3600 s from 0: 900 units at most.
    assert!(granted > 0 && granted < 900, "granted {granted}");
    // 10 units (40 s) asked: 10 granted.
    let b = sealed_bu(&mut t, 2, A, 10);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 2, 10)]);
    let data = |t: &mut Topology| {
        let from = t.sim.captured(t.cn_link).len();
        t.sim.send_from_stack(t.cn, &udp(CN, HOA, vec![]));
        t.sim.run_for(Duration::from_millis(10));
        let s = sent_since(t, from);
        assert_eq!(s.len(), 1);
        assert!(matches!(s[0].packet.upper, UpperRepr::Udp(..)));
        (s[0].dst, s[0].type2)
    };
    // §9.3.2: route optimised while bound.
    assert_eq!(data(&mut t), (COA_A, Some(HOA)));
    t.sim.run_for(Duration::from_secs(39));
    assert!(binding(&t).is_some());
    t.sim.run_for(Duration::from_secs(1));
    assert_eq!(binding(&t), None);
    assert_eq!(data(&mut t), (HOA, None));
}

// RFC 6275 §9.5.1: the care-of address to bind must be unicast routable;
// an Alternate CoA that is multicast, link-local, loopback or
// unspecified makes the BU silently discarded: no BA, no binding.
// REQ MIP-BASE
#[test]
fn a_care_of_address_that_is_not_unicast_routable_is_silently_discarded() {
    let mut t = signalling_only(105);
    let bad = [
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x100),
        Ipv6Addr::LOCALHOST,
        Ipv6Addr::UNSPECIFIED,
    ];
    let mut sent = vec![];
    for (i, coa) in bad.iter().enumerate() {
        let b = bu(
            20 + i as u16,
            A,
            100,
            vec![MhOption::AlternateCareOfAddress(*coa)],
        );
        let b = seal_as_mn(&mut t, &b);
        sent.extend(from_a(&mut t, vec![b]));
    }
    assert!(sent.iter().all(|s| s.mh.is_none()), "nothing answered");
    assert_eq!(cn_drops(&t, NodeDrop::AlternateCoaRefused), 4);
    assert_eq!(binding(&t), None);
}

// RFC 6275 §9.3.1, §9.5.1: a home address that is not unicast routable
// binds nothing: a BU for one is silently discarded, and data with a
// multicast one in its HAO gets no Binding Error (TAHI CN-6-3-2).
// REQ MIP-BASE
#[test]
fn a_home_address_that_is_not_unicast_routable_is_silently_discarded() {
    let mut t = away(106, RouteOptimisation::None, CnSa::None);
    let group = Ipv6Addr::new(0xff0e, 0, 0, 0, 0, 0, 0, 1);
    let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x100);
    let mh = |seq| MhRepr {
        message: MhMessage::BindingUpdate {
            seq,
            flags: BuFlags(A),
            lifetime: 100,
        },
        options: vec![],
    };
    let packets = vec![
        udp(COA_A, CN, vec![ExtHeaderRepr::home_address(group)]),
        mh_packet(COA_A, Some(group), mh(1)),
        mh_packet(COA_A, Some(link_local), mh(2)),
    ];
    let sent = from_a(&mut t, packets);
    assert!(sent.iter().all(|s| s.mh.is_none()), "no BA, no BE");
    assert_eq!(cn_drops(&t, NodeDrop::HaoUnverified), 3);
    let cn = t.sim.engine(t.cn).unwrap().stats();
    assert_eq!(cn.delivered_route_optimised, 0);
}

// RFC 6275 §9.2: a Mobility Header whose checksum fails is silently
// discarded and counted: a BU gets no BA, a HoTI no HoT (TAHI CN 9, 10,
// 17, 18).
// REQ MIP-BASE
#[test]
fn a_bad_mobility_header_checksum_is_dropped_silently() {
    let mut t = away(107, RouteOptimisation::None, CnSa::None);
    let mut bu = bu(1, A, 100, vec![]);
    bu[MH_AFTER_HAO + 4] ^= 0xff;
    let hoti = MhRepr {
        message: MhMessage::HomeTestInit { cookie: 0xc0c0 },
        options: vec![],
    };
    let mut hoti = mh_packet(HOA, None, hoti);
    hoti[40 + 4] ^= 0xff;
    let before = cn_drops(&t, NodeDrop::Malformed);
    let sent = on_cn_link(&mut t, vec![bu, hoti]);
    assert!(sent.is_empty());
    assert_eq!(cn_drops(&t, NodeDrop::Malformed), before + 2);
    assert_eq!(binding(&t), None);
}

// RFC 6275 §9.2: Payload Proto other than 59 (a piggybacked payload: our
// decoder carries none) or a Header Len too short for the type gets an
// ICMPv6 Parameter Problem, code 0, pointing at that field; the message
// is not processed (TAHI CN 7, 8, 15, 16).
// REQ MIP-BASE
#[test]
fn piggybacking_or_a_short_header_gets_a_parameter_problem() {
    let mut t = away(108, RouteOptimisation::None, CnSa::None);
    // A HoTI with Payload Proto 6, then a HoTI in 8 bytes (Header Len 0).
    let sent = on_cn_link(&mut t, bad_mobility_headers(HOA, CN));
    let problems = parameter_problems(&sent);
    assert_eq!(problems, vec![(HOA, 0, 40), (HOA, 0, 41)]);
    assert!(sent.iter().all(|s| s.mh.is_none()), "no HoT");
    assert_eq!(cn_drops(&t, NodeDrop::BadMobilityHeader), 2);
}

// RFC 6275 §9.2, §9.3.3: an unknown MH type gets a Binding Error with
// status 2, sent to the packet's source, its Home Address field the
// packet's HAO.
// REQ MIP-BASE
#[test]
fn an_unknown_mh_type_gets_binding_error_2() {
    let mut t = away(109, RouteOptimisation::None, CnSa::None);
    let mh = MhRepr {
        message: MhMessage::Unknown {
            mh_type: 99,
            data: vec![0; 10],
        },
        options: vec![],
    };
    let sent = from_a(&mut t, vec![mh_packet(COA_A, Some(HOA), mh)]);
    assert_eq!(bes(&sent), vec![(COA_A, 2, HOA)]);
    assert_eq!(sent[0].type2, None);
    assert_eq!(cn_drops(&t, NodeDrop::UnknownMhType), 1);
}

// RFC 6275 §9.3.3: Binding Errors are rate-limited (RFC 4443 §2.4(f)'s
// bucket of 10 here): a burst of packets with an unverified HAO gets 10,
// the rest are counted as suppressed (each packet as dropped).
// REQ MIP-BASE
#[test]
fn binding_errors_are_rate_limited() {
    let mut t = away(110, RouteOptimisation::None, CnSa::None);
    let from = t.sim.captured(t.cn_link).len();
    for _ in 0..30 {
        let p = udp(COA_A, CN, vec![ExtHeaderRepr::home_address(HOA)]);
        t.sim.inject(t.cn_link, p);
    }
    t.sim.run_for(Duration::from_millis(100));
    let sent = sent_since(&t, from);
    assert_eq!(bes(&sent), vec![(COA_A, 1, HOA); 10]);
    assert_eq!(cn_drops(&t, NodeDrop::HaoUnverified), 30);
    assert_eq!(t.sim.engine(t.cn).unwrap().stats().errors_suppressed, 20);
}

// RFC 6275 §9.4.1-§9.4.4: a HoTI is answered with a HoT to its source
// (the home address) and a CoTI with a CoT to its source, each echoing
// the cookie with the current nonce index, neither route optimised even
// while a binding exists; a HoTI or CoTI with a HAO is silently
// discarded (TAHI CN 4-6, 21, 22).
// REQ MIP-BASE
#[test]
fn hoti_and_coti_are_answered_to_their_source_and_never_route_optimised() {
    let mut t = away(111, RouteOptimisation::ReturnRoutability, CnSa::None);
    t.sim.run_for(Duration::from_millis(300));
    assert_eq!(binding(&t).unwrap().0, Some(COA_A), "bound by RR");
    let init = |home: bool, cookie| MhRepr {
        message: if home {
            MhMessage::HomeTestInit { cookie }
        } else {
            MhMessage::CareOfTestInit { cookie }
        },
        options: vec![],
    };
    let hoti = mh_packet(HOA, None, init(true, 0x1111));
    let coti = mh_packet(COA_A, None, init(false, 0x2222));
    let sent = [on_cn_link(&mut t, vec![hoti]), from_a(&mut t, vec![coti])];
    let answers: Vec<_> = sent
        .iter()
        .flatten()
        .filter_map(|s| match s.mh.as_ref()?.message {
            MhMessage::HomeTest {
                nonce_index,
                cookie,
                ..
            }
            | MhMessage::CareOfTest {
                nonce_index,
                cookie,
                ..
            } => Some((s.dst, s.type2, cookie, nonce_index)),
            _ => None,
        })
        .collect();
    // The first nonce (index 0) is handed out for its first 30 s.
    assert_eq!(
        answers,
        vec![(HOA, None, 0x1111, 0), (COA_A, None, 0x2222, 0)]
    );
    let with_hao = vec![
        mh_packet(COA_A, Some(HOA), init(true, 0x3333)),
        mh_packet(COA_A, Some(HOA), init(false, 0x4444)),
    ];
    let before = cn_drops(&t, NodeDrop::Unsolicited);
    let sent = from_a(&mut t, with_hao);
    assert!(sent.iter().all(|s| s.mh.is_none()), "no HoT, CoT or BE");
    assert_eq!(cn_drops(&t, NodeDrop::Unsolicited), before + 2);
}

/// A return-routability BU with these nonce indices and a made-up
/// authenticator.
fn rr_bu(seq: u16, flags: u16, indices: Option<(u16, u16)>, auth: bool) -> Vec<u8> {
    let mut options = vec![];
    if let Some((home, care_of)) = indices {
        options.push(MhOption::NonceIndices { home, care_of });
    }
    if auth {
        options.push(MhOption::BindingAuthData([0xab; 12]));
    }
    bu(seq, flags, 100, options)
}

// RFC 6275 §9.5.1: a nonce index the correspondent no longer (or never)
// had is refused with 136 (home), 137 (care-of) or 138 (both), A bit or
// not (§9.5.4 SHOULD), the BA to the source with a type 2 routing header.
// REQ MIP-BASE
#[test]
fn unknown_nonce_indices_get_136_137_138() {
    let mut t = away(112, RouteOptimisation::None, CnSa::None);
    // Index 0 is the current nonce; 500 was never made.
    let packets = vec![
        rr_bu(1, A, Some((500, 0)), true),
        rr_bu(2, A, Some((0, 500)), true),
        rr_bu(3, 0, Some((500, 500)), true),
    ];
    let sent = from_a(&mut t, packets);
    assert_eq!(
        bas(&sent),
        vec![
            (COA_A, Some(HOA), 136, 1, 0),
            (COA_A, Some(HOA), 137, 2, 0),
            (COA_A, Some(HOA), 138, 3, 0),
        ]
    );
    assert_eq!(cn_drops(&t, NodeDrop::ExpiredNonce), 3);
    assert_eq!(binding(&t), None);
}

// RFC 6275 §9.5.1: a BU not under IPsec needs a Nonce Indices option and
// a Binding Authorization Data option, last, whose authenticator Kbm
// verifies; failing that it is silently discarded, A bit or not.
// REQ MIP-BASE
#[test]
fn a_bu_without_valid_authorization_is_silently_discarded() {
    let mut t = away(113, RouteOptimisation::None, CnSa::None);
    let packets = vec![
        rr_bu(1, A, None, true),
        rr_bu(2, A, Some((0, 0)), false),
        rr_bu(3, A, Some((0, 0)), true),
    ];
    let sent = from_a(&mut t, packets);
    assert!(sent.iter().all(|s| s.mh.is_none()), "no BA");
    assert_eq!(cn_drops(&t, NodeDrop::BadAuthorization), 3);
    assert_eq!(binding(&t), None);
}

// RFC 6275 §9.5.1 (H set at a node that is no home agent): refused with
// 131 even with A clear (TAHI CN 14); A set is
// scenarios::bu_with_h_set_is_refused_with_131.
// REQ CN-4.1
// REQ MIP-BASE
#[test]
fn a_home_registration_with_a_clear_is_still_refused_with_131() {
    let mut t = signalling_only(114);
    let b = sealed_bu(&mut t, 5, BuFlags::H, 100);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 131, 5, 0)]);
    assert_eq!(binding(&t), None);
}

// RFC 6275 §9.5.3: once a binding made with return-routability nonces is
// deleted, those nonces must not serve again with the same addresses
// while they are valid: the registration BU replayed after the node went
// home is refused (135, the deletion's number) instead of binding again.
// REQ MIP-BASE
#[test]
fn a_return_routability_bu_replayed_after_the_deletion_is_refused() {
    let mut t = away(116, RouteOptimisation::ReturnRoutability, CnSa::None);
    t.sim.run_for(Duration::from_millis(300));
    let registration = t
        .sim
        .captured(t.access_a)
        .iter()
        .find(|(_, b)| {
            let p = common::wire::PacketRepr::parse(b, &cp()).unwrap();
            matches!(&p.upper, UpperRepr::Mobility(m)
                if matches!(m.message, MhMessage::BindingUpdate { .. }))
                && sent_to_cn(&p)
        })
        .map(|(_, b)| b.clone())
        .expect("the RR BU");
    let (_, seq) = binding(&t).unwrap();
    t.move_mn(t.sim.now(), Some(t.home));
    t.sim.run_for(Duration::from_secs(1));
    assert_eq!(binding(&t), None, "deregistered");
    let sent = from_a(&mut t, vec![registration]);
    let last = bas(&sent)[0].3;
    assert!(common::node::seq_newer(last, seq.unwrap()));
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 135, last, 0)]);
    assert_eq!(binding(&t), None);
}

fn sent_to_cn(p: &common::wire::PacketRepr) -> bool {
    matches!(&p.ip, common::wire::IpRepr::V6 { header, .. } if header.dst == CN)
}

// RFC 6275 §6.1.1, §6.1.7: the MH Reserved byte and the BU's reserved
// flag bits are ignored by the receiver: such a BU is processed as usual
// (after TAHI's "suspicious BU, non-zero reserved field").
// REQ MIP-BASE
#[test]
fn reserved_fields_are_ignored() {
    let mut t = signalling_only(117);
    let mut b = bu(
        9,
        A | 0x0001,
        100,
        vec![MhOption::AlternateCareOfAddress(COA_A)],
    );
    // Flags follow the 6-byte MH header and the sequence number.
    assert_eq!(
        b[MH_AFTER_HAO + 9] & 1,
        1,
        "the reserved bit is on the wire"
    );
    b[MH_AFTER_HAO + 3] = 0xff;
    // The checksum's pseudo-header has the home address of the HAO.
    let ph = PseudoHeader::V6 { src: HOA, dst: CN };
    MhPacket::new_unchecked(&mut b[MH_AFTER_HAO..]).fill_checksum(&ph);
    let b = seal_as_mn(&mut t, &b);
    let sent = from_a(&mut t, vec![b]);
    assert_eq!(bas(&sent), vec![(COA_A, Some(HOA), 0, 9, 100)]);
    assert_eq!(binding(&t), Some((Some(COA_A), Some(9))));
}
