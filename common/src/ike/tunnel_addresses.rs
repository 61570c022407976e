//! Alternate tunnel addresses (draft-arora-ipsecme-ikev2-alt-tunnel-addresses):
//! both sides say they support them in IKE_SA_INIT, then a tunnel-mode
//! child may carry its own outer addresses in TUNNEL_ADDRESS.

use core::net::IpAddr;

use super::config::ChildConfig;
use super::payloads::find_notify;
use super::sa::IkeSa;
use crate::ipsec::{AddressPair, Mode};
use crate::wire::ike::{IkePayload, Notify, TunnelAddress};
use crate::wire::CodePoints;

/// DIFFERENT_TUNNEL_ADDRESS_SUPPORTED, for IKE_SA_INIT.
pub(super) fn supported(cp: &CodePoints) -> IkePayload {
    IkePayload::Notify(Notify::different_tunnel_address_supported(cp))
}

/// The peer said it supports them.
pub(super) fn offered(payloads: &[IkePayload], cp: &CodePoints) -> bool {
    find_notify(payloads, cp.notify_different_tunnel_address_supported).is_some()
}

/// The peer's TUNNEL_ADDRESS for a child.
pub(super) fn theirs(payloads: &[IkePayload], cp: &CodePoints) -> Option<IpAddr> {
    find_notify(payloads, cp.notify_tunnel_address)
        .and_then(|n| TunnelAddress::from_notify(n).ok())
        .map(|t| t.0)
}

/// Our TUNNEL_ADDRESS for a tunnel-mode child, unless a NAT is in the way.
pub(super) fn ours(sa: &IkeSa, c: &ChildConfig, cp: &CodePoints) -> Option<IkePayload> {
    match (sa.tunnel_addresses, sa.nat(), c.mode, c.tunnel_address) {
        (true, false, Mode::Tunnel, Some(a)) => {
            Some(IkePayload::Notify(TunnelAddress(a).to_notify(cp)))
        }
        _ => None,
    }
}

/// A tunnel-mode child's outer addresses: the tunnel addresses unless a
/// NAT is in the way (REQ TA-5, TA-6), else the IKE SA's; and which of
/// them, (ours, theirs), are tunnel addresses, which stay when IKE moves.
pub(super) fn outer(
    sa: &IkeSa,
    ours: Option<IpAddr>,
    theirs: Option<IpAddr>,
) -> (AddressPair, (bool, bool)) {
    let alternate = sa.tunnel_addresses && !sa.nat();
    let (ours, theirs) = (ours.filter(|_| alternate), theirs.filter(|_| alternate));
    let addresses = AddressPair {
        local: ours.unwrap_or(sa.local.ip()),
        peer: theirs.unwrap_or(sa.remote.ip()),
    };
    (addresses, (ours.is_some(), theirs.is_some()))
}
