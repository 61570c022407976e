//! MOBIKE (RFC 4555): address lists, path probes that find a new path,
//! and UPDATE_SA_ADDRESSES.

use core::net::{IpAddr, SocketAddr};

use super::payloads::{find_notify, has_notify, notify};
use super::sa::{Deferred, IkeSa, Request};
use super::Ike;
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{AdditionalAddress, IkePayload, NotifyType};

impl Ike {
    /// ADDITIONAL_* for our other addresses, or NO_ADDITIONAL_ADDRESSES.
    pub(super) fn address_list(&self, local: IpAddr) -> Vec<IkePayload> {
        let others: Vec<IkePayload> = self
            .announced(local)
            .map(|a| IkePayload::Notify(AdditionalAddress(a).to_notify()))
            .collect();
        if others.is_empty() {
            vec![notify(NotifyType::NO_ADDITIONAL_ADDRESSES, Vec::new())]
        } else {
            others
        }
    }

    /// A path that answered a probe: move there (RFC 4555 §3.5).
    pub(super) fn path_works(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
    ) {
        if (sa.local, sa.remote) != path {
            let cookie2 = self.nonce();
            self.queue_request(now, sa, Request::UpdateSaAddresses { path, cookie2 });
        }
    }

    pub(super) fn update_sa_addresses_payloads(
        &self,
        sa: &IkeSa,
        path: (SocketAddr, SocketAddr),
        cookie2: &[u8],
    ) -> Vec<IkePayload> {
        let mut p = vec![notify(NotifyType::UPDATE_SA_ADDRESSES, Vec::new())];
        if self.nat_traversal(path.1.is_ipv6()) {
            p.extend(self.nat_detection(sa.spi_i, sa.spi_r, path));
        }
        p.push(notify(NotifyType::COOKIE2, cookie2.to_vec()));
        p.extend(self.address_list(path.0.ip()));
        p
    }

    /// Our UPDATE_SA_ADDRESSES was answered: the children follow once the
    /// responder echoed the cookie.
    pub(super) fn addresses_updated(
        &mut self,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        cookie2: &[u8],
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) {
        let echoed =
            find_notify(payloads, NotifyType::COOKIE2.into()).is_some_and(|n| n.data == cookie2);
        if echoed {
            let children = sa.followers();
            self.move_sa(sa, path, true, &children, ipsec);
        }
    }

    /// UPDATE_SA_ADDRESSES at the responder: the IKE SA moves now, its
    /// children once the new address answers (RFC 4555 §3.5).
    pub(super) fn on_update_sa_addresses(
        &mut self,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Option<Vec<IkePayload>> {
        if sa.initiator || !sa.mobike {
            return Some(Vec::new());
        }
        let cookie2 = find_notify(payloads, NotifyType::COOKIE2.into())?
            .data
            .clone();
        let mut out = Vec::new();
        if has_notify(payloads, NotifyType::NAT_DETECTION_SOURCE_IP) {
            out.extend(self.nat_detection(sa.spi_i, sa.spi_r, path));
        }
        out.push(notify(NotifyType::COOKIE2, cookie2));
        let moved_peer = path.1.ip() != sa.remote.ip();
        let children = sa.followers();
        self.move_sa(sa, path, true, &[], ipsec);
        if self.cfg.return_routability && moved_peer {
            self.check_then_move(
                sa,
                Deferred {
                    response: None,
                    path,
                    move_ike: false,
                    children,
                    cookie2: Vec::new(),
                },
            );
        } else {
            self.move_sa(sa, path, false, &children, ipsec);
        }
        Some(out)
    }
}

/// ADDITIONAL_* / NO_ADDITIONAL_ADDRESSES set the peer's address list; the
/// one in use stays first.
pub(super) fn learn_additional_addresses(sa: &mut IkeSa, payloads: &[IkePayload]) {
    let additional: Vec<IpAddr> = payloads
        .iter()
        .filter_map(|p| match p {
            IkePayload::Notify(n) => AdditionalAddress::from_notify(n).ok().map(|a| a.0),
            _ => None,
        })
        .collect();
    if !additional.is_empty() || has_notify(payloads, NotifyType::NO_ADDITIONAL_ADDRESSES) {
        let mut set = vec![sa.remote.ip()];
        set.extend(additional.into_iter().filter(|a| *a != sa.remote.ip()));
        sa.peer_addresses = set;
    }
}
