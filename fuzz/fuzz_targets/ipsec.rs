//! Arbitrary bytes → `Ipsec::inbound` at a node with SAs (never panics),
//! and as a plaintext packet → `outbound` at its peer: whatever the peer
//! seals, in transport or tunnel mode, must open to the same bytes.
#![no_main]

use common::ipsec::{
    Action, AddressPair, Algorithm, Inbound, Ipsec, Layout, Mode, Outbound, Policy, SaKeys,
    SaPairSpec, Selector,
};
use common::time::Instant;
use common::wire::IpProtocol;
use core::net::IpAddr;
use libfuzzer_sys::fuzz_target;

fn node(mode: Mode, local: &str, peer: &str, spi_in: u32, spi_out: u32) -> Ipsec {
    let addresses = AddressPair {
        local: local.parse::<IpAddr>().unwrap(),
        peer: peer.parse::<IpAddr>().unwrap(),
    };
    let key = |spi: u32| vec![spi as u8; 20];
    let spec = SaPairSpec::new(
        addresses,
        mode,
        Algorithm::Aes128Gcm16,
        Selector::any(),
        SaKeys {
            spi: spi_in,
            key: key(spi_in),
        },
        SaKeys {
            spi: spi_out,
            key: key(spi_out),
        },
    );
    let mut ipsec = Ipsec::default();
    let (_, out) = ipsec.sad.add_pair(Instant::ZERO, &spec).unwrap();
    ipsec.spd.push(Policy {
        selector: Selector::any(),
        action: Action::Protect(vec![out]),
    });
    ipsec
}

fuzz_target!(|data: &[u8]| {
    let mode = if data.first().is_some_and(|b| b & 1 == 1) {
        Mode::Tunnel
    } else {
        Mode::Transport
    };
    let mut a = node(mode, "2001:db8:2::10", "2001:db8:1::1", 0x202, 0x201);
    let mut b = node(mode, "2001:db8:1::1", "2001:db8:2::10", 0x201, 0x202);
    let mut out = Vec::new();
    let _ = b.inbound(Instant::ZERO, data, &mut out);
    let mut wire = Vec::new();
    if let Ok(Outbound::Protected { .. }) = a.outbound(Instant::ZERO, data, &mut wire) {
        let layout = Layout::parse(data).unwrap();
        if layout.selectors.protocol == IpProtocol::Esp {
            // b would go on to open the inner ESP, with keys it does not have.
            return;
        }
        let end = layout.end;
        match b.inbound(Instant::ZERO, &wire, &mut out) {
            Ok(Inbound::Decrypted { .. }) => {
                assert_eq!(&out[..], &data[..end], "round trip changed the packet")
            }
            other => panic!("sealed packet did not open: {other:?}"),
        }
    }
});
