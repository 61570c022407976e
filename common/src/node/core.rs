//! What the three engines share: their interfaces (each with its
//! Neighbor Discovery state), IPsec on the way in and out, IKE on the
//! node's own addresses, routing to an interface and next hop, the queues,
//! the counters and the RNG; Mobile IPv6 header surgery.

use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::collections::VecDeque;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use super::{rr, CommandError, Event, Iface, NodeDrop, NodeStats, NodeStatus, Transmit};
use crate::ike::{Datagram, Ike, IkeConfig, IkeEvent, IKE_PORT, NATT_PORT};
use crate::ipsec::{Inbound, Ipsec, Layout, Mode, Outbound, Path, SaId};
use crate::nd::{Dad, Membership, NdConfig, NdDrop, NdEvent, NdIface, Sent};
use crate::time::{earlier, Duration, Instant};
use crate::wire::checksum::PseudoHeader;
use crate::wire::icmpv6::{ECHO_REPLY, ECHO_REQUEST, PARAMETER_PROBLEM, TIME_EXCEEDED};
use crate::wire::mh::{MhMessage, MhOption, MhPacket, MhRepr};
use crate::wire::nd::{NEIGHBOR_ADVERTISEMENT, ROUTER_SOLICITATION};
use crate::wire::packet::{decode, UdpPayload};
use crate::wire::{
    CodePoints, ExtHeaderRepr, Icmpv6Repr, IpProtocol, IpRepr, Ipv6OptionRepr, Ipv6Packet,
    Ipv6Repr, MacAddr, NdRepr, PacketRepr, RoutingRepr, UdpRepr, UpperRepr,
};

/// A packet after IPsec: parsed, with the SA it came through.
pub(crate) struct Rx {
    pub repr: PacketRepr,
    pub sa: Option<SaId>,
    /// `sa` is a tunnel-mode SA and `repr` the packet it carried.
    pub tunnelled: bool,
    /// The bytes `repr` was parsed from (decrypted if it was ESP).
    pub bytes: Vec<u8>,
}

impl Rx {
    pub fn header(&self) -> Option<&Ipv6Repr> {
        match &self.repr.ip {
            IpRepr::V6 { header, .. } => Some(header),
            IpRepr::V4(_) => None,
        }
    }

    pub fn home_address_option(&self) -> Option<Ipv6Addr> {
        home_address_option(&self.repr)
    }

    /// The packet a tunnel carried, parsed and as it came: `repr` and all
    /// of `bytes` out of a tunnel-mode SA, else IPv6 in IPv6's inner one.
    pub fn inner(&self) -> Option<(&PacketRepr, &[u8])> {
        if self.tunnelled {
            return Some((&self.repr, &self.bytes));
        }
        let UpperRepr::Tunnel(inner) = &self.repr.upper else {
            return None;
        };
        let l = Layout::parse(&self.bytes).ok()?;
        Some((inner, self.bytes.get(l.upper_offset..l.end)?))
    }

    /// The Mobility Header as it was on the wire, for authenticators.
    pub fn mh_bytes(&self) -> Option<&[u8]> {
        let l = Layout::parse(&self.bytes).ok()?;
        self.bytes.get(l.upper_offset..l.end)
    }
}

/// How many interfaces an engine can have.
pub const MAX_LINKS: usize = 16;

/// What [`Core::receive`] made of a packet from a link.
pub(crate) enum Received {
    /// Through IPsec and parsed, for the role.
    Packet(Rx),
    /// Neighbor Discovery, handled here.
    Nd,
    /// For an address that is not ours: the role decides (a home agent
    /// tunnels what it intercepts; the others count it as not for us).
    Foreign(Ipv6Addr),
    /// Dropped and counted.
    Dropped,
}

#[derive(Clone)]
pub(crate) struct Core {
    pub cp: CodePoints,
    pub ipsec: Ipsec,
    /// Keys the node's SAs when configured; fed the UDP 500/4500 packets
    /// for the node's addresses and the IPsec events.
    pub ike: Option<Ike>,
    pub rng: ChaCha20Rng,
    pub stats: NodeStats,
    nd_cfg: NdConfig,
    /// The interfaces with carrier, by number.
    links: Vec<Option<NdIface>>,
    out: VecDeque<Transmit>,
    events: VecDeque<Event>,
    scratch: Vec<u8>,
    /// The last packet [`Core::send_emitted`] emitted, kept for its capacity.
    emitted: Vec<u8>,
    errors: ErrorBudget,
}

/// RFC 4443 §2.4(f)'s token bucket for the error messages a node sends,
/// which RFC 6275 §9.3.3 applies to Binding Errors too: a flood of bad
/// packets gets at most `ERRORS_PER_SECOND` answers a second.
#[derive(Debug, Clone, Copy)]
struct ErrorBudget {
    tokens: u32,
    refilled: Instant,
}

const ERRORS_PER_SECOND: u32 = 10;

impl ErrorBudget {
    fn take(&mut self, now: Instant) -> bool {
        let tick = 1_000_000 / u64::from(ERRORS_PER_SECOND);
        let elapsed = now.saturating_duration_since(self.refilled).as_micros();
        let earned = u64::try_from(elapsed).unwrap_or(u64::MAX) / tick;
        if earned >= u64::from(ERRORS_PER_SECOND) {
            self.tokens = ERRORS_PER_SECOND;
            self.refilled = now;
        } else if earned > 0 {
            // Keep the fraction of a tick already earned.
            self.tokens = (self.tokens + earned as u32).min(ERRORS_PER_SECOND);
            self.refilled += Duration::from_micros(earned * tick);
        }
        let ok = self.tokens > 0;
        self.tokens = self.tokens.saturating_sub(1);
        ok
    }
}

/// Neither multicast nor unspecified: an address an error may come from
/// or go to.
fn is_unicast(a: Ipv6Addr) -> bool {
    !a.is_multicast() && !a.is_unspecified()
}

impl Core {
    pub fn new(ipsec: Ipsec, ike: Option<IkeConfig>, seed: u64, cp: CodePoints) -> Self {
        Core {
            cp,
            ipsec,
            ike: ike.map(Ike::new),
            rng: ChaCha20Rng::seed_from_u64(seed),
            stats: NodeStats::default(),
            nd_cfg: NdConfig::default(),
            links: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::new(),
            emitted: Vec::new(),
            errors: ErrorBudget {
                tokens: ERRORS_PER_SECOND,
                refilled: Instant::ZERO,
            },
        }
    }

    pub fn drop(&mut self, reason: NodeDrop) {
        self.stats.drops[reason as usize] += 1;
    }

    pub fn event(&mut self, e: Event) {
        self.events.push_back(e);
    }

    // ---- interfaces ----

    /// Carrier on `iface`: a fresh ND state, whose link-local address
    /// starts `dad`.
    pub fn link_up(
        &mut self,
        now: Instant,
        iface: u8,
        mac: MacAddr,
        dad: Dad,
    ) -> Result<&mut NdIface, CommandError> {
        let i = usize::from(iface);
        if i >= MAX_LINKS {
            return Err(CommandError::NoSuchInterface(iface));
        }
        if self.links.len() <= i {
            self.links.resize_with(i + 1, || None);
        }
        let seed = self.rng.next_u64();
        let nd = self.links[i].insert(NdIface::new(now, self.nd_cfg, mac, dad, seed));
        Ok(nd)
    }

    /// No carrier on `iface`: its addresses, routers and neighbours go,
    /// and what waited for them is counted as dropped.
    pub fn link_down(&mut self, iface: u8) -> Result<(), CommandError> {
        let nd = self
            .links
            .get_mut(usize::from(iface))
            .ok_or(CommandError::NoSuchInterface(iface))?
            .take();
        if let Some(nd) = nd {
            let waiting: usize = nd.neighbors().map(|(_, n)| n.queued()).sum();
            self.stats.drops[NodeDrop::Unresolved as usize] += waiting as u64;
        }
        Ok(())
    }

    pub fn link(&self, iface: u8) -> Option<&NdIface> {
        self.links.get(usize::from(iface)).and_then(Option::as_ref)
    }

    pub fn link_mut(&mut self, iface: u8) -> Option<&mut NdIface> {
        self.links
            .get_mut(usize::from(iface))
            .and_then(Option::as_mut)
    }

    /// The interfaces with carrier.
    pub fn links(&self) -> impl Iterator<Item = (u8, &NdIface)> + '_ {
        self.links
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.as_ref().map(|l| (i as u8, l)))
    }

    /// The parts of a status report every role shares.
    pub fn status(&self, role: &'static str) -> NodeStatus {
        NodeStatus::new(role, self.links(), &self.ipsec, &self.stats)
    }

    /// The interface on which `addr` is one of our usable addresses.
    pub fn owner(&self, addr: Ipv6Addr) -> Option<u8> {
        self.links().find(|(_, l)| l.usable(addr)).map(|(i, _)| i)
    }

    /// The next ND event of any interface.
    pub fn poll_nd(&mut self) -> Option<(u8, NdEvent)> {
        for (i, l) in self.links.iter_mut().enumerate() {
            if let Some(e) = l.as_mut().and_then(NdIface::poll_event) {
                if let NdEvent::NeighborUnreachable { dropped, .. } = e {
                    self.stats.drops[NodeDrop::Unresolved as usize] += dropped as u64;
                }
                return Some((i as u8, e));
            }
        }
        None
    }

    /// The earlier of the engine's own deadline, IPsec's and ND's.
    pub fn earliest(&self, own: Option<Instant>) -> Option<Instant> {
        let nd = self
            .links()
            .fold(None, |t, (_, l)| earlier(t, l.poll_timeout()));
        let ike = self.ike.as_ref().and_then(Ike::poll_timeout);
        earlier(earlier(own, self.ipsec.poll_timeout()), earlier(nd, ike))
    }

    /// Runs the timers of IPsec, IKE and every interface.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.ipsec.handle_timeout(now);
        if let Some(ike) = self.ike.as_mut() {
            ike.handle_timeout(now, &mut self.ipsec);
        }
        for l in self.links.iter_mut().flatten() {
            l.handle_timeout(now);
        }
    }

    // ---- IKE ----

    /// Gives a UDP packet for an IKE port to IKE; false if it is not one,
    /// or the node runs no IKE. The addresses are the ones the packet is
    /// between once Mobile IPv6 headers are taken off (the home address
    /// of a Home Address option or a type 2 routing header).
    pub fn ike_input(&mut self, now: Instant, rx: &Rx) -> bool {
        let Some(ike) = self.ike.as_mut() else {
            return false;
        };
        let (Some(h), UpperRepr::Udp(udp, _)) = (rx.header(), &rx.repr.upper) else {
            return false;
        };
        if ![IKE_PORT, NATT_PORT].contains(&udp.dst_port) {
            return false;
        }
        let Some(payload) = Layout::parse(&rx.bytes)
            .ok()
            .and_then(|l| rx.bytes.get(l.upper_offset + 8..l.end))
        else {
            return false;
        };
        let remote = home_address_option(&rx.repr).unwrap_or(h.src);
        let local = type2_address(&rx.repr).unwrap_or(h.dst);
        let d = Datagram {
            local: SocketAddr::new(IpAddr::V6(local), udp.dst_port),
            remote: SocketAddr::new(IpAddr::V6(remote), udp.src_port),
            bytes: payload.to_vec(),
        };
        ike.handle_datagram(now, d, &mut self.ipsec);
        true
    }

    /// Hands IPsec's events to IKE first (rekeys, address updates, REQ
    /// AM-D.1), then to the node's events with IKE's own; returns IKE's
    /// for the engine to act on.
    pub fn pump_ike(&mut self, now: Instant) -> Vec<IkeEvent> {
        while let Some(e) = self.ipsec.poll_event() {
            if let Some(ike) = self.ike.as_mut() {
                ike.handle_ipsec_event(now, e, &mut self.ipsec);
            }
            self.events.push_back(Event::Ipsec(e));
        }
        let mut seen = Vec::new();
        while let Some(e) = self.ike.as_mut().and_then(Ike::poll_event) {
            seen.push(e.clone());
            self.events.push_back(Event::Ike(e));
        }
        seen
    }

    /// The next IKE datagram as an IPv6 packet for the engine to send
    /// (a mobile node sends those from its home address like any other).
    pub fn poll_ike_packet(&mut self) -> Option<PacketRepr> {
        loop {
            let d = self.ike.as_mut()?.poll_transmit()?;
            let (SocketAddr::V6(local), SocketAddr::V6(remote)) = (d.local, d.remote) else {
                self.drop(NodeDrop::NoRoute);
                continue;
            };
            let udp = UdpRepr {
                src_port: local.port(),
                dst_port: remote.port(),
            };
            self.stats.ike_messages += 1;
            self.stats.ike_bytes += d.bytes.len() as u64;
            return Some(PacketRepr::ipv6(
                *local.ip(),
                *remote.ip(),
                vec![],
                UpperRepr::Udp(udp, UdpPayload::Raw(d.bytes)),
            ));
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.out.pop_front() {
            return Some(t);
        }
        for (i, l) in self.links.iter_mut().enumerate() {
            if let Some(f) = l.as_mut().and_then(NdIface::poll_frame) {
                return Some(Transmit {
                    iface: Iface::Link(i as u8),
                    dst_mac: Some(f.dst),
                    bytes: f.bytes,
                });
            }
        }
        None
    }

    /// Call [`Core::pump_ike`] first: IPsec's events go through it.
    /// The next change of an interface's multicast groups.
    pub fn poll_membership(&mut self) -> Option<(u8, Membership)> {
        self.links.iter_mut().enumerate().find_map(|(i, l)| {
            l.as_mut()
                .and_then(NdIface::poll_membership)
                .map(|m| (i as u8, m))
        })
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- receiving ----

    /// A packet from link `iface`: Neighbor Discovery is answered here
    /// (before IPsec: RFC 4301 §4.4.1 lets ND bypass it); what is for one
    /// of our usable addresses or a multicast group goes through IPsec and
    /// a strict parse.
    pub fn receive(&mut self, now: Instant, iface: u8, bytes: &[u8]) -> Received {
        let Ok(p) = Ipv6Packet::new_checked(bytes) else {
            self.drop(NodeDrop::Malformed);
            return Received::Dropped;
        };
        let dst = p.dst_addr();
        if p.next_header() == IpProtocol::Icmpv6 {
            if let Some(t) = p.payload().first() {
                if (ROUTER_SOLICITATION..=NEIGHBOR_ADVERTISEMENT).contains(t) {
                    self.neighbor_discovery(now, iface, bytes);
                    return Received::Nd;
                }
            }
        }
        let ours = self.link(iface).is_some_and(|l| l.usable(dst));
        if !(ours || dst.is_multicast()) {
            return Received::Foreign(dst);
        }
        let Some(rx) = self.decrypt_parse(now, bytes, Path::Direct) else {
            return Received::Dropped;
        };
        // Counted here, not ignored in each engine.
        if rx.header().is_some_and(|h| h.dst.is_multicast()) {
            self.drop(NodeDrop::Multicast);
            return Received::Dropped;
        }
        Received::Packet(rx)
    }

    fn neighbor_discovery(&mut self, now: Instant, iface: u8, bytes: &[u8]) {
        // A bad checksum, code or option is RFC 4861's to discard.
        let Ok(repr) = PacketRepr::parse(bytes, &self.cp) else {
            self.drop(NodeDrop::NdInvalid);
            return;
        };
        let (IpRepr::V6 { header, ext }, UpperRepr::Icmpv6(icmp)) = (&repr.ip, &repr.upper) else {
            self.drop(NodeDrop::Malformed);
            return;
        };
        let msg = match NdRepr::parse(icmp) {
            Ok(Some(m)) if ext.is_empty() => m,
            _ => {
                self.drop(NodeDrop::NdInvalid);
                return;
            }
        };
        let Some(nd) = self.link_mut(iface) else {
            self.drop(NodeDrop::NoRoute);
            return;
        };
        if nd
            .handle(now, header.src, header.dst, header.hop_limit, &msg)
            .is_err_and(|e| e == NdDrop::Invalid)
        {
            self.drop(NodeDrop::NdInvalid);
        }
    }

    /// Applies IPsec and parses strictly; drops are counted. A packet from
    /// a link comes [`Path::Direct`]: a tunnel-mode SA gives its inner
    /// packet, which the engine opens [`Path::Tunnel`] if it is for us,
    /// like what comes out of an IPv6-in-IPv6 tunnel.
    pub fn decrypt_parse(&mut self, now: Instant, bytes: &[u8], path: Path) -> Option<Rx> {
        let (bytes, sa) = match self.ipsec.inbound_on(now, path, bytes, &mut self.scratch) {
            Ok(Inbound::Clear) => (bytes.to_vec(), None),
            Ok(Inbound::Decrypted { sa, .. }) => (self.scratch.clone(), Some(sa)),
            Err(_) => {
                self.drop(NodeDrop::Ipsec);
                return None;
            }
        };
        let tunnelled = sa
            .and_then(|sa| self.ipsec.sad.get(sa))
            .is_some_and(|s| s.mode() == Mode::Tunnel);
        match PacketRepr::parse(&bytes, &self.cp) {
            Ok(repr) => Some(Rx {
                repr,
                sa,
                tunnelled,
                bytes,
            }),
            Err(_) => {
                if !self.mh_parameter_problem(now, &bytes) {
                    self.drop(NodeDrop::Malformed);
                }
                None
            }
        }
    }

    /// RFC 6275 §9.2: a Mobility Header whose checksum verifies but whose
    /// Payload Proto is not 59, or whose Header Len is too short for its
    /// type, is dropped with an ICMPv6 Parameter Problem (code 0) pointing
    /// at the field. A bad checksum stays a silent discard.
    fn mh_parameter_problem(&mut self, now: Instant, bytes: &[u8]) -> bool {
        let Ok(l) = Layout::parse(bytes) else {
            return false;
        };
        if l.selectors.protocol != IpProtocol::Mobility {
            return false;
        }
        let Some(Ok(mh)) = bytes.get(l.upper_offset..l.end).map(MhPacket::new_checked) else {
            return false;
        };
        let Some(field) = mh.parameter_problem() else {
            return false;
        };
        // The checksum's pseudo-header needs the HAO and routing header.
        let d = decode(bytes, &self.cp, false);
        let Some(
            repr @ PacketRepr {
                ip: IpRepr::V6 { header, .. },
                ..
            },
        ) = &d.repr
        else {
            return false;
        };
        if !mh.verify_checksum(&repr.pseudo_header()) {
            return false;
        }
        self.drop(NodeDrop::BadMobilityHeader);
        let ends = (header.dst, header.src);
        let pointer = l.upper_offset + field;
        if let Some(e) = self.icmp_error(now, ends, (PARAMETER_PROBLEM, 0), pointer, bytes) {
            self.send(now, &e);
        }
        true
    }

    /// An ICMPv6 error (RFC 4443 §2.4) about `invoking`, from `src` to
    /// `dst` (its source), for the role to send: never about a packet to a
    /// multicast group or from an address that is not unicast (§2.4(e)),
    /// and rate-limited.
    pub fn icmp_error(
        &mut self,
        now: Instant,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        (msg_type, code): (u8, u8),
        pointer: usize,
        invoking: &[u8],
    ) -> Option<PacketRepr> {
        let to_group = Ipv6Packet::new_checked(invoking).is_ok_and(|p| p.dst_addr().is_multicast());
        if to_group || !is_unicast(src) || !is_unicast(dst) || !self.errors.take(now) {
            self.stats.errors_suppressed += 1;
            return None;
        }
        // The whole error fits the minimum MTU (RFC 4443 §2.4(c)).
        let room = 1280 - 40 - 8;
        let mut body = (pointer as u32).to_be_bytes().to_vec();
        body.extend_from_slice(&invoking[..invoking.len().min(room)]);
        Some(PacketRepr::ipv6(
            src,
            dst,
            vec![],
            UpperRepr::Icmpv6(Icmpv6Repr {
                msg_type,
                code,
                body,
            }),
        ))
    }

    /// A packet to forward whose Hop Limit is 1 or less is not forwarded
    /// (RFC 8200 §3; a tunnel entry point forwards too, RFC 2473 §3.1):
    /// counted, and the ICMPv6 Time Exceeded (code 0) from `me` to its
    /// source that RFC 4443 §3.3 asks for, for the role to send.
    pub fn time_exceeded(
        &mut self,
        now: Instant,
        me: Ipv6Addr,
        invoking: &[u8],
    ) -> Option<PacketRepr> {
        self.drop(NodeDrop::HopLimit);
        let src = Ipv6Packet::new_checked(invoking).ok()?.src_addr();
        self.icmp_error(now, (me, src), (TIME_EXCEEDED, 0), 0, invoking)
    }

    /// Parses a packet from the node's own stack.
    pub fn parse_local(&mut self, bytes: &[u8]) -> Option<PacketRepr> {
        match PacketRepr::parse(bytes, &self.cp) {
            Ok(
                r @ PacketRepr {
                    ip: IpRepr::V6 { .. },
                    ..
                },
            ) => Some(r),
            _ => {
                self.drop(NodeDrop::Malformed);
                None
            }
        }
    }

    /// Hands a packet to the stack: as it came (`Rx::bytes`), or what a
    /// representation changed on the way emits.
    pub fn deliver(&mut self, bytes: Vec<u8>) {
        self.out.push_back(Transmit {
            iface: Iface::Stack,
            dst_mac: None,
            bytes,
        });
    }

    // ---- sending ----

    /// Where a packet from `src` to `dst` leaves: the interface that owns
    /// `src`, else one on which `dst` is on-link, else one with a default
    /// router; and its next hop there.
    fn route(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Option<(u8, Ipv6Addr)> {
        let by_source = self.owner(src).and_then(|i| {
            let l = self.link(i)?;
            l.next_hop(dst).map(|h| (i, h))
        });
        by_source
            .or_else(|| {
                self.links()
                    .find(|(_, l)| l.next_hop(dst) == Some(dst) && !dst.is_multicast())
                    .map(|(i, _)| (i, dst))
            })
            .or_else(|| {
                self.links()
                    .find_map(|(i, l)| l.default_router().map(|r| (i, r)))
            })
    }

    /// Applies the SPD ([`Path::Direct`]) and sends the packet on the
    /// interface and next hop its addresses call for. Returns whether ESP
    /// protected it, or `None` if it was dropped (and counted). Mobility
    /// Header messages count as signalling.
    pub fn send(&mut self, now: Instant, repr: &PacketRepr) -> Option<bool> {
        if !matches!(repr.ip, IpRepr::V6 { .. }) {
            self.drop(NodeDrop::NoRoute);
            return None;
        }
        self.send_emitted(now, repr, is_signalling(repr))
    }

    /// Emits `repr` in place of the last packet sent, applies the SPD
    /// ([`Path::Direct`]) and sends it; what goes out is a copy of exactly
    /// its length.
    fn send_emitted(&mut self, now: Instant, repr: &PacketRepr, signalling: bool) -> Option<bool> {
        self.send_filled(now, signalling, |b, cp| repr.emit(b, cp))
    }

    /// [`Core::send`] for a packet forwarded as it came, its Hop Limit one
    /// lower (the caller saw it above 1).
    pub fn send_forwarded(
        &mut self,
        now: Instant,
        packet: &[u8],
        signalling: bool,
    ) -> Option<bool> {
        self.send_filled(now, signalling, |b, _| {
            b.extend_from_slice(packet);
            b[7] -= 1;
        })
    }

    /// Has `fill` write the packet in place of the last one sent, applies
    /// the SPD and sends it.
    fn send_filled(
        &mut self,
        now: Instant,
        signalling: bool,
        fill: impl FnOnce(&mut Vec<u8>, &CodePoints),
    ) -> Option<bool> {
        let mut packet = core::mem::take(&mut self.emitted);
        packet.clear();
        fill(&mut packet, &self.cp);
        let sealed = self
            .ipsec
            .outbound_on(now, Path::Direct, &packet, &mut self.scratch);
        let out = match sealed {
            Ok(Outbound::Clear) => Some((packet.to_vec(), false)),
            Ok(Outbound::Protected { .. }) => Some((self.scratch.clone(), true)),
            Err(_) => None,
        };
        self.emitted = packet;
        let Some((bytes, protected)) = out else {
            self.drop(NodeDrop::Ipsec);
            return None;
        };
        self.transmit(now, bytes, signalling)?;
        Some(protected)
    }

    /// Sends `inner` through the tunnel between `ends` (outer source and
    /// destination): in RFC 4877's tunnel-mode payload SA if one covers it,
    /// else in IPv6-in-IPv6 (RFC 2473), which the SPD may still protect.
    pub fn send_tunnelled(
        &mut self,
        now: Instant,
        ends: (Ipv6Addr, Ipv6Addr),
        inner: &PacketRepr,
    ) -> Option<bool> {
        let bytes = inner.to_bytes(&self.cp);
        self.send_tunnelled_bytes(now, ends, &bytes, is_signalling(inner))
    }

    /// [`Core::send_tunnelled`] for a packet forwarded unparsed.
    pub fn send_tunnelled_bytes(
        &mut self,
        now: Instant,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        inner: &[u8],
        signalling: bool,
    ) -> Option<bool> {
        match self
            .ipsec
            .outbound_on(now, Path::Tunnel, inner, &mut self.scratch)
        {
            Ok(Outbound::Protected { .. }) => {
                let bytes = self.scratch.clone();
                self.transmit(now, bytes, signalling)?;
                Some(true)
            }
            Ok(Outbound::Clear) => {
                self.send_emitted(now, &encapsulate_bytes(src, dst, inner), signalling)
            }
            Err(_) => {
                self.drop(NodeDrop::Ipsec);
                None
            }
        }
    }

    /// Sends a finished packet where its outer addresses say.
    fn transmit(&mut self, now: Instant, bytes: Vec<u8>, signalling: bool) -> Option<()> {
        let Ok((src, dst)) =
            Ipv6Packet::new_checked(&bytes[..]).map(|p| (p.src_addr(), p.dst_addr()))
        else {
            self.drop(NodeDrop::Malformed);
            return None;
        };
        let Some((iface, next_hop)) = self.route(src, dst) else {
            self.drop(NodeDrop::NoRoute);
            return None;
        };
        if signalling {
            self.stats.signalling_messages += 1;
            self.stats.signalling_bytes += bytes.len() as u64;
        }
        let nd = self.link_mut(iface)?;
        if nd.send(now, next_hop, src, bytes) == Sent::Dropped {
            self.drop(NodeDrop::Unresolved);
            return None;
        }
        Some(())
    }

    /// Sends a Mobility Header message from `src` to `dst` with `ext`.
    pub fn send_mh(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ext: Vec<ExtHeaderRepr>,
        mh: MhRepr,
    ) -> Option<bool> {
        let repr = PacketRepr::ipv6(src, dst, ext, UpperRepr::Mobility(mh));
        self.send(now, &repr)
    }

    /// A Binding Error (RFC 6275 §9.3.3) from `src` to `to`, the source of
    /// the offending packet, which must be unicast; its Home Address is
    /// that packet's Home Address option, or unspecified if it had none.
    /// Rate-limited with the ICMPv6 errors.
    pub fn binding_error(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        to: Ipv6Addr,
        hao: Option<Ipv6Addr>,
        status: u8,
    ) {
        if !is_unicast(to) || !self.errors.take(now) {
            self.stats.errors_suppressed += 1;
            return;
        }
        let mh = MhRepr {
            message: MhMessage::BindingError {
                status,
                home_address: hao.unwrap_or(Ipv6Addr::UNSPECIFIED),
            },
            options: vec![],
        };
        self.send_mh(now, src, to, vec![], mh);
    }

    /// Answers an echo request to one of our link addresses that the
    /// stack does not hold (a care-of or link-local address).
    pub fn answer_echo(&mut self, now: Instant, rx: &Rx) -> bool {
        let (Some(h), UpperRepr::Icmpv6(icmp)) = (rx.header(), &rx.repr.upper) else {
            return false;
        };
        if icmp.msg_type != ECHO_REQUEST || h.dst.is_multicast() {
            return false;
        }
        let reply = PacketRepr::ipv6(
            h.dst,
            h.src,
            vec![],
            UpperRepr::Icmpv6(Icmpv6Repr {
                msg_type: ECHO_REPLY,
                code: 0,
                body: icmp.body.clone(),
            }),
        );
        self.send(now, &reply);
        true
    }

    /// Fills the Binding Authorization Data option of `mh` (it must be the
    /// last option) as RFC 6275 §6.2.7 says: an HMAC over the care-of
    /// address, the correspondent and the message with a zero checksum.
    pub fn authorise(&self, mh: &mut MhRepr, kbm: &[u8; 20], care_of: Ipv6Addr, cn: Ipv6Addr) {
        let zero = PseudoHeader::V6 {
            src: Ipv6Addr::UNSPECIFIED,
            dst: Ipv6Addr::UNSPECIFIED,
        };
        mh.options.push(MhOption::BindingAuthData([0; 12]));
        let mut bytes = Vec::new();
        mh.emit_vec(&mut bytes, &zero, &self.cp);
        bytes[4..6].fill(0);
        let data = &bytes[..bytes.len() - 12];
        let auth = rr::authenticator(kbm, care_of, cn, data);
        if let Some(MhOption::BindingAuthData(a)) = mh.options.last_mut() {
            *a = auth;
        }
    }
}

/// Checks the Binding Authorization Data of a received message.
pub(crate) fn authorised(rx: &Rx, kbm: &[u8; 20], care_of: Ipv6Addr, cn: Ipv6Addr) -> bool {
    let Some(mh) = rx.mh_bytes() else {
        return false;
    };
    let Some(split) = mh.len().checked_sub(12) else {
        return false;
    };
    let mut data = mh[..split].to_vec();
    if data.len() < 6 {
        return false;
    }
    data[4..6].fill(0);
    let mut auth = [0u8; 12];
    auth.copy_from_slice(&mh[split..]);
    rr::verify_authenticator(kbm, care_of, cn, &data, &auth)
}

pub(crate) fn is_signalling(repr: &PacketRepr) -> bool {
    match &repr.upper {
        UpperRepr::Mobility(_) => true,
        UpperRepr::Tunnel(inner) => is_signalling(inner),
        _ => false,
    }
}

/// The home address of a Home Address option, if the packet has one.
pub(crate) fn home_address_option(repr: &PacketRepr) -> Option<Ipv6Addr> {
    let IpRepr::V6 { ext, .. } = &repr.ip else {
        return None;
    };
    ext.iter().find_map(|e| match e {
        ExtHeaderRepr::DestOpts(d) => d.home_address(),
        _ => None,
    })
}

/// The home address of a type 2 routing header, if the packet has one.
pub(crate) fn type2_address(repr: &PacketRepr) -> Option<Ipv6Addr> {
    let IpRepr::V6 { ext, .. } = &repr.ip else {
        return None;
    };
    ext.iter().find_map(|e| match e {
        ExtHeaderRepr::Routing(RoutingRepr::Type2 { home_address, .. }) => Some(*home_address),
        _ => None,
    })
}

/// Where a header the Mobile IPv6 layer adds goes: after hop-by-hop and
/// routing headers, before everything else (RFC 6275 §6.3).
fn mobility_header_slot(ext: &[ExtHeaderRepr]) -> usize {
    ext.iter()
        .take_while(|e| matches!(e, ExtHeaderRepr::HopByHop(_) | ExtHeaderRepr::Routing(_)))
        .count()
}

/// Mobile node, route optimised: the care-of address as source and the
/// home address in a HAO.
pub(crate) fn add_home_address_option(repr: &mut PacketRepr, care_of: Ipv6Addr) {
    if let IpRepr::V6 { header, ext } = &mut repr.ip {
        let at = mobility_header_slot(ext);
        ext.insert(at, ExtHeaderRepr::home_address(header.src));
        header.src = care_of;
    }
}

/// Correspondent, route optimised: the care-of address as destination and
/// the home address in a type 2 routing header.
pub(crate) fn add_type2(repr: &mut PacketRepr, care_of: Ipv6Addr) {
    if let IpRepr::V6 { header, ext } = &mut repr.ip {
        let at = ext
            .iter()
            .take_while(|e| matches!(e, ExtHeaderRepr::HopByHop(_)))
            .count();
        ext.insert(at, ExtHeaderRepr::type2(header.dst));
        header.dst = care_of;
    }
}

/// What the stack sees of a route-optimised packet: the home address in
/// the IP header, no HAO and no type 2 routing header.
pub(crate) fn strip_mobility_headers(repr: &mut PacketRepr) {
    let IpRepr::V6 { header, ext } = &mut repr.ip else {
        return;
    };
    for e in ext.iter_mut() {
        match e {
            ExtHeaderRepr::DestOpts(d) => {
                if let Some(hoa) = d.home_address() {
                    header.src = hoa;
                    d.options
                        .retain(|o| !matches!(o, Ipv6OptionRepr::HomeAddress(_)));
                }
            }
            ExtHeaderRepr::Routing(RoutingRepr::Type2 { home_address, .. }) => {
                header.dst = *home_address;
            }
            _ => {}
        }
    }
    ext.retain(|e| match e {
        ExtHeaderRepr::DestOpts(d) => !d.options.is_empty(),
        ExtHeaderRepr::Routing(RoutingRepr::Type2 { .. }) => false,
        _ => true,
    });
}

/// IPv6-in-IPv6 (RFC 2473) around bytes we forward without parsing them.
fn encapsulate_bytes(src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> PacketRepr {
    let data = inner.to_vec();
    PacketRepr::ipv6(
        src,
        dst,
        vec![],
        UpperRepr::Raw {
            protocol: IpProtocol::Ipv6,
            data,
        },
    )
}
