//! IKE_AUTH (RFC 7296 §1.2, §2.15), both roles, and what establishing an
//! IKE SA sets up.

use core::net::SocketAddr;

use super::config::{Identity, Mobility, PeerAuth};
use super::crypto;
use super::payloads::{find_notify, has_notify, notify, payload_ts};
use super::sa::{IkeSa, IkeState, Inflight};
use super::{CloseReason, Ike, IkeDrop, IkeEvent, IkeSaId, Request};
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{ExchangeType, IkePayload, MobikeSupported, NotifyType};

fn id_body(id: &crate::wire::ike::Identification) -> Vec<u8> {
    let mut b = vec![id.id_type, 0, 0, 0];
    b.extend_from_slice(&id.data);
    b
}

impl Ike {
    pub(super) fn first_child(&self, spi: u64) -> Option<usize> {
        let peer = self.sas.get(&spi)?.peer?;
        (!self.cfg.peers[peer].children.is_empty()).then_some(0)
    }

    /// Our identity and AUTH payloads for this SA.
    pub(super) fn auth_payloads(&self, sa: &IkeSa, peer: usize) -> Option<[IkePayload; 2]> {
        let id = self.cfg.id.payload();
        let keys = sa.keys.as_ref()?;
        let (message, nonce, sk_p) = if sa.initiator {
            (&sa.init_request, &sa.nr, &keys.sk_pi)
        } else {
            (&sa.init_response, &sa.ni, &keys.sk_pr)
        };
        let octets = crypto::signed_octets(message, nonce, sk_p, &id_body(&id));
        let (method, data) = match &self.cfg.peers[peer].auth {
            PeerAuth::Psk(secret) => (
                crypto::AUTH_SHARED_KEY,
                crypto::psk_auth(secret, &octets).to_vec(),
            ),
            PeerAuth::Ed25519(_) => (
                crypto::AUTH_DIGITAL_SIGNATURE,
                crypto::ed25519_auth(self.cfg.signing_key.as_ref()?, &octets),
            ),
        };
        let idp = if sa.initiator {
            IkePayload::IdI(id)
        } else {
            IkePayload::IdR(id)
        };
        Some([idp, IkePayload::Auth { method, data }])
    }

    /// Checks the peer's AUTH (§2.15) against the configured peer.
    pub(super) fn verify_auth(&self, sa: &IkeSa, peer: usize, payloads: &[IkePayload]) -> bool {
        let id = payloads.iter().find_map(|p| match p {
            IkePayload::IdI(id) if !sa.initiator => Some(id),
            IkePayload::IdR(id) if sa.initiator => Some(id),
            _ => None,
        });
        let auth = payloads.iter().find_map(|p| match p {
            IkePayload::Auth { method, data } => Some((*method, data.as_slice())),
            _ => None,
        });
        let (Some(id), Some((method, data)), Some(keys)) = (id, auth, sa.keys.as_ref()) else {
            return false;
        };
        let (message, nonce, sk_p) = if sa.initiator {
            (&sa.init_response, &sa.ni, &keys.sk_pr)
        } else {
            (&sa.init_request, &sa.nr, &keys.sk_pi)
        };
        let octets = crypto::signed_octets(message, nonce, sk_p, &id_body(id));
        match &self.cfg.peers[peer].auth {
            PeerAuth::Psk(secret) => {
                method == crypto::AUTH_SHARED_KEY && crypto::psk_verify(secret, &octets, data)
            }
            PeerAuth::Ed25519(key) => {
                method == crypto::AUTH_DIGITAL_SIGNATURE
                    && crypto::ed25519_verify(key, &octets, data).is_ok()
            }
        }
    }

    /// MOBIKE_SUPPORTED and the address list, for IKE_AUTH.
    pub(super) fn mobility_payloads(&self, sa: &IkeSa) -> Vec<IkePayload> {
        let mut out = Vec::new();
        if let Mobility::Mobike { r_mobike } = self.cfg.mobility {
            // Only an initiator says 'R' (REQ RM-4.1a, RM-4.1b).
            let m = MobikeSupported {
                r_mobike: r_mobike && sa.initiator,
            };
            out.push(IkePayload::Notify(m.to_notify()));
            out.extend(self.address_list(sa.local.ip()));
        }
        if self.cfg.mobility == Mobility::AddrMgmt {
            out.extend(self.peer_address_notifications(sa.local, sa.remote));
        }
        out
    }

    pub(super) fn send_auth(&mut self, now: Instant, spi: u64, request: Request) {
        let Some((exchange, payloads, path)) = self.build_request(spi, &request) else {
            return;
        };
        let cp = self.cfg.code_points;
        let timeout = self.cfg.retransmit_timeout;
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        let Ok(bytes) = sa.seal_message(exchange, false, 1, &payloads, &cp) else {
            return;
        };
        sa.next_message_id = 2;
        if let Some(spi_in) = request.offered_spi() {
            self.offered_spis.insert(spi_in);
        }
        sa.inflight = Some(Inflight {
            message_id: 1,
            bytes: bytes.clone(),
            path,
            request,
            retransmits: 0,
            deadline: now + timeout,
        });
        self.stats.requests_sent += 1;
        self.send(path, &bytes);
        self.schedule(spi);
    }

    pub(super) fn on_auth_response(
        &mut self,
        now: Instant,
        spi: u64,
        request: Request,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) {
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let Some(peer) = sa.peer else {
            return;
        };
        let id_ok = payloads.iter().any(|p| {
            matches!(p, IkePayload::IdR(id)
                if Identity::from_payload(id).as_ref() == Some(&self.cfg.peers[peer].id))
        });
        if !id_ok || !self.verify_auth(sa, peer, payloads) {
            self.drop(IkeDrop::AuthenticationFailed);
            self.close(spi, CloseReason::AuthenticationFailed, ipsec);
            return;
        }
        self.establish(now, spi, payloads);
        if let Request::CreateChild { config, spi_in, .. } = request {
            let (ni, nr) = match self.sas.get(&spi) {
                Some(sa) => (sa.ni.clone(), sa.nr.clone()),
                None => return,
            };
            self.child_response(
                now,
                spi,
                config,
                spi_in,
                None,
                (&ni, &nr),
                None,
                payloads,
                ipsec,
            );
        }
    }

    /// Both sides authenticated: MOBIKE, addresses, INITIAL_CONTACT.
    pub(super) fn establish(&mut self, now: Instant, spi: u64, payloads: &[IkePayload]) {
        let cp = self.cfg.code_points;
        let mobike_here = matches!(self.cfg.mobility, Mobility::Mobike { .. });
        let mobike = find_notify(payloads, NotifyType::MOBIKE_SUPPORTED.into());
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        sa.state = IkeState::Established;
        sa.expires = None;
        sa.established_at = Some(now);
        sa.mobike = mobike_here && mobike.is_some();
        // Data other than 'R' is ignored as unknown (REQ RM-4.1b).
        sa.peer_r_mobike = !sa.initiator
            && mobike.is_some_and(|n| MobikeSupported::from_notify(n).is_ok_and(|m| m.r_mobike));
        sa.peer_addresses = vec![sa.remote.ip()];
        let (local, remote) = (sa.local, sa.remote);
        let peer = sa.peer;
        if !sa.initiator {
            self.half_open.remove(&sa.spi_i);
        }
        self.schedule(spi);
        self.learn_addresses(spi, payloads, &cp);
        if let Some(peer) = peer {
            self.events.push_back(IkeEvent::Established {
                sa: IkeSaId(spi),
                peer: self.cfg.peers[peer].id.clone(),
                local,
                remote,
            });
        }
    }

    /// Responder side of IKE_AUTH.
    pub(super) fn on_auth_request(
        &mut self,
        now: Instant,
        spi: u64,
        path: (SocketAddr, SocketAddr),
        message_id: u32,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) {
        let idi = payloads.iter().find_map(|p| match p {
            IkePayload::IdI(id) => Some(id),
            _ => None,
        });
        // Names only: an address is never an identity (REQ AM-2.1c).
        let identity = idi.and_then(Identity::from_payload);
        let peer = identity
            .as_ref()
            .and_then(|id| self.cfg.peers.iter().position(|p| p.id == *id));
        let ok = match (peer, self.sas.get(&spi)) {
            (Some(peer), Some(sa)) => self.verify_auth(sa, peer, payloads),
            _ => false,
        };
        let Some(peer) = peer.filter(|_| ok) else {
            self.drop(IkeDrop::AuthenticationFailed);
            if let Some(sa) = self.sas.get_mut(&spi) {
                sa.peer_message_id += 1;
            }
            self.respond(
                spi,
                ExchangeType::IKE_AUTH,
                message_id,
                path,
                &[notify(NotifyType::AUTHENTICATION_FAILED, Vec::new())],
            );
            self.close(spi, CloseReason::AuthenticationFailed, ipsec);
            return;
        };
        if let Some(sa) = self.sas.get_mut(&spi) {
            sa.peer = Some(peer);
            // The request may have floated to 4500.
            sa.local = path.0;
            sa.remote = path.1;
            sa.peer_message_id += 1;
        }
        if has_notify(payloads, NotifyType::INITIAL_CONTACT) {
            // By identity, wherever the old SAs' addresses were (REQ AM-2.1b).
            let old: Vec<u64> = self
                .sas
                .values()
                .filter(|s| s.ours != spi && s.peer == Some(peer))
                .map(|s| s.ours)
                .collect();
            for o in old {
                self.close(o, CloseReason::InitialContact, ipsec);
            }
        }
        self.establish(now, spi, payloads);
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let Some([id, auth]) = self.auth_payloads(sa, peer) else {
            return;
        };
        let mut out = vec![id, auth];
        let nonces = (sa.ni.clone(), sa.nr.clone());
        if payload_ts(payloads).is_some() {
            match self.accept_child(
                now,
                spi,
                payloads,
                None,
                (&nonces.0, &nonces.1),
                None,
                ipsec,
            ) {
                Ok(p) => out.extend(p),
                Err(n) => out.push(notify(n, Vec::new())),
            }
        }
        if let Some(sa) = self.sas.get(&spi) {
            out.extend(self.mobility_payloads(sa));
        }
        self.respond(spi, ExchangeType::IKE_AUTH, message_id, path, &out);
    }
}
