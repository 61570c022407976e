//! What the mobility modes share: following our address changes, moving
//! SAs in place, and holding a move until a return-routability check
//! answers (REQ AM-3.4c, AM-4; RFC 4555 §3.5).

use core::net::{IpAddr, SocketAddr};

use super::addrmgmt::learn_peer_address_set;
use super::payloads::{find_notify, has_notify};
use super::sa::IkeSa;
use super::{Deferred, Ike, IkeEvent, IkeSaId, IkeState, Mobility, Request};
use crate::ipsec::{AddressPair, Ipsec, Mode};
use crate::time::Instant;
use crate::wire::ike::{AdditionalAddress, IkePayload, NotifyType};

impl Ike {
    /// Our addresses changed. A MOBIKE initiator that lost its address
    /// probes a new path; every MOBIKE SA announces the new list; an
    /// addrmgmt SA sends an update from its new address (REQ AM-2.3a).
    pub fn set_local_addresses(&mut self, now: Instant, addresses: &[IpAddr]) {
        self.local_addresses = addresses.to_vec();
        let spis: Vec<u64> = self
            .sas
            .values()
            .filter(|s| s.state == IkeState::Established)
            .map(|s| s.ours)
            .collect();
        for spi in spis {
            let Some(sa) = self.sas.get(&spi) else {
                continue;
            };
            let gone = !addresses.contains(&sa.local.ip());
            let next = self.next_path(sa);
            match (self.cfg.mobility, sa.mobike, sa.initiator) {
                (Mobility::Mobike { .. }, true, true) if gone => {
                    let Some(path) = next else {
                        continue;
                    };
                    self.cancel_moves(spi);
                    self.request(
                        now,
                        spi,
                        Request::Probe {
                            path: Some(path),
                            cookie2: None,
                        },
                    );
                }
                (Mobility::Mobike { .. }, true, _) if !gone => {
                    self.request(now, spi, Request::Addresses);
                }
                (Mobility::AddrMgmt, _, _) if gone => {
                    let Some(path) = next else {
                        continue;
                    };
                    self.update_all(now, spi, path);
                }
                _ => {}
            }
        }
    }

    /// A newer move cancels queued older ones (REQ AM-2.3a).
    pub(super) fn cancel_moves(&mut self, spi: u64) {
        if let Some(sa) = self.sas.get_mut(&spi) {
            sa.queue.retain(|r| {
                !matches!(
                    r,
                    Request::Probe { path: Some(_), .. }
                        | Request::UpdateSaAddresses { .. }
                        | Request::AddressUpdate { .. }
                )
            });
        }
    }

    /// A path from one of our addresses to the peer: its address in use if
    /// we have that family, else another it announced.
    pub(super) fn next_path(&self, sa: &IkeSa) -> Option<(SocketAddr, SocketAddr)> {
        let remotes = core::iter::once(sa.remote.ip()).chain(sa.peer_addresses.iter().copied());
        for r in remotes {
            if let Some(l) = self
                .local_addresses
                .iter()
                .find(|l| l.is_ipv6() == r.is_ipv6())
            {
                return Some((
                    SocketAddr::new(*l, sa.local.port()),
                    SocketAddr::new(r, sa.remote.port()),
                ));
            }
        }
        None
    }

    /// The children that follow the IKE SA: tunnel mode on the IKE
    /// addresses. Transport-mode SAs (a home-address signalling SA) and
    /// those on negotiated tunnel addresses stay (REQ AM-2.3b, AM-3.4d).
    pub(super) fn followers(sa: &IkeSa) -> Vec<u32> {
        let ike = AddressPair {
            local: sa.local.ip(),
            peer: sa.remote.ip(),
        };
        sa.children
            .iter()
            .filter(|c| c.mode == Mode::Tunnel && !c.own_tunnel && c.addresses == ike)
            .map(|c| c.spi_in)
            .collect()
    }

    /// Moves the IKE SA (if `move_ike`) and these children, in place.
    pub(super) fn move_sa(
        &mut self,
        spi: u64,
        path: (SocketAddr, SocketAddr),
        move_ike: bool,
        children: &[u32],
        ipsec: &mut Ipsec,
    ) {
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        let new = AddressPair {
            local: path.0.ip(),
            peer: path.1.ip(),
        };
        for c in sa
            .children
            .iter_mut()
            .filter(|c| children.contains(&c.spi_in))
        {
            // Keys, sequence numbers and replay windows stay (AM-C.1).
            if ipsec.sad.update_addresses(c.inbound, new).is_ok() {
                c.addresses = new;
            }
        }
        if move_ike && (sa.local, sa.remote) != path {
            sa.local = path.0;
            sa.remote = path.1;
            sa.peer_addresses.retain(|a| *a != path.1.ip());
            sa.peer_addresses.insert(0, path.1.ip());
            self.events.push_back(IkeEvent::Moved {
                sa: IkeSaId(spi),
                local: path.0,
                remote: path.1,
            });
        }
    }

    /// Holds a move until the peer answers at its new address.
    pub(super) fn check_then_move(&mut self, spi: u64, mut deferred: Deferred) {
        deferred.cookie2 = self.nonce();
        let probe = Request::Probe {
            path: Some(deferred.path),
            cookie2: Some(deferred.cookie2.clone()),
        };
        if let Some(sa) = self.sas.get_mut(&spi) {
            sa.deferred = Some(deferred);
        }
        self.enqueue(spi, probe);
    }

    /// A probe on `path` was answered.
    pub(super) fn probe_answered(
        &mut self,
        now: Instant,
        spi: u64,
        path: (SocketAddr, SocketAddr),
        cookie2: Option<Vec<u8>>,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) {
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        match cookie2 {
            Some(c) => {
                let echoed =
                    find_notify(payloads, NotifyType::COOKIE2.into()).is_some_and(|n| n.data == c);
                let ours = sa.deferred.as_ref().is_some_and(|d| d.cookie2 == c);
                if !(echoed && ours) {
                    return;
                }
                let Some(d) = sa.deferred.take() else {
                    return;
                };
                self.move_sa(spi, d.path, d.move_ike, &d.children, ipsec);
                if let Some(r) = d.response {
                    if let Some(sa) = self.sas.get_mut(&spi) {
                        sa.peer_message_id += 1;
                    }
                    self.respond(spi, r.exchange, r.message_id, r.path, &r.payloads);
                }
            }
            None => {
                // A MOBIKE path that works: move there (RFC 4555 §3.5).
                if (sa.local, sa.remote) != path {
                    let cookie2 = self.nonce();
                    self.request(now, spi, Request::UpdateSaAddresses { path, cookie2 });
                }
            }
        }
    }

    /// ADDITIONAL_* / NO_ADDITIONAL_ADDRESSES (MOBIKE) and PEER_ADDRESS_*
    /// (addrmgmt) set the peer's address list; the one in use stays first.
    pub(super) fn learn_addresses(
        &mut self,
        spi: u64,
        payloads: &[IkePayload],
        cp: &crate::wire::CodePoints,
    ) {
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
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
        learn_peer_address_set(sa, payloads, cp);
    }
}
