//! A sans-IO IKEv2 engine (RFC 7296) with MOBIKE (RFC 4555) and the three
//! address drafts: R-MOBIKE (draft-smyslov-ipsecme-ikev2-r-mobike),
//! alternate tunnel addresses (draft-arora-ipsecme-ikev2-alt-tunnel-addresses)
//! and address management (draft-dupont-ikev2-addrmgmt).
//!
//! Like the node engines it is fed UDP datagrams, commands and the time,
//! and returns datagrams, events and its next deadline. CHILD_SAs go
//! straight into the [`Ipsec`] passed in, and move in place when addresses
//! change.
//!
//! Only AEAD transforms are negotiated (AES-GCM-16, ChaCha20-Poly1305), with
//! PRF HMAC-SHA-256 and X25519. Every request window is one message.
//!
//! The engine holds its IKE SAs by our SPI. A message or a timer for an SA
//! takes it out of the map, hands it to the handler as `&mut IkeSa` beside
//! the engine, and puts it back, or closes it if the handler's `Verdict`
//! says so. An SA's state is one type per message it expects (`sa.rs`).
//!
//! Files: `init`, `auth`, `child` and `informational` for the exchanges;
//! `window` for message IDs, retransmission and which handler gets a
//! message; `mobike`, `addrmgmt`, `r_mobike` and `tunnel_addresses` for
//! the mobility protocols, `moving` for what they share; `payloads` for
//! finding and building payloads. Imports between them go one way:
//! `window` → `child`, `informational`; `child` → `init` →
//! `tunnel_addresses`; `moving` → `mobike`, `addrmgmt`; all → `sa`,
//! `payloads`.

mod addrmgmt;
mod auth;
mod child;
pub mod config;
pub mod crypto;
mod informational;
mod init;
pub mod keylog;
mod mobike;
mod moving;
mod payloads;
mod r_mobike;
mod sa;
#[cfg(test)]
mod tests;
mod tunnel_addresses;
mod window;

pub use config::seed_from;
pub use config::{
    ChildConfig, Identity, IkeConfig, Mobility, NatTraversal, PeerAuth, PeerConfig, TsSpec,
};
pub use sa::{Child, IkeSa, IkeState};

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use hashbrown::hash_map::Entry;
use std::collections::VecDeque;

use hashbrown::{HashMap, HashSet};

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use self::crypto::Dh;
use self::sa::Request;
use crate::ipsec::{AddressPair, Ipsec, IpsecEvent, Mode, Sa, SaId};
pub use crate::keylog::KeyTable;
use crate::time::{Deadlines, Instant};
use crate::wire::ike::{ExchangeType, IkeRepr, NotifyType};

/// The NAT-T port (RFC 3948); IKE there starts with four zero octets.
pub const NATT_PORT: u16 = 4500;
pub const IKE_PORT: u16 = 500;
const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// Half-open SAs are forgotten after this.
const HALF_OPEN_TIMEOUT: crate::time::Duration = crate::time::Duration::from_secs(30);

/// A UDP datagram: the payload, with the non-ESP marker on port 4500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub bytes: Vec<u8>,
}

/// What a UDP payload on the NAT-T port is (RFC 3948 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NattPayload {
    Ike,
    Esp,
    Keepalive,
}

pub fn classify_natt(payload: &[u8]) -> NattPayload {
    match payload {
        [0xff] => NattPayload::Keepalive,
        [0, 0, 0, 0, ..] => NattPayload::Ike,
        _ => NattPayload::Esp,
    }
}

/// An IKE SA, named by our own SPI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IkeSaId(pub u64);

impl fmt::Display for IkeSaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ike#{:016x}", self.0)
    }
}

/// A CHILD_SA as the data plane needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildInfo {
    pub name: String,
    pub inbound: SaId,
    pub outbound: SaId,
    pub spi_in: u32,
    pub spi_out: u32,
    pub mode: Mode,
    pub addresses: AddressPair,
    /// (local, remote) UDP ports when ESP goes in UDP (RFC 3948).
    pub udp_encap: Option<(u16, u16)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer or we deleted it.
    Deleted,
    /// The peer stopped answering.
    Timeout,
    AuthenticationFailed,
    NoProposalChosen,
    /// An IKE rekey replaced it.
    Rekeyed,
    /// The same identity came back with INITIAL_CONTACT (REQ AM-2.1b).
    InitialContact,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IkeEvent {
    Established {
        sa: IkeSaId,
        peer: Identity,
        local: SocketAddr,
        remote: SocketAddr,
    },
    ChildUp {
        sa: IkeSaId,
        child: ChildInfo,
    },
    ChildDown {
        sa: IkeSaId,
        spi_in: u32,
        spi_out: u32,
    },
    /// The IKE SA (and the children that follow it) now use these addresses.
    Moved {
        sa: IkeSaId,
        local: SocketAddr,
        remote: SocketAddr,
    },
    /// A SWITCH_TO_IP_ADDRESS we did not follow (REQ RM-4.2d).
    SwitchRefused {
        sa: IkeSaId,
        to: IpAddr,
    },
    /// A peer address notification disagreed with the header (REQ AM-3.3e).
    AddressMismatch {
        sa: IkeSaId,
    },
    /// A CHILD_SA was not made: the error notification we answered a
    /// peer's request with, or the peer answered ours with.
    ChildRefused {
        sa: IkeSaId,
        notify: NotifyType,
        by_peer: bool,
    },
    Closed {
        sa: IkeSaId,
        reason: CloseReason,
    },
    /// A row for Wireshark's `ikev2_decryption_table` or `esp_sa`.
    KeyLog {
        table: KeyTable,
        row: String,
    },
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IkeDrop {
    Malformed,
    /// No IKE SA has this SPI.
    UnknownSpi,
    /// Payloads outside SK after IKE_SA_INIT.
    Unprotected,
    Integrity,
    Crypto,
    /// A request outside the window, or a response to nothing.
    MessageId,
    /// An exchange that does not fit the SA's state.
    State,
    /// ESP on the IKE port without UDP encapsulation semantics.
    NotIke,
    AuthenticationFailed,
    /// IKE_SA_INIT without the COOKIE we asked for.
    Cookie,
}

impl IkeDrop {
    pub const ALL: [IkeDrop; 10] = [
        IkeDrop::Malformed,
        IkeDrop::UnknownSpi,
        IkeDrop::Unprotected,
        IkeDrop::Integrity,
        IkeDrop::Crypto,
        IkeDrop::MessageId,
        IkeDrop::State,
        IkeDrop::NotIke,
        IkeDrop::AuthenticationFailed,
        IkeDrop::Cookie,
    ];
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IkeStats {
    pub received: u64,
    pub requests_sent: u64,
    /// Protected responses to our requests in flight.
    pub responses_received: u64,
    pub responses_sent: u64,
    pub retransmits: u64,
    /// Retransmitted requests answered from the response cache.
    pub cached_replies: u64,
    /// Requests whose content was ignored after a peer address mismatch
    /// (REQ AM-3.3e).
    pub address_mismatches: u64,
    /// SWITCH_TO_IP_ADDRESS requests ignored (REQ RM-4.2b).
    pub switches_ignored: u64,
    pub keepalives: u64,
    /// Liveness checks asked because traffic only went out (RFC 7296 §2.4).
    pub one_way_checks: u64,
    drops: [u64; IkeDrop::ALL.len()],
}

impl IkeStats {
    pub fn dropped(&self, reason: IkeDrop) -> u64 {
        self.drops[reason as usize]
    }

    pub fn drops(&self) -> impl Iterator<Item = (IkeDrop, u64)> + '_ {
        IkeDrop::ALL
            .into_iter()
            .map(|r| (r, self.dropped(r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// Why a command could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IkeError {
    #[error("no peer named {0:?}")]
    NoSuchPeer(String),
    #[error("peer {0:?} has no address")]
    NoPeerAddress(String),
    #[error("no local address of the peer's family")]
    NoLocalAddress,
    #[error("no IKE SA {0}")]
    NoSuchSa(IkeSaId),
    #[error("no CHILD_SA config named {0:?}")]
    NoSuchChild(String),
    #[error("IKE SA {0} is not established")]
    NotEstablished(IkeSaId),
    #[error("only a responder asks to switch, and only an initiator that sent 'R' (RM-4.2a)")]
    SwitchNotAllowed,
    #[error("no CHILD_SA with inbound SPI {0:#010x}")]
    NoSuchChildSa(u32),
    #[error("IKE SA {0} does not use this mobility protocol")]
    WrongMobility(IkeSaId),
}

/// What becomes of an SA after a handler ran on it.
#[must_use]
pub(crate) enum Verdict {
    Keep,
    Close(CloseReason),
}

#[derive(Clone)]
pub struct Ike {
    pub(crate) cfg: IkeConfig,
    pub(crate) rng: ChaCha20Rng,
    /// By our SPI. A handler takes its SA out of the map and gets it as
    /// `&mut IkeSa` beside `&mut self`; the SA goes back when it is done.
    pub(crate) sas: HashMap<u64, IkeSa>,
    /// Responder half-open SAs by the initiator's SPI, for retransmitted
    /// IKE_SA_INIT requests (SPIs only, REQ AM-2.1a).
    pub(crate) half_open: HashMap<u64, u64>,
    /// Every child's inbound and outbound SA: the IKE SA that holds it and
    /// its inbound SPI. Kept in step where children are installed, handed
    /// to a rekeyed IKE SA, and removed.
    pub(crate) child_owners: HashMap<SaId, (u64, u32)>,
    /// Inbound SPIs proposed by our requests in flight, so a new SPI is
    /// checked by hash rather than by a scan of the SAs.
    pub(crate) offered_spis: HashSet<u32>,
    pub(crate) local_addresses: Vec<IpAddr>,
    pub(crate) timers: Deadlines<u64>,
    pub(crate) cookie_secret: [u8; 32],
    pub(crate) out: VecDeque<Datagram>,
    pub(crate) events: VecDeque<IkeEvent>,
    pub(crate) stats: IkeStats,
}

impl Ike {
    pub fn new(cfg: IkeConfig) -> Self {
        let mut rng = ChaCha20Rng::from_seed(cfg.seed);
        let mut cookie_secret = [0; 32];
        rng.fill_bytes(&mut cookie_secret);
        Ike {
            cfg,
            rng,
            sas: HashMap::new(),
            half_open: HashMap::new(),
            child_owners: HashMap::new(),
            offered_spis: HashSet::new(),
            local_addresses: Vec::new(),
            timers: Deadlines::default(),
            cookie_secret,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: IkeStats::default(),
        }
    }

    pub fn config(&self) -> &IkeConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &IkeStats {
        &self.stats
    }

    pub fn sa(&self, id: IkeSaId) -> Option<&IkeSa> {
        self.sas.get(&id.0)
    }

    pub fn sa_ids(&self) -> impl Iterator<Item = IkeSaId> + '_ {
        self.sas.keys().map(|k| IkeSaId(*k))
    }

    pub fn local_addresses(&self) -> &[IpAddr] {
        &self.local_addresses
    }

    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<IkeEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Starts an IKE SA with a configured peer; its first child comes with
    /// IKE_AUTH. From the peer's pinned address ([`PeerConfig::local`]),
    /// else the first local address of its family.
    pub fn initiate(&mut self, now: Instant, peer: &str) -> Result<IkeSaId, IkeError> {
        let index = self
            .cfg
            .peers
            .iter()
            .position(|p| p.name == peer)
            .ok_or_else(|| IkeError::NoSuchPeer(peer.to_string()))?;
        let remote = *self.cfg.peers[index]
            .addresses
            .first()
            .ok_or_else(|| IkeError::NoPeerAddress(peer.to_string()))?;
        let local_ip = self.cfg.peers[index]
            .local
            .or_else(|| {
                self.local_addresses
                    .iter()
                    .find(|a| a.is_ipv6() == remote.is_ipv6())
                    .copied()
            })
            .ok_or(IkeError::NoLocalAddress)?;
        let local = SocketAddr::new(local_ip, IKE_PORT);
        Ok(self.start_init(now, index, local, remote))
    }

    /// Negotiates another CHILD_SA from config `child` of the SA's peer.
    pub fn create_child(
        &mut self,
        now: Instant,
        sa: IkeSaId,
        child: &str,
        ipsec: &Ipsec,
    ) -> Result<(), IkeError> {
        let (_, peer) = self.established(sa)?;
        let config = self.cfg.peers[peer]
            .children
            .iter()
            .position(|c| c.name == child)
            .ok_or_else(|| IkeError::NoSuchChild(child.to_string()))?;
        let request = self.child_request(peer, config, None, ipsec);
        self.request(now, sa.0, request);
        Ok(())
    }

    /// Rekeys the CHILD_SA whose inbound SPI is `spi_in` (§2.8).
    pub fn rekey_child(
        &mut self,
        now: Instant,
        sa: IkeSaId,
        spi_in: u32,
        ipsec: &Ipsec,
    ) -> Result<(), IkeError> {
        let (ike, peer) = self.established(sa)?;
        let child = ike
            .children
            .iter()
            .find(|c| c.spi_in == spi_in)
            .ok_or(IkeError::NoSuchChildSa(spi_in))?;
        let config = self.cfg.peers[peer]
            .children
            .iter()
            .position(|c| c.name == child.name)
            .ok_or_else(|| IkeError::NoSuchChild(child.name.clone()))?;
        let request = self.child_request(peer, config, Some(spi_in), ipsec);
        self.with_sa(sa.0, |ike, sa| {
            if let Some(c) = sa.children.iter_mut().find(|c| c.spi_in == spi_in) {
                c.rekeyed_by = Some(0);
            }
            ike.queue_request(now, sa, request);
        });
        Ok(())
    }

    /// Rekeys the IKE SA itself (§2.18).
    pub fn rekey_ike(&mut self, now: Instant, sa: IkeSaId) -> Result<(), IkeError> {
        self.established(sa)?;
        let spi = self.fresh_spi(None);
        let nonce = self.nonce();
        let dh = Dh::generate(&mut self.rng);
        self.request(now, sa.0, Request::RekeyIke { spi, nonce, dh });
        Ok(())
    }

    /// Deletes the IKE SA and its children (§1.4.1).
    pub fn delete(&mut self, now: Instant, sa: IkeSaId) -> Result<(), IkeError> {
        self.established(sa)?;
        self.request(
            now,
            sa.0,
            Request::Delete {
                ike: true,
                spis: Vec::new(),
            },
        );
        Ok(())
    }

    /// Forgets an IKE SA and its children without a word to the peer: one
    /// that cannot reach it any more (a mobile node's half-open SA from an
    /// address it lost).
    pub fn abandon(&mut self, sa: IkeSaId, ipsec: &mut Ipsec) {
        self.close_spi(sa.0, CloseReason::Deleted, ipsec);
    }

    /// An empty INFORMATIONAL: the peer must answer (§1.4).
    pub fn liveness(&mut self, now: Instant, sa: IkeSaId) -> Result<(), IkeError> {
        self.established(sa)?;
        self.request(
            now,
            sa.0,
            Request::Probe {
                path: None,
                cookie2: None,
            },
        );
        Ok(())
    }

    /// The SA and its peer's index, if it is established.
    fn established(&self, sa: IkeSaId) -> Result<(&IkeSa, usize), IkeError> {
        let ike = self.sas.get(&sa.0).ok_or(IkeError::NoSuchSa(sa))?;
        let e = ike.established().ok_or(IkeError::NotEstablished(sa))?;
        Ok((ike, e.peer))
    }

    /// A datagram that arrived on `d.local` from `d.remote`.
    pub fn handle_datagram(&mut self, now: Instant, d: Datagram, ipsec: &mut Ipsec) {
        self.stats.received += 1;
        let bytes = if d.local.port() == NATT_PORT || d.remote.port() == NATT_PORT {
            match classify_natt(&d.bytes) {
                NattPayload::Keepalive => {
                    self.stats.keepalives += 1;
                    return;
                }
                NattPayload::Esp => {
                    self.drop(IkeDrop::NotIke);
                    return;
                }
                NattPayload::Ike => &d.bytes[NON_ESP_MARKER.len()..],
            }
        } else {
            &d.bytes[..]
        };
        let repr = match IkeRepr::parse(bytes, &self.cfg.code_points) {
            Ok(r) if r.header.major_version == 2 => r,
            _ => {
                self.drop(IkeDrop::Malformed);
                return;
            }
        };
        let path = (d.local, d.remote);
        let h = &repr.header;
        if h.exchange == ExchangeType::IKE_SA_INIT && !h.response() && h.spi_r == 0 {
            self.on_init_request(now, path, &repr, bytes);
            return;
        }
        // The SPI we chose is the responder's if the sender is the
        // original initiator; found by SPI alone (REQ AM-2.1a).
        let ours = if h.initiator() { h.spi_r } else { h.spi_i };
        let sa = match self.sas.entry(ours) {
            Entry::Occupied(e) if e.get().initiator != h.initiator() => Some(e.remove()),
            _ => None,
        };
        let Some(mut sa) = sa else {
            self.drop(IkeDrop::UnknownSpi);
            return;
        };
        let verdict = if h.response() {
            self.on_response(now, &mut sa, path, &repr, bytes, ipsec)
        } else {
            self.on_request(now, &mut sa, path, &repr, bytes, ipsec)
        };
        self.settle(sa, verdict, ipsec);
    }

    pub fn handle_timeout(&mut self, now: Instant, ipsec: &mut Ipsec) {
        while let Some(spi) = self.timers.pop_due(now) {
            let Some(mut sa) = self.sas.remove(&spi) else {
                continue;
            };
            sa.scheduled = None;
            let verdict = if sa.expires().is_some_and(|t| t <= now) {
                Verdict::Close(CloseReason::Timeout)
            } else if sa.inflight().is_some_and(|i| i.deadline <= now) {
                self.retransmit(now, &mut sa)
            } else {
                Verdict::Keep
            };
            if let Verdict::Keep = verdict {
                self.look(now, &mut sa, ipsec);
            }
            self.settle(sa, verdict, ipsec);
        }
    }

    /// RFC 7296 §2.4: "If there has only been outgoing traffic on all of
    /// the SAs associated with an IKE SA, it is essential to confirm
    /// liveness of the other endpoint". Packets sent on the children
    /// during the last span, and nothing protected received in it or
    /// since, ask the peer with an empty INFORMATIONAL, unless a request
    /// of ours is out already; an answer in the next span is not missed.
    fn look(&mut self, now: Instant, sa: &mut IkeSa, ipsec: &Ipsec) {
        let packets = |id| ipsec.sad.get(id).map_or(0, |s: &Sa| s.packets());
        let received: u64 = sa.children.iter().map(|c| packets(c.inbound)).sum();
        let sent: u64 = sa.children.iter().map(|c| packets(c.outbound)).sum();
        let idle = sa.idle();
        let Some(e) = sa.established_mut().filter(|e| e.watch.next <= now) else {
            return;
        };
        let [before, last] = e.watch.looks;
        let look = (received + e.watch.heard, sent);
        e.watch.looks = [last, look];
        e.watch.next = now + self.cfg.liveness_interval;
        if look.0 == before.0 && last.1 > before.1 && idle {
            self.stats.one_way_checks += 1;
            let probe = Request::Probe {
                path: None,
                cookie2: None,
            };
            self.queue_request(now, sa, probe);
        }
    }

    /// What the data plane asks of key management: rekey at the soft
    /// lifetime; move an SA and its siblings (REQ AM-D.1).
    pub fn handle_ipsec_event(&mut self, now: Instant, event: IpsecEvent, ipsec: &mut Ipsec) {
        match event {
            // Both SAs of a pair reach it: one rekey per child.
            IpsecEvent::SoftExpired { sa, .. } => {
                if let Some((ike, spi_in)) = self.child_of(sa) {
                    let idle = self
                        .sas
                        .get(&ike)
                        .and_then(|s| s.children.iter().find(|c| c.spi_in == spi_in))
                        .is_some_and(|c| c.rekeyed_by.is_none());
                    if idle {
                        let _ = self.rekey_child(now, IkeSaId(ike), spi_in, ipsec);
                    }
                }
            }
            IpsecEvent::HardExpired { sa, .. } => {
                if let Some((ike, spi_in)) = self.child_of(sa) {
                    self.with_sa(ike, |ike, sa| ike.forget_child(sa, spi_in, ipsec));
                }
            }
            IpsecEvent::AddressUpdate(req) => self.data_plane_update(now, req),
        }
    }

    /// The IKE SA and inbound SPI of the child that holds `sa`.
    fn child_of(&self, sa: SaId) -> Option<(u64, u32)> {
        self.child_owners.get(&sa).copied()
    }

    /// Runs `f` on SA `spi`, taken out of the map and put back after.
    fn with_sa(&mut self, spi: u64, f: impl FnOnce(&mut Self, &mut IkeSa)) {
        if let Some(mut sa) = self.sas.remove(&spi) {
            f(self, &mut sa);
            self.put(sa);
        }
    }

    /// Puts an SA (back) in the map and registers its next deadline.
    fn put(&mut self, mut sa: IkeSa) {
        let next = sa.deadline();
        self.timers.reschedule(sa.ours, sa.scheduled, next);
        sa.scheduled = next;
        self.sas.insert(sa.ours, sa);
    }

    /// Puts an SA back, or closes it, as its handler decided.
    fn settle(&mut self, sa: IkeSa, verdict: Verdict, ipsec: &mut Ipsec) {
        match verdict {
            Verdict::Keep => self.put(sa),
            Verdict::Close(reason) => self.close(sa, reason, ipsec),
        }
    }

    /// The SA is on its peer's pinned address ([`PeerConfig::local`]),
    /// where it stays.
    pub fn pinned(&self, sa: &IkeSa) -> bool {
        sa.peer()
            .and_then(|i| self.cfg.peers.get(i))
            .is_some_and(|p| p.local == Some(sa.local.ip()))
    }

    /// Our addresses to announce beside `local` on an SA using it: none
    /// on an address some peer is pinned to.
    pub(crate) fn announced(&self, local: IpAddr) -> impl Iterator<Item = IpAddr> + '_ {
        let pinned = self.cfg.peers.iter().any(|p| p.local == Some(local));
        self.local_addresses
            .iter()
            .copied()
            .filter(move |a| !pinned && *a != local)
    }

    pub(crate) fn drop(&mut self, reason: IkeDrop) {
        self.stats.drops[reason as usize] += 1;
    }

    /// A new SPI of ours, not zero and not in use; `taken` is the SA a
    /// handler has out of the map.
    pub(crate) fn fresh_spi(&mut self, taken: Option<u64>) -> u64 {
        loop {
            let spi = self.rng.next_u64();
            if spi != 0 && !self.sas.contains_key(&spi) && Some(spi) != taken {
                return spi;
            }
        }
    }

    pub(crate) fn fresh_esp_spi(&mut self, ipsec: &Ipsec) -> u32 {
        loop {
            let spi = self.rng.next_u32();
            // Below 256 is reserved (RFC 4303 §2.1).
            if spi >= 256
                && ipsec.sad.inbound_by_spi(spi).is_none()
                && !self.offered_spis.contains(&spi)
            {
                return spi;
            }
        }
    }

    fn child_request(
        &mut self,
        peer: usize,
        config: usize,
        rekey: Option<u32>,
        ipsec: &Ipsec,
    ) -> Request {
        let pfs = self.cfg.peers[peer].children[config].pfs;
        Request::CreateChild {
            config,
            spi_in: self.fresh_esp_spi(ipsec),
            nonce: self.nonce(),
            rekey,
            dh: pfs.then(|| Dh::generate(&mut self.rng)),
        }
    }

    pub(crate) fn nonce(&mut self) -> Vec<u8> {
        let mut n = vec![0; 32];
        self.rng.fill_bytes(&mut n);
        n
    }

    /// Sends a datagram, adding the non-ESP marker on the NAT-T port.
    pub(crate) fn send(&mut self, path: (SocketAddr, SocketAddr), message: &[u8]) {
        let mut bytes = Vec::with_capacity(message.len() + 4);
        if path.0.port() == NATT_PORT || path.1.port() == NATT_PORT {
            bytes.extend_from_slice(&NON_ESP_MARKER);
        }
        bytes.extend_from_slice(message);
        self.out.push_back(Datagram {
            local: path.0,
            remote: path.1,
            bytes,
        });
    }

    /// Removes an IKE SA and its children.
    fn close(&mut self, sa: IkeSa, reason: CloseReason, ipsec: &mut Ipsec) {
        self.timers.reschedule(sa.ours, sa.scheduled, None);
        if !sa.initiator {
            self.half_open.remove(&sa.spi_i);
        }
        if let Some(spi) = sa.offered_spi() {
            self.offered_spis.remove(&spi);
        }
        for c in &sa.children {
            self.uninstall(sa.ours, c, ipsec);
        }
        self.events.push_back(IkeEvent::Closed {
            sa: IkeSaId(sa.ours),
            reason,
        });
    }

    /// Closes the SA `spi`, if it is in the map.
    fn close_spi(&mut self, spi: u64, reason: CloseReason, ipsec: &mut Ipsec) {
        if let Some(sa) = self.sas.remove(&spi) {
            self.close(sa, reason, ipsec);
        }
    }
}
