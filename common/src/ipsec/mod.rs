//! IPsec in userspace (RFC 4301, RFC 4303): the SPD and SAD, ESP in
//! transport and tunnel mode, anti-replay, lifetimes, SA address updates
//! without rekeying, and the "suitable SA" test of
//! draft-dupont-mipv6-cn-ipsec §2.
//!
//! [`Ipsec`] takes whole IP packets: [`Ipsec::outbound`] applies the SPD and
//! seals, [`Ipsec::inbound`] opens ESP (nested SAs too) and checks
//! selectors and policy. Nothing is returned as an error that a peer could
//! cause without being counted: every drop has an [`IpsecDrop`] reason and
//! a counter in [`IpsecStats`]. Lifetimes and address changes are reported
//! as [`IpsecEvent`]s for key management, which is static configuration
//! ([`config`]) until IKEv2 installs SAs.
//!
//! Transport mode keeps the Mobile IPv6 header order (RFC 6275 §6.3, §6.4):
//! a type 2 routing header and a Destination Options header carrying a Home
//! Address option stay ahead of ESP; selectors see the home address.

pub mod config;
mod crypto;
mod esp;
mod layout;
mod replay;
mod sad;
mod spd;

use core::net::{IpAddr, Ipv6Addr};
use std::collections::VecDeque;

use hashbrown::HashMap;

pub use crypto::{Algorithm, EspCipher, KeyLengthError, ICV_LEN};
pub use esp::EspKeyring;
pub use layout::{Layout, PacketSelectors};
pub use replay::{ReplayError, ReplayWindow, DEFAULT_WINDOW, MAX_WINDOW};
pub use sad::{AddressPair, Lifetime, Mode, Sa, SaId, SaKeys, SaPairSpec, Sad, SadError};
pub use spd::{Action, Direction, Policy, PortRange, Prefix, Selector, Spd};

use crate::time::Instant;
use crate::wire::checksum;
use crate::wire::{IpProtocol, MhType};

/// Why a packet was dropped. Each has a counter in [`IpsecStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum IpsecDrop {
    #[error("malformed IP or ESP packet")]
    Malformed,
    #[error("no inbound SA has this SPI")]
    UnknownSpi,
    #[error("ICV check failed")]
    IcvFailure,
    #[error("sequence number already received")]
    Replayed,
    #[error("sequence number left of the replay window")]
    OutsideWindow,
    #[error("bad ESP padding")]
    BadTrailer,
    #[error("decrypted packet outside the SA's selectors")]
    SelectorMismatch,
    #[error("policy discards this traffic")]
    PolicyDiscard,
    #[error("policy requires IPsec, packet came in clear")]
    Unprotected,
    #[error("policy names an SA that is gone")]
    NoSa,
    #[error("SA lifetime expired")]
    SaExpired,
    #[error("sequence numbers exhausted, the SA needs rekeying")]
    SequenceExhausted,
    #[error("tunnel-mode payload is not an IP packet")]
    NotTunnelled,
    #[error("dummy packet (next header 59)")]
    Dummy,
    #[error("packet would exceed the IP length limit")]
    TooBig,
}

impl IpsecDrop {
    pub const ALL: [IpsecDrop; 15] = [
        IpsecDrop::Malformed,
        IpsecDrop::UnknownSpi,
        IpsecDrop::IcvFailure,
        IpsecDrop::Replayed,
        IpsecDrop::OutsideWindow,
        IpsecDrop::BadTrailer,
        IpsecDrop::SelectorMismatch,
        IpsecDrop::PolicyDiscard,
        IpsecDrop::Unprotected,
        IpsecDrop::NoSa,
        IpsecDrop::SaExpired,
        IpsecDrop::SequenceExhausted,
        IpsecDrop::NotTunnelled,
        IpsecDrop::Dummy,
        IpsecDrop::TooBig,
    ];
}

impl From<ReplayError> for IpsecDrop {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Replayed => IpsecDrop::Replayed,
            ReplayError::OutsideWindow => IpsecDrop::OutsideWindow,
        }
    }
}

/// Packet counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpsecStats {
    /// Packets sent through at least one SA.
    pub sealed: u64,
    /// Packets received through at least one SA.
    pub opened: u64,
    /// Packets let through in the clear by a bypass policy.
    pub bypassed: u64,
    drops: [u64; IpsecDrop::ALL.len()],
}

impl IpsecStats {
    pub fn dropped(&self, reason: IpsecDrop) -> u64 {
        self.drops[reason as usize]
    }

    /// Every reason with a non-zero count.
    pub fn drops(&self) -> impl Iterator<Item = (IpsecDrop, u64)> + '_ {
        IpsecDrop::ALL
            .into_iter()
            .map(|r| (r, self.dropped(r)))
            .filter(|(_, n)| *n > 0)
    }
}

/// A request to key management to move an SA pair and its siblings to new
/// addresses: the PF_KEY SADB_X_ADDUPD analogue (draft-dupont-ikev2-addrmgmt
/// Annex D, REQ AM-D.1). Fire-and-forget: if it is not acted on, the next
/// packet from the new address asks again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressUpdateRequest {
    pub sa: SaId,
    pub spi: u32,
    pub old: AddressPair,
    pub new: AddressPair,
}

/// What key management needs to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpsecEvent {
    /// A soft limit was reached: time to rekey.
    SoftExpired {
        sa: SaId,
        spi: u32,
    },
    /// A hard limit (or the sequence space) ran out; the SA is gone.
    HardExpired {
        sa: SaId,
        spi: u32,
    },
    AddressUpdate(AddressUpdateRequest),
}

/// What to send after [`Ipsec::outbound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// Send the packet as it was (bypass).
    Clear,
    /// Send the output buffer; `sa` is the outermost SA applied.
    Protected { sa: SaId },
}

/// What was received, after [`Ipsec::inbound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// The packet came in clear and a bypass policy allows it.
    Clear,
    /// The output buffer holds the decrypted packet; `sa` is the innermost
    /// SA it came through, `depth` how many SAs were removed.
    Decrypted { sa: SaId, depth: u8 },
}

/// Which policies a packet meets. A node that chooses itself what goes
/// into its tunnel with a home agent (a mobile node, a home agent) keeps
/// the tunnel-mode policies for what it tunnels: RFC 4877's payload SA
/// must not catch a route-optimised packet from the same home address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Every policy: a plain IPsec host or gateway.
    Any,
    /// Not into the tunnel: tunnel-mode policies do not apply; inbound,
    /// what a tunnel-mode SA carried comes back unopened further, for the
    /// node to take out of its tunnel itself.
    Direct,
    /// Into the tunnel (outbound) or out of an IPv6-in-IPv6 tunnel the node
    /// opened itself (inbound): outbound, only tunnel-mode policies apply,
    /// and with none matching the packet stays clear (and uncounted) for
    /// the caller to encapsulate itself and send [`Path::Direct`]; inbound,
    /// every policy applies: what a tunnel-mode SA covers should have come
    /// through it. (What a tunnel-mode SA carried is opened further
    /// [`Path::Direct`]: its selectors were checked.)
    Tunnel,
}

/// IKE (UDP 500 and 4500) passes every policy outside the tunnel, as an
/// IKE daemon's own socket does: the SAs it negotiates cannot carry it.
fn is_ike(p: &PacketSelectors) -> bool {
    let ike = |port: Option<u16>| matches!(port, Some(500 | 4500));
    p.protocol == IpProtocol::Udp && (ike(p.src_port) || ike(p.dst_port))
}

/// Why an SA is not "suitable" for route optimisation
/// (draft-dupont-mipv6-cn-ipsec §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsuitable {
    #[error("no such SA")]
    NoSuchSa,
    #[error("the other SA of the pair is gone (CN-2.1)")]
    NotPaired,
    #[error("the SA is not between this home address and correspondent (CN-2.1)")]
    WrongEndpoints,
    #[error("the SA does not refuse replays (CN-2.2)")]
    NoAntiReplay,
    #[error("the selectors match more than the home address and the correspondent (CN-2.3)")]
    SelectorsTooWide,
    #[error("the SA is not in transport mode (CN-2.4)")]
    NotTransport,
    #[error("the selectors do not let BU and BA through (CN-2.5)")]
    NoBindingSignalling,
}

/// How many SAs a packet may be nested in.
const MAX_NESTING: u8 = 4;

/// SPD + SAD + counters + events: IPsec for one node.
#[derive(Debug, Default, Clone)]
pub struct Ipsec {
    pub spd: Spd,
    pub sad: Sad,
    stats: IpsecStats,
    events: VecDeque<IpsecEvent>,
    scratch: Vec<u8>,
    /// New sequence marks (SPI, mark) for the store, oldest first.
    marks: VecDeque<(u32, u64)>,
}

/// How far ahead of the last number sent a kept outbound counter's mark
/// goes (see [`Ipsec::keep_sequences`]): one store write per 65 536
/// packets of an SA, and a restart skips at most that many of the 2^32
/// numbers an SA without ESN has (RFC 4303 §3.3.3), so it survives
/// 65 535 restarts. The peer's anti-replay window only ever refuses
/// numbers below its highest (RFC 4303 §3.4.3): a skip forward costs it
/// nothing.
pub const SEQUENCE_SKIP: u64 = 1 << 16;

impl Ipsec {
    pub fn stats(&self) -> &IpsecStats {
        &self.stats
    }

    /// Installs an SA pair and, ahead of every other policy, the policy
    /// that protects what its selector matches with its outbound SA.
    /// Returns (inbound, outbound).
    pub fn add_protected_pair(
        &mut self,
        now: Instant,
        spec: &SaPairSpec,
    ) -> Result<(SaId, SaId), SadError> {
        let (inbound, outbound) = self.sad.add_pair(now, spec)?;
        self.spd.insert(
            0,
            Policy {
                selector: spec.selector.clone(),
                action: Action::Protect(vec![outbound]),
            },
        );
        Ok((inbound, outbound))
    }

    pub fn poll_event(&mut self) -> Option<IpsecEvent> {
        self.events.pop_front()
    }

    /// Keeps the outbound sequence numbers of every SA installed now (the
    /// static keys; IKE's SAs are negotiated afresh after a restart)
    /// across restarts. Each resumes after its mark in `saved` (SPI, mark:
    /// what [`Ipsec::poll_sequence_mark`] reported before the restart),
    /// and from now on, when a packet's number passes an SA's mark, the
    /// SA reports a new mark [`SEQUENCE_SKIP`] ahead, which the store must
    /// hold before that packet leaves: so no number is ever sent twice
    /// under one key. Keyed by outbound SPI; should two SAs share one, both
    /// take the higher mark, which is safe for either.
    pub fn keep_sequences(&mut self, saved: &[(u32, u64)]) {
        let mut marks: HashMap<u32, u64> = HashMap::new();
        for (spi, mark) in saved {
            let m = marks.entry(*spi).or_default();
            *m = (*m).max(*mark);
        }
        let outbound = self
            .sad
            .iter_mut()
            .filter(|s| s.direction == Direction::Outbound);
        for sa in outbound {
            let mark = marks.get(&sa.spi).copied().unwrap_or(0).max(sa.seq);
            sa.seq = mark;
            sa.mark = Some(mark);
        }
    }

    /// The next (SPI, mark) to store before the packets now queued leave.
    pub fn poll_sequence_mark(&mut self) -> Option<(u32, u64)> {
        self.marks.pop_front()
    }

    /// When [`Ipsec::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sad.next_deadline()
    }

    /// Raises soft-lifetime events and removes SAs past a hard limit.
    pub fn handle_timeout(&mut self, now: Instant) {
        for id in self.sad.due(now) {
            self.check_limits(now, id);
        }
    }

    fn check_limits(&mut self, now: Instant, id: SaId) {
        let Some(sa) = self.sad.get_mut(id) else {
            return;
        };
        let spi = sa.spi;
        if sa.is_hard_expired(now) {
            self.expire(id);
        } else if sa.is_soft_due(now) {
            sa.soft_expired = true;
            self.sad.reschedule(id);
            self.events
                .push_back(IpsecEvent::SoftExpired { sa: id, spi });
        }
    }

    fn expire(&mut self, id: SaId) {
        if let Some(sa) = self.sad.remove(id) {
            self.events.push_back(IpsecEvent::HardExpired {
                sa: id,
                spi: sa.spi,
            });
        }
    }

    fn drop(&mut self, reason: IpsecDrop) -> IpsecDrop {
        self.stats.drops[reason as usize] += 1;
        reason
    }

    /// Applies the SPD to an outgoing packet. On [`Outbound::Protected`] the
    /// packet to send is in `out` (replaced).
    pub fn outbound(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Outbound, IpsecDrop> {
        self.outbound_on(now, Path::Any, packet, out)
    }

    /// [`Ipsec::outbound`] for a packet on `path`.
    pub fn outbound_on(
        &mut self,
        now: Instant,
        path: Path,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Outbound, IpsecDrop> {
        let r = self.outbound_inner(now, path, packet, out);
        match r {
            Ok(Outbound::Clear) if path == Path::Tunnel => {}
            Ok(Outbound::Clear) => self.stats.bypassed += 1,
            Ok(Outbound::Protected { .. }) => self.stats.sealed += 1,
            Err(e) => {
                self.drop(e);
            }
        }
        r
    }

    fn outbound_inner(
        &mut self,
        now: Instant,
        path: Path,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Outbound, IpsecDrop> {
        let layout = Layout::parse(packet).map_err(|_| IpsecDrop::Malformed)?;
        if path != Path::Tunnel && is_ike(&layout.selectors) {
            return Ok(Outbound::Clear);
        }
        // Set the SPD aside while SAs change, so that the policy's SA list
        // is walked in place rather than copied for every packet.
        let spd = core::mem::take(&mut self.spd);
        let action = self.policy(&spd, &layout.selectors, Direction::Outbound, path);
        let r = match action {
            None | Some(Action::Bypass) => Ok(Outbound::Clear),
            Some(Action::Discard) => Err(IpsecDrop::PolicyDiscard),
            Some(Action::Protect(sas)) => self.protect(now, sas, layout, packet, out),
        };
        self.spd = spd;
        r
    }

    /// The policy a packet on `path` meets; `None` on the tunnel path when
    /// no tunnel-mode policy matches.
    fn policy<'a>(
        &self,
        spd: &'a Spd,
        p: &PacketSelectors,
        dir: Direction,
        path: Path,
    ) -> Option<&'a Action> {
        let tunnel = |a: &Action| match a {
            Action::Protect(sas) => sas
                .first()
                .and_then(|id| self.sad.get(*id))
                .is_some_and(|sa| sa.mode == Mode::Tunnel),
            _ => false,
        };
        match (path, dir) {
            (Path::Direct, _) => Some(
                spd.first_match(p, dir, |a| !tunnel(a))
                    .unwrap_or(&spd.fallback),
            ),
            (Path::Tunnel, Direction::Outbound) => spd.first_match(p, dir, tunnel),
            (Path::Any | Path::Tunnel, _) => Some(spd.lookup(p, dir)),
        }
    }

    /// Applies `sas` in turn, innermost first; the result ends in `out`.
    fn protect(
        &mut self,
        now: Instant,
        sas: &[SaId],
        mut layout: Layout,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Outbound, IpsecDrop> {
        let mut outer = None;
        for (i, &id) in sas.iter().enumerate() {
            let mut scratch = core::mem::take(&mut self.scratch);
            scratch.clear();
            let input: &[u8] = if i == 0 { packet } else { out };
            if i > 0 {
                layout = Layout::parse(input).map_err(|_| IpsecDrop::Malformed)?;
            }
            let r = self.encapsulate(now, id, &layout, input, &mut scratch);
            self.scratch = scratch;
            r?;
            core::mem::swap(out, &mut self.scratch);
            outer = Some(id);
        }
        outer
            .map(|sa| Outbound::Protected { sa })
            .ok_or(IpsecDrop::NoSa)
    }

    fn encapsulate(
        &mut self,
        now: Instant,
        id: SaId,
        layout: &Layout,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), IpsecDrop> {
        let sa = self.sad.get_mut(id).ok_or(IpsecDrop::NoSa)?;
        let sealed = match sa.mode {
            Mode::Transport => {
                out.extend_from_slice(&packet[..layout.esp_offset]);
                out[layout.esp_next_header_at] = IpProtocol::Esp.into();
                sa.seal(
                    now,
                    layout.esp_next_header,
                    &packet[layout.esp_offset..layout.end],
                    out,
                )
            }
            Mode::Tunnel => {
                let inner = &packet[..layout.end];
                let (proto, tos) = match layout.selectors.src {
                    IpAddr::V6(_) => (IpProtocol::Ipv6, (inner[0] << 4) | (inner[1] >> 4)),
                    IpAddr::V4(_) => (IpProtocol::Ipv4, inner[1]),
                };
                push_outer_header(out, sa.addresses, tos);
                sa.seal(now, proto, inner, out)
            }
        };
        match sealed {
            Err(e @ (IpsecDrop::SaExpired | IpsecDrop::SequenceExhausted)) => {
                self.expire(id);
                Err(e)
            }
            Err(e) => Err(e),
            Ok(()) => {
                if let Some(mark) = sa.mark.filter(|m| sa.seq > *m) {
                    let next = sa.seq.saturating_add(SEQUENCE_SKIP).max(mark);
                    sa.mark = Some(next);
                    self.marks.push_back((sa.spi, next));
                }
                self.check_limits(now, id);
                finish_ip_header(out)
            }
        }
    }

    /// Opens every ESP layer of a received packet and checks the result
    /// against the SAs' selectors, or checks a clear packet against the SPD
    /// (RFC 4301 §5.2). On [`Inbound::Decrypted`] the packet is in `out`.
    pub fn inbound(
        &mut self,
        now: Instant,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Inbound, IpsecDrop> {
        self.inbound_on(now, Path::Any, packet, out)
    }

    /// [`Ipsec::inbound`] for a packet that came on `path`.
    pub fn inbound_on(
        &mut self,
        now: Instant,
        path: Path,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Inbound, IpsecDrop> {
        let r = self.inbound_inner(now, path, packet, out);
        match r {
            Ok(Inbound::Clear) => self.stats.bypassed += 1,
            Ok(Inbound::Decrypted { .. }) => self.stats.opened += 1,
            Err(e) => {
                self.drop(e);
            }
        }
        r
    }

    fn inbound_inner(
        &mut self,
        now: Instant,
        path: Path,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<Inbound, IpsecDrop> {
        let mut layout = Layout::parse(packet).map_err(|_| IpsecDrop::Malformed)?;
        let mut innermost = None;
        let mut depth = 0u8;
        while layout.selectors.protocol == IpProtocol::Esp {
            if depth == MAX_NESTING {
                return Err(IpsecDrop::Malformed);
            }
            let mut scratch = core::mem::take(&mut self.scratch);
            scratch.clear();
            let input: &[u8] = if depth == 0 { packet } else { out };
            let r = self.decapsulate(now, &layout, input, &mut scratch);
            self.scratch = scratch;
            let (id, inner) = r?;
            core::mem::swap(out, &mut self.scratch);
            layout = inner;
            innermost = Some(id);
            depth += 1;
            // A node that runs its own tunnel opens what came out of it.
            if path == Path::Direct && self.sad.get(id).is_some_and(|s| s.mode == Mode::Tunnel) {
                break;
            }
        }
        match innermost {
            Some(sa) => Ok(Inbound::Decrypted { sa, depth }),
            None if path != Path::Tunnel && is_ike(&layout.selectors) => Ok(Inbound::Clear),
            None => match self.policy(&self.spd, &layout.selectors, Direction::Inbound, path) {
                None | Some(Action::Bypass) => Ok(Inbound::Clear),
                Some(Action::Discard) => Err(IpsecDrop::PolicyDiscard),
                Some(Action::Protect(_)) => Err(IpsecDrop::Unprotected),
            },
        }
    }

    /// Opens the ESP layer at `layout.upper_offset` into `out`; returns the
    /// SA and the layout of the packet now in `out`.
    fn decapsulate(
        &mut self,
        now: Instant,
        layout: &Layout,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(SaId, Layout), IpsecDrop> {
        let esp = &packet[layout.upper_offset..layout.end];
        let spi = crate::wire::EspPacket::new_checked(esp)
            .map_err(|_| IpsecDrop::Malformed)?
            .spi();
        let id = self.sad.inbound_by_spi(spi).ok_or(IpsecDrop::UnknownSpi)?;
        let sa = self.sad.get_mut(id).ok_or(IpsecDrop::UnknownSpi)?;
        let mode = sa.mode;
        if mode == Mode::Transport {
            out.extend_from_slice(&packet[..layout.upper_offset]);
        }
        let next = match sa.open(now, esp, out) {
            Err(e @ IpsecDrop::SaExpired) => {
                self.expire(id);
                return Err(e);
            }
            r => r?,
        };
        match (mode, next) {
            (Mode::Transport, _) => {
                out[layout.upper_next_header_at] = next.into();
                finish_ip_header(out)?;
            }
            (Mode::Tunnel, IpProtocol::Ipv6 | IpProtocol::Ipv4) => {}
            (Mode::Tunnel, IpProtocol::NoNextHeader) => return Err(IpsecDrop::Dummy),
            (Mode::Tunnel, _) => return Err(IpsecDrop::NotTunnelled),
        }
        let inner = Layout::parse(out).map_err(|_| IpsecDrop::Malformed)?;
        let sa = self.sad.get_mut(id).ok_or(IpsecDrop::UnknownSpi)?;
        if !sa.selector.matches(&inner.selectors, Direction::Inbound) {
            return Err(IpsecDrop::SelectorMismatch);
        }
        if mode == Mode::Tunnel {
            let seen = AddressPair {
                local: layout.wire_dst,
                peer: layout.wire_src,
            };
            if seen != sa.addresses && sa.reported_move != Some(seen) {
                sa.reported_move = Some(seen);
                let request = AddressUpdateRequest {
                    sa: id,
                    spi,
                    old: sa.addresses,
                    new: seen,
                };
                self.events.push_back(IpsecEvent::AddressUpdate(request));
            }
        }
        self.check_limits(now, id);
        Ok((id, inner))
    }

    /// Asks key management to move `sa`, its pair and its siblings to `new`
    /// (REQ AM-D.1), e.g. when this node's own address changed.
    pub fn request_address_update(&mut self, sa: SaId, new: AddressPair) -> Result<(), SadError> {
        let s = self.sad.get(sa).ok_or(SadError::NoSuchSa(sa))?;
        let request = AddressUpdateRequest {
            sa,
            spi: s.spi,
            old: s.addresses,
            new,
        };
        self.events.push_back(IpsecEvent::AddressUpdate(request));
        Ok(())
    }

    /// Whether `sa` (either direction of a pair) is a "suitable" SA for
    /// route optimisation between `home` and `cn`
    /// (draft-dupont-mipv6-cn-ipsec §2, REQ CN-2.1 … CN-2.5). Integrity and
    /// authentication hold for every transform we offer; anti-replay is
    /// checked on the inbound SA.
    pub fn check_suitable(&self, sa: SaId, home: Ipv6Addr, cn: Ipv6Addr) -> Result<(), Unsuitable> {
        let s = self.sad.get(sa).ok_or(Unsuitable::NoSuchSa)?;
        let pair = self.sad.get(s.pair).ok_or(Unsuitable::NotPaired)?;
        let (home, cn) = (IpAddr::V6(home), IpAddr::V6(cn));
        let a = s.addresses;
        let (ours, theirs) = match (a.local, a.peer) {
            (l, p) if l == cn && p == home => (cn, home),
            (l, p) if l == home && p == cn => (home, cn),
            _ => return Err(Unsuitable::WrongEndpoints),
        };
        let inbound = if s.direction == Direction::Inbound {
            s
        } else {
            pair
        };
        if inbound.replay_window() == 0 {
            return Err(Unsuitable::NoAntiReplay);
        }
        if s.selector.local != Prefix::host(ours) || s.selector.remote != Prefix::host(theirs) {
            return Err(Unsuitable::SelectorsTooWide);
        }
        if s.mode != Mode::Transport {
            return Err(Unsuitable::NotTransport);
        }
        let bu = MhType::BindingUpdate.into();
        let ba = MhType::BindingAck.into();
        if !(s.selector.allows_mh_type(bu) && s.selector.allows_mh_type(ba)) {
            return Err(Unsuitable::NoBindingSignalling);
        }
        Ok(())
    }

    /// The inbound SA of a suitable pair between `home` and `cn`, if any.
    pub fn find_suitable(&self, home: Ipv6Addr, cn: Ipv6Addr) -> Option<SaId> {
        self.sad
            .iter()
            .filter(|(_, s)| s.direction == Direction::Inbound)
            .map(|(id, _)| id)
            .filter(|id| self.check_suitable(*id, home, cn).is_ok())
            .min()
    }
}

/// Appends an IPv6 or IPv4 header for ESP between the SA's addresses;
/// lengths and checksum are filled in by [`finish_ip_header`].
fn push_outer_header(out: &mut Vec<u8>, a: AddressPair, tos: u8) {
    const HOP_LIMIT: u8 = 64;
    match (a.local, a.peer) {
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            out.extend_from_slice(&[0x60 | (tos >> 4), tos << 4, 0, 0, 0, 0]);
            out.extend_from_slice(&[IpProtocol::Esp.into(), HOP_LIMIT]);
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            // Don't Fragment: we never fragment and want to hear of PMTU.
            out.extend_from_slice(&[0x45, tos, 0, 0, 0, 0, 0x40, 0]);
            out.extend_from_slice(&[HOP_LIMIT, IpProtocol::Esp.into(), 0, 0]);
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        // The SAD refuses pairs that mix families.
        _ => {}
    }
}

/// Sets the length fields (and the IPv4 header checksum) of the packet in
/// `b` to match its size.
fn finish_ip_header(b: &mut [u8]) -> Result<(), IpsecDrop> {
    match b.first().map(|v| v >> 4) {
        Some(6) => {
            let plen = u16::try_from(b.len() - 40).map_err(|_| IpsecDrop::TooBig)?;
            b[4..6].copy_from_slice(&plen.to_be_bytes());
        }
        Some(4) => {
            let total = u16::try_from(b.len()).map_err(|_| IpsecDrop::TooBig)?;
            b[2..4].copy_from_slice(&total.to_be_bytes());
            let hl = usize::from(b[0] & 0x0f) * 4;
            b[10..12].fill(0);
            let c = checksum::finish(checksum::sum(0, &b[..hl]));
            b[10..12].copy_from_slice(&c.to_be_bytes());
        }
        _ => return Err(IpsecDrop::Malformed),
    }
    Ok(())
}

#[cfg(test)]
mod tests;
