//! Address management (draft-dupont-ikev2-addrmgmt): peer address sets,
//! their notifications and Peer Address Update payloads.

use core::net::{IpAddr, SocketAddr};

use super::payloads::PROTO_ESP;
use super::sa::{Deferred, HeldResponse, IkeSa, Request};
use super::{Ike, Mobility};
use crate::ipsec::{AddressUpdateRequest, Ipsec};
use crate::time::Instant;
use crate::wire::ike::{ExchangeType, IkePayload, PeerAddress};
use crate::wire::CodePoints;

/// ESP in a Peer Address Update payload: Annex C numbers it 1 (0 being the
/// IKE SA), unlike the rest of IKEv2; 3 is accepted too.
const PAU_ESP: u8 = 1;

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

/// A Peer Address Update payload (addrmgmt Annex C).
fn update_payload(all: bool, spis: &[u32]) -> IkePayload {
    if all || spis.is_empty() {
        IkePayload::PeerAddressUpdate {
            all,
            protocol: 0,
            spi_size: 0,
            spis: Vec::new(),
        }
    } else {
        IkePayload::PeerAddressUpdate {
            all: false,
            protocol: PAU_ESP,
            spi_size: 4,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        }
    }
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
        sa: &IkeSa,
        path: (SocketAddr, SocketAddr),
        payloads: &[IkePayload],
        request: bool,
        involves_addresses: bool,
    ) -> bool {
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

    /// An update of the IKE SA and its tunnel SAs from `path`, replacing
    /// any older one still queued.
    pub(super) fn update_all(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
    ) {
        sa.cancel_moves();
        self.queue_request(
            now,
            sa,
            Request::AddressUpdate {
                path,
                all: true,
                spis: Vec::new(),
            },
        );
    }

    pub(super) fn address_update_payloads(
        &self,
        path: (SocketAddr, SocketAddr),
        all: bool,
        spis: &[u32],
    ) -> Vec<IkePayload> {
        let mut p = vec![update_payload(all, spis)];
        p.extend(self.peer_address_notifications(path.0, path.1));
        p
    }

    /// Our update was answered: the SAs it named move.
    pub(super) fn address_update_answered(
        &mut self,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        all: bool,
        spis: Vec<u32>,
        ipsec: &mut Ipsec,
    ) {
        let children = if all { sa.followers() } else { spis };
        self.move_sa(sa, path, true, &children, ipsec);
    }

    /// Peer Address Update payloads (addrmgmt §3.4, Annex C), processed in
    /// message order; the reply names the paired SAs (AM-C.2).
    pub(super) fn on_address_update(
        &mut self,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        message_id: u32,
        updates: &[&IkePayload],
        ipsec: &mut Ipsec,
    ) -> Option<Vec<IkePayload>> {
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
            children.extend(sa.followers());
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
                sa,
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
        self.move_sa(sa, path, move_ike, &children, ipsec);
        Some(response)
    }

    /// The data plane saw an SA's traffic on new addresses (REQ AM-D.1):
    /// a new peer address is checked and the SA and its siblings follow;
    /// a new local address is announced. Fire-and-forget.
    pub(super) fn data_plane_update(&mut self, now: Instant, req: AddressUpdateRequest) {
        if self.cfg.mobility != Mobility::AddrMgmt {
            return;
        }
        let Some((spi, spi_in)) = self.child_of(req.sa) else {
            return;
        };
        self.with_sa(spi, |ike, sa| {
            let waiting = sa.established().is_none_or(|e| e.deferred.is_some());
            if waiting {
                return;
            }
            if req.new.peer != sa.remote.ip() {
                let path = (sa.local, SocketAddr::new(req.new.peer, sa.remote.port()));
                let mut children = sa.followers();
                if !children.contains(&spi_in) {
                    children.push(spi_in);
                }
                ike.check_then_move(
                    sa,
                    Deferred {
                        response: None,
                        path,
                        move_ike: true,
                        children,
                        cookie2: Vec::new(),
                    },
                );
                ike.send_next(now, sa);
            } else if req.new.local != sa.local.ip() {
                let path = (SocketAddr::new(req.new.local, sa.local.port()), sa.remote);
                ike.update_all(now, sa, path);
            }
        });
    }
}
