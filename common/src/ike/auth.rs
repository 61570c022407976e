//! IKE_AUTH (RFC 7296 §1.2, §2.15), both roles, and what establishing an
//! IKE SA sets up.

use core::net::SocketAddr;

use super::config::{Identity, Mobility, PeerAuth};
use super::crypto;
use super::payloads::{find_notify, has_notify, notify, payload_ts};
use super::sa::{header, ExpectAuthResponse, Handshake, IkeSa, Inflight, Keyed, Phase, Sk};
use super::{CloseReason, Ike, IkeDrop, IkeEvent, IkeSaId, IkeState, Verdict};
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{ExchangeType, Identification, IkePayload, MobikeSupported, NotifyType};

fn id_body(id: &Identification) -> Vec<u8> {
    let mut b = vec![id.id_type, 0, 0, 0];
    b.extend_from_slice(&id.data);
    b
}

impl Ike {
    /// The child negotiated with IKE_AUTH: the peer's first, if any.
    pub(super) fn first_child(&self, peer: usize) -> Option<usize> {
        (!self.cfg.peers[peer].children.is_empty()).then_some(0)
    }

    /// Our identity and AUTH payloads.
    fn auth_payloads(
        &self,
        initiator: bool,
        hs: &Handshake,
        peer: usize,
    ) -> Option<[IkePayload; 2]> {
        let id = self.cfg.id.payload();
        let (message, nonce, sk_p) = if initiator {
            (&hs.init_request, &hs.nr, &hs.sk_pi)
        } else {
            (&hs.init_response, &hs.ni, &hs.sk_pr)
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
        let idp = if initiator {
            IkePayload::IdI(id)
        } else {
            IkePayload::IdR(id)
        };
        Some([idp, IkePayload::Auth { method, data }])
    }

    /// Checks the peer's AUTH (§2.15) against the configured peer.
    fn verify_auth(
        &self,
        initiator: bool,
        hs: &Handshake,
        peer: usize,
        payloads: &[IkePayload],
    ) -> bool {
        let id = payloads.iter().find_map(|p| match p {
            IkePayload::IdI(id) if !initiator => Some(id),
            IkePayload::IdR(id) if initiator => Some(id),
            _ => None,
        });
        let auth = payloads.iter().find_map(|p| match p {
            IkePayload::Auth { method, data } => Some((*method, data.as_slice())),
            _ => None,
        });
        let (Some(id), Some((method, data))) = (id, auth) else {
            return false;
        };
        let (message, nonce, sk_p) = if initiator {
            (&hs.init_response, &hs.ni, &hs.sk_pr)
        } else {
            (&hs.init_request, &hs.nr, &hs.sk_pi)
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
    fn mobility_payloads(&self, sa: &IkeSa) -> Vec<IkePayload> {
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

    /// The initiator's IKE_AUTH payloads, with the first child's.
    fn auth_request(
        &self,
        sa: &IkeSa,
        hs: &Handshake,
        peer: usize,
        first_child: Option<(usize, u32)>,
    ) -> Option<Vec<IkePayload>> {
        let [id, auth] = self.auth_payloads(true, hs, peer)?;
        let mut p = vec![id];
        // This SA is out of the map: an established one is another.
        let others = self
            .sas
            .values()
            .any(|o| o.peer() == Some(peer) && o.state() == IkeState::Established);
        if !others {
            p.push(notify(NotifyType::INITIAL_CONTACT, Vec::new()));
        }
        p.push(IkePayload::IdR(self.cfg.peers[peer].id.payload()));
        p.push(auth);
        if let Some((config, spi_in)) = first_child {
            p.extend(self.child_payloads(sa, peer, config, spi_in, false));
        }
        p.extend(self.mobility_payloads(sa));
        Some(p)
    }

    /// Sends IKE_AUTH and waits for its response. An AUTH we cannot sign
    /// (an Ed25519 peer and no signing key) ends the SA.
    pub(super) fn send_auth(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        mut sk: Sk,
        peer: usize,
        handshake: Handshake,
        first_child: Option<(usize, u32)>,
    ) -> Verdict {
        let sealed = self
            .auth_request(sa, &handshake, peer, first_child)
            .and_then(|payloads| {
                let h = header((sa.spi_i, sa.spi_r), true, ExchangeType::IKE_AUTH, false, 1);
                sk.seal(h, &payloads, &self.cfg.code_points).ok()
            });
        let Some(bytes) = sealed else {
            return Verdict::Close(CloseReason::AuthenticationFailed);
        };
        let path = (sa.local, sa.remote);
        if let Some((_, spi_in)) = first_child {
            self.offered_spis.insert(spi_in);
        }
        let inflight = Inflight::new(1, bytes.clone(), path, now + self.cfg.retransmit_timeout);
        sa.phase = Phase::Keyed(
            sk,
            Keyed::AwaitingAuthResponse(ExpectAuthResponse {
                peer,
                handshake,
                inflight,
                first_child,
            }),
        );
        sa.next_message_id = 2;
        self.stats.requests_sent += 1;
        self.send(path, &bytes);
        Verdict::Keep
    }

    pub(super) fn on_auth_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Verdict {
        let Phase::Keyed(_, Keyed::AwaitingAuthResponse(s)) = &sa.phase else {
            return Verdict::Keep;
        };
        let peer = s.peer;
        let id_ok = payloads.iter().any(|p| {
            matches!(p, IkePayload::IdR(id)
                if Identity::from_payload(id).as_ref() == Some(&self.cfg.peers[peer].id))
        });
        if !id_ok || !self.verify_auth(true, &s.handshake, peer, payloads) {
            self.drop(IkeDrop::AuthenticationFailed);
            return Verdict::Close(CloseReason::AuthenticationFailed);
        }
        let first_child = s.first_child;
        let Some((ni, nr)) = sa.finish_handshake(peer, now) else {
            return Verdict::Keep;
        };
        self.establish(sa, payloads);
        if let Some((config, spi_in)) = first_child {
            self.child_response(
                now,
                sa,
                config,
                spi_in,
                None,
                (&ni, &nr),
                None,
                payloads,
                ipsec,
            );
        }
        Verdict::Keep
    }

    /// Both sides authenticated: MOBIKE, addresses, the event.
    fn establish(&mut self, sa: &mut IkeSa, payloads: &[IkePayload]) {
        let mobike_here = matches!(self.cfg.mobility, Mobility::Mobike { .. });
        let mobike = find_notify(payloads, NotifyType::MOBIKE_SUPPORTED.into());
        sa.mobike = mobike_here && mobike.is_some();
        // Data other than 'R' is ignored as unknown (REQ RM-4.1b).
        sa.peer_r_mobike = !sa.initiator
            && mobike.is_some_and(|n| MobikeSupported::from_notify(n).is_ok_and(|m| m.r_mobike));
        sa.peer_addresses = vec![sa.remote.ip()];
        if !sa.initiator {
            self.half_open.remove(&sa.spi_i);
        }
        self.learn_addresses(sa, payloads);
        if let Some(peer) = sa.peer() {
            self.events.push_back(IkeEvent::Established {
                sa: IkeSaId(sa.ours),
                peer: self.cfg.peers[peer].id.clone(),
                local: sa.local,
                remote: sa.remote,
            });
        }
    }

    /// Responder side of IKE_AUTH.
    pub(super) fn on_auth_request(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        path: (SocketAddr, SocketAddr),
        message_id: u32,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Verdict {
        let Phase::Keyed(_, Keyed::AwaitingAuthRequest(s)) = &sa.phase else {
            return Verdict::Keep;
        };
        let idi = payloads.iter().find_map(|p| match p {
            IkePayload::IdI(id) => Some(id),
            _ => None,
        });
        // Names only: an address is never an identity (REQ AM-2.1c).
        let identity = idi.and_then(Identity::from_payload);
        let peer = identity
            .as_ref()
            .and_then(|id| self.cfg.peers.iter().position(|p| p.id == *id))
            .filter(|peer| self.verify_auth(false, &s.handshake, *peer, payloads));
        let Some(peer) = peer else {
            self.drop(IkeDrop::AuthenticationFailed);
            sa.peer_message_id += 1;
            self.respond(
                sa,
                ExchangeType::IKE_AUTH,
                message_id,
                path,
                &[notify(NotifyType::AUTHENTICATION_FAILED, Vec::new())],
            );
            return Verdict::Close(CloseReason::AuthenticationFailed);
        };
        // Signed before the handshake goes.
        let auth = self.auth_payloads(false, &s.handshake, peer);
        // The request may have floated to 4500.
        sa.local = path.0;
        sa.remote = path.1;
        sa.peer_message_id += 1;
        if has_notify(payloads, NotifyType::INITIAL_CONTACT) {
            // By identity, wherever the old SAs' addresses were (REQ AM-2.1b).
            let old: Vec<u64> = self
                .sas
                .values()
                .filter(|s| s.peer() == Some(peer))
                .map(|s| s.ours)
                .collect();
            for o in old {
                self.close_spi(o, CloseReason::InitialContact, ipsec);
            }
        }
        let Some((ni, nr)) = sa.finish_handshake(peer, now) else {
            return Verdict::Keep;
        };
        self.establish(sa, payloads);
        let Some([id, auth]) = auth else {
            return Verdict::Keep;
        };
        let mut out = vec![id, auth];
        if payload_ts(payloads).is_some() {
            match self.accept_child(now, sa, payloads, None, (&ni, &nr), false, ipsec) {
                Ok(p) => out.extend(p),
                Err(n) => {
                    self.child_refused(sa, &n, false);
                    out.push(n);
                }
            }
        }
        out.extend(self.mobility_payloads(sa));
        self.respond(sa, ExchangeType::IKE_AUTH, message_id, path, &out);
        Verdict::Keep
    }
}
