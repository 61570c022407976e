//! The message windows of an IKE SA (RFC 7296 §2.1-2.3): our requests,
//! queued and sent one at a time with retransmission, the peer's requests
//! checked against the next message ID and the cached response, and which
//! exchange handles a message.

use core::net::SocketAddr;

use super::addrmgmt::update_payload;
use super::child::clear_rekey;
use super::config::Mobility;
use super::init::ike_proposal;
use super::payloads::{find_notify, notify, payload_nonce, PROTO_ESP, PROTO_IKE};
use super::sa::{Cached, IkeState, Inflight};
use super::{crypto, CloseReason, Ike, IkeDrop, IkeEvent, IkeSaId, Request};
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{ExchangeType, IkePayload, IkeRepr, Notify, NotifyType};

impl Ike {
    /// Queues a request; it goes out when the window is free.
    pub(crate) fn request(&mut self, now: Instant, spi: u64, request: Request) {
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        sa.queue.push_back(request);
        self.send_next(now, spi);
    }

    /// Queues a request without sending it: a request handler's own
    /// requests go out after its response.
    pub(crate) fn enqueue(&mut self, spi: u64, request: Request) {
        if let Some(sa) = self.sas.get_mut(&spi) {
            sa.queue.push_back(request);
        }
    }

    /// Sends the next queued request if none is in flight (window 1).
    pub(crate) fn send_next(&mut self, now: Instant, spi: u64) {
        loop {
            let Some(sa) = self.sas.get_mut(&spi) else {
                return;
            };
            if sa.inflight.is_some() || sa.state != IkeState::Established {
                return;
            }
            let Some(request) = sa.queue.pop_front() else {
                return;
            };
            if self.send_request(now, spi, request) {
                return;
            }
        }
    }

    /// Builds, seals and sends a request; false if it turned out moot.
    pub(super) fn send_request(&mut self, now: Instant, spi: u64, request: Request) -> bool {
        let Some((exchange, payloads, path)) = self.build_request(spi, &request) else {
            return false;
        };
        let cp = self.cfg.code_points;
        let timeout = self.cfg.retransmit_timeout;
        let Some(sa) = self.sas.get_mut(&spi) else {
            return false;
        };
        let message_id = sa.next_message_id;
        let Ok(bytes) = sa.seal_message(exchange, false, message_id, &payloads, &cp) else {
            return false;
        };
        sa.next_message_id += 1;
        if let Some(spi_in) = request.offered_spi() {
            self.offered_spis.insert(spi_in);
        }
        sa.inflight = Some(Inflight {
            message_id,
            bytes: bytes.clone(),
            path,
            request,
            retransmits: 0,
            deadline: now + timeout,
        });
        self.stats.requests_sent += 1;
        self.send(path, &bytes);
        self.schedule(spi);
        true
    }

    /// The exchange, payloads and path of one of our requests.
    pub(super) fn build_request(
        &mut self,
        spi: u64,
        request: &Request,
    ) -> Option<(ExchangeType, Vec<IkePayload>, (SocketAddr, SocketAddr))> {
        let cp = self.cfg.code_points;
        let sa = self.sas.get(&spi)?;
        let current = (sa.local, sa.remote);
        let peer = sa.peer?;
        Some(match request {
            Request::Auth | Request::CreateChild { .. } if sa.state != IkeState::Established => {
                let [id, auth] = self.auth_payloads(sa, peer)?;
                let mut p = vec![id];
                let others = self.sas.values().any(|o| {
                    o.ours != spi && o.peer == Some(peer) && o.state == IkeState::Established
                });
                if !others {
                    p.push(notify(NotifyType::INITIAL_CONTACT, Vec::new()));
                }
                p.push(IkePayload::IdR(self.cfg.peers[peer].id.payload()));
                p.push(auth);
                if let Request::CreateChild { config, spi_in, .. } = request {
                    p.extend(self.child_payloads(sa, peer, *config, *spi_in));
                }
                p.extend(self.mobility_payloads(sa));
                (ExchangeType::IKE_AUTH, p, current)
            }
            Request::Auth => return None,
            Request::CreateChild {
                config,
                spi_in,
                nonce,
                rekey,
            } => {
                let mut p = Vec::new();
                if let Some(old) = rekey {
                    let mut n = Notify::new(NotifyType::REKEY_SA.into(), Vec::new());
                    n.protocol = PROTO_ESP;
                    n.spi = old.to_be_bytes().to_vec();
                    p.push(IkePayload::Notify(n));
                }
                let mut child = self.child_payloads(sa, peer, *config, *spi_in);
                // SA first, then the nonce (§1.3.1).
                let rest = child.split_off(usize::from(!child.is_empty()));
                p.extend(child);
                p.push(IkePayload::Nonce(nonce.clone()));
                p.extend(rest);
                if self.cfg.mobility == Mobility::AddrMgmt {
                    p.extend(self.peer_address_notifications(sa.local, sa.remote));
                }
                (ExchangeType::CREATE_CHILD_SA, p, current)
            }
            Request::RekeyIke {
                spi: new,
                nonce,
                dh,
            } => (
                ExchangeType::CREATE_CHILD_SA,
                vec![
                    IkePayload::Sa(vec![ike_proposal(&[sa.encr], new.to_be_bytes().to_vec())]),
                    IkePayload::Nonce(nonce.clone()),
                    IkePayload::Ke {
                        group: crypto::DH_CURVE25519,
                        data: dh.public().to_vec(),
                    },
                ],
                current,
            ),
            Request::Delete { ike: true, .. } => (
                ExchangeType::INFORMATIONAL,
                vec![IkePayload::Delete {
                    protocol: PROTO_IKE,
                    spi_size: 0,
                    spis: Vec::new(),
                }],
                current,
            ),
            Request::Delete { spis, .. } => {
                let spis: Vec<Vec<u8>> = spis.iter().map(|s| s.to_be_bytes().to_vec()).collect();
                if spis.is_empty() {
                    return None;
                }
                (
                    ExchangeType::INFORMATIONAL,
                    vec![IkePayload::Delete {
                        protocol: PROTO_ESP,
                        spi_size: 4,
                        spis,
                    }],
                    current,
                )
            }
            Request::Probe { path, cookie2 } => {
                let path = path.unwrap_or(current);
                let mut p = Vec::new();
                if let Some(c) = cookie2 {
                    p.push(notify(NotifyType::COOKIE2, c.clone()));
                }
                if self.cfg.mobility == Mobility::AddrMgmt && path != current {
                    p.extend(self.peer_address_notifications(path.0, path.1));
                }
                (ExchangeType::INFORMATIONAL, p, path)
            }
            Request::UpdateSaAddresses { path, cookie2 } => {
                let mut p = vec![notify(NotifyType::UPDATE_SA_ADDRESSES, Vec::new())];
                if self.nat_traversal(path.1.is_ipv6()) {
                    p.extend(self.nat_detection(sa.spi_i, sa.spi_r, *path));
                }
                p.push(notify(NotifyType::COOKIE2, cookie2.clone()));
                p.extend(self.address_list(path.0.ip()));
                (ExchangeType::INFORMATIONAL, p, *path)
            }
            Request::Addresses => (
                ExchangeType::INFORMATIONAL,
                self.address_list(sa.local.ip()),
                current,
            ),
            Request::Switch(to) => (
                ExchangeType::INFORMATIONAL,
                vec![IkePayload::Notify(
                    crate::wire::ike::SwitchToIpAddress(*to).to_notify(&cp),
                )],
                current,
            ),
            Request::AddressUpdate { path, all, spis } => {
                let mut p = vec![update_payload(*all, spis)];
                p.extend(self.peer_address_notifications(path.0, path.1));
                (ExchangeType::INFORMATIONAL, p, *path)
            }
        })
    }

    /// Retransmits with exponential back-off, from the SA's current
    /// addresses (a retransmission may use another pair, REQ AM-3.2a);
    /// past the limit the peer is dead.
    pub(super) fn retransmit(&mut self, now: Instant, spi: u64, ipsec: &mut Ipsec) {
        let tries = self.cfg.retransmit_tries;
        let base = self.cfg.retransmit_timeout;
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        // Gone from our addresses: retransmit from another (REQ AM-3.2a).
        let current = if self.local_addresses.contains(&sa.local.ip()) {
            (sa.local, sa.remote)
        } else {
            self.next_path(sa).unwrap_or((sa.local, sa.remote))
        };
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        let Some(inflight) = sa.inflight.as_mut() else {
            return;
        };
        if inflight.retransmits >= tries {
            match inflight.request {
                // A failed path probe or RR check is not a dead peer.
                Request::Probe { path: Some(_), .. } => {
                    sa.inflight = None;
                    self.send_next(now, spi);
                }
                _ => self.close(spi, CloseReason::Timeout, ipsec),
            }
            return;
        }
        inflight.retransmits += 1;
        inflight.deadline = now + base * 2u32.saturating_pow(inflight.retransmits);
        // Probes, checks and moves are tied to their path; the rest follow
        // the SA.
        if !matches!(
            inflight.request,
            Request::Probe { path: Some(_), .. }
                | Request::UpdateSaAddresses { .. }
                | Request::AddressUpdate { .. }
        ) {
            inflight.path = current;
        }
        let (path, bytes) = (inflight.path, inflight.bytes.clone());
        self.stats.retransmits += 1;
        self.send(path, &bytes);
    }

    /// Sends a response and caches it for a retransmitted request.
    pub(crate) fn respond(
        &mut self,
        spi: u64,
        exchange: ExchangeType,
        message_id: u32,
        path: (SocketAddr, SocketAddr),
        payloads: &[IkePayload],
    ) {
        let cp = self.cfg.code_points;
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        let Ok(bytes) = sa.seal_message(exchange, true, message_id, payloads, &cp) else {
            return;
        };
        sa.cached = Some(Cached {
            message_id,
            bytes: bytes.clone(),
        });
        self.stats.responses_sent += 1;
        // Back where the request came from, from where it went (REQ AM-3.1a).
        self.send(path, &bytes);
    }

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        path: (SocketAddr, SocketAddr),
        repr: &IkeRepr,
        bytes: &[u8],
        ipsec: &mut Ipsec,
    ) {
        let h = &repr.header;
        let spi = if h.initiator() { h.spi_r } else { h.spi_i };
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        if let Some(c) = sa.cached.as_ref().filter(|c| c.message_id == h.message_id) {
            // A retransmission gets the cached reply, sent back where this
            // copy came from (REQ AM-3.1a, AM-3.3e).
            let bytes = c.bytes.clone();
            self.stats.cached_replies += 1;
            self.send(path, &bytes);
            return;
        }
        if h.message_id != sa.peer_message_id
            || sa
                .deferred
                .as_ref()
                .and_then(|d| d.response.as_ref())
                .is_some_and(|r| r.message_id == h.message_id)
        {
            self.drop(IkeDrop::MessageId);
            return;
        }
        let payloads = match sa.open_message(repr, bytes, &self.cfg.code_points) {
            Ok(p) => p,
            Err(e) => {
                self.drop(e);
                return;
            }
        };
        match (sa.state, h.exchange) {
            (IkeState::AwaitingAuthRequest, ExchangeType::IKE_AUTH) => {
                self.on_auth_request(now, spi, path, h.message_id, &payloads, ipsec);
                return;
            }
            (IkeState::Established, _) => {}
            _ => {
                self.drop(IkeDrop::State);
                return;
            }
        }
        if self.cfg.mobility == Mobility::AddrMgmt
            && self.addresses_mismatch(
                spi,
                path,
                &payloads,
                true,
                h.exchange == ExchangeType::CREATE_CHILD_SA
                    || payloads
                        .iter()
                        .any(|p| matches!(p, IkePayload::PeerAddressUpdate { .. })),
            )
        {
            // Content ignored, a warning sent, the counter advanced (AM-3.3e).
            self.stats.address_mismatches += 1;
            self.events
                .push_back(IkeEvent::AddressMismatch { sa: IkeSaId(spi) });
            if let Some(sa) = self.sas.get_mut(&spi) {
                sa.peer_message_id += 1;
            }
            let warn = IkePayload::Notify(Notify::new(
                self.cfg.code_points.notify_peer_address_mismatch,
                Vec::new(),
            ));
            self.respond(spi, h.exchange, h.message_id, path, &[warn]);
            return;
        }
        let response = match h.exchange {
            ExchangeType::CREATE_CHILD_SA => self.on_create_child(now, spi, &payloads, ipsec),
            ExchangeType::INFORMATIONAL => {
                match self.on_informational(now, spi, path, h.message_id, &payloads, ipsec) {
                    Some(r) => r,
                    // Held back for a return-routability check.
                    None => {
                        self.send_next(now, spi);
                        return;
                    }
                }
            }
            _ => {
                self.drop(IkeDrop::State);
                return;
            }
        };
        if let Some(sa) = self.sas.get_mut(&spi) {
            sa.peer_message_id += 1;
        }
        self.respond(spi, h.exchange, h.message_id, path, &response);
        // A Delete of the IKE SA ends it once answered.
        let deleted = payloads.iter().any(|p| {
            matches!(
                p,
                IkePayload::Delete {
                    protocol: PROTO_IKE,
                    ..
                }
            )
        });
        if deleted {
            self.close_deleted(spi, ipsec);
        }
        self.send_next(now, spi);
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        path: (SocketAddr, SocketAddr),
        repr: &IkeRepr,
        bytes: &[u8],
        ipsec: &mut Ipsec,
    ) {
        let spi = if repr.header.initiator() {
            repr.header.spi_r
        } else {
            repr.header.spi_i
        };
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let expected = sa.inflight.as_ref().map(|i| i.message_id);
        if expected != Some(repr.header.message_id) {
            self.drop(IkeDrop::MessageId);
            return;
        }
        if sa.state == IkeState::AwaitingInitResponse {
            if repr.header.exchange == ExchangeType::IKE_SA_INIT {
                self.on_init_response(now, spi, repr, bytes, ipsec);
            } else {
                self.drop(IkeDrop::State);
            }
            return;
        }
        let payloads = match sa.open_message(repr, bytes, &self.cfg.code_points) {
            Ok(p) => p,
            Err(e) => {
                self.drop(e);
                return;
            }
        };
        if sa.state == IkeState::Established
            && self.cfg.mobility == Mobility::AddrMgmt
            && self.addresses_mismatch(spi, path, &payloads, false, false)
        {
            // A reply that disagrees with its header: ask again (AM-3.3e).
            if let Some(sa) = self.sas.get_mut(&spi) {
                if let Some(i) = sa.inflight.as_mut() {
                    i.deadline = now;
                }
            }
            self.retransmit(now, spi, ipsec);
            self.schedule(spi);
            return;
        }
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        let Some(inflight) = sa.inflight.take() else {
            return;
        };
        if let Some(spi_in) = inflight.request.offered_spi() {
            self.offered_spis.remove(&spi_in);
        }
        self.schedule(spi);
        if self
            .sas
            .get(&spi)
            .is_some_and(|s| s.state == IkeState::AwaitingAuthResponse)
        {
            self.on_auth_response(now, spi, inflight.request, &payloads, ipsec);
        } else {
            self.on_established_response(now, spi, inflight, &payloads, ipsec);
        }
        self.send_next(now, spi);
    }

    pub(super) fn on_established_response(
        &mut self,
        now: Instant,
        spi: u64,
        inflight: Inflight,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) {
        match inflight.request {
            Request::Auth => {}
            Request::CreateChild {
                config,
                spi_in,
                nonce,
                rekey,
            } => {
                let Some(nr) = payload_nonce(payloads).map(<[u8]>::to_vec) else {
                    if let Some(old) = rekey {
                        clear_rekey(self.sas.get_mut(&spi), old);
                    }
                    return;
                };
                self.child_response(
                    now,
                    spi,
                    config,
                    spi_in,
                    rekey,
                    (&nonce, &nr),
                    None,
                    payloads,
                    ipsec,
                );
            }
            Request::RekeyIke {
                spi: new,
                nonce,
                dh,
            } => {
                self.rekey_ike_response(now, spi, new, (&nonce, &dh), payloads);
            }
            Request::Delete { ike: true, .. } => self.close_deleted(spi, ipsec),
            Request::Delete { spis, .. } => {
                for s in spis {
                    self.forget_child(spi, s, ipsec);
                }
            }
            Request::Probe {
                path: Some(path),
                cookie2,
            } => {
                self.probe_answered(now, spi, path, cookie2, payloads, ipsec);
            }
            Request::Probe { path: None, .. } | Request::Addresses | Request::Switch(_) => {}
            Request::UpdateSaAddresses { path, cookie2 } => {
                let echoed = find_notify(payloads, NotifyType::COOKIE2.into())
                    .is_some_and(|n| n.data == cookie2);
                if echoed {
                    let children = self.sas.get(&spi).map(Self::followers).unwrap_or_default();
                    self.move_sa(spi, path, true, &children, ipsec);
                }
            }
            Request::AddressUpdate { path, all, spis } => {
                let children = match (all, self.sas.get(&spi)) {
                    (true, Some(sa)) => Self::followers(sa),
                    _ => spis,
                };
                self.move_sa(spi, path, true, &children, ipsec);
            }
        }
    }
}
