//! The home agent (RFC 6275 §10): home registrations under ESP (RFC 3776,
//! RFC 4877), Duplicate Address Detection of a home address (with L, of
//! its link-local address too) before its first registration is accepted
//! (§10.3.1, status 134 when it is in use),
//! the binding cache, proxy Neighbor Discovery and interception of packets
//! for registered home addresses (§10.4.1), the bidirectional
//! IPv6-in-IPv6 tunnel, and the Home Address option checks every node
//! makes (§9.3.1: only from the registered care-of address).

use core::net::{IpAddr, Ipv6Addr};
use hashbrown::{HashMap, HashSet};

use super::cache::{check_seq, BindingCache, CacheEntry, Journal};
use super::core::{is_signalling, strip_mobility_headers, Core, Received, Rx};
use super::status::{seconds_until, BindingStatus};
use super::{
    lifetime_units, same_prefix64, unicast_routable, units_lifetime, Command, CommandError, Engine,
    Event, Iface, MacAddr, NodeDrop, NodeStats, NodeStatus, Persist, Transmit,
};
use crate::ike::{Ike, IkeConfig, Mobility};
use crate::ipsec::{AddressPair, Ipsec, Mode, Prefix, SaId};
use crate::nd::{Dad, Membership, NdEvent, NdIface};
use crate::time::{Duration, Instant};
use crate::wire::icmpv6::DESTINATION_UNREACHABLE;
use crate::wire::mh::{BaFlags, BuFlags, MhMessage, MhOption, MhRepr};
use crate::wire::{BaStatus, CodePoints, ExtHeaderRepr, IpRepr, PacketRepr, UpperRepr};

#[derive(Debug, Clone)]
pub struct HaConfig {
    pub address: Ipv6Addr,
    /// The home link's /64.
    pub home_prefix: Ipv6Addr,
    /// The home addresses this agent serves.
    pub mobile_nodes: Vec<Ipv6Addr>,
    /// The longest lifetime granted.
    pub max_lifetime: Duration,
    /// The interface on the home link.
    pub iface: u8,
    /// How its own address is checked on the home link (RFC 4862 DAD).
    pub dad: Dad,
    /// IKEv2 with the mobile nodes (RFC 4877), next to static keys. Its
    /// `proxy_policy` must hold the home prefix: the SAs for BU and BA
    /// have home-address selectors while IKE runs on a care-of address.
    pub ike: Option<IkeConfig>,
    /// A second address on the home link for the data plane, which IKE
    /// negotiates as the payload SA's tunnel end
    /// (draft-arora-ipsecme-ikev2-alt-tunnel-addresses).
    pub tunnel_address: Option<Ipv6Addr>,
    pub seed: u64,
    pub code_points: CodePoints,
}

impl HaConfig {
    pub fn new(address: Ipv6Addr, mobile_nodes: Vec<Ipv6Addr>, seed: u64) -> Self {
        HaConfig {
            address,
            home_prefix: address,
            mobile_nodes,
            max_lifetime: Duration::from_secs(3600),
            iface: 0,
            dad: Dad::Standard,
            ike: None,
            tunnel_address: None,
            seed,
            code_points: CodePoints::default(),
        }
    }
}

/// The fields of a BU.
struct Bu<'a> {
    seq: u16,
    flags: BuFlags,
    lifetime: u16,
    options: &'a [MhOption],
    /// The frame's source, when the BU came from the home link itself.
    home_mac: Option<MacAddr>,
}

/// A home registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HomeBinding {
    pub care_of: Ipv6Addr,
    pub seq: u16,
    pub expires: Instant,
    /// L was set: the node's link-local address is defended too
    /// ([`link_local_of`]).
    pub link_local: bool,
}

impl CacheEntry for HomeBinding {
    fn seq(&self) -> Option<u16> {
        Some(self.seq)
    }

    fn expires(&self) -> Instant {
        self.expires
    }
}

/// A first registration waiting for the DAD of its home address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pending {
    care_of: Ipv6Addr,
    seq: u16,
    /// Requested, in 4-second units.
    lifetime: u16,
    /// The BA carries K.
    k: bool,
    /// L: the link-local address is checked and defended too.
    link_local: bool,
    /// The DADs still running: the home address's, and the link-local
    /// address's with L.
    checking: u8,
}

/// The link-local address with the interface identifier of `home`, which
/// a BU with L asks the agent to defend as well (RFC 6275 §10.3.1).
pub fn link_local_of(home: Ipv6Addr) -> Ipv6Addr {
    Ipv6Addr::from((0xfe80u128 << 112) | (u128::from(home) & u128::from(u64::MAX)))
}

#[derive(Clone)]
pub struct Ha {
    cfg: HaConfig,
    /// `cfg.mobile_nodes`, for a lookup per BU.
    served: HashSet<Ipv6Addr>,
    core: Core,
    cache: BindingCache<HomeBinding>,
    pending: HashMap<Ipv6Addr, Pending>,
    /// Binding changes for the store, once [`Engine::restore`] was called.
    journal: Journal,
}

impl Ha {
    pub fn new(cfg: HaConfig, ipsec: Ipsec) -> Self {
        let core = Core::new(ipsec, cfg.ike.clone(), cfg.seed, cfg.code_points);
        Ha {
            served: cfg.mobile_nodes.iter().copied().collect(),
            cfg,
            core,
            cache: BindingCache::default(),
            pending: HashMap::new(),
            journal: Journal::default(),
        }
    }

    /// Home addresses whose first registration waits for DAD.
    pub fn checking(&self) -> impl Iterator<Item = Ipv6Addr> + '_ {
        self.pending.keys().copied()
    }

    pub fn binding(&self, home: Ipv6Addr) -> Option<&HomeBinding> {
        self.cache.get(home)
    }

    pub fn bindings(&self) -> usize {
        self.cache.len()
    }

    fn incoming(&mut self, now: Instant, iface: u8, src_mac: Option<MacAddr>, bytes: &[u8]) {
        let mut rx = match self.core.receive(now, iface, bytes) {
            Received::Packet(rx) => rx,
            // Intercepted for a registered home address: into the tunnel,
            // untouched but for the Hop Limit (RFC 6275 §10.4.1, §10.4.2).
            Received::Foreign(dst) => {
                match self.cache.get(dst).map(|b| b.care_of) {
                    // `receive` checked the IPv6 header: byte 7, the Hop
                    // Limit, is there.
                    Some(_) if bytes[7] <= 1 => {
                        let error = self.core.time_exceeded(now, self.cfg.address, bytes);
                        self.send_own(now, error);
                    }
                    Some(care_of) => {
                        self.core.stats.forwarded += 1;
                        let ends = (self.cfg.address, care_of);
                        let mut hop = bytes.to_vec();
                        hop[7] -= 1;
                        self.core.send_tunnelled_bytes(now, ends, &hop, false);
                    }
                    None => {
                        self.core.drop(NodeDrop::NotForUs);
                        self.link_local_unreachable(now, dst, bytes);
                    }
                }
                return;
            }
            Received::Nd | Received::Dropped => return,
        };
        let Some(h) = rx.header().copied() else {
            self.core.drop(NodeDrop::NotForUs);
            return;
        };
        if rx.tunnelled {
            // Out of RFC 4877's payload SA, whose selectors tied the inner
            // source to the mobile node: forwarded if it is registered,
            // unless it is for us.
            if self.cache.get(h.src).is_none() {
                self.core.drop(NodeDrop::TunnelSourceMismatch);
                return;
            }
            if h.dst != self.cfg.address {
                self.forward(now, &rx);
                return;
            }
        }
        let hao = rx.home_address_option();
        if !self.hao_verified(now, &rx, h.src, hao) {
            return;
        }
        // IKE on either of our addresses (after an R-MOBIKE switch).
        if self.core.ike_input(now, &rx) {
            return;
        }
        if h.dst != self.cfg.address {
            if !self.core.answer_echo(now, &rx) {
                self.core.drop(NodeDrop::NotForUs);
            }
            return;
        }
        match &rx.repr.upper {
            UpperRepr::Tunnel(inner) => {
                // Reverse tunnel: only from the registered care-of address
                // of the inner source (RFC 6275 §10.4.5).
                let inner_src = match &inner.ip {
                    IpRepr::V6 { header, .. } => Some(header.src),
                    IpRepr::V4(_) => None,
                };
                let registered = inner_src
                    .and_then(|s| self.cache.get(s))
                    .is_some_and(|b| b.care_of == h.src);
                if !registered {
                    self.core.drop(NodeDrop::TunnelSourceMismatch);
                    self.lost_binding(now, inner_src, h.src);
                    return;
                }
                self.forward(now, &rx);
            }
            UpperRepr::Mobility(mh) => match &mh.message {
                MhMessage::BindingUpdate {
                    seq,
                    flags,
                    lifetime,
                } => {
                    let (seq, flags, lifetime) = (*seq, *flags, *lifetime);
                    // A mobile node come home is answered at the MAC its BU
                    // came from (RFC 6275 §10.3.2): the home address is
                    // still ours to defend until this BU is processed.
                    let from_home_link = iface == self.cfg.iface
                        && rx.home_address_option().is_none()
                        && same_prefix64(h.src, self.cfg.home_prefix);
                    let bu = Bu {
                        seq,
                        flags,
                        lifetime,
                        options: &mh.options,
                        home_mac: src_mac.filter(|_| from_home_link),
                    };
                    self.binding_update(now, &rx, h.src, bu);
                }
                MhMessage::Unknown { .. } => {
                    self.core.drop(NodeDrop::UnknownMhType);
                    let hao = rx.home_address_option();
                    self.core
                        .binding_error(now, self.cfg.address, h.src, hao, 2);
                }
                _ => self.core.drop(NodeDrop::Unsolicited),
            },
            _ if self.core.ike_input(now, &rx) => {}
            _ if hao.is_some() => {
                strip_mobility_headers(&mut rx.repr);
                self.core.stats.delivered_route_optimised += 1;
                self.core.deliver(rx.repr.to_bytes(&self.cfg.code_points));
            }
            _ => {
                self.core.stats.delivered_direct += 1;
                self.core.deliver(rx.bytes);
            }
        }
    }

    /// RFC 6275 §10.4.2: what is intercepted for the link-local address
    /// of a node registered with L is not tunnelled; it is dropped with a
    /// Destination Unreachable, code 3 (address unreachable), to its
    /// source.
    fn link_local_unreachable(&mut self, now: Instant, dst: Ipv6Addr, bytes: &[u8]) {
        let defended = dst.is_unicast_link_local()
            && self
                .cache
                .iter()
                .any(|(h, b)| b.link_local && link_local_of(h) == dst);
        if !defended {
            return;
        }
        let Ok(src) = crate::wire::Ipv6Packet::new_checked(bytes).map(|p| p.src_addr()) else {
            return;
        };
        let ends = (self.cfg.address, src);
        let error = self
            .core
            .icmp_error(now, ends, (DESTINATION_UNREACHABLE, 3), 0, bytes);
        self.send_own(now, error);
    }

    /// Forwards the packet out of the tunnel `rx` came through as it came
    /// but for its Hop Limit, one lower (RFC 8200 §3, RFC 2473 §3.1), or
    /// drops it with a Time Exceeded if that would be 0.
    fn forward(&mut self, now: Instant, rx: &Rx) {
        let Some((
            inner @ PacketRepr {
                ip: IpRepr::V6 { header, .. },
                ..
            },
            packet,
        )) = rx.inner()
        else {
            return self.core.drop(NodeDrop::NoRoute);
        };
        if header.hop_limit <= 1 {
            let error = self.core.time_exceeded(now, self.cfg.address, packet);
            self.send_own(now, error);
            return;
        }
        self.core.stats.forwarded += 1;
        self.core.send_forwarded(now, packet, is_signalling(inner));
    }

    /// Sends a packet of our own: through the tunnel to a home address
    /// registered here (RFC 6275 §10.4.2: the agent is on the home link's
    /// path to it like anybody else), else as it is.
    fn send_own(&mut self, now: Instant, repr: Option<PacketRepr>) {
        let Some(repr) = repr else {
            return;
        };
        let dst = match &repr.ip {
            IpRepr::V6 { header, .. } => header.dst,
            IpRepr::V4(_) => Ipv6Addr::UNSPECIFIED,
        };
        match self.cache.get(dst).map(|b| b.care_of) {
            Some(care_of) => {
                self.core.stats.sent_tunnelled += 1;
                let ends = (self.cfg.address, care_of);
                self.core.send_tunnelled(now, ends, &repr);
            }
            None => {
                self.core.stats.sent_direct += 1;
                self.core.send(now, &repr);
            }
        }
    }

    /// RFC 6275 §9.3.1, which binds every node that takes a Home Address
    /// option: a home address that is not unicast routable is silently
    /// discarded (§9.5.1); past that, a Mobility Header goes to its own
    /// checks, and anything else passes only from the care-of address
    /// registered for that home address, or is dropped with a Binding
    /// Error status 1 to its source.
    fn hao_verified(
        &mut self,
        now: Instant,
        rx: &Rx,
        src: Ipv6Addr,
        hao: Option<Ipv6Addr>,
    ) -> bool {
        let Some(home) = hao else {
            return true;
        };
        if !unicast_routable(home) {
            self.core.drop(NodeDrop::HaoUnverified);
            return false;
        }
        let registered = self.cache.get(home).is_some_and(|b| b.care_of == src);
        if registered || matches!(rx.repr.upper, UpperRepr::Mobility(_)) {
            return true;
        }
        self.core.drop(NodeDrop::HaoUnverified);
        self.core.binding_error(now, self.cfg.address, src, hao, 1);
        false
    }

    fn binding_update(&mut self, now: Instant, rx: &Rx, src: Ipv6Addr, bu: Bu<'_>) {
        let Bu {
            seq,
            flags,
            lifetime,
            options,
            home_mac,
        } = bu;
        // At home the BU comes from the home address itself, without a HAO.
        let home = rx.home_address_option().unwrap_or(src);
        // REQ MIP-HA-IPSEC: home registrations only under ESP (RFC 3776
        // §3.1); the SA's selectors already tied it to this home address.
        if rx.sa.is_none() {
            self.core.drop(NodeDrop::Unprotected);
            return;
        }
        let care_of = options
            .iter()
            .find_map(|o| match o {
                MhOption::AlternateCareOfAddress(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(src);
        // RFC 6275 §9.5.1: a care-of address to register must be unicast
        // routable, or the BU is silently discarded.
        if care_of != home && !unicast_routable(care_of) {
            self.core.drop(NodeDrop::AlternateCoaRefused);
            return;
        }
        let reply = (home, src, seq);
        let registered = self.cache.get(home).is_some();
        let refusal = if !flags.has(BuFlags::H) {
            // We are no correspondent; a node registered here cannot turn its
            // registration into a correspondent one (§9.5.1).
            Some(if registered {
                (
                    NodeDrop::RegistrationTypeChange,
                    BaStatus::RegistrationTypeChangeDisallowed,
                )
            } else {
                (
                    NodeDrop::NotOurMobileNode,
                    BaStatus::AdministrativelyProhibited,
                )
            })
        } else if !same_prefix64(home, self.cfg.home_prefix) {
            Some((NodeDrop::NotHomeSubnet, BaStatus::NotHomeSubnet))
        } else if !self.served.contains(&home) {
            Some((
                NodeDrop::NotOurMobileNode,
                BaStatus::NotHomeAgentForThisMobileNode,
            ))
        } else {
            None
        };
        if let Some((drop, status)) = refusal {
            self.core.drop(drop);
            self.ack(now, reply, status, 0, false);
            return;
        }
        // RFC 6275 §10.3.1: K when both sides' IKE SA survives movement
        // (RFC 4877 §4.5): the one the BU's SA belongs to follows the
        // care-of address by MOBIKE or addrmgmt.
        let k = flags.has(BuFlags::K) && rx.sa.is_some_and(|sa| self.ike_follows(sa));
        // A first registration still in DAD holds its sequence number too.
        let last = self
            .cache
            .last_seq(home)
            .or_else(|| self.pending.get(&home).map(|p| p.seq));
        if let Err(last) = check_seq(seq, last) {
            self.core.drop(NodeDrop::SequenceOutOfWindow);
            self.ack(
                now,
                (home, src, last),
                BaStatus::SequenceNumberOutOfWindow,
                0,
                k,
            );
            return;
        }
        if lifetime == 0 || care_of == home {
            // RFC 6275 §10.3.2: nothing to deregister is a refusal (133);
            // a registration still in DAD is withdrawn.
            if self.pending.remove(&home).is_none() && !registered {
                self.core.drop(NodeDrop::NotRegistered);
                self.ack(now, reply, BaStatus::NotHomeAgentForThisMobileNode, 0, k);
                return;
            }
            if let Some(nd) = self.core.link_mut(self.cfg.iface) {
                nd.remove_proxy(home);
                nd.remove_proxy(link_local_of(home));
                if let Some(mac) = home_mac {
                    nd.learn(now, home, mac);
                }
            }
            self.cache.deregister(home, &mut self.core);
            self.journal.record(Persist::Unbound { home });
            self.ack(now, (home, care_of, seq), BaStatus::Accepted, 0, k);
            return;
        }
        let link_local = flags.has(BuFlags::L);
        let mut request = Pending {
            care_of,
            seq,
            lifetime,
            k,
            link_local,
            checking: 1 + u8::from(link_local),
        };
        if !registered {
            // RFC 6275 §10.3.1: DAD for the home address first (and the
            // link-local address with L); the BA waits for it (a
            // retransmission only updates what it acks).
            if let Some(old) = self.pending.get(&home) {
                request.link_local = old.link_local;
                request.checking = old.checking;
            }
            let checking = self.pending.insert(home, request).is_some();
            if checking {
                self.core.stats.held_for_dad += 1;
            } else {
                match self.core.link_mut(self.cfg.iface) {
                    Some(nd) => {
                        nd.add_proxy(now, home, true);
                        if link_local {
                            nd.add_proxy(now, link_local_of(home), true);
                        }
                    }
                    None => {
                        self.pending.remove(&home);
                        self.core.drop(NodeDrop::NoRoute);
                    }
                }
            }
            return;
        }
        self.register(now, home, request);
    }

    /// A reverse-tunnelled packet from `care_of` for a home address we
    /// serve and hold nothing for: a binding we lost (a restart). RFC 6275
    /// §10.4.5 only drops it; we also send Binding Error status 1 (unknown
    /// binding, §6.1.9), rate-limited as §9.3.3 asks, which has the mobile
    /// node register again (REQ MIP-BASE, issue 14.4).
    fn lost_binding(&mut self, now: Instant, home: Option<Ipv6Addr>, care_of: Ipv6Addr) {
        let lost = home.filter(|a| {
            self.served.contains(a) && self.cache.get(*a).is_none() && !self.pending.contains_key(a)
        });
        if lost.is_some() {
            self.core
                .binding_error(now, self.cfg.address, care_of, lost, 1);
        }
    }

    /// Asks every mobile node keyed by IKE to move its IKE SA and the SAs
    /// that follow it to our address `to` (R-MOBIKE SWITCH_TO_IP_ADDRESS:
    /// maintenance, another interface); returns how many were asked. Only
    /// those that sent 'R' can be (REQ RM-4.2a).
    pub fn switch_mobile_nodes(&mut self, now: Instant, to: Ipv6Addr) -> usize {
        let Some(ike) = self.core.ike.as_mut() else {
            return 0;
        };
        let sas: Vec<_> = ike.sa_ids().collect();
        let asked = sas
            .into_iter()
            .filter(|sa| ike.request_switch(now, *sa, IpAddr::V6(to)).is_ok())
            .count();
        self.pump(now);
        asked
    }

    /// Whether the IKE SA that negotiated `sa` follows address changes.
    fn ike_follows(&self, sa: SaId) -> bool {
        let Some(ike) = self.core.ike.as_ref() else {
            return false;
        };
        let addrmgmt = ike.config().mobility == Mobility::AddrMgmt;
        ike.sa_ids()
            .filter_map(|id| ike.sa(id))
            .find(|s| s.children.iter().any(|c| c.inbound == sa))
            .is_some_and(|s| s.mobike || addrmgmt)
    }

    /// Accepts a home registration and acknowledges it.
    fn register(&mut self, now: Instant, home: Ipv6Addr, p: Pending) {
        let granted = units_lifetime(p.lifetime).min(self.cfg.max_lifetime);
        let expires = now + granted;
        // A re-registration may set or clear L (its DAD is for a first
        // registration only).
        if let Some(nd) = self.core.link_mut(self.cfg.iface) {
            let ll = link_local_of(home);
            if p.link_local {
                nd.add_proxy(now, ll, false);
            } else {
                nd.remove_proxy(ll);
            }
        }
        self.cache.insert(
            home,
            HomeBinding {
                care_of: p.care_of,
                seq: p.seq,
                expires,
                link_local: p.link_local,
            },
        );
        // Ahead of the BA: a binding acknowledged is a binding stored.
        self.journal.record(Persist::Bound {
            home,
            care_of: p.care_of,
            seq: p.seq,
            expires,
        });
        self.core.event(Event::BindingCached {
            home,
            care_of: p.care_of,
            lifetime: granted,
        });
        self.tunnel_to(home, p.care_of);
        self.ack(
            now,
            (home, p.care_of, p.seq),
            BaStatus::Accepted,
            lifetime_units(granted),
            p.k,
        );
    }

    /// The tunnel-mode SAs for `home` end at the care-of address it just
    /// registered: the BU, authenticated under IPsec, says where the node
    /// is, before IKE has moved its SAs (RFC 4877 lets the binding move
    /// the tunnel; keys, sequence numbers and replay windows stay).
    fn tunnel_to(&mut self, home: Ipv6Addr, care_of: Ipv6Addr) {
        let sad = &mut self.core.ipsec.sad;
        let hoa = Prefix::host(IpAddr::V6(home));
        let stale: Vec<_> = sad
            .by_remote(hoa)
            .filter(|(_, s)| s.mode() == Mode::Tunnel)
            .filter(|(_, s)| s.addresses().peer != IpAddr::V6(care_of))
            .map(|(id, s)| (id, s.addresses().local))
            .collect();
        for (id, local) in stale {
            let _ = sad.update_addresses(
                id,
                AddressPair {
                    local,
                    peer: IpAddr::V6(care_of),
                },
            );
        }
    }

    /// The DAD of a first registration's home address (or, with L, of its
    /// link-local address) is over: the registration is accepted when
    /// both are unique, refused at the first that is not.
    fn checked(&mut self, now: Instant, address: Ipv6Addr, unique: bool) {
        let home = if self.pending.contains_key(&address) {
            Some(address)
        } else {
            self.pending
                .iter()
                .find(|(h, p)| p.link_local && link_local_of(**h) == address)
                .map(|(h, _)| *h)
        };
        let Some((home, mut p)) = home.and_then(|h| self.pending.remove(&h).map(|p| (h, p))) else {
            if let Some(nd) = self.core.link_mut(self.cfg.iface) {
                nd.remove_proxy(address);
            }
            return;
        };
        p.checking = p.checking.saturating_sub(1);
        if unique && p.checking > 0 {
            self.pending.insert(home, p);
        } else if unique {
            self.register(now, home, p);
        } else {
            if let Some(nd) = self.core.link_mut(self.cfg.iface) {
                nd.remove_proxy(home);
                nd.remove_proxy(link_local_of(home));
            }
            self.core.drop(NodeDrop::DuplicateHomeAddress);
            self.ack(
                now,
                (home, p.care_of, p.seq),
                BaStatus::DuplicateAddressDetectionFailed,
                0,
                p.k,
            );
        }
    }

    /// What every `handle_*` ends with: ND's events, IKE's, and IKE's
    /// datagrams.
    fn pump(&mut self, now: Instant) {
        while let Some((iface, event)) = self.core.poll_nd() {
            if let NdEvent::ProxyChecked { address, unique } = event {
                self.checked(now, address, unique);
            }
            if !matches!(event, NdEvent::RouterAdvert { .. }) {
                self.core.event(Event::Nd { iface, event });
            }
        }
        let _ = self.core.pump_ike(now);
        while let Some(p) = self.core.poll_ike_packet() {
            self.core.send(now, &p);
        }
    }

    /// A BA to `to` (through a type 2 routing header unless it is the home
    /// address), under whatever ESP the SPD asks for.
    fn ack(
        &mut self,
        now: Instant,
        (home, to, seq): (Ipv6Addr, Ipv6Addr, u16),
        status: BaStatus,
        lifetime: u16,
        k: bool,
    ) {
        let mh = MhRepr {
            message: MhMessage::BindingAck {
                status,
                flags: BaFlags(if k { BaFlags::K } else { 0 }),
                seq,
                lifetime,
            },
            options: vec![],
        };
        let ext = if to == home {
            vec![]
        } else {
            vec![ExtHeaderRepr::type2(home)]
        };
        self.core.send_mh(now, self.cfg.address, to, ext, mh);
    }
}

impl Engine for Ha {
    fn handle_packet(
        &mut self,
        now: Instant,
        iface: Iface,
        src_mac: Option<MacAddr>,
        packet: &[u8],
    ) {
        match iface {
            Iface::Link(i) => self.incoming(now, i, src_mac, packet),
            Iface::Stack => {
                let repr = self.core.parse_local(packet);
                self.send_own(now, repr);
            }
        }
        self.pump(now);
    }

    fn handle_command(&mut self, now: Instant, command: Command) -> Result<(), CommandError> {
        match command {
            Command::LinkUp { iface, mac } => {
                let home = iface == self.cfg.iface;
                let nd = self.core.link_up(now, iface, mac, self.cfg.dad)?;
                if home {
                    nd.add_address(now, self.cfg.address, self.cfg.dad);
                    if let Some(a) = self.cfg.tunnel_address {
                        nd.add_address(now, a, self.cfg.dad);
                    }
                    nd.add_on_link(self.cfg.home_prefix, 64);
                    // Still registered home addresses are defended again,
                    // and those a first registration waits for are checked
                    // again: the check went with the link (found by
                    // engine_ha: the BA waited for ever).
                    for (a, b) in self.cache.iter() {
                        nd.add_proxy(now, a, false);
                        if b.link_local {
                            nd.add_proxy(now, link_local_of(a), false);
                        }
                    }
                    for (a, p) in &mut self.pending {
                        nd.add_proxy(now, *a, true);
                        if p.link_local {
                            nd.add_proxy(now, link_local_of(*a), true);
                        }
                        p.checking = 1 + u8::from(p.link_local);
                    }
                }
                nd.solicit_routers(now);
                // MOBIKE announces them (ADDITIONAL_*), so that a switch to
                // the second is one the mobile node follows.
                if let (true, Some(ike)) = (home, self.core.ike.as_mut()) {
                    let ours = [Some(self.cfg.address), self.cfg.tunnel_address];
                    let ours: Vec<IpAddr> = ours.into_iter().flatten().map(IpAddr::V6).collect();
                    ike.set_local_addresses(now, &ours);
                }
            }
            Command::LinkDown(iface) => self.core.link_down(iface)?,
        }
        self.pump(now);
        Ok(())
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.pump(now);
        for home in self.cache.expire(now, &mut self.core) {
            if let Some(nd) = self.core.link_mut(self.cfg.iface) {
                nd.remove_proxy(home);
                nd.remove_proxy(link_local_of(home));
            }
            self.journal.record(Persist::Unbound { home });
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    fn poll_membership(&mut self) -> Option<(u8, Membership)> {
        self.core.poll_membership()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.core.earliest(self.cache.next_expiry())
    }

    fn stats(&self) -> &NodeStats {
        &self.core.stats
    }

    fn interface(&self, iface: u8) -> Option<&NdIface> {
        self.core.link(iface)
    }

    fn status(&self, now: Instant) -> NodeStatus {
        let mut s = self.core.status("ha");
        let bound = self.cache.iter().map(|(home, b)| BindingStatus {
            home,
            care_of: Some(b.care_of),
            seq: Some(b.seq),
            expires_in: seconds_until(now, b.expires),
            how: "ipsec",
        });
        let checking = self.pending.iter().map(|(home, p)| BindingStatus {
            home: *home,
            care_of: Some(p.care_of),
            seq: Some(p.seq),
            expires_in: 0,
            how: "dad",
        });
        s.bindings = bound.chain(checking).collect();
        s.bindings.sort_by_key(|b| b.home);
        s
    }

    fn ipsec(&self) -> &Ipsec {
        &self.core.ipsec
    }

    fn ike(&self) -> Option<&Ike> {
        self.core.ike.as_ref()
    }

    fn ipsec_mut(&mut self) -> &mut Ipsec {
        &mut self.core.ipsec
    }

    /// The bindings come back as they were acknowledged (the tunnel SAs
    /// pointed at their care-of addresses, the home addresses defended on
    /// the home link), with the outbound sequence numbers of the static
    /// SAs; a binding that expired meanwhile, or for a node no longer
    /// served, is reported gone.
    fn restore(&mut self, now: Instant, saved: &[Persist]) -> Result<(), CommandError> {
        let served = &self.served;
        let bound = self
            .journal
            .restore(now, saved, &mut self.core.ipsec, |h| served.contains(&h));
        for (home, care_of, seq, expires) in bound {
            // The store does not keep L: the link-local address is no
            // longer defended after a restart.
            let b = HomeBinding {
                care_of,
                seq,
                expires,
                link_local: false,
            };
            self.cache.insert(home, b);
            self.tunnel_to(home, care_of);
            if let Some(nd) = self.core.link_mut(self.cfg.iface) {
                nd.add_proxy(now, home, false);
            }
            self.core.event(Event::BindingCached {
                home,
                care_of,
                lifetime: expires - now,
            });
        }
        Ok(())
    }

    fn poll_persist(&mut self) -> Option<Persist> {
        self.journal.poll(&mut self.core.ipsec)
    }
}
