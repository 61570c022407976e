//! Neighbor Discovery for one interface, sans-IO: link-local and global
//! addresses with Duplicate Address Detection (RFC 4862 §5.4), Optimistic
//! DAD (RFC 4429), address resolution and Neighbor Unreachability
//! Detection (RFC 4861 §7), router discovery (§6.3), and the proxy a home
//! agent runs for its mobile nodes' home addresses (RFC 6275 §10.4.1).
//!
//! An [`NdIface`] takes the ND messages that arrive on its link, the
//! packets its owner wants to send to a next hop, and the time; it queues
//! [`Frame`]s (an IPv6 packet and the MAC it goes to) and [`NdEvent`]s,
//! and says when it wants to be called again. It never decides policy: the
//! engine that owns it chooses addresses, reacts to routers appearing and
//! vanishing (movement detection) and to DAD outcomes.
//!
//! What is left out, on purpose: Redirect (§8), router preferences (RFC
//! 4191), the random delay before the first RS and DAD probe (a mobile
//! node must not wait: RFC 4429 §3.4, RFC 6275 §11.5.1), and anycast.

mod cache;
mod proxies;
#[cfg(test)]
mod tests;

use core::net::Ipv6Addr;
use std::collections::VecDeque;

use hashbrown::HashMap;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use self::cache::Cache;
pub use self::cache::{Neighbor, NeighborState};
use self::proxies::Proxies;
use crate::time::{Deadlines, Duration, Instant};
use crate::wire::nd::{solicited_node, NaFlags, RouterAdvert, ND_HOP_LIMIT};
use crate::wire::{CodePoints, IpRepr, MacAddr, NdRepr, PacketRepr, UpperRepr};

/// RFC 4861 §10 host constants.
pub const MAX_RTR_SOLICITATIONS: u8 = 3;
pub const RTR_SOLICITATION_INTERVAL: Duration = Duration::from_secs(4);
pub const MAX_MULTICAST_SOLICIT: u8 = 3;
pub const MAX_UNICAST_SOLICIT: u8 = 3;
pub const MAX_NEIGHBOR_ADVERTISEMENT: u8 = 3;
pub const REACHABLE_TIME: Duration = Duration::from_secs(30);
pub const RETRANS_TIMER: Duration = Duration::from_secs(1);
pub const DELAY_FIRST_PROBE_TIME: Duration = Duration::from_secs(5);

pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// How a new address is checked for uniqueness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dad {
    /// RFC 4862: unusable until DAD is over.
    Standard,
    /// RFC 4429: usable at once, with the restrictions of §3.3.
    Optimistic,
    /// Used as is (a mobile node's home address on return: RFC 6275 §11.5.5).
    Off,
}

/// What an address of ours is doing (RFC 4862 §2, RFC 4429 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrState {
    /// DAD in progress; the address is not used.
    Tentative,
    /// DAD in progress; the address is used, but never to override a
    /// neighbour's cache nor in a link-layer address option.
    Optimistic,
    Preferred,
    /// Used as a source, but not defended: no NA answers for it (a mobile
    /// node's home address until its home agent stops proxying).
    Quiet,
    /// DAD found another node using it.
    Duplicate,
}

impl AddrState {
    /// Whether packets may come from and to it.
    pub fn usable(self) -> bool {
        matches!(
            self,
            AddrState::Optimistic | AddrState::Preferred | AddrState::Quiet
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OwnAddr {
    addr: Ipv6Addr,
    state: AddrState,
    /// Probes sent so far.
    probes: u8,
}

/// A proxied address (a home agent's registered home address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proxy {
    /// DAD of the address before the registration is accepted.
    Checking { probes: u8 },
    /// Defended; `announcements` unsolicited NAs are still to go.
    Active { announcements: u8 },
}

/// A default router learned from Router Advertisements (§6.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRouter {
    /// Its link-local address.
    pub address: Ipv6Addr,
    pub expires: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct OnLink {
    prefix: Ipv6Addr,
    len: u8,
    expires: Option<Instant>,
}

/// One interface's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdConfig {
    /// A router answers Router Solicitations, sets R in its NAs and takes
    /// no default router from RAs.
    pub router: bool,
    /// RFC 4862 DupAddrDetectTransmits.
    pub dad_transmits: u8,
    /// Until an RA says otherwise.
    pub retrans_timer: Duration,
    pub base_reachable_time: Duration,
    /// Between Router Solicitations while none is answered.
    pub rs_interval: Duration,
    /// Neighbour cache entries at most (Linux's gc_thresh3): past it a
    /// stale non-router entry makes room, or nothing new is cached, so a
    /// flood from random on-link sources cannot grow it.
    pub max_neighbors: usize,
    /// Packets kept per neighbour while it is being resolved (§7.2.2 asks
    /// for at least one).
    pub queue_per_neighbor: usize,
}

impl Default for NdConfig {
    fn default() -> Self {
        NdConfig {
            router: false,
            dad_transmits: 1,
            retrans_timer: RETRANS_TIMER,
            base_reachable_time: REACHABLE_TIME,
            rs_interval: RTR_SOLICITATION_INTERVAL,
            max_neighbors: 1024,
            queue_per_neighbor: 3,
        }
    }
}

/// An IPv6 packet for the link, and the MAC it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub dst: MacAddr,
    pub bytes: Vec<u8>,
}

/// What an [`NdIface`] tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdEvent {
    /// DAD for one of our addresses found nobody else (it is preferred now).
    AddressReady(Ipv6Addr),
    /// DAD for one of our addresses found it in use.
    AddressDuplicate(Ipv6Addr),
    /// A valid Router Advertisement from `router` (link-local).
    RouterAdvert {
        router: Ipv6Addr,
        advert: RouterAdvert,
    },
    /// A default router's lifetime ran out or NUD found it unreachable.
    RouterLost(Ipv6Addr),
    /// Resolution or NUD of `neighbor` failed; `dropped` packets went with it.
    NeighborUnreachable { neighbor: Ipv6Addr, dropped: usize },
    /// The DAD a proxy runs before defending `address` is over.
    ProxyChecked { address: Ipv6Addr, unique: bool },
    /// A router was asked for an advertisement (routers only).
    RouterSolicited { from: Ipv6Addr },
}

/// A change of the multicast groups an interface listens to, as an MLD
/// report would tell the link (RFC 3810): the solicited-node group of
/// each address of ours (tentative ones too, RFC 4862 §5.4.2) and of each
/// proxied one (RFC 6275 §10.4.1), all-routers on a router. All-nodes is
/// never reported (RFC 3810 §6): every interface listens to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Membership {
    Join(Ipv6Addr),
    Leave(Ipv6Addr),
}

/// Why an ND message was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdDrop {
    /// Hop limit not 255, or a source/destination rule of §6.1/§7.1 broken.
    Invalid,
    /// A message a node in our role does not take (an RS at a host).
    NotForRole,
    /// An NS for a target we do not answer for, an NA about nobody we
    /// resolve, or our own NA reflected back: RFC 4861 discards these
    /// silently; we count them.
    NotOurs,
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NdStats {
    pub rs_sent: u64,
    pub ra_sent: u64,
    pub ns_sent: u64,
    pub na_sent: u64,
    pub received: u64,
    /// Messages acted on: each received one is accepted or counted as a drop.
    pub accepted: u64,
    pub invalid: u64,
    /// Messages our role does not take ([`NdDrop::NotForRole`]).
    pub not_for_role: u64,
    /// Messages about nobody we know ([`NdDrop::NotOurs`]).
    pub not_ours: u64,
    /// Packets dropped: no resolution, or a full resolution queue.
    pub unresolved: u64,
    /// NAs from others for an address of ours that is past DAD.
    pub conflicts: u64,
    /// Stale entries evicted, or neighbours not cached, at
    /// [`NdConfig::max_neighbors`].
    pub cache_full: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Timer {
    Dad(Ipv6Addr),
    Neighbor(Ipv6Addr),
    Proxy(Ipv6Addr),
    Router(Ipv6Addr),
    Prefix(Ipv6Addr),
    Solicit,
}

/// How a packet for a next hop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Queued as a frame.
    Now,
    /// Held until the neighbour answers.
    Queued,
    /// Dropped: the resolution queue is full.
    Dropped,
}

/// Neighbor Discovery state of one interface.
#[derive(Clone)]
pub struct NdIface {
    cfg: NdConfig,
    mac: MacAddr,
    link_local: Ipv6Addr,
    addrs: Vec<OwnAddr>,
    proxies: Proxies,
    cache: Cache,
    routers: Vec<DefaultRouter>,
    on_link: Vec<OnLink>,
    retrans_timer: Duration,
    reachable_time: Duration,
    /// Router Solicitations left to send, while no RA came.
    solicit_left: u8,
    timers: Deadlines<Timer>,
    due: HashMap<Timer, Instant>,
    frames: VecDeque<Frame>,
    events: VecDeque<NdEvent>,
    /// How many of our own addresses need each group; a proxied
    /// address's group is found in `proxies`.
    groups: HashMap<Ipv6Addr, u32>,
    membership: VecDeque<Membership>,
    rng: ChaCha20Rng,
    stats: NdStats,
    cp: CodePoints,
}

/// RFC 4862 §5.3: fe80::/64 and the modified EUI-64 interface identifier.
pub fn link_local(mac: MacAddr) -> Ipv6Addr {
    Ipv6Addr::from((0xfe80u128 << 112) | u128::from(mac.interface_id()))
}

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

fn prefix_match(a: Ipv6Addr, prefix: Ipv6Addr, len: u8) -> bool {
    let len = u32::from(len.min(128));
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - len);
    u128::from(a) & mask == u128::from(prefix) & mask
}

impl NdIface {
    /// An interface with hardware address `mac`; its link-local address
    /// starts DAD at once (`dad` decides how).
    pub fn new(now: Instant, cfg: NdConfig, mac: MacAddr, dad: Dad, seed: u64) -> Self {
        let mut nd = NdIface {
            cfg,
            mac,
            link_local: link_local(mac),
            addrs: Vec::new(),
            proxies: Proxies::default(),
            cache: Cache::new(),
            routers: Vec::new(),
            on_link: Vec::new(),
            retrans_timer: cfg.retrans_timer,
            reachable_time: cfg.base_reachable_time,
            solicit_left: 0,
            timers: Deadlines::default(),
            due: HashMap::new(),
            frames: VecDeque::new(),
            events: VecDeque::new(),
            groups: HashMap::new(),
            membership: VecDeque::new(),
            rng: ChaCha20Rng::seed_from_u64(seed),
            stats: NdStats::default(),
            cp: CodePoints::default(),
        };
        nd.randomise_reachable_time();
        if cfg.router {
            nd.join(ALL_ROUTERS);
        }
        let ll = nd.link_local;
        nd.add_address(now, ll, dad);
        nd
    }

    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    pub fn link_local(&self) -> Ipv6Addr {
        self.link_local
    }

    pub fn stats(&self) -> &NdStats {
        &self.stats
    }

    /// Our addresses on this link and what they are doing.
    pub fn addresses(&self) -> impl Iterator<Item = (Ipv6Addr, AddrState)> + '_ {
        self.addrs.iter().map(|a| (a.addr, a.state))
    }

    pub fn state(&self, addr: Ipv6Addr) -> Option<AddrState> {
        self.own(addr).map(|a| a.state)
    }

    /// Whether `addr` is ours and may be used.
    pub fn usable(&self, addr: Ipv6Addr) -> bool {
        self.state(addr).is_some_and(AddrState::usable)
    }

    pub fn neighbors(&self) -> impl Iterator<Item = (&Ipv6Addr, &Neighbor)> + '_ {
        self.cache.iter()
    }

    pub fn neighbor(&self, addr: Ipv6Addr) -> Option<&Neighbor> {
        self.cache.get(&addr)
    }

    pub fn routers(&self) -> &[DefaultRouter] {
        &self.routers
    }

    /// Home addresses we answer for (defended or still being checked).
    pub fn proxied(&self) -> impl Iterator<Item = (Ipv6Addr, bool)> + '_ {
        self.proxies
            .iter()
            .map(|(a, p)| (a, matches!(p, Proxy::Active { .. })))
    }

    pub fn is_proxying(&self, addr: Ipv6Addr) -> bool {
        matches!(self.proxies.get(addr), Some(Proxy::Active { .. }))
    }

    fn own(&self, addr: Ipv6Addr) -> Option<&OwnAddr> {
        self.addrs.iter().find(|a| a.addr == addr)
    }

    fn own_mut(&mut self, addr: Ipv6Addr) -> Option<&mut OwnAddr> {
        self.addrs.iter_mut().find(|a| a.addr == addr)
    }

    /// RFC 4861 §6.3.2: ReachableTime is BaseReachableTime times a random
    /// factor between 0.5 and 1.5.
    fn randomise_reachable_time(&mut self) {
        let factor = 0.5 + (self.rng.next_u32() as f64 / f64::from(u32::MAX));
        self.reachable_time = self.cfg.base_reachable_time.mul_f64(factor);
    }

    fn set_timer(&mut self, t: Timer, at: Option<Instant>) {
        let old = match at {
            Some(at) => self.due.insert(t, at),
            None => self.due.remove(&t),
        };
        self.timers.reschedule(t, old, at);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    pub fn poll_frame(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<NdEvent> {
        self.events.pop_front()
    }

    /// The next change of the groups we listen to ([`Membership`]).
    pub fn poll_membership(&mut self) -> Option<Membership> {
        self.membership.pop_front()
    }

    fn listening(&self, group: Ipv6Addr) -> bool {
        self.groups.contains_key(&group) || self.proxies.in_group(group)
    }

    /// Reports `group` joined or left if listening to it is to change:
    /// before an address that needs it is added, after one is removed.
    fn report(&mut self, m: Membership) {
        let (Membership::Join(group) | Membership::Leave(group)) = m;
        if !self.listening(group) {
            self.membership.push_back(m);
        }
    }

    /// One more address of ours needs `group`.
    fn join(&mut self, group: Ipv6Addr) {
        self.report(Membership::Join(group));
        *self.groups.entry(group).or_default() += 1;
    }

    /// One address of ours less needs `group`.
    fn leave(&mut self, group: Ipv6Addr) {
        let Some(n) = self.groups.get_mut(&group) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            self.groups.remove(&group);
            self.report(Membership::Leave(group));
        }
    }

    /// Sets what proxied `address` is, joining its group if it is new.
    fn set_proxy(&mut self, address: Ipv6Addr, proxy: Proxy) {
        self.report(Membership::Join(solicited_node(address)));
        self.proxies.insert(address, proxy);
    }

    // ---- our addresses ----

    /// Adds `addr` and starts its DAD as `dad` says.
    pub fn add_address(&mut self, now: Instant, addr: Ipv6Addr, dad: Dad) {
        if let Some(a) = self.own(addr) {
            if a.state != AddrState::Duplicate {
                return;
            }
            self.remove_address(addr);
        }
        let state = match dad {
            Dad::Standard => AddrState::Tentative,
            Dad::Optimistic => AddrState::Optimistic,
            Dad::Off => AddrState::Preferred,
        };
        self.addrs.push(OwnAddr {
            addr,
            state,
            probes: 0,
        });
        self.join(solicited_node(addr));
        if dad != Dad::Off {
            self.dad_probe(now, addr);
        }
        if dad == Dad::Optimistic {
            self.tell_routers(addr);
        }
    }

    /// RFC 9131 §4.1: a new global address, once usable, is announced to
    /// the routers with an unsolicited NA (S=0, and O=0, so that it never
    /// overrides the entry of a node that holds the address already, as
    /// RFC 4429 §3.3 wants of an optimistic one), so that the router's
    /// first packet to it (a mobile node's first BA on a new link) does
    /// not wait for address resolution: a round trip of the link.
    fn tell_routers(&mut self, addr: Ipv6Addr) {
        if is_link_local(addr) {
            return;
        }
        let na = NdRepr::NeighborAdvert {
            flags: NaFlags {
                router: self.cfg.router,
                solicited: false,
                override_: false,
            },
            target: addr,
            target_ll: Some(self.mac),
        };
        self.send_nd(addr, ALL_ROUTERS, &na);
        self.stats.na_sent += 1;
    }

    /// Adds `addr` as [`AddrState::Quiet`]: a source, never defended.
    pub fn add_quiet_address(&mut self, addr: Ipv6Addr) {
        match self.own_mut(addr) {
            Some(a) => a.state = AddrState::Quiet,
            None => {
                self.addrs.push(OwnAddr {
                    addr,
                    state: AddrState::Quiet,
                    probes: 0,
                });
                self.join(solicited_node(addr));
            }
        }
    }

    /// Makes a quiet address ours in full and tells the link, as a mobile
    /// node does for its home address once its home agent let go of it
    /// (RFC 6275 §11.5.5): unsolicited NAs with O=1, S=0.
    pub fn announce(&mut self, now: Instant, addr: Ipv6Addr) {
        if let Some(a) = self.own_mut(addr) {
            a.state = AddrState::Preferred;
            a.probes = 0;
            self.announce_next(now, Timer::Dad(addr), addr);
        }
    }

    pub fn remove_address(&mut self, addr: Ipv6Addr) {
        let before = self.addrs.len();
        self.addrs.retain(|a| a.addr != addr);
        if self.addrs.len() < before {
            self.leave(solicited_node(addr));
        }
        self.set_timer(Timer::Dad(addr), None);
    }

    fn dad_probe(&mut self, now: Instant, addr: Ipv6Addr) {
        if let Some(a) = self.own_mut(addr) {
            a.probes += 1;
        }
        self.probe_from_unspecified(now, addr, Timer::Dad(addr));
    }

    /// An NS for `target` from `::` to its solicited-node group (RFC 4862
    /// §5.4.2), and the wait for an answer under `timer`.
    fn probe_from_unspecified(&mut self, now: Instant, target: Ipv6Addr, timer: Timer) {
        let ns = NdRepr::NeighborSolicit {
            target,
            source_ll: None,
        };
        self.send_nd(Ipv6Addr::UNSPECIFIED, solicited_node(target), &ns);
        self.stats.ns_sent += 1;
        let at = now + self.retrans_timer;
        self.set_timer(timer, Some(at));
    }

    fn dad_timer(&mut self, now: Instant, addr: Ipv6Addr) {
        let Some(a) = self.own(addr).copied() else {
            return;
        };
        match a.state {
            AddrState::Tentative | AddrState::Optimistic if a.probes < self.cfg.dad_transmits => {
                self.dad_probe(now, addr);
            }
            AddrState::Tentative | AddrState::Optimistic => {
                if let Some(a) = self.own_mut(addr) {
                    a.state = AddrState::Preferred;
                }
                if a.state == AddrState::Tentative {
                    self.tell_routers(addr);
                }
                self.events.push_back(NdEvent::AddressReady(addr));
            }
            // Unsolicited NAs of an announced address, one per RetransTimer.
            AddrState::Preferred => self.announce_next(now, Timer::Dad(addr), addr),
            _ => {}
        }
    }

    /// One more unsolicited NA for `target` (ours or proxied), up to
    /// MAX_NEIGHBOR_ADVERTISEMENT.
    fn announce_next(&mut self, now: Instant, timer: Timer, target: Ipv6Addr) {
        let sent = match (timer, self.own(target), self.proxies.get(target)) {
            (Timer::Dad(_), Some(a), _) => a.probes,
            (Timer::Proxy(_), _, Some(Proxy::Active { announcements })) => {
                MAX_NEIGHBOR_ADVERTISEMENT - announcements
            }
            _ => return,
        };
        if sent >= MAX_NEIGHBOR_ADVERTISEMENT {
            self.set_timer(timer, None);
            return;
        }
        // RFC 6275 §10.4.1: a home agent's announcement has R=0, S=0,
        // O=1 and comes from its own address; §11.5.5: the mobile node's
        // from the home address itself.
        let (router, src) = match timer {
            Timer::Dad(_) => (self.cfg.router, target),
            _ => (false, self.primary_address()),
        };
        let na = NdRepr::NeighborAdvert {
            flags: NaFlags {
                router,
                solicited: false,
                override_: true,
            },
            target,
            target_ll: Some(self.mac),
        };
        self.send_nd(src, ALL_NODES, &na);
        self.stats.na_sent += 1;
        match timer {
            Timer::Dad(_) => {
                if let Some(a) = self.own_mut(target) {
                    a.probes += 1;
                }
            }
            _ => {
                if let Some(Proxy::Active { announcements }) = self.proxies.get_mut(target) {
                    *announcements -= 1;
                }
            }
        }
        let at = now + self.retrans_timer;
        self.set_timer(timer, Some(at));
    }

    fn duplicate(&mut self, addr: Ipv6Addr) {
        if let Some(a) = self.own_mut(addr) {
            a.state = AddrState::Duplicate;
        }
        self.set_timer(Timer::Dad(addr), None);
        self.events.push_back(NdEvent::AddressDuplicate(addr));
    }

    // ---- the proxy of a home agent ----

    /// Starts answering for `address`, after checking that nobody uses it
    /// if `check` (RFC 6275 §10.3.1); the outcome is an
    /// [`NdEvent::ProxyChecked`]. Defending starts with unsolicited NAs
    /// (§10.4.1).
    pub fn add_proxy(&mut self, now: Instant, address: Ipv6Addr, check: bool) {
        if self.proxies.contains(address) {
            return;
        }
        if check {
            self.set_proxy(address, Proxy::Checking { probes: 0 });
            self.proxy_probe(now, address);
        } else {
            self.activate_proxy(now, address);
        }
    }

    pub fn remove_proxy(&mut self, address: Ipv6Addr) {
        if self.proxies.remove(address).is_some() {
            self.report(Membership::Leave(solicited_node(address)));
        }
        self.set_timer(Timer::Proxy(address), None);
    }

    fn proxy_probe(&mut self, now: Instant, address: Ipv6Addr) {
        if let Some(Proxy::Checking { probes }) = self.proxies.get_mut(address) {
            *probes += 1;
        }
        self.probe_from_unspecified(now, address, Timer::Proxy(address));
    }

    fn activate_proxy(&mut self, now: Instant, address: Ipv6Addr) {
        self.set_proxy(
            address,
            Proxy::Active {
                announcements: MAX_NEIGHBOR_ADVERTISEMENT,
            },
        );
        // A neighbour cache entry for the address (the mobile node when it
        // was home) must not catch our own packets for it.
        self.cache.remove(&address);
        self.set_timer(Timer::Neighbor(address), None);
        self.announce_next(now, Timer::Proxy(address), address);
    }

    fn proxy_timer(&mut self, now: Instant, address: Ipv6Addr) {
        match self.proxies.get(address) {
            Some(Proxy::Checking { probes }) if probes < self.cfg.dad_transmits => {
                self.proxy_probe(now, address);
            }
            Some(Proxy::Checking { .. }) => {
                self.activate_proxy(now, address);
                self.events.push_back(NdEvent::ProxyChecked {
                    address,
                    unique: true,
                });
            }
            Some(Proxy::Active { .. }) => self.announce_next(now, Timer::Proxy(address), address),
            None => {}
        }
    }

    fn proxy_duplicate(&mut self, address: Ipv6Addr) {
        if let Some(Proxy::Checking { .. }) = self.proxies.get(address) {
            self.remove_proxy(address);
            self.events.push_back(NdEvent::ProxyChecked {
                address,
                unique: false,
            });
        }
    }

    // ---- routers ----

    /// Starts soliciting routers (on link up): an RS now, then every
    /// `rs_interval` until an RA comes, MAX_RTR_SOLICITATIONS in all.
    pub fn solicit_routers(&mut self, now: Instant) {
        self.solicit_left = MAX_RTR_SOLICITATIONS;
        self.solicit(now);
    }

    fn solicit(&mut self, now: Instant) {
        if self.solicit_left == 0 {
            self.set_timer(Timer::Solicit, None);
            return;
        }
        self.solicit_left -= 1;
        // RFC 4429 §3.3: no link-layer option from an address that is not
        // yet preferred; from :: if we have none usable (RFC 4861 §6.3.7).
        let (src, source_ll) = match self.state(self.link_local) {
            Some(AddrState::Preferred) => (self.link_local, Some(self.mac)),
            Some(AddrState::Optimistic) => (self.link_local, None),
            _ => (Ipv6Addr::UNSPECIFIED, None),
        };
        self.send_nd(src, ALL_ROUTERS, &NdRepr::RouterSolicit { source_ll });
        self.stats.rs_sent += 1;
        let at = now + self.cfg.rs_interval;
        self.set_timer(Timer::Solicit, Some(at));
    }

    /// Sends a Router Advertisement (routers only) from our link-local
    /// address to `dst` at `mac`, with our MAC in it.
    pub fn advertise(&mut self, dst: Ipv6Addr, mac: MacAddr, mut advert: RouterAdvert) {
        advert.source_ll = Some(self.mac);
        let bytes = self.nd_bytes(self.link_local, dst, &NdRepr::RouterAdvert(advert));
        self.frames.push_back(Frame { dst: mac, bytes });
        self.stats.ra_sent += 1;
    }

    /// The default router to use: the first whose neighbour entry is not
    /// known to be gone (§6.3.6).
    pub fn default_router(&self) -> Option<Ipv6Addr> {
        self.routers.first().map(|r| r.address)
    }

    // ---- sending ----

    /// Where a packet to `dst` goes next: `dst` itself if it is on-link
    /// (link-local, an on-link prefix, or a neighbour we know), else the
    /// default router (RFC 4861 §5.2).
    pub fn next_hop(&self, dst: Ipv6Addr) -> Option<Ipv6Addr> {
        let on_link = is_link_local(dst)
            || self.on_link_prefix(dst)
            || self.cache.contains_key(&dst)
            || self.proxies.contains(dst);
        if on_link {
            Some(dst)
        } else {
            self.default_router()
        }
    }

    /// Whether `addr` is on one of the link's prefixes.
    fn on_link_prefix(&self, addr: Ipv6Addr) -> bool {
        self.on_link
            .iter()
            .any(|p| prefix_match(addr, p.prefix, p.len))
    }

    /// Declares a prefix on-link (configured, not learned from an RA).
    pub fn add_on_link(&mut self, prefix: Ipv6Addr, len: u8) {
        self.on_link.retain(|p| p.prefix != prefix);
        self.on_link.push(OnLink {
            prefix,
            len,
            expires: None,
        });
    }

    /// Records a neighbour's link-layer address learned outside ND (the
    /// source of a frame: RFC 6275 §10.3.2, a home agent answering a
    /// mobile node that came home).
    pub fn learn(&mut self, now: Instant, addr: Ipv6Addr, mac: MacAddr) {
        if !self.cache.contains_key(&addr) && !self.make_room() {
            return;
        }
        let e = self
            .cache
            .entry(addr)
            .or_insert_with(|| Neighbor::stale(mac));
        e.mac = Some(mac);
        if e.state == NeighborState::Incomplete {
            e.state = NeighborState::Stale;
        }
        self.flush(now, addr);
    }

    /// Sends an IPv6 packet whose source is `src` to the neighbour
    /// `next_hop` (multicast destinations need no resolution).
    pub fn send(
        &mut self,
        now: Instant,
        next_hop: Ipv6Addr,
        src: Ipv6Addr,
        bytes: Vec<u8>,
    ) -> Sent {
        if next_hop.is_multicast() {
            self.frames.push_back(Frame {
                dst: MacAddr::ipv6_multicast(next_hop),
                bytes,
            });
            return Sent::Now;
        }
        match self.cache.get_mut(&next_hop) {
            Some(e) if e.state != NeighborState::Incomplete => {
                let Some(mac) = e.mac else {
                    return Sent::Dropped;
                };
                if e.state == NeighborState::Stale {
                    // §7.3.3: the first packet to a stale neighbour starts
                    // the wait for a reachability confirmation.
                    e.state = NeighborState::Delay;
                    let at = now + DELAY_FIRST_PROBE_TIME;
                    self.set_timer(Timer::Neighbor(next_hop), Some(at));
                }
                self.frames.push_back(Frame { dst: mac, bytes });
                Sent::Now
            }
            Some(e) => {
                // RFC 4861 §7.2.2 would have the new packet replace the
                // oldest; we keep the oldest, which is the signalling that
                // started the exchange (replacing it let a node's 1 kHz
                // flow push its BUs out at every handoff: 41 ms became
                // 1.2 s in the demo).
                if e.queue.len() >= self.cfg.queue_per_neighbor {
                    self.stats.unresolved += 1;
                    return Sent::Dropped;
                }
                e.queue.push(bytes);
                Sent::Queued
            }
            None => {
                // RFC 4429 §3.3: no resolution from an optimistic source;
                // the default router can take it if we know its MAC.
                if self.state(src) == Some(AddrState::Optimistic) && !self.solicit_source_ok() {
                    if let Some(mac) = self.default_router_mac() {
                        self.frames.push_back(Frame { dst: mac, bytes });
                        return Sent::Now;
                    }
                }
                if !self.make_room() {
                    self.stats.unresolved += 1;
                    return Sent::Dropped;
                }
                let mut e = Neighbor::incomplete();
                e.queue.push(bytes);
                if self.state(src) == Some(AddrState::Quiet) {
                    e.solicit_for = Some(src);
                }
                self.cache.insert(next_hop, e);
                self.resolve(now, next_hop, src);
                Sent::Queued
            }
        }
    }

    /// Whether we have a preferred address to solicit from.
    fn solicit_source_ok(&self) -> bool {
        self.addrs.iter().any(|a| a.state == AddrState::Preferred)
    }

    fn default_router_mac(&self) -> Option<MacAddr> {
        let r = self.default_router()?;
        self.cache.get(&r).and_then(|e| e.mac)
    }

    /// The source of a solicitation: `hint` if it is preferred, else a
    /// preferred address of ours (link-local first); `None` for ::.
    fn solicit_source(&self, hint: Ipv6Addr) -> Option<Ipv6Addr> {
        if self.state(hint) == Some(AddrState::Preferred) {
            return Some(hint);
        }
        if self.state(self.link_local) == Some(AddrState::Preferred) {
            return Some(self.link_local);
        }
        self.addrs
            .iter()
            .find(|a| a.state == AddrState::Preferred)
            .map(|a| a.addr)
    }

    /// A multicast NS for `target` (§7.2.2), or a unicast probe (§7.3.3).
    fn resolve(&mut self, now: Instant, target: Ipv6Addr, hint: Ipv6Addr) {
        if let Some(home) = self.cache.get(&target).and_then(|e| e.solicit_for) {
            // RFC 6275 §11.5.5: from ::, for the home address.
            if let Some(e) = self.cache.get_mut(&target) {
                e.probes += 1;
            }
            self.probe_from_unspecified(now, home, Timer::Neighbor(target));
            return;
        }
        let (dst_ip, dst_mac) = match self.cache.get(&target) {
            Some(e) if e.state == NeighborState::Probe => match e.mac {
                Some(m) => (target, Some(m)),
                None => (solicited_node(target), None),
            },
            _ => (solicited_node(target), None),
        };
        // RFC 6275 §11.5.5: with no usable source (a mobile node come home
        // whose home address is still proxied), solicit from ::.
        let src = self.solicit_source(hint);
        let ns = NdRepr::NeighborSolicit {
            target,
            source_ll: src.map(|_| self.mac),
        };
        let bytes = self.nd_bytes(src.unwrap_or(Ipv6Addr::UNSPECIFIED), dst_ip, &ns);
        let dst = dst_mac.unwrap_or_else(|| MacAddr::ipv6_multicast(dst_ip));
        self.frames.push_back(Frame { dst, bytes });
        self.stats.ns_sent += 1;
        let at = now + self.retrans_timer;
        if let Some(e) = self.cache.get_mut(&target) {
            e.probes += 1;
        }
        self.set_timer(Timer::Neighbor(target), Some(at));
    }

    fn neighbor_timer(&mut self, now: Instant, addr: Ipv6Addr) {
        let Some(e) = self.cache.get_mut(&addr) else {
            return;
        };
        match e.state {
            NeighborState::Incomplete if e.probes < MAX_MULTICAST_SOLICIT => {
                self.resolve(now, addr, Ipv6Addr::UNSPECIFIED);
            }
            NeighborState::Probe if e.probes < MAX_UNICAST_SOLICIT => {
                self.resolve(now, addr, Ipv6Addr::UNSPECIFIED);
            }
            NeighborState::Incomplete | NeighborState::Probe => self.unreachable(addr),
            NeighborState::Reachable => {
                e.state = NeighborState::Stale;
                self.set_timer(Timer::Neighbor(addr), None);
            }
            NeighborState::Delay => {
                e.state = NeighborState::Probe;
                e.probes = 0;
                self.resolve(now, addr, Ipv6Addr::UNSPECIFIED);
            }
            NeighborState::Stale => self.set_timer(Timer::Neighbor(addr), None),
        }
    }

    fn unreachable(&mut self, addr: Ipv6Addr) {
        self.set_timer(Timer::Neighbor(addr), None);
        let Some(e) = self.cache.remove(&addr) else {
            return;
        };
        let dropped = e.queue.len();
        self.stats.unresolved += dropped as u64;
        self.events.push_back(NdEvent::NeighborUnreachable {
            neighbor: addr,
            dropped,
        });
        if let Some(i) = self.routers.iter().position(|r| r.address == addr) {
            self.routers.remove(i);
            self.set_timer(Timer::Router(addr), None);
            self.events.push_back(NdEvent::RouterLost(addr));
        }
    }

    /// Sends what waited for `addr`, now that its MAC is known.
    fn flush(&mut self, now: Instant, addr: Ipv6Addr) {
        let Some(e) = self.cache.get_mut(&addr) else {
            return;
        };
        let Some(mac) = e.mac else {
            return;
        };
        let queued = std::mem::take(&mut e.queue);
        if !queued.is_empty() && e.state == NeighborState::Stale {
            e.state = NeighborState::Delay;
            let at = now + DELAY_FIRST_PROBE_TIME;
            self.set_timer(Timer::Neighbor(addr), Some(at));
        }
        for bytes in queued {
            self.frames.push_back(Frame { dst: mac, bytes });
        }
    }

    fn confirm(&mut self, now: Instant, addr: Ipv6Addr) {
        let at = now + self.reachable_time;
        if let Some(e) = self.cache.get_mut(&addr) {
            e.state = NeighborState::Reachable;
            e.probes = 0;
        }
        self.set_timer(Timer::Neighbor(addr), Some(at));
    }

    /// A link-layer address a neighbour gave about itself in an NS, RS or
    /// RA (§7.2.3, §6.3.4): creates or updates a stale entry.
    fn heard_from(&mut self, now: Instant, addr: Ipv6Addr, mac: MacAddr, router: bool) {
        if addr.is_unspecified() || self.proxies.contains(addr) || self.own(addr).is_some() {
            return;
        }
        match self.cache.get_mut(&addr) {
            Some(e) => {
                if e.mac != Some(mac) {
                    e.mac = Some(mac);
                    e.state = NeighborState::Stale;
                    self.set_timer(Timer::Neighbor(addr), None);
                }
                if router {
                    if let Some(e) = self.cache.get_mut(&addr) {
                        e.is_router = true;
                    }
                }
                self.flush(now, addr);
            }
            None => {
                if self.make_room() {
                    let mut e = Neighbor::stale(mac);
                    e.is_router = router;
                    self.cache.insert(addr, e);
                }
            }
        }
    }

    /// Whether a new entry fits: at the limit, the stale non-router entry
    /// with the lowest address goes (deterministic, and nothing waits on
    /// a stale entry).
    fn make_room(&mut self) -> bool {
        if self.cache.len() < self.cfg.max_neighbors {
            return true;
        }
        self.stats.cache_full += 1;
        let victim = self
            .cache
            .iter()
            .filter(|(_, e)| e.state == NeighborState::Stale && !e.is_router)
            .map(|(a, _)| *a)
            .min();
        match victim {
            Some(a) => {
                self.cache.remove(&a);
                self.set_timer(Timer::Neighbor(a), None);
                true
            }
            None => false,
        }
    }

    // ---- receiving ----

    /// An ND message from `src` to `dst` with the given hop limit. Returns
    /// the reason if it was not taken.
    pub fn handle(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        msg: &NdRepr,
    ) -> Result<(), NdDrop> {
        self.stats.received += 1;
        // RFC 4861 §6.1, §7.1: an off-link sender cannot fake 255.
        if hop_limit != ND_HOP_LIMIT {
            self.stats.invalid += 1;
            return Err(NdDrop::Invalid);
        }
        let r = match msg {
            NdRepr::RouterSolicit { source_ll } => self.on_rs(now, src, *source_ll),
            NdRepr::RouterAdvert(ra) => self.on_ra(now, src, ra),
            NdRepr::NeighborSolicit { target, source_ll } => {
                self.on_ns(now, src, dst, *target, *source_ll)
            }
            NdRepr::NeighborAdvert {
                flags,
                target,
                target_ll,
            } => self.on_na(now, dst, *flags, *target, *target_ll),
        };
        match r {
            Err(NdDrop::Invalid) => self.stats.invalid += 1,
            Err(NdDrop::NotForRole) => self.stats.not_for_role += 1,
            Err(NdDrop::NotOurs) => self.stats.not_ours += 1,
            Ok(()) => self.stats.accepted += 1,
        }
        r
    }

    fn on_rs(&mut self, now: Instant, src: Ipv6Addr, sll: Option<MacAddr>) -> Result<(), NdDrop> {
        if src.is_unspecified() && sll.is_some() {
            return Err(NdDrop::Invalid);
        }
        if !self.cfg.router {
            return Err(NdDrop::NotForRole);
        }
        if let Some(m) = sll {
            self.heard_from(now, src, m, false);
        }
        self.events
            .push_back(NdEvent::RouterSolicited { from: src });
        Ok(())
    }

    fn on_ra(&mut self, now: Instant, src: Ipv6Addr, ra: &RouterAdvert) -> Result<(), NdDrop> {
        if !is_link_local(src) {
            return Err(NdDrop::Invalid);
        }
        if self.cfg.router {
            return Err(NdDrop::NotForRole);
        }
        if let Some(m) = ra.source_ll {
            self.heard_from(now, src, m, true);
        } else if let Some(e) = self.cache.get_mut(&src) {
            e.is_router = true;
        }
        if ra.retrans_timer != 0 {
            self.retrans_timer = Duration::from_millis(u64::from(ra.retrans_timer));
        }
        if ra.reachable_time != 0 {
            let base = Duration::from_millis(u64::from(ra.reachable_time));
            if base != self.cfg.base_reachable_time {
                self.cfg.base_reachable_time = base;
                self.randomise_reachable_time();
            }
        }
        let lifetime = Duration::from_secs(u64::from(ra.router_lifetime));
        let i = self.routers.iter().position(|r| r.address == src);
        match (i, ra.router_lifetime) {
            (Some(i), 0) => {
                self.routers.remove(i);
                self.set_timer(Timer::Router(src), None);
                self.events.push_back(NdEvent::RouterLost(src));
            }
            (Some(i), _) => {
                self.routers[i].expires = now + lifetime;
                self.set_timer(Timer::Router(src), Some(now + lifetime));
            }
            (None, 0) => {}
            (None, _) => {
                self.routers.push(DefaultRouter {
                    address: src,
                    expires: now + lifetime,
                });
                self.set_timer(Timer::Router(src), Some(now + lifetime));
            }
        }
        for p in ra.prefixes.iter().filter(|p| p.on_link) {
            self.on_link.retain(|o| o.prefix != p.prefix);
            if p.valid_lifetime == 0 {
                self.set_timer(Timer::Prefix(p.prefix), None);
                continue;
            }
            let expires = (p.valid_lifetime != u32::MAX)
                .then(|| now + Duration::from_secs(u64::from(p.valid_lifetime)));
            self.on_link.push(OnLink {
                prefix: p.prefix,
                len: p.prefix_len,
                expires,
            });
            self.set_timer(Timer::Prefix(p.prefix), expires);
        }
        // Something answered: stop soliciting.
        self.solicit_left = 0;
        self.set_timer(Timer::Solicit, None);
        self.events.push_back(NdEvent::RouterAdvert {
            router: src,
            advert: ra.clone(),
        });
        Ok(())
    }

    fn on_ns(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        target: Ipv6Addr,
        sll: Option<MacAddr>,
    ) -> Result<(), NdDrop> {
        let dad = src.is_unspecified();
        // §7.1.1: a DAD probe goes to the solicited-node group and carries
        // no link-layer address.
        if dad && (sll.is_some() || dst != solicited_node(target)) {
            return Err(NdDrop::Invalid);
        }
        let own = self.own(target).map(|a| a.state);
        let proxy = self.proxies.get(target);
        // §7.2.3: only a solicitation for one of our targets may create
        // or update a cache entry (else any station fills the cache).
        if (own, proxy) == (None, None) {
            return Err(NdDrop::NotOurs);
        }
        if let Some(m) = sll {
            self.heard_from(now, src, m, false);
        }
        let override_ = match (own, proxy) {
            // RFC 4862 §5.4.3: someone else probes an address we are
            // still checking: it is a duplicate.
            (Some(AddrState::Tentative | AddrState::Optimistic), _) if dad => {
                self.duplicate(target);
                return Ok(());
            }
            // RFC 4429 §3.3: answer, without overriding.
            (Some(AddrState::Optimistic), _) => false,
            (Some(AddrState::Preferred), _) => true,
            // Another node checking the same home address.
            (None, Some(Proxy::Checking { .. })) if dad => {
                self.proxy_duplicate(target);
                return Ok(());
            }
            // RFC 6275 §10.4.1: the home agent answers for the home
            // address, DAD probes included; a proxy's answers never
            // override (RFC 4861 §7.2.8), its announcements did.
            (None, Some(Proxy::Active { .. })) => false,
            // Not one we answer for (yet): §7.2.3 discards it.
            _ => return Err(NdDrop::NotOurs),
        };
        // §7.2.4: solicited unicast answer, or to all nodes for a DAD probe.
        let (to, solicited) = if dad { (ALL_NODES, false) } else { (src, true) };
        let proxy = proxy.is_some();
        let na = NdRepr::NeighborAdvert {
            flags: NaFlags {
                router: self.cfg.router && !proxy,
                solicited,
                override_,
            },
            target,
            target_ll: Some(self.mac),
        };
        let src = if proxy {
            self.primary_address()
        } else {
            target
        };
        let bytes = self.nd_bytes(src, to, &na);
        self.stats.na_sent += 1;
        let dst_mac = if to.is_multicast() {
            Some(MacAddr::ipv6_multicast(to))
        } else {
            sll.or_else(|| self.cache.get(&to).and_then(|e| e.mac))
        };
        match dst_mac {
            Some(dst) => self.frames.push_back(Frame { dst, bytes }),
            None => {
                // No SLLA and no cache entry: resolve the solicitor first.
                self.send(now, to, target, bytes);
            }
        }
        Ok(())
    }

    /// Our first preferred global address, else the link-local one: where
    /// a proxy's messages come from.
    fn primary_address(&self) -> Ipv6Addr {
        self.addrs
            .iter()
            .find(|a| a.state == AddrState::Preferred && !is_link_local(a.addr))
            .map_or(self.link_local, |a| a.addr)
    }

    fn on_na(
        &mut self,
        now: Instant,
        dst: Ipv6Addr,
        flags: NaFlags,
        target: Ipv6Addr,
        tll: Option<MacAddr>,
    ) -> Result<(), NdDrop> {
        // §7.1.2.
        if dst.is_multicast() && flags.solicited {
            return Err(NdDrop::Invalid);
        }
        if tll == Some(self.mac) {
            // Our own announcement, reflected back.
            return Err(NdDrop::NotOurs);
        }
        match self.own(target).map(|a| a.state) {
            Some(AddrState::Tentative | AddrState::Optimistic) => {
                self.duplicate(target);
                return Ok(());
            }
            Some(AddrState::Preferred) => {
                self.stats.conflicts += 1;
                return Ok(());
            }
            Some(AddrState::Quiet) => {
                // RFC 6275 §11.5.5: the home agent, defending our home
                // address, told us its MAC.
                let agents: Vec<Ipv6Addr> = self
                    .cache
                    .iter()
                    .filter(|(_, e)| e.solicit_for == Some(target))
                    .map(|(a, _)| *a)
                    .collect();
                for agent in agents {
                    if let (Some(e), Some(m)) = (self.cache.get_mut(&agent), tll) {
                        e.mac = Some(m);
                        e.solicit_for = None;
                        self.confirm(now, agent);
                        self.flush(now, agent);
                    }
                }
                return Ok(());
            }
            Some(_) => return Ok(()),
            None => {}
        }
        if let Some(Proxy::Checking { .. }) = self.proxies.get(target) {
            self.proxy_duplicate(target);
            return Ok(());
        }
        // Appendix C.
        let Some(e) = self.cache.get_mut(&target) else {
            // RFC 9131 §4.2: a router takes a host's announcement of a new
            // address on one of the link's prefixes as a STALE entry.
            let announced = self.cfg.router && !flags.solicited && self.on_link_prefix(target);
            return match tll {
                Some(mac) if announced => {
                    self.learn(now, target, mac);
                    Ok(())
                }
                _ => Err(NdDrop::NotOurs),
            };
        };
        let was_router = e.is_router;
        if e.state == NeighborState::Incomplete {
            let Some(m) = tll else {
                return Ok(());
            };
            e.mac = Some(m);
            e.is_router = flags.router;
            if flags.solicited {
                self.confirm(now, target);
            } else {
                e.state = NeighborState::Stale;
                self.set_timer(Timer::Neighbor(target), None);
            }
            self.flush(now, target);
        } else {
            let differs = tll.is_some_and(|m| Some(m) != e.mac);
            if !flags.override_ && differs {
                if e.state == NeighborState::Reachable {
                    e.state = NeighborState::Stale;
                    self.set_timer(Timer::Neighbor(target), None);
                }
                return Ok(());
            }
            if let Some(m) = tll {
                e.mac = Some(m);
            }
            e.is_router = flags.router;
            if flags.solicited {
                self.confirm(now, target);
            } else if differs {
                if let Some(e) = self.cache.get_mut(&target) {
                    e.state = NeighborState::Stale;
                }
                self.set_timer(Timer::Neighbor(target), None);
            }
        }
        // §7.2.5: a router that says it is none leaves the router list.
        if was_router && !flags.router {
            if let Some(i) = self.routers.iter().position(|r| r.address == target) {
                self.routers.remove(i);
                self.set_timer(Timer::Router(target), None);
                self.events.push_back(NdEvent::RouterLost(target));
            }
        }
        Ok(())
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(t) = self.timers.pop_due(now) {
            self.due.remove(&t);
            match t {
                Timer::Dad(a) => self.dad_timer(now, a),
                Timer::Neighbor(a) => self.neighbor_timer(now, a),
                Timer::Proxy(a) => self.proxy_timer(now, a),
                Timer::Router(a) => {
                    if let Some(i) = self.routers.iter().position(|r| r.address == a) {
                        self.routers.remove(i);
                        self.events.push_back(NdEvent::RouterLost(a));
                    }
                }
                Timer::Prefix(p) => self.on_link.retain(|o| o.prefix != p),
                Timer::Solicit => self.solicit(now),
            }
        }
    }

    // ---- building ----

    fn nd_bytes(&self, src: Ipv6Addr, dst: Ipv6Addr, msg: &NdRepr) -> Vec<u8> {
        nd_packet(src, dst, msg).to_bytes(&self.cp)
    }

    fn send_nd(&mut self, src: Ipv6Addr, dst: Ipv6Addr, msg: &NdRepr) {
        let bytes = self.nd_bytes(src, dst, msg);
        self.frames.push_back(Frame {
            dst: MacAddr::ipv6_multicast(dst),
            bytes,
        });
    }
}

/// An ND message in an IPv6 packet with hop limit 255.
pub fn nd_packet(src: Ipv6Addr, dst: Ipv6Addr, msg: &NdRepr) -> PacketRepr {
    let mut p = PacketRepr::ipv6(src, dst, vec![], UpperRepr::Icmpv6(msg.to_icmpv6()));
    if let IpRepr::V6 { header, .. } = &mut p.ip {
        header.hop_limit = ND_HOP_LIMIT;
    }
    p
}
