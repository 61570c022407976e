//! The mobile node (RFC 6275 §11): movement detection from Neighbor
//! Discovery on any number of interfaces (carrier, Router Advertisements,
//! routers found unreachable), a care-of address per visited link with
//! Optimistic DAD, the binding update list, home registration under ESP,
//! and route optimisation per correspondent, either by a BU under a
//! suitable SA (draft-dupont-mipv6-cn-ipsec §4) or by return routability
//! (RFC 6275 §5.2), with the reverse tunnel meanwhile.
//!
//! The newest attachment wins: when an interface finds a router, the node
//! moves there; when the interface it uses loses carrier or its router,
//! it falls back to the newest other one (make-before-break with two
//! interfaces), or has no link.

use core::net::{IpAddr, Ipv6Addr};
use std::collections::BTreeMap;

use rand_core::RngCore;

use super::core::{
    add_home_address_option, authorised, is_signalling, type2_address, Core, Received, Rx,
};
use super::rr::{self, MAX_RR_BINDING_LIFETIME};
use super::status::UpdateStatus;
use super::{
    lifetime_units, same_prefix64, slaac, units_lifetime, Command, CommandError, Engine, Event,
    Iface, MacAddr, NodeDrop, NodeStats, NodeStatus, Transmit, INITIAL_BINDACK_TIMEOUT,
    INITIAL_BINDACK_TIMEOUT_FIRST_REG, MAX_BINDACK_TIMEOUT,
};
use crate::ike::{CloseReason, Ike, IkeConfig, IkeEvent, IkeSa, IkeSaId, IkeState, Mobility};
use crate::ipsec::{AddressPair, Ipsec, Mode, Path};
use crate::nd::{AddrState, Dad, Membership, NdEvent, NdIface};
use crate::time::{earlier, Duration, Instant};
use crate::wire::icmpv6::PARAMETER_PROBLEM;
use crate::wire::mh::{BaFlags, BuFlags, MhMessage, MhOption, MhRepr};
use crate::wire::nd::RouterAdvert;
use crate::wire::{
    BaStatus, CodePoints, ExtHeaderRepr, IpProtocol, IpRepr, PacketRepr, RoutingRepr, UpperRepr,
};

/// How the mobile node talks to one correspondent while away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteOptimisation {
    /// A BU under a suitable SA (draft-dupont-mipv6-cn-ipsec §4).
    Ipsec,
    /// Return routability, then a BU with Kbm (RFC 6275 §5.2).
    ReturnRoutability,
    /// No binding: packets to the correspondent carry a HAO under a
    /// suitable SA, answers come through the home agent (REQ CN-3.3).
    Triangular,
    /// Everything through the home agent's tunnel.
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Correspondent {
    pub address: Ipv6Addr,
    pub mode: RouteOptimisation,
}

#[derive(Debug, Clone)]
pub struct MnConfig {
    pub home_address: Ipv6Addr,
    pub home_agent: Ipv6Addr,
    /// The low 64 bits of every care-of address.
    pub interface_id: u64,
    pub correspondents: Vec<Correspondent>,
    /// Requested from the home agent.
    pub home_lifetime: Duration,
    /// Requested from correspondents.
    pub correspondent_lifetime: Duration,
    /// IKEv2 with the home agent (RFC 4877) and correspondents
    /// (draft-dupont-mipv6-cn-ipsec §5), next to static keys.
    pub ike: Option<IkeConfig>,
    pub seed: u64,
    pub code_points: CodePoints,
}

impl MnConfig {
    pub fn new(home_address: Ipv6Addr, home_agent: Ipv6Addr, seed: u64) -> Self {
        MnConfig {
            home_address,
            home_agent,
            interface_id: u128::from(home_address) as u64,
            correspondents: vec![],
            home_lifetime: Duration::from_secs(600),
            correspondent_lifetime: MAX_RR_BINDING_LIFETIME,
            ike: None,
            seed,
            code_points: CodePoints::default(),
        }
    }
}

/// Where the mobile node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Detached,
    /// On its home link, through this interface.
    Home(u8),
    Away {
        iface: u8,
        care_of: Ipv6Addr,
    },
}

/// An interface that found a default router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attachment {
    /// The router's link-local address.
    pub router: Ipv6Addr,
    /// The /64 the node configured from its RA.
    pub prefix: Ipv6Addr,
    /// `None` on the home link.
    pub care_of: Option<Ipv6Addr>,
    /// Higher is newer.
    order: u64,
}

/// Return routability in progress: the cookies we sent, the tokens we got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ReturnRoutability {
    home_cookie: u64,
    care_of_cookie: u64,
    home: Option<(u16, u64)>,
    care_of: Option<(u16, u64)>,
}

/// The fields of a BA.
struct Ba<'a> {
    status: u8,
    /// Key Management Mobility Capability (RFC 6275 §6.1.8).
    k: bool,
    seq: u16,
    lifetime: u16,
    options: &'a [MhOption],
}

/// What a binding update list entry waits for, with its timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BulState {
    /// Nothing; a BU for the same care-of address goes at `refresh`.
    Idle { refresh: Option<Instant> },
    /// A BU is due once IKE has keyed BU and BA with the peer.
    AwaitingKeys,
    /// A BU, or HoTI and CoTI, went and is not answered yet; it goes
    /// again at `retransmit` (`None`: the node had no address to send
    /// from when it was due).
    AwaitingReply { retransmit: Option<Instant> },
}

/// What the peer holds for the mobile node, as far as the node knows.
/// Apart from [`BulState`]: a binding stays in use while it is refreshed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Registration {
    Unregistered,
    /// A binding, but not known to be for `care_of`: made before a move,
    /// or disowned by a Binding Error. Coming home deregisters it.
    Stale,
    /// A binding for `care_of`.
    Bound,
}

/// One binding update list entry (RFC 6275 §11.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulEntry {
    /// `None` for the home agent.
    pub mode: Option<RouteOptimisation>,
    /// The last sequence number sent.
    pub seq: u16,
    /// The care-of address the last BU asked for (the home address to
    /// deregister).
    pub care_of: Ipv6Addr,
    state: BulState,
    registration: Registration,
    backoff: Duration,
    /// The last return routability run; replies to it count until the next.
    rr: Option<ReturnRoutability>,
    /// Kbm of the last RR BU, to check the BA.
    kbm: Option<[u8; 20]>,
    /// Annex A1 cookie to echo in the next BU.
    cookie: Option<Vec<u8>>,
    /// The IKE peer configured at its address.
    ike_peer: Option<String>,
    /// When the last BU went.
    sent: Instant,
    /// When the binding the peer acknowledged ends (RFC 6275 §11.1: the
    /// granted lifetime from the BU).
    expires: Option<Instant>,
    /// Until when the correspondent is taken not to do our signalling
    /// (Binding Error status 2, RFC 6275 §11.3.6; an ICMPv6 Parameter
    /// Problem, §11.3.5): no BUs or tests to it meanwhile.
    refused: Option<Instant>,
}

#[derive(Clone)]
pub struct Mn {
    cfg: MnConfig,
    core: Core,
    location: Location,
    attachments: BTreeMap<u8, Attachment>,
    attached: u64,
    bul: BTreeMap<Ipv6Addr, BulEntry>,
    /// The IKE SA started with each peer.
    ike_sas: BTreeMap<Ipv6Addr, IkeSaId>,
}

impl Mn {
    pub fn new(cfg: MnConfig, ipsec: Ipsec) -> Self {
        let core = Core::new(ipsec, cfg.ike.clone(), cfg.seed, cfg.code_points);
        let mut bul = BTreeMap::new();
        bul.insert(cfg.home_agent, BulEntry::new(None, cfg.home_address));
        for c in &cfg.correspondents {
            bul.insert(c.address, BulEntry::new(Some(c.mode), cfg.home_address));
        }
        for (addr, e) in bul.iter_mut() {
            e.ike_peer = cfg.ike.as_ref().and_then(|ike| {
                ike.peers
                    .iter()
                    .find(|p| p.addresses.iter().any(|a| a.ip() == IpAddr::V6(*addr)))
                    .map(|p| p.name.clone())
            });
        }
        Mn {
            cfg,
            core,
            location: Location::Detached,
            attachments: BTreeMap::new(),
            attached: 0,
            bul,
            ike_sas: BTreeMap::new(),
        }
    }

    pub fn location(&self) -> Location {
        self.location
    }

    pub fn attachments(&self) -> impl Iterator<Item = (u8, &Attachment)> + '_ {
        self.attachments.iter().map(|(i, a)| (*i, a))
    }

    pub fn entry(&self, peer: Ipv6Addr) -> Option<&BulEntry> {
        self.bul.get(&peer)
    }

    fn home(&self) -> Ipv6Addr {
        self.cfg.home_address
    }

    /// The node's current address on the link.
    fn local(&self) -> Option<Ipv6Addr> {
        match self.location {
            Location::Detached => None,
            Location::Home(_) => Some(self.home()),
            Location::Away { care_of, .. } => Some(care_of),
        }
    }

    fn at_home(&self) -> bool {
        matches!(self.location, Location::Home(_))
    }

    /// Where an attachment puts the node.
    fn location_of(&self, iface: u8) -> Location {
        match self.attachments.get(&iface) {
            None => Location::Detached,
            Some(Attachment { care_of: None, .. }) => Location::Home(iface),
            Some(Attachment {
                care_of: Some(c), ..
            }) => Location::Away { iface, care_of: *c },
        }
    }

    /// The newest attachment, after the one in use went away.
    fn fall_back(&mut self, now: Instant) {
        let best = self
            .attachments
            .iter()
            .max_by_key(|(_, a)| a.order)
            .map(|(i, _)| *i);
        let to = best.map_or(Location::Detached, |i| self.location_of(i));
        self.move_to(now, to);
    }

    fn uses(&self, iface: u8) -> bool {
        match self.location {
            Location::Home(i) | Location::Away { iface: i, .. } => i == iface,
            Location::Detached => false,
        }
    }

    /// A Router Advertisement on `iface`: a new router or prefix there is a
    /// new attachment, and the node moves to it (RFC 6275 §11.5.1).
    fn router_advert(&mut self, now: Instant, iface: u8, router: Ipv6Addr, ra: &RouterAdvert) {
        if ra.router_lifetime == 0 {
            return;
        }
        let Some(prefix) = ra
            .prefixes
            .iter()
            .find(|p| p.autonomous && p.prefix_len == 64 && p.valid_lifetime > 0)
            .map(|p| p.prefix)
        else {
            return;
        };
        if let Some(a) = self.attachments.get(&iface) {
            if a.router == router && same_prefix64(a.prefix, prefix) {
                return;
            }
        }
        self.detach(iface);
        let care_of =
            (!same_prefix64(prefix, self.home())).then(|| slaac(prefix, self.cfg.interface_id));
        if let (Some(c), Some(nd)) = (care_of, self.core.link_mut(iface)) {
            // RFC 4429: the care-of address is used while DAD runs.
            nd.add_address(now, c, Dad::Optimistic);
        }
        self.attached += 1;
        self.attachments.insert(
            iface,
            Attachment {
                router,
                prefix,
                care_of,
                order: self.attached,
            },
        );
        let to = self.location_of(iface);
        self.move_to(now, to);
    }

    /// Forgets what `iface` was attached to, and its care-of address.
    fn detach(&mut self, iface: u8) {
        if let Some(Attachment {
            care_of: Some(c), ..
        }) = self.attachments.remove(&iface)
        {
            if let Some(nd) = self.core.link_mut(iface) {
                nd.remove_address(c);
            }
        }
    }

    fn on_nd(&mut self, now: Instant, iface: u8, event: NdEvent) {
        if let NdEvent::RouterAdvert { router, advert } = &event {
            self.router_advert(now, iface, *router, advert);
            return;
        }
        // The cause goes in the trace before what it causes.
        self.core.event(Event::Nd {
            iface,
            event: event.clone(),
        });
        match &event {
            // RFC 6275 §11.5.1: an unreachable default router means the
            // node may have moved: look for routers again.
            NdEvent::RouterLost(r)
                if self.attachments.get(&iface).is_some_and(|a| a.router == *r) =>
            {
                self.detach(iface);
                if let Some(nd) = self.core.link_mut(iface) {
                    nd.solicit_routers(now);
                }
                if self.uses(iface) {
                    self.fall_back(now);
                }
            }
            // RFC 4862 §5.4.5: not that address; another identifier.
            NdEvent::AddressDuplicate(a) => {
                let taken = self
                    .attachments
                    .get(&iface)
                    .filter(|x| x.care_of == Some(*a))
                    .map(|x| x.prefix);
                if let Some(prefix) = taken {
                    let fresh = slaac(prefix, self.core.rng.next_u64() & !0x0200_0000_0000_0000);
                    if let Some(nd) = self.core.link_mut(iface) {
                        nd.add_address(now, fresh, Dad::Optimistic);
                    }
                    if let Some(x) = self.attachments.get_mut(&iface) {
                        x.care_of = Some(fresh);
                    }
                    if self.uses(iface) {
                        self.move_to(
                            now,
                            Location::Away {
                                iface,
                                care_of: fresh,
                            },
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// The IKE peer that keys BU/BA with `addr`, if any.
    fn ike_peer(&self, addr: Ipv6Addr) -> Option<String> {
        self.bul.get(&addr)?.ike_peer.clone()
    }

    /// Starts IKE with `peer`, unless an SA with it exists or is on its
    /// way, or it is no IKE peer.
    fn start_ike(&mut self, now: Instant, peer: Ipv6Addr) {
        let Some(name) = self.ike_peer(peer) else {
            return;
        };
        let Some(ike) = self.core.ike.as_mut() else {
            return;
        };
        if self
            .ike_sas
            .get(&peer)
            .is_some_and(|sa| ike.sa(*sa).is_some())
        {
            return;
        }
        if let Ok(sa) = ike.initiate(now, &name) {
            self.ike_sas.insert(peer, sa);
        }
    }

    /// IKE learns the node's address at every move: the care-of address,
    /// which the SA with the home agent follows (RFC 4877), or the home
    /// address at home. SAs with correspondents stay on the home address,
    /// pinned in their peers' configuration (REQ CN-5.1).
    fn ike_moved(&mut self, now: Instant) {
        let addresses = match self.location {
            Location::Detached => vec![],
            Location::Home(_) => vec![IpAddr::V6(self.home())],
            Location::Away { care_of, .. } => vec![IpAddr::V6(care_of)],
        };
        let Some(ike) = self.core.ike.as_mut() else {
            return;
        };
        // The payload SA sends from the new address at once: one it lost
        // reaches nobody, and packets from it would only tell the home
        // agent's data plane to move the SA back there (AM-D.1).
        if let Some(&current) = addresses.first() {
            let sad = &mut self.core.ipsec.sad;
            let stale: Vec<_> = sad
                .iter()
                .filter(|(_, s)| s.mode() == Mode::Tunnel && s.addresses().local != current)
                .map(|(id, s)| (id, s.addresses().peer))
                .collect();
            for (id, peer) in stale {
                let _ = sad.update_addresses(
                    id,
                    AddressPair {
                        local: current,
                        peer,
                    },
                );
            }
        }
        // REQ CN-5.2: SAs with a correspondent keyed over a care-of
        // address (its peer is not pinned to the home address) do not
        // survive the handoff; the next BU keys again, and its
        // INITIAL_CONTACT clears the old ones at the correspondent.
        let ha = self.cfg.home_agent;
        let lost: Vec<(Ipv6Addr, IkeSaId)> = self
            .ike_sas
            .iter()
            .filter(|(p, _)| **p != ha)
            .filter(|(_, sa)| {
                ike.sa(**sa)
                    .is_some_and(|s| !ike.pinned(s) && !addresses.contains(&s.local.ip()))
            })
            .map(|(p, sa)| (*p, *sa))
            .collect();
        for (peer, sa) in lost {
            self.ike_sas.remove(&peer);
            ike.abandon(sa, &mut self.core.ipsec);
        }
        ike.set_local_addresses(now, &addresses);
        // An IKE SA that cannot follow (no MOBIKE, no addrmgmt) is keyed
        // again from the new address (RFC 4877 §4.5, K clear).
        let follows = |s: &IkeSa| s.mobike || ike.config().mobility == Mobility::AddrMgmt;
        if let Some(sa) = self.ike_sas.get(&ha).copied() {
            let stranded = ike
                .sa(sa)
                .filter(|s| !addresses.contains(&s.local.ip()) && !follows(s))
                .map(|s| s.state() == IkeState::Established);
            match stranded {
                _ if addresses.is_empty() => {}
                Some(true) => {
                    let _ = ike.delete(now, sa);
                    self.ike_sas.remove(&ha);
                }
                // Still in IKE_SA_INIT or IKE_AUTH from an address we lost.
                Some(false) => {
                    ike.abandon(sa, &mut self.core.ipsec);
                    self.ike_sas.remove(&ha);
                }
                None => {}
            }
        }
        if !addresses.is_empty() {
            self.start_ike(now, ha);
        }
    }

    fn on_ike(&mut self, now: Instant, e: IkeEvent) {
        match e {
            // IKE_AUTH brought the first child; the others follow.
            IkeEvent::Established { sa, .. } => {
                let peer = self
                    .ike_sas
                    .iter()
                    .find(|(_, s)| **s == sa)
                    .map(|(p, _)| *p);
                let Some(name) = peer.and_then(|p| self.ike_peer(p)) else {
                    return;
                };
                let Some(ike) = self.core.ike.as_mut() else {
                    return;
                };
                let children: Vec<String> = ike
                    .config()
                    .peers
                    .iter()
                    .filter(|p| p.name == name)
                    .flat_map(|p| p.children.iter().skip(1).map(|c| c.name.clone()))
                    .collect();
                for c in children {
                    let _ = ike.create_child(now, sa, &c, &self.core.ipsec);
                }
            }
            IkeEvent::ChildUp { .. } => {
                let waiting: Vec<Ipv6Addr> = self
                    .bul
                    .iter()
                    .filter(|(_, e)| e.state == BulState::AwaitingKeys)
                    .map(|(p, _)| *p)
                    .collect();
                for peer in waiting {
                    if self.core.ipsec.find_suitable(self.home(), peer).is_some() {
                        self.send_bu(now, peer);
                    }
                }
            }
            IkeEvent::Closed { sa, reason } => {
                let peers: Vec<Ipv6Addr> = self
                    .ike_sas
                    .iter()
                    .filter(|(_, s)| **s == sa)
                    .map(|(p, _)| *p)
                    .collect();
                self.ike_sas.retain(|_, s| *s != sa);
                // RFC 7296 §2.4: the peer is dead, and with it the keys of
                // BU and BA: key again and register again now, not at the
                // next retransmission or refresh (issue 14.4).
                if reason == CloseReason::Timeout {
                    for peer in peers {
                        let due = self
                            .bul
                            .get(&peer)
                            .is_some_and(|e| e.is_waiting() || e.is_registered());
                        if due {
                            self.refresh(now, peer);
                        }
                    }
                }
            }
            // The home agent switched us to another of its addresses
            // (R-MOBIKE): a BU over the new path confirms the binding.
            IkeEvent::Moved { sa, remote, .. }
                if self.ike_sas.get(&self.cfg.home_agent) == Some(&sa)
                    && remote.ip() != IpAddr::V6(self.cfg.home_agent) =>
            {
                let ha = self.cfg.home_agent;
                if self.bul.get(&ha).is_some_and(BulEntry::is_bound) {
                    if let Some(e) = self.bul.get_mut(&ha) {
                        e.backoff = INITIAL_BINDACK_TIMEOUT;
                    }
                    self.send_bu(now, ha);
                }
            }
            _ => {}
        }
    }

    /// What every `handle_*` ends with: ND's events, IKE's, and IKE's
    /// datagrams, from the home address like the node's own packets.
    fn pump(&mut self, now: Instant) {
        while let Some((iface, e)) = self.core.poll_nd() {
            self.on_nd(now, iface, e);
        }
        for e in self.core.pump_ike(now) {
            self.on_ike(now, e);
        }
        while let Some(p) = self.core.poll_ike_packet() {
            match &p.ip {
                IpRepr::V6 { header, .. } if header.src == self.home() => {
                    let bytes = p.to_bytes(&self.cfg.code_points);
                    self.send_from_home(now, p, &bytes);
                }
                _ => {
                    self.core.send(now, &p);
                }
            }
        }
    }

    fn move_to(&mut self, now: Instant, to: Location) {
        if to == self.location {
            return;
        }
        let home = self.home();
        // Away from home, the home address is the home agent's to defend.
        if let Location::Home(h) = self.location {
            if let Some(nd) = self.core.link_mut(h) {
                nd.remove_address(home);
            }
        }
        self.location = to;
        let (iface, care_of) = match to {
            Location::Detached => {
                self.core.event(Event::Moved {
                    iface: None,
                    care_of: None,
                });
                self.ike_moved(now);
                return;
            }
            Location::Home(i) => (i, None),
            Location::Away { iface, care_of } => (iface, Some(care_of)),
        };
        if care_of.is_none() {
            // RFC 6275 §11.5.5: no DAD for a home address the home agent
            // still defends; plain (optimistic) DAD when nobody does.
            let registered = self
                .bul
                .get(&self.cfg.home_agent)
                .is_some_and(BulEntry::is_registered);
            if let Some(nd) = self.core.link_mut(iface) {
                if registered {
                    nd.add_quiet_address(home);
                } else {
                    nd.add_address(now, home, Dad::Optimistic);
                }
            }
        }
        self.core.event(Event::Moved {
            iface: Some(iface),
            care_of,
        });
        self.ike_moved(now);
        let target = care_of.unwrap_or(self.home());
        // Back home, correspondents are deregistered once the home agent
        // has stopped intercepting: their answers go to the home address.
        let home_pending = care_of.is_none()
            && self
                .bul
                .get(&self.cfg.home_agent)
                .is_some_and(BulEntry::is_registered);
        let peers: Vec<Ipv6Addr> = self.bul.keys().copied().collect();
        for peer in peers {
            let Some(e) = self.bul.get_mut(&peer) else {
                continue;
            };
            e.unbind();
            e.cookie = None;
            e.care_of = target;
            let first = !e.is_registered();
            match e.mode {
                None if care_of.is_some() || e.is_registered() => {
                    e.backoff = if first {
                        INITIAL_BINDACK_TIMEOUT_FIRST_REG
                    } else {
                        INITIAL_BINDACK_TIMEOUT
                    };
                    self.send_bu(now, peer);
                }
                Some(RouteOptimisation::Ipsec)
                    if care_of.is_some() || (e.is_registered() && !home_pending) =>
                {
                    e.backoff = INITIAL_BINDACK_TIMEOUT;
                    self.send_bu(now, peer);
                }
                _ => e.state = BulState::Idle { refresh: None },
            }
        }
        if care_of.is_none() && !home_pending {
            self.deregister_correspondents(now);
        }
    }

    /// At home: return routability (which needs only the home keygen
    /// token to deregister) for the correspondents that still hold a
    /// binding for us.
    fn deregister_correspondents(&mut self, now: Instant) {
        let peers: Vec<(Ipv6Addr, Option<RouteOptimisation>)> = self
            .bul
            .iter()
            .filter(|(_, e)| e.is_registered() && e.mode.is_some())
            .map(|(a, e)| (*a, e.mode))
            .collect();
        for (peer, mode) in peers {
            match mode {
                Some(RouteOptimisation::ReturnRoutability) => self.start_rr(now, peer),
                Some(RouteOptimisation::Ipsec)
                    if !self.bul.get(&peer).is_some_and(BulEntry::is_waiting) =>
                {
                    if let Some(e) = self.bul.get_mut(&peer) {
                        e.backoff = INITIAL_BINDACK_TIMEOUT;
                    }
                    self.send_bu(now, peer);
                }
                _ => {}
            }
        }
    }

    /// Sends the next BU to `peer` and arms its retransmission.
    fn send_bu(&mut self, now: Instant, peer: Ipv6Addr) {
        let home = self.home();
        let Some(local) = self.local() else {
            return;
        };
        let lifetime = if self.cfg.home_agent == peer {
            self.cfg.home_lifetime
        } else {
            self.cfg.correspondent_lifetime
        };
        let by_ike = self.ike_peer(peer).is_some();
        let keyed = !by_ike || self.core.ipsec.find_suitable(home, peer).is_some();
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        if e.refused.is_some() {
            return;
        }
        let deregister = e.care_of == home;
        let rr = e.mode == Some(RouteOptimisation::ReturnRoutability);
        if !rr && !keyed {
            e.state = BulState::AwaitingKeys;
            self.start_ike(now, peer);
            return;
        }
        // RR: Kbm from the keygen tokens; only the home one to deregister.
        let authority = match (rr, &e.rr) {
            (false, _) => None,
            (true, Some(r)) => match (r.home, r.care_of, deregister) {
                (Some((hi, ht)), _, true) => Some((hi, 0, rr::binding_key(ht, None))),
                (Some((hi, ht)), Some((ci, ct)), false) => {
                    Some((hi, ci, rr::binding_key(ht, Some(ct))))
                }
                _ => return,
            },
            (true, None) => return,
        };
        e.seq = e.seq.wrapping_add(1);
        e.sent = now;
        e.state = BulState::AwaitingReply {
            retransmit: Some(now + e.backoff),
        };
        let mut flags = BuFlags::A;
        if e.mode.is_none() {
            flags |= BuFlags::H;
            // RFC 4877 §4.5: the IKE SA follows the care-of address.
            if by_ike {
                flags |= BuFlags::K;
            }
        }
        let mut options = vec![];
        if !rr {
            // REQ CN-4.4: ESP leaves the source address unprotected, so the
            // care-of address rides in an Alternate CoA option.
            options.push(MhOption::AlternateCareOfAddress(e.care_of));
            if let Some(c) = &e.cookie {
                // REQ CN-A1.1: the exact cookie, echoed.
                options.push(MhOption::Cookie(c.clone()));
            }
        }
        let seq = e.seq;
        let lifetime = if deregister {
            0
        } else {
            lifetime_units(lifetime)
        };
        let mut mh = MhRepr {
            message: MhMessage::BindingUpdate {
                seq,
                flags: BuFlags(flags),
                lifetime,
            },
            options,
        };
        if let Some((home_index, care_of_index, kbm)) = authority {
            mh.options.push(MhOption::NonceIndices {
                home: home_index,
                care_of: care_of_index,
            });
            e.kbm = Some(kbm);
            let care_of = e.care_of;
            self.core.authorise(&mut mh, &kbm, care_of, peer);
        }
        let ext = if local == home {
            vec![]
        } else {
            vec![ExtHeaderRepr::home_address(home)]
        };
        if let Some(ipsec) = self.core.send_mh(now, local, peer, ext, mh) {
            self.core
                .event(Event::BindingUpdateSent { peer, seq, ipsec });
        }
    }

    /// HoTI through the home agent, and CoTI from the care-of address
    /// unless returning home (RFC 6275 §5.2.1, §11.6.1).
    fn start_rr(&mut self, now: Instant, peer: Ipv6Addr) {
        let home = self.home();
        let location = self.location;
        let r = ReturnRoutability {
            home_cookie: self.core.rng.next_u64(),
            care_of_cookie: self.core.rng.next_u64(),
            home: None,
            care_of: None,
        };
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        if e.refused.is_some() {
            return;
        }
        e.backoff = INITIAL_BINDACK_TIMEOUT;
        e.state = BulState::AwaitingReply {
            retransmit: Some(now + e.backoff),
        };
        let hoti = PacketRepr::ipv6(
            home,
            peer,
            vec![],
            UpperRepr::Mobility(plain(MhMessage::HomeTestInit {
                cookie: r.home_cookie,
            })),
        );
        let coti = PacketRepr::ipv6(
            Ipv6Addr::UNSPECIFIED,
            peer,
            vec![],
            UpperRepr::Mobility(plain(MhMessage::CareOfTestInit {
                cookie: r.care_of_cookie,
            })),
        );
        e.rr = Some(r);
        self.core.event(Event::ReturnRoutabilityStarted { peer });
        match location {
            Location::Away { care_of: coa, .. } => {
                self.core
                    .send_tunnelled(now, (coa, self.cfg.home_agent), &hoti);
                let mut coti = coti;
                if let IpRepr::V6 { header, .. } = &mut coti.ip {
                    header.src = coa;
                }
                self.core.send(now, &coti);
            }
            Location::Home(_) => {
                self.core.send(now, &hoti);
            }
            Location::Detached => {}
        }
    }

    fn outgoing(&mut self, now: Instant, bytes: &[u8]) {
        if let Some(repr) = self.core.parse_local(bytes) {
            self.send_from_home(now, repr, bytes);
        }
    }

    /// A packet from the home address, `repr` parsed from `bytes`: as it
    /// is at home, else route optimised where a binding allows, else
    /// through the home agent (as it came).
    fn send_from_home(&mut self, now: Instant, mut repr: PacketRepr, bytes: &[u8]) {
        let IpRepr::V6 { header, .. } = &repr.ip else {
            return;
        };
        let dst = header.dst;
        // An ACQUIRE: the first packet to a correspondent keyed by IKE
        // starts the exchange, so that the SA is there for the first BU.
        let acquire = !self.ike_sas.contains_key(&dst)
            && self.bul.get(&dst).is_some_and(|e| {
                e.ike_peer.is_some()
                    && matches!(
                        e.mode,
                        Some(RouteOptimisation::Ipsec | RouteOptimisation::Triangular)
                    )
            });
        if acquire {
            self.start_ike(now, dst);
        }
        match self.location {
            Location::Detached => self.core.drop(NodeDrop::NoRoute),
            Location::Home(_) => {
                self.core.stats.sent_direct += 1;
                self.core.send(now, &repr);
            }
            Location::Away { care_of: coa, .. } => {
                let optimised = self.bul.get(&dst).is_some_and(|e| {
                    e.mode == Some(RouteOptimisation::Triangular)
                        || (e.mode.is_some() && e.is_bound() && e.care_of == coa)
                });
                if optimised {
                    add_home_address_option(&mut repr, coa);
                    self.core.stats.sent_route_optimised += 1;
                    self.core.send(now, &repr);
                } else {
                    self.core.stats.sent_tunnelled += 1;
                    let ends = (coa, self.cfg.home_agent);
                    self.core
                        .send_tunnelled_bytes(now, ends, bytes, is_signalling(&repr));
                }
            }
        }
    }

    fn incoming(&mut self, now: Instant, iface: u8, bytes: &[u8]) {
        let rx = match self.core.receive(now, iface, bytes) {
            Received::Packet(rx) => rx,
            Received::Foreign(_) => return self.core.drop(NodeDrop::NotForUs),
            Received::Nd | Received::Dropped => return,
        };
        let Some(h) = rx.header().copied() else {
            self.core.drop(NodeDrop::NotForUs);
            return;
        };
        // RFC 6275 §6.4, §11.3.3: a type 2 routing header must hold our
        // home address, its one segment left; any other is silently
        // discarded, whatever the packet carries.
        let type2 = type2_header(&rx.repr);
        if type2.is_some_and(|t| t != (1, self.home())) {
            self.core.drop(NodeDrop::NotForUs);
            return;
        }
        if rx.tunnelled {
            // Out of RFC 4877's payload SA with the home agent, whose
            // selectors it passed.
            return self.out_of_tunnel(now, &rx.bytes, Path::Direct);
        }
        match &rx.repr.upper {
            UpperRepr::Tunnel(_) => {
                if h.src != self.cfg.home_agent {
                    self.core.drop(NodeDrop::TunnelSourceMismatch);
                    return;
                }
                // Plain IPv6-in-IPv6: what a payload SA covers should
                // have come through it.
                let Some((_, inner)) = rx.inner() else {
                    return self.core.drop(NodeDrop::Malformed);
                };
                self.out_of_tunnel(now, inner, Path::Tunnel);
            }
            UpperRepr::Mobility(mh) => {
                self.mobility(now, &rx, h.src, mh, false);
            }
            _ => {
                if self.mh_unrecognised(now, &rx) || self.core.ike_input(now, &rx) {
                    return;
                }
                let mut repr = rx.repr;
                if type2_address(&repr) == Some(self.home()) {
                    super::core::strip_mobility_headers(&mut repr);
                    self.core.stats.delivered_route_optimised += 1;
                } else if h.dst == self.home() {
                    self.core.stats.delivered_direct += 1;
                } else {
                    // For a care-of or link-local address, which the stack
                    // does not hold: only echo requests are answered.
                    let rx = Rx { repr, ..rx };
                    if !self.core.answer_echo(now, &rx) {
                        self.core.drop(NodeDrop::NotForUs);
                    }
                    return;
                }
                self.core.deliver(repr.to_bytes(&self.cfg.code_points));
            }
        }
    }

    /// A packet out of the tunnel with the home agent, seen by IPsec on
    /// `path`; it may carry ESP of its own (from a correspondent to the
    /// home address).
    fn out_of_tunnel(&mut self, now: Instant, inner: &[u8], path: Path) {
        let Some(rx) = self.core.decrypt_parse(now, inner, path) else {
            return;
        };
        let Some(h) = rx.header().copied() else {
            self.core.drop(NodeDrop::NotForUs);
            return;
        };
        if h.dst != self.home() {
            self.core.drop(NodeDrop::NotForUs);
            return;
        }
        if let UpperRepr::Mobility(mh) = &rx.repr.upper {
            self.mobility(now, &rx, h.src, mh, true);
            return;
        }
        if self.mh_unrecognised(now, &rx) || self.core.ike_input(now, &rx) {
            return;
        }
        self.core.stats.delivered_tunnelled += 1;
        self.core.deliver(rx.bytes);
    }

    /// RFC 6275 §11.3.5: an ICMPv6 Parameter Problem, code 1 (unknown
    /// Next Header), pointing at the Mobility Header of a packet we sent a
    /// correspondent (a BU, a HoTI or CoTI): it does not do Mobile IPv6,
    /// so no BUs to it for [`RETRY_REFUSED`]. True if it was one.
    fn mh_unrecognised(&mut self, now: Instant, rx: &Rx) -> bool {
        let UpperRepr::Icmpv6(icmp) = &rx.repr.upper else {
            return false;
        };
        if icmp.msg_type != PARAMETER_PROBLEM || icmp.code != 1 {
            return false;
        }
        let Some((pointer, invoking)) = icmp.body.split_first_chunk::<4>() else {
            return false;
        };
        let pointer = u32::from_be_bytes(*pointer) as usize;
        let addr = |at: usize| {
            invoking
                .get(at..at + 16)
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(Ipv6Addr::from)
        };
        let (Some(src), Some(dst)) = (addr(8), addr(24)) else {
            return false;
        };
        let ours = src == self.home() || Some(src) == self.local();
        let mh = pointer >= 6 && invoking.get(pointer) == Some(&u8::from(IpProtocol::Mobility));
        let correspondent = self.bul.get(&dst).is_some_and(|e| e.mode.is_some());
        if !(ours && mh && correspondent) {
            return false;
        }
        if let Some(e) = self.bul.get_mut(&dst) {
            e.refuse(now);
        }
        self.core.event(Event::BindingLost {
            peer: dst,
            refused: true,
        });
        true
    }

    fn mobility(&mut self, now: Instant, rx: &Rx, src: Ipv6Addr, mh: &MhRepr, via_home: bool) {
        match mh.message {
            MhMessage::BindingAck {
                status,
                flags,
                seq,
                lifetime,
            } => {
                let ba = Ba {
                    status: u8::from(status),
                    k: flags.has(BaFlags::K),
                    seq,
                    lifetime,
                    options: &mh.options,
                };
                self.binding_ack(now, rx, src, ba);
            }
            MhMessage::HomeTest {
                nonce_index,
                cookie,
                token,
            } if via_home || self.at_home() => {
                self.test_reply(now, src, cookie, (nonce_index, token), true)
            }
            // RFC 6275 §11.6.2: to the current care-of address.
            MhMessage::CareOfTest {
                nonce_index,
                cookie,
                token,
            } if !via_home && rx.header().map(|h| h.dst) == self.local() => {
                self.test_reply(now, src, cookie, (nonce_index, token), false)
            }
            // RFC 6275 §11.7.4: only for a binding we hold; one already
            // being refreshed gets no second BU (§11.8: a burst of BRRs,
            // unprotected, brings one BU).
            MhMessage::BindingRefreshRequest => {
                let due = |e: &BulEntry| e.is_bound() && !e.is_waiting();
                if self.bul.get(&src).is_some_and(due) {
                    self.refresh(now, src);
                } else {
                    self.core.drop(NodeDrop::Unsolicited);
                }
            }
            // Status 1 (unknown binding) from the home agent we are
            // registered with: it lost our binding (a restart; see
            // `Ha::lost_binding`). Register again as for the first time
            // (the agent checks the home address first, §10.3.1).
            // Unprotected, but all it brings is one BU under ESP, and none
            // while one is out (issue 14.4).
            MhMessage::BindingError {
                status: 1,
                home_address,
            } if home_address == self.home()
                && src == self.cfg.home_agent
                && !self.at_home()
                && self
                    .bul
                    .get(&src)
                    .is_some_and(|e| e.is_registered() && !e.is_waiting()) =>
            {
                if let Some(e) = self.bul.get_mut(&src) {
                    e.registration = Registration::Unregistered;
                    e.backoff = INITIAL_BINDACK_TIMEOUT_FIRST_REG;
                }
                self.send_bu(now, src);
            }
            // RFC 6275 §11.3.6: status 2 is about a message without a HAO
            // (a HoTI) as well, whose Home Address is unspecified.
            MhMessage::BindingError {
                status,
                home_address,
            } if home_address == self.home() || (status == 2 && home_address.is_unspecified()) => {
                let registers = |m| {
                    matches!(
                        m,
                        Some(RouteOptimisation::Ipsec | RouteOptimisation::ReturnRoutability)
                    )
                };
                match self.bul.get_mut(&src) {
                    // The correspondent does not know a Mobility Header
                    // type we sent: no signalling with it for a while,
                    // which would only bring the same answer.
                    Some(e) if registers(e.mode) && status == 2 => {
                        e.refuse(now);
                        self.core.event(Event::BindingLost {
                            peer: src,
                            refused: true,
                        });
                    }
                    // It could not verify our HAO: back to the tunnel, and
                    // register again, unless a BU (or test) is out already,
                    // whose answer will do (§11.8: one BU, however many
                    // errors come meanwhile).
                    Some(e) if registers(e.mode) => {
                        let waiting = e.is_waiting();
                        e.unbind();
                        self.core.event(Event::BindingLost {
                            peer: src,
                            refused: false,
                        });
                        if !waiting {
                            self.refresh(now, src);
                        }
                    }
                    _ => self.core.drop(NodeDrop::Unsolicited),
                }
            }
            _ => self.core.drop(NodeDrop::Unsolicited),
        }
    }

    fn binding_ack(&mut self, now: Instant, rx: &Rx, peer: Ipv6Addr, ba: Ba<'_>) {
        let Ba {
            status,
            k,
            seq,
            lifetime,
            options,
        } = ba;
        let home = self.home();
        let coa_test = self.cfg.code_points.ba_status_coa_test;
        let Some(e) = self.bul.get(&peer) else {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        };
        let out_of_window = status == u8::from(BaStatus::SequenceNumberOutOfWindow);
        if !e.is_waiting() || (seq != e.seq && !out_of_window) {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        }
        let protected = match e.mode {
            None | Some(RouteOptimisation::Ipsec) => rx.sa.is_some(),
            // RFC 6275 §11.7.3: a BA to an RR BU proves itself with Kbm,
            // except the refusals that say the nonces are gone.
            _ => {
                (136..=138).contains(&status)
                    || e.kbm.is_some_and(|k| authorised(rx, &k, e.care_of, peer))
            }
        };
        if !protected {
            self.core.drop(NodeDrop::Unprotected);
            return;
        }
        // REQ CN-4.6: a Binding Authorization Data option in a BA to an
        // IPsec-protected BU is ignored, like every option but the cookie.
        let granted = units_lifetime(lifetime);
        self.core.event(Event::BindingAcked {
            peer,
            status,
            lifetime: granted,
            key_mobility: k,
        });
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        let is_home_agent = e.mode.is_none();
        // RFC 6275 §10.3.2: 133 to a deregistration says the agent holds
        // no registration (it took one whose BA was lost): done all the same.
        let nothing_to_deregister = is_home_agent
            && e.care_of == home
            && status == u8::from(BaStatus::NotHomeAgentForThisMobileNode);
        if status < 128 || nothing_to_deregister {
            let bound = e.care_of != home;
            let deregistered = e.is_registered() && !bound;
            e.registration = if bound {
                Registration::Bound
            } else {
                Registration::Unregistered
            };
            e.state = BulState::Idle {
                refresh: bound.then(|| now + granted.mul_f64(0.9)),
            };
            // RFC 6275 §11.7.3: a shorter lifetime granted than asked for
            // shortens the entry; it counts from the BU.
            e.expires = bound.then(|| e.sent + granted);
            e.cookie = None;
            if let (true, true, Location::Home(h)) = (is_home_agent, deregistered, self.location) {
                // RFC 6275 §11.5.5: the home agent let go; the home
                // address is ours on the link again.
                if let Some(nd) = self.core.link_mut(h) {
                    if nd.state(home) == Some(AddrState::Quiet) {
                        nd.announce(now, home);
                    }
                }
                self.deregister_correspondents(now);
            }
            if is_home_agent && bound {
                let rr_peers: Vec<Ipv6Addr> = self
                    .bul
                    .iter()
                    .filter(|(_, c)| c.mode == Some(RouteOptimisation::ReturnRoutability))
                    .map(|(a, _)| *a)
                    .collect();
                for p in rr_peers {
                    self.start_rr(now, p);
                }
            }
        } else if out_of_window {
            e.seq = seq;
            e.backoff = INITIAL_BINDACK_TIMEOUT;
            self.send_bu(now, peer);
        } else if status == coa_test {
            let cookie = options.iter().find_map(|o| match o {
                MhOption::Cookie(c) => Some(c.clone()),
                _ => None,
            });
            match cookie {
                Some(c) => {
                    e.cookie = Some(c);
                    self.send_bu(now, peer);
                }
                None => self.core.drop(NodeDrop::Malformed),
            }
        } else if (136..=138).contains(&status) {
            self.start_rr(now, peer);
        } else {
            e.state = BulState::Idle { refresh: None };
        }
    }

    fn test_reply(
        &mut self,
        now: Instant,
        peer: Ipv6Addr,
        cookie: u64,
        token: (u16, u64),
        home_test: bool,
    ) {
        let at_home = self.at_home();
        let Some(e) = self.bul.get_mut(&peer) else {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        };
        let Some(r) = e.rr.as_mut() else {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        };
        let (expected, slot) = if home_test {
            (r.home_cookie, &mut r.home)
        } else {
            (r.care_of_cookie, &mut r.care_of)
        };
        // Only the first answer to a test: a duplicate (a replay, or a
        // forgery by whoever saw the cookie) must not change the token
        // a BU was or will be built with.
        if cookie != expected || slot.is_some() {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        }
        *slot = Some(token);
        self.core.stats.rr_tokens_taken += 1;
        let ready = r.home.is_some() && (r.care_of.is_some() || at_home);
        if ready && e.is_waiting() {
            e.backoff = INITIAL_BINDACK_TIMEOUT;
            self.send_bu(now, peer);
        }
    }

    /// A new BU for the same care-of address (RR starts over: its tokens
    /// may be gone).
    fn refresh(&mut self, now: Instant, peer: Ipv6Addr) {
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        e.backoff = INITIAL_BINDACK_TIMEOUT;
        if e.mode == Some(RouteOptimisation::ReturnRoutability) {
            self.start_rr(now, peer);
        } else {
            self.send_bu(now, peer);
        }
    }

    /// RFC 7296 §2.4: a BU to `peer` went unanswered, so there is only
    /// outgoing traffic: an empty INFORMATIONAL asks whether the IKE peer
    /// that keyed it is alive, unless a request of ours is out already,
    /// whose answer tells as much. A dead peer is keyed again (`on_ike`).
    fn check_ike_peer(&mut self, now: Instant, peer: Ipv6Addr) {
        let (Some(sa), Some(ike)) = (self.ike_sas.get(&peer).copied(), self.core.ike.as_mut())
        else {
            return;
        };
        if ike.sa(sa).is_some_and(IkeSa::idle) {
            let _ = ike.liveness(now, sa);
        }
    }

    fn timer_fired(&mut self, now: Instant, peer: Ipv6Addr) {
        let at_home = self.at_home();
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        match e.state {
            BulState::Idle { .. } => {
                e.state = BulState::Idle { refresh: None };
                self.refresh(now, peer);
                return;
            }
            // It has no timer: IKE brings the BU.
            BulState::AwaitingKeys => return,
            BulState::AwaitingReply { .. } => {
                e.state = BulState::AwaitingReply { retransmit: None };
            }
        }
        // RFC 6275 §11.8: retransmit, doubling the wait up to 32 s.
        e.backoff = (e.backoff * 2).min(MAX_BINDACK_TIMEOUT);
        self.check_ike_peer(now, peer);
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        let rr_pending = e.mode == Some(RouteOptimisation::ReturnRoutability)
            && e.rr
                .as_ref()
                .is_some_and(|r| r.home.is_none() || (r.care_of.is_none() && !at_home));
        if rr_pending {
            let backoff = e.backoff;
            self.start_rr(now, peer);
            if let Some(e) = self.bul.get_mut(&peer) {
                e.backoff = backoff;
                e.state = BulState::AwaitingReply {
                    retransmit: Some(now + backoff),
                };
            }
        } else {
            self.send_bu(now, peer);
        }
    }
}

impl BulEntry {
    fn new(mode: Option<RouteOptimisation>, home: Ipv6Addr) -> Self {
        BulEntry {
            mode,
            seq: 0,
            care_of: home,
            state: BulState::Idle { refresh: None },
            registration: Registration::Unregistered,
            backoff: INITIAL_BINDACK_TIMEOUT,
            rr: None,
            kbm: None,
            cookie: None,
            ike_peer: None,
            sent: Instant::ZERO,
            expires: None,
            refused: None,
        }
    }

    /// The peer holds a binding for `care_of`: packets to it may be route
    /// optimised.
    pub fn is_bound(&self) -> bool {
        self.registration == Registration::Bound
    }

    /// A BA, HoT or CoT is due, or a BU waits for IKE.
    pub fn is_waiting(&self) -> bool {
        !matches!(self.state, BulState::Idle { .. })
    }

    /// The peer holds a binding for us, so coming home deregisters it.
    fn is_registered(&self) -> bool {
        self.registration != Registration::Unregistered
    }

    /// The correspondent does not take our signalling: nothing bound, no
    /// more BUs or tests.
    fn refuse(&mut self, now: Instant) {
        self.registration = Registration::Unregistered;
        self.expires = None;
        self.state = BulState::Idle { refresh: None };
        self.refused = Some(now + RETRY_REFUSED);
    }

    /// The node moved, or the peer disowned the binding.
    fn unbind(&mut self) {
        if self.registration == Registration::Bound {
            self.registration = Registration::Stale;
        }
    }

    fn timer(&self) -> Option<Instant> {
        let state = match self.state {
            BulState::Idle { refresh } => refresh,
            BulState::AwaitingKeys => None,
            BulState::AwaitingReply { retransmit } => retransmit,
        };
        earlier(earlier(state, self.expires), self.refused)
    }

    /// RFC 6275 §11.1: at the end of the lifetime granted the peer holds
    /// no binding any more, refreshed or not.
    fn expire(&mut self, now: Instant) {
        if self.expires.is_some_and(|x| x <= now) {
            self.expires = None;
            self.registration = Registration::Unregistered;
        }
    }
}

/// How long a correspondent that refused our signalling is left alone
/// (RFC 6275 §11.3.5 leaves it open).
pub const RETRY_REFUSED: Duration = Duration::from_secs(600);

/// The Segments Left and home address of a type 2 routing header.
fn type2_header(repr: &PacketRepr) -> Option<(u8, Ipv6Addr)> {
    let IpRepr::V6 { ext, .. } = &repr.ip else {
        return None;
    };
    ext.iter().find_map(|e| match e {
        ExtHeaderRepr::Routing(RoutingRepr::Type2 {
            segments_left,
            home_address,
        }) => Some((*segments_left, *home_address)),
        _ => None,
    })
}

fn plain(message: MhMessage) -> MhRepr {
    MhRepr {
        message,
        options: vec![],
    }
}

impl Engine for Mn {
    fn handle_packet(&mut self, now: Instant, iface: Iface, _: Option<MacAddr>, packet: &[u8]) {
        match iface {
            Iface::Stack => self.outgoing(now, packet),
            Iface::Link(i) => self.incoming(now, i, packet),
        }
        self.pump(now);
    }

    fn handle_command(&mut self, now: Instant, command: Command) -> Result<(), CommandError> {
        match command {
            Command::LinkUp { iface, mac } => {
                self.detach(iface);
                // RFC 4861 §6.3.7: a mobile node that knows it changed
                // links solicits at once.
                self.core
                    .link_up(now, iface, mac, Dad::Optimistic)?
                    .solicit_routers(now);
                if self.uses(iface) {
                    self.fall_back(now);
                }
            }
            Command::LinkDown(iface) => {
                self.core.link_down(iface)?;
                self.attachments.remove(&iface);
                if self.uses(iface) {
                    self.fall_back(now);
                }
            }
        }
        self.pump(now);
        Ok(())
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.pump(now);
        for e in self.bul.values_mut() {
            e.expire(now);
        }
        // RFC 6275 §11.3.5: a refusal is not forever; away, the node
        // tries route optimisation again.
        let retry: Vec<Ipv6Addr> = self
            .bul
            .iter_mut()
            .filter(|(_, e)| e.refused.is_some_and(|r| r <= now))
            .map(|(a, e)| {
                e.refused = None;
                *a
            })
            .collect();
        if matches!(self.location, Location::Away { .. }) {
            for peer in retry {
                self.refresh(now, peer);
            }
        }
        let due: Vec<Ipv6Addr> = self
            .bul
            .iter()
            .filter(|(_, e)| e.timer().is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for peer in due {
            self.timer_fired(now, peer);
        }
        // What the timers asked of IKE goes out now.
        self.pump(now);
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
        let own = self.bul.values().fold(None, |t, e| earlier(t, e.timer()));
        self.core.earliest(own)
    }

    fn stats(&self) -> &NodeStats {
        &self.core.stats
    }

    fn interface(&self, iface: u8) -> Option<&NdIface> {
        self.core.link(iface)
    }

    fn status(&self, _now: Instant) -> NodeStatus {
        let mut s = self.core.status("mn");
        s.location = Some(match self.location {
            Location::Detached => "no link".to_string(),
            Location::Home(i) => format!("home on link {i}"),
            Location::Away { iface, care_of } => format!("away on link {iface} at {care_of}"),
        });
        s.binding_updates = self
            .bul
            .iter()
            .map(|(peer, e)| UpdateStatus {
                peer: *peer,
                mode: match e.mode {
                    None => "home-agent",
                    Some(RouteOptimisation::Ipsec) => "ipsec",
                    Some(RouteOptimisation::ReturnRoutability) => "rr",
                    Some(RouteOptimisation::Triangular) => "triangular",
                    Some(RouteOptimisation::None) => "none",
                },
                care_of: e.care_of,
                seq: e.seq,
                bound: e.is_bound(),
                waiting: e.is_waiting(),
            })
            .collect();
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
}
