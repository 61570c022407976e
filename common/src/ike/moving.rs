//! What the mobility modes share: following our address changes, moving
//! SAs in place, and holding a move until a return-routability check
//! answers (REQ AM-3.4c, AM-4; RFC 4555 §3.5).

use core::net::{IpAddr, SocketAddr};

use super::addrmgmt::learn_peer_address_set;
use super::mobike::learn_additional_addresses;
use super::payloads::find_notify;
use super::sa::{Child, Deferred, IkeSa, Request};
use super::{Ike, IkeEvent, IkeSaId, IkeState, Mobility};
use crate::ipsec::{AddressPair, Ipsec, Mode};
use crate::time::Instant;
use crate::wire::ike::{IkePayload, NotifyType};

impl Ike {
    /// Our addresses changed. A MOBIKE initiator that lost its address
    /// probes a new path; every MOBIKE SA announces the new list; an
    /// addrmgmt SA sends an update from its new address (REQ AM-2.3a).
    pub fn set_local_addresses(&mut self, now: Instant, addresses: &[IpAddr]) {
        self.local_addresses = addresses.to_vec();
        let spis: Vec<u64> = self
            .sas
            .values()
            .filter(|s| s.state() == IkeState::Established && !self.pinned(s))
            .map(|s| s.ours)
            .collect();
        for spi in spis {
            self.with_sa(spi, |ike, sa| ike.follow_local_addresses(now, sa));
        }
    }

    fn follow_local_addresses(&mut self, now: Instant, sa: &mut IkeSa) {
        let gone = !self.local_addresses.contains(&sa.local.ip());
        let next = self.next_path(sa);
        match (self.cfg.mobility, sa.mobike, sa.initiator) {
            (Mobility::Mobike { .. }, true, true) if gone => {
                let Some(path) = next else {
                    return;
                };
                sa.cancel_moves();
                self.queue_request(
                    now,
                    sa,
                    Request::Probe {
                        path: Some(path),
                        cookie2: None,
                    },
                );
            }
            (Mobility::Mobike { .. }, true, _) if !gone => {
                self.queue_request(now, sa, Request::Addresses);
            }
            (Mobility::AddrMgmt, _, _) if gone => {
                let Some(path) = next else {
                    return;
                };
                self.update_all(now, sa, path);
            }
            _ => {}
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

    /// Moves the IKE SA (if `move_ike`) and these children, in place.
    pub(super) fn move_sa(
        &mut self,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        move_ike: bool,
        children: &[u32],
        ipsec: &mut Ipsec,
    ) {
        for c in sa
            .children
            .iter_mut()
            .filter(|c| children.contains(&c.spi_in))
        {
            let new = AddressPair {
                local: if c.fixed.0 {
                    c.addresses.local
                } else {
                    path.0.ip()
                },
                peer: if c.fixed.1 {
                    c.addresses.peer
                } else {
                    path.1.ip()
                },
            };
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
                sa: IkeSaId(sa.ours),
                local: path.0,
                remote: path.1,
            });
        }
    }

    /// Holds a move until the peer answers at its new address.
    pub(super) fn check_then_move(&mut self, sa: &mut IkeSa, mut deferred: Deferred) {
        deferred.cookie2 = self.nonce();
        let probe = Request::Probe {
            path: Some(deferred.path),
            cookie2: Some(deferred.cookie2.clone()),
        };
        if let Some(e) = sa.established_mut() {
            e.deferred = Some(deferred);
        }
        sa.enqueue(probe);
    }

    /// A probe on `path` was answered.
    pub(super) fn probe_answered(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        cookie2: Option<Vec<u8>>,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) {
        let Some(c) = cookie2 else {
            self.path_works(now, sa, path);
            return;
        };
        let echoed = find_notify(payloads, NotifyType::COOKIE2.into()).is_some_and(|n| n.data == c);
        let Some(e) = sa.established_mut() else {
            return;
        };
        let ours = e.deferred.as_ref().is_some_and(|d| d.cookie2 == c);
        if !(echoed && ours) {
            return;
        }
        let Some(d) = e.deferred.take() else {
            return;
        };
        self.move_sa(sa, d.path, d.move_ike, &d.children, ipsec);
        if let Some(r) = d.response {
            sa.peer_message_id += 1;
            self.respond(sa, r.exchange, r.message_id, r.path, &r.payloads);
        }
    }

    /// ADDITIONAL_* / NO_ADDITIONAL_ADDRESSES (MOBIKE) and PEER_ADDRESS_*
    /// (addrmgmt) set the peer's address list; the one in use stays first.
    pub(super) fn learn_addresses(&self, sa: &mut IkeSa, payloads: &[IkePayload]) {
        learn_additional_addresses(sa, payloads);
        learn_peer_address_set(sa, payloads, &self.cfg.code_points);
    }
}

impl IkeSa {
    /// The children that follow the IKE SA: tunnel mode on the IKE
    /// addresses. Transport-mode SAs (a home-address signalling SA) and
    /// those on negotiated tunnel addresses stay (REQ AM-2.3b, AM-3.4d).
    pub(super) fn followers(&self) -> Vec<u32> {
        let ike = AddressPair {
            local: self.local.ip(),
            peer: self.remote.ip(),
        };
        // A side the IKE SA gave follows it; a tunnel address stays.
        let follows = |c: &&Child| {
            (!c.fixed.0 && c.addresses.local == ike.local)
                || (!c.fixed.1 && c.addresses.peer == ike.peer)
        };
        self.children
            .iter()
            .filter(|c| c.mode == Mode::Tunnel)
            .filter(follows)
            .map(|c| c.spi_in)
            .collect()
    }

    /// A newer move cancels queued older ones (REQ AM-2.3a).
    pub(super) fn cancel_moves(&mut self) {
        if let Some(e) = self.established_mut() {
            e.queue.retain(|r| !r.has_own_path());
        }
    }
}
