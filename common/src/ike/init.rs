//! IKE_SA_INIT (RFC 7296 §1.2), both roles: proposals, the COOKIE
//! (§2.6), NAT detection (§2.23) and key derivation.

use core::net::{IpAddr, SocketAddr};

use super::config::{Mobility, NatTraversal};
use super::crypto::{self, Dh, Encr, IkeKeys};
use super::payloads::{find_notify, has_notify, notify, payload_ke, payload_nonce, PROTO_IKE};
use super::sa::{IkeSa, IkeState, Inflight};
use super::{
    keylog, CloseReason, Ike, IkeDrop, IkeEvent, IkeSaId, KeyTable, Request, HALF_OPEN_TIMEOUT,
    NATT_PORT,
};
use crate::ipsec::Ipsec;
use crate::time::Instant;
use crate::wire::ike::{IkePayload, IkeRepr, Notify, NotifyType, Proposal, Transform};

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
    pub(super) fn detect_nat(
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
        let spi = self.fresh_spi();
        let mut sa = IkeSa::new(spi, true, local, remote);
        sa.peer = Some(peer);
        sa.ni = self.nonce();
        sa.dh = Some(Dh::generate(&mut self.rng));
        self.sas.insert(spi, sa);
        self.send_init(now, spi, None);
        IkeSaId(spi)
    }

    pub(super) fn send_init(&mut self, now: Instant, spi: u64, cookie: Option<Vec<u8>>) {
        let cp = self.cfg.code_points;
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let path = (sa.local, sa.remote);
        let mut payloads = Vec::new();
        if let Some(c) = cookie {
            payloads.push(notify(NotifyType::COOKIE, c));
        }
        payloads.push(IkePayload::Sa(vec![ike_proposal(
            &self.cfg.proposals,
            Vec::new(),
        )]));
        if let Some(dh) = &sa.dh {
            payloads.push(IkePayload::Ke {
                group: crypto::DH_CURVE25519,
                data: dh.public().to_vec(),
            });
        }
        payloads.push(IkePayload::Nonce(sa.ni.clone()));
        if self.nat_traversal(sa.remote.is_ipv6()) {
            payloads.extend(self.nat_detection(sa.spi_i, 0, path));
        }
        if self.cfg.tunnel_addresses {
            payloads.push(IkePayload::Notify(
                Notify::different_tunnel_address_supported(&cp),
            ));
        }
        if self.cfg.signing_key.is_some() {
            payloads.push(notify(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                crypto::SIGNATURE_HASH_ALGORITHMS.to_vec(),
            ));
        }
        let bytes = sa.clear_message(false, payloads, &cp);
        let timeout = self.cfg.retransmit_timeout;
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        sa.init_request = bytes.clone();
        sa.next_message_id = 1;
        sa.inflight = Some(Inflight {
            message_id: 0,
            bytes: bytes.clone(),
            path,
            request: Request::Auth,
            retransmits: 0,
            deadline: now + timeout,
        });
        self.stats.requests_sent += 1;
        self.send(path, &bytes);
        self.schedule(spi);
    }

    pub(super) fn cookie_for(&self, ni: &[u8], from: IpAddr, spi_i: u64) -> Vec<u8> {
        let ip = match from {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        crypto::prf(&self.cookie_secret, &[ni, &ip, &spi_i.to_be_bytes()]).to_vec()
    }

    /// A clear IKE_SA_INIT answer that creates no state.
    pub(super) fn refuse_init(
        &mut self,
        path: (SocketAddr, SocketAddr),
        spi_i: u64,
        n: IkePayload,
    ) {
        let mut sa = IkeSa::new(0, false, path.0, path.1);
        sa.spi_i = spi_i;
        let bytes = sa.clear_message(true, vec![n], &self.cfg.code_points);
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
            if let Some(sa) = self.sas.get(ours) {
                let resp = sa.init_response.clone();
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
        let spi = self.fresh_spi();
        let nr = self.nonce();
        let mut sa = IkeSa::new(spi, false, path.0, path.1);
        sa.spi_i = h.spi_i;
        sa.encr = encr;
        let keys = IkeKeys::derive(encr, &shared, ni, &nr, h.spi_i, spi);
        self.events
            .extend(ike_keys_logged(encr, h.spi_i, spi, &keys));
        if sa.set_keys(keys).is_err() {
            self.drop(IkeDrop::Crypto);
            return;
        }
        let natt = self.nat_traversal(path.1.is_ipv6())
            && has_notify(p, NotifyType::NAT_DETECTION_SOURCE_IP);
        if natt {
            (sa.nat_local, sa.nat_remote) = Self::detect_nat(p, h.spi_i, 0, path);
        }
        let cp = self.cfg.code_points;
        sa.tunnel_addresses = self.cfg.tunnel_addresses
            && find_notify(p, cp.notify_different_tunnel_address_supported).is_some();
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
        if sa.tunnel_addresses {
            out.push(IkePayload::Notify(
                Notify::different_tunnel_address_supported(&cp),
            ));
        }
        if has_notify(p, NotifyType::SIGNATURE_HASH_ALGORITHMS) {
            out.push(notify(
                NotifyType::SIGNATURE_HASH_ALGORITHMS,
                crypto::SIGNATURE_HASH_ALGORITHMS.to_vec(),
            ));
        }
        sa.ni = ni.to_vec();
        sa.nr = nr;
        sa.init_request = bytes.to_vec();
        sa.init_response = sa.clear_message(true, out, &cp);
        sa.peer_message_id = 1;
        sa.expires = Some(now + HALF_OPEN_TIMEOUT);
        let resp = sa.init_response.clone();
        self.sas.insert(spi, sa);
        self.half_open.insert(h.spi_i, spi);
        self.schedule(spi);
        self.stats.responses_sent += 1;
        self.send(path, &resp);
    }

    pub(super) fn on_init_response(
        &mut self,
        now: Instant,
        spi: u64,
        repr: &IkeRepr,
        bytes: &[u8],
        ipsec: &mut Ipsec,
    ) {
        let p = &repr.payloads;
        if let Some(c) = find_notify(p, NotifyType::COOKIE.into()) {
            let cookie = c.data.clone();
            if let Some(sa) = self.sas.get_mut(&spi) {
                sa.inflight = None;
            }
            self.send_init(now, spi, Some(cookie));
            return;
        }
        let refused = [
            NotifyType::NO_PROPOSAL_CHOSEN,
            NotifyType::INVALID_KE_PAYLOAD,
        ]
        .into_iter()
        .any(|t| has_notify(p, t));
        if refused {
            self.close(spi, CloseReason::NoProposalChosen, ipsec);
            return;
        }
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let (Some((_, encr, _)), Some(nr), Some((crypto::DH_CURVE25519, ke)), Some(dh)) = (
            choose_ike(p, &self.cfg.proposals),
            payload_nonce(p),
            payload_ke(p),
            sa.dh.as_ref(),
        ) else {
            self.drop(IkeDrop::Malformed);
            return;
        };
        let Ok(shared) = dh.shared(ke) else {
            self.drop(IkeDrop::Crypto);
            return;
        };
        let spi_r = repr.header.spi_r;
        let keys = IkeKeys::derive(encr, &shared, &sa.ni, nr, sa.spi_i, spi_r);
        self.events
            .extend(ike_keys_logged(encr, sa.spi_i, spi_r, &keys));
        let natt = self.nat_traversal(sa.remote.is_ipv6())
            && has_notify(p, NotifyType::NAT_DETECTION_SOURCE_IP);
        let cp = self.cfg.code_points;
        let ta = self.cfg.tunnel_addresses
            && find_notify(p, cp.notify_different_tunnel_address_supported).is_some();
        let mobike = matches!(self.cfg.mobility, Mobility::Mobike { .. });
        let nr = nr.to_vec();
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        let path = (sa.local, sa.remote);
        sa.spi_r = spi_r;
        sa.encr = encr;
        sa.nr = nr;
        sa.init_response = bytes.to_vec();
        sa.tunnel_addresses = ta;
        if natt {
            (sa.nat_local, sa.nat_remote) = Self::detect_nat(p, sa.spi_i, spi_r, path);
        }
        if sa.set_keys(keys).is_err() {
            self.drop(IkeDrop::Crypto);
            return;
        }
        // RFC 4555 §3.3 and RFC 7296 §2.23: on to 4500 for IKE_AUTH.
        if sa.nat() || mobike {
            sa.local.set_port(NATT_PORT);
            sa.remote.set_port(NATT_PORT);
        }
        sa.state = IkeState::AwaitingAuthResponse;
        sa.inflight = None;
        let request = match self.first_child(spi) {
            Some(config) => {
                let spi_in = self.fresh_esp_spi(ipsec);
                Request::CreateChild {
                    config,
                    spi_in,
                    nonce: Vec::new(),
                    rekey: None,
                }
            }
            None => Request::Auth,
        };
        self.send_auth(now, spi, request);
    }
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
