//! Codec throughput: parse and emit of a Binding Update with a Home Address
//! option (a whole IPv6 packet) and of an IKE_AUTH-sized IKEv2 message.
//!
//! Each group has a `baseline_copy` bench that copies the same number of
//! bytes into a fresh `Vec`, so that parse/emit cost reads as a multiple of
//! a copy measured in the same run:
//!
//! ```text
//! cargo bench -p common --bench codec
//! ```

#![allow(clippy::unwrap_used, reason = "bench setup")]

use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use common::wire::ext::ExtHeaderRepr;
use common::wire::ike::{
    ExchangeType, Identification, IkeHeader, IkePayload, IkeRepr, Notify, NotifyType, Proposal,
    TrafficSelector, Transform,
};
use common::wire::mh::{BuFlags, MhMessage, MhOption, MhRepr};
use common::wire::packet::{PacketRepr, UpperRepr};
use common::wire::CodePoints;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// MN (care-of 2001:db8:2::10, home 2001:db8:1::100) to CN 2001:db8:3::1.
fn bu_hao() -> PacketRepr {
    let bu = MhRepr {
        message: MhMessage::BindingUpdate {
            seq: 7,
            flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::K),
            lifetime: 100,
        },
        options: vec![MhOption::AlternateCareOfAddress(addr("2001:db8:2::10"))],
    };
    PacketRepr::ipv6(
        addr("2001:db8:2::10"),
        addr("2001:db8:3::1"),
        vec![ExtHeaderRepr::home_address(addr("2001:db8:1::100"))],
        UpperRepr::Mobility(bu),
    )
}

fn ts6(a: &str, b: &str) -> TrafficSelector {
    TrafficSelector {
        ts_type: TrafficSelector::IPV6_ADDR_RANGE,
        ip_protocol: 0,
        start_port: 0,
        end_port: 0xffff,
        start_addr: IpAddr::V6(addr(a)),
        end_addr: IpAddr::V6(addr(b)),
    }
}

/// IKE_AUTH request in the clear: IDi, AUTH, SA (ESP, 3 transforms), TSi,
/// TSr and a few notifications.
fn ike_auth() -> IkeRepr {
    IkeRepr {
        header: IkeHeader {
            spi_i: 0x0102_0304_0506_0708,
            spi_r: 0x1112_1314_1516_1718,
            major_version: 2,
            minor_version: 0,
            exchange: ExchangeType::IKE_AUTH,
            flags: IkeHeader::FLAG_I,
            message_id: 1,
        },
        payloads: vec![
            IkePayload::IdI(Identification {
                id_type: Identification::FQDN,
                data: b"mn.home.example.org".to_vec(),
            }),
            IkePayload::Notify(Notify::new(NotifyType::INITIAL_CONTACT.into(), vec![])),
            IkePayload::Auth {
                method: 2,
                data: (0..=255u8).take(64).collect(),
            },
            IkePayload::Notify(Notify::new(NotifyType::MOBIKE_SUPPORTED.into(), vec![])),
            IkePayload::Sa(vec![Proposal {
                number: 1,
                protocol: 3,
                spi: vec![0xc0, 0x01, 0x02, 0x03],
                transforms: vec![
                    Transform::new(1, 20, Some(256)),
                    Transform::new(4, 31, None),
                    Transform::new(5, 0, None),
                ],
            }]),
            IkePayload::TsI(vec![ts6("2001:db8:1::100", "2001:db8:1::100")]),
            IkePayload::TsR(vec![
                ts6("2001:db8:3::1", "2001:db8:3::1"),
                ts6("2001:db8:4::", "2001:db8:4::ffff"),
            ]),
            IkePayload::Notify(Notify::new(
                NotifyType::ADDITIONAL_IP6_ADDRESS.into(),
                addr("2001:db8:2::10").octets().to_vec(),
            )),
            IkePayload::Notify(Notify::new(NotifyType::USE_TRANSPORT_MODE.into(), vec![])),
        ],
    }
}

fn copy(b: &[u8]) -> Vec<u8> {
    Vec::from(b)
}

fn bench_bu_hao(c: &mut Criterion) {
    let cp = CodePoints::default();
    let repr = bu_hao();
    let bytes = repr.to_bytes(&cp);
    assert_eq!(PacketRepr::parse(&bytes, &cp).unwrap().to_bytes(&cp), bytes);
    let mut g = c.benchmark_group("bu_hao");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("baseline_copy", |b| b.iter(|| copy(black_box(&bytes))));
    g.bench_function("parse", |b| {
        b.iter(|| PacketRepr::parse(black_box(&bytes), &cp))
    });
    g.bench_function("emit", |b| b.iter(|| black_box(&repr).to_bytes(&cp)));
    g.finish();
}

fn bench_ike_auth(c: &mut Criterion) {
    let cp = CodePoints::default();
    let repr = ike_auth();
    let mut bytes = Vec::new();
    repr.emit(&mut bytes, &cp);
    assert!((300..=500).contains(&bytes.len()), "{} bytes", bytes.len());
    assert_eq!(IkeRepr::parse(&bytes, &cp).unwrap(), repr);
    let mut g = c.benchmark_group("ike_auth");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("baseline_copy", |b| b.iter(|| copy(black_box(&bytes))));
    g.bench_function("parse", |b| {
        b.iter(|| IkeRepr::parse(black_box(&bytes), &cp))
    });
    g.bench_function("emit", |b| {
        b.iter(|| {
            let mut out = Vec::new();
            black_box(&repr).emit(&mut out, &cp);
            out
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_bu_hao, bench_ike_auth
}
criterion_main!(benches);
