//! The exchanges of RFC 7296: IKE_SA_INIT, IKE_AUTH, CREATE_CHILD_SA and
//! INFORMATIONAL, with CHILD_SA negotiation and installation.

use core::net::{IpAddr, SocketAddr};

use super::config::{ChildConfig, Identity, Mobility, NatTraversal, PeerAuth, TsSpec};
use super::crypto::{self, Dh, Encr, IkeKeys};
use super::sa::{Child, IkeSa, IkeState, Inflight};
use super::{
    keylog, ChildInfo, CloseReason, Ike, IkeDrop, IkeEvent, IkeSaId, KeyTable, Request,
    HALF_OPEN_TIMEOUT, NATT_PORT,
};
use crate::ipsec::{AddressPair, Ipsec, Mode, Prefix, SaKeys, SaPairSpec, Selector};
use crate::time::Instant;
use crate::wire::ike::{
    AdditionalAddress, ExchangeType, IkePayload, IkeRepr, MobikeSupported, Notify, NotifyType,
    Proposal, TrafficSelector, Transform, TunnelAddress,
};
use crate::wire::IpProtocol;

pub(super) const PROTO_IKE: u8 = 1;
pub(super) const PROTO_ESP: u8 = 3;
/// ESP in a Peer Address Update payload: Annex C numbers it 1 (0 being the
/// IKE SA), unlike the rest of IKEv2; 3 is accepted too.
pub(super) const PAU_ESP: u8 = 1;
const ENCR: u8 = 1;
const PRF: u8 = 2;
const DH: u8 = 4;
const ESN: u8 = 5;

pub(super) fn notify(t: NotifyType, data: Vec<u8>) -> IkePayload {
    IkePayload::Notify(Notify::new(t.into(), data))
}

pub(super) fn find_notify(payloads: &[IkePayload], t: u16) -> Option<&Notify> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Notify(n) if n.notify_type == t => Some(n),
        _ => None,
    })
}

pub(super) fn has_notify(payloads: &[IkePayload], t: NotifyType) -> bool {
    find_notify(payloads, t.into()).is_some()
}

fn id_body(id: &crate::wire::ike::Identification) -> Vec<u8> {
    let mut b = vec![id.id_type, 0, 0, 0];
    b.extend_from_slice(&id.data);
    b
}

fn ts_from(prefix: Prefix, protocol: u8) -> TrafficSelector {
    let (start, end) = match prefix.addr {
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.len.min(128)))
                .unwrap_or(0);
            let s = u128::from(a) & mask;
            (IpAddr::V6(s.into()), IpAddr::V6((s | !mask).into()))
        }
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.len.min(32)))
                .unwrap_or(0);
            let s = u32::from(a) & mask;
            (IpAddr::V4(s.into()), IpAddr::V4((s | !mask).into()))
        }
    };
    TrafficSelector {
        ts_type: if prefix.addr.is_ipv6() {
            TrafficSelector::IPV6_ADDR_RANGE
        } else {
            TrafficSelector::IPV4_ADDR_RANGE
        },
        ip_protocol: protocol,
        start_port: 0,
        end_port: u16::MAX,
        start_addr: start,
        end_addr: end,
    }
}

/// The prefix a selector's range is, if it is one.
fn ts_prefix(ts: &TrafficSelector) -> Option<Prefix> {
    let (diff, bits) = match (ts.start_addr, ts.end_addr) {
        (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s) ^ u128::from(e), 128),
        (IpAddr::V4(s), IpAddr::V4(e)) => (u128::from(u32::from(s) ^ u32::from(e)), 32),
        _ => return None,
    };
    let host_bits = 128 - diff.leading_zeros();
    // The differing bits must be a run of ones at the bottom.
    if diff.count_ones() != host_bits {
        return None;
    }
    let len = u8::try_from(bits - host_bits).ok()?;
    let p = Prefix {
        addr: ts.start_addr,
        len,
    };
    (p.contains(ts.end_addr) && ts_from(p, 0).start_addr == ts.start_addr).then_some(p)
}

fn intersect(a: Prefix, b: Prefix) -> Option<Prefix> {
    if a.len <= b.len && a.contains(b.addr) {
        Some(b)
    } else if b.len <= a.len && b.contains(a.addr) {
        Some(a)
    } else {
        None
    }
}

/// The first selector pair that narrows to within ours; protocol included.
fn narrow(theirs: &[TrafficSelector], ours: (Prefix, u8)) -> Option<(Prefix, u8)> {
    theirs.iter().find_map(|ts| {
        let p = intersect(ts_prefix(ts)?, ours.0)?;
        let proto = match (ts.ip_protocol, ours.1) {
            (a, 0) => a,
            (0, b) => b,
            (a, b) if a == b => a,
            _ => return None,
        };
        Some((p, proto))
    })
}

fn resolve(ts: TsSpec, ike: IpAddr) -> (Prefix, u8) {
    (ts.prefix.unwrap_or(Prefix::host(ike)), ts.protocol)
}

fn ike_proposal(proposals: &[Encr], spi: Vec<u8>) -> Proposal {
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

fn esp_proposal(proposals: &[Encr], spi: u32, number: u8) -> Proposal {
    let mut transforms: Vec<Transform> = proposals
        .iter()
        .map(|e| Transform::new(ENCR, e.transform_id(), e.key_length_attr()))
        .collect();
    transforms.push(Transform::new(ESN, 0, None));
    Proposal {
        number,
        protocol: PROTO_ESP,
        spi: spi.to_be_bytes().to_vec(),
        transforms,
    }
}

/// The encryption transforms a proposal offers, in its order.
fn offered(p: &Proposal) -> impl Iterator<Item = Encr> + '_ {
    p.transforms
        .iter()
        .filter(|t| t.transform_type == ENCR)
        .filter_map(|t| Encr::from_transform(t.id, t.key_length()))
}

fn has_transform(p: &Proposal, ty: u8, id: u16) -> bool {
    p.transforms
        .iter()
        .any(|t| t.transform_type == ty && t.id == id)
}

/// Our choice among the peer's IKE proposals: (number, encr, peer SPI).
fn choose_ike(payloads: &[IkePayload], ours: &[Encr]) -> Option<(u8, Encr, Vec<u8>)> {
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

/// Our choice among ESP proposals: (number, encr, peer SPI, with DH).
fn choose_esp(payloads: &[IkePayload], ours: &[Encr]) -> Option<(u8, Encr, u32, bool)> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Sa(props) => props.iter().find_map(|pr| {
            let spi = u32::from_be_bytes(pr.spi.as_slice().try_into().ok()?);
            let no_esn =
                !pr.transforms.iter().any(|t| t.transform_type == ESN) || has_transform(pr, ESN, 0);
            if pr.protocol != PROTO_ESP || !no_esn {
                return None;
            }
            let theirs: Vec<Encr> = offered(pr).collect();
            let e = ours.iter().find(|e| theirs.contains(e))?;
            let dh = has_transform(pr, DH, crypto::DH_CURVE25519);
            Some((pr.number, *e, spi, dh))
        }),
        _ => None,
    })
}

fn payload_ke(payloads: &[IkePayload]) -> Option<(u16, &[u8])> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Ke { group, data } => Some((*group, data.as_slice())),
        _ => None,
    })
}

fn payload_nonce(payloads: &[IkePayload]) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        IkePayload::Nonce(n) => Some(n.as_slice()),
        _ => None,
    })
}

fn payload_ts(payloads: &[IkePayload]) -> Option<(&[TrafficSelector], &[TrafficSelector])> {
    let tsi = payloads.iter().find_map(|p| match p {
        IkePayload::TsI(t) => Some(t.as_slice()),
        _ => None,
    })?;
    let tsr = payloads.iter().find_map(|p| match p {
        IkePayload::TsR(t) => Some(t.as_slice()),
        _ => None,
    })?;
    Some((tsi, tsr))
}

fn tunnel_address(payloads: &[IkePayload], cp: &crate::wire::CodePoints) -> Option<IpAddr> {
    find_notify(payloads, cp.notify_tunnel_address)
        .and_then(|n| TunnelAddress::from_notify(n).ok())
        .map(|t| t.0)
}

/// What a CHILD_SA negotiation settled, before installation.
pub(super) struct ChildDeal {
    pub config: usize,
    pub encr: Encr,
    pub spi_in: u32,
    pub spi_out: u32,
    /// Our side and the peer's, narrowed.
    pub local: (Prefix, u8),
    pub remote: (Prefix, u8),
    pub peer_tunnel: Option<IpAddr>,
}

impl Ike {
    fn nat_traversal(&self, family_v6: bool) -> bool {
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
        let spi = self.fresh_spi();
        let mut sa = IkeSa::new(spi, true, local, remote);
        sa.peer = Some(peer);
        sa.ni = self.nonce();
        sa.dh = Some(Dh::generate(&mut self.rng));
        self.sas.insert(spi, sa);
        self.send_init(now, spi, None);
        IkeSaId(spi)
    }

    fn send_init(&mut self, now: Instant, spi: u64, cookie: Option<Vec<u8>>) {
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

    fn cookie_for(&self, ni: &[u8], from: IpAddr, spi_i: u64) -> Vec<u8> {
        let ip = match from {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        crypto::prf(&self.cookie_secret, &[ni, &ip, &spi_i.to_be_bytes()]).to_vec()
    }

    /// A clear IKE_SA_INIT answer that creates no state.
    fn refuse_init(&mut self, path: (SocketAddr, SocketAddr), spi_i: u64, n: IkePayload) {
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

    fn on_init_response(
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

    /// A deleted IKE SA goes; as rekeyed if a new one replaced it.
    fn close_deleted(&mut self, spi: u64, ipsec: &mut Ipsec) {
        let reason = if self.sas.values().any(|s| s.replaces == Some(spi)) {
            CloseReason::Rekeyed
        } else {
            CloseReason::Deleted
        };
        self.close(spi, reason, ipsec);
    }

    fn first_child(&self, spi: u64) -> Option<usize> {
        let peer = self.sas.get(&spi)?.peer?;
        (!self.cfg.peers[peer].children.is_empty()).then_some(0)
    }

    /// Our identity and AUTH payloads for this SA.
    fn auth_payloads(&self, sa: &IkeSa, peer: usize) -> Option<[IkePayload; 2]> {
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
    fn verify_auth(&self, sa: &IkeSa, peer: usize, payloads: &[IkePayload]) -> bool {
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

    /// ADDITIONAL_* for our other addresses, or NO_ADDITIONAL_ADDRESSES.
    pub(super) fn address_list(&self, local: IpAddr) -> Vec<IkePayload> {
        let others: Vec<IkePayload> = self
            .announced(local)
            .map(|a| IkePayload::Notify(AdditionalAddress(a).to_notify()))
            .collect();
        if others.is_empty() {
            vec![notify(NotifyType::NO_ADDITIONAL_ADDRESSES, Vec::new())]
        } else {
            others
        }
    }

    fn send_auth(&mut self, now: Instant, spi: u64, request: Request) {
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

    /// SA, TSi, TSr and mode/tunnel notifications for one child.
    fn child_payloads(
        &self,
        sa: &IkeSa,
        peer: usize,
        config: usize,
        spi_in: u32,
    ) -> Vec<IkePayload> {
        let Some(c) = self.cfg.peers[peer].children.get(config) else {
            return Vec::new();
        };
        let (l, lp) = resolve(c.local_ts, sa.local.ip());
        let (r, rp) = resolve(c.remote_ts, sa.remote.ip());
        let mut p = vec![
            IkePayload::Sa(vec![esp_proposal(&c.proposals, spi_in, 1)]),
            IkePayload::TsI(vec![ts_from(l, lp)]),
            IkePayload::TsR(vec![ts_from(r, rp)]),
        ];
        p.extend(self.child_notifications(sa, c));
        p
    }

    fn child_notifications(&self, sa: &IkeSa, c: &ChildConfig) -> Vec<IkePayload> {
        let mut p = Vec::new();
        if c.mode == Mode::Transport {
            p.push(notify(NotifyType::USE_TRANSPORT_MODE, Vec::new()));
        }
        if let (true, false, Mode::Tunnel, Some(a)) =
            (sa.tunnel_addresses, sa.nat(), c.mode, c.tunnel_address)
        {
            p.push(IkePayload::Notify(
                TunnelAddress(a).to_notify(&self.cfg.code_points),
            ));
        }
        p
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

    fn on_auth_response(
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
    fn establish(&mut self, now: Instant, spi: u64, payloads: &[IkePayload]) {
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
    fn on_auth_request(
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

    /// Responder side of a CHILD_SA: chooses, installs, and returns the
    /// response payloads (without nonce and KE).
    #[allow(clippy::too_many_arguments)]
    fn accept_child(
        &mut self,
        now: Instant,
        spi: u64,
        payloads: &[IkePayload],
        rekey: Option<String>,
        nonces: (&[u8], &[u8]),
        shared: Option<&[u8]>,
        ipsec: &mut Ipsec,
    ) -> Result<Vec<IkePayload>, NotifyType> {
        let cp = self.cfg.code_points;
        let sa = self.sas.get(&spi).ok_or(NotifyType::CHILD_SA_NOT_FOUND)?;
        let peer = sa.peer.ok_or(NotifyType::CHILD_SA_NOT_FOUND)?;
        let (tsi, tsr) = payload_ts(payloads).ok_or(NotifyType::TS_UNACCEPTABLE)?;
        let transport = has_notify(payloads, NotifyType::USE_TRANSPORT_MODE);
        let mode = if transport {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        let mut no_proposal = false;
        let mut deal = None;
        for (i, c) in self.cfg.peers[peer].children.iter().enumerate() {
            if rekey.as_ref().is_some_and(|n| *n != c.name) {
                continue;
            }
            let (Some(remote), Some(local)) = (
                narrow(tsi, resolve(c.remote_ts, sa.remote.ip())),
                narrow(tsr, resolve(c.local_ts, sa.local.ip())),
            ) else {
                continue;
            };
            if c.mode != mode {
                no_proposal = true;
                continue;
            }
            if mode == Mode::Transport && !self.proxy_allowed(sa, remote.0) {
                continue;
            }
            let Some((_, encr, spi_out, _)) = choose_esp(payloads, &c.proposals) else {
                no_proposal = true;
                continue;
            };
            deal = Some(ChildDeal {
                config: i,
                encr,
                spi_in: 0,
                spi_out,
                local,
                remote,
                peer_tunnel: tunnel_address(payloads, &cp),
            });
            break;
        }
        let Some(mut deal) = deal else {
            return Err(if no_proposal {
                NotifyType::NO_PROPOSAL_CHOSEN
            } else {
                NotifyType::TS_UNACCEPTABLE
            });
        };
        deal.spi_in = self.fresh_esp_spi(ipsec);
        let len = deal.encr.keymat_len();
        let Some(keys) = self.sas.get(&spi).and_then(|s| s.keys.as_ref()) else {
            return Err(NotifyType::CHILD_SA_NOT_FOUND);
        };
        let km = crypto::child_keymat(&keys.sk_d, shared, nonces.0, nonces.1, 2 * len);
        // Initiator-to-responder keys come first (§2.17): ours are inbound.
        let (key_in, key_out) = km.split_at(len);
        let child = self
            .install(now, spi, &deal, mode, (key_in, key_out), nonces, ipsec)
            .ok_or(NotifyType::NO_PROPOSAL_CHOSEN)?;
        let sa = self.sas.get(&spi).ok_or(NotifyType::CHILD_SA_NOT_FOUND)?;
        let c = &self.cfg.peers[peer].children[deal.config];
        let mut out = vec![
            IkePayload::Sa(vec![esp_proposal(&[deal.encr], child.spi_in, 1)]),
            IkePayload::TsI(vec![ts_from(deal.remote.0, deal.remote.1)]),
            IkePayload::TsR(vec![ts_from(deal.local.0, deal.local.1)]),
        ];
        out.extend(self.child_notifications(sa, c));
        Ok(out)
    }

    /// The proxy case: a transport-mode TSi other than the peer's own
    /// address needs policy; the peer's address set is allowed (AM-3.2c).
    fn proxy_allowed(&self, sa: &IkeSa, ts: Prefix) -> bool {
        ts.is_host() && (ts.addr == sa.remote.ip() || sa.peer_addresses.contains(&ts.addr))
            || self
                .cfg
                .proxy_policy
                .iter()
                .any(|p| p.len <= ts.len && p.contains(ts.addr))
    }

    /// Initiator side: the response to our CHILD_SA request.
    #[allow(clippy::too_many_arguments)]
    fn child_response(
        &mut self,
        now: Instant,
        spi: u64,
        config: usize,
        spi_in: u32,
        rekey: Option<u32>,
        nonces: (&[u8], &[u8]),
        shared: Option<&[u8]>,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) {
        let cp = self.cfg.code_points;
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let Some(c) = sa.peer.and_then(|p| self.cfg.peers[p].children.get(config)) else {
            return;
        };
        let (Some((_, encr, spi_out, _)), Some((tsi, tsr))) =
            (choose_esp(payloads, &c.proposals), payload_ts(payloads))
        else {
            if let Some(old) = rekey {
                clear_rekey(self.sas.get_mut(&spi), old);
            }
            return;
        };
        let local = narrow(tsi, resolve(c.local_ts, sa.local.ip()));
        let remote = narrow(tsr, resolve(c.remote_ts, sa.remote.ip()));
        let transport = has_notify(payloads, NotifyType::USE_TRANSPORT_MODE);
        let mode = c.mode;
        let (Some(local), Some(remote)) = (local, remote) else {
            self.request(
                now,
                spi,
                Request::Delete {
                    ike: false,
                    spis: vec![spi_in],
                },
            );
            return;
        };
        // A peer that ignored USE_TRANSPORT_MODE gave us a tunnel: refuse it.
        if transport != (mode == Mode::Transport) {
            self.request(
                now,
                spi,
                Request::Delete {
                    ike: false,
                    spis: vec![spi_in],
                },
            );
            return;
        }
        let deal = ChildDeal {
            config,
            encr,
            spi_in,
            spi_out,
            local,
            remote,
            peer_tunnel: tunnel_address(payloads, &cp),
        };
        let len = encr.keymat_len();
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let km = crypto::child_keymat(&keys.sk_d, shared, nonces.0, nonces.1, 2 * len);
        let (key_out, key_in) = km.split_at(len);
        let Some(child) = self.install(now, spi, &deal, mode, (key_in, key_out), nonces, ipsec)
        else {
            return;
        };
        if let Some(old) = rekey {
            self.finish_rekey(now, spi, old, &child);
        }
    }

    /// Puts a negotiated child into the SAD and SPD.
    #[allow(clippy::too_many_arguments)]
    fn install(
        &mut self,
        now: Instant,
        spi: u64,
        deal: &ChildDeal,
        mode: Mode,
        (key_in, key_out): (&[u8], &[u8]),
        nonces: (&[u8], &[u8]),
        ipsec: &mut Ipsec,
    ) -> Option<Child> {
        let sa = self.sas.get(&spi)?;
        let c = self.cfg.peers[sa.peer?].children.get(deal.config)?;
        // Alternate tunnel addresses unless a NAT is in the way (TA-5, TA-6).
        let alternate = sa.tunnel_addresses && !sa.nat() && mode == Mode::Tunnel;
        let own_tunnel = alternate && (c.tunnel_address.is_some() || deal.peer_tunnel.is_some());
        let addresses = match mode {
            Mode::Tunnel => AddressPair {
                local: c
                    .tunnel_address
                    .filter(|_| alternate)
                    .unwrap_or(sa.local.ip()),
                peer: deal
                    .peer_tunnel
                    .filter(|_| alternate)
                    .unwrap_or(sa.remote.ip()),
            },
            // The packet's endpoints when they are single hosts (the proxy
            // case), else the peer addresses (AM-3.1b).
            Mode::Transport => AddressPair {
                local: if deal.local.0.is_host() {
                    deal.local.0.addr
                } else {
                    sa.local.ip()
                },
                peer: if deal.remote.0.is_host() {
                    deal.remote.0.addr
                } else {
                    sa.remote.ip()
                },
            },
        };
        let selector = Selector {
            protocol: (deal.local.1 != 0).then(|| IpProtocol::from(deal.local.1)),
            ..Selector::between(deal.local.0, deal.remote.0)
        };
        let mut spec = SaPairSpec::new(
            addresses,
            mode,
            deal.encr.esp_algorithm(),
            selector.clone(),
            SaKeys {
                spi: deal.spi_in,
                key: key_in.to_vec(),
            },
            SaKeys {
                spi: deal.spi_out,
                key: key_out.to_vec(),
            },
        );
        spec.lifetime = c.lifetime;
        let name = c.name.clone();
        let udp_encap = sa.nat().then_some((sa.local.port(), sa.remote.port()));
        let (inbound, outbound) = ipsec.add_protected_pair(now, &spec).ok()?;
        let v6 = addresses.local.is_ipv6();
        for (s, k) in [(deal.spi_in, key_in), (deal.spi_out, key_out)] {
            if let Some(row) = keylog::esp_row(v6, s, deal.encr, k) {
                self.events.push_back(IkeEvent::KeyLog {
                    table: KeyTable::Esp,
                    row,
                });
            }
        }
        let child = Child {
            name: name.clone(),
            inbound,
            outbound,
            spi_in: deal.spi_in,
            spi_out: deal.spi_out,
            mode,
            encr: deal.encr,
            selector,
            addresses,
            own_tunnel,
            udp_encap: udp_encap.is_some(),
            nonces: (nonces.0.to_vec(), nonces.1.to_vec()),
            rekeyed_by: None,
        };
        self.sas.get_mut(&spi)?.children.push(child.clone());
        self.events.push_back(IkeEvent::ChildUp {
            sa: IkeSaId(spi),
            child: ChildInfo {
                name,
                inbound,
                outbound,
                spi_in: deal.spi_in,
                spi_out: deal.spi_out,
                mode,
                addresses,
                udp_encap,
            },
        });
        Some(child)
    }

    /// Our rekey of `old` produced `new`: delete the old child, unless the
    /// peer rekeyed it too and ours is the redundant SA (§2.8.1).
    fn finish_rekey(&mut self, now: Instant, spi: u64, old: u32, new: &Child) {
        let Some(sa) = self.sas.get_mut(&spi) else {
            return;
        };
        let Some(o) = sa.children.iter_mut().find(|c| c.spi_in == old) else {
            return;
        };
        let theirs = o.rekeyed_by.and_then(|n| {
            sa.children
                .iter()
                .find(|c| c.spi_in == n && c.spi_in != new.spi_in)
        });
        let lowest = |c: &Child| c.nonces.0.clone().min(c.nonces.1.clone());
        let ours_redundant = theirs.is_some_and(|t| lowest(new) < lowest(t));
        let delete = if ours_redundant {
            new.spi_in
        } else {
            if let Some(o) = sa.children.iter_mut().find(|c| c.spi_in == old) {
                o.rekeyed_by = Some(new.spi_in);
            }
            old
        };
        self.request(
            now,
            spi,
            Request::Delete {
                ike: false,
                spis: vec![delete],
            },
        );
    }

    fn on_established_response(
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

    fn rekey_ike_response(
        &mut self,
        now: Instant,
        spi: u64,
        new: u64,
        (ni, dh): (&[u8], &Dh),
        payloads: &[IkePayload],
    ) {
        let Some(sa) = self.sas.get(&spi) else {
            return;
        };
        let (Some((_, encr, peer_spi)), Some(nr), Some((crypto::DH_CURVE25519, ke))) = (
            choose_ike(payloads, &[sa.encr]),
            payload_nonce(payloads),
            payload_ke(payloads),
        ) else {
            return;
        };
        let (Ok(peer_spi), Ok(shared)) = (<[u8; 8]>::try_from(peer_spi.as_slice()), dh.shared(ke))
        else {
            self.drop(IkeDrop::Malformed);
            return;
        };
        let peer_spi = u64::from_be_bytes(peer_spi);
        let nr = nr.to_vec();
        self.replace_ike(
            now,
            spi,
            new,
            true,
            (new, peer_spi),
            encr,
            &shared,
            (ni, &nr),
        );
        // The initiator of the rekey deletes the old SA (§2.18).
        self.request(
            now,
            spi,
            Request::Delete {
                ike: true,
                spis: Vec::new(),
            },
        );
    }

    /// Creates the IKE SA that replaces `old` and moves its children.
    #[allow(clippy::too_many_arguments)]
    fn replace_ike(
        &mut self,
        now: Instant,
        old: u64,
        ours: u64,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        encr: Encr,
        shared: &[u8],
        (ni, nr): (&[u8], &[u8]),
    ) {
        let Some(o) = self.sas.get_mut(&old) else {
            return;
        };
        let Some(sk_d) = o.keys.as_ref().map(|k| k.sk_d.clone()) else {
            return;
        };
        let keys = IkeKeys::rekey(encr, &sk_d, shared, ni, nr, spi_i, spi_r);
        self.events
            .extend(ike_keys_logged(encr, spi_i, spi_r, &keys));
        let mut sa = IkeSa::new(ours, initiator, o.local, o.remote);
        sa.spi_i = spi_i;
        sa.spi_r = spi_r;
        sa.encr = encr;
        sa.state = IkeState::Established;
        sa.peer = o.peer;
        sa.nat_local = o.nat_local;
        sa.nat_remote = o.nat_remote;
        sa.mobike = o.mobike;
        sa.peer_r_mobike = o.peer_r_mobike;
        sa.tunnel_addresses = o.tunnel_addresses;
        sa.peer_addresses = o.peer_addresses.clone();
        sa.established_at = Some(now);
        sa.children = core::mem::take(&mut o.children);
        sa.replaces = Some(old);
        if sa.set_keys(keys).is_err() {
            return;
        }
        let (local, remote, peer) = (sa.local, sa.remote, sa.peer);
        self.sas.insert(ours, sa);
        if let Some(peer) = peer {
            self.events.push_back(IkeEvent::Established {
                sa: IkeSaId(ours),
                peer: self.cfg.peers[peer].id.clone(),
                local,
                remote,
            });
        }
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

    fn on_create_child(
        &mut self,
        now: Instant,
        spi: u64,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Vec<IkePayload> {
        let Some(ni) = payload_nonce(payloads).map(<[u8]>::to_vec) else {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        };
        let nr = self.nonce();
        let ike_rekey = payloads.iter().any(|p| {
            matches!(p, IkePayload::Sa(props) if props.iter().any(|pr| pr.protocol == PROTO_IKE))
        });
        if ike_rekey {
            return self.on_rekey_ike(now, spi, &ni, nr, payloads);
        }
        // PFS when the proposal carries a DH group.
        let mut ke_out = None;
        let mut shared = None;
        if let Some((group, ke)) = payload_ke(payloads) {
            if group != crypto::DH_CURVE25519 {
                return vec![notify(
                    NotifyType::INVALID_KE_PAYLOAD,
                    crypto::DH_CURVE25519.to_be_bytes().to_vec(),
                )];
            }
            let dh = Dh::generate(&mut self.rng);
            let Ok(s) = dh.shared(ke) else {
                return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
            };
            shared = Some(s);
            ke_out = Some(dh.public());
        }
        let rekey_of = payloads.iter().find_map(|p| match p {
            IkePayload::Notify(n)
                if NotifyType::from(n.notify_type) == NotifyType::REKEY_SA
                    && n.protocol == PROTO_ESP =>
            {
                Some(u32::from_be_bytes(n.spi.as_slice().try_into().ok()?))
            }
            _ => None,
        });
        let old = match rekey_of {
            Some(s) => {
                let found = self
                    .sas
                    .get(&spi)
                    .and_then(|sa| sa.children.iter().find(|c| c.spi_out == s))
                    .map(|c| (c.spi_in, c.name.clone()));
                match found {
                    Some(f) => Some(f),
                    None => {
                        let mut n = Notify::new(NotifyType::CHILD_SA_NOT_FOUND.into(), Vec::new());
                        n.protocol = PROTO_ESP;
                        n.spi = s.to_be_bytes().to_vec();
                        return vec![IkePayload::Notify(n)];
                    }
                }
            }
            None => None,
        };
        let accepted = self.accept_child(
            now,
            spi,
            payloads,
            old.as_ref().map(|o| o.1.clone()),
            (&ni, &nr),
            shared.as_ref().map(|s| &s[..]),
            ipsec,
        );
        let mut out = match accepted {
            Ok(p) => p,
            Err(n) => return vec![notify(n, Vec::new())],
        };
        if let (Some((old_in, _)), Some(sa)) = (old, self.sas.get_mut(&spi)) {
            let new_in = sa.children.last().map(|c| c.spi_in);
            if let Some(o) = sa.children.iter_mut().find(|c| c.spi_in == old_in) {
                // A collision with our own rekey is settled when ours ends.
                o.rekeyed_by = new_in;
            }
        }
        // SA, Nr, [KE], TSi, TSr (§1.3.1).
        let rest = out.split_off(1);
        out.push(IkePayload::Nonce(nr));
        if let Some(k) = ke_out {
            out.push(IkePayload::Ke {
                group: crypto::DH_CURVE25519,
                data: k.to_vec(),
            });
        }
        out.extend(rest);
        out
    }

    fn on_rekey_ike(
        &mut self,
        now: Instant,
        spi: u64,
        ni: &[u8],
        nr: Vec<u8>,
        payloads: &[IkePayload],
    ) -> Vec<IkePayload> {
        let encr = self.sas.get(&spi).map(|s| s.encr);
        let Some((number, encr, peer_spi)) = encr.and_then(|e| choose_ike(payloads, &[e])) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN, Vec::new())];
        };
        let Some((crypto::DH_CURVE25519, ke)) = payload_ke(payloads) else {
            return vec![notify(
                NotifyType::INVALID_KE_PAYLOAD,
                crypto::DH_CURVE25519.to_be_bytes().to_vec(),
            )];
        };
        let dh = Dh::generate(&mut self.rng);
        let (Ok(peer_spi), Ok(shared)) = (<[u8; 8]>::try_from(peer_spi.as_slice()), dh.shared(ke))
        else {
            return vec![notify(NotifyType::INVALID_SYNTAX, Vec::new())];
        };
        let peer_spi = u64::from_be_bytes(peer_spi);
        let ours = self.fresh_spi();
        self.replace_ike(
            now,
            spi,
            ours,
            false,
            (peer_spi, ours),
            encr,
            &shared,
            (ni, &nr),
        );
        let mut proposal = ike_proposal(&[encr], ours.to_be_bytes().to_vec());
        proposal.number = number;
        vec![
            IkePayload::Sa(vec![proposal]),
            IkePayload::Nonce(nr),
            IkePayload::Ke {
                group: crypto::DH_CURVE25519,
                data: dh.public().to_vec(),
            },
        ]
    }

    /// INFORMATIONAL requests; `None` when the response is held back.
    fn on_informational(
        &mut self,
        now: Instant,
        spi: u64,
        path: (SocketAddr, SocketAddr),
        message_id: u32,
        payloads: &[IkePayload],
        ipsec: &mut Ipsec,
    ) -> Option<Vec<IkePayload>> {
        let cp = self.cfg.code_points;
        let mut out = Vec::new();
        for p in payloads {
            if let IkePayload::Delete {
                protocol: PROTO_ESP,
                spis,
                ..
            } = p
            {
                let mut ours = Vec::new();
                for s in spis {
                    let Ok(s) = <[u8; 4]>::try_from(s.as_slice()) else {
                        continue;
                    };
                    let s = u32::from_be_bytes(s);
                    let found = self
                        .sas
                        .get(&spi)
                        .and_then(|sa| sa.children.iter().find(|c| c.spi_out == s))
                        .map(|c| c.spi_in);
                    if let Some(i) = found {
                        ours.push(i.to_be_bytes().to_vec());
                        self.forget_child(spi, i, ipsec);
                    }
                }
                if !ours.is_empty() {
                    out.push(IkePayload::Delete {
                        protocol: PROTO_ESP,
                        spi_size: 4,
                        spis: ours,
                    });
                }
            }
        }
        if let Some(c) = find_notify(payloads, NotifyType::COOKIE2.into()) {
            if !has_notify(payloads, NotifyType::UPDATE_SA_ADDRESSES) {
                // A return-routability check: echo the cookie.
                out.push(notify(NotifyType::COOKIE2, c.data.clone()));
            }
        }
        self.learn_addresses(spi, payloads, &cp);
        if has_notify(payloads, NotifyType::UPDATE_SA_ADDRESSES) {
            return self.on_update_sa_addresses(spi, path, message_id, payloads, ipsec);
        }
        if let Some(n) = find_notify(payloads, cp.notify_switch_to_ip_address) {
            let to = crate::wire::ike::SwitchToIpAddress::from_notify(n).ok()?.0;
            self.on_switch(now, spi, to);
        }
        let updates: Vec<&IkePayload> = payloads
            .iter()
            .filter(|p| matches!(p, IkePayload::PeerAddressUpdate { .. }))
            .collect();
        if !updates.is_empty() {
            return self.on_address_update(spi, path, message_id, &updates, ipsec);
        }
        Some(out)
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
        super::mobility::learn_peer_address_set(sa, payloads, cp);
    }
}

fn clear_rekey(sa: Option<&mut IkeSa>, old: u32) {
    if let Some(c) = sa.and_then(|s| s.children.iter_mut().find(|c| c.spi_in == old)) {
        c.rekeyed_by = None;
    }
}

/// A Peer Address Update payload (addrmgmt Annex C).
pub(super) fn update_payload(all: bool, spis: &[u32]) -> IkePayload {
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

/// The key-log row of an IKE SA, where tshark can use one.
fn ike_keys_logged(encr: Encr, spi_i: u64, spi_r: u64, keys: &IkeKeys) -> Option<IkeEvent> {
    keylog::ike_row(encr, spi_i, spi_r, keys).map(|row| IkeEvent::KeyLog {
        table: KeyTable::Ikev2,
        row,
    })
}
