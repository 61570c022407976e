//! Arbitrary bytes → `MhPacket::new_checked` + `MhRepr::parse`; whatever
//! parses must emit (checksum filled) and parse back to the same repr.
#![no_main]

use common::wire::checksum::PseudoHeader;
use common::wire::{CodePoints, MhPacket, MhRepr};
use core::net::Ipv6Addr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cp = CodePoints::default();
    let Ok(p) = MhPacket::new_checked(data) else {
        return;
    };
    let Ok(r) = MhRepr::parse(&p, &cp) else {
        return;
    };
    let ph = PseudoHeader::V6 {
        src: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100),
        dst: Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1),
    };
    let mut b = Vec::new();
    r.emit_vec(&mut b, &ph, &cp);
    assert_eq!(b.len(), r.buffer_len(&cp), "buffer_len disagrees with emit");
    let p2 = match MhPacket::new_checked(&b[..]) {
        Ok(p2) => p2,
        Err(e) => panic!("re-emitted MH fails check_len: {e}\n{r:?}"),
    };
    assert!(p2.verify_checksum(&ph), "emitted checksum does not verify");
    let r2 = match MhRepr::parse(&p2, &cp) {
        Ok(r2) => r2,
        Err(e) => panic!("re-emitted MH does not parse: {e}\n{r:?}"),
    };
    assert_eq!(r2, r, "repr changed through emit/parse");
});
