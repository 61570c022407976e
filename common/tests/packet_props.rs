//! Whole-packet properties of the wire codecs: decoding never panics, and
//! every packet we can build survives emit → strict parse → emit unchanged.

use std::net::Ipv6Addr;

use common::wire::ext::{DestOptRepr, ExtHeaderRepr, Ipv6OptionRepr, RoutingRepr};
use common::wire::icmpv6::{Icmpv6Repr, ECHO_REPLY, ECHO_REQUEST};
use common::wire::ike::{ExchangeType, IkeHeader, IkePayload, IkeRepr, Notify};
use common::wire::ipv6::{IpProtocol, Ipv6Repr};
use common::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhOption, MhRepr};
use common::wire::packet::{self, IpRepr, PacketRepr, UdpPayload, UpperRepr, IKE_PORT};
use common::wire::{CodePoints, EspRepr, UdpRepr};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn ipv6_header() -> impl Strategy<Value = Ipv6Repr> {
    (any::<u8>(), 0..=0xf_ffffu32, any::<u8>(), addr(), addr()).prop_map(
        |(traffic_class, flow_label, hop_limit, src, dst)| Ipv6Repr {
            traffic_class,
            flow_label,
            next_header: IpProtocol::NoNextHeader,
            payload_len: 0,
            hop_limit,
            src,
            dst,
        },
    )
}

/// Optional type 2 routing header (segments left 1), optional HAO.
fn ext_chain() -> impl Strategy<Value = Vec<ExtHeaderRepr>> {
    (prop::option::of(addr()), prop::option::of(addr())).prop_map(|(rh2, hao)| {
        let rh2 = rh2.map(|home_address| {
            ExtHeaderRepr::Routing(RoutingRepr::Type2 {
                segments_left: 1,
                home_address,
            })
        });
        let hao = hao.map(|a| {
            ExtHeaderRepr::DestOpts(DestOptRepr {
                options: vec![Ipv6OptionRepr::HomeAddress(a)],
            })
        });
        rh2.into_iter().chain(hao).collect()
    })
}

fn mh_option() -> impl Strategy<Value = MhOption> {
    prop_oneof![
        any::<u16>().prop_map(MhOption::BindingRefreshAdvice),
        addr().prop_map(MhOption::AlternateCareOfAddress),
        any::<(u16, u16)>().prop_map(|(home, care_of)| MhOption::NonceIndices { home, care_of }),
        any::<[u8; 12]>().prop_map(MhOption::BindingAuthData),
        prop::collection::vec(any::<u8>(), 1..40).prop_map(MhOption::Cookie),
        (6..100u8, bytes(12), 0..8u8).prop_map(|(opt_type, data, at)| MhOption::Unknown {
            opt_type,
            data,
            at
        }),
    ]
}

fn mobility() -> impl Strategy<Value = UpperRepr> {
    let bu = any::<(u16, u16, u16)>().prop_map(|(seq, f, lifetime)| MhMessage::BindingUpdate {
        seq,
        flags: BuFlags(f),
        lifetime,
    });
    let ba = any::<(u8, u8, u16, u16)>().prop_map(|(s, f, seq, lifetime)| MhMessage::BindingAck {
        status: BaStatus::from(s),
        flags: BaFlags(f),
        seq,
        lifetime,
    });
    (
        prop_oneof![bu, ba],
        prop::collection::vec(mh_option(), 0..5),
    )
        .prop_map(|(message, options)| UpperRepr::Mobility(MhRepr { message, options }))
}

fn esp() -> impl Strategy<Value = UpperRepr> {
    (1..=u32::MAX, any::<u32>(), bytes(64)).prop_map(|(spi, sequence, body)| {
        UpperRepr::Esp(EspRepr {
            spi,
            sequence,
            body,
        })
    })
}

fn ike_payload() -> impl Strategy<Value = IkePayload> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..32).prop_map(IkePayload::Nonce),
        (any::<u16>(), bytes(16)).prop_map(|(t, d)| IkePayload::Notify(Notify::new(t, d))),
        bytes(16).prop_map(IkePayload::VendorId),
        (any::<u16>(), bytes(32)).prop_map(|(group, data)| IkePayload::Ke { group, data }),
    ]
}

/// UDP to port 500 carrying a small IKE message.
fn udp_ike() -> impl Strategy<Value = UpperRepr> {
    let header = (any::<(u64, u64, u8, u32)>(), any::<u8>()).prop_map(
        |((spi_i, spi_r, exchange, message_id), flags)| IkeHeader {
            spi_i,
            spi_r,
            major_version: 2,
            minor_version: 0,
            exchange: ExchangeType::from(exchange),
            flags,
            message_id,
        },
    );
    let src_port = any::<u16>().prop_filter("not NAT-T", |p| *p != packet::IKE_NATT_PORT);
    (src_port, header, prop::collection::vec(ike_payload(), 0..5)).prop_map(
        |(src_port, header, payloads)| {
            let udp = UdpRepr {
                src_port,
                dst_port: IKE_PORT,
            };
            UpperRepr::Udp(udp, UdpPayload::Ike(IkeRepr { header, payloads }))
        },
    )
}

fn icmp_echo() -> impl Strategy<Value = UpperRepr> {
    (any::<bool>(), any::<(u16, u16)>(), bytes(32)).prop_map(|(req, (id, seq), data)| {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(&seq.to_be_bytes());
        body.extend_from_slice(&data);
        let msg_type = if req { ECHO_REQUEST } else { ECHO_REPLY };
        UpperRepr::Icmpv6(Icmpv6Repr {
            msg_type,
            code: 0,
            body,
        })
    })
}

fn leaf_upper() -> impl Strategy<Value = UpperRepr> {
    prop_oneof![mobility(), esp(), udp_ike(), icmp_echo()]
}

fn v6_packet(
    ext: impl Strategy<Value = Vec<ExtHeaderRepr>>,
    upper: impl Strategy<Value = UpperRepr>,
) -> impl Strategy<Value = PacketRepr> {
    (ipv6_header(), ext, upper).prop_map(|(header, ext, upper)| PacketRepr {
        ip: IpRepr::V6 { header, ext },
        upper,
    })
}

fn packet() -> impl Strategy<Value = PacketRepr> {
    let tunnel = v6_packet(ext_chain(), leaf_upper()).prop_map(|p| UpperRepr::Tunnel(Box::new(p)));
    v6_packet(ext_chain(), prop_oneof![4 => leaf_upper(), 1 => tunnel])
}

/// Clears the fields that emit derives (recursively through tunnels).
fn normalise(mut p: PacketRepr) -> PacketRepr {
    if let IpRepr::V6 { header, .. } = &mut p.ip {
        header.next_header = IpProtocol::NoNextHeader;
        header.payload_len = 0;
    }
    if let UpperRepr::Tunnel(inner) = p.upper {
        p.upper = UpperRepr::Tunnel(Box::new(normalise(*inner)));
    }
    p
}

/// Bytes that pass the IPv6 fixed-header checks, to reach the upper layers.
fn deep_ipv6() -> impl Strategy<Value = Vec<u8>> {
    let nh = prop::sample::select(vec![0u8, 4, 6, 17, 41, 43, 44, 50, 58, 59, 60, 135]);
    (nh, any::<[u8; 36]>(), bytes(260)).prop_map(|(nh, hdr, tail)| {
        let mut b = vec![0x60, hdr[0], hdr[1], hdr[2]];
        b.extend_from_slice(&(tail.len() as u16).to_be_bytes());
        b.push(nh);
        b.extend_from_slice(&hdr[3..36]);
        b.extend_from_slice(&tail);
        b
    })
}

fn never_panics(b: &[u8]) {
    let cp = CodePoints::default();
    let d = packet::decode(b, &cp, true);
    let strict = PacketRepr::parse(b, &cp);
    // The strict parse succeeds exactly when decode found nothing wrong.
    assert_eq!(strict.is_ok(), d.errors.is_empty() && d.repr.is_some());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(300)) {
        never_panics(&b);
    }

    #[test]
    fn ipv6_prefixed_bytes_never_panic(tail in bytes(300)) {
        let mut b = vec![0x60];
        b.extend_from_slice(&tail);
        never_panics(&b);
    }

    #[test]
    fn well_formed_ipv6_headers_never_panic(b in deep_ipv6()) {
        never_panics(&b);
    }

    #[test]
    fn emit_parse_emit_is_identity(p in packet()) {
        let cp = CodePoints::default();
        let bytes = p.to_bytes(&cp);
        let back = PacketRepr::parse(&bytes, &cp);
        prop_assert!(back.is_ok(), "{:?} for {} = {}", back, p, common::wire::hex(&bytes));
        let back = back.unwrap();
        prop_assert_eq!(back.to_bytes(&cp), bytes);
        prop_assert_eq!(normalise(back), normalise(p));
    }
}

#[test]
fn every_byte_flip_of_a_bu_with_hao() {
    let cp = CodePoints::default();
    let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
    let hao = ExtHeaderRepr::home_address(a("2001:db8:1::100"));
    let mh_start = 40 + hao.buffer_len();
    let bu = MhRepr {
        message: MhMessage::BindingUpdate {
            seq: 7,
            flags: BuFlags(BuFlags::A | BuFlags::H),
            lifetime: 100,
        },
        options: vec![
            MhOption::AlternateCareOfAddress(a("2001:db8:2::10")),
            MhOption::NonceIndices {
                home: 3,
                care_of: 4,
            },
        ],
    };
    let p = PacketRepr::ipv6(
        a("2001:db8:2::10"),
        a("2001:db8:3::1"),
        vec![hao],
        UpperRepr::Mobility(bu),
    );
    let good = p.to_bytes(&cp);
    let orig = PacketRepr::parse(&good, &cp).unwrap();
    assert!(mh_start < good.len());
    for pos in 0..good.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = good.clone();
            b[pos] ^= mask;
            let d = packet::decode(&b, &cp, true);
            if pos >= mh_start {
                assert!(
                    !d.errors.is_empty() || d.repr.as_ref() != Some(&orig),
                    "MH byte {pos} ^ {mask:#04x} went unnoticed"
                );
            }
        }
    }
}
