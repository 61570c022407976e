//! Vectors built with scapy 2.5.0 (`scapy.contrib.ikev2`), checked with
//! tshark 4.0.17; draft formats from hand-written bytes of their diagrams.

use super::*;
use crate::wire::FieldValue;
use core::net::IpAddr;
use proptest::prelude::*;

const BYTES_INIT: &str = concat!(
    "0102030405060708000000000000000021202208000000000000011422000054",
    "02000024010100030300000c01000014800e0100030000080200000500000008",
    "040000130000002c020100040300000c0100000c800e0080030000080300000c",
    "0300000802000005000000080400000e28000048001300000001020304050607",
    "08090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324252627",
    "28292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f2900002440414243",
    "4445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f2900001c",
    "00004004a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b30000001c00004005",
    "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3",
);
const BYTES_AUTH: &str = concat!(
    "010203040506070811121314151617182320230800000001000000f627000016",
    "020000006d6e2e6578616d706c652e6f72672100002802000000101112131415",
    "161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f2c0000240000",
    "002001030402c00102030300000c01000014800e008000000008050000002d00",
    "004002000000070000100000ffffc0000201c0000201088700280000ffff2001",
    "0db800000000000000000000000120010db80000000000000000000000012900",
    "0030010000000811002801f401f420010db80001000000000000000000002001",
    "0db800010000000000000000ffff000000080000400c",
);
const BYTES_MISC: &str = concat!(
    "010203040506070811121314151617182a202520000000070000007926000010",
    "03040002c0010203c00405062f00001904000102030405060708090a0b0c0d0e",
    "0f101112132b0000100100000000010000000800002900000e7374726f6e6753",
    "77616e3000000c03044009c00102030000000a010500060161",
);
const BYTES_SK: &str = concat!(
    "010203040506070811121314151617182e202308000000010000005023000034",
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
    "202122232425262728292a2b2c2d2e2f",
);

fn cp() -> CodePoints {
    CodePoints::default()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn range(a: u8, b: u8) -> Vec<u8> {
    (a..b).collect()
}

fn header(spi_r: u64, exchange: ExchangeType, flags: u8, message_id: u32) -> IkeHeader {
    IkeHeader {
        spi_i: 0x0102030405060708,
        spi_r,
        major_version: 2,
        minor_version: 0,
        exchange,
        flags,
        message_id,
    }
}

fn ts(ts_type: u8, ip_protocol: u8, ports: (u16, u16), a: &str, b: &str) -> TrafficSelector {
    TrafficSelector {
        ts_type,
        ip_protocol,
        start_port: ports.0,
        end_port: ports.1,
        start_addr: a.parse().unwrap(),
        end_addr: b.parse().unwrap(),
    }
}

fn no_spi(notify_type: u16, data: Vec<u8>) -> IkePayload {
    IkePayload::Notify(Notify::new(notify_type, data))
}

const SPI_R: u64 = 0x1112131415161718;

fn vectors() -> Vec<(&'static str, IkeRepr)> {
    let init = IkeRepr {
        header: header(0, ExchangeType::IKE_SA_INIT, IkeHeader::FLAG_I, 0),
        payloads: vec![
            IkePayload::Sa(vec![
                Proposal {
                    number: 1,
                    protocol: 1,
                    spi: vec![],
                    transforms: vec![
                        Transform::new(1, 20, Some(256)),
                        Transform::new(2, 5, None),
                        Transform::new(4, 19, None),
                    ],
                },
                Proposal {
                    number: 2,
                    protocol: 1,
                    spi: vec![],
                    transforms: vec![
                        Transform::new(1, 12, Some(128)),
                        Transform::new(3, 12, None),
                        Transform::new(2, 5, None),
                        Transform::new(4, 14, None),
                    ],
                },
            ]),
            IkePayload::Ke {
                group: 19,
                data: range(0, 64),
            },
            IkePayload::Nonce(range(0x40, 0x60)),
            no_spi(16388, range(0xa0, 0xb4)),
            no_spi(16389, range(0xc0, 0xd4)),
        ],
    };
    let auth = IkeRepr {
        header: header(SPI_R, ExchangeType::IKE_AUTH, IkeHeader::FLAG_I, 1),
        payloads: vec![
            IkePayload::IdI(Identification {
                id_type: Identification::FQDN,
                data: b"mn.example.org".to_vec(),
            }),
            IkePayload::Auth {
                method: 2,
                data: range(0x10, 0x30),
            },
            IkePayload::Sa(vec![Proposal {
                number: 1,
                protocol: 3,
                spi: vec![0xc0, 1, 2, 3],
                transforms: vec![Transform::new(1, 20, Some(128)), Transform::new(5, 0, None)],
            }]),
            IkePayload::TsI(vec![
                ts(7, 0, (0, 65535), "192.0.2.1", "192.0.2.1"),
                ts(8, 135, (0, 65535), "2001:db8::1", "2001:db8::1"),
            ]),
            IkePayload::TsR(vec![ts(
                8,
                17,
                (500, 500),
                "2001:db8:1::",
                "2001:db8:1::ffff",
            )]),
            no_spi(NotifyType::MOBIKE_SUPPORTED.into(), vec![]),
        ],
    };
    let misc = IkeRepr {
        header: header(SPI_R, ExchangeType::INFORMATIONAL, IkeHeader::FLAG_R, 7),
        payloads: vec![
            IkePayload::Delete {
                protocol: 3,
                spi_size: 4,
                spis: vec![vec![0xc0, 1, 2, 3], vec![0xc0, 4, 5, 6]],
            },
            IkePayload::CertReq {
                encoding: 4,
                data: range(0, 20),
            },
            IkePayload::Cp {
                cfg_type: 1,
                attributes: vec![
                    CpAttribute {
                        attr_type: 1,
                        value: vec![],
                    },
                    CpAttribute {
                        attr_type: 8,
                        value: vec![],
                    },
                ],
            },
            IkePayload::VendorId(b"strongSwan".to_vec()),
            IkePayload::Notify(Notify {
                protocol: 3,
                spi: vec![0xc0, 1, 2, 3],
                notify_type: NotifyType::REKEY_SA.into(),
                data: vec![],
            }),
            IkePayload::Eap(vec![1, 5, 0, 6, 1, b'a']),
        ],
    };
    let sk = IkeRepr {
        header: header(SPI_R, ExchangeType::IKE_AUTH, IkeHeader::FLAG_I, 1),
        payloads: vec![IkePayload::Sk {
            first_inner: IkePayloadType::IDi.into(),
            data: range(0, 48),
        }],
    };
    vec![
        (BYTES_INIT, init),
        (BYTES_AUTH, auth),
        (BYTES_MISC, misc),
        (BYTES_SK, sk),
    ]
}

fn emit(r: &IkeRepr) -> Vec<u8> {
    let mut out = Vec::new();
    r.emit(&mut out, &cp());
    assert_eq!(out.len(), r.buffer_len(&cp()));
    out
}

#[test]
fn scapy_vectors_parse_and_reemit() {
    for (hex, repr) in vectors() {
        let bytes = unhex(hex);
        assert_eq!(IkeRepr::parse(&bytes, &cp()), Ok(repr.clone()));
        assert_eq!(emit(&repr), bytes);
    }
}

#[test]
fn every_truncation_is_refused() {
    for (hex, _) in vectors() {
        let bytes = unhex(hex);
        for n in 0..bytes.len() {
            assert!(IkeRepr::parse(&bytes[..n], &cp()).is_err(), "prefix {n}");
        }
        // The length field must cover the whole buffer, no more, no less.
        let mut long = bytes.clone();
        long.push(0);
        let err = IkeRepr::parse(&long, &cp());
        assert_eq!(err, Err(WireError::BadLength("ike message length")));
    }
}

#[test]
fn display_lists_payloads() {
    let v = vectors();
    assert_eq!(
        v[0].1.to_string(),
        "IKE_SA_INIT #0 I req spi_i=0102030405060708 spi_r=0000000000000000 \
         [SA KE Ni N(NAT_DETECTION_SOURCE_IP) N(NAT_DETECTION_DESTINATION_IP)]"
    );
    assert!(v[2]
        .1
        .to_string()
        .ends_with("[D(3x2) CERTREQ CP V(7374726f6e675377616e) N(REKEY_SA) EAP]"));
    assert!(v[3].1.to_string().ends_with("[SK(IDi 48B)]"));
}

fn nums(f: &Fields, name: &str) -> Vec<u64> {
    f.get(name)
        .into_iter()
        .map(|v| match v {
            FieldValue::Num(n) => *n,
            other => panic!("{name}: {other:?}"),
        })
        .collect()
}

#[test]
fn fields_match_tshark() {
    let v = vectors();
    let mut f = Fields::default();
    v[0].1.fields(&cp(), &mut f);
    // Values as tshark 4.0.17 shows them for the same bytes.
    assert_eq!(f.get("isakmp.ispi"), [&FieldValue::Bytes(range(1, 9))]);
    assert_eq!(nums(&f, "isakmp.version"), [0x20]);
    assert_eq!(nums(&f, "isakmp.length"), [276]);
    assert_eq!(
        nums(&f, "isakmp.typepayload"),
        [33, 2, 3, 3, 3, 2, 3, 3, 3, 3, 34, 40, 41, 41]
    );
    assert_eq!(
        nums(&f, "isakmp.payloadlength"),
        [84, 36, 12, 8, 8, 44, 12, 8, 8, 8, 72, 36, 28, 28]
    );
    assert_eq!(nums(&f, "isakmp.ike2.attr.key_length"), [256, 128]);
    assert_eq!(nums(&f, "isakmp.tf.id.dh"), [19, 14]);
    assert_eq!(nums(&f, "isakmp.key_exchange.dh_group"), [19]);
    assert_eq!(nums(&f, "isakmp.notify.msgtype"), [16388, 16389]);

    let mut f = Fields::default();
    v[1].1.fields(&cp(), &mut f);
    assert_eq!(
        f.get("isakmp.id.data.fqdn"),
        [&FieldValue::Text("mn.example.org".into())]
    );
    assert_eq!(nums(&f, "isakmp.auth.method"), [2]);
    assert_eq!(
        f.get("isakmp.spi"),
        [&FieldValue::Bytes(vec![0xc0, 1, 2, 3])]
    );
    assert_eq!(nums(&f, "isakmp.tf.id.esn"), [0]);
    assert_eq!(nums(&f, "isakmp.ts.selector_length"), [16, 40, 40]);
    assert_eq!(nums(&f, "isakmp.ts.start_port"), [0, 0, 500]);
    let a: IpAddr = "2001:db8:1::ffff".parse().unwrap();
    assert_eq!(f.get("isakmp.ts.end_ipv6")[1], &FieldValue::Addr(a));

    let mut f = Fields::default();
    v[2].1.fields(&cp(), &mut f);
    assert_eq!(nums(&f, "isakmp.spinum"), [2]);
    assert_eq!(f.get("isakmp.delete.spi").len(), 2);
    assert_eq!(nums(&f, "isakmp.certreq.type"), [4]);
    assert_eq!(nums(&f, "isakmp.cfg.attr.type"), [1, 8]);
    assert_eq!(
        f.get("isakmp.vid_bytes"),
        [&FieldValue::Bytes(b"strongSwan".to_vec())]
    );
    assert_eq!(nums(&f, "isakmp.notify.protoid"), [3]);
    assert_eq!(nums(&f, "isakmp.nextpayload"), [42, 38, 47, 43, 41, 48, 0]);

    let mut f = Fields::default();
    v[3].1.fields(&cp(), &mut f);
    assert_eq!(nums(&f, "isakmp.nextpayload"), [46, 35]);
    assert_eq!(f.get("isakmp.enc.data"), [&FieldValue::Bytes(range(0, 48))]);
}

/// A message around `payload`, the body of one payload of type `ty`.
fn one_payload(ty: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut m = unhex("0102030405060708111213141516171800202508000000020000000000000000");
    m.truncate(28);
    m[16] = ty;
    m.extend_from_slice(&[0, flags]);
    m.extend_from_slice(&(4 + body.len() as u16).to_be_bytes());
    m.extend_from_slice(body);
    let len = (m.len() as u32).to_be_bytes();
    m[24..28].copy_from_slice(&len);
    m
}

#[test]
fn unknown_payloads() {
    let crit = one_payload(200, 0x80, &[1, 2, 3]);
    assert_eq!(
        IkeRepr::parse(&crit, &cp()),
        Err(WireError::UnsupportedCritical(200))
    );
    let plain = one_payload(200, 0, &[1, 2, 3]);
    let r = IkeRepr::parse(&plain, &cp()).unwrap();
    assert_eq!(
        r.payloads,
        [IkePayload::Unknown {
            payload_type: 200,
            data: vec![1, 2, 3]
        }]
    );
    assert_eq!(emit(&r), plain);
    // The critical bit of a known payload is ignored, and cleared on emit.
    let nonce = one_payload(40, 0x80, &[9; 16]);
    let r = IkeRepr::parse(&nonce, &cp()).unwrap();
    assert_eq!(r.payloads, [IkePayload::Nonce(vec![9; 16])]);
    assert_eq!(emit(&r)[29], 0);
}

#[test]
fn malformed_payloads() {
    let bad = |ty: u8, body: &[u8]| IkeRepr::parse(&one_payload(ty, 0, body), &cp());
    // Payload length below the generic header.
    let mut m = one_payload(40, 0, &[]);
    m[31] = 3;
    assert_eq!(
        IkeRepr::parse(&m, &cp()),
        Err(WireError::BadLength("ike payload length"))
    );
    // Delete: SPI size and count must account for the data.
    assert!(bad(42, &[3, 4, 0, 2, 1, 2, 3, 4]).is_err());
    assert!(bad(42, &[3, 0, 0, 1]).is_err());
    // Notify SPI longer than the payload.
    assert!(bad(41, &[3, 4, 0x40, 0x09, 1, 2]).is_err());
    // TS of an unknown type, and of a wrong length.
    let ts3 = [1, 0, 0, 0, 9, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        bad(44, &ts3),
        Err(WireError::BadValue("ike traffic selector type"))
    );
    let ts7 = [1, 0, 0, 0, 7, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(bad(44, &ts7).is_err());
    // A proposal claiming more proposals follow, when none does.
    let sa = [2, 0, 0, 8, 1, 1, 0, 0];
    assert_eq!(bad(33, &sa), Err(WireError::BadValue("ike proposal last")));
    // A zero-length transform cannot loop.
    let sa = [0, 0, 0, 16, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1];
    assert!(bad(33, &sa).is_err());
    // Nothing may follow SK.
    let mut sk = one_payload(46, 0, &[1, 2, 3, 4]);
    sk.extend_from_slice(&[0, 0, 0, 4]);
    let len = (sk.len() as u32).to_be_bytes();
    sk[24..28].copy_from_slice(&len);
    assert!(IkeRepr::parse(&sk, &cp()).is_err());
}

// REQ AM-3.4a: Peer Address Update payload (addrmgmt Annex C): A flag and
// 7-bit Protocol ID, SPI size, number of SPIs, SPIs.
#[test]
fn peer_address_update_payload() {
    let body = [0x03, 4, 0, 2, 0xc0, 1, 2, 3, 0xc0, 4, 5, 6];
    let m = one_payload(128, 0, &body);
    let r = IkeRepr::parse(&m, &cp()).unwrap();
    let pau = IkePayload::PeerAddressUpdate {
        all: false,
        protocol: 3,
        spi_size: 4,
        spis: vec![vec![0xc0, 1, 2, 3], vec![0xc0, 4, 5, 6]],
    };
    assert_eq!(r.payloads, [pau]);
    assert_eq!(emit(&r), m);
    // All flag set, no SPIs.
    let all = one_payload(128, 0, &[0x83, 0, 0, 0]);
    let r = IkeRepr::parse(&all, &cp()).unwrap();
    let pau = IkePayload::PeerAddressUpdate {
        all: true,
        protocol: 3,
        spi_size: 0,
        spis: vec![],
    };
    assert_eq!(r.payloads, [pau]);
    assert_eq!(emit(&r), all);
    let mut f = Fields::default();
    r.fields(&cp(), &mut f);
    assert_eq!(nums(&f, "isakmp.pau.all"), [1]);
    assert_eq!(nums(&f, "isakmp.pau.protoid"), [3]);
    // The count must match the SPIs present.
    assert!(IkeRepr::parse(&one_payload(128, 0, &[3, 4, 0, 2, 1, 2, 3, 4]), &cp()).is_err());
    // The type follows the configured code point.
    let other = CodePoints {
        ike_payload_peer_address_update: 190,
        ..cp()
    };
    let r = IkeRepr::parse(&one_payload(190, 0, &[0x83, 0, 0, 0]), &other).unwrap();
    assert!(matches!(
        r.payloads[0],
        IkePayload::PeerAddressUpdate { all: true, .. }
    ));
}

// Format of AM-3.3a (its behaviour is the engine's): PEER_ADDRESS_SOURCE/_DESTINATION data is
// Address Family (1 IPv4, 2 IPv6), Port, Address.
#[test]
fn peer_address_notify_format() {
    let v4 = [0, 1, 0x01, 0xf4, 192, 0, 2, 1];
    let p = PeerAddress::parse(&v4).unwrap();
    assert_eq!(p.port, 500);
    assert_eq!(p.addr, "192.0.2.1".parse::<IpAddr>().unwrap());
    let mut out = Vec::new();
    p.emit(&mut out);
    assert_eq!(out, v4);
    let mut v6 = vec![0, 2, 0x11, 0x94];
    v6.extend_from_slice(
        &"2001:db8::2"
            .parse::<core::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    assert_eq!(PeerAddress::parse(&v6).unwrap().port, 4500);
    assert!(PeerAddress::parse(&[0, 3, 0, 0, 192, 0, 2, 1]).is_err());
    assert!(PeerAddress::parse(&[0, 2, 0, 0, 192, 0, 2, 1]).is_err());
    assert!(PeerAddress::parse(&v6[..19]).is_err());
    // Carried in a notification with the configured type, and shown.
    let n = p.to_notify(false, &cp());
    assert_eq!((n.notify_type, n.protocol, n.spi.len()), (40961, 0, 0));
    let r = IkeRepr {
        header: header(SPI_R, ExchangeType::INFORMATIONAL, 0, 3),
        payloads: vec![IkePayload::Notify(n)],
    };
    let back = IkeRepr::parse(&emit(&r), &cp()).unwrap();
    assert_eq!(back, r);
    let mut f = Fields::default();
    back.fields(&cp(), &mut f);
    assert_eq!(nums(&f, "isakmp.peer_address.port"), [500]);
    assert_eq!(
        f.get("isakmp.peer_address.addr"),
        [&FieldValue::Addr(p.addr)]
    );
}

// REQ RM-4.2c: SWITCH_TO_IP_ADDRESS has Protocol ID 0, SPI size 0 and 4 or
// 16 octets of address.
#[test]
fn switch_to_ip_address() {
    let a: IpAddr = "198.51.100.7".parse().unwrap();
    let n = SwitchToIpAddress(a).to_notify(&cp());
    assert_eq!(n.notify_type, 40962);
    assert_eq!((n.protocol, n.spi.len()), (0, 0));
    assert_eq!(n.data, [198, 51, 100, 7]);
    assert_eq!(SwitchToIpAddress::from_notify(&n), Ok(SwitchToIpAddress(a)));
    let six = Notify::new(40962, vec![0x20; 16]);
    assert!(SwitchToIpAddress::from_notify(&six).unwrap().0.is_ipv6());
    let five = Notify::new(40962, vec![1; 5]);
    assert!(SwitchToIpAddress::from_notify(&five).is_err());
    let esp = Notify {
        protocol: 3,
        ..n.clone()
    };
    assert!(SwitchToIpAddress::from_notify(&esp).is_err());
    let spi = Notify {
        spi: vec![1; 4],
        ..n
    };
    assert!(SwitchToIpAddress::from_notify(&spi).is_err());
}

// Format for RM-4.1a (sending it is the engine's job): MOBIKE_SUPPORTED may carry the single octet 0x52 ('R').
#[test]
fn mobike_supported_r() {
    let n = MobikeSupported { r_mobike: true }.to_notify();
    assert_eq!(
        (n.notify_type, n.protocol, n.data.as_slice()),
        (16396, 0, &[0x52][..])
    );
    assert_eq!(
        MobikeSupported::from_notify(&n),
        Ok(MobikeSupported { r_mobike: true })
    );
    assert_eq!(
        MobikeSupported::parse(&[]),
        Ok(MobikeSupported { r_mobike: false })
    );
    assert!(MobikeSupported::parse(&[0x53]).is_err());
    let a = AdditionalAddress("2001:db8::9".parse().unwrap()).to_notify();
    assert_eq!(
        NotifyType::from(a.notify_type),
        NotifyType::ADDITIONAL_IP6_ADDRESS
    );
    assert_eq!(
        AdditionalAddress::from_notify(&a).unwrap().0,
        "2001:db8::9".parse::<IpAddr>().unwrap()
    );
}

// REQ TA-7: TUNNEL_ADDRESS is IP Type (1 IPv4, 2 IPv6), 3 reserved octets,
// address; parsed with Protocol ID 0 or 3, sent with 3 (ESP).
#[test]
fn tunnel_address() {
    let v4 = [1, 0, 0, 0, 10, 1, 2, 3];
    for protocol in [0, 3] {
        let n = Notify {
            protocol,
            spi: vec![],
            notify_type: 40964,
            data: v4.to_vec(),
        };
        let t = TunnelAddress::from_notify(&n).unwrap();
        assert_eq!(t.0, "10.1.2.3".parse::<IpAddr>().unwrap());
    }
    let n = TunnelAddress("10.1.2.3".parse().unwrap()).to_notify(&cp());
    assert_eq!((n.notify_type, n.protocol, n.spi.len()), (40964, 3, 0));
    assert_eq!(n.data, v4);
    let mut v6 = vec![2, 0, 0, 0];
    v6.extend_from_slice(&[0x20; 16]);
    assert!(TunnelAddress::parse(&v6).unwrap().0.is_ipv6());
    assert!(TunnelAddress::parse(&[3, 0, 0, 0, 10, 1, 2, 3]).is_err());
    assert!(TunnelAddress::parse(&[2, 0, 0, 0, 10, 1, 2, 3]).is_err());
    let ike = Notify {
        protocol: 1,
        ..n.clone()
    };
    assert!(TunnelAddress::from_notify(&ike).is_err());
    let d = Notify::different_tunnel_address_supported(&cp());
    assert_eq!(
        (d.notify_type, d.protocol, d.spi.len(), d.data.len()),
        (40963, 0, 0, 0)
    );
    let mut f = Fields::default();
    IkePayload::Notify(n).fields(&cp(), &mut f);
    assert_eq!(f.get("isakmp.tunnel_address").len(), 1);
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn arb_ts() -> impl Strategy<Value = TrafficSelector> {
    let v4 = (any::<[u8; 4]>(), any::<[u8; 4]>())
        .prop_map(|(a, b)| (7u8, IpAddr::from(a), IpAddr::from(b)));
    let v6 = (any::<[u8; 16]>(), any::<[u8; 16]>())
        .prop_map(|(a, b)| (8u8, IpAddr::from(a), IpAddr::from(b)));
    (prop_oneof![v4, v6], any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
        |((ts_type, start_addr, end_addr), ip_protocol, start_port, end_port)| TrafficSelector {
            ts_type,
            ip_protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        },
    )
}

fn arb_proposal() -> impl Strategy<Value = Proposal> {
    let attr = prop_oneof![
        (0u16..0x8000, any::<u16>())
            .prop_map(|(attr_type, value)| TransformAttribute::Tv { attr_type, value }),
        (0u16..0x8000, bytes(6))
            .prop_map(|(attr_type, value)| TransformAttribute::Tlv { attr_type, value }),
    ];
    let transform = (any::<u8>(), any::<u16>(), prop::collection::vec(attr, 0..3)).prop_map(
        |(transform_type, id, attributes)| Transform {
            transform_type,
            id,
            attributes,
        },
    );
    (
        any::<u8>(),
        any::<u8>(),
        bytes(9),
        prop::collection::vec(transform, 0..4),
    )
        .prop_map(|(number, protocol, spi, transforms)| Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
}

/// SPI size and SPIs of that size.
fn arb_spis() -> impl Strategy<Value = (u8, Vec<Vec<u8>>)> {
    (0u8..9).prop_flat_map(|n| {
        let count = if n == 0 { 0..1 } else { 0..4 };
        let spi = prop::collection::vec(any::<u8>(), usize::from(n));
        (Just(n), prop::collection::vec(spi, count))
    })
}

fn arb_id() -> impl Strategy<Value = Identification> {
    (any::<u8>(), bytes(20)).prop_map(|(id_type, data)| Identification { id_type, data })
}

fn arb_payload() -> impl Strategy<Value = IkePayload> {
    let cp_attr =
        (0u16..0x8000, bytes(17)).prop_map(|(attr_type, value)| CpAttribute { attr_type, value });
    prop_oneof![
        prop::collection::vec(arb_proposal(), 0..3).prop_map(IkePayload::Sa),
        (any::<u16>(), bytes(40)).prop_map(|(group, data)| IkePayload::Ke { group, data }),
        arb_id().prop_map(IkePayload::IdI),
        arb_id().prop_map(IkePayload::IdR),
        (any::<u8>(), bytes(30)).prop_map(|(encoding, data)| IkePayload::Cert { encoding, data }),
        (any::<u8>(), bytes(30))
            .prop_map(|(encoding, data)| IkePayload::CertReq { encoding, data }),
        (any::<u8>(), bytes(30)).prop_map(|(method, data)| IkePayload::Auth { method, data }),
        bytes(40).prop_map(IkePayload::Nonce),
        (any::<u8>(), bytes(9), any::<u16>(), bytes(20)).prop_map(
            |(protocol, spi, notify_type, data)| {
                IkePayload::Notify(Notify {
                    protocol,
                    spi,
                    notify_type,
                    data,
                })
            }
        ),
        (any::<u8>(), arb_spis()).prop_map(|(protocol, (spi_size, spis))| IkePayload::Delete {
            protocol,
            spi_size,
            spis
        }),
        bytes(20).prop_map(IkePayload::VendorId),
        prop::collection::vec(arb_ts(), 0..3).prop_map(IkePayload::TsI),
        prop::collection::vec(arb_ts(), 0..3).prop_map(IkePayload::TsR),
        bytes(20).prop_map(IkePayload::Eap),
        (any::<u8>(), prop::collection::vec(cp_attr, 0..3)).prop_map(|(cfg_type, attributes)| {
            IkePayload::Cp {
                cfg_type,
                attributes,
            }
        }),
        (any::<bool>(), 0u8..0x80, arb_spis()).prop_map(|(all, protocol, (spi_size, spis))| {
            IkePayload::PeerAddressUpdate {
                all,
                protocol,
                spi_size,
                spis,
            }
        }),
        (prop_oneof![1u8..33, 49u8..128, 129u8..=255], bytes(20))
            .prop_map(|(payload_type, data)| IkePayload::Unknown { payload_type, data }),
    ]
}

fn arb_repr() -> impl Strategy<Value = IkeRepr> {
    let header = (
        any::<u64>(),
        any::<u64>(),
        0u8..16,
        0u8..16,
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(
            |(spi_i, spi_r, major_version, minor_version, exchange, flags, message_id)| IkeHeader {
                spi_i,
                spi_r,
                major_version,
                minor_version,
                exchange: exchange.into(),
                flags,
                message_id,
            },
        );
    let sk = prop::option::of((any::<u8>(), bytes(40)));
    (header, prop::collection::vec(arb_payload(), 0..6), sk).prop_map(
        |(header, mut payloads, sk)| {
            if let Some((first_inner, data)) = sk {
                payloads.push(IkePayload::Sk { first_inner, data });
            }
            IkeRepr { header, payloads }
        },
    )
}

proptest! {
    #[test]
    fn emit_then_parse_round_trips(repr in arb_repr()) {
        let bytes = emit(&repr);
        prop_assert_eq!(IkeRepr::parse(&bytes, &cp()), Ok(repr.clone()));
        let mut f = Fields::default();
        repr.fields(&cp(), &mut f);
        let _ = repr.to_string();
    }

    #[test]
    fn mutated_vectors_never_panic(v in 0usize..4, at in any::<prop::sample::Index>(), x in any::<u8>()) {
        let mut b = unhex(vectors()[v].0);
        let i = at.index(b.len());
        b[i] ^= x;
        let _ = IkeRepr::parse(&b, &cp());
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut b in bytes(300)) {
        // Half the time, make the length field right so payloads get parsed.
        if b.len() >= 28 && b[0] & 1 == 0 {
            let len = (b.len() as u32).to_be_bytes();
            b[24..28].copy_from_slice(&len);
        }
        let _ = IkeRepr::parse(&b, &cp());
    }
}
