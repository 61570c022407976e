//! Whole-packet IPsec tests: an MN and a CN (or two tunnel endpoints) with
//! mirrored SA pairs, and every drop reason provoked on purpose.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;
use crate::time::Duration;
use crate::wire::ext::ExtHeaderRepr;
use crate::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhRepr};
use crate::wire::packet::{IpRepr, PacketRepr, UdpPayload, UpperRepr};
use crate::wire::{CodePoints, Icmpv6Repr, UdpRepr};

const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10);
const COA2: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 4, 0, 0, 0, 0, 0x10);
const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
const T0: Instant = Instant::ZERO;

/// With a traffic class and flow label, which ESP must carry through.
fn v6(src: Ipv6Addr, dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>, upper: UpperRepr) -> Vec<u8> {
    let mut p = PacketRepr::ipv6(src, dst, ext, upper);
    if let IpRepr::V6 { header, .. } = &mut p.ip {
        header.traffic_class = 0x20;
        header.flow_label = 0x12345;
    }
    p.to_bytes(&CodePoints::default())
}

fn hao(hoa: Ipv6Addr) -> ExtHeaderRepr {
    ExtHeaderRepr::home_address(hoa)
}

fn outbound_sa(ipsec: &Ipsec) -> SaId {
    ipsec
        .sad
        .iter()
        .find(|(_, s)| s.direction() == Direction::Outbound)
        .unwrap()
        .0
}

/// MN → CN: a BU from the care-of address with a HAO.
fn bu(seq: u16) -> Vec<u8> {
    let mh = MhRepr {
        message: MhMessage::BindingUpdate {
            seq,
            flags: BuFlags(BuFlags::A),
            lifetime: 100,
        },
        options: vec![],
    };
    v6(COA, CN, vec![hao(HOA)], UpperRepr::Mobility(mh))
}

/// CN → MN: a BA to the care-of address with a type 2 routing header.
fn ba(seq: u16) -> Vec<u8> {
    let mh = MhRepr {
        message: MhMessage::BindingAck {
            status: BaStatus::Accepted,
            flags: BaFlags(0),
            seq,
            lifetime: 100,
        },
        options: vec![],
    };
    v6(
        CN,
        COA,
        vec![ExtHeaderRepr::type2(HOA)],
        UpperRepr::Mobility(mh),
    )
}

fn udp(src: Ipv6Addr, dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>) -> Vec<u8> {
    let u = UdpRepr {
        src_port: 7000,
        dst_port: 7001,
    };
    v6(
        src,
        dst,
        ext,
        UpperRepr::Udp(u, UdpPayload::Raw(b"payload".to_vec())),
    )
}

fn ping(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let icmp = Icmpv6Repr {
        msg_type: 128,
        code: 0,
        body: vec![0, 1, 0, 2, b'x'],
    };
    v6(src, dst, vec![], UpperRepr::Icmpv6(icmp))
}

fn key(alg: Algorithm, seed: u8) -> Vec<u8> {
    (0..alg.key_len() as u8)
        .map(|i| i.wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// The MN's and the CN's view of one transport-mode pair, BU/BA only;
/// MN → CN is SPI 0x201, CN → MN 0x202.
fn ro_pair(alg: Algorithm, local: Ipv6Addr, peer: Ipv6Addr, esn: bool) -> SaPairSpec {
    let (spi_in, spi_out, k_in, k_out) = if local == CN {
        (0x201, 0x202, key(alg, 1), key(alg, 2))
    } else {
        (0x202, 0x201, key(alg, 2), key(alg, 1))
    };
    let sel = Selector::mobility(
        Prefix::host(local.into()),
        Prefix::host(peer.into()),
        &[MhType::BindingUpdate.into(), MhType::BindingAck.into()],
    );
    let mut s = SaPairSpec::new(
        AddressPair {
            local: local.into(),
            peer: peer.into(),
        },
        Mode::Transport,
        alg,
        sel.clone(),
        SaKeys {
            spi: spi_in,
            key: k_in,
        },
        SaKeys {
            spi: spi_out,
            key: k_out,
        },
    );
    s.esn = esn;
    s
}

/// An MN and a CN protecting BU/BA, everything else in clear.
fn mn_cn(alg: Algorithm, esn: bool) -> (Ipsec, Ipsec) {
    let make = |local, peer| {
        let mut ipsec = Ipsec::default();
        let spec = ro_pair(alg, local, peer, esn);
        let (_, out) = ipsec.sad.add_pair(T0, &spec).unwrap();
        ipsec.spd.push(Policy {
            selector: spec.selector.clone(),
            action: Action::Protect(vec![out]),
        });
        ipsec.spd.fallback = Action::Bypass;
        ipsec
    };
    (make(HOA, CN), make(CN, HOA))
}

fn send(from: &mut Ipsec, packet: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match from.outbound(T0, packet, &mut out).unwrap() {
        Outbound::Protected { .. } => out,
        Outbound::Clear => packet.to_vec(),
    }
}

fn receive(at: &mut Ipsec, packet: &[u8]) -> Result<(Inbound, Vec<u8>), IpsecDrop> {
    let mut out = Vec::new();
    let r = at.inbound(T0, packet, &mut out)?;
    if r == Inbound::Clear {
        out = packet.to_vec();
    }
    Ok((r, out))
}

// REQ ESP: transport mode (RFC 4303 §3.1.1), extension headers before ESP.
#[test]
fn transport_mode_keeps_hao_and_rh2_ahead_of_esp() {
    for alg in Algorithm::ALL {
        let (mut mn, mut cn) = mn_cn(alg, false);
        let plain = bu(7);
        let wire = send(&mut mn, &plain);
        // IPv6 → DestOpts(HAO) → ESP: the HAO stays readable.
        assert_eq!(wire[6], u8::from(IpProtocol::DestOpts), "{alg}");
        assert_eq!(wire[40], u8::from(IpProtocol::Esp), "{alg}");
        // The HAO's Destination Options header is 24 bytes.
        assert_eq!(&wire[64..68], &0x201u32.to_be_bytes());
        assert_eq!(&wire[68..72], &1u32.to_be_bytes());
        // The BU is not readable on the wire unless the transform is NULL.
        let bu_type_visible = wire.windows(4).any(|w| w == [59, 1, 5, 0]);
        assert_eq!(bu_type_visible, !alg.is_confidential(), "{alg}");
        let (verdict, got) = receive(&mut cn, &wire).unwrap();
        assert!(matches!(verdict, Inbound::Decrypted { depth: 1, .. }));
        assert_eq!(
            got, plain,
            "{alg}: the CN gets the MN's packet back byte for byte"
        );

        let plain = ba(7);
        let wire = send(&mut cn, &plain);
        // IPv6 → RH2 → ESP.
        assert_eq!(
            (wire[6], wire[40]),
            (u8::from(IpProtocol::Routing), u8::from(IpProtocol::Esp))
        );
        let (_, got) = receive(&mut mn, &wire).unwrap();
        assert_eq!(got, plain);
        assert_eq!((mn.stats().sealed, mn.stats().opened), (1, 1));
    }
}

#[test]
fn traffic_outside_the_policy_passes_in_clear() {
    let (mut mn, mut cn) = mn_cn(Algorithm::Aes128Gcm16, false);
    let plain = udp(COA, CN, vec![hao(HOA)]);
    let mut out = Vec::new();
    assert_eq!(mn.outbound(T0, &plain, &mut out), Ok(Outbound::Clear));
    assert_eq!(cn.inbound(T0, &plain, &mut out), Ok(Inbound::Clear));
    assert_eq!(cn.stats().bypassed, 1);
}

// REQ ESP: anti-replay (RFC 4303 §3.4.3).
#[test]
fn replayed_packet_is_dropped_and_counted() {
    let (mut mn, mut cn) = mn_cn(Algorithm::ChaCha20Poly1305, false);
    let wire = send(&mut mn, &bu(1));
    receive(&mut cn, &wire).unwrap();
    assert_eq!(receive(&mut cn, &wire), Err(IpsecDrop::Replayed));
    assert_eq!(cn.stats().dropped(IpsecDrop::Replayed), 1);
}

// REQ ESP: the window's left edge (RFC 4303 §3.4.3).
#[test]
fn packet_older_than_the_window_is_dropped() {
    let (mut mn, mut cn) = mn_cn(Algorithm::Aes256Gcm16, false);
    let first = send(&mut mn, &bu(0));
    let mut last = Vec::new();
    for i in 1..=1024 {
        last = send(&mut mn, &bu(i));
    }
    receive(&mut cn, &last).unwrap();
    // Sequence 1 with the highest at 1025 is exactly one left of a
    // 1024-packet window.
    assert_eq!(receive(&mut cn, &first), Err(IpsecDrop::OutsideWindow));
    assert_eq!(cn.stats().dropped(IpsecDrop::OutsideWindow), 1);
    assert_eq!(
        cn.sad
            .get(cn.sad.inbound_by_spi(0x201).unwrap())
            .unwrap()
            .sequence(),
        1025
    );
}

// REQ ESP: a window of 64 packets or more (RFC 4303 §3.4.3).
#[test]
fn reordering_within_the_window_is_accepted() {
    let (mut mn, mut cn) = mn_cn(Algorithm::Aes128Gcm16, false);
    let packets: Vec<_> = (0..2000).map(|i| send(&mut mn, &bu(i))).collect();
    receive(&mut cn, &packets[1999]).unwrap();
    // 2000 - 1024 + 1 = 977 is the oldest still inside.
    for p in packets[976..1999].iter().rev() {
        receive(&mut cn, p).unwrap();
    }
    assert_eq!(cn.stats().opened, 1024);
}

// REQ ESP: no cycling without ESN (RFC 4303 §3.3.3).
#[test]
fn sequence_number_does_not_wrap_without_esn() {
    let (mut mn, _) = mn_cn(Algorithm::Aes128Gcm16, false);
    let out_sa = outbound_sa(&mn);
    mn.sad.get_mut(out_sa).unwrap().seq = u64::from(u32::MAX) - 1;
    let wire = send(&mut mn, &bu(1));
    assert_eq!(&wire[68..72], &u32::MAX.to_be_bytes());
    let mut out = Vec::new();
    assert_eq!(
        mn.outbound(T0, &bu(2), &mut out),
        Err(IpsecDrop::SequenceExhausted)
    );
    assert_eq!(mn.stats().dropped(IpsecDrop::SequenceExhausted), 1);
    assert_eq!(
        mn.poll_event(),
        Some(IpsecEvent::HardExpired {
            sa: out_sa,
            spi: 0x201
        })
    );
    // The SA is gone: the policy now points nowhere.
    assert_eq!(mn.outbound(T0, &bu(3), &mut out), Err(IpsecDrop::NoSa));
}

// REQ ESP: ESN (RFC 4303 §2.2.1, Appendix A2).
#[test]
fn extended_sequence_numbers_cross_the_32_bit_boundary() {
    for alg in Algorithm::ALL {
        let (mut mn, mut cn) = mn_cn(alg, true);
        let out_sa = outbound_sa(&mn);
        mn.sad.get_mut(out_sa).unwrap().seq = u64::from(u32::MAX) - 2;
        for i in 0..5 {
            let wire = send(&mut mn, &bu(i));
            receive(&mut cn, &wire).unwrap_or_else(|e| panic!("{alg} packet {i}: {e}"));
        }
        let in_sa = cn.sad.inbound_by_spi(0x201).unwrap();
        assert_eq!(
            cn.sad.get(in_sa).unwrap().sequence(),
            (1 << 32) + 2,
            "{alg}"
        );
    }
}

#[test]
fn unknown_spi_and_bad_icv_are_dropped() {
    let (mut mn, mut cn) = mn_cn(Algorithm::NullSha256, false);
    let mut wire = send(&mut mn, &bu(1));
    let mut wrong_spi = wire.clone();
    wrong_spi[67] = 0x99;
    assert_eq!(receive(&mut cn, &wrong_spi), Err(IpsecDrop::UnknownSpi));
    let last = wire.len() - 1;
    wire[last] ^= 0x80;
    assert_eq!(receive(&mut cn, &wire), Err(IpsecDrop::IcvFailure));
    // A failed ICV does not consume the sequence number.
    wire[last] ^= 0x80;
    assert!(receive(&mut cn, &wire).is_ok());
    assert_eq!(
        cn.stats().drops().collect::<Vec<_>>(),
        vec![(IpsecDrop::UnknownSpi, 1), (IpsecDrop::IcvFailure, 1)]
    );
}

// REQ ESP: RFC 4301 §5.2 selector check after decryption.
#[test]
fn decrypted_packet_outside_the_selectors_is_dropped() {
    let (mut mn, mut cn) = mn_cn(Algorithm::Aes128Gcm16, false);
    // Protect a UDP packet with the BU/BA SA by hand, as a peer with a
    // wrong policy would.
    let out_sa = outbound_sa(&mn);
    mn.spd.insert(
        0,
        Policy {
            selector: Selector::any(),
            action: Action::Protect(vec![out_sa]),
        },
    );
    let wire = send(&mut mn, &udp(COA, CN, vec![hao(HOA)]));
    assert_eq!(receive(&mut cn, &wire), Err(IpsecDrop::SelectorMismatch));
    // A BU from another home address through the same SA is refused too.
    let mut other = bu(1);
    other[40 + 8..40 + 24]
        .copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x101).octets());
    let wire = send(&mut mn, &other);
    assert_eq!(receive(&mut cn, &wire), Err(IpsecDrop::SelectorMismatch));
    assert_eq!(cn.stats().dropped(IpsecDrop::SelectorMismatch), 2);
}

#[test]
fn policy_discard_and_unprotected_are_counted() {
    let (_, mut cn) = mn_cn(Algorithm::Aes128Gcm16, false);
    // A BU in clear where policy requires ESP.
    assert_eq!(receive(&mut cn, &bu(1)), Err(IpsecDrop::Unprotected));
    cn.spd.fallback = Action::Discard;
    assert_eq!(
        receive(&mut cn, &ping(HOA, CN)),
        Err(IpsecDrop::PolicyDiscard)
    );
    let mut out = Vec::new();
    assert_eq!(
        cn.outbound(T0, &ping(CN, HOA), &mut out),
        Err(IpsecDrop::PolicyDiscard)
    );
    assert_eq!(receive(&mut cn, &[0x60, 0, 0]), Err(IpsecDrop::Malformed));
    assert_eq!(
        cn.stats().drops().collect::<Vec<_>>(),
        vec![
            (IpsecDrop::Malformed, 1),
            (IpsecDrop::PolicyDiscard, 2),
            (IpsecDrop::Unprotected, 1)
        ]
    );
}

/// Tunnel endpoints `a` (local) and `b`, carrying all traffic between the
/// two inner prefixes.
fn tunnel(alg: Algorithm, a: IpAddr, b: IpAddr, swap: bool) -> Ipsec {
    let (ka, kb) = (
        SaKeys {
            spi: 0x301,
            key: key(alg, 3),
        },
        SaKeys {
            spi: 0x302,
            key: key(alg, 4),
        },
    );
    let (inbound, outbound) = if swap { (kb, ka) } else { (ka, kb) };
    let (l, r) = if swap { (CN, HOA) } else { (HOA, CN) };
    let sel = Selector::between(Prefix::host(l.into()), Prefix::host(r.into()));
    let spec = SaPairSpec::new(
        AddressPair { local: a, peer: b },
        Mode::Tunnel,
        alg,
        sel.clone(),
        inbound,
        outbound,
    );
    let mut ipsec = Ipsec::default();
    let (_, out) = ipsec.sad.add_pair(T0, &spec).unwrap();
    ipsec.spd.push(Policy {
        selector: sel,
        action: Action::Protect(vec![out]),
    });
    ipsec
}

// REQ ESP: tunnel mode (RFC 4303 §3.1.2).
#[test]
fn tunnel_mode_over_ipv6_and_ipv4() {
    let outer: [(IpAddr, IpAddr); 2] = [
        (COA.into(), HA.into()),
        (
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(192, 0, 2, 2).into(),
        ),
    ];
    for (a, b) in outer {
        for alg in Algorithm::ALL {
            let mut left = tunnel(alg, a, b, false);
            let mut right = tunnel(alg, b, a, true);
            let plain = ping(HOA, CN);
            let wire = send(&mut left, &plain);
            let p = crate::wire::packet::PacketRepr::parse(&wire, &CodePoints::default()).unwrap();
            let expect_outer = p.to_string();
            assert!(
                expect_outer.contains(&format!("{a} > {b} ESP spi=0x00000302")),
                "{expect_outer}"
            );
            if a.is_ipv6() {
                // The traffic class is copied to the outer header.
                assert_eq!((wire[0], wire[1] >> 4), (0x62, 0));
            } else {
                assert_eq!(wire[1], 0x20);
            }
            let (verdict, got) = receive(&mut right, &wire).unwrap();
            assert!(matches!(verdict, Inbound::Decrypted { depth: 1, .. }));
            assert_eq!(got, plain, "{alg} over {a}");
            // Traffic no policy covers falls to the default: discard.
            let mut stray = ping(HOA, CN);
            stray[39] = 2;
            let mut out = Vec::new();
            assert_eq!(
                left.outbound(T0, &stray, &mut out),
                Err(IpsecDrop::PolicyDiscard)
            );
        }
    }
}

#[test]
fn nested_transport_inside_tunnel_round_trips() {
    let alg = Algorithm::Aes128Gcm16;
    let mut mn = tunnel(alg, COA.into(), HA.into(), false);
    let mut cn = tunnel(alg, HA.into(), COA.into(), true);
    let spec_mn = ro_pair(alg, HOA, CN, false);
    let spec_cn = ro_pair(alg, CN, HOA, false);
    let (_, t_mn) = mn.sad.add_pair(T0, &spec_mn).unwrap();
    cn.sad.add_pair(T0, &spec_cn).unwrap();
    let tun_mn = match &mn.spd.policies()[0].action {
        Action::Protect(s) => s[0],
        _ => unreachable!(),
    };
    mn.spd.insert(
        0,
        Policy {
            selector: spec_mn.selector.clone(),
            action: Action::Protect(vec![t_mn, tun_mn]),
        },
    );
    let mh = MhRepr {
        message: MhMessage::BindingUpdate {
            seq: 1,
            flags: BuFlags(0),
            lifetime: 4,
        },
        options: vec![],
    };
    let plain = v6(HOA, CN, vec![], UpperRepr::Mobility(mh));
    let wire = send(&mut mn, &plain);
    assert_eq!(&wire[40..44], &0x302u32.to_be_bytes(), "outer: tunnel SA");
    let (verdict, got) = receive(&mut cn, &wire).unwrap();
    assert_eq!(got, plain);
    let inner_sa = cn.sad.inbound_by_spi(0x201).unwrap();
    assert_eq!(
        verdict,
        Inbound::Decrypted {
            sa: inner_sa,
            depth: 2
        }
    );
}

#[test]
fn dummy_and_non_ip_tunnel_payloads_are_dropped() {
    let alg = Algorithm::NullSha256;
    let mut left = tunnel(alg, COA.into(), HA.into(), false);
    let mut right = tunnel(alg, HA.into(), COA.into(), true);
    let out_sa = outbound_sa(&left);
    for (nh, reason) in [
        (IpProtocol::NoNextHeader, IpsecDrop::Dummy),
        (IpProtocol::Udp, IpsecDrop::NotTunnelled),
    ] {
        let mut esp = Vec::new();
        left.sad
            .get_mut(out_sa)
            .unwrap()
            .seal(T0, nh, b"junk", &mut esp)
            .unwrap();
        let mut wire = Vec::new();
        push_outer_header(
            &mut wire,
            AddressPair {
                local: COA.into(),
                peer: HA.into(),
            },
            0,
        );
        wire.extend_from_slice(&esp);
        finish_ip_header(&mut wire).unwrap();
        assert_eq!(receive(&mut right, &wire), Err(reason));
    }
}

#[test]
fn lifetimes_raise_soft_then_hard_events() {
    let (mut mn, _) = mn_cn(Algorithm::Aes128Gcm16, false);
    let mut spec = ro_pair(Algorithm::Aes128Gcm16, HOA, HA, false);
    spec.inbound.spi = 0x401;
    spec.lifetime = Lifetime {
        soft_time: Some(Duration::from_secs(30)),
        hard_time: Some(Duration::from_secs(40)),
        ..Lifetime::default()
    };
    let (i, o) = mn.sad.add_pair(Instant::from_secs(10), &spec).unwrap();
    assert_eq!(mn.poll_timeout(), Some(Instant::from_secs(40)));
    mn.handle_timeout(Instant::from_secs(39));
    assert_eq!(mn.poll_event(), None);
    mn.handle_timeout(Instant::from_secs(40));
    let mut ev: Vec<_> = core::iter::from_fn(|| mn.poll_event()).collect();
    ev.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        ev,
        vec![
            IpsecEvent::SoftExpired { sa: i, spi: 0x401 },
            IpsecEvent::SoftExpired { sa: o, spi: 0x201 }
        ]
    );
    assert_eq!(mn.poll_timeout(), Some(Instant::from_secs(50)));
    mn.handle_timeout(Instant::from_secs(50));
    assert_eq!(core::iter::from_fn(|| mn.poll_event()).count(), 2);
    assert!(mn.sad.get(i).is_none() && mn.sad.get(o).is_none());
    assert_eq!(mn.poll_timeout(), None);
}

#[test]
fn byte_lifetime_ends_the_sa() {
    let mut spec = ro_pair(Algorithm::Aes128Gcm16, HOA, CN, false);
    spec.lifetime.soft_bytes = Some(20);
    spec.lifetime.hard_bytes = Some(40);
    let mut mn = Ipsec::default();
    let (_, out) = mn.sad.add_pair(T0, &spec).unwrap();
    mn.spd.push(Policy {
        selector: spec.selector.clone(),
        action: Action::Protect(vec![out]),
    });
    let mut buf = Vec::new();
    // The MH of a bare BU is 16 bytes: soft after 2, hard after 3.
    mn.outbound(T0, &bu(1), &mut buf).unwrap();
    assert_eq!(mn.poll_event(), None);
    mn.outbound(T0, &bu(2), &mut buf).unwrap();
    assert_eq!(
        mn.poll_event(),
        Some(IpsecEvent::SoftExpired {
            sa: out,
            spi: 0x201
        })
    );
    mn.outbound(T0, &bu(3), &mut buf).unwrap();
    assert_eq!(
        mn.poll_event(),
        Some(IpsecEvent::HardExpired {
            sa: out,
            spi: 0x201
        })
    );
    assert_eq!(mn.outbound(T0, &bu(4), &mut buf), Err(IpsecDrop::NoSa));
}

// REQ AM-C.1: both SAs of a pair and every sibling move together, and
// sequence numbers and replay state survive the move (no rekey).
#[test]
fn address_update_moves_pair_and_siblings_keeping_state() {
    let alg = Algorithm::Aes128Gcm16;
    let mut mn = tunnel(alg, COA.into(), HA.into(), false);
    let mut ha = tunnel(alg, HA.into(), COA.into(), true);
    // A second pair between the same endpoints, bundled as a sibling, and
    // an unrelated pair that must stay put.
    let mut sib = SaPairSpec::new(
        AddressPair {
            local: COA.into(),
            peer: HA.into(),
        },
        Mode::Tunnel,
        alg,
        Selector::any(),
        SaKeys {
            spi: 0x501,
            key: key(alg, 5),
        },
        SaKeys {
            spi: 0x502,
            key: key(alg, 6),
        },
    );
    let (sib_in, _) = mn.sad.add_pair(T0, &sib).unwrap();
    sib.inbound.spi = 0x601;
    let (other_in, _) = mn.sad.add_pair(T0, &sib).unwrap();
    let tun_in = mn.sad.inbound_by_spi(0x301).unwrap();
    mn.sad.bundle(tun_in, sib_in).unwrap();

    for _ in 0..3 {
        let wire = send(&mut mn, &ping(HOA, CN));
        receive(&mut ha, &wire).unwrap();
    }
    let moved = AddressPair {
        local: COA2.into(),
        peer: HA.into(),
    };
    let updated = mn.sad.update_addresses(tun_in, moved).unwrap();
    assert_eq!(updated.len(), 4, "pair + sibling pair: {updated:?}");
    assert!(
        mn.sad
            .iter()
            .filter(|(_, s)| s.addresses() == moved)
            .count()
            == 4
    );
    assert_eq!(
        mn.sad.get(other_in).unwrap().addresses().local,
        IpAddr::from(COA)
    );
    let ha_in = ha.sad.inbound_by_spi(0x302).unwrap();
    ha.sad
        .update_addresses(
            ha_in,
            AddressPair {
                local: HA.into(),
                peer: COA2.into(),
            },
        )
        .unwrap();

    let wire = send(&mut mn, &ping(HOA, CN));
    assert_eq!(&wire[8..24], &COA2.octets(), "new outer source");
    assert_eq!(&wire[44..48], &4u32.to_be_bytes(), "sequence continues");
    receive(&mut ha, &wire).unwrap();
    assert_eq!(ha.sad.get(ha_in).unwrap().sequence(), 4);
    assert_eq!(
        ha.poll_event(),
        None,
        "addresses already moved: nothing to ask"
    );
}

// REQ AM-D.1: authenticated tunnel traffic from a new address makes the
// data plane ask key management, once, to update the SA and its siblings.
#[test]
fn traffic_from_a_new_address_asks_for_an_address_update() {
    let alg = Algorithm::ChaCha20Poly1305;
    let mut mn = tunnel(alg, COA.into(), HA.into(), false);
    let mut ha = tunnel(alg, HA.into(), COA.into(), true);
    let mn_out = outbound_sa(&mn);
    // The MN moves but only its own SAs know so far.
    mn.sad
        .update_addresses(
            mn_out,
            AddressPair {
                local: COA2.into(),
                peer: HA.into(),
            },
        )
        .unwrap();
    for _ in 0..2 {
        let wire = send(&mut mn, &ping(HOA, CN));
        receive(&mut ha, &wire).unwrap();
    }
    let ha_in = ha.sad.inbound_by_spi(0x302).unwrap();
    let request = AddressUpdateRequest {
        sa: ha_in,
        spi: 0x302,
        old: AddressPair {
            local: HA.into(),
            peer: COA.into(),
        },
        new: AddressPair {
            local: HA.into(),
            peer: COA2.into(),
        },
    };
    assert_eq!(ha.poll_event(), Some(IpsecEvent::AddressUpdate(request)));
    assert_eq!(ha.poll_event(), None, "asked once");
    // A forged packet from yet another address asks nothing: the ICV fails first.
    let mut wire = send(&mut mn, &ping(HOA, CN));
    wire[8] ^= 1;
    let n = wire.len();
    wire[n - 1] ^= 1;
    assert_eq!(receive(&mut ha, &wire), Err(IpsecDrop::IcvFailure));
    assert_eq!(ha.poll_event(), None);
    // The node itself can ask too.
    ha.request_address_update(ha_in, request.new).unwrap();
    assert_eq!(ha.poll_event(), Some(IpsecEvent::AddressUpdate(request)));
}

// REQ CN-2.1 REQ CN-2.2 REQ CN-2.3 REQ CN-2.4 REQ CN-2.5: each property of
// a suitable SA, taken away one at a time.
#[test]
fn suitable_sa_check_names_what_is_missing() {
    let alg = Algorithm::NullSha256;
    let check = |spec: &SaPairSpec| {
        let mut cn = Ipsec::default();
        let (i, o) = cn.sad.add_pair(T0, spec).unwrap();
        let a = cn.check_suitable(i, HOA, CN);
        assert_eq!(a, cn.check_suitable(o, HOA, CN), "either SA of the pair");
        a
    };
    let good = ro_pair(alg, CN, HOA, false);
    assert_eq!(check(&good), Ok(()));
    // The MN's side of the same pair is suitable too.
    assert_eq!(check(&ro_pair(alg, HOA, CN, false)), Ok(()));
    // CN-2.1: between this MN and this CN.
    let mut s = good.clone();
    s.addresses.peer = HA.into();
    assert_eq!(check(&s), Err(Unsuitable::WrongEndpoints));
    // CN-2.2: anti-replay.
    let mut s = good.clone();
    s.replay_window = 0;
    assert_eq!(check(&s), Err(Unsuitable::NoAntiReplay));
    // CN-2.3: selectors exactly the home address and the CN.
    let mut s = good.clone();
    s.selector.remote = "2001:db8:1::/64".parse().unwrap();
    assert_eq!(check(&s), Err(Unsuitable::SelectorsTooWide));
    let mut s = good.clone();
    s.selector.remote = Prefix::host(COA.into());
    assert_eq!(check(&s), Err(Unsuitable::SelectorsTooWide));
    // CN-2.4: transport mode.
    let mut s = good.clone();
    s.mode = Mode::Tunnel;
    assert_eq!(check(&s), Err(Unsuitable::NotTransport));
    // CN-2.5: MH with at least BU and BA.
    let mut s = good.clone();
    s.selector.mh_types = vec![MhType::BindingUpdate.into()];
    assert_eq!(check(&s), Err(Unsuitable::NoBindingSignalling));
    let mut s = good.clone();
    s.selector.protocol = Some(IpProtocol::Udp);
    s.selector.mh_types.clear();
    assert_eq!(check(&s), Err(Unsuitable::NoBindingSignalling));
    let mut s = good.clone();
    s.selector.protocol = None;
    s.selector.mh_types.clear();
    assert_eq!(check(&s), Ok(()), "all protocols include MH");
    // CN-2.1: a pair, not a lone SA.
    let mut cn = Ipsec::default();
    let (i, o) = cn.sad.add_pair(T0, &good).unwrap();
    assert_eq!(cn.find_suitable(HOA, CN), Some(i));
    cn.sad.remove(o);
    assert_eq!(cn.check_suitable(i, HOA, CN), Err(Unsuitable::NotPaired));
    assert_eq!(cn.find_suitable(HOA, CN), None);
}

#[test]
fn sad_refuses_bad_pairs() {
    let mut sad = Sad::default();
    let good = ro_pair(Algorithm::Aes128Gcm16, CN, HOA, false);
    sad.add_pair(T0, &good).unwrap();
    assert_eq!(sad.add_pair(T0, &good), Err(SadError::DuplicateSpi(0x201)));
    let mut s = good.clone();
    s.inbound.spi = 0;
    assert_eq!(sad.add_pair(T0, &s), Err(SadError::ZeroSpi));
    let mut s = good.clone();
    s.inbound.spi = 9;
    s.inbound.key.pop();
    assert!(matches!(sad.add_pair(T0, &s), Err(SadError::Key(_))));
    s.inbound.key.push(0);
    s.replay_window = MAX_WINDOW + 1;
    assert_eq!(
        sad.add_pair(T0, &s),
        Err(SadError::WindowTooLarge(MAX_WINDOW + 1))
    );
    s.replay_window = 64;
    s.addresses.peer = Ipv4Addr::LOCALHOST.into();
    assert!(matches!(
        sad.add_pair(T0, &s),
        Err(SadError::MixedFamilies(_))
    ));
}

#[test]
fn garbage_never_panics() {
    let (mut mn, mut cn) = mn_cn(Algorithm::Aes128Gcm16, false);
    let wire = send(&mut mn, &bu(1));
    let mut out = Vec::new();
    for cut in 0..wire.len() {
        let _ = cn.inbound(T0, &wire[..cut], &mut out);
        let _ = mn.outbound(T0, &wire[..cut], &mut out);
    }
    let mut seed = 0x1234_5678u32;
    for _ in 0..2000 {
        let mut p = wire.clone();
        for _ in 0..3 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let i = seed as usize % p.len();
            p[i] ^= (seed >> 24) as u8 | 1;
        }
        let _ = cn.inbound(T0, &p, &mut out);
    }
    assert!(cn.stats().drops().map(|(_, n)| n).sum::<u64>() > 0);
}

// Found by fuzzing: a corrupt IPv4 header came out of a transport-mode
// round trip with a freshly computed, valid checksum.
#[test]
fn ipv4_with_a_bad_header_checksum_is_malformed() {
    let (mut mn, _) = mn_cn(Algorithm::Aes128Gcm16, false);
    let mut p = vec![
        0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    p.extend_from_slice(&[0, 1, 0, 2, 0, 8, 0, 0]);
    let c = checksum::finish(checksum::sum(0, &p[..20]));
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let mut out = Vec::new();
    assert_eq!(mn.outbound(T0, &p, &mut out), Ok(Outbound::Clear));
    p[11] ^= 1;
    assert_eq!(mn.outbound(T0, &p, &mut out), Err(IpsecDrop::Malformed));
}

fn udp_ports(src: Ipv6Addr, dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>, ports: (u16, u16)) -> Vec<u8> {
    let u = UdpRepr {
        src_port: ports.0,
        dst_port: ports.1,
    };
    v6(
        src,
        dst,
        ext,
        UpperRepr::Udp(u, UdpPayload::Raw(vec![0; 8])),
    )
}

/// The outer header of what `outbound_on` made of `packet` on `path`.
fn sent_on(ipsec: &mut Ipsec, path: Path, packet: &[u8]) -> Result<String, IpsecDrop> {
    let mut out = Vec::new();
    Ok(match ipsec.outbound_on(T0, path, packet, &mut out)? {
        Outbound::Clear => "clear".to_string(),
        Outbound::Protected { .. } => PacketRepr::parse(&out, &CodePoints::default())
            .unwrap()
            .to_string(),
    })
}

// REQ MIP-HA-IPSEC: RFC 4877's payload SA carries what the node tunnels,
// never its route-optimised packets from the same home address.
#[test]
fn tunnel_mode_policies_apply_on_the_tunnel_path_only() {
    let alg = Algorithm::Aes128Gcm16;
    let mut mn = tunnel(alg, COA.into(), HA.into(), false);
    let spec = ro_pair(alg, HOA, CN, false);
    let (_, ro) = mn.sad.add_pair(T0, &spec).unwrap();
    mn.spd.insert(
        0,
        Policy {
            selector: spec.selector.clone(),
            action: Action::Protect(vec![ro]),
        },
    );
    mn.spd.fallback = Action::Bypass;
    let route_optimised = udp(COA, CN, vec![hao(HOA)]);
    assert_eq!(
        sent_on(&mut mn, Path::Direct, &route_optimised).unwrap(),
        "clear"
    );
    let into_tunnel = sent_on(&mut mn, Path::Any, &route_optimised).unwrap();
    assert!(
        into_tunnel.starts_with(&format!("IPv6 {COA} > {HA} ESP")),
        "{into_tunnel}"
    );
    let tunnelled = sent_on(&mut mn, Path::Tunnel, &udp(HOA, CN, vec![])).unwrap();
    assert!(
        tunnelled.starts_with(&format!("IPv6 {COA} > {HA} ESP spi=0x00000302")),
        "{tunnelled}"
    );
    // The signalling pair still protects the BU sent route optimised.
    let bu = sent_on(&mut mn, Path::Direct, &bu(1)).unwrap();
    assert!(bu.contains("ESP spi=0x00000201"), "{bu}");
    // Nothing for the tunnel: clear for the caller to encapsulate, and not
    // counted as a bypass.
    let bypassed = mn.stats().bypassed;
    assert_eq!(
        sent_on(&mut mn, Path::Tunnel, &ping(HOA, HA)).unwrap(),
        "clear"
    );
    assert_eq!(mn.stats().bypassed, bypassed);
    // Inbound, a route-optimised packet in clear is not the tunnel's.
    let from_cn = udp(CN, COA, vec![ExtHeaderRepr::type2(HOA)]);
    let mut out = Vec::new();
    assert_eq!(
        mn.inbound_on(T0, Path::Direct, &from_cn, &mut out),
        Ok(Inbound::Clear)
    );
    assert_eq!(
        mn.inbound_on(T0, Path::Tunnel, &from_cn, &mut out),
        Err(IpsecDrop::Unprotected)
    );
}

// REQ MIP-HA-IPSEC: IKE is never caught by the SAs it negotiates.
#[test]
fn ike_passes_every_policy_outside_the_tunnel() {
    let alg = Algorithm::Aes128Gcm16;
    let mut mn = tunnel(alg, COA.into(), HA.into(), false);
    let spec = ro_pair(alg, HOA, CN, false);
    let everything = Selector::between(Prefix::host(HOA.into()), Prefix::host(CN.into()));
    let (_, sa) = mn.sad.add_pair(T0, &spec).unwrap();
    mn.spd.insert(
        0,
        Policy {
            selector: everything,
            action: Action::Protect(vec![sa]),
        },
    );
    for ports in [(500, 500), (4500, 4500), (500, 4500)] {
        let ike = udp_ports(HOA, CN, vec![], ports);
        assert_eq!(sent_on(&mut mn, Path::Direct, &ike).unwrap(), "clear");
        assert_eq!(sent_on(&mut mn, Path::Any, &ike).unwrap(), "clear");
        // Inside the tunnel to the home agent it is payload like any other.
        let tunnelled = sent_on(&mut mn, Path::Tunnel, &ike).unwrap();
        assert!(
            tunnelled.starts_with(&format!("IPv6 {COA} > {HA} ESP")),
            "{tunnelled}"
        );
        let back = udp_ports(CN, HOA, vec![], (ports.1, ports.0));
        let mut out = Vec::new();
        assert_eq!(
            mn.inbound_on(T0, Path::Direct, &back, &mut out),
            Ok(Inbound::Clear)
        );
    }
    let other = udp_ports(HOA, CN, vec![], (501, 4501));
    let sealed = sent_on(&mut mn, Path::Direct, &other).unwrap();
    assert!(sealed.contains("ESP spi=0x00000201"), "{sealed}");
}

/// The last sequence number `ipsec`'s outbound SA sent.
fn last_sent(ipsec: &Ipsec) -> u64 {
    ipsec.sad.get(outbound_sa(ipsec)).unwrap().sequence()
}

// REQ ESP; issue 14.4: a kept counter resumes after its stored mark and
// reports a new mark, SEQUENCE_SKIP ahead, each time a packet passes it.
#[test]
fn a_kept_counter_resumes_after_its_mark_and_reports_the_next_one_ahead() {
    let (mut mn, mut cn) = mn_cn(Algorithm::Aes128Gcm16, false);
    // Not kept: no marks.
    receive(&mut cn, &send(&mut mn, &bu(1))).unwrap();
    assert_eq!(mn.poll_sequence_mark(), None);
    // Kept, after a restart whose store held mark 100 for this SPI (and a
    // lower one from a stale record, which loses).
    let spi = mn.sad.get(outbound_sa(&mn)).unwrap().spi();
    mn.keep_sequences(&[(spi, 100), (spi, 7), (0xdead, 5)]);
    let wire = send(&mut mn, &bu(2));
    assert_eq!(last_sent(&mn), 101);
    assert_eq!(mn.poll_sequence_mark(), Some((spi, 101 + SEQUENCE_SKIP)));
    assert_eq!(mn.poll_sequence_mark(), None);
    // The peer, whose window had seen 1 only, takes it.
    receive(&mut cn, &wire).unwrap();
    // Up to the mark, nothing more to store.
    for _ in 0..SEQUENCE_SKIP {
        send(&mut mn, &bu(3));
    }
    assert_eq!(mn.poll_sequence_mark(), None);
    let wire = send(&mut mn, &bu(4));
    let seq = last_sent(&mn);
    assert_eq!(seq, 101 + SEQUENCE_SKIP + 1);
    assert_eq!(mn.poll_sequence_mark(), Some((spi, seq + SEQUENCE_SKIP)));
    receive(&mut cn, &wire).unwrap();
    assert_eq!(cn.stats().dropped(IpsecDrop::Replayed), 0);
}
