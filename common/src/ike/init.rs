//! IKE_SA_INIT (RFC 7296 §1.2), both roles: proposals, the COOKIE
//! (§2.6), NAT detection (§2.23) and key derivation.

use core::mem;
use core::net::{IpAddr, SocketAddr};

use super::config::{Mobility, NatTraversal};
use super::crypto::{self, Dh, Encr, IkeKeys};
use super::payloads::{find_notify, has_notify, notify, payload_ke, payload_nonce, PROTO_IKE};
use super::sa::{
    header, ExpectAuthRequest, ExpectInitResponse, Handshake, IkeSa, Inflight, Keyed, Phase, Sk,
};
use super::tunnel_addresses;
use super::{
    keylog, CloseReason, Ike, IkeDrop, IkeEvent, IkeSaId, KeyTable, Verdict, HALF_OPEN_TIMEOUT,
    NATT_PORT,
};
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{ExchangeType, IkePayload, IkeRepr, NotifyType, Proposal, Transform};
use crate::wire::CodePoints;

/// Transform types (§3.3.2).
pub(super) const ENCR: u8 = 1;
const PRF: u8 = 2;
pub(super) const DH: u8 = 4;

pub(super) fn ike_proposal(proposals: &[Encr], spi: Vec<u8>) -> Proposal {
    let mut transforms: Vec<Transform> = proposals
        .iter()
        .map(|e| Transform::new(ENCR, e.transform_id(), e.key_length_attr()))
        .collect();
    transforms.push(Transform::new(PRF, crypto::PRF_HMAC_SHA2_256, None));
    transforms.push(Transform::new(DH, crypto::DH_CURVE25519, None));
    Proposal {
        number: 1,
        protocol: PROTO_IKE,
        spi,
        transforms,
    }
}

/// The encryption transforms a proposal offers, in its order.
pub(super) fn offered(p: &Proposal) -> impl Iterator<Item = Encr> + '_ {
    p.transforms
        .iter()
        .filter(|t| t.transform_type == ENCR)
        .filter_map(|t| Encr::from_transform(t.id, t.key_length()))
}

pub(super) fn has_transform(p: &Proposal, ty: u8, id: u16) -> bool {
    p.transforms
        .iter()
        .any(|t| t.transform_type == ty && t.id == id)
}

/// Our choice among the peer's IKE proposals: (number, encr, peer SPI).
pub(super) fn choose_ike(payloads: &[IkePayload], ours: &[Encr]) -> Option<(u8, Encr, Vec<u8>)> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Sa(props) => props.iter().find_map(|pr| {
            if pr.protocol != PROTO_IKE
                || !has_transform(pr, PRF, crypto::PRF_HMAC_SHA2_256)
                || !has_transform(pr, DH, crypto::DH_CURVE25519)
            {
                return None;
            }
            let theirs: Vec<Encr> = offered(pr).collect();
            let e = ours.iter().find(|e| theirs.contains(e))?;
            Some((pr.number, *e, pr.spi.clone()))
        }),
        _ => None,
    })
}

impl Ike {
    pub(super) fn nat_traversal(&self, family_v6: bool) -> bool {
        match self.cfg.nat_traversal {
            NatTraversal::On => true,
            NatTraversal::Off => false,
            NatTraversal::Auto => !family_v6,
        }
    }

    pub(super) fn nat_detection(
        &self,
        spi_i: u64,
        spi_r: u64,
        path: (SocketAddr, SocketAddr),
    ) -> [IkePayload; 2] {
        [
            notify(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                crypto::nat_detection_hash(spi_i, spi_r, path.0.ip(), path.0.port()).to_vec(),
            ),
            notify(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                crypto::nat_detection_hash(spi_i, spi_r, path.1.ip(), path.1.port()).to_vec(),
            ),
        ]
    }

    /// (NAT in front of us, NAT in front of the peer) from received NAT_D
    /// notifications; `path` is (local, remote) as received.
    fn detect_nat(
        payloads: &[IkePayload],
        spi_i: u64,
        spi_r: u64,
        path: (SocketAddr, SocketAddr),
    ) -> (bool, bool) {
        let ours = crypto::nat_detection_hash(spi_i, spi_r, path.0.ip(), path.0.port());
        let theirs = crypto::nat_detection_hash(spi_i, spi_r, path.1.ip(), path.1.port());
        let mut src = payloads.iter().filter_map(|p| match p {
            IkePayload::Notify(n)
                if NotifyType::from(n.notify_type) == NotifyType::NAT_DETECTION_SOURCE_IP =>
            {
                Some(n.data.as_slice())
            }
            _ => None,
        });
        let remote_nat = !src.any(|d| d == theirs);
        let local_nat = find_notify(payloads, NotifyType::NAT_DETECTION_DESTINATION_IP.into())
            .is_some_and(|n| n.data != ours);
        (local_nat, remote_nat)
    }

    /// Creates an initiator SA and sends IKE_SA_INIT.
    pub(super) fn start_init(
        &mut self,
        now: Instant,
        peer: usize,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> IkeSaId {
        let spi = self.fresh_spi(None);
        let ni = self.nonce();
        let dh = Dh::generate(&mut self.rng);
        let inflight = self.send_init(now, spi, (local, remote), &dh, &ni, None);
        let mut sa = IkeSa::new(
            spi,
            true,
            (local, remote),
            Phase::AwaitingInitResponse(ExpectInitResponse {
                peer,
                dh,
                ni,
                inflight,
            }),
        );
        sa.next_message_id = 1;
        self.put(sa);
        IkeSaId(spi)
    }

    /// Sends our IKE_SA_INIT request, with the responder's COOKIE when it
    /// asked for one.
    fn send_init(
        &mut self,
        now: Instant,
        spi_i: u64,
        path: (SocketAddr, SocketAddr),
        dh: &Dh,
        ni: &[u8],
        cookie: Option<Vec<u8>>,
    ) -> Inflight {
        let cp = self.cfg.code_points;
        let mut payloads = Vec::new();
        if let Some(c) = cookie {
            payloads.push(notify(NotifyType::COOKIE, c));
        }
        payloads.push(IkePayload::Sa(vec![ike_proposal(
            &self.cfg.proposals,
            Vec::new(),
        )]));
        payloads.push(IkePayload::Ke {
            group: crypto::DH_CURVE25519,
            data: dh.public().to_vec(),
        });
        payloads.push(IkePayload::Nonce(ni.to_vec()));
        if self.nat_traversal(path.1.is_ipv6()) {
            payloads.extend(self.nat_detection(spi_i, 0, path));
        }
        if self.cfg.tunnel_addresses {
            payloads.push(tunnel_addresses::supported(&cp));
        }
        if self.cfg.signing_key.is_some() {
            payloads.push(notify(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                crypto::SIGNATURE_HASH_ALGORITHMS.to_vec(),
            ));
        }
        let bytes = clear_init((spi_i, 0), true, false, payloads, &cp);
        self.stats.requests_sent += 1;
        self.send(path, &bytes);
        Inflight::new(0, bytes, path, now + self.cfg.retransmit_timeout)
    }

    fn cookie_for(&self, ni: &[u8], from: IpAddr, spi_i: u64) -> Vec<u8> {
        let ip = match from {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        crypto::prf(&self.cookie_secret, &[ni, &ip, &spi_i.to_be_bytes()]).to_vec()
    }

    /// A clear IKE_SA_INIT answer that creates no state.
    fn refuse_init(&mut self, path: (SocketAddr, SocketAddr), spi_i: u64, n: IkePayload) {
        let bytes = clear_init((spi_i, 0), false, true, vec![n], &self.cfg.code_points);
        self.stats.responses_sent += 1;
        self.send(path, &bytes);
    }

    pub(super) fn on_init_request(
        &mut self,
        now: Instant,
        path: (SocketAddr, SocketAddr),
        repr: &IkeRepr,
        bytes: &[u8],
    ) {
        let h = &repr.header;
        let p = &repr.payloads;
        if let Some(ours) = self.half_open.get(&h.spi_i) {
            // A retransmission: the same answer.
            if let Some(Phase::Keyed(_, Keyed::AwaitingAuthRequest(s))) =
                self.sas.get(ours).map(|sa| &sa.phase)
            {
                let resp = s.handshake.init_response.clone();
                self.stats.cached_replies += 1;
                self.send(path, &resp);
            }
            return;
        }
        let (Some(ni), Some((group, ke))) = (payload_nonce(p), payload_ke(p)) else {
            self.drop(IkeDrop::Malformed);
            return;
        };
        if self.half_open.len() >= self.cfg.cookie_threshold {
            let want = self.cookie_for(ni, path.1.ip(), h.spi_i);
            let got = find_notify(p, NotifyType::COOKIE.into()).map(|n| n.data.clone());
            if got.as_deref() != Some(&want[..]) {
                self.drop(IkeDrop::Cookie);
                self.refuse_init(path, h.spi_i, notify(NotifyType::COOKIE, want));
                return;
            }
        }
        let Some((number, encr, _)) = choose_ike(p, &self.cfg.proposals) else {
            self.refuse_init(
                path,
                h.spi_i,
                notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new()),
            );
            return;
        };
        if group != crypto::DH_CURVE25519 {
            self.refuse_init(
                path,
                h.spi_i,
                notify(
                    NotifyType::INVALID_KE_PAYLOAD,
                    crypto::DH_CURVE25519.to_be_bytes().to_vec(),
                ),
            );
            return;
        }
        let dh = Dh::generate(&mut self.rng);
        let Ok(shared) = dh.shared(ke) else {
            self.drop(IkeDrop::Crypto);
            return;
        };
        let spi = self.fresh_spi(None);
        let nr = self.nonce();
        let keys = IkeKeys::derive(encr, &shared, ni, &nr, h.spi_i, spi);
        self.events
            .extend(ike_keys_logged(encr, h.spi_i, spi, &keys));
        let Ok(sk) = Sk::new(encr, &keys, false) else {
            self.drop(IkeDrop::Crypto);
            return;
        };
        let natt = self.nat_traversal(path.1.is_ipv6())
            && has_notify(p, NotifyType::NAT_DETECTION_SOURCE_IP);
        let cp = self.cfg.code_points;
        let tunnel_addresses = self.cfg.tunnel_addresses && tunnel_addresses::offered(p, &cp);
        let mut proposal = ike_proposal(&[encr], Vec::new());
        proposal.number = number;
        let mut out = vec![
            IkePayload::Sa(vec![proposal]),
            IkePayload::Ke {
                group: crypto::DH_CURVE25519,
                data: dh.public().to_vec(),
            },
            IkePayload::Nonce(nr.clone()),
        ];
        if natt {
            out.extend(self.nat_detection(h.spi_i, spi, path));
        }
        if tunnel_addresses {
            out.push(tunnel_addresses::supported(&cp));
        }
        if has_notify(p, NotifyType::SIGNATURE_HASH_ALGORITHMS) {
            out.push(notify(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                crypto::SIGNATURE_HASH_ALGORITHMS.to_vec(),
            ));
        }
        let init_response = clear_init((h.spi_i, spi), false, true, out, &cp);
        let resp = init_response.clone();
        let handshake = Handshake::new(keys, (ni.to_vec(), nr), (bytes.to_vec(), init_response));
        let mut sa = IkeSa::new(
            spi,
            false,
            path,
            Phase::Keyed(
                sk,
                Keyed::AwaitingAuthRequest(ExpectAuthRequest {
                    handshake,
                    expires: now + HALF_OPEN_TIMEOUT,
                }),
            ),
        );
        sa.spi_i = h.spi_i;
        sa.encr = encr;
        if natt {
            (sa.nat_local, sa.nat_remote) = Self::detect_nat(p, h.spi_i, 0, path);
        }
        sa.tunnel_addresses = tunnel_addresses;
        sa.peer_message_id = 1;
        self.put(sa);
        self.half_open.insert(h.spi_i, spi);
        self.stats.responses_sent += 1;
        self.send(path, &resp);
    }

    pub(super) fn on_init_response(
        &mut self,
        now: Instant,
        sa: &mut IkeSa,
        repr: &IkeRepr,
        bytes: &[u8],
        ipsec: &Ipsec,
    ) -> Verdict {
        let Phase::AwaitingInitResponse(s) = &mut sa.phase else {
            return Verdict::Keep;
        };
        let p = &repr.payloads;
        if let Some(c) = find_notify(p, NotifyType::COOKIE.into()) {
            let path = (sa.local, sa.remote);
            s.inflight = self.send_init(now, sa.spi_i, path, &s.dh, &s.ni, Some(c.data.clone()));
            return Verdict::Keep;
        }
        let refused = [
            NotifyType::NO_PROPOSAL_CHOSEN,
            NotifyType::INVALID_KE_PAYLOAD,
        ]
        .into_iter()
        .any(|t| has_notify(p, t));
        if refused {
            return Verdict::Close(CloseReason::NoProposalChosen);
        }
        let (Some((_, encr, _)), Some(nr), Some((crypto::DH_CURVE25519, ke))) = (
            choose_ike(p, &self.cfg.proposals),
            payload_nonce(p),
            payload_ke(p),
        ) else {
            self.drop(IkeDrop::Malformed);
            return Verdict::Keep;
        };
        let Ok(shared) = s.dh.shared(ke) else {
            self.drop(IkeDrop::Crypto);
            return Verdict::Keep;
        };
        let spi_r = repr.header.spi_r;
        let keys = IkeKeys::derive(encr, &shared, &s.ni, nr, sa.spi_i, spi_r);
        self.events
            .extend(ike_keys_logged(encr, sa.spi_i, spi_r, &keys));
        let Ok(sk) = Sk::new(encr, &keys, true) else {
            self.drop(IkeDrop::Crypto);
            return Verdict::Keep;
        };
        let peer = s.peer;
        // The request in flight is the IKE_SA_INIT that AUTH signs.
        let handshake = Handshake::new(
            keys,
            (mem::take(&mut s.ni), nr.to_vec()),
            (mem::take(&mut s.inflight.bytes), bytes.to_vec()),
        );
        let natt = self.nat_traversal(sa.remote.is_ipv6())
            && has_notify(p, NotifyType::NAT_DETECTION_SOURCE_IP);
        let cp = self.cfg.code_points;
        let mobike = matches!(self.cfg.mobility, Mobility::Mobike { .. });
        let path = (sa.local, sa.remote);
        sa.spi_r = spi_r;
        sa.encr = encr;
        sa.tunnel_addresses = self.cfg.tunnel_addresses && tunnel_addresses::offered(p, &cp);
        if natt {
            (sa.nat_local, sa.nat_remote) = Self::detect_nat(p, sa.spi_i, spi_r, path);
        }
        // RFC 4555 §3.3 and RFC 7296 §2.23: on to 4500 for IKE_AUTH.
        if sa.nat() || mobike {
            sa.local.set_port(NATT_PORT);
            sa.remote.set_port(NATT_PORT);
        }
        let first_child = self
            .first_child(peer)
            .map(|config| (config, self.fresh_esp_spi(ipsec)));
        self.send_auth(now, sa, sk, peer, handshake, first_child)
    }
}

/// A clear IKE_SA_INIT message.
fn clear_init(
    spis: (u64, u64),
    initiator: bool,
    response: bool,
    payloads: Vec<IkePayload>,
    cp: &CodePoints,
) -> Vec<u8> {
    let repr = IkeRepr {
        header: header(spis, initiator, ExchangeType::IKE_SA_INIT, response, 0),
        payloads,
    };
    let mut out = Vec::with_capacity(repr.buffer_len(cp));
    repr.emit(&mut out, cp);
    out
}

/// The key-log row of an IKE SA, where tshark can use one.
pub(super) fn ike_keys_logged(
    encr: Encr,
    spi_i: u64,
    spi_r: u64,
    keys: &IkeKeys,
) -> Option<IkeEvent> {
    keylog::ike_row(encr, spi_i, spi_r, keys).map(|row| IkeEvent::KeyLog {
        table: KeyTable::Ikev2,
        row,
    })
}
