//! Crafted packets for the simulator's engines, as the scenario and
//! conformance tests send them.

use std::net::Ipv6Addr;

use common::ipsec::Outbound;
use common::node::{Engine, NodeDrop};
use common::wire::packet::UdpPayload;
use common::wire::{CodePoints, ExtHeaderRepr, PacketRepr, UdpRepr, UpperRepr};
use testbed::sim::Role;
use testbed::topology::Topology;

/// How often the correspondent dropped a packet for `r`.
pub fn cn_drops(t: &Topology, r: NodeDrop) -> u64 {
    t.sim.engine(t.cn).unwrap().stats().dropped(r)
}

/// A two-byte UDP datagram (port 7) with `ext` headers.
pub fn udp(src: Ipv6Addr, dst: Ipv6Addr, ext: Vec<ExtHeaderRepr>) -> Vec<u8> {
    let u = UdpRepr {
        src_port: 7,
        dst_port: 7,
    };
    let data = UdpPayload::Raw(b"hi".to_vec());
    PacketRepr::ipv6(src, dst, ext, UpperRepr::Udp(u, data)).to_bytes(&CodePoints::default())
}

/// Seals `bytes` with the mobile node's own SAs, as a forger holding them
/// (or a buggy node) would.
pub fn seal_as_mn(t: &mut Topology, bytes: &[u8]) -> Vec<u8> {
    let now = t.sim.now();
    let Some(Role::Mn(m)) = t.sim.role_mut(t.mn) else {
        panic!("no mn")
    };
    let mut out = vec![];
    let r = m.ipsec_mut().outbound(now, bytes, &mut out).unwrap();
    assert!(matches!(r, Outbound::Protected { .. }), "not sealed");
    out
}
