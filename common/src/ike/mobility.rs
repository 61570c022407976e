//! Following address changes: MOBIKE (RFC 4555), R-MOBIKE
//! (draft-smyslov-ipsecme-ikev2-r-mobike) and address management
//! (draft-dupont-ikev2-addrmgmt).

use core::net::{IpAddr, SocketAddr};

use super::exchange::{find_notify, has_notify, notify, update_payload, PAU_ESP, PROTO_ESP};
use super::sa::IkeSa;
use super::{
    Deferred, HeldResponse, Ike, IkeError, IkeEvent, IkeSaId, IkeState, Mobility, Request,
};
use crate::ipsec::{AddressPair, AddressUpdateRequest, Ipsec, Mode};
use crate::time::Instant;
use crate::wire::ike::{ExchangeType, IkePayload, NotifyType, PeerAddress};
use crate::wire::CodePoints;

/// The PEER_ADDRESS_SOURCE and _DESTINATION notifications, in order.
fn peer_addresses(payloads: &[IkePayload], cp: &CodePoints) -> Vec<(bool, SocketAddr)> {
    payloads
        .iter()
        .filter_map(|p| match p {
            IkePayload::Notify(n)
                if n.notify_type == cp.notify_peer_address_source
                    || n.notify_type == cp.notify_peer_address_destination =>
            {
                let a = PeerAddress::from_notify(n).ok()?;
                Some((
                    n.notify_type == cp.notify_peer_address_source,
                    SocketAddr::new(a.addr, a.port),
                ))
            }
            _ => None,
        })
        .collect()
}

/// The peer's address set from its source notifications (REQ AM-3.3c) and
/// the source/destination hints of a mixed order (REQ AM-3.3d).
pub(super) fn learn_peer_address_set(sa: &mut IkeSa, payloads: &[IkePayload], cp: &CodePoints) {
    let notes = peer_addresses(payloads, cp);
    let sources: Vec<IpAddr> = notes.iter().filter(|n| n.0).map(|n| n.1.ip()).collect();
    let Some(first) = sources.first().copied() else {
        return;
    };
    let mut set = vec![first];
    if sources.len() == 1 {
        // The one in use; the rest of the set stands.
        set.extend(sa.peer_addresses.iter().filter(|a| **a != first));
    } else {
        // The whole set; a repeated address reduces it to one.
        for a in &sources[1..] {
            if !set.contains(a) {
                set.push(*a);
            }
        }
    }
    sa.peer_addresses = set;
    let mut hints: Vec<(Vec<IpAddr>, Vec<IpAddr>)> = Vec::new();
    for (source, a) in notes {
        match (source, hints.last_mut()) {
            (true, Some(h)) if h.1.is_empty() => h.0.push(a.ip()),
            (true, _) => hints.push((vec![a.ip()], Vec::new())),
            (false, Some(h)) => h.1.push(a.ip()),
            (false, None) => hints.push((Vec::new(), vec![a.ip()])),
        }
    }
    sa.address_hints = hints;
}

impl Ike {
    /// PEER_ADDRESS_SOURCE for our address set (the one in use first) and
    /// PEER_ADDRESS_DESTINATION for the peer's (REQ AM-3.3b, AM-3.3c).
    pub(super) fn peer_address_notifications(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Vec<IkePayload> {
        let cp = &self.cfg.code_points;
        let mut out = vec![IkePayload::Notify(
            PeerAddress {
                port: local.port(),
                addr: local.ip(),
            }
            .to_notify(true, cp),
        )];
        out.extend(self.announced(local.ip()).map(|a| {
            IkePayload::Notify(
                PeerAddress {
                    port: local.port(),
                    addr: a,
                }
                .to_notify(true, cp),
            )
        }));
        out.push(IkePayload::Notify(
            PeerAddress {
                port: remote.port(),
                addr: remote.ip(),
            }
            .to_notify(false, cp),
        ));
        out
    }

    /// Whether a message's peer address notifications disagree with its
    /// header, or are missing off the SA's current addresses (AM-3.3b/e).
    pub(super) fn addresses_mismatch(
        &self,
        spi: u64,
        path: (SocketAddr, SocketAddr),
        payloads: &[IkePayload],
        request: bool,
        involves_addresses: bool,
    ) -> bool {
        let Some(sa) = self.sas.get(&spi) else {
            return false;
        };
        let notes = peer_addresses(payloads, &self.cfg.code_points);
        let source = notes.iter().find(|n| n.0).map(|n| n.1);
        let destination = notes.iter().find(|n| !n.0).map(|n| n.1);
        let off_path = path != (sa.local, sa.remote);
        match (source, destination) {
            // Notifications are owed by messages that involve addresses:
            // IKE_AUTH, CREATE_CHILD_SA, updates (§3.3).
            (None, None) => request && involves_addresses && off_path,
            (Some(s), Some(d)) => s != path.1 || d != path.0,
            (Some(s), None) => s != path.1 || off_path,
            (None, Some(d)) => d != path.0 || off_path,
        }
    }

    /// Our addresses changed. A MOBIKE initiator that lost its address
    /// probes a new path; every MOBIKE SA announces the new list; an
    /// addrmgmt SA sends an update from its new address (REQ AM-2.3a).
    pub fn set_local_addresses(&mut self, now: Instant, addresses: &[IpAddr]) {
        self.local_addresses = addresses.to_vec();
        let spis: Vec<u64> = self
            .sas
            .values()
            .filter(|s| s.state == IkeState::Established && !self.pinned(s))
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

    /// An addrmgmt update of the IKE SA and its tunnel SAs from `path`,
    /// replacing any older one still queued.
    fn update_all(&mut self, now: Instant, spi: u64, path: (SocketAddr, SocketAddr)) {
        self.cancel_moves(spi);
        self.request(
            now,
            spi,
            Request::AddressUpdate {
                path,
                all: true,
                spis: Vec::new(),
            },
        );
    }

    /// A newer move cancels queued older ones (REQ AM-2.3a).
    fn cancel_moves(&mut self, spi: u64) {
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

    /// Asks the initiator to move to our address `to` (REQ RM-4.2c); only
    /// a responder may, and only to an initiator that sent 'R' (RM-4.2a).
    pub fn request_switch(
        &mut self,
        now: Instant,
        sa: IkeSaId,
        to: IpAddr,
    ) -> Result<(), IkeError> {
        let ike = self.sas.get(&sa.0).ok_or(IkeError::NoSuchSa(sa))?;
        if ike.state != IkeState::Established {
            return Err(IkeError::NotEstablished(sa));
        }
        if !matches!(self.cfg.mobility, Mobility::Mobike { .. }) || !ike.mobike {
            return Err(IkeError::WrongMobility(sa));
        }
        if ike.initiator || !ike.peer_r_mobike {
            return Err(IkeError::SwitchNotAllowed);
        }
        // Our addresses stay until UPDATE_SA_ADDRESSES arrives (RM-4.2f).
        self.request(now, sa.0, Request::Switch(to));
        Ok(())
    }

    /// SWITCH_TO_IP_ADDRESS received; the response is empty either way.
    pub(super) fn on_switch(&mut self, now: Instant, spi: u64, to: IpAddr) {
        let r_mobike = matches!(self.cfg.mobility, Mobility::Mobike { r_mobike: true });
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        if !sa.initiator || !r_mobike || !sa.mobike {
            // From an initiator, or to one that never offered 'R' (RM-4.2b).
            self.stats.switches_ignored += 1;
            return;
        }
        let announced = sa.peer_addresses.contains(&to);
        let allowed = self.cfg.switch_policy.iter().any(|p| p.contains(to));
        let local = self
            .local_addresses
            .iter()
            .copied()
            .filter(|l| l.is_ipv6() == to.is_ipv6())
            .min_by_key(|l| *l != sa.local.ip());
        match (announced || allowed, local) {
            (true, Some(local)) => {
                // The ports stay (RM-4.2e).
                let path = (
                    SocketAddr::new(local, sa.local.port()),
                    SocketAddr::new(to, sa.remote.port()),
                );
                let cookie2 = self.nonce();
                self.cancel_moves(spi);
                self.enqueue(spi, Request::UpdateSaAddresses { path, cookie2 });
            }
            _ => {
                // Refused: stay, and check the current path (RM-4.2d).
                self.events.push_back(IkeEvent::SwitchRefused {
                    sa: IkeSaId(spi),
                    to,
                });
                self.request(
                    now,
                    spi,
                    Request::Probe {
                        path: None,
                        cookie2: None,
                    },
                );
            }
        }
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
    fn check_then_move(&mut self, spi: u64, mut deferred: Deferred) {
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

    /// UPDATE_SA_ADDRESSES at the responder: the IKE SA moves now, its
    /// children once the new address answers (RFC 4555 §3.5).
    pub(super) fn on_update_sa_addresses(
        &mut self,
        spi: u64,
        path: (SocketAddr, SocketAddr),
        _message_id: u32,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Option<Vec<IkePayload>> {
        let sa = self.sas.get(&spi)?;
        if sa.initiator || !sa.mobike {
            return Some(Vec::new());
        }
        let cookie2 = find_notify(payloads, NotifyType::COOKIE2.into())?
            .data
            .clone();
        let mut out = Vec::new();
        let (spi_i, spi_r) = (sa.spi_i, sa.spi_r);
        if has_notify(payloads, NotifyType::NAT_DETECTION_SOURCE_IP) {
            out.extend(self.nat_detection(spi_i, spi_r, path));
        }
        out.push(notify(NotifyType::COOKIE2, cookie2));
        let moved_peer = path.1.ip() != sa.remote.ip();
        let children = Self::followers(sa);
        self.move_sa(spi, path, true, &[], ipsec);
        if self.cfg.return_routability && moved_peer {
            self.check_then_move(
                spi,
                Deferred {
                    response: None,
                    path,
                    move_ike: false,
                    children,
                    cookie2: Vec::new(),
                },
            );
        } else {
            self.move_sa(spi, path, false, &children, ipsec);
        }
        Some(out)
    }

    /// Peer Address Update payloads (addrmgmt §3.4, Annex C), processed in
    /// message order; the reply names the paired SAs (AM-C.2).
    pub(super) fn on_address_update(
        &mut self,
        spi: u64,
        path: (SocketAddr, SocketAddr),
        message_id: u32,
        updates: &[&IkePayload],
        ipsec: &mut Ipsec,
    ) -> Option<Vec<IkePayload>> {
        let sa = self.sas.get(&spi)?;
        if self.cfg.mobility != Mobility::AddrMgmt {
            return Some(Vec::new());
        }
        let mut all = false;
        let mut move_ike = false;
        let mut children = Vec::new();
        for u in updates {
            let IkePayload::PeerAddressUpdate {
                all: a,
                protocol,
                spis,
                ..
            } = u
            else {
                continue;
            };
            if *a || *protocol == 0 {
                move_ike = true;
                all |= *a;
            } else if *protocol == PAU_ESP || *protocol == PROTO_ESP {
                // They name the SPIs they receive on: our outbound ones.
                for s in spis {
                    let Ok(s) = <[u8; 4]>::try_from(s.as_slice()) else {
                        continue;
                    };
                    let s = u32::from_be_bytes(s);
                    if let Some(c) = sa.children.iter().find(|c| c.spi_out == s) {
                        children.push(c.spi_in);
                    }
                }
            }
        }
        if all {
            children.extend(Self::followers(sa));
        }
        let mut response = Vec::new();
        if all {
            response.push(update_payload(true, &[]));
        } else {
            if move_ike {
                response.push(update_payload(false, &[]));
            }
            if !children.is_empty() {
                response.push(update_payload(false, &children));
            }
        }
        response.extend(self.peer_address_notifications(path.0, path.1));
        if self.cfg.return_routability && path.1 != sa.remote {
            self.check_then_move(
                spi,
                Deferred {
                    response: Some(HeldResponse {
                        message_id,
                        exchange: ExchangeType::INFORMATIONAL,
                        path,
                        payloads: response,
                    }),
                    path,
                    move_ike,
                    children,
                    cookie2: Vec::new(),
                },
            );
            return None;
        }
        self.move_sa(spi, path, move_ike, &children, ipsec);
        Some(response)
    }

    /// The data plane saw an SA's traffic on new addresses (REQ AM-D.1):
    /// a new peer address is checked and the SA and its siblings follow;
    /// a new local address is announced. Fire-and-forget.
    pub(super) fn data_plane_update(&mut self, now: Instant, req: AddressUpdateRequest) {
        if self.cfg.mobility != Mobility::AddrMgmt {
            return;
        }
        let Some(sa) = self.sas.values().find(|s| {
            s.state == IkeState::Established
                && s.children
                    .iter()
                    .any(|c| c.inbound == req.sa || c.outbound == req.sa)
        }) else {
            return;
        };
        let spi = sa.ours;
        if sa.deferred.is_some() {
            return;
        }
        if req.new.peer != sa.remote.ip() {
            let path = (sa.local, SocketAddr::new(req.new.peer, sa.remote.port()));
            let mut children = Self::followers(sa);
            if let Some(c) = sa
                .children
                .iter()
                .find(|c| c.inbound == req.sa || c.outbound == req.sa)
            {
                if !children.contains(&c.spi_in) {
                    children.push(c.spi_in);
                }
            }
            self.check_then_move(
                spi,
                Deferred {
                    response: None,
                    path,
                    move_ike: true,
                    children,
                    cookie2: Vec::new(),
                },
            );
            self.send_next(now, spi);
        } else if req.new.local != sa.local.ip() {
            let path = (SocketAddr::new(req.new.local, sa.local.port()), sa.remote);
            self.update_all(now, spi, path);
        }
    }
}
