//! One IKE SA: its keys, addresses, message-ID windows and children, and
//! the sealing and opening of its messages (RFC 7296 §2.2, §3.14).

use core::net::{IpAddr, SocketAddr};
use std::collections::VecDeque;

use super::crypto::{Dh, Encr, IkeKeys, SkCipher};
use super::{IkeDrop, Request};
use crate::ipsec::{AddressPair, Mode, SaId, Selector};
use crate::time::Instant;
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
    /// Outer addresses set by TUNNEL_ADDRESS: they stay when IKE moves.
    pub own_tunnel: bool,
    /// ESP goes in UDP (RFC 3948) because a NAT was detected.
    pub udp_encap: bool,
    /// The nonces of the exchange that created it (§2.8.1 collisions).
    pub nonces: (Vec<u8>, Vec<u8>),
    /// A rekey of this child is under way or done: the replacement's
    /// inbound SPI, once known.
    pub rekeyed_by: Option<u32>,
}

/// Our request in flight, for retransmission.
pub(super) struct Inflight {
    pub message_id: u32,
    pub bytes: Vec<u8>,
    pub path: (SocketAddr, SocketAddr),
    pub request: Request,
    pub retransmits: u32,
    pub deadline: Instant,
}

/// The last response we sent, for a retransmitted request.
pub(super) struct Cached {
    pub message_id: u32,
    pub bytes: Vec<u8>,
}

/// Read through [`super::Ike::sa`]; the engine changes it.
pub struct IkeSa {
    /// Our SPI: the key we are found by (REQ AM-2.1a).
    pub ours: u64,
    pub spi_i: u64,
    pub spi_r: u64,
    /// We are the original initiator.
    pub initiator: bool,
    pub state: IkeState,
    /// Index in `IkeConfig::peers`, once known.
    pub peer: Option<usize>,
    pub encr: Encr,
    pub(super) keys: Option<IkeKeys>,
    pub(super) seal: Option<SkCipher>,
    pub(super) open: Option<SkCipher>,
    pub(super) next_iv: u64,
    pub(super) dh: Option<Dh>,
    pub(super) ni: Vec<u8>,
    pub(super) nr: Vec<u8>,
    /// IKE_SA_INIT request and response as sent, for AUTH (§2.15).
    pub(super) init_request: Vec<u8>,
    pub(super) init_response: Vec<u8>,
    /// The addresses in use.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub nat_local: bool,
    pub nat_remote: bool,
    pub(super) next_message_id: u32,
    pub(super) inflight: Option<Inflight>,
    pub(super) queue: VecDeque<Request>,
    /// The next request ID we accept from the peer.
    pub(super) peer_message_id: u32,
    pub(super) cached: Option<Cached>,
    /// A response held back until a return-routability check answers.
    pub(super) deferred: Option<super::Deferred>,
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
    /// Half-open SAs go when this passes.
    pub(super) expires: Option<Instant>,
    /// The deadline registered in the engine's timer set.
    pub(super) scheduled: Option<Instant>,
    /// The IKE SA this one replaces (IKE rekey), until it is deleted.
    pub(super) replaces: Option<u64>,
    pub established_at: Option<Instant>,
}

impl IkeSa {
    pub(super) fn new(ours: u64, initiator: bool, local: SocketAddr, remote: SocketAddr) -> Self {
        IkeSa {
            ours,
            spi_i: if initiator { ours } else { 0 },
            spi_r: if initiator { 0 } else { ours },
            initiator,
            state: if initiator {
                IkeState::AwaitingInitResponse
            } else {
                IkeState::AwaitingAuthRequest
            },
            peer: None,
            encr: Encr::Aes256Gcm16,
            keys: None,
            seal: None,
            open: None,
            next_iv: 0,
            dh: None,
            ni: Vec::new(),
            nr: Vec::new(),
            init_request: Vec::new(),
            init_response: Vec::new(),
            local,
            remote,
            nat_local: false,
            nat_remote: false,
            next_message_id: 0,
            inflight: None,
            queue: VecDeque::new(),
            peer_message_id: 0,
            cached: None,
            deferred: None,
            children: Vec::new(),
            mobike: false,
            peer_r_mobike: false,
            tunnel_addresses: false,
            peer_addresses: Vec::new(),
            address_hints: Vec::new(),
            expires: None,
            scheduled: None,
            replaces: None,
            established_at: None,
        }
    }

    pub fn nat(&self) -> bool {
        self.nat_local || self.nat_remote
    }

    /// Installs keys; the directions follow our role.
    pub(super) fn set_keys(&mut self, keys: IkeKeys) -> Result<(), IkeDrop> {
        let (out, inn) = if self.initiator {
            (&keys.sk_ei, &keys.sk_er)
        } else {
            (&keys.sk_er, &keys.sk_ei)
        };
        self.seal = Some(SkCipher::new(self.encr, out).map_err(|_| IkeDrop::Crypto)?);
        self.open = Some(SkCipher::new(self.encr, inn).map_err(|_| IkeDrop::Crypto)?);
        self.keys = Some(keys);
        Ok(())
    }

    fn header(&self, exchange: ExchangeType, response: bool, message_id: u32) -> IkeHeader {
        let mut flags = 0;
        if self.initiator {
            flags |= IkeHeader::FLAG_I;
        }
        if response {
            flags |= IkeHeader::FLAG_R;
        }
        IkeHeader {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            major_version: 2,
            minor_version: 0,
            exchange,
            flags,
            message_id,
        }
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
        let seal = self.seal.as_ref().ok_or(IkeDrop::Crypto)?;
        let mut plain = Vec::new();
        let first_inner = IkeRepr::emit_inner(inner, &mut plain, cp);
        let body_len = seal.sealed_len(plain.len());
        let repr = IkeRepr {
            header: self.header(exchange, response, message_id),
            payloads: vec![IkePayload::Sk {
                first_inner,
                data: vec![0; body_len],
            }],
        };
        let mut out = Vec::with_capacity(repr.buffer_len(cp));
        repr.emit(&mut out, cp);
        let aad_len = out.len() - body_len;
        self.next_iv += 1;
        let sealed = seal.seal(self.next_iv, &out[..aad_len], &plain);
        if sealed.len() != body_len {
            return Err(IkeDrop::Crypto);
        }
        out.truncate(aad_len);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// A clear IKE_SA_INIT message.
    pub(super) fn clear_message(
        &self,
        response: bool,
        payloads: Vec<IkePayload>,
        cp: &CodePoints,
    ) -> Vec<u8> {
        let repr = IkeRepr {
            header: self.header(ExchangeType::IKE_SA_INIT, response, 0),
            payloads,
        };
        let mut out = Vec::with_capacity(repr.buffer_len(cp));
        repr.emit(&mut out, cp);
        out
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
        let open = self.open.as_ref().ok_or(IkeDrop::Crypto)?;
        let aad = &bytes[..bytes.len() - data.len()];
        let plain = open.open(aad, data).map_err(|_| IkeDrop::Integrity)?;
        IkeRepr::parse_inner(*first_inner, &plain, cp).map_err(|_| IkeDrop::Malformed)
    }
}
