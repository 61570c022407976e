//! Arbitrary bytes → `IkeRepr::parse`; whatever parses must emit and parse
//! back to the same repr, and emit again to the same bytes.
#![no_main]

use common::wire::{CodePoints, IkeRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cp = CodePoints::default();
    let Ok(r) = IkeRepr::parse(data, &cp) else {
        return;
    };
    let mut b = Vec::new();
    r.emit(&mut b, &cp);
    assert_eq!(b.len(), r.buffer_len(&cp), "buffer_len disagrees with emit");
    let r2 = match IkeRepr::parse(&b, &cp) {
        Ok(r2) => r2,
        Err(e) => panic!("re-emitted IKE message does not parse: {e}\n{r:?}"),
    };
    assert_eq!(r2, r, "repr changed through emit/parse");
    let mut b2 = Vec::new();
    r2.emit(&mut b2, &cp);
    assert_eq!(b2, b, "emit is not a fixed point through parse");
});
