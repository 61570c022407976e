//! The mobile node (RFC 6275 §11): care-of address from the attached
//! link's Router Advertisement, the binding update list, home registration
//! under ESP, and route optimisation per correspondent, either by a BU
//! under a suitable SA (draft-dupont-mipv6-cn-ipsec §4) or by return
//! routability (RFC 6275 §5.2), with the reverse tunnel meanwhile.

use core::net::Ipv6Addr;
use std::collections::BTreeMap;

use rand_core::RngCore;

use super::core::{add_home_address_option, authorised, encapsulate, type2_address, Core, Rx};
use super::nd;
use super::rr::{self, MAX_RR_BINDING_LIFETIME};
use super::{
    lifetime_units, same_prefix64, slaac, units_lifetime, Command, CommandError, Engine, Event,
    Iface, NodeDrop, NodeStats, Transmit, INITIAL_BINDACK_TIMEOUT,
    INITIAL_BINDACK_TIMEOUT_FIRST_REG, MAX_BINDACK_TIMEOUT,
};
use crate::ipsec::Ipsec;
use crate::time::{Duration, Instant};
use crate::wire::mh::{BuFlags, MhMessage, MhOption, MhRepr};
use crate::wire::{BaStatus, CodePoints, ExtHeaderRepr, IpRepr, PacketRepr, UpperRepr};

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
            seed,
            code_points: CodePoints::default(),
        }
    }
}

/// Where the mobile node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Detached,
    Home,
    Away(Ipv6Addr),
}

/// Return routability in progress: the cookies we sent, the tokens we got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ReturnRoutability {
    home_cookie: u64,
    care_of_cookie: u64,
    home: Option<(u16, u64)>,
    care_of: Option<(u16, u64)>,
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
    /// The peer accepted `care_of`.
    pub bound: bool,
    /// Waiting for a BA (or a HoT/CoT) until the timer.
    pub waiting: bool,
    timer: Option<Instant>,
    backoff: Duration,
    rr: Option<ReturnRoutability>,
    /// Kbm of the last RR BU, to check the BA.
    kbm: Option<[u8; 20]>,
    /// Annex A1 cookie to echo in the next BU.
    cookie: Option<Vec<u8>>,
    /// The peer holds a binding for us (so returning home deregisters).
    registered: bool,
}

pub struct Mn {
    cfg: MnConfig,
    core: Core,
    location: Location,
    link_up: bool,
    bul: BTreeMap<Ipv6Addr, BulEntry>,
}

impl Mn {
    pub fn new(cfg: MnConfig, ipsec: Ipsec) -> Self {
        let core = Core::new(ipsec, cfg.seed, cfg.code_points);
        let mut bul = BTreeMap::new();
        bul.insert(cfg.home_agent, BulEntry::new(None, cfg.home_address));
        for c in &cfg.correspondents {
            bul.insert(c.address, BulEntry::new(Some(c.mode), cfg.home_address));
        }
        Mn {
            cfg,
            core,
            location: Location::Detached,
            link_up: false,
            bul,
        }
    }

    pub fn location(&self) -> Location {
        self.location
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
            Location::Home => Some(self.home()),
            Location::Away(c) => Some(c),
        }
    }

    fn move_to(&mut self, now: Instant, to: Location) {
        if to == self.location {
            return;
        }
        if let Some(old) = self.local() {
            self.core.event(Event::Release {
                iface: Iface::Link(0),
                address: old,
            });
        }
        self.location = to;
        let care_of = match to {
            Location::Detached => return,
            Location::Home => None,
            Location::Away(c) => Some(c),
        };
        if let Some(new) = self.local() {
            self.core.event(Event::Claim {
                iface: Iface::Link(0),
                address: new,
            });
        }
        self.core.event(Event::Moved { care_of });
        let target = care_of.unwrap_or(self.home());
        let peers: Vec<Ipv6Addr> = self.bul.keys().copied().collect();
        for peer in peers {
            let Some(e) = self.bul.get_mut(&peer) else {
                continue;
            };
            e.bound = false;
            e.cookie = None;
            e.care_of = target;
            let first = !e.registered;
            match e.mode {
                None if care_of.is_some() || e.registered => {
                    e.backoff = if first {
                        INITIAL_BINDACK_TIMEOUT_FIRST_REG
                    } else {
                        INITIAL_BINDACK_TIMEOUT
                    };
                    self.send_bu(now, peer);
                }
                Some(RouteOptimisation::Ipsec) if care_of.is_some() || e.registered => {
                    e.backoff = INITIAL_BINDACK_TIMEOUT;
                    self.send_bu(now, peer);
                }
                Some(RouteOptimisation::ReturnRoutability) if care_of.is_none() && e.registered => {
                    // Deregistration needs only the home keygen token.
                    self.start_rr(now, peer);
                }
                _ => {
                    e.waiting = false;
                    e.timer = None;
                }
            }
        }
    }

    fn attach(&mut self, now: Instant, prefix: Ipv6Addr) {
        let to = if same_prefix64(prefix, self.home()) {
            Location::Home
        } else {
            Location::Away(slaac(prefix, self.cfg.interface_id))
        };
        self.move_to(now, to);
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
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        let deregister = e.care_of == home;
        let rr = e.mode == Some(RouteOptimisation::ReturnRoutability);
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
        e.waiting = true;
        e.timer = Some(now + e.backoff);
        let mut flags = BuFlags::A;
        if e.mode.is_none() {
            flags |= BuFlags::H;
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
        e.backoff = INITIAL_BINDACK_TIMEOUT;
        e.timer = Some(now + e.backoff);
        e.waiting = true;
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
            Location::Away(coa) => {
                let tunnelled = encapsulate(coa, self.cfg.home_agent, hoti);
                self.core.send(now, Iface::Link(0), &tunnelled);
                let mut coti = coti;
                if let IpRepr::V6 { header, .. } = &mut coti.ip {
                    header.src = coa;
                }
                self.core.send(now, Iface::Link(0), &coti);
            }
            Location::Home => {
                self.core.send(now, Iface::Link(0), &hoti);
            }
            Location::Detached => {}
        }
    }

    fn outgoing(&mut self, now: Instant, bytes: &[u8]) {
        let Some(mut repr) = self.core.parse_local(bytes) else {
            return;
        };
        let IpRepr::V6 { header, .. } = &repr.ip else {
            return;
        };
        let dst = header.dst;
        match self.location {
            Location::Detached => self.core.drop(NodeDrop::NoRoute),
            Location::Home => {
                self.core.stats.sent_direct += 1;
                self.core.send(now, Iface::Link(0), &repr);
            }
            Location::Away(coa) => {
                let optimised = self.bul.get(&dst).is_some_and(|e| {
                    e.mode == Some(RouteOptimisation::Triangular)
                        || (e.mode.is_some() && e.bound && e.care_of == coa)
                });
                if optimised {
                    add_home_address_option(&mut repr, coa);
                    self.core.stats.sent_route_optimised += 1;
                    self.core.send(now, Iface::Link(0), &repr);
                } else {
                    self.core.stats.sent_tunnelled += 1;
                    let outer = encapsulate(coa, self.cfg.home_agent, repr);
                    self.core.send(now, Iface::Link(0), &outer);
                }
            }
        }
    }

    fn incoming(&mut self, now: Instant, bytes: &[u8]) {
        let Some(rx) = self.core.receive(now, bytes) else {
            return;
        };
        let Some(h) = rx.header().copied() else {
            self.core.drop(NodeDrop::NotForUs);
            return;
        };
        if let UpperRepr::Icmpv6(icmp) = &rx.repr.upper {
            if let Some(prefix) = nd::advertised_prefix(icmp) {
                if self.link_up {
                    self.attach(now, prefix);
                }
                return;
            }
        }
        if h.dst.is_multicast() {
            return;
        }
        if Some(h.dst) != self.local() {
            self.core.drop(NodeDrop::NotForUs);
            return;
        }
        match &rx.repr.upper {
            UpperRepr::Tunnel(inner) => {
                if h.src != self.cfg.home_agent {
                    self.core.drop(NodeDrop::TunnelSourceMismatch);
                    return;
                }
                // The inner packet may carry ESP of its own (from a
                // correspondent to the home address).
                let inner_bytes = inner.to_bytes(&self.core.cp);
                let Some(inner_rx) = self.core.receive(now, &inner_bytes) else {
                    return;
                };
                let inner = inner_rx.repr.clone();
                let to_home =
                    matches!(&inner.ip, IpRepr::V6 { header, .. } if header.dst == self.home());
                if !to_home {
                    self.core.drop(NodeDrop::NotForUs);
                    return;
                }
                if let UpperRepr::Mobility(mh) = &inner.upper {
                    let src = match &inner.ip {
                        IpRepr::V6 { header, .. } => header.src,
                        IpRepr::V4(_) => return,
                    };
                    let mh = mh.clone();
                    self.mobility(now, &inner_rx, src, mh, true);
                    return;
                }
                self.core.stats.delivered_tunnelled += 1;
                self.core.deliver(&inner);
            }
            UpperRepr::Mobility(mh) => {
                let mh = mh.clone();
                self.mobility(now, &rx, h.src, mh, false);
            }
            _ => {
                let mut repr = rx.repr;
                if type2_address(&repr) == Some(self.home()) {
                    super::core::strip_mobility_headers(&mut repr);
                    self.core.stats.delivered_route_optimised += 1;
                } else {
                    self.core.stats.delivered_direct += 1;
                }
                self.core.deliver(&repr);
            }
        }
    }

    fn mobility(&mut self, now: Instant, rx: &Rx, src: Ipv6Addr, mh: MhRepr, via_home: bool) {
        match mh.message {
            MhMessage::BindingAck {
                status,
                seq,
                lifetime,
                ..
            } => self.binding_ack(now, rx, src, u8::from(status), seq, lifetime, &mh.options),
            MhMessage::HomeTest {
                nonce_index,
                cookie,
                token,
            } if via_home || self.location == Location::Home => {
                self.test_reply(now, src, cookie, (nonce_index, token), true)
            }
            MhMessage::CareOfTest {
                nonce_index,
                cookie,
                token,
            } if !via_home => self.test_reply(now, src, cookie, (nonce_index, token), false),
            MhMessage::BindingRefreshRequest => {
                if self.bul.get(&src).is_some_and(|e| e.bound) {
                    self.refresh(now, src);
                } else {
                    self.core.drop(NodeDrop::Unsolicited);
                }
            }
            MhMessage::BindingError { home_address, .. } if home_address == self.home() => {
                // The correspondent could not verify our HAO: back to the
                // tunnel, and register again.
                let registers = |m| {
                    matches!(
                        m,
                        Some(RouteOptimisation::Ipsec | RouteOptimisation::ReturnRoutability)
                    )
                };
                match self.bul.get_mut(&src) {
                    Some(e) if registers(e.mode) => {
                        e.bound = false;
                        self.refresh(now, src);
                    }
                    _ => self.core.drop(NodeDrop::Unsolicited),
                }
            }
            _ => self.core.drop(NodeDrop::Unsolicited),
        }
    }

    #[allow(clippy::too_many_arguments, reason = "the fields of one BA")]
    fn binding_ack(
        &mut self,
        now: Instant,
        rx: &Rx,
        peer: Ipv6Addr,
        status: u8,
        seq: u16,
        lifetime: u16,
        options: &[MhOption],
    ) {
        let home = self.home();
        let coa_test = self.cfg.code_points.ba_status_coa_test;
        let Some(e) = self.bul.get(&peer) else {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        };
        let out_of_window = status == u8::from(BaStatus::SequenceNumberOutOfWindow);
        if !e.waiting || (seq != e.seq && !out_of_window) {
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
        });
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        let is_home_agent = e.mode.is_none();
        if status < 128 {
            e.waiting = false;
            e.bound = e.care_of != home;
            e.registered = e.bound;
            e.timer = e.bound.then(|| now + granted.mul_f64(0.9));
            e.cookie = None;
            if is_home_agent && e.bound {
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
            e.waiting = false;
            e.timer = None;
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
        let Some(e) = self.bul.get_mut(&peer) else {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        };
        let Some(r) = e.rr.as_mut() else {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        };
        let expected = if home_test {
            r.home_cookie
        } else {
            r.care_of_cookie
        };
        if cookie != expected {
            self.core.drop(NodeDrop::Unsolicited);
            return;
        }
        if home_test {
            r.home = Some(token);
        } else {
            r.care_of = Some(token);
        }
        let ready = r.home.is_some() && (r.care_of.is_some() || self.location == Location::Home);
        if ready && e.waiting {
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

    fn timer_fired(&mut self, now: Instant, peer: Ipv6Addr) {
        let Some(e) = self.bul.get_mut(&peer) else {
            return;
        };
        e.timer = None;
        if !e.waiting {
            self.refresh(now, peer);
            return;
        }
        // RFC 6275 §11.8: retransmit, doubling the wait up to 32 s.
        e.backoff = (e.backoff * 2).min(MAX_BINDACK_TIMEOUT);
        let rr_pending = e.mode == Some(RouteOptimisation::ReturnRoutability)
            && e.rr.as_ref().is_some_and(|r| {
                r.home.is_none() || (r.care_of.is_none() && self.location != Location::Home)
            });
        if rr_pending {
            let backoff = e.backoff;
            self.start_rr(now, peer);
            if let Some(e) = self.bul.get_mut(&peer) {
                e.backoff = backoff;
                e.timer = Some(now + backoff);
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
            bound: false,
            waiting: false,
            timer: None,
            backoff: INITIAL_BINDACK_TIMEOUT,
            rr: None,
            kbm: None,
            cookie: None,
            registered: false,
        }
    }
}

fn plain(message: MhMessage) -> MhRepr {
    MhRepr {
        message,
        options: vec![],
    }
}

impl Engine for Mn {
    fn handle_packet(&mut self, now: Instant, iface: Iface, packet: &[u8]) {
        match iface {
            Iface::Stack => self.outgoing(now, packet),
            Iface::Link(_) => self.incoming(now, packet),
        }
    }

    fn handle_command(&mut self, now: Instant, command: Command) -> Result<(), CommandError> {
        match command {
            Command::LinkUp(0) => {
                self.link_up = true;
                let rs = nd::router_solicitation();
                self.core.send(now, Iface::Link(0), &rs);
            }
            Command::LinkDown(0) => {
                self.link_up = false;
                self.move_to(now, Location::Detached);
            }
            Command::Attach { iface: 0, prefix } => {
                self.link_up = true;
                self.attach(now, prefix);
            }
            Command::LinkUp(i) | Command::LinkDown(i) | Command::Attach { iface: i, .. } => {
                return Err(CommandError::NoSuchInterface(i))
            }
        }
        Ok(())
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.core.ipsec.handle_timeout(now);
        let due: Vec<Ipv6Addr> = self
            .bul
            .iter()
            .filter(|(_, e)| e.timer.is_some_and(|t| t <= now))
            .map(|(a, _)| *a)
            .collect();
        for peer in due {
            self.timer_fired(now, peer);
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let own = self.bul.values().filter_map(|e| e.timer).min();
        self.core.earliest(own)
    }

    fn stats(&self) -> &NodeStats {
        &self.core.stats
    }

    fn ipsec(&self) -> &Ipsec {
        &self.core.ipsec
    }

    fn ipsec_mut(&mut self) -> &mut Ipsec {
        &mut self.core.ipsec
    }
}
