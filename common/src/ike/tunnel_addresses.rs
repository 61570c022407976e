//! Alternate tunnel addresses (draft-arora-ipsecme-ikev2-alt-tunnel-addresses):
//! a tunnel-mode child's outer addresses other than the IKE SA's.

use core::net::IpAddr;

use super::payloads::find_notify;
use crate::wire::ike::{IkePayload, TunnelAddress};

pub(super) fn tunnel_address(
    payloads: &[IkePayload],
    cp: &crate::wire::CodePoints,
) -> Option<IpAddr> {
    find_notify(payloads, cp.notify_tunnel_address)
        .and_then(|n| TunnelAddress::from_notify(n).ok())
        .map(|t| t.0)
}
