//! Arbitrary bytes → `packet::decode` (with fields) must not panic; when the
//! strict `PacketRepr::parse` accepts them, emit → parse → emit must be a
//! fixed point and keep the repr (up to the fields emit derives).
#![no_main]

use common::wire::packet::{self, IpRepr, PacketRepr, UpperRepr};
use common::wire::{CodePoints, IpProtocol};
use libfuzzer_sys::fuzz_target;

/// Clears what emit derives: IPv6 next header and payload length.
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

fuzz_target!(|data: &[u8]| {
    let cp = CodePoints::default();
    let d = packet::decode(data, &cp, true);
    let Ok(p) = PacketRepr::parse(data, &cp) else {
        return;
    };
    assert!(d.errors.is_empty(), "parse accepted what decode refused");
    assert_eq!(d.repr.as_ref(), Some(&p), "decode and parse disagree");
    let b1 = p.to_bytes(&cp);
    let p2 = match PacketRepr::parse(&b1, &cp) {
        Ok(p2) => p2,
        Err(e) => panic!("re-emitted packet does not parse: {e}\n{p:?}"),
    };
    let b2 = p2.to_bytes(&cp);
    assert_eq!(b1, b2, "emit is not a fixed point through parse");
    assert_eq!(
        normalise(p2),
        normalise(p),
        "repr changed through emit/parse"
    );
});
