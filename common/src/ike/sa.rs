//! One IKE SA: its SPIs, addresses, message-ID counters and children, the
//! state it is in with what that state needs, and the sealing and opening
//! of its messages (RFC 7296 §2.2, §3.14).
//!
//! The states are named for what they expect, as rustls' `Expect*` types:
//! an initiator goes [`ExpectInitResponse`] → [`ExpectAuthResponse`] →
//! [`Established`], a responder starts at [`ExpectAuthRequest`]. The DH
//! secret lives only until the keys are derived, the IKE_SA_INIT messages
//! and nonces only until IKE_AUTH is done.

use core::fmt;
use core::mem;
use core::net::{IpAddr, SocketAddr};
use std::collections::VecDeque;

use super::crypto::{Dh, Encr, IkeKeys, SkCipher};
use super::IkeDrop;
use crate::ipsec::{AddressPair, Mode, SaId, Selector};
use crate::time::{earlier, Instant};
use crate::wire::ike::{ExchangeType, IkeHeader, IkePayload, IkeRepr};
use crate::wire::CodePoints;

/// What an IKE SA waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IkeState {
    /// Initiator: the IKE_SA_INIT response.
    AwaitingInitResponse,
    /// Responder: the IKE_AUTH request.
    AwaitingAuthRequest,
    /// Initiator: the IKE_AUTH response.
    AwaitingAuthResponse,
    /// Up; requests in either direction.
    Established,
}

/// A CHILD_SA pair this IKE SA negotiated and installed.
#[derive(Debug, Clone)]
pub struct Child {
    /// The configuration it came from.
    pub name: String,
    pub inbound: SaId,
    pub outbound: SaId,
    pub spi_in: u32,
    pub spi_out: u32,
    pub mode: Mode,
    pub encr: Encr,
    pub selector: Selector,
    /// The outer ESP addresses (tunnel mode) or packet endpoints.
    pub addresses: AddressPair,
    /// Which outer addresses, (ours, theirs), TUNNEL_ADDRESS set: those
    /// stay when IKE moves, the others are the IKE SA's and follow it
    /// (REQ TA-3b).
    pub fixed: (bool, bool),
    /// ESP goes in UDP (RFC 3948) because a NAT was detected.
    pub udp_encap: bool,
    /// The nonces of the exchange that created it (§2.8.1 collisions).
    pub nonces: (Vec<u8>, Vec<u8>),
    /// A rekey of this child is under way or done: the replacement's
    /// inbound SPI, once known.
    pub rekeyed_by: Option<u32>,
}

/// Our requests once established (the payloads are built when sent).
#[derive(Clone)]
pub(super) enum Request {
    CreateChild {
        config: usize,
        spi_in: u32,
        nonce: Vec<u8>,
        /// The inbound SPI of the child it replaces.
        rekey: Option<u32>,
        /// Our X25519 share when the child's config asks for PFS.
        dh: Option<Dh>,
    },
    RekeyIke {
        spi: u64,
        nonce: Vec<u8>,
        dh: Dh,
    },
    Delete {
        ike: bool,
        spis: Vec<u32>,
    },
    /// Empty INFORMATIONAL: liveness, a MOBIKE path probe, or a
    /// return-routability check, on a given path.
    Probe {
        path: Option<(SocketAddr, SocketAddr)>,
        cookie2: Option<Vec<u8>>,
    },
    /// RFC 4555 §3.5 from the initiator.
    UpdateSaAddresses {
        path: (SocketAddr, SocketAddr),
        cookie2: Vec<u8>,
    },
    /// ADDITIONAL_* / NO_ADDITIONAL_ADDRESSES (RFC 4555 §3.6).
    Addresses,
    /// R-MOBIKE §5.2.
    Switch(IpAddr),
    /// Peer Address Update (addrmgmt §3.4).
    AddressUpdate {
        path: (SocketAddr, SocketAddr),
        all: bool,
        spis: Vec<u32>,
    },
}

impl Request {
    /// Probes, checks and moves go on their own path, not the SA's: they
    /// keep it when retransmitted, and a newer move cancels them.
    pub(super) fn has_own_path(&self) -> bool {
        matches!(
            self,
            Request::Probe { path: Some(_), .. }
                | Request::UpdateSaAddresses { .. }
                | Request::AddressUpdate { .. }
        )
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Request::CreateChild { rekey: None, .. } => "CreateChild",
            Request::CreateChild { .. } => "RekeyChild",
            Request::RekeyIke { .. } => "RekeyIke",
            Request::Delete { .. } => "Delete",
            Request::Probe { .. } => "Probe",
            Request::UpdateSaAddresses { .. } => "UpdateSaAddresses",
            Request::Addresses => "Addresses",
            Request::Switch(_) => "Switch",
            Request::AddressUpdate { .. } => "AddressUpdate",
        })
    }
}

/// Our request in flight, for retransmission.
#[derive(Clone)]
pub(super) struct Inflight {
    pub message_id: u32,
    pub bytes: Vec<u8>,
    pub path: (SocketAddr, SocketAddr),
    pub retransmits: u32,
    pub deadline: Instant,
}

impl Inflight {
    pub(super) fn new(
        message_id: u32,
        bytes: Vec<u8>,
        path: (SocketAddr, SocketAddr),
        deadline: Instant,
    ) -> Self {
        Inflight {
            message_id,
            bytes,
            path,
            retransmits: 0,
            deadline,
        }
    }
}

/// The last response we sent, for a retransmitted request.
#[derive(Clone)]
pub(super) struct Cached {
    pub message_id: u32,
    pub bytes: Vec<u8>,
}

/// A move held back until a return-routability check to `path` is
/// answered (REQ AM-3.4c, AM-4; RFC 4555 §3.5).
#[derive(Clone)]
pub(super) struct Deferred {
    /// The update's response, when it waits for the check too (addrmgmt).
    pub response: Option<HeldResponse>,
    /// Where the SAs move.
    pub path: (SocketAddr, SocketAddr),
    pub move_ike: bool,
    /// Children to move, by inbound SPI.
    pub children: Vec<u32>,
    pub cookie2: Vec<u8>,
}

#[derive(Clone)]
pub(super) struct HeldResponse {
    pub message_id: u32,
    pub exchange: ExchangeType,
    /// The request's path, reversed.
    pub path: (SocketAddr, SocketAddr),
    pub payloads: Vec<IkePayload>,
}

/// The SK payload's ciphers (§3.14), one per direction.
#[derive(Clone)]
pub(super) struct Sk {
    seal: SkCipher,
    open: SkCipher,
    /// The explicit IV of the last message sealed; each takes the next.
    next_iv: u64,
}

impl Sk {
    /// The directions follow our role.
    pub(super) fn new(encr: Encr, keys: &IkeKeys, initiator: bool) -> Result<Sk, IkeDrop> {
        let (out, inn) = if initiator {
            (&keys.sk_ei, &keys.sk_er)
        } else {
            (&keys.sk_er, &keys.sk_ei)
        };
        Ok(Sk {
            seal: SkCipher::new(encr, out).map_err(|_| IkeDrop::Crypto)?,
            open: SkCipher::new(encr, inn).map_err(|_| IkeDrop::Crypto)?,
            next_iv: 0,
        })
    }

    /// A message whose payloads all go inside SK.
    pub(super) fn seal(
        &mut self,
        header: IkeHeader,
        inner: &[IkePayload],
        cp: &CodePoints,
    ) -> Result<Vec<u8>, IkeDrop> {
        let mut plain = Vec::new();
        let first_inner = IkeRepr::emit_inner(inner, &mut plain, cp);
        let body_len = self.seal.sealed_len(plain.len());
        let repr = IkeRepr {
            header,
            payloads: vec![IkePayload::Sk {
                first_inner,
                data: vec![0; body_len],
            }],
        };
        let mut out = Vec::with_capacity(repr.buffer_len(cp));
        repr.emit(&mut out, cp);
        let aad_len = out.len() - body_len;
        self.next_iv += 1;
        let sealed = self.seal.seal(self.next_iv, &out[..aad_len], &plain);
        if sealed.len() != body_len {
            return Err(IkeDrop::Crypto);
        }
        out.truncate(aad_len);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(
        &self,
        first_inner: u8,
        data: &[u8],
        bytes: &[u8],
        cp: &CodePoints,
    ) -> Result<Vec<IkePayload>, IkeDrop> {
        let aad = &bytes[..bytes.len() - data.len()];
        let plain = self.open.open(aad, data).map_err(|_| IkeDrop::Integrity)?;
        IkeRepr::parse_inner(first_inner, &plain, cp).map_err(|_| IkeDrop::Malformed)
    }
}

/// What IKE_SA_INIT settled and IKE_AUTH signs (§2.15); SK_e is in
/// [`Sk`] already.
#[derive(Clone)]
pub(super) struct Handshake {
    pub sk_d: Vec<u8>,
    pub sk_pi: Vec<u8>,
    pub sk_pr: Vec<u8>,
    pub ni: Vec<u8>,
    pub nr: Vec<u8>,
    /// IKE_SA_INIT request and response as sent.
    pub init_request: Vec<u8>,
    pub init_response: Vec<u8>,
}

impl Handshake {
    pub(super) fn new(
        keys: IkeKeys,
        (ni, nr): (Vec<u8>, Vec<u8>),
        (init_request, init_response): (Vec<u8>, Vec<u8>),
    ) -> Self {
        Handshake {
            sk_d: keys.sk_d,
            sk_pi: keys.sk_pi,
            sk_pr: keys.sk_pr,
            ni,
            nr,
            init_request,
            init_response,
        }
    }
}

/// The state an IKE SA is in.
#[allow(
    clippy::large_enum_variant,
    reason = "an SA leaves the small state after one round trip"
)]
#[derive(Clone)]
pub(super) enum Phase {
    AwaitingInitResponse(ExpectInitResponse),
    /// Keys derived: SK protects every later message, so its ciphers
    /// outlive the states that follow.
    Keyed(Sk, Keyed),
}

/// What a keyed SA expects.
#[allow(
    clippy::large_enum_variant,
    reason = "an SA is established for most of its life"
)]
#[derive(Clone)]
pub(super) enum Keyed {
    AwaitingAuthRequest(ExpectAuthRequest),
    AwaitingAuthResponse(ExpectAuthResponse),
    Established(Established),
}

/// Initiator, IKE_SA_INIT sent.
#[derive(Clone)]
pub(super) struct ExpectInitResponse {
    /// Index in `IkeConfig::peers`.
    pub peer: usize,
    pub dh: Dh,
    pub ni: Vec<u8>,
    /// The IKE_SA_INIT request, which IKE_AUTH signs.
    pub inflight: Inflight,
}

/// Responder, IKE_SA_INIT answered: half-open.
#[derive(Clone)]
pub(super) struct ExpectAuthRequest {
    pub handshake: Handshake,
    /// The SA goes when this passes.
    pub expires: Instant,
}

/// Initiator, IKE_AUTH sent.
#[derive(Clone)]
pub(super) struct ExpectAuthResponse {
    pub peer: usize,
    pub handshake: Handshake,
    pub inflight: Inflight,
    /// The child proposed with IKE_AUTH: (config index, inbound SPI).
    pub first_child: Option<(usize, u32)>,
}

/// Both sides authenticated: requests in either direction.
#[derive(Clone)]
pub(super) struct Established {
    pub peer: usize,
    /// Keys the children and the IKE SA that replaces this one (§2.17,
    /// §2.18).
    pub sk_d: Vec<u8>,
    pub since: Instant,
    /// Our request in flight, and what it asks.
    pub inflight: Option<(Inflight, Request)>,
    pub queue: VecDeque<Request>,
    pub cached: Option<Cached>,
    /// A move (and maybe a response) held back until a return-routability
    /// check answers.
    pub deferred: Option<Deferred>,
    /// The IKE SA that replaced this one in a rekey, until this one goes.
    pub replaced_by: Option<u64>,
    pub watch: Watch,
}

/// What an SA carried when [`super::Ike`] last looked, to find traffic
/// that only goes out (RFC 7296 §2.4).
#[derive(Clone, Default)]
pub(super) struct Watch {
    pub next: Instant,
    /// Protected IKE messages received.
    pub heard: u64,
    /// (Received, sent) at the look before the last, and at the last.
    pub looks: [(u64, u64); 2],
}

impl Established {
    pub(super) fn new(peer: usize, sk_d: Vec<u8>, since: Instant) -> Self {
        Established {
            peer,
            sk_d,
            since,
            inflight: None,
            queue: VecDeque::new(),
            cached: None,
            deferred: None,
            replaced_by: None,
            watch: Watch {
                next: since,
                ..Watch::default()
            },
        }
    }
}

/// Read through [`super::Ike::sa`]; the engine changes it.
#[derive(Clone)]
pub struct IkeSa {
    /// Our SPI: the key we are found by (REQ AM-2.1a).
    pub ours: u64,
    pub spi_i: u64,
    pub spi_r: u64,
    /// We are the original initiator.
    pub initiator: bool,
    /// Chosen in IKE_SA_INIT.
    pub encr: Encr,
    /// The addresses in use.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat_local: bool,
    pub nat_remote: bool,
    /// The ID of our next request.
    pub(super) next_message_id: u32,
    /// The next request ID we accept from the peer.
    pub(super) peer_message_id: u32,
    pub children: Vec<Child>,
    /// Both sides sent MOBIKE_SUPPORTED.
    pub mobike: bool,
    /// The initiator put 'R' in MOBIKE_SUPPORTED.
    pub peer_r_mobike: bool,
    /// Both sides support alternate tunnel addresses.
    pub tunnel_addresses: bool,
    /// The peer's addresses: ADDITIONAL_* (MOBIKE) or its peer address set
    /// (addrmgmt), in use first.
    pub peer_addresses: Vec<IpAddr>,
    /// Source/destination association hints (REQ AM-3.3d).
    pub address_hints: Vec<(Vec<IpAddr>, Vec<IpAddr>)>,
    pub(super) phase: Phase,
    /// The deadline registered in the engine's timer set.
    pub(super) scheduled: Option<Instant>,
}

impl IkeSa {
    pub(super) fn new(
        ours: u64,
        initiator: bool,
        (local, remote): (SocketAddr, SocketAddr),
        phase: Phase,
    ) -> Self {
        IkeSa {
            ours,
            spi_i: if initiator { ours } else { 0 },
            spi_r: if initiator { 0 } else { ours },
            initiator,
            encr: Encr::Aes256Gcm16,
            local,
            remote,
            nat_local: false,
            nat_remote: false,
            next_message_id: 0,
            peer_message_id: 0,
            children: Vec::new(),
            mobike: false,
            peer_r_mobike: false,
            tunnel_addresses: false,
            peer_addresses: Vec::new(),
            address_hints: Vec::new(),
            phase,
            scheduled: None,
        }
    }

    pub fn state(&self) -> IkeState {
        match &self.phase {
            Phase::AwaitingInitResponse(_) => IkeState::AwaitingInitResponse,
            Phase::Keyed(_, Keyed::AwaitingAuthRequest(_)) => IkeState::AwaitingAuthRequest,
            Phase::Keyed(_, Keyed::AwaitingAuthResponse(_)) => IkeState::AwaitingAuthResponse,
            Phase::Keyed(_, Keyed::Established(_)) => IkeState::Established,
        }
    }

    /// Index in `IkeConfig::peers`, once known.
    pub fn peer(&self) -> Option<usize> {
        match &self.phase {
            Phase::AwaitingInitResponse(s) => Some(s.peer),
            Phase::Keyed(_, Keyed::AwaitingAuthRequest(_)) => None,
            Phase::Keyed(_, Keyed::AwaitingAuthResponse(s)) => Some(s.peer),
            Phase::Keyed(_, Keyed::Established(s)) => Some(s.peer),
        }
    }

    pub fn established_at(&self) -> Option<Instant> {
        self.established().map(|e| e.since)
    }

    pub fn nat(&self) -> bool {
        self.nat_local || self.nat_remote
    }

    /// Established, with no request of ours in flight or queued: nothing
    /// out whose answer would tell the peer is alive (RFC 7296 §2.4).
    pub fn idle(&self) -> bool {
        self.established()
            .is_some_and(|e| e.inflight.is_none() && e.queue.is_empty())
    }

    pub(super) fn established(&self) -> Option<&Established> {
        match &self.phase {
            Phase::Keyed(_, Keyed::Established(e)) => Some(e),
            _ => None,
        }
    }

    pub(super) fn established_mut(&mut self) -> Option<&mut Established> {
        match &mut self.phase {
            Phase::Keyed(_, Keyed::Established(e)) => Some(e),
            _ => None,
        }
    }

    /// Our request in flight, whatever the state.
    pub(super) fn inflight(&self) -> Option<&Inflight> {
        match &self.phase {
            Phase::AwaitingInitResponse(s) => Some(&s.inflight),
            Phase::Keyed(_, Keyed::AwaitingAuthRequest(_)) => None,
            Phase::Keyed(_, Keyed::AwaitingAuthResponse(s)) => Some(&s.inflight),
            Phase::Keyed(_, Keyed::Established(e)) => e.inflight.as_ref().map(|i| &i.0),
        }
    }

    pub(super) fn inflight_mut(&mut self) -> Option<&mut Inflight> {
        match &mut self.phase {
            Phase::AwaitingInitResponse(s) => Some(&mut s.inflight),
            Phase::Keyed(_, Keyed::AwaitingAuthRequest(_)) => None,
            Phase::Keyed(_, Keyed::AwaitingAuthResponse(s)) => Some(&mut s.inflight),
            Phase::Keyed(_, Keyed::Established(e)) => e.inflight.as_mut().map(|i| &mut i.0),
        }
    }

    /// What an established SA's request in flight asks.
    pub(super) fn request_in_flight(&self) -> Option<&Request> {
        self.established()?.inflight.as_ref().map(|i| &i.1)
    }

    /// The inbound SPI proposed by our request in flight.
    pub(super) fn offered_spi(&self) -> Option<u32> {
        match &self.phase {
            Phase::Keyed(_, Keyed::AwaitingAuthResponse(s)) => s.first_child.map(|c| c.1),
            _ => match self.request_in_flight()? {
                Request::CreateChild { spi_in, .. } => Some(*spi_in),
                _ => None,
            },
        }
    }

    /// When a half-open SA goes.
    pub(super) fn expires(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Keyed(_, Keyed::AwaitingAuthRequest(s)) => Some(s.expires),
            _ => None,
        }
    }

    /// The earliest of the retransmission and expiry deadlines.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let retransmit = self.inflight().map(|i| i.deadline);
        let watch = self.established().map(|e| e.watch.next);
        earlier(earlier(retransmit, self.expires()), watch)
    }

    /// Queues a request; only an established SA sends them.
    pub(super) fn enqueue(&mut self, request: Request) {
        if let Some(e) = self.established_mut() {
            e.queue.push_back(request);
        }
    }

    /// IKE_AUTH is done: keeps the SK ciphers, drops the rest of the
    /// handshake and returns its nonces, which key the first child.
    pub(super) fn finish_handshake(
        &mut self,
        peer: usize,
        now: Instant,
    ) -> Option<(Vec<u8>, Vec<u8>)> {
        let Phase::Keyed(_, state) = &mut self.phase else {
            return None;
        };
        let hs = match state {
            Keyed::AwaitingAuthRequest(s) => &mut s.handshake,
            Keyed::AwaitingAuthResponse(s) => &mut s.handshake,
            Keyed::Established(_) => return None,
        };
        let sk_d = mem::take(&mut hs.sk_d);
        let nonces = (mem::take(&mut hs.ni), mem::take(&mut hs.nr));
        *state = Keyed::Established(Established::new(peer, sk_d, now));
        Some(nonces)
    }

    fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> IkeHeader {
        header(
            (self.spi_i, self.spi_r),
            self.initiator,
            exchange,
            response,
            message_id,
        )
    }

    /// A message whose payloads all go inside SK.
    pub(super) fn seal_message(
        &mut self,
        exchange: ExchangeType,
        response: bool,
        message_id: u32,
        inner: &[IkePayload],
        cp: &CodePoints,
    ) -> Result<Vec<u8>, IkeDrop> {
        let header = self.header(exchange, response, message_id);
        match &mut self.phase {
            Phase::Keyed(sk, _) => sk.seal(header, inner, cp),
            Phase::AwaitingInitResponse(_) => Err(IkeDrop::Crypto),
        }
    }

    /// A protected message of the peer's opened: it is alive.
    pub(super) fn heard(&mut self) {
        if let Some(e) = self.established_mut() {
            e.watch.heard += 1;
        }
    }

    /// The inner payloads of a protected message. Payloads outside SK are
    /// refused: everything after IKE_SA_INIT is protected (§3.14), which is
    /// also what keeps peer address notifications inside (REQ AM-3.3a).
    pub(super) fn open_message(
        &self,
        repr: &IkeRepr,
        bytes: &[u8],
        cp: &CodePoints,
    ) -> Result<Vec<IkePayload>, IkeDrop> {
        let [IkePayload::Sk { first_inner, data }] = repr.payloads.as_slice() else {
            return Err(IkeDrop::Unprotected);
        };
        let Phase::Keyed(sk, _) = &self.phase else {
            return Err(IkeDrop::Crypto);
        };
        sk.open(*first_inner, data, bytes, cp)
    }
}

/// The header of a message on the SA with these SPIs, from our side.
pub(super) fn header(
    (spi_i, spi_r): (u64, u64),
    initiator: bool,
    exchange: ExchangeType,
    response: bool,
    message_id: u32,
) -> IkeHeader {
    let mut flags = 0;
    if initiator {
        flags |= IkeHeader::FLAG_I;
    }
    if response {
        flags |= IkeHeader::FLAG_R;
    }
    IkeHeader {
        spi_i,
        spi_r,
        major_version: 2,
        minor_version: 0,
        exchange,
        flags,
        message_id,
    }
}
