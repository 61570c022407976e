//! A reference set of packets: every Mobility Header message and option,
//! the Home Address option, the type 2 routing header, a tunnelled packet,
//! ESP (NULL encryption framing), IKEv2 messages with every payload type,
//! including the drafts' notifications and the Peer Address Update payload,
//! and Neighbor Discovery: RS, RA (a home agent's with the H and R flags),
//! NS (resolution and a DAD probe) and NA (solicited, proxy, announcement).
//! `testbed samples` writes them to a pcap; the tshark and scapy tests use
//! them as the packets we emit.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::nd::{nd_packet, ALL_NODES, ALL_ROUTERS};
use common::wire::esp::{EspRepr, EspTrailer};
use common::wire::ext::ExtHeaderRepr;
use common::wire::ike::{
    AdditionalAddress, CpAttribute, ExchangeType, Identification, IkeHeader, IkePayload, IkeRepr,
    MobikeSupported, Notify, NotifyType, PeerAddress, Proposal, SwitchToIpAddress, TrafficSelector,
    Transform, TunnelAddress,
};
use common::wire::mh::{BaFlags, BaStatus, BuFlags, CoaTestCookie, MhMessage, MhOption, MhRepr};
use common::wire::nd::{ra_flags, solicited_node, NaFlags, PrefixInfo, RouterAdvert};
use common::wire::packet::{IpRepr, PacketRepr, UdpPayload, UpperRepr, IKE_NATT_PORT, IKE_PORT};
use common::wire::{CodePoints, Icmpv6Repr, IpProtocol, Ipv4Repr, MacAddr, NdRepr, UdpRepr};

pub const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
pub const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x10);
pub const CN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
/// The access router on the care-of link.
pub const AR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 1);
/// Another node on the home link, looking for the mobile node.
pub const HOME_PEER: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
pub const MN_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x11]);
pub const AR_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub const HA_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x02]);
/// The mobile node's link-local address, from its MAC (RFC 4291 App. A).
pub const MN_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x11);
pub const AR_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x01);
pub const HA_LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0x02);

/// One sample: what it shows, and its bytes.
pub struct Sample {
    pub label: &'static str,
    pub bytes: Vec<u8>,
}

fn v6(src: Ipv6Addr, dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>, upper: UpperRepr) -> PacketRepr {
    PacketRepr::ipv6(src, dst, ext, upper)
}

fn hao(hoa: Ipv6Addr) -> ExtHeaderRepr {
    ExtHeaderRepr::home_address(hoa)
}

fn rh2(hoa: Ipv6Addr) -> ExtHeaderRepr {
    ExtHeaderRepr::type2(hoa)
}

fn mh(message: MhMessage, options: Vec<MhOption>) -> UpperRepr {
    UpperRepr::Mobility(MhRepr { message, options })
}

fn bu(seq: u16, flags: u16, lifetime: u16, options: Vec<MhOption>) -> UpperRepr {
    mh(
        MhMessage::BindingUpdate {
            seq,
            flags: BuFlags(flags),
            lifetime,
        },
        options,
    )
}

fn ba(status: BaStatus, flags: u8, seq: u16, lifetime: u16, options: Vec<MhOption>) -> UpperRepr {
    mh(
        MhMessage::BindingAck {
            status,
            flags: BaFlags(flags),
            seq,
            lifetime,
        },
        options,
    )
}

fn echo(msg_type: u8, id: u16, seq: u16) -> UpperRepr {
    let mut body = id.to_be_bytes().to_vec();
    body.extend_from_slice(&seq.to_be_bytes());
    body.extend_from_slice(b"mip6 sample");
    UpperRepr::Icmpv6(Icmpv6Repr {
        msg_type,
        code: 0,
        body,
    })
}

fn ike(exchange: ExchangeType, flags: u8, message_id: u32, payloads: Vec<IkePayload>) -> IkeRepr {
    let header = IkeHeader {
        spi_i: 0x0123_4567_89ab_cdef,
        spi_r: if exchange == ExchangeType::IKE_SA_INIT && flags & IkeHeader::FLAG_R == 0 {
            0
        } else {
            0xfedc_ba98_7654_3210
        },
        major_version: 2,
        minor_version: 0,
        exchange,
        flags,
        message_id,
    };
    IkeRepr { header, payloads }
}

fn udp(src_port: u16, dst_port: u16, payload: UdpPayload) -> UpperRepr {
    UpperRepr::Udp(UdpRepr { src_port, dst_port }, payload)
}

fn notify(t: NotifyType, data: Vec<u8>) -> IkePayload {
    IkePayload::Notify(Notify::new(t.into(), data))
}

/// The whole reference set, in a fixed order.
pub fn samples(cp: &CodePoints) -> Vec<Sample> {
    let cookie = CoaTestCookie {
        timestamp: 0x1a2b,
        care_of: COA,
        mac: *b"\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc",
    };
    let mut s: Vec<(&'static str, PacketRepr)> = vec![
        (
            "home registration BU (H, A) with HAO",
            v6(
                COA,
                HA,
                vec![hao(HOA)],
                bu(
                    1,
                    BuFlags::A | BuFlags::H | BuFlags::K,
                    100,
                    vec![MhOption::AlternateCareOfAddress(COA)],
                ),
            ),
        ),
        (
            "home registration BA with RH2 and refresh advice",
            v6(
                HA,
                COA,
                vec![rh2(HOA)],
                ba(
                    BaStatus::Accepted,
                    BaFlags::K,
                    1,
                    100,
                    vec![MhOption::BindingRefreshAdvice(90)],
                ),
            ),
        ),
        (
            "HoTI through the home agent tunnel",
            v6(
                COA,
                HA,
                vec![],
                UpperRepr::Tunnel(Box::new(v6(
                    HOA,
                    CN,
                    vec![],
                    mh(
                        MhMessage::HomeTestInit {
                            cookie: 0x0102_0304_0506_0708,
                        },
                        vec![],
                    ),
                ))),
            ),
        ),
        (
            "CoTI",
            v6(
                COA,
                CN,
                vec![],
                mh(
                    MhMessage::CareOfTestInit {
                        cookie: 0x1112_1314_1516_1718,
                    },
                    vec![],
                ),
            ),
        ),
        (
            "HoT",
            v6(
                CN,
                HOA,
                vec![],
                mh(
                    MhMessage::HomeTest {
                        nonce_index: 5,
                        cookie: 0x0102_0304_0506_0708,
                        token: 0xa1a2_a3a4_a5a6_a7a8,
                    },
                    vec![],
                ),
            ),
        ),
        (
            "CoT",
            v6(
                CN,
                COA,
                vec![],
                mh(
                    MhMessage::CareOfTest {
                        nonce_index: 6,
                        cookie: 0x1112_1314_1516_1718,
                        token: 0xb1b2_b3b4_b5b6_b7b8,
                    },
                    vec![],
                ),
            ),
        ),
        (
            "RR-authorised BU with nonce indices and BAD",
            v6(
                COA,
                CN,
                vec![hao(HOA)],
                bu(
                    2,
                    BuFlags::A,
                    105,
                    vec![
                        MhOption::NonceIndices {
                            home: 5,
                            care_of: 6,
                        },
                        MhOption::BindingAuthData(
                            *b"\x0b\x0a\xd0\x01\x02\x03\x04\x05\x06\x07\x08\x09",
                        ),
                    ],
                ),
            ),
        ),
        (
            "IPsec-RO BU to a CN (H, K clear)",
            v6(COA, CN, vec![hao(HOA)], bu(3, BuFlags::A, 1000, vec![])),
        ),
        (
            "CN asks for the care-of test: BA status and cookie",
            v6(
                CN,
                COA,
                vec![rh2(HOA)],
                ba(
                    BaStatus::from(cp.ba_status_coa_test),
                    0,
                    3,
                    0,
                    vec![MhOption::Cookie(cookie.to_bytes())],
                ),
            ),
        ),
        (
            "BU echoing the cookie",
            v6(
                COA,
                CN,
                vec![hao(HOA)],
                bu(
                    3,
                    BuFlags::A,
                    1000,
                    vec![MhOption::Cookie(cookie.to_bytes())],
                ),
            ),
        ),
        (
            "binding refresh request",
            v6(
                CN,
                COA,
                vec![rh2(HOA)],
                mh(MhMessage::BindingRefreshRequest, vec![]),
            ),
        ),
        (
            "binding error for an unverifiable HAO",
            v6(
                CN,
                COA,
                vec![],
                mh(
                    MhMessage::BindingError {
                        status: 1,
                        home_address: HOA,
                    },
                    vec![],
                ),
            ),
        ),
        (
            "route-optimised echo request with HAO",
            v6(COA, CN, vec![hao(HOA)], echo(128, 7, 1)),
        ),
        (
            "route-optimised echo reply with RH2",
            v6(CN, COA, vec![rh2(HOA)], echo(129, 7, 1)),
        ),
        (
            "reverse-tunnelled echo request",
            v6(
                COA,
                HA,
                vec![],
                UpperRepr::Tunnel(Box::new(v6(HOA, CN, vec![], echo(128, 8, 1)))),
            ),
        ),
    ];
    // ESP transport mode, NULL encryption: the Mobility Header in clear
    // inside, a zero ICV (no keys here).
    let inner = bu(4, BuFlags::A | BuFlags::H | BuFlags::K, 100, vec![]);
    let mut mh_bytes = Vec::new();
    if let UpperRepr::Mobility(m) = &inner {
        let ph = common::wire::checksum::PseudoHeader::V6 { src: HOA, dst: HA };
        m.emit_vec(&mut mh_bytes, &ph, cp);
    }
    let mut body = Vec::new();
    EspTrailer::frame(&mh_bytes, IpProtocol::Mobility, 4, &mut body);
    body.extend_from_slice(&[0; 16]);
    s.push((
        "BU under ESP transport mode (NULL)",
        v6(
            COA,
            HA,
            vec![hao(HOA)],
            UpperRepr::Esp(EspRepr {
                spi: 0x201,
                sequence: 1,
                body,
            }),
        ),
    ));

    let ike_sa = Proposal {
        number: 1,
        protocol: 1,
        spi: vec![],
        transforms: vec![
            Transform::new(1, 20, Some(256)),
            Transform::new(2, 5, None),
            Transform::new(4, 31, None),
        ],
    };
    let esp_sa = Proposal {
        number: 1,
        protocol: 3,
        spi: vec![0, 0, 0x12, 0x34],
        transforms: vec![Transform::new(1, 20, Some(128)), Transform::new(5, 0, None)],
    };
    let ts6 = TrafficSelector {
        ts_type: TrafficSelector::IPV6_ADDR_RANGE,
        ip_protocol: 135,
        start_port: 0,
        end_port: 65535,
        start_addr: IpAddr::V6(HOA),
        end_addr: IpAddr::V6(HOA),
    };
    let ts4 = TrafficSelector {
        ts_type: TrafficSelector::IPV4_ADDR_RANGE,
        ip_protocol: 0,
        start_port: 0,
        end_port: 65535,
        start_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 65)),
        end_addr: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66)),
    };
    let init = ike(
        ExchangeType::IKE_SA_INIT,
        IkeHeader::FLAG_I,
        0,
        vec![
            IkePayload::Sa(vec![ike_sa]),
            IkePayload::Ke {
                group: 31,
                data: (0..32).collect(),
            },
            IkePayload::Nonce((32..64).collect()),
            notify(NotifyType::NAT_DETECTION_SOURCE_IP, vec![0x5a; 20]),
            notify(NotifyType::NAT_DETECTION_DESTINATION_IP, vec![0xa5; 20]),
            IkePayload::Notify(Notify::different_tunnel_address_supported(cp)),
            IkePayload::CertReq {
                encoding: 4,
                data: vec![0xcc; 20],
            },
            IkePayload::VendorId(b"mip6-rs".to_vec()),
        ],
    );
    let auth = ike(
        ExchangeType::IKE_AUTH,
        IkeHeader::FLAG_I,
        1,
        vec![
            IkePayload::IdI(Identification {
                id_type: Identification::FQDN,
                data: b"mn.example".to_vec(),
            }),
            IkePayload::Cert {
                encoding: 12,
                data: [&[0x5c; 20][..], b"http://ca.example/mn"].concat(),
            },
            IkePayload::IdR(Identification {
                id_type: Identification::RFC822_ADDR,
                data: b"cn@example.net".to_vec(),
            }),
            IkePayload::Auth {
                method: 2,
                data: vec![0xab; 32],
            },
            IkePayload::Sa(vec![esp_sa]),
            IkePayload::TsI(vec![ts6, ts4]),
            IkePayload::TsR(vec![ts6]),
            IkePayload::Notify(MobikeSupported { r_mobike: true }.to_notify()),
            IkePayload::Notify(AdditionalAddress(IpAddr::V6(COA)).to_notify()),
            IkePayload::Notify(TunnelAddress(IpAddr::V6(HOA)).to_notify(cp)),
            IkePayload::Cp {
                cfg_type: 1,
                attributes: vec![CpAttribute {
                    attr_type: 8,
                    value: vec![],
                }],
            },
            IkePayload::Eap(vec![1, 1, 0, 5, 1]),
        ],
    );
    let update = ike(
        ExchangeType::INFORMATIONAL,
        IkeHeader::FLAG_I,
        2,
        vec![
            notify(NotifyType::UPDATE_SA_ADDRESSES, vec![]),
            notify(NotifyType::COOKIE2, vec![0xc2; 8]),
            IkePayload::Notify(
                PeerAddress {
                    port: 4500,
                    addr: IpAddr::V6(COA),
                }
                .to_notify(true, cp),
            ),
            IkePayload::Notify(
                PeerAddress {
                    port: 4500,
                    addr: IpAddr::V6(CN),
                }
                .to_notify(false, cp),
            ),
            IkePayload::Notify(SwitchToIpAddress(IpAddr::V6(CN)).to_notify(cp)),
            IkePayload::PeerAddressUpdate {
                all: true,
                protocol: 0,
                spi_size: 0,
                spis: vec![],
            },
            IkePayload::PeerAddressUpdate {
                all: false,
                protocol: 3,
                spi_size: 4,
                spis: vec![vec![0, 0, 0x12, 0x34]],
            },
            IkePayload::Delete {
                protocol: 3,
                spi_size: 4,
                spis: vec![vec![0, 0, 0x56, 0x78]],
            },
        ],
    );
    let sk = ike(
        ExchangeType::INFORMATIONAL,
        IkeHeader::FLAG_R,
        2,
        vec![IkePayload::Sk {
            first_inner: 0,
            data: vec![0xee; 40],
        }],
    );
    let init_v4 = ike(
        ExchangeType::IKE_SA_INIT,
        IkeHeader::FLAG_R,
        0,
        vec![
            IkePayload::Sa(vec![Proposal {
                number: 1,
                protocol: 1,
                spi: vec![],
                transforms: vec![
                    Transform::new(1, 20, Some(256)),
                    Transform::new(2, 5, None),
                    Transform::new(4, 31, None),
                ],
            }]),
            IkePayload::Ke {
                group: 31,
                data: (64..96).collect(),
            },
            IkePayload::Nonce((96..128).collect()),
        ],
    );
    s.push((
        "IKE_SA_INIT with every pre-auth payload",
        v6(
            COA,
            CN,
            vec![],
            udp(IKE_PORT, IKE_PORT, UdpPayload::Ike(init)),
        ),
    ));
    s.push((
        "IKE_AUTH payloads in clear (as after decryption)",
        v6(
            COA,
            CN,
            vec![],
            udp(IKE_NATT_PORT, IKE_NATT_PORT, UdpPayload::Ike(auth)),
        ),
    ));
    s.push((
        "INFORMATIONAL with the drafts' address updates",
        v6(
            COA,
            CN,
            vec![],
            udp(IKE_NATT_PORT, IKE_NATT_PORT, UdpPayload::Ike(update)),
        ),
    ));
    s.push((
        "INFORMATIONAL response with an SK payload",
        v6(
            CN,
            COA,
            vec![],
            udp(IKE_NATT_PORT, IKE_NATT_PORT, UdpPayload::Ike(sk)),
        ),
    ));
    let v4 = Ipv4Repr {
        tos: 0,
        ident: 1,
        flags_fragment: 0x4000,
        ttl: 64,
        protocol: IpProtocol::Udp,
        src: Ipv4Addr::new(192, 0, 2, 2),
        dst: Ipv4Addr::new(192, 0, 2, 1),
        options: vec![],
    };
    s.push((
        "IKE_SA_INIT response over IPv4",
        PacketRepr {
            ip: IpRepr::V4(v4),
            upper: udp(IKE_PORT, IKE_PORT, UdpPayload::Ike(init_v4)),
        },
    ));
    s.push((
        "UDP-encapsulated ESP (RFC 3948)",
        v6(
            COA,
            CN,
            vec![],
            udp(
                IKE_NATT_PORT,
                IKE_NATT_PORT,
                UdpPayload::Esp(EspRepr {
                    spi: 0x1234,
                    sequence: 9,
                    body: vec![0x42; 48],
                }),
            ),
        ),
    ));
    s.push((
        "NAT keepalive",
        v6(
            COA,
            CN,
            vec![],
            udp(IKE_NATT_PORT, IKE_NATT_PORT, UdpPayload::NatKeepalive),
        ),
    ));
    s.extend(nd_samples());
    s.into_iter()
        .map(|(label, p)| Sample {
            label,
            bytes: p.to_bytes(cp),
        })
        .collect()
}

/// Neighbor Discovery as the routers, home agent and mobile node send it,
/// with hop limit 255 (RFC 4861 §4, RFC 6275 §7 and §10.4.1).
fn nd_samples() -> Vec<(&'static str, PacketRepr)> {
    let access_ra = RouterAdvert {
        hop_limit: 64,
        flags: 0,
        router_lifetime: 1800,
        reachable_time: 30_000,
        retrans_timer: 1000,
        source_ll: Some(AR_MAC),
        mtu: Some(1500),
        prefixes: vec![PrefixInfo::slaac(Ipv6Addr::new(
            0x2001, 0xdb8, 2, 0, 0, 0, 0, 0,
        ))],
        advertisement_interval: Some(1000),
    };
    // RFC 6275 §7.1/§7.2: H set, and the home agent's full address in a
    // prefix option with R set; §7.3: the advertisement interval.
    let home_ra = RouterAdvert {
        flags: ra_flags::HOME_AGENT,
        source_ll: Some(HA_MAC),
        prefixes: vec![PrefixInfo {
            router_address: true,
            ..PrefixInfo::slaac(HA)
        }],
        advertisement_interval: Some(3000),
        ..access_ra.clone()
    };
    let na = |router, solicited, override_, target, target_ll| NdRepr::NeighborAdvert {
        flags: NaFlags {
            router,
            solicited,
            override_,
        },
        target,
        target_ll: Some(target_ll),
    };
    vec![
        (
            "RS from the unspecified address (no SLLA)",
            nd_packet(
                Ipv6Addr::UNSPECIFIED,
                ALL_ROUTERS,
                &NdRepr::RouterSolicit { source_ll: None },
            ),
        ),
        (
            "RS from a link-local address with SLLA",
            nd_packet(
                MN_LL,
                ALL_ROUTERS,
                &NdRepr::RouterSolicit {
                    source_ll: Some(MN_MAC),
                },
            ),
        ),
        (
            "RA with SLLA, MTU, advertisement interval and a prefix",
            nd_packet(AR_LL, ALL_NODES, &NdRepr::RouterAdvert(access_ra)),
        ),
        (
            "home agent's RA (H) with its address in a prefix option (R)",
            nd_packet(HA_LL, ALL_NODES, &NdRepr::RouterAdvert(home_ra)),
        ),
        (
            "NS for address resolution with SLLA",
            nd_packet(
                COA,
                solicited_node(AR),
                &NdRepr::NeighborSolicit {
                    target: AR,
                    source_ll: Some(MN_MAC),
                },
            ),
        ),
        (
            "NS DAD probe from the unspecified address",
            nd_packet(
                Ipv6Addr::UNSPECIFIED,
                solicited_node(COA),
                &NdRepr::NeighborSolicit {
                    target: COA,
                    source_ll: None,
                },
            ),
        ),
        (
            "solicited NA from a router (R=1, S=1, O=1)",
            nd_packet(AR, COA, &na(true, true, true, AR, AR_MAC)),
        ),
        (
            "home agent's proxy NA for a home address (S=1, O=0)",
            nd_packet(HA, HOME_PEER, &na(false, true, false, HOA, HA_MAC)),
        ),
        (
            "home agent's unsolicited NA for a home address (S=0, O=1)",
            nd_packet(HA, ALL_NODES, &na(false, false, true, HOA, HA_MAC)),
        ),
    ]
}
