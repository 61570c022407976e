//! The message windows of an IKE SA (RFC 7296 §2.1-2.3): our requests,
//! queued and sent one at a time with retransmission, the peer's requests
//! checked against the next message ID and the cached response, and which
//! exchange handles a message.
//!
//! Handlers get the SA as `&mut IkeSa`, taken out of the engine's map, and
//! say in a [`Verdict`] whether it stays.

use core::net::SocketAddr;

use super::child::{clear_rekey, is_error, rekey_ike_payloads};
use super::config::Mobility;
use super::informational::delete_payloads;
use super::payloads::{payload_nonce, PROTO_IKE};
use super::sa::{Cached, IkeSa, Inflight, Request};
use super::{CloseReason, Ike, IkeDrop, IkeEvent, IkeSaId, IkeState, Verdict};
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{ExchangeType, IkePayload, IkeRepr, Notify};

impl Ike {
    /// Queues a request on SA `spi`; it goes out when the window is free.
    pub(super) fn request(&mut self, now: Instant, spi: u64, request: Request) {
        self.with_sa(spi, |ike, sa| ike.queue_request(now, sa, request));
    }

    /// Queues a request; it goes out when the window is free.
    pub(super) fn queue_request(&mut self, now: Instant, sa: &mut IkeSa, request: Request) {
        sa.enqueue(request);
        self.send_next(now, sa);
    }

    /// Sends the next queued request if none is in flight (window 1).
    pub(super) fn send_next(&mut self, now: Instant, sa: &mut IkeSa) {
        loop {
            let Some(e) = sa.established_mut() else {
                return;
            };
            if e.inflight.is_some() {
                return;
            }
            let Some(request) = e.queue.pop_front() else {
                return;
            };
            if self.send_request(now, sa, request) {
                return;
            }
        }
    }

    /// Builds, seals and sends a request; false if it turned out moot.
    fn send_request(&mut self, now: Instant, sa: &mut IkeSa, request: Request) -> bool {
        let Some((exchange, payloads, path)) = self.build_request(sa, &request) else {
            return false;
        };
        let message_id = sa.next_message_id;
        let Ok(bytes) = sa.seal_message(
            exchange,
            false,
            message_id,
            &payloads,
            &self.cfg.code_points,
        ) else {
            return false;
        };
        let Some(e) = sa.established_mut() else {
            return false;
        };
        if let Request::CreateChild { spi_in, .. } = request {
            self.offered_spis.insert(spi_in);
        }
        let deadline = now + self.cfg.retransmit_timeout;
        e.inflight = Some((
            Inflight::new(message_id, bytes.clone(), path, deadline),
            request,
        ));
        sa.next_message_id += 1;
        self.stats.requests_sent += 1;
        self.send(path, &bytes);
        true
    }

    /// The exchange, payloads and path of one of our requests.
    fn build_request(
        &self,
        sa: &IkeSa,
        request: &Request,
    ) -> Option<(ExchangeType, Vec<IkePayload>, (SocketAddr, SocketAddr))> {
        let current = (sa.local, sa.remote);
        let peer = sa.peer()?;
        let info = ExchangeType::INFORMATIONAL;
        Some(match request {
            Request::CreateChild {
                config,
                spi_in,
                nonce,
                rekey,
                dh,
            } => (
                ExchangeType::CREATE_CHILD_SA,
                self.create_child_payloads(
                    sa,
                    peer,
                    *config,
                    *spi_in,
                    (nonce, dh.as_ref()),
                    *rekey,
                ),
                current,
            ),
            Request::RekeyIke { spi, nonce, dh } => (
                ExchangeType::CREATE_CHILD_SA,
                rekey_ike_payloads(sa.encr, *spi, nonce, dh),
                current,
            ),
            Request::Delete { ike, spis } => (info, delete_payloads(*ike, spis)?, current),
            Request::Probe { path, cookie2 } => {
                let path = path.unwrap_or(current);
                (info, self.probe_payloads(current, path, cookie2), path)
            }
            Request::UpdateSaAddresses { path, cookie2 } => (
                info,
                self.update_sa_addresses_payloads(sa, *path, cookie2),
                *path,
            ),
            Request::Addresses => (info, self.address_list(sa.local.ip()), current),
            Request::Switch(to) => (info, self.switch_payloads(*to), current),
            Request::AddressUpdate { path, all, spis } => {
                (info, self.address_update_payloads(*path, *all, spis), *path)
            }
        })
    }

    /// Retransmits with exponential back-off, from the SA's current
    /// addresses (a retransmission may use another pair, REQ AM-3.2a);
    /// past the limit the peer is dead.
    pub(super) fn retransmit(&mut self, now: Instant, sa: &mut IkeSa) -> Verdict {
        let tries = self.cfg.retransmit_tries;
        let base = self.cfg.retransmit_timeout;
        // Gone from our addresses: retransmit from another (REQ AM-3.2a).
        let current = if self.pinned(sa) || self.local_addresses.contains(&sa.local.ip()) {
            (sa.local, sa.remote)
        } else {
            self.next_path(sa).unwrap_or((sa.local, sa.remote))
        };
        let own_path = sa.request_in_flight().is_some_and(Request::has_own_path);
        let probe = matches!(
            sa.request_in_flight(),
            Some(Request::Probe { path: Some(_), .. })
        );
        let Some(inflight) = sa.inflight_mut() else {
            return Verdict::Keep;
        };
        if inflight.retransmits >= tries {
            if !probe {
                return Verdict::Close(CloseReason::Timeout);
            }
            // A failed path probe or RR check is not a dead peer.
            if let Some(e) = sa.established_mut() {
                e.inflight = None;
            }
            self.send_next(now, sa);
            return Verdict::Keep;
        }
        inflight.retransmits += 1;
        inflight.deadline = now + base * 2u32.saturating_pow(inflight.retransmits);
        // Probes, checks and moves are tied to their path; the rest follow
        // the SA.
        if !own_path {
            inflight.path = current;
        }
        let (path, bytes) = (inflight.path, inflight.bytes.clone());
        self.stats.retransmits += 1;
        self.send(path, &bytes);
        Verdict::Keep
    }

    /// Sends a response and caches it for a retransmitted request.
    pub(super) fn respond(
        &mut self,
        sa: &mut IkeSa,
        exchange: ExchangeType,
        message_id: u32,
        path: (SocketAddr, SocketAddr),
        payloads: &[IkePayload],
    ) {
        let Ok(bytes) =
            sa.seal_message(exchange, true, message_id, payloads, &self.cfg.code_points)
        else {
            return;
        };
        // Before IKE_AUTH is done a response ends the SA: no cache.
        if let Some(e) = sa.established_mut() {
            e.cached = Some(Cached {
                message_id,
                bytes: bytes.clone(),
            });
        }
        self.stats.responses_sent += 1;
        // Back where the request came from, from where it went (REQ AM-3.1a).
        self.send(path, &bytes);
    }

    pub(super) fn on_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        repr: &IkeRepr,
        bytes: &[u8],
        ipsec: &mut Ipsec,
    ) -> Verdict {
        let h = &repr.header;
        let e = sa.established();
        if let Some(c) = e
            .and_then(|e| e.cached.as_ref())
            .filter(|c| c.message_id == h.message_id)
        {
            // A retransmission gets the cached reply, sent back where this
            // copy came from (REQ AM-3.1a, AM-3.3e).
            let bytes = c.bytes.clone();
            self.stats.cached_replies += 1;
            self.send(path, &bytes);
            return Verdict::Keep;
        }
        let held = e
            .and_then(|e| e.deferred.as_ref())
            .and_then(|d| d.response.as_ref())
            .is_some_and(|r| r.message_id == h.message_id);
        if h.message_id != sa.peer_message_id || held {
            self.drop(IkeDrop::MessageId);
            return Verdict::Keep;
        }
        let payloads = match sa.open_message(repr, bytes, &self.cfg.code_points) {
            Ok(p) => p,
            Err(e) => {
                self.drop(e);
                return Verdict::Keep;
            }
        };
        sa.heard();
        match (sa.state(), h.exchange) {
            (IkeState::AwaitingAuthRequest, ExchangeType::IKE_AUTH) => {
                return self.on_auth_request(now, sa, path, h.message_id, &payloads, ipsec);
            }
            (IkeState::Established, _) => {}
            _ => {
                self.drop(IkeDrop::State);
                return Verdict::Keep;
            }
        }
        if self.cfg.mobility == Mobility::AddrMgmt
            && self.addresses_mismatch(
                sa,
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
            self.events.push_back(IkeEvent::AddressMismatch {
                sa: IkeSaId(sa.ours),
            });
            sa.peer_message_id += 1;
            let warn = IkePayload::Notify(Notify::new(
                self.cfg.code_points.notify_peer_address_mismatch,
                Vec::new(),
            ));
            self.respond(sa, h.exchange, h.message_id, path, &[warn]);
            return Verdict::Keep;
        }
        let response = match h.exchange {
            ExchangeType::CREATE_CHILD_SA => self.on_create_child(now, sa, &payloads, ipsec),
            ExchangeType::INFORMATIONAL => {
                match self.on_informational(now, sa, path, h.message_id, &payloads, ipsec) {
                    Some(r) => r,
                    // Held back for a return-routability check.
                    None => {
                        self.send_next(now, sa);
                        return Verdict::Keep;
                    }
                }
            }
            _ => {
                self.drop(IkeDrop::State);
                return Verdict::Keep;
            }
        };
        sa.peer_message_id += 1;
        self.respond(sa, h.exchange, h.message_id, path, &response);
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
            return self.deleted(sa);
        }
        self.send_next(now, sa);
        Verdict::Keep
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        repr: &IkeRepr,
        bytes: &[u8],
        ipsec: &mut Ipsec,
    ) -> Verdict {
        if sa.inflight().map(|i| i.message_id) != Some(repr.header.message_id) {
            self.drop(IkeDrop::MessageId);
            return Verdict::Keep;
        }
        if sa.state() == IkeState::AwaitingInitResponse {
            if repr.header.exchange != ExchangeType::IKE_SA_INIT {
                self.drop(IkeDrop::State);
                return Verdict::Keep;
            }
            return self.on_init_response(now, sa, repr, bytes, ipsec);
        }
        let payloads = match sa.open_message(repr, bytes, &self.cfg.code_points) {
            Ok(p) => p,
            Err(e) => {
                self.drop(e);
                return Verdict::Keep;
            }
        };
        sa.heard();
        self.stats.responses_received += 1;
        if sa.state() == IkeState::AwaitingAuthResponse {
            if let Some(spi) = sa.offered_spi() {
                self.offered_spis.remove(&spi);
            }
            let verdict = self.on_auth_response(now, sa, &payloads, ipsec);
            if let Verdict::Keep = verdict {
                self.send_next(now, sa);
            }
            return verdict;
        }
        if self.cfg.mobility == Mobility::AddrMgmt
            && self.addresses_mismatch(sa, path, &payloads, false, false)
        {
            // A reply that disagrees with its header: ask again (AM-3.3e).
            if let Some(i) = sa.inflight_mut() {
                i.deadline = now;
            }
            return self.retransmit(now, sa);
        }
        let Some((_, request)) = sa.established_mut().and_then(|e| e.inflight.take()) else {
            return Verdict::Keep;
        };
        if let Request::CreateChild { spi_in, .. } = request {
            self.offered_spis.remove(&spi_in);
        }
        let verdict = self.on_established_response(now, sa, request, &payloads, ipsec);
        if let Verdict::Keep = verdict {
            self.send_next(now, sa);
        }
        verdict
    }

    /// The response to one of our requests once established.
    fn on_established_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        request: Request,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Verdict {
        match request {
            Request::CreateChild {
                config,
                spi_in,
                nonce,
                rekey,
                dh,
            } => {
                let Some(nr) = payload_nonce(payloads).map(<[u8]>::to_vec) else {
                    if let Some(n) = payloads.iter().find(|p| is_error(p)) {
                        self.child_refused(sa, n, true);
                    }
                    if let Some(old) = rekey {
                        clear_rekey(sa, old);
                    }
                    return Verdict::Keep;
                };
                self.child_response(
                    now,
                    sa,
                    config,
                    spi_in,
                    rekey,
                    (&nonce, &nr),
                    dh.as_ref(),
                    payloads,
                    ipsec,
                );
            }
            Request::RekeyIke { spi, nonce, dh } => {
                self.rekey_ike_response(now, sa, spi, (&nonce, &dh), payloads);
            }
            Request::Delete { ike: true, .. } => return self.deleted(sa),
            Request::Delete { spis, .. } => {
                for s in spis {
                    self.forget_child(sa, s, ipsec);
                }
            }
            Request::Probe {
                path: Some(path),
                cookie2,
            } => self.probe_answered(now, sa, path, cookie2, payloads, ipsec),
            Request::Probe { path: None, .. } | Request::Addresses | Request::Switch(_) => {}
            Request::UpdateSaAddresses { path, cookie2 } => {
                self.addresses_updated(sa, path, &cookie2, payloads, ipsec);
            }
            Request::AddressUpdate { path, all, spis } => {
                self.address_update_answered(sa, path, all, spis, ipsec);
            }
        }
        Verdict::Keep
    }
}
